//! The supervisor's run queues: the runs waiting for a slot, one lane per named queue ordered
//! by priority then arrival within each partition key, keys taking turns, and what decides
//! which starts next: the global, per-queue and per-key concurrency limits, a queue's rate
//! limit, and whether it is paused.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use tokio::time::Instant;

use crate::error::UnknownQueue;
use crate::protocol::run::PreparedRun;
use crate::protocol::supervisor::QueueStatus;
use crate::queue::{QueueConfig, QueueTable, RateLimit};
use crate::run::DEFAULT_QUEUE;

/// Queue order within a key: higher priority first, then arrival order.
pub(super) type QueueKey = (Reverse<i32>, u64);

/// A run's partition key in its lane: runs of one key share the per-key limit and take one
/// turn; runs without a key are one group of their own, which no per-key limit holds.
pub(super) type Part = Option<Arc<str>>;

/// Where a queued run waits: its lane, its key's group, and its place in the group.
#[derive(Debug, Clone)]
pub(super) struct Place {
    pub(super) queue: usize,
    pub(super) part: Part,
    pub(super) key: QueueKey,
}

/// The runs of one partition key in a lane.
#[derive(Default)]
struct Group {
    waiting: BTreeMap<QueueKey, Box<PreparedRun>>,
    running: usize,
    /// It has an entry in its lane's `turns` (which may have gone stale: see `Lane::head`).
    has_turn: bool,
}

/// One named queue's waiting runs and its count of running ones.
struct Lane {
    limit: Option<usize>,
    running: usize,
    waiting: usize,
    /// Runs without a partition key.
    plain: Group,
    /// Runs by partition key; a key's group goes when it has no run left.
    keyed: HashMap<Arc<str>, Group>,
    /// The groups whose turn comes, next first. Every group that could start a run has an
    /// entry; an entry whose group cannot (nothing waits, or its key is at its limit) is
    /// dropped when it reaches the front.
    turns: VecDeque<Part>,
    per_key: Option<usize>,
    /// Nothing new starts while paused (submits are still accepted).
    paused: bool,
    rate: Option<RateLimit>,
    /// With a rate limit: the last `rate.max` start times, oldest first.
    starts: VecDeque<Instant>,
}

impl Lane {
    fn new(config: Option<&QueueConfig>) -> Self {
        Lane {
            limit: config.and_then(|c| c.limit).map(|l| l.max(1)),
            running: 0,
            waiting: 0,
            plain: Group::default(),
            keyed: HashMap::new(),
            turns: VecDeque::new(),
            per_key: config.and_then(|c| c.per_key).map(|l| l.max(1)),
            paused: false,
            rate: config
                .and_then(|c| c.rate)
                .map(|r| RateLimit::new(r.max, r.per)),
            starts: VecDeque::new(),
        }
    }

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

    fn group(&self, part: &Part) -> Option<&Group> {
        match part {
            None => Some(&self.plain),
            Some(k) => self.keyed.get(k),
        }
    }

    fn group_mut(&mut self, part: &Part) -> Option<&mut Group> {
        match part {
            None => Some(&mut self.plain),
            Some(k) => self.keyed.get_mut(k),
        }
    }

    fn group_or_new(&mut self, part: &Part) -> &mut Group {
        match part {
            None => &mut self.plain,
            Some(k) => self.keyed.entry(k.clone()).or_default(),
        }
    }

    /// Whether the group `part` has room under the per-key limit.
    fn key_has_room(&self, part: &Part, group: &Group) -> bool {
        part.is_none() || self.per_key.is_none_or(|l| group.running < l)
    }

    /// Whether the group `part` could start its first waiting run (lane limits aside).
    fn could_start(&self, part: &Part) -> bool {
        self.group(part)
            .is_some_and(|g| !g.waiting.is_empty() && self.key_has_room(part, g))
    }

    /// Gives `part` a turn at the back if it could start a run and has none.
    fn give_turn(&mut self, part: &Part) {
        if !self.could_start(part) {
            return;
        }
        if let Some(g) = self.group_mut(part)
            && !g.has_turn
        {
            g.has_turn = true;
            self.turns.push_back(part.clone());
        }
    }

    /// Drops a keyed group that holds nothing and has no turn.
    fn forget_if_idle(&mut self, part: &Part) {
        if let Some(k) = part
            && self
                .keyed
                .get(k)
                .is_some_and(|g| g.waiting.is_empty() && g.running == 0 && !g.has_turn)
        {
            self.keyed.remove(k);
        }
    }

    /// The place of the run that starts next in this lane: the first of the group whose
    /// turn it is, after dropping turns that went stale.
    fn head(&mut self) -> Option<QueueKey> {
        loop {
            let part = self.turns.front()?.clone();
            if self.could_start(&part) {
                return self.group(&part)?.waiting.keys().next().copied();
            }
            self.turns.pop_front();
            if let Some(g) = self.group_mut(&part) {
                g.has_turn = false;
            }
            self.forget_if_idle(&part);
        }
    }

    /// Takes the run [`Lane::head`] named; its group goes to the back of the turns.
    fn pop_head(&mut self) -> Option<Box<PreparedRun>> {
        let part = self.turns.pop_front()?;
        let g = self.group_mut(&part)?;
        g.has_turn = false;
        let (_, run) = g.waiting.pop_first()?;
        self.waiting -= 1;
        self.give_turn(&part);
        Some(run)
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
                Lane::new(config)
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

    /// Whether `run`, of lane `q`, may start now, ahead of nobody: none waits in its lane,
    /// the lane is open (not paused, its rate allows it) and the limits (global, the lane's,
    /// its key's) have room, with `running` runs running over all lanes.
    pub(super) fn may_start_now(&self, q: usize, run: &PreparedRun, running: usize) -> bool {
        let lane = &self.lanes[q];
        lane.waiting == 0
            && self.global_limit.is_none_or(|l| running < l)
            && lane.under_limit()
            && lane
                .group(&run.partition)
                .is_none_or(|g| lane.key_has_room(&run.partition, g))
            && lane.open_at(Instant::now())
    }

    /// Puts `run` at the back of its priority among its key's runs in lane `q`; returns its
    /// place.
    pub(super) fn push(&mut self, q: usize, run: Box<PreparedRun>) -> Place {
        let key = (Reverse(run.priority), self.next_seq);
        self.next_seq += 1;
        let part = run.partition.clone();
        let lane = &mut self.lanes[q];
        lane.group_or_new(&part).waiting.insert(key, run);
        lane.waiting += 1;
        lane.give_turn(&part);
        Place {
            queue: q,
            part,
            key,
        }
    }

    /// Takes the run at `place` out of its lane; whether it was there.
    pub(super) fn remove(&mut self, place: &Place) -> bool {
        let lane = &mut self.lanes[place.queue];
        let found = lane
            .group_mut(&place.part)
            .and_then(|g| g.waiting.remove(&place.key))
            .is_some();
        if found {
            lane.waiting -= 1;
            lane.forget_if_idle(&place.part);
        }
        found
    }

    /// The run that should start next, with `running` runs running over all lanes: among
    /// lanes under their limit, the head (the first run of the key whose turn it is) with
    /// the highest priority, then the earliest.
    pub(super) fn pop_next(&mut self, running: usize) -> Option<(usize, Box<PreparedRun>)> {
        if self.global_limit.is_some_and(|l| running >= l) {
            return None;
        }
        let now = Instant::now();
        let mut best: Option<(QueueKey, usize)> = None;
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            if lane.waiting == 0 || !lane.under_limit() || !lane.open_at(now) {
                continue;
            }
            if let Some(head) = lane.head()
                && best.is_none_or(|(b, _)| head < b)
            {
                best = Some((head, i));
            }
        }
        let (_, q) = best?;
        let run = self.lanes[q].pop_head()?;
        Some((q, run))
    }

    /// A run of lane `q` and key `part` is getting a worker.
    pub(super) fn started(&mut self, q: usize, part: &Part) {
        let lane = &mut self.lanes[q];
        lane.running += 1;
        lane.group_or_new(part).running += 1;
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
            .filter(|lane| lane.waiting > 0 && !lane.paused && lane.under_limit())
            .map(|lane| lane.rate_allows_at(now))
            .filter(|at| *at > now)
            .min()
    }

    fn lane_named(&mut self, name: &str) -> Result<&mut Lane, UnknownQueue> {
        let q = self
            .table
            .index(name)
            .ok_or_else(|| UnknownQueue(name.to_owned()))?;
        Ok(&mut self.lanes[q])
    }

    /// Pauses (`true`) or resumes a queue: while paused nothing of it starts, submits are
    /// still accepted, and running runs go on.
    pub(super) fn set_paused(&mut self, name: &str, paused: bool) -> Result<(), UnknownQueue> {
        self.lane_named(name)?.paused = paused;
        Ok(())
    }

    /// Sets or lifts (`None`) a queue's rate limit; starts already made count against the new
    /// one.
    pub(super) fn set_rate(
        &mut self,
        name: &str,
        rate: Option<RateLimit>,
    ) -> Result<(), UnknownQueue> {
        let lane = self.lane_named(name)?;
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

    /// A worker of lane `q` and key `part` exited (or could not be started).
    pub(super) fn stopped(&mut self, q: usize, part: &Part) {
        let lane = &mut self.lanes[q];
        lane.running -= 1;
        if let Some(g) = lane.group_mut(part) {
            g.running -= 1;
        }
        lane.give_turn(part);
        lane.forget_if_idle(part);
    }

    /// Sets or lifts (`None`) a queue's per-key limit; 0 is read as 1.
    pub(super) fn set_per_key(
        &mut self,
        name: &str,
        limit: Option<usize>,
    ) -> Result<(), UnknownQueue> {
        let lane = self.lane_named(name)?;
        lane.per_key = limit.map(|l| l.max(1));
        // A raised limit lets keys start that were held at the old one.
        let held: Vec<Part> = lane
            .keyed
            .iter()
            .filter(|(_, g)| !g.has_turn && !g.waiting.is_empty())
            .map(|(k, _)| Some(k.clone()))
            .collect();
        for part in &held {
            lane.give_turn(part);
        }
        Ok(())
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
                queued: lane.waiting,
                running: lane.running,
                admitted_waiting: self.table.waiting(i),
                paused: lane.paused,
                rate: lane.rate,
                per_key: lane.per_key,
                keys: lane.keyed.len(),
            })
            .collect()
    }
}
