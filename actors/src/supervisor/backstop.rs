//! Deadlines by which a stopping attempt's worker must have decided its outcome: a cancel's
//! grace period plus [`crate::DROP_WAIT`], or a time limit plus both. A job runs in its
//! worker's own task, so a job that never yields holds that task; past its deadline the
//! supervisor ends the run without it. One timer, for the earliest deadline, serves them all.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use ractor::{ActorId, ActorRef};
use tokio::time::Instant;

use crate::protocol::supervisor::{SupervisorMessage, SupervisorStep};
use crate::run::RunId;

use super::timer::Timer;

/// One deadline: run `id`'s attempt on `worker` must have ended by `at`.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Deadline {
    at: Instant,
    /// Arrival order, so equal instants stay in order and the ordering is total.
    seq: u64,
    id: RunId,
    worker: ActorId,
}

/// The deadlines, earliest first, and the timer for the earliest.
#[derive(Default)]
pub(super) struct Backstops {
    deadlines: BinaryHeap<Reverse<Deadline>>,
    seq: u64,
    timer: Option<Timer>,
}

impl Backstops {
    /// Run `id`'s attempt on `worker` must have ended by `at`.
    pub(super) fn arm(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        at: Instant,
        id: RunId,
        worker: ActorId,
    ) {
        self.seq += 1;
        let seq = self.seq;
        self.deadlines.push(Reverse(Deadline {
            at,
            seq,
            id,
            worker,
        }));
        if self.timer.as_ref().is_none_or(|t| at < t.due()) {
            self.timer = Some(timer_for(myself, at));
        }
    }

    /// Takes the deadlines passed by `now`, and sets the timer for the next one.
    pub(super) fn take_due(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        now: Instant,
    ) -> Vec<(RunId, ActorId)> {
        let mut due = Vec::new();
        while let Some(Reverse(next)) = self.deadlines.peek() {
            if next.at > now {
                break;
            }
            if let Some(Reverse(d)) = self.deadlines.pop() {
                due.push((d.id, d.worker));
            }
        }
        self.timer = self
            .deadlines
            .peek()
            .map(|Reverse(next)| timer_for(myself, next.at));
        due
    }
}

fn timer_for(myself: &ActorRef<SupervisorMessage>, at: Instant) -> Timer {
    let wait = at.saturating_duration_since(Instant::now());
    Timer::after(myself, wait, || SupervisorStep::BackstopDue.into())
}
