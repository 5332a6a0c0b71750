//! A queue limited cluster-wide never has more runs running at once than its limit, over
//! every node together, while unlimited queues beside it run at full width; lifting the limit
//! lets it widen again. The limit is set by message (or over HTTP) from any node.
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use runwarden::{BoxedJob, Json, OnInterrupt, RunId, RunStatus};
use runwarden_cluster::postgres::TempPostgres;
use runwarden_cluster::{ClusterKinds, NewRun, Node, NodeConfig};

/// Runs at once, and the most seen, per queue: index 0 the limited one, 1 the other.
#[derive(Default)]
struct Width {
    now: [AtomicUsize; 2],
    most: [AtomicUsize; 2],
}

impl Width {
    fn reset(&self) {
        for m in &self.most {
            m.store(0, Ordering::SeqCst);
        }
    }
    fn most(&self, q: usize) -> usize {
        self.most[q].load(Ordering::SeqCst)
    }
}

fn kinds(width: Arc<Width>) -> ClusterKinds {
    ClusterKinds::new().register("work", OnInterrupt::Rerun, move |input| {
        let q = usize::from(input.params.get("limited").and_then(|v| v.as_bool()) != Some(true));
        let width = width.clone();
        Ok(BoxedJob::new(move |_| async move {
            let now = width.now[q].fetch_add(1, Ordering::SeqCst) + 1;
            width.most[q].fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(40)).await;
            width.now[q].fetch_sub(1, Ordering::SeqCst);
            Ok(Json::Null)
        }))
    })
}

async fn submit(node: &Node, n: usize, limited: bool) -> Vec<RunId> {
    let runs: Vec<NewRun> = (0..n)
        .map(|_| {
            let r = NewRun::new("work").param("limited", limited);
            if limited { r.queue("pdf") } else { r }
        })
        .collect();
    node.submit_many(runs)
        .await
        .expect("submit")
        .into_iter()
        .map(|r| r.expect("accepted"))
        .collect()
}

async fn all_complete(node: &Node, ids: &[RunId]) {
    for id in ids {
        let run = support::within("a run ends", node.wait(*id))
            .await
            .expect("wait");
        assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_limit_holds_over_every_node() {
    let pg = TempPostgres::start().expect("PostgreSQL");
    let width = Arc::new(Width::default());
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let mut config = NodeConfig::new(pg.url(), name);
        config.concurrency = 8;
        config.poll = Duration::from_millis(50);
        nodes.push(
            Node::start(config, kinds(width.clone()))
                .await
                .expect("a node"),
        );
    }
    nodes[1]
        .set_queue_limit("pdf", Some(3))
        .await
        .expect("limit");

    let mut ids = submit(&nodes[0], 90, true).await;
    ids.extend(submit(&nodes[2], 90, false).await);
    all_complete(&nodes[0], &ids).await;
    assert_eq!(width.most(0), 3, "the limited queue's widest moment");
    assert!(
        width.most(1) > 3,
        "the other queue was held back too: {}",
        width.most(1)
    );
    let limits = nodes[2].queue_limits().await.expect("limits");
    assert_eq!(limits.len(), 1);
    assert_eq!(
        (
            limits[0].queue.as_str(),
            limits[0].global_limit,
            limits[0].running
        ),
        ("pdf", 3, 0)
    );

    // Over HTTP, from another node: a bad body is refused, then the limit is lifted.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(runwarden_cluster::http::serve(nodes[2].clone(), listener));
    let http = reqwest::Client::new();
    let bad = http
        .put(format!("{base}/queues/pdf"))
        .json(&serde_json::json!({"global_limit": -1}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(bad.status(), 422);
    let listed: serde_json::Value = http
        .get(format!("{base}/queues"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed["queues"][0]["global_limit"], 3, "{listed}");
    let lifted = http
        .put(format!("{base}/queues/pdf"))
        .json(&serde_json::json!({"global_limit": null}))
        .send()
        .await
        .expect("PUT");
    assert_eq!(lifted.status(), 200);
    assert!(nodes[0].queue_limits().await.expect("limits").is_empty());

    width.reset();
    let ids = submit(&nodes[1], 90, true).await;
    all_complete(&nodes[1], &ids).await;
    assert!(
        width.most(0) > 3,
        "lifted, the queue stayed narrow: {}",
        width.most(0)
    );
    for n in &nodes {
        n.drain(Duration::from_secs(5)).await.expect("drain");
    }
}
