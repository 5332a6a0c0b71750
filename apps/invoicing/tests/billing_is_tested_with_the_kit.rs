//! The billing application's tests, written with runwarden's testing kit only: what it
//! submitted (matched by a subset of the parameters), a retry at its exact backoff on the
//! paused clock, the nightly cron schedule firing in its time zone, the actor reacting to
//! a failed run's event, inline mode, and a mail outage injected as a fault.

use std::time::Duration;

use invoicing::{Billing, BillingMsg, BillingState, INVOICE_BACKOFF, Notice};
use runwarden::ractor::rpc::CallResult;
use runwarden::ractor::{Actor, ActorRef};
use runwarden::testing::{
    JobFault, Probe, RunMatch, assert_count, assert_none, assert_one, inject,
};
use runwarden::{
    QueueConfig, RunEvent, RunId, RunStatus, Runwarden, RunwardenBuilder, Timestamp, WallClock,
};
use tokio::sync::mpsc;

struct App {
    rw: Runwarden,
    probe: Probe,
    billing: ActorRef<BillingMsg>,
    notices: mpsc::UnboundedReceiver<Notice>,
}

/// Runwarden with a wall clock starting at `now`, a probe, and the billing actor.
async fn app(now: &str) -> App {
    app_with(Runwarden::builder(), now).await
}

/// As `app`, from `builder` (a test mode, say).
async fn app_with(builder: RunwardenBuilder, now: &str) -> App {
    let clock = WallClock::StartingAt(now.parse::<Timestamp>().expect("a time"));
    let rw = builder
        .queue("billing", QueueConfig::default())
        .wall_clock(clock)
        .start()
        .await
        .expect("start");
    let probe = Probe::attach(rw.registry()).await.expect("probe");
    let (tx, notices) = mpsc::unbounded_channel();
    let state = BillingState {
        runs: rw.supervisor().clone(),
        notices: tx,
    };
    let (billing, _) = Actor::spawn(None, Billing, state).await.expect("billing");
    App {
        rw,
        probe,
        billing,
        notices,
    }
}

#[tokio::test(start_paused = true)]
async fn a_checkout_submits_exactly_one_invoice_for_its_customer() {
    let mut app = app("2026-12-02T10:00:00Z").await;
    app.billing
        .cast(BillingMsg::Checkout { customer: 42 })
        .expect("cast");
    let first = app
        .probe
        .await_event("an invoice run", |e| e.label() == "send-invoice")
        .await;
    let invoice = assert_one(
        app.rw.registry(),
        &RunMatch::any()
            .label("send-invoice")
            .queue("billing")
            .param("customer", 42),
    )
    .await;
    assert_eq!(invoice.id, first.run_id());
    assert_none(app.rw.registry(), &RunMatch::any().param("customer", 41)).await;
    let end = app.probe.await_terminal(invoice.id).await;
    assert_eq!(end.status(), Some(RunStatus::Completed));
}

#[tokio::test(start_paused = true)]
async fn a_failing_invoice_is_retried_after_exactly_its_backoff_and_the_actor_is_told() {
    let mut app = app("2026-12-02T10:00:00Z").await;
    app.billing
        .cast(BillingMsg::Checkout { customer: -7 })
        .expect("cast");
    let run = app
        .probe
        .await_event("the invoice run", |e| e.label() == "send-invoice")
        .await
        .run_id();
    let retry = app
        .probe
        .await_event("the retry", |e| {
            e.run_id() == run
                && matches!(
                    e,
                    RunEvent::Status {
                        status: RunStatus::Queued,
                        attempt: 2,
                        ..
                    }
                )
        })
        .await;
    let RunEvent::Status { error, .. } = retry else {
        panic!("a status event")
    };
    assert_eq!(
        error.expect("the first attempt's error").message,
        "no customer -7"
    );
    let retried_at = tokio::time::Instant::now();
    app.probe.await_status(run, RunStatus::Failed).await;
    assert_eq!(retried_at.elapsed(), INVOICE_BACKOFF);
    assert_eq!(app.notices.recv().await, Some(Notice::InvoiceFailed(run)));
    assert_count(
        app.rw.registry(),
        &RunMatch::any()
            .label("send-invoice")
            .status(RunStatus::Failed),
        1,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn dunning_runs_at_two_in_the_morning_berlin_time() {
    // 00:30 UTC is 01:30 in Berlin in winter: the first dunning run is due at 01:00 UTC.
    let mut app = app("2026-12-02T00:30:00Z").await;
    let t0 = tokio::time::Instant::now();
    let run = app
        .probe
        .await_event("a dunning run", |e| e.label() == "dunning")
        .await
        .run_id();
    assert_eq!(t0.elapsed(), Duration::from_secs(30 * 60));
    app.probe.await_status(run, RunStatus::Completed).await;
    let next = app.rw.schedules().await.expect("schedules");
    let tomorrow: Timestamp = "2026-12-03T01:00:00Z".parse().expect("a time");
    assert_eq!(next[0].next_fire_at, Some(tomorrow));
    assert_count(app.rw.registry(), &RunMatch::any().label("dunning"), 1).await;
}

/// Asks the billing actor for an invoice, and returns its answer.
async fn invoice(billing: &ActorRef<BillingMsg>, customer: i64) -> Result<RunId, String> {
    let asked = billing
        .call(|reply| BillingMsg::Invoice { customer, reply }, None)
        .await;
    match asked.expect("billing is up") {
        CallResult::Success(answer) => answer,
        other => panic!("billing did not answer: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn in_inline_mode_the_invoice_has_run_when_billing_answers() {
    let app = app_with(Runwarden::builder().inline(), "2026-12-02T10:00:00Z").await;
    let id = invoice(&app.billing, 42).await.expect("accepted");
    // No waiting: the run ended before billing's submit returned.
    let sent = RunMatch::any()
        .label("send-invoice")
        .param("customer", 42)
        .status(RunStatus::Completed);
    assert_eq!(assert_one(app.rw.registry(), &sent).await.id, id);

    // A failing invoice's retry happens inside the same submit, at its backoff.
    let t0 = tokio::time::Instant::now();
    let id = invoice(&app.billing, -3).await.expect("accepted");
    assert_eq!(t0.elapsed(), INVOICE_BACKOFF);
    let failed = RunMatch::any()
        .param("customer", -3)
        .status(RunStatus::Failed);
    let record = assert_one(app.rw.registry(), &failed).await;
    assert_eq!((record.id, record.attempt), (id, 2));
}

#[tokio::test(start_paused = true)]
async fn a_mail_outage_fails_the_invoice_and_billing_tells_its_owner() {
    let mut app = app("2026-12-02T10:00:00Z").await;
    // Both attempts of the next invoice hit the outage.
    for _ in 0..2 {
        let outage = JobFault::Fail("smtp: connection refused".to_owned());
        inject(app.rw.supervisor(), "send-invoice", outage)
            .await
            .expect("injected");
    }
    app.billing
        .cast(BillingMsg::Checkout { customer: 42 })
        .expect("cast");
    let Some(Notice::InvoiceFailed(id)) = app.notices.recv().await else {
        panic!("billing stopped")
    };
    let record = assert_one(
        app.rw.registry(),
        &RunMatch::any()
            .param("customer", 42)
            .status(RunStatus::Failed),
    )
    .await;
    assert_eq!(record.id, id);
    // The first attempt's error is kept with the retry, the last one is the run's.
    let first = record.attempt_errors.iter().map(|e| e.message.as_str());
    assert_eq!(first.collect::<Vec<_>>(), ["smtp: connection refused"]);
    let last = record.error.expect("the run's error");
    assert_eq!(last.message, "smtp: connection refused");
    // The outage is over: the next checkout's invoice goes out.
    app.billing
        .cast(BillingMsg::Checkout { customer: 43 })
        .expect("cast");
    let next = app
        .probe
        .await_event("the next invoice", |e| {
            e.label() == "send-invoice" && e.run_id() != id
        })
        .await
        .run_id();
    let end = app.probe.await_terminal(next).await;
    assert_eq!(end.status(), Some(RunStatus::Completed));
}
