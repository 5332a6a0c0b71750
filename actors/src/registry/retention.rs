//! Retention's policy: how much storage the records are sized for, when a retention pass is
//! due, and which finished runs a pass in memory forgets. The registry applies it (`prune`).

use crate::hash::IdSet;
use crate::protocol::registry::Retention;
use crate::run::{RunId, RunStatus};
use crate::time::Timestamp;

use super::records::Records;

/// Without a store, a retention pass runs once the finished runs exceed the limit by this
/// many (or by `Retention::batch`, if smaller).
const MEMORY_PRUNE_STEP: usize = 256;

/// How many records the registry sizes its storage for: the finished runs retention keeps in
/// memory, plus room for active runs; at most [`PRESIZE_LIMIT`] (beyond that it grows).
pub(super) fn presized(r: &Retention, durable: bool) -> usize {
    let finished = if durable {
        r.memory_window.min(r.max_finished)
    } else {
        r.max_finished
    };
    finished
        .saturating_add(finished / 8)
        .saturating_add(MEMORY_PRUNE_STEP)
        .min(PRESIZE_LIMIT)
}

/// The most records storage is sized for up front (about 120 MB of address space; only the
/// pages records use become resident).
const PRESIZE_LIMIT: usize = 1 << 20;

/// Whether a retention pass is due now, with `finished` runs held. Retention keeps up with any
/// rate: a pass also runs as soon as the finished runs exceed the limit by a step, not only on
/// the timer. In memory the step is small, so every pass is small and allocates little (large
/// short-lived buffers are what makes the allocator's footprint creep under sustained load);
/// the store is asked once per batch.
pub(super) fn due(r: &Retention, finished: usize, durable: bool) -> bool {
    let step = if durable {
        r.batch
    } else {
        MEMORY_PRUNE_STEP.min(r.batch)
    };
    finished > r.max_finished.saturating_add(step)
}

/// The finished runs a pass in memory forgets: beyond `max_finished`, or ended before
/// `ended_before`; oldest first by creation, as the store does, scanning a bounded number of
/// records (skipping the `active` ones) and taking at most `batch`.
pub(super) fn in_memory(
    records: &Records,
    r: &Retention,
    active: usize,
    ended_before: Timestamp,
    keep: &IdSet<RunId>,
) -> Vec<(RunId, RunStatus)> {
    let finished = records.len() - active;
    let mut excess = finished.saturating_sub(r.max_finished);
    let mut ids = Vec::new();
    for rec in records.iter().take(r.batch.saturating_mul(4)) {
        if ids.len() >= r.batch {
            break;
        }
        // Kept records (dependencies of active runs) are passed over, so they cannot stall
        // the pass by filling its batch.
        if rec.status().is_active() || keep.contains(&rec.id()) {
            continue;
        }
        let old = rec.finished_at().is_some_and(|t| t < ended_before);
        if excess > 0 || old {
            excess = excess.saturating_sub(1);
            ids.push((rec.id(), rec.status()));
        }
    }
    ids
}
