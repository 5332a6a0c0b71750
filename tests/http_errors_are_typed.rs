//! Bad requests get the API's one error shape with a stable code: unknown kinds and queues,
//! full queues, invalid parameters (count, size, depth, forbidden keys), malformed, oversized
//! and untyped bodies, and submits during a shutdown.
#[path = "support/http.rs"]
mod http_support;
#[path = "support/helpers.rs"]
mod support;

use http_support::server;
use runwarden::http::HttpOptions;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_a_typed_error() {
    let s = server(HttpOptions {
        max_body_bytes: 4096,
        ..HttpOptions::default()
    })
    .await;
    let post = |body: Value| s.client.post(s.url("/runs")).json(&body).send();
    let expect = |want_status: u16, want_code: &'static str| {
        move |(status, body): (u16, Value)| {
            assert_eq!(
                (status, body["error_code"].as_str()),
                (want_status, Some(want_code)),
                "{body}"
            );
            assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
            assert!(
                body["timestamp"]
                    .as_str()
                    .is_some_and(|t| t.parse::<runwarden::Timestamp>().is_ok())
            );
        }
    };
    let deep = json!({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}});
    let many: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
    let bodies = [
        (json!({"kind": "rm -rf"}), 400, "UNKNOWN_KIND"),
        (
            json!({"kind": "sleep", "queue": "nope"}),
            400,
            "UNKNOWN_QUEUE",
        ),
        (json!({"kind": "sleep", "queue": "tiny"}), 429, "QUEUE_FULL"),
        (
            json!({"kind": "sleep", "params": [1, 2]}),
            422,
            "VALIDATION",
        ),
        (
            json!({"kind": "sleep", "params": {"__proto__": {}}}),
            422,
            "VALIDATION",
        ),
        (json!({"kind": "sleep", "params": deep}), 422, "VALIDATION"),
        (json!({"kind": "sleep", "params": many}), 422, "VALIDATION"),
        (
            json!({"kind": "sleep", "surprise": true}),
            422,
            "VALIDATION",
        ),
        (json!({"params": {}}), 422, "VALIDATION"),
    ];
    for (body, status, code) in bodies {
        let answer = post(body).await.expect("post");
        expect(status, code)(s.checked("post", "/runs", answer).await);
    }
    let malformed = s
        .client
        .post(s.url("/runs"))
        .header("content-type", "application/json")
        .body("{\"kind\": ")
        .send()
        .await
        .expect("post");
    expect(400, "MALFORMED")(s.checked("post", "/runs", malformed).await);
    let untyped = s
        .client
        .post(s.url("/runs"))
        .body("{\"kind\": \"sleep\"}")
        .send()
        .await
        .expect("post");
    expect(415, "MALFORMED")(s.checked("post", "/runs", untyped).await);
    let huge = json!({"kind": "sleep", "params": {"blob": "x".repeat(10_000)}});
    expect(413, "PAYLOAD_TOO_LARGE")(
        s.checked("post", "/runs", post(huge).await.expect("post"))
            .await,
    );
    let bad_status = s
        .client
        .get(s.url("/runs?status=sleeping"))
        .send()
        .await
        .expect("list");
    expect(422, "VALIDATION")(s.checked("get", "/runs", bad_status).await);
    let bad_since = s
        .client
        .get(s.url(&format!(
            "/runs/{}/logs?since=yesterday",
            runwarden::RunId::new()
        )))
        .send()
        .await
        .expect("logs");
    expect(422, "VALIDATION")(s.checked("get", "/runs/{id}/logs", bad_since).await);
    // Nothing above was recorded.
    assert_eq!(s.rw.stats().await.expect("stats").total(), 0);

    s.rw.drain(support::STEP).await.expect("drain");
    expect(503, "SHUTTING_DOWN")(
        s.checked(
            "post",
            "/runs",
            post(json!({"kind": "sleep"})).await.expect("post"),
        )
        .await,
    );
    s.rw.shutdown(support::STEP).await.expect("shutdown");
}

// Without logs configured, log endpoints say so; once the actors are gone, the API answers
// `UNAVAILABLE` instead of hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_disabled_and_stopped_actors_are_typed_too() {
    let rw = runwarden::Runwarden::builder()
        .job_kind("noop", runwarden::OnInterrupt::Fail, |_| {
            Ok(runwarden::BoxedJob::repeatable(|_| async { Ok(()) }))
        })
        .start()
        .await
        .expect("start");
    let (addr, _task) = runwarden::http::serve(
        "127.0.0.1:0".parse().expect("addr"),
        rw.clone(),
        HttpOptions::default(),
    )
    .await
    .expect("serve");
    let client = reqwest::Client::new();
    let run: Value = client
        .post(format!("http://{addr}/runs"))
        .json(&json!({"kind": "noop"}))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let id = run["id"].as_str().expect("id");
    let r = client
        .get(format!("http://{addr}/runs/{id}/logs"))
        .send()
        .await
        .expect("logs");
    assert_eq!(r.status(), 501);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error_code"], "LOGS_DISABLED");

    rw.shutdown(support::STEP).await.expect("shutdown");
    let r = client
        .get(format!("http://{addr}/runs/{id}"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error_code"], "UNAVAILABLE");
}
