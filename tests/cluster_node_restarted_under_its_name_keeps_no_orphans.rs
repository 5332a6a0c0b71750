//! A node is SIGKILLed and started again at once under the same name, the way a process
//! manager restarts it. The new process is a new node (a new id); the name hides nothing: the
//! runs the old process held are declared lost once it has been silent for `dead_after` and
//! are taken back, while the new one works alongside. Every run ends exactly once.
#[path = "support/cluster.rs"]
mod cluster;

use std::time::{Duration, Instant};

use cluster::{Cluster, Timings};
use runwarden::RunStatus;

fn main() {
    cluster::main(
        "a_restarted_name_keeps_no_orphans",
        a_restarted_name_keeps_no_orphans,
    );
}

async fn a_restarted_name_keeps_no_orphans() {
    let mut c = Cluster::start(Timings::FAST).await;
    for name in ["a", "b"] {
        c.spawn(name).await;
    }
    let old = c.node_id("b").await;
    let mut ids = c.submit("sleep", 800, |i| 30 + (i as u64 * 7) % 60).await;
    let start = Instant::now();
    loop {
        let held: i64 = c
            .sql
            .query_one(
                "SELECT count(*) FROM rw_runs WHERE node_id = $1 AND status = 'running'",
                &[&old],
            )
            .await
            .expect("count")
            .get(0);
        if held >= 16 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "b never claimed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let orphans: Vec<uuid::Uuid> = {
        c.kill("b").await;
        c.sql
            .query(
                "SELECT id FROM rw_runs WHERE node_id = $1 AND status = 'running'",
                &[&old],
            )
            .await
            .expect("b's runs")
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    c.spawn("b").await;
    let new = c.node_id("b").await;
    assert_ne!(new, old, "a restarted process must be a new node");
    ids.extend(c.submit("sleep", 400, |i| 30 + (i as u64 * 7) % 60).await);

    c.settle(Duration::from_secs(90)).await;
    for id in &orphans {
        let r = c
            .client
            .status(runwarden::RunId::from_uuid(*id))
            .await
            .expect("status")
            .expect("a run");
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        assert_eq!(r.rescues, 1, "the old b's run was not rescued: {r:?}");
        assert_ne!(r.node_id, Some(old), "{r:?}");
    }
    let dead: Option<std::time::SystemTime> = c
        .sql
        .query_one("SELECT dead_at FROM rw_nodes WHERE id = $1", &[&old])
        .await
        .expect("the old node")
        .get(0);
    assert!(dead.is_some(), "the old b was never declared dead");
    let report = c.drain("b", Duration::from_secs(5)).await;
    c.drain("a", Duration::from_secs(5)).await;
    let counts = c.ended_once(&ids).await;
    println!(
        "{} orphans of the old b rescued while the new b ran {} runs; {counts:?}",
        orphans.len(),
        report["completed"]
    );
}
