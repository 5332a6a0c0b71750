//! A job can end its attempt with "run me again in D" (`JobError::snooze`): the run is `Queued`
//! with the time it may start again on its record, starts again after exactly D (tokio's
//! paused clock), keeps its attempt number and retry budget, counts the snooze, and can be
//! cancelled while it waits. A run-once job cannot run again, so its snooze fails it, saying
//! why. A run recovered from a store while snoozed waits out the rest of its snooze.
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use runwarden::{
    BoxedJob, CancelOutcome, JobError, OnInterrupt, RetryPolicy, RunRecord, RunSpec, RunStatus,
    RunStore, Runwarden, SqliteStore, StoreWrite, Timestamp, Transition,
};
use runwarden::{EventFilter, RunEvent, RunId};
use runwarden::{EventItem, EventStream};
use support::{TempDir, start, within};
use tokio::time::Instant;

/// Waits for `id` to go back to `Queued` after it ran: its snooze is recorded.
async fn snooze_recorded(events: &mut EventStream, id: RunId) {
    let mut ran = false;
    within("the snooze to be recorded", async {
        while let Some(item) = events.next().await {
            if let EventItem::Event(RunEvent::Status { run_id, status, .. }) = item
                && run_id == id
            {
                match status {
                    RunStatus::Running => ran = true,
                    RunStatus::Queued if ran => return,
                    _ => {}
                }
            }
        }
        panic!("the event stream ended");
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_snoozed_run_starts_again_after_exactly_its_delay_with_the_same_attempt() {
    let rw = start(Runwarden::builder()).await;
    let starts = Arc::new(Mutex::new(Vec::new()));
    let s = starts.clone();
    let (snoozed_tx, snoozed_rx) = tokio::sync::oneshot::channel();
    let snoozed_tx = Arc::new(Mutex::new(Some(snoozed_tx)));
    let job = BoxedJob::repeatable(move |ctx| {
        s.lock()
            .push((Instant::now(), ctx.attempt(), ctx.snoozes()));
        let tx = snoozed_tx.clone();
        async move {
            if ctx.snoozes() == 0 {
                if let Some(tx) = tx.lock().take() {
                    let _ = tx.send(());
                }
                return Err(JobError::snooze(Duration::from_secs(30)));
            }
            Ok(())
        }
    });
    let wall_before = Timestamp::now();
    let id = rw
        .submit_job(RunSpec::new("upstream-busy"), job)
        .expect("submit");
    within("the first attempt", snoozed_rx)
        .await
        .expect("it snoozed");
    // The worker's report reaches the registry before the paused clock moves on.
    tokio::time::sleep(Duration::from_millis(1)).await;
    let waiting = rw.status(id).await.expect("status");
    let wall_after = Timestamp::now();
    assert_eq!(waiting.status, RunStatus::Queued);
    assert_eq!((waiting.attempt, waiting.snoozes), (1, 1));
    assert!(
        waiting.attempt_errors.is_empty(),
        "a snooze is not an error"
    );
    let eligible = waiting
        .next_attempt_at
        .expect("the time it may start again");
    let secs = |t: Timestamp| t.unix_micros() as f64 / 1e6;
    assert!(
        secs(eligible) >= secs(wall_before) + 30.0 && secs(eligible) <= secs(wall_after) + 30.0,
        "next_attempt_at is 30 s after the snooze"
    );
    let done = rw.wait(id).await.expect("wait");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!((done.attempt, done.max_attempts, done.snoozes), (1, 1, 1));
    assert!(done.next_attempt_at.is_none());
    let starts = starts.lock().clone();
    assert_eq!(starts.len(), 2);
    assert_eq!(
        starts[1].0 - starts[0].0,
        Duration::from_secs(30),
        "it started again after exactly its delay"
    );
    assert_eq!((starts[0].1, starts[0].2), (1, 0));
    assert_eq!((starts[1].1, starts[1].2), (1, 1));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn snoozes_do_not_use_the_retry_budget() {
    let rw = start(Runwarden::builder()).await;
    // Three snoozes, then a failure that the two-attempt policy retries, then success.
    let job = BoxedJob::repeatable(|ctx| async move {
        match (ctx.attempt(), ctx.snoozes()) {
            (1, n) if n < 3 => Err(JobError::snooze(Duration::from_secs(5))),
            (1, _) => Err(JobError::msg("upstream broke")),
            _ => Ok(()),
        }
    });
    let spec = RunSpec::new("flaky")
        .retry(RetryPolicy::attempts(2).backoff(Duration::from_secs(1), Duration::from_secs(1)));
    let id = rw.submit_job(spec, job).expect("submit");
    let done = within("the run", rw.wait(id)).await.expect("wait");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!((done.attempt, done.max_attempts, done.snoozes), (2, 2, 3));
    assert_eq!(
        done.attempt_errors.len(),
        1,
        "only the failure is an attempt's error"
    );
    assert_eq!(done.attempt_errors[0].message, "upstream broke");
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_snoozed_run_cancelled_while_it_waits_never_runs_again() {
    let rw = start(Runwarden::builder()).await;
    let calls = Arc::new(Mutex::new(0u32));
    let c = calls.clone();
    let job = BoxedJob::repeatable(move |_ctx| {
        *c.lock() += 1;
        async { Err::<(), _>(JobError::snooze(Duration::from_secs(3600))) }
    });
    let mut events = rw.events(EventFilter::All).await.expect("events");
    let id = rw.submit_job(RunSpec::new("sleepy"), job).expect("submit");
    snooze_recorded(&mut events, id).await;
    assert_eq!(rw.status(id).await.expect("status").snoozes, 1);
    assert_eq!(
        rw.cancel(id).await.expect("cancel"),
        CancelOutcome::CancelledWhileQueued
    );
    let r = rw.wait(id).await.expect("wait");
    assert_eq!(r.status, RunStatus::Cancelled);
    tokio::time::sleep(Duration::from_secs(7200)).await;
    assert_eq!(*calls.lock(), 1, "the job was not called again");
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_run_once_job_that_snoozes_fails_saying_why() {
    let rw = start(Runwarden::builder()).await;
    let id = rw
        .submit(RunSpec::new("once"), |_ctx| async {
            Err::<(), _>(JobError::snooze(Duration::from_secs(1)))
        })
        .expect("submit");
    let r = within("the run", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Failed);
    let message = r.error.expect("error").message;
    assert!(message.contains("run-once"), "{message}");
    assert_eq!(r.snoozes, 0);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_recovered_while_snoozed_waits_out_its_snooze() {
    let dir = TempDir::new("snooze-recover");
    let db = dir.0.join("runs.db");
    let mut spec = RunSpec::new("left-snoozing");
    spec.kind = Some("ping".to_owned());
    let mut left = RunRecord::queued(runwarden::RunId::new(), spec);
    let now = Timestamp::now();
    let until = Timestamp::from_unix_micros(now.unix_micros() + 1_500_000);
    left.apply(Transition::Started { at: now }).expect("start");
    left.apply(Transition::Snoozed { at: now, until })
        .expect("snooze");
    {
        // What a crashed process leaves behind: a run waiting out its snooze.
        let mut store = SqliteStore::open(&db).expect("open");
        store
            .write(&[StoreWrite::Put(Box::new(left.clone()))])
            .expect("write");
    }
    let started_at = Arc::new(Mutex::new(None));
    let s = started_at.clone();
    let rw = start(
        Runwarden::builder()
            .store(SqliteStore::open(&db).expect("reopen"))
            .job_kind("ping", OnInterrupt::Rerun, move |_| {
                let s = s.clone();
                Ok(BoxedJob::repeatable(move |ctx| {
                    *s.lock() = Some((Timestamp::now(), ctx.snoozes()));
                    async { Ok(()) }
                }))
            }),
    )
    .await;
    assert_eq!(rw.recovery().requeued, vec![left.id]);
    let r = within("the recovered run", rw.wait(left.id))
        .await
        .expect("wait");
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!((r.attempt, r.snoozes), (1, 1));
    let (at, snoozes) = started_at.lock().expect("the job ran");
    assert_eq!(snoozes, 1, "the job sees its snooze count");
    assert!(
        at.unix_micros() >= until.unix_micros(),
        "started {} µs before its snooze ended",
        until.unix_micros() - at.unix_micros()
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}
