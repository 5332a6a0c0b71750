//! Server-sent event streams: one run's, and every run's.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::json;

use crate::{
    Error, EventFilter, EventItem, EventStream, LogItem, RunEvent, RunId, RunStatus, Runwarden,
    StreamEnd,
};

use super::errors::*;
use super::state::Api;

pub(super) fn status_event(e: &RunEvent, id: u64) -> Event {
    let name = match e {
        RunEvent::Status { .. } => "status",
        RunEvent::Progress { .. } => "progress",
    };
    Event::default()
        .event(name)
        .id(id.to_string())
        .data(serde_json::to_string(e).unwrap_or_default())
}

pub(super) type SseStream = Response;

pub(super) fn sse(
    stream: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
) -> Response {
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// A run's status, progress and log lines, live, then always a final `end` event. Event ids
/// count the log lines sent; `Last-Event-ID: n` resumes after the first `n` lines.
pub(super) async fn run_events(
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
        /// Why the event half ended, once it has.
        ended: Option<StreamEnd>,
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
        ended: None,
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
                let data = json!({
                    "run_id": s.run,
                    "status": s.status,
                    "run": record,
                    "reason": end_reason(s.ended),
                });
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
                    None => {
                        s.ended = s.events.as_ref().and_then(EventStream::end);
                        s.events = None;
                    }
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
pub(super) async fn all_events(State(api): State<Api>) -> Result<SseStream, ApiError> {
    let events = api.rw.events(EventFilter::All).await?;
    let stream = futures_util::stream::unfold(Some((events, 0u64)), |state| async move {
        let (mut events, n) = state?;
        let ev = match events.next().await {
            Some(EventItem::Event(e)) => status_event(&e, n + 1),
            Some(EventItem::Lagged(m)) => Event::default()
                .event("lagged")
                .data(json!({"missed": m}).to_string()),
            // The registry stopped: one last event says so, then the stream closes.
            None => {
                let data = json!({"reason": end_reason(events.end())});
                let ev = Event::default().event("end").data(data.to_string());
                return Some((Ok(ev), None));
            }
        };
        Some((Ok(ev), Some((events, n + 1))))
    });
    Ok(sse(stream))
}

/// The `reason` of a stream's `end` event.
fn end_reason(end: Option<StreamEnd>) -> &'static str {
    match end {
        Some(StreamEnd::RegistryStopped) => "registry_stopped",
        Some(StreamEnd::RunEnded) | None => "run_ended",
    }
}
