//! Cancel works in every state, and whatever it answers matches the final status
//! (defects 1 and 5 of the original).
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{
    CancelError, CancelOutcome, Error, ErrorKind, RunId, RunSpec, RunStatus, Runwarden,
};
use support::{Gate, Started, start, within};

// A queued run is Cancelled at once, never starts, and stops counting as active (defect 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_queued_run_ends_it_at_once_without_starting_it() {
    let rw = start(Runwarden::builder().max_concurrent(1)).await;
    let gate = Gate::new();
    let mut started = Started::new();
    let blocker = rw
        .submit(RunSpec::new("blocker"), started.held(&gate, 0))
        .expect("submit");
    started.expect(1).await;
    let tx = started.tx.clone();
    let queued = rw
        .submit(RunSpec::new("queued"), move |_| async move {
            let _ = tx.send(1);
            Ok(())
        })
        .expect("submit");
    assert_eq!(rw.active_count().await.expect("count"), 2);

    assert_eq!(
        rw.cancel(queued).await.expect("cancel"),
        CancelOutcome::CancelledWhileQueued
    );
    // Terminal before the cancel call returned: no waiting needed.
    let r = rw.status(queued).await.expect("status");
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(
        r.error.expect("error").kind,
        ErrorKind::CancelledWhileQueued
    );
    assert!(r.started_at.is_none() && r.finished_at.is_some());
    assert_eq!(rw.active_ids().await.expect("ids"), vec![blocker]);

    gate.open();
    within("blocker", rw.wait(blocker)).await.expect("wait");
    rw.shutdown(support::STEP).await.expect("shutdown");
    // The cancelled run's job never ran: only the blocker ever announced a start.
    let mut tags = Vec::new();
    while let Ok(t) = started.rx_try() {
        tags.push(t);
    }
    assert_eq!(tags, Vec::<u64>::new());
}

// A running run gets the cooperative signal and ends Cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_run_signals_its_job_and_ends_it_cancelled() {
    let rw = start(Runwarden::builder()).await;
    let mut started = Started::new();
    let tx = started.tx.clone();
    let id = rw
        .submit(RunSpec::new("cooperative"), move |ctx| async move {
            let _ = tx.send(0);
            ctx.cancelled().await;
            Err::<(), _>(runwarden::JobError::msg("stopped on request"))
        })
        .expect("submit");
    started.expect(1).await;
    assert_eq!(
        rw.cancel(id).await.expect("cancel"),
        CancelOutcome::Signalled
    );
    let r = within("cancelled run", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(r.cancelled_by, Some(runwarden::CancelReason::User));
    let e = r.error.expect("error");
    assert_eq!(e.kind, ErrorKind::CancelledWhileRunning);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Defect 5: a job that swallows the cancellation and returns Ok still ends Cancelled,
// because cancel answered Ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_that_swallows_the_cancel_still_ends_cancelled() {
    let rw = start(Runwarden::builder()).await;
    let mut started = Started::new();
    let tx = started.tx.clone();
    let id = rw
        .submit(RunSpec::new("swallower"), move |ctx| async move {
            let _ = tx.send(0);
            ctx.cancelled().await;
            Ok(()) // pretends nothing happened
        })
        .expect("submit");
    started.expect(1).await;
    assert!(rw.cancel(id).await.is_ok());
    let r = within("run", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Cancelled);
    assert!(r.error.expect("error").message.contains("returned Ok"));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Cancelling twice is harmless; after the end, cancel reports the final status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_twice_is_harmless_and_answers_match_the_final_status() {
    let rw = start(Runwarden::builder().cancel_grace(Duration::from_secs(30))).await;
    let gate = Gate::new();
    let mut started = Started::new();
    let (g, tx) = (gate.clone(), started.tx.clone());
    let id = rw
        .submit(RunSpec::new("slow-to-stop"), move |ctx| async move {
            let _ = tx.send(0);
            ctx.cancelled().await;
            g.wait().await; // takes its time to clean up
            Ok(())
        })
        .expect("submit");
    started.expect(1).await;
    assert_eq!(
        rw.cancel(id).await.expect("first"),
        CancelOutcome::Signalled
    );
    assert_eq!(
        rw.cancel(id).await.expect("second"),
        CancelOutcome::AlreadyCancelling
    );
    gate.open();
    within("run", rw.wait(id)).await.expect("wait");
    assert_eq!(
        rw.cancel(id).await,
        Err(Error::Cancel(CancelError::AlreadyFinished {
            id,
            status: RunStatus::Cancelled
        }))
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Cancel of a run that already completed or failed is a typed error naming its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_finished_run_is_a_typed_error_with_its_status() {
    let rw = start(Runwarden::builder()).await;
    let ok = rw
        .submit(RunSpec::new("ok"), |_| async { Ok(()) })
        .expect("submit");
    let bad = rw
        .submit(RunSpec::new("bad"), |_| async {
            Err::<(), _>(runwarden::JobError::msg("x"))
        })
        .expect("submit");
    for (id, status) in [(ok, RunStatus::Completed), (bad, RunStatus::Failed)] {
        within("run", rw.wait(id)).await.expect("wait");
        assert_eq!(
            rw.cancel(id).await,
            Err(Error::Cancel(CancelError::AlreadyFinished { id, status }))
        );
        assert_eq!(rw.status(id).await.expect("status").status, status);
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Cancel of an id nobody submitted is NotFound, not a panic or a hang.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_an_unknown_run_is_not_found() {
    let rw = start(Runwarden::builder()).await;
    let stranger = RunId::new();
    assert_eq!(
        rw.cancel(stranger).await,
        Err(Error::Cancel(CancelError::NotFound(stranger)))
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Cancels racing with the job's own end: every Ok answer ends Cancelled, every
// AlreadyFinished answer names the status the run really has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_racing_with_completion_always_match_the_final_status() {
    let rw = start(Runwarden::builder()).await;
    let mut ids = Vec::new();
    for i in 0..2000u32 {
        let id = rw
            .submit(RunSpec::new("racer"), move |_| async move {
                if i % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                Ok(())
            })
            .expect("submit");
        ids.push(id);
    }
    let mut answers = Vec::new();
    for id in &ids {
        answers.push(rw.cancel(*id).await);
    }
    for (id, answer) in ids.iter().zip(answers) {
        let final_status = within("racer", rw.wait(*id)).await.expect("wait").status;
        match answer {
            Ok(_) => assert_eq!(final_status, RunStatus::Cancelled, "{id}"),
            Err(Error::Cancel(CancelError::AlreadyFinished { status, .. })) => {
                assert_eq!(final_status, status, "{id}")
            }
            other => panic!("unexpected cancel answer {other:?}"),
        }
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// A cancel sent right after submit can reach the supervisor before the run does (the run
// travels through the registry); it is never answered NotFound, and always ends the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_right_after_submit_always_finds_the_run() {
    let rw = start(Runwarden::builder().max_concurrent(8)).await;
    let mut ids = Vec::new();
    for _ in 0..2000 {
        let id = rw
            .submit(RunSpec::new("held"), |ctx| async move {
                ctx.cancelled().await;
                Ok(())
            })
            .expect("submit");
        let answer = rw.cancel(id).await.expect("cancel right after submit");
        assert!(
            matches!(
                answer,
                CancelOutcome::CancelledWhileQueued | CancelOutcome::Signalled
            ),
            "{answer:?}"
        );
        ids.push(id);
    }
    for id in ids {
        assert_eq!(
            within("run", rw.wait(id)).await.expect("wait").status,
            RunStatus::Cancelled
        );
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// A batch cancel answers each run exactly as a single cancel would, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_many_answers_each_run_like_cancel() {
    let rw = start(Runwarden::builder().max_concurrent(2)).await;
    let mut started = Started::new();
    let mut ids = Vec::new();
    for i in 0..4u64 {
        let tx = started.tx.clone();
        ids.push(
            rw.submit(RunSpec::new("held"), move |ctx| async move {
                let _ = tx.send(i);
                ctx.cancelled().await;
                Ok(())
            })
            .expect("submit"),
        );
    }
    started.expect(2).await; // two running, two queued
    let done = rw
        .submit(RunSpec::new("done"), |_| async { Ok(()) })
        .expect("submit");
    rw.cancel(ids[0]).await.expect("cancel the first alone");
    within("run", rw.wait(ids[0])).await.expect("wait");
    let stranger = RunId::new();
    let mut batch = ids.clone();
    batch.extend([stranger, done]);
    // `done` may still be queued behind the held runs: cancel it too, and compare.
    let answers = rw.cancel_many(&batch).await;
    assert_eq!(
        answers[0],
        Err(Error::Cancel(CancelError::AlreadyFinished {
            id: ids[0],
            status: RunStatus::Cancelled
        }))
    );
    assert_eq!(answers[1], Ok(CancelOutcome::Signalled));
    for a in &answers[2..4] {
        assert!(
            matches!(
                a,
                Ok(CancelOutcome::CancelledWhileQueued | CancelOutcome::Signalled)
            ),
            "{a:?}"
        );
    }
    assert_eq!(
        answers[4],
        Err(Error::Cancel(CancelError::NotFound(stranger)))
    );
    for (id, answer) in batch.iter().zip(&answers).take(4) {
        let status = within("run", rw.wait(*id)).await.expect("wait").status;
        assert_eq!(status, RunStatus::Cancelled, "{answer:?}");
    }
    let done_status = within("run", rw.wait(done)).await.expect("wait").status;
    match &answers[5] {
        Ok(_) => assert_eq!(done_status, RunStatus::Cancelled),
        Err(Error::Cancel(CancelError::AlreadyFinished { status, .. })) => {
            assert_eq!(done_status, *status)
        }
        other => panic!("unexpected {other:?}"),
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}
