//! Registered job kinds: jobs built from a name and JSON parameters, which is what lets a
//! durable run be re-queued after a crash.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::job::BoxedJob;
use crate::json::JsonObject;
use crate::run::RunId;

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
struct Kind {
    factory: Factory,
    on_interrupt: OnInterrupt,
}

/// The job kinds a supervisor knows: names of jobs it can build from JSON parameters.
///
/// A run of a registered kind records its kind's name and parameters, so a supervisor started
/// later on the same store can rebuild its job and run it again (see [`OnInterrupt`]).
///
/// # Examples
/// ```
/// use runwarden_actors::{BoxedJob, JobKinds, Json, OnInterrupt};
///
/// let kinds = JobKinds::new().register("greet", OnInterrupt::Rerun, |params| {
///     let who = match params.get("who") {
///         Some(Json::String(who)) => who.clone(),
///         _ => "world".to_owned(),
///     };
///     Ok(BoxedJob::new(move |ctx| async move {
///         ctx.info(format!("hello, {who}"));
///         Ok(())
///     }))
/// });
/// assert!(kinds.contains("greet"));
/// ```
#[derive(Clone, Default)]
pub struct JobKinds {
    kinds: HashMap<String, Kind>,
}

impl JobKinds {
    /// No kinds.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a job kind (replacing one of the same name): `factory` builds a run's job
    /// from its parameters, or refuses them with a message.
    #[must_use]
    pub fn register(
        mut self,
        name: impl Into<String>,
        on_interrupt: OnInterrupt,
        factory: impl Fn(&JsonObject) -> Result<BoxedJob, String> + Send + Sync + 'static,
    ) -> Self {
        let kind = Kind {
            factory: Arc::new(factory),
            on_interrupt,
        };
        self.kinds.insert(name.into(), kind);
        self
    }

    /// The registered kinds' names, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Whether a kind of this name is registered.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        self.kinds.contains_key(name)
    }

    /// Builds a job of kind `name` from `params`: `None` for an unknown kind, `Some(Err)` if
    /// the factory refused the parameters.
    #[must_use]
    pub fn build(&self, name: &str, params: &JsonObject) -> Option<Result<BoxedJob, String>> {
        self.kinds.get(name).map(|k| (k.factory)(params))
    }

    /// What a crash does to a run of kind `name` (`None` for an unknown kind).
    #[must_use]
    pub fn on_interrupt(&self, name: &str) -> Option<OnInterrupt> {
        self.kinds.get(name).map(|k| k.on_interrupt)
    }
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
    #[must_use]
    pub fn recovered(&self) -> usize {
        self.requeued.len() + self.interrupted.len()
    }
}
