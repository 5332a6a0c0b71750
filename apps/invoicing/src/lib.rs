//! An example actor application that hands its work to runwarden: a billing actor submits
//! one invoice run per checkout, schedules a nightly dunning run, and tells its owner when an
//! invoice run fails for good. Its tests (`tests/`) use only runwarden's testing kit.

use std::time::Duration;

use runwarden::ractor::{Actor, ActorProcessingErr, ActorRef};
use runwarden::{
    BoxedJob, CronSchedule, JobError, RetryPolicy, RunEvent, RunId, RunSpec, RunStatus,
    ScheduleSpec, SupervisorRef,
};
use tokio::sync::mpsc;

/// The backoff between an invoice's attempts.
pub const INVOICE_BACKOFF: Duration = Duration::from_secs(30);

/// The billing actor.
#[derive(Debug)]
pub struct Billing;

/// What the billing actor handles.
#[derive(Debug)]
pub enum BillingMsg {
    /// A customer checked out: send them an invoice.
    Checkout {
        /// The customer's number; a negative one does not exist, and its invoice fails.
        customer: i64,
    },
    /// A run event from runwarden.
    Event(RunEvent),
}

/// What the billing actor tells its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An invoice run failed for good.
    InvoiceFailed(RunId),
}

/// The billing actor's start-up input and state.
#[derive(Debug)]
pub struct BillingState {
    /// Where runs go.
    pub runs: SupervisorRef,
    /// Where notices go.
    pub notices: mpsc::UnboundedSender<Notice>,
}

impl Actor for Billing {
    type Msg = BillingMsg;
    type State = BillingState;
    type Arguments = BillingState;

    async fn pre_start(
        &self,
        me: ActorRef<BillingMsg>,
        state: BillingState,
    ) -> Result<BillingState, ActorProcessingErr> {
        let port = state.runs.registry().await?.event_port().await?;
        port.subscribe(me, |e| Some(BillingMsg::Event(e)));
        // Dunning letters at 02:00 Berlin time, every night.
        let nightly = CronSchedule::new("0 2 * * *", "Europe/Berlin")?;
        let job = BoxedJob::repeatable(|_ctx| async { Ok(()) });
        state
            .runs
            .schedule(ScheduleSpec::cron(RunSpec::new("dunning"), nightly), job)
            .await??;
        Ok(state)
    }

    async fn handle(
        &self,
        _me: ActorRef<BillingMsg>,
        msg: BillingMsg,
        state: &mut BillingState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            BillingMsg::Checkout { customer } => {
                let retry = RetryPolicy::attempts(2)
                    .backoff(INVOICE_BACKOFF, INVOICE_BACKOFF)
                    .jitter(0.0);
                let spec = RunSpec::new("send-invoice")
                    .param("customer", customer)
                    .queue("billing")
                    .retry(retry);
                let job = BoxedJob::repeatable(move |_ctx| async move {
                    if customer < 0 {
                        Err(JobError::msg(format!("no customer {customer}")))
                    } else {
                        Ok(())
                    }
                });
                state.runs.submit(spec, job).await??;
            }
            BillingMsg::Event(e)
                if e.label() == "send-invoice" && e.status() == Some(RunStatus::Failed) =>
            {
                let _ = state.notices.send(Notice::InvoiceFailed(e.run_id()));
            }
            BillingMsg::Event(_) => {}
        }
        Ok(())
    }
}
