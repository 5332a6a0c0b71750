//! Drain waits for every accepted run, then at its deadline cancels what is left and
//! reports exactly what happened (defect 6 of the original: no deadline, runs missed).
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{DrainState, Error, ErrorKind, RunSpec, RunStatus, Runwarden, SubmitError};
use support::{Gate, Started, start, within};

// Runs that finish in time count as completed/failed; runs that do not are cancelled by the
// deadline (queued ones and running ones alike) and listed in the report.
#[tokio::test(start_paused = true)]
async fn drain_lets_runs_finish_then_cancels_the_rest_at_the_deadline() {
    let rw = start(
        Runwarden::builder()
            .max_concurrent(2)
            .cancel_grace(Duration::from_secs(1)),
    )
    .await;
    let mut started = Started::new();
    let submit_sleeper = |label: &str, secs: u64, fail: bool| {
        let tx = started.tx.clone();
        rw.submit(RunSpec::new(label), move |_| async move {
            let _ = tx.send(secs);
            tokio::time::sleep(Duration::from_secs(secs)).await;
            if fail {
                Err(runwarden::JobError::msg("failed in time"))
            } else {
                Ok(())
            }
        })
        .expect("submit")
    };
    let quick_ok = submit_sleeper("quick", 1, false);
    let quick_fail = submit_sleeper("quick", 2, true);
    let slow = submit_sleeper("slow", 3600, false);
    // Queued behind the limit of 2: `slow` and `slow_2` start when the quick ones end and
    // are too slow; the last is still queued at the deadline.
    let slow_2 = submit_sleeper("slow", 3600, false);
    let queued_never_runs = submit_sleeper("slow", 3600, false);
    started.expect(2).await;

    let report = within("drain", rw.drain(Duration::from_secs(10)))
        .await
        .expect("drain");
    assert!(report.deadline_hit);
    assert_eq!(
        (report.completed, report.failed, report.cancelled),
        (1, 1, 3)
    );
    let mut cancelled = report.cancelled_by_drain.clone();
    cancelled.sort();
    let mut want = vec![slow, slow_2, queued_never_runs];
    want.sort();
    assert_eq!(cancelled, want);

    assert_eq!(
        rw.status(quick_ok).await.expect("s").status,
        RunStatus::Completed
    );
    assert_eq!(
        rw.status(quick_fail).await.expect("s").status,
        RunStatus::Failed
    );
    for id in [slow, slow_2] {
        let r = rw.status(id).await.expect("status");
        assert_eq!(r.status, RunStatus::Cancelled);
        assert_eq!(r.cancelled_by, Some(runwarden::CancelReason::DrainDeadline));
        let e = r.error.expect("error");
        assert_eq!(e.kind, ErrorKind::CancelGraceExpired);
    }
    let q = rw.status(queued_never_runs).await.expect("status");
    assert_eq!(q.cancelled_by, Some(runwarden::CancelReason::DrainDeadline));
    assert_eq!(
        q.error.expect("error").kind,
        ErrorKind::CancelledWhileQueued
    );
    assert!(q.started_at.is_none());
    assert_eq!(rw.active_count().await.expect("count"), 0);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// When every run ends before the deadline, the drain returns as soon as the last one does,
// without cancelling anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_returns_when_the_last_run_ends_before_the_deadline() {
    let rw = start(Runwarden::builder()).await;
    let gate = Gate::new();
    let mut started = Started::new();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(
            rw.submit(RunSpec::new("held"), started.held(&gate, i))
                .expect("submit"),
        );
    }
    started.expect(20).await;
    let drain = tokio::spawn({
        let rw = rw.clone();
        async move { rw.drain(Duration::from_secs(3600)).await }
    });
    // The drain is under way (submits are refused) but cannot finish while runs are held.
    within("drain to begin", async {
        while rw.supervisor_status().await.expect("status").drain != DrainState::Draining {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(!drain.is_finished());
    gate.open();
    let report = within("drain", drain).await.expect("join").expect("drain");
    assert_eq!((report.completed, report.cancelled), (20, 0));
    assert!(!report.deadline_hit && report.cancelled_by_drain.is_empty());
    assert_eq!(
        rw.submit(RunSpec::new("late"), |_| async { Ok(()) }),
        Err(SubmitError::ShuttingDown)
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
    assert_eq!(
        rw.status(ids[0]).await,
        Err(Error::Unavailable { request: "status" })
    );
}
