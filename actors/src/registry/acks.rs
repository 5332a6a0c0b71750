//! Durability acknowledgements: answers that promise a write is durable (a durable submit's
//! id, a run's end told to waiters, subscribers and the log keeper, a dedup answer) are held
//! until the store has committed every write numbered before them, then released in order.

use std::collections::VecDeque;

use ractor::RpcReplyPort;

use crate::error::{NotFound, SubmitError};
use crate::event::RunEvent;
use crate::protocol::registry::{BatchReply, Dedup};
use crate::run::{RunId, RunRecord, RunStatus};

/// An acknowledgement held back until the writes before it are committed.
pub(super) enum Held {
    Event(RunEvent),
    /// A run's end: its waiters' answers, and (when `first`, the transition itself rather than
    /// a later `wait`) the log keeper's notice.
    Ended {
        id: RunId,
        status: RunStatus,
        /// The full record, when there are waiters to answer with it.
        record: Option<Box<RunRecord>>,
        waiters: Vec<RpcReplyPort<Result<RunRecord, NotFound>>>,
        first: bool,
    },
    Submitted(RunId, RpcReplyPort<Result<RunId, SubmitError>>),
    Batch(Vec<Result<RunId, SubmitError>>, BatchReply),
    Dedup(
        Result<Dedup, SubmitError>,
        RpcReplyPort<Result<Dedup, SubmitError>>,
    ),
}

/// The numbering of the writes sent to the store and the acknowledgements waiting for them.
///
/// **Invariant:** an acknowledgement is released only once every write numbered up to the
/// last one sent before it is committed, and acknowledgements are released in the order they
/// were held.
#[derive(Default)]
pub(super) struct Acks {
    /// The number of the last write sent to the store, and of the last one committed.
    written: u64,
    committed: u64,
    held: VecDeque<(u64, Held)>,
}

impl Acks {
    /// Numbers a new write to the store.
    pub(super) fn next_write(&mut self) -> u64 {
        self.written += 1;
        self.written
    }

    /// Holds `h` behind the writes not yet committed (with a store), or hands it back to be
    /// delivered now.
    pub(super) fn hold(&mut self, durable: bool, h: Held) -> Option<Held> {
        if durable && self.written > self.committed {
            self.held.push_back((self.written, h));
            None
        } else {
            Some(h)
        }
    }

    /// Every write numbered up to `up_to` is committed (or failed).
    pub(super) fn committed(&mut self, up_to: u64) {
        self.committed = self.committed.max(up_to);
    }

    /// The next held acknowledgement whose writes are committed, in order.
    pub(super) fn next_released(&mut self) -> Option<Held> {
        match self.held.front() {
            Some((seq, _)) if *seq <= self.committed => self.held.pop_front().map(|(_, h)| h),
            _ => None,
        }
    }

    /// How many acknowledgements wait for a commit.
    pub(super) fn waiting(&self) -> usize {
        self.held.len()
    }
}
