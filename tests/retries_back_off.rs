//! Failed attempts are retried by policy with exponential backoff; the run waits visibly
//! (`Queued` with its attempt and `next_attempt_at`), keeps every attempt's error, and a
//! cancel during the wait ends it.
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use runwarden::{CancelOutcome, ErrorKind, RetryOn, RetryPolicy, RunSpec, RunStatus, Runwarden};
use support::{Started, start, within};

fn policy(attempts: u32) -> RetryPolicy {
    RetryPolicy::attempts(attempts)
        .backoff(Duration::from_millis(100), Duration::from_secs(10))
        .jitter(0.0)
}

// With the paused clock, attempt 2 starts exactly 100 ms after attempt 1 failed and attempt 3
// exactly 200 ms after attempt 2 failed.
#[tokio::test(start_paused = true)]
async fn a_flaky_job_is_retried_with_exponential_backoff_then_completes() {
    let rw = start(Runwarden::builder()).await;
    let starts = Arc::new(Mutex::new(Vec::new()));
    let s = starts.clone();
    let id = rw
        .submit_job(
            RunSpec::new("flaky").retry(policy(5)),
            runwarden::BoxedJob::repeatable(move |ctx| {
                let s = s.clone();
                async move {
                    s.lock().push((ctx.attempt(), tokio::time::Instant::now()));
                    if ctx.attempt() < 3 {
                        Err(runwarden::JobError::msg(format!(
                            "attempt {} failed",
                            ctx.attempt()
                        )))
                    } else {
                        Ok(())
                    }
                }
            }),
        )
        .expect("submit");
    let r = within("run", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Completed);
    assert_eq!((r.attempt, r.max_attempts), (3, 5));
    let errors: Vec<_> = r
        .attempt_errors
        .iter()
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(errors, vec!["attempt 1 failed", "attempt 2 failed"]);
    assert!(r.next_attempt_at.is_none());
    let starts = starts.lock().clone();
    assert_eq!(
        starts.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(starts[1].1 - starts[0].1, Duration::from_millis(100));
    assert_eq!(starts[2].1 - starts[1].1, Duration::from_millis(200));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn attempts_run_out_and_the_run_fails_with_every_error_kept() {
    let rw = start(Runwarden::builder()).await;
    let id = rw
        .submit_job(
            RunSpec::new("hopeless").retry(policy(3)),
            runwarden::BoxedJob::repeatable(|ctx| async move {
                Err::<(), _>(runwarden::JobError::msg(format!(
                    "no luck {}",
                    ctx.attempt()
                )))
            }),
        )
        .expect("submit");
    let r = within("run", rw.wait(id)).await.expect("wait");
    assert_eq!((r.status, r.attempt), (RunStatus::Failed, 3));
    assert_eq!(r.error.expect("error").message, "no luck 3");
    assert_eq!(r.attempt_errors.len(), 2);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// By default panics are not retried (they are usually bugs); timeouts are.
#[tokio::test(start_paused = true)]
async fn retry_on_chooses_which_failures_retry() {
    let rw = start(Runwarden::builder().cancel_grace(Duration::from_millis(10))).await;
    let panics = rw
        .submit_job(
            RunSpec::new("panics").retry(policy(3)),
            runwarden::BoxedJob::repeatable(|_| async {
                if true {
                    panic!("bug");
                }
                Ok(())
            }),
        )
        .expect("submit");
    let r = within("panics", rw.wait(panics)).await.expect("wait");
    assert_eq!((r.status, r.attempt), (RunStatus::Failed, 1));
    assert_eq!(r.error.expect("error").kind, ErrorKind::Panicked);

    let tries = Arc::new(AtomicU32::new(0));
    let t = tries.clone();
    let slow_once = rw
        .submit_job(
            RunSpec::new("slow-once")
                .timeout(Duration::from_secs(1))
                .retry(policy(2)),
            runwarden::BoxedJob::repeatable(move |ctx| {
                t.fetch_add(1, Ordering::SeqCst);
                async move {
                    if ctx.attempt() == 1 {
                        std::future::pending::<()>().await;
                    }
                    Ok(())
                }
            }),
        )
        .expect("submit");
    let r = within("slow-once", rw.wait(slow_once)).await.expect("wait");
    assert_eq!((r.status, r.attempt), (RunStatus::Completed, 2));
    assert_eq!(r.attempt_errors[0].kind, ErrorKind::TimedOut);
    assert_eq!(tries.load(Ordering::SeqCst), 2);

    let no_errors = RetryOn {
        errors: false,
        panics: true,
        timeouts: true,
    };
    let not_retried = rw
        .submit_job(
            RunSpec::new("err").retry(policy(3).retry_on(no_errors)),
            runwarden::BoxedJob::repeatable(|_| async {
                Err::<(), _>(runwarden::JobError::msg("plain error"))
            }),
        )
        .expect("submit");
    let r = within("err", rw.wait(not_retried)).await.expect("wait");
    assert_eq!((r.status, r.attempt), (RunStatus::Failed, 1));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// While it waits for its next attempt the run is Queued with the attempt number and due time,
// holds no worker, and a cancel ends it without another attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_during_the_backoff_ends_the_run() {
    let rw = start(Runwarden::builder()).await;
    let mut started = Started::new();
    let tx = started.tx.clone();
    let slow_backoff = RetryPolicy::attempts(5)
        .backoff(Duration::from_secs(3600), Duration::from_secs(3600))
        .jitter(0.0);
    let id = rw
        .submit_job(
            RunSpec::new("waits").retry(slow_backoff),
            runwarden::BoxedJob::repeatable(move |ctx| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(u64::from(ctx.attempt()));
                    Err::<(), _>(runwarden::JobError::msg("fails"))
                }
            }),
        )
        .expect("submit");
    assert_eq!(started.expect(1).await, vec![1]);
    let waiting = within("the retry wait to begin", async {
        loop {
            let status = rw.supervisor_status().await.expect("status");
            if status.retry_waiting == 1 {
                return status;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(waiting.running, 0, "no worker is held during the backoff");
    let r = rw.status(id).await.expect("status");
    assert_eq!((r.status, r.attempt), (RunStatus::Queued, 2));
    assert!(r.next_attempt_at.is_some());
    assert_eq!(r.attempt_errors.len(), 1);

    assert_eq!(
        rw.cancel(id).await.expect("cancel"),
        CancelOutcome::CancelledWhileQueued
    );
    let r = rw.status(id).await.expect("status");
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(
        r.error.expect("error").kind,
        ErrorKind::CancelledWhileQueued
    );
    let report = rw.shutdown(support::STEP).await.expect("shutdown");
    assert!(!report.deadline_hit);
    assert!(started.rx_try().is_err(), "no second attempt ran");
}
