//! Three node processes share one queue in a real PostgreSQL. One is SIGKILLed while it runs
//! its share of a steady load. Every accepted run still ends exactly once: the dead node's
//! `sleep` runs (which may run again) are rescued and complete elsewhere, its `once` runs (at
//! most once) end `failed` with `node_lost`, nothing stays running, and no `once` run executed
//! twice (each execution is a row in a side table its job writes).
#[path = "support/cluster.rs"]
mod cluster;

use std::time::{Duration, Instant};

use cluster::{Cluster, Timings};
use runwarden::{ErrorKind, RunStatus};

fn main() {
    cluster::main(
        "a_sigkilled_node_loses_no_run",
        a_sigkilled_node_loses_no_run,
    );
}

async fn a_sigkilled_node_loses_no_run() {
    let mut c = Cluster::start(Timings::FAST).await;
    for name in ["a", "b", "c"] {
        c.spawn(name).await;
    }
    let victim = c.node_id("b").await;
    let ms = |i: usize| 5 + (i as u64 * 7) % 40;
    let mut sleeps = Vec::new();
    let mut onces = Vec::new();
    for round in 0..6 {
        let kind = |i: usize| if i.is_multiple_of(6) { "once" } else { "sleep" };
        let ids = c.submit_mix(360, kind, ms).await;
        for (i, id) in ids.into_iter().enumerate() {
            if kind(i) == "once" {
                onces.push(id);
            } else {
                sleeps.push(id);
            }
        }
        if round == 2 {
            // Let b take its share, then kill it in the middle of its runs.
            let start = Instant::now();
            loop {
                let held: i64 = c
                    .sql
                    .query_one(
                        "SELECT count(*) FROM rw_runs WHERE node_id = $1 AND status = 'running'",
                        &[&victim],
                    )
                    .await
                    .expect("count")
                    .get(0);
                if held > 0 {
                    break;
                }
                assert!(start.elapsed() < Duration::from_secs(20), "b never claimed");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            c.kill("b").await;
            let killed = Instant::now();
            let held_at_kill: i64 = c
                .sql
                .query_one(
                    "SELECT count(*) FROM rw_runs WHERE node_id = $1 AND status = 'running'",
                    &[&victim],
                )
                .await
                .expect("count")
                .get(0);
            tokio::spawn({
                let url = c.pg.url().to_owned();
                async move {
                    let (sql, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                        .await
                        .expect("connect");
                    tokio::spawn(conn);
                    loop {
                        let n: i64 = sql
                            .query_one(
                                "SELECT count(*) FROM rw_runs
                                 WHERE node_id = $1 AND status = 'running'",
                                &[&victim],
                            )
                            .await
                            .expect("count")
                            .get(0);
                        if n == 0 {
                            println!(
                                "rescue: {held_at_kill} runs held at the kill, all taken back \
                                 {} ms after it",
                                killed.elapsed().as_millis()
                            );
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            });
        }
    }
    c.settle(Duration::from_secs(90)).await;
    for name in ["a", "c"] {
        c.drain(name, Duration::from_secs(5)).await;
    }

    let all: Vec<_> = sleeps.iter().chain(&onces).copied().collect();
    let counts = c.ended_once(&all).await;
    c.once_ran_at_most_once().await;
    for id in &sleeps {
        let run = c.client.status(*id).await.expect("status").expect("a run");
        assert_eq!(run.status, RunStatus::Completed, "sleep run {id}: {run:?}");
    }
    let mut lost = 0;
    for id in &onces {
        let run = c.client.status(*id).await.expect("status").expect("a run");
        match run.status {
            RunStatus::Completed => {}
            RunStatus::Failed => {
                assert_eq!(run.error_kind, Some(ErrorKind::NodeLost), "{run:?}");
                assert_eq!(run.node_id, Some(victim), "only b's runs are lost: {run:?}");
                lost += 1;
            }
            other => panic!("once run {id} ended {other:?}"),
        }
    }
    let rescued: i64 = c
        .sql
        .query_one("SELECT count(*) FROM rw_runs WHERE rescues > 0", &[])
        .await
        .expect("count")
        .get(0);
    assert!(
        rescued > 0,
        "the kill took no run with it: nothing was tested"
    );
    println!(
        "{} runs: {counts:?}; {rescued} rescued, {lost} at-most-once runs lost with b; \
         {} sleep executions for {} sleep runs",
        all.len(),
        c.executions("sleep").await,
        sleeps.len()
    );
}
