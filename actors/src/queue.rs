//! Named queues: their configuration, and the admission counters that bound their length.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::SubmitError;
use crate::job::BoxedJob;
use crate::run::{DEFAULT_QUEUE, RetryPolicy, RunSpec};

/// The configuration of one named queue.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use runwarden_actors::{QueueConfig, SupervisorArguments};
///
/// let media = QueueConfig::limited(2).max_length(1000).timeout(Duration::from_secs(60));
/// let args = SupervisorArguments {
///     queues: vec![("media".to_owned(), media)],
///     ..SupervisorArguments::default()
/// };
/// # let _ = args;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// At most this many of the queue's runs execute at once (`None`: only the global limit).
    pub limit: Option<usize>,
    /// At most this many of the queue's runs wait to start; past it `submit` fails with
    /// [`SubmitError::QueueFull`] (`None`: unbounded).
    pub max_length: Option<usize>,
    /// Time limit of each attempt for runs that set none.
    #[serde(default, with = "crate::serde_duration::opt_millis")]
    pub timeout: Option<Duration>,
    /// Retry policy for runs that set none.
    pub retry: Option<RetryPolicy>,
    /// At most this many of the queue's runs start per time window (`None`: no rate limit).
    #[serde(default)]
    pub rate: Option<RateLimit>,
    /// At most this many runs of one partition key execute at once (`None`: no per-key
    /// limit). Runs without a key are not limited by it.
    #[serde(default)]
    pub per_key: Option<usize>,
    /// A rate limit for each partition key of the queue on its own (`None`: none). Runs
    /// without a key are not limited by it.
    #[serde(default)]
    pub key_rate: Option<RateLimit>,
    /// Priority aging (`None`: none): a waiting run counts one priority higher for every
    /// `aging` it has waited, so runs of low priority are not starved for ever by a steady
    /// stream of higher ones.
    #[serde(default, with = "crate::serde_duration::opt_millis")]
    pub aging: Option<Duration>,
}

/// At most `max` starts per `per`. A run over the limit is not failed: it stays `Queued` until
/// a start is allowed (the run next in line shows when, as its record's `eligible_at`).
///
/// Without a burst it is a sliding window over the last `max` start times: exactly `max`
/// starts in any window of length `per`, so a queue with a backlog starts `max` runs, then
/// the next one exactly `per` after the first of them, and so on.
///
/// With [`RateLimit::burst`] it is a token bucket instead: up to `burst` starts at once after
/// a quiet spell, then one every `per / max` (so a window of length `per` holds at most
/// `max + burst - 1` starts). Use it to smooth a rate (`60 per minute, burst 1` is one a
/// second) or to allow a short burst above the steady rate.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use runwarden_actors::{QueueConfig, RateLimit};
///
/// // An upstream API that allows 100 calls a minute, at most 4 at once.
/// let calls = QueueConfig::limited(4).rate(RateLimit::new(100, Duration::from_secs(60)));
/// assert_eq!(calls.rate.map(|r| r.max), Some(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Starts allowed per window (at least 1).
    pub max: u32,
    /// The window.
    #[serde(with = "crate::serde_duration::millis")]
    pub per: Duration,
    /// With a burst the limit is a token bucket of this size (at least 1), refilled at
    /// `max` per `per`; without, a sliding window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

impl RateLimit {
    /// At most `max` starts (0 is read as 1) in any window of `per`.
    #[must_use]
    pub fn new(max: u32, per: Duration) -> Self {
        RateLimit {
            max: max.max(1),
            per,
            burst: None,
        }
    }

    /// Makes it a token bucket of `burst` starts (0 is read as 1) refilled at `max` per
    /// `per`.
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst.max(1));
        self
    }

    /// The same limit with its numbers made valid (`max` and `burst` at least 1).
    pub(crate) fn normalized(self) -> Self {
        RateLimit {
            max: self.max.max(1),
            per: self.per,
            burst: self.burst.map(|b| b.max(1)),
        }
    }

    /// At most `max` starts per second.
    #[must_use]
    pub fn per_second(max: u32) -> Self {
        Self::new(max, Duration::from_secs(1))
    }
}

impl QueueConfig {
    /// A queue running at most `limit` runs at once.
    #[must_use]
    pub fn limited(limit: usize) -> Self {
        QueueConfig {
            limit: Some(limit),
            ..Default::default()
        }
    }

    /// Bounds the number of waiting runs.
    #[must_use]
    pub fn max_length(mut self, max: usize) -> Self {
        self.max_length = Some(max);
        self
    }

    /// Sets the default time limit.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the default retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Limits how many of the queue's runs start per time window.
    #[must_use]
    pub fn rate(mut self, rate: RateLimit) -> Self {
        self.rate = Some(rate);
        self
    }

    /// Runs at most `limit` runs of one partition key at once (0 is read as 1).
    ///
    /// Whatever the limit, the keys with runs waiting take turns: the next run to start is
    /// the first (by priority, then arrival) of the key whose turn it is, and that key goes
    /// to the back of the line, so a key with a deep backlog cannot starve the others.
    /// Runs without a partition key take their turns as one key of their own.
    #[must_use]
    pub fn per_key(mut self, limit: usize) -> Self {
        self.per_key = Some(limit);
        self
    }

    /// Limits how many runs of each partition key start per time window, each key on its
    /// own (a key held by it waits and the other keys take their turns).
    #[must_use]
    pub fn key_rate(mut self, rate: RateLimit) -> Self {
        self.key_rate = Some(rate);
        self
    }

    /// Ages waiting runs: one priority higher for every `step` waited (a zero step is read
    /// as 1 ms). The order this gives does not change while runs wait: a run of priority
    /// `p` submitted at `t` goes before one of `p + 1` submitted after `t + step`.
    #[must_use]
    pub fn aging(mut self, step: Duration) -> Self {
        self.aging = Some(step);
        self
    }
}

/// What a rate limit applies to, for [`crate::SupervisorMessage::SetRate`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "scope", content = "name")]
pub enum RateScope {
    /// All of one queue's runs together.
    Queue(String),
    /// Each partition key of one queue on its own ([`QueueConfig::key_rate`]).
    EachKey(String),
    /// The runs of one kind, over all queues: every run whose label is this (a run submitted
    /// by kind has its kind as its label).
    Kind(String),
}

const UNBOUNDED: usize = usize::MAX;

#[derive(Debug)]
struct Entry {
    name: String,
    timeout: Option<Duration>,
    retry: Option<RetryPolicy>,
    max_length: AtomicUsize,
    waiting: AtomicUsize,
}

/// The queues of one supervisor, shared (read-only but for two counters per queue) by the
/// supervisor and its submitters.
///
/// `waiting` counts runs admitted to a queue that have not started yet; it is what
/// `max_length` bounds. A submitter takes a slot with one compare-and-swap, and the slot is a
/// [`QueueSlot`] value that travels with the run and gives the place back when dropped: when
/// the run starts, or is cancelled, refused or drained before starting. No path can forget it.
#[derive(Debug)]
pub(crate) struct QueueTable {
    entries: Vec<Entry>,
    by_name: HashMap<String, usize>,
}

impl QueueTable {
    /// Builds the table; the default queue is always present.
    pub(crate) fn new(configs: &[(String, QueueConfig)]) -> Arc<Self> {
        let mut table = QueueTable {
            entries: Vec::new(),
            by_name: HashMap::new(),
        };
        let mut add = |name: &str, c: &QueueConfig| {
            if table.by_name.contains_key(name) {
                return;
            }
            table.by_name.insert(name.to_owned(), table.entries.len());
            table.entries.push(Entry {
                name: name.to_owned(),
                timeout: c.timeout,
                retry: c.retry,
                max_length: AtomicUsize::new(c.max_length.unwrap_or(UNBOUNDED)),
                waiting: AtomicUsize::new(0),
            });
        };
        for (name, c) in configs {
            add(name, c);
        }
        add(DEFAULT_QUEUE, &QueueConfig::default());
        Arc::new(table)
    }

    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub(crate) fn name(&self, idx: usize) -> &str {
        &self.entries[idx].name
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn waiting(&self, idx: usize) -> usize {
        self.entries[idx].waiting.load(Ordering::Relaxed)
    }

    pub(crate) fn set_max_length(&self, idx: usize, max: Option<usize>) {
        self.entries[idx]
            .max_length
            .store(max.unwrap_or(UNBOUNDED), Ordering::Relaxed);
    }

    /// Fills in the queue's defaults, checks the job fits the spec, and takes a slot.
    pub(crate) fn admit(
        self: &Arc<Self>,
        spec: &mut RunSpec,
        job: &BoxedJob,
    ) -> Result<QueueSlot, SubmitError> {
        let idx = self
            .index(spec.queue_name())
            .ok_or_else(|| SubmitError::UnknownQueue(spec.queue_name().to_owned()))?;
        let entry = &self.entries[idx];
        if spec.timeout.is_none() {
            spec.timeout = entry.timeout;
        }
        if spec.retry.is_none() {
            spec.retry = entry.retry;
        }
        if spec.retry.is_some_and(|r| r.max_attempts > 1) && !job.is_repeatable() {
            return Err(SubmitError::NotRepeatable);
        }
        let max = entry.max_length.load(Ordering::Relaxed);
        entry
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < max).then_some(w + 1)
            })
            .map_err(|_| SubmitError::QueueFull {
                queue: entry.name.clone(),
            })?;
        Ok(QueueSlot {
            table: self.clone(),
            idx,
        })
    }
}

/// A run's place in its queue's length bound; dropping it gives the place back.
pub struct QueueSlot {
    table: Arc<QueueTable>,
    idx: usize,
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.table.entries[self.idx]
            .waiting
            .fetch_sub(1, Ordering::AcqRel);
    }
}

impl fmt::Debug for QueueSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("QueueSlot")
            .field(&self.table.name(self.idx))
            .finish()
    }
}
