//! `wait` replies when the run ends (no polling), at once for a finished run, and with a
//! typed error for an unknown one.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{Error, NotFound, RunId, RunSpec, RunStatus, Runwarden};
use support::{Gate, Started, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiters_are_all_answered_when_the_run_ends() {
    let rw = start(Runwarden::builder()).await;
    let gate = Gate::new();
    let mut started = Started::new();
    let (g, tx) = (gate.clone(), started.tx.clone());
    let id = rw
        .submit(RunSpec::new("held"), move |_| async move {
            let _ = tx.send(0);
            g.wait().await;
            Err::<(), _>(runwarden::JobError::msg("done badly"))
        })
        .expect("submit");
    started.expect(1).await;
    let waiters: Vec<_> = (0..10)
        .map(|_| {
            let rw = rw.clone();
            tokio::spawn(async move { rw.wait(id).await })
        })
        .collect();
    // A waiter that gives up early does not disturb the others.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(1), rw.wait(id))
            .await
            .is_err()
    );
    for w in &waiters {
        assert!(!w.is_finished(), "a waiter returned before the run ended");
    }
    gate.open();
    for w in waiters {
        let r = within("waiter", w).await.expect("join").expect("wait");
        assert_eq!(r.status, RunStatus::Failed);
    }
    // Already finished: answered at once with the same record.
    let again = within("wait on a finished run", rw.wait(id))
        .await
        .expect("wait");
    assert_eq!(again, rw.status(id).await.expect("status"));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_an_unknown_run_is_not_found() {
    let rw = start(Runwarden::builder()).await;
    let stranger = RunId::new();
    assert_eq!(
        rw.wait(stranger).await,
        Err(Error::NotFound(NotFound(stranger)))
    );
    assert_eq!(
        rw.status(stranger).await,
        Err(Error::NotFound(NotFound(stranger)))
    );
    assert!(!rw.is_active(stranger).await.expect("is_active"));
    rw.shutdown(support::STEP).await.expect("shutdown");
}
