//! Cancelling by filter cancels exactly the active runs that match (label, queue, status),
//! answers once per run, and leaves every other run alone, from the handle and over HTTP
//! (`POST /runs/cancel`, checked against the served OpenAPI document); a filter that would
//! cancel everything, or names a terminal status, is refused.
#[path = "support/http.rs"]
mod http_support;
#[path = "support/helpers.rs"]
mod support;

use runwarden::http::HttpOptions;
use runwarden::{
    BoxedJob, CancelOutcome, ListQuery, QueueConfig, RunId, RunSpec, RunStatus, Runwarden,
};
use serde_json::json;

fn held() -> BoxedJob {
    BoxedJob::new(|ctx| async move {
        ctx.cancelled().await;
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_matching_cancels_exactly_the_matching_active_runs() {
    let rw = support::start(Runwarden::builder().queue("mail", QueueConfig::limited(2))).await;
    let submit = |label: &str, queue: &str| {
        rw.submit_job(RunSpec::new(label).queue(queue), held())
            .expect("submit")
    };
    // Five emails in "mail" (two running, three queued), three reports in "mail", three
    // emails in the default queue, and one email that already finished.
    let done = rw
        .submit(RunSpec::new("email").queue("mail"), |_ctx| async { Ok(()) })
        .expect("submit");
    rw.wait(done).await.expect("wait");
    let emails: Vec<RunId> = (0..5).map(|_| submit("email", "mail")).collect();
    // Each report's job says when it starts.
    let (told, mut started) = tokio::sync::mpsc::unbounded_channel();
    let report = |_| {
        let told = told.clone();
        let job = BoxedJob::new(move |ctx| async move {
            let _ = told.send(ctx.run_id());
            ctx.cancelled().await;
            Ok(())
        });
        rw.submit_job(RunSpec::new("report").queue("mail"), job)
            .expect("submit")
    };
    let reports: Vec<RunId> = (0..3).map(report).collect();
    let elsewhere: Vec<RunId> = (0..3).map(|_| submit("email", "default")).collect();

    let answers = rw
        .cancel_matching(ListQuery::new().label("email").queue("mail"))
        .await
        .expect("answered");
    let ids: Vec<RunId> = answers.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids, emails,
        "exactly the five matching emails, oldest first"
    );
    for (id, answer) in &answers {
        let outcome = answer.as_ref().expect("cancelled");
        assert!(
            matches!(
                outcome,
                CancelOutcome::Signalled | CancelOutcome::CancelledWhileQueued
            ),
            "{id}: {outcome:?}"
        );
        assert_eq!(
            rw.wait(*id).await.expect("wait").status,
            RunStatus::Cancelled
        );
    }
    for id in reports.iter().chain(&elsewhere) {
        assert!(
            rw.is_active(*id).await.expect("asked"),
            "{id} was left alone"
        );
    }
    assert_eq!(
        rw.status(done).await.expect("status").status,
        RunStatus::Completed
    );

    // By status: only the two running reports (the mail queue has room for two); the third
    // waits queued and is left alone.
    for _ in 0..2 {
        support::within("a report to start", started.recv())
            .await
            .expect("a report started");
    }
    let running = rw
        .cancel_matching(ListQuery::new().status(RunStatus::Running).label("report"))
        .await
        .expect("answered");
    let running: Vec<RunId> = running.iter().map(|(id, _)| *id).collect();
    assert_eq!(running, reports[..2]);
    assert!(rw.is_active(reports[2]).await.expect("asked"));
    // The three emails elsewhere and the third report are still held: the drain's deadline
    // ends them.
    let report = rw
        .shutdown(std::time::Duration::from_millis(50))
        .await
        .expect("shutdown");
    assert_eq!(report.cancelled_by_drain.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_runs_cancel_answers_per_run_and_refuses_a_filter_for_everything() {
    let s = http_support::server(HttpOptions::default()).await;
    let batch = json!({"runs": [
        {"kind": "hold", "label": "nightly"},
        {"kind": "hold", "label": "nightly"},
        {"kind": "hold", "label": "adhoc"},
    ]});
    let (code, body) = s.post("/runs/batch", "/runs/batch", &batch).await;
    assert_eq!(code, 200, "{body}");
    let (code, body) = s
        .post("/runs/cancel", "/runs/cancel", &json!({"label": "nightly"}))
        .await;
    assert_eq!(code, 200, "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{body}");
    for r in results {
        assert!(r["outcome"].is_string(), "{body}");
        let id: RunId = serde_json::from_value(r["run_id"].clone()).expect("an id");
        let end = support::within("the cancel", s.rw.wait(id))
            .await
            .expect("wait");
        assert_eq!(end.status, RunStatus::Cancelled);
    }
    assert_eq!(s.rw.active_count().await.expect("count"), 1);
    for bad in [
        json!({}),
        json!({"status": "completed"}),
        json!({"colour": "red"}),
    ] {
        let (code, body) = s.post("/runs/cancel", "/runs/cancel", &bad).await;
        assert_eq!(code, 422, "{bad}: {body}");
        assert_eq!(body["error_code"], "VALIDATION", "{body}");
    }
    assert_eq!(
        s.rw.active_count().await.expect("count"),
        1,
        "nothing more was cancelled"
    );
}
