//! Under load — 10,000 concurrent runs that complete, fail, panic or are cancelled — every run
//! ends with exactly one terminal status and the counts are exact.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{ErrorKind, ListQuery, RunSpec, RunStatus, Runwarden};
use support::{Gate, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_mixed_runs_all_end_with_exact_counts() {
    const N: u64 = 10_000;
    let rw = start(Runwarden::builder()).await;
    // Every job waits on one gate, so all 10,000 are in flight at once before any ends.
    let gate = Gate::new();
    let mut ids = Vec::new();
    for i in 1..=N {
        let g = gate.clone();
        let id = rw
            .submit(
                RunSpec::new(format!("kind-{}", i % 4)),
                move |ctx| async move {
                    if i % 13 == 0 {
                        ctx.cancelled().await;
                        return Ok(());
                    }
                    g.wait().await;
                    match i {
                        i if i % 11 == 0 => panic!("panic {i}"),
                        i if i % 7 == 0 => Err(runwarden::JobError::msg(format!("error {i}"))),
                        _ => Ok(()),
                    }
                },
            )
            .expect("submit");
        ids.push((i, id));
    }
    for (i, id) in &ids {
        if i % 13 == 0 {
            rw.cancel(*id).await.expect("cancel");
        }
    }
    gate.open();

    let (mut completed, mut failed, mut cancelled) = (0, 0, 0);
    for (i, id) in &ids {
        let r = within("a run to end", rw.wait(*id)).await.expect("wait");
        let want = match i {
            i if i % 13 == 0 => RunStatus::Cancelled,
            i if i % 11 == 0 || i % 7 == 0 => RunStatus::Failed,
            _ => RunStatus::Completed,
        };
        assert_eq!(r.status, want, "run {i}");
        if i % 13 != 0 && i % 11 == 0 {
            assert_eq!(r.error.as_ref().map(|e| e.kind), Some(ErrorKind::Panicked));
        }
        match r.status {
            RunStatus::Completed => completed += 1,
            RunStatus::Failed => failed += 1,
            RunStatus::Cancelled => cancelled += 1,
            s => panic!("run {i} not terminal: {s}"),
        }
    }
    let want_cancelled = (1..=N).filter(|i| i % 13 == 0).count();
    let want_failed = (1..=N)
        .filter(|i| i % 13 != 0 && (i % 11 == 0 || i % 7 == 0))
        .count();
    assert_eq!((cancelled, failed), (want_cancelled, want_failed));
    assert_eq!(completed + failed + cancelled, N as usize);

    // The registry agrees: nothing active, nothing refused, totals exact.
    let stats = rw.stats().await.expect("stats");
    assert_eq!(stats.count(RunStatus::Completed), completed);
    assert_eq!(stats.count(RunStatus::Failed), failed);
    assert_eq!(stats.count(RunStatus::Cancelled), cancelled);
    assert_eq!(stats.total(), N as usize);
    assert_eq!(stats.refused, 0);
    assert_eq!(rw.active_count().await.expect("count"), 0);
    let page = rw
        .list(ListQuery::new().status(RunStatus::Cancelled).limit(5))
        .await
        .expect("list");
    assert_eq!((page.total, page.runs.len()), (want_cancelled, 5));
    rw.shutdown(support::STEP).await.expect("shutdown");
}
