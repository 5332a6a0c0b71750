//! The example supervisor tree: an application root actor supervises runwarden's supervisor,
//! which supervises one worker per running run and its registry.
//!
//! ```text
//! cargo run --release --example supervisor_tree -- --runs 2000 --fail-every 7 \
//!     --panic-every 11 --cancel-every 13 --json
//! ```
//!
//! It submits a mixed workload, shows live progress, cancels the runs chosen for it right
//! after submitting them, drains with a deadline and prints a summary. Run `i` (from 1) is
//! chosen for cancel, panic, fail, timeout or retry when `i % K == 0` for `--cancel-every K`
//! and so on, with that precedence. With `--json` the last line of stdout is one JSON object
//! of counts.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use runwarden::ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use runwarden::{
    ErrorKind, EventFilter, EventItem, EventStream, RetryPolicy, RunId, RunSpec, RunStatus,
    Runwarden, SqliteStore,
};

const PLANNED_PANIC: &str = "planned panic";

#[derive(Debug, Clone)]
struct Flags {
    runs: u64,
    work_ms: u64,
    fail_every: u64,
    panic_every: u64,
    cancel_every: u64,
    timeout_every: u64,
    timeout_ms: u64,
    retry_every: u64,
    grace_ms: u64,
    drain_ms: u64,
    max_concurrent: Option<usize>,
    db: Option<String>,
    json: bool,
}

impl Flags {
    fn parse() -> Result<Flags, String> {
        let mut f = Flags {
            runs: 200,
            work_ms: 20,
            fail_every: 0,
            panic_every: 0,
            cancel_every: 0,
            timeout_every: 0,
            timeout_ms: 50,
            retry_every: 0,
            grace_ms: 1000,
            drain_ms: 10_000,
            max_concurrent: None,
            db: None,
            json: false,
        };
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            if flag == "--json" {
                f.json = true;
                continue;
            }
            if flag == "--help" || flag == "-h" {
                return Err(String::new());
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            if flag == "--db" {
                f.db = Some(value);
                continue;
            }
            let n: u64 = value
                .parse()
                .map_err(|_| format!("{flag}: `{value}` is not a whole number"))?;
            match flag.as_str() {
                "--runs" => f.runs = n,
                "--work-ms" => f.work_ms = n,
                "--fail-every" => f.fail_every = n,
                "--panic-every" => f.panic_every = n,
                "--cancel-every" => f.cancel_every = n,
                "--timeout-every" => f.timeout_every = n,
                "--timeout-ms" => f.timeout_ms = n,
                "--retry-every" => f.retry_every = n,
                "--grace-ms" => f.grace_ms = n,
                "--drain-ms" => f.drain_ms = n,
                "--max-concurrent" => f.max_concurrent = Some(n.max(1) as usize),
                other => return Err(format!("unknown flag {other}")),
            }
        }
        Ok(f)
    }

    fn chosen(every: u64, i: u64) -> bool {
        every != 0 && i % every == 0
    }

    fn behaviour(&self, i: u64) -> Behaviour {
        if Self::chosen(self.cancel_every, i) {
            Behaviour::Cancel
        } else if Self::chosen(self.panic_every, i) {
            Behaviour::Panic
        } else if Self::chosen(self.fail_every, i) {
            Behaviour::Fail
        } else if Self::chosen(self.timeout_every, i) {
            Behaviour::Timeout
        } else if Self::chosen(self.retry_every, i) {
            Behaviour::FailOnce
        } else {
            Behaviour::Work
        }
    }
}

const USAGE: &str = "usage: supervisor_tree [--runs N] [--work-ms MS] [--fail-every K] \
[--panic-every K] [--cancel-every K] [--timeout-every K] [--timeout-ms MS] [--retry-every K] \
[--grace-ms MS] [--drain-ms MS] [--max-concurrent N] [--db PATH] [--json]";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Work,
    Fail,
    Panic,
    /// Never finishes by itself; the example cancels it right after submitting it.
    Cancel,
    /// Never finishes by itself: its time limit signals it, and it stops then.
    Timeout,
    /// Fails its first attempt and succeeds on its second (retry policy of 3 attempts).
    FailOnce,
}

/// The application's root supervisor: runwarden's supervisor is spawned as its linked
/// child, as in any actor application embedding runwarden.
struct AppRoot;

impl Actor for AppRoot {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<()>,
        evt: SupervisionEvent,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(_, err) = evt {
            eprintln!("runwarden failed: {err}");
            myself.stop(Some("runwarden failed".into()));
        }
        Ok(())
    }
}

/// Live progress: a bar on a terminal, a plain line every half second otherwise.
fn spawn_progress(rw: Runwarden, total: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} ended  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        let period = Duration::from_millis(if bar.is_some() { 100 } else { 500 });
        loop {
            let Ok(stats) = rw.stats().await else { return };
            let ended = (stats.count(RunStatus::Completed)
                + stats.count(RunStatus::Failed)
                + stats.count(RunStatus::Cancelled)) as u64;
            let line = format!(
                "queued {} running {} completed {} failed {} cancelled {}",
                stats.count(RunStatus::Queued),
                stats.count(RunStatus::Running),
                stats.count(RunStatus::Completed),
                stats.count(RunStatus::Failed),
                stats.count(RunStatus::Cancelled)
            );
            match &bar {
                Some(bar) => {
                    bar.set_position(ended);
                    bar.set_message(line);
                }
                None => eprintln!("progress: {ended}/{total} ended; {line}"),
            }
            if ended >= total {
                if let Some(bar) = bar {
                    bar.finish();
                }
                return;
            }
            tokio::time::sleep(period).await;
        }
    })
}

/// Follows every run's events and returns the most runs seen `Running` at once, or `None` if
/// the subscriber lagged (then the registry's own counter is used).
fn watch_peak(mut events: EventStream, total: u64) -> tokio::task::JoinHandle<Option<usize>> {
    tokio::spawn(async move {
        let mut running = std::collections::HashSet::new();
        let (mut peak, mut ended) = (0usize, 0u64);
        while ended < total {
            match events.next().await? {
                EventItem::Lagged(_) => return None,
                EventItem::Event(e) => match e.status() {
                    Some(RunStatus::Running) => {
                        running.insert(e.run_id());
                        peak = peak.max(running.len());
                    }
                    Some(status) => {
                        running.remove(&e.run_id());
                        ended += u64::from(status.is_terminal());
                    }
                    None => {}
                },
            }
        }
        Some(peak)
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let flags = match Flags::parse() {
        Ok(f) => f,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("{e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    // The planned panics are part of the workload; any other panic still reports as usual.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let planned = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.starts_with(PLANNED_PANIC));
        if !planned {
            default_hook(info);
        }
    }));
    match run(flags).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("supervisor_tree: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags) -> Result<(), Box<dyn std::error::Error>> {
    let (root, root_handle) = Actor::spawn(None, AppRoot, ()).await?;
    let mut builder = Runwarden::builder()
        .cancel_grace(Duration::from_millis(flags.grace_ms))
        // Large enough that the example's own event subscriber does not lag.
        .event_buffer(1 << 16)
        .call_timeout(Duration::from_secs(30));
    if let Some(n) = flags.max_concurrent {
        builder = builder.max_concurrent(n);
    }
    if let Some(db) = &flags.db {
        builder = builder.store(SqliteStore::open(db)?);
    }
    let rw = builder.start_linked(root.get_cell()).await?;
    let recovery = rw.recovery().clone();
    if recovery.recovered() > 0 {
        eprintln!(
            "recovered {} runs left active by an earlier process ({} requeued, {} interrupted)",
            recovery.recovered(),
            recovery.requeued.len(),
            recovery.interrupted.len()
        );
    }

    let started = Instant::now();
    let progress = spawn_progress(rw.clone(), flags.runs);
    let peak_watch = watch_peak(rw.events(EventFilter::All).await?, flags.runs);
    let work = Duration::from_millis(flags.work_ms);
    let mut ids: Vec<RunId> = Vec::with_capacity(flags.runs as usize);
    for i in 1..=flags.runs {
        let behaviour = flags.behaviour(i);
        let mut spec = RunSpec::new(format!("{behaviour:?}").to_lowercase())
            .name(format!("run {i}"))
            .param("i", i as i64);
        match behaviour {
            Behaviour::Timeout => spec = spec.timeout(Duration::from_millis(flags.timeout_ms)),
            Behaviour::FailOnce => {
                let policy = RetryPolicy::attempts(3)
                    .backoff(Duration::from_millis(5), Duration::from_millis(50));
                spec = spec.retry(policy);
            }
            _ => {}
        }
        let id = rw.submit_job(
            spec,
            runwarden::BoxedJob::repeatable(move |ctx| async move {
                match behaviour {
                    Behaviour::Work => {
                        tokio::time::sleep(work).await;
                        Ok(())
                    }
                    Behaviour::Fail => Err(runwarden::JobError::msg(format!(
                        "run {i} failed on purpose"
                    ))),
                    Behaviour::Panic => panic!("{PLANNED_PANIC} in run {i}"),
                    Behaviour::Cancel => {
                        ctx.cancelled().await;
                        Ok(())
                    }
                    Behaviour::Timeout => {
                        ctx.cancelled().await;
                        Err(runwarden::JobError::msg(format!(
                            "run {i} stopped at its time limit"
                        )))
                    }
                    Behaviour::FailOnce if ctx.attempt() == 1 => Err(runwarden::JobError::msg(
                        format!("run {i} failed its first attempt"),
                    )),
                    Behaviour::FailOnce => {
                        tokio::time::sleep(work).await;
                        Ok(())
                    }
                }
            }),
        )?;
        if behaviour == Behaviour::Cancel {
            rw.cancel(id).await?;
        }
        ids.push(id);
    }
    let submitted_in = started.elapsed();

    let report = rw.drain(Duration::from_millis(flags.drain_ms)).await?;
    let elapsed = started.elapsed();
    progress.abort();

    // Count from the registry's records: a run without a terminal record is lost.
    let mut counts = [0usize; 5];
    let (mut lost, mut timed_out, mut retried) = (0usize, 0usize, 0usize);
    for id in &ids {
        match rw.status(*id).await {
            Ok(r) if r.status.is_terminal() => {
                counts[r.status.index()] += 1;
                let kind = r.error.as_ref().map(|e| e.kind);
                if r.status == RunStatus::Failed && kind == Some(ErrorKind::TimedOut) {
                    timed_out += 1;
                }
                if r.status == RunStatus::Completed && r.attempt > 1 {
                    retried += 1;
                }
            }
            _ => lost += 1,
        }
    }
    let events_peak = peak_watch.await.unwrap_or(None);
    let stats = rw.stats().await?;
    let active_after = rw.active_count().await?;
    rw.shutdown(Duration::from_secs(1)).await?;
    root.stop(None);
    root_handle.await?;

    let completed = counts[RunStatus::Completed.index()];
    // Time-limited runs are reported on their own, not among the failures.
    let failed = counts[RunStatus::Failed.index()] - timed_out;
    let peak_running = events_peak.unwrap_or(stats.peak_running);
    let cancelled = counts[RunStatus::Cancelled.index()];
    let secs = elapsed.as_secs_f64();
    println!();
    println!(
        "supervisor_tree: {} runs in {:.1} ms",
        flags.runs,
        secs * 1e3
    );
    println!("  {:<22}{:>10}", "submitted", ids.len());
    println!("  {:<22}{:>10}", "completed", completed);
    println!("  {:<22}{:>10}", "failed", failed);
    println!("  {:<22}{:>10}", "cancelled", cancelled);
    println!("  {:<22}{:>10}", "timed out", timed_out);
    println!("  {:<22}{:>10}", "retried (completed)", retried);
    println!("  {:<22}{:>10}", "peak running", peak_running);
    println!(
        "  {:<22}{:>10}",
        "cancelled by drain",
        report.cancelled_by_drain.len()
    );
    println!("  {:<22}{:>10}", "lost", lost);
    println!("  {:<22}{:>10}", "refused messages", stats.refused);
    println!(
        "  {:<22}{:>10.1}",
        "submit phase (ms)",
        submitted_in.as_secs_f64() * 1e3
    );
    println!(
        "  {:<22}{:>10.0}",
        "runs/s end to end",
        ids.len() as f64 / secs
    );
    if flags.json {
        let line = serde_json::json!({
            "submitted": ids.len(),
            "completed": completed,
            "failed": failed,
            "cancelled": cancelled,
            "timed_out": timed_out,
            "retried": retried,
            "peak_running": peak_running,
            "peak_running_registry": stats.peak_running,
            "lost": lost,
            "recovered": recovery.recovered(),
            "records": stats.total(),
            "active": active_after,
            "stored_completed": stats.count(RunStatus::Completed),
            "stored_failed": stats.count(RunStatus::Failed),
            "stored_cancelled": stats.count(RunStatus::Cancelled),
            "cancelled_by_drain": report.cancelled_by_drain.len(),
            "deadline_hit": report.deadline_hit,
            "refused_messages": stats.refused,
            "elapsed_ms": (secs * 1e3).round() as u64,
            "runs_per_sec": (ids.len() as f64 / secs).round(),
        });
        println!("{line}");
    }
    if lost > 0 {
        return Err(format!("{lost} runs lost").into());
    }
    Ok(())
}
