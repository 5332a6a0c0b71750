//! The worker actor: one per running run. It owns the job's task, reports the run's start and
//! its one terminal status to the registry, then drains and stops.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr, RpcReplyPort};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::error::CancelError;
use crate::job::{BoxedJob, CatchUnwind, RunContext};
use crate::registry::RegistryMessage;
use crate::run::{ErrorKind, RunId, RunStatus, Transition};
use crate::supervisor::{CancelOutcome, CancelReason};
use crate::time::Timestamp;

use crate::job::JobOutcome;

/// Messages a worker handles.
#[derive(Debug)]
pub enum WorkerMessage {
    /// Sent by the supervisor: cancel this run. The worker signals the job's
    /// [`RunContext`], arms the grace timer, and answers the caller directly (the supervisor
    /// forwards the caller's port and does not wait). The run will end `Cancelled`.
    Cancel(
        CancelReason,
        Option<RpcReplyPort<Result<CancelOutcome, CancelError>>>,
    ),
    /// Sent by the worker's own job task when the job's future ends (returned or panicked).
    JobFinished(JobOutcome),
    /// Sent by the worker to itself when the grace period after a cancel has run out: the job
    /// task is aborted and the run ends `Cancelled` with [`ErrorKind::CancelGraceExpired`].
    GraceExpired,
}

/// The worker actor. Stateless itself; see [`WorkerState`].
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerActor;

/// Start-up input of a worker, built by the supervisor.
#[derive(Debug)]
pub struct WorkerArguments {
    /// The run this worker executes.
    pub run_id: RunId,
    /// The run's label, for the tracing span.
    pub label: String,
    /// The job.
    pub job: BoxedJob,
    /// Where status messages go.
    pub registry: ActorRef<RegistryMessage>,
    /// How long a cancelled job may take to stop before its future is dropped.
    pub grace: Duration,
}

/// A task handle that aborts the task when dropped, so a worker never leaks its job or
/// timer task, however the worker ends (stop, kill, or a panic in a handler).
#[derive(Debug)]
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reports the job's end to its worker even if the job task ends without reaching its own
/// report (a panic outside the job's future). On an abort the worker has already decided the
/// run's status, and ignores this late report.
struct ReportOnDrop(Option<ActorRef<WorkerMessage>>);

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        if let Some(worker) = self.0.take() {
            let outcome = JobOutcome::Panicked("the job's task ended without a result".to_owned());
            let _ = worker.cast(WorkerMessage::JobFinished(outcome));
        }
    }
}

/// A worker's data.
#[derive(Debug)]
pub struct WorkerState {
    run_id: RunId,
    label: String,
    registry: ActorRef<RegistryMessage>,
    grace: Duration,
    job: Option<BoxedJob>,
    cancel_tx: watch::Sender<bool>,
    task: Option<AbortOnDrop<()>>,
    grace_timer: Option<AbortOnDrop<Result<(), MessagingErr<WorkerMessage>>>>,
    cancel: Option<CancelReason>,
    terminal: Option<RunStatus>,
}

impl WorkerState {
    /// The run's terminal status, once the worker has reported it. The supervisor reads it
    /// from the state ractor hands back in `ActorTerminated`.
    pub fn terminal(&self) -> Option<RunStatus> {
        self.terminal
    }

    /// Who cancelled the run, if it was cancelled while this worker ran it.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.cancel
    }

    /// The run this worker executed.
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// Reports the run's terminal status and starts draining: messages already queued are
    /// still answered (from `terminal`), later sends fail and hand the message back to the
    /// sender, and then the actor stops.
    fn finish(&mut self, myself: &ActorRef<WorkerMessage>, t: Transition) {
        let status = t.target();
        match &t {
            Transition::Finished {
                error: Some(e),
                status: RunStatus::Failed,
                ..
            } => {
                tracing::warn!(run_id = %self.run_id, label = %self.label, kind = ?e.kind, error = %e.message, "run failed")
            }
            _ => tracing::info!(run_id = %self.run_id, label = %self.label, %status, "run ended"),
        }
        self.terminal = Some(status);
        self.grace_timer = None;
        if let Err(e) = self
            .registry
            .cast(RegistryMessage::Transition(self.run_id, t, None))
        {
            tracing::error!(run_id = %self.run_id, error = %e, "registry unreachable; terminal status not recorded");
        }
        if let Err(e) = myself.drain() {
            tracing::debug!(run_id = %self.run_id, error = %e, "worker already stopping");
        }
    }
}

impl Actor for WorkerActor {
    type Msg = WorkerMessage;
    type State = WorkerState;
    type Arguments = WorkerArguments;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: WorkerArguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let (cancel_tx, _) = watch::channel(false);
        Ok(WorkerState {
            run_id: args.run_id,
            label: args.label,
            registry: args.registry,
            grace: args.grace,
            job: Some(args.job),
            cancel_tx,
            task: None,
            grace_timer: None,
            cancel: None,
            terminal: None,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(job) = state.job.take() else {
            return Ok(());
        };
        // `Started` is cast before the task exists, and the terminal status only after the
        // task reports back through this actor, so the registry always sees them in order.
        let started = Transition::Started {
            at: Timestamp::now(),
        };
        state
            .registry
            .cast(RegistryMessage::Transition(state.run_id, started, None))?;
        tracing::debug!(run_id = %state.run_id, label = %state.label, "run started");
        let ctx = RunContext::new(state.run_id, state.cancel_tx.subscribe());
        let span = tracing::info_span!("run", run_id = %state.run_id, label = %state.label);
        let mut report = ReportOnDrop(Some(myself.clone()));
        // The job runs in its own task so this actor keeps receiving `Cancel` while it runs.
        let handle = tokio::spawn(
            async move {
                let outcome = CatchUnwind::new(job, ctx).await;
                if let Some(me) = report.0.take() {
                    // Fails only if the worker already finished (grace expired): nothing to do.
                    let _ = me.cast(WorkerMessage::JobFinished(outcome));
                }
            }
            .instrument(span),
        );
        state.task = Some(AbortOnDrop(handle));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkerMessage::JobFinished(outcome) => {
                if state.terminal.is_some() {
                    return Ok(());
                }
                let t = match (state.cancel, outcome) {
                    // Whatever the job returns after a cancel was accepted, the run ends
                    // `Cancelled`: the caller was told so (defect 5 of the original).
                    (Some(reason), outcome) => Transition::cancelled(
                        ErrorKind::CancelledWhileRunning,
                        format!("cancelled by {reason} while running; job then {outcome}"),
                    ),
                    (None, JobOutcome::Ok) => Transition::completed(),
                    (None, JobOutcome::Err(e)) => Transition::failed(ErrorKind::Returned, e),
                    (None, JobOutcome::Panicked(m)) => Transition::failed(ErrorKind::Panicked, m),
                };
                state.finish(&myself, t);
            }
            WorkerMessage::Cancel(reason, reply) => {
                let answer = match (state.terminal, state.cancel) {
                    (Some(status), _) => Err(CancelError::AlreadyFinished {
                        id: state.run_id,
                        status,
                    }),
                    (None, Some(_)) => Ok(CancelOutcome::AlreadyCancelling),
                    (None, None) => {
                        state.cancel = Some(reason);
                        state.cancel_tx.send_replace(true);
                        let timer = myself.send_after(state.grace, || WorkerMessage::GraceExpired);
                        state.grace_timer = Some(AbortOnDrop(timer));
                        tracing::info!(run_id = %state.run_id, %reason, "run cancel requested");
                        Ok(CancelOutcome::Signalled)
                    }
                };
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
            WorkerMessage::GraceExpired => {
                if state.terminal.is_some() {
                    return Ok(());
                }
                // Dropping the job's future happens at its next `.await`; code that never
                // yields keeps its thread, but the run's status is decided now regardless.
                state.task = None;
                let reason = state.cancel.unwrap_or(CancelReason::User);
                let t = Transition::cancelled(
                    ErrorKind::CancelGraceExpired,
                    format!(
                        "cancelled by {reason}; job did not stop within the {:?} grace period and was dropped",
                        state.grace
                    ),
                );
                state.finish(&myself, t);
            }
        }
        Ok(())
    }
}

/// Casts `msg` to a worker. When the worker is draining or gone, ractor refuses the send and
/// hands the message back, so the caller can answer it another way.
pub(crate) fn try_send(
    worker: &ActorRef<WorkerMessage>,
    msg: WorkerMessage,
) -> Result<(), Option<WorkerMessage>> {
    match worker.cast(msg) {
        Ok(()) => Ok(()),
        Err(MessagingErr::SendErr(msg)) => Err(Some(msg)),
        Err(e) => {
            tracing::error!(error = %e, "worker refused a message without returning it");
            Err(None)
        }
    }
}
