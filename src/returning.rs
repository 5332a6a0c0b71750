//! [`returning`]: a job whose value is stored on its run's record.

use std::future::Future;

use runwarden_actors::{BoxedJob, FailureKind, JobError, Json, RunContext};

/// A job of a closure whose value (any `Serialize` type) is stored on the record as its
/// `result` when the run completes. A value that cannot be serialised fails the run with the serialisation
/// error.
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), runwarden::Error> {
/// use runwarden::{Json, RunSpec, Runwarden, returning};
///
/// let rw = Runwarden::start().await?;
/// let id = rw.submit_job(RunSpec::new("sum"), returning(|_ctx| async { Ok(vec![1, 2, 3]) }))?;
/// let record = rw.wait(id).await?;
/// assert_eq!(
///     record.result,
///     Some(Json::Array(vec![Json::Int(1), Json::Int(2), Json::Int(3)]))
/// );
/// # rw.shutdown(std::time::Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
pub fn returning<F, Fut, T>(job: F) -> BoxedJob
where
    F: FnOnce(RunContext) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, JobError>> + Send + 'static,
    T: serde::Serialize,
{
    BoxedJob::new(move |ctx| {
        let fut = job(ctx);
        async move {
            let value = fut.await?;
            serde_json::to_value(value)
                .and_then(serde_json::from_value::<Json>)
                .map_err(|e| {
                    JobError::new(
                        FailureKind::Returned,
                        format!("result could not be serialised: {e}"),
                    )
                })
        }
    })
}
