//! Cron schedules: an expression read in a time zone, and what a schedule does when an
//! occurrence would overlap the previous one or was missed. Parsing and next-fire times are
//! croner's (POSIX/Vixie cron with seconds optional); the time zone database is chrono-tz's,
//! compiled in, so no system tzdata is needed.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// What a cron schedule does when an occurrence is due while the previous one is still active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    /// The due occurrence is skipped (and counted in `skipped`).
    #[default]
    Skip,
    /// One due occurrence waits and is submitted when the active one ends; more are skipped.
    QueueOne,
    /// The due occurrence is submitted anyway: occurrences may run at the same time.
    Allow,
}

/// What a cron schedule does with fire times that passed while it could not fire: the process
/// was down (see [`CronSchedule::last_fired`]), the schedule was paused, or its timer fired
/// later than [`CronSchedule::starting_deadline`] (a suspended process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissedFires {
    /// Missed fire times are counted in `missed` and nothing runs for them; the schedule goes
    /// on at its next fire time.
    #[default]
    Skip,
    /// However many were missed, one occurrence runs at once (the rest counted in `missed`).
    RunOnce,
}

/// A cron expression or time zone that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronError {
    /// The expression does not parse; croner's reason.
    Expression {
        /// The expression given.
        expression: String,
        /// Why it was refused.
        reason: String,
    },
    /// No IANA time zone has this name.
    TimeZone(String),
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CronError::Expression { expression, reason } => {
                write!(f, "bad cron expression `{expression}`: {reason}")
            }
            CronError::TimeZone(name) => write!(f, "unknown time zone `{name}`"),
        }
    }
}

impl std::error::Error for CronError {}

/// When a schedule fires: a cron expression (5 fields, or 6 with seconds first) read in an
/// IANA time zone, with its overlap and missed-fire policies.
///
/// Daylight saving time follows the Open Cron Pattern Specification, as croner implements it:
/// a fixed time that falls in a spring-forward gap fires at the first instant after the gap
/// (`0 2 * * *` in `Europe/Berlin` fires at 03:00 CEST that day), and a fixed time that occurs
/// twice at a fall-back fires once, at its first occurrence. Patterns with a wildcard hour
/// fire in every hour that exists.
///
/// # Examples
/// ```
/// use runwarden_actors::{CronSchedule, MissedFires, Overlap};
///
/// let nightly = CronSchedule::new("0 2 * * *", "Europe/Berlin")
///     .expect("valid")
///     .overlap(Overlap::Skip)
///     .missed(MissedFires::RunOnce);
/// assert_eq!(nightly.to_string(), "0 2 * * * (Europe/Berlin)");
/// assert!(CronSchedule::new("0 25 * * *", "UTC").is_err());
/// assert!(CronSchedule::new("0 2 * * *", "Mars/Olympus").is_err());
/// ```
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "CronParts", into = "CronParts")]
pub struct CronSchedule {
    expression: String,
    zone: Tz,
    cron: Cron,
    overlap: Overlap,
    missed: MissedFires,
    starting_deadline: Duration,
    last_fired: Option<Timestamp>,
}

/// The serialized form of a [`CronSchedule`], checked when read.
#[derive(Serialize, Deserialize)]
struct CronParts {
    expression: String,
    time_zone: String,
    #[serde(default)]
    overlap: Overlap,
    #[serde(default)]
    missed: MissedFires,
    #[serde(default = "default_deadline_ms")]
    starting_deadline_ms: u64,
    #[serde(default)]
    last_fired: Option<Timestamp>,
}

fn default_deadline_ms() -> u64 {
    DEFAULT_STARTING_DEADLINE.as_millis() as u64
}

/// How late a timer may fire and still count as on time.
const DEFAULT_STARTING_DEADLINE: Duration = Duration::from_secs(60);

/// Fire times counted one by one when catching up; past it, the count is a lower bound.
const MAX_COUNTED: u64 = 100_000;

impl TryFrom<CronParts> for CronSchedule {
    type Error = CronError;

    fn try_from(p: CronParts) -> Result<Self, CronError> {
        let mut s = CronSchedule::new(&p.expression, &p.time_zone)?
            .overlap(p.overlap)
            .missed(p.missed)
            .starting_deadline(Duration::from_millis(p.starting_deadline_ms));
        s.last_fired = p.last_fired;
        Ok(s)
    }
}

impl From<CronSchedule> for CronParts {
    fn from(s: CronSchedule) -> Self {
        CronParts {
            expression: s.expression,
            time_zone: s.zone.name().to_owned(),
            overlap: s.overlap,
            missed: s.missed,
            starting_deadline_ms: s.starting_deadline.as_millis() as u64,
            last_fired: s.last_fired,
        }
    }
}

impl CronSchedule {
    /// `expression` read in the IANA time zone `time_zone` (`"UTC"`, `"Europe/Berlin"`);
    /// overlaps and missed fires are skipped unless set otherwise.
    ///
    /// # Errors
    /// [`CronError`] for an expression croner refuses or an unknown time zone.
    pub fn new(expression: &str, time_zone: &str) -> Result<Self, CronError> {
        let zone =
            Tz::from_str(time_zone).map_err(|_| CronError::TimeZone(time_zone.to_owned()))?;
        let cron = Cron::from_str(expression).map_err(|e| CronError::Expression {
            expression: expression.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(CronSchedule {
            expression: expression.to_owned(),
            zone,
            cron,
            overlap: Overlap::default(),
            missed: MissedFires::default(),
            starting_deadline: DEFAULT_STARTING_DEADLINE,
            last_fired: None,
        })
    }

    /// Sets what happens when an occurrence is due while the previous one is active.
    #[must_use]
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// Sets what happens to fire times that were missed.
    #[must_use]
    pub fn missed(mut self, missed: MissedFires) -> Self {
        self.missed = missed;
        self
    }

    /// How late a timer may fire and still run its occurrence as on time (default 60 s);
    /// later, the fire counts as missed.
    #[must_use]
    pub fn starting_deadline(mut self, deadline: Duration) -> Self {
        self.starting_deadline = deadline;
        self
    }

    /// When this schedule last fired before this process (kept by the application, e.g. the
    /// newest run of its label): fire times since then were missed while the process was down,
    /// and the missed-fire policy decides about them when the schedule is added.
    #[must_use]
    pub fn last_fired(mut self, at: Timestamp) -> Self {
        self.last_fired = Some(at);
        self
    }

    /// The expression as given.
    #[must_use]
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone's IANA name.
    #[must_use]
    pub fn time_zone(&self) -> &str {
        self.zone.name()
    }

    /// The overlap policy.
    #[must_use]
    pub fn overlap_policy(&self) -> Overlap {
        self.overlap
    }

    /// The missed-fire policy.
    #[must_use]
    pub fn missed_policy(&self) -> MissedFires {
        self.missed
    }

    /// How late a fire may be and still run as on time (see
    /// [`CronSchedule::starting_deadline`]).
    #[must_use]
    pub fn deadline(&self) -> Duration {
        self.starting_deadline
    }

    pub(crate) fn fired_before(&self) -> Option<Timestamp> {
        self.last_fired
    }

    /// The first fire time strictly after `t` (`None`: the expression never fires again).
    #[must_use]
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let micros = i64::try_from(t.unix_micros()).ok()?;
        let utc = DateTime::<Utc>::from_timestamp_micros(micros)?;
        let local = self.zone.from_utc_datetime(&utc.naive_utc());
        let next = self.cron.find_next_occurrence(&local, false).ok()?;
        let us = next.with_timezone(&Utc).timestamp_micros();
        u64::try_from(us).ok().map(Timestamp::from_unix_micros)
    }

    /// Fire times in `(after, upto]`: how many (at most [`MAX_COUNTED`]) and the latest.
    pub(crate) fn fires_between(
        &self,
        after: Timestamp,
        upto: Timestamp,
    ) -> (u64, Option<Timestamp>) {
        let (mut n, mut last, mut t) = (0, None, after);
        while n < MAX_COUNTED {
            match self.next_after(t) {
                Some(next) if next <= upto => {
                    n += 1;
                    last = Some(next);
                    t = next;
                }
                _ => break,
            }
        }
        (n, last)
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expression, self.zone.name())
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CronSchedule")
            .field("expression", &self.expression)
            .field("time_zone", &self.zone.name())
            .field("overlap", &self.overlap)
            .field("missed", &self.missed)
            .field("starting_deadline", &self.starting_deadline)
            .field("last_fired", &self.last_fired)
            .finish()
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
            && self.zone == other.zone
            && self.overlap == other.overlap
            && self.missed == other.missed
            && self.starting_deadline == other.starting_deadline
            && self.last_fired == other.last_fired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Timestamp {
        let t = DateTime::parse_from_rfc3339(s).expect("rfc3339");
        Timestamp::from_unix_micros(t.timestamp_micros() as u64)
    }

    fn iso(t: Timestamp) -> String {
        DateTime::<Utc>::from_timestamp_micros(t.unix_micros() as i64)
            .expect("in range")
            .to_rfc3339()
    }

    fn fires(c: &CronSchedule, from: &str, n: usize) -> Vec<String> {
        let mut t = utc(from);
        (0..n)
            .map(|_| {
                t = c.next_after(t).expect("fires");
                iso(t)
            })
            .collect()
    }

    #[test]
    fn two_in_the_morning_in_berlin_across_both_dst_changes() {
        let c = CronSchedule::new("0 2 * * *", "Europe/Berlin").expect("valid");
        // Spring forward on 2027-03-28: 02:00 CET does not exist; it fires at 03:00 CEST.
        assert_eq!(
            fires(&c, "2027-03-26T12:00:00Z", 4),
            [
                "2027-03-27T01:00:00+00:00", // 02:00 CET
                "2027-03-28T01:00:00+00:00", // 03:00 CEST, right after the gap
                "2027-03-29T00:00:00+00:00", // 02:00 CEST
                "2027-03-30T00:00:00+00:00",
            ]
        );
        // Fall back on 2027-10-31: 02:00 happens twice; it fires once, at the first.
        assert_eq!(
            fires(&c, "2027-10-29T12:00:00Z", 4),
            [
                "2027-10-30T00:00:00+00:00", // 02:00 CEST
                "2027-10-31T00:00:00+00:00", // the first 02:00 (CEST)
                "2027-11-01T01:00:00+00:00", // 02:00 CET
                "2027-11-02T01:00:00+00:00",
            ]
        );
    }

    #[test]
    fn fires_between_counts_the_missed_times() {
        let c = CronSchedule::new("0 * * * *", "UTC").expect("valid");
        let (n, last) = c.fires_between(utc("2027-01-01T00:30:00Z"), utc("2027-01-01T05:00:00Z"));
        assert_eq!(n, 5);
        assert_eq!(last.map(iso).as_deref(), Some("2027-01-01T05:00:00+00:00"));
        let (n, last) = c.fires_between(utc("2027-01-01T05:00:00Z"), utc("2027-01-01T05:59:59Z"));
        assert_eq!((n, last), (0, None));
    }

    #[test]
    fn bad_input_is_a_typed_error_and_the_serde_form_is_checked() {
        assert!(matches!(
            CronSchedule::new("not cron", "UTC"),
            Err(CronError::Expression { .. })
        ));
        assert_eq!(
            CronSchedule::new("* * * * *", "Nowhere/Land").err(),
            Some(CronError::TimeZone("Nowhere/Land".into()))
        );
        let c = CronSchedule::new("*/5 * * * *", "Asia/Tokyo")
            .expect("valid")
            .overlap(Overlap::QueueOne)
            .missed(MissedFires::RunOnce);
        let json = serde_json::to_string(&c).expect("serialize");
        let back: CronSchedule = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, c);
        let bad = json.replace("Asia/Tokyo", "Asia/Atlantis");
        assert!(serde_json::from_str::<CronSchedule>(&bad).is_err());
    }
}
