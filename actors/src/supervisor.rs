//! The supervisor actor: admission, named queues with limits and priorities, one linked
//! worker per running attempt, retry waits, cancellation and drain.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ractor::SpawnErr;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::task::JoinHandle;

use crate::error::{CancelError, SubmitError};
use crate::job::{BoxedJob, CancelAnswer, CancelSignal, RunReports, Stop};
use crate::kinds::{JobKinds, RecoveryReport};
use crate::log::{LogConfig, LogSink};
use crate::log_keeper::{KeeperArgs, KeeperSink, LogKeeper};
use crate::protocol::logs::{LogStep, LogsRef};
use crate::protocol::registry::{RegistryMessage, RegistryRef, RegistryStep, Retention};
use crate::protocol::run::{CancelOutcome, CancelReason, CancelReply, PreparedRun};
use crate::protocol::supervisor::{
    DrainReport, DueTimer, Release, StartMode, SupervisorMessage, SupervisorRef, SupervisorStatus,
    SupervisorStep, TimerPurpose,
};
use crate::protocol::worker::AttemptEnd;
use crate::queue::{QueueConfig, RateLimit};
use crate::registry::{RegistryActor, RegistryArguments};
use crate::run::{CancelKind, FailureKind, RunId, RunSpec, RunStatus, Transition, TransitionError};
use crate::store::RunStore;
use crate::trace::TracePropagation;

mod backstop;
mod drain;
mod intensity;
mod queues;
mod rates;
mod recovery;
mod runs;
mod schedules;
mod timer;

use crate::submitter::{self, Gate, Submitter};
use crate::time::{RunningClock, Timestamp, WallClock};
use crate::worker::{DROP_WAIT, WorkerActor, WorkerArguments, WorkerState};
use backstop::Backstops;
use drain::{Drain, Ended};
use intensity::RestartIntensity;
use queues::Queues;
use runs::{Runs, Waiting};
use schedules::{Admit, Schedules};
use timer::Timer;

/// Registry restarts allowed within [`RESTART_WINDOW`] before the supervisor gives up.
pub const REGISTRY_RESTARTS: usize = 5;

/// The window over which registry restarts are counted.
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);

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
    /// How runs start: as production does (the default), or in one of the test modes,
    /// manual ([`StartMode::Held`]: nothing starts until released, which is what a test needs
    /// to check what an application submitted before anything runs) or inline
    /// ([`StartMode::Inline`]: each run starts at once and an awaited submit answers at its
    /// end).
    pub start_mode: StartMode,
    /// Rate limits of kinds, over all queues: each applies to the runs whose label is its
    /// kind (a run submitted by kind has its kind as its label).
    pub kind_rates: Vec<(String, RateLimit)>,
    /// How long a finished run keeps its idempotency key (default 60 s).
    pub dedup_window: Duration,
    /// How many live events a subscriber may fall behind before it lags (default 4096).
    pub event_buffer: usize,
    /// Run logs: with a config, the supervisor starts a log keeper under itself (before
    /// recovery, so recovered runs' lines have somewhere to go), reached through
    /// [`crate::SupervisorRef::logs`]. `None`: lines that jobs log are dropped.
    pub logs: Option<LogConfig>,
    /// The durable store (`None`: records only in memory). The supervisor loads it as it
    /// starts, and recovers the runs a previous process left active: see [`JobKinds`] and
    /// [`SupervisorMessage::Recovery`].
    pub store: Option<Box<dyn RunStore>>,
    /// The job kinds this supervisor can build from a name and parameters: what lets a run be
    /// submitted by kind, and re-run after a crash.
    pub kinds: JobKinds,
    /// How many times recovery re-runs a run whose attempt a crash interrupted (default 3).
    /// Each rescue counts as an attempt; a run interrupted more often than this ends `Failed`
    /// with kind `Interrupted`, every attempt's error kept, so a job that kills its process
    /// is not re-run forever.
    pub max_rescues: u32,
    /// Retention of finished runs.
    pub retention: Retention,
    /// Where cron schedules read the time of day: the system clock, or for tests on tokio's
    /// paused clock, one that starts at a chosen instant and moves with tokio's time.
    pub wall_clock: WallClock,
    /// Captures the trace context at submit and makes each run's span its child (see
    /// [`TracePropagation`]); `None`: run spans start their own traces unless a spec carries
    /// a `traceparent`, which is then kept on the record only. The capture happens where a
    /// [`Submitter`](crate::Submitter) is called (the handle, HTTP). A submit by message
    /// (`SupervisorMessage::Submit`, `SubmitMany`, `SubmitWorkflow`) is admitted in the
    /// supervisor's task, where the caller's context is not: set `RunSpec::trace_parent` on
    /// those specs (from [`TracePropagation::capture`], say).
    pub trace: Option<Arc<dyn TracePropagation>>,
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
            kind_rates: Vec::new(),
            start_mode: StartMode::Normal,
            dedup_window: Duration::from_secs(60),
            event_buffer: 4096,
            logs: None,
            store: None,
            kinds: JobKinds::default(),
            max_rescues: 3,
            retention: Retention::default(),
            wall_clock: WallClock::default(),
            trace: None,
        }
    }
}

/// The supervisor's data.
pub struct SupervisorState {
    registry: ActorRef<RegistryMessage>,
    /// The registry's address as workers' jobs report to it (progress, exit codes), shared by
    /// every run.
    reports: Arc<dyn RunReports>,
    kinds: Arc<JobKinds>,
    recovery: Arc<RecoveryReport>,
    gate: Gate,
    cancel_grace: Duration,
    /// Where jobs' lines go: the log keeper, if logs are kept.
    logs: Option<Arc<dyn LogSink>>,
    /// Trace propagation for submits and run spans.
    trace: Option<Arc<dyn TracePropagation>>,
    keeper: Option<LogsRef>,
    /// The runs waiting for a slot, and the limits.
    queues: Queues,
    /// Every run held here, from its `Start` to its worker's exit: one entry per run.
    runs: Runs,
    /// Terminal statuses the supervisor has seen, since start.
    ended: Ended,
    drain: Drain,
    schedules: Schedules,
    /// When the registry restarted, within the last [`RESTART_WINDOW`].
    registry_restarts: RestartIntensity,
    /// The timer for the next start a rate limit allows, and when it fires.
    rate_timer: Option<(tokio::time::Instant, Timer)>,
    /// Deadlines by which stopping attempts must have ended.
    backstops: Backstops,
    /// What eligible times on records are read from.
    clock: RunningClock,
    mode: StartMode,
    /// Jobs a fault-injection test asked to run instead of the next attempts of a label.
    stand_ins: HashMap<Arc<str>, VecDeque<BoxedJob>>,
}

impl fmt::Debug for SupervisorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorState")
            .field("queued", &self.runs.queued())
            .field("running", &self.runs.running())
            .field("retry_waiting", &self.runs.retry_waiting())
            .finish_non_exhaustive()
    }
}

/// Answers the cancels that waited for run `id`'s attempt to end with `status`: a run the
/// supervisor ended itself (`ended_here`: its worker died, or its job never yielded) and
/// recorded `Cancelled` was cancelled by them; otherwise it was already finished.
fn answer_parked(parked: Vec<CancelReply>, id: RunId, status: RunStatus, ended_here: bool) {
    for reply in parked {
        let answer = match status {
            RunStatus::Cancelled if ended_here => Ok(CancelOutcome::Signalled),
            status => Err(CancelError::AlreadyFinished { id, status }),
        };
        let _ = reply.send(answer);
    }
}

impl SupervisorState {
    fn status(&self) -> SupervisorStatus {
        SupervisorStatus {
            queued: self.runs.queued(),
            running: self.runs.running(),
            retry_waiting: self.runs.retry_waiting(),
            awaiting: self.runs.awaiting(),
            global_limit: self.queues.global_limit(),
            queues: self.queues.status(),
            kind_rates: self.queues.kind_rates(),
            mode: self.mode,
            hold: self.queues.hold(),
            drain: self.drain.state(),
        }
    }

    /// The next of the supervisor's timers still to fire.
    fn next_timer(&self) -> Option<DueTimer> {
        let now = tokio::time::Instant::now();
        let candidates = [
            self.runs.next_timer(now),
            self.rate_timer
                .as_ref()
                .map(|(at, _)| (*at, TimerPurpose::RateLimit)),
            self.schedules
                .next_timer(now)
                .map(|(at, id)| (at, TimerPurpose::Schedule(id))),
            self.drain
                .deadline()
                .map(|at| (at, TimerPurpose::DrainDeadline)),
        ];
        let next = candidates.into_iter().flatten().filter(|(at, _)| *at > now);
        next.min_by_key(|(at, _)| *at)
            .map(|(at, purpose)| DueTimer {
                due_in: at - now,
                purpose,
            })
    }

    /// Counts a run's terminal status, and lets its schedule (if any) plan the next occurrence.
    fn note_end(&mut self, myself: &ActorRef<SupervisorMessage>, id: RunId, status: RunStatus) {
        self.ended[status.index()] += 1;
        self.with_schedules(myself, |s, at, ok| s.run_ended(at, ok, id, status));
    }

    /// Whether runs are accepted: no drain has begun.
    fn accepting(&self) -> bool {
        self.drain.accepting()
    }

    /// Records a terminal status the supervisor decided itself (queued cancel, drain).
    fn end_here(&mut self, myself: &ActorRef<SupervisorMessage>, id: RunId, t: Transition) {
        self.note_end(myself, id, t.target());
        if let Err(e) = self
            .registry
            .cast(RegistryStep::Transition(id, t, None).into())
        {
            tracing::error!(run_id = %id, error = %e, "registry unreachable; terminal status not recorded");
        }
    }

    /// Takes a newly accepted run (or one whose retry is due) into its queue, then starts
    /// what the limits allow.
    async fn accept(&mut self, myself: &ActorRef<SupervisorMessage>, mut run: Box<PreparedRun>) {
        // Admitted before the gate closed, but its `Start` arrived after the deadline (the
        // barrier's round trip through the registry can be slower than a zero deadline).
        if self.drain.deadline_hit() {
            self.drain.cancelled_by_deadline([run.id]);
            let t = Transition::cancelled(
                CancelReason::DrainDeadline,
                CancelKind::WhileQueued,
                "cancelled by the drain deadline while queued",
            );
            self.end_here(myself, run.id, t);
            return;
        }
        // Only a run inserted past the gate (by fault injection) can get here.
        if self.drain.is_drained() {
            let t = Transition::cancelled(
                CancelReason::Shutdown,
                CancelKind::WhileQueued,
                "refused: the supervisor had already drained",
            );
            self.end_here(myself, run.id, t);
            return;
        }
        // A run waiting for its dependencies is held, unqueued, until the registry decides.
        if run.awaiting {
            self.runs.insert_awaiting(run.id, run);
            return;
        }
        // A run recovered while it waited for a retry or a snooze waits out the rest first.
        if let Some(wait) = run
            .take_not_before()
            .map(|at| at.saturating_duration_since(Timestamp::now()))
            && !wait.is_zero()
        {
            let id = run.id;
            let timer = Timer::after(myself, wait, move || SupervisorStep::RetryDue(id).into());
            self.runs.insert_retry(id, run, timer);
            return;
        }
        let q = self.queues.lane_of(&run);
        // A run ahead of nobody starts at once: the choice the queue would make (see
        // `Queues`), without passing through it. Inline, every run does.
        if self.mode == StartMode::Inline || self.queues.may_start_now(q, &run, self.runs.running())
        {
            self.spawn_worker(myself, q, run).await;
            return;
        }
        let id = run.id;
        let place = self.queues.push(q, run);
        self.runs.insert_queued(id, place);
    }

    /// Starts queued runs while the global and per-queue limits allow.
    async fn start_queued(&mut self, myself: &ActorRef<SupervisorMessage>) {
        while let Some((q, run)) = self.queues.pop_next(self.runs.running()) {
            self.spawn_worker(myself, q, run).await;
        }
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
        let part = run.partition().clone();
        self.queues.started(q, &run);
        let stand_in = self.take_stand_in(&run.label).map(Box::new);
        let now = tokio::time::Instant::now();
        let time_limit = run
            .timeout
            .map(|t| now.checked_add(t).unwrap_or_else(timer::far_future));
        let signal = Arc::new(CancelSignal::default());
        let args = WorkerArguments {
            run,
            signal: signal.clone(),
            registry: self.registry.clone(),
            reports: self.reports.clone(),
            grace: self.cancel_grace,
            logs: self.logs.clone(),
            trace: self.trace.clone(),
            stand_in,
        };
        // `Started` goes from here, ahead of anything the worker will send.
        let started = Transition::Started {
            at: Timestamp::now(),
        };
        if let Err(e) = self
            .registry
            .cast(RegistryStep::Transition(id, started, None).into())
        {
            tracing::error!(run_id = %id, error = %e, "registry unreachable; start not recorded");
        }
        // Linking makes this supervisor receive the worker's exit (with its final state)
        // or its failure, so no attempt can end without the supervisor hearing of it.
        match Actor::spawn_linked(None, WorkerActor, args, myself.get_cell()).await {
            Ok((worker, _)) => {
                // A job that never yields holds its worker's task past its time limit: the
                // backstop ends its run once the grace period and `DROP_WAIT` have passed too.
                if let Some(at) = time_limit {
                    let backstop = at + self.cancel_grace + DROP_WAIT;
                    self.backstops.arm(myself, backstop, id, worker.get_id());
                }
                self.runs
                    .insert_running(id, worker, signal, (q, part), time_limit);
            }
            Err(e) => {
                self.queues.stopped(q, &part);
                // A run started from its queue is still entered as queued; it is over now.
                let _ = self.runs.take_waiting(id);
                tracing::error!(run_id = %id, error = %e, "could not start a worker");
                let t = Transition::failed(
                    FailureKind::WorkerDied,
                    format!("could not start a worker: {e}"),
                );
                self.end_here(myself, id, t);
            }
        }
    }

    /// The job a fault-injection test put in place of the next attempt of `label`, if any.
    fn take_stand_in(&mut self, label: &Arc<str>) -> Option<BoxedJob> {
        if self.stand_ins.is_empty() {
            return None;
        }
        let waiting = self.stand_ins.get_mut(label)?;
        let job = waiting.pop_front();
        if waiting.is_empty() {
            self.stand_ins.remove(label);
        }
        job
    }

    /// Lets held runs start; the ids of `Release::Runs` that were not queued.
    async fn release(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        release: Release,
    ) -> Vec<RunId> {
        let ids = match release {
            Release::Runs(ids) => ids,
            other => {
                self.queues.release(&other);
                return Vec::new();
            }
        };
        let mut missed = Vec::new();
        for id in ids {
            let place = match self.runs.is_queued(id).then(|| self.runs.take_waiting(id)) {
                Some(Some(Waiting::Queued(place))) => place,
                _ => {
                    missed.push(id);
                    continue;
                }
            };
            match self.queues.take(&place) {
                Some(run) => {
                    // The start it is given is the one its worker takes.
                    self.queues.release(&Release::Next(1));
                    self.spawn_worker(myself, place.queue, run).await;
                }
                None => missed.push(id),
            }
        }
        missed
    }

    /// Removes a run that is waiting (in a queue or for a retry) and ends it `Cancelled`.
    /// Returns `false` if the run was not waiting.
    fn cancel_waiting(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        id: RunId,
        by: CancelReason,
    ) -> bool {
        let found = match self.runs.take_waiting(id) {
            Some(Waiting::Queued(place)) => self.queues.take(&place).is_some(),
            Some(Waiting::Retry(_) | Waiting::Awaiting(_)) => true,
            None => false,
        };
        if found {
            self.end_here(
                myself,
                id,
                Transition::cancelled(
                    by,
                    CancelKind::WhileQueued,
                    format!("cancelled by {by} while queued"),
                ),
            );
        }
        found
    }

    /// A newer submit with `key` replaces run `id` if it is still queued: it ends
    /// `Cancelled` by `Replaced`, and the registry hears whether it was, after that status.
    fn replace_queued(&mut self, myself: &ActorRef<SupervisorMessage>, id: RunId, key: String) {
        let replaced = self.runs.is_queued(id)
            && match self.runs.take_waiting(id) {
                Some(Waiting::Queued(place)) => self.queues.take(&place).is_some(),
                _ => false,
            };
        if replaced {
            let why = format!("replaced by a newer run with idempotency key `{key}`");
            let t = Transition::cancelled(CancelReason::Replaced, CancelKind::WhileQueued, why);
            self.end_here(myself, id, t);
        }
        if let Err(e) = self
            .registry
            .cast(RegistryStep::ReplaceDone(key, replaced).into())
        {
            tracing::error!(run_id = %id, error = %e, "registry unreachable; replace unanswered");
        }
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
        if self.cancel_waiting(myself, id, CancelReason::User) {
            let _ = reply.send(Ok(CancelOutcome::CancelledWhileQueued));
            return;
        }
        if self.runs.running_mut(id).is_some() {
            if let Some(reply) = self.cancel_running(myself, id, CancelReason::User, Some(reply)) {
                let _ = reply.send(Ok(CancelOutcome::AlreadyCancelling));
            }
            return;
        }
        // Not held here. A forwarded request means the run's `Start` was handled before it, so
        // the run has ended meanwhile (a fast job's worker can exit before this request is
        // read, since supervision events come first) and its end is already on its way to the
        // registry, ahead of this question: the registry answers, with no further bounce.
        if let Err(e) = self
            .registry
            .cast(RegistryStep::AnswerCancel(id, reply, forwarded).into())
        {
            tracing::error!(run_id = %id, error = %e, "registry unreachable; cancel unanswered");
        }
    }

    /// A `Drain`: joins the drain (beginning it if none has begun), answered with its report.
    fn drain(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        deadline: Duration,
        reply: RpcReplyPort<DrainReport>,
    ) {
        if let Some(reply) = self.drain.join(reply) {
            self.begin_drain(myself, deadline, Some(reply));
        }
    }

    /// Begins a drain: the gate closes (from now on every submit is refused), schedules stop,
    /// and a barrier goes through the registry; the deadline timer starts.
    fn begin_drain(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        deadline: Duration,
        reply: Option<RpcReplyPort<DrainReport>>,
    ) {
        self.gate.close();
        self.schedules.stop_all();
        tracing::info!(
            queued = self.runs.queued(),
            running = self.runs.running(),
            retry_waiting = self.runs.retry_waiting(),
            ?deadline,
            "drain started"
        );
        // The barrier travels through the registry, behind every admitted `Admit`, and comes
        // back as `DrainBarrier` behind their `Start`s.
        if let Err(e) = self.registry.cast(RegistryStep::Barrier.into()) {
            tracing::error!(error = %e, "registry unreachable; drain cannot complete");
        }
        let timer = Timer::after(myself, deadline, || SupervisorStep::DrainDeadline.into());
        self.drain.begin(reply, self.ended, timer);
    }

    fn drain_deadline(&mut self, myself: &ActorRef<SupervisorMessage>) {
        if !self.drain.hit_deadline() {
            return;
        }
        tracing::warn!(
            queued = self.runs.queued(),
            running = self.runs.running(),
            retry_waiting = self.runs.retry_waiting(),
            "drain deadline passed; cancelling what is left"
        );
        let waiting = self.runs.waiting_ids();
        for id in &waiting {
            self.cancel_waiting(myself, *id, CancelReason::DrainDeadline);
        }
        self.drain.cancelled_by_deadline(waiting);
        // Running runs are recorded in `cancelled_by_drain` when their worker exits with a
        // cancel that the deadline caused, so a run that finished first is not misreported.
        for id in self.runs.running_ids() {
            self.cancel_running(myself, id, CancelReason::DrainDeadline, None);
        }
    }

    /// Asks running run `id`'s attempt to stop for `reason`, answering `reply` (if any) and
    /// arming the backstop. Hands `reply` back when a cancel was already asked for. When the
    /// attempt's outcome is already decided, `reply` waits for the worker's exit, which says
    /// what it was (see `worker_ended`).
    fn cancel_running(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        id: RunId,
        reason: CancelReason,
        reply: Option<CancelReply>,
    ) -> Option<CancelReply> {
        let run = self.runs.running_mut(id)?;
        match run.signal.cancel(reason) {
            CancelAnswer::Signalled => {
                let worker = run.worker.get_id();
                tracing::debug!(run_id = %id, %reason, "run cancel requested");
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(CancelOutcome::Signalled));
                }
                let at = tokio::time::Instant::now() + self.cancel_grace + DROP_WAIT;
                self.backstops.arm(myself, at, id, worker);
                None
            }
            CancelAnswer::AlreadyCancelling => reply,
            CancelAnswer::Ended => {
                if let Some(reply) = reply {
                    run.park(reply);
                }
                None
            }
        }
    }

    /// Backstop deadlines passed: each attempt still running then holds its worker's task
    /// without yielding (its worker could neither drop its job nor report). Its run ends
    /// here, and its worker is killed, to go when the job next yields.
    fn backstops_due(&mut self, myself: &ActorRef<SupervisorMessage>) {
        let now = tokio::time::Instant::now();
        for (id, worker) in self.backstops.take_due(myself, now) {
            let Some(run) = self.runs.running_mut(id) else {
                continue;
            };
            // Another attempt of the same run, or an attempt whose worker decided its
            // outcome (its exit is on its way).
            if run.worker.get_id() != worker {
                continue;
            }
            let Ok(stop) = run.signal.end() else {
                continue;
            };
            let Some((id, mut running)) = self.runs.worker_gone(worker) else {
                continue;
            };
            self.queues.stopped(running.queue, &running.part);
            running.worker.kill();
            let grace = self.cancel_grace;
            let why = format!(
                "job did not stop within the {grace:?} grace period and does not yield; its run is ended without it (the job is dropped at its next await)"
            );
            tracing::warn!(run_id = %id, "{why}");
            let t = match stop {
                Some(Stop::Cancel(by)) => {
                    if by == CancelReason::DrainDeadline {
                        self.drain.cancelled_by_deadline([id]);
                    }
                    Transition::cancelled(
                        by,
                        CancelKind::GraceExpired,
                        format!("cancelled by {by}; {why}"),
                    )
                }
                _ => Transition::failed(
                    FailureKind::TimedOut,
                    format!("timed out (its time limit passed); {why}"),
                ),
            };
            let status = t.target();
            self.end_here(myself, id, t);
            answer_parked(running.take_parked(), id, status, true);
        }
    }

    /// Finishes the drain once the barrier has passed and no run is left.
    fn check_drained(&mut self) {
        self.drain.finish_if(self.runs.is_empty(), &self.ended);
    }

    /// A run's retry backoff is over: back into its queue, unless it was cancelled meanwhile.
    async fn retry_due(&mut self, myself: &ActorRef<SupervisorMessage>, id: RunId) {
        if let Some(run) = self.runs.take_retry(id) {
            self.accept(myself, run).await;
        }
    }

    /// A worker is gone: `final_state` is its state if it stopped normally, `cause` says why
    /// it went. Counts the run's terminal status (or holds the run for its retry), records a
    /// status if the worker left the run active, and answers cancels parked meanwhile.
    async fn worker_ended(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        who: &ActorCell,
        mut final_state: Option<WorkerState>,
        cause: Cow<'static, str>,
    ) {
        let Some((id, mut running)) = self.runs.worker_gone(who.get_id()) else {
            return;
        };
        self.queues.stopped(running.queue, &running.part);
        let parked = running.take_parked();
        let by_deadline = final_state
            .as_ref()
            .is_some_and(|s| s.cancel_reason() == Some(CancelReason::DrainDeadline));
        let ended_here = final_state.is_none();
        let status = match final_state.as_mut().and_then(WorkerState::take_end) {
            Some(AttemptEnd::Ended(status)) => {
                self.note_end(myself, id, status);
                if status == RunStatus::Cancelled && by_deadline {
                    self.drain.cancelled_by_deadline([id]);
                }
                status
            }
            Some(AttemptEnd::Retry { delay, run }) => {
                self.retry_later(myself, id, delay, run, parked);
                return;
            }
            None => {
                tracing::warn!(run_id = %id, %cause, "worker ended before its run did");
                // A cancel that was accepted (or is waiting for an answer) decides the outcome;
                // otherwise the run failed with its worker.
                let cancelled_by = match running.signal.stop() {
                    Some(Stop::Cancel(by)) => Some(by),
                    _ => None,
                };
                let by = cancelled_by.or((!parked.is_empty()).then_some(CancelReason::User));
                self.end_dead_worker(myself, id, by, &cause).await
            }
        };
        answer_parked(parked, id, status, ended_here);
    }

    /// A worker chose to retry its run after `delay`. Cancels that reached the worker after
    /// that choice (`parked`), and a drain whose deadline has passed, end the run now instead.
    fn retry_later(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        id: RunId,
        delay: Duration,
        run: Box<PreparedRun>,
        parked: Vec<CancelReply>,
    ) {
        let by = if !parked.is_empty() {
            CancelReason::User
        } else if self.drain.deadline_hit() {
            CancelReason::DrainDeadline
        } else {
            let timer = Timer::after(myself, delay, move || SupervisorStep::RetryDue(id).into());
            self.runs.insert_retry(id, run, timer);
            return;
        };
        let why = format!("cancelled by {by} while waiting to run again (a retry or a snooze)");
        self.end_here(
            myself,
            id,
            Transition::cancelled(by, CancelKind::WhileQueued, why),
        );
        if by == CancelReason::DrainDeadline {
            self.drain.cancelled_by_deadline([id]);
        }
        for reply in parked {
            let _ = reply.send(Ok(CancelOutcome::CancelledWhileQueued));
        }
    }

    /// Ends a run whose worker died before ending it: `Cancelled` by `by` if a cancel had
    /// been accepted, else `Failed` with kind `WorkerDied`. Returns the status the run has.
    async fn end_dead_worker(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        id: RunId,
        by: Option<CancelReason>,
        cause: &str,
    ) -> RunStatus {
        let t = match by {
            Some(by) => Transition::cancelled(
                by,
                CancelKind::WhileRunning,
                format!("cancelled; its worker then ended: {cause}"),
            ),
            None => Transition::failed(FailureKind::WorkerDied, format!("worker ended: {cause}")),
        };
        self.end_checked(myself, id, t).await
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
                |r| RegistryStep::Transition(id, t, Some(r)).into(),
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

    /// Handles one public message. Each arm is one call; what every message ends with is
    /// [`SupervisorState::settle`].
    async fn message(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        message: SupervisorMessage,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMessage::Submit(spec, job, reply) => match self.submit(*spec, job) {
                Ok(id) if self.mode == StartMode::Inline => self.answer_at_end(id, reply),
                answer => {
                    let _ = reply.send(answer);
                }
            },
            SupervisorMessage::SubmitMany(runs, reply) => self.submit_many(runs, reply),
            SupervisorMessage::SubmitWorkflow(workflow, reply) => {
                // The answer waits for the registry (and the commit): a task of its own, so
                // the supervisor goes on meanwhile. The gate decides, as for every submit.
                let submitter = self.submitter();
                tokio::spawn(async move {
                    let _ = reply.send(submitter.submit_workflow(*workflow).await);
                });
            }
            SupervisorMessage::Internal(internal) => self.step(myself, internal.0).await?,
            SupervisorMessage::Recovery(reply) => {
                let _ = reply.send(self.recovery.clone());
            }
            SupervisorMessage::Logs(reply) => {
                let _ = reply.send(self.keeper.clone());
            }
            SupervisorMessage::Cancel(id, reply) => self.cancel(myself, id, reply, false),
            SupervisorMessage::CancelMany(requests) => {
                for (id, reply) in requests {
                    self.cancel(myself, id, reply, false);
                }
            }
            SupervisorMessage::Drain(deadline, reply) => self.drain(myself, deadline, reply),
            SupervisorMessage::BeginDrain(deadline, reply) => {
                if self.drain.accepting() {
                    self.begin_drain(myself, deadline, None);
                }
                let _ = reply.send(self.drain.state());
            }
            SupervisorMessage::SetLimit(queue, limit, reply) => {
                let _ = reply.send(self.queues.set_limit(queue, limit));
            }
            SupervisorMessage::SetMaxLength(name, max, reply) => {
                let _ = reply.send(self.queues.set_max_length(name, max));
            }
            SupervisorMessage::SetPaused(name, paused, reply) => {
                let _ = reply.send(self.queues.set_paused(&name, paused));
            }
            SupervisorMessage::SetRate(scope, rate, reply) => {
                let _ = reply.send(self.queues.set_rate(scope, rate));
            }
            SupervisorMessage::Release(release, reply) => {
                let missed = self.release(myself, release).await;
                let _ = reply.send(missed);
            }
            SupervisorMessage::SetPerKey(name, limit, reply) => {
                let _ = reply.send(self.queues.set_per_key(&name, limit));
            }
            SupervisorMessage::Schedule(spec, job, reply) => {
                let added = self.with_schedules(myself, |s, at, ok| s.add(at, ok, *spec, job));
                let _ = reply.send(added);
            }
            SupervisorMessage::PauseSchedule(id, reply) => {
                let _ = reply.send(self.schedules.pause(id));
            }
            SupervisorMessage::ResumeSchedule(id, reply) => {
                let resumed = self.with_schedules(myself, |s, at, ok| s.resume(at, ok, id));
                let _ = reply.send(resumed);
            }
            SupervisorMessage::RemoveSchedule(id, reply) => {
                let _ = reply.send(self.schedules.remove(id));
            }
            SupervisorMessage::Schedules(reply) => {
                let _ = reply.send(self.schedules.infos());
            }
            SupervisorMessage::GetSubmitter(reply) => {
                let _ = reply.send(self.submitter());
            }
            SupervisorMessage::Status(reply) => {
                let _ = reply.send(self.status());
            }
            SupervisorMessage::NextTimer(reply) => {
                let _ = reply.send(self.next_timer());
            }
        }
        Ok(())
    }

    /// Handles one of the supervisor's internal steps.
    async fn step(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        step: SupervisorStep,
    ) -> Result<(), ActorProcessingErr> {
        match step {
            SupervisorStep::Start(run) => self.accept(myself, run).await,
            SupervisorStep::CancelForwarded(id, reply) => self.cancel(myself, id, reply, true),
            SupervisorStep::DrainBarrier => self.drain.barrier_passed(),
            SupervisorStep::DependenciesMet(met) => {
                let (id, outcomes) = *met;
                if let Some(mut run) = self.runs.take_awaiting(id) {
                    run.awaiting = false;
                    run.set_dependencies(outcomes);
                    self.accept(myself, run).await;
                }
            }
            SupervisorStep::DependencyFailed(failed) => {
                let (id, message) = *failed;
                if self.runs.take_awaiting(id).is_some() {
                    let t = Transition::cancelled(
                        CancelReason::Dependency,
                        CancelKind::DependencyNotCompleted,
                        message,
                    );
                    self.end_here(myself, id, t);
                }
            }
            SupervisorStep::DrainDeadline => self.drain_deadline(myself),
            SupervisorStep::RetryDue(id) => self.retry_due(myself, id).await,
            // `settle` starts what the rate limit now allows.
            SupervisorStep::RateDue => self.rate_timer = None,
            SupervisorStep::BackstopDue => self.backstops_due(myself),
            SupervisorStep::ScheduleDue(id, generation) => {
                self.with_schedules(myself, |s, at, ok| s.due(at, ok, id, generation));
            }
            SupervisorStep::RegistryRestarted(reason) => self.registry_restarted(reason)?,
            SupervisorStep::ReplaceQueued(id, key) => self.replace_queued(myself, id, key),
            SupervisorStep::StandIn(stand_in) => {
                let (label, job, reply) = *stand_in;
                self.stand_ins.entry(label).or_default().push_back(job);
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    /// What every message ends with: start what the limits now allow, and finish a drain
    /// that has nothing left to wait for. Both are no-ops when nothing changed, so running
    /// them after every message keeps the queue invariant (see `Queues`) without each
    /// handler having to know which changes matter.
    async fn settle(&mut self, myself: &ActorRef<SupervisorMessage>) {
        self.start_queued(myself).await;
        self.arm_rate_timer(myself);
        self.tell_eligible();
        self.check_drained();
    }

    /// Tells the registry when the runs a rate limit holds first in line may start.
    fn tell_eligible(&mut self) {
        for (id, at) in self.queues.take_notices() {
            let at = self.clock.at(at);
            if let Err(e) = self.registry.cast(RegistryStep::Eligible(id, at).into()) {
                tracing::warn!(run_id = %id, error = %e, "registry unreachable; eligible time not kept");
            }
        }
    }

    /// One timer, for the earliest time a rate limit lets a waiting run start.
    fn arm_rate_timer(&mut self, myself: &ActorRef<SupervisorMessage>) {
        let Some(at) = self.queues.next_rate_due() else {
            return;
        };
        if self.rate_timer.as_ref().is_some_and(|(due, _)| *due <= at) {
            return;
        }
        let wait = at.saturating_duration_since(tokio::time::Instant::now());
        let timer = Timer::after(myself, wait, || SupervisorStep::RateDue.into());
        self.rate_timer = Some((at, timer));
    }

    /// A `Submit` message: the one admission path, while accepting.
    fn submit(&self, spec: RunSpec, job: BoxedJob) -> Result<RunId, SubmitError> {
        if !self.accepting() {
            return Err(SubmitError::ShuttingDown);
        }
        submitter::admit(
            self.queues.table(),
            &self.registry,
            spec,
            job,
            None,
            submitter::admit_step,
        )
        .map_err(|refused| refused.error)
    }

    /// A `SubmitMany` message: one batch to the registry, which answers the caller after the
    /// commit (inline, a task waits for the runs' ends first).
    fn submit_many(
        &self,
        runs: Vec<(RunSpec, BoxedJob)>,
        reply: RpcReplyPort<Vec<Result<RunId, SubmitError>>>,
    ) {
        if !self.accepting() {
            let refused = runs.iter().map(|_| Err(SubmitError::ShuttingDown));
            let _ = reply.send(refused.collect());
            return;
        }
        let runs = runs
            .into_iter()
            .map(|(spec, job)| (spec, Ok(job)))
            .collect();
        let table = self.queues.table();
        if self.mode != StartMode::Inline {
            // The registry answers the caller; if it is gone, the dropped port says so.
            let _ = submitter::admit_batch(table, &self.registry, runs, Some(reply));
            return;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (sent, unsent) = submitter::admit_batch(table, &self.registry, runs, Some(tx.into()));
        drop(unsent);
        let registry = RegistryRef::from(self.registry.clone());
        tokio::spawn(async move {
            let answers = rx.await.unwrap_or_else(|_| {
                let unknown = sent
                    .iter()
                    .map(|a| a.clone().and(Err(SubmitError::Unavailable)));
                unknown.collect()
            });
            let _ = reply.send(submitter::batch_ends(&registry, &sent, answers).await);
        });
    }

    /// Inline mode: answers a submit once the registry has its run's terminal status. The
    /// wait is a task of its own, so the supervisor goes on (a nested submit from inside the
    /// run's job needs it to).
    fn answer_at_end(&self, id: RunId, reply: RpcReplyPort<Result<RunId, SubmitError>>) {
        let registry = RegistryRef::from(self.registry.clone());
        tokio::spawn(async move {
            // A registry gone before the run's end cannot say it ended: no `Ok` for that.
            let answer = match registry.wait(id).await {
                Ok(_) => Ok(id),
                Err(_) => Err(SubmitError::Unavailable),
            };
            let _ = reply.send(answer);
        });
    }

    /// A submitter sharing this supervisor's gate, queue table and kinds.
    fn submitter(&self) -> Submitter {
        Submitter::new(
            self.registry.clone(),
            self.gate.clone(),
            self.queues.table().clone(),
            self.kinds.clone(),
        )
        .inline(self.mode == StartMode::Inline)
        .traced(self.trace.clone())
    }

    /// Calls `f` with the schedules, what they need to admit a run, and whether runs are
    /// accepted.
    fn with_schedules<T>(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        f: impl FnOnce(&mut Schedules, &Admit<'_>, bool) -> T,
    ) -> T {
        let at = Admit {
            myself,
            table: self.queues.table(),
            registry: &self.registry,
        };
        f(&mut self.schedules, &at, self.drain.accepting())
    }

    /// The registry restarted from its store: counted against the restart intensity, past
    /// which the supervisor gives up (and its own supervisor hears of it).
    fn registry_restarted(&mut self, reason: String) -> Result<(), ActorProcessingErr> {
        match self.registry_restarts.restarted(std::time::Instant::now()) {
            Ok(n) => {
                tracing::warn!(%reason, restarts = n, "registry restarted");
                Ok(())
            }
            Err(n) => Err(format!(
                "registry restarted {n} times within {RESTART_WINDOW:?}; giving up: {reason}"
            )
            .into()),
        }
    }
}

impl SupervisorActor {
    /// Spawns a supervisor (and its registry) with no parent; returns its typed ref and the
    /// handle of its task.
    ///
    /// # Errors
    /// ractor's spawn error; a store that could not be loaded is its
    /// `SpawnErr::StartupFailed`, whose cause downcasts to [`crate::StoreError`].
    pub async fn spawn(
        args: SupervisorArguments,
    ) -> Result<(SupervisorRef, JoinHandle<()>), SpawnErr> {
        let mode = args.start_mode;
        let (actor, handle) = Actor::spawn(None, SupervisorActor, args).await?;
        Ok((SupervisorRef::spawned(actor, mode), handle))
    }

    /// Spawns a supervisor linked under `parent` (an application's own supervisor), which
    /// then receives its supervision events. `name` registers it in ractor's process-wide
    /// registry (`None`: unnamed).
    ///
    /// # Errors
    /// As [`SupervisorActor::spawn`], and a name already taken.
    pub async fn spawn_linked(
        name: Option<String>,
        args: SupervisorArguments,
        parent: ActorCell,
    ) -> Result<(SupervisorRef, JoinHandle<()>), SpawnErr> {
        let mode = args.start_mode;
        let (actor, handle) = Actor::spawn_linked(name, SupervisorActor, args, parent).await?;
        Ok((SupervisorRef::spawned(actor, mode), handle))
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
        let queues = Queues::new(
            &args.queues,
            args.max_concurrent,
            &args.kind_rates,
            args.start_mode == StartMode::Held,
        );
        let (store, loaded) = match args.store {
            Some(store) => {
                let (store, loaded) = recovery::load(store, args.retention.memory_window).await?;
                (Some((store, loaded.state)), Some(loaded.active))
            }
            None => (None, None),
        };
        // The log keeper starts first, so that lines and ends of runs recovered below already
        // have somewhere to go.
        let keeper = match args.logs {
            Some(config) => {
                let keeper_args = KeeperArgs {
                    config: config.clone(),
                };
                let (keeper, _) =
                    Actor::spawn_linked(None, LogKeeper, keeper_args, myself.get_cell()).await?;
                Some(LogsRef::new(keeper, Arc::new(config)))
            }
            None => None,
        };
        let logs = keeper
            .as_ref()
            .map(|k| Arc::new(KeeperSink(k.actor().clone())) as Arc<dyn LogSink>);
        let registry_args = RegistryArguments {
            supervisor: myself.clone(),
            dedup_window: args.dedup_window,
            event_buffer: args.event_buffer,
            logs: logs.clone(),
            store,
            retention: args.retention,
        };
        let registry = match Actor::spawn_linked(
            None,
            RegistryActor,
            registry_args,
            myself.get_cell(),
        )
        .await
        {
            Ok((registry, _)) => registry,
            Err(e) => {
                if let Some(k) = &keeper {
                    k.actor().stop(None);
                }
                return Err(e.into());
            }
        };
        if let Some(k) = &keeper {
            let _ = k.actor().cast(LogStep::Registry(registry.clone()).into());
        }
        // Recovery's messages reach the registry before any other sender can know its
        // address: the supervisor's own address is not handed out until `pre_start` returns.
        let recovery = match loaded {
            Some(active) => recovery::recover(&registry, &args.kinds, args.max_rescues, active),
            None => RecoveryReport::default(),
        };
        let clock = args.wall_clock.start();
        Ok(SupervisorState {
            reports: Arc::new(registry.clone()),
            kinds: Arc::new(args.kinds),
            recovery: Arc::new(recovery),
            registry,
            gate: Gate::default(),
            cancel_grace: args.cancel_grace,
            logs,
            trace: args.trace,
            keeper,
            queues,
            runs: Runs::default(),
            ended: [0; RunStatus::COUNT],
            drain: Drain::NotDraining,
            schedules: Schedules::new(clock),
            registry_restarts: RestartIntensity::new(REGISTRY_RESTARTS, RESTART_WINDOW),
            rate_timer: None,
            backstops: Backstops::default(),
            clock,
            mode: args.start_mode,
            stand_ins: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.message(&myself, message).await?;
        state.settle(&myself).await;
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
        if let (Some(who), Some(keeper)) = (event.actor_cell(), &state.keeper)
            && who.get_id() == keeper.actor().get_id()
        {
            // Runs go on without logs: lines sent to a stopped keeper are dropped, and log
            // queries answer `CallError::Unavailable`.
            if matches!(
                event,
                SupervisionEvent::ActorTerminated(..) | SupervisionEvent::ActorFailed(..)
            ) && !state.drain.is_drained()
            {
                tracing::error!(event = %event, "log keeper stopped; run logs are no longer kept");
            }
            return Ok(());
        }
        match event {
            SupervisionEvent::ActorTerminated(who, boxed, reason) => {
                if who.get_id() == state.registry.get_id() {
                    // After a drain, the registry stopping is the shutdown's first step. The
                    // registry told the keeper of every run's end before it stopped; the
                    // keeper writes what it was sent before the supervisor goes.
                    if state.drain.is_drained() {
                        if let Some(k) = &state.keeper {
                            let _ = k.actor().drain_and_wait(Some(Duration::from_secs(5))).await;
                        }
                        myself.stop(Some("shutdown".to_owned()));
                        return Ok(());
                    }
                    return Err(format!("registry stopped: {reason:?}").into());
                }
                let final_state = boxed.and_then(|mut b| b.take::<WorkerState>().ok());
                // Workers stop with no reason: no text is made for the usual end.
                let cause = reason.map_or(Cow::Borrowed("stopped"), Cow::Owned);
                state.worker_ended(&myself, &who, final_state, cause).await;
            }
            SupervisionEvent::ActorFailed(who, error) => {
                if who.get_id() == state.registry.get_id() {
                    // Without its registry nothing can be recorded: escalate to whoever
                    // supervises this supervisor, as an Erlang supervisor would.
                    return Err(format!("registry failed: {error}").into());
                }
                let cause = Cow::Owned(format!("failed: {error}"));
                state.worker_ended(&myself, &who, None, cause).await;
            }
            _ => return Ok(()),
        }
        state.settle(&myself).await;
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
