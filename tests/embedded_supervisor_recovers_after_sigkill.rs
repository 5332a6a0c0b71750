//! An application that spawns runwarden's supervisor under its own root actor, with a SQLite
//! store in its arguments, gets the same recovery as the builder: a child process drives such
//! a tree by messages and is SIGKILLed mid-work; a second tree on the same store, again
//! spawned by hand, answers `WaitTerminal` for every acknowledged run, its `Cancel` agrees
//! with the record, and nothing is left active.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, call_t};
use runwarden::{
    BoxedJob, CancelError, ErrorKind, JobKinds, Kind, OnInterrupt, RegistryMessage, RunId, RunSpec,
    RunStatus, SqliteStore, SupervisorActor, SupervisorArguments, SupervisorMessage,
};
use support::TempDir;

const CHILD_ENV: &str = "RUNWARDEN_EMBEDDED_CRASH_CHILD_DB";

/// The application's own root actor: it spawns runwarden's supervisor linked under itself.
struct AppRoot;

impl Actor for AppRoot {
    type Msg = RpcReplyPort<ActorRef<SupervisorMessage>>;
    type State = ActorRef<SupervisorMessage>;
    type Arguments = String;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        path: String,
    ) -> Result<Self::State, ActorProcessingErr> {
        let work = |_: &runwarden::JsonObject| {
            Ok(BoxedJob::repeatable(|_| async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(())
            }))
        };
        let args = SupervisorArguments {
            max_concurrent: Some(4),
            store: Some(Box::new(SqliteStore::open(&path)?)),
            kinds: JobKinds::new()
                .register("rerun", OnInterrupt::Rerun, work)
                .register("fragile", OnInterrupt::Fail, work),
            ..SupervisorArguments::default()
        };
        let (runs, _) = Actor::spawn_linked(None, SupervisorActor, args, myself.get_cell()).await?;
        Ok(runs)
    }

    async fn handle(
        &self,
        _: ActorRef<Self::Msg>,
        reply: Self::Msg,
        runs: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(runs.clone());
        Ok(())
    }
}

/// Spawns the application's tree on the store at `path` and returns runwarden's supervisor.
async fn tree(
    path: &str,
) -> (
    ActorRef<RpcReplyPort<ActorRef<SupervisorMessage>>>,
    ActorRef<SupervisorMessage>,
) {
    let (root, _) = Actor::spawn(None, AppRoot, path.to_owned())
        .await
        .expect("the application's tree starts");
    let runs = call_t!(root, |r| r, 5_000).expect("the root answers");
    (root, runs)
}

/// The child process: submits durable runs by kind, printing each id once its durable submit
/// returned, until it is killed.
async fn child(path: String) {
    let (_root, runs) = tree(&path).await;
    let submitter = call_t!(runs, SupervisorMessage::GetSubmitter, 5_000).expect("submitter");
    for i in 0u64.. {
        let kind = if i % 2 == 0 { "rerun" } else { "fragile" };
        let id = submitter
            .request(RunSpec::new(kind), Kind(kind))
            .durable()
            .send()
            .await
            .expect("durable submit");
        println!("id {id}");
    }
}

/// This file's entry point (`harness = false`): the child process when started with the
/// store's path in the environment, otherwise the test.
fn main() {
    support::crash_test_main(
        CHILD_ENV,
        child,
        "an_embedded_supervisor_recovers_every_run_after_sigkill",
        an_embedded_supervisor_recovers_every_run_after_sigkill,
    );
}

async fn an_embedded_supervisor_recovers_every_run_after_sigkill() {
    let dir = TempDir::new("embedded-crash");
    let db = dir.0.join("runs.db");
    let path = db.to_string_lossy().into_owned();
    let mut printed: Vec<RunId> = Vec::new();
    let mut interrupted_seen = 0;
    for (round, kill_after) in [7usize, 25, 3, 40, 12].into_iter().enumerate() {
        let ids = support::sigkill_after_ids((CHILD_ENV, &db), kill_after).await;
        assert_eq!(
            ids.len(),
            kill_after,
            "round {round}: the child stopped early"
        );
        printed.extend(ids);

        // A second tree on the same store, spawned by hand again: recovery runs in the
        // supervisor's start-up, whoever spawns it.
        let (root, runs) = tree(&path).await;
        let report = call_t!(runs, SupervisorMessage::Recovery, 5_000).expect("recovery report");
        let submitter = call_t!(runs, SupervisorMessage::GetSubmitter, 5_000).expect("submitter");
        let registry = submitter.registry().clone();
        for id in &printed {
            // Every acknowledged run ends: the recovered ones run again, the rest are failed.
            let record = call_t!(registry, RegistryMessage::WaitTerminal, 20_000, *id)
                .unwrap_or_else(|e| panic!("round {round}: no answer for {id}: {e}"))
                .unwrap_or_else(|e| panic!("round {round}: {id} lost: {e}"));
            assert!(record.status.is_terminal());
            // A cancel agrees with the record.
            let cancel = call_t!(runs, SupervisorMessage::Cancel, 5_000, *id).expect("answer");
            assert_eq!(
                cancel,
                Err(CancelError::AlreadyFinished {
                    id: *id,
                    status: record.status
                }),
                "round {round}"
            );
            if report.interrupted.contains(id) {
                assert_eq!(record.status, RunStatus::Failed);
                assert_eq!(record.error.expect("error").kind, ErrorKind::Interrupted);
            }
            if report.requeued.contains(id) {
                assert_eq!(record.status, RunStatus::Completed, "round {round}: {id}");
            }
        }
        interrupted_seen += report.interrupted.len();
        // The child may have had more runs committed than it printed before it died: every
        // run recovery queued again runs to its end too, and then nothing is left active.
        for id in &report.requeued {
            let record = call_t!(registry, RegistryMessage::WaitTerminal, 20_000, *id)
                .expect("answer")
                .expect("recorded");
            assert_eq!(record.status, RunStatus::Completed, "round {round}: {id}");
        }
        let active = call_t!(registry, RegistryMessage::ActiveCount, 5_000).expect("count");
        assert_eq!(active, 0, "round {round}: runs left active");
        let drained =
            call_t!(runs, SupervisorMessage::Drain, 20_000, support::STEP).expect("drain");
        assert!(!drained.deadline_hit);
        // Stop as the handle's shutdown does: the registry drains its mailbox and its store
        // writes first (releasing the store for the next round), then the supervisor follows it.
        let _ = registry.drain_and_wait(Some(support::STEP)).await;
        // The supervisor ends itself once its registry exits after a drain.
        runs.wait(Some(support::STEP))
            .await
            .expect("runwarden stops");
        // The root (ractor's default supervision) stops when its child does.
        root.wait(Some(support::STEP))
            .await
            .expect("the tree stops");
    }
    // The child keeps runs in flight (four at a time, 20 ms each), so some rounds leave
    // `fragile` runs running, which recovery must fail rather than run twice.
    assert!(interrupted_seen > 0, "no round left a run to recover");
}
