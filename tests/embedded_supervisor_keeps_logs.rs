//! An application that spawns the supervisor under its own root with `SupervisorArguments::logs`
//! gets the same run logs as the builder's handle: a log keeper under the supervisor, read,
//! followed and flushed through `SupervisorRef::logs`, and complete on disk after shutdown.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::ractor::{Actor, ActorProcessingErr, ActorRef};
use runwarden::{
    BoxedJob, JobError, LogConfig, LogItem, RunSpec, RunStatus, SupervisorActor,
    SupervisorArguments,
};
use support::{TempDir, within};

/// The application's root: it only parents runwarden's supervisor.
struct Root;

impl Actor for Root {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

const RUNS: usize = 20;
const LINES: usize = 2_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_kept_by_an_embedded_supervisor_are_read_followed_and_complete_after_shutdown() {
    let dir = TempDir::new("embedded-logs");
    let (root, _) = Actor::spawn(None, Root, ()).await.expect("root");
    let args = SupervisorArguments {
        logs: Some(LogConfig::new(&dir.0)),
        ..Default::default()
    };
    let (sup, _) = SupervisorActor::spawn_linked(None, args, root.get_cell())
        .await
        .expect("supervisor");
    let logs = sup
        .logs()
        .await
        .expect("supervisor answers")
        .expect("the supervisor keeps logs");

    // One run read back while it is known, and followed after it ended.
    let job = BoxedJob::new(|ctx| async move {
        ctx.info("hello");
        ctx.info("bye");
        Err::<(), _>(JobError::msg("failed after two lines"))
    });
    let id = sup
        .submit(RunSpec::new("talker"), job)
        .await
        .expect("supervisor answers")
        .expect("submit");
    let record = within(
        "the run's end",
        sup.registry().await.expect("registry").wait(id),
    )
    .await
    .expect("registry answers")
    .expect("known run");
    assert_eq!(record.status, RunStatus::Failed);
    let tail = logs.tail(id, 10).await.expect("tail");
    let messages: Vec<&str> = tail.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(messages, ["hello", "bye"]);
    let mut follow = logs
        .follow(id)
        .await
        .expect("keeper answers")
        .expect("known run");
    let mut items = Vec::new();
    while let Some(item) = within("the next item", follow.next()).await {
        items.push(item);
    }
    assert!(
        matches!(items.last(), Some(LogItem::End(end)) if end.status == Some(RunStatus::Failed)),
        "a follow of an ended run ends with its status: {items:?}"
    );
    assert_eq!(items.len(), 3, "two lines and the end: {items:?}");

    // Many lines logged right before a shutdown are all on disk after it: the keeper writes
    // what it was sent before the supervisor stops.
    let mut ids = Vec::new();
    for r in 0..RUNS {
        let job = BoxedJob::new(move |ctx| async move {
            for i in 0..LINES {
                ctx.info(format!("run {r} line {i}"));
            }
            Ok(())
        });
        let id = sup
            .submit(RunSpec::new("chatty"), job)
            .await
            .expect("supervisor answers")
            .expect("submit");
        ids.push(id);
    }
    let report = within("shutdown", sup.shutdown(Duration::from_secs(30)))
        .await
        .expect("shutdown");
    assert!(!report.deadline_hit, "{report:?}");
    for id in &ids {
        let text = std::fs::read_to_string(LogConfig::new(&dir.0).path_of(*id)).expect("log file");
        assert_eq!(
            text.lines().count(),
            LINES,
            "every line of run {id} is in its file"
        );
    }
    root.stop(None);
}
