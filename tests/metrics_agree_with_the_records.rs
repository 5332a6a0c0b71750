//! A Prometheus scrape of `GET /metrics`, by a real client from a real server, during a mixed
//! workload (completions, errors, panics, retries, time limits, cancels, two queues, kinds and
//! closures, runs still running) agrees with the registry's records: the count of every
//! (queue, kind, status) exactly, retries and time limits exactly, and the p99 run duration
//! falls in the bucket the histogram names for it.
#[path = "support/helpers.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use runwarden::http::{HttpOptions, serve};
use runwarden::{
    BoxedJob, JobError, Json, Kind, ListQuery, OnInterrupt, QueueConfig, RetryPolicy, RunRecord,
    RunSpec, RunStatus, Runwarden,
};
use support::within;

type Labels = BTreeMap<String, String>;

/// One scrape, parsed: every sample by name, with its labels.
struct Scrape(Vec<(String, Labels, f64)>);

impl Scrape {
    fn parse(text: &str) -> Scrape {
        let mut samples = Vec::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let value = if value == "+Inf" {
                f64::INFINITY
            } else {
                value.parse().expect("a number")
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_owned(), Labels::new()),
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').expect("closing brace");
                    let labels = rest
                        .split(',')
                        .map(|kv| {
                            let (k, v) = kv.split_once('=').expect("label=value");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name.to_owned(), labels)
                }
            };
            samples.push((name, labels, value));
        }
        Scrape(samples)
    }

    /// The sum of `name` over the samples whose labels include all of `want`.
    fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && want
                        .iter()
                        .all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// The cumulative buckets of histogram `name` summed over the series matching `want`.
    fn buckets(&self, name: &str, want: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for (n, labels, v) in &self.0 {
            if n != &format!("{name}_bucket")
                || !want
                    .iter()
                    .all(|(k, val)| labels.get(*k).map(String::as_str) == Some(*val))
            {
                continue;
            }
            let le = match labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                s => s.parse().expect("le"),
            };
            let e = by_le.entry(le.to_bits()).or_insert((le, 0.0));
            e.1 += v;
        }
        let mut out: Vec<(f64, f64)> = by_le.into_values().collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

/// The bucket `(lower, upper]` in which the histogram puts its `q` quantile.
fn quantile_bucket(buckets: &[(f64, f64)], q: f64) -> (f64, f64) {
    let count = buckets.last().expect("+Inf bucket").1;
    let rank = (q * count).ceil().max(1.0);
    let mut lower = 0.0;
    for &(le, seen) in buckets {
        if seen >= rank {
            return (lower, le);
        }
        lower = le;
    }
    panic!("no bucket holds rank {rank} of {count}");
}

/// The `q` quantile of the records' own durations (rank `ceil(q × n)`), in seconds.
fn quantile(records: &[&RunRecord], q: f64) -> f64 {
    let mut secs: Vec<f64> = records
        .iter()
        .map(|r| r.duration_ms.expect("an ended run has a duration") / 1000.0)
        .collect();
    secs.sort_by(f64::total_cmp);
    let rank = ((q * secs.len() as f64).ceil() as usize).max(1);
    secs[rank - 1]
}

fn int(params: &runwarden::JsonObject, key: &str) -> u64 {
    match params.get(key) {
        Some(Json::Int(n)) => *n as u64,
        _ => 0,
    }
}

async fn scrape(client: &reqwest::Client, base: &str) -> Scrape {
    let r = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(r.status(), 200);
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    Scrape::parse(&r.text().await.expect("body"))
}

/// Checks a scrape against every record the registry holds.
fn check(scrape: &Scrape, records: &[RunRecord]) {
    let mut expected: HashMap<(String, String, &str), f64> = HashMap::new();
    for r in records.iter().filter(|r| r.status.is_terminal()) {
        let key = (
            r.queue.clone(),
            r.kind.clone().unwrap_or_default(),
            r.status.as_str(),
        );
        *expected.entry(key).or_default() += 1.0;
    }
    for ((queue, kind, status), n) in &expected {
        let got = scrape.sum(
            "runwarden_runs_finished_total",
            &[("queue", queue), ("kind", kind), ("status", status)],
        );
        assert_eq!(got, *n, "runs_finished_total{{{queue},{kind},{status}}}");
    }
    let all_finished = records.iter().filter(|r| r.status.is_terminal()).count();
    assert_eq!(
        scrape.sum("runwarden_runs_finished_total", &[]),
        all_finished as f64,
        "no finished run is counted that the registry does not hold"
    );
    let failed = records
        .iter()
        .filter(|r| r.status == RunStatus::Failed)
        .count();
    assert_eq!(
        scrape.sum("runwarden_runs_finished_total", &[("status", "failed")]),
        failed as f64
    );

    // p99 of run duration, per terminal status, of the runs that started.
    for status in [
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ] {
        let started: Vec<&RunRecord> = records
            .iter()
            .filter(|r| r.status == status && r.started_at.is_some())
            .collect();
        let buckets = scrape.buckets(
            "runwarden_run_duration_seconds",
            &[("status", status.as_str())],
        );
        assert_eq!(
            buckets.last().map(|b| b.1),
            Some(started.len() as f64),
            "{status}: one duration per run that started"
        );
        if started.is_empty() {
            continue;
        }
        let (lower, upper) = quantile_bucket(&buckets, 0.99);
        let p99 = quantile(&started, 0.99);
        assert!(
            lower < p99 && p99 <= upper || (lower == 0.0 && p99 == 0.0),
            "{status}: the records' p99 {p99}s is in the histogram's bucket ({lower}, {upper}]"
        );
    }

    // Every run that started has one queue wait.
    let started = records.iter().filter(|r| r.started_at.is_some()).count();
    assert_eq!(
        scrape.sum("runwarden_queue_wait_seconds_count", &[]),
        started as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_during_a_mixed_workload_matches_the_records() {
    // Each held run says when it has started.
    let (started_tx, mut started_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let rw = Runwarden::builder()
        .queue("batch", QueueConfig::limited(2))
        .job_kind("work", OnInterrupt::Fail, |params| {
            let ms = int(params, "ms");
            let fail = int(params, "fail") == 1;
            Ok(BoxedJob::repeatable(move |_ctx| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if fail {
                    return Err(JobError::msg("failed on purpose"));
                }
                Ok(())
            }))
        })
        .job_kind("flaky", OnInterrupt::Fail, |_| {
            Ok(BoxedJob::repeatable(|ctx| async move {
                if ctx.attempt() == 1 {
                    return Err(JobError::msg("first attempt fails"));
                }
                Ok(())
            }))
        })
        .job_kind("slow", OnInterrupt::Fail, |_| {
            // Past its time limit, it stops when signalled.
            Ok(BoxedJob::repeatable(|ctx| async move {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(30)) => {}
                    () = ctx.cancelled() => {}
                }
                Ok(())
            }))
        })
        .job_kind("panics", OnInterrupt::Fail, |_| {
            Ok(BoxedJob::repeatable(|_ctx| async move {
                if true {
                    panic!("a job that panics");
                }
                Ok(())
            }))
        })
        .job_kind("hold", OnInterrupt::Fail, move |_| {
            let started = started_tx.clone();
            Ok(BoxedJob::repeatable(move |ctx| {
                let started = started.clone();
                async move {
                    let _ = started.send(());
                    ctx.cancelled().await;
                    Ok(())
                }
            }))
        })
        .start()
        .await
        .expect("runwarden starts");
    let (addr, _server) = serve(
        "127.0.0.1:0".parse().expect("addr"),
        rw.clone(),
        HttpOptions::default(),
    )
    .await
    .expect("server starts");
    let base = format!("http://{addr}");
    let client = reqwest::Client::new();

    let mut finite = Vec::new();
    let submit = |spec: RunSpec, kind: &str| rw.submit_job(spec, Kind(kind)).expect("submit");
    for i in 0..300i64 {
        let spec = RunSpec::new("work")
            .param("ms", i % 40)
            .param("fail", i64::from(i % 17 == 0));
        finite.push(submit(spec, "work"));
    }
    for _ in 0..40 {
        let spec = RunSpec::new("flaky")
            .queue("batch")
            .retry(RetryPolicy::attempts(3).backoff(Duration::ZERO, Duration::ZERO));
        finite.push(submit(spec, "flaky"));
    }
    for _ in 0..10 {
        let spec = RunSpec::new("slow")
            .queue("batch")
            .timeout(Duration::from_millis(20));
        finite.push(submit(spec, "slow"));
    }
    for _ in 0..5 {
        finite.push(submit(RunSpec::new("panics"), "panics"));
    }
    for i in 0..7u64 {
        let id = rw
            .submit(RunSpec::new("closure"), move |_ctx| async move {
                tokio::time::sleep(Duration::from_millis(i)).await;
                Ok(())
            })
            .expect("submit");
        finite.push(id);
    }
    let holds: Vec<_> = (0..20)
        .map(|_| submit(RunSpec::new("hold"), "hold"))
        .collect();
    // Half the held runs are cancelled once running; the other half stay running.
    within("the held runs to start", async {
        for _ in 0..holds.len() {
            started_rx.recv().await.expect("a held run starts");
        }
    })
    .await;
    for id in &holds[..10] {
        rw.cancel(*id).await.expect("cancel");
        finite.push(*id);
    }
    for id in &finite {
        within("a run to end", rw.wait(*id)).await.expect("wait");
    }

    // The scrape, with ten runs still running.
    let all = || async {
        rw.list(ListQuery::default().limit(usize::MAX))
            .await
            .expect("list")
            .runs
    };
    let records = all().await;
    let during = scrape(&client, &base).await;
    assert_eq!(
        records
            .iter()
            .filter(|r| r.status == RunStatus::Running)
            .count(),
        10
    );
    check(&during, &records);
    assert_eq!(
        during.sum(
            "runwarden_run_retries_total",
            &[("queue", "batch"), ("kind", "flaky")]
        ),
        40.0
    );
    assert_eq!(
        during.sum(
            "runwarden_run_timeouts_total",
            &[("queue", "batch"), ("kind", "slow")]
        ),
        10.0
    );
    let failed = records
        .iter()
        .filter(|r| r.status == RunStatus::Failed)
        .count();
    // 18 errors (every 17th of 300), 10 time limits, 5 panics.
    assert_eq!(failed, 18 + 10 + 5);
    assert_eq!(
        during.sum(
            "runwarden_queue_runs",
            &[("queue", "default"), ("state", "running")]
        ),
        10.0
    );

    // The rest are cancelled: the counts follow.
    for id in &holds[10..] {
        rw.cancel(*id).await.expect("cancel");
        within("a held run to end", rw.wait(*id))
            .await
            .expect("wait");
    }
    let records = all().await;
    let after = scrape(&client, &base).await;
    check(&after, &records);
    assert_eq!(
        after.sum(
            "runwarden_runs_finished_total",
            &[("kind", "hold"), ("status", "cancelled")]
        ),
        20.0
    );

    // `/stats` says the same, and the last hour's minutes hold every end.
    let stats: serde_json::Value = client
        .get(format!("{base}/stats"))
        .send()
        .await
        .expect("GET /stats")
        .json()
        .await
        .expect("json");
    let since = &stats["finished_since_start"];
    assert_eq!(since["failed"], failed as u64);
    assert_eq!(
        since["cancelled"],
        records
            .iter()
            .filter(|r| r.status == RunStatus::Cancelled)
            .count() as u64
    );
    let minutes = stats["recent"]["minutes"].as_array().expect("minutes");
    assert_eq!(minutes.len(), 60);
    let in_minutes: u64 = minutes
        .iter()
        .map(|m| {
            m["completed"].as_u64().expect("n")
                + m["failed"].as_u64().expect("n")
                + m["cancelled"].as_u64().expect("n")
        })
        .sum();
    assert_eq!(in_minutes, records.len() as u64);
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}
