//! The registry refuses stale, out-of-order, unknown and duplicate status messages with a
//! typed error and leaves the record unchanged (defects 2 and 4 of the original).
#[path = "support/helpers.rs"]
mod support;

use runwarden::actors::{Transition, TransitionError};
use runwarden::{
    ErrorKind, RegistryMessage, RunId, RunRecord, RunSpec, RunStatus, Runwarden, Timestamp,
};
use support::{start, within};

use runwarden::ractor::ActorRef;
use runwarden::ractor::rpc::CallResult;

/// Sends a write with a reply port and returns the registry's verdict.
async fn write(
    registry: &ActorRef<RegistryMessage>,
    build: impl FnOnce(runwarden::actors::WriteReply) -> RegistryMessage,
) -> Result<(), TransitionError> {
    match registry.call(build, Some(support::STEP)).await {
        Ok(CallResult::Success(verdict)) => verdict,
        other => panic!("registry did not answer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_out_of_order_unknown_and_duplicate_messages_are_refused() {
    let rw = start(Runwarden::builder()).await;
    let registry = rw.registry().clone();
    let id = rw
        .submit(RunSpec::new("done"), |_| async { Ok::<_, String>(()) })
        .expect("submit");
    let done = within("run", rw.wait(id)).await.expect("wait");
    assert_eq!(done.status, RunStatus::Completed);

    // A late "failed" after completion (the original let it overwrite the status).
    let late = write(&registry, |r| {
        RegistryMessage::Transition(id, Transition::failed(ErrorKind::Returned, "late"), Some(r))
    })
    .await;
    assert_eq!(
        late,
        Err(TransitionError::AlreadyTerminal {
            id,
            status: RunStatus::Completed,
            attempted: RunStatus::Failed
        })
    );
    // A replayed "started".
    let started = Transition::Started {
        at: Timestamp::now(),
    };
    let replay = write(&registry, |r| {
        RegistryMessage::Transition(id, started, Some(r))
    })
    .await;
    assert!(matches!(
        replay,
        Err(TransitionError::AlreadyTerminal { .. })
    ));
    // A message about a run nobody submitted.
    let stranger = RunId::new();
    let unknown = write(&registry, |r| {
        RegistryMessage::Transition(stranger, Transition::completed(), Some(r))
    })
    .await;
    assert_eq!(unknown, Err(TransitionError::UnknownRun(stranger)));
    // A second record with a live id (defect 2: the original silently lost one of them).
    let impostor = RunRecord::queued(id, RunSpec::new("impostor"));
    let dup = write(&registry, |r| RegistryMessage::Insert(impostor, Some(r))).await;
    assert_eq!(dup, Err(TransitionError::DuplicateId(id)));

    // Nothing changed, and the refusals were counted.
    assert_eq!(rw.status(id).await.expect("status"), done);
    let stats = rw.stats().await.expect("stats");
    assert_eq!(stats.refused, 4);
    assert_eq!(stats.total(), 1);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// An out-of-order message (Completed for a run still Queued) is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completing_a_run_that_never_started_is_out_of_order() {
    let rw = start(Runwarden::builder()).await;
    let registry = rw.registry().clone();
    let id = RunId::new();
    let record = RunRecord::queued(id, RunSpec::new("x"));
    write(&registry, |r| RegistryMessage::Insert(record, Some(r)))
        .await
        .expect("inserted");
    let r = write(&registry, |r| {
        RegistryMessage::Transition(id, Transition::completed(), Some(r))
    })
    .await;
    assert_eq!(
        r,
        Err(TransitionError::OutOfOrder {
            id,
            from: RunStatus::Queued,
            to: RunStatus::Completed
        })
    );
    assert_eq!(
        rw.status(id).await.expect("status").status,
        RunStatus::Queued
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}
