//! Run routes: start, list, get, cancel, logs.

use std::time::Duration;

use axum::Json;
use axum::extract::{OriginalUri, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{Dedup, Kind, ListQuery, RunId, RunSpec, RunStatus, Timestamp, WorkflowId};

use super::errors::*;
use super::options::*;
use super::state::Api;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartRun {
    kind: String,
    #[serde(default)]
    params: Option<Value>,
    label: Option<String>,
    name: Option<String>,
    queue: Option<String>,
    #[serde(default)]
    priority: i32,
    idempotency_key: Option<String>,
    partition_key: Option<String>,
    /// With `idempotency_key`: when the key conflicts, and what a conflict does.
    unique: Option<crate::Uniqueness>,
    timeout_ms: Option<u64>,
}

pub(super) fn check_params(v: &Value, limits: &ParamLimits) -> Result<(), String> {
    if !v.is_object() {
        return Err("params must be a JSON object".into());
    }
    let bytes = serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX);
    if bytes > limits.max_bytes {
        return Err(format!(
            "params are {bytes} bytes; at most {} allowed",
            limits.max_bytes
        ));
    }
    fn walk(v: &Value, depth: usize, limits: &ParamLimits) -> Result<(), String> {
        if depth > limits.max_depth {
            return Err(format!("params nest deeper than {}", limits.max_depth));
        }
        match v {
            Value::Object(map) => {
                if map.len() > limits.max_keys {
                    return Err(format!(
                        "an object has {} keys; at most {} allowed",
                        map.len(),
                        limits.max_keys
                    ));
                }
                for (k, child) in map {
                    if limits.forbidden_keys.iter().any(|f| f == k) {
                        return Err(format!("key `{k}` is not allowed"));
                    }
                    walk(child, depth + 1, limits)?;
                }
                Ok(())
            }
            Value::Array(items) => items.iter().try_for_each(|c| walk(c, depth + 1, limits)),
            _ => Ok(()),
        }
    }
    walk(v, 1, limits)
}

/// A run's spec from its request, checked as `POST /runs` checks it.
fn spec_of(api: &Api, body: &mut StartRun) -> Result<RunSpec, ApiError> {
    if !api.rw.has_kind(&body.kind) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UNKNOWN_KIND",
            format!("no job kind named `{}`", body.kind),
        ));
    }
    let params = body.params.take().unwrap_or_else(|| json!({}));
    check_params(&params, &api.options.params).map_err(ApiError::validation)?;
    let params =
        crate::params_from_json(params).map_err(|e| ApiError::validation(e.to_string()))?;
    let label = body.label.take().unwrap_or_else(|| body.kind.clone());
    let mut spec = RunSpec::new(label).params(params).priority(body.priority);
    if let Some(name) = body.name.take() {
        spec = spec.name(name);
    }
    if let Some(q) = body.queue.take() {
        spec = spec.queue(q);
    }
    if let Some(ms) = body.timeout_ms {
        spec = spec.timeout(Duration::from_millis(ms));
    }
    if let Some(key) = body.partition_key.take() {
        spec = spec.partition_key(key);
    }
    Ok(spec)
}

/// Most runs in one `POST /runs/batch`.
pub(super) const MAX_BATCH: usize = 1000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartRuns {
    runs: Vec<StartRun>,
}

/// The request's W3C `traceparent` header, if it is well formed (one that is not is
/// ignored, as the Trace Context recommendation asks of a receiver).
fn traceparent(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("traceparent")?.to_str().ok()?.trim();
    runwarden_actors::is_traceparent(v).then(|| v.to_owned())
}

/// `POST /runs/batch`: many runs in one registry message and one store transaction; one
/// result per run, in order, once the batch is committed.
pub(super) async fn start_runs(
    State(api): State<Api>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<StartRuns>,
) -> Result<Response, ApiError> {
    let trace = traceparent(&headers);
    let n = body.runs.len();
    if n == 0 || n > MAX_BATCH {
        return Err(ApiError::validation(format!(
            "a batch holds 1 to {MAX_BATCH} runs, not {n}"
        )));
    }
    let mut results: Vec<Option<Value>> = vec![None; n];
    let mut accepted = Vec::with_capacity(n);
    let mut specs = Vec::with_capacity(n);
    for (i, mut run) in body.runs.into_iter().enumerate() {
        // Checked in `POST /runs`'s order: the kind and parameters, then the key.
        let checked =
            spec_of(&api, &mut run).and_then(|spec| match (&run.idempotency_key, &run.unique) {
                (None, None) => Ok(spec),
                (None, Some(_)) => Err(ApiError::validation(
                    "`unique` needs an `idempotency_key`".to_owned(),
                )),
                (Some(_), _) => Err(ApiError::validation(
                    "idempotency keys are not taken in a batch: use POST /runs",
                )),
            });
        match checked {
            Ok(mut spec) => {
                accepted.push((i, run.kind));
                spec.trace_parent.clone_from(&trace);
                specs.push(spec);
            }
            Err(e) => results[i] = Some(e.item()),
        }
    }
    let runs = specs.into_iter().zip(&accepted);
    let answers = api
        .rw
        .submit_many_durable(runs.map(|(spec, (_, kind))| (spec, Kind(kind))))
        .await;
    for ((i, _), answer) in accepted.iter().zip(answers) {
        results[*i] = Some(match answer {
            Ok(id) => json!({"id": id}),
            Err(e) => ApiError::from(e).item(),
        });
    }
    // One answer per run always comes back; a missing one would still be said, not skipped.
    let missing = || ApiError::from(crate::SubmitError::Unavailable).item();
    let results: Vec<Value> = results
        .into_iter()
        .map(|r| r.unwrap_or_else(missing))
        .collect();
    Ok((StatusCode::OK, Json(json!({"results": results}))).into_response())
}

pub(super) async fn start_run(
    State(api): State<Api>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    ApiJson(mut body): ApiJson<StartRun>,
) -> Result<Response, ApiError> {
    let mut spec = spec_of(&api, &mut body)?;
    spec.trace_parent = traceparent(&headers);
    let (id, created) = match (body.idempotency_key, body.unique) {
        (Some(key), unique) => {
            let request = api
                .rw
                .request(spec, Kind(&body.kind))
                .idempotency_key(key)
                .unique(unique.unwrap_or_default());
            match request.send().await? {
                Dedup::New(id) | Dedup::Replaced(id) => (id, true),
                Dedup::Existing(id) => (id, false),
            }
        }
        (None, Some(_)) => {
            return Err(ApiError::validation(
                "`unique` needs an `idempotency_key`".to_owned(),
            ));
        }
        (None, None) => (api.rw.submit_job(spec, Kind(&body.kind))?, true),
    };
    let record = api.rw.status(id).await?;
    let location = format!("{}/{id}", uri.path().trim_end_matches('/'));
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    let mut response = (status, Json(record)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(super) struct ListParams {
    status: Option<String>,
    label: Option<String>,
    queue: Option<String>,
    kind: Option<String>,
    workflow: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    finished_after: Option<String>,
    finished_before: Option<String>,
    name: Option<String>,
    /// A prefix of the run id (a search by id).
    id: Option<String>,
    /// A cursor: the page after this run (the previous page's `next`).
    after: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

pub(super) fn parse_time(what: &str, s: &str) -> Result<Timestamp, ApiError> {
    s.parse().map_err(|e: crate::actors::ParseTimestampError| {
        ApiError::validation(format!("{what}: {e}"))
    })
}

pub(super) fn parse_workflow(s: &str) -> Result<WorkflowId, ApiError> {
    s.parse()
        .map_err(|_| ApiError::validation(format!("`{s}` is not a workflow id")))
}

pub(super) fn parse_status(s: &str) -> Result<RunStatus, ApiError> {
    RunStatus::ALL
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| ApiError::validation(format!("unknown status `{s}`")))
}

/// The criteria `GET /runs` and `POST /runs/rerun` share, as the request gave them.
struct Criteria {
    label: Option<String>,
    queue: Option<String>,
    kind: Option<String>,
    workflow: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
}

impl Criteria {
    fn apply(self, mut q: ListQuery) -> Result<ListQuery, ApiError> {
        if let Some(l) = self.label {
            q = q.label(l);
        }
        if let Some(qu) = self.queue {
            q = q.queue(qu);
        }
        if let Some(k) = self.kind {
            q = q.kind(k);
        }
        if let Some(w) = self.workflow.as_deref() {
            q = q.workflow(parse_workflow(w)?);
        }
        let time = |what, t: Option<String>| t.map(|t| parse_time(what, &t)).transpose();
        let after = time("created_after", self.created_after)?;
        let before = time("created_before", self.created_before)?;
        Ok(q.created(after, before))
    }
}

pub(super) async fn list_runs(
    State(api): State<Api>,
    query: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(p) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    let mut q = ListQuery::new()
        .limit(p.limit.unwrap_or(50).min(1000))
        .offset(p.offset.unwrap_or(0));
    if let Some(s) = p.status.as_deref() {
        q = q.status(parse_status(s)?);
    }
    q = Criteria {
        label: p.label,
        queue: p.queue,
        kind: p.kind,
        workflow: p.workflow,
        created_after: p.created_after,
        created_before: p.created_before,
    }
    .apply(q)?;
    let time = |what, t: Option<String>| t.map(|t| parse_time(what, &t)).transpose();
    let f_after = time("finished_after", p.finished_after)?;
    let f_before = time("finished_before", p.finished_before)?;
    q = q.finished(f_after, f_before);
    if let Some(n) = p.name {
        q = q.name(n);
    }
    if let Some(prefix) = p.id {
        if prefix.is_empty()
            || prefix.len() > 36
            || !prefix.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
        {
            return Err(ApiError::validation(format!(
                "id: `{prefix}` is not the start of a run id (hex digits and dashes)"
            )));
        }
        q = q.id_prefix(prefix);
    }
    if let Some(after) = p.after.as_deref() {
        q = q.after(parse_id(after)?);
    }
    let (limit, offset) = (q.limit, q.offset);
    let page = api.rw.list(q).await?;
    // The cursor of the next page, when this one is full.
    let next = (page.runs.len() == limit && limit > 0)
        .then(|| page.runs.last().map(|r| r.id))
        .flatten();
    Ok(Json(
        json!({"runs": page.runs, "total": page.total, "limit": limit, "offset": offset, "next": next}),
    ))
}

pub(super) async fn get_run(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let record = api.rw.status(id).await?;
    Ok(Json(json!(record)))
}

pub(super) async fn cancel_run(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    let outcome = api.rw.cancel(id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"run_id": id, "outcome": outcome})),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelFilter {
    status: Option<String>,
    label: Option<String>,
    queue: Option<String>,
    kind: Option<String>,
    workflow: Option<String>,
}

/// `POST /runs/cancel`: cancels every active run matching the filter (at least one criterion),
/// one result per run, oldest first.
pub(super) async fn cancel_runs(
    State(api): State<Api>,
    ApiJson(body): ApiJson<CancelFilter>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut filter = Criteria {
        label: body.label,
        queue: body.queue,
        kind: body.kind,
        workflow: body.workflow,
        created_after: None,
        created_before: None,
    }
    .apply(ListQuery::new())?;
    if let Some(s) = &body.status {
        let status = parse_status(s)?;
        if status.is_terminal() {
            let why = format!("only queued or running runs can be cancelled, not {status}");
            return Err(ApiError::validation(why));
        }
        filter = filter.status(status);
    }
    if !filter.has_criteria() {
        let why = "give at least one of `status`, `label`, `queue`, `kind`, `workflow` \
                   (nothing cancels all runs)";
        return Err(ApiError::validation(why));
    }
    let answers = api.rw.cancel_matching(filter).await?;
    let results = per_run(answers, |outcome| json!({ "outcome": outcome }));
    Ok((StatusCode::OK, Json(json!({"results": results}))))
}

/// One result per run of a bulk action: `{run_id, ..what ok gives}` or `{run_id, error_code,
/// detail}`.
fn per_run<T, E: Into<ApiError>>(
    answers: Vec<(RunId, Result<T, E>)>,
    ok: impl Fn(T) -> Value,
) -> Vec<Value> {
    answers
        .into_iter()
        .map(|(id, answer)| {
            let mut item = match answer {
                Ok(v) => ok(v),
                Err(e) => e.into().item(),
            };
            item["run_id"] = json!(id);
            item
        })
        .collect()
}

/// `POST /runs/{id}/rerun`: the finished run again, as a new run with its spec.
pub(super) async fn rerun_run(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    let new = api.rw.rerun(id).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": new, "rerun_of": id})),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RerunFilter {
    status: Option<String>,
    label: Option<String>,
    queue: Option<String>,
    kind: Option<String>,
    workflow: Option<String>,
    created_after: Option<String>,
    created_before: Option<String>,
    limit: Option<usize>,
}

/// The most runs one `POST /runs/rerun` re-runs.
const MAX_RERUNS: usize = 1000;

/// `POST /runs/rerun`: re-runs every finished run matching the filter (at least one
/// criterion; at most `limit`, 100 by default, 1000 at most), oldest first, one result per run.
pub(super) async fn rerun_runs(
    State(api): State<Api>,
    ApiJson(body): ApiJson<RerunFilter>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let limit = body.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_RERUNS {
        return Err(ApiError::validation(format!(
            "`limit` must be between 1 and {MAX_RERUNS}"
        )));
    }
    let mut filter = ListQuery::new().limit(limit);
    if let Some(s) = &body.status {
        let status = parse_status(s)?;
        if status.is_active() {
            let why = format!("only finished runs are re-run, not {status} ones");
            return Err(ApiError::validation(why));
        }
        filter = filter.status(status);
    }
    let filter = Criteria {
        label: body.label,
        queue: body.queue,
        kind: body.kind,
        workflow: body.workflow,
        created_after: body.created_after,
        created_before: body.created_before,
    }
    .apply(filter)?;
    if !filter.has_criteria() {
        let why = "give at least one criterion (nothing re-runs every run)";
        return Err(ApiError::validation(why));
    }
    let answers = api.rw.rerun_matching(filter).await?;
    let results = per_run(answers, |id| json!({ "id": id }));
    Ok((StatusCode::OK, Json(json!({"results": results}))))
}

/// `GET /workflows/{id}`: every step's record by step name, the counts and the state.
pub(super) async fn get_workflow(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_workflow(&id)?;
    match api.rw.workflow(id).await? {
        Some(view) => Ok(Json(json!(view))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no workflow {id}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LogParams {
    tail: Option<usize>,
    since: Option<String>,
}

pub(super) async fn run_logs(
    State(api): State<Api>,
    Path(id): Path<String>,
    query: Result<Query<LogParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let Query(p) = query.map_err(|e| ApiError::validation(e.body_text()))?;
    // The run must exist (or have existed: its log may outlive it).
    let known = api.rw.status(id).await;
    let lines = match (p.since, p.tail) {
        (Some(since), _) => {
            let t: Timestamp = since
                .parse()
                .map_err(|e: crate::actors::ParseTimestampError| {
                    ApiError::validation(e.to_string())
                })?;
            api.rw.log_since(id, t).await?
        }
        (None, tail) => api.rw.log_tail(id, tail.unwrap_or(100).min(10_000)).await?,
    };
    if known.is_err() && lines.is_empty() {
        return Err(ApiError::not_found(id));
    }
    Ok(Json(json!({"run_id": id, "lines": lines})))
}

pub(super) async fn download_log(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id)?;
    // The path comes from the parsed id alone: no request text reaches the file system.
    let path = api.rw.log_file(id).await?;
    let text = match tokio::fs::read(&path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            api.rw.status(id).await?;
            Vec::new()
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                e.to_string(),
            ));
        }
    };
    let mut r = (StatusCode::OK, text).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{id}.log\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}
