//! Progress reports are coalesced and the latest one is kept on the record; a value returned
//! by a job is stored on the record as JSON.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{Json, Progress, RunSpec, RunStatus, Runwarden};
use support::{start, within};

// A job reporting 200,000 times in a tight loop: the record ends with the last report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_loop_of_progress_reports_ends_with_the_latest() {
    let rw = start(Runwarden::builder()).await;
    const N: u64 = 200_000;
    let id = rw
        .submit(RunSpec::new("busy"), |ctx| async move {
            for i in 1..=N {
                ctx.report(Progress::items(i, N).message(format!("item {i}")));
                if i % 10_000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            Ok(())
        })
        .expect("submit");
    let r = within("run", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Completed);
    let p = r.progress.expect("progress kept");
    assert_eq!(
        (p.done, p.total, p.percent),
        (Some(N), Some(N), Some(100.0))
    );
    assert_eq!(p.message.as_deref(), Some("item 200000"));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[derive(serde::Serialize)]
struct Thumbnail {
    width: u32,
    path: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_value_is_stored_as_json() {
    let rw = start(Runwarden::builder()).await;
    let id = rw
        .submit_job(
            RunSpec::new("thumb"),
            runwarden::returning(|_| async {
                Ok(Thumbnail {
                    width: 128,
                    path: "/t/cat.png".into(),
                })
            }),
        )
        .expect("submit");
    let r = within("run", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Completed);
    let json = serde_json::to_value(r.result.expect("result stored")).expect("json");
    assert_eq!(
        json,
        serde_json::json!({"width": 128, "path": "/t/cat.png"})
    );

    // A failed run stores no result.
    let failed = rw
        .submit_job(
            RunSpec::new("thumb"),
            runwarden::returning(|_| async {
                Err::<Thumbnail, _>(runwarden::JobError::msg("corrupt image"))
            }),
        )
        .expect("submit");
    let r = within("run", rw.wait(failed)).await.expect("wait");
    assert_eq!((r.status, r.result), (RunStatus::Failed, None::<Json>));
    rw.shutdown(support::STEP).await.expect("shutdown");
}
