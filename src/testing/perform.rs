//! Running one job directly: a registered kind built from its parameters (or any job), one
//! attempt, in the test's own task, with a context the test holds.

use runwarden_actors::{
    BoxedJob, JobKinds, JobOutcome, JsonObject, LogEntry, Progress, RecordingContext, RunId,
    SubmitError, perform,
};

/// One attempt of a job, run directly by the test, with no actor in between: what
/// [`Perform::run`] gives back is what the job returned and everything it reported.
///
/// The job is built as a submit builds it ([`Perform::kind`] refuses an unknown kind or
/// parameters with the same [`SubmitError`]), and awaited as a worker awaits it (a panic is
/// [`JobOutcome::Panicked`]). [`Perform::controls`] gives the test the run's cancel before or
/// while it runs.
///
/// # Examples
/// ```
/// use runwarden::testing::Perform;
/// use runwarden::{BoxedJob, JobKinds, JobOutcome, Json, JsonObject, OnInterrupt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), runwarden::SubmitError> {
/// let kinds = JobKinds::new().register("greet", OnInterrupt::Rerun, |params| {
///     let Some(Json::String(who)) = params.get("who").cloned() else {
///         return Err("`who` must be a string".to_owned());
///     };
///     Ok(BoxedJob::new(move |ctx| async move {
///         ctx.info(format!("hello, {who}"));
///         Ok(())
///     }))
/// });
/// let mut params = JsonObject::new();
/// params.insert("who".into(), "Ada".into());
/// let done = Perform::kind(&kinds, "greet", params)?.run().await;
/// assert_eq!(done.outcome, JobOutcome::Ok(None));
/// assert_eq!(done.logs[0].message, "hello, Ada");
///
/// let refused = Perform::kind(&kinds, "greet", JsonObject::new()).unwrap_err();
/// assert_eq!(refused.to_string(), "parameters refused: `who` must be a string");
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
#[must_use = "nothing runs until `run` is awaited"]
pub struct Perform {
    job: BoxedJob,
    recording: RecordingContext,
}

/// What one attempt of a job did.
#[derive(Debug, Clone, PartialEq)]
pub struct Performed {
    /// How the job ended: its value, its error, or its panic's message.
    pub outcome: JobOutcome,
    /// Every progress report it made, in order.
    pub progress: Vec<Progress>,
    /// Every log line it wrote, in order.
    pub logs: Vec<LogEntry>,
    /// The exit code it recorded (a process job does).
    pub exit_code: Option<i32>,
}

impl Perform {
    /// A job of the registered kind `kind`, built from `params` by its factory.
    ///
    /// # Errors
    /// [`SubmitError::UnknownKind`] for a kind `kinds` does not have,
    /// [`SubmitError::BadParams`] for parameters its factory refuses.
    pub fn kind(kinds: &JobKinds, kind: &str, params: JsonObject) -> Result<Self, SubmitError> {
        match kinds.build(kind, &params) {
            None => Err(SubmitError::UnknownKind(kind.to_owned())),
            Some(Err(refusal)) => Err(SubmitError::BadParams(refusal)),
            Some(Ok(job)) => Ok(Perform::job(job)),
        }
    }

    /// Any job.
    pub fn job(job: BoxedJob) -> Self {
        Perform {
            job,
            recording: RecordingContext::new(RunId::new()),
        }
    }

    /// Any job, with a context of the test's own making (its run id, attempt and snoozes).
    pub fn with_context(job: BoxedJob, recording: RecordingContext) -> Self {
        Perform { job, recording }
    }

    /// The attempt the job is told it is in (default 1).
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.recording = self.recording.attempt(attempt);
        self
    }

    /// The run's context as the test holds it: [`RecordingContext::cancel`] asks the job to
    /// stop (before it starts, or from another task while it runs), and what it reported so
    /// far can be read while it runs.
    pub fn controls(&self) -> RecordingContext {
        self.recording.clone()
    }

    /// Runs the attempt to its end in this task.
    pub async fn run(self) -> Performed {
        let outcome = perform(self.job, self.recording.context()).await;
        Performed {
            outcome,
            progress: self.recording.progress(),
            logs: self.recording.logs(),
            exit_code: self.recording.exit_code(),
        }
    }
}
