//! A worker actor that dies (killed from outside, as a crash would) leaves its run `Failed`
//! with kind `WorkerDied` (or `Cancelled` if a cancel was accepted first); the supervisor and
//! other runs carry on.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{ErrorKind, RunSpec, RunStatus, Runwarden};
use support::{Gate, Started, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_fails_its_run_and_nothing_else() {
    let rw = start(Runwarden::builder()).await;
    let gate = Gate::new();
    let mut started = Started::new();
    let tx = started.tx.clone();
    let victim = rw
        .submit(RunSpec::new("victim"), move |_| async move {
            let _ = tx.send(0);
            std::future::pending::<()>().await;
            Ok(())
        })
        .expect("submit");
    started.expect(1).await;
    let worker = the_only_worker(&rw);
    let bystander = rw
        .submit(RunSpec::new("bystander"), started.held(&gate, 1))
        .expect("submit");
    started.expect(1).await;

    worker.kill();
    let r = within("victim to be failed", rw.wait(victim))
        .await
        .expect("wait");
    assert_eq!(r.status, RunStatus::Failed);
    let e = r.error.expect("error");
    assert_eq!(e.kind, ErrorKind::WorkerDied);
    assert!(e.message.contains("killed"), "{}", e.message);

    assert_eq!(
        rw.status(bystander).await.expect("status").status,
        RunStatus::Running
    );
    gate.open();
    assert_eq!(
        within("bystander", rw.wait(bystander))
            .await
            .expect("wait")
            .status,
        RunStatus::Completed
    );
    let later = rw
        .submit(RunSpec::new("later"), |_| async { Ok(()) })
        .expect("supervisor still accepts");
    assert_eq!(
        within("later", rw.wait(later)).await.expect("wait").status,
        RunStatus::Completed
    );
    assert_eq!(rw.stats().await.expect("stats").refused, 0);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// A worker killed after its run's cancel was accepted leaves the run Cancelled, as the
// cancel's Ok answer promised, not Failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_a_cancel_leaves_its_run_cancelled() {
    let rw = start(Runwarden::builder().cancel_grace(std::time::Duration::from_secs(3600))).await;
    let mut started = Started::new();
    let tx = started.tx.clone();
    let id = rw
        .submit(RunSpec::new("stubborn"), move |_| async move {
            let _ = tx.send(0);
            std::future::pending::<()>().await; // ignores the cancel
            Ok(())
        })
        .expect("submit");
    started.expect(1).await;
    let worker = the_only_worker(&rw);
    assert_eq!(
        rw.cancel(id).await.expect("cancel"),
        runwarden::CancelOutcome::Signalled
    );
    worker.kill();
    let r = within("run to end", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(
        r.error.expect("error").kind,
        ErrorKind::CancelledWhileRunning
    );
    let report = rw.shutdown(support::STEP).await.expect("shutdown");
    assert_eq!(report, runwarden::DrainReport::default());
}

/// The one worker actor among the supervisor's children (the other child is the registry).
fn the_only_worker(rw: &Runwarden) -> runwarden::ractor::ActorCell {
    let mut workers: Vec<_> = rw
        .supervisor()
        .actor()
        .get_children()
        .into_iter()
        .filter(|c| c.get_id() != rw.registry().actor().get_id())
        .collect();
    assert_eq!(workers.len(), 1, "expected exactly one running run");
    workers.remove(0)
}
