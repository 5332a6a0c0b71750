//! The supervisor's protocol: what it accepts and the values it answers with.

use std::sync::Arc;
use std::time::Duration;

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use ractor::ActorRef;

use crate::error::{CallError, CancelError, SubmitError, UnknownQueue, ask};
use crate::job::BoxedJob;
use crate::kinds::RecoveryReport;
use crate::protocol::logs::LogsRef;
use crate::protocol::registry::{DEFAULT_CALL_TIMEOUT, RegistryRef};
use crate::protocol::run::{CancelOutcome, CancelReply, PreparedRun};
use crate::query::ListQuery;
use crate::queue::{RateLimit, RateScope};
use crate::run::{DependencyOutcome, WorkflowId};
use crate::run::{RunId, RunSpec};
use crate::schedule::{NoSuchSchedule, ScheduleId, ScheduleInfo, ScheduleSpec};
use crate::submitter::Submitter;
use crate::workflow::{Workflow, WorkflowRuns, WorkflowView};

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
    /// (`ShuttingDown`, `QueueFull`, ...). In [`StartMode::Inline`] the id comes once the run
    /// has ended. (The spec is boxed: every message in a mailbox is
    /// as large as the largest variant.)
    Submit(
        Box<RunSpec>,
        BoxedJob,
        RpcReplyPort<Result<RunId, SubmitError>>,
    ),
    /// Sent by an application actor: accept many runs with one message to the registry and
    /// one store transaction. Replies once the batch is committed (without a store, once it
    /// is recorded) with one answer per run, in order: its id, or why it was refused (nothing
    /// of a refused run is recorded). In [`StartMode::Inline`], once every accepted run has
    /// ended.
    SubmitMany(
        Vec<(RunSpec, BoxedJob)>,
        RpcReplyPort<Vec<Result<RunId, SubmitError>>>,
    ),
    /// Sent by an application actor: submit a workflow (see [`crate::Submitter::submit_workflow`]):
    /// every step recorded together, or none. Replies once they are committed (without a store,
    /// recorded).
    SubmitWorkflow(
        Box<Workflow>,
        RpcReplyPort<Result<WorkflowRuns, SubmitError>>,
    ),
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
    /// Sent by anyone: begin a drain as `Drain` does (or join the one under way), and reply
    /// at once with the drain's state: from that answer on, every submit is refused, so a
    /// caller can stop its own producers at that moment. `Drain` then waits for the report.
    BeginDrain(Duration, RpcReplyPort<DrainState>),
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
    /// Sent by anyone: pause (`true`) or resume a queue. While paused nothing of it starts;
    /// submits are still accepted and running runs go on. Resumed, its runs start in the order
    /// they would have.
    SetPaused(String, bool, RpcReplyPort<Result<(), UnknownQueue>>),
    /// Sent by anyone: set or lift (`None`) a rate limit: a queue's, each of its keys', or a
    /// kind's over all queues. Runs over it wait `Queued`; the starts already made count
    /// against the new limit. Only a queue can be unknown (any label can be a kind).
    SetRate(
        RateScope,
        Option<RateLimit>,
        RpcReplyPort<Result<(), UnknownQueue>>,
    ),
    /// Sent by anyone: set or lift (`None`) a queue's per-key concurrency limit (0 is read as
    /// 1). Runs of a key at its limit wait `Queued`; running runs go on.
    SetPerKey(
        String,
        Option<usize>,
        RpcReplyPort<Result<(), UnknownQueue>>,
    ),
    /// Sent by anyone (tests, mostly): how a supervisor started in [`StartMode::Held`] lets
    /// held runs start. Answers the ids of
    /// [`Release::Runs`] that were not waiting in a queue (unknown, started, or waiting for a
    /// retry), which nothing started.
    Release(Release, RpcReplyPort<Vec<RunId>>),
    /// Sent by anyone: run a repeatable job periodically. An interval schedule's first
    /// occurrence is submitted at once, a cron schedule's at its first fire time; each is a
    /// normal run. Refused once draining, for a run-once job, or for a schedule that cannot
    /// fire. (Boxed: a cron schedule is large, and every message is as large as the largest.)
    Schedule(
        Box<ScheduleSpec>,
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
    /// Query: the supervisor's next timer still to fire, if any: what a test on tokio's
    /// paused clock advances to (see [`DueTimer`]).
    NextTimer(RpcReplyPort<Option<DueTimer>>),
    /// Query: what start-up recovery did with the runs a previous process left active.
    Recovery(RpcReplyPort<Arc<RecoveryReport>>),
    /// Query: the log keeper's ref, if the supervisor keeps logs
    /// ([`crate::SupervisorArguments::logs`]).
    Logs(RpcReplyPort<Option<LogsRef>>),
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
    /// Sent by the registry for a run it handed over waiting (`awaiting`): every dependency
    /// has ended and it is recorded `Queued`; queue it, its job reading these outcomes.
    /// (Boxed, as is the next: every message is as large as the largest variant.)
    DependenciesMet(Box<(RunId, Arc<[DependencyOutcome]>)>),
    /// Sent by the registry for a run it handed over waiting: a dependency that had to
    /// complete did not; end it `Cancelled` by [`crate::CancelReason::Dependency`] with this
    /// message.
    DependencyFailed(Box<(RunId, String)>),
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
    /// Sent by the supervisor to itself when a queue's rate limit allows its next start.
    RateDue,
    /// Sent by the supervisor to itself when the earliest deadline passes by which a stopping
    /// attempt (cancelled, or past its time limit) must have ended: a run whose job still
    /// holds its worker's task is ended without it.
    BackstopDue,
    /// Sent by the supervisor to itself when a schedule's next occurrence is due (the
    /// generation tells a stale timer from the current one).
    ScheduleDue(ScheduleId, u64),
    /// Sent by the registry for a submit that replaces the unstarted holder of an idempotency
    /// key: cancel the run if it is still queued (never started), then answer the registry
    /// with `ReplaceDone(key, replaced)`, after the cancel's terminal status.
    ReplaceQueued(RunId, String),
    /// Sent by the registry after it restarted from its store. More than
    /// [`crate::REGISTRY_RESTARTS`] restarts within [`crate::RESTART_WINDOW`] make the
    /// supervisor fail (escalating to its own supervisor), as an Erlang supervisor's restart
    /// intensity would.
    RegistryRestarted(String),
    /// Sent by fault-injection tests only: the next attempt of a run labelled `label` to start
    /// runs this job instead of its own (one stand-in per attempt, in the order given).
    /// (Boxed: every message is as large as the largest variant.)
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    StandIn(Box<(Arc<str>, BoxedJob, RpcReplyPort<()>)>),
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
    /// Nothing new starts while paused.
    #[serde(default)]
    pub paused: bool,
    /// Its rate limit, if any.
    #[serde(default)]
    pub rate: Option<RateLimit>,
    /// Its per-key concurrency limit, if any.
    #[serde(default)]
    pub per_key: Option<usize>,
    /// Partition keys with runs waiting or running in it.
    #[serde(default)]
    pub keys: usize,
    /// The rate limit of each of its partition keys, if any.
    #[serde(default)]
    pub key_rate: Option<RateLimit>,
    /// Its priority aging step, if any.
    #[serde(default, with = "crate::serde_duration::opt_millis")]
    pub aging: Option<Duration>,
}

/// How a supervisor starts the runs it accepts: as production does, or in one of the two
/// modes tests use. Runs are accepted and recorded exactly as in production in every mode
/// (ids, records, events, queues); only when they start differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartMode {
    /// Runs start as the queues' limits allow.
    #[default]
    Normal,
    /// Manual: nothing starts until [`Release`]d ([`SupervisorMessage::Release`]), and then
    /// in the order production would start it. A drain does not release held runs: at its
    /// deadline they end `Cancelled`, like any queued run.
    Held,
    /// Inline: every run starts as soon as it is recorded, whatever the concurrency limits,
    /// rate limits and pauses say (they still count it), and every awaited submit answers only
    /// once its run has ended: [`SupervisorMessage::Submit`] (and [`SupervisorRef::submit`]),
    /// and a [`crate::SubmitRequest`] sent with `.send().await`. A run's retries happen before
    /// that answer, at their backoff. A submit from inside a job (a nested submit) runs the
    /// nested run to its end too, then the outer job goes on. An actor that awaits a submit in
    /// its handler is busy until the run ends, so a job that calls that actor back waits
    /// forever: such a job is for normal or manual mode. The synchronous
    /// [`crate::Submitter::submit`] cannot wait without blocking its thread: its run starts at
    /// once, and the call returns at once, as in production.
    Inline,
}

/// How held runs may start, in a supervisor that holds them ([`StartMode::Held`]): runs are
/// accepted and recorded as in production, and start only as released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Release {
    /// The next `n` starts, chosen exactly as production would (priority, turns, limits).
    Next(usize),
    /// These queued runs, at once and in this order, whatever the limits (a test releasing a
    /// run means it to run); other held runs stay held.
    Runs(Vec<RunId>),
    /// Everything, from now on: the supervisor stops holding.
    All,
    /// Hold again: nothing more starts until released (releases not yet used are dropped).
    Hold,
}

/// A timer of the supervisor's, still to fire: how far away it is and what it is for. The
/// supervisor's timers are the retry and snooze waits, rate-limit wakes, schedule fires, the
/// drain deadline, and (counted from its worker's start) each running attempt's time limit.
/// A cancel's grace period and retention passes are timed elsewhere and not reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueTimer {
    /// How long from now until it fires.
    #[serde(with = "crate::serde_duration::millis")]
    pub due_in: Duration,
    /// What it does when it fires.
    pub purpose: TimerPurpose,
}

/// What a [`DueTimer`] does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimerPurpose {
    /// The run's retry backoff (or snooze) is over: it goes back into its queue.
    Retry(RunId),
    /// A rate limit lets a waiting run start.
    RateLimit,
    /// The schedule's next occurrence is due.
    Schedule(ScheduleId),
    /// The running attempt reaches its time limit.
    TimeLimit(RunId),
    /// The drain deadline: runs still active are cancelled.
    DrainDeadline,
}

/// A kind's rate limit as the supervisor sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindRateStatus {
    /// The kind (the label of the runs it limits).
    pub kind: String,
    /// Its rate limit, over all queues.
    pub rate: RateLimit,
    /// Runs of the kind waiting to start.
    pub queued: usize,
}

/// The supervisor's view of its runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorStatus {
    /// Runs waiting for a slot, in all queues.
    pub queued: usize,
    /// Runs with a live worker.
    pub running: usize,
    /// Runs waiting for their retry backoff or their snooze to pass.
    pub retry_waiting: usize,
    /// Runs waiting for their dependencies to end (`Waiting`).
    #[serde(default)]
    pub awaiting: usize,
    /// The global limit (`None`: unlimited).
    pub global_limit: Option<usize>,
    /// Per-queue figures, default queue included.
    pub queues: Vec<QueueStatus>,
    /// The kinds with a rate limit, by name.
    #[serde(default)]
    pub kind_rates: Vec<KindRateStatus>,
    /// How the supervisor starts runs.
    #[serde(default)]
    pub mode: StartMode,
    /// While the supervisor holds runs: how many more may start (`None`: not holding).
    #[serde(default)]
    pub hold: Option<usize>,
    /// Drain progress.
    pub drain: DrainState,
}

/// The supervisor's address with a named method per request (ractor's `FactoryRef` pattern):
/// what an application holds to submit, cancel, drain and shut down.
///
/// [`crate::SupervisorActor::spawn`] and [`crate::SupervisorActor::spawn_linked`] return one;
/// `From<ActorRef<SupervisorMessage>>` wraps a supervisor spawned by hand. Every method sends
/// one public [`SupervisorMessage`] and waits for its answer, at most the ref's timeout (5 s
/// unless set with [`SupervisorRef::with_timeout`]); `drain` and `shutdown` wait as long as the
/// drain takes. The outer `Result` says whether the supervisor answered ([`CallError`]), the
/// inner one is its answer.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use runwarden_actors::{BoxedJob, RunSpec, RunStatus, SupervisorActor, SupervisorArguments};
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (runs, _) = SupervisorActor::spawn(SupervisorArguments::default()).await?;
/// let held = BoxedJob::new(|ctx| async move {
///     ctx.cancelled().await;
///     Ok(())
/// });
/// let id = runs.submit(RunSpec::new("held"), held).await??;
/// runs.cancel(id).await??;
/// let record = runs.registry().await?.wait(id).await??;
/// assert_eq!(record.status, RunStatus::Cancelled);
/// let report = runs.shutdown(Duration::from_secs(1)).await?;
/// assert!(!report.deadline_hit);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SupervisorRef {
    actor: ActorRef<SupervisorMessage>,
    timeout: Duration,
    /// The supervisor is in [`StartMode::Inline`]: a submit's answer waits for its run's end,
    /// so it is not bounded by the timeout.
    inline: bool,
}

/// Wraps an address without asking the supervisor anything: this ref's `submit` waits at most
/// its timeout even for a supervisor in [`StartMode::Inline`] (whose answers come at each
/// run's end). [`SupervisorRef::connect`] asks the supervisor its mode.
impl From<ActorRef<SupervisorMessage>> for SupervisorRef {
    fn from(actor: ActorRef<SupervisorMessage>) -> Self {
        SupervisorRef {
            actor,
            timeout: DEFAULT_CALL_TIMEOUT,
            inline: false,
        }
    }
}

impl SupervisorRef {
    /// A ref to a supervisor spawned elsewhere, which knows the supervisor's [`StartMode`]
    /// (one round trip).
    pub async fn connect(actor: ActorRef<SupervisorMessage>) -> Result<Self, CallError> {
        let mut runs = SupervisorRef::from(actor);
        runs.inline = runs.status().await?.mode == StartMode::Inline;
        Ok(runs)
    }

    pub(crate) fn spawned(actor: ActorRef<SupervisorMessage>, mode: StartMode) -> Self {
        SupervisorRef {
            inline: mode == StartMode::Inline,
            ..SupervisorRef::from(actor)
        }
    }

    /// The same supervisor, with requests waiting at most `timeout` for an answer.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long requests wait for an answer.
    #[must_use]
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The supervisor's address, to send it messages directly or to link to it.
    #[must_use]
    pub fn actor(&self) -> &ActorRef<SupervisorMessage> {
        &self.actor
    }

    async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<T>) -> SupervisorMessage,
        request: &'static str,
    ) -> Result<T, CallError> {
        ask(&self.actor, build, Some(self.timeout), request).await
    }

    /// A [`Submitter`]: the synchronous submit path, which needs no round trip per run.
    pub async fn submitter(&self) -> Result<Submitter, CallError> {
        self.ask(SupervisorMessage::GetSubmitter, "get_submitter")
            .await
    }

    /// The supervisor's registry, with this ref's timeout.
    pub async fn registry(&self) -> Result<RegistryRef, CallError> {
        let submitter = self.submitter().await?;
        Ok(RegistryRef::from(submitter.registry().clone()).with_timeout(self.timeout))
    }

    /// Submits a run by message (one round trip; [`Submitter::submit`] needs none). In
    /// [`StartMode::Inline`] it answers once the run has ended, however long that takes.
    pub async fn submit(
        &self,
        spec: RunSpec,
        job: BoxedJob,
    ) -> Result<Result<RunId, SubmitError>, CallError> {
        let submit = |r| SupervisorMessage::Submit(Box::new(spec), job, r);
        let timeout = (!self.inline).then_some(self.timeout);
        ask(&self.actor, submit, timeout, "submit").await
    }

    /// Submits many runs with one message (see [`SupervisorMessage::SubmitMany`]): one answer
    /// per run, in order, once the batch is committed.
    pub async fn submit_many(
        &self,
        runs: Vec<(RunSpec, BoxedJob)>,
    ) -> Result<Vec<Result<RunId, SubmitError>>, CallError> {
        let submit = |r| SupervisorMessage::SubmitMany(runs, r);
        let timeout = (!self.inline).then_some(self.timeout);
        ask(&self.actor, submit, timeout, "submit_many").await
    }

    /// Submits a workflow (see [`SupervisorMessage::SubmitWorkflow`]).
    pub async fn submit_workflow(
        &self,
        workflow: Workflow,
    ) -> Result<Result<WorkflowRuns, SubmitError>, CallError> {
        let submit = |r| SupervisorMessage::SubmitWorkflow(Box::new(workflow), r);
        let timeout = (!self.inline).then_some(self.timeout);
        ask(&self.actor, submit, timeout, "submit_workflow").await
    }

    /// Re-runs a finished run (see [`Submitter::rerun`]).
    pub async fn rerun(&self, original: RunId) -> Result<Result<RunId, SubmitError>, CallError> {
        Ok(self.submitter().await?.rerun(original).await)
    }

    /// Re-runs every finished run matching `filter` (see [`Submitter::rerun_matching`]).
    pub async fn rerun_matching(
        &self,
        filter: ListQuery,
    ) -> Result<Vec<(RunId, Result<RunId, SubmitError>)>, CallError> {
        self.submitter().await?.rerun_matching(filter).await
    }

    /// Workflow `id` as the registry holds it now (`None` if it has no steps held).
    pub async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowView>, CallError> {
        self.registry().await?.workflow(id).await
    }

    /// Cancels every step of workflow `id` that has not ended, answering per run (as
    /// [`SupervisorRef::cancel_matching`]).
    pub async fn cancel_workflow(
        &self,
        id: WorkflowId,
    ) -> Result<Vec<(RunId, Result<Result<CancelOutcome, CancelError>, CallError>)>, CallError>
    {
        self.cancel_matching(ListQuery::new().workflow(id)).await
    }

    /// Cancels a run in any active state. Every `Ok` means the run ends `Cancelled`.
    pub async fn cancel(&self, id: RunId) -> Result<Result<CancelOutcome, CancelError>, CallError> {
        self.ask(|r| SupervisorMessage::Cancel(id, r), "cancel")
            .await
    }

    /// Cancels many runs with one message; each answer is the one [`SupervisorRef::cancel`]
    /// would give, in the order of `ids`, all within one timeout.
    pub async fn cancel_many(
        &self,
        ids: &[RunId],
    ) -> Vec<Result<Result<CancelOutcome, CancelError>, CallError>> {
        let request = "cancel_many";
        let mut requests = Vec::with_capacity(ids.len());
        let mut answers = Vec::with_capacity(ids.len());
        for id in ids {
            let (tx, rx) = tokio::sync::oneshot::channel();
            requests.push((*id, tx.into()));
            answers.push(rx);
        }
        let n = answers.len();
        let mut out = Vec::with_capacity(n);
        if self
            .actor
            .cast(SupervisorMessage::CancelMany(requests))
            .is_err()
        {
            out.resize_with(n, || Err(CallError::Unavailable { request }));
            return out;
        }
        // One deadline for the whole batch (one timer, not one per run); answers still missing
        // when it passes are timeouts.
        let collect = async {
            for rx in answers {
                out.push(rx.await.map_err(|_| CallError::Unavailable { request }));
            }
        };
        let _ = tokio::time::timeout(self.timeout, collect).await;
        out.resize_with(n, || Err(CallError::Timeout { request }));
        out
    }

    /// Cancels every active run matching `filter` (its label, queue, and status if given; a
    /// terminal status matches nothing) when the registry answers: one
    /// [`RegistryMessage`](crate::RegistryMessage)`::ActiveMatching` for their ids, then one
    /// [`SupervisorRef::cancel_many`] per 1,000. Answers per run, oldest first; a run that
    /// ended in between answers `AlreadyFinished`. Runs submitted after the registry answered
    /// are not included.
    pub async fn cancel_matching(
        &self,
        filter: ListQuery,
    ) -> Result<Vec<(RunId, Result<Result<CancelOutcome, CancelError>, CallError>)>, CallError>
    {
        const CHUNK: usize = 1000;
        let ids = self.registry().await?.active_matching(filter).await?;
        let mut answers = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(CHUNK) {
            let outcomes = self.cancel_many(chunk).await;
            answers.extend(chunk.iter().copied().zip(outcomes));
        }
        Ok(answers)
    }

    /// Stops accepting runs and waits until every accepted run is terminal; at `deadline` the
    /// runs still active are cancelled. The actors keep answering queries afterwards.
    pub async fn drain(&self, deadline: Duration) -> Result<DrainReport, CallError> {
        let drain = |r| SupervisorMessage::Drain(deadline, r);
        ask(&self.actor, drain, None, "drain").await
    }

    /// Begins a drain (see [`SupervisorMessage::BeginDrain`]) and returns once it has begun:
    /// from then on every submit is refused. [`SupervisorRef::drain`] waits for its end.
    pub async fn begin_drain(&self, deadline: Duration) -> Result<DrainState, CallError> {
        self.ask(
            |r| SupervisorMessage::BeginDrain(deadline, r),
            "begin_drain",
        )
        .await
    }

    /// Drains, then stops the registry, the supervisor's other children and the supervisor,
    /// and waits until they have exited.
    ///
    /// Order matters. The registry goes first and drains: it applies every status message
    /// already in its mailbox (workers cast their terminal status before they exit, so some
    /// may still be queued after the drain finished), hands the last writes to its store and
    /// waits for them. Then the supervisor's other children (a log keeper) drain what the
    /// registry sent them. Then the supervisor, which treats its registry's exit after a
    /// drain as the end; a supervisor that stops kills children that are still running.
    pub async fn shutdown(&self, deadline: Duration) -> Result<DrainReport, CallError> {
        let report = self.drain(deadline).await?;
        let request = "shutdown";
        let registry = self.submitter().await?.registry().clone();
        let _ = registry.drain_and_wait(Some(self.timeout)).await;
        registry
            .wait(Some(self.timeout))
            .await
            .map_err(|_| CallError::Timeout { request })?;
        for child in self.actor.get_children() {
            if child.get_id() != registry.get_id() {
                let _ = child.drain_and_wait(Some(self.timeout)).await;
            }
        }
        self.actor.stop(Some("shutdown".to_owned()));
        self.actor
            .wait(Some(self.timeout))
            .await
            .map_err(|_| CallError::Timeout { request })?;
        Ok(report)
    }

    /// Queues, limits and drain state as the supervisor sees them.
    pub async fn status(&self) -> Result<SupervisorStatus, CallError> {
        self.ask(SupervisorMessage::Status, "supervisor_status")
            .await
    }

    /// The supervisor's next timer still to fire, if any ([`DueTimer`]).
    pub async fn next_timer(&self) -> Result<Option<DueTimer>, CallError> {
        self.ask(SupervisorMessage::NextTimer, "next_timer").await
    }

    /// What start-up recovery did with the runs a previous process left active.
    pub async fn recovery(&self) -> Result<Arc<RecoveryReport>, CallError> {
        self.ask(SupervisorMessage::Recovery, "recovery").await
    }

    /// The log keeper's ref, if the supervisor keeps logs ([`crate::SupervisorArguments::logs`]).
    pub async fn logs(&self) -> Result<Option<LogsRef>, CallError> {
        self.ask(SupervisorMessage::Logs, "logs").await
    }

    /// Changes the global limit (`queue: None`) or a queue's limit (`limit: None`: none).
    pub async fn set_limit(
        &self,
        queue: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Result<(), UnknownQueue>, CallError> {
        let queue = queue.map(str::to_owned);
        self.ask(
            |r| SupervisorMessage::SetLimit(queue, limit, r),
            "set_limit",
        )
        .await
    }

    /// Changes how many runs may wait in a queue (`None`: unbounded).
    pub async fn set_max_length(
        &self,
        queue: &str,
        max: Option<usize>,
    ) -> Result<Result<(), UnknownQueue>, CallError> {
        let queue = queue.to_owned();
        let set = |r| SupervisorMessage::SetMaxLength(queue, max, r);
        self.ask(set, "set_queue_max_length").await
    }

    /// Pauses a queue: nothing of it starts until [`SupervisorRef::resume_queue`]; submits
    /// are still accepted and running runs go on.
    pub async fn pause_queue(&self, queue: &str) -> Result<Result<(), UnknownQueue>, CallError> {
        let queue = queue.to_owned();
        self.ask(
            |r| SupervisorMessage::SetPaused(queue, true, r),
            "pause_queue",
        )
        .await
    }

    /// Resumes a paused queue: its runs start in the order they would have.
    pub async fn resume_queue(&self, queue: &str) -> Result<Result<(), UnknownQueue>, CallError> {
        let queue = queue.to_owned();
        self.ask(
            |r| SupervisorMessage::SetPaused(queue, false, r),
            "resume_queue",
        )
        .await
    }

    /// Sets or lifts (`None`) a queue's per-key concurrency limit.
    pub async fn set_per_key(
        &self,
        queue: &str,
        limit: Option<usize>,
    ) -> Result<Result<(), UnknownQueue>, CallError> {
        let queue = queue.to_owned();
        self.ask(
            |r| SupervisorMessage::SetPerKey(queue, limit, r),
            "set_queue_per_key",
        )
        .await
    }

    /// Lets held runs start ([`Release`]); answers the ids of `Release::Runs` that were not
    /// waiting in a queue.
    pub async fn release(&self, release: Release) -> Result<Vec<RunId>, CallError> {
        self.ask(|r| SupervisorMessage::Release(release, r), "release")
            .await
    }

    /// Sets or lifts (`None`) a rate limit of `scope`: a queue's, each of a queue's keys',
    /// or a kind's.
    pub async fn set_rate(
        &self,
        scope: RateScope,
        rate: Option<RateLimit>,
    ) -> Result<Result<(), UnknownQueue>, CallError> {
        self.ask(|r| SupervisorMessage::SetRate(scope, rate, r), "set_rate")
            .await
    }

    /// Runs a repeatable job periodically.
    pub async fn schedule(
        &self,
        spec: ScheduleSpec,
        job: BoxedJob,
    ) -> Result<Result<ScheduleId, SubmitError>, CallError> {
        self.ask(
            |r| SupervisorMessage::Schedule(Box::new(spec), job, r),
            "schedule",
        )
        .await
    }

    /// Stops submitting a schedule's occurrences until resumed.
    pub async fn pause_schedule(
        &self,
        id: ScheduleId,
    ) -> Result<Result<(), NoSuchSchedule>, CallError> {
        self.ask(
            |r| SupervisorMessage::PauseSchedule(id, r),
            "pause_schedule",
        )
        .await
    }

    /// Submits a schedule's occurrences again, the next one at once.
    pub async fn resume_schedule(
        &self,
        id: ScheduleId,
    ) -> Result<Result<(), NoSuchSchedule>, CallError> {
        self.ask(
            |r| SupervisorMessage::ResumeSchedule(id, r),
            "resume_schedule",
        )
        .await
    }

    /// Forgets a schedule (an active occurrence carries on as a normal run).
    pub async fn remove_schedule(
        &self,
        id: ScheduleId,
    ) -> Result<Result<ScheduleInfo, NoSuchSchedule>, CallError> {
        self.ask(
            |r| SupervisorMessage::RemoveSchedule(id, r),
            "remove_schedule",
        )
        .await
    }

    /// Every schedule's counters.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>, CallError> {
        self.ask(SupervisorMessage::Schedules, "schedules").await
    }
}
