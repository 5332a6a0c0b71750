//! `list` filters combine (status AND label), runs come newest first, pages are stable, and
//! `total` counts every match, not just the page.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{ListQuery, RunSpec, RunStatus, Runwarden};
use support::{start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_combine_newest_first_with_a_true_total() {
    let rw = start(Runwarden::builder()).await;
    let mut ids = Vec::new();
    for i in 0..30u32 {
        let label = if i % 2 == 0 { "even" } else { "odd" };
        let id = rw
            .submit(RunSpec::new(label), move |_| async move {
                if i % 3 == 0 {
                    Err(runwarden::JobError::msg("third"))
                } else {
                    Ok(())
                }
            })
            .expect("submit");
        ids.push((i, id));
    }
    for (_, id) in &ids {
        within("run", rw.wait(*id)).await.expect("wait");
    }

    let all = rw.list(ListQuery::new().limit(1000)).await.expect("list");
    assert_eq!(all.total, 30);
    let newest_first: Vec<_> = ids.iter().rev().map(|(_, id)| *id).collect();
    assert_eq!(
        all.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        newest_first
    );

    // even AND failed: i in {0, 6, 12, 18, 24}, newest first.
    let q = ListQuery::new().label("even").status(RunStatus::Failed);
    let page = rw.list(q.clone().limit(2)).await.expect("list");
    let want: Vec<_> = ids
        .iter()
        .rev()
        .filter(|(i, _)| i % 2 == 0 && i % 3 == 0)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(page.total, 5);
    assert_eq!(
        page.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        want[..2]
    );
    let page2 = rw.list(q.clone().limit(2).offset(2)).await.expect("list");
    assert_eq!(
        page2.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        want[2..4]
    );
    let past_end = rw.list(q.offset(10)).await.expect("list");
    assert_eq!((past_end.total, past_end.runs.len()), (5, 0));

    let running = rw
        .list(ListQuery::new().status(RunStatus::Running))
        .await
        .expect("list");
    assert_eq!((running.total, running.runs.len()), (0, 0));
    rw.shutdown(support::STEP).await.expect("shutdown");
}
