//! A finished run that an active run depends on outlives retention and the memory window, so
//! a registry restarted from its store still judges the waiting run by it: with retention
//! that keeps no finished run at all (and one in memory), a step waiting on A (completed) and
//! B (still running) is released when B completes, and reads A's outcome.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{Dependency, ListQuery, Retention, RunSpec, RunStatus, Runwarden, SqliteStore};
use support::{Gate, TempDir, within};

/// Waits for a run that retention may forget as soon as it ends (these tests keep no finished
/// run that nothing needs): its record, or `NotFound` once it has been pruned.
async fn ended(rw: &Runwarden, id: runwarden::RunId) {
    match within("a run to end", rw.wait(id)).await {
        Ok(r) => assert!(r.status.is_terminal()),
        Err(runwarden::Error::NotFound(_)) => {}
        Err(e) => panic!("wait: {e}"),
    }
}

/// A durable run that completes once `gate` opens.
async fn held(rw: &Runwarden, label: &str, gate: &Gate) -> runwarden::RunId {
    let open = gate.clone();
    rw.request(RunSpec::new(label), move |_ctx| async move {
        open.wait().await;
        Ok(())
    })
    .durable()
    .send()
    .await
    .expect("submit")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_of_a_waiting_run_is_never_pruned() {
    let dir = TempDir::new("deps-retention");
    let store = SqliteStore::open(dir.0.join("runs.db")).expect("open");
    let rw = support::start(Runwarden::builder().store(store).retention(Retention {
        max_finished: 0,
        memory_window: 1,
        ..Retention::default()
    }))
    .await;

    // A is held until D names it (retention keeps no finished run that nothing needs).
    let a_gate = Gate::new();
    let a = held(&rw, "a", &a_gate).await;
    let gate = Gate::new();
    let b = held(&rw, "b", &gate).await;
    // D says what it read of its dependencies (its own record may be pruned once it ends).
    let (read_tx, read_rx) = tokio::sync::oneshot::channel::<String>();
    let d = rw
        .request(RunSpec::new("d"), |ctx: runwarden::RunContext| async move {
            let names: Vec<String> = ctx
                .dependencies()
                .iter()
                .map(|o| format!("{}:{}", o.run, o.status))
                .collect();
            let _ = read_tx.send(names.join(","));
            Ok(())
        })
        .after(Dependency::on(a))
        .after(Dependency::on(b))
        .durable()
        .send()
        .await
        .expect("d");
    a_gate.open();
    within("a", rw.wait(a)).await.expect("wait");

    // Retention would keep no finished run; a pass runs now, and more runs end meanwhile.
    for i in 0..20 {
        let id = rw
            .submit(RunSpec::new(format!("filler-{i}")), |_ctx| async { Ok(()) })
            .expect("filler");
        ended(&rw, id).await;
    }
    rw.prune_now().await.expect("prune");
    within("retention to prune the fillers", async {
        loop {
            let held = rw.stats().await.expect("stats").count(RunStatus::Completed);
            if held == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(
        rw.status(a).await.expect("a is kept").status,
        RunStatus::Completed
    );

    // The registry restarts from its store, then B completes: D is released with A's outcome.
    let _ = rw
        .registry()
        .actor()
        .cast(runwarden::actors::faults::registry_panic("restart"));
    // Answered after the restart: the registry handles its mailbox in order.
    assert_eq!(rw.status(d).await.expect("d").status, RunStatus::Waiting);
    gate.open();
    let read = within("d to run", read_rx).await.expect("d ran");
    assert_eq!(
        read,
        format!("{a}:{},{b}:{}", RunStatus::Completed, RunStatus::Completed)
    );
    ended(&rw, d).await;
    // Once D is no longer active, A may go.
    rw.prune_now().await.expect("prune");
    within("retention to prune A", async {
        loop {
            let page = rw
                .list(ListQuery::new().status(RunStatus::Completed))
                .await
                .expect("list");
            if page.total == 0 {
                break;
            }
            rw.prune_now().await.expect("prune");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

/// Kept dependencies do not stall retention: with passes of two records and the four oldest
/// finished runs kept for a waiting run, the runs that finished after them are still pruned,
/// in memory and with a store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_dependencies_do_not_stall_retention() {
    let dir = TempDir::new("deps-retention-stall");
    let retention = Retention {
        max_finished: 0,
        memory_window: 100,
        batch: 2,
        ..Retention::default()
    };
    let store = SqliteStore::open(dir.0.join("runs.db")).expect("open");
    let durable = support::start(Runwarden::builder().store(store).retention(retention)).await;
    let memory = support::start(Runwarden::builder().retention(retention)).await;
    for rw in [&memory, &durable] {
        // The dependencies are held until D is recorded (retention keeps no finished run
        // that nothing needs, so they must still be active when D names them).
        let deps_gate = Gate::new();
        let mut deps = Vec::new();
        for i in 0..4 {
            deps.push(held(rw, &format!("dep-{i}"), &deps_gate).await);
        }
        let gate = Gate::new();
        let b = held(rw, "b", &gate).await;
        let (ran_tx, ran_rx) = tokio::sync::oneshot::channel::<usize>();
        let mut d = rw.request(RunSpec::new("d"), |ctx: runwarden::RunContext| async move {
            let _ = ran_tx.send(ctx.dependencies().len());
            Ok(())
        });
        for dep in deps.iter().chain([&b]) {
            d = d.after(Dependency::on(*dep));
        }
        let d = d.durable().send().await.expect("d");
        deps_gate.open();
        for id in &deps {
            within("dep", rw.wait(*id)).await.expect("wait");
        }
        for i in 0..10 {
            let id = rw
                .submit(RunSpec::new(format!("filler-{i}")), |_ctx| async { Ok(()) })
                .expect("filler");
            ended(rw, id).await;
        }
        within("retention to prune every filler", async {
            loop {
                rw.prune_now().await.expect("prune");
                let held = rw.stats().await.expect("stats").count(RunStatus::Completed);
                if held == deps.len() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        gate.open();
        let read = within("d to run", ran_rx).await.expect("d ran");
        assert_eq!(read, deps.len() + 1, "every dependency's outcome");
        ended(rw, d).await;
    }
}
