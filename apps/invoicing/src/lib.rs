//! An example actor application that hands its work to runwarden: a billing actor submits
//! one invoice run per checkout, schedules a nightly dunning run, and tells its owner when an
//! invoice run fails for good. Its tests (`tests/`) use only runwarden's testing kit.

use std::time::Duration;

use runwarden::ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use runwarden::{
    BoxedJob, CallError, CronSchedule, JobError, RetryPolicy, RunEvent, RunId, RunSpec, RunStatus,
    ScheduleSpec, SubmitError, SupervisorRef,
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
    /// As `Checkout`, answering with the invoice run's id (or why it was refused).
    Invoice {
        /// The customer's number.
        customer: i64,
        /// Where the answer goes.
        reply: RpcReplyPort<Result<RunId, String>>,
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

/// Submits one customer's invoice run.
async fn invoice(
    runs: &SupervisorRef,
    customer: i64,
) -> Result<Result<RunId, SubmitError>, CallError> {
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
    runs.submit(spec, job).await
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
                invoice(&state.runs, customer).await??;
            }
            BillingMsg::Invoice { customer, reply } => {
                let answer = match invoice(&state.runs, customer).await {
                    Ok(Ok(id)) => Ok(id),
                    Ok(Err(refused)) => Err(refused.to_string()),
                    Err(unanswered) => Err(unanswered.to_string()),
                };
                let _ = reply.send(answer);
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
