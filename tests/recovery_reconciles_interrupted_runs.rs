//! At start-up, runs a previous process left queued or running are reconciled at once. A
//! queued run of a registered kind is queued again as it is (it never started), whatever its
//! kind's `OnInterrupt`; a running one is re-run, its interrupted attempt recorded, when its
//! kind says `Rerun` and it has not been rescued `max_rescues` times; every other run ends
//! `Failed` with kind `Interrupted`. They are re-queued in their original order (priority,
//! then creation) and never hold a place against a limit. A terminal status a waiter was told
//! of is already committed.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{
    BoxedJob, ErrorKind, OnInterrupt, RunRecord, RunSpec, RunStatus, RunStore, Runwarden,
    SqliteStore, StoreWrite, Transition,
};
use support::{TempDir, start, within};

fn record(kind: Option<&str>, running: bool) -> RunRecord {
    record_with(kind, running, 0)
}

fn record_with(kind: Option<&str>, running: bool, priority: i32) -> RunRecord {
    let mut spec = RunSpec::new("left-behind").param("n", 1).priority(priority);
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

/// A record a crash left running after `crashes` earlier crashes, each rescued.
fn crashed(kind: &str, crashes: u32) -> RunRecord {
    let mut r = record(Some(kind), true);
    for _ in 0..crashes {
        let at = runwarden::Timestamp::now();
        r.apply(Transition::Recovered { at }).expect("recovered");
        r.apply(Transition::Started { at }).expect("started again");
    }
    r
}

/// Writes what a crashed process leaves behind (active records, nobody running them) and
/// starts runwarden on it.
async fn after_crash(
    db: &std::path::Path,
    left: &[&RunRecord],
    builder: runwarden::RunwardenBuilder,
) -> Runwarden {
    {
        let mut store = SqliteStore::open(db).expect("open");
        let writes: Vec<StoreWrite> = left
            .iter()
            .map(|r| StoreWrite::Put(Box::new((*r).clone())))
            .collect();
        store.write(&writes).expect("write");
    }
    let store = SqliteStore::open(db).expect("reopen");
    start(builder.store(store)).await
}

fn order_kind(
    order: std::sync::Arc<parking_lot::Mutex<Vec<i64>>>,
) -> impl Fn(&runwarden::JsonObject) -> Result<BoxedJob, String> + Send + Sync + 'static {
    move |params| {
        let tag = match params.get("tag") {
            Some(runwarden::Json::Int(n)) => *n,
            _ => -1,
        };
        let order = order.clone();
        Ok(BoxedJob::repeatable(move |_| {
            order.lock().push(tag);
            async { Ok(()) }
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_left_active_are_requeued_or_failed_at_start() {
    let dir = TempDir::new("recover");
    let db = dir.0.join("runs.db");
    let rerun_running = record(Some("resize"), true);
    let rerun_queued = record(Some("resize"), false);
    let fragile = record(Some("charge"), true);
    let fragile_queued = record(Some("charge"), false);
    let unknown_kind = record(Some("gone"), true);
    let closure = record(None, false);
    {
        // What a crashed process leaves behind: active records, nobody running them.
        let mut store = SqliteStore::open(&db).expect("open");
        let writes: Vec<StoreWrite> = [
            &rerun_running,
            &rerun_queued,
            &fragile,
            &fragile_queued,
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
    let mut want = vec![rerun_running.id, rerun_queued.id, fragile_queued.id];
    want.sort();
    assert_eq!(requeued, want);
    assert_eq!(report.interrupted.len(), 3);
    assert_eq!(report.records, 6);

    for id in [fragile.id, unknown_kind.id, closure.id] {
        let r = rw.status(id).await.expect("status");
        assert_eq!(r.status, RunStatus::Failed);
        assert_eq!(r.error.expect("error").kind, ErrorKind::Interrupted);
    }
    // The requeued runs run again (one at a time under the limit of 1: the interrupted ones
    // hold no place) and complete. The interrupted attempt stays on the record; a run that
    // was queued never started, so its first attempt is the one that ran.
    let r = within("a requeued run", rw.wait(rerun_running.id))
        .await
        .expect("wait");
    assert_eq!((r.status, r.attempt), (RunStatus::Completed, 2));
    assert_eq!(r.attempt_errors[0].kind, ErrorKind::Interrupted);
    for id in [rerun_queued.id, fragile_queued.id] {
        let r = within("a requeued run", rw.wait(id)).await.expect("wait");
        assert_eq!((r.status, r.attempt), (RunStatus::Completed, 1));
        assert!(r.attempt_errors.is_empty());
    }
    assert_eq!(rw.active_count().await.expect("count"), 0);
    rw.shutdown(support::STEP).await.expect("shutdown");

    // What waiters were told is what the store holds.
    let mut store = SqliteStore::open(&db).expect("reopen");
    let stored = store.get(rerun_queued.id).expect("read").expect("present");
    assert_eq!(stored.status, RunStatus::Completed);
    store.integrity_check().expect("integrity");
}

// A run whose job keeps killing its process is rescued `max_rescues` times, then ends `Failed`
// with every attempt's error kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_keeps_crashing_its_process_ends_failed_at_the_rescue_cap() {
    let dir = TempDir::new("rescue-cap");
    let db = dir.0.join("runs.db");
    let once = crashed("resize", 0);
    let spent = crashed("resize", 2);
    let builder =
        Runwarden::builder()
            .max_rescues(2)
            .job_kind("resize", OnInterrupt::Rerun, |_| {
                Ok(BoxedJob::repeatable(|_| async { Ok(()) }))
            });
    let rw = after_crash(&db, &[&once, &spent], builder).await;
    assert_eq!(rw.recovery().requeued, vec![once.id]);
    assert_eq!(rw.recovery().interrupted, vec![spent.id]);
    let r = within("the spent run", rw.wait(spent.id))
        .await
        .expect("wait");
    assert_eq!(r.status, RunStatus::Failed);
    let error = r.error.expect("error");
    assert_eq!(error.kind, ErrorKind::Interrupted);
    assert!(
        error.message.contains("interrupted 3 times"),
        "{}",
        error.message
    );
    let kinds: Vec<_> = r.attempt_errors.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [ErrorKind::Interrupted, ErrorKind::Interrupted]);
    let r = within("the rescued run", rw.wait(once.id))
        .await
        .expect("wait");
    assert_eq!((r.status, r.attempt), (RunStatus::Completed, 2));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Re-queued runs keep their original order: higher priority first, then creation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovered_runs_start_in_priority_then_creation_order() {
    let dir = TempDir::new("recover-order");
    let db = dir.0.join("runs.db");
    let mut left = Vec::new();
    for (tag, priority) in [(0i64, 0), (1, 5), (2, 0), (3, 5), (4, -1)] {
        let mut r = record_with(Some("tagged"), tag % 2 == 1, priority);
        r.params.insert("tag".into(), runwarden::Json::from(tag));
        left.push(r);
        // Ids are time-ordered: keep creation order unambiguous.
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let order = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let builder = Runwarden::builder().max_concurrent(1).job_kind(
        "tagged",
        OnInterrupt::Rerun,
        order_kind(order.clone()),
    );
    let refs: Vec<&RunRecord> = left.iter().collect();
    let rw = after_crash(&db, &refs, builder).await;
    for r in &left {
        within("a recovered run", rw.wait(r.id))
            .await
            .expect("wait");
    }
    assert_eq!(*order.lock(), vec![1, 3, 0, 2, 4]);
    rw.shutdown(support::STEP).await.expect("shutdown");
}
