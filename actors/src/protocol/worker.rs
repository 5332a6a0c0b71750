//! A worker's protocol: what it accepts and how its attempt ends.

use std::time::Duration;

use crate::protocol::run::PreparedRun;
use crate::run::RunStatus;

/// A worker's message type. A worker takes no messages: it runs its attempt in its own task,
/// and the supervisor steers it through the attempt's stop signal (a cancel is one atomic
/// step, not a message), learning of its end from ractor's supervision event.
#[derive(Debug)]
pub struct WorkerMessage(pub(crate) WorkerStep);

/// A worker's steps: none.
#[derive(Debug)]
pub(crate) enum WorkerStep {}

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
