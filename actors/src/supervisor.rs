//! The supervisor actor: admission, named queues with limits and priorities, one linked
//! worker per running attempt, retry waits, cancellation and drain.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort,
    SupervisionEvent,
};
use serde::{Deserialize, Serialize};

use crate::error::{CancelError, SubmitError, UnknownQueue};
use crate::hash::{IdMap, IdSet};
use crate::job::BoxedJob;
use crate::log::LogSink;
use crate::queue::{QueueConfig, QueueSlot, QueueTable};
use crate::registry::{
    Admission, RegistryActor, RegistryArguments, RegistryMessage, Retention, Stored, Submission,
};
use crate::run::{
    DEFAULT_QUEUE, ErrorKind, RetryPolicy, RunId, RunSpec, RunStatus, Transition, TransitionError,
};
use crate::schedule::{NoSuchSchedule, ScheduleId, ScheduleInfo, ScheduleMode, ScheduleSpec};
use crate::store::{RunStore, StoredState};
use crate::submitter::{Gate, Submitter};
use crate::worker::{
    self, AbortOnDrop, AttemptEnd, CancelReply, WorkerActor, WorkerArguments, WorkerMessage,
    WorkerState,
};

/// Messages the supervisor handles.
#[derive(Debug)]
pub enum SupervisorMessage {
    /// Sent by an application actor: accept a run. The supervisor records it in the registry
    /// (which hands the job back as [`SupervisorMessage::Start`]) and replies with its id, or
    /// a [`SubmitError`] (`ShuttingDown`, `QueueFull`, ...).
    Submit(RunSpec, BoxedJob, RpcReplyPort<Result<RunId, SubmitError>>),
    /// Sent only by the registry, right after it recorded the run: queue the run by priority,
    /// and start runs while limits allow. ([`PreparedRun`] cannot be built outside this crate.)
    Start(Box<PreparedRun>),
    /// Sent by anyone: cancel a run. A queued or retry-waiting run is cancelled here and
    /// answered at once; a running run's request (with the caller's port) is forwarded to its
    /// worker, which answers; for any other id the registry answers `NotFound` or
    /// `AlreadyFinished`.
    Cancel(RunId, CancelReply),
    /// Sent by anyone: many cancels in one message, each answered on its own port exactly as
    /// [`SupervisorMessage::Cancel`] would be. Cancelling a batch costs one message to the
    /// supervisor instead of one round trip per run.
    CancelMany(Vec<(RunId, CancelReply)>),
    /// Sent by the registry: a [`SupervisorMessage::Cancel`] that overtook its run's `Start`,
    /// sent back once, now behind that `Start`.
    CancelForwarded(Internal, RunId, CancelReply),
    /// Sent by anyone: stop accepting runs, wait until every accepted run is terminal, and
    /// reply with the report. At `deadline` the runs still active are cancelled. Several
    /// drains share the first one's deadline; a drain after the end replies at once.
    Drain(Duration, RpcReplyPort<DrainReport>),
    /// Sent by the registry, forwarding the barrier the supervisor sent it after closing the
    /// admission gate: the `Start` of every run admitted before the gate closed is ahead of it.
    DrainBarrier(Internal),
    /// Sent by the supervisor to itself when the drain deadline passes.
    DrainDeadline(Internal),
    /// Sent by the supervisor to itself when a run's retry backoff has passed: the run goes
    /// back into its queue.
    RetryDue(Internal, RunId),
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
    /// Sent by the supervisor to itself when a schedule's next occurrence is due.
    ScheduleDue(Internal, ScheduleId, u64),
    /// Sent by the registry after it restarted from its store. More than
    /// [`REGISTRY_RESTARTS`] restarts within [`RESTART_WINDOW`] make the supervisor fail
    /// (escalating to its own supervisor), as an Erlang supervisor's restart intensity would.
    RegistryRestarted(Internal, String),
    /// Query: a [`Submitter`] for this supervisor (the handle's fast path).
    GetSubmitter(RpcReplyPort<Submitter>),
    /// Query: queues, limits and drain state as the supervisor sees them.
    Status(RpcReplyPort<SupervisorStatus>),
}

/// Registry restarts allowed within [`RESTART_WINDOW`] before the supervisor gives up.
pub const REGISTRY_RESTARTS: usize = 5;

/// The window over which registry restarts are counted.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Marks a message that only runwarden's own actors may send. It cannot be built outside
/// this crate, so no other sender can fake a drain barrier, a deadline or a forwarded cancel.
#[derive(Debug)]
pub struct Internal(());

impl Internal {
    pub(crate) fn new() -> Self {
        Internal(())
    }
}

/// One attempt of a run on its way from the registry to the supervisor and on to a worker.
/// Its fields are private so only runwarden's actors can make one.
pub struct PreparedRun {
    pub(crate) id: RunId,
    pub(crate) label: Arc<str>,
    pub(crate) queue: Arc<str>,
    pub(crate) priority: i32,
    pub(crate) attempt: u32,
    pub(crate) timeout: Option<Duration>,
    /// Boxed: most runs have none, and a queued run's size counts.
    pub(crate) retry: Option<Box<RetryPolicy>>,
    job: Option<BoxedJob>,
    /// The run's place in its queue's length bound, held until the run first starts.
    slot: Option<QueueSlot>,
}

impl PreparedRun {
    pub(crate) fn new(record: &Stored, submission: Submission) -> Box<Self> {
        Box::new(PreparedRun {
            id: record.id(),
            label: record.shared_label().clone(),
            queue: record.shared_queue().clone(),
            priority: record.priority(),
            attempt: record.attempt(),
            timeout: submission.timeout,
            retry: submission.retry.map(Box::new),
            job: Some(submission.job),
            slot: submission.slot,
        })
    }

    pub(crate) fn has_job(&self) -> bool {
        self.job.is_some()
    }

    /// The job for one attempt: a handle to a repeatable job (which stays for retries), or
    /// the run-once job itself.
    pub(crate) fn take_job_for_attempt(&mut self) -> Option<BoxedJob> {
        match self.job.as_ref().and_then(BoxedJob::try_clone) {
            Some(job) => Some(job),
            None => self.job.take(),
        }
    }
}

impl fmt::Debug for PreparedRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedRun")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("queue", &self.queue)
            .field("priority", &self.priority)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Who asked for a cancel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// A caller, through [`SupervisorMessage::Cancel`].
    User,
    /// The deadline of a drain passed while the run was still active.
    DrainDeadline,
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CancelReason::User => "a caller",
            CancelReason::DrainDeadline => "the drain deadline",
        })
    }
}

/// What a successful cancel did. Every `Ok` answer means the run ends `Cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The run was queued (or waiting to be retried): it is `Cancelled` now, and its job will
    /// not run again.
    CancelledWhileQueued,
    /// The run was running: its job was signalled and the run will end `Cancelled`, at the
    /// latest when the grace period runs out.
    Signalled,
    /// A cancel was already under way; the run will end `Cancelled`.
    AlreadyCancelling,
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

/// The supervisor actor. Stateless itself; see [`SupervisorState`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SupervisorActor;

/// Start-up input of the supervisor.
pub struct SupervisorArguments {
    /// At most this many runs execute at once, over all queues; the rest wait `Queued` (no
    /// worker, no task). `None`: no global limit.
    pub max_concurrent: Option<usize>,
    /// How long a cancelled (or timed-out) job may take to stop before its future is dropped.
    pub cancel_grace: Duration,
    /// Named queues. The queue `"default"` always exists (unlimited unless configured here).
    pub queues: Vec<(String, QueueConfig)>,
    /// How long a finished run keeps its idempotency key (default 60 s).
    pub dedup_window: Duration,
    /// How many live events a subscriber may fall behind before it lags (default 4096).
    pub event_buffer: usize,
    /// Where jobs' log lines and runs' ends go (`None`: logs are dropped).
    pub logs: Option<Arc<dyn LogSink>>,
    /// The durable store and what was loaded from it (`None`: records only in memory).
    pub store: Option<(Box<dyn RunStore>, StoredState)>,
    /// Retention of finished runs.
    pub retention: Retention,
}

impl fmt::Debug for SupervisorArguments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorArguments")
            .field("max_concurrent", &self.max_concurrent)
            .field("cancel_grace", &self.cancel_grace)
            .field("queues", &self.queues)
            .field("durable", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for SupervisorArguments {
    fn default() -> Self {
        SupervisorArguments {
            max_concurrent: None,
            cancel_grace: Duration::from_secs(5),
            queues: Vec::new(),
            dedup_window: Duration::from_secs(60),
            event_buffer: 4096,
            logs: None,
            store: None,
            retention: Retention::default(),
        }
    }
}

/// Counts of terminal statuses, by [`RunStatus::index`].
type Ended = [usize; 5];

type Timer = AbortOnDrop<Result<(), MessagingErr<SupervisorMessage>>>;

enum Drain {
    NotDraining,
    Draining {
        waiters: Vec<RpcReplyPort<DrainReport>>,
        /// `ended` when the drain began: the report counts what ended after.
        ended_before: Ended,
        barrier_seen: bool,
        deadline_hit: bool,
        cancelled_by_drain: Vec<RunId>,
        /// Held only so that dropping the drain state cancels the deadline timer task.
        _timer: Timer,
    },
    Drained(DrainReport),
}

/// Queue order: higher priority first, then submission order.
type QueueKey = (Reverse<i32>, u64);

struct QueueState {
    limit: Option<usize>,
    running: usize,
    waiting: BTreeMap<QueueKey, Box<PreparedRun>>,
}

struct RetryWait {
    run: Box<PreparedRun>,
    _timer: Timer,
}

struct ScheduleState {
    spec: ScheduleSpec,
    job: BoxedJob,
    info: ScheduleInfo,
    /// Bumped whenever the timer is re-armed or dropped, so a stale `ScheduleDue` is ignored.
    generation: u64,
    timer: Option<Timer>,
}

/// The supervisor's data.
pub struct SupervisorState {
    registry: ActorRef<RegistryMessage>,
    gate: Gate,
    table: Arc<QueueTable>,
    global_limit: Option<usize>,
    cancel_grace: Duration,
    logs: Option<Arc<dyn LogSink>>,
    /// Per queue, by the table's index.
    queues: Vec<QueueState>,
    /// Where each waiting run sits, for cancels.
    queued_at: IdMap<RunId, (usize, QueueKey)>,
    next_seq: u64,
    /// Live workers by run (with their queue), and the reverse map for supervision events.
    workers: IdMap<RunId, (ActorRef<WorkerMessage>, usize)>,
    runs_by_actor: IdMap<ActorId, RunId>,
    /// Runs waiting for their retry backoff. They own no actor; a timer task per run.
    retry_waits: IdMap<RunId, RetryWait>,
    /// Runs whose worker was sent a cancel: if the worker dies before ending the run, the run
    /// ends `Cancelled`, as the cancel's `Ok` answer promised.
    cancel_sent: IdSet<RunId>,
    /// Cancel requests for runs whose worker is stopping: answered when its exit arrives.
    parked_cancels: IdMap<RunId, Vec<CancelReply>>,
    /// Terminal statuses the supervisor has seen, since start.
    ended: Ended,
    drain: Drain,
    schedules: BTreeMap<ScheduleId, ScheduleState>,
    /// When the registry restarted, within the last [`RESTART_WINDOW`].
    registry_restarts: VecDeque<std::time::Instant>,
    /// Which schedule each active occurrence belongs to.
    occurrence_of: IdMap<RunId, ScheduleId>,
    next_schedule: u64,
}

impl fmt::Debug for SupervisorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorState")
            .field("queued", &self.queued_at.len())
            .field("running", &self.workers.len())
            .field("retry_waiting", &self.retry_waits.len())
            .finish_non_exhaustive()
    }
}

/// Arms (or re-arms) a schedule's timer; the previous timer, if any, is aborted.
fn arm(
    myself: &ActorRef<SupervisorMessage>,
    id: ScheduleId,
    s: &mut ScheduleState,
    after: Duration,
) {
    s.generation += 1;
    let generation = s.generation;
    let timer = myself.send_after(after, move || {
        SupervisorMessage::ScheduleDue(Internal::new(), id, generation)
    });
    s.timer = Some(AbortOnDrop(timer));
}

impl SupervisorState {
    /// Registers a schedule and submits its first occurrence.
    fn add_schedule(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        spec: ScheduleSpec,
        job: BoxedJob,
    ) -> Result<ScheduleId, SubmitError> {
        if !matches!(self.drain, Drain::NotDraining) {
            return Err(SubmitError::ShuttingDown);
        }
        if !job.is_repeatable() {
            return Err(SubmitError::NotRepeatable);
        }
        if self.table.index(spec.run.queue_name()).is_none() {
            return Err(SubmitError::UnknownQueue(spec.run.queue_name().to_owned()));
        }
        let id = ScheduleId(self.next_schedule);
        self.next_schedule += 1;
        let info = ScheduleInfo {
            id,
            label: spec.run.label.clone(),
            every_ms: spec.every.as_millis() as u64,
            mode: spec.mode,
            paused: false,
            runs: 0,
            completed: 0,
            failed: 0,
            cancelled: 0,
            skipped: 0,
            last_run: None,
            last_status: None,
            active_run: None,
        };
        self.schedules.insert(
            id,
            ScheduleState {
                spec,
                job,
                info,
                generation: 0,
                timer: None,
            },
        );
        self.fire_schedule(myself, id);
        tracing::info!(schedule = %id, "schedule added");
        Ok(id)
    }

    /// A schedule's occurrence is due: submit it (or skip it), and plan the next one.
    fn fire_schedule(&mut self, myself: &ActorRef<SupervisorMessage>, id: ScheduleId) {
        if !matches!(self.drain, Drain::NotDraining) {
            return;
        }
        let table = self.table.clone();
        let registry = self.registry.clone();
        let Some(s) = self.schedules.get_mut(&id) else {
            return;
        };
        if s.info.paused {
            return;
        }
        if s.spec.mode == ScheduleMode::FixedRate {
            arm(myself, id, s, s.spec.every);
        }
        if s.info.active_run.is_some() {
            s.info.skipped += 1;
            return;
        }
        let mut spec = s.spec.run.clone();
        let Some(job) = s.job.try_clone() else {
            return;
        };
        let slot = match table.admit(&mut spec, &job) {
            Ok(slot) => slot,
            Err(e) => {
                tracing::warn!(schedule = %id, error = %e, "schedule occurrence skipped");
                s.info.skipped += 1;
                if s.spec.mode == ScheduleMode::FixedDelay {
                    arm(myself, id, s, s.spec.every);
                }
                return;
            }
        };
        let run_id = RunId::new();
        let submission = Submission::admitted(job, slot, &spec);
        let insert = RegistryMessage::Admit(Admission::new(run_id, spec, submission));
        if registry.cast(insert).is_err() {
            tracing::error!(schedule = %id, "registry unreachable; occurrence not submitted");
            return;
        }
        s.info.runs += 1;
        s.info.last_run = Some(run_id);
        s.info.active_run = Some(run_id);
        self.occurrence_of.insert(run_id, id);
    }

    /// Stops every schedule's timer (a drain began): no occurrence is submitted any more.
    fn stop_schedules(&mut self) {
        for s in self.schedules.values_mut() {
            s.generation += 1;
            s.timer = None;
        }
    }

    fn drain_state(&self) -> DrainState {
        match self.drain {
            Drain::NotDraining => DrainState::NotDraining,
            Drain::Draining { .. } => DrainState::Draining,
            Drain::Drained(_) => DrainState::Drained,
        }
    }

    fn status(&self) -> SupervisorStatus {
        let queues = self
            .queues
            .iter()
            .enumerate()
            .map(|(i, q)| QueueStatus {
                name: self.table.name(i).to_owned(),
                limit: q.limit,
                queued: q.waiting.len(),
                running: q.running,
                admitted_waiting: self.table.waiting(i),
            })
            .collect();
        SupervisorStatus {
            queued: self.queued_at.len(),
            running: self.workers.len(),
            retry_waiting: self.retry_waits.len(),
            global_limit: self.global_limit,
            queues,
            drain: self.drain_state(),
        }
    }

    /// Counts a run's terminal status, and lets its schedule (if any) plan the next occurrence.
    fn note_end(&mut self, myself: &ActorRef<SupervisorMessage>, id: RunId, status: RunStatus) {
        self.ended[status.index()] += 1;
        let Some(sid) = self.occurrence_of.remove(&id) else {
            return;
        };
        let accepting = matches!(self.drain, Drain::NotDraining);
        let Some(s) = self.schedules.get_mut(&sid) else {
            return;
        };
        match status {
            RunStatus::Completed => s.info.completed += 1,
            RunStatus::Failed => s.info.failed += 1,
            _ => s.info.cancelled += 1,
        }
        s.info.last_status = Some(status);
        s.info.active_run = None;
        if s.spec.mode == ScheduleMode::FixedDelay && !s.info.paused && accepting {
            arm(myself, sid, s, s.spec.every);
        }
    }

    /// Records a terminal status the supervisor decided itself (queued cancel, drain).
    fn end_here(&mut self, myself: &ActorRef<SupervisorMessage>, id: RunId, t: Transition) {
        self.note_end(myself, id, t.target());
        if let Err(e) = self.registry.cast(RegistryMessage::Transition(id, t, None)) {
            tracing::error!(run_id = %id, error = %e, "registry unreachable; terminal status not recorded");
        }
    }

    /// Takes a newly accepted run (or one whose retry is due) into its queue, then starts
    /// what the limits allow.
    async fn accept(&mut self, myself: &ActorRef<SupervisorMessage>, run: Box<PreparedRun>) {
        match &mut self.drain {
            // Admitted before the gate closed, but its `Start` arrived after the deadline (the
            // barrier's round trip through the registry can be slower than a zero deadline).
            Drain::Draining {
                deadline_hit: true,
                cancelled_by_drain,
                ..
            } => {
                cancelled_by_drain.push(run.id);
                let t = Transition::cancelled(
                    ErrorKind::CancelledWhileQueued,
                    "cancelled by the drain deadline while queued",
                );
                self.end_here(myself, run.id, t);
                return;
            }
            // Only an `Insert` sent to the registry by hand, past the gate, can get here.
            Drain::Drained(_) => {
                let t = Transition::cancelled(
                    ErrorKind::CancelledWhileQueued,
                    "refused: the supervisor had already drained",
                );
                self.end_here(myself, run.id, t);
                return;
            }
            _ => {}
        }
        let queue = match self.table.index(&run.queue) {
            Some(q) => q,
            None => {
                tracing::warn!(run_id = %run.id, queue = %run.queue, "unknown queue; using the default queue");
                self.table.index(DEFAULT_QUEUE).unwrap_or(0)
            }
        };
        // Between messages no waiting run could start (every handler ends by starting what
        // it can), so a run whose queue has no one waiting and has room starts at once: the
        // same choice the queue would make, without passing through it.
        if self.queues[queue].waiting.is_empty() && self.has_room(queue) {
            self.spawn_worker(myself, queue, run).await;
            return;
        }
        let key = (Reverse(run.priority), self.next_seq);
        self.next_seq += 1;
        self.queued_at.insert(run.id, (queue, key));
        self.queues[queue].waiting.insert(key, run);
        self.start_queued(myself).await;
    }

    /// The queue whose head should start next: among queues under their limit, the head with
    /// the highest priority, then the earliest submission.
    fn next_queue(&self) -> Option<usize> {
        self.queues
            .iter()
            .enumerate()
            .filter(|(_, q)| q.limit.is_none_or(|l| q.running < l))
            .filter_map(|(i, q)| q.waiting.keys().next().map(|k| (*k, i)))
            .min()
            .map(|(_, i)| i)
    }

    /// Starts queued runs while the global and per-queue limits allow.
    async fn start_queued(&mut self, myself: &ActorRef<SupervisorMessage>) {
        while self.global_limit.is_none_or(|l| self.workers.len() < l) {
            let Some(q) = self.next_queue() else {
                return;
            };
            let Some((_, run)) = self.queues[q].waiting.pop_first() else {
                return;
            };
            self.queued_at.remove(&run.id);
            self.spawn_worker(myself, q, run).await;
        }
    }

    /// Whether a run of queue `q` may start now under the global and the queue's limits.
    fn has_room(&self, q: usize) -> bool {
        let queue = &self.queues[q];
        self.global_limit.is_none_or(|l| self.workers.len() < l)
            && queue.limit.is_none_or(|l| queue.running < l)
    }

    /// Starts a worker for `run` in queue `q`.
    async fn spawn_worker(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        q: usize,
        mut run: Box<PreparedRun>,
    ) {
        // Starting frees the run's place in the queue's length bound.
        run.slot = None;
        let id = run.id;
        let args = WorkerArguments {
            run,
            registry: self.registry.clone(),
            grace: self.cancel_grace,
            logs: self.logs.clone(),
        };
        // Linking makes this supervisor receive the worker's exit (with its final state)
        // or its failure, so no attempt can end without the supervisor hearing of it.
        match Actor::spawn_linked(None, WorkerActor, args, myself.get_cell()).await {
            Ok((worker, _)) => {
                self.runs_by_actor.insert(worker.get_id(), id);
                self.workers.insert(id, (worker, q));
                self.queues[q].running += 1;
            }
            Err(e) => {
                tracing::error!(run_id = %id, error = %e, "could not start a worker");
                let t = Transition::failed(
                    ErrorKind::WorkerDied,
                    format!("could not start a worker: {e}"),
                );
                self.end_here(myself, id, t);
            }
        }
    }

    /// Removes a run that is waiting (in a queue or for a retry) and ends it `Cancelled`.
    /// Returns `false` if the run was not waiting.
    fn cancel_waiting(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        id: RunId,
        why: &str,
    ) -> bool {
        let found = if let Some((q, key)) = self.queued_at.remove(&id) {
            self.queues[q].waiting.remove(&key).is_some()
        } else {
            self.retry_waits.remove(&id).is_some()
        };
        if found {
            self.end_here(
                myself,
                id,
                Transition::cancelled(ErrorKind::CancelledWhileQueued, why),
            );
        }
        found
    }

    /// Handles a cancel request. `forwarded` is set when the registry sent it back because it
    /// overtook the run's `Start`; such a request is never sent to the registry again.
    fn cancel(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        id: RunId,
        reply: CancelReply,
        forwarded: bool,
    ) {
        if self.cancel_waiting(myself, id, "cancelled by a caller while queued") {
            let _ = reply.send(Ok(CancelOutcome::CancelledWhileQueued));
            return;
        }
        if let Some((worker, _)) = self.workers.get(&id) {
            match worker::try_send(
                worker,
                WorkerMessage::Cancel(CancelReason::User, Some(reply)),
            ) {
                Ok(()) => {
                    self.cancel_sent.insert(id);
                }
                // The worker is draining or stopping: its exit event is on its way, and the
                // answer is given from it (see `worker_ended`).
                Err(Some(WorkerMessage::Cancel(_, Some(reply)))) => {
                    self.parked_cancels.entry(id).or_default().push(reply);
                }
                Err(_) => {}
            }
            return;
        }
        // Not held here. A forwarded request means the run's `Start` was handled before it, so
        // the run has ended meanwhile (a fast job's worker can exit before this request is
        // read, since supervision events come first) and its end is already on its way to the
        // registry, ahead of this question: the registry answers, with no further bounce.
        if let Err(e) = self
            .registry
            .cast(RegistryMessage::AnswerCancel(id, reply, forwarded))
        {
            tracing::error!(run_id = %id, error = %e, "registry unreachable; cancel unanswered");
        }
    }

    fn begin_drain(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        deadline: Duration,
        reply: RpcReplyPort<DrainReport>,
    ) {
        match &mut self.drain {
            Drain::Drained(report) => {
                let _ = reply.send(report.clone());
            }
            Drain::Draining { waiters, .. } => waiters.push(reply),
            Drain::NotDraining => {
                self.gate.close();
                self.stop_schedules();
                tracing::info!(
                    queued = self.queued_at.len(),
                    running = self.workers.len(),
                    retry_waiting = self.retry_waits.len(),
                    ?deadline,
                    "drain started"
                );
                // The barrier travels through the registry, behind every admitted `Insert`, and
                // comes back as `DrainBarrier` behind their `Start`s.
                if let Err(e) = self
                    .registry
                    .cast(RegistryMessage::Barrier(Internal::new()))
                {
                    tracing::error!(error = %e, "registry unreachable; drain cannot complete");
                }
                let timer = myself.send_after(deadline, || {
                    SupervisorMessage::DrainDeadline(Internal::new())
                });
                self.drain = Drain::Draining {
                    waiters: vec![reply],
                    ended_before: self.ended,
                    barrier_seen: false,
                    deadline_hit: false,
                    cancelled_by_drain: Vec::new(),
                    _timer: AbortOnDrop(timer),
                };
            }
        }
    }

    fn drain_deadline(&mut self, myself: &ActorRef<SupervisorMessage>) {
        let Drain::Draining { deadline_hit, .. } = &mut self.drain else {
            return;
        };
        *deadline_hit = true;
        tracing::warn!(
            queued = self.queued_at.len(),
            running = self.workers.len(),
            retry_waiting = self.retry_waits.len(),
            "drain deadline passed; cancelling what is left"
        );
        let waiting: Vec<RunId> = self
            .queued_at
            .keys()
            .chain(self.retry_waits.keys())
            .copied()
            .collect();
        for id in &waiting {
            self.cancel_waiting(myself, *id, "cancelled by the drain deadline while queued");
        }
        if let Drain::Draining {
            cancelled_by_drain, ..
        } = &mut self.drain
        {
            cancelled_by_drain.extend(waiting);
        }
        // Running runs are recorded in `cancelled_by_drain` when their worker exits with a
        // cancel that the deadline caused, so a run that finished first is not misreported.
        for (id, (worker, _)) in &self.workers {
            let cancel = WorkerMessage::Cancel(CancelReason::DrainDeadline, None);
            if worker::try_send(worker, cancel).is_ok() {
                self.cancel_sent.insert(*id);
            }
        }
    }

    /// Finishes the drain once the barrier has passed and no run is left.
    fn check_drained(&mut self) {
        let Drain::Draining {
            barrier_seen: true, ..
        } = self.drain
        else {
            return;
        };
        if !self.queued_at.is_empty() || !self.workers.is_empty() || !self.retry_waits.is_empty() {
            return;
        }
        let Drain::Draining {
            waiters,
            ended_before,
            deadline_hit,
            cancelled_by_drain,
            ..
        } = std::mem::replace(&mut self.drain, Drain::NotDraining)
        else {
            return;
        };
        let since = |s: RunStatus| self.ended[s.index()] - ended_before[s.index()];
        let report = DrainReport {
            completed: since(RunStatus::Completed),
            failed: since(RunStatus::Failed),
            cancelled: since(RunStatus::Cancelled),
            cancelled_by_drain,
            deadline_hit,
        };
        tracing::info!(
            completed = report.completed,
            failed = report.failed,
            cancelled = report.cancelled,
            "drain finished"
        );
        for w in waiters {
            let _ = w.send(report.clone());
        }
        self.drain = Drain::Drained(report);
    }

    /// A run's retry backoff is over: back into its queue, unless it was cancelled meanwhile.
    async fn retry_due(&mut self, myself: &ActorRef<SupervisorMessage>, id: RunId) {
        if let Some(wait) = self.retry_waits.remove(&id) {
            self.accept(myself, wait.run).await;
        }
    }

    /// A worker is gone: `final_state` is its state if it stopped normally, `cause` says why
    /// it went. Counts the run's terminal status (or holds the run for its retry), records a
    /// status if the worker left the run active, and answers cancels parked meanwhile.
    async fn worker_ended(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        who: &ActorCell,
        final_state: Option<WorkerState>,
        cause: String,
    ) {
        let Some(id) = self.runs_by_actor.remove(&who.get_id()) else {
            return;
        };
        if let Some((_, q)) = self.workers.remove(&id) {
            self.queues[q].running -= 1;
        }
        let cancel_sent = self.cancel_sent.remove(&id);
        let mut parked = self.parked_cancels.remove(&id).unwrap_or_default();
        let by_deadline = final_state
            .as_ref()
            .is_some_and(|s| s.cancel_reason() == Some(CancelReason::DrainDeadline));
        let mut final_state = final_state;
        if let Some(s) = final_state.as_mut() {
            parked.extend(s.take_deferred_cancels());
        }
        let end = final_state.as_mut().and_then(WorkerState::take_end);
        let status = match end {
            Some(AttemptEnd::Ended(status)) => {
                self.note_end(myself, id, status);
                if let (
                    RunStatus::Cancelled,
                    true,
                    Drain::Draining {
                        cancelled_by_drain, ..
                    },
                ) = (status, by_deadline, &mut self.drain)
                {
                    cancelled_by_drain.push(id);
                }
                status
            }
            Some(AttemptEnd::Retry { delay, run }) => {
                // Cancels that reached the worker after it chose to retry, and a drain whose
                // deadline has passed, both end the run now instead of waiting.
                let deadline_hit = matches!(
                    self.drain,
                    Drain::Draining {
                        deadline_hit: true,
                        ..
                    }
                );
                if !parked.is_empty() || deadline_hit {
                    let why = if parked.is_empty() {
                        "cancelled by the drain deadline while waiting to retry"
                    } else {
                        "cancelled by a caller while waiting to retry"
                    };
                    self.end_here(
                        myself,
                        id,
                        Transition::cancelled(ErrorKind::CancelledWhileQueued, why),
                    );
                    if let (
                        true,
                        Drain::Draining {
                            cancelled_by_drain, ..
                        },
                    ) = (parked.is_empty(), &mut self.drain)
                    {
                        cancelled_by_drain.push(id);
                    }
                    for reply in parked {
                        let _ = reply.send(Ok(CancelOutcome::CancelledWhileQueued));
                    }
                } else {
                    let timer = myself.send_after(delay, move || {
                        SupervisorMessage::RetryDue(Internal::new(), id)
                    });
                    self.retry_waits.insert(
                        id,
                        RetryWait {
                            run,
                            _timer: AbortOnDrop(timer),
                        },
                    );
                }
                return;
            }
            None => {
                tracing::warn!(run_id = %id, %cause, "worker ended before its run did");
                // A cancel that was accepted (or is waiting for an answer) decides the outcome;
                // otherwise the run failed with its worker.
                let t = if cancel_sent || !parked.is_empty() {
                    Transition::cancelled(
                        ErrorKind::CancelledWhileRunning,
                        format!("cancelled; its worker then ended: {cause}"),
                    )
                } else {
                    Transition::failed(ErrorKind::WorkerDied, format!("worker ended: {cause}"))
                };
                self.end_checked(myself, id, t).await
            }
        };
        let ended_here = final_state.is_none();
        for reply in parked {
            let answer = match status {
                RunStatus::Cancelled if ended_here => Ok(CancelOutcome::Signalled),
                status => Err(CancelError::AlreadyFinished { id, status }),
            };
            let _ = reply.send(answer);
        }
    }

    /// Records a terminal status for a run whose worker died, and counts the status the run
    /// really has: if the worker had already reported one, the registry refuses ours and
    /// names the real one. The registry never waits on anyone, so this call cannot deadlock.
    async fn end_checked(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        id: RunId,
        t: Transition,
    ) -> RunStatus {
        let wanted = t.target();
        let verdict = self
            .registry
            .call(
                |r| RegistryMessage::Transition(id, t, Some(r)),
                Some(Duration::from_secs(5)),
            )
            .await;
        let status = match verdict {
            Ok(CallResult::Success(Ok(()))) => wanted,
            Ok(CallResult::Success(Err(TransitionError::AlreadyTerminal { status, .. }))) => status,
            other => {
                tracing::error!(run_id = %id, result = ?other.map(|_| ()), "could not record a dead worker's run");
                wanted
            }
        };
        self.note_end(myself, id, status);
        status
    }
}

impl Actor for SupervisorActor {
    type Msg = SupervisorMessage;
    type State = SupervisorState;
    type Arguments = SupervisorArguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let table = QueueTable::new(&args.queues);
        let queues = (0..table.len())
            .map(|i| QueueState {
                limit: args
                    .queues
                    .iter()
                    .find(|(name, _)| name == table.name(i))
                    .and_then(|(_, c)| c.limit)
                    .map(|l| l.max(1)),
                running: 0,
                waiting: BTreeMap::new(),
            })
            .collect();
        let registry_args = RegistryArguments {
            supervisor: myself.clone(),
            dedup_window: args.dedup_window,
            event_buffer: args.event_buffer,
            logs: args.logs.clone(),
            store: args.store,
            retention: args.retention,
        };
        let (registry, _) =
            Actor::spawn_linked(None, RegistryActor, registry_args, myself.get_cell()).await?;
        Ok(SupervisorState {
            registry,
            gate: Gate::default(),
            table,
            global_limit: args.max_concurrent.map(|l| l.max(1)),
            cancel_grace: args.cancel_grace,
            logs: args.logs,
            queues,
            queued_at: IdMap::default(),
            next_seq: 0,
            workers: IdMap::default(),
            runs_by_actor: IdMap::default(),
            retry_waits: IdMap::default(),
            cancel_sent: IdSet::default(),
            parked_cancels: IdMap::default(),
            ended: [0; 5],
            drain: Drain::NotDraining,
            schedules: BTreeMap::new(),
            registry_restarts: VecDeque::new(),
            occurrence_of: IdMap::default(),
            next_schedule: 1,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMessage::Submit(mut spec, job, reply) => {
                if !matches!(state.drain, Drain::NotDraining) {
                    let _ = reply.send(Err(SubmitError::ShuttingDown));
                    return Ok(());
                }
                let answer = state.table.admit(&mut spec, &job).and_then(|slot| {
                    let id = RunId::new();
                    let submission = Submission::admitted(job, slot, &spec);
                    let insert = RegistryMessage::Admit(Admission::new(id, spec, submission));
                    state
                        .registry
                        .cast(insert)
                        .map(|()| id)
                        .map_err(|_| SubmitError::Unavailable)
                });
                let _ = reply.send(answer);
            }
            SupervisorMessage::Start(run) => {
                state.accept(&myself, run).await;
                // A run refused here (drain past its deadline, a failed spawn) may have been
                // the last one a drain waited for.
                state.check_drained();
            }
            SupervisorMessage::Cancel(id, reply) => {
                state.cancel(&myself, id, reply, false);
                state.start_queued(&myself).await;
                state.check_drained();
            }
            SupervisorMessage::CancelMany(requests) => {
                for (id, reply) in requests {
                    state.cancel(&myself, id, reply, false);
                }
                state.start_queued(&myself).await;
                state.check_drained();
            }
            SupervisorMessage::CancelForwarded(_, id, reply) => {
                state.cancel(&myself, id, reply, true);
                state.start_queued(&myself).await;
                state.check_drained();
            }
            SupervisorMessage::Drain(deadline, reply) => {
                state.begin_drain(&myself, deadline, reply)
            }
            SupervisorMessage::DrainBarrier(_) => {
                if let Drain::Draining { barrier_seen, .. } = &mut state.drain {
                    *barrier_seen = true;
                }
                state.check_drained();
            }
            SupervisorMessage::DrainDeadline(_) => {
                state.drain_deadline(&myself);
                state.check_drained();
            }
            SupervisorMessage::RetryDue(_, id) => {
                state.retry_due(&myself, id).await;
                state.check_drained();
            }
            SupervisorMessage::SetLimit(queue, limit, reply) => {
                let limit = limit.map(|l| l.max(1));
                let answer = match queue {
                    None => {
                        state.global_limit = limit;
                        Ok(())
                    }
                    Some(name) => match state.table.index(&name) {
                        Some(q) => {
                            state.queues[q].limit = limit;
                            Ok(())
                        }
                        None => Err(UnknownQueue(name)),
                    },
                };
                let _ = reply.send(answer);
                state.start_queued(&myself).await;
            }
            SupervisorMessage::SetMaxLength(name, max, reply) => {
                let answer = match state.table.index(&name) {
                    Some(q) => {
                        state.table.set_max_length(q, max);
                        Ok(())
                    }
                    None => Err(UnknownQueue(name)),
                };
                let _ = reply.send(answer);
            }
            SupervisorMessage::Schedule(spec, job, reply) => {
                let _ = reply.send(state.add_schedule(&myself, spec, job));
            }
            SupervisorMessage::PauseSchedule(id, reply) => {
                let answer = match state.schedules.get_mut(&id) {
                    Some(s) => {
                        s.info.paused = true;
                        s.generation += 1;
                        s.timer = None;
                        Ok(())
                    }
                    None => Err(NoSuchSchedule(id)),
                };
                let _ = reply.send(answer);
            }
            SupervisorMessage::ResumeSchedule(id, reply) => {
                let answer = match state.schedules.get_mut(&id) {
                    Some(s) => {
                        let was_paused = std::mem::replace(&mut s.info.paused, false);
                        if was_paused {
                            state.fire_schedule(&myself, id);
                        }
                        Ok(())
                    }
                    None => Err(NoSuchSchedule(id)),
                };
                let _ = reply.send(answer);
            }
            SupervisorMessage::RemoveSchedule(id, reply) => {
                let answer = match state.schedules.remove(&id) {
                    Some(s) => {
                        state.occurrence_of.retain(|_, sid| *sid != id);
                        Ok(s.info)
                    }
                    None => Err(NoSuchSchedule(id)),
                };
                let _ = reply.send(answer);
            }
            SupervisorMessage::Schedules(reply) => {
                let _ = reply.send(state.schedules.values().map(|s| s.info.clone()).collect());
            }
            SupervisorMessage::ScheduleDue(_, id, generation) => {
                if state
                    .schedules
                    .get(&id)
                    .is_some_and(|s| s.generation == generation)
                {
                    state.fire_schedule(&myself, id);
                }
            }
            SupervisorMessage::RegistryRestarted(_, reason) => {
                let now = std::time::Instant::now();
                let restarts = &mut state.registry_restarts;
                restarts.push_back(now);
                while restarts
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
                {
                    restarts.pop_front();
                }
                tracing::warn!(%reason, restarts = restarts.len(), "registry restarted");
                if restarts.len() > REGISTRY_RESTARTS {
                    return Err(format!(
                        "registry restarted {} times within {RESTART_WINDOW:?}; giving up: {reason}",
                        restarts.len()
                    )
                    .into());
                }
            }
            SupervisorMessage::GetSubmitter(reply) => {
                let _ = reply.send(Submitter::new(
                    myself.clone(),
                    state.registry.clone(),
                    state.gate.clone(),
                    state.table.clone(),
                ));
            }
            SupervisorMessage::Status(reply) => {
                let _ = reply.send(state.status());
            }
        }
        Ok(())
    }

    // ractor's default stops the supervisor when any child exits. Here a worker exiting is the
    // normal end of an attempt, so every event is handled and the supervisor carries on.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(who, boxed, reason) => {
                if who.get_id() == state.registry.get_id() {
                    // After a drain, the registry stopping is the shutdown's first step.
                    if matches!(state.drain, Drain::Drained(_)) {
                        myself.stop(Some("shutdown".to_owned()));
                        return Ok(());
                    }
                    return Err(format!("registry stopped: {reason:?}").into());
                }
                let final_state = boxed.and_then(|mut b| b.take::<WorkerState>().ok());
                let cause = reason.unwrap_or_else(|| "stopped".to_owned());
                state.worker_ended(&myself, &who, final_state, cause).await;
            }
            SupervisionEvent::ActorFailed(who, error) => {
                if who.get_id() == state.registry.get_id() {
                    // Without its registry nothing can be recorded: escalate to whoever
                    // supervises this supervisor, as an Erlang supervisor would.
                    return Err(format!("registry failed: {error}").into());
                }
                let cause = format!("failed: {error}");
                state.worker_ended(&myself, &who, None, cause).await;
            }
            _ => return Ok(()),
        }
        state.start_queued(&myself).await;
        state.check_drained();
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // Refuse further submits through any submitter still held by callers.
        state.gate.close();
        Ok(())
    }
}
