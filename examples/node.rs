//! One cluster node: runs its share of the runs in a PostgreSQL database shared with other
//! nodes, and serves the HTTP API for the whole cluster.
//!
//! ```text
//! cargo run --release --example node -- --pg postgres://runwarden@127.0.0.1:5432/runwarden \
//!     --name a --http 127.0.0.1:8081
//! ```
//!
//! Flags: `--pg URL` (required), `--name NAME`, `--http ADDR`, `--concurrency N` (64),
//! `--heartbeat-ms MS` (1000), `--fence-after-ms MS` (5000), `--dead-after-ms MS` (10000),
//! `--seconds S` (drain and exit after S seconds; else at Ctrl-C), `--submit N` (submit N
//! `sleep` runs of 100 ms at start). Demo kinds: `sleep` (params `ms`: completes after that
//! long, or when cancelled; may run again if its node is lost) and `once` (the same, at most
//! once: a run lost with its node ends `failed`, `node_lost`).
use std::time::Duration;

use runwarden::{BoxedJob, Json, OnInterrupt};
use runwarden_cluster::{ClusterKinds, JobInput, NewRun, Node, NodeConfig};

struct Args {
    config: NodeConfig,
    http: Option<String>,
    seconds: Option<u64>,
    submit: usize,
}

fn usage(why: &str) -> ! {
    eprintln!(
        "{why}\nusage: node --pg URL [--name NAME] [--http ADDR] [--concurrency N] \
         [--heartbeat-ms MS] [--fence-after-ms MS] [--dead-after-ms MS] [--seconds S] [--submit N]"
    );
    std::process::exit(2)
}

fn parse() -> Args {
    let mut pg = None;
    let mut name = format!("node-{}", std::process::id());
    let (mut http, mut seconds, mut submit) = (None, None, 0);
    let (mut concurrency, mut hb, mut fence, mut dead) = (64usize, 1000u64, 5000u64, 10000u64);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        let number = |v: String| -> u64 {
            v.parse()
                .unwrap_or_else(|_| usage(&format!("{flag}: `{v}` is not a number")))
        };
        match flag.as_str() {
            "--pg" => pg = Some(value()),
            "--name" => name = value(),
            "--http" => http = Some(value()),
            "--concurrency" => concurrency = number(value()) as usize,
            "--heartbeat-ms" => hb = number(value()),
            "--fence-after-ms" => fence = number(value()),
            "--dead-after-ms" => dead = number(value()),
            "--seconds" => seconds = Some(number(value())),
            "--submit" => submit = number(value()) as usize,
            other => usage(&format!("unknown flag {other}")),
        }
    }
    let mut config = NodeConfig::new(pg.unwrap_or_else(|| usage("--pg URL is required")), name);
    config.concurrency = concurrency;
    config.heartbeat = Duration::from_millis(hb);
    config.fence_after = Duration::from_millis(fence);
    config.dead_after = Duration::from_millis(dead);
    if let Err(e) = config.check() {
        usage(&e.to_string());
    }
    Args {
        config,
        http,
        seconds,
        submit,
    }
}

fn sleeper(input: &JobInput<'_>) -> Result<BoxedJob, String> {
    let ms = match input.params.get("ms") {
        None => 100,
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("`ms` must be a whole number of milliseconds, not {v}"))?,
    };
    Ok(BoxedJob::new(move |ctx| async move {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(ms)) => Ok(Json::from(ms)),
            () = ctx.cancelled() => Ok(Json::from("cancelled")),
        }
    }))
}

#[tokio::main]
async fn main() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let args = parse();
    let kinds = ClusterKinds::new()
        .register("sleep", OnInterrupt::Rerun, sleeper)
        .register("once", OnInterrupt::Fail, sleeper);
    let name = args.config.name.clone();
    let node = match Node::start(args.config, kinds).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("node {name} could not start: {e}");
            std::process::exit(1);
        }
    };
    let info = node.info().await.expect("the node answers");
    println!("node {name} joined as {}", info.id);
    if let Some(addr) = &args.http {
        let listener = match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("cannot listen on {addr}: {e}");
                std::process::exit(1);
            }
        };
        println!("HTTP API on http://{addr}/runs");
        tokio::spawn(runwarden_cluster::http::serve(node.clone(), listener));
    }
    if args.submit > 0 {
        let runs: Vec<NewRun> = (0..args.submit)
            .map(|_| NewRun::new("sleep").param("ms", 100))
            .collect();
        for chunk in runs.chunks(1000) {
            if let Err(e) = node.submit_many(chunk.to_vec()).await {
                eprintln!("submit failed: {e}");
            }
        }
        println!("submitted {} sleep runs", args.submit);
    }
    match args.seconds {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    let report = node.drain(Duration::from_secs(5)).await;
    match report {
        Ok(r) => println!("drained: {}", serde_json::to_string(&r).unwrap_or_default()),
        Err(e) => eprintln!("drain failed: {e}"),
    }
}
