//! Fault injection for runwarden's own tests: messages no application could otherwise build.
//!
//! Only with the `fault-injection` feature, which belongs in `[dev-dependencies]`: every
//! function here opens a door the protocol's seal keeps shut (see [`crate::protocol`]).

use ractor::RpcReplyPort;

use crate::job::BoxedJob;
use crate::protocol::registry::{RegistryMessage, RegistryStep};
use crate::protocol::run::Submission;
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
