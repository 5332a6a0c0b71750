//! The supervisor's protocol: what it accepts and the values it answers with.

use std::sync::Arc;
use std::time::Duration;

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use crate::error::{SubmitError, UnknownQueue};
use crate::job::BoxedJob;
use crate::kinds::RecoveryReport;
use crate::protocol::run::{CancelReply, PreparedRun};
use crate::run::{RunId, RunSpec};
use crate::schedule::{NoSuchSchedule, ScheduleId, ScheduleInfo, ScheduleSpec};
use crate::submitter::Submitter;

/// Messages the supervisor handles.
///
/// Every public variant is a request any holder of the supervisor's address may make. The
/// supervisor's own steps (a recorded run handed over to start, drain barriers and deadlines,
/// retry and schedule timers, forwarded cancels, registry restarts) travel in
/// [`SupervisorMessage::Internal`], which only runwarden can build.
#[derive(Debug)]
pub enum SupervisorMessage {
    /// Sent by an application actor: accept a run. The supervisor records it in the registry
    /// (which hands the job back to start it) and replies with its id, or a [`SubmitError`]
    /// (`ShuttingDown`, `QueueFull`, ...).
    Submit(RunSpec, BoxedJob, RpcReplyPort<Result<RunId, SubmitError>>),
    /// Sent by anyone: cancel a run. A queued or retry-waiting run is cancelled here and
    /// answered at once; a running run's request (with the caller's port) is forwarded to its
    /// worker, which answers; for any other id the registry answers `NotFound` or
    /// `AlreadyFinished`.
    Cancel(RunId, CancelReply),
    /// Sent by anyone: many cancels in one message, each answered on its own port exactly as
    /// [`SupervisorMessage::Cancel`] would be. Cancelling a batch costs one message to the
    /// supervisor instead of one round trip per run.
    CancelMany(Vec<(RunId, CancelReply)>),
    /// Sent by anyone: stop accepting runs, wait until every accepted run is terminal, and
    /// reply with the report. At `deadline` the runs still active are cancelled. Several
    /// drains share the first one's deadline; a drain after the end replies at once.
    Drain(Duration, RpcReplyPort<DrainReport>),
    /// Sent by anyone: change the global limit (`queue: None`) or a queue's limit. `None` as
    /// the limit means unlimited. Runs start at once if the new limit allows.
    SetLimit(
        Option<String>,
        Option<usize>,
        RpcReplyPort<Result<(), UnknownQueue>>,
    ),
    /// Sent by anyone: change how many runs may wait in a queue (`None`: unbounded). Runs
    /// already waiting stay.
    SetMaxLength(
        String,
        Option<usize>,
        RpcReplyPort<Result<(), UnknownQueue>>,
    ),
    /// Sent by anyone: run a repeatable job periodically. The first occurrence is submitted
    /// at once; each is a normal run. Refused once draining, or for a run-once job.
    Schedule(
        ScheduleSpec,
        BoxedJob,
        RpcReplyPort<Result<ScheduleId, SubmitError>>,
    ),
    /// Sent by anyone: stop submitting occurrences until resumed (an active one carries on).
    PauseSchedule(ScheduleId, RpcReplyPort<Result<(), NoSuchSchedule>>),
    /// Sent by anyone: submit occurrences again, the next one at once.
    ResumeSchedule(ScheduleId, RpcReplyPort<Result<(), NoSuchSchedule>>),
    /// Sent by anyone: forget a schedule (an active occurrence carries on as a normal run).
    RemoveSchedule(
        ScheduleId,
        RpcReplyPort<Result<ScheduleInfo, NoSuchSchedule>>,
    ),
    /// Query: every schedule's counters.
    Schedules(RpcReplyPort<Vec<ScheduleInfo>>),
    /// Query: a [`Submitter`] for this supervisor (the fast, synchronous submit path, which
    /// also knows the registry and the registered job kinds).
    GetSubmitter(RpcReplyPort<Submitter>),
    /// Query: queues, limits and drain state as the supervisor sees them.
    Status(RpcReplyPort<SupervisorStatus>),
    /// Query: what start-up recovery did with the runs a previous process left active.
    Recovery(RpcReplyPort<Arc<RecoveryReport>>),
    /// One of runwarden's own steps; see [`SupervisorInternal`].
    Internal(SupervisorInternal),
}

/// A step of the supervisor's own protocol. Its contents are private to runwarden, so no
/// other sender can fake a run's start, a drain barrier or deadline, a due retry or schedule,
/// a forwarded cancel or a registry restart.
///
/// ```compile_fail
/// // A user cannot build one: the field is private to the crate.
/// let _ = runwarden_actors::SupervisorInternal(());
/// ```
#[derive(Debug)]
pub struct SupervisorInternal(pub(crate) SupervisorStep);

/// The supervisor's internal steps.
#[derive(Debug)]
pub(crate) enum SupervisorStep {
    /// Sent only by the registry, right after it recorded the run: queue the run by priority,
    /// and start runs while limits allow.
    Start(Box<PreparedRun>),
    /// Sent by the registry: a [`SupervisorMessage::Cancel`] that overtook its run's `Start`,
    /// sent back once, now behind that `Start`.
    CancelForwarded(RunId, CancelReply),
    /// Sent by the registry, forwarding the barrier the supervisor sent it after closing the
    /// admission gate: the `Start` of every run admitted before the gate closed is ahead of it.
    DrainBarrier,
    /// Sent by the supervisor to itself when the drain deadline passes.
    DrainDeadline,
    /// Sent by the supervisor to itself when a run's retry backoff has passed: the run goes
    /// back into its queue.
    RetryDue(RunId),
    /// Sent by the supervisor to itself when a schedule's next occurrence is due (the
    /// generation tells a stale timer from the current one).
    ScheduleDue(ScheduleId, u64),
    /// Sent by the registry after it restarted from its store. More than
    /// [`crate::REGISTRY_RESTARTS`] restarts within [`crate::RESTART_WINDOW`] make the
    /// supervisor fail (escalating to its own supervisor), as an Erlang supervisor's restart
    /// intensity would.
    RegistryRestarted(String),
}

impl From<SupervisorStep> for SupervisorMessage {
    fn from(step: SupervisorStep) -> Self {
        SupervisorMessage::Internal(SupervisorInternal(step))
    }
}

/// Where the supervisor is in its drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrainState {
    /// Accepting runs.
    NotDraining,
    /// Refusing runs, waiting for accepted ones to end.
    Draining,
    /// Every accepted run is terminal; runs are still refused.
    Drained,
}

/// What a drain waited for: every run the supervisor still held when the drain began (queued,
/// waiting to be retried, or with a live worker) and every run admitted before the gate closed.
///
/// A run whose terminal status was already visible to callers can still be counted if its
/// worker had not exited yet; the registry's records are the exact account of every run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReport {
    /// Runs that ended `Completed`.
    pub completed: usize,
    /// Runs that ended `Failed`.
    pub failed: usize,
    /// Runs that ended `Cancelled` (by a caller or by the deadline).
    pub cancelled: usize,
    /// The runs the deadline cancelled, in the order they were cancelled.
    pub cancelled_by_drain: Vec<RunId>,
    /// Whether the deadline passed before every run ended by itself.
    pub deadline_hit: bool,
}

/// One queue as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStatus {
    /// The queue's name.
    pub name: String,
    /// Its concurrency limit (`None`: only the global limit).
    pub limit: Option<usize>,
    /// Runs waiting to start (retry waits excluded).
    pub queued: usize,
    /// Runs with a live worker.
    pub running: usize,
    /// Runs admitted and not yet started, as counted against `max_length`.
    pub admitted_waiting: usize,
}

/// The supervisor's view of its runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorStatus {
    /// Runs waiting for a slot, in all queues.
    pub queued: usize,
    /// Runs with a live worker.
    pub running: usize,
    /// Runs waiting for their retry backoff to pass.
    pub retry_waiting: usize,
    /// The global limit (`None`: unlimited).
    pub global_limit: Option<usize>,
    /// Per-queue figures, default queue included.
    pub queues: Vec<QueueStatus>,
    /// Drain progress.
    pub drain: DrainState,
}
