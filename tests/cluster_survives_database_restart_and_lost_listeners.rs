//! Under load over three node processes: every node's LISTEN connection is killed on the
//! server (`pg_terminate_backend`) and cancels are sent while they are gone, then PostgreSQL
//! itself restarts (a fast shutdown: every connection drops, transactions in flight abort).
//! Notifications are only hints: the nodes reconnect, claim and write again, cancels arrive
//! by the heartbeat's re-check, and a claim whose answer was lost with its connection is
//! found and handed back. Every acknowledged run ends exactly once and no `once` run ran
//! twice.
#[path = "support/cluster.rs"]
mod cluster;

use std::time::{Duration, Instant};

use cluster::{Cluster, Timings};
use runwarden::RunStatus;
use runwarden_cluster::CancelAnswer;

fn main() {
    cluster::main(
        "the_cluster_survives_a_database_restart",
        the_cluster_survives_a_database_restart,
    );
}

async fn the_cluster_survives_a_database_restart() {
    // Long enough leases that a restart of a second or two needs no rescue (if it takes
    // longer, nodes fence themselves and their runs are rescued: still exactly once).
    let timings = Timings {
        heartbeat_ms: 200,
        fence_after_ms: 4_000,
        dead_after_ms: 8_000,
        concurrency: 32,
    };
    let mut c = Cluster::start(timings).await;
    for name in ["a", "b", "c"] {
        c.spawn(name).await;
    }
    let kind = |i: usize| if i.is_multiple_of(5) { "once" } else { "sleep" };
    let ms = |i: usize| 20 + (i as u64 * 13) % 60;
    // Long runs, claimed first (a higher priority), to cancel while the listeners are gone.
    let long = c
        .submit_runs(
            (0..30)
                .map(|_| {
                    runwarden_cluster::NewRun::new("sleep")
                        .param("ms", 600_000)
                        .priority(10)
                })
                .collect(),
        )
        .await;
    let mut ids = long.clone();
    ids.extend(c.submit_mix(1_500, kind, ms).await);
    let start = Instant::now();
    loop {
        let running: i64 = c
            .sql
            .query_one(
                "SELECT count(*) FROM rw_runs WHERE status = 'running' AND priority = 10",
                &[],
            )
            .await
            .expect("count")
            .get(0);
        if running == 30 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the long runs never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let start = Instant::now();
    let listeners = loop {
        let killed: Vec<bool> = c
            .sql
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE query LIKE 'LISTEN runwarden_wake%' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .expect("terminate the listeners")
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Four nodes listen: the three processes and the client.
        if killed.iter().filter(|k| **k).count() >= 4 {
            break killed.len();
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the listeners never connected"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut requested = 0;
    for id in &long {
        match c.client.cancel(*id).await.expect("a cancel") {
            CancelAnswer::Requested => requested += 1,
            CancelAnswer::CancelledWhileQueued => {}
            other => panic!("cancel of {id}: {other:?}"),
        }
    }

    // Mid-load, the database restarts.
    let pg_restart = Instant::now();
    let pg = &c.pg;
    tokio::task::block_in_place(|| pg.restart()).expect("PostgreSQL restarts");
    let restart_took = pg_restart.elapsed();
    c.reconnect_sql().await;
    // Submits answer again once the pool has new connections.
    let start = Instant::now();
    let more = loop {
        match c
            .client
            .submit_many(
                (0..300)
                    .map(|i| runwarden_cluster::NewRun::new(kind(i)).param("ms", ms(i)))
                    .collect(),
            )
            .await
        {
            Ok(answers) => break answers,
            Err(e) => {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "no submit after restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    ids.extend(more.into_iter().map(|a| a.expect("accepted")));

    c.settle(Duration::from_secs(120)).await;
    let mut reports = Vec::new();
    for name in ["a", "b", "c"] {
        reports.push(c.drain(name, Duration::from_secs(5)).await);
    }
    let counts = c.ended_once(&ids).await;
    c.once_ran_at_most_once().await;
    assert_eq!(requested, 30, "the long runs were running when cancelled");
    for id in &ids {
        let r = c.client.status(*id).await.expect("status").expect("a run");
        match (r.kind.as_str(), r.priority) {
            (_, 10) => assert_eq!(r.status, RunStatus::Cancelled, "{r:?}"),
            // A node that fenced itself in the outage loses its `once` runs; nothing else
            // may fail.
            ("once", _) if r.status == RunStatus::Failed => {
                assert_eq!(r.error_kind, Some(runwarden::ErrorKind::NodeLost), "{r:?}");
            }
            _ => assert_eq!(r.status, RunStatus::Completed, "{r:?}"),
        }
    }
    println!(
        "{listeners} listeners killed, {requested} cancels sent meanwhile; PostgreSQL restarted \
         in {} ms; {} runs: {counts:?}; reports {reports:?}",
        restart_took.as_millis(),
        ids.len()
    );
}
