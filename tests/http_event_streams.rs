//! The server-sent event streams: a run's stream carries its status, progress and log lines in
//! order and always ends with `end`; `Last-Event-ID` resumes after the lines already seen; the
//! all-runs stream sees new runs' status changes.
#[path = "support/http.rs"]
mod http_support;
#[path = "support/helpers.rs"]
mod support;

use http_support::{read_sse, server};
use runwarden::http::HttpOptions;
use serde_json::{Value, json};
use support::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stream_ends_with_end_and_resumes_by_last_event_id() {
    let s = server(HttpOptions::default()).await;
    let all = s
        .client
        .get(s.url("/events"))
        .send()
        .await
        .expect("all events");
    assert_eq!(all.headers()["content-type"], "text/event-stream");
    let r = s
        .client
        .post(s.url("/runs"))
        .json(&json!({"kind": "sleep", "params": {"ms": 40}}))
        .send()
        .await
        .expect("post");
    let run: Value = r.json().await.expect("json");
    let id = run["id"].as_str().expect("id").to_owned();

    let stream = s
        .client
        .get(s.url(&format!("/runs/{id}/events")))
        .send()
        .await
        .expect("stream");
    let events = within("the run's stream", read_sse(stream, |e| e.event == "end")).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds.last(), Some(&"end"));
    let logs: Vec<Value> = events
        .iter()
        .filter(|e| e.event == "log")
        .map(|e| serde_json::from_str(&e.data).expect("json"))
        .collect();
    let msgs: Vec<&str> = logs
        .iter()
        .map(|l| l["message"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        msgs,
        ["step 1 of 4", "step 2 of 4", "step 3 of 4", "step 4 of 4"]
    );
    let log_ids: Vec<&str> = events
        .iter()
        .filter(|e| e.event == "log")
        .filter_map(|e| e.id.as_deref())
        .collect();
    assert_eq!(log_ids, ["1", "2", "3", "4"]);
    let statuses: Vec<String> = events
        .iter()
        .filter(|e| e.event == "status")
        .map(|e| {
            serde_json::from_str::<Value>(&e.data).expect("json")["status"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(statuses.last().map(String::as_str), Some("completed"));
    assert!(events.iter().any(|e| e.event == "progress"));
    let end: Value = serde_json::from_str(&events.last().expect("end").data).expect("json");
    assert_eq!(
        (end["status"].as_str(), end["run"]["status"].as_str()),
        (Some("completed"), Some("completed"))
    );

    // Reconnecting with the last id seen resumes after it; the end still comes.
    let again = s
        .client
        .get(s.url(&format!("/runs/{id}/events")))
        .header("last-event-id", "2")
        .send()
        .await
        .expect("stream");
    let events = within("the resumed stream", read_sse(again, |e| e.event == "end")).await;
    let msgs: Vec<String> = events
        .iter()
        .filter(|e| e.event == "log")
        .map(|e| {
            serde_json::from_str::<Value>(&e.data).expect("json")["message"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(msgs, ["step 3 of 4", "step 4 of 4"]);
    assert_eq!(events.last().map(|e| e.event.as_str()), Some("end"));

    // The all-runs stream saw the run go through its statuses.
    let seen = within(
        "the all-runs stream",
        read_sse(all, |e| {
            e.data.contains(&id) && e.data.contains("\"completed\"")
        }),
    )
    .await;
    let mine: Vec<Value> = seen
        .iter()
        .filter(|e| e.event == "status")
        .map(|e| serde_json::from_str::<Value>(&e.data).expect("json"))
        .filter(|v| v["run_id"] == json!(id))
        .collect();
    let statuses: Vec<&str> = mine
        .iter()
        .map(|v| v["status"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(statuses, ["queued", "running", "completed"]);

    // A stream for an unknown run is a typed 404.
    let r = s
        .client
        .get(s.url(&format!("/runs/{}/events", runwarden::RunId::new())))
        .send()
        .await
        .expect("stream");
    assert_eq!(s.checked("get", "/runs/{id}/events", r).await.0, 404);
    s.rw.shutdown(support::STEP).await.expect("shutdown");
}
