//! Queries over run records, shared by the registry and the stores that answer them.

use serde::{Deserialize, Serialize};

use crate::run::{RunRecord, RunStatus};

/// A filter for [`crate::RegistryMessage::List`]. Filters combine (status AND label).
///
/// # Examples
/// ```
/// use runwarden_actors::{ListQuery, RunStatus};
///
/// let failed_reports = ListQuery::new().status(RunStatus::Failed).label("report").limit(20);
/// assert_eq!(failed_reports.limit, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListQuery {
    /// Only runs with this status.
    pub status: Option<RunStatus>,
    /// Only runs with this label.
    pub label: Option<String>,
    /// Only runs in this queue.
    #[serde(default)]
    pub queue: Option<String>,
    /// At most this many runs in the page (default 100).
    pub limit: usize,
    /// Skip this many matching runs first (default 0).
    pub offset: usize,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            status: None,
            label: None,
            queue: None,
            limit: 100,
            offset: 0,
        }
    }
}

impl ListQuery {
    /// All runs, first page of 100.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Only runs with `status`.
    #[must_use]
    pub fn status(mut self, status: RunStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only runs with `label`.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// Only runs in `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = Some(queue.into());
        self
    }

    /// Page size.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Number of matching runs to skip.
    #[must_use]
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }
}

/// One page of a [`ListQuery`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPage {
    /// The matching runs in this page, newest first.
    pub runs: Vec<RunRecord>,
    /// How many runs match the filter in all.
    pub total: usize,
}
