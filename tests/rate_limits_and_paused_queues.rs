//! A queue's rate limit admits exactly its number of starts in every window (on tokio's paused
//! clock, so the windows are exact), changes at run time, and never fails a run; a paused queue
//! starts nothing while it takes submits and lets running runs finish, and resumed, starts its
//! runs in the order it would have. Pausing is reachable over HTTP and shown in `/metrics`.
#[path = "support/http.rs"]
mod http_support;
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use runwarden::http::HttpOptions;
use runwarden::{QueueConfig, RateLimit, RunSpec, RunStatus, Runwarden};
use support::{Gate, start, within};
use tokio::time::Instant;

/// Submits `n` runs to `queue` that record the second (from `t0`) their job started in.
fn submit_recording(
    rw: &Runwarden,
    queue: &str,
    n: usize,
    t0: Instant,
    starts: &Arc<Mutex<Vec<u64>>>,
) -> Vec<runwarden::RunId> {
    (0..n)
        .map(|_| {
            let starts = starts.clone();
            rw.submit(
                RunSpec::new("limited").queue(queue),
                move |_ctx| async move {
                    starts.lock().push(t0.elapsed().as_secs());
                    Ok(())
                },
            )
            .expect("submit")
        })
        .collect()
}

/// Starts per whole second, for seconds `0..secs`.
fn per_second(starts: &[u64], secs: u64) -> Vec<usize> {
    (0..secs)
        .map(|s| starts.iter().filter(|t| **t == s).count())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn ten_per_second_admits_exactly_ten_starts_in_every_second_for_a_minute() {
    let rw = start(Runwarden::builder().queue(
        "api",
        QueueConfig::default().rate(RateLimit::per_second(10)),
    ))
    .await;
    let t0 = Instant::now();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let ids = submit_recording(&rw, "api", 600, t0, &starts);
    for id in &ids {
        let r = rw.wait(*id).await.expect("wait");
        assert_eq!(
            r.status,
            RunStatus::Completed,
            "a limited run is never failed"
        );
    }
    let starts = starts.lock().clone();
    assert_eq!(starts.len(), 600);
    assert_eq!(per_second(&starts, 60), vec![10; 60]);
    assert_eq!(
        starts.iter().max(),
        Some(&59),
        "no start after the 60th second"
    );
    let status = rw.supervisor_status().await.expect("status");
    let api = status
        .queues
        .iter()
        .find(|q| q.name == "api")
        .expect("queue");
    assert_eq!(api.rate, Some(RateLimit::per_second(10)));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_set_and_lifted_at_run_time_takes_effect() {
    let rw = start(Runwarden::builder().queue("api", QueueConfig::default())).await;
    rw.set_queue_rate("api", Some(RateLimit::new(5, Duration::from_secs(2))))
        .await
        .expect("set");
    let t0 = Instant::now();
    let starts = Arc::new(Mutex::new(Vec::new()));
    let ids = submit_recording(&rw, "api", 20, t0, &starts);
    // 5 per 2 s: at 0, 2, 4 and 6 s.
    within("the limited runs", async {
        for id in &ids {
            rw.wait(*id).await.expect("wait");
        }
    })
    .await;
    assert_eq!(per_second(&starts.lock(), 8), vec![5, 0, 5, 0, 5, 0, 5, 0]);
    // Lifted: a backlog starts at once.
    rw.set_queue_rate("api", Some(RateLimit::per_second(1)))
        .await
        .expect("set");
    let t1 = Instant::now();
    let later = Arc::new(Mutex::new(Vec::new()));
    let ids = submit_recording(&rw, "api", 10, t1, &later);
    rw.set_queue_rate("api", None).await.expect("lift");
    for id in &ids {
        rw.wait(*id).await.expect("wait");
    }
    assert!(
        later.lock().iter().all(|s| *s == 0),
        "once lifted, every run starts in the same second: {:?}",
        later.lock()
    );
    match rw.set_queue_rate("nope", None).await {
        Err(runwarden::Error::UnknownQueue(q)) => assert_eq!(q.0, "nope"),
        other => panic!("an unknown queue is refused, got {other:?}"),
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_paused_queue_holds_new_starts_and_resumes_them_in_order() {
    let rw = start(Runwarden::builder().queue("batch", QueueConfig::limited(1))).await;
    let order = Arc::new(Mutex::new(Vec::new()));
    // A run already running when the queue is paused goes on to its end.
    let gate = Gate::new();
    let g = gate.clone();
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let running = rw
        .submit(
            RunSpec::new("running").queue("batch"),
            move |_ctx| async move {
                let _ = started_tx.send(());
                g.wait().await;
                Ok(())
            },
        )
        .expect("submit");
    within("the first run to start", started_rx)
        .await
        .expect("its job started");
    rw.pause_queue("batch").await.expect("pause");
    let ids: Vec<_> = (0..10)
        .map(|i| {
            let order = order.clone();
            let spec = RunSpec::new("held").queue("batch").priority(i % 3);
            rw.submit(spec, move |_ctx| async move {
                order.lock().push(i);
                Ok(())
            })
            .expect("a paused queue still takes submits")
        })
        .collect();
    gate.open();
    assert_eq!(
        rw.wait(running).await.expect("wait").status,
        RunStatus::Completed
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
    for id in &ids {
        assert_eq!(
            rw.status(*id).await.expect("status").status,
            RunStatus::Queued
        );
    }
    let status = rw.supervisor_status().await.expect("status");
    let batch = status
        .queues
        .iter()
        .find(|q| q.name == "batch")
        .expect("queue");
    assert!(batch.paused);
    assert_eq!((batch.queued, batch.running), (10, 0));

    rw.resume_queue("batch").await.expect("resume");
    for id in &ids {
        rw.wait(*id).await.expect("wait");
    }
    // The order the queue would have used: priority first, then submission.
    let mut want: Vec<i32> = (0..10).collect();
    want.sort_by_key(|i| (std::cmp::Reverse(i % 3), *i));
    assert_eq!(*order.lock(), want);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pausing_over_http_shows_in_the_queue_and_in_metrics() {
    let s = http_support::server(HttpOptions::default()).await;
    let paused = s
        .client
        .post(s.url("/queues/default/pause"))
        .send()
        .await
        .expect("send");
    assert_eq!(paused.status(), 200);
    let q: serde_json::Value = paused.json().await.expect("json");
    assert_eq!(
        (q["name"].as_str(), q["paused"].as_bool()),
        (Some("default"), Some(true))
    );
    let metrics = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("runwarden_queue_paused{queue=\"default\"} 1"),
        "{metrics}"
    );
    let all: serde_json::Value = s
        .client
        .get(s.url("/queues"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let default = all["queues"]
        .as_array()
        .and_then(|qs| qs.iter().find(|q| q["name"] == "default"))
        .expect("the default queue");
    assert_eq!(default["paused"], true, "{all}");
    let resumed: serde_json::Value = s
        .client
        .post(s.url("/queues/default/resume"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(resumed["paused"], false);
    let unknown = s
        .client
        .post(s.url("/queues/nope/pause"))
        .send()
        .await
        .expect("send");
    assert_eq!(unknown.status(), 404);
    let body: serde_json::Value = unknown.json().await.expect("json");
    assert_eq!(body["error_code"], "UNKNOWN_QUEUE");
    s.rw.shutdown(support::STEP).await.expect("shutdown");
}

async fn default_queue(rw: &Runwarden) -> runwarden::QueueStatus {
    let status = rw.supervisor_status().await.expect("status");
    let default = status.queues.into_iter().find(|q| q.name == "default");
    default.expect("the default queue")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_kind_rates_change_over_http_with_typed_errors() {
    let s = http_support::server(HttpOptions::default()).await;
    // Each answer is checked against the served OpenAPI document.
    let patch = async |queue: &str, body: serde_json::Value| {
        let path = format!("/queues/{queue}/limits");
        let r = s.client.patch(s.url(&path)).json(&body).send().await;
        s.checked("patch", "/queues/{name}/limits", r.expect("send"))
            .await
    };
    let put_kind = async |body: serde_json::Value| {
        let r = s
            .client
            .put(s.url("/kinds/email/rate"))
            .json(&body)
            .send()
            .await;
        s.checked("put", "/kinds/{kind}/rate", r.expect("send"))
            .await
    };
    let all_limits = serde_json::json!({
        "limit": 4,
        "per_key": 2,
        "rate": {"max": 100, "per": 60000},
        "key_rate": {"max": 5, "per": 1000, "burst": 2}
    });
    let (code, q) = patch("default", all_limits).await;
    assert_eq!(code, 200);
    assert_eq!(
        (q["limit"].clone(), q["per_key"].clone()),
        (4.into(), 2.into()),
        "{q}"
    );
    assert_eq!(
        q["rate"],
        serde_json::json!({"max": 100, "per": 60000}),
        "{q}"
    );
    let key_rate = serde_json::json!({"max": 5, "per": 1000, "burst": 2});
    assert_eq!(q["key_rate"], key_rate, "{q}");
    // `null` lifts a limit; a field left out stays as it was.
    let (_, lifted) = patch("default", serde_json::json!({"rate": null})).await;
    assert_eq!(lifted["rate"], serde_json::Value::Null, "{lifted}");
    assert_eq!(lifted["limit"], 4, "{lifted}");
    let default = default_queue(&s.rw).await;
    assert_eq!(
        (default.limit, default.per_key, default.rate),
        (Some(4), Some(2), None)
    );
    // Bad bodies and an unknown queue are typed errors and change nothing.
    for body in [
        serde_json::json!({"limt": 4}),
        serde_json::json!({"rate": {"max": -1, "per": 1000}}),
        serde_json::json!({"rate": {"max": 1, "per_ms": 1000}}),
    ] {
        let (code, e) = patch("default", body.clone()).await;
        assert_eq!(
            (code, e["error_code"].as_str()),
            (422, Some("VALIDATION")),
            "{body}: {e}"
        );
    }
    for body in [serde_json::json!({"limit": 1}), serde_json::json!({})] {
        let (code, e) = patch("nope", body).await;
        assert_eq!(
            (code, e["error_code"].as_str()),
            (404, Some("UNKNOWN_QUEUE"))
        );
    }
    let default = default_queue(&s.rw).await;
    assert_eq!((default.limit, default.per_key), (Some(4), Some(2)));

    // A kind's rate limit: set, shown in /queues and /metrics, lifted.
    let (code, kinds) = put_kind(serde_json::json!({"max": 10, "per": 1000})).await;
    assert_eq!(code, 200);
    let email = serde_json::json!({"kind": "email", "rate": {"max": 10, "per": 1000}, "queued": 0});
    assert_eq!(kinds["kind_rates"], serde_json::json!([email]));
    let (_, all) = s.get("/queues", "/queues").await;
    assert_eq!(all["kind_rates"][0]["kind"], "email", "{all}");
    let metrics = s.client.get(s.url("/metrics")).send().await.expect("send");
    let metrics = metrics.text().await.expect("text");
    assert!(
        metrics.contains("runwarden_kind_queued{kind=\"email\"} 0"),
        "{metrics}"
    );
    let (_, lifted) = put_kind(serde_json::Value::Null).await;
    assert_eq!(lifted["kind_rates"], serde_json::json!([]));
    s.rw.shutdown(support::STEP).await.expect("shutdown");
}
