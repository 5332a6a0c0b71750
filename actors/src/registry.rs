//! The registry actor: the single owner of run records.
//!
//! Every status change reaches it as a message; it checks each against the run state machine
//! ([`RunRecord::apply`]) and answers queries from its own state. Nothing else holds a copy
//! that others read: there is no shared map behind a lock.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::oneshot;

use crate::error::{CancelError, NotFound, StoreError, SubmitError};
use crate::event::{EventFilter, RunEvent, Subscription};
use crate::hash::IdSet;
use crate::log::LogSink;
use crate::protocol::registry::{
    BatchReply, Dedup, OnConflict, RegistryMessage, RegistryStats, RegistryStep, Retention,
};
use crate::protocol::run::{Admission, CancelOutcome, CancelReply, PreparedRun, Submission};
use crate::protocol::supervisor::{SupervisorMessage, SupervisorStep};
use crate::query::{ListQuery, RunPage};
use crate::run::Dependency;
use crate::run::{FailureKind, Progress, RunId, RunRecord, RunStatus, Transition, TransitionError};
use crate::store::{RunStore, StoreWrite, StoredState};
use crate::task::AbortOnDrop;
use crate::time::Timestamp;

mod acks;
mod active;
mod deps;
mod keys;
mod records;
mod retention;
mod subscribers;
mod tally;
mod writer;

use acks::{Acks, Held};
use active::Active;
use deps::{Deps, Found, Verdict};
use keys::{Keys, Replacing, UniqueSubmit};
use records::{Links, Records, Stored};
use subscribers::{Subscribers, Waiter};
use tally::{Seen, Tally};
use writer::{StoreOp, StoreWriter};

/// The registry actor. Stateless itself; see [`RegistryState`].
#[derive(Debug, Default, Clone, Copy)]
pub struct RegistryActor;

/// The status event for a record in its current state (what [`RunEvent::from_record`] gives
/// for the full record).
fn status_event(r: &Stored) -> RunEvent {
    RunEvent::Status {
        run_id: r.id(),
        label: r.label().to_owned(),
        status: r.status(),
        attempt: r.attempt(),
        error: r.error().or_else(|| r.retried_for()).cloned(),
        at: r.finished_at().or(r.started_at()).unwrap_or(r.created_at()),
    }
}

/// Start-up input of the registry.
pub struct RegistryArguments {
    /// The supervisor that receives the jobs of inserted runs.
    pub supervisor: ActorRef<SupervisorMessage>,
    /// How long a finished run keeps its idempotency key.
    pub dedup_window: Duration,
    /// How many events a subscriber may fall behind before it lags.
    pub event_buffer: usize,
    /// Told of every run's end (so log followers always get it).
    pub logs: Option<Arc<dyn LogSink>>,
    /// The durable store and what was loaded from it; `None`: records live only in memory.
    pub store: Option<(Box<dyn RunStore>, StoredState)>,
    /// Retention of finished runs.
    pub retention: Retention,
}

impl fmt::Debug for RegistryArguments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryArguments")
            .field("durable", &self.store.is_some())
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// The registry's data: the records it holds in memory, indexes kept in step with them, and
/// (in durable mode) the writer thread and the acknowledgements waiting for it.
pub struct RegistryState {
    supervisor: ActorRef<SupervisorMessage>,
    /// Records by id, iterated in the order the registry accepted them (newest first for
    /// listings; for runs of one submitter that is creation order). With a store this is every
    /// active run plus a window of recent finished ones.
    records: Records,
    /// The ids of active runs, by status.
    active: Active,
    /// With a store: the finished runs held in memory, in the order they ended (the memory
    /// window evicts from its front). Unused without a store, where retention scans records.
    finished: VecDeque<RunId>,
    /// Per-status counts over every record (memory and store), so counting never scans.
    stats: RegistryStats,
    /// Counters of what runs did since start: ends, retries, durations, queue waits.
    tally: Tally,
    /// Waiting callers and event subscribers.
    subscribers: Subscribers,
    /// Idempotency keys and the run holding each.
    keys: Keys,
    /// The runs waiting for others, and whom they wait for.
    deps: Deps,
    /// The active runs that depend on others (waiting or released): retention keeps their
    /// dependencies' records. Empty without workflows, so it costs nothing then.
    linked: IdSet<RunId>,
    logs: Option<Arc<dyn LogSink>>,
    store: Option<StoreWriter>,
    /// The store writes' numbering and the acknowledgements waiting for them to commit.
    acks: Acks,
    /// While a batch submit is recorded: its store writes, sent together when it is done (so
    /// the batch is one transaction), with the last one's number.
    batch_writes: Option<(Vec<StoreWrite>, u64)>,
    retention: Retention,
    /// A retention pass is waiting for the store's answer: no second one is started, so no
    /// run is counted out twice.
    pruning: bool,
    _prune_timer: Option<AbortOnDrop<()>>,
}

impl fmt::Debug for RegistryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryState")
            .field("records", &self.records.len())
            .field("durable", &self.store.is_some())
            .field("held", &self.acks.waiting())
            .finish_non_exhaustive()
    }
}

impl RegistryState {
    /// Sends the record's current state to the store (if any); returns the write's number.
    fn persist(&mut self, id: RunId) {
        if self.store.is_none() {
            return;
        }
        if let Some(record) = self.records.get(&id) {
            self.persist_record(Box::new(record.to_record()));
        }
    }

    /// Sends this state of a run to the store (if any).
    fn persist_record(&mut self, record: Box<RunRecord>) {
        let Some(store) = &self.store else {
            return;
        };
        let seq = self.acks.next_write();
        let id = record.id;
        if let Some((writes, last)) = &mut self.batch_writes {
            writes.push(StoreWrite::Put(record));
            *last = seq;
            return;
        }
        if !store.send(StoreOp::Write(seq, StoreWrite::Put(record))) {
            tracing::error!(run_id = %id, "store writer is gone; change not persisted");
        }
    }

    /// Delivers an acknowledgement now, or holds it until the last write is committed.
    fn deliver(&mut self, h: Held) {
        if let Some(h) = self.acks.hold(self.store.is_some(), h) {
            self.send_held(h, None);
        }
    }

    fn send_held(&mut self, h: Held, failure: Option<&StoreError>) {
        match h {
            Held::Event(e) => self.publish(e),
            Held::Ended {
                id,
                status,
                record,
                waiters,
                first,
            } => {
                if let (true, Some(logs)) = (first, &self.logs) {
                    logs.run_ended(id, status);
                }
                if let Some(record) = record {
                    for w in waiters {
                        // A waiter that gave up (dropped its receiver) is simply skipped.
                        let _ = w.send(Ok((*record).clone()));
                    }
                }
            }
            Held::Submitted(id, reply) => {
                let _ = reply.send(match failure {
                    Some(e) => Err(SubmitError::Store(e.clone())),
                    None => Ok(id),
                });
            }
            Held::Dedup(answer, reply) => {
                let _ = reply.send(answer);
            }
            Held::Batch(mut answers, reply) => {
                if let Some(e) = failure {
                    for answer in &mut answers {
                        if answer.is_ok() {
                            *answer = Err(SubmitError::Store(e.clone()));
                        }
                    }
                }
                let _ = reply.send(answers);
            }
        }
    }

    fn committed(&mut self, up_to: u64, failure: Option<StoreError>) {
        self.acks.committed(up_to);
        while let Some(h) = self.acks.next_released() {
            self.send_held(h, failure.as_ref());
        }
    }

    fn insert(&mut self, record: Stored) -> Result<(), TransitionError> {
        let id = record.id();
        if self.records.contains(&id) {
            return Err(TransitionError::DuplicateId(id));
        }
        tracing::debug!(run_id = %id, label = %record.label(), "run queued");
        self.stats.by_status[record.status().index()] += 1;
        self.active.moved(id, None, record.status());
        let event = self.publishing().then(|| status_event(&record));
        if self.store.is_some() {
            self.persist_record(Box::new(record.to_record()));
        }
        self.records.insert_stored(record);
        self.note_links(id);
        if let Some(e) = event {
            self.deliver(Held::Event(e));
        }
        Ok(())
    }

    /// Whether anyone listens; events are only built when someone does.
    fn publishing(&self) -> bool {
        self.subscribers.publishing()
    }

    fn publish(&self, event: RunEvent) {
        self.subscribers.publish(event);
    }

    fn transition(&mut self, id: RunId, t: Transition) -> Result<(), TransitionError> {
        let seen = Seen::of(&t, || {
            self.records
                .get(&id)
                .is_some_and(|r| r.started_at().is_none())
        });
        let (from, to) = self.records.apply(id, t)?;
        if let Some(r) = self.records.get(&id) {
            self.tally.saw(r, seen);
        }
        self.stats.by_status[from.index()] -= 1;
        self.stats.by_status[to.index()] += 1;
        let running = self.stats.by_status[RunStatus::Running.index()];
        self.stats.peak_running = self.stats.peak_running.max(running);
        self.active.moved(id, Some(from), to);
        tracing::debug!(run_id = %id, %from, %to, "run transition");
        // The event goes out before the waiters are answered: a subscriber that also waits on
        // the run's end (see `Subscription::terminal`) finds the event already in its buffer.
        let event = match self.records.get(&id) {
            Some(r) if self.publishing() => Some(status_event(r)),
            _ => None,
        };
        if !to.is_terminal() {
            self.persist(id);
            if let Some(e) = event {
                self.deliver(Held::Event(e));
            }
            return Ok(());
        }
        // The run ended: its full record goes to the store (it is the write) and to the
        // callers waiting on the run; without either, none is built.
        let waiters = self.subscribers.take_waiters(id);
        let full = match self.records.get(&id) {
            Some(r) if self.store.is_some() || !waiters.is_empty() => Some(Box::new(r.to_record())),
            _ => None,
        };
        let record = match full {
            Some(full) if waiters.is_empty() => {
                self.persist_record(full);
                None
            }
            Some(full) => {
                if self.store.is_some() {
                    self.persist_record(full.clone());
                }
                Some(full)
            }
            None => None,
        };
        if let Some(e) = event {
            self.deliver(Held::Event(e));
        }
        self.deliver(Held::Ended {
            id,
            status: to,
            record,
            waiters,
            first: true,
        });
        if !self.linked.is_empty() {
            self.linked.remove(&id);
        }
        // Dependents learn of the end before the window may evict the record.
        self.dependency_ended(id);
        if self.store.is_some() {
            self.finished.push_back(id);
            self.evict_beyond_window();
        }
        let finished = self.stats.total() - self.active.len();
        if !self.pruning && retention::due(&self.retention, finished, self.store.is_some()) {
            self.retention_pass();
        }
        Ok(())
    }

    /// Run `id` has ended: the runs waiting for it that are now decided are released or
    /// cancelled. (Free when nothing waits: one lookup.)
    fn dependency_ended(&mut self, id: RunId) {
        if !self.deps.waits_on(id) {
            return;
        }
        let Some(outcome) = self.records.get(&id).map(Stored::outcome) else {
            return;
        };
        for (dependent, verdict) in self.deps.ended(&outcome) {
            self.verdict(dependent, verdict);
        }
    }

    /// Carries out the verdict on a waiting run the supervisor already holds.
    fn verdict(&mut self, id: RunId, verdict: Verdict) {
        let step = match verdict {
            Verdict::Wait => return,
            Verdict::Release(outcomes) => {
                let released = Transition::Released {
                    at: Timestamp::now(),
                };
                if let Err(e) = self.transition(id, released) {
                    refuse(self, &e);
                    return;
                }
                SupervisorStep::DependenciesMet(Box::new((id, outcomes)))
            }
            Verdict::Cancel(message) => SupervisorStep::DependencyFailed(Box::new((id, message))),
        };
        if let Err(e) = self.supervisor.cast(step.into()) {
            tracing::error!(run_id = %id, error = %e, "supervisor unreachable; waiting run not resolved");
        }
    }

    /// Hands a newly recorded waiting run to the supervisor with its verdict: held until its
    /// dependencies end, released now, or held and cancelled at once.
    fn start_waiting(&mut self, id: RunId, mut run: Box<PreparedRun>, verdict: Verdict) {
        match verdict {
            Verdict::Release(outcomes) => {
                let released = Transition::Released {
                    at: Timestamp::now(),
                };
                if let Err(e) = self.transition(id, released) {
                    refuse(self, &e);
                }
                run.set_dependencies(outcomes);
                self.start(id, run);
            }
            Verdict::Wait => {
                run.awaiting = true;
                self.start(id, run);
            }
            Verdict::Cancel(message) => {
                run.awaiting = true;
                self.start(id, run);
                self.verdict(id, Verdict::Cancel(message));
            }
        }
    }

    /// The verdict on waiting run `id` over `deps`, from the records held now; the run is
    /// registered as waiting if it must wait.
    fn judge(&mut self, id: RunId, deps: &[Dependency]) -> Verdict {
        let records = &self.records;
        self.deps.add(id, deps, |dep| match records.get(&dep) {
            None => Found::Unknown,
            Some(r) if r.status().is_active() => Found::Active,
            Some(r) => Found::Ended(r.outcome()),
        })
    }

    /// After a restart: every waiting record is judged again against the reloaded records,
    /// and a decided one (its dependency ended while the registry was down) is carried out.
    fn rejudge_waiting(&mut self) {
        self.deps.clear();
        let waiting: Vec<(RunId, Vec<Dependency>)> = self
            .active
            .of(RunStatus::Waiting)
            .into_iter()
            .flatten()
            .filter_map(|id| {
                let deps = self.records.get(id)?.links()?.depends_on.clone();
                Some((*id, deps))
            })
            .collect();
        for (id, deps) in waiting {
            let verdict = self.judge(id, &deps);
            self.verdict(id, verdict);
        }
    }

    /// The runs an active run depends on. Their records are kept (in memory and in the
    /// store) while it is active: a waiting run judged again after a restart, and a released
    /// one recovered after a crash, read them.
    fn needed_dependencies(&self) -> IdSet<RunId> {
        let mut needed = IdSet::default();
        for id in &self.linked {
            if let Some(links) = self.records.get(id).and_then(Stored::links) {
                needed.extend(links.depends_on.iter().map(|d| d.run));
            }
        }
        needed
    }

    /// Notes an active record that depends on others (see `linked`).
    fn note_links(&mut self, id: RunId) {
        if self
            .records
            .get(&id)
            .and_then(Stored::links)
            .is_some_and(|l| !l.depends_on.is_empty())
        {
            self.linked.insert(id);
        }
    }

    /// With a store, keeps only the most recent finished runs in memory; the store answers
    /// for the others.
    fn evict_beyond_window(&mut self) {
        if self.store.is_none() {
            return;
        }
        while self.finished.len() > self.retention.memory_window {
            if let Some(old) = self.finished.pop_front() {
                self.records.remove(&old);
            }
        }
    }

    /// One retention pass. In memory mode the registry finds the runs itself (oldest first);
    /// with a store it asks the store, which holds all of them, and prunes on its answer.
    fn retention_pass(&mut self) {
        let r = self.retention;
        let ended_before = Timestamp::now().saturating_sub(r.max_age);
        if let Some(store) = &self.store {
            if !self.pruning {
                self.pruning = store.send(StoreOp::Prunable {
                    ended_before,
                    keep: r.max_finished,
                    limit: r.batch,
                });
            }
            return;
        }
        let active = self.active.len();
        let keep = self.needed_dependencies();
        let ids = retention::in_memory(&self.records, &r, active, ended_before, &keep);
        self.prune(ids);
    }

    /// Forgets finished runs (retention): from memory, the counters and the store.
    fn prune(&mut self, ids: Vec<(RunId, RunStatus)>) {
        if ids.is_empty() {
            return;
        }
        let needed = self.needed_dependencies();
        let mut gone = Vec::with_capacity(ids.len());
        for (id, status) in ids {
            if self
                .records
                .get(&id)
                .is_some_and(|r| r.status().is_active())
                || needed.contains(&id)
            {
                continue;
            }
            self.records.remove(&id);
            self.stats.by_status[status.index()] -= 1;
            self.stats.pruned += 1;
            if let Some(store) = &self.store {
                let seq = self.acks.next_write();
                let _ = store.send(StoreOp::Write(seq, StoreWrite::Delete(id)));
            }
            gone.push(id);
        }
        if !self.finished.is_empty() {
            let set: IdSet<RunId> = gone.iter().copied().collect();
            self.finished.retain(|id| !set.contains(id));
        }
        self.records.shed();
        tracing::debug!(pruned = gone.len(), "retention pruned finished runs");
        if let Some(logs) = &self.logs {
            logs.runs_pruned(gone);
        }
    }

    fn list(&self, q: &ListQuery) -> RunPage {
        // A status filter alone on an indexed status: the index gives the total, and only the
        // page's records are looked up.
        if let (Some(index), false, None) = (
            q.status.and_then(|s| self.active.of(s)),
            q.filters_beyond_status(),
            q.after,
        ) {
            let runs = index
                .iter()
                .rev()
                .skip(q.offset)
                .take(q.limit)
                .filter_map(|id| self.records.get(id).map(Stored::to_record))
                .collect();
            return RunPage {
                runs,
                total: index.len(),
            };
        }
        // A finished status alone, with every record in memory: the counts give the total,
        // and the scan stops once the page is full (newest first).
        if let (Some(status), false, None, None) = (
            q.status.filter(|s| s.is_terminal()),
            q.filters_beyond_status(),
            &self.store,
            q.after,
        ) {
            let runs = self
                .records
                .iter()
                .rev()
                .filter(|r| r.status() == status)
                .skip(q.offset)
                .take(q.limit)
                .map(Stored::to_record)
                .collect();
            return RunPage {
                runs,
                total: self.stats.count(status),
            };
        }
        let mut runs = Vec::with_capacity(q.limit.min(1024));
        let mut total = 0;
        // With a cursor, the page starts after the cursor's run (or, if it is no longer held,
        // after the runs with a greater id); `offset` then counts from there.
        // An active status's index is ordered by id: its cursor compares ids. The full scan is
        // in arrival order: its cursor is a position, if the cursor's run is still held.
        let indexed = q.status.and_then(|s| self.active.of(s)).is_some();
        let cursor_held = !indexed && q.after.is_some_and(|c| self.records.contains(&c));
        let mut past_cursor = false;
        let mut skipped = 0;
        let mut visit = |r: &Stored| {
            let in_range = match q.after {
                None => true,
                Some(c) if cursor_held => {
                    let was = past_cursor;
                    past_cursor |= r.id() == c;
                    was
                }
                Some(c) => r.id() < c,
            };
            if q.matches_fields(r.fields()) {
                total += 1;
                if in_range && runs.len() < q.limit {
                    if skipped >= q.offset {
                        runs.push(r.to_record());
                    } else {
                        skipped += 1;
                    }
                }
            }
        };
        // Active statuses have an index: listing them scans those runs, not all history.
        match q.status.and_then(|s| self.active.of(s)) {
            Some(index) => index
                .iter()
                .rev()
                .filter_map(|id| self.records.get(id))
                .for_each(&mut visit),
            _ => self.records.iter().rev().for_each(&mut visit),
        }
        RunPage { runs, total }
    }

    /// The answer to a cancel of a run the supervisor does not hold, or `None` when the run
    /// is still active here.
    fn cancel_answer(&self, id: RunId) -> Option<Result<CancelOutcome, CancelError>> {
        match self.records.get(&id) {
            None => Some(Err(CancelError::NotFound(id))),
            Some(r) if r.status().is_terminal() => Some(Err(CancelError::AlreadyFinished {
                id,
                status: r.status(),
            })),
            Some(_) => None,
        }
    }

    /// Records a new run and hands its job to the supervisor.
    fn insert_and_start(
        &mut self,
        record: Stored,
        submission: Submission,
    ) -> Result<(), TransitionError> {
        let id = record.id();
        let run = prepared(&record, submission);
        if let Err(e) = self.insert(record) {
            refuse(self, &e);
            return Err(e);
        }
        self.start(id, run);
        Ok(())
    }

    /// Records and starts a run a submitter admitted (with its idempotency key, if any). A run
    /// with dependencies is recorded `Waiting` (refused if one is not held here); a re-run is
    /// linked from the run it re-runs.
    fn admit(&mut self, a: Box<Admission>, key: Option<String>) -> Result<RunId, SubmitError> {
        let Admission {
            id,
            created_at,
            spec,
            submission,
            links,
        } = *a;
        let spec = (spec, submission.limits());
        let Some(links) = links else {
            let record = self
                .records
                .make_queued(id, created_at, spec, key, Links::default());
            return self
                .insert_and_start(record, submission)
                .map(|()| id)
                .map_err(|_| SubmitError::Unavailable);
        };
        let deps = deps::merged(&links.depends_on);
        if let Some(unknown) = deps.iter().find(|d| !self.records.contains(&d.run)) {
            return Err(SubmitError::UnknownDependency(unknown.run));
        }
        let (workflow, step) = links
            .workflow
            .map_or((None, None), |(w, s)| (Some(w), Some(s)));
        let record_links = Links {
            depends_on: deps.clone(),
            workflow,
            step,
            rerun_of: links.rerun_of,
            ..Links::default()
        };
        let record = self
            .records
            .make_queued(id, created_at, spec, key, record_links);
        let run = prepared(&record, submission);
        if let Err(e) = self.insert(record) {
            refuse(self, &e);
            return Err(SubmitError::Unavailable);
        }
        if let Some(original) = links.rerun_of {
            // An original outside the memory window comes back into it to carry the link
            // (one held in memory already is newer than the copy the submitter read).
            if let (false, Some(record), true) = (
                self.records.contains(&original),
                links.original,
                self.store.is_some(),
            ) {
                self.records.insert(*record);
                self.finished.push_back(original);
            }
            if let Some(r) = self.records.get_mut(&original) {
                r.add_rerun(id);
                self.persist(original);
            }
            self.evict_beyond_window();
        }
        if deps.is_empty() {
            self.start(id, run);
        } else {
            let verdict = self.judge(id, &deps);
            self.start_waiting(id, run, verdict);
        }
        Ok(id)
    }

    /// A workflow's steps, in dependency order: all recorded (one store transaction) or none.
    #[allow(clippy::vec_box)] // each box goes on to `admit` as it is
    fn admit_workflow(&mut self, steps: Vec<Box<Admission>>, reply: BatchReply) {
        let own: crate::hash::IdSet<RunId> = steps.iter().map(|a| a.id).collect();
        let outside = steps
            .iter()
            .filter_map(|a| a.links.as_ref())
            .flat_map(|l| l.depends_on.iter())
            .find(|d| !own.contains(&d.run) && !self.records.contains(&d.run));
        if let Some(unknown) = outside {
            let error = SubmitError::UnknownDependency(unknown.run);
            let _ = reply.send(steps.iter().map(|_| Err(error.clone())).collect());
            return;
        }
        if self.store.is_some() {
            self.batch_writes = Some((Vec::with_capacity(steps.len()), 0));
        }
        let answers: Vec<_> = steps.into_iter().map(|a| self.admit(a, None)).collect();
        self.flush_batch();
        self.deliver(Held::Batch(answers, reply));
    }

    fn start(&mut self, id: RunId, run: Box<PreparedRun>) {
        if self
            .supervisor
            .cast(SupervisorStep::Start(run).into())
            .is_err()
        {
            // The run was accepted, so it must still end: record why it cannot run.
            let t = Transition::failed(
                FailureKind::SupervisorUnavailable,
                "the supervisor stopped before the run could start",
            );
            if let Err(e) = self.transition(id, t) {
                refuse(self, &e);
            }
        }
    }

    fn subscribe(&mut self, filter: EventFilter) -> Result<Subscription, NotFound> {
        let events = self.subscribers.receiver();
        let (current, terminal) = match &filter {
            EventFilter::Run(id) => {
                let record = self.records.get(id).ok_or(NotFound(*id))?.to_record();
                let terminal = record.status.is_active().then(|| {
                    let (tx, rx) = oneshot::channel();
                    self.subscribers.wait(*id, tx.into());
                    rx
                });
                (Some(record), terminal)
            }
            _ => (None, None),
        };
        Ok(Subscription {
            filter,
            events,
            current,
            terminal,
        })
    }

    /// Looks a run up in the store (for runs outside the memory window) and hands the answer
    /// to `then`, off the registry's thread. Without a store, the run is unknown.
    fn ask_store<T: Send + 'static>(
        &self,
        id: RunId,
        then: impl FnOnce(Result<RunRecord, NotFound>) -> T + Send + 'static,
        reply: RpcReplyPort<T>,
    ) {
        let Some(store) = &self.store else {
            let _ = reply.send(then(Err(NotFound(id))));
            return;
        };
        let (tx, rx) = oneshot::channel();
        if !store.send(StoreOp::Get(id, tx.into())) {
            let _ = reply.send(then(Err(NotFound(id))));
            return;
        }
        tokio::spawn(async move {
            let answer = rx.await.unwrap_or(Err(NotFound(id)));
            let _ = reply.send(then(answer));
        });
    }
}

impl RegistryState {
    /// Takes in what was loaded from the store: its counts, and the records of every active
    /// run and of the most recent finished ones.
    fn load(&mut self, loaded: StoredState) {
        self.stats.by_status = loaded.counts;
        self.linked.clear();
        let mut records = loaded.records;
        // Ids are time-ordered: oldest first, as they arrived.
        records.sort_by_key(|r| r.id);
        // The finished runs an active run depends on stay in memory, out of the window's
        // reach: the active runs are judged (or given their outcomes) by the messages that
        // follow, and the window may move before those arrive.
        let pinned: IdSet<RunId> = records
            .iter()
            .filter(|r| r.status.is_active())
            .flat_map(|r| r.depends_on.iter().map(|d| d.run))
            .collect();
        for r in records {
            self.active.moved(r.id, None, r.status);
            if r.status.is_terminal() && !pinned.contains(&r.id) {
                self.finished.push_back(r.id);
            }
            if let Some(key) = &r.idempotency_key {
                self.keys.insert(key.clone(), r.id);
            }
            let (id, linked) = (r.id, r.status.is_active() && !r.depends_on.is_empty());
            self.records.insert(r);
            if linked {
                self.linked.insert(id);
            }
        }
    }

    /// Restarts the registry's state after a failure: every record is loaded again from the
    /// store, after every write sent before the failure. What lives only in memory and cannot
    /// be wrong — waiting callers, subscribers, held acknowledgements — is kept. Without a
    /// store nothing can be rebuilt, and the failure is passed on to the supervisor.
    async fn restart(&mut self, reason: String) -> Result<(), ActorProcessingErr> {
        // A batch the failure interrupted: the writes of what it recorded (and started) go to
        // the store first, so the reload has them, and nothing later is caught in the buffer.
        self.flush_batch();
        let Some(store) = &self.store else {
            return Err(format!("registry failed with no store to restart from: {reason}").into());
        };
        let (tx, rx) = oneshot::channel();
        if !store.send(StoreOp::Load(self.retention.memory_window, tx)) {
            return Err(format!("registry failed and its store is gone: {reason}").into());
        }
        // The writer thread never waits on the registry, so waiting for it cannot deadlock.
        let loaded = rx
            .await
            .map_err(|_| format!("store thread gone during restart: {reason}"))?
            .map_err(|e| format!("cannot reload the store during restart: {e}"))?;
        self.records.clear();
        self.active.clear();
        self.finished.clear();
        self.load(loaded);
        // A caller waiting on a run that has ended by now gets its answer.
        let ended: Vec<RunId> = self
            .subscribers
            .waited_for()
            .into_iter()
            .filter(|id| {
                self.records
                    .get(id)
                    .is_none_or(|r| r.status().is_terminal())
            })
            .collect();
        for id in ended {
            let waiters = self.subscribers.take_waiters(id);
            match self.records.get(&id) {
                Some(r) => {
                    let held = Held::Ended {
                        id,
                        status: r.status(),
                        record: Some(Box::new(r.to_record())),
                        waiters,
                        first: false,
                    };
                    self.deliver(held);
                }
                None => {
                    for w in waiters {
                        let _ = w.send(Err(NotFound(id)));
                    }
                }
            }
        }
        self.rejudge_waiting();
        self.pruning = false;
        self.stats.restarts += 1;
        let _ = self
            .supervisor
            .cast(SupervisorStep::RegistryRestarted(reason).into());
        tracing::warn!(
            records = self.records.len(),
            "registry restarted from its store"
        );
        Ok(())
    }
}

fn refuse(state: &mut RegistryState, err: &TransitionError) {
    state.stats.refused += 1;
    tracing::warn!(error = %err, "registry refused a status message");
}

impl Actor for RegistryActor {
    type Msg = RegistryMessage;
    type State = RegistryState;
    type Arguments = RegistryArguments;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RegistryArguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut state = RegistryState {
            supervisor: args.supervisor,
            records: Records::with_capacity(retention::presized(
                &args.retention,
                args.store.is_some(),
            )),
            active: Active::default(),
            finished: VecDeque::new(),
            stats: RegistryStats::default(),
            tally: Tally::default(),
            linked: IdSet::default(),
            subscribers: Subscribers::new(args.event_buffer),
            keys: Keys::new(args.dedup_window),
            deps: Deps::default(),
            logs: args.logs,
            store: None,
            acks: Acks::default(),
            batch_writes: None,
            retention: args.retention,
            pruning: false,
            _prune_timer: None,
        };
        if let Some((store, loaded)) = args.store {
            state.load(loaded);
            state.store = Some(StoreWriter::spawn(store, myself.clone()));
        }
        Ok(state)
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let every = state.retention.every;
        let timer = myself.send_interval(every, || RegistryStep::PruneTick.into());
        state._prune_timer = Some(AbortOnDrop(timer));
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // A panic while handling a message is caught here and turned into a restart of the
        // registry's state from the store; the mailbox (and the actor's address) survive, so
        // no message already sent is lost. The failing message itself is dropped.
        // `dispatch` never waits, so the panic is caught around a plain call: no future is
        // built or boxed per message.
        let outcome =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dispatch(state, message)));
        if let Err(payload) = outcome {
            let reason = crate::job::panic_message(payload.as_ref());
            tracing::error!(%reason, "registry failed while handling a message; restarting");
            state.restart(reason).await?;
        }
        Ok(())
    }
}

/// Handles one message: one call per message. It never waits: every reply is a plain send,
/// and anything slow (a store read) is handed to the store's thread, so any actor may call
/// the registry from inside a handler without risking a deadlock.
fn dispatch(state: &mut RegistryState, message: RegistryMessage) {
    match message {
        RegistryMessage::PruneNow(reply) => {
            state.retention_pass();
            let _ = reply.send(());
        }
        RegistryMessage::Subscribe(filter, reply) => state.subscribe_to(filter, reply),
        RegistryMessage::EventPort(reply) => {
            let _ = reply.send(state.subscribers.port());
        }
        RegistryMessage::Get(id, reply) => state.get(id, reply),
        RegistryMessage::List(q, reply) => state.list_to(*q, reply),
        RegistryMessage::ActiveCount(reply) => {
            let _ = reply.send(state.active.len());
        }
        RegistryMessage::ActiveIds(reply) => {
            let _ = reply.send(state.active.ids());
        }
        RegistryMessage::ActiveMatching(q, reply) => {
            let matches = |id: &RunId| {
                state
                    .records
                    .get(id)
                    .is_some_and(|r| q.matches_fields(r.fields()))
            };
            let mut ids = state.active.ids();
            ids.retain(matches);
            let _ = reply.send(ids);
        }
        RegistryMessage::IsActive(id, reply) => {
            let _ = reply.send(state.active.contains(&id));
        }
        RegistryMessage::WaitTerminal(id, reply) => state.wait(id, reply),
        RegistryMessage::Stats(reply) => {
            let _ = reply.send(state.stats);
        }
        RegistryMessage::Metrics(reply) => {
            let _ = reply.send(state.tally.snapshot(Timestamp::now()));
        }
        RegistryMessage::Internal(internal) => step(state, internal.0),
    }
}

/// Handles one of the registry's internal steps (every change to a record): one call per
/// step. Like `dispatch`, it never waits.
fn step(state: &mut RegistryState, step: RegistryStep) {
    match step {
        RegistryStep::Insert(record, submission, reply) => {
            let record = state.records.make(*record);
            let result = state.insert_and_start(record, submission);
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
        RegistryStep::Admit(admission) => {
            let _ = state.admit(admission, None);
        }
        RegistryStep::AdmitDurable(admission, reply) => state.admit_durable(admission, reply),
        RegistryStep::AdmitBatch(batch, reply) => state.admit_batch(batch, reply),
        RegistryStep::AdmitWorkflow(steps, reply) => state.admit_workflow(steps, reply),
        RegistryStep::AdmitUnique(admission, key, rule, reply) => {
            state.admit_unique(key, (admission, rule, reply));
        }
        RegistryStep::ReplaceDone(key, replaced) => state.replace_done(key, replaced),
        RegistryStep::Requeue(id, submission) => state.requeue(id, submission),
        RegistryStep::Committed(up_to, failure) => state.committed(up_to, failure),
        RegistryStep::Prunable(ids) => {
            state.pruning = false;
            state.prune(ids);
        }
        RegistryStep::PruneTick => state.retention_pass(),
        RegistryStep::Fault(reason) => panic!("injected registry fault: {reason}"),
        RegistryStep::Transition(id, t, reply) => {
            let result = state.transition(id, t);
            if let Err(e) = &result {
                refuse(state, e);
            }
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
        RegistryStep::Progress(id, attempt) => {
            if let Some(progress) = attempt.progress().take() {
                state.progress(id, progress);
            }
        }
        RegistryStep::ExitCode(id, code) => {
            if state
                .records
                .get_mut(&id)
                .is_some_and(|r| r.set_exit_code(code))
            {
                state.persist(id);
            }
        }
        RegistryStep::Eligible(id, at) => {
            if let Some(r) = state.records.get_mut(&id) {
                r.set_eligible_at(at);
            }
        }
        RegistryStep::AnswerCancel(id, reply, bounced) => state.answer_cancel(id, reply, bounced),
        RegistryStep::Barrier => {
            let _ = state.supervisor.cast(SupervisorStep::DrainBarrier.into());
        }
    }
}

/// What the registry answers, one method per message that needs more than a line.
impl RegistryState {
    fn subscribe_to(
        &mut self,
        filter: EventFilter,
        reply: RpcReplyPort<Result<Subscription, NotFound>>,
    ) {
        match self.subscribe(filter.clone()) {
            Err(NotFound(id)) if self.store.is_some() => {
                // A run outside the memory window is finished: its stream is its end.
                let events = self.subscribers.receiver();
                self.ask_store(
                    id,
                    move |found| {
                        found.map(|record| Subscription {
                            filter,
                            events,
                            current: Some(record),
                            terminal: None,
                        })
                    },
                    reply,
                );
            }
            answer => {
                let _ = reply.send(answer);
            }
        }
    }

    fn get(&self, id: RunId, reply: Waiter) {
        match self.records.get(&id) {
            Some(r) => {
                let _ = reply.send(Ok(r.to_record()));
            }
            None => self.ask_store(id, |found| found, reply),
        }
    }

    fn list_to(&self, q: ListQuery, reply: RpcReplyPort<RunPage>) {
        match &self.store {
            // The store holds every record; it answers after every write sent before.
            Some(store) if !q.status.is_some_and(RunStatus::is_active) => {
                if let Err(reply) = store_list(store, q.clone(), reply) {
                    let _ = reply.send(self.list(&q));
                }
            }
            _ => {
                let _ = reply.send(self.list(&q));
            }
        }
    }

    fn wait(&mut self, id: RunId, reply: Waiter) {
        match self.records.get(&id) {
            None => self.ask_store(id, |found| found, reply),
            Some(r) if r.status().is_terminal() => {
                // Its end may still be on its way to the store: answer with the rest.
                let held = Held::Ended {
                    id,
                    status: r.status(),
                    record: Some(Box::new(r.to_record())),
                    waiters: vec![reply],
                    first: false,
                };
                self.deliver(held);
            }
            Some(_) => self.subscribers.wait(id, reply),
        }
    }

    fn admit_durable(
        &mut self,
        admission: Box<Admission>,
        reply: RpcReplyPort<Result<RunId, SubmitError>>,
    ) {
        match self.admit(admission, None) {
            Ok(id) => self.deliver(Held::Submitted(id, reply)),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// Many runs in one message; the answers (if asked for) wait for their commit.
    fn admit_batch(
        &mut self,
        batch: Vec<Result<Box<Admission>, SubmitError>>,
        reply: Option<BatchReply>,
    ) {
        if self.store.is_some() {
            self.batch_writes = Some((Vec::with_capacity(batch.len()), 0));
        }
        let answers = batch
            .into_iter()
            .map(|admitted| self.admit(admitted?, None));
        let answers: Vec<_> = answers.collect();
        self.flush_batch();
        if let Some(reply) = reply {
            self.deliver(Held::Batch(answers, reply));
        }
    }

    /// Sends a batch submit's buffered writes to the store as one transaction, and stops
    /// buffering.
    fn flush_batch(&mut self) {
        if let (Some((writes, last)), Some(store)) = (self.batch_writes.take(), &self.store)
            && !writes.is_empty()
            && !store.send(StoreOp::WriteMany(last, writes))
        {
            tracing::error!("store writer is gone; a batch submit was not persisted");
        }
    }

    /// A submit with an idempotency key. While a holder of the key is being replaced, the
    /// submit waits its turn, so the key's submits are answered in arrival order.
    fn admit_unique(&mut self, key: String, submit: UniqueSubmit) {
        if let Some(r) = self.keys.replacing.get_mut(&key) {
            r.later.push_back(submit);
            return;
        }
        let (admission, rule, reply) = submit;
        let answer = match self.keys.conflict(&key, &rule, &self.records) {
            Some(c) if c.unstarted && rule.on_conflict == OnConflict::Replace => {
                // The supervisor cancels the holder if it is still queued, then says so;
                // this submit waits for that answer (`ReplaceDone`).
                let step = SupervisorStep::ReplaceQueued(c.holder, key.clone());
                if self.supervisor.cast(step.into()).is_err() {
                    Ok(Dedup::Existing(c.holder))
                } else {
                    let replacing = Replacing {
                        submit: (admission, rule, reply),
                        later: VecDeque::new(),
                    };
                    self.keys.replacing.insert(key, replacing);
                    return;
                }
            }
            // The new run's job and queue slot are dropped here, unstarted.
            Some(c) => Ok(Dedup::Existing(c.holder)),
            None => self.admit_keyed(admission, key, Dedup::New),
        };
        self.deliver(Held::Dedup(answer, reply));
    }

    /// Admits a run as the holder of `key`; `answer` names it.
    fn admit_keyed(
        &mut self,
        admission: Box<Admission>,
        key: String,
        answer: fn(RunId) -> Dedup,
    ) -> Result<Dedup, SubmitError> {
        let id = admission.id;
        self.admit(admission, Some(key.clone()))?;
        self.keys.insert(key, id);
        Ok(answer(id))
    }

    /// The supervisor's answer about a holder being replaced: cancelled while queued (its
    /// terminal status was cast before this answer, so it is recorded), or it had started
    /// and is kept. Then the submits that waited for the key are handled in order.
    fn replace_done(&mut self, key: String, replaced: bool) {
        let Some(Replacing {
            submit: (admission, rule, reply),
            later,
        }) = self.keys.replacing.remove(&key)
        else {
            return;
        };
        let answer = if replaced {
            self.admit_keyed(admission, key.clone(), Dedup::Replaced)
        } else {
            // The holder started meanwhile: it is kept if it still conflicts (a rule of only
            // `Queued` lets this run in beside it).
            match self.keys.conflict(&key, &rule, &self.records) {
                Some(c) => Ok(Dedup::Existing(c.holder)),
                None => self.admit_keyed(admission, key.clone(), Dedup::New),
            }
        };
        self.deliver(Held::Dedup(answer, reply));
        for submit in later {
            self.admit_unique(key.clone(), submit);
        }
    }

    /// Recovery hands a run back to the supervisor. An interrupted attempt is recorded as
    /// such; a run that was still queued never started its attempt and goes as it is.
    fn requeue(&mut self, id: RunId, submission: Submission) {
        let recorded = match self.records.get(&id).map(Stored::status) {
            Some(RunStatus::Waiting) => {
                // Still waiting: judged again against what its dependencies did meanwhile.
                let Some(record) = self.records.get(&id) else {
                    return;
                };
                let deps = record
                    .links()
                    .map(|l| l.depends_on.clone())
                    .unwrap_or_default();
                let run = prepared(record, submission);
                let verdict = self.judge(id, &deps);
                self.start_waiting(id, run, verdict);
                return;
            }
            Some(RunStatus::Queued) => Ok(()),
            _ => self.transition(
                id,
                Transition::Recovered {
                    at: Timestamp::now(),
                },
            ),
        };
        match recorded {
            Ok(()) => {
                if let Some(record) = self.records.get(&id) {
                    let mut run = prepared(record, submission);
                    // A step released before the crash reads its dependencies again.
                    if let Some(links) = record.links()
                        && !links.depends_on.is_empty()
                    {
                        let outcomes = links
                            .depends_on
                            .iter()
                            .filter_map(|d| self.records.get(&d.run).map(Stored::outcome))
                            .collect();
                        run.set_dependencies(outcomes);
                    }
                    self.start(id, run);
                }
            }
            Err(e) => refuse(self, &e),
        }
    }

    fn progress(&mut self, id: RunId, progress: Progress) {
        let Some(record) = self.records.get_mut(&id) else {
            return;
        };
        let event = RunEvent::Progress {
            run_id: id,
            label: record.label().to_owned(),
            progress: progress.clone(),
        };
        if record.set_progress(progress) {
            self.persist(id);
            if self.publishing() {
                self.deliver(Held::Event(event));
            }
        }
    }

    /// A cancel for a run the supervisor does not hold. `bounced`: the supervisor already
    /// sent it back once, so it is never forwarded again.
    fn answer_cancel(&self, id: RunId, reply: CancelReply, bounced: bool) {
        match self.cancel_answer(id) {
            Some(Err(CancelError::NotFound(_))) if self.store.is_some() => {
                self.ask_store(
                    id,
                    move |found| match found {
                        Ok(r) => Err(CancelError::AlreadyFinished {
                            id,
                            status: r.status,
                        }),
                        Err(_) => Err(CancelError::NotFound(id)),
                    },
                    reply,
                );
            }
            Some(answer) => {
                let _ = reply.send(answer);
            }
            None if bounced => {
                // Cannot happen while the protocol holds (see the variant's doc): reported,
                // not looped on.
                tracing::error!(run_id = %id, "cancel for an active run the supervisor does not hold");
                let _ = reply.send(Err(CancelError::NotFound(id)));
            }
            None => {
                let again = SupervisorStep::CancelForwarded(id, reply).into();
                if let Err(e) = self.supervisor.cast(again) {
                    tracing::error!(run_id = %id, error = %e, "supervisor unreachable; cancel unanswered");
                }
            }
        }
    }
}

/// Sends a listing to the store thread; hands the port back if the thread is gone.
fn store_list(
    store: &StoreWriter,
    q: ListQuery,
    reply: RpcReplyPort<RunPage>,
) -> Result<(), RpcReplyPort<RunPage>> {
    let (tx, rx) = oneshot::channel();
    if !store.send(StoreOp::List(Box::new(q), tx.into())) {
        return Err(reply);
    }
    tokio::spawn(async move {
        if let Ok(page) = rx.await {
            let _ = reply.send(page);
        }
    });
    Ok(())
}

/// The next attempt of a recorded run, for the supervisor: not to start before the record's
/// `next_attempt_at` (a run recovered while it waited for a retry or a snooze).
fn prepared(record: &Stored, submission: Submission) -> Box<PreparedRun> {
    PreparedRun::new(
        record.id(),
        record.shared_label().clone(),
        (
            record.shared_queue().clone(),
            record.partition_key().cloned(),
        ),
        (
            record.priority(),
            record.attempt(),
            crate::run::Lifecycle::snoozes(record),
        ),
        submission,
    )
    .recorded(record.next_attempt_at(), record.span_info())
}
