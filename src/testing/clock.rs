//! Stepping tokio's paused clock from one of runwarden's timers to the next.

use runwarden_actors::{CallError, DueTimer, SupervisorRef};

/// Advances tokio's paused clock to the supervisor's next timer still to fire (a retry or
/// snooze wait, a rate limit's wake, a schedule's fire, a time limit, the drain deadline; see
/// [`DueTimer`]), lets it fire, and returns the timer it advanced to, or `None` (and the clock
/// untouched) when none is due. Before returning it yields to the runtime, so the timer's task
/// sends its message, then makes a round trip to the supervisor, which answers behind it;
/// on a current-thread runtime (what `#[tokio::test]` gives) that is enough for the
/// supervisor to have handled it, on a multi-thread one it is likely, not certain. (A time limit
/// is sent to the run's worker, which cancels the job on its own after that.)
///
/// The step is one `tokio::time::advance`: a timer runwarden does not know of (a job's own
/// sleep, say) that falls inside it fires at the step's end, not at its own time.
///
/// Where waiting for an outcome is what a test wants, waiting on the paused clock does the
/// same by itself (tokio moves the clock on while everything waits): this is for a test that
/// looks at the state between timers.
///
/// # Panics
/// If tokio's clock is not paused (`#[tokio::test(start_paused = true)]`, or
/// `tokio::time::pause()`): advancing it is only possible then.
///
/// # Errors
/// [`CallError`] if the supervisor did not answer.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use runwarden::testing::{Probe, advance_to_next_timer};
/// use runwarden::{BoxedJob, JobError, RetryPolicy, RunEvent, RunSpec, RunStatus, Runwarden, TimerPurpose};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let rw = Runwarden::builder().start().await?;
/// let mut probe = Probe::attach(rw.registry()).await?;
/// let retry = RetryPolicy::attempts(2).backoff(Duration::from_secs(30), Duration::from_secs(30)).jitter(0.0);
/// let job = BoxedJob::repeatable(|ctx| async move {
///     if ctx.attempt() == 1 { Err(JobError::msg("first attempt fails")) } else { Ok(()) }
/// });
/// let id = rw.submit_job(RunSpec::new("flaky").retry(retry), job)?;
/// // The first attempt failed and the run waits for its retry.
/// probe.await_event("the retry", |e| {
///     matches!(e, RunEvent::Status { status: RunStatus::Queued, attempt: 2, .. })
/// }).await;
/// let timer = advance_to_next_timer(rw.supervisor()).await?.expect("the retry");
/// assert_eq!(timer.purpose, TimerPurpose::Retry(id));
/// assert_eq!(timer.due_in, Duration::from_secs(30));
/// assert_eq!(rw.wait(id).await?.status, RunStatus::Completed);
/// # rw.shutdown(Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
pub async fn advance_to_next_timer(
    supervisor: &SupervisorRef,
) -> Result<Option<DueTimer>, CallError> {
    let Some(timer) = supervisor.next_timer().await? else {
        return Ok(None);
    };
    tokio::time::advance(timer.due_in).await;
    // The timer's task runs (and sends its message) once polled: let it, then a round trip
    // to the supervisor, which answers after handling what the timer sent.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    supervisor.status().await?;
    Ok(Some(timer))
}
