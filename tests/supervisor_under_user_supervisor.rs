//! An application spawns runwarden's supervisor under its own supervisor and drives it by
//! messages only: no handle, no shared state.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::ractor::{
    Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent, call_t,
};
use runwarden::{
    BoxedJob, CancelOutcome, RegistryMessage, RunSpec, RunStatus, SupervisorActor,
    SupervisorArguments, SupervisorMessage,
};

/// The application's own root supervisor.
struct AppRoot;

enum AppMessage {
    /// The runwarden supervisor this root spawned.
    Runwarden(RpcReplyPort<ActorRef<SupervisorMessage>>),
    /// Supervision events the root has seen about its children.
    Events(RpcReplyPort<Vec<String>>),
}

struct AppState {
    runwarden: ActorRef<SupervisorMessage>,
    events: Vec<String>,
}

impl Actor for AppRoot {
    type Msg = AppMessage;
    type State = AppState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<AppMessage>,
        _: (),
    ) -> Result<AppState, ActorProcessingErr> {
        let args = SupervisorArguments {
            max_concurrent: Some(2),
            ..Default::default()
        };
        let (runwarden, _) =
            Actor::spawn_linked(None, SupervisorActor, args, myself.get_cell()).await?;
        Ok(AppState {
            runwarden,
            events: Vec::new(),
        })
    }

    async fn handle(
        &self,
        _: ActorRef<AppMessage>,
        msg: AppMessage,
        state: &mut AppState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            AppMessage::Runwarden(reply) => {
                let _ = reply.send(state.runwarden.clone());
            }
            AppMessage::Events(reply) => {
                let _ = reply.send(state.events.clone());
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<AppMessage>,
        evt: SupervisionEvent,
        state: &mut AppState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorTerminated(who, _, reason) = &evt
            && who.get_id() == state.runwarden.get_id()
        {
            state
                .events
                .push(format!("runwarden terminated: {reason:?}"));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_supervisor_drives_runwarden_by_messages_only() {
    let (root, _) = Actor::spawn(None, AppRoot, ())
        .await
        .expect("app root starts");
    let sup = call_t!(root, AppMessage::Runwarden, 5000).expect("root answers");
    let submitter = call_t!(sup, SupervisorMessage::GetSubmitter, 5000).expect("submitter");
    let registry = submitter.registry().clone();

    // Submit by message: one that completes, one that fails, one that waits to be cancelled.
    let ok = call_t!(
        sup,
        SupervisorMessage::Submit,
        5000,
        Box::new(RunSpec::new("ok")),
        BoxedJob::new(|_| async { Ok(()) })
    )
    .expect("answer")
    .expect("accepted");
    let bad = call_t!(
        sup,
        SupervisorMessage::Submit,
        5000,
        Box::new(RunSpec::new("bad")),
        BoxedJob::new(|_| async { Err::<(), _>(runwarden::JobError::msg("bad input")) })
    )
    .expect("answer")
    .expect("accepted");
    let held = call_t!(
        sup,
        SupervisorMessage::Submit,
        5000,
        Box::new(RunSpec::new("held")),
        BoxedJob::new(|ctx| async move {
            ctx.cancelled().await;
            Ok(())
        })
    )
    .expect("answer")
    .expect("accepted");

    // Read-your-writes holds for message submits too.
    let r = call_t!(registry, RegistryMessage::Get, 5000, held)
        .expect("answer")
        .expect("found");
    assert!(r.status.is_active());

    let r = call_t!(registry, RegistryMessage::WaitTerminal, 20_000, ok)
        .expect("answer")
        .expect("found");
    assert_eq!(r.status, RunStatus::Completed);
    let r = call_t!(registry, RegistryMessage::WaitTerminal, 20_000, bad)
        .expect("answer")
        .expect("found");
    assert_eq!(r.status, RunStatus::Failed);
    assert_eq!(r.error.expect("error").message, "bad input");

    // Two workers have exited: ractor's default would have stopped the supervisor; ours goes on.
    let outcome = call_t!(sup, SupervisorMessage::Cancel, 5000, held).expect("answer");
    assert!(matches!(
        outcome,
        Ok(CancelOutcome::Signalled | CancelOutcome::CancelledWhileQueued)
    ));
    let r = call_t!(registry, RegistryMessage::WaitTerminal, 20_000, held)
        .expect("answer")
        .expect("found");
    assert_eq!(r.status, RunStatus::Cancelled);

    let report = call_t!(
        sup,
        SupervisorMessage::Drain,
        20_000,
        Duration::from_secs(5)
    )
    .expect("drained");
    assert!(!report.deadline_hit);
    let active = call_t!(registry, RegistryMessage::ActiveCount, 5000).expect("answer");
    assert_eq!(active, 0);

    // Stopping runwarden is seen by the application's supervisor like any child's exit.
    sup.stop_and_wait(Some("app shutdown".into()), Some(support::STEP))
        .await
        .expect("stops");
    let events = support::within("the root to see the exit", async {
        loop {
            let events = call_t!(root, AppMessage::Events, 5000).expect("root answers");
            if !events.is_empty() {
                return events;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        events,
        vec![r#"runwarden terminated: Some("app shutdown")"#.to_owned()]
    );
    root.stop_and_wait(None, Some(support::STEP))
        .await
        .expect("root stops");
}
