//! The message protocols between runwarden's actors: every message enum, its reply types, and
//! the wrappers that keep internal steps internal.
//!
//! Actors import this module, never each other's files: the supervisor, the registry and the
//! workers see one another only as addresses of these message types.
//!
//! | actor | public requests (anyone holding the address) | internal steps (runwarden only) |
//! |---|---|---|
//! | supervisor ([`SupervisorMessage`]) | submit, cancel, cancel many, drain, begin drain, limits, schedules, status, recovery report, log keeper, submitter | start a recorded run, forwarded cancel, drain barrier and deadline, retry due, schedule due, registry restarted |
//! | registry ([`RegistryMessage`]) | get, list, wait, active count and ids, subscribe, event port, stats, prune now | admit (plain, durable, unique), transition, progress, exit code, answer a cancel, barrier, requeue, store committed, prunable, prune tick |
//! | worker ([`WorkerMessage`]) | none | none: the supervisor stops an attempt through its stop signal, and hears of its end from ractor's supervision event |
//! | log keeper ([`LogMessage`]) | read, follow, flush | lines (from jobs), a run's end, pruned runs, the registry's address |
//!
//! Each variant's documentation says who sends it and what the receiver does with it.
//!
//! # The seal
//!
//! An internal step travels inside [`SupervisorInternal`], [`RegistryInternal`] or
//! [`WorkerMessage`], whose contents only this crate can build. So no value an application
//! can build can make the registry forget a run, release a durability acknowledgement before
//! its write commits, start a run twice, report a status for a run it does not run, or inject
//! a fault. Each of these fails to compile outside the crate:
//!
//! Forgetting a finished run (and deleting it from the store):
//! ```compile_fail
//! let _ = runwarden_actors::RegistryMessage::Prunable;
//! ```
//! Releasing every held durability acknowledgement early:
//! ```compile_fail
//! let _ = runwarden_actors::RegistryMessage::Committed;
//! ```
//! Starting a second worker for a running run:
//! ```compile_fail
//! let _ = runwarden_actors::RegistryMessage::Requeue;
//! ```
//! Injecting a fault:
//! ```compile_fail
//! let _ = runwarden_actors::RegistryMessage::InjectFault;
//! ```
//! Reporting a status for a run the sender does not run, or recording a made-up record:
//! ```compile_fail
//! let _ = runwarden_actors::RegistryMessage::Transition;
//! ```
//! ```compile_fail
//! let _ = runwarden_actors::RegistryMessage::Insert;
//! ```
//! Handing the supervisor a run to start, or faking a drain's barrier:
//! ```compile_fail
//! let _ = runwarden_actors::SupervisorMessage::Start;
//! ```
//! ```compile_fail
//! let _ = runwarden_actors::SupervisorMessage::DrainBarrier;
//! ```
//! Building any internal step, of the registry, the supervisor or a worker:
//! ```compile_fail
//! let _ = runwarden_actors::RegistryInternal;
//! ```
//! ```compile_fail
//! let _ = runwarden_actors::SupervisorInternal;
//! ```
//! ```compile_fail
//! let _ = runwarden_actors::WorkerMessage;
//! ```
//! Writing lines into another run's log, or ending it:
//! ```compile_fail
//! let _ = runwarden_actors::LogMessage::Append;
//! ```
//!
//! The public requests, written the same way, compile:
//! ```
//! let _ = runwarden_actors::RegistryMessage::Get;
//! let _ = runwarden_actors::RegistryMessage::WaitTerminal;
//! let _ = runwarden_actors::SupervisorMessage::Submit;
//! let _ = runwarden_actors::SupervisorMessage::Cancel;
//! ```
//!
//! Fault injection for runwarden's own tests is behind the `fault-injection` feature
//! (the `faults` module), meant for `[dev-dependencies]` only.

pub(crate) mod logs;
pub(crate) mod registry;
pub(crate) mod run;
pub(crate) mod supervisor;
pub(crate) mod worker;

pub use logs::{
    LogEnd, LogError, LogFollow, LogInternal, LogItem, LogMessage, LogsRef, ReadAnswer, ReadQuery,
};
pub use registry::{
    Dedup, OnConflict, RegistryInternal, RegistryMessage, RegistryRef, RegistryStats, Retention,
    Uniqueness,
};
pub use run::{Admission, CancelOutcome, CancelReason, CancelReply, PreparedRun, Submission};
pub use supervisor::{
    DrainReport, DrainState, DueTimer, KindRateStatus, QueueStatus, Release, StartMode,
    SupervisorInternal, SupervisorMessage, SupervisorRef, SupervisorStatus, TimerPurpose,
};
pub use worker::{AttemptEnd, WorkerMessage};
