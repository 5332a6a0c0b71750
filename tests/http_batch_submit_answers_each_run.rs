//! `POST /runs/batch` starts many runs in one message and one transaction and answers with one
//! result per run, in order, each checked as `POST /runs` checks one: an unknown kind, a full
//! queue or an idempotency key (not taken in a batch) is that run's typed error, and the rest
//! run. A batch that is empty, too large or malformed is refused whole. Every answer is checked
//! against the served OpenAPI document.
#[path = "support/http.rs"]
mod http_support;
#[path = "support/helpers.rs"]
mod support;

use runwarden::http::HttpOptions;
use runwarden::{RunId, RunStatus};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_run_in_order_with_its_own_error() {
    let s = http_support::server(HttpOptions::default()).await;
    let batch = json!({"runs": [
        {"kind": "sleep", "params": {"ms": 4}, "name": "first"},
        {"kind": "no-such-kind"},
        {"kind": "sleep", "queue": "tiny"},
        {"kind": "sleep", "idempotency_key": "k"},
        {"kind": "fail", "name": "last"},
    ]});
    let (code, body) = s.post("/runs/batch", "/runs/batch", &batch).await;
    assert_eq!(code, 200, "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 5, "{body}");
    assert_eq!(results[1]["error_code"], "UNKNOWN_KIND", "{body}");
    assert_eq!(results[2]["error_code"], "QUEUE_FULL", "{body}");
    assert_eq!(results[3]["error_code"], "VALIDATION", "{body}");
    let id =
        |i: usize| -> RunId { serde_json::from_value(results[i]["id"].clone()).expect("an id") };
    let (first, last) = (id(0), id(4));
    let first = support::within("the first run", s.rw.wait(first))
        .await
        .expect("wait");
    assert_eq!(
        (first.status, first.name.as_str()),
        (RunStatus::Completed, "first")
    );
    let last = support::within("the last run", s.rw.wait(last))
        .await
        .expect("wait");
    assert_eq!(
        (last.status, last.name.as_str()),
        (RunStatus::Failed, "last")
    );
    // Nothing of the refused runs was recorded.
    let (code, page) = s.get("/runs", "/runs?limit=100").await;
    assert_eq!(code, 200);
    assert_eq!(page["total"], 2, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_oversized_or_malformed_batch_is_refused_whole() {
    let s = http_support::server(HttpOptions::default()).await;
    let too_many: Vec<_> = (0..1001).map(|_| json!({"kind": "sleep"})).collect();
    for bad in [
        json!({"runs": []}),
        json!({"runs": too_many}),
        json!({"runs": [{"kind": "sleep"}], "extra": true}),
        json!({"runs": [{"kind": "sleep", "colour": "red"}]}),
    ] {
        let (code, body) = s.post("/runs/batch", "/runs/batch", &bad).await;
        assert_eq!(code, 422, "{body}");
        assert_eq!(body["error_code"], "VALIDATION", "{body}");
    }
    let (_, page) = s.get("/runs", "/runs?limit=100").await;
    assert_eq!(page["total"], 0, "{page}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_fits_its_own_body_limit_not_the_single_runs() {
    let s = http_support::server(HttpOptions::default()).await;
    // 1,000 runs with 100 bytes of parameters each: over the 64 KiB of one request, within
    // the batch's 1 MiB.
    let pad = "x".repeat(100);
    let runs: Vec<_> = (0..1000)
        .map(|i| json!({"kind": "sleep", "params": {"ms": 1, "pad": pad}, "name": format!("r{i}")}))
        .collect();
    let batch = json!({ "runs": runs });
    assert!(serde_json::to_vec(&batch).expect("json").len() > 64 * 1024);
    let (code, body) = s.post("/runs/batch", "/runs/batch", &batch).await;
    assert_eq!(code, 200);
    let results = body["results"].as_array().expect("results");
    assert!(
        results.iter().all(|r| r["id"].is_string()),
        "{}",
        results[0]
    );
    // The same body on the single-run route is too large.
    let (code, body) = s.post("/runs", "/runs", &batch).await;
    assert_eq!(code, 413, "{body}");
}
