//! What the cluster stores and answers: [`NewRun`] (a submit), [`ClusterRun`] (a run's row),
//! [`ClusterStats`], [`CancelAnswer`].

use std::time::{Duration, SystemTime};

use runwarden::{ErrorKind, RunId, RunStatus};
use serde::Serialize;

/// Parameters of a run: a JSON object.
pub type Params = serde_json::Map<String, serde_json::Value>;

/// Attempts a run gets when its submit does not say (each claim is one; a rescue after a
/// node died counts as one).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// A run to submit: a registered kind and its parameters, and how to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub(crate) kind: String,
    pub(crate) params: Params,
    pub(crate) label: Option<String>,
    pub(crate) queue: String,
    pub(crate) priority: i32,
    pub(crate) max_attempts: u32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) delay: Duration,
    pub(crate) idempotency_key: Option<String>,
}

impl NewRun {
    /// A run of `kind` with no parameters, in the `default` queue, at priority 0, with
    /// [`DEFAULT_MAX_ATTEMPTS`].
    #[must_use]
    pub fn new(kind: impl Into<String>) -> Self {
        NewRun {
            kind: kind.into(),
            params: Params::new(),
            label: None,
            queue: runwarden::DEFAULT_QUEUE.to_owned(),
            priority: 0,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            timeout: None,
            delay: Duration::ZERO,
            idempotency_key: None,
        }
    }

    /// The parameters the kind's job is built from.
    #[must_use]
    pub fn params(mut self, params: Params) -> Self {
        self.params = params;
        self
    }

    /// One parameter.
    #[must_use]
    pub fn param(mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    /// A label for people (the kind's name if not set).
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// The queue (a name; cluster nodes claim from every queue).
    #[must_use]
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// Higher runs first; equal priorities run in submit order.
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// How many attempts the run gets in all (at least 1): a failed attempt, or a node lost
    /// while running it, is retried while attempts remain.
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n;
        self
    }

    /// A time limit per attempt: the job is stopped and the attempt fails `TimedOut`.
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Not claimed before this long after the submit commits.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// At most one run that has not ended holds this key, cluster-wide: a second submit with
    /// it is refused with [`ClusterError::DuplicateKey`](crate::ClusterError::DuplicateKey).
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// A run as the cluster's system of record holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterRun {
    /// Its id.
    pub id: RunId,
    /// The job kind.
    pub kind: String,
    /// The label.
    pub label: String,
    /// The queue.
    pub queue: String,
    /// The priority.
    pub priority: i32,
    /// The parameters.
    pub params: Params,
    /// The status: `queued`, `running`, or terminal.
    pub status: RunStatus,
    /// Attempts so far (claims; a handed-back claim is not one).
    pub attempt: u32,
    /// Attempts allowed in all.
    pub max_attempts: u32,
    /// May it run again after its node is lost?
    pub rerun_on_loss: bool,
    /// The name of the node that ran (or runs) its latest attempt.
    pub node: Option<String>,
    /// That node's id (new per process start).
    pub node_id: Option<uuid::Uuid>,
    /// When it was submitted.
    #[serde(serialize_with = "ser_time")]
    pub created_at: SystemTime,
    /// When it was first claimed to run.
    #[serde(serialize_with = "ser_opt_time")]
    pub started_at: Option<SystemTime>,
    /// When it ended.
    #[serde(serialize_with = "ser_opt_time")]
    pub finished_at: Option<SystemTime>,
    /// What the job returned, for a completed run.
    pub result: Option<serde_json::Value>,
    /// Why it failed or was cancelled.
    pub error_kind: Option<ErrorKind>,
    /// The error's text.
    pub error: Option<String>,
    /// Has someone asked to cancel it?
    pub cancel_requested: bool,
    /// How many times a rescue took it back from a lost node.
    pub rescues: u32,
    /// The idempotency key it was submitted with.
    pub idempotency_key: Option<String>,
}

pub(crate) fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&runwarden::Timestamp::from_system_time(*t).to_string())
}

fn ser_opt_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => ser_time(t, s),
        None => s.serialize_none(),
    }
}

/// A line of a run's log, as the cluster keeps it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    /// The attempt that wrote it.
    pub attempt: u32,
    /// When it was captured.
    #[serde(serialize_with = "ser_time")]
    pub at: SystemTime,
    /// Its level (`INFO`, `WARN`, ...).
    pub level: String,
    /// `stdout`, `stderr` or `job`.
    pub stream: String,
    /// The text.
    pub message: String,
}

/// A schedule of the cluster, and what it has done.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScheduleInfo {
    /// Its name (unique in the cluster).
    pub name: String,
    /// The cron expression, and the time zone it is read in.
    pub cron: String,
    /// The IANA time zone.
    pub time_zone: String,
    /// The kind of the runs it submits.
    pub kind: String,
    /// Its next fire time (`None`: it never fires again).
    #[serde(serialize_with = "ser_opt_time")]
    pub next_at: Option<SystemTime>,
    /// Runs it has submitted.
    pub fires: u64,
    /// Fire times skipped because its last run had not ended.
    pub skipped: u64,
    /// Fire times missed (later than the deadline) and not run.
    pub missed: u64,
    /// When it last submitted a run.
    #[serde(serialize_with = "ser_opt_time")]
    pub last_fired_at: Option<SystemTime>,
    /// The run it last submitted.
    pub last_run_id: Option<RunId>,
}

/// A queue limited cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueLimit {
    /// The queue.
    pub queue: String,
    /// At most this many of its runs run at once, over every node.
    pub global_limit: u32,
    /// How many run now (a dead node's count until they are rescued).
    pub running: u64,
}

/// Counts over the whole cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClusterStats {
    /// Runs per status.
    pub queued: u64,
    /// Running (claimed by a live or not yet rescued node).
    pub running: u64,
    /// Completed.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Nodes heartbeating now.
    pub live_nodes: u64,
    /// Nodes declared dead or gone.
    pub dead_nodes: u64,
}

/// What a cancel did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelAnswer {
    /// It was queued: it is now `cancelled`, and never ran (this attempt).
    CancelledWhileQueued,
    /// It is running: its node has been asked to stop it (it records how it ended).
    Requested,
    /// It had already ended with this status.
    AlreadyFinished(RunStatus),
    /// No run has this id.
    NotFound,
}

pub(crate) fn status_str(s: RunStatus) -> &'static str {
    match s {
        RunStatus::Queued => "queued",
        RunStatus::Running => "running",
        RunStatus::Completed => "completed",
        RunStatus::Failed => "failed",
        _ => "cancelled",
    }
}

pub(crate) fn parse_status(s: &str) -> RunStatus {
    match s {
        "queued" => RunStatus::Queued,
        "running" => RunStatus::Running,
        "completed" => RunStatus::Completed,
        "failed" => RunStatus::Failed,
        _ => RunStatus::Cancelled,
    }
}

pub(crate) fn error_kind_str(k: ErrorKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "returned".to_owned())
}

pub(crate) fn parse_error_kind(s: &str) -> Option<ErrorKind> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
}
