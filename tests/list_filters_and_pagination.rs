//! `list` filters combine (status AND label AND the start of an id), runs come newest first,
//! pages are stable, and `total` counts every match, not just the page: in memory and from the
//! SQLite store alike.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{ListQuery, RunSpec, RunStatus, Runwarden};
use support::{start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_combine_newest_first_with_a_true_total() {
    let (_dir, memory, durable) = memory_and_store("list-combine").await;
    for rw in [&memory, &durable] {
        combined_filters(rw).await;
    }
    for rw in [memory, durable] {
        rw.shutdown(support::STEP).await.expect("shutdown");
    }
}

/// Label and status together, paged; a finished status alone; the true totals; and the start
/// of an id with both.
async fn combined_filters(rw: &Runwarden) {
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
    let past_end = rw.list(q.clone().offset(10)).await.expect("list");
    assert_eq!((past_end.total, past_end.runs.len()), (5, 0));
    // With the start of an id too (ids made in the same millisecond share 13 characters).
    let prefix = want[1].to_string()[..13].to_owned();
    let with_prefix: Vec<_> = want
        .iter()
        .filter(|id| id.to_string().starts_with(&prefix))
        .copied()
        .collect();
    let page = rw
        .list(q.id_prefix(prefix.to_uppercase()).limit(100))
        .await
        .expect("list");
    assert_eq!(page.total, with_prefix.len());
    assert_eq!(
        page.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        with_prefix
    );

    // A finished status alone: every third run failed, newest first, paged, the true total.
    let failed: Vec<_> = ids
        .iter()
        .rev()
        .filter(|(i, _)| i % 3 == 0)
        .map(|(_, id)| *id)
        .collect();
    let page = rw
        .list(
            ListQuery::new()
                .status(RunStatus::Failed)
                .limit(3)
                .offset(2),
        )
        .await
        .expect("list");
    assert_eq!(page.total, 10);
    assert_eq!(
        page.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
        failed[2..5]
    );
    let completed = rw
        .list(ListQuery::new().status(RunStatus::Completed).limit(1000))
        .await
        .expect("list");
    assert_eq!((completed.total, completed.runs.len()), (20, 20));

    let running = rw
        .list(ListQuery::new().status(RunStatus::Running))
        .await
        .expect("list");
    assert_eq!((running.total, running.runs.len()), (0, 0));
}

/// A runwarden in memory, and one with a SQLite store whose memory window of 5 sends
/// listings to the store.
async fn memory_and_store(name: &str) -> (support::TempDir, Runwarden, Runwarden) {
    let dir = support::TempDir::new(name);
    let store = runwarden::SqliteStore::open(dir.0.join("runs.db")).expect("open");
    let retention = runwarden::Retention {
        memory_window: 5,
        ..runwarden::Retention::default()
    };
    let durable = start(Runwarden::builder().store(store).retention(retention)).await;
    (dir, start(Runwarden::builder()).await, durable)
}

/// The filters an operator searches with: by name, by the start of an id, by when runs ended.
/// The same answers from memory and from the SQLite store (a memory window of 5 sends the
/// listing to the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_id_prefix_and_finished_range_filter_in_memory_and_in_the_store() {
    let (_dir, memory, durable) = memory_and_store("list-store").await;
    for rw in [&memory, &durable] {
        let mut ids = Vec::new();
        for i in 0..24u32 {
            let spec = RunSpec::new("report").name(format!("report-{}", i % 3));
            ids.push(rw.submit(spec, |_| async { Ok(()) }).expect("submit"));
        }
        let mut records = Vec::new();
        for id in &ids {
            records.push(within("run", rw.wait(*id)).await.expect("wait"));
        }
        let active = rw
            .submit(RunSpec::new("report").name("report-0"), |ctx| async move {
                ctx.cancelled().await;
                Ok(())
            })
            .expect("submit");

        // By name: the active run matches too.
        let page = rw
            .list(ListQuery::new().name("report-0").limit(100))
            .await
            .expect("list");
        assert_eq!(page.total, 8 + 1);
        assert!(page.runs.iter().all(|r| r.name == "report-0"));

        // By the start of the id, in any case: exactly the runs whose id starts so (ids made
        // in the same millisecond share their first 13 characters; the last ones are random).
        let target = records[7].id.to_string();
        for len in [13, 30] {
            let prefix = target[..len].to_uppercase();
            let mut want: Vec<_> = records
                .iter()
                .map(|r| r.id)
                .chain([active])
                .filter(|id| id.to_string().starts_with(&target[..len]))
                .collect();
            want.sort();
            want.reverse();
            let page = rw
                .list(ListQuery::new().id_prefix(prefix.clone()).limit(100))
                .await
                .expect("list");
            assert_eq!(
                page.runs.iter().map(|r| r.id).collect::<Vec<_>>(),
                want,
                "{prefix}"
            );
            assert!(page.runs.iter().any(|r| r.id == records[7].id));
        }
        let page = rw
            .list(ListQuery::new().id_prefix(target.clone()))
            .await
            .expect("list");
        assert_eq!(page.total, 1);
        let none = rw
            .list(ListQuery::new().id_prefix(format!("{target}0")))
            .await
            .expect("list");
        assert_eq!(none.total, 0);

        // By when they ended: [10th end, 20th end) holds the runs that ended in it; an active
        // run never matches a finished range.
        let mut ends: Vec<_> = records
            .iter()
            .map(|r| r.finished_at.expect("ended"))
            .collect();
        ends.sort();
        let (from, to) = (ends[10], ends[20]);
        let want = ends.iter().filter(|t| **t >= from && **t < to).count();
        let page = rw
            .list(ListQuery::new().finished(Some(from), Some(to)).limit(100))
            .await
            .expect("list");
        assert_eq!(page.total, want);
        assert!(page.runs.iter().all(|r| {
            let f = r.finished_at.expect("finished");
            f >= from && f < to
        }));
        let open_ended = rw
            .list(ListQuery::new().finished(Some(ends[0]), None).limit(100))
            .await
            .expect("list");
        assert_eq!(open_ended.total, 24);
        assert!(open_ended.runs.iter().all(|r| r.id != active));
        rw.cancel(active).await.expect("cancel");
        within("cancel", rw.wait(active)).await.expect("wait");
    }
}

/// A cursor pages through a listing that grows meanwhile without skipping or repeating a run,
/// in memory and from the store; `total` counts every match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_pages_without_gaps_while_runs_arrive() {
    let (_dir, memory, durable) = memory_and_store("list-cursor").await;
    for rw in [&memory, &durable] {
        let mut ids = Vec::new();
        for _ in 0..23 {
            let id = rw
                .submit(RunSpec::new("page"), |_| async { Ok(()) })
                .expect("submit");
            ids.push(id);
        }
        for id in &ids {
            within("run", rw.wait(*id)).await.expect("wait");
        }
        let q = ListQuery::new().status(RunStatus::Completed).label("page");
        let mut seen = Vec::new();
        let mut page = rw.list(q.clone().limit(5)).await.expect("list");
        loop {
            assert!(page.total >= 23);
            seen.extend(page.runs.iter().map(|r| r.id));
            let Some(last) = page.runs.last().map(|r| r.id) else {
                break;
            };
            // New runs arrive between pages: the cursor is not shifted by them.
            let newer = rw
                .submit(RunSpec::new("page"), |_| async { Ok(()) })
                .expect("submit");
            within("run", rw.wait(newer)).await.expect("wait");
            page = rw.list(q.clone().limit(5).after(last)).await.expect("list");
        }
        let want: Vec<_> = ids.iter().rev().copied().collect();
        assert_eq!(seen, want, "every run once, newest first");
    }
}

/// A cursor over an active status still pages on when the cursor's run has left that status
/// (here: cancelled) between the pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_over_queued_runs_survives_its_run_leaving_the_queue() {
    let rw = start(Runwarden::builder().queue("one", runwarden::QueueConfig::limited(1))).await;
    let gate = support::Gate::new();
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut ids = Vec::new();
    for _ in 0..8 {
        let (g, started) = (gate.clone(), started_tx.clone());
        let spec = RunSpec::new("held").queue("one");
        ids.push(
            rw.submit(spec, move |_| async move {
                let _ = started.send(());
                g.wait().await;
                Ok(())
            })
            .expect("submit"),
        );
    }
    // The first runs (its worker told the registry before the job began); the other seven
    // wait, newest first: ids[7] .. ids[1].
    within("the first run to start", started_rx.recv())
        .await
        .expect("started");
    let q = ListQuery::new().status(RunStatus::Queued).limit(3);
    let first = rw.list(q.clone()).await.expect("list");
    assert_eq!(first.total, 7);
    let got: Vec<_> = first.runs.iter().map(|r| r.id).collect();
    assert_eq!(got, [ids[7], ids[6], ids[5]]);
    rw.cancel(ids[5]).await.expect("cancel");
    within("cancel", rw.wait(ids[5])).await.expect("wait");
    let next = rw.list(q.clone().after(ids[5])).await.expect("list");
    let got: Vec<_> = next.runs.iter().map(|r| r.id).collect();
    assert_eq!(got, [ids[4], ids[3], ids[2]]);
    assert_eq!(next.total, 6);
    gate.open();
    for id in &ids {
        within("end", rw.wait(*id)).await.expect("wait");
    }
}
