//! The supervisor's run queues: the runs waiting for a slot, one lane per named queue ordered
//! by priority (optionally aged) then arrival within each partition key, keys taking turns,
//! and what decides which starts next: the global, per-queue and per-key concurrency limits,
//! the rate limits of queues, keys and kinds, and whether a queue is paused.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::rates::{KeyWindows, KindRate, KindRates, Window};
use crate::error::UnknownQueue;
use crate::protocol::run::PreparedRun;
use crate::protocol::supervisor::{KindRateStatus, QueueStatus, Release};
use crate::queue::{QueueConfig, QueueTable, RateLimit, RateScope};
use crate::run::{DEFAULT_QUEUE, RunId};

/// Queue order within a key: rank, then arrival. The rank is minus the priority, or with
/// aging the arrival time (in microseconds) less the priority's worth of aging steps, so
/// that the order of waiting runs never changes while they wait (`priority × step` saturates
/// past about 290,000 years: such priorities tie).
pub(super) type QueueKey = (i64, u64);

/// A run's partition key in its lane: runs of one key share the per-key limits and take one
/// turn; runs without a key are one group of their own, which no per-key limit holds.
pub(super) type Part = Option<Arc<str>>;

/// Where a queued run waits: its lane, its key's group, and its place in the group.
#[derive(Debug, Clone)]
pub(super) struct Place {
    pub(super) queue: usize,
    pub(super) part: Part,
    pub(super) key: QueueKey,
}

/// Which of a group's maps a run waits in: the main one, or its kind's.
type Bucket = Option<usize>;

/// Runs in queue order.
type Runs = BTreeMap<QueueKey, Box<PreparedRun>>;

/// The runs of one partition key in a lane.
#[derive(Default)]
struct Group {
    /// Runs of kinds without a rate limit.
    waiting: Runs,
    /// Runs of kinds with a rate limit, a map per kind (none empty), so that a kind held by
    /// its limit holds back its own runs only.
    by_kind: Vec<(Arc<str>, Runs)>,
    running: usize,
    /// It has an entry in its lane's `turns` (which may have gone stale: see `Lane::head`).
    has_turn: bool,
    /// Rate limits hold all its runs until then (it has no turn meanwhile). Kept when its
    /// last run goes, so that a run of the same hold pushed later adds no heap entry.
    parked: Option<Instant>,
    /// The earliest of its entries in the lane's `wakes`, if one is pending: a group is
    /// given a new entry only when it is due earlier than that, so churn cannot grow the heap.
    wake: Option<Instant>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.waiting.is_empty() && self.by_kind.is_empty()
    }

    fn insert(&mut self, key: QueueKey, run: Box<PreparedRun>, limited: bool) {
        if !limited {
            self.waiting.insert(key, run);
            return;
        }
        match self.by_kind.iter_mut().find(|(k, _)| *k == run.label) {
            Some((_, runs)) => {
                runs.insert(key, run);
            }
            None => self
                .by_kind
                .push((run.label.clone(), BTreeMap::from([(key, run)]))),
        }
    }

    fn remove(&mut self, key: &QueueKey) -> Option<(Box<PreparedRun>, bool)> {
        if let Some(run) = self.waiting.remove(key) {
            return Some((run, false));
        }
        let i = self.by_kind.iter().position(|(_, r)| r.contains_key(key))?;
        let run = self.by_kind[i].1.remove(key)?;
        if self.by_kind[i].1.is_empty() {
            self.by_kind.swap_remove(i);
        }
        Some((run, true))
    }

    fn take(&mut self, bucket: Bucket) -> Option<Box<PreparedRun>> {
        match bucket {
            None => self.waiting.pop_first().map(|(_, run)| run),
            Some(i) => {
                let run = self.by_kind.get_mut(i)?.1.pop_first().map(|(_, run)| run);
                if self.by_kind[i].1.is_empty() {
                    self.by_kind.swap_remove(i);
                }
                run
            }
        }
    }

    /// Its first run that the kinds' rate limits let start at `now`, or when the first of
    /// them will (`Err`, with its run), if they hold every run.
    fn first(
        &self,
        kinds: &KindRates,
        now: Instant,
    ) -> Result<(QueueKey, Bucket), Option<(Instant, RunId)>> {
        let mut best = self.waiting.keys().next().map(|k| (*k, None));
        let mut held: Option<(Instant, RunId)> = None;
        for (i, (kind, runs)) in self.by_kind.iter().enumerate() {
            let Some((key, run)) = runs.iter().next() else {
                continue;
            };
            let at = kinds.get(kind).map_or(now, |k| k.window.allows_at(now));
            if at <= now {
                if best.is_none_or(|(b, _)| *key < b) {
                    best = Some((*key, Some(i)));
                }
            } else if held.is_none_or(|(h, _)| at < h) {
                held = Some((at, run.id));
            }
        }
        best.ok_or(held)
    }

    /// The run that would be first, rate limits aside.
    fn first_any(&self) -> Option<&PreparedRun> {
        self.waiting
            .iter()
            .chain(self.by_kind.iter().filter_map(|(_, r)| r.iter().next()))
            .min_by_key(|(k, _)| **k)
            .map(|(_, run)| &**run)
    }
}

/// Whether a group can start a run now.
enum Start {
    /// Its run at this key, from this bucket.
    Now(QueueKey, Bucket),
    /// A rate limit holds it until then; the run it holds first.
    Held(Instant, Option<RunId>),
    /// Nothing waits, or its key is at its concurrency limit (a run's end gives it a turn).
    No,
}

/// What a lane's methods read and report besides the lane: the kinds' rate limits, the
/// time, and the runs whose eligible time a rate limit has set.
struct Ctx<'a> {
    kinds: &'a KindRates,
    now: Instant,
    notices: &'a mut Notices,
}

/// Eligible times of rate-held runs, to be told to the registry, each once.
#[derive(Default)]
struct Notices {
    told: HashMap<RunId, Instant>,
    new: Vec<(RunId, Instant)>,
}

impl Notices {
    fn tell(&mut self, id: RunId, at: Instant) {
        if self.told.insert(id, at) != Some(at) {
            self.new.push((id, at));
        }
    }

    fn forget(&mut self, id: RunId) {
        if !self.told.is_empty() {
            self.told.remove(&id);
        }
    }
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
    /// The groups whose turn comes, next first. Every group that could start a run, and is
    /// not parked, has an entry; an entry whose group cannot (nothing waits, its key is at
    /// its limit, or a rate limit holds it) is dropped (or parked) when it reaches the front.
    turns: VecDeque<Part>,
    /// When to look again at parked groups, earliest first. An entry is a hint: the group's
    /// `parked` says whether it is still held.
    wakes: BinaryHeap<Reverse<(Instant, Part)>>,
    per_key: Option<usize>,
    /// Nothing new starts while paused (submits are still accepted).
    paused: bool,
    rate: Option<Window>,
    key_rates: KeyWindows,
    /// Aging step in microseconds (at least 1 ms).
    aging: Option<i64>,
}

impl Lane {
    fn new(config: Option<&QueueConfig>, now: Instant) -> Self {
        Lane {
            limit: config.and_then(|c| c.limit).map(|l| l.max(1)),
            running: 0,
            waiting: 0,
            plain: Group::default(),
            keyed: HashMap::new(),
            turns: VecDeque::new(),
            wakes: BinaryHeap::new(),
            per_key: config.and_then(|c| c.per_key).map(|l| l.max(1)),
            paused: false,
            rate: config.and_then(|c| c.rate).map(|r| Window::new(r, now)),
            key_rates: KeyWindows::new(config.and_then(|c| c.key_rate)),
            aging: config.and_then(|c| c.aging).map(|step| {
                i64::try_from(step.max(Duration::from_millis(1)).as_micros()).unwrap_or(i64::MAX)
            }),
        }
    }

    /// When the queue's own rate limit allows the next start (`now` if it does now).
    fn rate_allows_at(&self, now: Instant) -> Instant {
        self.rate.as_ref().map_or(now, |w| w.allows_at(now))
    }

    /// Whether a run of this lane may start at `now`, concurrency limits and its key's and
    /// kind's rate limits aside.
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

    fn groups_mut(&mut self) -> impl Iterator<Item = &mut Group> {
        std::iter::once(&mut self.plain).chain(self.keyed.values_mut())
    }

    /// Whether the group `part` has room under the per-key limit.
    fn key_has_room(&self, part: &Part, group: &Group) -> bool {
        part.is_none() || self.per_key.is_none_or(|l| group.running < l)
    }

    /// Whether the group `part` can start a run at `now` (the lane's own limits aside).
    fn start_of(&self, part: &Part, ctx: &Ctx<'_>) -> Start {
        let Some(g) = self.group(part) else {
            return Start::No;
        };
        if g.is_empty() || !self.key_has_room(part, g) {
            return Start::No;
        }
        if let Some(k) = part {
            let at = self.key_rates.allows_at(k, ctx.now);
            if at > ctx.now {
                return Start::Held(at, g.first_any().map(|r| r.id));
            }
        }
        match g.first(ctx.kinds, ctx.now) {
            Ok((key, bucket)) => Start::Now(key, bucket),
            Err(Some((at, id))) => Start::Held(at, Some(id)),
            Err(None) => Start::No,
        }
    }

    /// Gives `part` a turn at the back if it has runs waiting, room under the per-key limit,
    /// and neither a turn nor a place among the parked.
    fn give_turn(&mut self, part: &Part) {
        let Some(g) = self.group(part) else {
            return;
        };
        if g.is_empty() || g.has_turn || g.parked.is_some() || !self.key_has_room(part, g) {
            return;
        }
        if let Some(g) = self.group_mut(part) {
            g.has_turn = true;
            self.turns.push_back(part.clone());
        }
    }

    /// Drops a keyed group that holds nothing and has no turn and no place among the parked.
    fn forget_if_idle(&mut self, part: &Part) {
        if let Some(k) = part
            && self.keyed.get(k).is_some_and(|g| {
                g.is_empty() && g.running == 0 && !g.has_turn && g.parked.is_none()
            })
        {
            self.keyed.remove(k);
        }
    }

    /// Gives the parked groups due by `now` their turns back.
    fn unpark(&mut self, now: Instant) {
        while self.wakes.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            let Some(Reverse((at, part))) = self.wakes.pop() else {
                break;
            };
            let Some(g) = self.group_mut(&part) else {
                continue;
            };
            if g.wake == Some(at) {
                g.wake = None;
            }
            match g.parked {
                Some(until) if until <= now => {
                    g.parked = None;
                    self.give_turn(&part);
                    self.forget_if_idle(&part);
                }
                // Held longer than this entry said: make sure an entry wakes it then.
                Some(until) => self.park(&part, until),
                None => {}
            }
        }
    }

    /// Holds `part` until `until` (no turn meanwhile), with an entry in `wakes` for then
    /// unless an earlier one is pending.
    fn park(&mut self, part: &Part, until: Instant) {
        let Some(g) = self.group_mut(part) else {
            return;
        };
        g.parked = Some(until);
        if g.wake.is_none_or(|w| w > until) {
            g.wake = Some(until);
            self.wakes.push(Reverse((until, part.clone())));
        }
    }

    /// Gives every parked group its turn back (a rate limit changed).
    fn unpark_all(&mut self) {
        self.wakes.clear();
        let parts: Vec<Part> = std::iter::once(None)
            .chain(self.keyed.keys().cloned().map(Some))
            .collect();
        for part in &parts {
            if let Some(g) = self.group_mut(part) {
                g.wake = None;
                g.parked = None;
            }
            self.give_turn(part);
            self.forget_if_idle(part);
        }
    }

    /// When a rate limit lets `run` of group `part` start (`now` if it does now).
    fn release_of(
        &self,
        part: &Part,
        run: &PreparedRun,
        kinds: &KindRates,
        now: Instant,
    ) -> Instant {
        let key_at = part
            .as_ref()
            .map_or(now, |k| self.key_rates.allows_at(k, now));
        let kind_at = kinds
            .get(&run.label)
            .map_or(now, |k| k.window.allows_at(now));
        key_at.max(kind_at)
    }

    /// The place of the run that starts next in this lane: the first that may start of the
    /// group whose turn it is, after dropping the turns that went stale and parking the
    /// groups a rate limit holds.
    fn head(&mut self, ctx: &mut Ctx<'_>) -> Option<(QueueKey, Bucket)> {
        self.unpark(ctx.now);
        loop {
            let part = self.turns.front()?.clone();
            let start = self.start_of(&part, ctx);
            if let Start::Now(key, bucket) = start {
                return Some((key, bucket));
            }
            self.turns.pop_front();
            if let Some(g) = self.group_mut(&part) {
                g.has_turn = false;
            }
            match start {
                Start::Held(at, first) => {
                    self.park(&part, at);
                    if let Some(id) = first {
                        ctx.notices.tell(id, at);
                    }
                }
                _ => self.forget_if_idle(&part),
            }
        }
    }

    /// The id of the run [`Lane::head`] named.
    fn id_at_head(&self, key: QueueKey, bucket: Bucket) -> Option<RunId> {
        let g = self.group(self.turns.front()?)?;
        let runs = match bucket {
            None => &g.waiting,
            Some(i) => &g.by_kind.get(i)?.1,
        };
        runs.get(&key).map(|run| run.id)
    }

    /// Takes the run [`Lane::head`] named; its group goes to the back of the turns.
    fn pop_head(&mut self, bucket: Bucket) -> Option<Box<PreparedRun>> {
        let part = self.turns.pop_front()?;
        let g = self.group_mut(&part)?;
        g.has_turn = false;
        let run = g.take(bucket)?;
        self.waiting -= 1;
        self.give_turn(&part);
        Some(run)
    }

    /// The rank of a run of priority `priority` arriving `elapsed` microseconds after the
    /// queues began.
    fn rank(&self, priority: i32, elapsed: i64) -> i64 {
        match self.aging {
            None => -i64::from(priority),
            Some(step) => elapsed.saturating_sub(i64::from(priority).saturating_mul(step)),
        }
    }

    /// The priority the run with `key` counts as, `elapsed` microseconds after the queues
    /// began.
    fn effective_priority(&self, key: QueueKey, elapsed: i64) -> i64 {
        match self.aging {
            None => -key.0,
            Some(step) => elapsed.saturating_sub(key.0).div_euclid(step),
        }
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
    kinds: KindRates,
    notices: Notices,
    /// Arrival order, for queue keys.
    next_seq: u64,
    /// What aged ranks count from.
    origin: Instant,
    /// While holding runs (`StartMode::Held`): how many more may start.
    credits: Option<usize>,
    /// The time the last `pop_next` went by: what it left held is due after it, and
    /// `next_rate_due` reads the same time, so nothing falls due between the two unseen.
    checked_at: Instant,
}

impl Queues {
    /// Lanes for the table built from `configs` (the default queue included); limits and rate
    /// limits of 0 are read as 1. `kind_rates` limit the runs of kinds (labels) over all
    /// queues; with `hold`, nothing starts until released.
    pub(super) fn new(
        configs: &[(String, QueueConfig)],
        global_limit: Option<usize>,
        kind_rates: &[(String, RateLimit)],
        hold: bool,
    ) -> Self {
        let now = Instant::now();
        let table = QueueTable::new(configs);
        let lanes = (0..table.len())
            .map(|i| {
                let config = configs
                    .iter()
                    .find(|(name, _)| name == table.name(i))
                    .map(|(_, c)| c);
                Lane::new(config, now)
            })
            .collect();
        let kinds = kind_rates
            .iter()
            .map(|(kind, limit)| {
                let rate = KindRate {
                    window: Window::new(*limit, now),
                    waiting: 0,
                };
                (Arc::from(kind.as_str()), rate)
            })
            .collect();
        Queues {
            table,
            lanes,
            global_limit: global_limit.map(|l| l.max(1)),
            kinds,
            notices: Notices::default(),
            next_seq: 0,
            origin: now,
            checked_at: now,
            credits: hold.then_some(0),
        }
    }

    /// The admission table the submitters share.
    pub(super) fn table(&self) -> &Arc<QueueTable> {
        &self.table
    }

    pub(super) fn global_limit(&self) -> Option<usize> {
        self.global_limit
    }

    fn elapsed(&self, now: Instant) -> i64 {
        i64::try_from(now.saturating_duration_since(self.origin).as_micros()).unwrap_or(i64::MAX)
    }

    /// The lane of a run's queue. A queue unknown here can only come from a record written
    /// with another configuration (recovery); it runs in the default queue.
    pub(super) fn lane_of(&self, run: &PreparedRun) -> usize {
        self.table.index(&run.queue).unwrap_or_else(|| {
            tracing::warn!(run_id = %run.id, queue = %run.queue, "unknown queue; using the default queue");
            self.table.index(DEFAULT_QUEUE).unwrap_or(0)
        })
    }

    /// Whether `run`, of lane `q`, may start now, ahead of nobody: none waits in its lane
    /// (nor of its kind, if the kind has a rate limit, in any lane), the lane is open (not
    /// paused, its rate allows it), the rate limits of its key and kind allow it, and the concurrency limits (global, the lane's, its key's) have room,
    /// with `running` runs running over all lanes.
    pub(super) fn may_start_now(&self, q: usize, run: &PreparedRun, running: usize) -> bool {
        let lane = &self.lanes[q];
        let now = Instant::now();
        self.credits != Some(0)
            && lane.waiting == 0
            && self.global_limit.is_none_or(|l| running < l)
            && lane.under_limit()
            && lane
                .group(run.partition())
                .is_none_or(|g| lane.key_has_room(run.partition(), g))
            && lane.open_at(now)
            && run
                .partition()
                .as_ref()
                .is_none_or(|k| lane.key_rates.allows_at(k, now) <= now)
            && self
                .kinds
                .get(&run.label)
                .is_none_or(|k| k.waiting == 0 && k.window.allows(now))
    }

    /// Puts `run` at the back of its priority among its key's runs in lane `q`; returns its
    /// place.
    pub(super) fn push(&mut self, q: usize, run: Box<PreparedRun>) -> Place {
        let elapsed = self.elapsed(Instant::now());
        let key = (self.lanes[q].rank(run.priority, elapsed), self.next_seq);
        self.next_seq += 1;
        let part = run.partition().clone();
        let limited = match self.kinds.get_mut(&run.label) {
            Some(kind) => {
                kind.waiting += 1;
                true
            }
            None => false,
        };
        let lane = &mut self.lanes[q];
        // A parked group stays held until the earliest time a rate limit lets one of its
        // runs start: the new run may be released sooner.
        let now = Instant::now();
        let release = lane.release_of(&part, &run, &self.kinds, now);
        let g = lane.group_or_new(&part);
        g.insert(key, run, limited);
        match g.parked {
            Some(_) if release <= now => g.parked = None,
            Some(until) if release < until => lane.park(&part, release),
            _ => {}
        }
        lane.waiting += 1;
        lane.give_turn(&part);
        Place {
            queue: q,
            part,
            key,
        }
    }

    /// Takes the run at `place` out of its lane, if it is there.
    pub(super) fn take(&mut self, place: &Place) -> Option<Box<PreparedRun>> {
        let lane = &mut self.lanes[place.queue];
        let (run, limited) = lane
            .group_mut(&place.part)
            .and_then(|g| g.remove(&place.key))?;
        lane.waiting -= 1;
        lane.forget_if_idle(&place.part);
        self.left_queue(&run, limited);
        Some(run)
    }

    /// While holding runs, how many more may start (`None`: not holding).
    pub(super) fn hold(&self) -> Option<usize> {
        self.credits
    }

    /// Lets held runs start: `n` more, all from now on, or none again. (`Release::Runs` is
    /// the supervisor's: it starts those runs itself, each with one start given here.)
    pub(super) fn release(&mut self, release: &Release) {
        self.credits = match (release, self.credits) {
            (Release::All, _) => None,
            (Release::Hold, _) => Some(0),
            (Release::Next(n), Some(c)) => Some(c.saturating_add(*n)),
            (Release::Next(_) | Release::Runs(_), c) => c,
        };
    }

    fn left_queue(&mut self, run: &PreparedRun, limited: bool) {
        if limited && let Some(kind) = self.kinds.get_mut(&run.label) {
            kind.waiting = kind.waiting.saturating_sub(1);
        }
        self.notices.forget(run.id);
    }

    /// The run that should start next, with `running` runs running over all lanes: among
    /// lanes under their limit and open, the head (the first run that may start of the key
    /// whose turn it is) with the highest priority (aged, in a lane with aging), then the
    /// earliest.
    pub(super) fn pop_next(&mut self, running: usize) -> Option<(usize, Box<PreparedRun>)> {
        let now = Instant::now();
        self.checked_at = now;
        if self.credits == Some(0) || self.global_limit.is_some_and(|l| running >= l) {
            return None;
        }
        let elapsed = self.elapsed(now);
        let mut ctx = Ctx {
            kinds: &self.kinds,
            now,
            notices: &mut self.notices,
        };
        let mut best: Option<((Reverse<i64>, u64), usize, Bucket)> = None;
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            if lane.waiting == 0 || !lane.under_limit() || !lane.open_at(now) {
                continue;
            }
            if let Some((key, bucket)) = lane.head(&mut ctx) {
                let order = (Reverse(lane.effective_priority(key, elapsed)), key.1);
                if best.as_ref().is_none_or(|(b, _, _)| order < *b) {
                    best = Some((order, i, bucket));
                }
            }
        }
        let (_, q, bucket) = best?;
        let run = self.lanes[q].pop_head(bucket)?;
        self.left_queue(&run, bucket.is_some());
        Some((q, run))
    }

    /// `run`, of lane `q`, is getting a worker: it counts against its limits.
    pub(super) fn started(&mut self, q: usize, run: &PreparedRun) {
        let now = Instant::now();
        if let Some(c) = &mut self.credits {
            *c = c.saturating_sub(1);
        }
        let lane = &mut self.lanes[q];
        lane.running += 1;
        lane.group_or_new(run.partition()).running += 1;
        if let Some(w) = &mut lane.rate {
            w.record(now);
        }
        if let Some(k) = run.partition() {
            lane.key_rates.record(k, now);
        }
        if let Some(kind) = self.kinds.get_mut(&run.label) {
            kind.window.record(now);
        }
    }

    /// The earliest time a waiting run that a rate limit holds back may start, after the
    /// last `pop_next`: when the supervisor should look again (`None`: no run waits for a
    /// rate limit; an instant already past: at once). The run first in line in a queue its
    /// own rate limit holds is told its eligible time.
    pub(super) fn next_rate_due(&mut self) -> Option<Instant> {
        let now = self.checked_at;
        let mut due: Option<Instant> = None;
        let mut consider = |at: Instant| {
            if at > now && due.is_none_or(|d| at < d) {
                due = Some(at);
            }
        };
        let mut ctx = Ctx {
            kinds: &self.kinds,
            now,
            notices: &mut self.notices,
        };
        for lane in &mut self.lanes {
            if lane.waiting == 0 || lane.paused || !lane.under_limit() {
                continue;
            }
            let at = lane.rate_allows_at(now);
            if at > now {
                consider(at);
                if let Some((key, bucket)) = lane.head(&mut ctx)
                    && let Some(id) = lane.id_at_head(key, bucket)
                {
                    ctx.notices.tell(id, at);
                }
            }
            if let Some(Reverse((at, _))) = lane.wakes.peek() {
                consider(*at);
            }
        }
        for kind in self.kinds.values().filter(|k| k.waiting > 0) {
            consider(kind.window.allows_at(now));
        }
        due
    }

    /// The eligible times found since last asked, to tell the registry.
    pub(super) fn take_notices(&mut self) -> Vec<(RunId, Instant)> {
        std::mem::take(&mut self.notices.new)
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

    /// Sets or lifts (`None`) a rate limit; starts already made count against the new one.
    /// Only a queue's scopes can be unknown: any label can be a kind.
    pub(super) fn set_rate(
        &mut self,
        scope: RateScope,
        rate: Option<RateLimit>,
    ) -> Result<(), UnknownQueue> {
        let now = Instant::now();
        match scope {
            RateScope::Queue(name) => {
                let lane = self.lane_named(&name)?;
                match (&mut lane.rate, rate) {
                    (Some(w), Some(r)) => w.set(r, now),
                    (w, r) => *w = r.map(|r| Window::new(r, now)),
                }
            }
            RateScope::EachKey(name) => {
                let lane = self.lane_named(&name)?;
                lane.key_rates.set(rate, now);
                lane.unpark_all();
            }
            RateScope::Kind(kind) => self.set_kind_rate(Arc::from(kind), rate, now),
        }
        Ok(())
    }

    /// A kind's runs wait in a map of their own in each group while the kind has a rate
    /// limit: setting the first one moves its waiting runs there, lifting it moves them back.
    fn set_kind_rate(&mut self, kind: Arc<str>, rate: Option<RateLimit>, now: Instant) {
        match (self.kinds.get_mut(&kind), rate) {
            (Some(k), Some(r)) => k.window.set(r, now),
            (None, None) => {}
            (Some(_), None) => {
                self.kinds.remove(&kind);
                for g in self.lanes.iter_mut().flat_map(Lane::groups_mut) {
                    if let Some(i) = g.by_kind.iter().position(|(k, _)| *k == kind) {
                        let (_, mut runs) = g.by_kind.swap_remove(i);
                        g.waiting.append(&mut runs);
                    }
                }
            }
            (None, Some(r)) => {
                let mut waiting = 0;
                for g in self.lanes.iter_mut().flat_map(Lane::groups_mut) {
                    let (moved, kept) = std::mem::take(&mut g.waiting)
                        .into_iter()
                        .partition::<Runs, _>(|(_, run)| run.label == kind);
                    g.waiting = kept;
                    if !moved.is_empty() {
                        waiting += moved.len();
                        g.by_kind.push((kind.clone(), moved));
                    }
                }
                let window = Window::new(r, now);
                self.kinds.insert(kind, KindRate { window, waiting });
            }
        }
        for lane in &mut self.lanes {
            lane.unpark_all();
        }
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
            .filter(|(_, g)| !g.has_turn && g.parked.is_none() && !g.is_empty())
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
                rate: lane.rate.as_ref().map(Window::limit),
                per_key: lane.per_key,
                keys: lane.keyed.len(),
                key_rate: lane.key_rates.limit(),
                aging: lane
                    .aging
                    .map(|us| Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX))),
            })
            .collect()
    }

    /// Every kind's rate limit and its waiting runs, by kind.
    pub(super) fn kind_rates(&self) -> Vec<KindRateStatus> {
        let mut out: Vec<KindRateStatus> = self
            .kinds
            .iter()
            .map(|(kind, k)| KindRateStatus {
                kind: kind.to_string(),
                rate: k.window.limit(),
                queued: k.waiting,
            })
            .collect();
        out.sort_by(|a, b| a.kind.cmp(&b.kind));
        out
    }
}
