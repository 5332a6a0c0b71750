//! The registry refuses stale, out-of-order, unknown and duplicate status messages with a
//! typed error and leaves the record unchanged. Such messages cannot be built outside
//! runwarden; the test forges them through the `fault-injection` feature.
#[path = "support/helpers.rs"]
mod support;

use runwarden::actors::faults;
use runwarden::actors::{Transition, TransitionError};
use runwarden::{
    BoxedJob, FailureKind, RegistryMessage, RunId, RunRecord, RunSpec, RunStatus, Runwarden,
    Timestamp,
};
use support::{Gate, Started, start, within};

use runwarden::ractor::rpc::CallResult;
use runwarden::ractor::{self, ActorRef};

/// Sends a write with a reply port and returns the registry's verdict.
async fn write(
    registry: &ActorRef<RegistryMessage>,
    build: impl FnOnce(ractor::RpcReplyPort<Result<(), TransitionError>>) -> RegistryMessage,
) -> Result<(), TransitionError> {
    match registry.call(build, Some(support::STEP)).await {
        Ok(CallResult::Success(verdict)) => verdict,
        other => panic!("registry did not answer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_out_of_order_unknown_and_duplicate_messages_are_refused() {
    let rw = start(Runwarden::builder()).await;
    let registry = rw.registry().actor().clone();
    let id = rw
        .submit(RunSpec::new("done"), |_| async { Ok(()) })
        .expect("submit");
    let done = within("run", rw.wait(id)).await.expect("wait");
    assert_eq!(done.status, RunStatus::Completed);

    // A late "failed" after completion .
    let late = write(&registry, |r| {
        faults::transition(id, Transition::failed(FailureKind::Returned, "late"), r)
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
    let replay = write(&registry, |r| faults::transition(id, started, r)).await;
    assert!(matches!(
        replay,
        Err(TransitionError::AlreadyTerminal { .. })
    ));
    // A message about a run nobody submitted.
    let stranger = RunId::new();
    let unknown = write(&registry, |r| {
        faults::transition(stranger, Transition::completed(), r)
    })
    .await;
    assert_eq!(unknown, Err(TransitionError::UnknownRun(stranger)));
    // A second record with a live id.
    let impostor = RunRecord::queued(id, RunSpec::new("impostor"));
    let (ran_tx, mut ran_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let job = BoxedJob::new(move |_| async move {
        let _ = ran_tx.send(());
        Ok(())
    });
    let dup = write(&registry, |r| faults::insert(impostor, job, r)).await;
    assert_eq!(dup, Err(TransitionError::DuplicateId(id)));

    // The impostor's job was dropped unstarted.
    let ran = within("impostor job dropped", ran_rx.recv()).await;
    assert!(ran.is_none(), "the impostor's job ran");

    // Nothing changed, and the refusals were counted.
    assert_eq!(rw.status(id).await.expect("status"), done);
    let stats = rw.stats().await.expect("stats");
    assert_eq!(stats.refused, 4);
    assert_eq!(stats.total(), 1);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Out-of-order messages (a second Started, Completed for a run still Queued) are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_order_transitions_are_refused() {
    let rw = start(Runwarden::builder().max_concurrent(1)).await;
    let registry = rw.registry().actor().clone();
    let gate = Gate::new();
    let mut started = Started::new();
    let running = rw
        .submit(RunSpec::new("running"), started.held(&gate, 0))
        .expect("submit");
    started.expect(1).await;
    let queued = rw
        .submit(RunSpec::new("queued"), |_| async { Ok(()) })
        .expect("submit");

    let again = Transition::Started {
        at: Timestamp::now(),
    };
    let r = write(&registry, |r| faults::transition(running, again, r)).await;
    assert_eq!(
        r,
        Err(TransitionError::OutOfOrder {
            id: running,
            from: RunStatus::Running,
            to: RunStatus::Running
        })
    );
    let r = write(&registry, |r| {
        faults::transition(queued, Transition::completed(), r)
    })
    .await;
    assert_eq!(
        r,
        Err(TransitionError::OutOfOrder {
            id: queued,
            from: RunStatus::Queued,
            to: RunStatus::Completed
        })
    );
    assert_eq!(
        rw.status(queued).await.expect("status").status,
        RunStatus::Queued
    );

    // The real runs are unaffected by the refused messages.
    gate.open();
    for id in [running, queued] {
        assert_eq!(
            within("run", rw.wait(id)).await.expect("wait").status,
            RunStatus::Completed
        );
    }
    assert_eq!(rw.stats().await.expect("stats").refused, 2);
    rw.shutdown(support::STEP).await.expect("shutdown");
}
