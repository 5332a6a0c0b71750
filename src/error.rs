//! [`Error`]: the umbrella error of the handle.

use std::fmt;

use runwarden_actors::{
    CallError, CancelError, LogError, NoSuchSchedule, NotFound, RunError, RunId, StoreError,
    SubmitError, UnknownQueue,
};

/// Everything a [`crate::Runwarden`] call can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A run was not accepted.
    Submit(SubmitError),
    /// A cancel did nothing (unknown run, or already finished).
    Cancel(CancelError),
    /// A query named an unknown run.
    NotFound(NotFound),
    /// A limit change named an unknown queue.
    UnknownQueue(UnknownQueue),
    /// A schedule call named an unknown schedule.
    NoSuchSchedule(NoSuchSchedule),
    /// An actor did not answer within the handle's call timeout.
    Timeout {
        /// The request that timed out.
        request: &'static str,
    },
    /// An actor is not running (runwarden was shut down, or crashed).
    Unavailable {
        /// The request that could not be delivered or answered.
        request: &'static str,
    },
    /// The actors could not be started.
    Spawn(String),
    /// Log queries need logs to be configured (`RunwardenBuilder::logs`).
    LogsDisabled,
    /// A log file could not be read.
    LogIo(String),
    /// The durable store could not be opened or loaded.
    Store(StoreError),
    /// No supervisor is registered under this name (`None`: the handle's supervisor was
    /// started without a name, so it cannot be found again; see `RunwardenBuilder::name`).
    NoSuchSupervisor(Option<String>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Submit(e) => e.fmt(f),
            Error::Cancel(e) => e.fmt(f),
            Error::NotFound(e) => e.fmt(f),
            Error::UnknownQueue(e) => e.fmt(f),
            Error::NoSuchSchedule(e) => e.fmt(f),
            Error::Timeout { request } => write!(f, "`{request}` timed out"),
            Error::Unavailable { request } => {
                write!(f, "`{request}` failed: runwarden's actors are not running")
            }
            Error::Spawn(e) => write!(f, "could not start runwarden's actors: {e}"),
            Error::LogsDisabled => f.write_str("run logs are not configured"),
            Error::LogIo(e) => write!(f, "could not read a log file: {e}"),
            Error::Store(e) => e.fmt(f),
            Error::NoSuchSupervisor(Some(name)) => {
                write!(f, "no runwarden supervisor is registered as `{name}`")
            }
            Error::NoSuchSupervisor(None) => {
                f.write_str("the supervisor has no name, so it cannot be found again")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Submit(e) => Some(e),
            Error::Cancel(e) => Some(e),
            Error::NotFound(e) => Some(e),
            Error::UnknownQueue(e) => Some(e),
            Error::NoSuchSchedule(e) => Some(e),
            Error::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl From<SubmitError> for Error {
    fn from(e: SubmitError) -> Self {
        Error::Submit(e)
    }
}

impl From<CancelError> for Error {
    fn from(e: CancelError) -> Self {
        Error::Cancel(e)
    }
}

impl From<NotFound> for Error {
    fn from(e: NotFound) -> Self {
        Error::NotFound(e)
    }
}

impl From<UnknownQueue> for Error {
    fn from(e: UnknownQueue) -> Self {
        Error::UnknownQueue(e)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl From<NoSuchSchedule> for Error {
    fn from(e: NoSuchSchedule) -> Self {
        Error::NoSuchSchedule(e)
    }
}

/// Why one item of [`crate::Runwarden::batch`] has no value.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BatchError {
    /// The item's run was refused.
    NotSubmitted(SubmitError),
    /// The item's run failed or was cancelled.
    Failed(RunError),
    /// The run completed but its value did not arrive (its job future was dropped after
    /// computing it, which only a cancel race can cause).
    Lost(RunId),
    /// The actors stopped while the batch waited.
    Unavailable(Error),
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::NotSubmitted(e) => write!(f, "not submitted: {e}"),
            BatchError::Failed(e) => write!(f, "failed: {e}"),
            BatchError::Lost(id) => write!(f, "run {id} completed without its value"),
            BatchError::Unavailable(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BatchError {}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Timeout { request } => Error::Timeout { request },
            CallError::Unavailable { request } => Error::Unavailable { request },
            // `CallError` is non-exhaustive: a cause added later is still a failed call.
            _ => Error::Unavailable { request: "call" },
        }
    }
}

impl From<LogError> for Error {
    fn from(e: LogError) -> Self {
        match e {
            LogError::Call(e) => e.into(),
            LogError::Io(e) => Error::LogIo(e),
        }
    }
}
