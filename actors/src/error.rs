//! Typed errors of the actors' protocols, one enum per area.

use std::fmt;

use crate::run::{RunId, RunStatus};

/// Why a run was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubmitError {
    /// The supervisor is draining or has stopped; no new runs are accepted.
    ShuttingDown,
    /// The registry or the supervisor actor is gone (it crashed or was stopped out of band).
    Unavailable,
    /// The run's queue already holds its maximum number of waiting runs.
    QueueFull {
        /// The queue.
        queue: String,
    },
    /// The spec names a queue the supervisor was not configured with.
    UnknownQueue(String),
    /// The run may be attempted more than once (a retry policy), but its job can only be
    /// called once: build it with `BoxedJob::repeatable`.
    NotRepeatable,
    /// A durable submit: the run was accepted, but its record could not be committed. It is
    /// running, but would not survive a crash.
    Store(crate::store::StoreError),
    /// No job kind of this name is registered.
    UnknownKind(String),
    /// The job kind's factory refused the parameters.
    BadParams(String),
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubmitError::ShuttingDown => f.write_str("runwarden is shutting down; run refused"),
            SubmitError::Unavailable => {
                f.write_str("runwarden's actors are not running; run refused")
            }
            SubmitError::QueueFull { queue } => {
                write!(f, "queue `{queue}` is full; run refused")
            }
            SubmitError::UnknownQueue(q) => write!(f, "no queue named `{q}`"),
            SubmitError::NotRepeatable => {
                f.write_str("a run with retries needs a repeatable job (BoxedJob::repeatable)")
            }
            SubmitError::Store(e) => write!(f, "run accepted but not made durable: {e}"),
            SubmitError::UnknownKind(k) => write!(f, "no job kind named `{k}`"),
            SubmitError::BadParams(e) => write!(f, "parameters refused: {e}"),
        }
    }
}

impl std::error::Error for SubmitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SubmitError::Store(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a cancel did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelError {
    /// No run has this id.
    NotFound(RunId),
    /// The run had already ended with this status, which is final.
    AlreadyFinished {
        /// The run.
        id: RunId,
        /// Its final status.
        status: RunStatus,
    },
}

impl fmt::Display for CancelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CancelError::NotFound(id) => write!(f, "no run with id {id}"),
            CancelError::AlreadyFinished { id, status } => {
                write!(f, "run {id} is already {status}")
            }
        }
    }
}

impl std::error::Error for CancelError {}

/// A query named a run the registry does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound(pub RunId);

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no run with id {}", self.0)
    }
}

impl std::error::Error for NotFound {}

/// A limit change named a queue the supervisor does not have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownQueue(pub String);

impl fmt::Display for UnknownQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no queue named `{}`", self.0)
    }
}

impl std::error::Error for UnknownQueue {}
