//! The registry's protocol: what it accepts and the values it answers with.

use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, OutputPort, RpcReplyPort};
use serde::{Deserialize, Serialize};

use crate::error::{CallError, CancelError, NotFound, StoreError, SubmitError, ask};
use crate::event::{EventFilter, RunEvent, Subscription};
use crate::job::{CancelSignal, RunReports};
use crate::metrics::RunMetrics;
use crate::protocol::run::{Admission, CancelOutcome, Submission};
use crate::query::{ListQuery, RunPage};
use crate::run::WorkflowId;
use crate::run::{RunId, RunRecord, RunStatus, StatusSet, Transition, TransitionError};
use crate::time::Timestamp;
use crate::workflow::WorkflowView;

/// A reply port for the outcome of a write.
pub(crate) type WriteReply = RpcReplyPort<Result<(), TransitionError>>;

/// Messages the registry handles.
///
/// Every public variant is a query or request any holder of the registry's address may make;
/// none of them changes a run. Every change to a record (admission, status reports, progress,
/// store acknowledgements, retention, recovery) travels in [`RegistryMessage::Internal`],
/// which only runwarden can build, so no value a user can build makes the registry forget a
/// run, release a durability acknowledgement early, or start a run twice.
#[derive(Debug)]
pub enum RegistryMessage {
    /// Query: one run's record.
    Get(RunId, RpcReplyPort<Result<RunRecord, NotFound>>),
    /// Query: runs matching a filter, newest first, with the true total.
    List(Box<ListQuery>, RpcReplyPort<RunPage>),
    /// Query: how many runs are `Queued` or `Running`.
    ActiveCount(RpcReplyPort<usize>),
    /// Query: the ids of active runs, oldest first.
    ActiveIds(RpcReplyPort<Vec<RunId>>),
    /// Query: the ids of the active runs matching the filter (its limit, offset and cursor
    /// are ignored), oldest first: one consistent answer, however many.
    ActiveMatching(Box<ListQuery>, RpcReplyPort<Vec<RunId>>),
    /// Query: is this run `Queued` or `Running`? `false` for unknown ids.
    IsActive(RunId, RpcReplyPort<bool>),
    /// Query: reply with the run's record once it is terminal: at once if it already is,
    /// otherwise when its terminal transition arrives (no polling).
    WaitTerminal(RunId, RpcReplyPort<Result<RunRecord, NotFound>>),
    /// Query: subscribe to live events. For a run filter, an unknown id is `NotFound`.
    Subscribe(EventFilter, RpcReplyPort<Result<Subscription, NotFound>>),
    /// Query: the output port on which the registry publishes every [`RunEvent`], for actors
    /// (`port.subscribe(actor, converter)`).
    EventPort(RpcReplyPort<Arc<OutputPort<RunEvent>>>),
    /// Sent by anyone (an admin endpoint): run a retention pass now; replies at once.
    PruneNow(RpcReplyPort<()>),
    /// Query: counters.
    Stats(RpcReplyPort<RegistryStats>),
    /// Query: what runs did since the registry started, by queue and kind (ends, retries,
    /// time limits, durations, queue waits) and per minute over the last hour.
    Metrics(RpcReplyPort<RunMetrics>),
    /// One of runwarden's own steps; see [`RegistryInternal`].
    Internal(RegistryInternal),
}

/// A step of the registry's own protocol. Its contents are private to runwarden.
///
/// ```compile_fail
/// // A user cannot build one: the field is private to the crate.
/// let _ = runwarden_actors::RegistryInternal(());
/// ```
#[derive(Debug)]
pub struct RegistryInternal(pub(crate) RegistryStep);

/// The registry's internal steps: every change to a record.
#[derive(Debug)]
pub(crate) enum RegistryStep {
    /// Sent by fault-injection tests only: record a ready-made `Queued` record, then hand its
    /// job to the supervisor. A reused id is refused with [`TransitionError::DuplicateId`]
    /// and its job is dropped unstarted.
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    Insert(Box<RunRecord>, Submission, Option<WriteReply>),
    /// Sent by a [`crate::Submitter`] (and by the supervisor, for
    /// [`crate::SupervisorMessage::Submit`] and schedules): record a run admitted from its
    /// spec, in the registry's compact form, then hand its job to the supervisor (`Start`).
    ///
    /// Routing the job through the registry means every run the registry shows as active has
    /// its `Start` in the supervisor's mailbox already: see `AnswerCancel`.
    Admit(Box<Admission>),
    /// Sent by a [`crate::Submitter`] in durable mode: as `Admit`, but the reply (the run's
    /// id) is sent only once the record is committed to the store.
    AdmitDurable(Box<Admission>, RpcReplyPort<Result<RunId, SubmitError>>),
    /// Sent by a [`crate::Submitter`] for a run with an idempotency key: if the run holding
    /// the key conflicts under the [`Uniqueness`] rule, reply with its id and drop this one
    /// unstarted (or, with [`OnConflict::Replace`] and a holder not yet started, have the
    /// supervisor cancel the holder, then admit this one); otherwise admit it like `Admit`.
    AdmitUnique(
        Box<Admission>,
        String,
        Uniqueness,
        RpcReplyPort<Result<Dedup, SubmitError>>,
    ),
    /// Sent by a [`crate::Submitter`] or the supervisor for many runs at once: each admitted
    /// one is recorded as `Admit` records it (a refused one keeps its error), in one message,
    /// and their writes go to the store together. The reply, if any, comes once they are
    /// committed: one answer per run, in order.
    AdmitBatch(Vec<Result<Box<Admission>, SubmitError>>, Option<BatchReply>),
    /// Sent by a [`crate::Submitter`] for a workflow: its steps, in dependency order, every
    /// dependency on another step naming that step's (fresh) id. All are recorded, in one
    /// store transaction, or (a dependency outside the workflow unknown) none is: then every
    /// answer is that error. The reply comes once they are committed, one answer per step.
    // Boxed as every admission is: each is handed on to `admit` as it is.
    #[allow(clippy::vec_box)]
    AdmitWorkflow(Vec<Box<Admission>>, BatchReply),
    /// Sent by the supervisor, after the holder's cancel (if any) was cast: whether the
    /// holder of this key was replaced (it was still queued) or had started meanwhile.
    ReplaceDone(String, bool),
    /// Sent by the run's worker (`Started`, terminal status) or by the supervisor (cancel of a
    /// queued run, a dead worker, recovery): apply one transition. A stale, out-of-order or
    /// unknown one is refused with a typed error and a warning, never applied.
    Transition(RunId, Transition, Option<WriteReply>),
    /// Sent by the supervisor: a rate limit holds this queued run, first in line, until
    /// then; kept on the record as `eligible_at` until its next transition (ignored unless
    /// the run is queued).
    Eligible(RunId, Timestamp),
    /// Sent by a job's [`crate::RunContext`] when it has a progress report waiting in the
    /// slot and no message about it is on its way: take the latest report and keep it on the
    /// record (ignored once the run is terminal).
    Progress(RunId, Arc<CancelSignal>),
    /// Sent by a process run's job: its program's exit code, kept on the record (ignored once
    /// the run is terminal).
    ExitCode(RunId, i32),
    /// Sent by the supervisor with a caller's cancel request for a run it does not hold:
    /// answer `NotFound` or `AlreadyFinished` from the record. If the record is still active,
    /// the request overtook the run's `Start` (which this registry has already forwarded), so
    /// it goes back to the supervisor once, behind that `Start`. `bounced` is set when the
    /// request has already been back once: by then the supervisor has handled the run's
    /// `Start`, so a run it no longer holds has ended and its end is recorded here.
    AnswerCancel(
        RunId,
        RpcReplyPort<Result<CancelOutcome, CancelError>>,
        bool,
    ),
    /// Sent by the supervisor when a drain begins, right after closing the admission gate:
    /// forwarded to the supervisor as its `DrainBarrier`, behind the `Start` of every run
    /// admitted before it.
    Barrier,
    /// Sent by the supervisor at start-up for a run a previous process left active, whose job
    /// could be rebuilt: the interrupted attempt is recorded, and the run is queued again and
    /// handed to the supervisor.
    Requeue(RunId, Submission),
    /// Sent by the store's writer thread: every write numbered up to this one is committed
    /// (or failed with this error). Held-back acknowledgements up to it are released.
    Committed(u64, Option<StoreError>),
    /// Sent by the store's writer thread: finished runs (with their statuses) that retention
    /// may now forget.
    Prunable(Vec<(RunId, RunStatus)>),
    /// Sent by the registry to itself: time to apply retention.
    PruneTick,
    /// Sent by fault-injection tests only: the registry panics while handling it, as a bug
    /// would. With a store the registry restarts; without one it fails and its supervisor
    /// escalates.
    #[cfg_attr(not(feature = "fault-injection"), allow(dead_code))]
    Fault(String),
}

impl From<RegistryStep> for RegistryMessage {
    fn from(step: RegistryStep) -> Self {
        RegistryMessage::Internal(RegistryInternal(step))
    }
}

/// A job's reports reach the registry as internal steps.
impl RunReports for ActorRef<RegistryMessage> {
    fn progress(&self, id: RunId, attempt: Arc<CancelSignal>) {
        let _ = self.cast(RegistryStep::Progress(id, attempt).into());
    }

    fn exit_code(&self, id: RunId, code: i32) {
        let _ = self.cast(RegistryStep::ExitCode(id, code).into());
    }
}

/// Where the answers to a batch submit go: one per run, in the order submitted.
pub(crate) type BatchReply = RpcReplyPort<Vec<Result<RunId, SubmitError>>>;

/// The answer to a submit with an idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "run_id", rename_all = "snake_case")]
pub enum Dedup {
    /// No run held the key: this one was accepted under the id given.
    New(RunId),
    /// A run holding the key conflicts: its id; nothing new started.
    Existing(RunId),
    /// The run holding the key had not started and was cancelled (`cancelled_by: replaced`);
    /// this one was accepted under the id given.
    Replaced(RunId),
}

impl Dedup {
    /// The run's id: the new one, or the existing one.
    #[must_use]
    pub fn run_id(self) -> RunId {
        match self {
            Dedup::New(id) | Dedup::Existing(id) | Dedup::Replaced(id) => id,
        }
    }
}

/// When an idempotency key conflicts with the run that holds it, and what a conflict does.
///
/// The default is the dedup rule: a holder conflicts while it is active, and for the
/// supervisor's dedup window after it ended; the existing run's id is returned.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use runwarden_actors::{OnConflict, StatusSet, Uniqueness};
///
/// // Debounce: while a run of the key waits to start, a newer one takes its place.
/// let debounce = Uniqueness::while_in(StatusSet::ACTIVE).on_conflict(OnConflict::Replace);
/// // At most one run of the key per hour, whatever became of it.
/// let hourly = Uniqueness::while_in(StatusSet::ALL).within(Duration::from_secs(3600));
/// # let _ = (debounce, hourly);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Uniqueness {
    /// The holder's statuses that conflict. A finished holder conflicts only while its
    /// record is in the registry's memory and, unless `period` is set, within the dedup
    /// window after it ended.
    pub states: StatusSet,
    /// Only a holder created within this long before the submit conflicts (`None`: any age,
    /// finished holders within the dedup window).
    #[serde(default, with = "crate::serde_duration::opt_millis")]
    pub period: Option<Duration>,
    /// What a conflict does.
    #[serde(default)]
    pub on_conflict: OnConflict,
}

impl Default for Uniqueness {
    fn default() -> Self {
        Uniqueness {
            states: StatusSet::ALL,
            period: None,
            on_conflict: OnConflict::ReturnExisting,
        }
    }
}

impl Uniqueness {
    /// A holder in one of `states` conflicts.
    #[must_use]
    pub fn while_in(states: StatusSet) -> Self {
        Uniqueness {
            states,
            ..Uniqueness::default()
        }
    }

    /// Only a holder created within `period` conflicts.
    #[must_use]
    pub fn within(mut self, period: Duration) -> Self {
        self.period = Some(period);
        self
    }

    /// Sets what a conflict does.
    #[must_use]
    pub fn on_conflict(mut self, on_conflict: OnConflict) -> Self {
        self.on_conflict = on_conflict;
        self
    }
}

/// What a submit does when its idempotency key conflicts with the run holding it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnConflict {
    /// Nothing new is accepted; the answer is the holder's id ([`Dedup::Existing`]).
    #[default]
    ReturnExisting,
    /// If the holder has not started, it is cancelled (`cancelled_by: replaced`) and this run
    /// takes its place ([`Dedup::Replaced`]): the newest spec wins (debounce). A holder that
    /// has started is kept, as with `ReturnExisting`.
    Replace,
}

/// The registry's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryStats {
    /// Runs per status, indexed by [`RunStatus::index`].
    pub by_status: [usize; RunStatus::COUNT],
    /// Transitions and inserts refused by the state machine since start.
    pub refused: u64,
    /// The most runs that were `Running` at once, since start.
    pub peak_running: usize,
    /// Finished runs forgotten by retention since start.
    pub pruned: u64,
    /// Times the registry restarted after a failure, since start.
    pub restarts: u64,
}

impl RegistryStats {
    /// Runs with `status`.
    #[must_use]
    pub fn count(&self, status: RunStatus) -> usize {
        self.by_status[status.index()]
    }

    /// Runs `Queued` or `Running`, counted at the same instant as the per-status counts (what
    /// [`RegistryRef::active_count`] answers, in the same answer as the rest).
    #[must_use]
    pub fn active(&self) -> usize {
        self.count(RunStatus::Waiting)
            + self.count(RunStatus::Queued)
            + self.count(RunStatus::Running)
    }

    /// All records held.
    #[must_use]
    pub fn total(&self) -> usize {
        self.by_status.iter().sum()
    }
}

/// How long finished runs are kept, and how many stay in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Finished runs older than this are pruned (default 7 days).
    #[serde(with = "crate::serde_duration::millis")]
    pub max_age: Duration,
    /// At most this many finished runs are kept; older ones are pruned (default 100,000).
    pub max_finished: usize,
    /// With a store: at most this many finished runs stay in memory; older ones are answered
    /// from the store (default 10,000).
    pub memory_window: usize,
    /// How often retention runs (default 10 s); each pass removes at most `batch` runs, so
    /// pruning never stalls the registry.
    #[serde(with = "crate::serde_duration::millis")]
    pub every: Duration,
    /// Most runs pruned per pass (default 5,000).
    pub batch: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_finished: 100_000,
            memory_window: 10_000,
            every: Duration::from_secs(10),
            batch: 5_000,
        }
    }
}

/// The registry's address with a named method per request (ractor's `FactoryRef` pattern):
/// what an application holds to ask about runs.
///
/// Every method sends one public [`RegistryMessage`] and waits for its answer, at most the
/// ref's timeout (5 s unless set with [`RegistryRef::with_timeout`]); [`RegistryRef::wait`]
/// waits as long as the run takes. The outer `Result` says whether the registry answered
/// ([`CallError`]), the inner one is its answer.
///
/// # Examples
/// ```
/// use runwarden_actors::{RunSpec, RunStatus, SupervisorActor, SupervisorArguments};
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (runs, _) = SupervisorActor::spawn(SupervisorArguments::default()).await?;
/// let registry = runs.registry().await?;
/// let id = runs.submitter().await?.submit(RunSpec::new("hello"), |_ctx| async { Ok(()) })?;
/// let record = registry.wait(id).await??;
/// assert_eq!(record.status, RunStatus::Completed);
/// assert_eq!(registry.active_count().await?, 0);
/// runs.shutdown(std::time::Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RegistryRef {
    actor: ActorRef<RegistryMessage>,
    timeout: Duration,
}

impl From<ActorRef<RegistryMessage>> for RegistryRef {
    fn from(actor: ActorRef<RegistryMessage>) -> Self {
        RegistryRef {
            actor,
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

/// How long a typed ref waits for an answer unless told otherwise.
pub(crate) const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(5);

impl RegistryRef {
    /// The same registry, with requests waiting at most `timeout` for an answer.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The registry's address, to send it messages directly.
    #[must_use]
    pub fn actor(&self) -> &ActorRef<RegistryMessage> {
        &self.actor
    }

    async fn ask<T: Send + 'static>(
        &self,
        build: impl FnOnce(RpcReplyPort<T>) -> RegistryMessage,
        request: &'static str,
    ) -> Result<T, CallError> {
        ask(&self.actor, build, Some(self.timeout), request).await
    }

    /// One run's record.
    pub async fn get(&self, id: RunId) -> Result<Result<RunRecord, NotFound>, CallError> {
        self.ask(|r| RegistryMessage::Get(id, r), "status").await
    }

    /// Runs matching `query`, newest first, with the true total.
    pub async fn list(&self, query: ListQuery) -> Result<RunPage, CallError> {
        let query = Box::new(query);
        self.ask(|r| RegistryMessage::List(query, r), "list").await
    }

    /// Workflow `id` as the registry holds it now: every step's record (from the store too,
    /// for steps outside the memory window), its counts and its state; `None` if no step of
    /// it is held.
    pub async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowView>, CallError> {
        let page = self
            .list(ListQuery::new().workflow(id).limit(usize::MAX))
            .await?;
        Ok(WorkflowView::from_records(id, page.runs))
    }

    /// How many runs are `Waiting`, `Queued` or `Running`.
    pub async fn active_count(&self) -> Result<usize, CallError> {
        self.ask(RegistryMessage::ActiveCount, "active_count").await
    }

    /// Ids of the runs that are `Queued` or `Running`, oldest first.
    pub async fn active_ids(&self) -> Result<Vec<RunId>, CallError> {
        self.ask(RegistryMessage::ActiveIds, "active_ids").await
    }

    /// The ids of the active runs matching `filter`'s status, label and queue, oldest first.
    pub async fn active_matching(&self, filter: ListQuery) -> Result<Vec<RunId>, CallError> {
        let filter = Box::new(filter);
        let ask = |r| RegistryMessage::ActiveMatching(filter, r);
        self.ask(ask, "active_matching").await
    }

    /// Whether the run is `Queued` or `Running` (`false` for unknown ids).
    pub async fn is_active(&self, id: RunId) -> Result<bool, CallError> {
        self.ask(|r| RegistryMessage::IsActive(id, r), "is_active")
            .await
    }

    /// Waits until the run is terminal and returns its final record: no timeout of its own
    /// (wrap it in `tokio::time::timeout` to bound it).
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future only abandons the wait.
    pub async fn wait(&self, id: RunId) -> Result<Result<RunRecord, NotFound>, CallError> {
        ask(
            &self.actor,
            |r| RegistryMessage::WaitTerminal(id, r),
            None,
            "wait",
        )
        .await
    }

    /// As [`RegistryRef::wait`], for at most `timeout`.
    ///
    /// # Errors
    /// [`CallError::Timeout`] when the run is still active after `timeout` (the wait is
    /// abandoned; the run goes on); the inner `NotFound` for an unknown run.
    pub async fn wait_timeout(
        &self,
        id: RunId,
        timeout: Duration,
    ) -> Result<Result<RunRecord, NotFound>, CallError> {
        ask(
            &self.actor,
            |r| RegistryMessage::WaitTerminal(id, r),
            Some(timeout),
            "wait",
        )
        .await
    }

    /// Subscribes to live events matching `filter`.
    pub async fn subscribe(
        &self,
        filter: EventFilter,
    ) -> Result<Result<Subscription, NotFound>, CallError> {
        self.ask(|r| RegistryMessage::Subscribe(filter, r), "events")
            .await
    }

    /// The output port on which every [`RunEvent`] is published, for actors.
    pub async fn event_port(&self) -> Result<Arc<OutputPort<RunEvent>>, CallError> {
        self.ask(RegistryMessage::EventPort, "event_port").await
    }

    /// Counts per status, refusals, prunes and restarts.
    pub async fn stats(&self) -> Result<RegistryStats, CallError> {
        self.ask(RegistryMessage::Stats, "stats").await
    }

    /// Ends, retries, durations and queue waits by queue and kind, and the last hour's ends
    /// per minute.
    pub async fn metrics(&self) -> Result<RunMetrics, CallError> {
        self.ask(RegistryMessage::Metrics, "metrics").await
    }

    /// Runs a retention pass now (it also runs on its timer).
    pub async fn prune_now(&self) -> Result<(), CallError> {
        self.ask(RegistryMessage::PruneNow, "prune_now").await
    }
}
