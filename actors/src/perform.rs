//! Calling one job directly, outside any actor: a [`RecordingContext`] the test holds (its
//! cancel, and everything the job reported) and [`perform`], which awaits the job as a worker
//! would, a panic included.

use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::job::{BoxedJob, CancelSignal, CatchUnwind, JobOutcome, RunContext, RunReports};
use crate::log::{LogEntry, LogSink};
use crate::run::{Progress, RunId, RunStatus};

/// What a job reported through its context, in order.
#[derive(Default)]
struct Reports {
    progress: Mutex<Vec<Progress>>,
    logs: Mutex<Vec<LogEntry>>,
    exit_code: Mutex<Option<i32>>,
}

impl fmt::Debug for Reports {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reports")
            .field("progress", &self.progress.lock().len())
            .field("logs", &self.logs.lock().len())
            .finish_non_exhaustive()
    }
}

impl RunReports for Reports {
    fn progress(&self, _id: RunId, attempt: Arc<CancelSignal>) {
        // Taken at once (which re-arms the slot), so every report is kept, not only the
        // latest as the registry keeps.
        if let Some(p) = attempt.progress().take() {
            self.progress.lock().push(p);
        }
    }

    fn exit_code(&self, _id: RunId, code: i32) {
        *self.exit_code.lock() = Some(code);
    }
}

impl LogSink for Reports {
    fn append(&self, _run: RunId, entries: Vec<LogEntry>) {
        self.logs.lock().extend(entries);
    }

    fn run_ended(&self, _run: RunId, _status: RunStatus) {}
}

/// A run context for calling a job directly in a test, outside any runwarden instance: the
/// test holds its cancel, and every progress report, log line and exit code the job gives is
/// kept, in order. Clones share all of it. (Reports are coalesced as in production: two tasks
/// reporting through one context at the same instant can lose one; one task loses none.)
///
/// # Examples
/// ```
/// use runwarden_actors::{BoxedJob, JobOutcome, Progress, RecordingContext, RunId, perform};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let job = BoxedJob::new(|ctx| async move {
///     ctx.info("halfway");
///     ctx.report(Progress::percent(50.0));
///     ctx.cancelled().await;
///     Ok(())
/// });
/// let recording = RecordingContext::new(RunId::new());
/// recording.cancel(); // before it starts: the job sees it at once
/// let outcome = perform(job, recording.context()).await;
/// assert_eq!(outcome, JobOutcome::Ok(None));
/// assert_eq!(recording.progress(), vec![Progress::percent(50.0)]);
/// assert_eq!(recording.logs()[0].message, "halfway");
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct RecordingContext {
    id: RunId,
    attempt: u32,
    snoozes: u32,
    cancel: Arc<CancelSignal>,
    reports: Arc<Reports>,
}

impl RecordingContext {
    /// A context for run `id`, at its first attempt, not cancelled.
    #[must_use]
    pub fn new(id: RunId) -> Self {
        RecordingContext {
            id,
            attempt: 1,
            snoozes: 0,
            cancel: Arc::default(),
            reports: Arc::default(),
        }
    }

    /// The attempt the job is told it is in (from 1; 0 is read as 1).
    #[must_use]
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt.max(1);
        self
    }

    /// How many snoozes the job is told the run has had.
    #[must_use]
    pub fn snoozes(mut self, snoozes: u32) -> Self {
        self.snoozes = snoozes;
        self
    }

    /// The context to call the job with; every one made shares this recording.
    #[must_use]
    pub fn context(&self) -> RunContext {
        let reports: Arc<dyn RunReports> = self.reports.clone();
        let logs: Arc<dyn LogSink> = self.reports.clone();
        RunContext::new(
            self.id,
            (self.attempt, self.snoozes),
            self.cancel.clone(),
            reports,
            Some(logs),
        )
    }

    /// Asks the job to stop, as a cancel, a time limit or a drain deadline would: its
    /// [`RunContext::cancelled`] resolves. Nothing forces it to: a job that ignores it runs on.
    pub fn cancel(&self) {
        let _ = self.cancel.cancel(crate::run::CancelReason::User);
    }

    /// Every progress report the job made, in order.
    #[must_use]
    pub fn progress(&self) -> Vec<Progress> {
        self.reports.progress.lock().clone()
    }

    /// Every log line the job wrote, in order.
    #[must_use]
    pub fn logs(&self) -> Vec<LogEntry> {
        self.reports.logs.lock().clone()
    }

    /// The exit code the job recorded (a process job does), if any.
    #[must_use]
    pub fn exit_code(&self) -> Option<i32> {
        *self.reports.exit_code.lock()
    }
}

/// Calls `job` with `ctx` and awaits its end in the calling task, as a worker would: a panic
/// (in the call, a poll or the future's destructor) is [`JobOutcome::Panicked`], not an unwind.
/// No time limit, no retry: this is one attempt of the job, for a test of the job itself.
pub async fn perform(job: BoxedJob, ctx: RunContext) -> JobOutcome {
    CatchUnwind::new(job, ctx).await
}
