//! A finished run is re-run as a new run with the same spec, linked to the original on both
//! records (durably, also for an original outside the memory window); a run that cannot be
//! re-run says why; a bulk re-run by filter re-runs exactly the matched runs and answers per
//! run, from the handle, the actor path and the HTTP API (checked against the served OpenAPI).
#[path = "support/http.rs"]
mod http_support;
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::http::HttpOptions;
use runwarden::{
    BoxedJob, JobError, Kind, ListQuery, OnInterrupt, Retention, RetryPolicy, RunId, RunSpec,
    RunStatus, Runwarden, SqliteStore, SubmitError,
};
use serde_json::json;
use support::{TempDir, within};

fn builder() -> runwarden::RunwardenBuilder {
    Runwarden::builder()
        .job_kind("ok", OnInterrupt::Rerun, |_| {
            Ok(BoxedJob::repeatable(|_ctx| async { Ok(()) }))
        })
        .job_kind("flaky", OnInterrupt::Rerun, |_| {
            Ok(BoxedJob::repeatable(|_ctx| async {
                Err::<(), _>(JobError::msg("upstream down"))
            }))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rerun_has_the_same_spec_and_both_records_link() {
    let dir = TempDir::new("rerun");
    let path = dir.0.join("runs.db");
    let store = SqliteStore::open(&path).expect("open");
    let retention = Retention {
        memory_window: 2,
        ..Retention::default()
    };
    let rw = support::start(builder().store(store).retention(retention)).await;
    let spec = RunSpec::new("nightly")
        .name("nightly report")
        .param("day", "2026-12-01")
        .priority(3)
        .partition_key("acme")
        .timeout(Duration::from_secs(9))
        .retry(RetryPolicy::attempts(2).backoff(Duration::ZERO, Duration::ZERO));
    let original = rw
        .request(spec, Kind("flaky"))
        .durable()
        .send()
        .await
        .expect("submit");
    let first = within("the run", rw.wait(original)).await.expect("wait");
    assert_eq!((first.status, first.attempt), (RunStatus::Failed, 2));
    // Push the original out of the memory window: the store answers for it now.
    for _ in 0..4 {
        let id = rw
            .submit_job(RunSpec::new("filler"), Kind("ok"))
            .expect("submit");
        rw.wait(id).await.expect("wait");
    }
    let again = rw.rerun(original).await.expect("re-run");
    let second = within("the re-run", rw.wait(again)).await.expect("wait");
    assert_eq!(second.rerun_of, Some(original));
    for (a, b) in [
        (&first.label, &second.label),
        (&first.name, &second.name),
        (&first.queue, &second.queue),
    ] {
        assert_eq!(a, b);
    }
    assert_eq!(first.params, second.params);
    assert_eq!(
        (
            first.priority,
            first.partition_key.clone(),
            first.kind.clone()
        ),
        (
            second.priority,
            second.partition_key.clone(),
            second.kind.clone()
        )
    );
    assert_eq!((second.timeout, second.retry), (first.timeout, first.retry));
    assert_eq!(
        (second.attempt, second.max_attempts),
        (2, 2),
        "its own attempts"
    );
    assert_eq!(rw.status(original).await.expect("status").reruns, [again]);
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
    // The link on the original was committed.
    let rw = support::start(builder().store(SqliteStore::open(&path).expect("reopen"))).await;
    assert_eq!(rw.status(original).await.expect("status").reruns, [again]);

    // What cannot be re-run says why.
    let closure = rw
        .submit(RunSpec::new("closure"), |_ctx| async { Ok(()) })
        .expect("submit");
    rw.wait(closure).await.expect("wait");
    let refused = |e: runwarden::Error| match e {
        runwarden::Error::Submit(s) => s,
        other => panic!("not a submit error: {other:?}"),
    };
    assert_eq!(
        refused(rw.rerun(closure).await.expect_err("a closure")),
        SubmitError::NotRerunnable(closure)
    );
    let ghost = RunId::new();
    assert_eq!(
        refused(rw.rerun(ghost).await.expect_err("unknown")),
        SubmitError::UnknownRun(ghost)
    );
    let active = rw
        .submit(
            RunSpec::new("held"),
            |ctx: runwarden::RunContext| async move {
                ctx.cancelled().await;
                Ok(())
            },
        )
        .expect("submit");
    assert!(matches!(
        refused(rw.rerun(active).await.expect_err("active")),
        SubmitError::NotFinished { id, .. } if id == active
    ));
    rw.shutdown(Duration::from_millis(50))
        .await
        .expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_rerun_reruns_exactly_the_matched_runs() {
    let rw = support::start(builder()).await;
    let mut flaky = Vec::new();
    for i in 0..6 {
        let queue_spec = RunSpec::new(if i % 2 == 0 { "import" } else { "export" });
        flaky.push(rw.submit_job(queue_spec, Kind("flaky")).expect("submit"));
    }
    let fine: Vec<RunId> = (0..3)
        .map(|_| {
            rw.submit_job(RunSpec::new("import"), Kind("ok"))
                .expect("submit")
        })
        .collect();
    for id in flaky.iter().chain(&fine) {
        within("a run", rw.wait(*id)).await.expect("wait");
    }
    // Failed imports of kind "flaky": flaky[0], [2], [4]; not the exports, not the fine ones.
    let filter = ListQuery::new()
        .status(RunStatus::Failed)
        .kind("flaky")
        .label("import");
    let answers = rw.rerun_matching(filter).await.expect("answered");
    let originals: Vec<RunId> = answers.iter().map(|(id, _)| *id).collect();
    assert_eq!(originals, [flaky[0], flaky[2], flaky[4]], "oldest first");
    for (original, answer) in &answers {
        let new = answer.as_ref().expect("re-run");
        let r = within("a re-run", rw.wait(*new)).await.expect("wait");
        assert_eq!(r.rerun_of, Some(*original));
    }
    let reruns = rw
        .list(ListQuery::new().limit(1000))
        .await
        .expect("list")
        .runs
        .into_iter()
        .filter(|r| r.rerun_of.is_some())
        .count();
    assert_eq!(reruns, 3, "nothing else was re-run");

    // The actor path: the supervisor's ref re-runs by filter too.
    let answers = rw
        .supervisor()
        .rerun_matching(
            ListQuery::new()
                .status(RunStatus::Completed)
                .kind("ok")
                .limit(2),
        )
        .await
        .expect("call");
    assert_eq!(answers.len(), 2, "the filter's limit bounds it");
    assert!(answers.iter().all(|(_, a)| a.is_ok()), "{answers:?}");
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_reruns_one_run_or_a_filter_and_shows_workflows() {
    let s = http_support::server(HttpOptions::default()).await;
    let (code, body) = s
        .post("/runs", "/runs", &json!({"kind": "fail", "label": "sync"}))
        .await;
    assert_eq!(code, 202, "{body}");
    let failed: RunId = serde_json::from_value(body["id"].clone()).expect("an id");
    within("the run", s.rw.wait(failed)).await.expect("wait");
    let path = format!("/runs/{failed}/rerun");
    let (code, body) = s.post("/runs/{id}/rerun", &path, &json!(null)).await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["rerun_of"], json!(failed));
    let new: RunId = serde_json::from_value(body["id"].clone()).expect("an id");
    assert_eq!(
        within("the re-run", s.rw.wait(new))
            .await
            .expect("wait")
            .rerun_of,
        Some(failed)
    );
    // By filter: both failed `sync` runs now, one result each.
    let (code, body) = s
        .post(
            "/runs/rerun",
            "/runs/rerun",
            &json!({"status": "failed", "label": "sync"}),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{body}");
    assert!(results.iter().all(|r| r["id"].is_string()), "{body}");
    for bad in [
        json!({}),
        json!({"status": "running"}),
        json!({"label": "sync", "limit": 5000}),
        json!({"label": "sync", "created_after": "yesterday"}),
    ] {
        let (code, body) = s.post("/runs/rerun", "/runs/rerun", &bad).await;
        assert_eq!(code, 422, "{bad}: {body}");
    }
    let ghost = RunId::new();
    let (code, body) = s
        .post(
            "/runs/{id}/rerun",
            &format!("/runs/{ghost}/rerun"),
            &json!(null),
        )
        .await;
    assert_eq!(code, 404, "{body}");

    // A workflow submitted through the handle is shown over HTTP.
    let runs =
        s.rw.submit_workflow(
            runwarden::Workflow::new()
                .step(runwarden::Step::kind("a", "sleep", RunSpec::new("a")))
                .step(runwarden::Step::kind("b", "fail", RunSpec::new("b")).after("a"))
                .step(runwarden::Step::kind("c", "sleep", RunSpec::new("c")).after("b")),
        )
        .await
        .expect("accepted");
    within("c", s.rw.wait(runs.run("c").expect("c")))
        .await
        .expect("wait");
    let (code, body) = s
        .get("/workflows/{id}", &format!("/workflows/{}", runs.id))
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["state"], json!("failed"));
    assert_eq!(body["steps"]["c"]["status"], json!("cancelled"));
    assert_eq!(body["steps"]["c"]["cancelled_by"], json!("dependency"));
    assert_eq!(body["counts"]["completed"], json!(1));
    let (code, body) = s
        .get(
            "/runs",
            &format!("/runs?workflow={}&status=cancelled", runs.id),
        )
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["total"], json!(1), "{body}");
    let (code, _) = s
        .get("/workflows/{id}", &format!("/workflows/{}", RunId::new()))
        .await;
    assert_eq!(code, 404);
}
