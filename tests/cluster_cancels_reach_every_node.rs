//! 1,200 long runs over three node processes (1,050 of them running, 350 per node, the rest
//! queued), each cancelled, newest first, through a fourth node that runs nothing. Every cancel is answered
//! (`Requested` for a running run, `CancelledWhileQueued` for a queued one), and every run
//! ends `cancelled` exactly once, whichever node held it.
#[path = "support/cluster.rs"]
mod cluster;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cluster::{Cluster, Timings};
use runwarden::{ErrorKind, RunStatus};
use runwarden_cluster::CancelAnswer;

fn main() {
    cluster::main("cancels_reach_every_node", cancels_reach_every_node);
}

async fn cancels_reach_every_node() {
    let timings = Timings {
        concurrency: 350,
        ..Timings::FAST
    };
    let mut c = Cluster::start(timings).await;
    for name in ["a", "b", "c"] {
        c.spawn(name).await;
    }
    let ids = c.submit("sleep", 1_200, |_| 600_000).await;
    let start = Instant::now();
    loop {
        let s = c.client.stats().await.expect("stats");
        if s.running == 1_050 {
            assert_eq!(s.queued, 150);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not all started: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut answers: HashMap<String, usize> = HashMap::new();
    // Newest first: the queued runs are the newest (claims go in submit order), and each
    // cancel of a running run frees a slot that a node fills from the queue.
    for id in ids.iter().rev() {
        let answer = c.client.cancel(*id).await.expect("a cancel");
        let key = match answer {
            CancelAnswer::Requested => "requested",
            CancelAnswer::CancelledWhileQueued => "cancelled_while_queued",
            other => panic!("cancel of {id}: {other:?}"),
        };
        *answers.entry(key.to_owned()).or_insert(0) += 1;
    }
    // Every queued run was cancelled at once; every running one was asked to stop.
    assert_eq!(answers.get("requested"), Some(&1_050), "{answers:?}");
    assert_eq!(
        answers.get("cancelled_while_queued"),
        Some(&150),
        "{answers:?}"
    );
    let cancel_sent = Instant::now();
    c.settle(Duration::from_secs(60)).await;
    let all_ended = cancel_sent.elapsed();

    let counts = c.ended_once(&ids).await;
    assert_eq!(
        counts.get(&RunStatus::Cancelled),
        Some(&1_200),
        "{counts:?}"
    );
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for id in &ids {
        let run = c.client.status(*id).await.expect("status").expect("a run");
        if let Some(node) = &run.node {
            *per_node.entry(node.clone()).or_insert(0) += 1;
            assert_eq!(
                run.error_kind,
                Some(ErrorKind::CancelledWhileRunning),
                "{run:?}"
            );
        } else {
            assert_eq!(
                run.error_kind,
                Some(ErrorKind::CancelledWhileQueued),
                "{run:?}"
            );
        }
    }
    assert_eq!(per_node.len(), 3, "the runs were not spread: {per_node:?}");
    for name in ["a", "b", "c"] {
        let report = c.drain(name, Duration::from_secs(1)).await;
        assert_eq!(report["fenced_out"], 0, "{report}");
    }
    println!(
        "1200 cancels: {answers:?}; per node {per_node:?}; all ended {} ms after the last cancel answer",
        all_ended.as_millis()
    );
}
