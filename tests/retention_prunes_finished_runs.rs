//! Retention forgets finished runs beyond the configured count (in memory, and in the store),
//! in bounded passes, never touching active runs; with a store the registry keeps only a
//! window of finished runs in memory and answers older ones from the store.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{ListQuery, Retention, RunSpec, RunStatus, Runwarden, SqliteStore};
use support::{Gate, TempDir, start, within};

fn retention(keep: usize, window: usize) -> Retention {
    Retention {
        max_finished: keep,
        memory_window: window,
        every: Duration::from_secs(3600),
        batch: 100,
        ..Retention::default()
    }
}

/// Waits until all `ran` runs have ended (kept or already pruned) and retention is down to
/// `want_total` records. Runs are not waited on one by one: retention may prune a finished run
/// before a `wait` on it is sent, which then rightly answers `NotFound`.
async fn settle(rw: &Runwarden, ran: usize, want_total: usize) -> runwarden::RegistryStats {
    within("the runs to end and retention to catch up", async {
        loop {
            let stats = rw.stats().await.expect("stats");
            let ended = stats.count(RunStatus::Completed) + stats.pruned as usize;
            if ended >= ran && stats.total() <= want_total {
                return stats;
            }
            // Drive retention by message rather than waiting for its timer.
            rw.prune_now().await.expect("prune");
            tokio::task::yield_now().await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_memory_retention_keeps_the_newest_finished_runs_and_every_active_one() {
    let rw = start(Runwarden::builder().retention(retention(50, 10))).await;
    let gate = Gate::new();
    let g = gate.clone();
    let active = rw
        .submit(RunSpec::new("held"), move |_| async move {
            g.wait().await;
            Ok(())
        })
        .expect("submit");
    let mut ids = Vec::new();
    for _ in 0..1000 {
        ids.push(
            rw.submit(RunSpec::new("done"), |_| async { Ok(()) })
                .expect("submit"),
        );
    }
    let stats = settle(&rw, 1000, 51).await;
    assert_eq!(stats.count(RunStatus::Completed), 50);
    assert_eq!(
        stats.count(RunStatus::Running),
        1,
        "the active run is never pruned"
    );
    assert_eq!(stats.pruned, 950);
    // The newest finished runs are the ones kept.
    assert!(rw.status(ids[999]).await.is_ok());
    assert!(rw.status(ids[0]).await.is_err());
    assert!(rw.status(active).await.is_ok());
    gate.open();
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_store_memory_holds_a_window_and_the_store_answers_the_rest() {
    let dir = TempDir::new("retention");
    let store = SqliteStore::open(dir.0.join("runs.db")).expect("open");
    let rw = start(
        Runwarden::builder()
            .store(store)
            .retention(retention(300, 20)),
    )
    .await;
    let mut ids = Vec::new();
    for _ in 0..500 {
        ids.push(
            rw.submit(RunSpec::new("done"), |_| async { Ok(()) })
                .expect("submit"),
        );
    }
    let stats = settle(&rw, 500, 300).await;
    assert_eq!(stats.count(RunStatus::Completed), 300);
    // A run outside the 20-run memory window but inside retention comes from the store.
    let old_but_kept = ids[250];
    assert_eq!(
        rw.status(old_but_kept)
            .await
            .expect("from the store")
            .status,
        RunStatus::Completed
    );
    assert_eq!(
        rw.wait(old_but_kept).await.expect("wait from the store").id,
        old_but_kept
    );
    let page = rw.list(ListQuery::new().limit(5)).await.expect("list");
    assert_eq!(page.total, 300);
    assert_eq!(page.runs[0].id, ids[499]);
    // Pruned runs are gone from the store too.
    assert!(rw.status(ids[0]).await.is_err());
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Log retention follows run retention: a pruned run's log file is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruned_runs_lose_their_log_files() {
    let logs = TempDir::new("retention-logs");
    let rw = start(
        Runwarden::builder()
            .retention(retention(5, 5))
            .logs(runwarden::LogConfig::new(&logs.0)),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(
            rw.submit(RunSpec::new("noted"), move |ctx| async move {
                ctx.info(format!("run {i}"));
                Ok(())
            })
            .expect("submit"),
        );
    }
    settle(&rw, 30, 5).await;
    let first = rw.log_file(ids[0]).await.expect("path");
    let last = rw.log_file(ids[29]).await.expect("path");
    within("the pruned log file to go", async {
        while first.exists() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(last.exists(), "a kept run's log was removed");
    rw.shutdown(support::STEP).await.expect("shutdown");
}
