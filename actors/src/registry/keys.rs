//! Idempotency keys: which run holds each, and whether a new submit with the key conflicts
//! with it under a [`Uniqueness`] rule; and the submits waiting while a holder is replaced.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use ractor::RpcReplyPort;

use crate::protocol::registry::{Dedup, Uniqueness};
use crate::protocol::run::Admission;
use crate::run::{RunId, RunStatus};
use crate::time::Timestamp;

use super::records::Records;

/// A submit with an idempotency key, as the registry received it.
pub(super) type UniqueSubmit = (
    Box<Admission>,
    Uniqueness,
    RpcReplyPort<Result<Dedup, crate::error::SubmitError>>,
);

/// A holder being replaced: the submit that replaces it, then later submits with the key, in
/// arrival order, handled once the supervisor answered.
pub(super) struct Replacing {
    pub(super) submit: UniqueSubmit,
    pub(super) later: VecDeque<UniqueSubmit>,
}

pub(super) struct Keys {
    holders: HashMap<String, RunId>,
    window: Duration,
    pub(super) replacing: HashMap<String, Replacing>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("held", &self.holders.len())
            .field("window", &self.window)
            .field("replacing", &self.replacing.len())
            .finish()
    }
}

/// A holder that conflicts with a new submit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Conflict {
    pub(super) holder: RunId,
    /// The holder is queued and never started: it may be replaced.
    pub(super) unstarted: bool,
}

impl Keys {
    /// No key held; a finished run keeps its key for `window`.
    pub(super) fn new(window: Duration) -> Self {
        Keys {
            holders: HashMap::new(),
            window,
            replacing: HashMap::new(),
        }
    }

    pub(super) fn insert(&mut self, key: String, id: RunId) {
        self.holders.insert(key, id);
    }

    /// The run holding `key`, if it conflicts with a new submit under `rule`: its status is
    /// in the rule's states, it was created within the rule's period (if any), and, if it
    /// ended, it ended within the period, or without one within the dedup window. A key whose
    /// run no longer conflicts under the default rule (or is gone from `records`) is forgotten.
    pub(super) fn conflict(
        &mut self,
        key: &str,
        rule: &Uniqueness,
        records: &Records,
    ) -> Option<Conflict> {
        let id = *self.holders.get(key)?;
        let now = Timestamp::now();
        let Some(r) = records.get(&id) else {
            self.holders.remove(key);
            return None;
        };
        let recent = |t: Timestamp, within: Duration| now.saturating_duration_since(t) < within;
        let live = r.finished_at().is_none_or(|end| recent(end, self.window));
        let conflicts = rule.states.contains(r.status())
            && match rule.period {
                Some(p) => recent(r.created_at(), p),
                None => live,
            };
        if !live && rule.period.is_none() {
            self.holders.remove(key);
        }
        conflicts.then_some(Conflict {
            holder: id,
            unstarted: r.status() == RunStatus::Queued && r.started_at().is_none(),
        })
    }
}
