//! A node's HTTP API: every answer is the whole cluster's, whichever node serves it.
//!
//! - `GET /runs?status=&limit=&before=`: runs newest first (`next` is the cursor for the
//!   following page); `GET /runs/{id}`; `POST /runs` (`{kind, params?, label?, queue?,
//!   priority?, max_attempts?, timeout_ms?, delay_ms?, idempotency_key?}`);
//!   `POST /runs/{id}/cancel`; `GET /stats`; `GET /node` (this node's own account).
//! - `GET /runs/{id}/logs?attempt=N`: an attempt's log lines (the latest attempt by default),
//!   whichever node ran it.
//! - `GET /schedules`: every schedule, with its next fire time and what it has done.
//! - `GET /queues`: the queues limited cluster-wide, each with its limit and running count;
//!   `PUT /queues/{queue}` (`{global_limit: n}`, or `null` to lift it).
//! - `GET /events?after=TX-SEQ`: every status change in the cluster as server-sent events
//!   (`event: status`, `id:` the event's cursor, `data:` the event as JSON), from now, or
//!   after the cursor in `Last-Event-ID` (a reconnecting client) or `after`. A database
//!   error is sent as `event: error` and the feed goes on from where it was.
//! - Errors are `{error_code, detail}` with a stable code. The API has no authentication of
//!   its own: serve it on loopback, or behind a proxy that has.

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::StreamExt;
use runwarden::{RunId, RunStatus};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::ClusterError;
use crate::events::EventCursor;
use crate::feed::EventFeed;
use crate::handle::Node;
use crate::protocol::ListRuns;
use crate::run::{NewRun, Params};

/// The router over `node`.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/runs", get(list).post(submit))
        .route("/runs/{id}", get(one))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/logs", get(logs))
        .route("/stats", get(stats))
        .route("/node", get(info))
        .route("/events", get(events))
        .route("/queues", get(queues))
        .route("/schedules", get(schedules))
        .route("/queues/{queue}", axum::routing::put(set_queue))
        .with_state(node)
}

/// Serves [`router`] on `listener` until the process ends.
///
/// # Errors
/// The listener failed.
pub async fn serve(node: Node, listener: tokio::net::TcpListener) -> std::io::Result<()> {
    axum::serve(listener, router(node)).await
}

struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.0,
            Json(json!({"error_code": self.1, "detail": self.2})),
        )
            .into_response()
    }
}

impl From<ClusterError> for ApiError {
    fn from(e: ClusterError) -> Self {
        let (status, code) = match &e {
            ClusterError::UnknownKind(_) => (StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_KIND"),
            ClusterError::BadRequest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION"),
            ClusterError::DuplicateKey(_) => (StatusCode::CONFLICT, "DUPLICATE_KEY"),
            ClusterError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "DRAINING"),
            ClusterError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "DATABASE"),
        };
        ApiError(status, code, e.to_string())
    }
}

fn parse_id(s: &str) -> Result<RunId, ApiError> {
    s.parse::<uuid::Uuid>().map(RunId::from_uuid).map_err(|_| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION",
            format!("`{s}` is not a run id"),
        )
    })
}

#[derive(Deserialize)]
struct ListParams {
    status: Option<String>,
    limit: Option<usize>,
    before: Option<String>,
}

async fn list(
    State(node): State<Node>,
    Query(p): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let status = match p.status.as_deref() {
        None => None,
        Some("queued") => Some(RunStatus::Queued),
        Some("running") => Some(RunStatus::Running),
        Some("completed") => Some(RunStatus::Completed),
        Some("failed") => Some(RunStatus::Failed),
        Some("cancelled") => Some(RunStatus::Cancelled),
        Some(other) => {
            return Err(ApiError(
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION",
                format!(
                    "`{other}` is not a status: queued, running, completed, failed or cancelled"
                ),
            ));
        }
    };
    let limit = p.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION",
            "limit must be from 1 to 1000".into(),
        ));
    }
    let before = p.before.as_deref().map(parse_id).transpose()?;
    let runs = node
        .list(ListRuns {
            status,
            limit,
            before,
        })
        .await?;
    let next = (runs.len() == limit)
        .then(|| runs.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(json!({"runs": runs, "next": next})))
}

async fn one(State(node): State<Node>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    match node.status(id).await? {
        Some(run) => Ok(Json(json!(run))),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            "RUN_NOT_FOUND",
            format!("no run with id {id}"),
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    kind: String,
    #[serde(default)]
    params: Params,
    label: Option<String>,
    queue: Option<String>,
    priority: Option<i32>,
    max_attempts: Option<u32>,
    timeout_ms: Option<u64>,
    delay_ms: Option<u64>,
    idempotency_key: Option<String>,
}

async fn submit(
    State(node): State<Node>,
    body: Result<Json<SubmitBody>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(b) = body.map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION",
            e.body_text(),
        )
    })?;
    let mut run = NewRun::new(b.kind).params(b.params);
    if let Some(l) = b.label {
        run = run.label(l);
    }
    if let Some(q) = b.queue {
        run = run.queue(q);
    }
    if let Some(p) = b.priority {
        run = run.priority(p);
    }
    if let Some(n) = b.max_attempts {
        run = run.max_attempts(n);
    }
    if let Some(ms) = b.timeout_ms {
        run = run.timeout(Duration::from_millis(ms));
    }
    if let Some(ms) = b.delay_ms {
        run = run.delay(Duration::from_millis(ms));
    }
    if let Some(k) = b.idempotency_key {
        run = run.idempotency_key(k);
    }
    let id = node.submit(run).await?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))))
}

async fn cancel(State(node): State<Node>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    Ok(Json(json!({"id": id, "outcome": node.cancel(id).await?})))
}

async fn stats(State(node): State<Node>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(node.stats().await?)))
}

async fn info(State(node): State<Node>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(node.info().await?)))
}

#[derive(Deserialize)]
struct EventsParams {
    after: Option<String>,
}

async fn events(
    State(node): State<Node>,
    headers: HeaderMap,
    Query(p): Query<EventsParams>,
) -> Result<Response, ApiError> {
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str().map(str::to_owned).map_err(|_| {
                ApiError(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "VALIDATION",
                    "Last-Event-ID is not text".into(),
                )
            })
        })
        .transpose()?
        .or(p.after);
    let after = resume
        .as_deref()
        .map(str::parse::<EventCursor>)
        .transpose()?;
    let feed = node.events(after).await?;
    let stream = futures_util::stream::unfold(feed, |mut feed: EventFeed| async move {
        let sent: Vec<Event> = match feed.next_batch().await {
            Ok(batch) => batch
                .iter()
                .map(|e| {
                    Event::default()
                        .event("status")
                        .id(e.cursor.to_string())
                        .data(serde_json::to_string(e).unwrap_or_default())
                })
                .collect(),
            Err(e) => {
                tokio::time::sleep(Duration::from_secs(1)).await;
                vec![Event::default().event("error").data(e.to_string())]
            }
        };
        Some((
            futures_util::stream::iter(sent.into_iter().map(Ok::<_, std::convert::Infallible>)),
            feed,
        ))
    })
    .flatten();
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

async fn queues(State(node): State<Node>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"queues": node.queue_limits().await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueBody {
    global_limit: Option<u32>,
}

async fn set_queue(
    State(node): State<Node>,
    Path(queue): Path<String>,
    body: Result<Json<QueueBody>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION",
            format!("the body must be {{\"global_limit\": n or null}}: {e}"),
        )
    })?;
    if queue.is_empty() || queue.len() > 200 {
        return Err(ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "VALIDATION",
            "a queue's name is 1 to 200 bytes".into(),
        ));
    }
    node.set_queue_limit(queue.clone(), body.global_limit)
        .await?;
    Ok(Json(
        json!({"queue": queue, "global_limit": body.global_limit}),
    ))
}

async fn schedules(State(node): State<Node>) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({"schedules": node.schedules().await?})))
}

#[derive(Deserialize)]
struct LogsParams {
    attempt: Option<u32>,
}

async fn logs(
    State(node): State<Node>,
    Path(id): Path<String>,
    Query(p): Query<LogsParams>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    if node.status(id).await?.is_none() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            "RUN_NOT_FOUND",
            format!("no run with id {id}"),
        ));
    }
    Ok(Json(
        json!({"id": id, "lines": node.logs(id, p.attempt).await?}),
    ))
}
