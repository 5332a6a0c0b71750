//! The worker actor: one per running attempt. The job runs in the worker's own task, beside
//! its time limit and its attempt's stop signal; the worker reports the attempt's start and
//! then exactly one outcome (a terminal status, or a retry) to the registry, and stops.
//!
//! A worker takes no messages. The supervisor stops a running attempt through its
//! [`CancelSignal`], shared with the worker and the job: whichever of the worker and the
//! supervisor's backstop decides first how the attempt ended (the signal's `end`) is the only
//! one that reports it.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::Instrument;
use tracing::instrument::Instrumented;

use crate::trace::TracePropagation;

use crate::job::{BoxedJob, CancelSignal, CatchUnwind, JobOutcome, RunContext, RunReports, Stop};
use crate::log::LogSink;
use crate::protocol::registry::{RegistryMessage, RegistryStep};
use crate::protocol::run::{CancelReason, PreparedRun};
use crate::protocol::worker::{AttemptEnd, WorkerMessage};
use crate::run::DependencyOutcome;
use crate::run::{CancelKind, FailureKind, Outcome, RunError, RunId, Transition};
use crate::time::Timestamp;

/// After a cancel's (or time limit's) grace period, how much longer the supervisor waits for
/// a worker to drop its job's future before it records the run's end itself: a job that never
/// yields cannot be dropped (it holds its worker's task), but its run still ends.
pub const DROP_WAIT: Duration = Duration::from_secs(1);

/// The worker actor. Stateless itself; see [`WorkerState`].
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerActor;

/// Start-up input of a worker.
/// Only the supervisor builds one.
pub struct WorkerArguments {
    /// The run (and attempt) this worker executes.
    pub(crate) run: Box<PreparedRun>,
    /// The attempt's stop signal; the supervisor keeps a clone to cancel it.
    pub(crate) signal: Arc<CancelSignal>,
    /// Where status messages go.
    pub(crate) registry: ActorRef<RegistryMessage>,
    /// Where the job's reports go (the same registry, as the job layer sees it).
    pub(crate) reports: Arc<dyn RunReports>,
    /// How long a cancelled job may take to stop before its future is dropped.
    pub(crate) grace: Duration,
    /// Where the job's log lines go.
    pub(crate) logs: Option<Arc<dyn LogSink>>,
    /// Parents the run's span on the trace it continues.
    pub(crate) trace: Option<Arc<dyn TracePropagation>>,
    /// A job to run for this attempt instead of the run's own (a fault a test injected).
    /// Boxed, so that the arguments of every other worker stay as small as they were.
    pub(crate) stand_in: Option<Box<BoxedJob>>,
}

impl std::fmt::Debug for WorkerArguments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerArguments")
            .field("run", &self.run)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// Writes a line about the run: inside its span, which names the run, or with the run's id
/// when there is no span (a subscriber that takes warnings but not info spans).
macro_rules! run_line {
    ($state:expr, $level:ident, $($line:tt)*) => {
        match &$state.span {
            Some(span) => span.in_scope(|| tracing::$level!($($line)*)),
            None => tracing::$level!(run_id = %$state.run_id, $($line)*),
        }
    };
}

/// A worker's data.
#[derive(Debug)]
pub struct WorkerState {
    run_id: RunId,
    /// The run's span (`run`: id, name, label, kind, queue, attempt): the job runs in it, and
    /// the worker's own lines about the run are written in it.
    /// Boxed, and `None` when no subscriber takes it: most of a worker's size is copied
    /// several times over in ractor's actor future.
    span: Option<Box<tracing::Span>>,
    attempt: u32,
    snoozes: u32,
    timeout: Option<Duration>,
    /// How the run's dependencies ended, for its job's context.
    dependencies: Option<Arc<[DependencyOutcome]>>,
    /// The run itself, kept only when it may run again (a repeatable job, for a retry or a
    /// snooze): it goes back to the supervisor for that. A run-once job's worker keeps just
    /// the fields above.
    again: Option<Box<PreparedRun>>,
    /// The attempt's job, from start-up until it runs.
    job: Option<BoxedJob>,
    registry: ActorRef<RegistryMessage>,
    reports: Arc<dyn RunReports>,
    grace: Duration,
    logs: Option<Arc<dyn LogSink>>,
    /// Ended when the worker goes away, however it ends, so a job (or a clone of its context
    /// that outlived it) never waits on a run that is over.
    signal: EndOnDrop,
    stop: Option<Stop>,
    end: Option<AttemptEnd>,
}

/// How the job's future ended.
enum Ran {
    /// It returned (or panicked).
    Returned(JobOutcome),
    /// It did not stop within the grace period after it was asked to, and was dropped.
    Dropped,
}

impl WorkerState {
    /// How the attempt ended, once the worker has reported it.
    #[must_use]
    pub fn end(&self) -> Option<&AttemptEnd> {
        self.end.as_ref()
    }

    /// Takes the attempt's end (the supervisor does, from the final state).
    pub fn take_end(&mut self) -> Option<AttemptEnd> {
        self.end.take()
    }

    /// Who cancelled the run, if it was cancelled while this worker ran it.
    #[must_use]
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        match self.stop {
            Some(Stop::Cancel(r)) => Some(r),
            _ => None,
        }
    }

    /// The run this worker executed.
    #[must_use]
    pub fn run_id(&self) -> RunId {
        self.run_id
    }

    /// Reports the attempt's outcome and stops the worker.
    fn finish(&mut self, myself: &ActorRef<WorkerMessage>, t: Transition, end: AttemptEnd) {
        // Failures at `warn`, the rest of a run's lifecycle at `debug`.
        match &t {
            Transition::Finished {
                outcome: Outcome::Failed { kind, message },
                ..
            } => {
                run_line!(self, warn, kind = ?kind, error = %message, "run failed")
            }
            Transition::RetryScheduled { error, .. } => {
                run_line!(self, warn, kind = ?error.kind, error = %error.message, "attempt failed; retry scheduled")
            }
            Transition::Snoozed { until, .. } => {
                run_line!(self, debug, %until, "snoozed")
            }
            _ => {
                run_line!(self, debug, status = %t.target(), "run ended")
            }
        }
        self.end = Some(end);
        if let Err(e) = self
            .registry
            .cast(RegistryStep::Transition(self.run_id, t, None).into())
        {
            run_line!(self, error, error = %e, "registry unreachable; outcome not recorded");
        }
        myself.stop(None);
    }

    fn end_with(&mut self, myself: &ActorRef<WorkerMessage>, t: Transition) {
        let status = t.target();
        self.finish(myself, t, AttemptEnd::Ended(status));
    }

    /// Fails the attempt: retried if the run's policy says so, otherwise the run fails.
    fn fail(&mut self, myself: &ActorRef<WorkerMessage>, kind: FailureKind, message: String) {
        // Only a run that still holds its (repeatable) job can be attempted again.
        let retry = self
            .again
            .as_ref()
            .and_then(|r| r.retry.as_deref().copied());
        match retry {
            Some(policy) if policy.retries(kind, self.attempt) => {
                let delay =
                    policy.backoff_after(self.attempt, jitter_unit(self.run_id, self.attempt));
                let now = Timestamp::now();
                let t = Transition::RetryScheduled {
                    at: now,
                    error: RunError::new(kind.into(), message),
                    next_attempt_at: Timestamp::from_unix_micros(
                        now.unix_micros() + delay.as_micros() as u64,
                    ),
                };
                let Some(mut run) = self.again.take() else {
                    return;
                };
                run.attempt += 1;
                self.finish(myself, t, AttemptEnd::Retry { delay, run });
            }
            _ => self.end_with(myself, Transition::failed(kind, message)),
        }
    }

    /// Ends the attempt with the job's snooze: the run waits `delay` to start again, with the
    /// same attempt number. A run-once job cannot run again, so its run fails, saying why.
    fn snooze(&mut self, myself: &ActorRef<WorkerMessage>, delay: Duration) {
        let Some(mut run) = self.again.take() else {
            let why = format!(
                "the job snoozed for {delay:?}, but a run-once job cannot run again (use a repeatable job)"
            );
            self.end_with(myself, Transition::failed(FailureKind::Returned, why));
            return;
        };
        let now = Timestamp::now();
        let until = Timestamp::from_unix_micros(
            now.unix_micros()
                .saturating_add(u64::try_from(delay.as_micros()).unwrap_or(u64::MAX)),
        );
        run.snoozes = run.snoozes.saturating_add(1);
        let t = Transition::Snoozed { at: now, until };
        self.finish(myself, t, AttemptEnd::Retry { delay, run });
    }

    /// Decides the attempt's outcome from how the job ended and the stop it was asked for.
    fn conclude(&mut self, myself: &ActorRef<WorkerMessage>, ran: Ran) {
        let stop = match self.signal.0.end() {
            Ok(stop) => stop,
            // The supervisor's backstop gave up waiting for this attempt and recorded its
            // end: nothing is left to report.
            Err(_) => {
                myself.stop(None);
                return;
            }
        };
        self.stop = stop;
        let grace = self.grace;
        match (stop, ran) {
            // Whatever the job returns after a cancel was accepted, the run ends `Cancelled`:
            // the caller was told so.
            (Some(Stop::Cancel(reason)), Ran::Returned(outcome)) => {
                let t = Transition::cancelled(
                    reason,
                    CancelKind::WhileRunning,
                    format!("cancelled by {reason} while running; job then {outcome}"),
                );
                self.end_with(myself, t);
            }
            (Some(Stop::TimeLimit), Ran::Returned(outcome)) => {
                let limit = self.timeout.unwrap_or_default();
                let msg = format!("timed out after {limit:?}; job then {outcome}");
                self.fail(myself, FailureKind::TimedOut, msg);
            }
            (None, Ran::Returned(JobOutcome::Ok(result))) => {
                self.end_with(myself, Transition::completed_with(result))
            }
            (None, Ran::Returned(JobOutcome::Err(e))) => match e.snoozed_for() {
                Some(delay) => self.snooze(myself, delay),
                None => self.fail(myself, e.kind, e.message),
            },
            (None, Ran::Returned(JobOutcome::Panicked(m))) => {
                self.fail(myself, FailureKind::Panicked, m)
            }
            (Some(Stop::TimeLimit), Ran::Dropped) => {
                let limit = self.timeout.unwrap_or_default();
                let msg = format!(
                    "timed out after {limit:?}; job did not stop within the {grace:?} grace period and was dropped"
                );
                self.fail(myself, FailureKind::TimedOut, msg);
            }
            (stop, Ran::Dropped) => {
                let reason = match stop {
                    Some(Stop::Cancel(r)) => r,
                    _ => CancelReason::User,
                };
                let t = Transition::cancelled(
                    reason,
                    CancelKind::GraceExpired,
                    format!(
                        "cancelled by {reason}; job did not stop within the {grace:?} grace period and was dropped"
                    ),
                );
                self.end_with(myself, t);
            }
        }
    }

    /// The attempt, ready to run in the run's span; `None` once its job has been taken.
    ///
    /// Built here, outside the worker's `post_start`, and awaited there as one future:
    /// locals built inside an `async fn` (the context, the job) keep their own room in its
    /// future after they are moved, and this future is in every running worker.
    fn attempt(&mut self) -> Option<Instrumented<impl Future<Output = Ran> + use<>>> {
        let job = self.job.take()?;
        // The supervisor cast `Started` before it spawned this worker, so the registry sees
        // it before the outcome. (Casting it from here would wake the registry's task into
        // this thread's LIFO slot, where no other thread may steal it; a job that blocks its
        // thread in its first poll would then hold the registry too.)
        run_line!(self, debug, "run started");
        let signal = self.signal.0.clone();
        let ctx = RunContext::new(
            self.run_id,
            (self.attempt, self.snoozes),
            signal.clone(),
            self.reports.clone(),
            self.logs.clone(),
        )
        .with_dependency_outcomes(self.dependencies.take());
        let job = CatchUnwind::new(job, ctx);
        // A disabled span costs a check per poll.
        let span = self
            .span
            .as_deref()
            .cloned()
            .unwrap_or_else(tracing::Span::none);
        Some(run_attempt(self.run_id, job, signal, self.timeout, self.grace).instrument(span))
    }

    /// Drops what the attempt held (its job, log sink), on the worker's own task as it
    /// stops. The supervisor receives this state for the outcome alone; freeing the rest here
    /// keeps that work (and the allocator traffic it causes) off the supervisor, which every
    /// run passes through.
    fn release(&mut self) {
        self.job = None;
        self.logs = None;
        self.again = None;
        self.dependencies = None;
    }
}

/// Runs the job until it returns, or until it was asked to stop (a cancel through `signal`,
/// or its time limit) and then did not return within `grace`: then its future is dropped,
/// with everything it owns, before this returns.
///
/// One poll function over one timer (the time limit, then the grace period) and one
/// registration on the signal, rather than nested `select!`s: this future lives in every
/// running worker (inside ractor's boxed `post_start`), and the nested form held a timer and a
/// wait on the signal for each phase (680 B of future; 336 B now, measured on x86-64).
#[expect(
    clippy::manual_async_fn,
    reason = "an async fn would hold its arguments twice"
)]
fn run_attempt(
    id: RunId,
    mut job: CatchUnwind,
    signal: Arc<CancelSignal>,
    limit: Option<Duration>,
    grace: Duration,
) -> impl Future<Output = Ran> {
    // A block, not an `async fn`: an `async fn` keeps its arguments twice (as they came, and
    // moved into its body), the job among them (448 B against 616 B, measured).
    async move {
        // Boxed: most runs have no time limit and are never asked to stop.
        let mut timer = limit.map(|limit| Box::pin(tokio::time::sleep(limit)));
        let mut woken = pin!(signal.notified());
        let mut asked = false;
        let ran = poll_fn(|cx| {
            if let Poll::Ready(outcome) = Pin::new(&mut job).poll(cx) {
                return Poll::Ready(Ran::Returned(outcome));
            }
            if !asked {
                asked = loop {
                    // Registered (its waker stored) before the state is read, so a stop in
                    // between still wakes this task. Only a change of state notifies.
                    if woken.as_mut().poll(cx).is_ready() {
                        woken.set(signal.notified());
                        continue;
                    }
                    if signal.is_set() {
                        break true;
                    }
                    let passed = timer
                        .as_mut()
                        .is_some_and(|limit| limit.as_mut().poll(cx).is_ready());
                    if !passed {
                        return Poll::Pending;
                    }
                    if signal.time_limit() {
                        tracing::warn!(run_id = %id, "run hit its time limit");
                    }
                    break true;
                };
                // The grace period starts now; the job sees the stop at once.
                timer = Some(Box::pin(tokio::time::sleep(grace)));
                if let Poll::Ready(outcome) = Pin::new(&mut job).poll(cx) {
                    return Poll::Ready(Ran::Returned(outcome));
                }
            }
            match &mut timer {
                Some(grace) => grace.as_mut().poll(cx).map(|()| Ran::Dropped),
                None => Poll::Pending,
            }
        })
        .await;
        // The job's future goes here, inside the run's span, before the outcome is decided.
        drop(job);
        ran
    }
}

/// Ends the attempt's signal when the worker goes away however it ends (a no-op when the
/// attempt's outcome was decided).
#[derive(Debug)]
struct EndOnDrop(Arc<CancelSignal>);

impl Drop for EndOnDrop {
    fn drop(&mut self) {
        let _ = self.0.end();
    }
}

/// A number in `[0, 1)` picking the jitter of one retry, derived from the run id and attempt
/// (splitmix64), so no random-number crate is needed and a run's backoff is reproducible.
fn jitter_unit(id: RunId, attempt: u32) -> f64 {
    let bits =
        id.as_uuid().as_u64_pair().1 ^ u64::from(attempt).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut z = bits.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Actor for WorkerActor {
    type Msg = WorkerMessage;
    type State = WorkerState;
    type Arguments = WorkerArguments;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: WorkerArguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut run = args.run;
        // A repeatable job stays with the run (for a retry); a run-once job is taken.
        let job = match args.stand_in {
            Some(stand_in) => Some(*stand_in),
            None => run.take_job_for_attempt(),
        };
        let (run_id, attempt, snoozes, timeout) = (run.id, run.attempt, run.snoozes, run.timeout);
        let info = run.span();
        let name = info.and_then(|i| i.name.as_deref()).unwrap_or(&run.label);
        // A root span (whatever span the supervisor's handler may be in is not the run's
        // parent): the trace it continues, if any, is set below.
        let span = tracing::info_span!(
            parent: None,
            "run",
            run_id = %run_id,
            name = %name,
            label = %run.label,
            kind = tracing::field::Empty,
            queue = %run.queue,
            attempt,
        );
        if let Some(kind) = info.and_then(|i| i.kind.as_deref()) {
            span.record("kind", kind);
        }
        if let (Some(trace), Some(parent)) =
            (&args.trace, info.and_then(|i| i.trace_parent.as_deref()))
        {
            trace.adopt(&span, parent);
        }
        let span = (!span.is_disabled()).then(|| Box::new(span));
        let dependencies = run.dependencies();
        // Only a repeatable job runs again: a retry or a snooze needs it.
        let again = run.has_job().then_some(run);
        Ok(WorkerState {
            run_id,
            span,
            attempt,
            snoozes,
            timeout,
            dependencies,
            again,
            job,
            registry: args.registry,
            reports: args.reports,
            grace: args.grace,
            logs: args.logs,
            signal: EndOnDrop(args.signal),
            stop: None,
            end: None,
        })
    }

    /// Runs the attempt, in the worker's own task: the job, then its outcome.
    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(attempt) = state.attempt() else {
            return Ok(());
        };
        let ran = attempt.await;
        state.conclude(&myself, ran);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        state.release();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message.0 {}
    }
}
