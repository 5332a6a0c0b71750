//! A job runs in its worker's own task, so a job that never yields (blocking code in an async
//! job) holds that task: its worker can neither drop it nor report. Its run still ends: once
//! a cancel's grace period and `DROP_WAIT` have passed, or its time limit and both, the
//! supervisor records the end itself. When the job finally returns, nothing reports a second
//! terminal status, and its slot was freed at the backstop.
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use runwarden::{CancelOutcome, DROP_WAIT, ErrorKind, RunSpec, RunStatus, Runwarden};
use support::{Started, start, within};

/// Blocks its thread until `release` is set, then returns.
async fn block_until(release: Arc<AtomicBool>, started: tokio::sync::mpsc::UnboundedSender<u64>) {
    let _ = started.send(0);
    while !release.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Releases the blocked job when dropped, so a failing test does not leave a runtime thread
/// blocked (the runtime's shutdown would wait for it forever).
struct ReleaseOnDrop(Arc<AtomicBool>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Releases the blocked job, and checks that its return reported nothing: the next run
/// completes, and the registry refused no status.
async fn release_and_check(rw: &Runwarden, release: &AtomicBool) {
    release.store(true, Ordering::SeqCst);
    let next = rw
        .submit(RunSpec::new("after"), |_ctx| async { Ok(()) })
        .expect("submit");
    let r = within("the next run", rw.wait(next)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Completed);
    let stats = rw.stats().await.expect("stats");
    assert_eq!(stats.refused, 0, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_cancelled_job_that_never_yields_ends_after_grace_and_drop_wait() {
    let grace = Duration::from_millis(100);
    let rw = start(Runwarden::builder().cancel_grace(grace)).await;
    let release = Arc::new(AtomicBool::new(false));
    let _guard = ReleaseOnDrop(release.clone());
    let mut started = Started::new();
    let (tx, flag) = (started.tx.clone(), release.clone());
    let id = rw
        .submit(RunSpec::new("blocking"), move |_ctx| async move {
            block_until(flag, tx).await;
            Ok(())
        })
        .expect("submit");
    started.expect(1).await;
    let before = Instant::now();
    assert_eq!(
        rw.cancel(id).await.expect("cancel"),
        CancelOutcome::Signalled
    );
    let r = within("the backstop's end", rw.wait(id))
        .await
        .expect("wait");
    let waited = before.elapsed();
    assert_eq!(r.status, RunStatus::Cancelled);
    let e = r.error.expect("error");
    assert_eq!(e.kind, ErrorKind::CancelGraceExpired, "{e:?}");
    assert!(e.message.contains("does not yield"), "{e:?}");
    assert!(waited >= grace + DROP_WAIT, "ended after {waited:?}");
    release_and_check(&rw, &release).await;
    let r = rw.status(id).await.expect("status");
    assert_eq!(r.status, RunStatus::Cancelled);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_job_past_its_time_limit_that_never_yields_fails_timed_out() {
    let grace = Duration::from_millis(100);
    let limit = Duration::from_millis(100);
    let rw = start(Runwarden::builder().cancel_grace(grace)).await;
    let release = Arc::new(AtomicBool::new(false));
    let _guard = ReleaseOnDrop(release.clone());
    let mut started = Started::new();
    let (tx, flag) = (started.tx.clone(), release.clone());
    let before = Instant::now();
    let id = rw
        .submit(
            RunSpec::new("blocking").timeout(limit),
            move |_ctx| async move {
                block_until(flag, tx).await;
                Ok(())
            },
        )
        .expect("submit");
    started.expect(1).await;
    let r = within("the backstop's end", rw.wait(id))
        .await
        .expect("wait");
    let waited = before.elapsed();
    assert_eq!(r.status, RunStatus::Failed);
    let e = r.error.expect("error");
    assert_eq!(e.kind, ErrorKind::TimedOut, "{e:?}");
    assert!(e.message.contains("does not yield"), "{e:?}");
    assert!(
        waited >= limit + grace + DROP_WAIT,
        "ended after {waited:?}"
    );
    release_and_check(&rw, &release).await;
    let r = rw.status(id).await.expect("status");
    assert_eq!(r.status, RunStatus::Failed);
    rw.shutdown(support::STEP).await.expect("shutdown");
}
