//! The supervisor's run queues: the runs waiting for a slot, one lane per named queue ordered
//! by priority then arrival, and what decides which starts next: the global and per-queue
//! concurrency limits, a queue's rate limit, and whether it is paused.

use std::cmp::Reverse;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tokio::time::Instant;

use crate::error::UnknownQueue;
use crate::protocol::run::PreparedRun;
use crate::protocol::supervisor::QueueStatus;
use crate::queue::{QueueConfig, QueueTable, RateLimit};
use crate::run::DEFAULT_QUEUE;

use super::runs::QueueKey;

/// One named queue's waiting runs and its count of running ones.
struct Lane {
    limit: Option<usize>,
    running: usize,
    waiting: BTreeMap<QueueKey, Box<PreparedRun>>,
    /// Nothing new starts while paused (submits are still accepted).
    paused: bool,
    rate: Option<RateLimit>,
    /// With a rate limit: the last `rate.max` start times, oldest first.
    starts: VecDeque<Instant>,
}

impl Lane {
    /// When the rate limit allows the next start (`now` or earlier if it allows one now).
    fn rate_allows_at(&self, now: Instant) -> Instant {
        match self.rate {
            Some(r) if self.starts.len() >= r.max as usize => {
                self.starts.front().map_or(now, |first| *first + r.per)
            }
            _ => now,
        }
    }

    /// Whether a run of this lane may start at `now`, concurrency limits aside.
    fn open_at(&self, now: Instant) -> bool {
        !self.paused && self.rate_allows_at(now) <= now
    }

    fn under_limit(&self) -> bool {
        self.limit.is_none_or(|l| self.running < l)
    }
}

/// Every queue's waiting runs and limits.
///
/// Architecture invariant: between two supervisor messages no waiting run could start (every
/// message ends by starting what the limits allow), so a run arriving at a lane with nobody
/// waiting and room to spare may start at once without entering the lane.
pub(super) struct Queues {
    table: Arc<QueueTable>,
    lanes: Vec<Lane>,
    global_limit: Option<usize>,
    /// Arrival order within a priority, for queue keys.
    next_seq: u64,
}

impl Queues {
    /// Lanes for the table built from `configs` (the default queue included); limits and rate
    /// limits of 0 are read as 1.
    pub(super) fn new(configs: &[(String, QueueConfig)], global_limit: Option<usize>) -> Self {
        let table = QueueTable::new(configs);
        let lanes = (0..table.len())
            .map(|i| {
                let config = configs
                    .iter()
                    .find(|(name, _)| name == table.name(i))
                    .map(|(_, c)| c);
                Lane {
                    limit: config.and_then(|c| c.limit).map(|l| l.max(1)),
                    running: 0,
                    waiting: BTreeMap::new(),
                    paused: false,
                    rate: config
                        .and_then(|c| c.rate)
                        .map(|r| RateLimit::new(r.max, r.per)),
                    starts: VecDeque::new(),
                }
            })
            .collect();
        Queues {
            table,
            lanes,
            global_limit: global_limit.map(|l| l.max(1)),
            next_seq: 0,
        }
    }

    /// The admission table the submitters share.
    pub(super) fn table(&self) -> &Arc<QueueTable> {
        &self.table
    }

    pub(super) fn global_limit(&self) -> Option<usize> {
        self.global_limit
    }

    /// The lane of a run's queue. A queue unknown here can only come from a record written
    /// with another configuration (recovery); it runs in the default queue.
    pub(super) fn lane_of(&self, run: &PreparedRun) -> usize {
        self.table.index(&run.queue).unwrap_or_else(|| {
            tracing::warn!(run_id = %run.id, queue = %run.queue, "unknown queue; using the default queue");
            self.table.index(DEFAULT_QUEUE).unwrap_or(0)
        })
    }

    /// Whether a run of lane `q` may start now, ahead of nobody: none waits in its lane, the
    /// lane is open (not paused, its rate allows it) and the limits have room, with `running`
    /// runs running over all lanes.
    pub(super) fn may_start_now(&self, q: usize, running: usize) -> bool {
        let lane = &self.lanes[q];
        lane.waiting.is_empty()
            && self.global_limit.is_none_or(|l| running < l)
            && lane.under_limit()
            && lane.open_at(Instant::now())
    }

    /// Puts `run` at the back of its priority in lane `q`; returns its place.
    pub(super) fn push(&mut self, q: usize, run: Box<PreparedRun>) -> QueueKey {
        let key = (Reverse(run.priority), self.next_seq);
        self.next_seq += 1;
        self.lanes[q].waiting.insert(key, run);
        key
    }

    /// Takes the run at `key` out of lane `q`; whether it was there.
    pub(super) fn remove(&mut self, q: usize, key: &QueueKey) -> bool {
        self.lanes[q].waiting.remove(key).is_some()
    }

    /// The run that should start next, with `running` runs running over all lanes: among
    /// lanes under their limit, the head with the highest priority, then the earliest.
    pub(super) fn pop_next(&mut self, running: usize) -> Option<(usize, Box<PreparedRun>)> {
        if self.global_limit.is_some_and(|l| running >= l) {
            return None;
        }
        let now = Instant::now();
        let q = self
            .lanes
            .iter()
            .enumerate()
            .filter(|(_, lane)| lane.under_limit() && lane.open_at(now))
            .filter_map(|(i, lane)| lane.waiting.keys().next().map(|k| (*k, i)))
            .min()
            .map(|(_, i)| i)?;
        let (_, run) = self.lanes[q].waiting.pop_first()?;
        Some((q, run))
    }

    /// A run of lane `q` got a worker.
    pub(super) fn started(&mut self, q: usize) {
        let lane = &mut self.lanes[q];
        lane.running += 1;
        if let Some(r) = lane.rate {
            lane.starts.push_back(Instant::now());
            while lane.starts.len() > r.max as usize {
                lane.starts.pop_front();
            }
        }
    }

    /// The earliest time a waiting run that only a rate limit holds back may start: when the
    /// supervisor should look again (`None`: no run waits for a rate limit alone).
    pub(super) fn next_rate_due(&self) -> Option<Instant> {
        let now = Instant::now();
        self.lanes
            .iter()
            .filter(|lane| !lane.waiting.is_empty() && !lane.paused && lane.under_limit())
            .map(|lane| lane.rate_allows_at(now))
            .filter(|at| *at > now)
            .min()
    }

    /// Pauses (`true`) or resumes a queue: while paused nothing of it starts, submits are
    /// still accepted, and running runs go on.
    pub(super) fn set_paused(&mut self, name: &str, paused: bool) -> Result<(), UnknownQueue> {
        let q = self
            .table
            .index(name)
            .ok_or_else(|| UnknownQueue(name.to_owned()))?;
        self.lanes[q].paused = paused;
        Ok(())
    }

    /// Sets or lifts (`None`) a queue's rate limit; starts already made count against the new
    /// one.
    pub(super) fn set_rate(
        &mut self,
        name: &str,
        rate: Option<RateLimit>,
    ) -> Result<(), UnknownQueue> {
        let q = self
            .table
            .index(name)
            .ok_or_else(|| UnknownQueue(name.to_owned()))?;
        let lane = &mut self.lanes[q];
        lane.rate = rate.map(|r| RateLimit::new(r.max, r.per));
        match lane.rate {
            Some(r) => {
                while lane.starts.len() > r.max as usize {
                    lane.starts.pop_front();
                }
            }
            None => lane.starts.clear(),
        }
        Ok(())
    }

    /// A worker of lane `q` exited.
    pub(super) fn stopped(&mut self, q: usize) {
        self.lanes[q].running -= 1;
    }

    /// Sets the global limit (`queue` `None`) or a queue's; `None` lifts it, 0 is read as 1.
    pub(super) fn set_limit(
        &mut self,
        queue: Option<String>,
        limit: Option<usize>,
    ) -> Result<(), UnknownQueue> {
        let limit = limit.map(|l| l.max(1));
        match queue {
            None => self.global_limit = limit,
            Some(name) => {
                let q = self.table.index(&name).ok_or(UnknownQueue(name))?;
                self.lanes[q].limit = limit;
            }
        }
        Ok(())
    }

    /// Sets a queue's bound on admitted, not yet started runs (`None`: unbounded).
    pub(super) fn set_max_length(
        &self,
        name: String,
        max: Option<usize>,
    ) -> Result<(), UnknownQueue> {
        let q = self.table.index(&name).ok_or(UnknownQueue(name))?;
        self.table.set_max_length(q, max);
        Ok(())
    }

    /// Every queue's limit and counts.
    pub(super) fn status(&self) -> Vec<QueueStatus> {
        self.lanes
            .iter()
            .enumerate()
            .map(|(i, lane)| QueueStatus {
                name: self.table.name(i).to_owned(),
                limit: lane.limit,
                queued: lane.waiting.len(),
                running: lane.running,
                admitted_waiting: self.table.waiting(i),
                paused: lane.paused,
                rate: lane.rate,
            })
            .collect()
    }
}
