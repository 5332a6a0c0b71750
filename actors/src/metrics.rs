//! What the registry counts as runs move: finished runs by status, queue and kind, retries,
//! time limits, forced stops, recoveries, and histograms of run duration and queue wait.
//!
//! The registry updates these on every transition it accepts, so they agree with its records:
//! a run counted `failed` here is a record the registry holds (or held, before retention) as
//! `Failed`. They are counters of this process: they start at zero when the registry starts
//! (a store's old records are not counted again) and, unlike the per-status record counts of
//! [`RegistryStats`](crate::RegistryStats), never fall when retention prunes.

use std::sync::Arc;

use crate::run::RunStatus;
use crate::time::Timestamp;

/// Upper bounds, in seconds, of the histograms' buckets (a last bucket, `+Inf`, takes the
/// rest): from a millisecond to an hour.
pub const BUCKET_BOUNDS: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 3600.0,
];

/// A histogram over [`BUCKET_BOUNDS`]: how many observations fell in each bucket, their sum
/// and their count. A value `v` falls in the first bucket whose bound is `>= v` (Prometheus'
/// `le`).
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    counts: [u64; BUCKET_BOUNDS.len() + 1],
    sum: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: [0; BUCKET_BOUNDS.len() + 1],
            sum: 0.0,
        }
    }
}

impl Histogram {
    /// Adds one observation of `secs` seconds (a negative or NaN value counts as zero).
    pub fn observe(&mut self, secs: f64) {
        let secs = if secs.is_nan() { 0.0 } else { secs.max(0.0) };
        let bucket = BUCKET_BOUNDS.partition_point(|&bound| bound < secs);
        self.counts[bucket] += 1;
        self.sum += secs;
    }

    /// Observations so far.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Their sum, in seconds.
    #[must_use]
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Each bucket's upper bound (the last is `f64::INFINITY`) with the observations at or
    /// below it: Prometheus' cumulative `_bucket{le=..}` series.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = BUCKET_BOUNDS.iter().copied().chain([f64::INFINITY]);
        bounds.zip(self.counts.iter().scan(0u64, |total, n| {
            *total += n;
            Some(*total)
        }))
    }

    /// The bucket holding the `q` quantile (`0 < q <= 1`): its lower and upper bound, in
    /// seconds. The quantile is the observation of rank `ceil(q × count)`. `None` when empty.
    #[must_use]
    pub fn quantile_bucket(&self, q: f64) -> Option<(f64, f64)> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut lower = 0.0;
        for (upper, seen) in self.cumulative() {
            if seen >= rank {
                return Some((lower, upper));
            }
            lower = upper;
        }
        None
    }

    /// Adds every observation of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.sum += other.sum;
    }
}

/// The counts of one queue and kind: every run of that queue submitted with that kind
/// (`kind: None` for runs of a closure).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    /// The queue.
    pub queue: Arc<str>,
    /// The job kind, if the runs have one.
    pub kind: Option<Arc<str>>,
    /// Runs that ended `Completed`, `Failed` and `Cancelled`, in that order.
    pub finished: [u64; 3],
    /// Failed attempts followed by another attempt.
    pub retries: u64,
    /// Attempts that hit their time limit (whether a retry followed or the run failed).
    pub timeouts: u64,
    /// Cancelled runs whose job did not stop within the grace period and was dropped.
    pub forced_stops: u64,
    /// Interrupted attempts queued again after a crash.
    pub recoveries: u64,
    /// Snoozes (a job asking to run again later).
    pub snoozes: u64,
    /// Run duration of runs that started, from the first start to the end (the record's
    /// `duration_ms`), by terminal status in the order of `finished`.
    pub duration: [Histogram; 3],
    /// Queue wait: from submit (for a run with dependencies, from its release) to its first
    /// start.
    pub queue_wait: Histogram,
}

/// The index of a terminal status in [`MetricSeries::finished`] and
/// [`MetricSeries::duration`]; `None` for an active status.
#[must_use]
pub fn terminal_index(status: RunStatus) -> Option<usize> {
    match status {
        RunStatus::Completed => Some(0),
        RunStatus::Failed => Some(1),
        RunStatus::Cancelled => Some(2),
        _ => None,
    }
}

impl MetricSeries {
    /// An empty series for this queue and kind.
    #[must_use]
    pub fn new(queue: Arc<str>, kind: Option<Arc<str>>) -> Self {
        MetricSeries {
            queue,
            kind,
            finished: [0; 3],
            retries: 0,
            timeouts: 0,
            forced_stops: 0,
            recoveries: 0,
            snoozes: 0,
            duration: Default::default(),
            queue_wait: Histogram::default(),
        }
    }

    /// Runs that ended with `status` (0 for an active status).
    #[must_use]
    pub fn ended(&self, status: RunStatus) -> u64 {
        terminal_index(status).map_or(0, |i| self.finished[i])
    }
}

/// How many runs ended in one minute, by terminal status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCounts {
    /// The start of the minute.
    pub minute: Timestamp,
    /// Runs that ended `Completed`, `Failed` and `Cancelled` in it.
    pub finished: [u64; 3],
}

/// The registry's counters: one [`MetricSeries`] per queue and kind seen, and the runs that
/// ended in each of the last [`RunMetrics::RECENT_MINUTES`] minutes.
#[derive(Debug, Clone, PartialEq)]
pub struct RunMetrics {
    /// One per queue and kind, in the order they were first seen.
    pub series: Vec<MetricSeries>,
    /// The last [`RunMetrics::RECENT_MINUTES`] minutes, oldest first, the current one last
    /// (minutes in which nothing ended are there, with zeros).
    pub recent: Vec<MinuteCounts>,
}

impl RunMetrics {
    /// How many minutes [`RunMetrics::recent`] covers.
    pub const RECENT_MINUTES: usize = 60;

    /// Runs that ended with `status`, over every series.
    #[must_use]
    pub fn ended(&self, status: RunStatus) -> u64 {
        self.series.iter().map(|s| s.ended(status)).sum()
    }

    /// The run-duration histogram of every run that ended with `status`, over every series.
    #[must_use]
    pub fn duration(&self, status: RunStatus) -> Histogram {
        let mut all = Histogram::default();
        if let Some(i) = terminal_index(status) {
            for s in &self.series {
                all.merge(&s.duration[i]);
            }
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_fall_in_the_first_bucket_at_or_above_them() {
        let mut h = Histogram::default();
        for v in [0.0, 0.001, 0.0011, 0.25, 3600.0, 7200.0, f64::NAN, -1.0] {
            h.observe(v);
        }
        let buckets: Vec<(f64, u64)> = h.cumulative().collect();
        assert_eq!(buckets.len(), BUCKET_BOUNDS.len() + 1);
        // 0, 0.001, NaN and -1 are at most 1 ms.
        assert_eq!(buckets[0], (0.001, 4));
        assert_eq!(buckets[1], (0.0025, 5));
        assert_eq!(buckets[7], (0.25, 6));
        assert_eq!(buckets[BUCKET_BOUNDS.len() - 1], (3600.0, 7));
        assert_eq!(buckets[BUCKET_BOUNDS.len()], (f64::INFINITY, 8));
        assert_eq!(h.count(), 8);
        assert!((h.sum() - (0.001 + 0.0011 + 0.25 + 3600.0 + 7200.0)).abs() < 1e-9);
    }

    #[test]
    fn a_quantile_is_found_in_its_bucket() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_bucket(0.99), None);
        // 98 fast observations and 2 slow ones: the 99th of 100 is slow.
        for _ in 0..98 {
            h.observe(0.003);
        }
        h.observe(2.0);
        h.observe(2.0);
        assert_eq!(h.quantile_bucket(0.5), Some((0.0025, 0.005)));
        assert_eq!(h.quantile_bucket(0.98), Some((0.0025, 0.005)));
        assert_eq!(h.quantile_bucket(0.99), Some((1.0, 2.5)));
        assert_eq!(h.quantile_bucket(1.0), Some((1.0, 2.5)));
    }
}
