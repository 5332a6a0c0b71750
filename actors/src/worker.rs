//! The worker actor: one per running attempt. It owns the job's task and its timers, reports
//! the attempt's start and then exactly one outcome — a terminal status, or a retry — to the
//! registry, drains its mailbox and stops.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, MessagingErr};
use tracing::Instrument;

use crate::trace::TracePropagation;

use crate::error::CancelError;
use crate::job::{BoxedJob, CancelSignal, CatchUnwind, JobOutcome, RunContext, RunReports};
use crate::log::LogSink;
use crate::protocol::registry::{RegistryMessage, RegistryStep};
use crate::protocol::run::{CancelOutcome, CancelReason, CancelReply, PreparedRun};
use crate::protocol::worker::{AttemptEnd, WorkerMessage, WorkerStep};
use crate::run::DependencyOutcome;
use crate::run::{CancelKind, FailureKind, Outcome, RunError, RunId, Transition};
use crate::task::AbortOnDrop;
use crate::time::Timestamp;

/// After a cancel's (or time limit's) grace period, how long a worker waits for its job's
/// aborted future to be dropped before it records the run's end anyway: a job that never
/// yields cannot be dropped, but its run still ends.
pub const DROP_WAIT: Duration = Duration::from_secs(1);

/// The worker actor. Stateless itself; see [`WorkerState`].
#[derive(Debug, Default, Clone, Copy)]
pub struct WorkerActor;

/// Start-up input of a worker.
/// Only the supervisor builds one.
pub struct WorkerArguments {
    /// The run (and attempt) this worker executes.
    pub(crate) run: Box<PreparedRun>,
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

type Timer = AbortOnDrop<Result<(), MessagingErr<WorkerMessage>>>;

/// Why the job was asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancel(CancelReason),
    TimeLimit,
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
    /// The attempt's job, from start-up until its task is spawned.
    job: Option<BoxedJob>,
    registry: ActorRef<RegistryMessage>,
    reports: Arc<dyn RunReports>,
    grace: Duration,
    logs: Option<Arc<dyn LogSink>>,
    /// `None` once released at the worker's stop.
    cancel: Option<CancelOnDrop>,
    task: Option<AbortOnDrop<()>>,
    time_limit: Option<Timer>,
    grace_timer: Option<Timer>,
    /// The grace period ran out and the job task was aborted: the outcome is decided by
    /// `JobDropped`, not by what the task reports as it goes.
    aborted: bool,
    stop: Option<Stop>,
    end: Option<AttemptEnd>,
    deferred_cancels: Vec<CancelReply>,
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

    /// Cancel requests that arrived after the worker decided to retry: the run is no longer
    /// this worker's, so the supervisor answers them once it holds the run again.
    pub fn take_deferred_cancels(&mut self) -> Vec<CancelReply> {
        std::mem::take(&mut self.deferred_cancels)
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

    /// Reports the attempt's outcome and starts draining: messages already queued are still
    /// answered (from `end`), later sends fail and hand the message back to the sender, and
    /// then the actor stops.
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
        self.grace_timer = None;
        self.time_limit = None;
        if let Err(e) = self
            .registry
            .cast(RegistryStep::Transition(self.run_id, t, None).into())
        {
            run_line!(self, error, error = %e, "registry unreachable; outcome not recorded");
        }
        if let Err(e) = myself.drain() {
            run_line!(self, debug, error = %e, "worker already stopping");
        }
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

    /// Drops what the attempt held (its task, timers, job, cancel signal, log sink), on the
    /// worker's own task as it stops. The supervisor receives this state for the outcome
    /// alone; freeing the rest here keeps that work (and the allocator traffic it causes)
    /// off the supervisor, which every run passes through.
    fn release(&mut self) {
        self.task = None;
        self.time_limit = None;
        self.grace_timer = None;
        self.job = None;
        self.logs = None;
        self.cancel = None;
    }

    /// Asks the job to stop and arms the grace timer.
    fn signal_stop(&mut self, myself: &ActorRef<WorkerMessage>, stop: Stop) {
        self.stop = Some(stop);
        if let Some(c) = &self.cancel {
            c.0.cancel();
        }
        let timer = myself.send_after(self.grace, || WorkerStep::GraceExpired.into());
        self.grace_timer = Some(AbortOnDrop(timer));
    }
}

/// Sets the run's cancel signal when the worker goes away however it ends, so a job (or a
/// clone of its context that outlived it) never waits on a run that is over.
#[derive(Debug)]
struct CancelOnDrop(Arc<CancelSignal>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
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

/// Reports the job's end to its worker even if the job task ends without reaching its own
/// report (a panic outside the job's future). On an abort the worker has already decided the
/// attempt's outcome and ignores this late report.
struct ReportOnDrop(Option<ActorRef<WorkerMessage>>);

impl Drop for ReportOnDrop {
    fn drop(&mut self) {
        if let Some(worker) = self.0.take() {
            let outcome = JobOutcome::Panicked("the job's task ended without a result".to_owned());
            let _ = worker.cast(WorkerStep::JobFinished(outcome).into());
        }
    }
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
        let info = run.span.as_deref();
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
        let dependencies = run.dependencies.clone();
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
            cancel: Some(CancelOnDrop(Arc::default())),
            task: None,
            time_limit: None,
            grace_timer: None,
            aborted: false,
            stop: None,
            end: None,
            deferred_cancels: Vec::new(),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let Some(job) = state.job.take() else {
            return Ok(());
        };
        let timeout = state.timeout;
        // `Started` is cast before the task exists, and the outcome only after the task
        // reports back through this actor, so the registry always sees them in order.
        let started = Transition::Started {
            at: Timestamp::now(),
        };
        state
            .registry
            .cast(RegistryStep::Transition(state.run_id, started, None).into())?;
        run_line!(state, debug, "run started");
        let Some(cancel) = &state.cancel else {
            return Ok(());
        };
        let ctx = RunContext::new(
            state.run_id,
            (state.attempt, state.snoozes),
            cancel.0.clone(),
            state.reports.clone(),
            state.logs.clone(),
        )
        .with_dependency_outcomes(state.dependencies.clone());
        let span = state
            .span
            .as_deref()
            .cloned()
            .unwrap_or_else(tracing::Span::none);
        let mut report = ReportOnDrop(Some(myself.clone()));
        // The job runs in its own task so this actor keeps receiving `Cancel` while it runs,
        // and so its time limit is kept even if the job never yields.
        let handle = tokio::spawn(
            async move {
                let outcome = CatchUnwind::new(job, ctx).await;
                if let Some(me) = report.0.take() {
                    // Fails only if the worker already finished (grace expired): nothing to do.
                    let _ = me.cast(WorkerStep::JobFinished(outcome).into());
                }
            }
            .instrument(span),
        );
        state.task = Some(AbortOnDrop(handle));
        if let Some(limit) = timeout {
            let timer = myself.send_after(limit, || WorkerStep::TimeLimit.into());
            state.time_limit = Some(AbortOnDrop(timer));
        }
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
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message.0 {
            WorkerStep::JobFinished(outcome) => {
                if state.end.is_some() || state.aborted {
                    return Ok(());
                }
                match (state.stop, outcome) {
                    // Whatever the job returns after a cancel was accepted, the run ends
                    // `Cancelled`: the caller was told so.
                    (Some(Stop::Cancel(reason)), outcome) => {
                        let t = Transition::cancelled(
                            reason,
                            CancelKind::WhileRunning,
                            format!("cancelled by {reason} while running; job then {outcome}"),
                        );
                        state.end_with(&myself, t);
                    }
                    (Some(Stop::TimeLimit), outcome) => {
                        let limit = state.timeout.unwrap_or_default();
                        let msg = format!("timed out after {limit:?}; job then {outcome}");
                        state.fail(&myself, FailureKind::TimedOut, msg);
                    }
                    (None, JobOutcome::Ok(result)) => {
                        state.end_with(&myself, Transition::completed_with(result))
                    }
                    (None, JobOutcome::Err(e)) => match e.snoozed_for() {
                        Some(delay) => state.snooze(&myself, delay),
                        None => state.fail(&myself, e.kind, e.message),
                    },
                    (None, JobOutcome::Panicked(m)) => {
                        state.fail(&myself, FailureKind::Panicked, m)
                    }
                }
            }
            WorkerStep::Cancel(reason, reply) => {
                let answer = match (&state.end, state.stop) {
                    (Some(AttemptEnd::Ended(status)), _) => Err(CancelError::AlreadyFinished {
                        id: state.run_id,
                        status: *status,
                    }),
                    (Some(AttemptEnd::Retry { .. }), _) => {
                        // The run is on its way back to the supervisor to wait for its next
                        // attempt; the supervisor answers once it holds it.
                        if let Some(reply) = reply {
                            state.deferred_cancels.push(reply);
                        }
                        return Ok(());
                    }
                    (None, Some(Stop::Cancel(_))) => Ok(CancelOutcome::AlreadyCancelling),
                    (None, Some(Stop::TimeLimit)) => {
                        // The job is already being stopped for its time limit; the caller's
                        // cancel takes over the outcome (and keeps the running grace timer).
                        state.stop = Some(Stop::Cancel(reason));
                        Ok(CancelOutcome::Signalled)
                    }
                    (None, None) => {
                        state.signal_stop(&myself, Stop::Cancel(reason));
                        run_line!(state, debug, %reason, "run cancel requested");
                        Ok(CancelOutcome::Signalled)
                    }
                };
                if let Some(reply) = reply {
                    let _ = reply.send(answer);
                }
            }
            WorkerStep::TimeLimit => {
                if state.end.is_none() && state.stop.is_none() {
                    run_line!(state, warn, "run hit its time limit");
                    state.signal_stop(&myself, Stop::TimeLimit);
                }
            }
            WorkerStep::GraceExpired => {
                if state.end.is_some() {
                    return Ok(());
                }
                // The job's future is dropped at its next `.await` (with everything it owns).
                // The outcome is recorded once that has happened, so a caller told the run is
                // cancelled can rely on the job's resources being released; code that never
                // yields keeps its thread, and the run ends after `DROP_WAIT` regardless.
                state.aborted = true;
                match state.task.take() {
                    Some(mut task) => {
                        task.0.abort();
                        let me = myself.clone();
                        tokio::spawn(async move {
                            let dropped =
                                tokio::time::timeout(DROP_WAIT, &mut task.0).await.is_ok();
                            let _ = me.cast(WorkerStep::JobDropped(dropped).into());
                        });
                    }
                    None => {
                        let _ = myself.cast(WorkerStep::JobDropped(true).into());
                    }
                }
            }
            WorkerStep::JobDropped(dropped) => {
                if state.end.is_some() {
                    return Ok(());
                }
                let grace = state.grace;
                let how = if dropped {
                    "was dropped"
                } else {
                    "does not yield; it is dropped at its next await"
                };
                match state.stop {
                    Some(Stop::TimeLimit) => {
                        let limit = state.timeout.unwrap_or_default();
                        let msg = format!(
                            "timed out after {limit:?}; job did not stop within the {grace:?} grace period and {how}"
                        );
                        state.fail(&myself, FailureKind::TimedOut, msg);
                    }
                    stop => {
                        let reason = match stop {
                            Some(Stop::Cancel(r)) => r,
                            _ => CancelReason::User,
                        };
                        let t = Transition::cancelled(
                            reason,
                            CancelKind::GraceExpired,
                            format!(
                                "cancelled by {reason}; job did not stop within the {grace:?} grace period and {how}"
                            ),
                        );
                        state.end_with(&myself, t);
                    }
                }
            }
        }
        Ok(())
    }
}
