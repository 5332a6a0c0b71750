//! The ids of active runs by status: indexes kept in step with the records, so counting,
//! listing and filtering active runs never scan the history.

use std::collections::BTreeSet;

use crate::run::{RunId, RunStatus};

/// `Waiting`, `Queued` and `Running` ids, each sorted (ids are time-ordered, so: oldest first).
///
/// Architecture invariant: a run's id is in the set of its record's status, and in no set once
/// it is terminal.
#[derive(Debug, Default)]
pub(super) struct Active {
    waiting: BTreeSet<RunId>,
    queued: BTreeSet<RunId>,
    running: BTreeSet<RunId>,
}

impl Active {
    /// The index of `status`, if it has one (terminal statuses have none).
    pub(super) fn of(&self, status: RunStatus) -> Option<&BTreeSet<RunId>> {
        match status {
            RunStatus::Waiting => Some(&self.waiting),
            RunStatus::Queued => Some(&self.queued),
            RunStatus::Running => Some(&self.running),
            _ => None,
        }
    }

    /// Moves `id` from the index of `from` (`None`: a new run) to that of `to`.
    pub(super) fn moved(&mut self, id: RunId, from: Option<RunStatus>, to: RunStatus) {
        match from {
            Some(RunStatus::Waiting) => {
                self.waiting.remove(&id);
            }
            Some(RunStatus::Queued) => {
                self.queued.remove(&id);
            }
            Some(RunStatus::Running) => {
                self.running.remove(&id);
            }
            _ => {}
        }
        match to {
            RunStatus::Waiting => {
                self.waiting.insert(id);
            }
            RunStatus::Queued => {
                self.queued.insert(id);
            }
            RunStatus::Running => {
                self.running.insert(id);
            }
            _ => {}
        }
    }

    pub(super) fn contains(&self, id: &RunId) -> bool {
        self.waiting.contains(id) || self.queued.contains(id) || self.running.contains(id)
    }

    /// How many runs are active.
    pub(super) fn len(&self) -> usize {
        self.waiting.len() + self.queued.len() + self.running.len()
    }

    /// Active ids, oldest first: the sorted indexes merged.
    pub(super) fn ids(&self) -> Vec<RunId> {
        let mut ids = Vec::with_capacity(self.len());
        ids.extend(self.waiting.iter().copied());
        ids.extend(self.queued.iter().copied());
        ids.extend(self.running.iter().copied());
        // Each part is sorted already, which the stable sort finds and merges.
        ids.sort();
        ids
    }

    pub(super) fn clear(&mut self) {
        self.waiting.clear();
        self.queued.clear();
        self.running.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_merge_both_indexes_oldest_first_and_terminal_runs_leave() {
        let mut ids: Vec<RunId> = (0..4).map(|_| RunId::new()).collect();
        ids.sort();
        let mut active = Active::default();
        for id in &ids {
            active.moved(*id, None, RunStatus::Queued);
        }
        active.moved(ids[0], Some(RunStatus::Queued), RunStatus::Running);
        active.moved(ids[2], Some(RunStatus::Queued), RunStatus::Running);
        assert_eq!(active.ids(), ids);
        assert_eq!(active.of(RunStatus::Running).map(BTreeSet::len), Some(2));
        active.moved(ids[2], Some(RunStatus::Running), RunStatus::Completed);
        assert!(!active.contains(&ids[2]));
        assert_eq!(active.len(), 3);
        assert!(active.of(RunStatus::Completed).is_none());
    }
}
