//! The `RunStore` seam: where the registry's records are made durable.
//!
//! A store is driven from one dedicated thread (the registry's writer), never from the
//! actors' threads, so its methods may block.

use std::fmt;

use crate::error::StoreError;
use crate::query::{ListQuery, RunPage};
use crate::run::{RunId, RunRecord, RunStatus};
use crate::time::Timestamp;

/// One change to write.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreWrite {
    /// Insert or replace this record.
    Put(Box<RunRecord>),
    /// Forget this run (retention).
    Delete(RunId),
}

/// What a store holds when it is opened.
#[derive(Debug, Default)]
pub struct StoredState {
    /// Every active record, and the most recent finished ones (the registry's memory window).
    pub records: Vec<RunRecord>,
    /// Records per status in the whole store, by [`RunStatus::index`].
    pub counts: [usize; RunStatus::COUNT],
}

/// Durable storage of run records. Implementations are driven from one dedicated thread, so
/// they may block; they never run on the actors' threads.
pub trait RunStore: Send + 'static {
    /// Loads what the registry needs at start: all active records and the `window` most
    /// recent finished ones, and per-status counts.
    fn load(&mut self, window: usize) -> Result<StoredState, StoreError>;
    /// Applies the writes in one transaction: all or none.
    fn write(&mut self, batch: &[StoreWrite]) -> Result<(), StoreError>;
    /// One record.
    fn get(&mut self, id: RunId) -> Result<Option<RunRecord>, StoreError>;
    /// A page of records, newest first, with the true total.
    fn list(&mut self, query: &ListQuery) -> Result<RunPage, StoreError>;
    /// Ids of finished runs to prune: those that ended before `ended_before`, and beyond the
    /// newest `keep` finished ones; at most `limit`, oldest first.
    fn prunable(
        &mut self,
        ended_before: Timestamp,
        keep: usize,
        limit: usize,
    ) -> Result<Vec<(RunId, RunStatus)>, StoreError>;
}

/// [`RunStore::load`], plus the record of every run a loaded active run depends on that the
/// window left out (a dependency that finished long ago): the registry judges waiting runs by
/// their dependencies' records, and gives a released run recovered after a crash its
/// dependencies' outcomes again, so it needs them in memory. (Retention keeps them while a
/// run that depends on them is active.)
pub(crate) fn load_with_dependencies(
    store: &mut dyn RunStore,
    window: usize,
) -> Result<StoredState, StoreError> {
    let mut state = store.load(window)?;
    let held: std::collections::HashSet<RunId> = state.records.iter().map(|r| r.id).collect();
    let missing: std::collections::BTreeSet<RunId> = state
        .records
        .iter()
        .filter(|r| r.status.is_active())
        .flat_map(|r| r.depends_on.iter().map(|d| d.run))
        .filter(|id| !held.contains(id))
        .collect();
    for id in missing {
        // A dependency whose record is gone (removed outside runwarden, or by a version
        // whose retention did not keep it) is absent: the registry decides its dependents
        // without it (see `Deps::add`).
        if let Some(record) = store.get(id)? {
            state.records.push(record);
        }
    }
    Ok(state)
}

impl fmt::Debug for dyn RunStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RunStore")
    }
}

/// A store kept in this process's memory: the seam's reference implementation (and what tests
/// use to exercise the durable paths without a disk). Lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: std::collections::BTreeMap<RunId, RunRecord>,
}

impl RunStore for MemoryStore {
    fn load(&mut self, window: usize) -> Result<StoredState, StoreError> {
        let mut counts = [0; RunStatus::COUNT];
        for r in self.records.values() {
            counts[r.status.index()] += 1;
        }
        let mut finished = 0;
        let records = self
            .records
            .values()
            .rev()
            .filter(|r| {
                let keep = r.status.is_active() || finished < window;
                finished += usize::from(r.status.is_terminal());
                keep
            })
            .cloned()
            .collect();
        Ok(StoredState { records, counts })
    }

    fn write(&mut self, batch: &[StoreWrite]) -> Result<(), StoreError> {
        for w in batch {
            match w {
                StoreWrite::Put(r) => {
                    self.records.insert(r.id, (**r).clone());
                }
                StoreWrite::Delete(id) => {
                    self.records.remove(id);
                }
            }
        }
        Ok(())
    }

    fn get(&mut self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.records.get(&id).cloned())
    }

    fn list(&mut self, q: &ListQuery) -> Result<RunPage, StoreError> {
        let matching = self.records.values().rev().filter(|r| q.matches(r));
        let mut total = 0;
        let mut runs = Vec::new();
        for r in matching {
            if total >= q.offset && runs.len() < q.limit {
                runs.push(r.clone());
            }
            total += 1;
        }
        Ok(RunPage { runs, total })
    }

    fn prunable(
        &mut self,
        ended_before: Timestamp,
        keep: usize,
        limit: usize,
    ) -> Result<Vec<(RunId, RunStatus)>, StoreError> {
        let finished: Vec<&RunRecord> = self
            .records
            .values()
            .filter(|r| r.status.is_terminal())
            .collect();
        let excess = finished.len().saturating_sub(keep);
        Ok(finished
            .iter()
            .enumerate()
            .filter(|(i, r)| *i < excess || r.finished_at.is_some_and(|t| t < ended_before))
            .map(|(_, r)| (r.id, r.status))
            .take(limit)
            .collect())
    }
}
