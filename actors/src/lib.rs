//! The actors behind [runwarden](https://docs.rs/runwarden): the run model, the message
//! protocols, and three actors.
//!
//! - [`SupervisorActor`] accepts runs, spawns one linked [`WorkerActor`] per running run,
//!   and owns cancellation and drain.
//! - [`WorkerActor`] runs one job in a task it owns and reports the run's start and its one
//!   terminal status.
//! - [`RegistryActor`] owns every [`RunRecord`], applies status messages through the run state
//!   machine ([`RunRecord::apply`]) and answers queries.
//!
//! Most applications use the `runwarden` crate's async handle. Actor applications can spawn
//! [`SupervisorActor`] under their own supervisor and drive it by messages:
//!
//! ```
//! use std::time::Duration;
//! use ractor::{Actor, call_t};
//! use runwarden_actors::{
//!     BoxedJob, RegistryMessage, RunSpec, RunStatus, SupervisorActor, SupervisorArguments,
//!     SupervisorMessage,
//! };
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (supervisor, _) =
//!     Actor::spawn(None, SupervisorActor, SupervisorArguments::default()).await?;
//! let job = BoxedJob::new(|_ctx| async { Ok(()) });
//! let spec = Box::new(RunSpec::new("hello"));
//! let id = call_t!(supervisor, SupervisorMessage::Submit, 1000, spec, job)??;
//! let submitter = call_t!(supervisor, SupervisorMessage::GetSubmitter, 1000)?;
//! let record = call_t!(submitter.registry(), RegistryMessage::WaitTerminal, 5000, id)??;
//! assert_eq!(record.status, RunStatus::Completed);
//! let report = call_t!(supervisor, SupervisorMessage::Drain, 5000, Duration::from_secs(1))?;
//! assert!(!report.deadline_hit);
//! supervisor.stop_and_wait(None, None).await?;
//! # Ok(())
//! # }
//! ```

#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]

mod cron;
mod error;
mod event;
#[cfg(feature = "fault-injection")]
pub mod faults;
mod hash;
mod job;
mod json;
mod kinds;
mod log;
mod log_keeper;
pub mod metrics;
mod perform;
pub mod protocol;
mod query;
mod queue;
mod registry;
mod run;
mod schedule;
mod serde_duration;
mod store;
mod submit;
mod submitter;
mod supervisor;
mod task;
mod time;
mod trace;
mod worker;
mod workflow;

pub use cron::{CronError, CronSchedule, MissedFires, Overlap};
pub use error::WorkflowError;
pub use error::{CallError, CancelError, NotFound, StoreError, SubmitError, UnknownQueue};
pub use event::{EventFilter, RunEvent, Subscription};
pub use job::{
    BoxedJob, IntoJobOutput, JobError, JobFuture, JobOutcome, JobOutput, ProgressSlot, RunContext,
};
pub use json::{Json, JsonObject};
pub use kinds::{JobKinds, OnInterrupt, RecoveryReport};
pub use log::{LogConfig, LogEntry, LogLevel, LogSink, LogStream};
pub use metrics::{Histogram, MetricSeries, MinuteCounts, RunMetrics};
pub use perform::{RecordingContext, perform};
pub use protocol::{
    Admission, AttemptEnd, CancelOutcome, CancelReason, CancelReply, Dedup, DrainReport,
    DrainState, KindRateStatus, LogEnd, LogError, LogFollow, LogInternal, LogItem, LogMessage,
    LogsRef, PreparedRun, QueueStatus, ReadAnswer, ReadQuery, RegistryInternal, RegistryMessage,
    RegistryRef, RegistryStats, Retention, Submission, SupervisorInternal, SupervisorMessage,
    SupervisorRef, SupervisorStatus, WorkerMessage,
};
pub use protocol::{DueTimer, OnConflict, Release, StartMode, TimerPurpose, Uniqueness};
pub use query::{ListQuery, RecordFields, RunPage};
pub use queue::{QueueConfig, QueueSlot, RateLimit, RateScope};
pub use registry::{RegistryActor, RegistryArguments, RegistryState};
pub use run::{
    CancelKind, DEFAULT_QUEUE, ErrorKind, FailureKind, Outcome, Progress, RetryOn, RetryPolicy,
    RunError, RunId, RunRecord, RunSpec, RunStatus, StatusSet, Transition, TransitionError,
};
pub use run::{Dependency, DependencyOutcome, OnDependencyFailure, StatusCounts, WorkflowId};
pub use schedule::{NoSuchSchedule, ScheduleId, ScheduleInfo, ScheduleMode, ScheduleSpec};
pub use store::{MemoryStore, RunStore, StoreWrite, StoredState};
pub use submit::{IntoJob, Kind};
pub use submitter::{SubmitRequest, Submitter, UniqueSubmitRequest};
pub use supervisor::{
    REGISTRY_RESTARTS, RESTART_WINDOW, SupervisorActor, SupervisorArguments, SupervisorState,
};
pub use time::{ParseTimestampError, Timestamp, WallClock};
pub use trace::{TracePropagation, is_traceparent};
pub use worker::{DROP_WAIT, WorkerActor, WorkerArguments, WorkerState};
pub use workflow::{
    Batch, CallbackWhen, Step, Workflow, WorkflowRuns, WorkflowState, WorkflowView,
};

/// The actor framework runwarden is built on, re-exported so users match its version.
pub use ractor;
