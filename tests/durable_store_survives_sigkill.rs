//! Crash safety with real processes: a child process submits durable runs and prints each id
//! once `submit_durable` returned; it is SIGKILLed at random points, 20 rounds. Reopening the
//! store finds every printed id, recovery leaves no run stuck queued or running, and SQLite's
//! integrity check passes.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{BoxedJob, OnInterrupt, RunId, RunSpec, Runwarden, SqliteStore};
use support::TempDir;

const CHILD_ENV: &str = "RUNWARDEN_CRASH_CHILD_DB";

fn builder(store: SqliteStore) -> runwarden::RunwardenBuilder {
    let work = |_: &runwarden::JsonObject| {
        Ok(BoxedJob::repeatable(|_| async {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(())
        }))
    };
    Runwarden::builder()
        .store(store)
        .job_kind("rerun", OnInterrupt::Rerun, work)
        .job_kind("fragile", OnInterrupt::Fail, work)
}

/// Run as a separate process with the store's path in the environment: submits durable runs
/// forever, printing each id once its durable submit returned, until it is killed.
async fn child(path: String) {
    let store = SqliteStore::open(&path).expect("child opens the store");
    let rw = builder(store).start().await.expect("child starts");
    for i in 0u64.. {
        let kind = if i % 2 == 0 { "rerun" } else { "fragile" };
        let id = rw
            .request(RunSpec::new(kind), runwarden::Kind(kind))
            .durable()
            .send()
            .await
            .expect("durable submit");
        // Printed only after the commit was acknowledged.
        println!("id {id}");
    }
}

/// This file's entry point (`harness = false`): the child process when started with the
/// store's path in the environment, otherwise the test.
fn main() {
    support::crash_test_main(
        CHILD_ENV,
        child,
        "every_acknowledged_run_survives_sigkill",
        every_acknowledged_run_survives_sigkill,
    );
}

async fn every_acknowledged_run_survives_sigkill() {
    let dir = TempDir::new("crash");
    let db = dir.0.join("runs.db");
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut printed: Vec<RunId> = Vec::new();
    for round in 0..20 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = 1 + (seed % 60) as usize;
        let ids = support::sigkill_after_ids((CHILD_ENV, &db), kill_after).await;
        assert_eq!(
            ids.len(),
            kill_after,
            "round {round}: the child stopped early"
        );
        printed.extend(ids);

        // Reopen: every acknowledged run is there, and recovery reconciles the active ones.
        let store = SqliteStore::open(&db).expect("reopen after SIGKILL");
        let rw = builder(store).start().await.expect("start after crash");
        for id in &printed {
            let r = rw
                .status(*id)
                .await
                .unwrap_or_else(|e| panic!("round {round}: {id} lost: {e}"));
            assert_eq!(r.id, *id);
        }
        let report = rw.recovery().clone();
        eprintln!(
            "round {round}: {} acknowledged so far, {} records, {} requeued, {} interrupted",
            printed.len(),
            report.records,
            report.requeued.len(),
            report.interrupted.len()
        );
        for id in &report.interrupted {
            let r = rw.status(*id).await.expect("status");
            assert_eq!(
                r.error.expect("error").kind,
                runwarden::ErrorKind::Interrupted
            );
        }
        // Requeued runs run again; once drained nothing is queued or running.
        rw.shutdown(support::STEP).await.expect("shutdown");
        let store = SqliteStore::open(&db).expect("reopen");
        store.integrity_check().expect("integrity check");
        let rw = builder(store).start().await.expect("start again");
        assert_eq!(
            rw.recovery().recovered(),
            0,
            "round {round}: something was still active"
        );
        assert_eq!(rw.active_count().await.expect("count"), 0);
        rw.shutdown(support::STEP).await.expect("shutdown");
    }
    assert!(printed.len() >= 20);
}
