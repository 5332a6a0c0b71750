//! How the registry holds run records in memory.
//!
//! Every record is kept in one compact form, [`Stored`]: a fixed part of about 100 bytes,
//! with the label and queue name shared through an interner and whatever a plain run does
//! not have (an error, a result, parameters, progress, ...) in one optional box. The state
//! machine runs on this form directly ([`apply_transition`] through [`Lifecycle`]), so a run
//! never needs a full [`RunRecord`] in memory; queries get one built on demand.
//!
//! Records live in one flat array in arrival order, with a hash index from run id to
//! position: two large allocations, sized for the retention window up front, not a tree of
//! small nodes interleaved with the short-lived allocations of running runs, so retained
//! history does not fragment the heap (the resident size follows the live data). Retention
//! removes the oldest records, which are at the front of the array, so in steady state the
//! array neither grows nor moves.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::hash::IdMap;
use crate::json::{Json, JsonObject};
use crate::protocol::run::{AdmittedSpec, RareSpec, RunSpanInfo};
use crate::query::RecordFields;
use crate::run::{
    CancelReason, Lifecycle, Outcome, Progress, RetryPolicy, RunError, RunId, RunRecord, RunStatus,
    Transition, TransitionError, apply_transition,
};
use crate::run::{Dependency, DependencyOutcome, WorkflowId};
use crate::time::Timestamp;
use std::time::Duration;

/// Every record the registry holds, in the order they arrived, and where each one is.
#[derive(Default)]
pub(super) struct Records {
    /// Records in arrival order, oldest first; `None` where one was removed out of order
    /// (such holes are dropped when they reach the front, or all at once when they are half
    /// of the array).
    slots: VecDeque<Option<Stored>>,
    /// Arrival number of `slots[0]`.
    base: u64,
    holes: usize,
    /// Arrival number of each record held.
    index: IdMap<RunId, u64>,
    strings: Interner,
}

/// A run as the registry keeps it. Timestamps are Unix microseconds with [`UNSET`] for "not
/// set"; `duration_ms` is NaN for "not set".
pub(crate) struct Stored {
    id: RunId,
    created_at: u64,
    started_at: u64,
    finished_at: u64,
    next_attempt_at: u64,
    duration_ms: f64,
    label: Arc<str>,
    queue: Arc<str>,
    more: Option<Box<More>>,
    priority: i32,
    attempt: u32,
    max_attempts: u32,
    status: RunStatus,
}

/// The parts of a record that a plain run leaves empty.
#[derive(Default)]
struct More {
    /// Only when it differs from the label.
    name: Option<String>,
    params: JsonObject,
    error: Option<RunError>,
    cancelled_by: Option<CancelReason>,
    attempt_errors: Vec<RunError>,
    progress: Option<Progress>,
    result: Option<Json>,
    exit_code: Option<i32>,
    kind: Option<String>,
    idempotency_key: Option<String>,
    /// Shared with the run's queued and running entries in the supervisor.
    partition_key: Option<Arc<str>>,
    snoozes: u32,
    /// While a rate limit holds the run first in line.
    eligible_at: Option<Timestamp>,
    /// What only some runs have: limits kept for a re-run, dependencies, workflow, re-runs.
    links: Option<Box<Links>>,
}

/// A record's resolved limits and its links to other runs (see the fields of [`RunRecord`]
/// of the same names).
#[derive(Default, Clone)]
pub(crate) struct Links {
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) depends_on: Vec<Dependency>,
    pub(crate) workflow: Option<WorkflowId>,
    pub(crate) step: Option<String>,
    pub(crate) rerun_of: Option<RunId>,
    pub(crate) reruns: Vec<RunId>,
    pub(crate) trace_parent: Option<String>,
}

impl Links {
    fn is_empty(&self) -> bool {
        self.timeout.is_none()
            && self.retry.is_none()
            && self.depends_on.is_empty()
            && self.workflow.is_none()
            && self.step.is_none()
            && self.rerun_of.is_none()
            && self.reruns.is_empty()
            && self.trace_parent.is_none()
    }

    fn boxed(self) -> Option<Box<Links>> {
        (!self.is_empty()).then(|| Box::new(self))
    }

    fn of_record(r: &mut RunRecord) -> Links {
        Links {
            timeout: r.timeout,
            retry: r.retry,
            depends_on: std::mem::take(&mut r.depends_on),
            workflow: r.workflow,
            step: r.step.take(),
            rerun_of: r.rerun_of,
            reruns: std::mem::take(&mut r.reruns),
            trace_parent: r.trace_parent.take(),
        }
    }
}

/// "No timestamp": not a time any clock gives (Unix time 0 is, for a clock before 1970).
const UNSET: u64 = u64::MAX;

fn micros(us: u64) -> Option<Timestamp> {
    (us != UNSET).then(|| Timestamp::from_unix_micros(us))
}

fn raw(t: Option<Timestamp>) -> u64 {
    t.map_or(UNSET, Timestamp::unix_micros)
}

impl Stored {
    /// The compact form of a record; its strings move, label and queue are interned.
    fn from_record(mut r: RunRecord, strings: &mut Interner) -> Stored {
        let label = strings.intern(&r.label);
        let queue = strings.intern(&r.queue);
        let links = Links::of_record(&mut r).boxed();
        let plain = links.is_none()
            && r.name == r.label
            && r.params.is_empty()
            && r.error.is_none()
            && r.cancelled_by.is_none()
            && r.attempt_errors.is_empty()
            && r.progress.is_none()
            && r.result.is_none()
            && r.exit_code.is_none()
            && r.kind.is_none()
            && r.idempotency_key.is_none()
            && r.partition_key.is_none()
            && r.snoozes == 0
            && r.eligible_at.is_none();
        let more = (!plain).then(|| {
            Box::new(More {
                name: (r.name != r.label).then_some(r.name),
                params: r.params,
                error: r.error,
                cancelled_by: r.cancelled_by,
                attempt_errors: r.attempt_errors,
                progress: r.progress,
                result: r.result,
                exit_code: r.exit_code,
                kind: r.kind,
                idempotency_key: r.idempotency_key,
                partition_key: r.partition_key.map(Arc::from),
                snoozes: r.snoozes,
                eligible_at: r.eligible_at,
                links,
            })
        });
        Stored {
            id: r.id,
            created_at: r.created_at.unix_micros(),
            started_at: raw(r.started_at),
            finished_at: raw(r.finished_at),
            next_attempt_at: raw(r.next_attempt_at),
            duration_ms: r.duration_ms.unwrap_or(f64::NAN),
            label,
            queue,
            more,
            priority: r.priority,
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            status: r.status,
        }
    }

    /// What [`RunRecord::queued`] makes of `spec`, created at `created_at`, built without
    /// the full record.
    fn queued(
        id: RunId,
        created_at: Timestamp,
        (spec, (timeout, retry)): (AdmittedSpec, (Option<Duration>, Option<RetryPolicy>)),
        idempotency_key: Option<String>,
        mut links: Links,
        strings: &mut Interner,
    ) -> Stored {
        let label = strings.intern(&spec.label);
        let queue = strings.intern(spec.queue_name());
        let max_attempts = retry.map_or(1, |r| r.max_attempts.max(1));
        let AdmittedSpec {
            name,
            params,
            priority,
            rare,
            ..
        } = spec;
        let RareSpec {
            kind,
            partition_key,
            trace_parent,
        } = rare.map(|r| *r).unwrap_or_default();
        let waiting = !links.depends_on.is_empty();
        links.timeout = timeout;
        links.retry = retry;
        links.trace_parent = trace_parent;
        let links = links.boxed();
        let plain = links.is_none()
            && name.is_none()
            && params.is_empty()
            && kind.is_none()
            && idempotency_key.is_none()
            && partition_key.is_none();
        let more = (!plain).then(|| {
            Box::new(More {
                name,
                params,
                kind,
                idempotency_key,
                partition_key: partition_key.map(Arc::from),
                links,
                ..More::default()
            })
        });
        Stored {
            id,
            created_at: created_at.unix_micros(),
            started_at: UNSET,
            finished_at: UNSET,
            next_attempt_at: UNSET,
            duration_ms: f64::NAN,
            label,
            queue,
            more,
            priority,
            attempt: 1,
            max_attempts,
            status: if waiting {
                RunStatus::Waiting
            } else {
                RunStatus::Queued
            },
        }
    }

    pub(crate) fn id(&self) -> RunId {
        self.id
    }

    /// The label, shared.
    pub(crate) fn shared_label(&self) -> &Arc<str> {
        &self.label
    }

    /// The queue name, shared.
    pub(crate) fn shared_queue(&self) -> &Arc<str> {
        &self.queue
    }

    /// When the run may start again, while it waits for a retry or a snooze.
    pub(crate) fn next_attempt_at(&self) -> Option<Timestamp> {
        micros(self.next_attempt_at)
    }

    /// The partition key, shared.
    pub(crate) fn partition_key(&self) -> Option<&Arc<str>> {
        self.more.as_deref()?.partition_key.as_ref()
    }

    pub(crate) fn priority(&self) -> i32 {
        self.priority
    }

    pub(super) fn status(&self) -> RunStatus {
        self.status
    }

    pub(super) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.attempt
    }

    pub(super) fn finished_at(&self) -> Option<Timestamp> {
        micros(self.finished_at)
    }

    /// From the first start (or creation) to the end, once ended.
    pub(super) fn duration_ms(&self) -> Option<f64> {
        (!self.duration_ms.is_nan()).then_some(self.duration_ms)
    }

    pub(super) fn started_at(&self) -> Option<Timestamp> {
        micros(self.started_at)
    }

    pub(super) fn created_at(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.created_at)
    }

    pub(super) fn error(&self) -> Option<&RunError> {
        self.more.as_ref()?.error.as_ref()
    }

    /// For a run queued again after a failed attempt: that attempt's error.
    pub(super) fn retried_for(&self) -> Option<&RunError> {
        if self.status != RunStatus::Queued || self.attempt < 2 {
            return None;
        }
        self.more.as_ref()?.attempt_errors.last()
    }

    fn more_mut(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    /// Records a progress report (active runs only); `false` if the run has ended.
    pub(super) fn set_progress(&mut self, progress: Progress) -> bool {
        if self.status.is_terminal() {
            return false;
        }
        self.more_mut().progress = Some(progress);
        true
    }

    /// Records a process run's exit code (active runs only); `false` if the run has ended.
    pub(super) fn set_exit_code(&mut self, code: i32) -> bool {
        if self.status.is_terminal() {
            return false;
        }
        self.more_mut().exit_code = Some(code);
        true
    }

    /// Records when a rate limit lets the queued run start (queued runs only).
    pub(super) fn set_eligible_at(&mut self, at: Timestamp) {
        if self.status == RunStatus::Queued {
            self.more_mut().eligible_at = Some(at);
        }
    }

    /// The full record, as queries answer it.
    pub(super) fn to_record(&self) -> RunRecord {
        let more = self.more.as_deref();
        RunRecord {
            id: self.id,
            label: self.label.to_string(),
            name: more
                .and_then(|m| m.name.clone())
                .unwrap_or_else(|| self.label.to_string()),
            params: more.map(|m| m.params.clone()).unwrap_or_default(),
            status: self.status,
            created_at: self.created_at(),
            started_at: micros(self.started_at),
            finished_at: micros(self.finished_at),
            duration_ms: (!self.duration_ms.is_nan()).then_some(self.duration_ms),
            error: more.and_then(|m| m.error.clone()),
            cancelled_by: more.and_then(|m| m.cancelled_by),
            queue: self.queue.to_string(),
            priority: self.priority,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            attempt_errors: more.map(|m| m.attempt_errors.clone()).unwrap_or_default(),
            next_attempt_at: micros(self.next_attempt_at),
            snoozes: more.map_or(0, |m| m.snoozes),
            progress: more.and_then(|m| m.progress.clone()),
            result: more.and_then(|m| m.result.clone()),
            exit_code: more.and_then(|m| m.exit_code),
            kind: more.and_then(|m| m.kind.clone()),
            idempotency_key: more.and_then(|m| m.idempotency_key.clone()),
            partition_key: more.and_then(|m| m.partition_key.as_deref().map(str::to_owned)),
            eligible_at: more.and_then(|m| m.eligible_at),
            timeout: self.links().and_then(|l| l.timeout),
            retry: self.links().and_then(|l| l.retry),
            depends_on: self
                .links()
                .map(|l| l.depends_on.clone())
                .unwrap_or_default(),
            workflow: self.links().and_then(|l| l.workflow),
            step: self.links().and_then(|l| l.step.clone()),
            rerun_of: self.links().and_then(|l| l.rerun_of),
            reruns: self.links().map(|l| l.reruns.clone()).unwrap_or_default(),
            trace_parent: self.links().and_then(|l| l.trace_parent.clone()),
        }
    }

    /// What its span shows beyond id, label, queue and attempt, and the trace it continues;
    /// `None` for a plain run (no kind, its label as name, no trace).
    pub(crate) fn span_info(&self) -> Option<RunSpanInfo> {
        let more = self.more.as_deref()?;
        let trace_parent = more.links.as_ref().and_then(|l| l.trace_parent.clone());
        if more.name.is_none() && more.kind.is_none() && trace_parent.is_none() {
            return None;
        }
        Some(RunSpanInfo {
            name: more.name.clone(),
            kind: more.kind.clone(),
            trace_parent,
        })
    }

    /// Its limits and links, if it has any.
    pub(crate) fn links(&self) -> Option<&Links> {
        self.more.as_ref()?.links.as_deref()
    }

    /// Records a re-run of this run (a link, not a change of its status).
    pub(super) fn add_rerun(&mut self, rerun: RunId) {
        self.more_mut()
            .links
            .get_or_insert_with(Box::default)
            .reruns
            .push(rerun);
    }

    /// The fields a listing filters on.
    pub(crate) fn fields(&self) -> RecordFields<'_> {
        RecordFields {
            status: self.status,
            label: &self.label,
            queue: &self.queue,
            kind: self.kind(),
            workflow: self.links().and_then(|l| l.workflow),
            created_at: self.created_at(),
            finished_at: self.finished_at(),
            name: self
                .more
                .as_deref()
                .and_then(|m| m.name.as_deref())
                .unwrap_or(&self.label),
            id: self.id,
        }
    }

    /// How it ended (or stands), as a dependent's job reads it.
    pub(crate) fn outcome(&self) -> DependencyOutcome {
        let more = self.more.as_deref();
        DependencyOutcome {
            run: self.id,
            step: self.links().and_then(|l| l.step.clone()),
            status: self.status,
            result: more.and_then(|m| m.result.clone()),
            error: more.and_then(|m| m.error.clone()),
        }
    }

    /// Its kind, if it was submitted by kind.
    pub(crate) fn kind(&self) -> Option<&str> {
        self.more.as_ref()?.kind.as_deref()
    }
}

impl Lifecycle for Stored {
    fn id(&self) -> RunId {
        self.id
    }
    fn status(&self) -> RunStatus {
        self.status
    }
    fn set_status(&mut self, status: RunStatus) {
        self.status = status;
        if let Some(m) = self.more.as_deref_mut() {
            m.eligible_at = None;
        }
    }
    fn created_at(&self) -> Timestamp {
        Timestamp::from_unix_micros(self.created_at)
    }
    fn started_at(&self) -> Option<Timestamp> {
        micros(self.started_at)
    }
    fn set_started_at(&mut self, at: Timestamp) {
        self.started_at = at.unix_micros();
    }
    fn set_finished(&mut self, at: Timestamp, duration_ms: f64) {
        self.finished_at = at.unix_micros();
        self.duration_ms = duration_ms;
    }
    fn set_next_attempt_at(&mut self, at: Option<Timestamp>) {
        self.next_attempt_at = raw(at);
    }
    fn attempt(&self) -> u32 {
        self.attempt
    }
    fn set_attempt(&mut self, attempt: u32) {
        self.attempt = attempt;
    }
    fn max_attempts(&self) -> u32 {
        self.max_attempts
    }
    fn set_max_attempts(&mut self, max: u32) {
        self.max_attempts = max;
    }
    fn snoozes(&self) -> u32 {
        self.more.as_ref().map_or(0, |m| m.snoozes)
    }
    fn set_snoozes(&mut self, n: u32) {
        self.more_mut().snoozes = n;
    }
    fn push_attempt_error(&mut self, error: RunError) {
        self.more_mut().attempt_errors.push(error);
    }
    fn clear_progress(&mut self) {
        if let Some(more) = &mut self.more {
            more.progress = None;
        }
    }
    fn set_outcome(&mut self, outcome: Outcome) {
        match outcome {
            // A plain completed run stays plain: nothing to keep.
            Outcome::Completed(None) => {}
            Outcome::Completed(Some(result)) => self.more_mut().result = Some(result),
            Outcome::Failed { kind, message } => {
                self.more_mut().error = Some(RunError::new(kind.into(), message));
            }
            Outcome::Cancelled { by, kind, message } => {
                let more = self.more_mut();
                more.error = Some(RunError::new(kind.into(), message));
                more.cancelled_by = Some(by);
            }
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

    pub(super) fn get(&self, id: &RunId) -> Option<&Stored> {
        self.slots.get(self.position(id)?)?.as_ref()
    }

    pub(super) fn get_mut(&mut self, id: &RunId) -> Option<&mut Stored> {
        let pos = self.position(id)?;
        self.slots.get_mut(pos)?.as_mut()
    }

    /// Every record, oldest first.
    pub(super) fn iter(&self) -> impl DoubleEndedIterator<Item = &Stored> {
        self.slots.iter().flatten()
    }

    /// The compact form of a full record, sharing this registry's strings.
    pub(super) fn make(&mut self, record: RunRecord) -> Stored {
        Stored::from_record(record, &mut self.strings)
    }

    /// The compact form of a new run submitted with `spec`.
    pub(super) fn make_queued(
        &mut self,
        id: RunId,
        created_at: Timestamp,
        spec: (AdmittedSpec, (Option<Duration>, Option<RetryPolicy>)),
        idempotency_key: Option<String>,
        links: Links,
    ) -> Stored {
        Stored::queued(
            id,
            created_at,
            spec,
            idempotency_key,
            links,
            &mut self.strings,
        )
    }

    /// Adds a record (a new run, or one loaded from the store). A record with an id already
    /// held replaces it in place.
    pub(super) fn insert(&mut self, record: RunRecord) {
        let stored = self.make(record);
        self.insert_stored(stored);
    }

    /// Adds a record in its compact form (see [`Records::insert`]).
    pub(super) fn insert_stored(&mut self, stored: Stored) {
        let id = stored.id;
        if let Some(held) = self.get_mut(&id) {
            *held = stored;
            return;
        }
        // Holes are dropped rather than the array grown: a record that stays at the front (a
        // long run) must not make retention's removals behind it reallocate the array.
        if self.holes > 0 && self.slots.len() == self.slots.capacity() {
            self.compact();
        }
        self.index.insert(id, self.base + self.slots.len() as u64);
        self.slots.push_back(Some(stored));
    }

    pub(super) fn remove(&mut self, id: &RunId) {
        let Some(seq) = self.index.remove(id) else {
            return;
        };
        if let Some(slot) = self.slots.get_mut((seq - self.base) as usize) {
            if let Some(gone) = slot.take() {
                self.strings.release(&gone.label);
                self.strings.release(&gone.queue);
            }
            self.holes += 1;
        }
        // Retention and the memory window remove the oldest records: usually the front.
        while let Some(None) = self.slots.front() {
            self.slots.pop_front();
            self.base += 1;
            self.holes -= 1;
        }
        // A quarter: iteration (listing, retention) never walks many more holes than records.
        if self.holes > 1024 && self.holes * 4 > self.slots.len() {
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
    /// after.
    pub(super) fn apply(
        &mut self,
        id: RunId,
        t: Transition,
    ) -> Result<(RunStatus, RunStatus), TransitionError> {
        let run = self.get_mut(&id).ok_or(TransitionError::UnknownRun(id))?;
        let from = run.status;
        apply_transition(run, t)?;
        Ok((from, run.status))
    }

    /// Forgets interned strings no record uses any more. Removing a record already releases
    /// its label unless something else (a running worker) still shared it at that moment;
    /// this sweeps those, and only does the work when they could have piled up.
    pub(super) fn shed(&mut self) {
        if self.strings.0.len() > 2 * self.index.len() + 1024 {
            self.strings.shed();
        }
    }
}

/// Labels and queue names shared by the records that use them.
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

    /// Forgets `s` if the record that held it was its last user (the interner holds one
    /// reference and the caller's record the other).
    fn release(&mut self, s: &Arc<str>) {
        if Arc::strong_count(s) == 2 {
            self.0.remove(&**s);
        }
    }

    fn shed(&mut self) {
        self.0.retain(|s| Arc::strong_count(s) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::Json;
    use crate::run::{FailureKind, RetryPolicy, RunSpec};
    use proptest::prelude::*;

    fn finished(spec: RunSpec, t: Transition) -> RunRecord {
        let mut r = RunRecord::queued(RunId::new(), spec);
        r.apply(Transition::Started {
            at: Timestamp::now(),
        })
        .expect("start");
        r.apply(t).expect("end");
        r
    }

    #[test]
    fn a_stored_record_reads_back_exactly() {
        let mut records = Records::default();
        let spec = RunSpec::new("label")
            .name("another name")
            .queue("q")
            .param("n", 3i64);
        let mut rich = finished(spec, Transition::failed(FailureKind::Returned, "boom"));
        rich.exit_code = Some(3);
        rich.idempotency_key = Some("k".into());
        rich.partition_key = Some("tenant".into());
        rich.snoozes = 2;
        let cases = [
            RunRecord::queued(RunId::new(), RunSpec::new("queued")),
            finished(RunSpec::new("plain"), Transition::completed()),
            finished(
                RunSpec::new("result"),
                Transition::completed_with(Some(Json::from("v"))),
            ),
            rich,
        ];
        for want in cases {
            records.insert(want.clone());
            let got = records.get(&want.id).expect("held").to_record();
            assert_eq!(got, want);
        }
    }

    fn any_step() -> impl Strategy<Value = Transition> {
        // The run module's transitions, plus recoveries and results on completion.
        (crate::run::tests::any_transition(), 0u8..8).prop_map(|(t, pick)| match (t, pick) {
            (Transition::Started { at }, 0) => Transition::Recovered { at },
            (
                Transition::Finished {
                    at,
                    outcome: Outcome::Completed(None),
                },
                p,
            ) if p < 4 => Transition::Finished {
                at,
                outcome: Outcome::Completed(Some(Json::from(i64::from(p)))),
            },
            (t, _) => t,
        })
    }

    proptest! {
        // The compact form goes through the same state machine as a full record: after every
        // transition, legal or not, both give the same answer and the same record.
        #[test]
        fn the_compact_form_follows_the_state_machine_exactly(
            ts in prop::collection::vec(any_step(), 0..30)
        ) {
            let mut full = RunRecord::queued(
                RunId::new(),
                RunSpec::new("p").retry(RetryPolicy::attempts(3)),
            );
            let mut records = Records::default();
            records.insert(full.clone());
            for t in ts {
                let want = full.apply(t.clone()).map(|()| full.status);
                let got = records.apply(full.id, t).map(|(_, to)| to);
                prop_assert_eq!(got, want);
                let stored = records.get(&full.id).expect("held").to_record();
                prop_assert_eq!(&stored, &full);
            }
        }
    }

    #[test]
    fn a_submitted_spec_is_stored_as_the_queued_record_would_be() {
        let mut records = Records::default();
        let specs = [
            RunSpec::new("plain"),
            RunSpec::new("named").name("a name").queue("q").priority(3),
            RunSpec::new("rich")
                .param("n", 1i64)
                .retry(RetryPolicy::attempts(4)),
            RunSpec::new("keyed").partition_key("customer-7"),
            RunSpec::new("limited")
                .timeout(std::time::Duration::from_millis(1500))
                .trace_parent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            RunSpec {
                kind: Some("a kind".to_owned()),
                ..RunSpec::new("by kind").name("by kind, named")
            },
        ];
        for (i, spec) in specs.into_iter().enumerate() {
            let mut want = RunRecord::queued(RunId::new(), spec.clone());
            let key = (i == 2).then(|| "key".to_owned());
            want.idempotency_key = key.clone();
            let limits = (spec.timeout, spec.retry);
            let travelling = (AdmittedSpec::new(spec), limits);
            let stored =
                records.make_queued(want.id, want.created_at, travelling, key, Links::default());
            assert_eq!(stored.to_record(), want);
        }
    }

    #[test]
    fn progress_and_exit_codes_land_on_active_runs_only() {
        let mut records = Records::default();
        let r = RunRecord::queued(RunId::new(), RunSpec::new("x"));
        let id = r.id;
        records.insert(r);
        let stored = records.get_mut(&id).expect("held");
        assert!(stored.set_exit_code(7));
        assert!(stored.set_progress(Progress::percent(50.0)));
        records
            .apply(
                id,
                Transition::Started {
                    at: Timestamp::now(),
                },
            )
            .expect("start");
        records.apply(id, Transition::completed()).expect("end");
        let stored = records.get_mut(&id).expect("held");
        assert!(
            !stored.set_exit_code(9),
            "a finished run keeps its last exit code"
        );
        let r = stored.to_record();
        assert_eq!(r.exit_code, Some(7));
        assert_eq!(r.progress, Some(Progress::percent(50.0)));
    }

    #[test]
    fn iteration_follows_arrival_and_skips_removed_records() {
        let mut records = Records::default();
        let ids: Vec<RunId> = (0..3000).map(|_| RunId::new()).collect();
        for id in &ids {
            records.insert(RunRecord::queued(*id, RunSpec::new("x")));
        }
        // Remove every third record (in the middle) and the first hundred (from the front).
        let mut kept = vec![];
        for (i, id) in ids.iter().enumerate() {
            if i % 3 == 1 || i < 100 {
                records.remove(id);
            } else {
                kept.push(*id);
            }
        }
        let seen: Vec<RunId> = records.iter().map(Stored::id).collect();
        assert_eq!(seen, kept);
        let newest_first: Vec<RunId> = records.iter().rev().map(Stored::id).collect();
        kept.reverse();
        assert_eq!(newest_first, kept);
        assert_eq!(records.len(), kept.len());
        assert!(records.slots.len() < ids.len(), "holes were dropped");
        assert_eq!(records.holes, records.slots.len() - kept.len());
        for (i, id) in ids.iter().enumerate() {
            let held = !(i % 3 == 1 || i < 100);
            assert_eq!(records.contains(id), held);
            assert_eq!(records.get(id).map(Stored::id), held.then_some(*id));
        }
    }

    #[test]
    fn holes_behind_a_long_running_record_are_compacted_away() {
        let mut records = Records::default();
        let ids: Vec<RunId> = (0..6000).map(|_| RunId::new()).collect();
        for id in &ids {
            records.insert(RunRecord::queued(*id, RunSpec::new("x")));
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
        assert_eq!(records.iter().map(Stored::id).collect::<Vec<_>>(), kept);
        for id in &kept {
            assert_eq!(records.get(id).map(Stored::id), Some(*id));
        }
        // Records added after a compaction are found too.
        let late = RunId::new();
        records.insert(RunRecord::queued(late, RunSpec::new("x")));
        assert_eq!(records.get(&late).map(Stored::id), Some(late));
    }

    #[test]
    fn a_record_held_at_the_front_does_not_make_the_array_grow() {
        // Retention removes the oldest finished records while the oldest of all stays active.
        let mut records = Records::with_capacity(2000);
        let capacity = records.slots.capacity();
        let long = RunId::new();
        records.insert(RunRecord::queued(long, RunSpec::new("long")));
        let mut live = std::collections::VecDeque::new();
        for _ in 0..20 * capacity {
            let id = RunId::new();
            records.insert(RunRecord::queued(id, RunSpec::new("short")));
            live.push_back(id);
            if live.len() > 1000 {
                let old = live.pop_front().expect("held");
                records.remove(&old);
            }
        }
        assert_eq!(records.slots.capacity(), capacity, "the array never grew");
        assert_eq!(records.len(), 1001);
        assert_eq!(records.get(&long).map(Stored::id), Some(long));
        let order: Vec<RunId> = records.iter().skip(1).map(Stored::id).collect();
        assert_eq!(order, Vec::from(live));
    }

    #[test]
    fn timestamps_at_the_epoch_are_kept() {
        // Unix time 0 is a time a clock can give (one set before 1970 is clamped to it).
        let mut r = RunRecord::queued(RunId::new(), RunSpec::new("x"));
        r.created_at = Timestamp::from_unix_micros(0);
        r.apply(Transition::Started {
            at: Timestamp::from_unix_micros(0),
        })
        .expect("start");
        r.apply(Transition::completed()).expect("end");
        r.finished_at = Some(Timestamp::from_unix_micros(0));
        let mut records = Records::default();
        records.insert(r.clone());
        assert_eq!(records.get(&r.id).expect("held").to_record(), r);
    }

    #[test]
    fn labels_are_shared_and_forgotten_with_their_records() {
        let mut records = Records::default();
        let ids: Vec<RunId> = (0..3).map(|_| RunId::new()).collect();
        for id in &ids {
            records.insert(RunRecord::queued(*id, RunSpec::new("shared")));
        }
        assert_eq!(records.strings.0.len(), 2, "one label and one queue name");
        records.remove(&ids[0]);
        records.remove(&ids[1]);
        assert_eq!(records.strings.0.len(), 2, "still used by the third record");
        records.remove(&ids[2]);
        assert!(
            records.strings.0.is_empty(),
            "released with their last record"
        );
    }
}
