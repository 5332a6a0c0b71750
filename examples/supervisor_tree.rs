//! The example supervisor tree: an application root actor supervises runwarden's supervisor,
//! which supervises its registry, its log keeper (with `--log-dir`) and one worker per
//! running run.
//!
//! ```text
//! cargo run --release --example supervisor_tree
//! cargo run --release --example supervisor_tree -- --runs 2000 --fail-every 7 \
//!     --panic-every 11 --cancel-every 13 --timeout-every 0 --retry-every 0 --json
//! cargo run --release --example supervisor_tree -- --help
//! ```
//!
//! It prints the actor tree it started, submits a mixed workload, shows live progress,
//! cancels the runs chosen for it right after submitting them, drains with a deadline and
//! prints a summary. Run `i` (from 1) is chosen for cancel, panic, fail, timeout or retry when
//! `i % K == 0` for `--cancel-every K` and so on, with that precedence; `K = 0` chooses none.
//! With none of the workload flags (`--runs`, `--*-every`) the workload is a demo mix of all
//! five, at most 8 runs at a time, for about six seconds; giving any of them describes the
//! workload explicitly, and the ones not given choose no run (see `--help`).
//!
//! With `--json` the tree and progress go to stderr and the last line of stdout is one JSON
//! object of counts. In it, as in the rest of the JSON, `failed` does not include the runs
//! that hit their time limit: those are `timed_out`. The human summary counts them among the
//! failed runs and says how many they are.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use runwarden::actors::WorkerMessage;
use runwarden::ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use std::sync::Arc;

use parking_lot::Mutex;
use runwarden::{
    ErrorKind, EventFilter, EventItem, EventStream, LogConfig, QueueConfig, RateLimit, RetryPolicy,
    RunId, RunSpec, RunStatus, Runwarden, SqliteStore,
};

const PLANNED_PANIC: &str = "planned panic";

/// The name the application's root actor registers with ractor.
const ROOT_NAME: &str = "supervisor_tree";

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
    /// `None`: no limit.
    max_concurrent: Option<usize>,
    /// At most this many starts per second (`None`: no rate limit).
    rate_limit: Option<u32>,
    /// Run `i` gets partition key `i % keys` (0: no keys).
    keys: u64,
    /// At most this many running per key (`None`: no per-key limit).
    per_key: Option<usize>,
    db: Option<String>,
    log_dir: Option<String>,
    json: bool,
}

impl Flags {
    /// The run with no workload flags: a mixed workload of a few seconds, at most 8 runs at a
    /// time.
    fn demo() -> Self {
        Flags {
            runs: 2000,
            work_ms: 30,
            fail_every: 7,
            panic_every: 11,
            cancel_every: 13,
            timeout_every: 17,
            timeout_ms: 50,
            retry_every: 5,
            grace_ms: 1000,
            drain_ms: 60_000,
            max_concurrent: Some(8),
            rate_limit: None,
            keys: 0,
            per_key: None,
            db: None,
            log_dir: None,
            json: false,
        }
    }

    /// The starting point once any workload flag (`--runs` or a `--*-every`) is given: the
    /// flags not given choose nothing, so the counts follow from the flags alone.
    fn explicit() -> Self {
        Flags {
            runs: 200,
            work_ms: 20,
            fail_every: 0,
            panic_every: 0,
            cancel_every: 0,
            timeout_every: 0,
            retry_every: 0,
            drain_ms: 10_000,
            max_concurrent: None,
            ..Flags::demo()
        }
    }
}

/// The flags that describe the workload; giving any of them leaves the demo mix.
const WORKLOAD_FLAGS: [&str; 6] = [
    "--runs",
    "--fail-every",
    "--panic-every",
    "--cancel-every",
    "--timeout-every",
    "--retry-every",
];

/// What the command line asks for.
enum Command {
    Run(Flags),
    Help,
}

impl Flags {
    fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
        let args: Vec<String> = args.into_iter().collect();
        let explicit = args.iter().any(|a| WORKLOAD_FLAGS.contains(&a.as_str()));
        let mut f = if explicit {
            Flags::explicit()
        } else {
            Flags::demo()
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            match flag.as_str() {
                "--help" | "-h" => return Ok(Command::Help),
                "--json" => {
                    f.json = true;
                    continue;
                }
                "--runs" | "--work-ms" | "--fail-every" | "--panic-every" | "--cancel-every"
                | "--timeout-every" | "--timeout-ms" | "--retry-every" | "--grace-ms"
                | "--drain-ms" | "--max-concurrent" | "--rate-limit" | "--keys" | "--per-key"
                | "--db" | "--log-dir" => {}
                other => return Err(format!("unknown flag `{other}`")),
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--db" => {
                    f.db = Some(value);
                    continue;
                }
                "--log-dir" => {
                    f.log_dir = Some(value);
                    continue;
                }
                _ => {}
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
                "--max-concurrent" => {
                    f.max_concurrent = (n > 0).then(|| usize::try_from(n).unwrap_or(usize::MAX))
                }
                "--rate-limit" => {
                    f.rate_limit = (n > 0).then(|| u32::try_from(n).unwrap_or(u32::MAX))
                }
                "--keys" => f.keys = n,
                "--per-key" => {
                    f.per_key = (n > 0).then(|| usize::try_from(n).unwrap_or(usize::MAX))
                }
                _ => unreachable!("every flag taking a value is listed above"),
            }
        }
        Ok(Command::Run(f))
    }

    fn chosen(every: u64, i: u64) -> bool {
        every != 0 && i.is_multiple_of(every)
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

/// The `--help` text, with the defaults of [`Flags::demo`].
fn usage() -> String {
    let d = Flags::demo();
    let every = |k: u64| format!("default {k}; 0: none");
    let limit = match d.max_concurrent {
        Some(n) => format!("default {n}; 0: no limit"),
        None => "default: no limit".to_owned(),
    };
    let rows = [
        (
            "--runs N",
            "runs to submit".to_owned(),
            format!("default {}", d.runs),
        ),
        (
            "--work-ms MS",
            "how long each ordinary run works".to_owned(),
            format!("default {}", d.work_ms),
        ),
        (
            "--fail-every K",
            "every K-th run returns an error".to_owned(),
            every(d.fail_every),
        ),
        (
            "--panic-every K",
            "every K-th run panics".to_owned(),
            every(d.panic_every),
        ),
        (
            "--cancel-every K",
            "every K-th run is cancelled right after it is submitted".to_owned(),
            every(d.cancel_every),
        ),
        (
            "--timeout-every K",
            "every K-th run keeps going until its time limit stops it".to_owned(),
            every(d.timeout_every),
        ),
        (
            "--timeout-ms MS",
            "the time limit of those runs".to_owned(),
            format!("default {}", d.timeout_ms),
        ),
        (
            "--retry-every K",
            "every K-th run fails its first attempt and succeeds when retried".to_owned(),
            every(d.retry_every),
        ),
        (
            "--grace-ms MS",
            "how long a cancelled run may take to stop".to_owned(),
            format!("default {}", d.grace_ms),
        ),
        (
            "--drain-ms MS",
            "how long to wait for the runs to end before cancelling the rest".to_owned(),
            format!("default {}", d.drain_ms),
        ),
        (
            "--max-concurrent N",
            "at most N runs at a time".to_owned(),
            limit,
        ),
        (
            "--rate-limit N",
            "at most N runs start in any one second (the JSON's max_starts_per_second)".to_owned(),
            "default: no rate limit".to_owned(),
        ),
        (
            "--keys K",
            "run i gets partition key i % K (the JSON's peak_per_key)".to_owned(),
            "default 0: no keys".to_owned(),
        ),
        (
            "--per-key M",
            "at most M runs of one key at a time; keys take turns".to_owned(),
            "default: no per-key limit".to_owned(),
        ),
        (
            "--db PATH",
            "keep run records in this SQLite file".to_owned(),
            "default: in memory only".to_owned(),
        ),
        (
            "--log-dir DIR",
            "keep run logs under DIR; adds the log keeper to the tree".to_owned(),
            "default: no logs".to_owned(),
        ),
        (
            "--json",
            "also print the counts as one JSON object, the last line of stdout".to_owned(),
            "default: off".to_owned(),
        ),
        (
            "-h, --help",
            "print this help and exit".to_owned(),
            String::new(),
        ),
    ];
    let mut text = String::from(
        "supervisor_tree: runs a mixed workload under runwarden's supervisor, inside an \
         application's own actor tree, and sums up how the runs ended.\n\n\
         usage: supervisor_tree [FLAGS]\n\n",
    );
    for (flag, what, default) in rows {
        let default = if default.is_empty() {
            default
        } else {
            format!(" ({default})")
        };
        text.push_str(&format!("  {flag:<20}{what}{default}\n"));
    }
    text.push_str(
        "\nRun i (from 1) is chosen for cancel, panic, fail, timeout or retry, in that order, \
         when K divides i.\n\
         The defaults above are the demo mix, used when none of --runs, --fail-every, \
         --panic-every, --cancel-every, --timeout-every, --retry-every is given. Giving any \
         of them describes the workload explicitly: the others then choose no run, --runs is \
         200, --work-ms 20, --drain-ms 10000 and there is no concurrency limit.\n",
    );
    text
}

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

/// One actor of the tree as ractor knows it: its id, and its name if it registered one.
fn actor_label(role: &str, cell: &ActorCell) -> String {
    match cell.get_name() {
        Some(name) => format!("{role}  [actor {} \"{name}\"]", cell.get_id()),
        None => format!("{role}  [actor {}]", cell.get_id()),
    }
}

/// The actor tree under `root`, read from ractor (`get_children`, `get_id`, `get_name`):
/// one line per actor, workers summed up in one line.
fn actor_tree(root: &ActorCell, rw: &Runwarden, logs: bool, limit: Option<usize>) -> String {
    let supervisor = rw.supervisor().actor().get_id();
    let registry = rw.registry().actor().get_id();
    let role = |cell: &ActorCell, parent_is_supervisor: bool| {
        let id = cell.get_id();
        if id == root.get_id() {
            "application root (AppRoot)"
        } else if id == supervisor {
            "runwarden supervisor"
        } else if id == registry {
            "run registry"
        } else if parent_is_supervisor && logs {
            // The log keeper's message type is private to runwarden: it is the supervisor's
            // child that is neither the registry nor a worker.
            "log keeper"
        } else {
            "actor"
        }
    };
    let mut lines = vec![
        "actor tree:".to_owned(),
        actor_label(role(root, false), root),
    ];
    // Depth-first, children in id order; `prefix` draws the branches above each line.
    fn walk(
        cell: &ActorCell,
        prefix: &str,
        lines: &mut Vec<String>,
        supervisor: runwarden::ractor::ActorId,
        limit: Option<usize>,
        role: &dyn Fn(&ActorCell, bool) -> &'static str,
    ) {
        let is_supervisor = cell.get_id() == supervisor;
        let mut children = cell.get_children();
        children.sort_by_key(|c| c.get_id());
        let (workers, others): (Vec<_>, Vec<_>) = children
            .into_iter()
            .partition(|c| c.is_message_type_of::<WorkerMessage>() == Some(true));
        let workers_line = is_supervisor.then(|| {
            let most = match limit {
                Some(n) => format!(", at most {n} at a time"),
                None => String::new(),
            };
            format!(
                "workers: one per running run, started with it and gone when it ends \
                 ({} alive now{most})",
                workers.len()
            )
        });
        let count = others.len() + usize::from(workers_line.is_some());
        for (n, child) in others.iter().enumerate() {
            let last = n + 1 == count;
            let branch = if last { "└── " } else { "├── " };
            lines.push(format!(
                "{prefix}{branch}{}",
                actor_label(role(child, is_supervisor), child)
            ));
            let below = format!("{prefix}{}", if last { "    " } else { "│   " });
            walk(child, &below, lines, supervisor, limit, role);
        }
        if let Some(line) = workers_line {
            lines.push(format!("{prefix}└── {line}"));
        }
    }
    walk(root, "", &mut lines, supervisor, limit, &role);
    lines.join("\n")
}

/// The time left for `remaining` runs at `rate` runs per second: "4s", "1m05s", "?" before
/// any run has ended.
fn eta_text(remaining: u64, rate: f64) -> String {
    if remaining == 0 {
        return "0s".to_owned();
    }
    if rate <= 0.0 {
        return "?".to_owned();
    }
    let secs = (remaining as f64 / rate).ceil() as u64;
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{secs}s")
    }
}

/// Live progress: a bar on a terminal, a plain line every half second otherwise; both with
/// the rate so far and the time left at that rate. `before` is how many finished runs the
/// registry already held (from `--db`), so only this process's runs are counted.
fn spawn_progress(rw: Runwarden, total: u64, before: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "[{elapsed_precise}] {bar:40.cyan/blue} {pos}/{len} runs ended  {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        });
        let period = Duration::from_millis(if bar.is_some() { 100 } else { 500 });
        let started = Instant::now();
        loop {
            let Ok(stats) = rw.stats().await else { return };
            let ended = ((stats.count(RunStatus::Completed)
                + stats.count(RunStatus::Failed)
                + stats.count(RunStatus::Cancelled)) as u64)
                .saturating_sub(before)
                .min(total);
            let rate = ended as f64 / started.elapsed().as_secs_f64().max(1e-3);
            let line = format!(
                "{rate:.0} runs/s, ETA {} | waiting {} running {} completed {} failed {} \
                 cancelled {}",
                eta_text(total - ended, rate),
                stats.count(RunStatus::Queued),
                stats.count(RunStatus::Running),
                stats.count(RunStatus::Completed),
                stats.count(RunStatus::Failed),
                stats.count(RunStatus::Cancelled)
            );
            match &bar {
                Some(bar) => {
                    bar.set_message(line);
                    bar.set_position(ended);
                }
                None => eprintln!("progress: {ended}/{total} runs ended, {line}"),
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
    let flags = match Flags::parse(std::env::args().skip(1)) {
        Ok(Command::Run(f)) => f,
        Ok(Command::Help) => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("supervisor_tree: {e}");
            eprintln!("run `supervisor_tree --help` for the flags and their defaults");
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

/// The most of `times` within any window of length `window`.
fn most_within(times: &mut [Instant], window: Duration) -> usize {
    times.sort_unstable();
    let mut most = 0;
    let mut first = 0;
    for last in 0..times.len() {
        while times[last].duration_since(times[first]) >= window {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

/// Runs of each partition key inside their jobs, measured by the jobs themselves.
struct KeyPeaks {
    now: Vec<usize>,
    /// The most runs of one key seen running at once.
    peak: usize,
}

impl KeyPeaks {
    fn new(keys: u64) -> Self {
        KeyPeaks {
            now: vec![0; keys as usize],
            peak: 0,
        }
    }

    /// Counts a job of key `k` in until the guard drops (however the job ends).
    fn enter(peaks: &Arc<Mutex<KeyPeaks>>, k: usize) -> KeyGuard {
        let mut p = peaks.lock();
        p.now[k] += 1;
        p.peak = p.peak.max(p.now[k]);
        KeyGuard(peaks.clone(), k)
    }
}

/// A job of one key, counted in [`KeyPeaks`] while it lives.
struct KeyGuard(Arc<Mutex<KeyPeaks>>, usize);

impl Drop for KeyGuard {
    fn drop(&mut self) {
        self.0.lock().now[self.1] -= 1;
    }
}

/// How the runs ended, counted from the registry's records.
#[derive(Debug, Default)]
struct Counts {
    completed: usize,
    /// Every `Failed` run, timed-out ones included.
    failed_all: usize,
    panicked: usize,
    timed_out: usize,
    cancelled: usize,
    /// Completed on a later attempt.
    retried: usize,
    /// Without a terminal record.
    lost: usize,
}

async fn run(flags: Flags) -> Result<(), Box<dyn std::error::Error>> {
    let (root, root_handle) = Actor::spawn(Some(ROOT_NAME.to_owned()), AppRoot, ()).await?;
    let mut builder = Runwarden::builder()
        .cancel_grace(Duration::from_millis(flags.grace_ms))
        // Large enough that the example's own event subscriber does not lag.
        .event_buffer(1 << 16)
        .call_timeout(Duration::from_secs(30));
    if let Some(n) = flags.max_concurrent {
        builder = builder.max_concurrent(n);
    }
    if flags.rate_limit.is_some() || flags.per_key.is_some() {
        let default = QueueConfig {
            rate: flags.rate_limit.map(RateLimit::per_second),
            per_key: flags.per_key,
            ..QueueConfig::default()
        };
        builder = builder.queue(runwarden::DEFAULT_QUEUE, default);
    }
    if let Some(db) = &flags.db {
        builder = builder.store(SqliteStore::open(db)?);
    }
    if let Some(dir) = &flags.log_dir {
        builder = builder.logs(LogConfig::new(dir));
    }
    let rw = builder.start_linked(root.get_cell()).await?;

    let tree = actor_tree(
        &root.get_cell(),
        &rw,
        flags.log_dir.is_some(),
        flags.max_concurrent,
    );
    // With --json, stdout carries the counts: the tree goes to stderr.
    if flags.json {
        eprintln!("{tree}\n");
    } else {
        println!("{tree}\n");
        std::io::stdout().flush()?;
    }

    let recovery = rw.recovery().clone();
    if recovery.recovered() > 0 {
        eprintln!(
            "recovered {} runs left active by an earlier process ({} queued again, {} \
             marked interrupted)",
            recovery.recovered(),
            recovery.requeued.len(),
            recovery.interrupted.len()
        );
    }

    let before = rw.stats().await?;
    let ended_before = (before.count(RunStatus::Completed)
        + before.count(RunStatus::Failed)
        + before.count(RunStatus::Cancelled)) as u64;
    let started = Instant::now();
    let mut progress = spawn_progress(rw.clone(), flags.runs, ended_before);
    let peak_watch = watch_peak(rw.events(EventFilter::All).await?, flags.runs);
    let work = Duration::from_millis(flags.work_ms);
    // When each attempt's job started, measured inside the jobs.
    let job_starts = Arc::new(Mutex::new(Vec::with_capacity(flags.runs as usize)));
    // Runs of each key inside their jobs now, and the most seen at once.
    let per_key = Arc::new(Mutex::new(KeyPeaks::new(flags.keys)));
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
        let key = (flags.keys > 0).then(|| (i % flags.keys) as usize);
        if let Some(k) = key {
            spec = spec.partition_key(format!("key-{k}"));
        }
        let per_key = per_key.clone();
        let starts = job_starts.clone();
        let id = rw.submit_job(
            spec,
            runwarden::BoxedJob::repeatable(move |ctx| {
                starts.lock().push(Instant::now());
                let in_key = key.map(|k| KeyPeaks::enter(&per_key, k));
                async move {
                    let _in_key = in_key;
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
                }
            }),
        )?;
        if behaviour == Behaviour::Cancel {
            rw.cancel(id).await?;
        }
        ids.push(id);
    }

    let report = rw.drain(Duration::from_millis(flags.drain_ms)).await?;
    let elapsed = started.elapsed();
    // Let the progress show its last state (every run ended), then stop it.
    if tokio::time::timeout(Duration::from_secs(1), &mut progress)
        .await
        .is_err()
    {
        progress.abort();
    }

    // Count from the registry's records: a run without a terminal record is lost.
    let mut c = Counts::default();
    for id in &ids {
        match rw.status(*id).await {
            Ok(r) if r.status.is_terminal() => {
                let kind = r.error.as_ref().map(|e| e.kind);
                match r.status {
                    RunStatus::Completed => {
                        c.completed += 1;
                        c.retried += usize::from(r.attempt > 1);
                    }
                    RunStatus::Failed => {
                        c.failed_all += 1;
                        c.timed_out += usize::from(kind == Some(ErrorKind::TimedOut));
                        c.panicked += usize::from(kind == Some(ErrorKind::Panicked));
                    }
                    RunStatus::Cancelled => c.cancelled += 1,
                    _ => {}
                }
            }
            _ => c.lost += 1,
        }
    }
    let events_peak = peak_watch.await.unwrap_or(None);
    let stats = rw.stats().await?;
    let active_after = rw.active_count().await?;
    rw.shutdown(Duration::from_secs(1)).await?;
    root.stop(None);
    root_handle.await?;

    let peak_running = events_peak.unwrap_or(stats.peak_running);
    let max_starts_per_second = most_within(&mut job_starts.lock(), Duration::from_secs(1));
    let peak_per_key = per_key.lock().peak;
    let secs = elapsed.as_secs_f64();
    let rate = ids.len() as f64 / secs;
    let by_deadline = report.cancelled_by_drain.len();

    // The human summary: timed-out runs are among the failed ones here.
    let row = |what: &str, n: usize, note: String| {
        let note = if note.is_empty() {
            note
        } else {
            format!("   {note}")
        };
        println!("  {what:<11}{n:>8}{note}");
    };
    if std::io::stderr().is_terminal() {
        // Below the progress bar.
        println!();
    }
    println!(
        "{} runs in {secs:.2} s, {rate:.0} runs/s; at most {peak_running} running at once",
        ids.len()
    );
    row("completed", c.completed, String::new());
    row(
        "failed",
        c.failed_all,
        format!(
            "of which panicked {}, timed out {}",
            c.panicked, c.timed_out
        ),
    );
    row(
        "cancelled",
        c.cancelled,
        if by_deadline > 0 {
            format!("of which {by_deadline} still running at the --drain-ms deadline")
        } else {
            String::new()
        },
    );
    row(
        "retried",
        c.retried,
        "failed a first attempt, then completed (counted in completed)".to_owned(),
    );
    row("lost", c.lost, "ended without a final record".to_owned());
    if stats.refused > 0 {
        println!(
            "  warning: the registry refused {} status changes",
            stats.refused
        );
    }

    if flags.json {
        // Keys and meanings as the checker (`example-counts`) expects: `failed` excludes the
        // timed-out runs, which are `timed_out`.
        let line = serde_json::json!({
            "submitted": ids.len(),
            "completed": c.completed,
            "failed": c.failed_all - c.timed_out,
            "cancelled": c.cancelled,
            "timed_out": c.timed_out,
            "retried": c.retried,
            "peak_running": peak_running,
            "peak_running_registry": stats.peak_running,
            "lost": c.lost,
            "recovered": recovery.recovered(),
            "records": stats.total(),
            "active": active_after,
            "stored_completed": stats.count(RunStatus::Completed),
            "stored_failed": stats.count(RunStatus::Failed),
            "stored_cancelled": stats.count(RunStatus::Cancelled),
            "cancelled_by_drain": by_deadline,
            "deadline_hit": report.deadline_hit,
            "refused_messages": stats.refused,
            "elapsed_ms": (secs * 1e3).round() as u64,
            "runs_per_sec": rate.round(),
            "max_starts_per_second": max_starts_per_second,
            "peak_per_key": peak_per_key,
        });
        println!("{line}");
    }
    if c.lost > 0 {
        return Err(format!("{} runs lost", c.lost).into());
    }
    Ok(())
}
