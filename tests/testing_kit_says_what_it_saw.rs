//! The testing kit's own claims: its assertions fail with the runs that were submitted,
//! nearest first; its probe returns events already seen, and when what it awaits does not
//! come, or the run ends otherwise, it fails saying what it saw instead.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::testing::{Probe, RunMatch, assert_count, assert_one, submitted};
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
