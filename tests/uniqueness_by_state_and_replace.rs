//! An idempotency key can be unique only among runs in chosen states, and only for a period;
//! on conflict a submit returns the existing run (the default) or, while that run has not
//! started, replaces it (debounce): exactly the newest unstarted spec runs, the replaced ones
//! end `Cancelled` by `replaced`, and a burst of replacing submits is answered in order.
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use runwarden::{
    CancelReason, Dedup, Json, OnConflict, RunSpec, RunStatus, Runwarden, StatusSet, Uniqueness,
};
use support::{Gate, Started, start, within};

/// Submits a run with key `key` under `rule` whose job records its parameter `v` in `ran`.
async fn submit(
    rw: &Runwarden,
    key: &str,
    rule: Uniqueness,
    v: i64,
    ran: &Arc<Mutex<Vec<i64>>>,
) -> Dedup {
    let ran = ran.clone();
    rw.request(
        RunSpec::new("sync").param("v", v),
        move |ctx: runwarden::RunContext| async move {
            let _ = ctx;
            ran.lock().push(v);
            Ok(())
        },
    )
    .idempotency_key(key)
    .unique(rule)
    .send()
    .await
    .expect("send")
}

#[tokio::test(start_paused = true)]
async fn a_key_unique_only_while_queued_admits_a_new_run_once_the_holder_started() {
    let rw = start(Runwarden::builder()).await;
    let mut started = Started::new();
    let gate = Gate::new();
    let rule = Uniqueness::while_in(StatusSet::QUEUED);
    rw.pause_queue("default").await.expect("pause");
    let first = rw
        .request(RunSpec::new("a"), started.held(&gate, 1))
        .idempotency_key("k")
        .unique(rule)
        .send()
        .await
        .expect("send");
    let Dedup::New(a) = first else {
        panic!("the first run holds the key: {first:?}")
    };
    let again = rw
        .request(RunSpec::new("b"), started.held(&gate, 2))
        .idempotency_key("k")
        .unique(rule)
        .send()
        .await
        .expect("send");
    assert_eq!(again, Dedup::Existing(a), "the holder is queued");
    rw.resume_queue("default").await.expect("resume");
    assert_eq!(within("the holder to start", started.expect(1)).await, [1]);
    let later = rw
        .request(RunSpec::new("c"), started.held(&gate, 3))
        .idempotency_key("k")
        .unique(rule)
        .send()
        .await
        .expect("send");
    assert!(
        matches!(later, Dedup::New(c) if c != a),
        "a running holder does not conflict: {later:?}"
    );
    gate.open();
    for id in [a, later.run_id()] {
        assert_eq!(
            rw.wait(id).await.expect("wait").status,
            RunStatus::Completed
        );
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_holds_the_key_past_the_holders_end_and_states_can_exclude_finished_runs() {
    let rw = start(Runwarden::builder().dedup_window(Duration::ZERO)).await;
    let ran = Arc::new(Mutex::new(Vec::new()));
    let hourly = Uniqueness::while_in(StatusSet::ALL).within(Duration::from_secs(3600));
    let first = submit(&rw, "report", hourly, 1, &ran).await;
    let done = rw.wait(first.run_id()).await.expect("wait");
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(
        submit(&rw, "report", hourly, 2, &ran).await,
        Dedup::Existing(first.run_id()),
        "a finished run created within the period holds its key"
    );
    // Without a period, a finished run holds its key for the dedup window only (zero here).
    let plain = submit(&rw, "report", Uniqueness::default(), 3, &ran).await;
    assert!(matches!(plain, Dedup::New(_)), "{plain:?}");
    rw.wait(plain.run_id()).await.expect("wait");
    let active_only = submit(
        &rw,
        "report",
        Uniqueness::while_in(StatusSet::ACTIVE),
        4,
        &ran,
    )
    .await;
    assert!(matches!(active_only, Dedup::New(_)), "{active_only:?}");
    rw.wait(active_only.run_id()).await.expect("wait");
    assert_eq!(*ran.lock(), [1, 3, 4]);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn replace_keeps_exactly_the_newest_unstarted_spec() {
    let rw = start(Runwarden::builder()).await;
    let ran = Arc::new(Mutex::new(Vec::new()));
    let debounce = Uniqueness::while_in(StatusSet::ACTIVE).on_conflict(OnConflict::Replace);
    rw.pause_queue("default").await.expect("pause");
    let mut answers = Vec::new();
    for v in 1..=100 {
        answers.push(submit(&rw, "search-index", debounce, v, &ran).await);
    }
    assert!(matches!(answers[0], Dedup::New(_)));
    assert!(
        answers[1..].iter().all(|a| matches!(a, Dedup::Replaced(_))),
        "every later submit replaced the one before: {answers:?}"
    );
    for (i, a) in answers[..99].iter().enumerate() {
        let r = rw.wait(a.run_id()).await.expect("wait");
        assert_eq!(r.status, RunStatus::Cancelled, "run {i} was replaced");
        assert_eq!(r.cancelled_by, Some(CancelReason::Replaced));
        assert!(r.started_at.is_none());
    }
    rw.resume_queue("default").await.expect("resume");
    let newest = rw.wait(answers[99].run_id()).await.expect("wait");
    assert_eq!(newest.status, RunStatus::Completed);
    assert_eq!(newest.params.get("v"), Some(&Json::Int(100)));
    assert_eq!(*ran.lock(), [100], "only the newest spec ran");

    // A holder that has started is kept, as with `ReturnExisting`.
    let mut started = Started::new();
    let gate = Gate::new();
    let running = rw
        .request(RunSpec::new("long"), started.held(&gate, 7))
        .idempotency_key("busy")
        .unique(debounce)
        .send()
        .await
        .expect("send");
    within("the holder to start", started.expect(1)).await;
    let late = submit(&rw, "busy", debounce, 8, &ran).await;
    assert_eq!(late, Dedup::Existing(running.run_id()));
    gate.open();
    rw.wait(running.run_id()).await.expect("wait");
    assert_eq!(*ran.lock(), [100], "the late submit's job never ran");
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_replacing_submits_leaves_exactly_one_run() {
    let rw = start(Runwarden::builder()).await;
    let ran = Arc::new(Mutex::new(Vec::new()));
    let debounce = Uniqueness::while_in(StatusSet::ACTIVE).on_conflict(OnConflict::Replace);
    rw.pause_queue("default").await.expect("pause");
    // Submits racing each other: those that arrive while a replace is under way wait their
    // turn, so each replaces the one before it.
    let tasks: Vec<_> = (1..=50)
        .map(|v| {
            let (rw, ran) = (rw.clone(), ran.clone());
            tokio::spawn(async move { submit(&rw, "burst", debounce, v, &ran).await })
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.expect("task"));
    }
    let new = answers
        .iter()
        .filter(|a| matches!(a, Dedup::New(_)))
        .count();
    let replaced = answers
        .iter()
        .filter(|a| matches!(a, Dedup::Replaced(_)))
        .count();
    assert_eq!((new, replaced), (1, 49), "{answers:?}");
    rw.resume_queue("default").await.expect("resume");
    let mut completed = Vec::new();
    for a in &answers {
        let r = within("a run to end", rw.wait(a.run_id()))
            .await
            .expect("wait");
        match r.status {
            RunStatus::Completed => completed.push(r.id),
            RunStatus::Cancelled => assert_eq!(r.cancelled_by, Some(CancelReason::Replaced)),
            other => panic!("a run ended {other}"),
        }
    }
    assert_eq!(completed.len(), 1, "exactly one run survived the burst");
    assert_eq!(ran.lock().len(), 1, "and only its job ran");
    rw.shutdown(support::STEP).await.expect("shutdown");
}
