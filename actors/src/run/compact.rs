//! A record's compact JSON, for stores: the fields a record has, without the absent ones.
//!
//! A finished trivial run's record is about 600 bytes of JSON with every field written, and
//! half of that is keys of fields that are `null` or empty. A store writes each record at
//! least twice per run, so it writes this form instead: [`RunRecord`]'s `Deserialize` reads
//! it back as the same record (an absent field is `None` or empty). The API's JSON keeps every
//! field.

use serde::Serialize;

use super::{
    CancelReason, Dependency, Progress, RetryPolicy, RunError, RunId, RunRecord, RunStatus,
    WorkflowId,
};
use crate::json::{Json, JsonObject};
use crate::time::Timestamp;

/// A borrowed view of a [`RunRecord`] that skips absent fields. Built by destructuring the
/// record whole, so a new field of the record does not compile until it is added here.
#[derive(Serialize)]
struct Compact<'a> {
    id: &'a RunId,
    label: &'a str,
    name: &'a str,
    params: &'a JsonObject,
    status: RunStatus,
    created_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RunError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cancelled_by: Option<&'a CancelReason>,
    queue: &'a str,
    priority: i32,
    attempt: u32,
    max_attempts: u32,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    attempt_errors: &'a [RunError],
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "is_zero")]
    snoozes: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    eligible_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<&'a Progress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partition_key: Option<&'a str>,
    /// Milliseconds, as the record's own form writes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry: Option<&'a RetryPolicy>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    depends_on: &'a [Dependency],
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow: Option<WorkflowId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rerun_of: Option<RunId>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    reruns: &'a [RunId],
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_parent: Option<&'a str>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl<'a> Compact<'a> {
    fn of(r: &'a RunRecord) -> Self {
        let RunRecord {
            id,
            label,
            name,
            params,
            status,
            created_at,
            started_at,
            finished_at,
            duration_ms,
            error,
            cancelled_by,
            queue,
            priority,
            attempt,
            max_attempts,
            attempt_errors,
            next_attempt_at,
            snoozes,
            eligible_at,
            progress,
            result,
            exit_code,
            kind,
            idempotency_key,
            partition_key,
            timeout,
            retry,
            depends_on,
            workflow,
            step,
            rerun_of,
            reruns,
            trace_parent,
        } = r;
        Compact {
            id,
            label,
            name,
            params,
            status: *status,
            created_at: *created_at,
            started_at: *started_at,
            finished_at: *finished_at,
            duration_ms: *duration_ms,
            error: error.as_ref(),
            cancelled_by: cancelled_by.as_ref(),
            queue,
            priority: *priority,
            attempt: *attempt,
            max_attempts: *max_attempts,
            attempt_errors,
            next_attempt_at: *next_attempt_at,
            snoozes: *snoozes,
            eligible_at: *eligible_at,
            progress: progress.as_ref(),
            // `Some(null)` reads back as `None` in either form.
            result: result.as_ref().filter(|v| !matches!(v, Json::Null)),
            exit_code: *exit_code,
            kind: kind.as_deref(),
            idempotency_key: idempotency_key.as_deref(),
            partition_key: partition_key.as_deref(),
            timeout: timeout.map(|d| d.as_millis().min(u128::from(u64::MAX)) as u64),
            retry: retry.as_ref(),
            depends_on,
            workflow: *workflow,
            step: step.as_deref(),
            rerun_of: *rerun_of,
            reruns,
            trace_parent: trace_parent.as_deref(),
        }
    }
}

impl RunRecord {
    /// The record in its compact form, to serialise: every field it has, without the absent
    /// ones (`None`, empty lists, no snoozes). [`RunRecord`]'s `Deserialize` reads it back as
    /// an equal record. Meant for [`RunStore`](crate::RunStore) implementations, which write
    /// every record at least twice per run; the record's own `Serialize` (the API's JSON)
    /// keeps every field.
    ///
    /// # Examples
    /// ```
    /// use runwarden_actors::{RunId, RunRecord, RunSpec};
    ///
    /// let record = RunRecord::queued(RunId::new(), RunSpec::new("report"));
    /// let json = serde_json::to_string(&record.compact())?;
    /// assert!(!json.contains("null"));
    /// let back: RunRecord = serde_json::from_str(&json)?;
    /// assert_eq!(back, record);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    #[must_use]
    pub fn compact(&self) -> impl Serialize + '_ {
        Compact::of(self)
    }
}
