//! At start-up, runs a previous process left queued or running are reconciled at once: queued
//! again when their job kind is registered to rerun, otherwise ended `Failed` with kind
//! `Interrupted`; they never hold a place against a limit (defect 7 of the original). A
//! terminal status a waiter was told of is already committed.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{
    BoxedJob, ErrorKind, OnInterrupt, RunRecord, RunSpec, RunStatus, RunStore, Runwarden,
    SqliteStore, StoreWrite, Transition,
};
use support::{TempDir, start, within};

fn record(kind: Option<&str>, running: bool) -> RunRecord {
    let mut spec = RunSpec::new("left-behind").param("n", 1);
    spec.kind = kind.map(str::to_owned);
    let mut r = RunRecord::queued(runwarden::RunId::new(), spec);
    if running {
        r.apply(Transition::Started {
            at: runwarden::Timestamp::now(),
        })
        .expect("start");
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_left_active_are_requeued_or_failed_at_start() {
    let dir = TempDir::new("recover");
    let db = dir.0.join("runs.db");
    let rerun_running = record(Some("resize"), true);
    let rerun_queued = record(Some("resize"), false);
    let fragile = record(Some("charge"), true);
    let unknown_kind = record(Some("gone"), true);
    let closure = record(None, false);
    {
        // What a crashed process leaves behind: active records, nobody running them.
        let mut store = SqliteStore::open(&db).expect("open");
        let writes: Vec<StoreWrite> = [
            &rerun_running,
            &rerun_queued,
            &fragile,
            &unknown_kind,
            &closure,
        ]
        .into_iter()
        .map(|r| StoreWrite::Put(Box::new(r.clone())))
        .collect();
        store.write(&writes).expect("write");
    }
    let store = SqliteStore::open(&db).expect("reopen");
    let rw = start(
        Runwarden::builder()
            .max_concurrent(1)
            .store(store)
            .job_kind("resize", OnInterrupt::Rerun, |params| {
                let n = params.get("n").cloned();
                Ok(BoxedJob::repeatable(move |_| {
                    let n = n.clone();
                    async move {
                        if n.is_some() {
                            Ok(())
                        } else {
                            Err(runwarden::JobError::msg("no n"))
                        }
                    }
                }))
            })
            .job_kind("charge", OnInterrupt::Fail, |_| {
                Ok(BoxedJob::repeatable(|_| async { Ok(()) }))
            }),
    )
    .await;
    let report = rw.recovery().clone();
    let mut requeued = report.requeued.clone();
    requeued.sort();
    let mut want = vec![rerun_running.id, rerun_queued.id];
    want.sort();
    assert_eq!(requeued, want);
    assert_eq!(report.interrupted.len(), 3);
    assert_eq!(report.records, 5);

    for id in [fragile.id, unknown_kind.id, closure.id] {
        let r = rw.status(id).await.expect("status");
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(r.error.expect("error").kind, ErrorKind::Interrupted);
    }
    // The requeued runs run again (one at a time under the limit of 1: the interrupted ones
    // hold no place) and complete, keeping the interrupted attempt on the record.
    for id in [rerun_running.id, rerun_queued.id] {
        let r = within("a requeued run", rw.wait(id)).await.expect("wait");
        assert_eq!((r.status, r.attempt), (RunStatus::Completed, 2));
        assert_eq!(r.attempt_errors[0].kind, ErrorKind::Interrupted);
    }
    assert_eq!(rw.active_count().await.expect("count"), 0);
    rw.shutdown(support::STEP).await.expect("shutdown");

    // What waiters were told is what the store holds.
    let mut store = SqliteStore::open(&db).expect("reopen");
    let stored = store.get(rerun_queued.id).expect("read").expect("present");
    assert_eq!(stored.status, RunStatus::Completed);
    store.integrity_check().expect("integrity");
}
