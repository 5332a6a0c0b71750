//! The supervisor's drain as an explicit state (ractor's `DrainState` pattern): not draining,
//! draining (waiting for the barrier and for every held run to end, cancelling them at the
//! deadline), drained (the report kept for later callers).

use ractor::RpcReplyPort;

use crate::protocol::supervisor::{DrainReport, DrainState};
use crate::run::{RunId, RunStatus};

use super::runs::Timer;

/// Counts of terminal statuses, by [`RunStatus::index`].
pub(super) type Ended = [usize; RunStatus::COUNT];

pub(super) enum Drain {
    NotDraining,
    Draining {
        waiters: Vec<RpcReplyPort<DrainReport>>,
        /// The terminal counts when the drain began: the report counts what ended after.
        ended_before: Ended,
        barrier_seen: bool,
        deadline_hit: bool,
        cancelled_by_drain: Vec<RunId>,
        /// Dropping the drain state cancels the deadline timer task.
        timer: Timer,
    },
    Drained(DrainReport),
}

impl Drain {
    pub(super) fn state(&self) -> DrainState {
        match self {
            Drain::NotDraining => DrainState::NotDraining,
            Drain::Draining { .. } => DrainState::Draining,
            Drain::Drained(_) => DrainState::Drained,
        }
    }

    /// Whether runs are accepted: no drain has begun.
    pub(super) fn accepting(&self) -> bool {
        matches!(self, Drain::NotDraining)
    }

    pub(super) fn is_drained(&self) -> bool {
        matches!(self, Drain::Drained(_))
    }

    /// When the deadline fires, while it is still to come.
    pub(super) fn deadline(&self) -> Option<tokio::time::Instant> {
        match self {
            Drain::Draining {
                deadline_hit: false,
                timer,
                ..
            } => Some(timer.due()),
            _ => None,
        }
    }

    /// Whether a drain is under way and its deadline has passed.
    pub(super) fn deadline_hit(&self) -> bool {
        matches!(
            self,
            Drain::Draining {
                deadline_hit: true,
                ..
            }
        )
    }

    /// A caller asks for a drain. Answers at once after the end, joins a drain under way, and
    /// otherwise hands the port back: the caller begins the drain ([`Drain::begin`]).
    pub(super) fn join(
        &mut self,
        reply: RpcReplyPort<DrainReport>,
    ) -> Option<RpcReplyPort<DrainReport>> {
        match self {
            Drain::Drained(report) => {
                let _ = reply.send(report.clone());
                None
            }
            Drain::Draining { waiters, .. } => {
                waiters.push(reply);
                None
            }
            Drain::NotDraining => Some(reply),
        }
    }

    /// The drain begins, with `ended` the terminal counts so far and `timer` its deadline's;
    /// `reply` (if any) waits for its report.
    pub(super) fn begin(
        &mut self,
        reply: Option<RpcReplyPort<DrainReport>>,
        ended: Ended,
        timer: Timer,
    ) {
        *self = Drain::Draining {
            waiters: reply.into_iter().collect(),
            ended_before: ended,
            barrier_seen: false,
            deadline_hit: false,
            cancelled_by_drain: Vec::new(),
            timer,
        };
    }

    /// The barrier came back: every run admitted before the gate closed is held (or ended).
    pub(super) fn barrier_passed(&mut self) {
        if let Drain::Draining { barrier_seen, .. } = self {
            *barrier_seen = true;
        }
    }

    /// The deadline passed; `false` if no drain is under way.
    pub(super) fn hit_deadline(&mut self) -> bool {
        match self {
            Drain::Draining { deadline_hit, .. } => {
                *deadline_hit = true;
                true
            }
            _ => false,
        }
    }

    /// Runs the deadline cancelled, for the report.
    pub(super) fn cancelled_by_deadline(&mut self, ids: impl IntoIterator<Item = RunId>) {
        if let Drain::Draining {
            cancelled_by_drain, ..
        } = self
        {
            cancelled_by_drain.extend(ids);
        }
    }

    /// Ends the drain if its barrier has passed and no run is held (`held_none`): every
    /// waiter gets the report, kept for later callers.
    pub(super) fn finish_if(&mut self, held_none: bool, ended: &Ended) {
        let Drain::Draining {
            barrier_seen: true, ..
        } = self
        else {
            return;
        };
        if !held_none {
            return;
        }
        let Drain::Draining {
            waiters,
            ended_before,
            deadline_hit,
            cancelled_by_drain,
            ..
        } = std::mem::replace(self, Drain::NotDraining)
        else {
            return;
        };
        let since = |s: RunStatus| ended[s.index()] - ended_before[s.index()];
        let report = DrainReport {
            completed: since(RunStatus::Completed),
            failed: since(RunStatus::Failed),
            cancelled: since(RunStatus::Cancelled),
            cancelled_by_drain,
            deadline_hit,
        };
        tracing::info!(
            completed = report.completed,
            failed = report.failed,
            cancelled = report.cancelled,
            "drain finished"
        );
        for w in waiters {
            let _ = w.send(report.clone());
        }
        *self = Drain::Drained(report);
    }
}
