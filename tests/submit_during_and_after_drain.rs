//! Submits racing with a drain are either refused with `ShuttingDown` or accepted and then
//! covered by the drain; after the drain every submit is refused.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{RunSpec, RunStatus, Runwarden, SubmitError};
use support::{start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_run_accepted_around_a_drain_is_covered_by_it() {
    for round in 0..20 {
        let rw = start(Runwarden::builder()).await;
        // Two tasks keep submitting while the drain begins.
        let submitters: Vec<_> = (0..2)
            .map(|t| {
                let rw = rw.clone();
                tokio::spawn(async move {
                    let mut accepted = Vec::new();
                    for i in 0u32.. {
                        match rw.submit(RunSpec::new("racer"), move |_| async move {
                            tokio::task::yield_now().await;
                            if i % 5 == 0 {
                                Err(runwarden::JobError::msg("five"))
                            } else {
                                Ok(())
                            }
                        }) {
                            Ok(id) => accepted.push(id),
                            Err(SubmitError::ShuttingDown) => return accepted,
                            Err(e) => panic!("task {t}: unexpected {e}"),
                        }
                        if i % 16 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    unreachable!()
                })
            })
            .collect();
        tokio::task::yield_now().await;
        let report = within("drain", rw.drain(Duration::from_secs(60)))
            .await
            .expect("drain");
        let mut accepted = Vec::new();
        for s in submitters {
            accepted.extend(within("submitter", s).await.expect("join"));
        }
        // Every accepted run is terminal when the drain returns, without waiting further.
        let mut terminal = 0;
        for id in &accepted {
            let r = rw.status(*id).await.expect("accepted run is recorded");
            assert!(
                r.status.is_terminal(),
                "round {round}: {id} is {}",
                r.status
            );
            terminal += 1;
        }
        assert_eq!(terminal, accepted.len());
        assert_eq!(rw.active_count().await.expect("count"), 0);
        // The report covers at most what was accepted, and exactly what ended after it began.
        assert!(report.completed + report.failed <= accepted.len());
        assert!(!report.deadline_hit);
        let stats = rw.stats().await.expect("stats");
        assert_eq!(
            stats.total(),
            accepted.len(),
            "round {round}: no unaccepted record"
        );
        assert_eq!(
            stats.count(RunStatus::Completed) + stats.count(RunStatus::Failed),
            accepted.len()
        );
        // After the drain: refused, and nothing recorded.
        assert_eq!(
            rw.submit(RunSpec::new("after"), |_| async { Ok(()) }),
            Err(SubmitError::ShuttingDown)
        );
        assert_eq!(rw.stats().await.expect("stats").total(), accepted.len());
        rw.shutdown(support::STEP).await.expect("shutdown");
        // And after shutdown, too.
        assert_eq!(
            rw.submit(RunSpec::new("after"), |_| async { Ok(()) }),
            Err(SubmitError::ShuttingDown)
        );
    }
}

// An actor that submits by message during a drain gets ShuttingDown too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_submit_after_the_drain_is_refused() {
    use runwarden::ractor::call_t;
    use runwarden::{BoxedJob, SupervisorMessage};
    let rw = start(Runwarden::builder()).await;
    rw.drain(Duration::from_secs(1)).await.expect("drain");
    let job = BoxedJob::new(|_| async { Ok(()) });
    let answer = call_t!(
        rw.supervisor().actor(),
        SupervisorMessage::Submit,
        5000,
        Box::new(RunSpec::new("x")),
        job
    )
    .expect("supervisor answers");
    assert_eq!(answer, Err(SubmitError::ShuttingDown));
    rw.shutdown(support::STEP).await.expect("shutdown");
}
