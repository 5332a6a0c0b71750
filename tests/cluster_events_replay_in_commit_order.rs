//! The cluster's events: every status a run takes, from every node, read from any node in
//! commit order; a feed resumed from a cursor (a reconnecting SSE client's `Last-Event-ID`)
//! misses nothing and repeats nothing; a transaction still open holds back the events
//! committed after it began instead of letting them pass it; a rolled-back change leaves no
//! event.
#[path = "support/helpers.rs"]
mod support;

use std::collections::HashMap;
use std::time::Duration;

use runwarden::{BoxedJob, Json, OnInterrupt, RunId, RunStatus};
use runwarden_cluster::postgres::TempPostgres;
use runwarden_cluster::{
    ClusterEvent, ClusterKinds, EventCursor, EventFeed, NewRun, Node, NodeConfig,
};

fn kinds() -> ClusterKinds {
    ClusterKinds::new().register("noop", OnInterrupt::Rerun, |_| {
        Ok(BoxedJob::new(|_| async { Ok(Json::from("done")) }))
    })
}

async fn node(pg: &TempPostgres, name: &str, concurrency: usize) -> Node {
    let mut config = NodeConfig::new(pg.url(), name);
    config.concurrency = concurrency;
    config.heartbeat = Duration::from_millis(200);
    config.fence_after = Duration::from_millis(1_000);
    config.dead_after = Duration::from_millis(2_000);
    config.events_poll = Duration::from_millis(20);
    Node::start(config, kinds()).await.expect("a node")
}

/// Reads until `n` events have come (or fails the test after the helper's timeout).
async fn take(feed: &mut EventFeed, n: usize) -> Vec<ClusterEvent> {
    let mut out = Vec::new();
    while out.len() < n {
        out.extend(
            support::within("events", feed.next_batch())
                .await
                .expect("events"),
        );
    }
    out
}

fn statuses(events: &[ClusterEvent]) -> HashMap<RunId, Vec<RunStatus>> {
    let mut by_run: HashMap<RunId, Vec<RunStatus>> = HashMap::new();
    for e in events {
        by_run.entry(e.run_id).or_default().push(e.status);
    }
    by_run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_from_every_node_in_commit_order_and_resumable() {
    let pg = TempPostgres::start().expect("PostgreSQL");
    let (a, b) = (node(&pg, "a", 16).await, node(&pg, "b", 16).await);
    let client = node(&pg, "client", 0).await;
    let mut from_start = client.events(Some(EventCursor::START)).await.expect("feed");

    let runs: Vec<NewRun> = (0..300).map(|_| NewRun::new("noop")).collect();
    let ids: Vec<RunId> = client
        .submit_many(runs)
        .await
        .expect("submit")
        .into_iter()
        .map(|r| r.expect("accepted"))
        .collect();
    // Three statuses a run: queued, running, completed.
    let all = take(&mut from_start, 900).await;
    assert_eq!(all.len(), 900, "more events than statuses");
    let by_run = statuses(&all);
    assert_eq!(by_run.len(), 300);
    for id in &ids {
        assert_eq!(
            by_run.get(id).map(Vec::as_slice),
            Some(&[RunStatus::Queued, RunStatus::Running, RunStatus::Completed][..]),
            "run {id}"
        );
    }
    let mut nodes: HashMap<String, usize> = HashMap::new();
    for e in all.iter().filter(|e| e.status == RunStatus::Completed) {
        *nodes.entry(e.node.clone().expect("a node")).or_default() += 1;
        assert_eq!(e.attempt, 1);
    }
    assert_eq!(nodes.len(), 2, "both nodes ran some: {nodes:?}");
    assert!(
        all.windows(2).all(|w| w[0].cursor < w[1].cursor),
        "events out of order"
    );

    // Resume: a feed from any cursor, on any node, hands out exactly the rest.
    for cut in [0, 1, 299, 450, 899] {
        let mut resumed = a.events(Some(all[cut].cursor)).await.expect("feed");
        let rest = take(&mut resumed, 899 - cut).await;
        assert_eq!(rest, all[cut + 1..], "resumed after event {cut}");
        let more = resumed.try_next_batch().await.expect("read");
        assert!(more.is_empty(), "repeated or invented: {more:?}");
    }

    // A feed from now sees only what happens after it was made.
    let mut from_now = b.events(None).await.expect("feed");
    assert!(from_now.try_next_batch().await.expect("read").is_empty());
    let late = client.submit(NewRun::new("noop")).await.expect("submit");
    let seen = take(&mut from_now, 3).await;
    assert!(seen.iter().all(|e| e.run_id == late), "{seen:?}");

    for n in [&a, &b, &client] {
        n.drain(Duration::from_secs(5)).await.expect("drain");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_transaction_holds_later_events_back_and_a_rollback_leaves_none() {
    let pg = TempPostgres::start().expect("PostgreSQL");
    let client = node(&pg, "client", 0).await;
    let mut feed = client.events(None).await.expect("feed");
    let (mut sql, conn) = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);

    // An application's transaction inserts a run (not claimable for a minute) and stays open.
    let early = RunId::new();
    let insert = "INSERT INTO rw_runs (id, kind, label, queue, params, status, max_attempts,
                                       rerun_on_loss, run_after)
                  VALUES ($1, 'noop', 'noop', 'default', '{}', 'queued', 1, true,
                          now() + interval '1 minute')";
    let tx = sql.transaction().await.expect("begin");
    tx.execute(insert, &[early.as_uuid()])
        .await
        .expect("insert");
    // A run committed after it began, while it is open.
    let later = client
        .submit(NewRun::new("noop").delay(Duration::from_secs(60)))
        .await
        .expect("submit");
    // `later` has committed (the submit answers after its commit): only the open
    // transaction can keep its event from the feed.
    let held = feed.try_next_batch().await.expect("read");
    assert!(
        held.is_empty(),
        "an event passed a transaction still open: {held:?}"
    );
    tx.commit().await.expect("commit");
    let both = take(&mut feed, 2).await;
    assert_eq!(
        both.iter().map(|e| e.run_id).collect::<Vec<_>>(),
        vec![early, later],
        "{both:?}"
    );

    // A change that rolls back leaves no event.
    let gone = RunId::new();
    let tx = sql.transaction().await.expect("begin");
    tx.execute(insert, &[gone.as_uuid()]).await.expect("insert");
    tx.rollback().await.expect("rollback");
    let after = client
        .submit(NewRun::new("noop").delay(Duration::from_secs(60)))
        .await
        .expect("submit");
    let next = take(&mut feed, 1).await;
    assert_eq!(next.len(), 1, "{next:?}");
    assert_eq!(next[0].run_id, after);
    client.drain(Duration::from_secs(5)).await.expect("drain");
}

/// Reads server-sent events from a response until `n` have come: (event, id, data).
async fn sse(resp: &mut reqwest::Response, n: usize) -> Vec<(String, String, String)> {
    let mut text = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let chunk = support::within("an SSE chunk", resp.chunk())
            .await
            .expect("read")
            .expect("the stream goes on");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut event, mut id, mut data) = (String::new(), String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = v.to_owned();
                }
            }
            if !event.is_empty() {
                out.push((event, id, data));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_resumes_from_its_last_event_id() {
    let pg = TempPostgres::start().expect("PostgreSQL");
    let worker = node(&pg, "a", 8).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(runwarden_cluster::http::serve(worker.clone(), listener));
    let mut feed = worker.events(Some(EventCursor::START)).await.expect("feed");
    let runs: Vec<NewRun> = (0..20).map(|_| NewRun::new("noop")).collect();
    worker.submit_many(runs).await.expect("submit");
    let all = take(&mut feed, 60).await;

    let http = reqwest::Client::new();
    let mut resp = http
        .get(format!("{base}/events"))
        .header("Last-Event-ID", all[9].cursor.to_string())
        .send()
        .await
        .expect("GET /events");
    assert_eq!(resp.status(), 200);
    let got = sse(&mut resp, 50).await;
    for ((event, id, data), want) in got.iter().zip(&all[10..]) {
        assert_eq!(event, "status");
        assert_eq!(id, &want.cursor.to_string());
        let v: serde_json::Value = serde_json::from_str(data).expect("JSON");
        assert_eq!(v["run_id"], want.run_id.to_string());
        assert_eq!(v["cursor"], want.cursor.to_string());
    }
    // `after` does the same as the header.
    let mut resp = http
        .get(format!("{base}/events?after={}", all[58].cursor))
        .send()
        .await
        .expect("GET /events");
    let last = sse(&mut resp, 1).await;
    assert_eq!(last[0].1, all[59].cursor.to_string());

    let bad = http
        .get(format!("{base}/events"))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .expect("GET /events");
    assert_eq!(bad.status(), 422);
    let body: serde_json::Value = bad.json().await.expect("JSON");
    assert_eq!(body["error_code"], "VALIDATION", "{body}");
    worker.drain(Duration::from_secs(5)).await.expect("drain");
}
