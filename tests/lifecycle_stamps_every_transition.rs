//! A run goes queued -> running -> completed, and every transition stamps its time
//! (defect 3 of the original: timestamps never set).
#[path = "support/helpers.rs"]
mod support;

use runwarden::{RunSpec, RunStatus, Runwarden};
use support::{Gate, Started, start, within};

// Each status is observed in order while a gate holds the job, and every time is stamped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_queued_then_running_then_completed_with_every_time_stamped() {
    let rw = start(Runwarden::builder().max_concurrent(1)).await;
    let (blocker_gate, job_gate) = (Gate::new(), Gate::new());
    let mut started = Started::new();

    // A blocker holds the only slot so the second run is visibly queued.
    let blocker = rw
        .submit(RunSpec::new("blocker"), started.held(&blocker_gate, 0))
        .expect("submit blocker");
    started.expect(1).await;

    let id = rw
        .submit(
            RunSpec::new("job").name("the job").param("n", 3),
            started.held(&job_gate, 1),
        )
        .expect("submit job");

    let queued = rw.status(id).await.expect("status");
    assert_eq!(queued.status, RunStatus::Queued);
    assert_eq!(
        (queued.label.as_str(), queued.name.as_str()),
        ("job", "the job")
    );
    assert!(queued.started_at.is_none() && queued.finished_at.is_none());

    blocker_gate.open();
    assert_eq!(started.expect(1).await, vec![1]);
    let running = rw.status(id).await.expect("status");
    assert_eq!(running.status, RunStatus::Running);
    let started_at = running.started_at.expect("started_at stamped on Running");
    assert!(running.created_at <= started_at);
    assert!(rw.is_active(id).await.expect("is_active"));

    job_gate.open();
    let done = within("the job to end", rw.wait(id)).await.expect("wait");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.started_at, Some(started_at));
    let finished_at = done.finished_at.expect("finished_at stamped");
    assert!(started_at <= finished_at);
    assert!(done.duration_ms.expect("duration") >= 0.0);
    assert!(done.error.is_none());
    assert!(!rw.is_active(id).await.expect("is_active"));
    assert_eq!(
        rw.wait(blocker).await.expect("blocker").status,
        RunStatus::Completed
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Serialised records use lowercase statuses and RFC 3339 UTC times, as the original's API did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_serialise_as_the_original_api_did() {
    let rw = start(Runwarden::builder()).await;
    let id = rw
        .submit(RunSpec::new("x"), |_| async {
            Err::<(), _>(runwarden::JobError::msg("nope"))
        })
        .expect("submit");
    let record = within("run to end", rw.wait(id)).await.expect("wait");
    let json = serde_json::to_value(&record).expect("serialise");
    assert_eq!(json["status"], "failed");
    assert_eq!(json["error"]["kind"], "returned");
    assert_eq!(json["error"]["message"], "nope");
    for key in ["created_at", "started_at", "finished_at"] {
        let t = json[key].as_str().expect("time is a string");
        assert!(t.parse::<runwarden::Timestamp>().is_ok(), "{key}={t}");
        assert!(t.ends_with('Z'), "{key}={t} not UTC");
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}
