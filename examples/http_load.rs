//! A load check of the HTTP API on loopback (a benchmark, not a test): requests per second for
//! `GET /runs/{id}`, filtered listings (`GET /runs?status=failed`, `GET /runs?kind=..&label=..`
//! deep in the pages) and `POST /runs` from concurrent keep-alive clients while runs execute,
//! with `--records` finished runs held (1 in 100 failed).
//!
//! ```text
//! cargo run --release --example http_load -- [--seconds 5] [--clients 16] [--records 100000]
//!     [--json]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use runwarden::http::{HttpOptions, serve};
use runwarden::{BoxedJob, Kind, OnInterrupt, Retention, RunSpec, Runwarden};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut seconds, mut clients, mut as_json, mut records) = (5u64, 16usize, false, 100_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => seconds = args.next().ok_or("value")?.parse()?,
            "--clients" => clients = args.next().ok_or("value")?.parse()?,
            "--json" => as_json = true,
            "--records" => records = args.next().ok_or("value")?.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let rw = Runwarden::builder()
        .retention(Retention {
            max_finished: records + 1_000_000,
            ..Retention::default()
        })
        .job_kind("noop", OnInterrupt::Fail, |_| {
            Ok(BoxedJob::repeatable(|_| async { Ok(()) }))
        })
        .job_kind("fail", OnInterrupt::Fail, |_| {
            Ok(BoxedJob::repeatable(|_| async {
                Err::<(), _>(runwarden::JobError::msg("failed on purpose"))
            }))
        })
        .job_kind("work", OnInterrupt::Fail, |_| {
            Ok(BoxedJob::repeatable(|_| async {
                tokio::time::sleep(Duration::from_millis(5)).await;
                Ok(())
            }))
        })
        .start()
        .await?;
    // The history the listings filter: `records` finished runs, 1 in 100 failed.
    let started = Instant::now();
    for chunk in 0..records.div_ceil(1000) {
        let n = (records - chunk * 1000).min(1000);
        let batch = (0..n).map(|i| {
            let kind = if (chunk * 1000 + i) % 100 == 0 {
                "fail"
            } else {
                "noop"
            };
            let label = format!("report-{}", i % 10);
            (RunSpec::new(label), Kind(kind))
        });
        let ids: Vec<_> = rw.submit_many(batch).into_iter().flatten().collect();
        for id in ids {
            rw.wait(id).await?;
        }
    }
    if records > 0 {
        println!(
            "{records} finished runs recorded in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
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
    let deep = (records / 10 / 2).saturating_sub(50);
    let phases = [
        ("GET /runs/{id}", format!("/runs/{id}"), false),
        (
            "GET /runs?status=failed&limit=50",
            "/runs?status=failed&limit=50".to_owned(),
            false,
        ),
        (
            "GET /runs?kind&label, deep page",
            format!("/runs?kind=noop&label=report-3&limit=50&offset={deep}"),
            false,
        ),
        ("POST /runs", "/runs".to_owned(), true),
    ];
    for (name, path, post) in phases {
        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let until = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (client, url, done, errors) = (
                client.clone(),
                format!("{base}{path}"),
                done.clone(),
                errors.clone(),
            );
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let r = if post {
                        client
                            .post(&url)
                            .json(&json!({"kind": "work"}))
                            .send()
                            .await
                    } else {
                        client.get(&url).send().await
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
            "{name:<34} {rps:>10.0} req/s  ({} errors, {clients} clients, {seconds} s)",
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
            json!({"get_run_rps": results[0].1, "list_failed_rps": results[1].1,
                   "list_deep_page_rps": results[2].1, "post_runs_rps": results[3].1,
                   "records": records, "clients": clients, "seconds": seconds})
        );
    }
    Ok(())
}
