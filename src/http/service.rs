//! Service routes: health, stats, metrics, retention, the dashboard.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::{RateLimit, RunStatus};

use super::errors::*;
use super::state::Api;

pub(super) async fn health(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let active = api.rw.active_count().await?;
    let sup = api.rw.supervisor_status().await?;
    let queues: Vec<Value> = sup
        .queues
        .iter()
        .map(
            |q| json!({"name": q.name, "queued": q.queued, "running": q.running, "limit": q.limit}),
        )
        .collect();
    Ok(Json(json!({
        "status": "ok",
        "uptime_secs": api.started.elapsed().as_secs_f64(),
        "active_runs": active,
        "queues": queues,
        "draining": sup.drain != crate::DrainState::NotDraining,
    })))
}

/// `GET /kinds`: the job kinds this node can start (`POST /runs` with `kind`).
pub(super) async fn kinds(State(api): State<Api>) -> Json<Value> {
    let kinds: Vec<Value> = api
        .rw
        .kinds()
        .into_iter()
        .map(|name| json!({ "name": name }))
        .collect();
    Json(json!({ "kinds": kinds }))
}

/// Every schedule: its timing (interval, or cron expression and time zone), next fire time,
/// counters and active occurrence.
pub(super) async fn schedules(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let schedules = api.rw.schedules().await?;
    Ok(Json(json!({ "schedules": schedules })))
}

/// Every queue's status: limits, rate limits, paused, counts; and the kinds' rate limits.
pub(super) async fn queues(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let sup = api.rw.supervisor_status().await?;
    Ok(Json(json!({
        "global_limit": sup.global_limit,
        "queues": sup.queues,
        "kind_rates": sup.kind_rates,
    })))
}

/// The body of `PATCH /queues/{name}/limits`: a field given sets that limit, `null` lifts
/// it, a field left out leaves it as it is.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QueueLimits {
    #[serde(default, deserialize_with = "given")]
    limit: Option<Option<usize>>,
    #[serde(default, deserialize_with = "given")]
    max_length: Option<Option<usize>>,
    #[serde(default, deserialize_with = "given")]
    per_key: Option<Option<usize>>,
    #[serde(default, deserialize_with = "given")]
    rate: Option<Option<RateLimit>>,
    #[serde(default, deserialize_with = "given")]
    key_rate: Option<Option<RateLimit>>,
}

/// A field that is present: `Some(None)` for `null`.
fn given<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// `PATCH /queues/{name}/limits`: changes a queue's limits while it runs; answers the queue.
pub(super) async fn set_queue_limits(
    State(api): State<Api>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<QueueLimits>,
) -> Result<Json<Value>, ApiError> {
    // Every change refuses an unknown queue alike, so the first one fails and nothing is
    // applied; with no change at all, the queue's status answers 404.
    if let Some(limit) = body.limit {
        api.rw.set_queue_limit(&name, limit).await?;
    }
    if let Some(max) = body.max_length {
        api.rw.set_queue_max_length(&name, max).await?;
    }
    if let Some(limit) = body.per_key {
        api.rw.set_queue_per_key(&name, limit).await?;
    }
    if let Some(rate) = body.rate {
        api.rw.set_queue_rate(&name, rate).await?;
    }
    if let Some(rate) = body.key_rate {
        api.rw.set_key_rate(&name, rate).await?;
    }
    queue_status(&api, &name).await
}

/// `PUT /kinds/{kind}/rate`: sets a kind's rate limit over all queues (a rate limit), or
/// lifts it (`null`); answers every kind's rate limit.
pub(super) async fn set_kind_rate(
    State(api): State<Api>,
    Path(kind): Path<String>,
    ApiJson(rate): ApiJson<Option<RateLimit>>,
) -> Result<Json<Value>, ApiError> {
    api.rw.set_kind_rate(&kind, rate).await?;
    let sup = api.rw.supervisor_status().await?;
    Ok(Json(json!({ "kind_rates": sup.kind_rates })))
}

/// `POST /queues/{name}/pause`: nothing of the queue starts until it is resumed.
pub(super) async fn pause_queue(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    api.rw.pause_queue(&name).await?;
    queue_status(&api, &name).await
}

/// `POST /queues/{name}/resume`.
pub(super) async fn resume_queue(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    api.rw.resume_queue(&name).await?;
    queue_status(&api, &name).await
}

async fn queue_status(api: &Api, name: &str) -> Result<Json<Value>, ApiError> {
    let sup = api.rw.supervisor_status().await?;
    match sup.queues.into_iter().find(|q| q.name == name) {
        Some(q) => Ok(Json(json!(q))),
        None => Err(crate::Error::from(crate::UnknownQueue(name.to_owned())).into()),
    }
}

pub(super) async fn stats(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let s = api.rw.stats().await?;
    let metrics = api.rw.metrics().await?;
    let by_status: HashMap<&str, usize> = RunStatus::ALL
        .iter()
        .map(|st| (st.as_str(), s.count(*st)))
        .collect();
    let (done, failed) = (s.count(RunStatus::Completed), s.count(RunStatus::Failed));
    let finished = done + failed + s.count(RunStatus::Cancelled);
    let secs = api.started.elapsed().as_secs_f64().max(1e-9);
    Ok(Json(json!({
        "by_status": by_status,
        "active": s.active(),
        "total": s.total(),
        "success_rate": if finished == 0 { None } else { Some(done as f64 / finished as f64) },
        "throughput_per_sec": finished as f64 / secs,
        "peak_running": s.peak_running,
        "refused_messages": s.refused,
        "pruned": s.pruned,
        "finished_since_start": {
            "completed": metrics.ended(RunStatus::Completed),
            "failed": metrics.ended(RunStatus::Failed),
            "cancelled": metrics.ended(RunStatus::Cancelled),
        },
        "recent": recent_json(&metrics),
    })))
}

/// The last hour's ends per minute, oldest first: `{minute, completed, failed, cancelled}`.
fn recent_json(m: &crate::RunMetrics) -> Value {
    let minutes: Vec<Value> = m
        .recent
        .iter()
        .map(|c| {
            json!({
                "minute": c.minute,
                "completed": c.finished[0],
                "failed": c.finished[1],
                "cancelled": c.finished[2],
            })
        })
        .collect();
    json!({ "minutes": minutes })
}

pub(super) async fn metrics(State(api): State<Api>) -> Result<Response, ApiError> {
    let stats = api.rw.stats().await?;
    let sup = api.rw.supervisor_status().await?;
    let metrics = api.rw.metrics().await?;
    let out =
        super::prometheus::render(&stats, &sup, &metrics, api.started.elapsed().as_secs_f64());
    let mut r = (StatusCode::OK, out).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

pub(super) async fn prune(State(api): State<Api>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let before = api.rw.stats().await?.pruned;
    api.rw.prune_now().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"started": true, "pruned_before": before})),
    ))
}

pub(super) async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
