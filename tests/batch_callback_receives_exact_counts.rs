//! A batch's callback runs once every member has ended and reads the exact counts per status
//! (or, asked to run only when all completed, is cancelled unstarted when one did not); the
//! batch's progress is its workflow's counts. With a durable store the batch is answered from
//! the store for members outside the registry's memory window, and lists of a kind, a workflow
//! or a time range agree between memory and store.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{
    Batch, CallbackWhen, CancelReason, JobError, Json, ListQuery, Retention, RunSpec, RunStatus,
    Runwarden, SqliteStore, Timestamp, WorkflowState,
};
use support::{TempDir, within};

fn members(batch: Batch, ok: usize, failing: usize) -> Batch {
    let mut batch = batch;
    for _ in 0..ok {
        batch = batch.run(RunSpec::new("member"), |_ctx| async { Ok(()) });
    }
    for _ in 0..failing {
        batch = batch.run(RunSpec::new("member"), |_ctx| async {
            Err::<(), _>(JobError::msg("bad row"))
        });
    }
    batch
}

fn counting_callback(batch: Batch, when: CallbackWhen) -> Batch {
    batch.callback(
        RunSpec::new("callback"),
        |ctx: runwarden::RunContext| async move {
            let c = ctx.dependency_counts();
            Ok(Json::from(format!(
                "completed={} failed={} cancelled={} total={}",
                c.completed,
                c.failed,
                c.cancelled,
                c.total()
            )))
        },
        when,
    )
}

/// Submits `batch` and waits for its callback's record (and returns the batch's runs).
async fn callback_end(
    rw: &Runwarden,
    batch: Batch,
) -> (runwarden::WorkflowRuns, runwarden::RunRecord) {
    let runs = within("submit", rw.submit_batch(batch))
        .await
        .expect("accepted");
    let callback = runs.run(Batch::CALLBACK).expect("a callback step");
    let done = within("the callback", rw.wait(callback))
        .await
        .expect("wait");
    (runs, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callback_reads_exact_counts_once_every_member_ended() {
    let rw = support::start(Runwarden::builder().max_concurrent(3)).await;
    let batch = counting_callback(members(Batch::new(), 17, 5), CallbackWhen::AllEnded);
    let (runs, done) = callback_end(&rw, batch).await;
    assert_eq!(runs.steps.len(), 23);
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(
        done.result,
        Some(Json::from("completed=17 failed=5 cancelled=0 total=22"))
    );
    // It started after the last member ended.
    let view = rw.workflow(runs.id).await.expect("query").expect("known");
    let last_member_end = view
        .steps
        .iter()
        .filter(|(name, _)| name.as_str() != Batch::CALLBACK)
        .map(|(_, r)| r.finished_at.expect("ended"))
        .max()
        .expect("members");
    assert!(done.started_at.expect("started") >= last_member_end);
    assert_eq!(
        (view.counts.completed, view.counts.failed),
        (18, 5),
        "the callback counts too"
    );
    assert_eq!(view.state, WorkflowState::Failed);

    // Only when all completed: one failure cancels the callback, unstarted.
    let strict = counting_callback(members(Batch::new(), 3, 1), CallbackWhen::AllCompleted);
    let (_, done) = callback_end(&rw, strict).await;
    assert_eq!(done.status, RunStatus::Cancelled);
    assert_eq!(done.cancelled_by, Some(CancelReason::Dependency));
    assert!(done.started_at.is_none());
    let all_good = counting_callback(members(Batch::new(), 4, 0), CallbackWhen::AllCompleted);
    let (_, done) = callback_end(&rw, all_good).await;
    assert_eq!(
        done.result,
        Some(Json::from("completed=4 failed=0 cancelled=0 total=4"))
    );
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_batch_is_answered_from_the_store_and_filters_agree() {
    let dir = TempDir::new("batch-store");
    let store = SqliteStore::open(dir.0.join("runs.db")).expect("open");
    let retention = Retention {
        memory_window: 5,
        ..Retention::default()
    };
    let kinds =
        |_: &runwarden::JsonObject| Ok(runwarden::BoxedJob::repeatable(|_ctx| async { Ok(()) }));
    let rw = support::start(
        Runwarden::builder()
            .store(store)
            .retention(retention)
            .job_kind("row", runwarden::OnInterrupt::Rerun, kinds),
    )
    .await;
    let before = Timestamp::now();
    let mut batch = Batch::new();
    for _ in 0..12 {
        batch = batch.run_kind("row", RunSpec::new("row"));
    }
    let batch = counting_callback(batch, CallbackWhen::AllEnded);
    let (runs, done) = callback_end(&rw, batch).await;
    assert_eq!(
        done.result,
        Some(Json::from("completed=12 failed=0 cancelled=0 total=12"))
    );
    let after = Timestamp::now();
    // Other runs around it, so each filter has something to leave out.
    for _ in 0..3 {
        let id = rw
            .submit(RunSpec::new("row"), |_ctx| async { Ok(()) })
            .expect("submit");
        rw.wait(id).await.expect("wait");
    }
    // Most members are outside the memory window now: the store answers for them.
    let view = rw.workflow(runs.id).await.expect("query").expect("known");
    assert_eq!(view.steps.len(), 13);
    assert_eq!(view.counts.completed, 13);
    let by_kind = rw
        .list(ListQuery::new().kind("row").limit(100))
        .await
        .expect("list");
    assert_eq!(by_kind.total, 12, "only the runs submitted by kind");
    let in_range = rw
        .list(
            ListQuery::new()
                .created(Some(before), Some(after))
                .limit(100),
        )
        .await
        .expect("list");
    assert_eq!(in_range.total, 13);
    assert!(in_range.runs.iter().all(|r| r.workflow == Some(runs.id)));
    let later = rw
        .list(ListQuery::new().created(Some(after), None).limit(100))
        .await
        .expect("list");
    assert_eq!(later.total, 3);
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}
