//! The supervisor actor: accepts runs, spawns one linked worker per running run, turns worker
//! exits into terminal statuses, and owns cancellation and drain.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort,
    SupervisionEvent,
};
use serde::{Deserialize, Serialize};

use crate::error::{CancelError, SubmitError};
use crate::job::BoxedJob;
use crate::registry::{RegistryActor, RegistryArguments, RegistryMessage};
use crate::run::{ErrorKind, RunId, RunRecord, RunSpec, RunStatus, Transition, TransitionError};
use crate::submitter::{Gate, Submitter};
use crate::worker::{self, AbortOnDrop, WorkerActor, WorkerArguments, WorkerMessage, WorkerState};

/// Messages the supervisor handles.
#[derive(Debug)]
pub enum SupervisorMessage {
    /// Sent by an application actor: accept a run. The supervisor records it in the registry
    /// (which hands the job back as [`SupervisorMessage::Start`]) and replies with its id, or
    /// [`SubmitError::ShuttingDown`] once draining.
    Submit(RunSpec, BoxedJob, RpcReplyPort<Result<RunId, SubmitError>>),
    /// Sent only by the registry, right after it recorded the run: queue the run, or start it
    /// if a slot is free. ([`PreparedRun`] cannot be built outside this crate.)
    Start(PreparedRun),
    /// Sent by anyone: cancel a run. A queued run is cancelled here and answered at once; a
    /// running run's request (with the caller's port) is forwarded to its worker, which
    /// answers; for any other id the registry answers `NotFound` or `AlreadyFinished`.
    Cancel(RunId, RpcReplyPort<Result<CancelOutcome, CancelError>>),
    /// Sent by the registry: a [`SupervisorMessage::Cancel`] that overtook its run's `Start`,
    /// sent back once, now behind that `Start`.
    CancelForwarded(
        Internal,
        RunId,
        RpcReplyPort<Result<CancelOutcome, CancelError>>,
    ),
    /// Sent by anyone: stop accepting runs, wait until every accepted run is terminal, and
    /// reply with the report. At `deadline` the runs still active are cancelled. Several
    /// drains share the first one's deadline; a drain after the end replies at once.
    Drain(Duration, RpcReplyPort<DrainReport>),
    /// Sent by the registry, forwarding the barrier the supervisor sent it after closing the
    /// admission gate: the `Start` of every run admitted before the gate closed is ahead of it.
    DrainBarrier(Internal),
    /// Sent by the supervisor to itself when the drain deadline passes.
    DrainDeadline(Internal),
    /// Query: a [`Submitter`] for this supervisor (the handle's fast path).
    GetSubmitter(RpcReplyPort<Submitter>),
    /// Query: queue and drain state as the supervisor sees it.
    Status(RpcReplyPort<SupervisorStatus>),
}

/// Marks a message that only runwarden's own actors may send. It cannot be built outside
/// this crate, so no other sender can fake a drain barrier, a deadline or a forwarded cancel.
#[derive(Debug)]
pub struct Internal(());

impl Internal {
    pub(crate) fn new() -> Self {
        Internal(())
    }
}

/// A run on its way from the registry to the supervisor. Its fields are private so only the
/// registry, which has already recorded the run, can make one.
pub struct PreparedRun {
    pub(crate) id: RunId,
    pub(crate) label: String,
    pub(crate) job: BoxedJob,
}

impl fmt::Debug for PreparedRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedRun")
            .field("id", &self.id)
            .field("label", &self.label)
            .finish()
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
    /// The run was queued: it is `Cancelled` now, and its job never ran.
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
/// or with a live worker) and every run admitted before the gate closed.
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

/// The supervisor's view of its runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorStatus {
    /// Runs waiting for a slot.
    pub queued: usize,
    /// Runs with a live worker.
    pub running: usize,
    /// Drain progress.
    pub drain: DrainState,
}

/// The supervisor actor. Stateless itself; see [`SupervisorState`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SupervisorActor;

/// Start-up input of the supervisor.
#[derive(Debug, Clone)]
pub struct SupervisorArguments {
    /// At most this many runs execute at once; the rest wait `Queued` (no worker, no task).
    /// `None`: no limit.
    pub max_concurrent: Option<usize>,
    /// How long a cancelled job may take to stop before its future is dropped.
    pub cancel_grace: Duration,
}

impl Default for SupervisorArguments {
    fn default() -> Self {
        SupervisorArguments {
            max_concurrent: None,
            cancel_grace: Duration::from_secs(5),
        }
    }
}

/// Counts of terminal statuses, by [`RunStatus::index`].
type Ended = [usize; 5];

type CancelReply = RpcReplyPort<Result<CancelOutcome, CancelError>>;

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
        _timer: AbortOnDrop<Result<(), MessagingErr<SupervisorMessage>>>,
    },
    Drained(DrainReport),
}

/// The supervisor's data.
pub struct SupervisorState {
    registry: ActorRef<RegistryMessage>,
    gate: Gate,
    max_concurrent: usize,
    cancel_grace: Duration,
    /// Runs waiting for a slot, in arrival order. Queued runs own no actor and no task.
    queue: VecDeque<PreparedRun>,
    /// Live workers by run, and the reverse map for supervision events.
    workers: HashMap<RunId, ActorRef<WorkerMessage>>,
    runs_by_actor: HashMap<ActorId, RunId>,
    /// Runs whose worker was sent a cancel: if the worker dies before ending the run, the run
    /// ends `Cancelled`, as the cancel's `Ok` answer promised.
    cancel_sent: HashSet<RunId>,
    /// Cancel requests for runs whose worker is stopping: answered when its exit arrives.
    parked_cancels: HashMap<RunId, Vec<CancelReply>>,
    /// Terminal statuses the supervisor has seen, since start.
    ended: Ended,
    drain: Drain,
}

impl fmt::Debug for SupervisorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorState")
            .field("queued", &self.queue.len())
            .field("running", &self.workers.len())
            .finish_non_exhaustive()
    }
}

impl SupervisorState {
    fn drain_state(&self) -> DrainState {
        match self.drain {
            Drain::NotDraining => DrainState::NotDraining,
            Drain::Draining { .. } => DrainState::Draining,
            Drain::Drained(_) => DrainState::Drained,
        }
    }

    /// Records a terminal status the supervisor decided itself (queued cancel, dead worker).
    fn end_here(&mut self, id: RunId, t: Transition) {
        self.ended[t.target().index()] += 1;
        if let Err(e) = self.registry.cast(RegistryMessage::Transition(id, t, None)) {
            tracing::error!(run_id = %id, error = %e, "registry unreachable; terminal status not recorded");
        }
    }

    /// Takes a newly accepted run: starts it if a slot is free, queues it otherwise.
    async fn accept(&mut self, myself: &ActorRef<SupervisorMessage>, run: PreparedRun) {
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
                self.end_here(run.id, t);
                return;
            }
            // Only an `Insert` sent to the registry by hand, past the gate, can get here.
            Drain::Drained(_) => {
                let t = Transition::cancelled(
                    ErrorKind::CancelledWhileQueued,
                    "refused: the supervisor had already drained",
                );
                self.end_here(run.id, t);
                return;
            }
            _ => {}
        }
        self.queue.push_back(run);
        self.start_queued(myself).await;
    }

    /// Starts queued runs while slots are free.
    async fn start_queued(&mut self, myself: &ActorRef<SupervisorMessage>) {
        while self.workers.len() < self.max_concurrent {
            let Some(run) = self.queue.pop_front() else {
                return;
            };
            let id = run.id;
            let args = WorkerArguments {
                run_id: id,
                label: run.label,
                job: run.job,
                registry: self.registry.clone(),
                grace: self.cancel_grace,
            };
            // Linking makes this supervisor receive the worker's exit (with its final state)
            // or its failure, so no run can end without the supervisor hearing of it.
            match Actor::spawn_linked(None, WorkerActor, args, myself.get_cell()).await {
                Ok((worker, _)) => {
                    self.runs_by_actor.insert(worker.get_id(), id);
                    self.workers.insert(id, worker);
                }
                Err(e) => {
                    tracing::error!(run_id = %id, error = %e, "could not start a worker");
                    let t = Transition::failed(
                        ErrorKind::WorkerDied,
                        format!("could not start a worker: {e}"),
                    );
                    self.end_here(id, t);
                }
            }
        }
    }

    /// Handles a cancel request. `forwarded` is set when the registry sent it back because it
    /// overtook the run's `Start`; such a request is never sent to the registry again.
    fn cancel(&mut self, id: RunId, reply: CancelReply, forwarded: bool) {
        if let Some(pos) = self.queue.iter().position(|r| r.id == id) {
            self.queue.remove(pos);
            let t = Transition::cancelled(
                ErrorKind::CancelledWhileQueued,
                "cancelled by a caller while queued",
            );
            self.end_here(id, t);
            let _ = reply.send(Ok(CancelOutcome::CancelledWhileQueued));
            return;
        }
        if let Some(worker) = self.workers.get(&id) {
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
        if forwarded {
            // The registry holds the run as active, yet its `Start` (forwarded before this
            // request) left no trace here: a broken invariant, reported rather than looped on.
            tracing::error!(run_id = %id, "cancel for an active run the supervisor never received");
            let _ = reply.send(Err(CancelError::NotFound(id)));
            return;
        }
        if let Err(e) = self.registry.cast(RegistryMessage::AnswerCancel(id, reply)) {
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
                tracing::info!(
                    queued = self.queue.len(),
                    running = self.workers.len(),
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

    fn drain_deadline(&mut self) {
        let Drain::Draining {
            deadline_hit,
            cancelled_by_drain,
            ..
        } = &mut self.drain
        else {
            return;
        };
        *deadline_hit = true;
        tracing::warn!(
            queued = self.queue.len(),
            running = self.workers.len(),
            "drain deadline passed; cancelling what is left"
        );
        let queued: Vec<RunId> = self.queue.drain(..).map(|r| r.id).collect();
        cancelled_by_drain.extend(&queued);
        for id in queued {
            let t = Transition::cancelled(
                ErrorKind::CancelledWhileQueued,
                "cancelled by the drain deadline while queued",
            );
            self.end_here(id, t);
        }
        // Running runs are recorded in `cancelled_by_drain` when their worker exits with a
        // cancel that the deadline caused, so a run that finished first is not misreported.
        for (id, worker) in &self.workers {
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
        if !self.queue.is_empty() || !self.workers.is_empty() {
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

    /// A worker is gone: `final_state` is its state if it stopped normally, `cause` says why
    /// it went. Counts the run's terminal status, records one if the worker left it active,
    /// and answers cancels parked while the worker was stopping.
    async fn worker_ended(
        &mut self,
        who: &ActorCell,
        final_state: Option<WorkerState>,
        cause: String,
    ) {
        let Some(id) = self.runs_by_actor.remove(&who.get_id()) else {
            return;
        };
        self.workers.remove(&id);
        let cancel_sent = self.cancel_sent.remove(&id);
        let parked = self.parked_cancels.remove(&id).unwrap_or_default();
        let status = match final_state.as_ref().and_then(WorkerState::terminal) {
            Some(status) => {
                self.ended[status.index()] += 1;
                let by_deadline = final_state
                    .as_ref()
                    .is_some_and(|s| s.cancel_reason() == Some(CancelReason::DrainDeadline));
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
                self.end_checked(id, t).await
            }
        };
        for reply in parked {
            let answer = match status {
                RunStatus::Cancelled if final_state.is_none() => Ok(CancelOutcome::Signalled),
                status => Err(CancelError::AlreadyFinished { id, status }),
            };
            let _ = reply.send(answer);
        }
    }

    /// Records a terminal status for a run whose worker died, and counts the status the run
    /// really has: if the worker had already reported one, the registry refuses ours and
    /// names the real one. The registry never waits on anyone, so this call cannot deadlock.
    async fn end_checked(&mut self, id: RunId, t: Transition) -> RunStatus {
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
        self.ended[status.index()] += 1;
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
        let registry_args = RegistryArguments {
            supervisor: myself.clone(),
        };
        let (registry, _) =
            Actor::spawn_linked(None, RegistryActor, registry_args, myself.get_cell()).await?;
        Ok(SupervisorState {
            registry,
            gate: Gate::default(),
            max_concurrent: args.max_concurrent.unwrap_or(usize::MAX).max(1),
            cancel_grace: args.cancel_grace,
            queue: VecDeque::new(),
            workers: HashMap::new(),
            runs_by_actor: HashMap::new(),
            cancel_sent: HashSet::new(),
            parked_cancels: HashMap::new(),
            ended: [0; 5],
            drain: Drain::NotDraining,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMessage::Submit(spec, job, reply) => {
                if !matches!(state.drain, Drain::NotDraining) {
                    let _ = reply.send(Err(SubmitError::ShuttingDown));
                    return Ok(());
                }
                let id = RunId::new();
                let insert = RegistryMessage::Insert(RunRecord::queued(id, spec), job, None);
                let answer = match state.registry.cast(insert) {
                    Ok(()) => Ok(id),
                    Err(_) => Err(SubmitError::Unavailable),
                };
                let _ = reply.send(answer);
            }
            SupervisorMessage::Start(run) => state.accept(&myself, run).await,
            SupervisorMessage::Cancel(id, reply) => {
                state.cancel(id, reply, false);
                state.start_queued(&myself).await;
                state.check_drained();
            }
            SupervisorMessage::CancelForwarded(_, id, reply) => {
                state.cancel(id, reply, true);
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
                state.drain_deadline();
                state.check_drained();
            }
            SupervisorMessage::GetSubmitter(reply) => {
                let _ = reply.send(Submitter::new(
                    myself.clone(),
                    state.registry.clone(),
                    state.gate.clone(),
                ));
            }
            SupervisorMessage::Status(reply) => {
                let _ = reply.send(SupervisorStatus {
                    queued: state.queue.len(),
                    running: state.workers.len(),
                    drain: state.drain_state(),
                });
            }
        }
        Ok(())
    }

    // ractor's default stops the supervisor when any child exits. Here a worker exiting is the
    // normal end of a run, so every event is handled and the supervisor carries on.
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(who, boxed, reason) => {
                if who.get_id() == state.registry.get_id() {
                    return Err(format!("registry stopped: {reason:?}").into());
                }
                let final_state = boxed.and_then(|mut b| b.take::<WorkerState>().ok());
                let cause = reason.unwrap_or_else(|| "stopped".to_owned());
                state.worker_ended(&who, final_state, cause).await;
            }
            SupervisionEvent::ActorFailed(who, error) => {
                if who.get_id() == state.registry.get_id() {
                    // Without its registry nothing can be recorded: escalate to whoever
                    // supervises this supervisor, as an Erlang supervisor would.
                    return Err(format!("registry failed: {error}").into());
                }
                state
                    .worker_ended(&who, None, format!("failed: {error}"))
                    .await;
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
