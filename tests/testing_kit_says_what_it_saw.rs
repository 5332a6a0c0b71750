//! The testing kit's own claims: its assertions fail with the runs that were submitted,
//! nearest first; its probe returns events already seen, and when what it awaits does not
//! come, or the run ends otherwise, it fails saying what it saw instead.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::testing::{Probe, RunMatch, assert_count, assert_one, release_matching, submitted};
use runwarden::{JobError, RunSpec, RunStatus, Runwarden};
use support::{Gate, start};

/// The message of the panic `fut` ends in.
async fn panic_message(fut: impl Future<Output = ()> + Send + 'static) -> String {
    let err = tokio::spawn(fut).await.expect_err("it panics");
    let payload = err.into_panic();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .expect("a text panic")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_assertion_lists_the_submitted_runs_nearest_first() {
    let rw = start(Runwarden::builder()).await;
    for (label, customer) in [("resize", 0), ("send-invoice", 41), ("send-invoice", 43)] {
        let id = rw
            .submit(RunSpec::new(label).param("customer", customer), |_| async {
                Ok(())
            })
            .expect("submit");
        rw.wait(id).await.expect("wait");
    }
    let registry = rw.registry().clone();
    let want = RunMatch::any().label("send-invoice").param("customer", 42);
    let msg = panic_message(async move {
        assert_one(&registry, &want).await;
    })
    .await;
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(
        lines[0],
        r#"expected 1 run matching label = "send-invoice", params ⊇ {"customer":42}, found 0"#
    );
    assert_eq!(lines[1], "submitted runs, nearest first (3 in all):");
    // The two invoices meet one criterion of two, newest first; the resize meets none.
    assert!(
        lines[2].ends_with(r#"(misses: param "customer" 43, not 42)"#),
        "{msg}"
    );
    assert!(
        lines[3].ends_with(r#"(misses: param "customer" 41, not 42)"#),
        "{msg}"
    );
    assert!(lines[4].contains(r#"label "resize""#), "{msg}");
    assert_eq!(lines.len(), 5, "{msg}");

    // Two match: `assert_count` returns them, newest first; `assert_one` lists them.
    let invoices = RunMatch::any().label("send-invoice");
    let found = assert_count(rw.registry(), &invoices, 2).await;
    assert_eq!(found[0].params["customer"], 43.into());
    assert_eq!(
        submitted(rw.registry(), &invoices)
            .await
            .expect("list")
            .len(),
        2
    );
    let registry = rw.registry().clone();
    let msg = panic_message(async move {
        assert_one(&registry, &invoices).await;
    })
    .await;
    assert!(
        msg.starts_with(r#"expected 1 run matching label = "send-invoice", found 2"#),
        "{msg}"
    );
    assert_eq!(msg.matches("(matches)").count(), 2, "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_returns_what_it_already_saw_and_times_out_saying_what_it_saw() {
    let rw = start(Runwarden::builder()).await;
    let mut probe = Probe::attach(rw.registry())
        .await
        .expect("probe")
        .with_patience(Duration::from_millis(300));
    let done = rw
        .submit(RunSpec::new("quick"), |_| async { Ok(()) })
        .expect("submit");
    rw.wait(done).await.expect("wait");
    // Reached before it was awaited: returned at once.
    let running = probe.await_status(done, RunStatus::Running).await;
    assert_eq!(running.status(), Some(RunStatus::Running));
    assert_eq!(probe.next_event().await.run_id(), done);

    let gate = Gate::new();
    let g = gate.clone();
    let held = rw
        .submit(RunSpec::new("held"), move |_| async move {
            g.wait().await;
            Ok(())
        })
        .expect("submit");
    probe.await_status(held, RunStatus::Running).await;
    let msg = panic_message(async move {
        probe.await_status(held, RunStatus::Completed).await;
    })
    .await;
    assert_eq!(
        msg,
        format!(
            "waited 300ms (real time) for run {held} to reach completed; its events: \
             queued (attempt 1) running (attempt 1); 3 events of other runs"
        )
    );
    gate.open();
    rw.wait(held).await.expect("wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaiting_a_status_fails_at_once_when_the_run_ends_otherwise() {
    let rw = start(Runwarden::builder()).await;
    let mut probe = Probe::attach(rw.registry()).await.expect("probe");
    let id = rw
        .submit(RunSpec::new("doomed"), |_| async {
            Err::<(), _>(JobError::msg("upstream said no"))
        })
        .expect("submit");
    let msg = panic_message(async move {
        probe.await_status(id, RunStatus::Completed).await;
    })
    .await;
    assert!(
        msg.starts_with(&format!(
            "run {id} ended failed while awaiting run {id} to reach completed; its events: \
             queued (attempt 1) running (attempt 1) failed (attempt 1, "
        )),
        "{msg}"
    );
    assert!(msg.contains("upstream said no"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holding_runwarden_records_runs_and_starts_them_only_as_released() {
    // One at a time, so the order the jobs run in is the order they start in.
    let one = runwarden::QueueConfig::limited(1);
    let rw = start(Runwarden::builder().hold_starts().queue("default", one)).await;
    let order = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let mut ids = Vec::new();
    // Priorities 0, 5, 0, 5, 1, 0 under labels a..f.
    for (label, priority) in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", 1), ("f", 0)] {
        let order = order.clone();
        let spec = RunSpec::new(label).priority(priority);
        ids.push(
            rw.submit(spec, move |_| async move {
                order.lock().push(label);
                Ok(())
            })
            .expect("submit"),
        );
    }
    let mut probe = Probe::attach(rw.registry()).await.expect("probe");
    // Accepted and recorded as in production, and nothing starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = RunMatch::any().status(RunStatus::Queued);
    assert_count(rw.registry(), &queued, 6).await;
    assert_eq!(rw.supervisor_status().await.expect("status").hold, Some(0));

    // The next two, as production would choose: the two of priority 5, oldest first.
    rw.release(runwarden::Release::Next(2))
        .await
        .expect("release");
    probe.await_terminal(ids[1]).await;
    probe.await_terminal(ids[3]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_count(rw.registry(), &queued, 4).await;

    // By match: `c` alone, ahead of the others.
    let released = release_matching(rw.registry(), rw.supervisor(), &RunMatch::any().label("c"))
        .await
        .expect("release");
    assert_eq!(released, vec![ids[2]]);
    probe.await_terminal(ids[2]).await;
    // A run that is not waiting is reported, not started twice.
    let missed = rw
        .release(runwarden::Release::Runs(vec![ids[2]]))
        .await
        .expect("release");
    assert_eq!(missed, vec![ids[2]]);

    // All: the rest in production order (e, then a and f by arrival).
    rw.release(runwarden::Release::All).await.expect("release");
    for id in &ids {
        probe.await_terminal(*id).await;
    }
    assert_eq!(*order.lock(), ["b", "d", "c", "e", "a", "f"]);
    assert_eq!(rw.supervisor_status().await.expect("status").hold, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_still_held_when_it_shuts_down_end_cancelled_by_the_drain() {
    let rw = start(Runwarden::builder().hold_starts()).await;
    let ids: Vec<_> = (0..3)
        .map(|_| {
            rw.submit(RunSpec::new("held"), |_| async { Ok(()) })
                .expect("submit")
        })
        .collect();
    let report = rw
        .shutdown(Duration::from_millis(100))
        .await
        .expect("shutdown");
    assert!(report.deadline_hit);
    assert_eq!(report.cancelled_by_drain.len(), 3, "{report:?}");
    for id in ids {
        assert!(report.cancelled_by_drain.contains(&id));
    }
}
