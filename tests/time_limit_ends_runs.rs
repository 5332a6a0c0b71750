//! A run's time limit ends it `Failed` with kind `TimedOut`: a cooperative job stops on the
//! signal, a job that ignores it is dropped after the grace period, and a job stuck in
//! blocking code that never awaits still gets its terminal status on time.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{ErrorKind, QueueConfig, RunSpec, RunStatus, Runwarden};
use support::{Started, start, within};

#[tokio::test(start_paused = true)]
async fn cooperative_and_stubborn_jobs_both_end_timed_out() {
    let rw = start(Runwarden::builder().cancel_grace(Duration::from_secs(2))).await;
    let limit = Duration::from_secs(3);
    let before = tokio::time::Instant::now();
    let cooperative = rw
        .submit(RunSpec::new("coop").timeout(limit), |ctx| async move {
            ctx.cancelled().await;
            Err::<(), _>(runwarden::JobError::msg("stopped"))
        })
        .expect("submit");
    let stubborn = rw
        .submit(RunSpec::new("stubborn").timeout(limit), |_| async move {
            std::future::pending::<()>().await;
            Ok(())
        })
        .expect("submit");
    let in_time = rw
        .submit(RunSpec::new("quick").timeout(limit), |_| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        })
        .expect("submit");

    let r = within("cooperative", rw.wait(cooperative))
        .await
        .expect("wait");
    assert_eq!(r.status, RunStatus::Failed);
    let e = r.error.expect("error");
    assert_eq!(e.kind, ErrorKind::TimedOut);
    assert!(e.message.contains("timed out after 3s"), "{}", e.message);
    assert_eq!(
        before.elapsed(),
        limit,
        "ended when the limit passed (paused clock)"
    );

    let r = within("stubborn", rw.wait(stubborn)).await.expect("wait");
    assert_eq!(
        (r.status, r.error.expect("error").kind),
        (RunStatus::Failed, ErrorKind::TimedOut)
    );
    assert_eq!(
        before.elapsed(),
        limit + Duration::from_secs(2),
        "limit plus grace"
    );

    assert_eq!(
        within("quick", rw.wait(in_time))
            .await
            .expect("wait")
            .status,
        RunStatus::Completed
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// A job that blocks its thread and never awaits cannot be stopped, but its run still ends
// `TimedOut` at limit + grace + `DROP_WAIT`, while the job is still blocked.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_job_that_never_awaits_still_ends_on_time() {
    let rw = start(Runwarden::builder().cancel_grace(Duration::from_millis(50))).await;
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let mut started = Started::new();
    let tx = started.tx.clone();
    let id = rw
        .submit(
            RunSpec::new("blocking").timeout(Duration::from_millis(50)),
            move |_| async move {
                let _ = tx.send(0);
                // Blocks this runtime thread until the test releases it: no `.await` at all.
                let _ = release_rx.recv();
                Ok(())
            },
        )
        .expect("submit");
    started.expect(1).await;
    let r = within("the blocked run to be ended", rw.wait(id))
        .await
        .expect("wait");
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.error.expect("error").kind, ErrorKind::TimedOut);
    // Only now is the job let go; it was blocked the whole time the run was being ended.
    release_tx
        .send(())
        .expect("job still blocked, waiting for release");
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// A queue's default time limit applies to runs that set none.
#[tokio::test(start_paused = true)]
async fn a_queue_default_time_limit_applies() {
    let rw = start(
        Runwarden::builder()
            .cancel_grace(Duration::from_secs(1))
            .queue(
                "slow",
                QueueConfig::default().timeout(Duration::from_secs(5)),
            ),
    )
    .await;
    let id = rw
        .submit(RunSpec::new("x").queue("slow"), |_| async {
            std::future::pending::<()>().await;
            Ok(())
        })
        .expect("submit");
    let r = within("run", rw.wait(id)).await.expect("wait");
    assert_eq!(r.error.expect("error").kind, ErrorKind::TimedOut);
    rw.shutdown(support::STEP).await.expect("shutdown");
}
