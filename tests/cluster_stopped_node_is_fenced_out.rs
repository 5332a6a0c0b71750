//! A node process is SIGSTOPped while it runs its share of the load, past `dead_after`: the
//! leader declares it dead and takes its runs back (its `sleep` runs run again elsewhere, its
//! `once` runs end `failed`, `node_lost`). Then it is SIGCONTed. Whichever comes first after
//! the wake-up, its own fence (its lease is older than `fence_after`: it stops and forgets
//! those runs) or a write of their outcomes (the database refuses it: the write is fenced on
//! node, epoch and the node being alive), no rescued run gets a second terminal status. It
//! rejoins under a new id and works on. Every run ends exactly once, and no `once` run ran
//! twice. (`runwarden-cluster`'s own tests refuse a late write directly.)
#[path = "support/cluster.rs"]
mod cluster;

use std::time::{Duration, Instant};

use cluster::{Cluster, Timings};
use nix::sys::signal::Signal;
use runwarden::{ErrorKind, RunStatus};

fn main() {
    cluster::main("a_stopped_node_is_fenced_out", a_stopped_node_is_fenced_out);
}

async fn running_on(c: &Cluster, node: uuid::Uuid) -> i64 {
    c.sql
        .query_one(
            "SELECT count(*) FROM rw_runs WHERE node_id = $1 AND status = 'running'",
            &[&node],
        )
        .await
        .expect("count")
        .get(0)
}

async fn a_stopped_node_is_fenced_out() {
    let mut c = Cluster::start(Timings::FAST).await;
    for name in ["a", "b", "c"] {
        c.spawn(name).await;
    }
    let stopped = c.node_id("b").await;
    let kind = |i: usize| if i.is_multiple_of(4) { "once" } else { "sleep" };
    let ids = c
        .submit_mix(600, kind, |i| 100 + (i as u64 * 13) % 300)
        .await;

    let start = Instant::now();
    while running_on(&c, stopped).await < 8 {
        assert!(start.elapsed() < Duration::from_secs(20), "b never claimed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.signal("b", Signal::SIGSTOP);
    let held: Vec<uuid::Uuid> = c
        .sql
        .query(
            "SELECT id FROM rw_runs WHERE node_id = $1 AND status = 'running'",
            &[&stopped],
        )
        .await
        .expect("b's runs")
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Past dead_after, the leader declares b dead and rescues everything it held.
    let start = Instant::now();
    while running_on(&c, stopped).await > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "b's runs were not rescued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "{} runs held by b, rescued {} ms after SIGSTOP",
        held.len(),
        start.elapsed().as_millis()
    );
    // Long enough for the other nodes to have run some of them again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.signal("b", Signal::SIGCONT);

    c.settle(Duration::from_secs(90)).await;
    let mut reports = Vec::new();
    for name in ["a", "b", "c"] {
        reports.push((name, c.drain(name, Duration::from_secs(5)).await));
    }
    let counts = c.ended_once(&ids).await;
    c.once_ran_at_most_once().await;

    // No run b held when it stopped was ended by b: its late writes were refused.
    for id in &held {
        let run = c
            .client
            .status(runwarden::RunId::from_uuid(*id))
            .await
            .expect("status")
            .expect("a run");
        assert!(run.rescues >= 1, "{run:?}");
        match run.kind.as_str() {
            "once" => {
                assert_eq!(run.status, RunStatus::Failed, "{run:?}");
                assert_eq!(run.error_kind, Some(ErrorKind::NodeLost), "{run:?}");
            }
            _ => {
                assert_eq!(run.status, RunStatus::Completed, "{run:?}");
                assert_ne!(run.node_id, Some(stopped), "b's late write won: {run:?}");
            }
        }
    }
    let b = &reports[1].1;
    let refused =
        b["fenced_out"].as_u64().expect("a count") + b["discarded"].as_u64().expect("a count");
    assert!(
        b["self_fenced"].as_u64() >= Some(1),
        "b never fenced itself: {b}"
    );
    assert!(
        refused >= 1,
        "b wrote nothing late, so nothing was tested: {b}"
    );
    println!(
        "{} runs: {counts:?}; b's report after SIGCONT: {b}",
        ids.len()
    );
}
