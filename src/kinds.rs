//! Registered job kinds: jobs built from a name and JSON parameters, which is what lets a
//! durable run be re-queued after a crash.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use runwarden_actors::{BoxedJob, JsonObject, RunId};

type Factory = Arc<dyn Fn(&JsonObject) -> Result<BoxedJob, String> + Send + Sync>;

/// What happens to a run of this kind that a crash left queued or running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnInterrupt {
    /// Run it again (the interrupted attempt is recorded as an `Interrupted` error).
    #[default]
    Rerun,
    /// End it `Failed` with kind `Interrupted`.
    Fail,
}

#[derive(Clone)]
pub(crate) struct Kind {
    pub(crate) factory: Factory,
    pub(crate) on_interrupt: OnInterrupt,
}

/// The job kinds of one runwarden instance.
#[derive(Clone, Default)]
pub(crate) struct JobKinds {
    pub(crate) kinds: HashMap<String, Kind>,
}

impl fmt::Debug for JobKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

/// What start-up recovery did with the runs a previous process left active.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RecoveryReport {
    /// Runs queued again (their kind is registered and reruns interrupted runs).
    pub requeued: Vec<RunId>,
    /// Runs ended `Failed` with kind `Interrupted`.
    pub interrupted: Vec<RunId>,
    /// Records in the store when it was opened.
    pub records: usize,
}

impl RecoveryReport {
    /// How many runs were reconciled.
    pub fn recovered(&self) -> usize {
        self.requeued.len() + self.interrupted.len()
    }
}
