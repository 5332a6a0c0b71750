//! Every endpoint of the HTTP API, called with a real client against a real server on a
//! loopback port, answers as its OpenAPI document says.
#[path = "support/http.rs"]
mod http_support;
#[path = "support/helpers.rs"]
mod support;

use http_support::server;
use runwarden::http::HttpOptions;
use serde_json::{Value, json};
use support::within;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_can_be_started_listed_read_cancelled_and_logged() {
    let s = server(HttpOptions::default()).await;

    // Start.
    let r = s
        .client
        .post(s.url("/runs"))
        .json(&json!({"kind": "sleep", "params": {"ms": 20}, "label": "api"}))
        .send()
        .await
        .expect("post");
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("Location");
    let (status, run) = s.checked("post", "/runs", r).await;
    assert_eq!(status, 202);
    let id = run["id"].as_str().expect("id").to_owned();
    assert_eq!(location, format!("/runs/{id}"));
    assert!(run["status"] == "queued" || run["status"] == "running");

    // Wait for it to end, then read it.
    let rid: runwarden::RunId = id.parse().expect("id");
    within("the run", s.rw.wait(rid)).await.expect("wait");
    let (status, run) = s.get("/runs/{id}", &location).await;
    assert_eq!((status, run["status"].as_str()), (200, Some("completed")));
    assert_eq!(run["progress"]["percent"], json!(100.0));

    // List, with filters that combine.
    let (_, failed) = s
        .post("/runs", "/runs", &json!({"kind": "fail", "label": "api"}))
        .await;
    within(
        "fail",
        s.rw.wait(failed["id"].as_str().expect("id").parse().expect("id")),
    )
    .await
    .expect("wait");
    let (status, page) = s
        .get(
            "/runs",
            "/runs?label=api&status=completed&queue=default&limit=10",
        )
        .await;
    assert_eq!((status, page["total"].as_u64()), (200, Some(1)));
    assert_eq!(page["runs"][0]["id"], json!(id));
    let (_, all) = s.get("/runs", "/runs?label=api").await;
    assert_eq!(all["total"], json!(2));
    assert_eq!(all["runs"][0]["id"], failed["id"], "newest first");

    // Logs: tail, since, download.
    let (status, logs) = s
        .get("/runs/{id}/logs", &format!("/runs/{id}/logs?tail=2"))
        .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = logs["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["message"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(lines, ["step 3 of 4", "step 4 of 4"]);
    let since = logs["lines"][1]["at"].as_str().expect("at");
    let later = s
        .client
        .get(s.url(&format!("/runs/{id}/logs")))
        .query(&[("since", since)])
        .send()
        .await
        .expect("since");
    let (_, later) = s.checked("get", "/runs/{id}/logs", later).await;
    assert_eq!(later["lines"].as_array().map(Vec::len), Some(1));
    let dl = s
        .client
        .get(s.url(&format!("/runs/{id}/logs/download")))
        .send()
        .await
        .expect("download");
    assert_eq!(dl.status(), 200);
    assert!(
        dl.headers()["content-disposition"]
            .to_str()
            .expect("cd")
            .contains(&format!("{id}.log"))
    );
    assert!(
        dl.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/plain")
    );
    let text = dl.text().await.expect("text");
    assert_eq!(text.lines().filter(|l| l.contains("step ")).count(), 4);

    // Cancel: running, then finished, then unknown.
    let (_, held) = s.post("/runs", "/runs", &json!({"kind": "hold"})).await;
    let hid = held["id"].as_str().expect("id").to_owned();
    let r = s
        .client
        .delete(s.url(&format!("/runs/{hid}")))
        .send()
        .await
        .expect("delete");
    let (status, body) = s.checked("delete", "/runs/{id}", r).await;
    assert_eq!(status, 202);
    assert!(
        body["outcome"] == "signalled" || body["outcome"] == "cancelled_while_queued",
        "{body}"
    );
    within("cancel", s.rw.wait(hid.parse().expect("id")))
        .await
        .expect("wait");
    let r = s
        .client
        .delete(s.url(&format!("/runs/{hid}")))
        .send()
        .await
        .expect("delete");
    let (status, body) = s.checked("delete", "/runs/{id}", r).await;
    assert_eq!(
        (status, body["error_code"].as_str(), body["status"].as_str()),
        (409, Some("ALREADY_FINISHED"), Some("cancelled"))
    );
    let unknown = runwarden::RunId::new();
    let r = s
        .client
        .delete(s.url(&format!("/runs/{unknown}")))
        .send()
        .await
        .expect("delete");
    let (status, body) = s.checked("delete", "/runs/{id}", r).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("RUN_NOT_FOUND"))
    );
    let (status, _) = s.get("/runs/{id}", &format!("/runs/{unknown}")).await;
    assert_eq!(status, 404);
    let (status, body) = s.get("/runs/{id}", "/runs/not-an-id").await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("VALIDATION"))
    );

    // Idempotency key: the same run comes back, with 200 instead of 202.
    let body = json!({"kind": "hold", "idempotency_key": "nightly-2026-11-26"});
    let (first, a) = s.post("/runs", "/runs", &body).await;
    let (second, b) = s.post("/runs", "/runs", &body).await;
    assert_eq!((first, second), (202, 200));
    assert_eq!(a["id"], b["id"]);

    // Service endpoints.
    let (status, health) = s.get("/health", "/health").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(health["active_runs"], json!(1));
    let (status, stats) = s.get("/stats", "/stats").await;
    assert_eq!(status, 200);
    assert_eq!(stats["by_status"]["completed"], json!(1));
    assert_eq!(stats["by_status"]["failed"], json!(1));
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.expect("text");
    assert!(
        text.contains("runwarden_runs{status=\"completed\"} 1"),
        "{text}"
    );
    assert!(text.contains("# TYPE runwarden_runs gauge"));
    let prune = s
        .client
        .post(s.url("/maintenance/prune"))
        .send()
        .await
        .expect("prune");
    let (status, _) = s.checked("post", "/maintenance/prune", prune).await;
    assert_eq!(status, 202);
    let page = s.client.get(s.url("/")).send().await.expect("dashboard");
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("<title>runwarden</title>")
    );
    let (status, doc) = s.get("/openapi.json", "/openapi.json").await;
    assert_eq!((status, doc["openapi"].as_str()), (200, Some("3.1.0")));
    assert_eq!(
        doc, s.doc,
        "the document served now is the one checked against"
    );
    let missing = s.client.get(s.url("/nope")).send().await.expect("404");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("json");
    assert_eq!(body["error_code"], "NOT_FOUND");
    // The idempotent `hold` run is still waiting: a short drain deadline cancels it.
    let report =
        s.rw.shutdown(std::time::Duration::from_millis(50))
            .await
            .expect("shutdown");
    assert_eq!(report.cancelled_by_drain.len(), 1);
}

/// `POST /runs` keeps a well-formed W3C `traceparent` header on the record (the run's span
/// continues that trace); a malformed one is ignored, as a receiver must.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_header_is_kept_on_the_run() {
    let s = server(HttpOptions::default()).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (header, want) in [(tp, Some(tp)), ("00-not-a-trace-01", None)] {
        let r = s
            .client
            .post(s.url("/runs"))
            .header("traceparent", header)
            .json(&json!({"kind": "sleep", "params": {"ms": 1}}))
            .send()
            .await
            .expect("post");
        let (status, run) = s.checked("post", "/runs", r).await;
        assert_eq!(status, 202);
        let id: runwarden::RunId = run["id"].as_str().expect("id").parse().expect("id");
        let record = within("the run", s.rw.wait(id)).await.expect("wait");
        assert_eq!(record.trace_parent.as_deref(), want);
    }
}
