//! Typed errors of the actors' protocols, one enum per area.

use std::fmt;
use std::path::PathBuf;

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
    Store(StoreError),
    /// No job kind of this name is registered.
    UnknownKind(String),
    /// The job kind's factory refused the parameters.
    BadParams(String),
    /// A schedule that cannot fire: a cron mode without its cron schedule, or an interval of
    /// zero.
    InvalidSchedule(String),
    /// A dependency names a run the registry does not hold: no such run, or (with a store)
    /// a finished one outside the registry's memory window.
    UnknownDependency(RunId),
    /// A workflow (or batch) was refused whole: its graph, or one of its steps.
    Workflow(WorkflowError),
    /// A re-run of a run that is not known.
    UnknownRun(RunId),
    /// A re-run of a run that has not ended.
    NotFinished {
        /// The run.
        id: RunId,
        /// Its status.
        status: RunStatus,
    },
    /// A re-run of a run whose job cannot be built again: it was not submitted by a
    /// registered job kind (a closure is gone once it ran), or its kind is no longer
    /// registered.
    NotRerunnable(RunId),
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
            SubmitError::InvalidSchedule(e) => write!(f, "schedule refused: {e}"),
            SubmitError::UnknownDependency(id) => {
                write!(f, "no run {id} to depend on is held by the registry")
            }
            SubmitError::Workflow(e) => write!(f, "workflow refused: {e}"),
            SubmitError::UnknownRun(id) => write!(f, "no run {id} to re-run"),
            SubmitError::NotFinished { id, status } => {
                write!(f, "run {id} is {status}: only a finished run is re-run")
            }
            SubmitError::NotRerunnable(id) => write!(
                f,
                "run {id} was not submitted by a registered job kind, so its job cannot be \
                 built again"
            ),
        }
    }
}

impl std::error::Error for SubmitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SubmitError::Store(e) => Some(e),
            SubmitError::Workflow(e) => Some(e),
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

/// Why a store could not be opened, read or written. Every variant names the store's path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The file exists but is not a database, or is damaged. Nothing was changed.
    Corrupt {
        /// The store.
        path: PathBuf,
        /// What the engine said.
        cause: String,
    },
    /// The file is a database of something else (tables runwarden does not own). Nothing
    /// was changed: not a byte, not a pragma.
    Foreign {
        /// The file.
        path: PathBuf,
        /// What was found in it (its tables).
        found: String,
    },
    /// The store was written by a newer runwarden. Nothing was changed.
    NewerSchema {
        /// The store.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The newest this build understands.
        supported: u32,
    },
    /// Another process has the store open.
    Locked {
        /// The store.
        path: PathBuf,
    },
    /// The store cannot be created or opened (missing or read-only directory, permissions).
    Open {
        /// The store.
        path: PathBuf,
        /// What the system said.
        cause: String,
    },
    /// The disk (or the store's size limit) is full; the write was not made.
    Full {
        /// The store.
        path: PathBuf,
    },
    /// Any other I/O or engine failure.
    Io {
        /// The store.
        path: PathBuf,
        /// What failed.
        cause: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Corrupt { path, cause } => {
                write!(
                    f,
                    "store {} is not a valid runwarden database: {cause}",
                    path.display()
                )
            }
            StoreError::Foreign { path, found } => write!(
                f,
                "{} is another application's database ({found}); runwarden leaves it alone",
                path.display()
            ),
            StoreError::NewerSchema {
                path,
                found,
                supported,
            } => write!(
                f,
                "store {} has schema version {found}; this build supports up to {supported}",
                path.display()
            ),
            StoreError::Locked { path } => {
                write!(f, "store {} is open in another process", path.display())
            }
            StoreError::Open { path, cause } => {
                write!(f, "cannot open store {}: {cause}", path.display())
            }
            StoreError::Full { path } => write!(f, "store {} is full", path.display()),
            StoreError::Io { path, cause } => {
                write!(f, "store {} failed: {cause}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {}

/// Why a request to one of runwarden's actors got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// The actor did not answer within the call's timeout.
    Timeout {
        /// The request that timed out.
        request: &'static str,
    },
    /// The actor is not running (it was shut down, or failed).
    Unavailable {
        /// The request that could not be delivered or answered.
        request: &'static str,
    },
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Timeout { request } => write!(f, "`{request}` timed out"),
            CallError::Unavailable { request } => {
                write!(f, "`{request}` failed: runwarden's actors are not running")
            }
        }
    }
}

impl std::error::Error for CallError {}

/// Sends a request built by `build` and waits for its answer (at most `timeout`, if given).
///
/// A timed request arms its timer only if no answer came before this thread would otherwise
/// go idle: registering a timer costs more than a whole round trip to an idle actor. Until
/// then the task waits on both the answer (which wakes it as soon as it is sent) and a
/// yield (which wakes it once the runtime has run what was ready, the actor usually among
/// it).
pub(crate) async fn ask<M, T>(
    actor: &ractor::ActorRef<M>,
    build: impl FnOnce(ractor::RpcReplyPort<T>) -> M,
    timeout: Option<std::time::Duration>,
    request: &'static str,
) -> Result<T, CallError>
where
    M: ractor::Message,
    T: Send + 'static,
{
    use std::future::Future;
    use std::task::Poll;
    let unavailable = || CallError::Unavailable { request };
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    let port: ractor::RpcReplyPort<T> = match timeout {
        Some(limit) => (tx, limit).into(),
        None => tx.into(),
    };
    actor.cast(build(port)).map_err(|_| unavailable())?;
    let Some(limit) = timeout else {
        return rx.await.map_err(|_| unavailable());
    };
    let mut yielded = std::pin::pin!(tokio::task::yield_now());
    let early = std::future::poll_fn(|cx| {
        if let Poll::Ready(answer) = std::pin::Pin::new(&mut rx).poll(cx) {
            return Poll::Ready(Some(answer));
        }
        yielded.as_mut().poll(cx).map(|()| None)
    })
    .await;
    match early {
        Some(Ok(v)) => return Ok(v),
        Some(Err(_)) => return Err(unavailable()),
        None => {}
    }
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(unavailable()),
        Err(_) => Err(CallError::Timeout { request }),
    }
}

/// Why a workflow was refused. Nothing of a refused workflow is recorded or run.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkflowError {
    /// It has no steps.
    Empty,
    /// Two steps share this name.
    DuplicateStep(String),
    /// Step `step` is to run after `after`, which is no step of the workflow.
    UnknownStep {
        /// The dependent step.
        step: String,
        /// The name it gave.
        after: String,
    },
    /// These steps wait for one another in a cycle (each is on a cycle, or after one).
    Cycle(Vec<String>),
    /// Step `step` was refused as a single submit would be (queue full, unknown kind, ...).
    Step {
        /// The step.
        step: String,
        /// Why.
        error: Box<SubmitError>,
    },
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkflowError::Empty => f.write_str("a workflow needs at least one step"),
            WorkflowError::DuplicateStep(s) => write!(f, "two steps are named `{s}`"),
            WorkflowError::UnknownStep { step, after } => {
                write!(f, "step `{step}` runs after `{after}`, which is no step")
            }
            WorkflowError::Cycle(steps) => {
                write!(
                    f,
                    "steps wait for each other in a cycle: {}",
                    steps.join(", ")
                )
            }
            WorkflowError::Step { step, error } => write!(f, "step `{step}` refused: {error}"),
        }
    }
}

impl std::error::Error for WorkflowError {}
