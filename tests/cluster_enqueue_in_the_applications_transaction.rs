//! Transactional enqueue: a run submitted in the application's own transaction exists if and
//! only if that transaction commits. Rolled back, or aborted by the application's own failed
//! statement, it leaves no run, no event, and nothing executes; committed, it runs on a node
//! like any other. A bad run is refused before anything is written, leaving the transaction
//! usable; a taken idempotency key names its holder.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{BoxedJob, Json, OnInterrupt, RunId, RunStatus};
use runwarden_cluster::postgres::TempPostgres;
use runwarden_cluster::{ClusterError, ClusterKinds, NewRun, Node, NodeConfig, enqueue};

fn kinds() -> ClusterKinds {
    ClusterKinds::new().register("invoice", OnInterrupt::Fail, |input| {
        let order = input.params.get("order").cloned().unwrap_or_default();
        Ok(BoxedJob::new(move |_| async move {
            Ok(Json::from(format!("invoiced {order}")))
        }))
    })
}

async fn events_of(sql: &tokio_postgres::Client, id: RunId) -> i64 {
    sql.query_one(
        "SELECT count(*) FROM rw_events WHERE run_id = $1",
        &[id.as_uuid()],
    )
    .await
    .expect("count")
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_exists_if_and_only_if_the_transaction_commits() {
    let pg = TempPostgres::start().expect("PostgreSQL");
    let mut config = NodeConfig::new(pg.url(), "a");
    config.concurrency = 4;
    config.poll = Duration::from_millis(100);
    let node = Node::start(config, kinds()).await.expect("a node");
    let (mut sql, conn) = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    sql.batch_execute("CREATE TABLE orders (id int PRIMARY KEY, note text NOT NULL)")
        .await
        .expect("the application's table");
    let kinds = kinds();
    let invoice = |order: i32| NewRun::new("invoice").param("order", order);

    // Rolled back: no run, no event, nothing ran.
    let tx = sql.transaction().await.expect("begin");
    tx.execute("INSERT INTO orders VALUES (1, 'rolled back')", &[])
        .await
        .expect("order");
    let rolled = enqueue(&tx, &kinds, &[invoice(1)])
        .await
        .expect("enqueue")
        .into_iter()
        .next()
        .expect("an answer")
        .expect("accepted");
    tx.rollback().await.expect("rollback");

    // Aborted by the application's own failure after the enqueue.
    sql.execute("INSERT INTO orders VALUES (2, 'exists')", &[])
        .await
        .expect("order");
    let tx = sql.transaction().await.expect("begin");
    let aborted = enqueue(&tx, &kinds, &[invoice(2)])
        .await
        .expect("enqueue")
        .into_iter()
        .next()
        .expect("an answer")
        .expect("accepted");
    let clash = tx
        .execute("INSERT INTO orders VALUES (2, 'again')", &[])
        .await;
    assert!(clash.is_err(), "the duplicate order was taken");
    // PostgreSQL answers the COMMIT of an aborted transaction with a ROLLBACK.
    let _ = tx.commit().await;

    // Committed: invisible until the commit, then it runs.
    let tx = sql.transaction().await.expect("begin");
    tx.execute("INSERT INTO orders VALUES (3, 'committed')", &[])
        .await
        .expect("order");
    let key = NewRun::new("invoice")
        .param("order", 3)
        .idempotency_key("order-3");
    let committed = enqueue(&tx, &kinds, std::slice::from_ref(&key))
        .await
        .expect("enqueue")
        .into_iter()
        .next()
        .expect("an answer")
        .expect("accepted");
    assert_eq!(
        node.status(committed).await.expect("status"),
        None,
        "seen before the commit"
    );
    tx.commit().await.expect("commit");
    let run = support::within("the committed run ends", node.wait(committed))
        .await
        .expect("wait");
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!(run.result, Some(serde_json::json!("invoiced 3")));

    // A bad run is refused before anything is written: the transaction goes on.
    let tx = sql.transaction().await.expect("begin");
    match enqueue(&tx, &kinds, &[invoice(4), NewRun::new("no-such-kind")]).await {
        Err(ClusterError::UnknownKind(k)) => assert_eq!(k, "no-such-kind"),
        other => panic!("{other:?}"),
    }
    match enqueue(&tx, &kinds, &[invoice(4).max_attempts(0)]).await {
        Err(ClusterError::BadRequest(_)) => {}
        other => panic!("{other:?}"),
    }
    tx.execute("INSERT INTO orders VALUES (4, 'no invoice')", &[])
        .await
        .expect("the transaction is still usable");
    tx.commit().await.expect("commit");

    // The idempotency key of a run not ended names its holder, inside the transaction.
    let tx = sql.transaction().await.expect("begin");
    let blocker = enqueue(
        &tx,
        &kinds,
        &[invoice(5)
            .idempotency_key("order-5")
            .delay(Duration::from_secs(60))],
    )
    .await
    .expect("enqueue")
    .into_iter()
    .next()
    .expect("an answer")
    .expect("accepted");
    let again = enqueue(&tx, &kinds, &[invoice(5).idempotency_key("order-5")])
        .await
        .expect("enqueue");
    match &again[0] {
        Err(ClusterError::DuplicateKey(holder)) => assert_eq!(*holder, blocker),
        other => panic!("{other:?}"),
    }
    tx.commit().await.expect("commit");

    // What was never committed never existed: no row, no event, and the node claimed only
    // the committed run (which has ended, so every claim it made is counted).
    for gone in [rolled, aborted] {
        assert_eq!(node.status(gone).await.expect("status"), None);
        assert_eq!(events_of(&sql, gone).await, 0);
    }
    let info = node.info().await.expect("info");
    assert_eq!(info.claimed, 1, "{info:?}");
    let orders: i64 = sql
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(orders, 3, "orders 2, 3 and 4");
    let runs: i64 = sql
        .query_one("SELECT count(*) FROM rw_runs", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(runs, 2, "the committed run and the blocker");
    node.drain(Duration::from_secs(5)).await.expect("drain");
}
