//! A job's error and a job's panic both end the run `Failed` with the message, and neither
//! disturbs the supervisor or other runs.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{ErrorKind, RunSpec, RunStatus, Runwarden};
use support::{Gate, Started, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_and_panic_fail_with_their_message_while_a_neighbour_completes() {
    let rw = start(Runwarden::builder()).await;
    let gate = Gate::new();
    let mut started = Started::new();
    let neighbour = rw
        .submit(RunSpec::new("neighbour"), started.held(&gate, 0))
        .expect("submit");
    started.expect(1).await;

    let failing = rw
        .submit(RunSpec::new("fails"), |_| async {
            Err::<(), _>(std::io::Error::other("disk on fire").into())
        })
        .expect("submit");
    let panicking = rw
        .submit(RunSpec::new("panics"), |_| async {
            if true {
                panic!("boom at step {}", 7);
            }
            Ok(())
        })
        .expect("submit");
    let panics_before_future = rw
        .submit(
            RunSpec::new("panics-early"),
            |_| -> std::future::Ready<Result<(), runwarden::JobError>> {
                panic!("panicked while building the future")
            },
        )
        .expect("submit");

    let failed = within("failing run", rw.wait(failing)).await.expect("wait");
    assert_eq!(failed.status, RunStatus::Failed);
    let e = failed.error.expect("error recorded");
    assert_eq!(
        (e.kind, e.message.as_str()),
        (ErrorKind::Returned, "disk on fire")
    );

    for (id, msg) in [
        (panicking, "boom at step 7"),
        (panics_before_future, "panicked while building the future"),
    ] {
        let r = within("panicking run", rw.wait(id)).await.expect("wait");
        assert_eq!(r.status, RunStatus::Failed);
        let e = r.error.expect("error recorded");
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Panicked, msg));
    }

    // The neighbour is untouched and the supervisor still accepts and runs work.
    assert_eq!(
        rw.status(neighbour).await.expect("status").status,
        RunStatus::Running
    );
    let after = rw
        .submit(RunSpec::new("after"), |_| async { Ok(()) })
        .expect("submit after failures");
    assert_eq!(
        within("later run", rw.wait(after))
            .await
            .expect("wait")
            .status,
        RunStatus::Completed
    );
    gate.open();
    assert_eq!(
        within("neighbour", rw.wait(neighbour))
            .await
            .expect("wait")
            .status,
        RunStatus::Completed
    );
    let stats = rw.stats().await.expect("stats");
    assert_eq!(stats.count(RunStatus::Failed), 3);
    assert_eq!(stats.count(RunStatus::Completed), 2);
    rw.shutdown(support::STEP).await.expect("shutdown");
}
