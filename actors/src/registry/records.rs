//! How the registry holds run records in memory.
//!
//! Records live in one flat array in arrival order, with a small hash index from run id to
//! position: two large allocations that grow by doubling, not a tree of small nodes
//! interleaved with the short-lived allocations of running runs, so retained history does not
//! fragment the heap (the resident size follows the live data). Retention removes the oldest
//! records, which are at the front of the array, so in steady state the array neither grows
//! nor moves.
//!
//! An active run is kept as its full [`RunRecord`], boxed (the box the submitter built travels
//! in the `Insert` message and is stored as it is). When the run ends, its record is sealed
//! into an [`Ended`]: a fixed part of under 100 bytes with the label and queue shared through
//! an interner, and whatever a plain run does not have (an error, a result, parameters, ...)
//! in one optional box. Finished runs are most of the history, so this is what sets the
//! memory per retained record.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::hash::IdMap;
use crate::json::{Json, JsonObject};
use crate::run::{Progress, RunError, RunId, RunRecord, RunStatus, Transition, TransitionError};
use crate::time::Timestamp;

/// Every record the registry holds, in the order they arrived, and where each one is.
#[derive(Default)]
pub(super) struct Records {
    /// Records in arrival order, oldest first; `None` where one was removed out of order
    /// (such holes are dropped when they reach the front, or all at once when they are half
    /// of the array).
    slots: VecDeque<Option<Slot>>,
    /// Arrival number of `slots[0]`.
    base: u64,
    holes: usize,
    /// Arrival number of each record held.
    index: IdMap<RunId, u64>,
    strings: Interner,
}

struct Slot {
    id: RunId,
    entry: Entry,
}

enum Entry {
    Active(Box<RunRecord>),
    Ended(Ended),
}

/// A finished run in its compact form. Timestamps are Unix microseconds with `0` for "not
/// set"; `duration_ms` is NaN for "not set".
pub(super) struct Ended {
    created_at: u64,
    started_at: u64,
    finished_at: u64,
    duration_ms: f64,
    label: Arc<str>,
    queue: Arc<str>,
    more: Option<Box<More>>,
    priority: i32,
    attempt: u32,
    max_attempts: u32,
    status: RunStatus,
}

/// The parts of a finished record that a plain run leaves empty.
struct More {
    /// Only when it differs from the label.
    name: Option<String>,
    params: JsonObject,
    error: Option<RunError>,
    attempt_errors: Vec<RunError>,
    next_attempt_at: Option<Timestamp>,
    progress: Option<Progress>,
    result: Option<Json>,
    exit_code: Option<i32>,
    kind: Option<String>,
    idempotency_key: Option<String>,
}

/// One record, borrowed from [`Records`].
#[derive(Clone, Copy)]
pub(super) enum View<'a> {
    Active(&'a RunRecord),
    Ended(RunId, &'a Ended),
}

impl View<'_> {
    pub(super) fn id(self) -> RunId {
        match self {
            View::Active(r) => r.id,
            View::Ended(id, _) => id,
        }
    }

    pub(super) fn status(self) -> RunStatus {
        match self {
            View::Active(r) => r.status,
            View::Ended(_, e) => e.status,
        }
    }

    pub(super) fn label(&self) -> &str {
        match self {
            View::Active(r) => &r.label,
            View::Ended(_, e) => &e.label,
        }
    }

    pub(super) fn queue(&self) -> &str {
        match self {
            View::Active(r) => &r.queue,
            View::Ended(_, e) => &e.queue,
        }
    }

    pub(super) fn finished_at(self) -> Option<Timestamp> {
        match self {
            View::Active(r) => r.finished_at,
            View::Ended(_, e) => micros(e.finished_at),
        }
    }

    /// The full record, as queries answer it.
    pub(super) fn to_record(self) -> RunRecord {
        match self {
            View::Active(r) => r.clone(),
            View::Ended(id, e) => e.to_record(id),
        }
    }
}

fn micros(us: u64) -> Option<Timestamp> {
    (us != 0).then(|| Timestamp::from_unix_micros(us))
}

fn raw(t: Option<Timestamp>) -> u64 {
    t.map_or(0, Timestamp::unix_micros)
}

impl Ended {
    /// Seals a finished record, cloning only the parts a plain run does not have.
    fn seal(r: &RunRecord, strings: &mut Interner) -> Ended {
        let plain = r.name == r.label
            && r.params.is_empty()
            && r.error.is_none()
            && r.attempt_errors.is_empty()
            && r.next_attempt_at.is_none()
            && r.progress.is_none()
            && r.result.is_none()
            && r.exit_code.is_none()
            && r.kind.is_none()
            && r.idempotency_key.is_none();
        let more = (!plain).then(|| {
            Box::new(More {
                name: (r.name != r.label).then(|| r.name.clone()),
                params: r.params.clone(),
                error: r.error.clone(),
                attempt_errors: r.attempt_errors.clone(),
                next_attempt_at: r.next_attempt_at,
                progress: r.progress.clone(),
                result: r.result.clone(),
                exit_code: r.exit_code,
                kind: r.kind.clone(),
                idempotency_key: r.idempotency_key.clone(),
            })
        });
        Ended {
            created_at: r.created_at.unix_micros(),
            started_at: raw(r.started_at),
            finished_at: raw(r.finished_at),
            duration_ms: r.duration_ms.unwrap_or(f64::NAN),
            label: strings.intern(&r.label),
            queue: strings.intern(&r.queue),
            more,
            priority: r.priority,
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            status: r.status,
        }
    }

    fn to_record(&self, id: RunId) -> RunRecord {
        let more = self.more.as_deref();
        RunRecord {
            id,
            label: self.label.to_string(),
            name: more
                .and_then(|m| m.name.clone())
                .unwrap_or_else(|| self.label.to_string()),
            params: more.map(|m| m.params.clone()).unwrap_or_default(),
            status: self.status,
            created_at: Timestamp::from_unix_micros(self.created_at),
            started_at: micros(self.started_at),
            finished_at: micros(self.finished_at),
            duration_ms: (!self.duration_ms.is_nan()).then_some(self.duration_ms),
            error: more.and_then(|m| m.error.clone()),
            queue: self.queue.to_string(),
            priority: self.priority,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            attempt_errors: more.map(|m| m.attempt_errors.clone()).unwrap_or_default(),
            next_attempt_at: more.and_then(|m| m.next_attempt_at),
            progress: more.and_then(|m| m.progress.clone()),
            result: more.and_then(|m| m.result.clone()),
            exit_code: more.and_then(|m| m.exit_code),
            kind: more.and_then(|m| m.kind.clone()),
            idempotency_key: more.and_then(|m| m.idempotency_key.clone()),
        }
    }
}

impl Records {
    /// Storage sized for `expected` records up front, so that steady load with retention
    /// never reallocates it: no pause to copy the history while it grows, and no large block
    /// freed and allocated again (which also keeps the system allocator from raising its
    /// thresholds and holding on to freed memory). Pages are only touched as records arrive.
    pub(super) fn with_capacity(expected: usize) -> Self {
        Records {
            slots: VecDeque::with_capacity(expected),
            // Twice the records: the hash table then stays at most half full, where it clears
            // the marks removed records leave in place instead of doubling.
            index: IdMap::with_capacity_and_hasher(expected.saturating_mul(2), Default::default()),
            ..Records::default()
        }
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn contains(&self, id: &RunId) -> bool {
        self.index.contains_key(id)
    }

    fn position(&self, id: &RunId) -> Option<usize> {
        let seq = *self.index.get(id)?;
        Some((seq - self.base) as usize)
    }

    fn entry(&self, id: &RunId) -> Option<&Entry> {
        let slot = self.slots.get(self.position(id)?)?.as_ref()?;
        Some(&slot.entry)
    }

    fn entry_mut(&mut self, id: &RunId) -> Option<&mut Entry> {
        let pos = self.position(id)?;
        let slot = self.slots.get_mut(pos)?.as_mut()?;
        Some(&mut slot.entry)
    }

    pub(super) fn get(&self, id: &RunId) -> Option<View<'_>> {
        self.entry(id).map(|e| view(*id, e))
    }

    /// The full record of an active run.
    pub(super) fn active(&self, id: &RunId) -> Option<&RunRecord> {
        match self.entry(id)? {
            Entry::Active(r) => Some(r),
            Entry::Ended(..) => None,
        }
    }

    /// The full record of an active run, to change a field the state machine does not own
    /// (progress, exit code).
    pub(super) fn active_mut(&mut self, id: &RunId) -> Option<&mut RunRecord> {
        match self.entry_mut(id)? {
            Entry::Active(r) if r.status.is_active() => Some(r),
            _ => None,
        }
    }

    /// Every record, oldest first.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = View<'_>> {
        self.slots
            .iter()
            .filter_map(|s| s.as_ref().map(|s| view(s.id, &s.entry)))
    }

    /// Adds a record (a new run, or one loaded from the store); a finished one is sealed at
    /// once. A record with an id already held replaces it in place.
    pub(super) fn insert(&mut self, record: Box<RunRecord>) {
        let id = record.id;
        let entry = if record.status.is_terminal() {
            Entry::Ended(Ended::seal(&record, &mut self.strings))
        } else {
            Entry::Active(record)
        };
        if let Some(held) = self.entry_mut(&id) {
            *held = entry;
            return;
        }
        self.index.insert(id, self.base + self.slots.len() as u64);
        self.slots.push_back(Some(Slot { id, entry }));
    }

    pub(super) fn remove(&mut self, id: &RunId) {
        let Some(seq) = self.index.remove(id) else {
            return;
        };
        if let Some(slot) = self.slots.get_mut((seq - self.base) as usize) {
            *slot = None;
            self.holes += 1;
        }
        // Retention and the memory window remove the oldest records: usually the front.
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
            self.holes -= 1;
        }
        if self.holes > 1024 && self.holes * 2 > self.slots.len() {
            self.compact();
        }
    }

    /// Drops every hole (old records pruned behind a long-running one) and renumbers.
    fn compact(&mut self) {
        self.slots.retain(Option::is_some);
        self.holes = 0;
        for (pos, slot) in self.slots.iter().enumerate() {
            if let Some(slot) = slot {
                self.index.insert(slot.id, self.base + pos as u64);
            }
        }
    }

    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.index.clear();
        self.holes = 0;
        self.strings.shed();
    }

    /// Applies a transition through the run state machine; returns the statuses before and
    /// after. A run that reached a terminal status stays in full form until [`Records::seal`].
    pub(super) fn apply(
        &mut self,
        id: RunId,
        t: Transition,
    ) -> Result<(RunStatus, RunStatus), TransitionError> {
        match self.entry_mut(&id) {
            None => Err(TransitionError::UnknownRun(id)),
            Some(Entry::Active(r)) => {
                let from = r.status;
                r.apply(t)?;
                Ok((from, r.status))
            }
            // What `RunRecord::apply` answers for any transition of a finished run.
            Some(Entry::Ended(e)) => Err(TransitionError::AlreadyTerminal {
                id,
                status: e.status,
                attempted: t.target(),
            }),
        }
    }

    /// Turns a finished run's full record into its compact form; hands the full record back
    /// (for the store, or for callers waiting on the run) or `None` if there was none to seal.
    pub(super) fn seal(&mut self, id: RunId) -> Option<Box<RunRecord>> {
        let pos = self.position(&id)?;
        let slot = self.slots.get_mut(pos)?.as_mut()?;
        let Entry::Active(r) = &slot.entry else {
            return None;
        };
        if !r.status.is_terminal() {
            return None;
        }
        let ended = Entry::Ended(Ended::seal(r, &mut self.strings));
        match std::mem::replace(&mut slot.entry, ended) {
            Entry::Active(r) => Some(r),
            Entry::Ended(..) => None,
        }
    }

    /// Forgets interned strings no record uses any more (after pruning).
    pub(super) fn shed(&mut self) {
        self.strings.shed();
    }
}

fn view(id: RunId, e: &Entry) -> View<'_> {
    match e {
        Entry::Active(r) => View::Active(r),
        Entry::Ended(e) => View::Ended(id, e),
    }
}

/// Labels and queue names shared by the finished records that use them.
#[derive(Default)]
struct Interner(HashSet<Arc<str>>);

impl Interner {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(s) {
            return shared.clone();
        }
        let shared: Arc<str> = Arc::from(s);
        self.0.insert(shared.clone());
        shared
    }

    fn shed(&mut self) {
        self.0.retain(|s| Arc::strong_count(s) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{ErrorKind, RunSpec};

    fn finished(spec: RunSpec, t: Transition) -> Box<RunRecord> {
        let mut r = RunRecord::queued(RunId::new(), spec);
        r.apply(Transition::Started {
            at: Timestamp::now(),
        })
        .expect("start");
        r.apply(t).expect("end");
        Box::new(r)
    }

    #[test]
    fn a_sealed_record_reads_back_exactly() {
        let mut records = Records::default();
        let mut spec = RunSpec::new("label").name("another name").queue("q");
        spec.params.insert("n".into(), Json::from(3));
        let cases = [
            finished(RunSpec::new("plain"), Transition::completed()),
            finished(spec, Transition::failed(ErrorKind::Returned, "boom")),
        ];
        for r in cases {
            let want = (*r).clone();
            records.insert(r);
            let got = records.get(&want.id).expect("held").to_record();
            assert_eq!(got, want);
            assert!(records.active(&want.id).is_none(), "sealed, not active");
        }
    }

    #[test]
    fn iteration_follows_arrival_and_skips_removed_records() {
        let mut records = Records::default();
        let ids: Vec<RunId> = (0..3000).map(|_| RunId::new()).collect();
        for id in &ids {
            records.insert(Box::new(RunRecord::queued(*id, RunSpec::new("x"))));
        }
        // Remove every third record (in the middle, so tombstones pile up and get compacted)
        // and the first hundred (from the front).
        let mut kept = vec![];
        for (i, id) in ids.iter().enumerate() {
            if i % 3 == 1 || i < 100 {
                records.remove(id);
            } else {
                kept.push(*id);
            }
        }
        let seen: Vec<RunId> = records.iter().map(View::id).collect();
        assert_eq!(seen, kept);
        let newest_first: Vec<RunId> = records.iter().rev().map(View::id).collect();
        kept.reverse();
        assert_eq!(newest_first, kept);
        assert_eq!(records.len(), kept.len());
        assert!(records.slots.len() < ids.len(), "holes were dropped");
        assert_eq!(records.holes, records.slots.len() - kept.len());
        // Every record is still found where the index says, after the compactions.
        for id in &kept {
            assert_eq!(records.get(id).map(View::id), Some(*id));
        }
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(records.contains(id), !(i % 3 == 1 || i < 100));
        }
    }

    #[test]
    fn holes_behind_a_long_running_record_are_compacted_away() {
        let mut records = Records::default();
        let ids: Vec<RunId> = (0..6000).map(|_| RunId::new()).collect();
        for id in &ids {
            records.insert(Box::new(RunRecord::queued(*id, RunSpec::new("x"))));
        }
        // The oldest record stays (a long run); two of every three after it are pruned.
        let kept: Vec<RunId> = ids
            .iter()
            .enumerate()
            .filter(|(i, _)| *i == 0 || i % 3 == 0)
            .map(|(_, id)| *id)
            .collect();
        for (i, id) in ids.iter().enumerate() {
            if !(i == 0 || i % 3 == 0) {
                records.remove(id);
            }
        }
        assert!(
            records.slots.len() < 4000,
            "compacted: {}",
            records.slots.len()
        );
        assert_eq!(records.iter().map(View::id).collect::<Vec<_>>(), kept);
        for id in &kept {
            assert_eq!(records.get(id).map(View::id), Some(*id));
        }
        // Records added after a compaction are found too.
        let late = RunId::new();
        records.insert(Box::new(RunRecord::queued(late, RunSpec::new("x"))));
        assert_eq!(records.get(&late).map(View::id), Some(late));
    }

    #[test]
    fn a_finished_run_refuses_transitions_like_the_state_machine() {
        let mut records = Records::default();
        let r = finished(RunSpec::new("x"), Transition::completed());
        let id = r.id;
        let mut full = (*r).clone();
        records.insert(r);
        let t = Transition::Started {
            at: Timestamp::now(),
        };
        assert_eq!(
            records.apply(id, t.clone()),
            full.apply(t).map(|_| unreachable!())
        );
    }

    #[test]
    fn seal_keeps_the_full_record_for_its_caller_and_shares_labels() {
        let mut records = Records::default();
        let mut ids = vec![];
        for _ in 0..3 {
            let r = RunRecord::queued(RunId::new(), RunSpec::new("shared"));
            ids.push(r.id);
            records.insert(Box::new(r));
        }
        for id in &ids {
            let now = Timestamp::now();
            records
                .apply(*id, Transition::Started { at: now })
                .expect("start");
            assert!(records.seal(*id).is_none(), "running runs are not sealed");
            records.apply(*id, Transition::completed()).expect("end");
            let full = records.seal(*id).expect("sealed");
            assert_eq!(full.status, RunStatus::Completed);
        }
        assert_eq!(records.strings.0.len(), 2, "one label and one queue name");
        records.remove(&ids[0]);
        records.remove(&ids[1]);
        records.remove(&ids[2]);
        records.shed();
        assert!(records.strings.0.is_empty());
    }
}
