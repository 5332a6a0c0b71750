//! The registry's counters ([`RunMetrics`]), updated by the transitions it accepts.

use std::sync::Arc;

use crate::hash::IdMap;
use crate::metrics::{MetricSeries, MinuteCounts, RunMetrics, terminal_index};
use crate::run::{CancelKind, ErrorKind, FailureKind, Outcome, RunId, Transition};
use crate::time::Timestamp;

use super::records::Stored;

const MINUTE_MICROS: u64 = 60_000_000;

/// What a transition was, read before it is applied (the transition itself is consumed).
#[derive(Debug, Clone, Copy)]
pub(super) enum Seen {
    Released(Timestamp),
    /// A start; `first` when the run had never started before.
    Started {
        at: Timestamp,
        first: bool,
    },
    Retried {
        timed_out: bool,
    },
    Snoozed,
    Recovered,
    Finished {
        timed_out: bool,
        forced: bool,
    },
}

impl Seen {
    /// What `t` is; `first_start` says whether the run had started before (read only for
    /// starts).
    pub(super) fn of(t: &Transition, first_start: impl FnOnce() -> bool) -> Seen {
        match t {
            Transition::Released { at } => Seen::Released(*at),
            Transition::Started { at } => Seen::Started {
                at: *at,
                first: first_start(),
            },
            Transition::RetryScheduled { error, .. } => Seen::Retried {
                timed_out: error.kind == ErrorKind::TimedOut,
            },
            Transition::Snoozed { .. } => Seen::Snoozed,
            Transition::Recovered { .. } => Seen::Recovered,
            Transition::Finished { outcome, .. } => Seen::Finished {
                timed_out: matches!(
                    outcome,
                    Outcome::Failed {
                        kind: FailureKind::TimedOut,
                        ..
                    }
                ),
                forced: matches!(
                    outcome,
                    Outcome::Cancelled {
                        kind: CancelKind::GraceExpired,
                        ..
                    }
                ),
            },
        }
    }
}

/// The counters, one series per queue and kind, and a ring of the last hour's minutes.
#[derive(Debug, Default)]
pub(super) struct Tally {
    /// Few (queues × kinds): searched in order, the queue compared by pointer first (queue
    /// names are interned by the records).
    series: Vec<MetricSeries>,
    /// Runs released from waiting and not started yet: their queue wait counts from then.
    released: IdMap<RunId, Timestamp>,
    /// `RECENT_MINUTES` slots: the minute (since the epoch) a slot holds, and its counts.
    recent: Vec<(u64, [u64; 3])>,
}

impl Tally {
    fn series(&mut self, queue: &Arc<str>, kind: Option<&str>) -> &mut MetricSeries {
        let found = self.series.iter().position(|s| {
            (Arc::ptr_eq(&s.queue, queue) || *s.queue == **queue) && s.kind.as_deref() == kind
        });
        let i = match found {
            Some(i) => i,
            None => {
                self.series
                    .push(MetricSeries::new(queue.clone(), kind.map(Arc::from)));
                self.series.len() - 1
            }
        };
        &mut self.series[i]
    }

    /// Counts an accepted transition of `r` (already applied: `r` is the record after it).
    pub(super) fn saw(&mut self, r: &Stored, seen: Seen) {
        let queue = r.shared_queue();
        // A kind named "" would export the same labels as runs of a closure: one series.
        let kind = r.kind().filter(|k| !k.is_empty());
        match seen {
            Seen::Released(at) => {
                self.released.insert(r.id(), at);
            }
            Seen::Started { at, first } => {
                let released = self.released.remove(&r.id());
                if first {
                    let since = released.unwrap_or(r.created_at());
                    let wait = at.saturating_duration_since(since).as_secs_f64();
                    self.series(queue, kind).queue_wait.observe(wait);
                }
            }
            Seen::Retried { timed_out } => {
                let s = self.series(queue, kind);
                s.retries += 1;
                s.timeouts += u64::from(timed_out);
            }
            Seen::Snoozed => self.series(queue, kind).snoozes += 1,
            Seen::Recovered => self.series(queue, kind).recoveries += 1,
            Seen::Finished { timed_out, forced } => {
                let status = r.status();
                let Some(i) = terminal_index(status) else {
                    return;
                };
                if !self.released.is_empty() {
                    self.released.remove(&r.id());
                }
                let started = r.started_at().is_some();
                let duration = r.duration_ms().unwrap_or(0.0) / 1000.0;
                let s = self.series(queue, kind);
                s.finished[i] += 1;
                s.timeouts += u64::from(timed_out);
                s.forced_stops += u64::from(forced);
                if started {
                    s.duration[i].observe(duration);
                }
                let at = r.finished_at().unwrap_or_else(Timestamp::now);
                self.count_minute(at, i);
            }
        }
    }

    fn count_minute(&mut self, at: Timestamp, i: usize) {
        if self.recent.is_empty() {
            self.recent = vec![(u64::MAX, [0; 3]); RunMetrics::RECENT_MINUTES];
        }
        let minute = at.unix_micros() / MINUTE_MICROS;
        let slot = &mut self.recent[(minute % RunMetrics::RECENT_MINUTES as u64) as usize];
        if slot.0 != minute {
            // A run's end can carry a time slightly before a later one's: an older minute than
            // the slot's is counted into nothing rather than wiping the newer minute.
            if slot.0 != u64::MAX && slot.0 > minute {
                return;
            }
            *slot = (minute, [0; 3]);
        }
        slot.1[i] += 1;
    }

    /// The counters now, with the last hour's minutes up to `now`.
    pub(super) fn snapshot(&self, now: Timestamp) -> RunMetrics {
        let current = now.unix_micros() / MINUTE_MICROS;
        let n = RunMetrics::RECENT_MINUTES as u64;
        let recent = (0..n)
            .rev()
            .filter_map(|back| current.checked_sub(back))
            .map(|minute| {
                let finished = self
                    .recent
                    .get((minute % n) as usize)
                    .filter(|slot| slot.0 == minute)
                    .map_or([0; 3], |slot| slot.1);
                MinuteCounts {
                    minute: Timestamp::from_unix_micros(minute * MINUTE_MICROS),
                    finished,
                }
            })
            .collect();
        RunMetrics {
            series: self.series.clone(),
            recent,
        }
    }
}
