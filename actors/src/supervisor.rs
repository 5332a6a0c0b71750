//! The supervisor actor: accepts runs, spawns one linked worker per running run, turns worker
//! exits into terminal statuses, and owns cancellation and drain.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort,
    SupervisionEvent,
};
use serde::{Deserialize, Serialize};

use crate::error::{CancelError, SubmitError};
use crate::job::BoxedJob;
use crate::registry::{RegistryActor, RegistryArguments, RegistryMessage};
use crate::run::{ErrorKind, RunId, RunRecord, RunSpec, RunStatus, Transition};
use crate::submitter::{Gate, Submitter};
use crate::worker::{self, AbortOnDrop, WorkerActor, WorkerArguments, WorkerMessage, WorkerState};

/// Messages the supervisor handles.
#[derive(Debug)]
pub enum SupervisorMessage {
    /// Sent by an application actor: accept a run. The supervisor records it in the registry,
    /// then replies with its id, or [`SubmitError::ShuttingDown`] once draining.
    Submit(RunSpec, BoxedJob, RpcReplyPort<Result<RunId, SubmitError>>),
    /// Sent only by a [`Submitter`], after it inserted the run's record in the registry: queue
    /// the run, or start it if a slot is free. ([`PreparedRun`] cannot be built elsewhere.)
    Start(PreparedRun),
    /// Sent by anyone: cancel a run. A queued run is cancelled here and answered at once; a
    /// running run's request (with the caller's port) is forwarded to its worker, which
    /// answers; for any other id the registry answers `NotFound` or `AlreadyFinished`.
    Cancel(RunId, RpcReplyPort<Result<CancelOutcome, CancelError>>),
    /// Sent by anyone: stop accepting runs, wait until every accepted run is terminal, and
    /// reply with the report. At `deadline` the runs still active are cancelled. Several
    /// drains share the first one's deadline; a drain after the end replies at once.
    Drain(Duration, RpcReplyPort<DrainReport>),
    /// Sent by the supervisor to itself right after closing the admission gate. Every `Start`
    /// admitted before the gate closed is ahead of it in the mailbox.
    DrainBarrier,
    /// Sent by the supervisor to itself when the drain deadline passes.
    DrainDeadline,
    /// Query: a [`Submitter`] for this supervisor (the handle's fast path).
    GetSubmitter(RpcReplyPort<Submitter>),
    /// Query: queue and drain state as the supervisor sees it.
    Status(RpcReplyPort<SupervisorStatus>),
}

/// A run on its way from a [`Submitter`] to the supervisor. Its fields are private so only a
/// submitter, which has already recorded the run in the registry, can make one.
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

/// What a drain waited for: every run active when it began or accepted while it ran.
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
        if let Drain::Draining {
            deadline_hit: true,
            cancelled_by_drain,
            ..
        } = &mut self.drain
        {
            // Admitted just before the gate closed, but the deadline has already passed.
            cancelled_by_drain.push(run.id);
            let t = Transition::cancelled(
                ErrorKind::CancelledWhileQueued,
                "cancelled by the drain deadline while queued",
            );
            self.end_here(run.id, t);
            return;
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

    fn cancel(&mut self, id: RunId, reply: RpcReplyPort<Result<CancelOutcome, CancelError>>) {
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
        let reply = match self.workers.get(&id) {
            Some(worker) => {
                match worker::try_send(
                    worker,
                    WorkerMessage::Cancel(CancelReason::User, Some(reply)),
                ) {
                    Ok(()) => return,
                    // The worker is draining: its terminal status is already on its way to
                    // the registry, ahead of the question below, so the registry answers.
                    Err(Some(WorkerMessage::Cancel(_, Some(reply)))) => reply,
                    Err(_) => return,
                }
            }
            None => reply,
        };
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
                // Cannot fail: we are running, so our own mailbox is open.
                let _ = myself.cast(SupervisorMessage::DrainBarrier);
                let timer = myself.send_after(deadline, || SupervisorMessage::DrainDeadline);
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
        for worker in self.workers.values() {
            let _ = worker::try_send(
                worker,
                WorkerMessage::Cancel(CancelReason::DrainDeadline, None),
            );
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

    /// A worker stopped: count its terminal status, or record one if it had none.
    fn worker_exited(
        &mut self,
        who: &ActorCell,
        final_state: Option<WorkerState>,
        reason: Option<String>,
    ) {
        let Some(id) = self.runs_by_actor.remove(&who.get_id()) else {
            return;
        };
        self.workers.remove(&id);
        let terminal = final_state.as_ref().and_then(WorkerState::terminal);
        match terminal {
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
            }
            None => {
                // Stopped or killed from outside before its run ended.
                let why = reason.unwrap_or_else(|| "no reason given".to_owned());
                tracing::warn!(run_id = %id, %why, "worker stopped before its run ended");
                let t = Transition::failed(
                    ErrorKind::WorkerDied,
                    format!("worker stopped before the run ended: {why}"),
                );
                self.end_here(id, t);
            }
        }
    }

    /// A worker failed (a panic or error in the actor itself, not in the job).
    fn worker_failed(&mut self, who: &ActorCell, error: String) {
        let Some(id) = self.runs_by_actor.remove(&who.get_id()) else {
            return;
        };
        self.workers.remove(&id);
        tracing::error!(run_id = %id, %error, "worker failed");
        // If the worker had already reported a terminal status, the registry refuses this
        // one as stale: the run still has exactly one terminal status.
        self.end_here(
            id,
            Transition::failed(ErrorKind::WorkerDied, format!("worker failed: {error}")),
        );
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
        let (registry, _) = Actor::spawn_linked(
            None,
            RegistryActor,
            RegistryArguments::default(),
            myself.get_cell(),
        )
        .await?;
        Ok(SupervisorState {
            registry,
            gate: Gate::default(),
            max_concurrent: args.max_concurrent.unwrap_or(usize::MAX).max(1),
            cancel_grace: args.cancel_grace,
            queue: VecDeque::new(),
            workers: HashMap::new(),
            runs_by_actor: HashMap::new(),
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
                let label = spec.label.clone();
                state
                    .registry
                    .cast(RegistryMessage::Insert(RunRecord::queued(id, spec), None))?;
                state.accept(&myself, PreparedRun { id, label, job }).await;
                let _ = reply.send(Ok(id));
            }
            SupervisorMessage::Start(run) => state.accept(&myself, run).await,
            SupervisorMessage::Cancel(id, reply) => {
                state.cancel(id, reply);
                state.start_queued(&myself).await;
                state.check_drained();
            }
            SupervisorMessage::Drain(deadline, reply) => {
                state.begin_drain(&myself, deadline, reply)
            }
            SupervisorMessage::DrainBarrier => {
                if let Drain::Draining { barrier_seen, .. } = &mut state.drain {
                    *barrier_seen = true;
                }
                state.check_drained();
            }
            SupervisorMessage::DrainDeadline => {
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
                state.worker_exited(&who, final_state, reason);
            }
            SupervisionEvent::ActorFailed(who, error) => {
                if who.get_id() == state.registry.get_id() {
                    // Without its registry nothing can be recorded: escalate to whoever
                    // supervises this supervisor, as an Erlang supervisor would.
                    return Err(format!("registry failed: {error}").into());
                }
                state.worker_failed(&who, error.to_string());
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
