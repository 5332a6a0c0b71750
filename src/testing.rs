//! A kit for testing applications that hand work to runwarden (enable the `testing` feature in
//! `[dev-dependencies]`): assertions on the runs an application submitted, and a probe actor
//! that sees run events the way an application's actor does.
//!
//! Everything takes a [`RegistryRef`](crate::RegistryRef), which both paths have: the async
//! handle's [`Runwarden::registry`](crate::Runwarden::registry), and for an embedded supervisor
//! [`SupervisorRef::registry`](crate::SupervisorRef::registry).
//!
//! - [`RunMatch`] says what to look for: label, kind, queue, name, status, and a subset of
//!   the parameters. [`assert_one`], [`assert_none`] and [`assert_count`] check the registry's
//!   records (exactly as production writes them) and, when they fail, list the runs that were
//!   submitted, nearest to the expectation first, each with what it misses. [`submitted`]
//!   returns the matching records without asserting.
//! - Test modes ([`StartMode`](crate::StartMode), chosen when runwarden starts, on either
//!   path). Manual: a runwarden built with
//!   [`hold_starts`](crate::RunwardenBuilder::hold_starts) (or
//!   [`SupervisorArguments::start_mode`](crate::SupervisorArguments::start_mode)) records runs
//!   as production does but starts none until [`Release`](crate::Release)d: the next `n` in
//!   production's order, some by id ([`release_matching`] picks them by a [`RunMatch`]), or
//!   all. Inline ([`inline`](crate::RunwardenBuilder::inline)): every run starts at once, and
//!   an awaited submit ([`SupervisorRef::submit`](crate::SupervisorRef::submit), a request's
//!   `.send().await`) answers once its run has ended, nested submits included.
//! - [`Perform`] runs one attempt of a registered kind (or any job) in the test's task, with a
//!   context the test holds ([`RecordingContext`](crate::RecordingContext): cancel it, read
//!   every progress report, log line and exit code).
//! - Faults on demand: [`inject`] makes the next attempt of a kind panic, fail, hang until
//!   cancelled or ignore its cancel ([`JobFault`]); [`crash_registry`] makes the registry
//!   crash (it restarts from its store, or escalates without one).
//! - [`Probe`] is an actor subscribed to the registry's event port. [`Probe::await_status`]
//!   and [`Probe::await_terminal`] wait for a run's status ([`Probe::await_event`] for any
//!   event) (at once if it was reached since the
//!   probe was attached) and fail with the events seen instead.
//!
//! Deterministic time: runwarden's timers (retry backoff, snoozes, time limits, rate limits,
//! schedules, cron with [`WallClock::StartingAt`](crate::WallClock::StartingAt)) are tokio
//! timers, so in a test on tokio's paused clock (`#[tokio::test(start_paused = true)]`) they
//! fire exactly when the clock gets there, and the probe's waits are bounded in real time, so
//! waiting for a retry 30 s away takes no time at all. [`advance_to_next_timer`] steps the
//! clock to runwarden's next timer, for a test that looks at the state between timers.
//!
//! # A complete test of a small actor application
//!
//! A billing actor submits one invoice run per checkout and is told, by message, when an
//! invoice fails:
//!
//! ```
//! use std::time::Duration;
//! use runwarden::ractor::{Actor, ActorProcessingErr, ActorRef};
//! use runwarden::testing::{Probe, RunMatch, assert_none, assert_one};
//! use runwarden::{BoxedJob, JobError, RetryPolicy, RunEvent, RunSpec, RunStatus, Runwarden, SupervisorRef};
//!
//! // The application under test.
//! struct Billing;
//! enum BillingMsg {
//!     Checkout { customer: i64 },
//!     Event(RunEvent),
//! }
//! struct BillingState {
//!     runs: SupervisorRef,
//!     failed: tokio::sync::mpsc::UnboundedSender<String>,
//! }
//!
//! impl Actor for Billing {
//!     type Msg = BillingMsg;
//!     type State = BillingState;
//!     type Arguments = BillingState;
//!     async fn pre_start(&self, me: ActorRef<BillingMsg>, state: BillingState)
//!         -> Result<BillingState, ActorProcessingErr> {
//!         let port = state.runs.registry().await?.event_port().await?;
//!         port.subscribe(me, |e| Some(BillingMsg::Event(e)));
//!         Ok(state)
//!     }
//!     async fn handle(&self, _me: ActorRef<BillingMsg>, msg: BillingMsg, state: &mut BillingState)
//!         -> Result<(), ActorProcessingErr> {
//!         match msg {
//!             BillingMsg::Checkout { customer } => {
//!                 let spec = RunSpec::new("send-invoice")
//!                     .param("customer", customer)
//!                     .retry(RetryPolicy::attempts(2).backoff(Duration::from_secs(30), Duration::from_secs(30)).jitter(0.0));
//!                 let job = BoxedJob::repeatable(move |_ctx| async move {
//!                     if customer < 0 { Err(JobError::msg("no such customer")) } else { Ok(()) }
//!                 });
//!                 state.runs.submit(spec, job).await??;
//!             }
//!             BillingMsg::Event(e) if e.label() == "send-invoice"
//!                 && e.status() == Some(RunStatus::Failed) => {
//!                 let _ = state.failed.send(format!("invoice run {} failed", e.run_id()));
//!             }
//!             BillingMsg::Event(_) => {}
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The test, on tokio's paused clock.
//! let rw = Runwarden::builder().start().await?;
//! let mut probe = Probe::attach(rw.registry()).await?;
//! let (failed, mut told) = tokio::sync::mpsc::unbounded_channel();
//! let state = BillingState { runs: rw.supervisor().clone(), failed };
//! let (billing, _) = Actor::spawn(None, Billing, state).await?;
//!
//! // A failing invoice is retried exactly 30 s later by the paused clock, then fails for
//! // good, and the billing actor hears of it.
//! billing.cast(BillingMsg::Checkout { customer: -1 })?;
//! let retry = probe.await_event("a retry", |e| {
//!     matches!(e, RunEvent::Status { status: RunStatus::Queued, attempt: 2, .. })
//! }).await;
//! let retried_at = tokio::time::Instant::now();
//! let bad = assert_one(rw.registry(), &RunMatch::any().param("customer", -1)).await;
//! assert_eq!(retry.run_id(), bad.id);
//! probe.await_status(bad.id, RunStatus::Failed).await;
//! assert_eq!(retried_at.elapsed(), Duration::from_secs(30));
//! assert_eq!(told.recv().await, Some(format!("invoice run {} failed", bad.id)));
//!
//! // A good one: exactly one invoice for the customer, and nothing else sent.
//! billing.cast(BillingMsg::Checkout { customer: 42 })?;
//! let run = probe.await_event("a second invoice", |e| e.label() == "send-invoice" && e.run_id() != bad.id).await;
//! let ok = assert_one(rw.registry(), &RunMatch::any().label("send-invoice").param("customer", 42)).await;
//! assert_eq!(ok.id, run.run_id());
//! assert_none(rw.registry(), &RunMatch::any().label("send-receipt")).await;
//! assert_eq!(probe.await_terminal(ok.id).await.status(), Some(RunStatus::Completed));
//! # billing.stop(None);
//! # rw.shutdown(Duration::from_secs(1)).await?;
//! # Ok(())
//! # }
//! ```

mod clock;
mod expect;
mod faults;
mod perform;
mod probe;

pub use clock::advance_to_next_timer;
pub use expect::{RunMatch, assert_count, assert_none, assert_one, release_matching, submitted};
pub use faults::{JobFault, crash_registry, inject};
pub use perform::{Perform, Performed};
pub use probe::{PATIENCE, Probe};
