//! A registry that fails (a fault injected mid-workload) restarts from its store under its
//! supervisor's restart limit: no status message sent meanwhile is lost or applied twice, and
//! every run still ends with exactly one terminal status. Without a store there is nothing to
//! restart from, and the failure escalates.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{MemoryStore, RunSpec, RunStatus, Runwarden, SqliteStore};
use support::{Gate, TempDir, start, within};

async fn workload_with_faults(rw: &Runwarden, faults: usize) {
    let gate = Gate::new();
    let mut ids = Vec::new();
    for i in 0..3000u32 {
        let g = gate.clone();
        let id = rw
            .submit(RunSpec::new("w"), move |ctx| async move {
                if i % 3 == 0 {
                    g.wait().await;
                }
                ctx.report(runwarden::Progress::items(1, 1));
                if i % 5 == 0 {
                    Err(runwarden::JobError::msg("five"))
                } else {
                    Ok(())
                }
            })
            .expect("submit");
        ids.push(id);
        if i % (3000 / faults as u32) == 1000 % (3000 / faults as u32) {
            let _ = rw
                .registry()
                .actor()
                .cast(runwarden::actors::faults::registry_panic(format!(
                    "fault at {i}"
                )));
        }
    }
    // Waiters registered now, some before the next faults.
    let waits: Vec<_> = ids
        .iter()
        .map(|id| {
            let rw = rw.clone();
            let id = *id;
            tokio::spawn(async move { rw.wait(id).await })
        })
        .collect();
    let _ = rw
        .registry()
        .actor()
        .cast(runwarden::actors::faults::registry_panic(
            "while waiters wait",
        ));
    gate.open();
    let mut counts = [0usize; RunStatus::COUNT];
    for (i, w) in waits.into_iter().enumerate() {
        let r = within("a run to end", w)
            .await
            .expect("join")
            .expect("wait answered");
        assert!(r.status.is_terminal(), "run {i}");
        let want = if i % 5 == 0 {
            RunStatus::Failed
        } else {
            RunStatus::Completed
        };
        assert_eq!(r.status, want, "run {i}");
        counts[r.status.index()] += 1;
    }
    let stats = rw.stats().await.expect("stats");
    assert_eq!(stats.restarts as usize, faults + 1);
    assert_eq!(stats.refused, 0, "a status message was applied twice");
    assert_eq!(
        stats.count(RunStatus::Completed),
        counts[RunStatus::Completed.index()]
    );
    assert_eq!(
        stats.count(RunStatus::Failed),
        counts[RunStatus::Failed.index()]
    );
    assert_eq!(stats.total(), 3000);
    assert_eq!(rw.active_count().await.expect("count"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_restarted_from_sqlite_loses_no_status() {
    let dir = TempDir::new("restart");
    let store = SqliteStore::open(dir.0.join("runs.db")).expect("open");
    let rw = start(Runwarden::builder().store(store)).await;
    workload_with_faults(&rw, 3).await;
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_restarted_from_the_memory_store_loses_no_status() {
    let rw = start(Runwarden::builder().store(MemoryStore::default())).await;
    workload_with_faults(&rw, 2).await;
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Too many restarts in a short time, or no store at all: the failure escalates, and the
// handle reports the actors as unavailable instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_store_or_past_the_restart_limit_the_failure_escalates() {
    let rw = start(Runwarden::builder()).await;
    let _ = rw
        .registry()
        .actor()
        .cast(runwarden::actors::faults::registry_panic("no store"));
    within("the supervisor to stop", rw.supervisor().actor().wait(None))
        .await
        .expect("stopped");
    assert!(matches!(
        rw.status(runwarden::RunId::new()).await,
        Err(runwarden::Error::Unavailable { .. })
    ));

    let rw = start(Runwarden::builder().store(MemoryStore::default())).await;
    for i in 0..=runwarden::actors::REGISTRY_RESTARTS {
        let _ = rw
            .registry()
            .actor()
            .cast(runwarden::actors::faults::registry_panic(format!(
                "fault {i}"
            )));
    }
    within(
        "the supervisor to give up",
        rw.supervisor().actor().wait(None),
    )
    .await
    .expect("stopped");
}
