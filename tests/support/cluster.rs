//! A cluster of real node processes on loopback, over a PostgreSQL the test starts itself
//! (or the one `RUNWARDEN_PG_URL` names). The test binary is its own node: started with
//! [`NODE_ENV`] set, [`main`] runs one node with the demo kinds `sleep` (may run again after
//! its node is lost) and `once` (at most once), whose jobs record each execution in a side
//! table, so a test can prove from the database that no `once` run executed twice.
#![allow(dead_code, unreachable_pub)]

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use runwarden::{BoxedJob, OnInterrupt, RunId, RunStatus};
use runwarden_cluster::postgres::TempPostgres;
use runwarden_cluster::{ClusterKinds, NewRun, Node, NodeConfig};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// Set in a child: its node's name. The child also reads [`PG_ENV`] and [`TIMINGS_ENV`].
pub const NODE_ENV: &str = "RUNWARDEN_TEST_NODE";
const PG_ENV: &str = "RUNWARDEN_TEST_NODE_PG";
const TIMINGS_ENV: &str = "RUNWARDEN_TEST_NODE_TIMINGS";

/// A node's timings and capacity, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub heartbeat_ms: u64,
    pub fence_after_ms: u64,
    pub dead_after_ms: u64,
    pub concurrency: usize,
}

impl Timings {
    pub const FAST: Timings = Timings {
        heartbeat_ms: 200,
        fence_after_ms: 1_000,
        dead_after_ms: 2_000,
        concurrency: 32,
    };

    fn config(&self, url: &str, name: &str) -> NodeConfig {
        let mut c = NodeConfig::new(url, name);
        c.heartbeat = Duration::from_millis(self.heartbeat_ms);
        c.fence_after = Duration::from_millis(self.fence_after_ms);
        c.dead_after = Duration::from_millis(self.dead_after_ms);
        c.poll = Duration::from_millis(200);
        c.cancel_grace = Duration::from_millis(500);
        c.concurrency = self.concurrency;
        c
    }
}

/// The side table every demo job writes a row into when it starts executing: one row per
/// (run, attempt), since an attempt is one execution (a claim counts one; a handed-back claim
/// never started), so an insert retried after a lost connection is not a second execution.
const EXECUTIONS: &str = "CREATE TABLE IF NOT EXISTS test_executions (
    run_id uuid NOT NULL, kind text NOT NULL, node text NOT NULL, attempt int NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (run_id, attempt))";

/// A connection to the side table that reconnects after a database restart.
struct Side {
    url: String,
    client: tokio::sync::Mutex<std::sync::Arc<tokio_postgres::Client>>,
}

impl Side {
    async fn record(&self, id: uuid::Uuid, kind: &str, node: &str, attempt: i32) {
        let start = Instant::now();
        loop {
            let client = self.client.lock().await.clone();
            match client
                .execute(
                    "INSERT INTO test_executions (run_id, kind, node, attempt)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[&id, &kind, &node, &attempt],
                )
                .await
            {
                Ok(_) => return,
                Err(e) => {
                    assert!(
                        start.elapsed() < Duration::from_secs(60),
                        "the side table is unreachable: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let mut slot = self.client.lock().await;
                    if slot.is_closed()
                        && let Ok((c, conn)) =
                            tokio_postgres::connect(&self.url, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
                        *slot = std::sync::Arc::new(c);
                    }
                }
            }
        }
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    tokio::spawn(conn);
    client
}

fn kinds(node: String, side: std::sync::Arc<Side>) -> ClusterKinds {
    let make = move |kind: &'static str| {
        let node = node.clone();
        let side = side.clone();
        move |input: &runwarden_cluster::JobInput<'_>| {
            let ms = input.params.get("ms").and_then(|v| v.as_u64()).unwrap_or(0);
            let (id, attempt) = (*input.run_id.as_uuid(), input.attempt as i32);
            let (node, side) = (node.clone(), side.clone());
            Ok(BoxedJob::new(move |ctx| async move {
                side.record(id, kind, &node, attempt).await;
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(ms)) => {}
                    () = ctx.cancelled() => {}
                }
                Ok(())
            }))
        }
    };
    ClusterKinds::new()
        .register("sleep", OnInterrupt::Rerun, make("sleep"))
        .register("once", OnInterrupt::Fail, make("once"))
}

/// A child's entry point: runs a node until told on stdin to drain, then prints its report.
pub async fn node_main(name: String) {
    let url = std::env::var(PG_ENV).expect("the child's database");
    let t: Vec<u64> = std::env::var(TIMINGS_ENV)
        .expect("the child's timings")
        .split(',')
        .map(|s| s.parse().expect("a number"))
        .collect();
    let timings = Timings {
        heartbeat_ms: t[0],
        fence_after_ms: t[1],
        dead_after_ms: t[2],
        concurrency: t[3] as usize,
    };
    let side = std::sync::Arc::new(Side {
        client: tokio::sync::Mutex::new(std::sync::Arc::new(connect(&url).await)),
        url: url.clone(),
    });
    let node = Node::start(timings.config(&url, &name), kinds(name.clone(), side))
        .await
        .expect("the node starts");
    let info = node.info().await.expect("info");
    println!("ready {}", info.id);
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let deadline = match lines.next_line().await {
        Ok(Some(line)) => line
            .strip_prefix("drain ")
            .and_then(|ms| ms.trim().parse().ok())
            .unwrap_or(0),
        _ => 0,
    };
    let report = node
        .drain(Duration::from_millis(deadline))
        .await
        .expect("drain");
    println!(
        "report {}",
        serde_json::to_string(&report).expect("a report")
    );
}

/// One node process.
pub struct NodeProc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    pub pid: i32,
}

/// The cluster under test.
pub struct Cluster {
    pub pg: TempPostgres,
    pub timings: Timings,
    pub nodes: HashMap<String, NodeProc>,
    /// A client node in this process: it submits, queries and cancels, and runs nothing.
    pub client: Node,
    /// A plain connection, to read the tables the assertions check.
    pub sql: tokio_postgres::Client,
}

impl Cluster {
    pub async fn start(timings: Timings) -> Cluster {
        let pg = TempPostgres::start().unwrap_or_else(|e| panic!("no PostgreSQL: {e}"));
        let sql = connect(pg.url()).await;
        sql.batch_execute(EXECUTIONS).await.expect("side table");
        let mut config = timings.config(pg.url(), "client");
        config.concurrency = 0;
        // It is never killed: leaving the lease to the node processes lets tests kill the
        // leader.
        config.may_lead = false;
        let side = Side {
            client: tokio::sync::Mutex::new(std::sync::Arc::new(connect(pg.url()).await)),
            url: pg.url().to_owned(),
        };
        let client = Node::start(config, kinds("client".into(), std::sync::Arc::new(side)))
            .await
            .expect("the client node starts");
        Cluster {
            pg,
            timings,
            nodes: HashMap::new(),
            client,
            sql,
        }
    }

    /// A new connection for [`sql`](Self::sql) (after a database restart).
    pub async fn reconnect_sql(&mut self) {
        let start = Instant::now();
        loop {
            match tokio_postgres::connect(self.pg.url(), tokio_postgres::NoTls).await {
                Ok((client, conn)) => {
                    tokio::spawn(conn);
                    self.sql = client;
                    return;
                }
                Err(e) => {
                    assert!(
                        start.elapsed() < Duration::from_secs(30),
                        "no connection: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Starts a node process and waits until it has joined.
    pub async fn spawn(&mut self, name: &str) {
        let t = self.timings;
        let mut child = Command::new(std::env::current_exe().expect("this binary"))
            .env(NODE_ENV, name)
            .env(PG_ENV, self.pg.url())
            .env(
                TIMINGS_ENV,
                format!(
                    "{},{},{},{}",
                    t.heartbeat_ms, t.fence_after_ms, t.dead_after_ms, t.concurrency
                ),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("a node process");
        let pid = child.id().expect("a pid") as i32;
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("node {name} did not start"))
            .expect("read")
            .unwrap_or_default();
        assert!(line.starts_with("ready "), "node {name} said {line:?}");
        self.nodes.insert(
            name.to_owned(),
            NodeProc {
                child,
                stdin,
                stdout,
                pid,
            },
        );
    }

    pub fn signal(&self, name: &str, signal: nix::sys::signal::Signal) {
        let pid = self.nodes[name].pid;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).expect("signal");
    }

    /// SIGKILLs a node and reaps it.
    pub async fn kill(&mut self, name: &str) {
        self.signal(name, nix::sys::signal::Signal::SIGKILL);
        let mut p = self.nodes.remove(name).expect("a node");
        let _ = p.child.wait().await;
    }

    /// Drains a node (runs may go on for `deadline`) and returns its report.
    pub async fn drain(&mut self, name: &str, deadline: Duration) -> serde_json::Value {
        let mut p = self.nodes.remove(name).expect("a node");
        let mut stdin = p.stdin.take().expect("stdin");
        stdin
            .write_all(format!("drain {}\n", deadline.as_millis()).as_bytes())
            .await
            .expect("tell the node to drain");
        drop(stdin);
        let report = tokio::time::timeout(deadline + Duration::from_secs(30), async {
            while let Some(line) = p.stdout.next_line().await.expect("read") {
                if let Some(json) = line.strip_prefix("report ") {
                    return serde_json::from_str(json).expect("a report");
                }
            }
            panic!("node {name} ended without a report")
        })
        .await
        .unwrap_or_else(|_| panic!("node {name} did not drain"));
        let status = p.child.wait().await.expect("wait");
        assert!(status.success(), "node {name} exited {status}");
        report
    }

    /// Submits these runs, in batches of 500.
    pub async fn submit_runs(&self, runs: Vec<NewRun>) -> Vec<RunId> {
        let mut ids = Vec::with_capacity(runs.len());
        for chunk in runs.chunks(500) {
            for answer in self
                .client
                .submit_many(chunk.to_vec())
                .await
                .expect("a batch submit")
            {
                ids.push(answer.expect("accepted"));
            }
        }
        ids
    }

    /// Submits `n` runs of `kind`, each sleeping `ms(i)`, in batches of 500.
    pub async fn submit(&self, kind: &str, n: usize, ms: impl Fn(usize) -> u64) -> Vec<RunId> {
        self.submit_mix(n, |_| kind, ms).await
    }

    /// Submits `n` runs, the `i`th of `kind(i)`, sleeping `ms(i)`, in batches of 500.
    pub async fn submit_mix<'k>(
        &self,
        n: usize,
        kind: impl Fn(usize) -> &'k str,
        ms: impl Fn(usize) -> u64,
    ) -> Vec<RunId> {
        let mut ids = Vec::with_capacity(n);
        let runs: Vec<NewRun> = (0..n)
            .map(|i| NewRun::new(kind(i)).param("ms", ms(i)))
            .collect();
        for chunk in runs.chunks(500) {
            for answer in self
                .client
                .submit_many(chunk.to_vec())
                .await
                .expect("a batch submit")
            {
                ids.push(answer.expect("accepted"));
            }
        }
        ids
    }

    /// Waits until no run is queued or running, failing after `limit`.
    pub async fn settle(&self, limit: Duration) {
        let start = Instant::now();
        loop {
            let s = self.client.stats().await.expect("stats");
            if s.queued == 0 && s.running == 0 {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "runs still active after {limit:?}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every id has exactly one row, in a terminal status; answers the count per status.
    pub async fn ended_once(&self, ids: &[RunId]) -> HashMap<RunStatus, usize> {
        let mut counts = HashMap::new();
        for id in ids {
            let run = self
                .client
                .status(*id)
                .await
                .expect("status")
                .unwrap_or_else(|| panic!("run {id} was lost"));
            assert!(run.status.is_terminal(), "run {id} is {:?}", run.status);
            *counts.entry(run.status).or_insert(0) += 1;
        }
        let rows: i64 = self
            .sql
            .query_one("SELECT count(*) FROM rw_runs", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(rows as usize, ids.len(), "the table holds other runs");
        // The history agrees: each run's events end with one terminal status, the one its
        // row holds, and none follows it.
        let bad = self
            .sql
            .query(
                "SELECT e.run_id FROM rw_events e JOIN rw_runs r ON r.id = e.run_id
                 GROUP BY e.run_id, r.status
                 HAVING count(*) FILTER (WHERE e.status IN ('completed', 'failed', 'cancelled'))
                        <> 1
                     OR (array_agg(e.status ORDER BY e.tx, e.seq))[count(*)] <> r.status",
                &[],
            )
            .await
            .expect("events");
        assert!(
            bad.is_empty(),
            "{} runs whose events do not end once, as their row does, e.g. {:?}",
            bad.len(),
            bad.first().map(|r| r.get::<_, uuid::Uuid>(0))
        );
        let with_events: i64 = self
            .sql
            .query_one("SELECT count(DISTINCT run_id) FROM rw_events", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(with_events as usize, ids.len(), "runs without events");
        counts
    }

    /// No `once` run executed more than once.
    pub async fn once_ran_at_most_once(&self) {
        let twice = self
            .sql
            .query(
                "SELECT run_id, count(*) FROM test_executions WHERE kind = 'once'
                 GROUP BY run_id HAVING count(*) > 1",
                &[],
            )
            .await
            .expect("executions");
        assert!(
            twice.is_empty(),
            "{} at-most-once runs executed twice, e.g. {:?}",
            twice.len(),
            twice.first().map(|r| r.get::<_, uuid::Uuid>(0))
        );
    }

    /// How many executions the side table holds for `kind`.
    pub async fn executions(&self, kind: &str) -> i64 {
        self.sql
            .query_one(
                "SELECT count(*) FROM test_executions WHERE kind = $1",
                &[&kind],
            )
            .await
            .expect("executions")
            .get(0)
    }

    /// A node's current id, by name (the newest one).
    pub async fn node_id(&self, name: &str) -> uuid::Uuid {
        self.sql
            .query_one(
                "SELECT id FROM rw_nodes WHERE name = $1 ORDER BY started_at DESC LIMIT 1",
                &[&name],
            )
            .await
            .expect("a node")
            .get(0)
    }
}

/// A cluster test's `main` (`harness = false`): a node when [`NODE_ENV`] is set, else the
/// test.
pub fn main<T: std::future::Future<Output = ()>>(name: &str, test: impl FnOnce() -> T) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(node) = std::env::var(NODE_ENV) {
        rt.block_on(node_main(node));
        return;
    }
    println!("running 1 test");
    rt.block_on(test());
    println!("test {name} ... ok");
    println!();
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}
