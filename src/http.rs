//! The HTTP API and live dashboard: a mountable axum [`Router`] over a [`Runwarden`] handle.
//!
//! ```no_run
//! # async fn demo(rw: runwarden::Runwarden) -> Result<(), Box<dyn std::error::Error>> {
//! use runwarden::http::{HttpOptions, router};
//!
//! let api = router(rw, HttpOptions::default());
//! // Mount it under any prefix of your own server:
//! let app = axum::Router::new().nest("/admin/runs", api);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! Every error is one JSON shape, `{error_code, detail, timestamp}`, with stable codes. The
//! OpenAPI document is served at `GET /openapi.json`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

/// The axum version the router is built with, for mounting it.
pub use axum;

use crate::{
    CancelError, Dedup, Error, EventFilter, EventItem, Kind, ListQuery, LogItem, RunEvent, RunId,
    RunSpec, RunStatus, Runwarden, SubmitError, Timestamp,
};

/// Limits on a run's JSON parameters.
#[derive(Debug, Clone)]
pub struct ParamLimits {
    /// Most keys at any level (default 64).
    pub max_keys: usize,
    /// Most bytes of the serialised parameters (default 16 KiB).
    pub max_bytes: usize,
    /// Deepest nesting (default 8).
    pub max_depth: usize,
    /// Keys refused at any level (default `__proto__`, `constructor`, `prototype`).
    pub forbidden_keys: Vec<String>,
}

impl Default for ParamLimits {
    fn default() -> Self {
        ParamLimits {
            max_keys: 64,
            max_bytes: 16 * 1024,
            max_depth: 8,
            forbidden_keys: ["__proto__", "constructor", "prototype"]
                .map(str::to_owned)
                .to_vec(),
        }
    }
}

/// How the API is exposed.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Bearer tokens that may use the API. Empty: no authentication (loopback only, unless
    /// `allow_open_non_loopback`).
    pub tokens: Vec<String>,
    /// Serve without authentication on a non-loopback address (see [`serve`]).
    pub allow_open_non_loopback: bool,
    /// Largest request body (default 64 KiB).
    pub max_body_bytes: usize,
    /// Limits on run parameters.
    pub params: ParamLimits,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            tokens: Vec::new(),
            allow_open_non_loopback: false,
            max_body_bytes: 64 * 1024,
            params: ParamLimits::default(),
        }
    }
}

impl HttpOptions {
    /// Requires `Authorization: Bearer <token>` (or `?access_token=`, for event streams).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.tokens.push(token.into());
        self
    }
}

/// Why [`serve`] would not start.
#[derive(Debug)]
pub enum ServeError {
    /// A non-loopback address without tokens, and `allow_open_non_loopback` unset.
    OpenNonLoopback(SocketAddr),
    /// Binding failed.
    Bind(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::OpenNonLoopback(a) => write!(
                f,
                "refusing to serve without authentication on non-loopback address {a}; \
                 configure a token or set allow_open_non_loopback"
            ),
            ServeError::Bind(e) => write!(f, "cannot bind: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// Binds `addr` and serves the API (and dashboard) at its root, after checking that a
/// non-loopback address has authentication. Returns the bound address and the server task.
///
/// # Errors
/// [`ServeError::OpenNonLoopback`], or [`ServeError::Bind`].
pub async fn serve(
    addr: SocketAddr,
    rw: Runwarden,
    options: HttpOptions,
) -> Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>), ServeError> {
    if !addr.ip().is_loopback() && options.tokens.is_empty() && !options.allow_open_non_loopback {
        return Err(ServeError::OpenNonLoopback(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(ServeError::Bind)?;
    let bound = listener.local_addr().map_err(ServeError::Bind)?;
    let app = router(rw, options);
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((bound, task))
}

#[derive(Clone)]
struct Api {
    rw: Runwarden,
    options: Arc<HttpOptions>,
    started: Instant,
}

/// The API's router. Mount it with `Router::nest` under any prefix.
pub fn router(rw: Runwarden, options: HttpOptions) -> Router {
    let max_body = options.max_body_bytes;
    let api = Api {
        rw,
        options: Arc::new(options),
        started: Instant::now(),
    };
    let protected = Router::new()
        .route("/runs", post(start_run).get(list_runs))
        .route("/runs/{id}", get(get_run).delete(cancel_run))
        .route("/runs/{id}/logs", get(run_logs))
        .route("/runs/{id}/logs/download", get(download_log))
        .route("/runs/{id}/events", get(run_events))
        .route("/events", get(all_events))
        .route("/health", get(health))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/maintenance/prune", post(prune))
        .route_layer(middleware::from_fn_with_state(api.clone(), authenticate));
    Router::new()
        .route("/", get(dashboard))
        .route("/openapi.json", get(openapi))
        .merge(protected)
        .fallback(not_found_route)
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(api)
}

// ---------- errors ----------

/// An API error: its HTTP status, stable code and detail.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    extra: Option<(&'static str, Value)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            detail: detail.into(),
            extra: None,
        }
    }

    fn validation(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION", detail)
    }

    fn not_found(id: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "RUN_NOT_FOUND",
            format!("no run with id {id}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "error_code": self.code,
            "detail": self.detail,
            "timestamp": Timestamp::now(),
        });
        if let (Some((k, v)), Some(obj)) = (self.extra, body.as_object_mut()) {
            obj.insert(k.to_owned(), v);
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<SubmitError> for ApiError {
    fn from(e: SubmitError) -> Self {
        let (status, code) = match &e {
            SubmitError::QueueFull { .. } => (StatusCode::TOO_MANY_REQUESTS, "QUEUE_FULL"),
            SubmitError::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "SHUTTING_DOWN"),
            SubmitError::UnknownKind(_) => (StatusCode::BAD_REQUEST, "UNKNOWN_KIND"),
            SubmitError::UnknownQueue(_) => (StatusCode::BAD_REQUEST, "UNKNOWN_QUEUE"),
            SubmitError::BadParams(_) | SubmitError::NotRepeatable => {
                (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION")
            }
            SubmitError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "STORE"),
            _ => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(nf) => ApiError::not_found(nf.0),
            Error::Submit(s) => s.into(),
            Error::Cancel(CancelError::NotFound(id)) => ApiError::not_found(id),
            Error::Cancel(CancelError::AlreadyFinished { id, status }) => ApiError {
                extra: Some(("status", json!(status))),
                ..ApiError::new(
                    StatusCode::CONFLICT,
                    "ALREADY_FINISHED",
                    format!("run {id} already {status}"),
                )
            },
            Error::LogsDisabled => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "LOGS_DISABLED", e.to_string())
            }
            Error::Timeout { .. } | Error::Unavailable { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                e.to_string(),
            ),
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                other.to_string(),
            ),
        }
    }
}

async fn not_found_route(uri: OriginalUri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no endpoint {}", uri.0.path()),
    )
}

/// JSON bodies whose rejections use the API's error shape.
struct ApiJson<T>(T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rej) => Err(match rej {
                JsonRejection::JsonDataError(e) => ApiError::validation(e.body_text()),
                JsonRejection::JsonSyntaxError(e) => {
                    ApiError::new(StatusCode::BAD_REQUEST, "MALFORMED", e.body_text())
                }
                JsonRejection::MissingJsonContentType(e) => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "MALFORMED",
                    e.body_text(),
                ),
                other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "PAYLOAD_TOO_LARGE",
                    "request body too large",
                ),
                other => ApiError::new(other.status(), "MALFORMED", other.body_text()),
            }),
        }
    }
}

fn parse_id(id: &str) -> Result<RunId, ApiError> {
    id.parse()
        .map_err(|_| ApiError::validation(format!("`{id}` is not a run id")))
}

// ---------- authentication ----------

/// Compares without leaking where the first difference is (only the length).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authenticate(State(api): State<Api>, req: Request, next: Next) -> Response {
    if api.options.tokens.is_empty() {
        return next.run(req).await;
    }
    let header_token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    // Browsers' EventSource cannot set headers: event streams may pass the token in the query.
    let query_token = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("access_token="))
            .map(str::to_owned)
    });
    let offered = header_token.or(query_token);
    let ok = offered.is_some_and(|t| {
        api.options.tokens.iter().fold(false, |found, known| {
            found | constant_time_eq(t.as_bytes(), known.as_bytes())
        })
    });
    if ok {
        next.run(req).await
    } else {
        let mut r = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "a valid bearer token is required",
        )
        .into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    }
}

// ---------- runs ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StartRun {
    kind: String,
    #[serde(default)]
    params: Option<Value>,
    label: Option<String>,
    name: Option<String>,
    queue: Option<String>,
    #[serde(default)]
    priority: i32,
    idempotency_key: Option<String>,
    timeout_ms: Option<u64>,
}

fn check_params(v: &Value, limits: &ParamLimits) -> Result<(), String> {
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

async fn start_run(
    State(api): State<Api>,
    OriginalUri(uri): OriginalUri,
    ApiJson(body): ApiJson<StartRun>,
) -> Result<Response, ApiError> {
    if !api.rw.has_kind(&body.kind) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "UNKNOWN_KIND",
            format!("no job kind named `{}`", body.kind),
        ));
    }
    let params = body.params.unwrap_or_else(|| json!({}));
    check_params(&params, &api.options.params).map_err(ApiError::validation)?;
    let params =
        crate::params_from_json(params).map_err(|e| ApiError::validation(e.to_string()))?;
    let mut spec = RunSpec::new(body.label.unwrap_or_else(|| body.kind.clone()))
        .params(params)
        .priority(body.priority);
    if let Some(name) = body.name {
        spec = spec.name(name);
    }
    if let Some(q) = body.queue {
        spec = spec.queue(q);
    }
    if let Some(ms) = body.timeout_ms {
        spec = spec.timeout(Duration::from_millis(ms));
    }
    let (id, created) = match body.idempotency_key {
        Some(key) => {
            let request = api.rw.request(spec, Kind(&body.kind)).idempotency_key(key);
            match request.send().await? {
                Dedup::New(id) => (id, true),
                Dedup::Existing(id) => (id, false),
            }
        }
        None => (api.rw.submit_job(spec, Kind(&body.kind))?, true),
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
struct ListParams {
    status: Option<String>,
    label: Option<String>,
    queue: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

fn parse_status(s: &str) -> Result<RunStatus, ApiError> {
    RunStatus::ALL
        .into_iter()
        .find(|st| st.as_str() == s)
        .ok_or_else(|| ApiError::validation(format!("unknown status `{s}`")))
}

async fn list_runs(
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
    if let Some(l) = p.label {
        q = q.label(l);
    }
    if let Some(qu) = p.queue {
        q = q.queue(qu);
    }
    let (limit, offset) = (q.limit, q.offset);
    let page = api.rw.list(q).await?;
    Ok(Json(
        json!({"runs": page.runs, "total": page.total, "limit": limit, "offset": offset}),
    ))
}

async fn get_run(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let record = api.rw.status(id).await?;
    Ok(Json(json!(record)))
}

async fn cancel_run(
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
struct LogParams {
    tail: Option<usize>,
    since: Option<String>,
}

async fn run_logs(
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

async fn download_log(
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

// ---------- event streams ----------

fn status_event(e: &RunEvent, id: u64) -> Event {
    let name = match e {
        RunEvent::Status { .. } => "status",
        RunEvent::Progress { .. } => "progress",
    };
    Event::default()
        .event(name)
        .id(id.to_string())
        .data(serde_json::to_string(e).unwrap_or_default())
}

type SseStream = Response;

fn sse(stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A run's status, progress and log lines, live, then always a final `end` event. Event ids
/// count the log lines sent; `Last-Event-ID: n` resumes after the first `n` lines.
async fn run_events(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<SseStream, ApiError> {
    let id = parse_id(&id)?;
    let skip: u64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    let events = api.rw.events(EventFilter::Run(id)).await?;
    let logs = match api.rw.follow_log(id).await {
        Ok(f) => Some(f),
        Err(Error::LogsDisabled) => None,
        Err(e) => return Err(e.into()),
    };
    struct S {
        events: Option<crate::EventStream>,
        logs: Option<crate::LogFollow>,
        lines: u64,
        skip: u64,
        status: Option<RunStatus>,
        rw: Runwarden,
        run: RunId,
        done: bool,
    }
    let state = S {
        events: Some(events),
        logs,
        lines: 0,
        skip,
        status: None,
        rw: api.rw.clone(),
        run: id,
        done: false,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        if s.done {
            return None;
        }
        loop {
            if s.events.is_none() && s.logs.is_none() {
                // Both the run and its log have ended: the final event carries the record.
                s.done = true;
                let record = s.rw.status(s.run).await.ok();
                let data = json!({"run_id": s.run, "status": s.status, "run": record});
                let e = Event::default()
                    .event("end")
                    .id(s.lines.to_string())
                    .data(data.to_string());
                return Some((Ok(e), s));
            }
            tokio::select! {
                item = async { s.events.as_mut()?.next().await }, if s.events.is_some() => match item {
                    Some(EventItem::Event(e)) => {
                        if let Some(st) = e.status() {
                            s.status = Some(st);
                        }
                        let ev = status_event(&e, s.lines);
                        return Some((Ok(ev), s));
                    }
                    Some(EventItem::Lagged(n)) => {
                        let ev = Event::default().event("lagged").data(json!({"missed": n}).to_string());
                        return Some((Ok(ev), s));
                    }
                    None => s.events = None,
                },
                item = async { s.logs.as_mut()?.next().await }, if s.logs.is_some() => match item {
                    Some(LogItem::Line(line)) => {
                        s.lines += 1;
                        if s.lines <= s.skip {
                            continue;
                        }
                        let ev = Event::default()
                            .event("log")
                            .id(s.lines.to_string())
                            .data(serde_json::to_string(&line).unwrap_or_default());
                        return Some((Ok(ev), s));
                    }
                    Some(LogItem::Missed(n)) => {
                        s.lines += n;
                        let ev = Event::default().event("lagged").data(json!({"missed_lines": n}).to_string());
                        return Some((Ok(ev), s));
                    }
                    Some(LogItem::End(_)) | None => s.logs = None,
                },
            }
        }
    });
    Ok(sse(stream))
}

/// Every run's status events, live.
async fn all_events(State(api): State<Api>) -> Result<SseStream, ApiError> {
    let events = api.rw.events(EventFilter::All).await?;
    let stream = futures_util::stream::unfold((events, 0u64), |(mut events, n)| async move {
        let ev = match events.next().await? {
            EventItem::Event(e) => status_event(&e, n + 1),
            EventItem::Lagged(m) => Event::default()
                .event("lagged")
                .data(json!({"missed": m}).to_string()),
        };
        Some((Ok(ev), (events, n + 1)))
    });
    Ok(sse(stream))
}

// ---------- service ----------

async fn health(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
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

async fn stats(State(api): State<Api>) -> Result<Json<Value>, ApiError> {
    let s = api.rw.stats().await?;
    let by_status: HashMap<&str, usize> = RunStatus::ALL
        .iter()
        .map(|st| (st.as_str(), s.count(*st)))
        .collect();
    let (done, failed) = (s.count(RunStatus::Completed), s.count(RunStatus::Failed));
    let finished = done + failed + s.count(RunStatus::Cancelled);
    let secs = api.started.elapsed().as_secs_f64().max(1e-9);
    Ok(Json(json!({
        "by_status": by_status,
        "total": s.total(),
        "success_rate": if finished == 0 { None } else { Some(done as f64 / finished as f64) },
        "throughput_per_sec": finished as f64 / secs,
        "peak_running": s.peak_running,
        "refused_messages": s.refused,
        "pruned": s.pruned,
    })))
}

async fn metrics(State(api): State<Api>) -> Result<Response, ApiError> {
    let s = api.rw.stats().await?;
    let sup = api.rw.supervisor_status().await?;
    let mut out = String::new();
    out.push_str("# HELP runwarden_runs Runs held, by status.\n# TYPE runwarden_runs gauge\n");
    for st in RunStatus::ALL {
        out.push_str(&format!(
            "runwarden_runs{{status=\"{}\"}} {}\n",
            st.as_str(),
            s.count(st)
        ));
    }
    out.push_str("# HELP runwarden_peak_running Most runs running at once.\n# TYPE runwarden_peak_running gauge\n");
    out.push_str(&format!("runwarden_peak_running {}\n", s.peak_running));
    out.push_str("# HELP runwarden_refused_messages_total Status messages the registry refused.\n# TYPE runwarden_refused_messages_total counter\n");
    out.push_str(&format!("runwarden_refused_messages_total {}\n", s.refused));
    out.push_str("# HELP runwarden_pruned_total Finished runs removed by retention.\n# TYPE runwarden_pruned_total counter\n");
    out.push_str(&format!("runwarden_pruned_total {}\n", s.pruned));
    out.push_str("# HELP runwarden_queue_runs Runs per queue and state.\n# TYPE runwarden_queue_runs gauge\n");
    for q in &sup.queues {
        out.push_str(&format!(
            "runwarden_queue_runs{{queue=\"{}\",state=\"queued\"}} {}\n",
            q.name, q.queued
        ));
        out.push_str(&format!(
            "runwarden_queue_runs{{queue=\"{}\",state=\"running\"}} {}\n",
            q.name, q.running
        ));
    }
    out.push_str("# HELP runwarden_uptime_seconds Seconds since the API started.\n# TYPE runwarden_uptime_seconds gauge\n");
    out.push_str(&format!(
        "runwarden_uptime_seconds {:.3}\n",
        api.started.elapsed().as_secs_f64()
    ));
    let mut r = (StatusCode::OK, out).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(r)
}

async fn prune(State(api): State<Api>) -> Result<(StatusCode, Json<Value>), ApiError> {
    let before = api.rw.stats().await?.pruned;
    api.rw.prune_now().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"started": true, "pruned_before": before})),
    ))
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("http/dashboard.html"))
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The OpenAPI 3.1 document of this API.
#[must_use]
pub fn openapi_document() -> Value {
    let err = json!({"$ref": "#/components/schemas/Error"});
    let run = json!({"$ref": "#/components/schemas/Run"});
    let resp = |desc: &str, schema: &Value| json!({"description": desc, "content": {"application/json": {"schema": schema}}});
    let errors = |codes: &[u16]| -> serde_json::Map<String, Value> {
        codes
            .iter()
            .map(|c| (c.to_string(), resp("error", &err)))
            .collect()
    };
    let with = |mut base: serde_json::Map<String, Value>, codes: &[u16]| {
        base.extend(errors(codes));
        Value::Object(base)
    };
    let one = |code: u16, r: Value| {
        let mut m = serde_json::Map::new();
        m.insert(code.to_string(), r);
        m
    };
    let id_param = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}});
    let sse = json!({"description": "server-sent events", "content": {"text/event-stream": {"schema": {"type": "string"}}}});
    let text =
        json!({"description": "text", "content": {"text/plain": {"schema": {"type": "string"}}}});
    json!({
        "openapi": "3.1.0",
        "info": {"title": "runwarden", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error_code", "detail", "timestamp"],
                    "properties": {"error_code": {"type": "string"}, "detail": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"}}},
                "Run": {"type": "object", "required": ["id", "label", "name", "status", "created_at", "attempt", "queue"],
                    "properties": {"id": {"type": "string"}, "label": {"type": "string"}, "name": {"type": "string"},
                        "status": {"type": "string", "enum": ["queued", "running", "completed", "failed", "cancelled"]},
                        "created_at": {"type": "string"}, "started_at": {"type": ["string", "null"]}, "finished_at": {"type": ["string", "null"]},
                        "attempt": {"type": "integer"}, "queue": {"type": "string"}, "params": {"type": "object"}, "error": {},
                        "cancelled_by": {"type": ["string", "null"], "enum": ["caller", "drain_deadline", "shutdown", null]},
                        "progress": {}, "result": {}, "exit_code": {}}},
                "RunPage": {"type": "object", "required": ["runs", "total", "limit", "offset"],
                    "properties": {"runs": {"type": "array", "items": run}, "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"}}},
                "StartRun": {"type": "object", "required": ["kind"], "additionalProperties": false,
                    "properties": {"kind": {"type": "string"}, "params": {"type": "object"}, "label": {"type": "string"}, "name": {"type": "string"},
                        "queue": {"type": "string"}, "priority": {"type": "integer"}, "idempotency_key": {"type": "string"}, "timeout_ms": {"type": "integer"}}},
                "Cancel": {"type": "object", "required": ["run_id", "outcome"], "properties": {"run_id": {"type": "string"}, "outcome": {"type": "string"}}},
                "Logs": {"type": "object", "required": ["run_id", "lines"], "properties": {"run_id": {"type": "string"}, "lines": {"type": "array"}}},
                "Health": {"type": "object", "required": ["status", "uptime_secs", "active_runs", "queues", "draining"]},
                "Stats": {"type": "object", "required": ["by_status", "total", "success_rate", "throughput_per_sec"]},
                "Prune": {"type": "object", "required": ["started", "pruned_before"]}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/runs": {
                "post": {"summary": "Start a run of a registered job kind",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/StartRun"}}}},
                    "responses": with(one(202, resp("accepted; Location names the run", &run)).into_iter().chain(one(200, resp("an existing run with this idempotency key", &run))).collect(), &[400, 401, 413, 415, 422, 429, 503])},
                "get": {"summary": "List runs, newest first",
                    "parameters": [{"name": "status", "in": "query", "schema": {"type": "string"}}, {"name": "label", "in": "query", "schema": {"type": "string"}},
                        {"name": "queue", "in": "query", "schema": {"type": "string"}}, {"name": "limit", "in": "query", "schema": {"type": "integer"}}, {"name": "offset", "in": "query", "schema": {"type": "integer"}}],
                    "responses": with(one(200, resp("a page", &json!({"$ref": "#/components/schemas/RunPage"}))), &[401, 422])}
            },
            "/runs/{id}": {
                "parameters": [id_param],
                "get": {"summary": "One run", "responses": with(one(200, resp("the run", &run)), &[401, 404, 422])},
                "delete": {"summary": "Cancel a run", "responses": with(one(202, resp("cancel accepted", &json!({"$ref": "#/components/schemas/Cancel"}))), &[401, 404, 409, 422])}
            },
            "/runs/{id}/logs": {"parameters": [id_param],
                "get": {"summary": "Log lines (tail or since)", "parameters": [{"name": "tail", "in": "query", "schema": {"type": "integer"}}, {"name": "since", "in": "query", "schema": {"type": "string"}}],
                    "responses": with(one(200, resp("lines", &json!({"$ref": "#/components/schemas/Logs"}))), &[401, 404, 422, 501])}},
            "/runs/{id}/logs/download": {"parameters": [id_param], "get": {"summary": "The whole log file", "responses": with(one(200, text.clone()), &[401, 404, 422, 501])}},
            "/runs/{id}/events": {"parameters": [id_param], "get": {"summary": "Status, progress and log lines live, then `end`; Last-Event-ID resumes", "responses": with(one(200, sse.clone()), &[401, 404, 422])}},
            "/events": {"get": {"summary": "All runs' status events", "responses": with(one(200, sse), &[401])}},
            "/health": {"get": {"summary": "Liveness and queue depths", "responses": with(one(200, resp("health", &json!({"$ref": "#/components/schemas/Health"}))), &[401])}},
            "/stats": {"get": {"summary": "Totals and rates", "responses": with(one(200, resp("stats", &json!({"$ref": "#/components/schemas/Stats"}))), &[401])}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": with(one(200, text), &[401])}},
            "/maintenance/prune": {"post": {"summary": "Run retention now", "responses": with(one(202, resp("started", &json!({"$ref": "#/components/schemas/Prune"}))), &[401])}},
            "/openapi.json": {"get": {"security": [], "summary": "This document", "responses": {"200": {"description": "OpenAPI"}}}},
            "/": {"get": {"security": [], "summary": "The dashboard", "responses": {"200": {"description": "HTML"}}}}
        }
    })
}
