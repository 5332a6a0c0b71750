//! A process run's log stays on the node that ran it while it runs, and its last lines are
//! copied to the database in the commit of the attempt's outcome, so every node serves them
//! (by message and over HTTP); each attempt keeps its own lines, at most `log_lines_kept`.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{JsonObject, LogConfig, OnInterrupt, ProcessJob, RunStatus};
use runwarden_cluster::postgres::TempPostgres;
use runwarden_cluster::{ClusterKinds, NewRun, Node, NodeConfig};

fn kinds() -> ClusterKinds {
    let sh = |script: &'static str| {
        move |_: &runwarden_cluster::JobInput<'_>| {
            Ok(ProcessJob::new("sh")
                .arg("-c")
                .arg(script)
                .job_for(&JsonObject::new()))
        }
    };
    ClusterKinds::new()
        .register(
            "echo",
            OnInterrupt::Rerun,
            sh("echo one; echo two; echo oops >&2; echo three"),
        )
        .register(
            "flood",
            OnInterrupt::Rerun,
            sh("i=1; while [ $i -le 50 ]; do echo line $i; i=$((i+1)); done"),
        )
        .register("flaky", OnInterrupt::Rerun, sh("echo trying; exit 3"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_the_log_of_a_run_another_ran() {
    let pg = TempPostgres::start().expect("PostgreSQL");
    let dir = std::env::temp_dir().join(format!("rw-cluster-logs-{}", std::process::id()));
    let mut config = NodeConfig::new(pg.url(), "worker");
    config.concurrency = 4;
    config.logs = Some(LogConfig::new(&dir));
    config.log_lines_kept = 10;
    let worker = Node::start(config, kinds()).await.expect("a node");
    let mut config = NodeConfig::new(pg.url(), "client");
    config.concurrency = 0;
    let client = Node::start(config, kinds()).await.expect("a node");

    let echo = client.submit(NewRun::new("echo")).await.expect("submit");
    let run = support::within("echo ends", client.wait(echo))
        .await
        .expect("wait");
    assert_eq!(run.status, RunStatus::Completed, "{run:?}");
    assert_eq!(run.node.as_deref(), Some("worker"));
    let lines = client.logs(echo, None).await.expect("logs");
    // Each stream in order (two pipes: their lines may interleave either way).
    let of = |stream: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.message.as_str())
            .collect()
    };
    assert_eq!(of("stdout"), ["one", "two", "three"], "{lines:?}");
    assert_eq!(of("stderr"), ["oops"], "{lines:?}");
    assert!(lines.iter().all(|l| l.attempt == 1));
    let end = lines.last().expect("lines");
    assert_eq!(
        (end.stream.as_str(), end.message.as_str()),
        ("job", "exited with code 0")
    );

    // Only the last `log_lines_kept` lines are copied.
    let flood = client.submit(NewRun::new("flood")).await.expect("submit");
    support::within("flood ends", client.wait(flood))
        .await
        .expect("wait");
    let lines = client.logs(flood, None).await.expect("logs");
    assert_eq!(lines.len(), 10, "{lines:?}");
    let text: Vec<&str> = lines
        .iter()
        .filter(|l| l.stream == "stdout")
        .map(|l| l.message.as_str())
        .collect();
    // The last ten: lines 42 to 50, then the exit.
    let want: Vec<String> = (42..=50).map(|i| format!("line {i}")).collect();
    assert_eq!(text, want);

    // Each attempt keeps its own lines; the latest is the default.
    let flaky = client
        .submit(NewRun::new("flaky").max_attempts(2))
        .await
        .expect("submit");
    let run = support::within("flaky ends", client.wait(flaky))
        .await
        .expect("wait");
    assert_eq!((run.status, run.attempt), (RunStatus::Failed, 2), "{run:?}");
    for attempt in [1, 2] {
        let lines = client.logs(flaky, Some(attempt)).await.expect("logs");
        assert!(
            lines.iter().any(|l| l.message == "trying")
                && lines.iter().all(|l| l.attempt == attempt),
            "attempt {attempt}: {lines:?}"
        );
    }
    assert_eq!(
        client.logs(flaky, None).await.expect("logs"),
        client.logs(flaky, Some(2)).await.expect("logs")
    );
    assert!(client.logs(flaky, Some(3)).await.expect("logs").is_empty());

    // Over HTTP from the client node.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(runwarden_cluster::http::serve(client.clone(), listener));
    let body: serde_json::Value = reqwest::get(format!("{base}/runs/{echo}/logs"))
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let oops = body["lines"]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["message"] == "oops"))
        .unwrap_or_else(|| panic!("no oops line: {body}"));
    assert_eq!(oops["stream"], "stderr", "{body}");
    let missing = reqwest::get(format!("{base}/runs/{}/logs", runwarden::RunId::new()))
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);

    worker.drain(Duration::from_secs(5)).await.expect("drain");
    client.drain(Duration::from_secs(5)).await.expect("drain");
    let _ = std::fs::remove_dir_all(&dir);
}
