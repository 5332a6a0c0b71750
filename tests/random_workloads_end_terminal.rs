//! Property: any interleaving of submits, cancels, failures, panics, stubborn jobs and a drain
//! leaves every accepted run with exactly one terminal status, consistent with every cancel
//! answer and with the drain report.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use proptest::prelude::*;
use runwarden::{CancelError, Error, ErrorKind, RunId, RunSpec, RunStatus, Runwarden};

#[derive(Debug, Clone, Copy)]
enum Behaviour {
    Complete,
    Fail,
    Panic,
    SleepMs(u64),
    /// Stops when cancelled.
    UntilCancelled,
    /// Ignores cancel; only the grace period ends it.
    Stubborn,
}

#[derive(Debug, Clone)]
enum Op {
    Submit(Behaviour),
    Cancel(usize),
    Yield,
}

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        Just(Behaviour::Complete),
        Just(Behaviour::Fail),
        Just(Behaviour::Panic),
        (0u64..50).prop_map(Behaviour::SleepMs),
        Just(Behaviour::UntilCancelled),
        Just(Behaviour::Stubborn),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => behaviour().prop_map(Op::Submit),
        2 => any::<usize>().prop_map(Op::Cancel),
        1 => Just(Op::Yield),
    ]
}

async fn run_case(limit: usize, ops: Vec<Op>, deadline_ms: u64) -> Result<(), TestCaseError> {
    let rw = support::start(
        Runwarden::builder()
            .max_concurrent(limit)
            .cancel_grace(Duration::from_millis(20)),
    )
    .await;
    let mut runs: Vec<(RunId, Behaviour)> = Vec::new();
    let mut answers: Vec<(RunId, Result<runwarden::CancelOutcome, Error>)> = Vec::new();
    for op in ops {
        match op {
            Op::Submit(b) => {
                let id = rw
                    .submit(RunSpec::new(format!("{b:?}")), move |ctx| async move {
                        match b {
                            Behaviour::Complete => Ok(()),
                            Behaviour::Fail => Err(runwarden::JobError::msg("failed")),
                            Behaviour::Panic => panic!("panicked"),
                            Behaviour::SleepMs(ms) => {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                                Ok(())
                            }
                            Behaviour::UntilCancelled => {
                                ctx.cancelled().await;
                                Ok(())
                            }
                            Behaviour::Stubborn => std::future::pending().await,
                        }
                    })
                    .expect("submit before drain");
                runs.push((id, b));
            }
            Op::Cancel(i) if !runs.is_empty() => {
                let id = runs[i % runs.len()].0;
                answers.push((id, rw.cancel(id).await));
            }
            Op::Cancel(_) => {}
            Op::Yield => tokio::task::yield_now().await,
        }
    }
    let report = support::within("drain", rw.drain(Duration::from_millis(deadline_ms)))
        .await
        .expect("drain");

    let mut counts = [0usize; RunStatus::COUNT];
    for (id, b) in &runs {
        let r = rw.status(*id).await.expect("accepted run is recorded");
        prop_assert!(r.status.is_terminal(), "{id} {b:?} left {}", r.status);
        counts[r.status.index()] += 1;
        let cancelled_ok = answers.iter().any(|(a, ans)| a == id && ans.is_ok());
        let by_drain = report.cancelled_by_drain.contains(id);
        prop_assert!(!(cancelled_ok && by_drain), "{} cancelled twice", id);
        let expected = match b {
            _ if cancelled_ok || by_drain => RunStatus::Cancelled,
            Behaviour::Fail | Behaviour::Panic => RunStatus::Failed,
            Behaviour::Complete | Behaviour::SleepMs(_) => RunStatus::Completed,
            Behaviour::Stubborn | Behaviour::UntilCancelled => {
                return Err(TestCaseError::fail(format!(
                    "{id} {b:?} ended {} by itself",
                    r.status
                )));
            }
        };
        prop_assert_eq!(r.status, expected, "{} {:?}", id, b);
        if r.status == RunStatus::Failed {
            let kind = r.error.as_ref().map(|e| e.kind);
            let want = if matches!(b, Behaviour::Panic) {
                ErrorKind::Panicked
            } else {
                ErrorKind::Returned
            };
            prop_assert_eq!(kind, Some(want));
        }
    }
    // Every cancel answer matches the final status.
    for (id, answer) in &answers {
        let status = rw.status(*id).await.expect("status").status;
        match answer {
            Ok(_) => prop_assert_eq!(status, RunStatus::Cancelled),
            Err(Error::Cancel(CancelError::AlreadyFinished { status: s, .. })) => {
                prop_assert_eq!(status, *s)
            }
            other => prop_assert!(false, "unexpected cancel answer {:?}", other),
        }
    }
    let stats = rw.stats().await.expect("stats");
    prop_assert_eq!(stats.by_status, counts);
    prop_assert_eq!(stats.total(), runs.len());
    prop_assert_eq!(stats.refused, 0);
    prop_assert!(report.completed <= counts[RunStatus::Completed.index()]);
    prop_assert!(report.cancelled_by_drain.len() <= report.cancelled);
    rw.shutdown(support::STEP).await.expect("shutdown");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_accepted_run_ends_with_one_consistent_terminal_status(
        limit in 1usize..5,
        ops in prop::collection::vec(op(), 0..40),
        deadline_ms in 0u64..60,
    ) {
        // A paused clock makes sleeps, grace periods and deadlines deterministic and instant.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime");
        rt.block_on(run_case(limit, ops, deadline_ms))?;
    }
}
