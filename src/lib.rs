//! Fire-and-forget background runs, with tracking, on [`ractor`] actors.
//!
//! Hand runwarden a job and get a [`RunId`] back at once. A supervisor actor spawns one
//! worker actor per run; a registry actor records every status change and answers queries.
//! Every accepted run reaches exactly one terminal status: `Completed`, `Failed` or
//! `Cancelled`, whether its job returns, errors, panics, is cancelled, or is cut off by a
//! drain deadline.
//!
//! # Quick start
//!
//! ```
//! use std::time::Duration;
//! use runwarden::{JobError, Runwarden, RunSpec, RunStatus};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), runwarden::Error> {
//! let rw = Runwarden::start().await?;
//!
//! // Fire and forget: the id comes back before the job starts.
//! let id = rw.submit(RunSpec::new("report").param("month", "2026-11"), |ctx| async move {
//!     tokio::select! {
//!         _ = tokio::time::sleep(Duration::from_millis(10)) => Ok(()),
//!         _ = ctx.cancelled() => Err(JobError::msg("cancelled")),
//!     }
//! })?;
//!
//! // With tracking: ask at any time (a query right after submit always finds the run),
//! // or wait for the end.
//! let now = rw.status(id).await?;
//! println!("{} is {}", now.id, now.status);
//! let record = rw.wait(id).await?;
//! assert_eq!(record.status, RunStatus::Completed);
//!
//! // Stop accepting runs, let the others finish (cancelling what is left after 5 s), stop.
//! let report = rw.shutdown(Duration::from_secs(5)).await?;
//! assert!(report.cancelled_by_drain.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! # What is where
//!
//! - [`Runwarden`] and [`RunwardenBuilder`]: the handle. Submit (`submit` for a closure,
//!   `submit_job` for any [`IntoJob`]: a [`BoxedJob`], a job [`Kind`], a [`ProcessJob`],
//!   [`returning`]; `request(..)` with `.durable()` or `.idempotency_key(..)`), ask (`status`,
//!   `list`, `wait`, `events`), control (`cancel`, `cancel_many`, limits, schedules, `drain`,
//!   `shutdown`).
//! - The actor path: [`SupervisorActor::spawn_linked`] returns a [`SupervisorRef`] (submit,
//!   cancel, drain, shutdown, status, recovery) and its [`RegistryRef`] (get, list, wait,
//!   subscribe); the messages themselves are in [`actors::protocol`].
//! - Run control types: [`RunSpec`], [`QueueConfig`], [`RetryPolicy`], [`ScheduleSpec`],
//!   [`Progress`], [`EventFilter`] / [`EventStream`].
//! - Process runs and logs: [`ProcessJob`], [`LogConfig`], [`LogFollow`].
//! - Durability: [`SqliteStore`] (or any [`RunStore`]), job kinds ([`OnInterrupt`]),
//!   [`Retention`], [`RecoveryReport`].
//! - HTTP: [`http::router`] and [`http::serve`] (feature `http`, on by default).
//! - [`actors`]: the run model, protocols and actors themselves. Actor applications can spawn
//!   [`SupervisorActor`] under their own supervisor and drive it purely by
//!   [`SupervisorMessage`]s and [`RegistryMessage`]s.
//!
//! `ARCHITECTURE.md` describes the actors, their messages and their invariants.

#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod error;
mod events;
mod handle;
#[cfg(feature = "http")]
pub mod http;
mod process;
mod returning;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{BatchError, Error};
pub use events::{EventItem, EventStream, StreamEnd};
pub use handle::{Runwarden, RunwardenBuilder};
pub use process::{MAX_LINE_BYTES, ProcessJob, guess_level};
pub use returning::returning;
pub use runwarden_actors::{
    Batch, CallbackWhen, Dependency, DependencyOutcome, OnDependencyFailure, RecordFields,
    StatusCounts, Step, Workflow, WorkflowError, WorkflowId, WorkflowRuns, WorkflowState,
    WorkflowView,
};
pub use runwarden_actors::{
    BoxedJob, CallError, CancelError, CancelKind, CancelOutcome, CancelReason, DEFAULT_QUEUE,
    Dedup, DrainReport, DrainState, ErrorKind, EventFilter, FailureKind, IntoJob, IntoJobOutput,
    JobError, JobKinds, JobOutput, Json, JsonObject, Kind, KindRateStatus, ListQuery, LogEntry,
    LogLevel, LogStream, MemoryStore, NoSuchSchedule, NotFound, OnInterrupt, Outcome, Progress,
    QueueConfig, QueueStatus, RateLimit, RateScope, RecoveryReport, RegistryMessage, RegistryRef,
    RegistryStats, Release, Retention, RetryOn, RetryPolicy, RunContext, RunError, RunEvent, RunId,
    RunPage, RunRecord, RunSpec, RunStatus, RunStore, ScheduleId, ScheduleInfo, ScheduleMode,
    ScheduleSpec, StoreError, StoreWrite, StoredState, SubmitError, SubmitRequest, Submitter,
    Subscription, SupervisorActor, SupervisorArguments, SupervisorMessage, SupervisorRef,
    SupervisorStatus, Timestamp, Transition, TransitionError, UnknownQueue, ractor,
};
pub use runwarden_actors::{CronError, CronSchedule, MissedFires, Overlap, WallClock};
pub use runwarden_actors::{DROP_WAIT, LogConfig, LogEnd, LogError, LogFollow, LogItem, LogsRef};
pub use runwarden_actors::{DueTimer, OnConflict, StartMode, StatusSet, TimerPurpose, Uniqueness};
pub use runwarden_actors::{Histogram, MetricSeries, MinuteCounts, RunMetrics};
pub use runwarden_actors::{JobOutcome, RecordingContext};
pub use runwarden_actors::{TracePropagation, is_traceparent};
pub use sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore};

/// The actors, protocols and run model, for applications that drive them by message.
pub use runwarden_actors as actors;

/// Converts a `serde_json` object into run parameters.
///
/// # Errors
/// `value` is not a JSON object.
pub fn params_from_json(value: serde_json::Value) -> Result<JsonObject, serde_json::Error> {
    serde_json::from_value(value)
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
