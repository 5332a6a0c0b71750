//! Periodic runs: the types of the schedule protocol. The supervisor owns the schedules.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cron::CronSchedule;
use crate::run::{RunId, RunSpec, RunStatus};
use crate::time::Timestamp;

/// Identifies one schedule of a supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ScheduleId(pub u64);

impl fmt::Display for ScheduleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "schedule-{}", self.0)
    }
}

/// How occurrences of a schedule are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleMode {
    /// The next occurrence starts `every` after the previous one ended (never overlaps).
    FixedDelay,
    /// Occurrences are due every `every` from the first; a due occurrence is skipped (and
    /// counted) while the previous one is still active, so runs never overlap.
    FixedRate,
    /// Occurrences are due at the fire times of a [`CronSchedule`] (`every` is unused), with
    /// its overlap and missed-fire policies. Nothing is submitted when it is added.
    Cron,
}

/// A job to run periodically. The first occurrence is submitted at once.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use runwarden_actors::{RunSpec, ScheduleMode, ScheduleSpec};
///
/// let every_minute = ScheduleSpec::fixed_rate(RunSpec::new("sync"), Duration::from_secs(60));
/// assert_eq!(every_minute.mode, ScheduleMode::FixedRate);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// The spec every occurrence is submitted with (each occurrence is a normal run with its
    /// own id).
    pub run: RunSpec,
    /// The interval.
    #[serde(with = "crate::serde_duration::millis")]
    pub every: Duration,
    /// How the interval is measured.
    pub mode: ScheduleMode,
    /// The cron schedule of a [`ScheduleMode::Cron`] schedule.
    #[serde(default)]
    pub cron: Option<CronSchedule>,
}

impl ScheduleSpec {
    /// Runs `run` at the fire times of `cron`.
    ///
    /// # Examples
    /// ```
    /// use runwarden_actors::{CronSchedule, RunSpec, ScheduleSpec};
    ///
    /// let cron = CronSchedule::new("0 2 * * *", "Europe/Berlin").expect("valid");
    /// let nightly = ScheduleSpec::cron(RunSpec::new("backup"), cron);
    /// # let _ = nightly;
    /// ```
    #[must_use]
    pub fn cron(run: RunSpec, cron: CronSchedule) -> Self {
        ScheduleSpec {
            run,
            every: Duration::ZERO,
            mode: ScheduleMode::Cron,
            cron: Some(cron),
        }
    }

    /// Runs `run` every `every`, measured from the end of each occurrence.
    #[must_use]
    pub fn fixed_delay(run: RunSpec, every: Duration) -> Self {
        ScheduleSpec {
            run,
            every,
            mode: ScheduleMode::FixedDelay,
            cron: None,
        }
    }

    /// Runs `run` every `every`, measured from the first occurrence, skipping overlaps.
    #[must_use]
    pub fn fixed_rate(run: RunSpec, every: Duration) -> Self {
        ScheduleSpec {
            run,
            every,
            mode: ScheduleMode::FixedRate,
            cron: None,
        }
    }
}

/// A schedule's counters and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleInfo {
    /// The schedule.
    pub id: ScheduleId,
    /// The label of its runs.
    pub label: String,
    /// Its interval in milliseconds.
    pub every_ms: u64,
    /// How the interval is measured.
    pub mode: ScheduleMode,
    /// Paused schedules submit nothing until resumed.
    pub paused: bool,
    /// Occurrences submitted.
    pub runs: u64,
    /// Occurrences that completed.
    pub completed: u64,
    /// Occurrences that failed (errors).
    pub failed: u64,
    /// Occurrences that were cancelled.
    pub cancelled: u64,
    /// Due occurrences skipped (overlap, full queue).
    pub skipped: u64,
    /// Cron fire times missed (process down, paused, timer late) that the missed-fire policy
    /// did not run.
    #[serde(default)]
    pub missed: u64,
    /// A cron schedule's expression and time zone, e.g. `0 2 * * * (Europe/Berlin)`.
    #[serde(default)]
    pub cron: Option<String>,
    /// When a cron schedule fires next (`None` while paused or stopped, and for intervals).
    #[serde(default)]
    pub next_fire_at: Option<Timestamp>,
    /// The latest occurrence.
    pub last_run: Option<RunId>,
    /// How the latest finished occurrence ended.
    pub last_status: Option<RunStatus>,
    /// The occurrence still active (the latest, if a cron schedule allows overlaps).
    pub active_run: Option<RunId>,
    /// Occurrences active now (more than one only with [`crate::Overlap::Allow`]).
    #[serde(default)]
    pub active: usize,
    /// A due occurrence waiting for the active one to end ([`crate::Overlap::QueueOne`]).
    #[serde(default)]
    pub pending: bool,
}

/// No schedule has this id (it was never made, or was removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSuchSchedule(pub ScheduleId);

impl fmt::Display for NoSuchSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no {}", self.0)
    }
}

impl std::error::Error for NoSuchSchedule {}
