//! A node's settings ([`NodeConfig`]) and its job kinds ([`ClusterKinds`]).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use runwarden::{BoxedJob, LogConfig, OnInterrupt, RunId};

use crate::error::ClusterError;
use crate::run::Params;

/// What a kind's factory is given to build one attempt's job.
#[derive(Debug)]
pub struct JobInput<'a> {
    /// The cluster run's id (the same on every node and attempt).
    pub run_id: RunId,
    /// The attempt, from 1.
    pub attempt: u32,
    /// The run's parameters.
    pub params: &'a Params,
}

type Factory = Arc<dyn Fn(&JobInput<'_>) -> Result<BoxedJob, String> + Send + Sync>;

#[derive(Clone)]
struct Kind {
    loss: OnInterrupt,
    factory: Factory,
}

/// The job kinds a node runs: a name, what to do with a run when the node running it is
/// lost, and a factory building the job from the run's parameters.
#[derive(Clone, Default)]
pub struct ClusterKinds {
    kinds: HashMap<String, Kind>,
}

impl fmt::Debug for ClusterKinds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

impl ClusterKinds {
    /// No kinds.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `name`. `on_loss`: [`OnInterrupt::Rerun`] lets a rescue queue a run of this
    /// kind again when its node is lost (it may then have run twice, in part);
    /// [`OnInterrupt::Fail`] makes the kind at-most-once: a lost run ends `failed`
    /// (`node_lost`) and is never executed again.
    #[must_use]
    pub fn register(
        mut self,
        name: impl Into<String>,
        on_loss: OnInterrupt,
        factory: impl Fn(&JobInput<'_>) -> Result<BoxedJob, String> + Send + Sync + 'static,
    ) -> Self {
        self.kinds.insert(
            name.into(),
            Kind {
                loss: on_loss,
                factory: Arc::new(factory),
            },
        );
        self
    }

    /// The kinds' names, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.kinds.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    /// Each run's loss rule, or why the runs are refused (an unknown kind, no attempts).
    pub(crate) fn rules(&self, runs: &[crate::run::NewRun]) -> Result<Vec<bool>, ClusterError> {
        runs.iter()
            .map(|r| {
                if r.max_attempts == 0 {
                    return Err(ClusterError::BadRequest(
                        "max_attempts must be at least 1".into(),
                    ));
                }
                self.rerun_on_loss(&r.kind)
                    .ok_or_else(|| ClusterError::UnknownKind(r.kind.clone()))
            })
            .collect()
    }

    /// May a run of `kind` run again after its node is lost? `None`: no such kind.
    pub(crate) fn rerun_on_loss(&self, kind: &str) -> Option<bool> {
        self.kinds
            .get(kind)
            .map(|k| matches!(k.loss, OnInterrupt::Rerun))
    }

    pub(crate) fn build(&self, kind: &str, input: &JobInput<'_>) -> Result<BoxedJob, String> {
        match self.kinds.get(kind) {
            Some(k) => (k.factory)(input),
            None => Err(format!("no job kind named `{kind}` on this node")),
        }
    }
}

/// How one node runs: its name, capacity and the timings of its lease.
///
/// The timings must satisfy `heartbeat < fence_after < dead_after - heartbeat`: a node that
/// cannot renew its lease for `fence_after` stops its own runs, and only after `dead_after`
/// (by the database's clock) does a leader take them back, so a live node has fenced itself
/// before anyone else runs its work; the margin between them absorbs a late heartbeat.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The database (`postgres://user@host:port/db`).
    pub url: String,
    /// A label for people; the node's id is new for every start.
    pub name: String,
    /// Runs this node runs at once; it claims only for free capacity. 0 makes a client
    /// node: it submits, queries and cancels, and runs nothing.
    pub concurrency: usize,
    /// How often it renews its lease and checks for cancels (and, leading, rescues).
    pub heartbeat: Duration,
    /// Without a renewed lease for this long, it stops its runs and rejoins with a new id.
    pub fence_after: Duration,
    /// Silent for this long, a node is declared dead and its runs taken back.
    pub dead_after: Duration,
    /// How often it looks for runs when no notification has come (notifications are hints).
    pub poll: Duration,
    /// How long a cancelled job has to stop before it is dropped.
    pub cancel_grace: Duration,
    /// Most runs claimed by one statement.
    pub claim_batch: usize,
    /// Connections in its pool.
    pub pool_size: usize,
    /// May this node hold the leader's lease (and so run rescues)? At least one live node
    /// must, or nobody takes back a dead node's runs.
    pub may_lead: bool,
    /// How often an event feed with nothing new looks again.
    pub events_poll: Duration,
    /// The leader deletes events older than this.
    pub retain_events: Duration,
    /// The leader deletes runs that ended longer ago than this (their events go by
    /// `retain_events`).
    pub retain_finished: Duration,
    /// Capture runs' logs (process runs' output, jobs' own lines) on this node, under this
    /// directory; `None` (the default) keeps none.
    pub logs: Option<LogConfig>,
    /// With logs: how many last lines of each attempt are copied to the database with its
    /// outcome, for any node to serve (default 1,000).
    pub log_lines_kept: usize,
}

impl NodeConfig {
    /// Defaults: concurrency 64, heartbeat 1 s, fence after 5 s, dead after 10 s, poll 1 s,
    /// cancel grace 5 s, claims of up to 256, 8 connections, may lead; event feeds look every
    /// 100 ms; events are kept a day and ended runs a week.
    #[must_use]
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        NodeConfig {
            url: url.into(),
            name: name.into(),
            concurrency: 64,
            heartbeat: Duration::from_secs(1),
            fence_after: Duration::from_secs(5),
            dead_after: Duration::from_secs(10),
            poll: Duration::from_secs(1),
            cancel_grace: Duration::from_secs(5),
            claim_batch: 256,
            pool_size: 8,
            may_lead: true,
            events_poll: Duration::from_millis(100),
            retain_events: Duration::from_secs(24 * 3600),
            retain_finished: Duration::from_secs(7 * 24 * 3600),
            logs: None,
            log_lines_kept: 1_000,
        }
    }

    /// Checks the timings and sizes.
    ///
    /// # Errors
    /// [`ClusterError::BadRequest`], saying which rule fails.
    pub fn check(&self) -> Result<(), ClusterError> {
        let bad = |why: String| Err(ClusterError::BadRequest(why));
        if self.claim_batch == 0 || self.pool_size < 2 {
            return bad("claim_batch must be at least 1, and pool_size 2".into());
        }
        if self.heartbeat.is_zero() || self.poll.is_zero() || self.events_poll.is_zero() {
            return bad("heartbeat, poll and events_poll must be more than zero".into());
        }
        if self.retain_events.is_zero() || self.retain_finished.is_zero() {
            return bad("retain_events and retain_finished must be more than zero".into());
        }
        if self.fence_after <= self.heartbeat {
            return bad(format!(
                "fence_after ({:?}) must be longer than heartbeat ({:?})",
                self.fence_after, self.heartbeat
            ));
        }
        if self.dead_after <= self.fence_after + self.heartbeat {
            return bad(format!(
                "dead_after ({:?}) must be longer than fence_after + heartbeat ({:?})",
                self.dead_after,
                self.fence_after + self.heartbeat
            ));
        }
        Ok(())
    }
}
