//! [`Runwarden`]: the async handle, and [`RunwardenBuilder`].

use std::future::Future;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef};
use std::sync::Arc;

use ractor::OutputPort;
use runwarden_actors::{
    BoxedJob, CallError, CancelOutcome, DrainReport, DrainState, ErrorKind, EventFilter,
    IntoJobOutput, ListQuery, QueueConfig, RateLimit, RateScope, RegistryRef, RegistryStats,
    Release, RunError, RunEvent, RunId, RunPage, RunRecord, RunSpec, RunStatus, ScheduleId,
    ScheduleInfo, ScheduleSpec, StartMode, SubmitError, Submitter, SupervisorActor,
    SupervisorArguments, SupervisorMessage, SupervisorRef, SupervisorStatus,
};

use crate::error::{BatchError, Error};
use crate::events::EventStream;
use runwarden_actors::{Batch, Workflow, WorkflowId, WorkflowRuns, WorkflowView};
use runwarden_actors::{
    IntoJob, JobError, JobKinds, JsonObject, LogConfig, LogEntry, LogFollow, LogsRef, OnInterrupt,
    RecoveryReport, Retention, RunStore, StoreError, SubmitRequest, Timestamp, WallClock,
};

/// Configures and starts runwarden's actors.
///
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), runwarden::Error> {
/// use std::time::Duration;
///
/// let rw = runwarden::Runwarden::builder()
///     .max_concurrent(8)
///     .cancel_grace(Duration::from_secs(2))
///     .start()
///     .await?;
/// rw.shutdown(Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct RunwardenBuilder {
    args: SupervisorArguments,
    call_timeout: Duration,
    logs: Option<LogConfig>,
    store: Option<Box<dyn RunStore>>,
    kinds: JobKinds,
    name: Option<String>,
}

impl Default for RunwardenBuilder {
    fn default() -> Self {
        RunwardenBuilder {
            args: SupervisorArguments::default(),
            call_timeout: Duration::from_secs(5),
            logs: None,
            store: None,
            kinds: JobKinds::default(),
            name: None,
        }
    }
}

impl RunwardenBuilder {
    /// At most `n` runs execute at once (at least 1); the rest wait `Queued`. Default: no limit.
    #[must_use]
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.args.max_concurrent = Some(n);
        self
    }

    /// How many times recovery re-runs a run whose attempt a crash interrupted (default 3);
    /// see [`SupervisorArguments::max_rescues`].
    #[must_use]
    pub fn max_rescues(mut self, n: u32) -> Self {
        self.args.max_rescues = n;
        self
    }

    /// Adds (or reconfigures) a named queue. The queue `"default"` always exists; configure
    /// it here to bound or limit it.
    pub fn queue(mut self, name: impl Into<String>, config: QueueConfig) -> Self {
        let name = name.into();
        self.args.queues.retain(|(n, _)| *n != name);
        self.args.queues.push((name, config));
        self
    }

    /// Holds every run until [`Runwarden::release`] lets it start: runs are accepted and
    /// recorded exactly as in production, so a test can check what its application
    /// submitted, then release the runs one by one, by id, or all (see
    /// [`crate::testing`] with the `testing` feature).
    #[must_use]
    pub fn hold_starts(self) -> Self {
        self.start_mode(StartMode::Held)
    }

    /// Runs every run to its end inside the submit that awaits it ([`StartMode::Inline`]):
    /// runs start at once whatever the limits say, and [`Runwarden::request`]'s `.send()`
    /// (and [`SupervisorRef::submit`]) answer only once the run has ended, for simple unit
    /// tests. The synchronous [`Runwarden::submit`] starts its run at once but cannot wait.
    #[must_use]
    pub fn inline(self) -> Self {
        self.start_mode(StartMode::Inline)
    }

    /// How runs start: [`StartMode::Normal`] (the default), or one of the test modes.
    #[must_use]
    pub fn start_mode(mut self, mode: StartMode) -> Self {
        self.args.start_mode = mode;
        self
    }

    /// Limits how many runs of `kind` start per time window, over all queues: the runs whose
    /// label is `kind` (a run submitted by kind has its kind as its label). A kind held by
    /// its limit holds back its own runs only.
    #[must_use]
    pub fn kind_rate(mut self, kind: impl Into<String>, rate: RateLimit) -> Self {
        let kind = kind.into();
        self.args.kind_rates.retain(|(k, _)| *k != kind);
        self.args.kind_rates.push((kind, rate));
        self
    }

    /// How long a finished run keeps its idempotency key (see [`Runwarden::request`]).
    /// Default 60 s.
    #[must_use]
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.args.dedup_window = window;
        self
    }

    /// Where cron schedules read the time of day (default: the system clock). For tests on
    /// tokio's paused clock, [`WallClock::StartingAt`] makes schedules fire exactly when the
    /// test advances time.
    #[must_use]
    pub fn wall_clock(mut self, clock: WallClock) -> Self {
        self.args.wall_clock = clock;
        self
    }

    /// How many live events a subscriber may fall behind before it lags. Default 4096.
    #[must_use]
    pub fn event_buffer(mut self, events: usize) -> Self {
        self.args.event_buffer = events;
        self
    }

    /// How long a cancelled job may take to stop before its future is dropped. Default 5 s.
    #[must_use]
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.args.cancel_grace = grace;
        self
    }

    /// How long queries wait for the registry before [`Error::Timeout`]. Default 5 s.
    /// (`wait` and `drain` have no call timeout: they end when the runs do.)
    #[must_use]
    pub fn call_timeout(mut self, timeout: Duration) -> Self {
        self.call_timeout = timeout;
        self
    }

    /// Keeps run records in a durable store (for example a [`crate::SqliteStore`]). At start
    /// the store is loaded, and runs a previous process left active are recovered (see
    /// [`Runwarden::recovery`]).
    pub fn store(mut self, store: impl RunStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// How long finished runs are kept, and how many stay in memory.
    #[must_use]
    pub fn retention(mut self, retention: Retention) -> Self {
        self.args.retention = retention;
        self
    }

    /// Registers a job kind: `factory` builds a run's job from its parameters. Runs submitted
    /// with a [`crate::Kind`] can be re-queued after a crash, as `on_interrupt` says.
    pub fn job_kind(
        mut self,
        name: impl Into<String>,
        on_interrupt: OnInterrupt,
        factory: impl Fn(&JsonObject) -> Result<BoxedJob, String> + Send + Sync + 'static,
    ) -> Self {
        self.kinds = std::mem::take(&mut self.kinds).register(name, on_interrupt, factory);
        self
    }

    /// Keeps run logs: an in-memory ring per run and a file per run under `config.dir`.
    /// Without it, lines that jobs log are dropped and log queries fail with
    /// [`Error::LogsDisabled`].
    #[must_use]
    pub fn logs(mut self, config: LogConfig) -> Self {
        self.logs = Some(config);
        self
    }

    /// Continues the caller's trace in each run: `trace` captures the current trace context
    /// at submit (kept on the record, and in the store) and makes the run's span its child
    /// when it starts, also after a crash recovery. `runwarden-otel` provides one for
    /// OpenTelemetry.
    #[must_use]
    pub fn trace_propagation(mut self, trace: impl runwarden_actors::TracePropagation) -> Self {
        self.args.trace = Some(std::sync::Arc::new(trace));
        self
    }

    /// Registers the supervisor under `name` in ractor's process-wide registry, so a handle
    /// can find it again: [`Runwarden::connect_named`], and [`Runwarden::reconnect`] after
    /// an application's own supervisor restarted it under the same name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Spawns the supervisor (and its registry) unsupervised.
    pub async fn start(self) -> Result<Runwarden, Error> {
        self.spawn(None).await
    }

    /// Spawns the supervisor linked to `parent`, so `parent` receives its supervision events
    /// (for example when its registry fails and it escalates).
    pub async fn start_linked(self, parent: ActorCell) -> Result<Runwarden, Error> {
        self.spawn(Some(parent)).await
    }

    async fn spawn(mut self, parent: Option<ActorCell>) -> Result<Runwarden, Error> {
        self.args.store = self.store.take();
        self.args.kinds = std::mem::take(&mut self.kinds);
        self.args.logs = self.logs.take();
        let name = self.name.take();
        let spawned = match parent {
            None => Actor::spawn(name, SupervisorActor, self.args).await,
            Some(p) => Actor::spawn_linked(name, SupervisorActor, self.args, p).await,
        };
        let (supervisor, _) = spawned.map_err(spawn_error)?;
        Runwarden::connect(supervisor, self.call_timeout).await
    }
}

/// A supervisor that could not start: a store that could not be loaded keeps its typed error.
fn spawn_error(e: ractor::SpawnErr) -> Error {
    match e {
        ractor::SpawnErr::StartupFailed(cause) => match cause.downcast::<StoreError>() {
            Ok(store) => Error::Store(*store),
            Err(cause) => Error::Spawn(cause.to_string()),
        },
        other => Error::Spawn(other.to_string()),
    }
}

/// The async handle to a runwarden supervisor: submit runs, ask about them, cancel, drain.
///
/// Cheap to clone; every clone talks to the same actors. It holds no run state itself:
/// every answer comes from the registry or supervisor actor by message.
///
/// Dropping the handles does not stop the actors: call [`Runwarden::shutdown`].
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), runwarden::Error> {
/// use std::time::Duration;
/// use runwarden::{RunSpec, RunStatus, Runwarden};
///
/// let rw = Runwarden::builder().max_concurrent(4).start().await?;
/// let id = rw.submit(RunSpec::new("held"), |ctx| async move {
///     ctx.cancelled().await;
///     Ok(())
/// })?;
/// rw.cancel(id).await?;
/// assert_eq!(rw.wait(id).await?.status, RunStatus::Cancelled);
/// rw.shutdown(Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Runwarden {
    supervisor: SupervisorRef,
    registry: RegistryRef,
    submitter: Submitter,
    logs: Option<LogsRef>,
    recovery: Arc<RecoveryReport>,
}

impl std::fmt::Debug for Runwarden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runwarden")
            .field("submitter", &self.submitter)
            .field("logs", &self.logs.as_ref().map(|l| &l.config().dir))
            .finish()
    }
}

impl Runwarden {
    /// A builder with default settings.
    #[must_use]
    pub fn builder() -> RunwardenBuilder {
        RunwardenBuilder::default()
    }

    /// Starts runwarden with default settings.
    pub async fn start() -> Result<Self, Error> {
        Self::builder().start().await
    }

    /// A handle to a supervisor spawned elsewhere (for example under an application's own
    /// supervisor): everything the handle does, it does by message to that supervisor and its
    /// registry, and its log keeper if it keeps logs.
    pub async fn connect(
        supervisor: ActorRef<SupervisorMessage>,
        call_timeout: Duration,
    ) -> Result<Self, Error> {
        let supervisor = SupervisorRef::connect(supervisor)
            .await?
            .with_timeout(call_timeout);
        let submitter = supervisor.submitter().await?;
        let registry = RegistryRef::from(submitter.registry().clone()).with_timeout(call_timeout);
        let logs = supervisor
            .logs()
            .await?
            .map(|l| l.with_timeout(call_timeout));
        Ok(Runwarden {
            recovery: supervisor.recovery().await?,
            supervisor,
            registry,
            submitter,
            logs,
        })
    }

    /// A handle to the supervisor registered under `name` (see [`RunwardenBuilder::name`], or
    /// `SupervisorActor::spawn_linked` with a name).
    ///
    /// # Errors
    /// [`Error::NoSuchSupervisor`] if no actor is registered under `name`; as
    /// [`Runwarden::connect`] otherwise.
    pub async fn connect_named(name: &str, call_timeout: Duration) -> Result<Self, Error> {
        let supervisor = ActorRef::<SupervisorMessage>::where_is(name)
            .ok_or_else(|| Error::NoSuchSupervisor(Some(name.to_owned())))?;
        Self::connect(supervisor, call_timeout).await
    }

    /// A fresh handle to whichever supervisor now holds this one's name: after the
    /// application's own supervisor restarted runwarden under the same name, the old handle
    /// answers [`Error::Unavailable`] and this one is connected to the new instance.
    ///
    /// # Errors
    /// [`Error::NoSuchSupervisor`] if this handle's supervisor had no name, or nothing holds
    /// it now.
    pub async fn reconnect(&self) -> Result<Self, Error> {
        let name = self
            .supervisor
            .actor()
            .get_name()
            .ok_or(Error::NoSuchSupervisor(None))?;
        Self::connect_named(&name, self.supervisor.timeout()).await
    }

    /// What start-up recovery did (empty without a store, or when nothing was left active).
    #[must_use]
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Whether a job kind of this name is registered.
    #[must_use]
    pub fn has_kind(&self, kind: &str) -> bool {
        self.submitter.kinds().contains(kind)
    }

    /// The names of the job kinds this node can start, sorted.
    pub fn kinds(&self) -> Vec<String> {
        let kinds = self.submitter.kinds();
        kinds.names().into_iter().map(str::to_owned).collect()
    }

    /// Runs a retention pass now (it also runs on its timer).
    pub async fn prune_now(&self) -> Result<(), Error> {
        Ok(self.registry.prune_now().await?)
    }

    fn log_keeper(&self) -> Result<&LogsRef, Error> {
        self.logs.as_ref().ok_or(Error::LogsDisabled)
    }

    /// The last `n` lines of a run's log (memory first, else its file: also after a restart).
    pub async fn log_tail(&self, id: RunId, n: usize) -> Result<Vec<LogEntry>, Error> {
        Ok(self.log_keeper()?.tail(id, n).await?)
    }

    /// The lines of a run's log at or after `since`.
    pub async fn log_since(&self, id: RunId, since: Timestamp) -> Result<Vec<LogEntry>, Error> {
        Ok(self.log_keeper()?.since(id, since).await?)
    }

    /// The path of a run's log file, with everything logged so far written to it (for a
    /// download). The file may not exist for a run that logged nothing.
    pub async fn log_file(&self, id: RunId) -> Result<std::path::PathBuf, Error> {
        Ok(self.log_keeper()?.file(id).await?)
    }

    /// Follows a run's log live: the lines so far, new lines, then always the run's end
    /// (see [`LogFollow`]).
    pub async fn follow_log(&self, id: RunId) -> Result<LogFollow, Error> {
        Ok(self.log_keeper()?.follow(id).await??)
    }

    /// Accepts a run of `job` and returns its id at once, without waiting for it to start.
    ///
    /// `job` is an async closure receiving a [`runwarden_actors::RunContext`] and returning
    /// `Result<T, JobError>`: `Ok(())` or `Ok(json)` completes the run, an error (`?` on any
    /// `std::error::Error`, or [`JobError::msg`]) fails it, and a panic fails it with the panic
    /// message. A [`Runwarden::status`] call made after `submit` returns always finds the run.
    /// Other kinds of job go through [`Runwarden::submit_job`]; durability and idempotency
    /// keys through [`Runwarden::request`].
    ///
    /// # Errors
    /// [`SubmitError::ShuttingDown`] once a drain began, the queue's refusals
    /// ([`SubmitError::QueueFull`], [`SubmitError::UnknownQueue`],
    /// [`SubmitError::NotRepeatable`]); [`SubmitError::Unavailable`] if the actors are gone.
    pub fn submit<F, Fut, T>(&self, spec: RunSpec, job: F) -> Result<RunId, SubmitError>
    where
        F: FnOnce(runwarden_actors::RunContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, JobError>> + Send + 'static,
        T: IntoJobOutput,
    {
        self.submitter.submit(spec, job)
    }

    /// Accepts a run of any kind of job ([`IntoJob`]): a [`BoxedJob`] (a closure, or a
    /// repeatable one, which retries need: [`BoxedJob::repeatable`]), a registered job
    /// [`crate::Kind`], a [`crate::ProcessJob`], or [`crate::returning`] (a closure whose value
    /// is stored). Otherwise as [`Runwarden::submit`].
    ///
    /// # Errors
    /// Those of [`Runwarden::submit`], and [`SubmitError::UnknownKind`] or
    /// [`SubmitError::BadParams`] for a job kind.
    pub fn submit_job(&self, spec: RunSpec, job: impl IntoJob) -> Result<RunId, SubmitError> {
        self.submitter.submit_job(spec, job)
    }

    /// Accepts many runs with one message to the registry: one answer per run, in order, at
    /// once (see [`Submitter::submit_many`]). A refused run (its queue full, an unknown kind)
    /// is not recorded; the others are.
    pub fn submit_many<J: IntoJob>(
        &self,
        runs: impl IntoIterator<Item = (RunSpec, J)>,
    ) -> Vec<Result<RunId, SubmitError>> {
        self.submitter.submit_many(runs)
    }

    /// As [`Runwarden::submit_many`], answering once the whole batch is committed to the
    /// store in one transaction: the fast way to submit many durable runs (see
    /// [`Submitter::submit_many_durable`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use runwarden::{BoxedJob, RunSpec, Runwarden, SubmitError};
    ///
    /// let rw = Runwarden::builder().store(runwarden::MemoryStore::default()).start().await?;
    /// let runs = (0..3).map(|i| {
    ///     let queue = if i == 1 { "nowhere" } else { "default" };
    ///     let job = BoxedJob::new(|_ctx| async { Ok(()) });
    ///     (RunSpec::new("thumbnail").param("image", i).queue(queue), job)
    /// });
    /// let answers = rw.submit_many_durable(runs).await;
    /// assert!(answers[0].is_ok() && answers[2].is_ok());
    /// assert!(matches!(answers[1], Err(SubmitError::UnknownQueue(_))));
    /// # rw.shutdown(std::time::Duration::from_secs(1)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn submit_many_durable<J: IntoJob>(
        &self,
        runs: impl IntoIterator<Item = (RunSpec, J)>,
    ) -> Vec<Result<RunId, SubmitError>> {
        self.submitter.submit_many_durable(runs).await
    }

    /// A submit with options, sent with `.send().await`: `.durable()` answers once the run
    /// is committed to the store, `.idempotency_key(key)` refuses a second run with the same
    /// key and answers with a [`runwarden_actors::Dedup`] (see [`SubmitRequest`]).
    ///
    /// ```
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use runwarden::{Runwarden, RunSpec};
    ///
    /// let rw = Runwarden::builder().store(runwarden::MemoryStore::default()).start().await?;
    /// let id = rw
    ///     .request(RunSpec::new("charge"), |_ctx| async { Ok(()) })
    ///     .durable()
    ///     .send()
    ///     .await?;
    /// rw.wait(id).await?;
    /// rw.shutdown(std::time::Duration::from_secs(1)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn request(&self, spec: RunSpec, job: impl IntoJob) -> SubmitRequest {
        self.submitter.request(spec, job)
    }

    /// Live events: of all runs, of one label, or of one run (see [`EventStream`]).
    pub async fn events(&self, filter: EventFilter) -> Result<EventStream, Error> {
        let sub = self.registry.subscribe(filter).await??;
        Ok(EventStream::new(sub))
    }

    /// The registry's output port of every run event, for actors:
    /// `port.subscribe(actor_ref, |event| Some(MyMessage::Run(event)))`.
    pub async fn event_port(&self) -> Result<Arc<OutputPort<RunEvent>>, Error> {
        Ok(self.registry.event_port().await?)
    }

    /// Runs `f` once per item as tracked runs, at most `concurrency` at a time, and returns
    /// one result per item in input order. The batch as a whole never fails: each item's
    /// failure (an error, a panic, a cancel, a refused submit) is its own `Err`.
    pub async fn batch<I, F, Fut, T>(
        &self,
        spec: RunSpec,
        items: Vec<I>,
        concurrency: usize,
        f: F,
    ) -> Vec<Result<T, BatchError>>
    where
        I: Send + 'static,
        F: Fn(I, runwarden_actors::RunContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, JobError>> + Send + 'static,
        T: Send + 'static,
    {
        let f = Arc::new(f);
        let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
        let mut results: Vec<Option<Result<T, BatchError>>> = Vec::new();
        let mut running = tokio::task::JoinSet::new();
        for (i, item) in items.into_iter().enumerate() {
            results.push(None);
            // Never closed, so acquiring cannot fail.
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let (tx, rx) = tokio::sync::oneshot::channel();
            let f = f.clone();
            let spec = spec.clone().param("batch_index", i as i64);
            let submitted = self.submit(spec, move |ctx| async move {
                let value = f(item, ctx).await?;
                let _ = tx.send(value);
                Ok(())
            });
            match submitted {
                Err(e) => results[i] = Some(Err(BatchError::NotSubmitted(e))),
                Ok(id) => {
                    let rw = self.clone();
                    running.spawn(async move {
                        let ended = rw.wait(id).await;
                        drop(permit);
                        (i, ended, rx)
                    });
                }
            }
        }
        while let Some(joined) = running.join_next().await {
            let Ok((i, ended, rx)) = joined else {
                continue;
            };
            results[i] = Some(match ended {
                Ok(r) if r.status == RunStatus::Completed => {
                    rx.await.map_err(|_| BatchError::Lost(r.id))
                }
                Ok(r) => Err(BatchError::Failed(r.error.unwrap_or_else(|| {
                    RunError::new(ErrorKind::WorkerDied, format!("ended {}", r.status))
                }))),
                Err(e) => Err(BatchError::Unavailable(e)),
            });
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(BatchError::Unavailable(Error::Unavailable {
                        request: "batch",
                    }))
                })
            })
            .collect()
    }

    /// Runs `job` periodically as described by `spec` (the first occurrence at once). Each
    /// occurrence is a normal tracked run. Schedules stop submitting when a drain begins.
    pub async fn schedule<F, Fut, T>(&self, spec: ScheduleSpec, job: F) -> Result<ScheduleId, Error>
    where
        F: Fn(runwarden_actors::RunContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, JobError>> + Send + 'static,
        T: IntoJobOutput,
    {
        let job = BoxedJob::repeatable(job);
        Ok(self.supervisor.schedule(spec, job).await??)
    }

    /// Pauses a schedule (an active occurrence carries on).
    pub async fn pause_schedule(&self, id: ScheduleId) -> Result<(), Error> {
        Ok(self.supervisor.pause_schedule(id).await??)
    }

    /// Resumes a paused schedule; its next occurrence is submitted at once.
    pub async fn resume_schedule(&self, id: ScheduleId) -> Result<(), Error> {
        Ok(self.supervisor.resume_schedule(id).await??)
    }

    /// Removes a schedule and returns its final counters.
    pub async fn remove_schedule(&self, id: ScheduleId) -> Result<ScheduleInfo, Error> {
        Ok(self.supervisor.remove_schedule(id).await??)
    }

    /// Every schedule's counters.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>, Error> {
        Ok(self.supervisor.schedules().await?)
    }

    /// Changes the global concurrency limit (`None`: unlimited) while running.
    pub async fn set_global_limit(&self, limit: Option<usize>) -> Result<(), Error> {
        Ok(self.supervisor.set_limit(None, limit).await??)
    }

    /// Changes a queue's concurrency limit (`None`: only the global limit) while running.
    pub async fn set_queue_limit(&self, queue: &str, limit: Option<usize>) -> Result<(), Error> {
        Ok(self.supervisor.set_limit(Some(queue), limit).await??)
    }

    /// Changes how many runs may wait in a queue (`None`: unbounded) while running.
    pub async fn set_queue_max_length(&self, queue: &str, max: Option<usize>) -> Result<(), Error> {
        Ok(self.supervisor.set_max_length(queue, max).await??)
    }

    /// Pauses a queue: nothing of it starts until [`Runwarden::resume_queue`]; submits are
    /// still accepted and its running runs go on. Shown in [`Runwarden::supervisor_status`].
    pub async fn pause_queue(&self, queue: &str) -> Result<(), Error> {
        Ok(self.supervisor.pause_queue(queue).await??)
    }

    /// Resumes a paused queue: its runs start in the order they would have.
    pub async fn resume_queue(&self, queue: &str) -> Result<(), Error> {
        Ok(self.supervisor.resume_queue(queue).await??)
    }

    /// Sets or lifts (`None`) a queue's rate limit while running ([`RateLimit`]: at most
    /// `max` starts in any window of `per`; runs over it wait `Queued`).
    pub async fn set_queue_rate(&self, queue: &str, rate: Option<RateLimit>) -> Result<(), Error> {
        self.set_rate(RateScope::Queue(queue.to_owned()), rate)
            .await
    }

    /// Sets or lifts (`None`) the rate limit of each of a queue's partition keys, each key on
    /// its own ([`crate::QueueConfig::key_rate`]).
    pub async fn set_key_rate(&self, queue: &str, rate: Option<RateLimit>) -> Result<(), Error> {
        self.set_rate(RateScope::EachKey(queue.to_owned()), rate)
            .await
    }

    /// Sets or lifts (`None`) a kind's rate limit, over all queues (see
    /// [`RunwardenBuilder::kind_rate`]).
    pub async fn set_kind_rate(&self, kind: &str, rate: Option<RateLimit>) -> Result<(), Error> {
        self.set_rate(RateScope::Kind(kind.to_owned()), rate).await
    }

    /// Lets held runs start (a runwarden built with [`RunwardenBuilder::hold_starts`]); the
    /// ids of [`Release::Runs`] that were not waiting in a queue.
    pub async fn release(&self, release: Release) -> Result<Vec<RunId>, Error> {
        Ok(self.supervisor.release(release).await?)
    }

    /// Sets or lifts (`None`) the rate limit of `scope`.
    pub async fn set_rate(&self, scope: RateScope, rate: Option<RateLimit>) -> Result<(), Error> {
        Ok(self.supervisor.set_rate(scope, rate).await??)
    }

    /// Sets or lifts (`None`) a queue's per-key concurrency limit while running: at most
    /// `limit` runs of one partition key at once ([`RunSpec::partition_key`]).
    pub async fn set_queue_per_key(&self, queue: &str, limit: Option<usize>) -> Result<(), Error> {
        Ok(self.supervisor.set_per_key(queue, limit).await??)
    }

    /// The run's current record.
    pub async fn status(&self, id: RunId) -> Result<RunRecord, Error> {
        Ok(self.registry.get(id).await??)
    }

    /// Runs matching `query`, newest first, with the true total.
    pub async fn list(&self, query: ListQuery) -> Result<RunPage, Error> {
        Ok(self.registry.list(query).await?)
    }

    /// How many runs are `Queued` or `Running`.
    pub async fn active_count(&self) -> Result<usize, Error> {
        Ok(self.registry.active_count().await?)
    }

    /// Ids of the runs that are `Queued` or `Running`, oldest first.
    pub async fn active_ids(&self) -> Result<Vec<RunId>, Error> {
        Ok(self.registry.active_ids().await?)
    }

    /// The ids of the active runs matching `filter`'s status, label and queue, oldest first,
    /// in one consistent answer (the filter's limit and offset are ignored).
    pub async fn active_matching(&self, filter: ListQuery) -> Result<Vec<RunId>, Error> {
        Ok(self.registry.active_matching(filter).await?)
    }

    /// Whether the run is `Queued` or `Running` (`false` for unknown ids).
    pub async fn is_active(&self, id: RunId) -> Result<bool, Error> {
        Ok(self.registry.is_active(id).await?)
    }

    /// Counts per status, and how many status messages the registry refused.
    pub async fn stats(&self) -> Result<RegistryStats, Error> {
        Ok(self.registry.stats().await?)
    }

    /// What runs did since start, by queue and kind: ends by status, retries, time limits,
    /// forced stops, recoveries, run-duration and queue-wait histograms, and the last hour's
    /// ends per minute (what `GET /metrics` exports).
    pub async fn metrics(&self) -> Result<runwarden_actors::RunMetrics, Error> {
        Ok(self.registry.metrics().await?)
    }

    /// The supervisor's queues, limits and drain state.
    pub async fn supervisor_status(&self) -> Result<SupervisorStatus, Error> {
        Ok(self.supervisor.status().await?)
    }

    /// Cancels a run in any active state. Every `Ok` means the run ends `Cancelled`.
    ///
    /// A queued run is `Cancelled` before this returns and its job never runs. A running run's
    /// job is signalled through its context; if it has not returned after the grace period,
    /// its future is dropped. Cancelling twice is harmless.
    ///
    /// # Errors
    /// [`runwarden_actors::CancelError::NotFound`] for an unknown id,
    /// [`runwarden_actors::CancelError::AlreadyFinished`] (with the final status) for a run
    /// that already ended.
    pub async fn cancel(&self, id: RunId) -> Result<CancelOutcome, Error> {
        Ok(self.supervisor.cancel(id).await??)
    }

    /// Cancels many runs with one message to the supervisor; each answer is the one
    /// [`Runwarden::cancel`] would give, in the order of `ids`. Prefer it to a loop of
    /// `cancel` for batches: it costs one round trip, not one per run.
    pub async fn cancel_many(&self, ids: &[RunId]) -> Vec<Result<CancelOutcome, Error>> {
        let answers = self.supervisor.cancel_many(ids).await;
        answers.into_iter().map(|answer| Ok(answer??)).collect()
    }

    /// Cancels every active run matching `filter` (label, queue, and an active status if
    /// given), answering per run (see [`SupervisorRef::cancel_matching`]).
    pub async fn cancel_matching(
        &self,
        filter: ListQuery,
    ) -> Result<Vec<(RunId, Result<CancelOutcome, Error>)>, Error> {
        let answers = self.supervisor.cancel_matching(filter).await?;
        let answers = answers.into_iter().map(|(id, answer)| {
            let answer = match answer {
                Ok(Ok(outcome)) => Ok(outcome),
                Ok(Err(e)) => Err(Error::from(e)),
                Err(e) => Err(Error::from(e)),
            };
            (id, answer)
        });
        Ok(answers.collect())
    }

    /// Submits a workflow: a graph of named steps, all recorded together or none (see
    /// [`Submitter::submit_workflow`]).
    ///
    /// # Errors
    /// [`SubmitError::Workflow`] for a refused graph or step, and those of a submit.
    pub async fn submit_workflow(&self, workflow: Workflow) -> Result<WorkflowRuns, Error> {
        Ok(self.submitter.submit_workflow(workflow).await?)
    }

    /// Submits a batch: its members and its callback, which waits for them all (see
    /// [`Batch`]). Its id is a workflow id: [`Runwarden::workflow`] shows its progress.
    ///
    /// # Errors
    /// As [`Runwarden::submit_workflow`].
    pub async fn submit_batch(&self, batch: Batch) -> Result<WorkflowRuns, Error> {
        self.submit_workflow(batch.into_workflow()).await
    }

    /// Re-runs the finished run `original` as a new run with the same spec, linked to it on
    /// both records (see [`Submitter::rerun`]).
    ///
    /// # Errors
    /// [`SubmitError::UnknownRun`], [`SubmitError::NotFinished`],
    /// [`SubmitError::NotRerunnable`] (not submitted by a registered kind), and those of a
    /// submit.
    pub async fn rerun(&self, original: RunId) -> Result<RunId, Error> {
        Ok(self.submitter.rerun(original).await?)
    }

    /// Re-runs every finished run matching `filter` (status, queue, kind, label, workflow,
    /// creation time; at most its `limit`), oldest first, answering per run.
    ///
    /// # Errors
    /// Only when the registry cannot be asked.
    pub async fn rerun_matching(
        &self,
        filter: ListQuery,
    ) -> Result<Vec<(RunId, Result<RunId, Error>)>, Error> {
        let answers = self.submitter.rerun_matching(filter).await?;
        Ok(answers
            .into_iter()
            .map(|(id, answer)| (id, answer.map_err(Error::from)))
            .collect())
    }

    /// Workflow (or batch) `id`: every step's record, its counts and state.
    ///
    /// # Errors
    /// Only the actors' being unreachable: an unknown workflow is `Ok(None)`.
    pub async fn workflow(&self, id: WorkflowId) -> Result<Option<WorkflowView>, Error> {
        Ok(self.registry.workflow(id).await?)
    }

    /// Cancels every step of workflow `id` that has not ended, answering per run.
    pub async fn cancel_workflow(
        &self,
        id: WorkflowId,
    ) -> Result<Vec<(RunId, Result<CancelOutcome, Error>)>, Error> {
        self.cancel_matching(ListQuery::new().workflow(id)).await
    }

    /// Waits until the run is terminal and returns its final record. Wrap it in
    /// `tokio::time::timeout` to bound the wait.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future only abandons the wait.
    pub async fn wait(&self, id: RunId) -> Result<RunRecord, Error> {
        Ok(self.registry.wait(id).await??)
    }

    /// Waits at most `timeout` for the run to be terminal: its final record, or `None` if it
    /// is still active then (the run goes on; only the wait is abandoned).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown run, [`Error::Unavailable`] if the actors are gone.
    pub async fn wait_timeout(
        &self,
        id: RunId,
        timeout: Duration,
    ) -> Result<Option<RunRecord>, Error> {
        match self.registry.wait_timeout(id, timeout).await {
            Ok(found) => Ok(Some(found?)),
            Err(CallError::Timeout { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stops accepting runs and waits until every accepted run is terminal. At `deadline` the
    /// runs still active are cancelled (and end within the cancel grace period). The actors
    /// keep answering queries afterwards; submits are refused with
    /// [`SubmitError::ShuttingDown`].
    pub async fn drain(&self, deadline: Duration) -> Result<DrainReport, Error> {
        Ok(self.supervisor.drain(deadline).await?)
    }

    /// Begins a drain with `deadline` (or joins the one under way) and returns as soon as it
    /// has begun: from then on every submit is refused with [`SubmitError::ShuttingDown`], so
    /// the caller can stop its own producers now. [`Runwarden::drain`] waits for the report.
    pub async fn begin_drain(&self, deadline: Duration) -> Result<DrainState, Error> {
        Ok(self.supervisor.begin_drain(deadline).await?)
    }

    /// Drains (see [`Runwarden::drain`]), then stops the supervisor and the registry and waits
    /// until both have exited. Afterwards every call returns [`Error::Unavailable`] (or
    /// [`SubmitError::ShuttingDown`] for submits).
    pub async fn shutdown(&self, deadline: Duration) -> Result<DrainReport, Error> {
        // The log keeper is one of the supervisor's children: it drains after the registry.
        Ok(self.supervisor.shutdown(deadline).await?)
    }

    /// The submitter behind this handle (usable from synchronous code and other actors).
    #[must_use]
    pub fn submitter(&self) -> &Submitter {
        &self.submitter
    }

    /// The supervisor, as a typed ref (its address: [`SupervisorRef::actor`]).
    #[must_use]
    pub fn supervisor(&self) -> &SupervisorRef {
        &self.supervisor
    }

    /// The registry holding the run records, as a typed ref (its address:
    /// [`RegistryRef::actor`]).
    #[must_use]
    pub fn registry(&self) -> &RegistryRef {
        &self.registry
    }
}
