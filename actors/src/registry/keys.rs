//! Idempotency keys: which run holds each, for as long as the run is active and for the dedup
//! window after it ended.

use std::collections::HashMap;
use std::time::Duration;

use crate::run::RunId;
use crate::time::Timestamp;

use super::records::Records;

#[derive(Debug)]
pub(super) struct Keys {
    holders: HashMap<String, RunId>,
    window: Duration,
}

impl Keys {
    /// No key held; a finished run keeps its key for `window`.
    pub(super) fn new(window: Duration) -> Self {
        Keys {
            holders: HashMap::new(),
            window,
        }
    }

    pub(super) fn insert(&mut self, key: String, id: RunId) {
        self.holders.insert(key, id);
    }

    /// The run that holds `key`: an active run, or one that ended within the window. A key
    /// whose run is older (or gone from `records`) is forgotten.
    pub(super) fn holder(&mut self, key: &str, records: &Records) -> Option<RunId> {
        let id = *self.holders.get(key)?;
        let live = records.get(&id).is_some_and(|r| match r.finished_at() {
            None => true,
            Some(end) => Timestamp::now().saturating_duration_since(end) < self.window,
        });
        if live {
            Some(id)
        } else {
            self.holders.remove(key);
            None
        }
    }
}
