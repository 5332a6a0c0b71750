//! Fault injection for runwarden's own tests: messages no application could otherwise build.
//!
//! Only with the `fault-injection` feature, which belongs in `[dev-dependencies]`: every
//! function here opens a door the protocol's seal keeps shut (see [`crate::protocol`]).

use std::sync::Arc;

use ractor::RpcReplyPort;

use crate::job::{BoxedJob, JobError};
use crate::protocol::registry::{RegistryMessage, RegistryStep};
use crate::protocol::run::Submission;
use crate::protocol::supervisor::{SupervisorMessage, SupervisorStep};
use crate::run::{RunId, RunRecord, Transition, TransitionError};

/// Makes the registry panic while handling it, as a bug would. With a store the registry
/// restarts from it; without one it fails and its supervisor escalates.
pub fn registry_panic(reason: impl Into<String>) -> RegistryMessage {
    RegistryStep::Fault(reason.into()).into()
}

/// A status message for any run, as if its worker (or the supervisor) had sent it: the
/// registry checks it against the run state machine and answers on `reply`.
pub fn transition(
    id: RunId,
    t: Transition,
    reply: RpcReplyPort<Result<(), TransitionError>>,
) -> RegistryMessage {
    RegistryStep::Transition(id, t, Some(reply)).into()
}

/// A ready-made record to insert, with its job: the registry checks it (a reused id is
/// refused) and, if accepted, hands the job to the supervisor.
pub fn insert(
    record: RunRecord,
    job: BoxedJob,
    reply: RpcReplyPort<Result<(), TransitionError>>,
) -> RegistryMessage {
    RegistryStep::Insert(Box::new(record), Submission::new(job), Some(reply)).into()
}

/// What the next attempt of a label does instead of its own job ([`next_attempt_of`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobFault {
    /// Panics with this message: the run fails with kind `Panicked` (or is retried, as its
    /// policy says for panics).
    Panic(String),
    /// Returns an error with this message: the run fails with kind `Returned` (or is
    /// retried).
    Fail(String),
    /// Waits until the run is cancelled (by a caller, its time limit or a drain deadline),
    /// then returns: the run ends `Cancelled`.
    HangUntilCancelled,
    /// Never returns, and ignores its cancel: a cancel is forced after the grace period.
    Unresponsive,
}

impl JobFault {
    /// The job that does it.
    #[must_use]
    pub fn job(self) -> BoxedJob {
        match self {
            JobFault::Panic(message) => BoxedJob::new(move |_ctx| async move {
                std::panic::panic_any(message);
                #[allow(unreachable_code)]
                Ok(())
            }),
            JobFault::Fail(message) => {
                BoxedJob::new(move |_ctx| async move { Err::<(), _>(JobError::msg(message)) })
            }
            JobFault::HangUntilCancelled => BoxedJob::new(|ctx| async move {
                ctx.cancelled().await;
                Ok(())
            }),
            JobFault::Unresponsive => BoxedJob::new(|_ctx| async {
                std::future::pending::<()>().await;
                Ok(())
            }),
        }
    }
}

/// Makes the next attempt of a run labelled `label` to start (a run of a registered kind is
/// labelled with its kind) do `fault` instead of running its own job; the supervisor answers on
/// `reply` once the fault is in place. Several faults for one label apply to its next
/// attempts in order. Everything else about the run (its record, retries, time limit,
/// cancel) is as in production.
pub fn next_attempt_of(
    label: impl Into<String>,
    fault: JobFault,
    reply: RpcReplyPort<()>,
) -> SupervisorMessage {
    let label: Arc<str> = Arc::from(label.into());
    SupervisorStep::StandIn(Box::new((label, fault.job(), reply))).into()
}
