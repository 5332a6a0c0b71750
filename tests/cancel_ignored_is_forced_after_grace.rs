//! A job that ignores the cooperative cancel is still ended when the grace period runs out:
//! its future is dropped and the run ends `Cancelled` with kind `CancelGraceExpired`, recorded
//! only once the future (and everything it owned) has been dropped.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{CancelOutcome, ErrorKind, RunSpec, RunStatus, Runwarden};
use support::{DropSignal, Started, start, within};

// With tokio's paused clock the 5 s grace period passes as soon as everything is idle.
#[tokio::test(start_paused = true)]
async fn a_job_ignoring_the_cancel_is_dropped_at_the_grace_period() {
    let grace = Duration::from_secs(5);
    let rw = start(Runwarden::builder().cancel_grace(grace)).await;
    let mut started = Started::new();
    let (dropped_tx, dropped_rx) = tokio::sync::oneshot::channel();
    let tx = started.tx.clone();
    let id = rw
        .submit(RunSpec::new("stubborn"), move |_ctx| async move {
            let _guard = DropSignal(Some(dropped_tx));
            let _ = tx.send(0);
            loop {
                // Awaits, but never looks at the cancel signal.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            #[allow(unreachable_code)]
            Ok(())
        })
        .expect("submit");
    started.expect(1).await;

    let before = tokio::time::Instant::now();
    assert_eq!(
        rw.cancel(id).await.expect("cancel"),
        CancelOutcome::Signalled
    );
    let r = within("the forced end", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Cancelled);
    let e = r.error.expect("error");
    assert_eq!(e.kind, ErrorKind::CancelGraceExpired, "{e:?}");
    // Ended exactly when the grace period ran out, by the paused clock.
    let waited = before.elapsed();
    assert!(
        waited >= grace && waited < grace + Duration::from_secs(2),
        "{waited:?}"
    );
    within("the job future to be dropped", dropped_rx)
        .await
        .expect("job future dropped");
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// A job that stops within the grace period is not forced: it ends CancelledWhileRunning.
#[tokio::test(start_paused = true)]
async fn a_job_stopping_within_the_grace_period_is_not_forced() {
    let rw = start(Runwarden::builder().cancel_grace(Duration::from_secs(30))).await;
    let mut started = Started::new();
    let tx = started.tx.clone();
    let id = rw
        .submit(RunSpec::new("tidy"), move |ctx| async move {
            let _ = tx.send(0);
            ctx.cancelled().await;
            tokio::time::sleep(Duration::from_secs(10)).await; // cleanup inside the grace period
            Ok(())
        })
        .expect("submit");
    started.expect(1).await;
    rw.cancel(id).await.expect("cancel");
    let r = within("run", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(
        r.error.expect("error").kind,
        ErrorKind::CancelledWhileRunning
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}

/// Sets its flag when dropped, slowly (as a job releasing a connection or a file might).
struct SlowRelease(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Drop for SlowRelease {
    fn drop(&mut self) {
        std::thread::sleep(Duration::from_millis(300));
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

// The record says `Cancelled` only after the job's future has been dropped: a caller told the
// run ended may rely on what the job owned being released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_is_recorded_cancelled_after_its_future_is_dropped() {
    let rw = start(Runwarden::builder().cancel_grace(Duration::from_millis(50))).await;
    let released = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut started = Started::new();
    let tx = started.tx.clone();
    let flag = released.clone();
    let id = rw
        .submit(RunSpec::new("holder"), move |_ctx| async move {
            let _held = SlowRelease(flag);
            let _ = tx.send(0);
            std::future::pending::<()>().await;
            Ok(())
        })
        .expect("submit");
    started.expect(1).await;
    rw.cancel(id).await.expect("cancel");
    let r = within("the forced end", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(r.error.expect("error").kind, ErrorKind::CancelGraceExpired);
    assert!(
        released.load(std::sync::atomic::Ordering::SeqCst),
        "the job's future was dropped before its run was recorded cancelled"
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}
