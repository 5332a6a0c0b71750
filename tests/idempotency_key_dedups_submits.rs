//! A submit with the idempotency key of an active run, or of one that ended within the dedup
//! window, returns that run's id and starts nothing new.
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use runwarden::{Dedup, RunSpec, Runwarden};
use support::{Gate, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_returns_the_same_run() {
    let rw = start(Runwarden::builder().dedup_window(Duration::from_secs(3600))).await;
    let executions = Arc::new(AtomicU32::new(0));
    let gate = Gate::new();
    let job = |n: Arc<AtomicU32>, g: Gate| {
        move |_| async move {
            n.fetch_add(1, Ordering::SeqCst);
            g.wait().await;
            Ok(())
        }
    };
    let first = rw
        .request(RunSpec::new("bill"), job(executions.clone(), gate.clone()))
        .idempotency_key("invoice-42")
        .send()
        .await
        .expect("submit");
    let Dedup::New(id) = first else {
        panic!("first submit was {first:?}")
    };
    // While it is active.
    let again = rw
        .request(RunSpec::new("bill"), job(executions.clone(), gate.clone()))
        .idempotency_key("invoice-42")
        .send()
        .await
        .expect("submit");
    assert_eq!(again, Dedup::Existing(id));
    // Another key is another run.
    let other = rw
        .request(RunSpec::new("bill"), job(executions.clone(), gate.clone()))
        .idempotency_key("invoice-43")
        .send()
        .await
        .expect("submit");
    assert!(matches!(other, Dedup::New(o) if o != id));
    gate.open();
    within("run", rw.wait(id)).await.expect("wait");
    within("run", rw.wait(other.run_id())).await.expect("wait");
    // After it finished, within the window.
    let after = rw
        .request(RunSpec::new("bill"), job(executions.clone(), gate.clone()))
        .idempotency_key("invoice-42")
        .send()
        .await
        .expect("submit");
    assert_eq!(after, Dedup::Existing(id));
    assert_eq!(executions.load(Ordering::SeqCst), 2, "duplicates never ran");
    assert_eq!(rw.stats().await.expect("stats").total(), 2);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// With no window, a key is free again as soon as its run has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_is_free_again_after_the_window() {
    let rw = start(Runwarden::builder().dedup_window(Duration::ZERO)).await;
    let first = rw
        .request(RunSpec::new("x"), |_| async { Ok(()) })
        .idempotency_key("k")
        .send()
        .await
        .expect("submit");
    within("run", rw.wait(first.run_id())).await.expect("wait");
    let second = rw
        .request(RunSpec::new("x"), |_| async { Ok(()) })
        .idempotency_key("k")
        .send()
        .await
        .expect("submit");
    assert!(matches!(second, Dedup::New(id) if id != first.run_id()));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// With a durable store, a key survives a restart of the process: the same key finds the run
// submitted before the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_survives_a_restart_with_a_store() {
    let dir = support::TempDir::new("dedup-restart");
    let db = dir.0.join("runs.db");
    let first = start(
        Runwarden::builder()
            .dedup_window(Duration::from_secs(3600))
            .store(runwarden::SqliteStore::open(&db).expect("open")),
    )
    .await;
    let a = first
        .request(RunSpec::new("r"), |_| async { Ok(()) })
        .idempotency_key("report-2026-11")
        .send()
        .await
        .expect("submit");
    within("run", first.wait(a.run_id())).await.expect("wait");
    first.shutdown(support::STEP).await.expect("shutdown");

    let second = start(
        Runwarden::builder()
            .dedup_window(Duration::from_secs(3600))
            .store(runwarden::SqliteStore::open(&db).expect("reopen")),
    )
    .await;
    let again = second
        .request(RunSpec::new("r"), |_| async { Ok(()) })
        .idempotency_key("report-2026-11")
        .send()
        .await
        .expect("submit");
    assert_eq!(again, Dedup::Existing(a.run_id()));
    second.shutdown(support::STEP).await.expect("shutdown");
}
