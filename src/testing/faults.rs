//! Faults on demand, for an application's resilience tests: the next attempt of a kind
//! panics, fails, hangs or stops answering, or the registry crashes. Through runwarden's
//! test-only protocol (`runwarden_actors::faults`), which a production build does not have:
//! the `testing` feature belongs in `[dev-dependencies]`, and cargo does not give dev-only
//! features to a normal build.

use runwarden_actors::faults;
use runwarden_actors::{CallError, RegistryRef, SupervisorRef};

pub use runwarden_actors::faults::JobFault;

/// Makes the next attempt of a run labelled `label` (a run of a registered kind is labelled
/// with its kind) to start do `fault` instead of its own job. Returns once the supervisor has
/// it in place: the next attempt of that label to start from then on takes it, whichever run
/// it belongs to (a new run, one already queued or held, or a retry). Calling it again for
/// the same label plans its following attempts, in order. The run's record, retries, time limit and cancel
/// are as in production.
///
/// # Examples
/// ```
/// use runwarden::testing::{JobFault, inject};
/// use runwarden::{RunSpec, RunStatus, Runwarden};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rw = Runwarden::builder().start().await?;
/// inject(rw.supervisor(), "send-invoice", JobFault::Fail("smtp is down".into())).await?;
/// let id = rw.submit(RunSpec::new("send-invoice"), |_ctx| async { Ok(()) })?;
/// let record = rw.wait(id).await?;
/// assert_eq!(record.status, RunStatus::Failed);
/// assert_eq!(record.error.map(|e| e.message).as_deref(), Some("smtp is down"));
/// // Only the next attempt: the one after runs its own job.
/// let id = rw.submit(RunSpec::new("send-invoice"), |_ctx| async { Ok(()) })?;
/// assert_eq!(rw.wait(id).await?.status, RunStatus::Completed);
/// # rw.shutdown(std::time::Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
///
/// # Errors
/// [`CallError`] if the supervisor did not answer.
pub async fn inject(
    supervisor: &SupervisorRef,
    label: &str,
    fault: JobFault,
) -> Result<(), CallError> {
    let request = "inject_fault";
    let label = label.to_owned();
    let answer = supervisor
        .actor()
        .call(
            |reply| faults::next_attempt_of(label, fault, reply),
            Some(supervisor.timeout()),
        )
        .await;
    match answer {
        Ok(ractor::rpc::CallResult::Success(())) => Ok(()),
        Ok(ractor::rpc::CallResult::Timeout) => Err(CallError::Timeout { request }),
        _ => Err(CallError::Unavailable { request }),
    }
}

/// Makes the registry panic while handling a message, as a bug would, and returns once it
/// answers again: how many times it has restarted. With a store it restarts from the store
/// (no status message is lost or applied twice); without one there is nothing to restart
/// from, so it fails, its supervisor escalates, and the answer is
/// [`CallError::Unavailable`].
///
/// # Errors
/// [`CallError`] when the registry does not answer after the crash (always, without a store).
pub async fn crash_registry(registry: &RegistryRef) -> Result<u64, CallError> {
    let request = "crash_registry";
    registry
        .actor()
        .cast(faults::registry_panic("crash_registry from a test"))
        .map_err(|_| CallError::Unavailable { request })?;
    Ok(registry.stats().await?.restarts)
}
