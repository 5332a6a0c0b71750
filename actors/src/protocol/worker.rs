//! A worker's protocol: what it accepts and how its attempt ends.

use std::time::Duration;

use ractor::{ActorRef, MessagingErr};

use crate::job::JobOutcome;
use crate::protocol::run::{CancelReason, CancelReply, PreparedRun};
use crate::run::RunStatus;

/// Messages a worker handles. Only runwarden sends them: the supervisor (cancels) and the
/// worker itself (its job's end, its timers). A user cancels through the supervisor, which
/// keeps its own account of every cancel it forwards.
#[derive(Debug)]
pub struct WorkerMessage(pub(crate) WorkerStep);

/// A worker's steps.
#[derive(Debug)]
pub(crate) enum WorkerStep {
    /// Sent by the supervisor: cancel this run. The worker signals the job's
    /// [`crate::RunContext`], arms the grace timer, and answers the caller directly (the supervisor
    /// forwards the caller's port and does not wait). The run will end `Cancelled`.
    Cancel(CancelReason, Option<CancelReply>),
    /// Sent by the worker's own job task when the job's future ends (returned or panicked).
    JobFinished(JobOutcome),
    /// Sent by the worker to itself when the attempt's time limit passes: the job is signalled
    /// like a cancel, and the attempt fails with [`crate::ErrorKind::TimedOut`] (or is retried).
    TimeLimit,
    /// Sent by the worker to itself when the grace period after a cancel or time limit has run
    /// out: the job task is aborted, and the attempt ends once its future is dropped.
    GraceExpired,
    /// Sent by the task watching the aborted job task: its future has been dropped (`true`),
    /// or it did not yield within [`crate::worker::DROP_WAIT`] (`false`). The attempt ends now.
    JobDropped(bool),
}

impl From<WorkerStep> for WorkerMessage {
    fn from(step: WorkerStep) -> Self {
        WorkerMessage(step)
    }
}

/// How the worker's attempt ended. The supervisor reads it from the state ractor hands back
/// in `ActorTerminated`.
#[derive(Debug)]
pub enum AttemptEnd {
    /// The run reached this terminal status.
    Ended(RunStatus),
    /// The attempt failed and the run is to be attempted again after `delay`; the run (with its
    /// repeatable job and the next attempt number) comes back to the supervisor.
    Retry {
        /// The backoff before the next attempt.
        delay: Duration,
        /// The run, ready for its next attempt.
        run: Box<PreparedRun>,
    },
}

/// Casts `msg` to a worker. When the worker is draining or gone, ractor refuses the send and
/// hands the message back, so the caller can answer it another way.
pub(crate) fn try_send(
    worker: &ActorRef<WorkerMessage>,
    msg: WorkerStep,
) -> Result<(), Option<WorkerMessage>> {
    match worker.cast(WorkerMessage(msg)) {
        Ok(()) => Ok(()),
        Err(MessagingErr::SendErr(msg)) => Err(Some(msg)),
        Err(e) => {
            tracing::error!(error = %e, "worker refused a message without returning it");
            Err(None)
        }
    }
}
