//! What a run executes: [`BoxedJob`], and the [`RunContext`] it receives.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::watch;

use crate::run::RunId;

/// The future of a running job, type-erased. `Err` carries the job error's `Display`.
pub type JobFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// A job: called once, with its [`RunContext`], when its run starts.
///
/// Build one from any async closure with [`BoxedJob::new`]. The closure is not called while the
/// run is queued, so a run cancelled while queued never executes any of the job's code.
pub struct BoxedJob(Box<dyn FnOnce(RunContext) -> JobFuture + Send + 'static>);

impl BoxedJob {
    /// Wraps `f`, whose future returns `Result<(), E>`; an `Err` fails the run with
    /// `E`'s `Display` as its message.
    ///
    /// ```
    /// use runwarden_actors::{BoxedJob, RunContext};
    ///
    /// let job = BoxedJob::new(|ctx: RunContext| async move {
    ///     if ctx.is_cancelled() {
    ///         return Err("cancelled before doing anything");
    ///     }
    ///     Ok(())
    /// });
    /// # drop(job);
    /// ```
    pub fn new<F, Fut, E>(f: F) -> Self
    where
        F: FnOnce(RunContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display + 'static,
    {
        BoxedJob(Box::new(move |ctx| {
            let fut = f(ctx);
            Box::pin(async move { fut.await.map_err(|e| e.to_string()) })
        }))
    }

    /// Calls the job, producing its future. Panics in the call itself are caught by the worker
    /// like panics while polling.
    pub(crate) fn start(self, ctx: RunContext) -> JobFuture {
        (self.0)(ctx)
    }
}

impl fmt::Debug for BoxedJob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxedJob")
    }
}

/// What a job knows about its run: its id, and whether it has been asked to stop.
///
/// Cancellation is cooperative first: [`RunContext::cancelled`] resolves when the run is
/// cancelled (by a caller or a drain deadline). A job that does not return within the grace
/// period after that has its future dropped at its next `.await`.
#[derive(Clone)]
pub struct RunContext {
    id: RunId,
    cancel: watch::Receiver<bool>,
}

impl RunContext {
    pub(crate) fn new(id: RunId, cancel: watch::Receiver<bool>) -> Self {
        RunContext { id, cancel }
    }

    /// The id of the run this job belongs to.
    pub fn run_id(&self) -> RunId {
        self.id
    }

    /// `true` once the run has been asked to stop.
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Resolves once the run has been asked to stop.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future loses nothing; call it again to keep waiting.
    pub async fn cancelled(&self) {
        let mut rx = self.cancel.clone();
        // An error means the worker (the sender) is gone: the run is over, so stop too.
        let _ = rx.wait_for(|cancelled| *cancelled).await;
    }
}

impl fmt::Debug for RunContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunContext")
            .field("run_id", &self.id)
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// How a job's future ended. Carried by [`crate::WorkerMessage::JobFinished`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// Returned `Ok(())`.
    Ok,
    /// Returned `Err`; its `Display`.
    Err(String),
    /// Panicked; the panic message.
    Panicked(String),
}

impl fmt::Display for JobOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobOutcome::Ok => f.write_str("returned Ok"),
            JobOutcome::Err(e) => write!(f, "returned an error: {e}"),
            JobOutcome::Panicked(m) => write!(f, "panicked: {m}"),
        }
    }
}

/// Calls and polls a job, turning a panic (in the call or in any poll) into
/// [`JobOutcome::Panicked`] instead of unwinding into the task.
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
                _ => return Poll::Ready(Err("job polled after completion".to_owned())),
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
            Ok(Poll::Ready(Ok(()))) => Poll::Ready(JobOutcome::Ok),
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
