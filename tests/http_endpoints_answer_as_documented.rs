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
    let (status, run) = s
        .checked(
            "get",
            "/runs/{id}",
            s.client.get(s.url(&location)).send().await.expect("get"),
        )
        .await;
    assert_eq!((status, run["status"].as_str()), (200, Some("completed")));
    assert_eq!(run["progress"]["percent"], json!(100.0));

    // List, with filters that combine.
    let fail = s
        .client
        .post(s.url("/runs"))
        .json(&json!({"kind": "fail", "label": "api"}))
        .send()
        .await
        .expect("post");
    let (_, failed) = s.checked("post", "/runs", fail).await;
    within(
        "fail",
        s.rw.wait(failed["id"].as_str().expect("id").parse().expect("id")),
    )
    .await
    .expect("wait");
    let list = s
        .client
        .get(s.url("/runs?label=api&status=completed&queue=default&limit=10"))
        .send()
        .await
        .expect("list");
    let (status, page) = s.checked("get", "/runs", list).await;
    assert_eq!((status, page["total"].as_u64()), (200, Some(1)));
    assert_eq!(page["runs"][0]["id"], json!(id));
    let all = s
        .checked(
            "get",
            "/runs",
            s.client
                .get(s.url("/runs?label=api"))
                .send()
                .await
                .expect("list"),
        )
        .await
        .1;
    assert_eq!(all["total"], json!(2));
    assert_eq!(all["runs"][0]["id"], failed["id"], "newest first");

    // Logs: tail, since, download.
    let (status, logs) = s
        .checked(
            "get",
            "/runs/{id}/logs",
            s.client
                .get(s.url(&format!("/runs/{id}/logs?tail=2")))
                .send()
                .await
                .expect("logs"),
        )
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
    let hold = s
        .client
        .post(s.url("/runs"))
        .json(&json!({"kind": "hold"}))
        .send()
        .await
        .expect("post");
    let (_, held) = s.checked("post", "/runs", hold).await;
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
    let r = s
        .client
        .get(s.url(&format!("/runs/{unknown}")))
        .send()
        .await
        .expect("get");
    assert_eq!(s.checked("get", "/runs/{id}", r).await.0, 404);
    let r = s
        .client
        .get(s.url("/runs/not-an-id"))
        .send()
        .await
        .expect("get");
    let (status, body) = s.checked("get", "/runs/{id}", r).await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (422, Some("VALIDATION"))
    );

    // Idempotency key: the same run comes back, with 200 instead of 202.
    let body = json!({"kind": "hold", "idempotency_key": "nightly-2026-11-26"});
    let (first, a) = s
        .checked(
            "post",
            "/runs",
            s.client
                .post(s.url("/runs"))
                .json(&body)
                .send()
                .await
                .expect("post"),
        )
        .await;
    let (second, b) = s
        .checked(
            "post",
            "/runs",
            s.client
                .post(s.url("/runs"))
                .json(&body)
                .send()
                .await
                .expect("post"),
        )
        .await;
    assert_eq!((first, second), (202, 200));
    assert_eq!(a["id"], b["id"]);

    // Service endpoints.
    let (status, health) = s
        .checked(
            "get",
            "/health",
            s.client.get(s.url("/health")).send().await.expect("health"),
        )
        .await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    assert_eq!(health["active_runs"], json!(1));
    let (status, stats) = s
        .checked(
            "get",
            "/stats",
            s.client.get(s.url("/stats")).send().await.expect("stats"),
        )
        .await;
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
    let (status, _) = s
        .checked(
            "post",
            "/maintenance/prune",
            s.client
                .post(s.url("/maintenance/prune"))
                .send()
                .await
                .expect("prune"),
        )
        .await;
    assert_eq!(status, 202);
    let page = s.client.get(s.url("/")).send().await.expect("dashboard");
    assert_eq!(page.status(), 200);
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("<title>runwarden</title>")
    );
    let (status, doc) = (200, s.doc.clone());
    assert_eq!((status, doc["openapi"].as_str()), (200, Some("3.1.0")));
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
