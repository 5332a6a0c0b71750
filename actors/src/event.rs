//! Live events: what the registry publishes when a run changes.

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, oneshot};

use crate::error::NotFound;
use crate::run::{Progress, RunError, RunId, RunRecord, RunStatus};
use crate::time::Timestamp;

/// Something that happened to one run, published by the registry in the order it applied it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run reached a status (`queued` when accepted or waiting to be retried, `running`,
    /// or a terminal status).
    Status {
        /// The run.
        run_id: RunId,
        /// Its label.
        label: String,
        /// The status it reached.
        status: RunStatus,
        /// Its attempt number.
        attempt: u32,
        /// Why it failed or was cancelled (or why the last attempt failed, for a retry).
        error: Option<RunError>,
        /// When the registry applied the change.
        at: Timestamp,
    },
    /// The run's job reported progress (coalesced: the latest report when the registry took it).
    Progress {
        /// The run.
        run_id: RunId,
        /// Its label.
        label: String,
        /// The report.
        progress: Progress,
    },
}

impl RunEvent {
    /// The run the event is about.
    #[must_use]
    pub fn run_id(&self) -> RunId {
        match self {
            RunEvent::Status { run_id, .. } | RunEvent::Progress { run_id, .. } => *run_id,
        }
    }

    /// The run's label.
    #[must_use]
    pub fn label(&self) -> &str {
        match self {
            RunEvent::Status { label, .. } | RunEvent::Progress { label, .. } => label,
        }
    }

    /// The status, for a status event.
    #[must_use]
    pub fn status(&self) -> Option<RunStatus> {
        match self {
            RunEvent::Status { status, .. } => Some(*status),
            RunEvent::Progress { .. } => None,
        }
    }

    /// Whether this is the run's terminal status event (its last event).
    pub fn is_terminal(&self) -> bool {
        self.status().is_some_and(RunStatus::is_terminal)
    }

    /// The status event that a record in its current state corresponds to.
    #[must_use]
    pub fn from_record(r: &RunRecord) -> Self {
        RunEvent::Status {
            run_id: r.id,
            label: r.label.clone(),
            status: r.status,
            attempt: r.attempt,
            error: r.error.clone().or_else(|| {
                (r.status == RunStatus::Queued && r.attempt > 1)
                    .then(|| r.attempt_errors.last().cloned())
                    .flatten()
            }),
            at: r.finished_at.or(r.started_at).unwrap_or(r.created_at),
        }
    }
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventFilter {
    /// Every run's events.
    All,
    /// Events of runs with this label.
    Label(String),
    /// Events of one run; the subscription ends with its terminal event.
    Run(RunId),
}

impl EventFilter {
    /// Whether `event` passes the filter.
    #[must_use]
    pub fn matches(&self, event: &RunEvent) -> bool {
        match self {
            EventFilter::All => true,
            EventFilter::Label(l) => event.label() == l,
            EventFilter::Run(id) => event.run_id() == *id,
        }
    }
}

/// A registry subscription, made atomically with the registry's state: no event is missed
/// between `current` and the first event received.
#[derive(Debug)]
pub struct Subscription {
    /// The filter.
    pub filter: EventFilter,
    /// Events from the moment of subscribing (bounded: a slow receiver lags, never blocks).
    pub events: broadcast::Receiver<RunEvent>,
    /// For [`EventFilter::Run`]: the run's record when the subscription was made.
    pub current: Option<RunRecord>,
    /// For [`EventFilter::Run`] on an active run: resolves with the final record when the
    /// run ends, so the end is delivered even if the subscriber lagged past its event.
    pub terminal: Option<oneshot::Receiver<Result<RunRecord, NotFound>>>,
}
