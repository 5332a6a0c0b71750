//! [`Submitter`]: the fast, synchronous way to hand runs to a supervisor.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use parking_lot::RwLock;
use ractor::{ActorRef, MessagingErr};

use crate::error::SubmitError;
use crate::error::WorkflowError;
use crate::job::{BoxedJob, IntoJobOutput, JobError, RunContext};
use crate::kinds::JobKinds;
use crate::protocol::registry::{
    BatchReply, Dedup, RegistryMessage, RegistryRef, RegistryStep, Uniqueness,
};
use crate::protocol::run::{Admission, RunLinks, Submission};
use crate::queue::QueueTable;
use crate::run::{Dependency, WorkflowId};
use crate::run::{RunId, RunRecord, RunSpec};
use crate::submit::IntoJob;
use crate::trace::TracePropagation;
use crate::workflow::{Planned, Workflow, WorkflowRuns};

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
    links: Option<Box<RunLinks>>,
    message: impl FnOnce(Box<Admission>) -> RegistryMessage,
) -> Result<RunId, Refused> {
    let slot = table.admit(&mut spec, &job).map_err(|error| Refused {
        error,
        _message: None,
    })?;
    let id = RunId::new();
    let submission = Submission::admitted(job, slot, &spec);
    let admission = Admission::new(id, spec, submission).linked(links);
    match registry.cast(message(admission)) {
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

/// The batch form of [`admit`]: each run through its queue's checks and a fresh id (a refused
/// one keeps its error, and nothing of it is recorded), then all in one `AdmitBatch` message.
/// Answers at once with one result per run (an `Ok` means the run was sent to be recorded);
/// with `reply`, the registry answers again once the batch is committed. A message the
/// registry did not take (holding the jobs) is handed back, so the caller decides when the
/// jobs are dropped (after the gate is released, as in [`Submitter::submit`]).
pub(crate) fn admit_batch(
    table: &Arc<QueueTable>,
    registry: &ActorRef<RegistryMessage>,
    runs: Vec<(RunSpec, Result<BoxedJob, SubmitError>)>,
    reply: Option<BatchReply>,
) -> (
    Vec<Result<RunId, SubmitError>>,
    Option<Box<RegistryMessage>>,
) {
    let batch: Vec<_> = runs
        .into_iter()
        .map(|(mut spec, job)| {
            let job = job?;
            let slot = table.admit(&mut spec, &job)?;
            let submission = Submission::admitted(job, slot, &spec);
            Ok(Admission::new(RunId::new(), spec, submission))
        })
        .collect();
    let mut answers: Vec<_> = batch
        .iter()
        .map(|a| a.as_ref().map(|a| a.id).map_err(Clone::clone))
        .collect();
    let Err(e) = registry.cast(RegistryStep::AdmitBatch(batch, reply).into()) else {
        return (answers, None);
    };
    for answer in &mut answers {
        if answer.is_ok() {
            *answer = Err(SubmitError::Unavailable);
        }
    }
    let unsent = match e {
        MessagingErr::SendErr(m) => Some(Box::new(m)),
        _ => None,
    };
    (answers, unsent)
}

/// Inline mode's end of a batch: waits for the end of every run that was sent (`sent`), then
/// answers with `answers` (a failed commit's errors kept), a run whose end could not be known
/// answering `Unavailable`.
pub(crate) async fn batch_ends(
    registry: &RegistryRef,
    sent: &[Result<RunId, SubmitError>],
    mut answers: Vec<Result<RunId, SubmitError>>,
) -> Vec<Result<RunId, SubmitError>> {
    for (sent, answer) in sent.iter().zip(&mut answers) {
        if let Ok(id) = sent
            && registry.wait(*id).await.is_err()
        {
            *answer = Err(SubmitError::Unavailable);
        }
    }
    answers
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
    /// The supervisor is in [`crate::StartMode::Inline`]: awaited submits answer at the
    /// run's end.
    inline: bool,
    /// Captures the caller's trace context into specs that carry none.
    trace: Option<Arc<dyn TracePropagation>>,
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
            inline: false,
            trace: None,
        }
    }

    pub(crate) fn inline(mut self, inline: bool) -> Self {
        self.inline = inline;
        self
    }

    pub(crate) fn traced(mut self, trace: Option<Arc<dyn TracePropagation>>) -> Self {
        self.trace = trace;
        self
    }

    /// The caller's trace context, for a spec that carries none (captured here, in the
    /// submitting task: the run's span continues the caller's trace).
    fn capture_trace(&self, spec: &mut RunSpec) {
        if spec.trace_parent.is_none()
            && let Some(trace) = &self.trace
        {
            spec.trace_parent = trace.capture();
        }
    }

    /// Inline mode: returns once the registry has `id`'s terminal status; `Unavailable` if
    /// the registry went away first (nothing can say the run ended).
    async fn inline_end(&self, id: RunId) -> Result<(), SubmitError> {
        if !self.inline {
            return Ok(());
        }
        match RegistryRef::from(self.registry.clone()).wait(id).await {
            Ok(_) => Ok(()),
            Err(_) => Err(SubmitError::Unavailable),
        }
    }

    /// The job kinds the supervisor knows.
    #[must_use]
    pub fn kinds(&self) -> &JobKinds {
        &self.kinds
    }

    /// Accepts a run of the closure `job` and returns its id at once; the job starts when a
    /// worker is free. The synchronous fast path: no round trip to any actor.
    ///
    /// # Errors
    /// [`SubmitError::ShuttingDown`] once a drain has begun; [`SubmitError::QueueFull`] when
    /// the run's queue is at its length bound; [`SubmitError::UnknownQueue`];
    /// [`SubmitError::NotRepeatable`] for a retry policy on a run-once job;
    /// [`SubmitError::Unavailable`] if the actors are gone. In every case nothing was recorded.
    pub fn submit<F, Fut, T>(&self, spec: RunSpec, job: F) -> Result<RunId, SubmitError>
    where
        F: FnOnce(RunContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, JobError>> + Send + 'static,
        T: IntoJobOutput,
    {
        self.submit_job(spec, BoxedJob::new(job))
    }

    /// Accepts a run of any kind of job ([`IntoJob`]: a [`BoxedJob`], a registered job
    /// [`crate::Kind`], ...); otherwise as [`Submitter::submit`].
    ///
    /// # Errors
    /// Those of [`Submitter::submit`], and [`SubmitError::UnknownKind`] or
    /// [`SubmitError::BadParams`] for a job kind.
    pub fn submit_job(&self, mut spec: RunSpec, job: impl IntoJob) -> Result<RunId, SubmitError> {
        let job = job.into_job(&mut spec, &self.kinds)?;
        // One message: the registry records the run, then hands the job to the supervisor.
        // Recording first is what makes a query right after `submit` find the run.
        self.send_new(spec, job, None, admit_step)
    }

    /// Accepts many runs with one message to the registry, and returns one answer per run, in
    /// order, at once: each run is checked as [`Submitter::submit_job`] checks it (a refused
    /// one is not recorded; the others are), and all are recorded together.
    pub fn submit_many<J: IntoJob>(
        &self,
        runs: impl IntoIterator<Item = (RunSpec, J)>,
    ) -> Vec<Result<RunId, SubmitError>> {
        self.send_batch(self.jobs(runs), None)
    }

    /// The admission path of every batch: the gate, then [`admit_batch`]. A batch the
    /// registry did not take is dropped after the gate is released, as in
    /// [`Submitter::submit`]; a batch refused at the gate drops `reply` unanswered.
    fn send_batch(
        &self,
        runs: Vec<(RunSpec, Result<BoxedJob, SubmitError>)>,
        reply: Option<BatchReply>,
    ) -> Vec<Result<RunId, SubmitError>> {
        let mut runs = runs;
        if let Some(trace) = &self.trace {
            let current = trace.capture();
            for (spec, _) in &mut runs {
                if spec.trace_parent.is_none() {
                    spec.trace_parent.clone_from(&current);
                }
            }
        }
        let closed = self.gate.0.read();
        if *closed {
            return runs
                .iter()
                .map(|_| Err(SubmitError::ShuttingDown))
                .collect();
        }
        let (answers, unsent) = admit_batch(&self.table, &self.registry, runs, reply);
        drop(closed);
        drop(unsent);
        answers
    }

    /// As [`Submitter::submit_many`], answering once the batch is committed to the store
    /// (one transaction for the batch; without a store, once it is recorded), which makes it
    /// the fast way to submit many durable runs. In [`crate::StartMode::Inline`] it answers
    /// once every accepted run has ended.
    ///
    /// # Errors
    /// Per run: those of [`Submitter::submit_job`], and [`SubmitError::Store`] for every run
    /// of a batch whose commit failed (they were accepted and run, but are not durable).
    pub async fn submit_many_durable<J: IntoJob>(
        &self,
        runs: impl IntoIterator<Item = (RunSpec, J)>,
    ) -> Vec<Result<RunId, SubmitError>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.send_batch(self.jobs(runs), Some(tx.into()));
        let answers = match rx.await {
            Ok(answers) => answers,
            // Refused at the gate, or the registry never took the batch (or went away): the
            // refusals stand, and what was sent is unknown.
            Err(_) => sent
                .iter()
                .map(|a| a.clone().and(Err(SubmitError::Unavailable)))
                .collect(),
        };
        if !self.inline {
            return answers;
        }
        let registry = RegistryRef::from(self.registry.clone());
        batch_ends(&registry, &sent, answers).await
    }

    /// Each run's job, built (a kind from its parameters) as a single submit builds it.
    fn jobs<J: IntoJob>(
        &self,
        runs: impl IntoIterator<Item = (RunSpec, J)>,
    ) -> Vec<(RunSpec, Result<BoxedJob, SubmitError>)> {
        runs.into_iter()
            .map(|(mut spec, job)| {
                let job = job.into_job(&mut spec, &self.kinds);
                (spec, job)
            })
            .collect()
    }

    /// A submit with options: durability, an idempotency key. See [`SubmitRequest`].
    pub fn request(&self, spec: RunSpec, job: impl IntoJob) -> SubmitRequest {
        let mut spec = spec;
        let job = job.into_job(&mut spec, &self.kinds);
        SubmitRequest {
            submitter: self.clone(),
            spec,
            job,
            durable: false,
            links: None,
        }
    }

    /// Submits a workflow: its graph is checked (cycles, unknown or duplicate step names) and
    /// each step admitted as a single submit would be; then every step is recorded together
    /// (with a store, in one transaction: the answer waits for it), each waiting for the
    /// steps it runs after. If anything is refused, nothing is recorded, and the error says
    /// what. A store error at commit ([`SubmitError::Store`]) is different, as for any
    /// durable submit: the steps were recorded in memory and go ahead, but were not made
    /// durable, so a crash before a later write of theirs would lose them.
    ///
    /// # Errors
    /// [`SubmitError::Workflow`] for the graph or a refused step,
    /// [`SubmitError::UnknownDependency`] for a dependency on a run not held, and those of
    /// [`Submitter::submit_job`] for the whole.
    pub async fn submit_workflow(&self, workflow: Workflow) -> Result<WorkflowRuns, SubmitError> {
        let plan = workflow.plan().map_err(SubmitError::Workflow)?;
        let workflow_id = WorkflowId::new();
        let mut ids: Vec<RunId> = Vec::with_capacity(plan.len());
        let mut admitted = Vec::with_capacity(plan.len());
        let mut names = Vec::with_capacity(plan.len());
        for step in plan {
            let mut spec = step.spec;
            self.capture_trace(&mut spec);
            let refused = |error| {
                SubmitError::Workflow(WorkflowError::Step {
                    step: step.name.clone(),
                    error: Box::new(error),
                })
            };
            let job = (step.job)(&mut spec, &self.kinds).map_err(refused)?;
            let slot = self.table.admit(&mut spec, &job).map_err(refused)?;
            let id = RunId::new();
            let depends_on = step
                .after
                .iter()
                .map(|(dep, policy)| Dependency {
                    run: match dep {
                        Planned::Step(i) => ids[*i],
                        Planned::Run(id) => *id,
                    },
                    on_failure: *policy,
                })
                .collect();
            let links = RunLinks {
                depends_on,
                workflow: Some((workflow_id, step.name.clone())),
                ..RunLinks::default()
            };
            let submission = Submission::admitted(job, slot, &spec);
            admitted.push(Admission::new(id, spec, submission).linked(Some(Box::new(links))));
            ids.push(id);
            names.push(step.name);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        {
            let closed = self.gate.0.read();
            if *closed {
                return Err(SubmitError::ShuttingDown);
            }
            let sent = self
                .registry
                .cast(RegistryStep::AdmitWorkflow(admitted, tx.into()).into());
            drop(closed);
            sent.map_err(|_| SubmitError::Unavailable)?;
        }
        let answers = rx.await.map_err(|_| SubmitError::Unavailable)?;
        let mut steps = std::collections::BTreeMap::new();
        for (name, answer) in names.into_iter().zip(answers) {
            steps.insert(name, answer?);
        }
        if self.inline {
            for id in &ids {
                self.inline_end(*id).await?;
            }
        }
        Ok(WorkflowRuns {
            id: workflow_id,
            steps,
        })
    }

    /// Re-runs the finished run `original` as a new run with the same spec (label, name,
    /// parameters, queue, priority, partition key, time limit, retry policy, kind), linked to
    /// the original on both records; its job is built again by its registered kind. It is
    /// not part of the original's workflow and waits for nothing. The answer waits for the
    /// registry (with a store, for the commit).
    ///
    /// # Errors
    /// [`SubmitError::UnknownRun`], [`SubmitError::NotFinished`] for an active run,
    /// [`SubmitError::NotRerunnable`] for a run not submitted by kind, and those of a submit.
    pub async fn rerun(&self, original: RunId) -> Result<RunId, SubmitError> {
        let registry = RegistryRef::from(self.registry.clone());
        let record = match registry.get(original).await {
            Ok(Ok(record)) => record,
            Ok(Err(_)) => return Err(SubmitError::UnknownRun(original)),
            Err(_) => return Err(SubmitError::Unavailable),
        };
        if record.status.is_active() {
            return Err(SubmitError::NotFinished {
                id: original,
                status: record.status,
            });
        }
        let Some(kind) = record.kind.clone() else {
            return Err(SubmitError::NotRerunnable(original));
        };
        let spec = RunSpec {
            label: record.label.clone(),
            name: record.name.clone(),
            params: record.params.clone(),
            queue: Some(record.queue.clone()),
            priority: record.priority,
            timeout: record.timeout,
            retry: record.retry,
            kind: None,
            partition_key: record.partition_key.clone(),
            // A re-run is a new request: it continues the trace of whoever asks for it.
            trace_parent: None,
        };
        let request = self.request(spec, crate::Kind(&kind));
        if matches!(request.job, Err(SubmitError::UnknownKind(_))) {
            return Err(SubmitError::NotRerunnable(original));
        }
        request.rerun_of(record).send().await
    }

    /// Re-runs each finished run matching `filter` (at most its `limit`, after its
    /// `offset`), oldest first, answering per run as [`Submitter::rerun`] does (an active run
    /// that matches answers [`SubmitError::NotFinished`]).
    ///
    /// # Errors
    /// Only when the registry cannot be asked for the matching runs.
    pub async fn rerun_matching(
        &self,
        filter: crate::ListQuery,
    ) -> Result<Vec<(RunId, Result<RunId, SubmitError>)>, crate::CallError> {
        let registry = RegistryRef::from(self.registry.clone());
        let page = registry.list(filter).await?;
        let mut answers = Vec::with_capacity(page.runs.len());
        for record in page.runs.into_iter().rev() {
            answers.push((record.id, self.rerun(record.id).await));
        }
        Ok(answers)
    }

    /// The admission path of every submit: the gate, then [`admit`].
    fn send_new(
        &self,
        mut spec: RunSpec,
        job: BoxedJob,
        links: Option<Box<RunLinks>>,
        message: impl FnOnce(Box<Admission>) -> RegistryMessage,
    ) -> Result<RunId, SubmitError> {
        self.capture_trace(&mut spec);
        let closed = self.gate.0.read();
        if *closed {
            return Err(SubmitError::ShuttingDown);
        }
        let answer = admit(&self.table, &self.registry, spec, job, links, message);
        drop(closed);
        // A refused message (holding the job) is dropped only after the gate is released: a
        // job whose drop submits again must not find this thread still holding the lock.
        answer.map_err(|refused| refused.error)
    }

    /// The registry holding the supervisor's run records.
    #[must_use]
    pub fn registry(&self) -> &ActorRef<RegistryMessage> {
        &self.registry
    }

    /// `true` once the supervisor has begun draining: every later `submit` is refused.
    #[must_use]
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

/// A submit with options, built by [`Submitter::request`] (or the handle's `request`) and sent
/// with [`SubmitRequest::send`]: kameo's `ask(..).send()` style, one request instead of one
/// method per combination of options.
///
/// # Examples
/// ```
/// use runwarden_actors::{Dedup, RunSpec, SupervisorActor, SupervisorArguments};
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (runs, _) = SupervisorActor::spawn(SupervisorArguments::default()).await?;
/// let submitter = runs.submitter().await?;
/// let id = submitter
///     .request(RunSpec::new("charge"), |_ctx| async { Ok(()) })
///     .durable()
///     .send()
///     .await?;
/// let first = submitter
///     .request(RunSpec::new("invoice"), |_ctx| async { Ok(()) })
///     .idempotency_key("invoice-42")
///     .send()
///     .await?;
/// let again = submitter
///     .request(RunSpec::new("invoice"), |_ctx| async { Ok(()) })
///     .idempotency_key("invoice-42")
///     .send()
///     .await?;
/// assert_eq!(again, Dedup::Existing(first.run_id()));
/// # let _ = id;
/// # runs.shutdown(std::time::Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a request does nothing until it is sent"]
pub struct SubmitRequest {
    submitter: Submitter,
    spec: RunSpec,
    job: Result<BoxedJob, SubmitError>,
    durable: bool,
    links: Option<Box<RunLinks>>,
}

impl fmt::Debug for SubmitRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubmitRequest")
            .field("label", &self.spec.label)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

impl SubmitRequest {
    /// Answers only once the run's record is committed to the durable store, so the run
    /// survives a crash of this process from then on (without a store, once it is recorded in
    /// memory). Commits of concurrent submits are batched.
    pub fn durable(mut self) -> Self {
        self.durable = true;
        self
    }

    /// Runs only after `dependency` has ended: the run is recorded `Waiting` (no concurrency
    /// limit counts it) until then, and is cancelled unstarted if the dependency does not
    /// complete and its policy says so (see [`Dependency`]). Call it once per dependency. The
    /// answer waits for the registry, which refuses a dependency it does not hold with
    /// [`SubmitError::UnknownDependency`].
    pub fn after(mut self, dependency: Dependency) -> Self {
        self.links
            .get_or_insert_with(Box::default)
            .depends_on
            .push(dependency);
        self
    }

    /// A re-run of `original`: the new run's record links to it, and its record to the new
    /// run.
    pub(crate) fn rerun_of(mut self, original: RunRecord) -> Self {
        let links = self.links.get_or_insert_with(Box::default);
        links.rerun_of = Some(original.id);
        links.original = Some(Box::new(original));
        self
    }

    /// Accepts the run unless a run with the same `key` is active or ended within the dedup
    /// window: then that run's id comes back as [`Dedup::Existing`] and this job is dropped
    /// unstarted. The answer waits for the registry (and, with a store, for the commit).
    pub fn idempotency_key(self, key: impl Into<String>) -> UniqueSubmitRequest {
        UniqueSubmitRequest {
            request: self,
            key: key.into(),
            rule: Uniqueness::default(),
        }
    }

    /// Sends the request. A durable one waits for the commit (one round trip); otherwise it
    /// is [`Submitter::submit_job`]. In [`crate::StartMode::Inline`] it answers once the run
    /// has ended.
    ///
    /// # Errors
    /// Those of [`Submitter::submit_job`], and [`SubmitError::Store`] if a durable commit
    /// failed (the run was accepted and runs, but is not durable).
    pub async fn send(self) -> Result<RunId, SubmitError> {
        let job = self.job?;
        let submitter = self.submitter;
        // A run with links is refused by the registry if they name an unknown run: its answer
        // is waited for, as a durable one's is.
        if !self.durable && self.links.is_none() {
            let id = submitter.send_new(self.spec, job, None, admit_step)?;
            submitter.inline_end(id).await?;
            return Ok(id);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let id = submitter.send_new(self.spec, job, self.links, |admission| {
            RegistryStep::AdmitDurable(admission, tx.into()).into()
        })?;
        let committed = rx.await.map_err(|_| SubmitError::Unavailable)?;
        // A failed commit still leaves the run accepted and running: inline, its end comes
        // first, then the commit's error.
        submitter.inline_end(id).await?;
        committed
    }
}

/// A [`SubmitRequest`] with an idempotency key: its answer says whether the run is new.
#[must_use = "a request does nothing until it is sent"]
#[derive(Debug)]
pub struct UniqueSubmitRequest {
    request: SubmitRequest,
    key: String,
    rule: Uniqueness,
}

impl UniqueSubmitRequest {
    /// When the key conflicts and what a conflict does (default: [`Uniqueness::default`],
    /// the dedup rule).
    pub fn unique(mut self, rule: Uniqueness) -> Self {
        self.rule = rule;
        self
    }

    /// Sends the request and waits for the registry's answer: [`Dedup::New`] with the new
    /// run's id, or [`Dedup::Existing`] with the id of the run holding the key.
    ///
    /// # Errors
    /// Those of [`Submitter::submit_job`].
    pub async fn send(self) -> Result<Dedup, SubmitError> {
        let SubmitRequest {
            submitter,
            spec,
            job,
            links,
            ..
        } = self.request;
        let (key, rule) = (self.key, self.rule);
        let (tx, rx) = tokio::sync::oneshot::channel();
        submitter.send_new(spec, job?, links, |admission| {
            RegistryStep::AdmitUnique(admission, key, rule, tx.into()).into()
        })?;
        let answer = rx.await.map_err(|_| SubmitError::Unavailable)??;
        // Inline, a new run is waited for; an existing one is not this submit's run.
        if let Dedup::New(id) | Dedup::Replaced(id) = answer {
            submitter.inline_end(id).await?;
        }
        Ok(answer)
    }
}
