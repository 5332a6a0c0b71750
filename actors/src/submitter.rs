//! [`Submitter`]: the fast, synchronous way to hand runs to a supervisor.

use std::fmt;
use std::sync::Arc;

use parking_lot::RwLock;
use ractor::ActorRef;

use crate::error::SubmitError;
use crate::job::BoxedJob;
use crate::queue::QueueTable;
use crate::registry::{Admission, Dedup, RegistryMessage, Submission};
use crate::run::{RunId, RunSpec};
use crate::supervisor::SupervisorMessage;

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

/// Submits runs to one supervisor without waiting for any actor.
///
/// Cheap to clone; get one from [`SupervisorMessage::GetSubmitter`]. `submit` generates the
/// run's id, records the run in the registry (so a query right after `submit` finds it), and
/// hands the job to the supervisor, all by fire-and-forget messages.
#[derive(Clone)]
pub struct Submitter {
    supervisor: ActorRef<SupervisorMessage>,
    registry: ActorRef<RegistryMessage>,
    gate: Gate,
    table: Arc<QueueTable>,
}

impl Submitter {
    pub(crate) fn new(
        supervisor: ActorRef<SupervisorMessage>,
        registry: ActorRef<RegistryMessage>,
        gate: Gate,
        table: Arc<QueueTable>,
    ) -> Self {
        Submitter {
            supervisor,
            registry,
            gate,
            table,
        }
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
        self.send_new(spec, job, RegistryMessage::Admit)
    }

    /// Like [`Submitter::submit`], but returns only once the run's record is committed to the
    /// durable store, so the run survives a crash of this process from then on (without a
    /// store, once it is recorded in memory). Commits of concurrent submits are batched.
    pub async fn submit_durable(&self, spec: RunSpec, job: BoxedJob) -> Result<RunId, SubmitError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send_new(spec, job, |admission| {
            RegistryMessage::InsertDurable(admission, tx.into())
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
            RegistryMessage::InsertUnique(admission, key, tx.into())
        })?;
        rx.await.map_err(|_| SubmitError::Unavailable)
    }

    /// The admission path every submit shares: the gate, the queue's checks and slot, a fresh
    /// id, and one message to the registry built by `message`.
    fn send_new(
        &self,
        mut spec: RunSpec,
        job: BoxedJob,
        message: impl FnOnce(Box<Admission>) -> RegistryMessage,
    ) -> Result<RunId, SubmitError> {
        let closed = self.gate.0.read();
        if *closed {
            return Err(SubmitError::ShuttingDown);
        }
        let slot = self.table.admit(&mut spec, &job)?;
        let id = RunId::new();
        let submission = Submission::admitted(job, slot, &spec);
        let refused = self
            .registry
            .cast(message(Admission::new(id, spec, submission)))
            .err();
        drop(closed);
        // A refused message (holding the job) is dropped only after the gate is released: a
        // job whose drop submits again must not find this thread still holding the lock.
        match refused {
            None => Ok(id),
            Some(_) => Err(SubmitError::Unavailable),
        }
    }

    /// The supervisor this submitter feeds.
    pub fn supervisor(&self) -> &ActorRef<SupervisorMessage> {
        &self.supervisor
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
            .field("supervisor", &self.supervisor.get_id())
            .field("registry", &self.registry.get_id())
            .finish()
    }
}
