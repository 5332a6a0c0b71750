//! [`Submitter`]: the fast, synchronous way to hand runs to a supervisor.

use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;
use ractor::{ActorRef, MessagingErr};

use crate::error::SubmitError;
use crate::job::BoxedJob;
use crate::kinds::JobKinds;
use crate::protocol::registry::{Dedup, RegistryMessage, RegistryStep};
use crate::protocol::run::{Admission, Submission};
use crate::queue::QueueTable;
use crate::run::{RunId, RunSpec};

/// The admission gate shared by a supervisor and its submitters: one flag, open until the
/// supervisor starts draining.
///
/// This is the only lock in runwarden and it guards no data about runs. Submitters hold the
/// read side while they send a run's `Insert` to the registry; the supervisor takes the write
/// side once, to close the gate, and then sends the registry a barrier. Because of that, every
/// run whose submit returned `Ok` is in the registry's mailbox ahead of the barrier, so its
/// `Start` reaches the supervisor ahead of the `DrainBarrier` the registry forwards, and the
/// drain waits for it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gate(Arc<RwLock<bool>>);

impl Gate {
    /// Closes the gate; returns once no submit is between its check and its sends.
    pub(crate) fn close(&self) {
        *self.0.write() = true;
    }

    pub(crate) fn is_closed(&self) -> bool {
        *self.0.read()
    }
}

/// The one admission sequence, shared by the submitter, the supervisor's `Submit` and its
/// schedules: the queue's checks and length slot, a fresh id, and one message to the registry
/// built by `message`. A refused send hands its message (with the job) back, so the caller
/// decides when the job is dropped.
pub(crate) fn admit(
    table: &Arc<QueueTable>,
    registry: &ActorRef<RegistryMessage>,
    mut spec: RunSpec,
    job: BoxedJob,
    message: impl FnOnce(Box<Admission>) -> RegistryMessage,
) -> Result<RunId, Refused> {
    let slot = table.admit(&mut spec, &job).map_err(|error| Refused {
        error,
        _message: None,
    })?;
    let id = RunId::new();
    let submission = Submission::admitted(job, slot, &spec);
    match registry.cast(message(Admission::new(id, spec, submission))) {
        Ok(()) => Ok(id),
        Err(e) => Err(Refused {
            error: SubmitError::Unavailable,
            _message: match e {
                MessagingErr::SendErr(m) => Some(Box::new(m)),
                _ => None,
            },
        }),
    }
}

/// A submit [`admit`] refused: why, and the message the registry did not take (holding the
/// job), if any. The message is only held so the caller decides when the job is dropped.
pub(crate) struct Refused {
    pub(crate) error: SubmitError,
    _message: Option<Box<RegistryMessage>>,
}

/// The registry step for a plain admission.
pub(crate) fn admit_step(admission: Box<Admission>) -> RegistryMessage {
    RegistryStep::Admit(admission).into()
}

/// Submits runs to one supervisor without waiting for any actor.
///
/// Cheap to clone; get one from [`crate::SupervisorMessage::GetSubmitter`]. `submit` generates the
/// run's id, records the run in the registry (so a query right after `submit` finds it), and
/// hands the job to the supervisor, all by fire-and-forget messages.
#[derive(Clone)]
pub struct Submitter {
    registry: ActorRef<RegistryMessage>,
    gate: Gate,
    table: Arc<QueueTable>,
    kinds: Arc<JobKinds>,
}

impl Submitter {
    pub(crate) fn new(
        registry: ActorRef<RegistryMessage>,
        gate: Gate,
        table: Arc<QueueTable>,
        kinds: Arc<JobKinds>,
    ) -> Self {
        Submitter {
            registry,
            gate,
            table,
            kinds,
        }
    }

    /// A run of a registered job kind: its job built from `spec.params`, and `spec` marked
    /// with the kind's name (which is what lets the run be rebuilt after a crash).
    ///
    /// # Errors
    /// [`SubmitError::UnknownKind`], or [`SubmitError::BadParams`] if the kind's factory
    /// refused the parameters.
    pub fn kind_job(
        &self,
        kind: &str,
        mut spec: RunSpec,
    ) -> Result<(RunSpec, BoxedJob), SubmitError> {
        let job = self
            .kinds
            .build(kind, &spec.params)
            .ok_or_else(|| SubmitError::UnknownKind(kind.to_owned()))?
            .map_err(SubmitError::BadParams)?;
        spec.kind = Some(kind.to_owned());
        Ok((spec, job))
    }

    /// Submits a run of a registered job kind, built from `spec.params` (see
    /// [`Submitter::kind_job`]); otherwise as [`Submitter::submit`].
    ///
    /// # Errors
    /// Those of [`Submitter::kind_job`] and of [`Submitter::submit`].
    pub fn submit_kind(&self, kind: &str, spec: RunSpec) -> Result<RunId, SubmitError> {
        let (spec, job) = self.kind_job(kind, spec)?;
        self.submit(spec, job)
    }

    /// The job kinds the supervisor knows.
    #[must_use]
    pub fn kinds(&self) -> &JobKinds {
        &self.kinds
    }

    /// Accepts a run and returns its id at once; the job starts when a worker is free.
    ///
    /// # Errors
    /// [`SubmitError::ShuttingDown`] once a drain has begun; [`SubmitError::QueueFull`] when
    /// the run's queue is at its length bound; [`SubmitError::UnknownQueue`];
    /// [`SubmitError::NotRepeatable`] for a retry policy on a run-once job;
    /// [`SubmitError::Unavailable`] if the actors are gone. In every case nothing was recorded.
    pub fn submit(&self, spec: RunSpec, job: BoxedJob) -> Result<RunId, SubmitError> {
        // One message: the registry records the run, then hands the job to the supervisor.
        // Recording first is what makes a query right after `submit` find the run.
        self.send_new(spec, job, admit_step)
    }

    /// Like [`Submitter::submit`], but returns only once the run's record is committed to the
    /// durable store, so the run survives a crash of this process from then on (without a
    /// store, once it is recorded in memory). Commits of concurrent submits are batched.
    pub async fn submit_durable(&self, spec: RunSpec, job: BoxedJob) -> Result<RunId, SubmitError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send_new(spec, job, |admission| {
            RegistryStep::AdmitDurable(admission, tx.into()).into()
        })?;
        rx.await.map_err(|_| SubmitError::Unavailable)?
    }

    /// Accepts a run unless a run with the same idempotency key is active or ended within the
    /// dedup window, in which case that run's id comes back and nothing new starts. Waits for
    /// the registry's answer (one round trip); the admission checks are those of `submit`.
    pub async fn submit_unique(
        &self,
        key: impl Into<String>,
        spec: RunSpec,
        job: BoxedJob,
    ) -> Result<Dedup, SubmitError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let key = key.into();
        self.send_new(spec, job, |admission| {
            RegistryStep::AdmitUnique(admission, key, tx.into()).into()
        })?;
        rx.await.map_err(|_| SubmitError::Unavailable)
    }

    /// The admission path of every submit: the gate, then [`admit`].
    fn send_new(
        &self,
        spec: RunSpec,
        job: BoxedJob,
        message: impl FnOnce(Box<Admission>) -> RegistryMessage,
    ) -> Result<RunId, SubmitError> {
        let closed = self.gate.0.read();
        if *closed {
            return Err(SubmitError::ShuttingDown);
        }
        let answer = admit(&self.table, &self.registry, spec, job, message);
        drop(closed);
        // A refused message (holding the job) is dropped only after the gate is released: a
        // job whose drop submits again must not find this thread still holding the lock.
        answer.map_err(|refused| refused.error)
    }

    /// The registry holding the supervisor's run records.
    pub fn registry(&self) -> &ActorRef<RegistryMessage> {
        &self.registry
    }

    /// `true` once the supervisor has begun draining: every later `submit` is refused.
    pub fn is_closed(&self) -> bool {
        self.gate.is_closed()
    }
}

impl fmt::Debug for Submitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submitter")
            .field("registry", &self.registry.get_id())
            .finish()
    }
}
