//! What a caller can ask and be told without guessing: a wait bounded by its own timeout, one
//! answer with the per-status counts and the active count together, why an event stream
//! ended, the moment a drain has begun, and a handle found again by the supervisor's name after
//! the supervisor was restarted.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{
    DrainState, Error, EventFilter, EventItem, RunSpec, RunStatus, Runwarden, StreamEnd,
    SubmitError,
};
use support::{Gate, start, within};

/// Submits a run that waits for `gate` before it completes.
fn submit_held(rw: &Runwarden, gate: &Gate) -> runwarden::RunId {
    let g = gate.clone();
    rw.submit(RunSpec::new("held"), move |_ctx| async move {
        g.wait().await;
        Ok(())
    })
    .expect("submit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_timeout_answers_none_while_the_run_is_active_then_its_record() {
    let rw = start(Runwarden::builder()).await;
    let gate = Gate::new();
    let id = submit_held(&rw, &gate);
    let still = rw
        .wait_timeout(id, Duration::from_millis(50))
        .await
        .expect("answer");
    assert!(still.is_none(), "the run is still active: {still:?}");
    assert!(rw.status(id).await.expect("status").status.is_active());
    gate.open();
    let done = rw
        .wait_timeout(id, Duration::from_secs(10))
        .await
        .expect("answer")
        .expect("ended within the timeout");
    assert_eq!(done.status, RunStatus::Completed);
    match rw
        .wait_timeout(runwarden::RunId::new(), Duration::from_secs(1))
        .await
    {
        Err(Error::NotFound(_)) => {}
        other => panic!("an unknown run is NotFound, got {other:?}"),
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_count_every_status_and_the_active_runs_in_one_answer() {
    let rw = start(Runwarden::builder().max_concurrent(4)).await;
    let gate = Gate::new();
    let ids: Vec<_> = (0..20).map(|_| submit_held(&rw, &gate)).collect();
    let s = rw.stats().await.expect("stats");
    assert_eq!(s.count(RunStatus::Queued) + s.count(RunStatus::Running), 20);
    assert_eq!(s.active(), 20);
    assert_eq!(s.active(), rw.active_count().await.expect("count"));
    gate.open();
    within("all to end", async {
        for id in &ids {
            rw.wait(*id).await.expect("wait");
        }
    })
    .await;
    let s = rw.stats().await.expect("stats");
    assert_eq!((s.active(), s.count(RunStatus::Completed)), (0, 20));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_says_why_it_ended() {
    let rw = start(Runwarden::builder()).await;
    // A run that ends: its stream ends with the run.
    let id = rw
        .submit(RunSpec::new("quick"), |_ctx| async { Ok(()) })
        .expect("submit");
    let mut events = rw.events(EventFilter::Run(id)).await.expect("subscribe");
    while within("the next event", events.next()).await.is_some() {}
    assert_eq!(events.end(), Some(StreamEnd::RunEnded));

    // A run whose registry stops first: the stream ends saying so.
    let gate = Gate::new();
    let held = submit_held(&rw, &gate);
    let mut events = rw.events(EventFilter::Run(held)).await.expect("subscribe");
    let mut all = rw.events(EventFilter::All).await.expect("subscribe");
    assert!(matches!(
        within("the current status", events.next()).await,
        Some(EventItem::Event(_))
    ));
    assert_eq!(events.end(), None, "still going");
    rw.registry()
        .actor()
        .stop(Some("test: the registry goes".into()));
    while within("the stream to end", events.next()).await.is_some() {}
    assert_eq!(events.end(), Some(StreamEnd::RegistryStopped));
    while within("the all-runs stream to end", all.next())
        .await
        .is_some()
    {}
    assert_eq!(all.end(), Some(StreamEnd::RegistryStopped));
    gate.open();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn begin_drain_returns_once_submits_are_refused_and_drain_reports_later() {
    let rw = start(Runwarden::builder()).await;
    let gate = Gate::new();
    let id = submit_held(&rw, &gate);
    let state = rw
        .begin_drain(Duration::from_secs(30))
        .await
        .expect("begin");
    assert_eq!(state, DrainState::Draining);
    // From the answer on, every submit is refused, while the accepted run goes on.
    match rw.submit(RunSpec::new("late"), |_ctx| async { Ok(()) }) {
        Err(SubmitError::ShuttingDown) => {}
        other => panic!("a submit after the drain began is refused, got {other:?}"),
    }
    assert!(rw.status(id).await.expect("status").status.is_active());
    // A second begin joins the same drain.
    assert_eq!(
        rw.begin_drain(Duration::from_secs(1)).await.expect("begin"),
        DrainState::Draining
    );
    gate.open();
    let report = within("the drain", rw.drain(Duration::from_secs(30)))
        .await
        .expect("drain");
    assert!(
        !report.deadline_hit,
        "the first drain's deadline holds: {report:?}"
    );
    assert_eq!(
        rw.status(id).await.expect("status").status,
        RunStatus::Completed
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_finds_a_supervisor_restarted_under_the_same_name() {
    let name = format!("runwarden-test-{}", runwarden::RunId::new());
    let first = start(Runwarden::builder().name(&name)).await;
    let found = Runwarden::connect_named(&name, Duration::from_secs(5))
        .await
        .expect("found by name");
    let id = found
        .submit(RunSpec::new("via-name"), |_ctx| async { Ok(()) })
        .expect("submit");
    assert_eq!(
        first.wait(id).await.expect("wait").status,
        RunStatus::Completed
    );
    first.shutdown(support::STEP).await.expect("shutdown");
    match first.submit(RunSpec::new("gone"), |_ctx| async { Ok(()) }) {
        Err(SubmitError::ShuttingDown | SubmitError::Unavailable) => {}
        other => panic!("the old instance is gone, got {other:?}"),
    }

    // The application restarts runwarden under the same name; the old handle re-binds.
    let second = start(Runwarden::builder().name(&name)).await;
    let rebound = first.reconnect().await.expect("re-bound");
    let id = rebound
        .submit(RunSpec::new("after-restart"), |_ctx| async { Ok(()) })
        .expect("submit");
    assert_eq!(
        second.wait(id).await.expect("wait").status,
        RunStatus::Completed
    );
    second.shutdown(support::STEP).await.expect("shutdown");

    match Runwarden::connect_named("no-such-runwarden", Duration::from_secs(1)).await {
        Err(Error::NoSuchSupervisor(Some(n))) => assert_eq!(n, "no-such-runwarden"),
        other => panic!("expected NoSuchSupervisor, got {other:?}"),
    }
    let unnamed = start(Runwarden::builder()).await;
    match unnamed.reconnect().await {
        Err(Error::NoSuchSupervisor(None)) => {}
        other => panic!("an unnamed supervisor cannot be found again, got {other:?}"),
    }
    unnamed.shutdown(support::STEP).await.expect("shutdown");
}
