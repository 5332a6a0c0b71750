//! Queries over run records, shared by the registry and the stores that answer them.

use serde::{Deserialize, Serialize};

use crate::run::WorkflowId;
use crate::run::{RunId, RunRecord, RunStatus};
use crate::time::Timestamp;

/// A filter for [`crate::RegistryMessage::List`]. Filters combine (status AND label AND ...);
/// time ranges include their start and exclude their end (`created_after` inclusive,
/// `created_before` not; the same for `finished_*`, which only active runs never match).
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
    /// Only runs of this registered job kind.
    #[serde(default)]
    pub kind: Option<String>,
    /// Only the steps of this workflow (or batch).
    #[serde(default)]
    pub workflow: Option<WorkflowId>,
    /// Only runs created at or after this time.
    #[serde(default)]
    pub created_after: Option<Timestamp>,
    /// Only runs created before this time.
    #[serde(default)]
    pub created_before: Option<Timestamp>,
    /// Only runs that ended at or after this time.
    #[serde(default)]
    pub finished_after: Option<Timestamp>,
    /// Only runs that ended before this time.
    #[serde(default)]
    pub finished_before: Option<Timestamp>,
    /// Only runs with this name.
    #[serde(default)]
    pub name: Option<String>,
    /// Only runs whose id, written as text (`0193…-…`), starts with this (any case).
    #[serde(default)]
    pub id_prefix: Option<String>,
    /// A cursor: only runs listed after this one (the last of the previous page), so a page
    /// is not shifted by runs that arrive meanwhile. `total` still counts every match. In
    /// memory the listing order is the order the registry accepted runs; a store lists by id
    /// (time-ordered). A cursor run no longer held is compared by id.
    #[serde(default)]
    pub after: Option<RunId>,
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
            kind: None,
            workflow: None,
            created_after: None,
            created_before: None,
            finished_after: None,
            finished_before: None,
            name: None,
            id_prefix: None,
            after: None,
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

    /// Only runs of job kind `kind`.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Only the steps of workflow `id`.
    #[must_use]
    pub fn workflow(mut self, id: WorkflowId) -> Self {
        self.workflow = Some(id);
        self
    }

    /// Only runs created in `[after, before)` (either end may be open).
    #[must_use]
    pub fn created(mut self, after: Option<Timestamp>, before: Option<Timestamp>) -> Self {
        self.created_after = after;
        self.created_before = before;
        self
    }

    /// Only runs that ended in `[after, before)` (either end may be open).
    #[must_use]
    pub fn finished(mut self, after: Option<Timestamp>, before: Option<Timestamp>) -> Self {
        self.finished_after = after;
        self.finished_before = before;
        self
    }

    /// Only runs named `name`.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Only runs whose id starts with `prefix` (as text, in any case): a search by id.
    pub fn id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.id_prefix = Some(prefix.into());
        self
    }

    /// Whether the filter selects anything less than every run (a bulk action needs this).
    #[must_use]
    pub fn has_criteria(&self) -> bool {
        self.status.is_some() || self.filters_beyond_status()
    }

    /// Whether the filter has criteria besides the status.
    #[must_use]
    pub fn filters_beyond_status(&self) -> bool {
        self.label.is_some()
            || self.queue.is_some()
            || self.kind.is_some()
            || self.workflow.is_some()
            || self.created_after.is_some()
            || self.created_before.is_some()
            || self.finished_after.is_some()
            || self.finished_before.is_some()
            || self.name.is_some()
            || self.id_prefix.is_some()
    }

    /// Whether a run with these fields matches (what every store's listing must agree with).
    #[must_use]
    pub fn matches_fields(&self, r: RecordFields<'_>) -> bool {
        self.status.is_none_or(|s| r.status == s)
            && self.label.as_deref().is_none_or(|l| r.label == l)
            && self.queue.as_deref().is_none_or(|q| r.queue == q)
            && self.kind.as_deref().is_none_or(|k| r.kind == Some(k))
            && self.workflow.is_none_or(|w| r.workflow == Some(w))
            && self.created_after.is_none_or(|t| r.created_at >= t)
            && self.created_before.is_none_or(|t| r.created_at < t)
            && self
                .finished_after
                .is_none_or(|t| r.finished_at.is_some_and(|f| f >= t))
            && self
                .finished_before
                .is_none_or(|t| r.finished_at.is_some_and(|f| f < t))
            && self.name.as_deref().is_none_or(|n| r.name == n)
            && self
                .id_prefix
                .as_deref()
                .is_none_or(|p| id_starts_with(r.id, p))
    }

    /// Whether `record` matches.
    #[must_use]
    pub fn matches(&self, record: &RunRecord) -> bool {
        self.matches_fields(RecordFields {
            status: record.status,
            label: &record.label,
            queue: &record.queue,
            kind: record.kind.as_deref(),
            workflow: record.workflow,
            created_at: record.created_at,
            finished_at: record.finished_at,
            name: &record.name,
            id: record.id,
        })
    }

    /// The next page after run `id` (the last run of the previous page).
    #[must_use]
    pub fn after(mut self, id: RunId) -> Self {
        self.after = Some(id);
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

/// The fields of a record a [`ListQuery`] filters on.
#[derive(Debug, Clone, Copy)]
pub struct RecordFields<'a> {
    /// Its status.
    pub status: RunStatus,
    /// Its label.
    pub label: &'a str,
    /// Its queue.
    pub queue: &'a str,
    /// Its job kind.
    pub kind: Option<&'a str>,
    /// Its workflow.
    pub workflow: Option<WorkflowId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it ended, if it has.
    pub finished_at: Option<Timestamp>,
    /// Its name.
    pub name: &'a str,
    /// Its id.
    pub id: RunId,
}

/// Whether `id`'s text form starts with `prefix`, in any case (without building the text).
fn id_starts_with(id: RunId, prefix: &str) -> bool {
    let mut buf = uuid::Uuid::encode_buffer();
    let text = id.as_uuid().hyphenated().encode_lower(&mut buf);
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// One page of a [`ListQuery`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPage {
    /// The matching runs in this page, newest first.
    pub runs: Vec<RunRecord>,
    /// How many runs match the filter in all.
    pub total: usize,
}
