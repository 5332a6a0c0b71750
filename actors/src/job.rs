//! What a run executes: [`BoxedJob`], and the [`RunContext`] it receives.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::json::Json;
use crate::log::{LogEntry, LogLevel, LogSink, LogStream};
use crate::run::{CancelReason, FailureKind, Progress, RunId};
use crate::run::{DependencyOutcome, StatusCounts};

/// What a finished job hands back: a value to store on the record, if any.
pub type JobOutput = Option<Json>;

/// The future of a running job, type-erased.
pub type JobFuture = Pin<Box<dyn Future<Output = Result<JobOutput, JobError>> + Send + 'static>>;

/// Why a job failed: a kind and a message, as the run's record keeps them.
///
/// Every job returns `Result<T, JobError>`, so `Ok(())` needs no annotation, `?` works on any
/// [`std::error::Error`] (it becomes [`FailureKind::Returned`] with the error's message and its
/// sources), and failing with a message is one call, [`JobError::msg`]. Jobs that know why they
/// failed (a program that could not start, one that exited non-zero) give a kind with
/// [`JobError::new`].
///
/// Like `anyhow::Error`, it does not implement [`std::error::Error`] itself: that is what lets
/// every error type convert into it.
///
/// # Examples
/// ```
/// use runwarden_actors::{BoxedJob, JobError};
///
/// let job = BoxedJob::new(|_ctx| async {
///     let n: u32 = "42".parse()?; // a `ParseIntError` would fail the run
///     if n > 100 {
///         return Err(JobError::msg(format!("{n} is too many")));
///     }
///     Ok(())
/// });
/// # let _ = job;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobError {
    /// Why the job failed.
    pub kind: FailureKind,
    /// What happened.
    pub message: String,
    /// Set by [`JobError::snooze`]: not a failure, the run goes back to `Queued` for this long.
    snooze: Option<Duration>,
}

impl JobError {
    /// A failure of `kind`.
    #[must_use]
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        JobError {
            kind,
            message: message.into(),
            snooze: None,
        }
    }

    /// Not a failure: "run me again in `delay`", e.g. when an upstream says "try later".
    ///
    /// The run goes back to `Queued` with `next_attempt_at` set to when it may start again,
    /// its record's `snoozes` counts it, and its attempt number and retry budget are
    /// unchanged. A cancel while it waits cancels it. Only a repeatable job can run again:
    /// a run-once job that snoozes fails, saying so.
    ///
    /// # Examples
    /// ```
    /// use std::time::Duration;
    /// use runwarden_actors::{BoxedJob, JobError};
    ///
    /// let job = BoxedJob::repeatable(|ctx| async move {
    ///     if ctx.attempt() == 1 && ctx.snoozes() < 3 {
    ///         return Err(JobError::snooze(Duration::from_secs(30)));
    ///     }
    ///     Ok(())
    /// });
    /// # let _ = job;
    /// ```
    #[must_use]
    pub fn snooze(delay: Duration) -> Self {
        JobError {
            kind: FailureKind::Returned,
            message: format!("snoozed for {delay:?}"),
            snooze: Some(delay),
        }
    }

    /// The delay a [`JobError::snooze`] asked for; `None` for a failure.
    #[must_use]
    pub fn snoozed_for(&self) -> Option<Duration> {
        self.snooze
    }

    /// A failure with `message` (kind [`FailureKind::Returned`]).
    #[must_use]
    pub fn msg(message: impl fmt::Display) -> Self {
        JobError::new(FailureKind::Returned, message.to_string())
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Any error becomes a failure of kind [`FailureKind::Returned`]: its message, then those of its
/// sources, separated by `": "`.
impl<E: std::error::Error + Send + Sync + 'static> From<E> for JobError {
    fn from(error: E) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        JobError::new(FailureKind::Returned, message)
    }
}

/// A value a job's future may return on success: `()` (nothing to store) or a [`Json`] value.
pub trait IntoJobOutput {
    /// Converts into what the record stores.
    fn into_job_output(self) -> JobOutput;
}

impl IntoJobOutput for () {
    fn into_job_output(self) -> JobOutput {
        None
    }
}

impl IntoJobOutput for Json {
    fn into_job_output(self) -> JobOutput {
        Some(self)
    }
}

impl IntoJobOutput for Option<Json> {
    fn into_job_output(self) -> JobOutput {
        self
    }
}

enum Kind {
    Once(Box<dyn FnOnce(RunContext) -> JobFuture + Send + 'static>),
    Repeatable(Arc<dyn Fn(RunContext) -> JobFuture + Send + Sync + 'static>),
}

/// A job: called with its [`RunContext`] when its run starts.
///
/// [`BoxedJob::new`] wraps a closure called at most once; [`BoxedJob::repeatable`] wraps one
/// that can be called again, which retries and periodic schedules need. The closure is not
/// called while the run is queued, so a run cancelled while queued never executes any of the
/// job's code.
pub struct BoxedJob(Kind);

fn erase<Fut, T>(fut: Fut) -> JobFuture
where
    Fut: Future<Output = Result<T, JobError>> + Send + 'static,
    T: IntoJobOutput,
{
    Box::pin(async move { fut.await.map(IntoJobOutput::into_job_output) })
}

impl BoxedJob {
    /// Wraps `f`, whose future returns `Result<T, JobError>`: `Ok(())` or `Ok(json)` completes
    /// the run (storing the value), `Err(e)` fails it (see [`JobError`]).
    ///
    /// ```
    /// use runwarden_actors::{BoxedJob, JobError};
    ///
    /// let job = BoxedJob::new(|ctx| async move {
    ///     if ctx.is_cancelled() {
    ///         return Err(JobError::msg("cancelled before doing anything"));
    ///     }
    ///     Ok(())
    /// });
    /// assert!(!job.is_repeatable());
    /// ```
    pub fn new<F, Fut, T>(f: F) -> Self
    where
        F: FnOnce(RunContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, JobError>> + Send + 'static,
        T: IntoJobOutput,
    {
        BoxedJob(Kind::Once(Box::new(move |ctx| erase(f(ctx)))))
    }

    /// Wraps `f`, which can be called once per attempt (retries) or per occurrence (periodic
    /// schedules).
    pub fn repeatable<F, Fut, T>(f: F) -> Self
    where
        F: Fn(RunContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, JobError>> + Send + 'static,
        T: IntoJobOutput,
    {
        BoxedJob(Kind::Repeatable(Arc::new(move |ctx| erase(f(ctx)))))
    }

    /// Wraps an already type-erased closure.
    pub fn from_fn(f: impl FnOnce(RunContext) -> JobFuture + Send + 'static) -> Self {
        BoxedJob(Kind::Once(Box::new(f)))
    }

    /// Whether the job can be called more than once.
    #[must_use]
    pub fn is_repeatable(&self) -> bool {
        matches!(self.0, Kind::Repeatable(_))
    }

    /// A second handle to a repeatable job; `None` for a job that runs once.
    #[must_use]
    pub fn try_clone(&self) -> Option<BoxedJob> {
        match &self.0 {
            Kind::Once(_) => None,
            Kind::Repeatable(f) => Some(BoxedJob(Kind::Repeatable(f.clone()))),
        }
    }

    /// Calls the job, producing its future. Panics in the call itself are caught by the worker
    /// like panics while polling.
    pub(crate) fn start(self, ctx: RunContext) -> JobFuture {
        match self.0 {
            Kind::Once(f) => f(ctx),
            Kind::Repeatable(f) => f(ctx),
        }
    }
}

impl fmt::Debug for BoxedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BoxedJob")
            .field(&if self.is_repeatable() {
                "repeatable"
            } else {
                "once"
            })
            .finish()
    }
}

/// Where a running job's reports go: the registry, reached through the protocol layer (which
/// implements this for the registry's address). A trait, so that the job layer does not import
/// the protocol that carries jobs.
pub(crate) trait RunReports: Send + Sync + fmt::Debug + 'static {
    /// A progress report is waiting in the progress slot of `attempt`.
    fn progress(&self, id: RunId, attempt: Arc<CancelSignal>);
    /// A process run's exit code.
    fn exit_code(&self, id: RunId, code: i32);
}

/// A one-value mailbox for a run's progress: the job overwrites it, the registry takes it.
///
/// A report only sends a message to the registry when none is already on its way, so a job
/// reporting in a tight loop costs one lock and one atomic per report and at most one message
/// in flight; the registry always applies the latest value.
///
/// The report is boxed: every attempt carries a slot, few ever report, and a boxed slot keeps
/// the attempt's shared allocation 64 bytes smaller.
#[derive(Debug, Default)]
pub struct ProgressSlot {
    latest: Mutex<Option<Box<Progress>>>,
    notified: AtomicBool,
}

impl ProgressSlot {
    /// Takes the latest report, re-arming notifications. Called by the registry.
    pub(crate) fn take(&self) -> Option<Progress> {
        // Clear the flag before taking: a report stored after this point sends a new message.
        self.notified.store(false, Ordering::Release);
        self.latest.lock().take().map(|p| *p)
    }
}

/// An attempt's stop signal, shared by the supervisor (which asks a running attempt to stop),
/// the worker (which ends the attempt) and the job (which reads it through its
/// [`RunContext`]), which also holds the attempt's progress slot: one small allocation per
/// attempt.
///
/// It is a state machine on one atomic, so the supervisor cancels a running attempt without a
/// message to its worker, and exactly one side decides how the attempt ended:
///
/// ```text
/// Running ──time_limit──► TimeLimit ──cancel──► Cancel(reason)
///    └──────────────────cancel─────────────────────┘
/// any of them ──end──► Ended (once; the stop it had decides the outcome)
/// ```
#[derive(Debug, Default)]
pub(crate) struct CancelSignal {
    state: AtomicU8,
    notify: Notify,
    progress: ProgressSlot,
}

/// Why a running attempt was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A cancel, by whom.
    Cancel(CancelReason),
    /// Its time limit passed.
    TimeLimit,
}

/// What asking an attempt to stop found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CancelAnswer {
    /// It was running (or stopping for its time limit): it now stops for this cancel.
    Signalled,
    /// A cancel was already asked for.
    AlreadyCancelling,
    /// Its outcome is already decided; its worker's exit says what it is.
    Ended,
}

/// The attempt's outcome was already decided by the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AlreadyEnded;

const RUNNING: u8 = 0;
const TIME_LIMIT: u8 = 1;
/// `CANCEL + reason`, for each [`CancelReason`].
const CANCEL: u8 = 2;
/// Set, keeping the stop bits, once the outcome is decided.
const ENDED: u8 = 0x80;

const REASONS: [CancelReason; 5] = [
    CancelReason::User,
    CancelReason::DrainDeadline,
    CancelReason::Shutdown,
    CancelReason::Replaced,
    CancelReason::Dependency,
];

fn encode(reason: CancelReason) -> u8 {
    let i = REASONS.iter().position(|r| *r == reason).unwrap_or(0);
    CANCEL + i as u8
}

fn decode(state: u8) -> Option<Stop> {
    match state & !ENDED {
        RUNNING => None,
        TIME_LIMIT => Some(Stop::TimeLimit),
        c => Some(Stop::Cancel(
            REASONS
                .get(usize::from(c - CANCEL))
                .copied()
                .unwrap_or(CancelReason::User),
        )),
    }
}

impl CancelSignal {
    /// Where the attempt's job leaves its latest progress report.
    pub(crate) fn progress(&self) -> &ProgressSlot {
        &self.progress
    }

    /// Asks the attempt to stop for `reason`. A cancel takes over from a time limit (the run
    /// ends `Cancelled`); a second cancel changes nothing.
    pub(crate) fn cancel(&self, reason: CancelReason) -> CancelAnswer {
        let mut now = self.state.load(Ordering::Acquire);
        loop {
            let answer = match now {
                s if s & ENDED != 0 => return CancelAnswer::Ended,
                RUNNING | TIME_LIMIT => CancelAnswer::Signalled,
                _ => return CancelAnswer::AlreadyCancelling,
            };
            match self.state.compare_exchange(
                now,
                encode(reason),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    self.notify.notify_waiters();
                    return answer;
                }
                Err(actual) => now = actual,
            }
        }
    }

    /// The attempt's time limit passed: `true` if that stops it (nothing else had).
    pub(crate) fn time_limit(&self) -> bool {
        let took = self
            .state
            .compare_exchange(RUNNING, TIME_LIMIT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if took {
            self.notify.notify_waiters();
        }
        took
    }

    /// Decides that the attempt has ended: the stop it had been asked for, if any, or
    /// [`AlreadyEnded`] if the other side decided first.
    pub(crate) fn end(&self) -> Result<Option<Stop>, AlreadyEnded> {
        let before = self.state.fetch_or(ENDED, Ordering::AcqRel);
        self.notify.notify_waiters();
        if before & ENDED != 0 {
            return Err(AlreadyEnded);
        }
        Ok(decode(before))
    }

    /// The stop the attempt was asked for, if any (kept once it has ended).
    pub(crate) fn stop(&self) -> Option<Stop> {
        decode(self.state.load(Ordering::Acquire))
    }

    /// Whether the attempt has been asked to stop, or has ended.
    pub(crate) fn is_set(&self) -> bool {
        self.state.load(Ordering::Acquire) != RUNNING
    }

    /// A registration for the next change of state (a stop, or the end); create it (and
    /// poll or enable it) before reading the state, so a change in between is not missed.
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }

    /// Resolves once the attempt is asked to stop, or has ended.
    pub(crate) async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a change in between still wakes it.
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

/// What a job knows about its run: its id and attempt, whether it has been asked to stop, and
/// where to report progress.
///
/// Cancellation is cooperative first: [`RunContext::cancelled`] resolves when the run is
/// cancelled (by a caller, a drain deadline or its time limit). A job that does not return
/// within the grace period after that has its future dropped at its next `.await`.
#[derive(Clone)]
pub struct RunContext {
    id: RunId,
    attempt: u32,
    snoozes: u32,
    /// The attempt's stop signal and progress slot.
    signal: Arc<CancelSignal>,
    /// For a context built by hand for a unit test ([`RunContext::detached`]): its cancel.
    watch: Option<watch::Receiver<bool>>,
    reports: Option<Arc<dyn RunReports>>,
    logs: Option<Arc<dyn LogSink>>,
    dependencies: Option<Arc<[DependencyOutcome]>>,
}

impl RunContext {
    pub(crate) fn new(
        id: RunId,
        (attempt, snoozes): (u32, u32),
        cancel: Arc<CancelSignal>,
        reports: Arc<dyn RunReports>,
        logs: Option<Arc<dyn LogSink>>,
    ) -> Self {
        RunContext {
            id,
            attempt,
            snoozes,
            signal: cancel,
            watch: None,
            reports: Some(reports),
            logs,
            dependencies: None,
        }
    }

    pub(crate) fn with_dependency_outcomes(
        mut self,
        dependencies: Option<Arc<[DependencyOutcome]>>,
    ) -> Self {
        self.dependencies = dependencies;
        self
    }

    /// The same context, its job reading these dependency outcomes (for calling a job
    /// directly in a test, as a dependent of runs that ended so).
    #[must_use]
    pub fn with_dependencies(self, dependencies: Vec<DependencyOutcome>) -> Self {
        self.with_dependency_outcomes(Some(dependencies.into()))
    }

    /// How each run this one depended on ended, in the order they were named (empty for a
    /// run without dependencies). A dependency that did not complete appears only when its
    /// policy was [`OnDependencyFailure::RunAnyway`](crate::OnDependencyFailure::RunAnyway).
    #[must_use]
    pub fn dependencies(&self) -> &[DependencyOutcome] {
        self.dependencies.as_deref().unwrap_or_default()
    }

    /// How the dependency that is step `step` of this run's workflow ended.
    #[must_use]
    pub fn dependency(&self, step: &str) -> Option<&DependencyOutcome> {
        self.dependencies()
            .iter()
            .find(|d| d.step.as_deref() == Some(step))
    }

    /// The dependencies counted by how they ended: a batch callback's counts.
    #[must_use]
    pub fn dependency_counts(&self) -> StatusCounts {
        StatusCounts::of(self.dependencies().iter().map(|d| d.status))
    }

    /// A context attached to no runwarden instance, for calling a job directly in a unit
    /// test: it is never cancelled unless `cancel` is set, and progress goes nowhere.
    #[must_use]
    pub fn detached(id: RunId, cancel: watch::Receiver<bool>) -> Self {
        RunContext {
            id,
            attempt: 1,
            snoozes: 0,
            signal: Arc::default(),
            watch: Some(cancel),
            reports: None,
            logs: None,
            dependencies: None,
        }
    }

    /// The id of the run this job belongs to.
    #[must_use]
    pub fn run_id(&self) -> RunId {
        self.id
    }

    /// Which attempt this is, from 1.
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// How many times this run has snoozed so far ([`JobError::snooze`]).
    #[must_use]
    pub fn snoozes(&self) -> u32 {
        self.snoozes
    }

    /// `true` once the run has been asked to stop. Also `true` for a clone of the context
    /// that outlived its attempt, however the attempt ended: the run is over.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        match &self.watch {
            None => self.signal.is_set(),
            Some(rx) => *rx.borrow(),
        }
    }

    /// Resolves once the run has been asked to stop.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future loses nothing; call it again to keep waiting.
    pub async fn cancelled(&self) {
        match &self.watch {
            // The worker also ends the signal when it goes away: the run is over, so stop too.
            None => self.signal.wait().await,
            Some(rx) => {
                // An error means the sender is gone: stop too.
                let _ = rx.clone().wait_for(|cancelled| *cancelled).await;
            }
        }
    }

    /// Adds a line to the run's log (stream `job`).
    pub fn log(&self, level: LogLevel, message: impl Into<String>) {
        self.log_entries(vec![LogEntry::new(level, LogStream::Job, message)]);
    }

    /// Adds an `INFO` line to the run's log.
    pub fn info(&self, message: impl Into<String>) {
        self.log(LogLevel::Info, message);
    }

    /// Adds an `ERROR` line to the run's log.
    pub fn error(&self, message: impl Into<String>) {
        self.log(LogLevel::Error, message);
    }

    /// Adds lines to the run's log in one message (process runs use this for captured output).
    /// Without a log keeper (actors used on their own) the lines are dropped.
    pub fn log_entries(&self, entries: Vec<LogEntry>) {
        if let (Some(logs), false) = (&self.logs, entries.is_empty()) {
            logs.append(self.id, entries);
        }
    }

    /// Records a process run's exit code on the run's record.
    pub fn set_exit_code(&self, code: i32) {
        if let Some(reports) = &self.reports {
            reports.exit_code(self.id, code);
        }
    }

    /// Reports progress. Cheap enough for a tight loop: reports are coalesced, and the
    /// registry keeps the latest one on the record.
    pub fn report(&self, progress: Progress) {
        let slot = self.signal.progress();
        {
            // Overwrites a report not yet taken in place: one allocation per message at most.
            let mut latest = slot.latest.lock();
            match latest.as_mut() {
                Some(waiting) => **waiting = progress,
                None => *latest = Some(Box::new(progress)),
            }
        }
        if !slot.notified.swap(true, Ordering::AcqRel)
            && let Some(reports) = &self.reports
        {
            reports.progress(self.id, self.signal.clone());
        }
    }
}

impl fmt::Debug for RunContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunContext")
            .field("run_id", &self.id)
            .field("attempt", &self.attempt)
            .field("snoozes", &self.snoozes)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// How a job's future ended, as its worker saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// Returned `Ok`, with the value to store if any.
    Ok(JobOutput),
    /// Returned `Err`.
    Err(JobError),
    /// Panicked; the panic message.
    Panicked(String),
}

impl fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobOutcome::Ok(_) => f.write_str("returned Ok"),
            JobOutcome::Err(e) => write!(f, "returned an error: {}", e.message),
            JobOutcome::Panicked(m) => write!(f, "panicked: {m}"),
        }
    }
}

/// Calls and polls a job, turning a panic (in the call, in any poll, or in the future's
/// destructor) into [`JobOutcome::Panicked`] instead of unwinding into the task.
pub(crate) struct CatchUnwind {
    job: Option<BoxedJob>,
    ctx: Option<RunContext>,
    fut: Option<JobFuture>,
}

impl CatchUnwind {
    pub(crate) fn new(job: BoxedJob, ctx: RunContext) -> Self {
        CatchUnwind {
            job: Some(job),
            ctx: Some(ctx),
            fut: None,
        }
    }
}

impl Future for CatchUnwind {
    type Output = JobOutcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<JobOutcome> {
        // `CatchUnwind` is `Unpin` (it only holds boxes), so it can be used mutably as is.
        let this = self.get_mut();
        let polled = catch_unwind(AssertUnwindSafe(|| {
            let fut = match (&mut this.fut, this.job.take(), this.ctx.take()) {
                (Some(fut), _, _) => fut,
                (slot @ None, Some(job), Some(ctx)) => slot.insert(job.start(ctx)),
                _ => {
                    let e = JobError::new(FailureKind::Panicked, "job polled after completion");
                    return Poll::Ready(Err(e));
                }
            };
            let polled = fut.as_mut().poll(cx);
            if polled.is_ready() {
                // Dropped here, inside `catch_unwind`, so a panicking destructor is caught too.
                this.fut = None;
            }
            polled
        }));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(output))) => Poll::Ready(JobOutcome::Ok(output)),
            Ok(Poll::Ready(Err(e))) => Poll::Ready(JobOutcome::Err(e)),
            Err(payload) => {
                // The future may be half-updated after a panic: drop it (catching a panic in
                // its destructor as well) and never poll it again.
                let _ = catch_unwind(AssertUnwindSafe(|| this.fut = None));
                Poll::Ready(JobOutcome::Panicked(panic_message(payload.as_ref())))
            }
        }
    }
}

/// The message of a panic payload (`&str` or `String`), or a placeholder for other payloads.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
mod signal_tests {
    use super::{AlreadyEnded, CancelAnswer, CancelSignal, Stop};
    use crate::run::CancelReason;

    #[test]
    fn an_unstopped_attempt_ends_with_no_stop_and_only_once() {
        let s = CancelSignal::default();
        assert!(!s.is_set());
        assert_eq!(s.end(), Ok(None));
        assert!(s.is_set());
        assert_eq!(s.end(), Err(AlreadyEnded));
        assert_eq!(s.cancel(CancelReason::User), CancelAnswer::Ended);
        assert!(!s.time_limit());
    }

    #[test]
    fn a_cancel_is_signalled_once_and_decides_the_end() {
        for reason in super::REASONS {
            let s = CancelSignal::default();
            assert_eq!(s.cancel(reason), CancelAnswer::Signalled);
            assert!(s.is_set());
            assert_eq!(
                s.cancel(CancelReason::User),
                CancelAnswer::AlreadyCancelling
            );
            assert!(!s.time_limit(), "a time limit does not replace a cancel");
            assert_eq!(s.end(), Ok(Some(Stop::Cancel(reason))));
        }
    }

    #[test]
    fn a_cancel_takes_over_from_a_time_limit() {
        let s = CancelSignal::default();
        assert!(s.time_limit());
        assert!(!s.time_limit());
        assert_eq!(
            s.cancel(CancelReason::DrainDeadline),
            CancelAnswer::Signalled
        );
        assert_eq!(s.end(), Ok(Some(Stop::Cancel(CancelReason::DrainDeadline))));
    }

    #[test]
    fn a_time_limit_alone_decides_the_end() {
        let s = CancelSignal::default();
        assert!(s.time_limit());
        assert_eq!(s.end(), Ok(Some(Stop::TimeLimit)));
    }

    #[tokio::test]
    async fn waiters_wake_on_a_stop_and_on_the_end() {
        for stop in [true, false] {
            let s = std::sync::Arc::new(CancelSignal::default());
            let waiter = tokio::spawn({
                let s = s.clone();
                async move { s.wait().await }
            });
            tokio::task::yield_now().await;
            if stop {
                let _ = s.cancel(CancelReason::User);
            } else {
                let _ = s.end();
            }
            let woke = tokio::time::timeout(std::time::Duration::from_secs(5), waiter).await;
            assert!(matches!(woke, Ok(Ok(()))), "the waiter woke");
        }
    }

    /// Two sides race to decide: exactly one wins, whatever the interleaving.
    #[test]
    fn end_and_cancel_race_to_one_decision() {
        for _ in 0..1000 {
            let s = std::sync::Arc::new(CancelSignal::default());
            let other = std::thread::spawn({
                let s = s.clone();
                move || s.cancel(CancelReason::User)
            });
            let ended = s.end();
            let answer = other.join().unwrap_or(CancelAnswer::Ended);
            match (ended, answer) {
                (Ok(None), CancelAnswer::Ended) => {}
                (Ok(Some(Stop::Cancel(CancelReason::User))), CancelAnswer::Signalled) => {}
                other => panic!("two decisions or none: {other:?}"),
            }
        }
    }
}
