//! Read-your-writes: a status query made right after `submit` returns never says "not found".
#[path = "support/helpers.rs"]
mod support;

use runwarden::{RunSpec, Runwarden};
use support::start;

// Thousands of submits, each followed at once by a status query, from several tasks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_right_after_submit_always_finds_the_run() {
    let rw = start(Runwarden::builder()).await;
    let mut tasks = Vec::new();
    for t in 0..4 {
        let rw = rw.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..500 {
                let id = rw
                    .submit(RunSpec::new(format!("t{t}")), move |_| async move {
                        if i % 2 == 0 {
                            Ok(())
                        } else {
                            Err(runwarden::JobError::msg("odd"))
                        }
                    })
                    .expect("submit");
                let record = rw.status(id).await.expect("run found right after submit");
                assert_eq!(record.id, id);
            }
        }));
    }
    for t in tasks {
        support::within("submitters", t).await.expect("task");
    }
    rw.drain(support::STEP).await.expect("drain");
    let stats = rw.stats().await.expect("stats");
    assert_eq!(stats.total(), 2000);
    assert_eq!(stats.count(runwarden::RunStatus::Completed), 1000);
    assert_eq!(stats.count(runwarden::RunStatus::Failed), 1000);
    rw.shutdown(support::STEP).await.expect("shutdown");
}
