//! The cluster's figures: aggregate runs per second of trivial runs across several node
//! processes sharing one PostgreSQL (with `fsync` on), beside a floor of the same work done
//! by plain SQL loops in as many processes, and the rescue time after a node is SIGKILLed.
//!
//! ```text
//! cargo run --release --example cluster_bench -- --json
//! ```
//!
//! Flags: `--runs N` (default 30,000 per throughput phase), `--nodes N` (3),
//! `--concurrency N` (runs at once per node, 256), `--reps N` (3; each throughput figure is the
//! median of the repetitions, with min and max), `--pg URL` (a database of your own, which
//! this empties: the default starts a throwaway PostgreSQL), `--no-rescue`, `--json`.
//!
//! Phases, each on an emptied `rw_runs`, with the workers started and idle before the clock:
//! - **sql floor**: each process loops claim (the node's claim statement: `FOR UPDATE SKIP
//!   LOCKED`, a batch for its capacity) then finish (the node's fenced write, one statement
//!   per batch), with no actors, no jobs and no heartbeats: what this database allows for
//!   this schema on this machine.
//! - **runwarden**: node processes (`Node`: claims, one worker actor per run, a local
//!   registry, group-committed fenced writes, heartbeats, LISTEN) running a job that returns
//!   at once.
//!
//! In both, the parent submits the runs in batches of 1,000 (one committed statement each)
//! while they execute; the clock runs from the first submit until the last run is
//! `completed` in the table. Then **rescue**: every node holds `concurrency` runs that sleep,
//! one node is SIGKILLed, and the clock runs until none of its runs is left `running` (with
//! the default timings: heartbeat 1 s, dead after 10 s).
use std::process::Stdio;
use std::time::{Duration, Instant};

use runwarden::{BoxedJob, Json, OnInterrupt};
use runwarden_cluster::postgres::TempPostgres;
use runwarden_cluster::{ClusterKinds, NewRun, Node, NodeConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

struct Args {
    runs: usize,
    nodes: usize,
    concurrency: usize,
    reps: usize,
    pg: Option<String>,
    rescue: bool,
    json: bool,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "{why}\nusage: cluster_bench [--runs N] [--nodes N] [--concurrency N] [--reps N] \
         [--pg URL] [--no-rescue] [--json]"
    );
    std::process::exit(2)
}

fn parse(mut it: impl Iterator<Item = String>) -> Args {
    let mut a = Args {
        runs: 30_000,
        nodes: 3,
        concurrency: 256,
        reps: 3,
        pg: None,
        rescue: true,
        json: false,
    };
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let mut number = || -> usize {
            let v = value();
            match v.parse() {
                Ok(n) if n > 0 => n,
                _ => usage(&format!("{flag}: `{v}` is not a number above zero")),
            }
        };
        match flag.as_str() {
            "--runs" => a.runs = number(),
            "--nodes" => a.nodes = number(),
            "--concurrency" => a.concurrency = number(),
            "--reps" => a.reps = number(),
            "--pg" => a.pg = Some(value()),
            "--no-rescue" => a.rescue = false,
            "--json" => a.json = true,
            other => usage(&format!("unknown flag {other}")),
        }
    }
    a
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--child") {
        let _ = args.next();
        let role = args.next().unwrap_or_default();
        let rest: Vec<String> = args.collect();
        let (url, name, concurrency) = match rest.as_slice() {
            [url, name, c] => (url.clone(), name.clone(), c.parse().unwrap_or(1)),
            _ => usage("--child ROLE URL NAME CONCURRENCY"),
        };
        match role.as_str() {
            "node" => child_node(url, name, concurrency).await,
            "floor" => child_floor(url, concurrency).await,
            other => usage(&format!("unknown child role {other}")),
        }
        return;
    }
    let args = parse(args);
    if let Err(e) = run(&args).await {
        eprintln!("cluster_bench: {e:?}");
        std::process::exit(1);
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

async fn run(args: &Args) -> Result<(), Failure> {
    let temp;
    let url = match &args.pg {
        Some(url) => url.clone(),
        None => {
            temp = TempPostgres::start()?;
            temp.url().to_owned()
        }
    };
    // A client node: it migrates the schema and submits; it runs nothing, never leads.
    let mut config = NodeConfig::new(url.clone(), "bench-client");
    config.concurrency = 0;
    config.may_lead = false;
    let client = Node::start(config, kinds()).await?;
    let (sql, conn) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(conn);
    let fsync: String = sql.query_one("SHOW fsync", &[]).await?.get(0);
    let commit: String = sql.query_one("SHOW synchronous_commit", &[]).await?.get(0);
    let server: String = sql.query_one("SHOW server_version", &[]).await?.get(0);
    if !args.json {
        println!(
            "PostgreSQL {server}, fsync {fsync}, synchronous_commit {commit}; {} processes of \
             {} runs at once; {} runs per phase, {} reps",
            args.nodes, args.concurrency, args.runs, args.reps
        );
    }

    let mut floor = Vec::new();
    let mut rw = Vec::new();
    for _ in 0..args.reps {
        floor.push(phase(&sql, &client, args, &url, "floor").await?);
        rw.push(phase(&sql, &client, args, &url, "node").await?);
    }
    let rescue = if args.rescue {
        Some(rescue(&sql, &client, args, &url).await?)
    } else {
        None
    };
    let floor = Summary::of(&floor);
    let rw = Summary::of(&rw);
    // The nodes run with the default timings.
    let timings = NodeConfig::new(url.as_str(), "");
    if args.json {
        let phase = |s: &Summary| {
            serde_json::json!({
                "runs_per_sec": s.median, "min": s.min, "max": s.max,
                "submit_runs_per_sec": s.submit,
            })
        };
        let out = serde_json::json!({
            "postgres": server, "fsync": fsync, "synchronous_commit": commit,
            "processes": args.nodes, "concurrency": args.concurrency, "runs": args.runs,
            "reps": args.reps,
            "sql_floor": phase(&floor),
            "runwarden": phase(&rw),
            "runwarden_vs_floor": rw.median / floor.median,
            "rescue": rescue.as_ref().map(|r| serde_json::json!({
                "held": r.held, "ms": r.ms,
                "dead_after_ms": timings.dead_after.as_millis(),
                "heartbeat_ms": timings.heartbeat.as_millis(),
            })),
        });
        println!("{out}");
    } else {
        println!(
            "{:<12} {:>12} {:>12} {:>12} {:>16}",
            "", "runs/s", "min", "max", "submit runs/s"
        );
        for (name, s) in [("sql floor", &floor), ("runwarden", &rw)] {
            println!(
                "{name:<12} {:>12.0} {:>12.0} {:>12.0} {:>16.0}",
                s.median, s.min, s.max, s.submit
            );
        }
        println!("runwarden / floor: {:.2}", rw.median / floor.median);
        if let Some(r) = rescue {
            println!(
                "rescue: {} runs held by the killed node, none left running {} ms after \
                 SIGKILL (dead after {} ms, heartbeat {} ms)",
                r.held,
                r.ms,
                timings.dead_after.as_millis(),
                timings.heartbeat.as_millis()
            );
        }
    }
    Ok(())
}

fn kinds() -> ClusterKinds {
    ClusterKinds::new()
        .register("noop", OnInterrupt::Rerun, |_| {
            Ok(BoxedJob::new(|_| async { Ok(Json::Null) }))
        })
        .register("sleep", OnInterrupt::Rerun, |_| {
            Ok(BoxedJob::new(|ctx| async move {
                ctx.cancelled().await;
                Ok(Json::Null)
            }))
        })
}

struct Timed {
    runs_per_sec: f64,
    submit_per_sec: f64,
}

struct Summary {
    median: f64,
    min: f64,
    max: f64,
    submit: f64,
}

impl Summary {
    fn of(t: &[Timed]) -> Summary {
        let mut v: Vec<f64> = t.iter().map(|t| t.runs_per_sec).collect();
        v.sort_by(f64::total_cmp);
        let mut s: Vec<f64> = t.iter().map(|t| t.submit_per_sec).collect();
        s.sort_by(f64::total_cmp);
        Summary {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
            submit: s[s.len() / 2],
        }
    }
}

/// A worker process of this binary; killed with the value.
struct Worker {
    child: Child,
    id: Option<Uuid>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn spawn(role: &str, url: &str, name: &str, concurrency: usize) -> Result<Worker, Failure> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--child", role, url, name, &concurrency.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .map_err(|_| format!("{role} {name} did not start"))??
        .ok_or_else(|| format!("{role} {name} exited"))?;
    let id = line
        .strip_prefix("ready")
        .ok_or_else(|| format!("{role} {name} said {line:?}"))?
        .trim();
    let id = if id.is_empty() {
        None
    } else {
        Some(id.parse()?)
    };
    // Keep reading, so a chatty child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Worker { child, id })
}

async fn empty(sql: &Client) -> Result<(), Failure> {
    sql.batch_execute("TRUNCATE rw_runs, rw_events, rw_logs")
        .await?;
    sql.batch_execute("VACUUM ANALYZE rw_runs, rw_events")
        .await?;
    Ok(())
}

async fn phase(
    sql: &Client,
    client: &Node,
    args: &Args,
    url: &str,
    role: &str,
) -> Result<Timed, Failure> {
    empty(sql).await?;
    let mut workers = Vec::new();
    for i in 0..args.nodes {
        workers.push(spawn(role, url, &format!("{role}-{i}"), args.concurrency).await?);
    }
    let started = Instant::now();
    let batch: Vec<NewRun> = (0..1_000).map(|_| NewRun::new("noop")).collect();
    let mut left = args.runs;
    while left > 0 {
        let n = left.min(batch.len());
        for r in client.submit_many(batch[..n].to_vec()).await? {
            r?;
        }
        left -= n;
    }
    let submitted = started.elapsed();
    loop {
        let row = sql
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'completed'),
                        count(*) FILTER (WHERE status IN ('failed', 'cancelled'))
                 FROM rw_runs",
                &[],
            )
            .await?;
        let (done, bad): (i64, i64) = (row.get(0), row.get(1));
        if bad > 0 {
            return Err(format!("{bad} runs did not complete").into());
        }
        if usize::try_from(done)? >= args.runs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let took = started.elapsed();
    drop(workers);
    Ok(Timed {
        runs_per_sec: args.runs as f64 / took.as_secs_f64(),
        submit_per_sec: args.runs as f64 / submitted.as_secs_f64(),
    })
}

struct Rescue {
    held: i64,
    ms: u128,
}

async fn rescue(sql: &Client, client: &Node, args: &Args, url: &str) -> Result<Rescue, Failure> {
    empty(sql).await?;
    let mut workers = Vec::new();
    for i in 0..args.nodes {
        workers.push(spawn("node", url, &format!("node-{i}"), args.concurrency).await?);
    }
    let total = args.nodes * args.concurrency;
    let runs: Vec<NewRun> = (0..total).map(|_| NewRun::new("sleep")).collect();
    for chunk in runs.chunks(1_000) {
        client.submit_many(chunk.to_vec()).await?;
    }
    let victim = workers.pop().ok_or("no nodes")?;
    let victim_id = victim.id.ok_or("the node said no id")?;
    let held = loop {
        let held: i64 = sql
            .query_one(
                "SELECT count(*) FROM rw_runs WHERE status = 'running' AND node_id = $1",
                &[&victim_id],
            )
            .await?
            .get(0);
        if usize::try_from(held)? >= args.concurrency {
            break held;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let mut victim = victim;
    victim.child.start_kill()?;
    let killed = Instant::now();
    victim.child.wait().await?;
    loop {
        let left: i64 = sql
            .query_one(
                "SELECT count(*) FROM rw_runs WHERE status = 'running' AND node_id = $1",
                &[&victim_id],
            )
            .await?
            .get(0);
        if left == 0 {
            break;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            return Err(format!("{left} runs still held by the killed node after 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(Rescue {
        held,
        ms: killed.elapsed().as_millis(),
    })
}

/// A cluster node with the default timings; prints `ready ID` once it has joined.
async fn child_node(url: String, name: String, concurrency: usize) {
    let mut config = NodeConfig::new(url, name);
    config.concurrency = concurrency;
    config.claim_batch = concurrency.min(config.claim_batch);
    let node = match Node::start(config, kinds()).await {
        Ok(n) => n,
        Err(e) => usage(&format!("the node could not start: {e}")),
    };
    match node.info().await {
        Ok(info) => println!("ready {}", info.id),
        Err(e) => usage(&format!("the node does not answer: {e}")),
    }
    std::future::pending::<()>().await;
}

/// The floor: the claim and the fenced finish from a plain loop, in one connection.
async fn child_floor(url: String, concurrency: usize) {
    let (sql, conn) = match tokio_postgres::connect(&url, NoTls).await {
        Ok(c) => c,
        Err(e) => usage(&format!("cannot connect: {e}")),
    };
    tokio::spawn(conn);
    let node = *runwarden::RunId::new().as_uuid();
    let limit = i64::try_from(concurrency).unwrap_or(i64::MAX);
    println!("ready");
    let mut seq = 0i64;
    loop {
        seq += 1;
        let claimed = sql
            .query(
                "WITH c AS (
                    SELECT r.id FROM rw_runs r
                    WHERE r.status = 'queued' AND r.run_after <= now()
                    ORDER BY r.priority DESC, r.id
                    LIMIT $2
                    FOR UPDATE OF r SKIP LOCKED
                 )
                 UPDATE rw_runs r SET
                    status = 'running', node_id = $1, ran_on = 'floor', ran_on_id = $1,
                    lease_epoch = r.lease_epoch + 1, attempt = r.attempt + 1, claim_seq = $3,
                    started_at = coalesce(r.started_at, now())
                 FROM c WHERE r.id = c.id
                 RETURNING r.id, r.lease_epoch",
                &[&node, &limit, &seq],
            )
            .await;
        let claimed = match claimed {
            Ok(rows) => rows,
            Err(e) => usage(&format!("claim failed: {e}")),
        };
        if claimed.is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let ids: Vec<Uuid> = claimed.iter().map(|r| r.get(0)).collect();
        let epochs: Vec<i64> = claimed.iter().map(|r| r.get(1)).collect();
        let finished = sql
            .execute(
                "UPDATE rw_runs r SET status = 'completed', node_id = NULL, finished_at = now(),
                        result = 'null'::jsonb
                 FROM unnest($2::uuid[], $3::bigint[]) AS f(id, epoch)
                 WHERE r.id = f.id AND r.node_id = $1 AND r.lease_epoch = f.epoch
                   AND r.status = 'running'",
                &[&node, &ids, &epochs],
            )
            .await;
        if let Err(e) = finished {
            usage(&format!("finish failed: {e}"));
        }
    }
}
