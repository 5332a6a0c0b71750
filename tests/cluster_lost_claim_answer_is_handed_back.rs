//! A claim can commit while its answer is lost with its connection (a database restart at
//! the wrong moment): the database then says a live node holds a run that the node never
//! got, which nothing would ever end or rescue. The node compares what the database says it
//! holds with what it runs, on its heartbeat, and hands such a run back; it is then claimed
//! and runs as usual, its attempt not counted. Simulated here by making the database say so:
//! the row says the node's first claim took it (the node claims once as it starts).
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{BoxedJob, Json, OnInterrupt, RunStatus};
use runwarden_cluster::postgres::TempPostgres;
use runwarden_cluster::{ClusterKinds, NewRun, Node, NodeConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_node_never_got_is_handed_back() {
    let pg = TempPostgres::start().expect("PostgreSQL");
    let kinds = ClusterKinds::new().register("noop", OnInterrupt::Fail, |_| {
        Ok(BoxedJob::new(|_| async { Ok(Json::from("done")) }))
    });
    let mut config = NodeConfig::new(pg.url(), "a");
    config.heartbeat = Duration::from_millis(100);
    config.fence_after = Duration::from_millis(1_000);
    config.dead_after = Duration::from_millis(2_000);
    let node = Node::start(config, kinds).await.expect("a node");
    let me = node.info().await.expect("info").id;
    // Not claimable for a minute, so only the forged claim below can take it.
    let id = node
        .submit(NewRun::new("noop").delay(Duration::from_secs(60)))
        .await
        .expect("submit");

    let (sql, conn) = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let forged = sql
        .execute(
            "UPDATE rw_runs SET status = 'running', node_id = $1, ran_on = 'a', ran_on_id = $1,
                 lease_epoch = lease_epoch + 1, attempt = attempt + 1, started_at = now(),
                 claim_seq = 1
             WHERE id = $2 AND status = 'queued'",
            &[&me, id.as_uuid()],
        )
        .await
        .expect("forge the claim");
    assert_eq!(forged, 1);

    let run = support::within("the run ends", node.wait(id))
        .await
        .expect("wait");
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!(
        run.attempt, 1,
        "the lost claim counted as an attempt: {run:?}"
    );
    assert_eq!(run.result, Some(serde_json::json!("done")));
    let info = node.info().await.expect("info");
    assert_eq!(info.reconciled, 1, "{info:?}");
    assert_eq!(info.self_fenced, 0, "{info:?}");
}
