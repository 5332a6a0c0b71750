//! A load check of the HTTP API on loopback (a benchmark, not a test): requests per second for
//! `GET /runs/{id}` and `POST /runs` from concurrent keep-alive clients while runs execute.
//!
//! ```text
//! cargo run --release --example http_load -- [--seconds 5] [--clients 16] [--json]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use runwarden::http::{HttpOptions, serve};
use runwarden::{BoxedJob, OnInterrupt, Runwarden};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut seconds, mut clients, mut as_json) = (5u64, 16usize, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().ok_or("value")?.parse()?,
            "--clients" => clients = args.next().ok_or("value")?.parse()?,
            "--json" => as_json = true,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let rw = Runwarden::builder()
        .job_kind("work", OnInterrupt::Fail, |_| {
            Ok(BoxedJob::repeatable(|_| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(())
            }))
        })
        .start()
        .await?;
    let (addr, server) = serve("127.0.0.1:0".parse()?, rw.clone(), HttpOptions::default()).await?;
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();
    let seed: serde_json::Value = client
        .post(format!("{base}/runs"))
        .json(&json!({"kind": "work"}))
        .send()
        .await?
        .json()
        .await?;
    let id = seed["id"].as_str().ok_or("no id")?.to_owned();

    let mut results = Vec::new();
    for (name, post) in [("GET /runs/{id}", false), ("POST /runs", true)] {
        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, base, id, done, errors) = (
                client.clone(),
                base.clone(),
                id.clone(),
                done.clone(),
                errors.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let r = if post {
                        client
                            .post(format!("{base}/runs"))
                            .json(&json!({"kind": "work"}))
                            .send()
                            .await
                    } else {
                        client.get(format!("{base}/runs/{id}")).send().await
                    };
                    match r {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        let secs = started.elapsed().as_secs_f64();
        let rps = done.load(Ordering::Relaxed) as f64 / secs;
        println!(
            "{name:<16} {rps:>10.0} req/s  ({} errors, {clients} clients, {seconds} s)",
            errors.load(Ordering::Relaxed)
        );
        results.push((name, rps));
    }
    server.abort();
    let report = rw.shutdown(Duration::from_secs(30)).await?;
    println!(
        "runs executed during the POST phase: {} completed",
        report.completed
    );
    if as_json {
        println!(
            "{}",
            json!({"get_run_rps": results[0].1, "post_runs_rps": results[1].1, "clients": clients, "seconds": seconds})
        );
    }
    Ok(())
}
