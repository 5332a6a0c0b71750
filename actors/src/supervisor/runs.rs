//! The runs a supervisor holds, one entry per run: what the run is doing at this moment is
//! the variant of its entry, never its membership in several maps.

use std::sync::Arc;

use ractor::{ActorId, ActorRef};

use crate::hash::IdMap;
use crate::job::CancelSignal;
use crate::protocol::run::{CancelReply, PreparedRun};
use crate::protocol::supervisor::TimerPurpose;
use crate::protocol::worker::WorkerMessage;
use crate::run::RunId;
use tokio::time::Instant;

use super::queues::{Part, Place};

pub(super) use super::timer::Timer;

/// A run with a live worker.
pub(super) struct Running {
    pub(super) worker: ActorRef<WorkerMessage>,
    /// The attempt's stop signal, shared with its worker. Who first cancelled the attempt is
    /// its stop: if its worker dies before ending the run, the run ends `Cancelled` by them,
    /// as the cancel's `Ok` answer promised.
    pub(super) signal: Arc<CancelSignal>,
    /// The queue whose limit it counts against.
    pub(super) queue: usize,
    /// The partition key whose limit it counts against.
    pub(super) part: Part,
    /// Cancel requests that found the attempt's outcome decided: answered when its worker's
    /// exit arrives. Boxed, as they are rare: every held run's entry (a queued one's too) is
    /// as large as this struct.
    #[expect(
        clippy::box_collection,
        reason = "8 bytes in every entry instead of a `Vec`'s 24; the extra allocation is rare"
    )]
    parked: Option<Box<Vec<CancelReply>>>,
}

impl Running {
    /// Parks a cancel request until the worker's exit arrives.
    pub(super) fn park(&mut self, reply: CancelReply) {
        self.parked.get_or_insert_with(Box::default).push(reply);
    }

    /// The cancel requests parked so far.
    pub(super) fn take_parked(&mut self) -> Vec<CancelReply> {
        self.parked.take().map_or_else(Vec::new, |parked| *parked)
    }
}

/// What one held run is doing.
enum Held {
    /// Waiting for a slot; the run itself sits in its queue at `place`.
    Queued(Place),
    /// Waiting for its retry backoff: it owns no actor, only its timer.
    RetryWaiting {
        run: Box<PreparedRun>,
        timer: Timer,
    },
    Running(Running),
    /// Waiting for its dependencies to end: it owns nothing but its prepared run; the
    /// registry says when it may be queued, or that it is cancelled.
    Awaiting(Box<PreparedRun>),
}

/// A run taken out of its wait.
pub(super) enum Waiting {
    /// It was queued: the caller takes it out of its queue at this place.
    Queued(Place),
    /// It was waiting for its retry.
    Retry(Box<PreparedRun>),
    /// It was waiting for its dependencies.
    Awaiting(Box<PreparedRun>),
}

/// Every run the supervisor holds (from its `Start` to its worker's exit), and the run of each
/// live worker for supervision events.
#[derive(Default)]
pub(super) struct Runs {
    held: IdMap<RunId, Held>,
    by_worker: IdMap<ActorId, RunId>,
    /// When each running attempt with a time limit reaches it (counted from its worker's
    /// start): a map of its own, so that every other entry stays as small as it was.
    time_limits: IdMap<RunId, Instant>,
    queued: usize,
    retry_waiting: usize,
    running: usize,
    awaiting: usize,
}

impl Runs {
    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    pub(super) fn retry_waiting(&self) -> usize {
        self.retry_waiting
    }

    pub(super) fn running(&self) -> usize {
        self.running
    }

    /// Runs waiting for their dependencies.
    pub(super) fn awaiting(&self) -> usize {
        self.awaiting
    }

    /// `id` waits for its dependencies.
    pub(super) fn insert_awaiting(&mut self, id: RunId, run: Box<PreparedRun>) {
        self.awaiting += 1;
        self.replace(id, Held::Awaiting(run));
    }

    /// Takes a run whose dependencies have ended; `None` if it is not waiting for them
    /// (cancelled meanwhile).
    pub(super) fn take_awaiting(&mut self, id: RunId) -> Option<Box<PreparedRun>> {
        match self.held.get(&id)? {
            Held::Awaiting(_) => match self.take_waiting(id)? {
                Waiting::Awaiting(run) => Some(run),
                _ => None,
            },
            _ => None,
        }
    }

    /// No run is held: a drain past its barrier is over.
    pub(super) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// `id` waits in its queue at `place`.
    pub(super) fn insert_queued(&mut self, id: RunId, place: Place) {
        self.queued += 1;
        self.replace(id, Held::Queued(place));
    }

    /// `id` waits for its retry; `timer` sends its `RetryDue`.
    pub(super) fn insert_retry(&mut self, id: RunId, run: Box<PreparedRun>, timer: Timer) {
        self.retry_waiting += 1;
        let held = Held::RetryWaiting { run, timer };
        self.replace(id, held);
    }

    /// `id` runs on `worker`.
    pub(super) fn insert_running(
        &mut self,
        id: RunId,
        worker: ActorRef<WorkerMessage>,
        signal: Arc<CancelSignal>,
        (queue, part): (usize, Part),
        time_limit: Option<Instant>,
    ) {
        self.running += 1;
        self.by_worker.insert(worker.get_id(), id);
        let running = Running {
            worker,
            signal,
            queue,
            part,
            parked: None,
        };
        if let Some(at) = time_limit {
            self.time_limits.insert(id, at);
        }
        self.replace(id, Held::Running(running));
    }

    /// The earliest retry wait or time limit of the runs held here still to come after `now`
    /// (a scan: for tests' queries, not for the hot path).
    pub(super) fn next_timer(&self, now: Instant) -> Option<(Instant, TimerPurpose)> {
        let retries = self.held.iter().filter_map(|(id, held)| match held {
            Held::RetryWaiting { timer, .. } => Some((timer.due(), TimerPurpose::Retry(*id))),
            _ => None,
        });
        // A worker already stopping ignores its time limit.
        let limits = self.time_limits.iter().filter(
            |(id, _)| matches!(self.held.get(id), Some(Held::Running(r)) if !r.signal.is_set()),
        );
        let limits = limits.map(|(id, at)| (*at, TimerPurpose::TimeLimit(*id)));
        let timers = retries.chain(limits);
        timers.filter(|(at, _)| *at > now).min_by_key(|(at, _)| *at)
    }

    fn replace(&mut self, id: RunId, held: Held) {
        if let Some(old) = self.held.insert(id, held) {
            self.uncount(&old);
        }
    }

    fn uncount(&mut self, held: &Held) {
        match held {
            Held::Queued(_) => self.queued -= 1,
            Held::RetryWaiting { .. } => self.retry_waiting -= 1,
            Held::Running(_) => self.running -= 1,
            Held::Awaiting(_) => self.awaiting -= 1,
        }
    }

    /// Takes a waiting run (queued or waiting for its retry) out of the table; `None` if `id`
    /// is not waiting.
    pub(super) fn take_waiting(&mut self, id: RunId) -> Option<Waiting> {
        match self.held.get(&id)? {
            Held::Running(_) => None,
            _ => {
                let held = self.held.remove(&id)?;
                self.uncount(&held);
                match held {
                    Held::Queued(place) => Some(Waiting::Queued(place)),
                    Held::RetryWaiting { run, .. } => Some(Waiting::Retry(run)),
                    Held::Awaiting(run) => Some(Waiting::Awaiting(run)),
                    Held::Running(_) => None,
                }
            }
        }
    }

    /// Whether `id` waits in a queue (not for a retry, not running).
    pub(super) fn is_queued(&self, id: RunId) -> bool {
        matches!(self.held.get(&id), Some(Held::Queued(_)))
    }

    /// Takes a run whose retry is due; `None` if it is not waiting for one (cancelled meanwhile).
    pub(super) fn take_retry(&mut self, id: RunId) -> Option<Box<PreparedRun>> {
        match self.held.get(&id)? {
            Held::RetryWaiting { .. } => match self.take_waiting(id)? {
                Waiting::Retry(run) => Some(run),
                _ => None,
            },
            _ => None,
        }
    }

    /// The running run `id`, if it runs.
    pub(super) fn running_mut(&mut self, id: RunId) -> Option<&mut Running> {
        match self.held.get_mut(&id)? {
            Held::Running(r) => Some(r),
            _ => None,
        }
    }

    /// A worker exited: its run and what the supervisor knew of it.
    pub(super) fn worker_gone(&mut self, worker: ActorId) -> Option<(RunId, Running)> {
        let id = self.by_worker.remove(&worker)?;
        match self.held.remove(&id)? {
            Held::Running(r) => {
                self.running -= 1;
                self.time_limits.remove(&id);
                Some((id, r))
            }
            other => {
                // A run is only ever indexed by a worker while it runs.
                self.held.insert(id, other);
                None
            }
        }
    }

    /// The waiting runs (queued, waiting for a retry or for dependencies).
    pub(super) fn waiting_ids(&self) -> Vec<RunId> {
        let mut ids: Vec<RunId> =
            Vec::with_capacity(self.queued + self.retry_waiting + self.awaiting);
        ids.extend(
            self.held
                .iter()
                .filter(|(_, h)| !matches!(h, Held::Running(_)))
                .map(|(id, _)| *id),
        );
        ids
    }

    /// The ids of the running runs, for a drain deadline's cancels.
    pub(super) fn running_ids(&self) -> Vec<RunId> {
        let running = self
            .held
            .iter()
            .filter(|(_, h)| matches!(h, Held::Running(_)));
        running.map(|(id, _)| *id).collect()
    }
}
