//! The leader is the node that rescues the others. SIGKILL it under load: another node takes
//! the leader's lease once it expires, declares the old leader dead and takes back its runs
//! (`sleep` runs complete elsewhere, `once` runs end `failed`, `node_lost`). Every run ends
//! exactly once, nothing stays running, and no `once` run executed twice.
#[path = "support/cluster.rs"]
mod cluster;

use std::time::{Duration, Instant};

use cluster::{Cluster, Timings};
use runwarden::{ErrorKind, RunStatus};

fn main() {
    cluster::main(
        "a_killed_leader_is_rescued_by_the_next",
        a_killed_leader_is_rescued_by_the_next,
    );
}

async fn leader(c: &Cluster) -> Option<(String, uuid::Uuid)> {
    c.sql
        .query_opt(
            "SELECT n.name, n.id FROM rw_leader l JOIN rw_nodes n ON n.id = l.node_id
             WHERE l.expires_at > now() AND n.dead_at IS NULL",
            &[],
        )
        .await
        .expect("the leader")
        .map(|r| (r.get(0), r.get(1)))
}

async fn a_killed_leader_is_rescued_by_the_next() {
    let mut c = Cluster::start(Timings::FAST).await;
    for name in ["a", "b", "c"] {
        c.spawn(name).await;
    }
    let start = Instant::now();
    let (name, id) = loop {
        if let Some(l) = leader(&c).await {
            break l;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no node leads");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let kind = |i: usize| if i.is_multiple_of(3) { "once" } else { "sleep" };
    let mut ids = c
        .submit_mix(1_500, kind, |i| 20 + (i as u64 * 11) % 80)
        .await;
    let start = Instant::now();
    loop {
        let held: i64 = c
            .sql
            .query_one(
                "SELECT count(*) FROM rw_runs WHERE node_id = $1 AND status = 'running'",
                &[&id],
            )
            .await
            .expect("count")
            .get(0);
        if held >= 16 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the leader never claimed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.kill(&name).await;
    let killed = Instant::now();
    ids.extend(c.submit_mix(600, kind, |i| 20 + (i as u64 * 11) % 80).await);

    c.settle(Duration::from_secs(90)).await;
    let (next, _) = leader(&c).await.expect("a new leader");
    assert_ne!(next, name, "the dead leader still leads");
    println!(
        "leader {name} killed; {next} leads; all {} runs ended {} ms after the kill",
        ids.len(),
        killed.elapsed().as_millis()
    );
    let lost: Vec<_> = c
        .sql
        .query("SELECT id, kind FROM rw_runs WHERE rescues > 0", &[])
        .await
        .expect("rescued")
        .iter()
        .map(|r| (r.get::<_, uuid::Uuid>(0), r.get::<_, String>(1)))
        .collect();
    assert!(!lost.is_empty(), "the leader held nothing when killed");
    for (run, kind) in &lost {
        let r = c
            .client
            .status(runwarden::RunId::from_uuid(*run))
            .await
            .expect("status")
            .expect("a run");
        if kind == "once" {
            assert_eq!(
                (r.status, r.error_kind),
                (RunStatus::Failed, Some(ErrorKind::NodeLost))
            );
        } else {
            assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        }
    }
    for n in ["a", "b", "c"].into_iter().filter(|n| *n != name) {
        c.drain(n, Duration::from_secs(5)).await;
    }
    let counts = c.ended_once(&ids).await;
    c.once_ran_at_most_once().await;
    println!("{counts:?}; {} runs rescued from the leader", lost.len());
}
