//! What can be submitted: [`IntoJob`], implemented by closures, [`BoxedJob`] (which also
//! wraps repeatable closures) and registered job [`Kind`]s (and, in the `runwarden` crate,
//! programs and closures whose value is stored).

use std::future::Future;

use crate::error::SubmitError;
use crate::job::{BoxedJob, IntoJobOutput, JobError, RunContext};
use crate::kinds::JobKinds;
use crate::run::RunSpec;

/// Anything that can be the job of a run: the second argument of every submit.
///
/// - A closure `|ctx| async { .. }` returning `Result<T, JobError>`: called once, when the run
///   starts.
/// - A [`BoxedJob`]: [`BoxedJob::new`] (a closure called once) or [`BoxedJob::repeatable`] (a
///   closure called once per attempt, which retries and schedules need).
/// - [`Kind`]`("name")`: a job built by a registered job kind from the spec's parameters, which
///   is what lets a durable run be re-run after a crash.
///
/// A closure passed where an `impl IntoJob` is expected cannot have its argument's type
/// inferred from its use (a Rust limitation): name it, `|ctx: RunContext|`, or wrap the closure
/// in [`BoxedJob::new`]. The handle's and the submitter's `submit` take closures directly.
///
/// # Examples
/// ```
/// use runwarden_actors::{BoxedJob, IntoJob, JobKinds, Kind, OnInterrupt, RunContext, RunSpec};
///
/// let kinds = JobKinds::new().register("noop", OnInterrupt::Rerun, |_| {
///     Ok(runwarden_actors::BoxedJob::repeatable(|_ctx| async { Ok(()) }))
/// });
/// let mut spec = RunSpec::new("once");
/// let once = (|ctx: RunContext| async move {
///     ctx.info("hello");
///     Ok(())
/// });
/// assert!(!once.into_job(&mut spec, &kinds).expect("a closure").is_repeatable());
/// let again = BoxedJob::repeatable(|ctx| async move {
///     ctx.info("again");
///     Ok(())
/// });
/// assert!(again.into_job(&mut spec, &kinds).expect("a boxed job").is_repeatable());
/// let mut spec = RunSpec::new("by kind");
/// Kind("noop").into_job(&mut spec, &kinds).expect("a registered kind");
/// assert_eq!(spec.kind.as_deref(), Some("noop"));
/// ```
pub trait IntoJob {
    /// Builds the job for a run of `spec`, which it may mark (a [`Kind`] records its name).
    ///
    /// # Errors
    /// [`SubmitError::UnknownKind`] or [`SubmitError::BadParams`] for a [`Kind`].
    fn into_job(self, spec: &mut RunSpec, kinds: &JobKinds) -> Result<BoxedJob, SubmitError>;
}

impl IntoJob for BoxedJob {
    fn into_job(self, _: &mut RunSpec, _: &JobKinds) -> Result<BoxedJob, SubmitError> {
        Ok(self)
    }
}

impl<F, Fut, T> IntoJob for F
where
    F: FnOnce(RunContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, JobError>> + Send + 'static,
    T: IntoJobOutput,
{
    fn into_job(self, _: &mut RunSpec, _: &JobKinds) -> Result<BoxedJob, SubmitError> {
        Ok(BoxedJob::new(self))
    }
}

/// A run of a registered job kind: its job is built from the spec's parameters by the kind's
/// factory, and the spec records the kind's name.
#[derive(Debug, Clone, Copy)]
pub struct Kind<'a>(pub &'a str);

impl IntoJob for Kind<'_> {
    fn into_job(self, spec: &mut RunSpec, kinds: &JobKinds) -> Result<BoxedJob, SubmitError> {
        let job = kinds
            .build(self.0, &spec.params)
            .ok_or_else(|| SubmitError::UnknownKind(self.0.to_owned()))?
            .map_err(SubmitError::BadParams)?;
        spec.kind = Some(self.0.to_owned());
        Ok(job)
    }
}
