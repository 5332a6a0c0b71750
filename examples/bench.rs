//! The benchmark harness: runwarden against a raw tokio baseline, in the same process and run.
//!
//! ```text
//! cargo run --release --example bench -- [--json] [--reps 3] [--runs 100000] [--parked 50000]
//!     [--latency-secs 10] [--latency-rate N]
//! ```
//!
//! The cores scenario runs the throughput of runwarden, the floor and the baseline with 1 and
//! with 2 runtime worker threads, each in a fresh child process (`threads_1`, `threads_2`).
//!
//! The latency scenario (`bench/latency.rs`) submits 1 ms jobs at a steady 25%, 50% and 90% of
//! the trivial-run capacity measured in the same run, `--latency-secs` at each load, for
//! runwarden and for the baseline at the same rate, and at 50% for the floor too. `--only latency` runs the 50% row alone, and
//! prints the CPU time per run of each side; `--latency-rate N` submits N runs/s there instead.
//!
//! A queued run's memory is measured twice: after one burst of submits (the admissions in
//! flight meanwhile leave freed memory in the allocator), and paced, 10,000 at a time, each chunk
//! recorded before the next is submitted (what the queued runs themselves hold).
//!
//! The baseline is what a user would write without runwarden: `tokio::spawn` into a `JoinSet`
//! and a `parking_lot::Mutex<HashMap<id, status>>`. Every scenario reports the median of
//! `--reps` repetitions with min and max; memory scenarios run in a fresh child process each,
//! so one scenario's freed memory cannot flatter the next. The "floor" is the simplest design
//! that keeps one ractor actor per run (see `mod floor`), measured in the same run.
//!
//! Scenario drivers run as a task on the runtime, where application code that submits and
//! queries lives. `--only throughput|cancel_all|queries|calls|latency|durable|bulk` runs one
//! scenario alone, for a profiler or for alternating an old and a new binary; with
//! `BENCH_DEBUG` set, `cancel_all` pauses two seconds before cancelling so a profiler can be
//! switched on for the cancel phase only.

use std::collections::HashMap;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use runwarden::{ListQuery, Retention, RunId, RunSpec, RunStatus, Runwarden, SqliteStore};
use tokio::task::JoinSet;

#[path = "bench/latency.rs"]
mod latency;

#[derive(Debug, Clone)]
struct Flags {
    json: bool,
    reps: usize,
    runs: usize,
    parked: usize,
    child: Option<String>,
    only: Option<String>,
    latency_secs: usize,
    latency_rate: Option<usize>,
}

fn parse() -> Result<Flags, String> {
    let mut f = Flags {
        json: false,
        reps: 3,
        runs: 100_000,
        parked: 50_000,
        child: None,
        only: None,
        latency_secs: 10,
        latency_rate: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> Result<usize, String> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a whole number"))
        };
        match a.as_str() {
            "--json" => f.json = true,
            "--reps" => f.reps = num("--reps")?.max(1),
            "--runs" => f.runs = num("--runs")?.max(1),
            "--parked" => f.parked = num("--parked")?.max(1),
            "--latency-secs" => f.latency_secs = num("--latency-secs")?.max(1),
            "--latency-rate" => f.latency_rate = Some(num("--latency-rate")?.max(1)),
            "--child" => f.child = args.next(),
            "--only" => f.only = args.next(),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(f)
}

/// Median, min and max of repeated measurements.
#[derive(Debug, Clone, Copy)]
struct Stat {
    median: f64,
    min: f64,
    max: f64,
}

fn stat(mut xs: Vec<f64>) -> Stat {
    xs.sort_by(|a, b| a.total_cmp(b));
    Stat {
        median: xs[xs.len() / 2],
        min: xs[0],
        max: xs[xs.len() - 1],
    }
}

fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

fn rss_bytes() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

// ---------- the baseline ----------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BaseStatus {
    Queued,
    Running,
    Completed,
    Cancelled,
}

type BaseMap = Arc<Mutex<HashMap<u64, BaseStatus>>>;

/// One trivial run of the baseline: `Running`, the job, then its outcome in the map.
async fn baseline_run(map: BaseMap, i: u64) {
    map.lock().insert(i, BaseStatus::Running);
    let r: Result<(), String> = async { Ok(()) }.await;
    let s = if r.is_ok() {
        BaseStatus::Completed
    } else {
        BaseStatus::Cancelled
    };
    map.lock().insert(i, s);
}

async fn baseline_throughput(n: usize) -> f64 {
    let map: BaseMap = Arc::default();
    let start = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..n as u64 {
        map.lock().insert(i, BaseStatus::Queued);
        set.spawn(baseline_run(map.clone(), i));
    }
    while set.join_next().await.is_some() {}
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(
        map.lock()
            .values()
            .filter(|s| **s == BaseStatus::Completed)
            .count(),
        n
    );
    n as f64 / secs
}

/// M parked tasks, each waiting for its own cancel signal; returns ms to cancel them all.
async fn baseline_cancel_all(m: usize) -> f64 {
    let map: BaseMap = Arc::default();
    let mut set = JoinSet::new();
    let mut cancels = Vec::with_capacity(m);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    for i in 0..m as u64 {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        cancels.push(tx);
        map.lock().insert(i, BaseStatus::Queued);
        let (map, ready) = (map.clone(), ready_tx.clone());
        set.spawn(async move {
            map.lock().insert(i, BaseStatus::Running);
            let _ = ready.send(());
            let _ = rx.await;
            map.lock().insert(i, BaseStatus::Cancelled);
        });
    }
    for _ in 0..m {
        ready_rx.recv().await;
    }
    let start = Instant::now();
    for tx in cancels {
        let _ = tx.send(());
    }
    while set.join_next().await.is_some() {}
    let ms = start.elapsed().as_secs_f64() * 1e3;
    assert!(map.lock().values().all(|s| *s == BaseStatus::Cancelled));
    ms
}

// ---------- the floor of one actor per run ----------
//
// The simplest design that keeps one ractor actor per run: a supervisor actor spawns a bare
// worker actor per run, which sends `Running` and `Completed` to a registry actor and stops.
// No queues, limits, cancellation, retries or queries: it shows what the actor per run costs
// by itself on this machine, so runwarden's figures can be read against it.

mod floor {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

    pub(crate) struct Registry;

    /// Statuses: 0 queued, 1 running, 2 completed, 3 failed, 4 cancelled.
    pub(crate) enum RegistryMsg {
        Status(u64, u8),
        Completed(RpcReplyPort<usize>),
        Count(u8, RpcReplyPort<usize>),
    }

    impl Actor for Registry {
        type Msg = RegistryMsg;
        type State = (HashMap<u64, u8>, [usize; 5]);
        type Arguments = ();

        async fn pre_start(
            &self,
            _: ActorRef<RegistryMsg>,
            _: (),
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok((HashMap::new(), [0; 5]))
        }

        async fn handle(
            &self,
            _: ActorRef<RegistryMsg>,
            msg: RegistryMsg,
            (map, counts): &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                RegistryMsg::Status(id, status) => {
                    if let Some(old) = map.insert(id, status) {
                        counts[usize::from(old)] -= 1;
                    }
                    counts[usize::from(status)] += 1;
                }
                RegistryMsg::Completed(reply) => {
                    let _ = reply.send(counts[2]);
                }
                RegistryMsg::Count(status, reply) => {
                    let _ = reply.send(counts[usize::from(status)]);
                }
            }
            Ok(())
        }
    }

    pub(crate) struct Supervisor;

    impl Actor for Supervisor {
        type Msg = u64;
        type State = ActorRef<RegistryMsg>;
        type Arguments = ActorRef<RegistryMsg>;

        async fn pre_start(
            &self,
            _: ActorRef<u64>,
            registry: ActorRef<RegistryMsg>,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(registry)
        }

        async fn handle(
            &self,
            myself: ActorRef<u64>,
            id: u64,
            registry: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            registry.cast(RegistryMsg::Status(id, 0))?;
            Actor::spawn_linked(None, Worker, (id, registry.clone()), myself.get_cell()).await?;
            Ok(())
        }

        async fn handle_supervisor_evt(
            &self,
            _: ActorRef<u64>,
            _: SupervisionEvent,
            _: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    pub(crate) struct Worker;

    impl Actor for Worker {
        type Msg = ();
        type State = ();
        type Arguments = (u64, ActorRef<RegistryMsg>);

        async fn pre_start(
            &self,
            myself: ActorRef<()>,
            (id, registry): (u64, ActorRef<RegistryMsg>),
        ) -> Result<(), ActorProcessingErr> {
            registry.cast(RegistryMsg::Status(id, 1))?;
            let r: Result<(), String> = async { Ok(()) }.await;
            registry.cast(RegistryMsg::Status(id, if r.is_ok() { 2 } else { 3 }))?;
            myself.stop(None);
            Ok(())
        }
    }

    /// Runs/s of the floor design for `n` trivial runs.
    pub(crate) async fn throughput(n: usize) -> f64 {
        let (registry, _) = Actor::spawn(None, Registry, ()).await.expect("registry");
        let (supervisor, _) = Actor::spawn(None, Supervisor, registry.clone())
            .await
            .expect("supervisor");
        let start = Instant::now();
        for id in 0..n as u64 {
            supervisor.cast(id).expect("submit");
        }
        loop {
            let done = ractor::call!(registry, RegistryMsg::Completed).expect("count");
            if done >= n {
                break;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        supervisor.stop(None);
        registry.stop(None);
        rate
    }

    /// The floor's supervisor for cancel-all: spawns parked workers, then stops them all.
    pub(crate) struct CancelSupervisor;

    pub(crate) enum CancelMsg {
        Spawn(u64),
        StopAll,
    }

    impl Actor for CancelSupervisor {
        type Msg = CancelMsg;
        type State = ActorRef<RegistryMsg>;
        type Arguments = ActorRef<RegistryMsg>;

        async fn pre_start(
            &self,
            _: ActorRef<CancelMsg>,
            registry: ActorRef<RegistryMsg>,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(registry)
        }

        async fn handle(
            &self,
            myself: ActorRef<CancelMsg>,
            msg: CancelMsg,
            registry: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            match msg {
                CancelMsg::Spawn(id) => {
                    registry.cast(RegistryMsg::Status(id, 0))?;
                    let args = (id, registry.clone());
                    Actor::spawn_linked(None, ParkedWorker, args, myself.get_cell()).await?;
                }
                CancelMsg::StopAll => myself.stop_children(None),
            }
            Ok(())
        }

        async fn handle_supervisor_evt(
            &self,
            _: ActorRef<CancelMsg>,
            _: SupervisionEvent,
            _: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    /// A worker that reports `Running`, waits to be stopped, and reports `Cancelled`.
    pub(crate) struct ParkedWorker;

    impl Actor for ParkedWorker {
        type Msg = ();
        type State = (u64, ActorRef<RegistryMsg>);
        type Arguments = (u64, ActorRef<RegistryMsg>);

        async fn pre_start(
            &self,
            _: ActorRef<()>,
            (id, registry): (u64, ActorRef<RegistryMsg>),
        ) -> Result<Self::State, ActorProcessingErr> {
            registry.cast(RegistryMsg::Status(id, 1))?;
            Ok((id, registry))
        }

        async fn post_stop(
            &self,
            _: ActorRef<()>,
            (id, registry): &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            registry.cast(RegistryMsg::Status(*id, 4))?;
            Ok(())
        }
    }

    async fn wait_count(registry: &ActorRef<RegistryMsg>, status: u8, n: usize) {
        loop {
            let got = ractor::call!(registry, RegistryMsg::Count, status).expect("count");
            if got >= n {
                return;
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// ms for the floor to cancel `m` running bare actors: its supervisor stops them all, and
    /// each reports `Cancelled` to the registry as it stops.
    pub(crate) async fn cancel_all(m: usize) -> f64 {
        let (registry, _) = Actor::spawn(None, Registry, ()).await.expect("registry");
        let (supervisor, _) = Actor::spawn(None, CancelSupervisor, registry.clone())
            .await
            .expect("supervisor");
        for id in 0..m as u64 {
            supervisor.cast(CancelMsg::Spawn(id)).expect("spawn");
        }
        wait_count(&registry, 1, m).await;
        let start = Instant::now();
        supervisor.cast(CancelMsg::StopAll).expect("stop all");
        wait_count(&registry, 4, m).await;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        supervisor.stop(None);
        registry.stop(None);
        ms
    }

    /// An actor that answers a `call` at once: the queries' floor.
    pub(crate) struct Echo;

    impl Actor for Echo {
        type Msg = RpcReplyPort<u64>;
        type State = u64;
        type Arguments = ();

        async fn pre_start(
            &self,
            _: ActorRef<Self::Msg>,
            _: (),
        ) -> Result<u64, ActorProcessingErr> {
            Ok(0)
        }

        async fn handle(
            &self,
            _: ActorRef<Self::Msg>,
            reply: RpcReplyPort<u64>,
            n: &mut u64,
        ) -> Result<(), ActorProcessingErr> {
            *n += 1;
            let _ = reply.send(*n);
            Ok(())
        }
    }

    /// A bare ractor `call` round trip, ns (median of 1,000).
    pub(crate) async fn call_rtt(timeout: Option<Duration>) -> f64 {
        let (echo, _) = Actor::spawn(None, Echo, ()).await.expect("echo");
        let mut xs = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let t = Instant::now();
            let _ = echo.call(|r| r, timeout).await.expect("call");
            xs.push(t.elapsed().as_secs_f64() * 1e9);
        }
        echo.stop(None);
        super::stat(xs).median
    }

    /// A bare actor that does nothing, for the memory of one parked actor.
    pub(crate) struct Parked;

    impl Actor for Parked {
        type Msg = ();
        type State = ();
        type Arguments = ();

        async fn pre_start(&self, _: ActorRef<()>, _: ()) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }
}

// ---------- runwarden ----------

async fn wait_for_count(rw: &Runwarden, status: RunStatus, n: usize) {
    loop {
        // Behind a burst of a million submits the registry answers after them, in order:
        // a query may time out meanwhile, which only means "not yet".
        let stats = match rw.stats().await {
            Ok(stats) => stats,
            Err(runwarden::Error::Timeout { .. }) => continue,
            Err(e) => panic!("stats: {e}"),
        };
        if stats.count(status) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

async fn runwarden_throughput(n: usize) -> (f64, f64) {
    runwarden_throughput_on(Runwarden::builder(), n).await
}

/// Throughput through a queue whose rate limit is high enough never to hold a run back: what
/// keeping the window of start times costs.
async fn rate_limited_throughput(n: usize) -> f64 {
    let rate = runwarden::RateLimit::new(u32::MAX, Duration::from_secs(1));
    let builder = Runwarden::builder().queue(
        runwarden::DEFAULT_QUEUE,
        runwarden::QueueConfig::default().rate(rate),
    );
    runwarden_throughput_on(builder, n).await.0
}

/// Throughput through a queue with a per-key limit high enough never to hold a run back,
/// runs spread over 100 partition keys: what keeping the keys' groups and turns costs.
async fn keyed_throughput(n: usize) -> f64 {
    let builder = Runwarden::builder().queue(
        runwarden::DEFAULT_QUEUE,
        runwarden::QueueConfig::default().per_key(usize::MAX),
    );
    let keys: Vec<String> = (0..100).map(|k| format!("tenant-{k}")).collect();
    runwarden_throughput_with(builder, n, |i| {
        RunSpec::new("t").partition_key(keys[i % keys.len()].as_str())
    })
    .await
    .0
}

async fn runwarden_throughput_on(builder: runwarden::RunwardenBuilder, n: usize) -> (f64, f64) {
    runwarden_throughput_with(builder, n, |_| RunSpec::new("t")).await
}

async fn runwarden_throughput_with(
    builder: runwarden::RunwardenBuilder,
    n: usize,
    spec: impl Fn(usize) -> RunSpec,
) -> (f64, f64) {
    let rw = builder.start().await.expect("start");
    let start = Instant::now();
    for i in 0..n {
        rw.submit(spec(i), |_| async { Ok(()) }).expect("submit");
    }
    let submit_ns = start.elapsed().as_secs_f64() * 1e9 / n as f64;
    wait_for_count(&rw, RunStatus::Completed, n).await;
    let secs = start.elapsed().as_secs_f64();
    rw.shutdown(Duration::from_secs(30))
        .await
        .expect("shutdown");
    (n as f64 / secs, submit_ns)
}

async fn runwarden_cancel_all(m: usize) -> f64 {
    let rw = Runwarden::start().await.expect("start");
    let ids: Vec<RunId> = (0..m)
        .map(|_| {
            rw.submit(RunSpec::new("parked"), |ctx| async move {
                ctx.cancelled().await;
                Ok(())
            })
            .expect("submit")
        })
        .collect();
    wait_for_count(&rw, RunStatus::Running, m).await;
    if std::env::var_os("BENCH_DEBUG").is_some() {
        // Room to attach a profiler to the cancel phase alone.
        eprintln!("cancelling in 2 s");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let start = Instant::now();
    // One batch cancel: each run still gets its own exact answer.
    for answer in rw.cancel_many(&ids).await {
        answer.expect("cancel");
    }
    if std::env::var_os("BENCH_DEBUG").is_some() {
        eprintln!("answers after {:?}", start.elapsed());
    }
    wait_for_count(&rw, RunStatus::Cancelled, m).await;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    rw.shutdown(Duration::from_secs(30))
        .await
        .expect("shutdown");
    ms
}

/// Round-trip times (ns, median of 1,000 calls each) with 100,000 finished + 1,000 active runs.
async fn runwarden_queries() -> [f64; 4] {
    let rw = Runwarden::start().await.expect("start");
    let mut last = None;
    for _ in 0..100_000 {
        last = Some(
            rw.submit(RunSpec::new("done"), |_| async { Ok(()) })
                .expect("submit"),
        );
    }
    wait_for_count(&rw, RunStatus::Completed, 100_000).await;
    let gate = Arc::new(tokio::sync::Notify::new());
    for _ in 0..1000 {
        let g = gate.clone();
        rw.submit(RunSpec::new("active"), move |_| async move {
            g.notified().await;
            Ok(())
        })
        .expect("submit");
    }
    wait_for_count(&rw, RunStatus::Running, 1000).await;
    let id = last.expect("a run");
    let mut out = [0.0; 4];
    for (k, slot) in out.iter_mut().enumerate() {
        let mut xs = Vec::with_capacity(1000);
        for _ in 0..1000 {
            let t = Instant::now();
            match k {
                0 => drop(rw.status(id).await.expect("status")),
                1 => drop(rw.active_count().await.expect("count")),
                2 => drop(rw.active_ids().await.expect("ids")),
                _ => drop(
                    rw.list(ListQuery::new().status(RunStatus::Running).limit(50))
                        .await
                        .expect("list"),
                ),
            }
            xs.push(t.elapsed().as_secs_f64() * 1e9);
        }
        *slot = stat(xs).median;
    }
    gate.notify_waiters();
    rw.shutdown(Duration::from_secs(30))
        .await
        .expect("shutdown");
    out
}

/// A runwarden on a fresh SQLite file in `dir`, and the file's path.
async fn durable_runwarden(dir: &std::path::Path) -> (Runwarden, std::path::PathBuf) {
    let path = dir.join(format!("bench-{}.db", RunId::new()));
    let store = SqliteStore::open(&path).expect("open store");
    let rw = Runwarden::builder()
        .store(store)
        .start()
        .await
        .expect("start");
    (rw, path)
}

/// Shuts `rw` down and removes its SQLite files.
async fn remove_durable(rw: Runwarden, path: &std::path::Path) {
    rw.shutdown(Duration::from_secs(30))
        .await
        .expect("shutdown");
    for suffix in ["", "-wal", "-shm", ".lock"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Runs/s with the durable SQLite store, until every record is committed.
async fn durable_throughput(n: usize, dir: &std::path::Path) -> f64 {
    let (rw, path) = durable_runwarden(dir).await;
    let start = Instant::now();
    for _ in 0..n {
        rw.submit(RunSpec::new("t"), |_| async { Ok(()) })
            .expect("submit");
    }
    wait_for_count(&rw, RunStatus::Completed, n).await;
    // Writes commit in order: once this durable submit is acknowledged, so is everything before.
    rw.request(RunSpec::new("fence"), |_| async { Ok(()) })
        .durable()
        .send()
        .await
        .expect("fence");
    let secs = start.elapsed().as_secs_f64();
    remove_durable(rw, &path).await;
    n as f64 / secs
}

/// Durable submits/s, each answered once committed: `n` runs in batches of `batch` through
/// `submit_many_durable`, or (`batch` = 1) one by one, each awaited, through
/// `request(..).durable().send()`.
async fn durable_submits(n: usize, batch: usize, dir: &std::path::Path) -> f64 {
    let (rw, path) = durable_runwarden(dir).await;
    let job = || runwarden::BoxedJob::new(|_| async { Ok(()) });
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let k = batch.min(n - sent);
        if batch == 1 {
            rw.request(RunSpec::new("one"), job())
                .durable()
                .send()
                .await
                .expect("durable submit");
        } else {
            let runs = (0..k).map(|_| (RunSpec::new("bulk"), job()));
            let answers = rw.submit_many_durable(runs).await;
            assert!(
                answers.iter().all(Result::is_ok),
                "a bulk submit was refused"
            );
        }
        sent += k;
    }
    let secs = start.elapsed().as_secs_f64();
    wait_for_count(&rw, RunStatus::Completed, n).await;
    remove_durable(rw, &path).await;
    n as f64 / secs
}

// ---------- memory, each in a fresh child process ----------

async fn memory_child(kind: &str, m: usize) -> f64 {
    match kind {
        "floor-running" => {
            // `m` bare ractor actors, each linked to a parent as a worker is.
            let (parent, _) = ractor::Actor::spawn(None, floor::Parked, ())
                .await
                .expect("parent");
            let before = rss_bytes();
            let mut actors = Vec::with_capacity(m);
            for _ in 0..m {
                let (a, _) =
                    ractor::Actor::spawn_linked(None, floor::Parked, (), parent.get_cell())
                        .await
                        .expect("actor");
                actors.push(a);
            }
            tokio::task::yield_now().await;
            let after = rss_bytes();
            (after - before) / m as f64
        }
        "baseline-running" => {
            let map: BaseMap = Arc::default();
            let before = rss_bytes();
            let mut set = JoinSet::new();
            let gate = Arc::new(tokio::sync::Notify::new());
            for i in 0..m as u64 {
                map.lock().insert(i, BaseStatus::Running);
                let g = gate.clone();
                set.spawn(async move { g.notified().await });
            }
            tokio::task::yield_now().await;
            let after = rss_bytes();
            (after - before) / m as f64
        }
        "running" | "running-paced" | "queued" | "queued-paced" => {
            let paced = kind.ends_with("-paced");
            let kind = kind.trim_end_matches("-paced");
            let builder = Runwarden::builder();
            let builder = if kind == "queued" {
                builder.max_concurrent(1)
            } else {
                builder
            };
            let rw = builder.start().await.expect("start");
            let before = rss_bytes();
            let gate = Arc::new(tokio::sync::Notify::new());
            for i in 0..m {
                if paced && i % 10_000 == 0 && i > 0 {
                    // One chunk at a time: no burst of admissions waits in the mailboxes (the
                    // floor's actors are spawned one by one, each awaited).
                    if kind == "queued" {
                        wait_for_count(&rw, RunStatus::Queued, i - 1).await;
                    } else {
                        wait_for_count(&rw, RunStatus::Running, i).await;
                    }
                }
                let g = gate.clone();
                rw.submit(RunSpec::new("parked"), move |_| async move {
                    g.notified().await;
                    Ok(())
                })
                .expect("submit");
            }
            let status = if kind == "queued" {
                RunStatus::Queued
            } else {
                RunStatus::Running
            };
            let want = if kind == "queued" { m - 1 } else { m };
            wait_for_count(&rw, status, want).await;
            (rss_bytes() - before) / m as f64
        }
        "baseline-flat" => {
            // The baseline under the same load: 1,000,000 tasks in chunks of 10,000, its map
            // keeping the newest 100,000 finished entries (oldest pruned first).
            let map: BaseMap = Arc::default();
            let mut order = std::collections::VecDeque::new();
            let chunk = 10_000u64;
            let mut after_first = 0.0;
            for c in 0..(m as u64 / chunk) {
                let mut set = JoinSet::new();
                for i in c * chunk..(c + 1) * chunk {
                    map.lock().insert(i, BaseStatus::Queued);
                    order.push_back(i);
                    set.spawn(baseline_run(map.clone(), i));
                }
                while set.join_next().await.is_some() {}
                while order.len() > 100_000 {
                    if let Some(old) = order.pop_front() {
                        map.lock().remove(&old);
                    }
                }
                if (c + 1) * chunk == 100_000 {
                    after_first = rss_bytes();
                }
            }
            rss_bytes() / after_first.max(1.0)
        }
        "flat" => {
            // 1,000,000 runs through the system with retention keeping 100,000 finished runs:
            // RSS after the first 100,000 and at the end, as "before/after" in one number.
            let rw = Runwarden::start().await.expect("start");
            let chunk = 10_000;
            let mut after_first = 0.0;
            for c in 0..(m / chunk) {
                for _ in 0..chunk {
                    rw.submit(RunSpec::new("t"), |_| async { Ok(()) })
                        .expect("submit");
                }
                let done = (c + 1) * chunk;
                loop {
                    let s = rw.stats().await.expect("stats");
                    if s.count(RunStatus::Completed) + s.pruned as usize >= done {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                if done == 100_000 {
                    after_first = rss_bytes();
                }
            }
            rss_bytes() / after_first.max(1.0)
        }
        _ => {
            // "finished": RSS after `m` runs that ended and are retained; "finished-none": the
            // same runs with retention keeping none. The difference is what the retained
            // records hold, free of what the churn of running them leaves in the allocator.
            let keep = if kind == "finished" { m } else { 0 };
            let retention = Retention {
                max_finished: keep,
                ..Retention::default()
            };
            let rw = Runwarden::builder()
                .retention(retention)
                .start()
                .await
                .expect("start");
            // In waves of 100, so what the churn leaves behind stays small next to the
            // records themselves (a burst of 50,000 leaves megabytes that vary run to run).
            let before = rss_bytes();
            let wave = 100;
            for w in 0..m.div_ceil(wave) {
                for _ in 0..wave {
                    rw.submit(RunSpec::new("done"), |_| async { Ok(()) })
                        .expect("submit");
                }
                let done = (w + 1) * wave;
                loop {
                    let s = rw.stats().await.expect("stats");
                    if s.count(RunStatus::Completed) + s.pruned as usize >= done {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
            rss_bytes() - before
        }
    }
}

fn run_child_with(kind: &str, m: usize) -> Option<f64> {
    run_child(kind, m)
}

fn run_child(kind: &str, m: usize) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = Command::new(exe)
        .args(["--child", kind, "--parked", &m.to_string()])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// Throughput of runwarden, the floor and the baseline on this process's runtime: the median
/// of three runs each, alternating.
async fn threads_child(runs: usize) -> (f64, f64, f64) {
    let (mut rw, mut floor_tp, mut base) = (vec![], vec![], vec![]);
    for _ in 0..3 {
        rw.push(runwarden_throughput(runs).await.0);
        floor_tp.push(floor::throughput(runs).await);
        base.push(baseline_throughput(runs).await);
    }
    (stat(rw).median, stat(floor_tp).median, stat(base).median)
}

/// The cores scenario: throughput with 1 and with 2 runtime worker threads, each in a fresh
/// child process; `None` for a child that failed.
fn threads_scaling(runs: usize) -> Option<[(f64, f64, f64); 2]> {
    let exe = std::env::current_exe().ok()?;
    let mut out = [(0.0, 0.0, 0.0); 2];
    for (slot, threads) in out.iter_mut().zip([1, 2]) {
        let child = Command::new(&exe)
            .args(["--child", &format!("threads-{threads}")])
            .args(["--runs", &runs.to_string()])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&child.stdout);
        let v: Vec<f64> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        *slot = (*v.first()?, *v.get(1)?, *v.get(2)?);
    }
    Some(out)
}

fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    let rustc = Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|_| "rustc ?".into());
    format!("{nproc} cores, {rustc}")
}

pub(crate) fn main() -> ExitCode {
    let flags = match parse() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    // The cores scenario's child: throughput on a runtime with this many worker threads.
    if let Some(threads) = flags
        .child
        .as_deref()
        .and_then(|c| c.strip_prefix("threads-"))
        .and_then(|n| n.parse::<usize>().ok())
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .expect("runtime");
        let (rw, floor, base) = rt.block_on(on_worker(threads_child(flags.runs)));
        println!("{rw} {floor} {base}");
        return ExitCode::SUCCESS;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Some(only) = &flags.only {
        // One scenario alone (runwarden's side), for profiling.
        let only = only.clone();
        let runs = flags.runs;
        let parked = flags.parked;
        let latency_secs = flags.latency_secs;
        let latency_rate = flags.latency_rate;
        rt.block_on(on_worker(async move {
            match only.as_str() {
                "throughput" => eprintln!("{:?}", runwarden_throughput(runs).await),
                "cancel_all" => eprintln!("{:.1} ms", runwarden_cancel_all(parked).await),
                "queries" => {
                    let q = runwarden_queries().await;
                    eprintln!(
                        "status {:.0} ns, active_count {:.0} ns; a bare call {:.0} ns",
                        q[0],
                        q[1],
                        floor::call_rtt(None).await
                    );
                }
                "calls" => eprintln!(
                    "call {:.0} ns, with a 5 s timeout {:.0} ns",
                    floor::call_rtt(None).await,
                    floor::call_rtt(Some(Duration::from_secs(5))).await
                ),
                "latency" => {
                    // At half the capacity measured just before, as the suite's 50% row.
                    let capacity = match latency_rate {
                        Some(rate) => rate as f64 * 2.0,
                        None => runwarden_throughput(runs).await.0,
                    };
                    let secs = latency_secs as f64;
                    let cpu = cpu_secs();
                    let rw = latency::runwarden(capacity * 0.5, secs).await;
                    let rw_cpu = cpu_secs() - cpu;
                    let base = latency::baseline(capacity * 0.5, secs).await;
                    let base_cpu = cpu_secs() - cpu - rw_cpu;
                    let floor = latency::floor(capacity * 0.5, secs).await;
                    let floor_cpu = cpu_secs() - cpu - rw_cpu - base_cpu;
                    let per_run = |cpu: f64| cpu * 1e6 / (capacity * 0.5 * secs);
                    eprintln!(
                        "CPU µs per run: runwarden {:.1}, baseline {:.1}, floor {:.1}",
                        per_run(rw_cpu),
                        per_run(base_cpu),
                        per_run(floor_cpu)
                    );
                    eprintln!(
                        "floor: submit → start p50/p99/p99.9 µs {:.0}/{:.0}/{:.0}; p99 against \
                         the baseline {:.1}",
                        floor.start[0],
                        floor.start[1],
                        floor.start[2],
                        floor.start[1] / base.start[1]
                    );
                    eprintln!(
                        "50% of {capacity:.0}/s: submit → start p50/p99/p99.9 µs: runwarden \
                         {:.0}/{:.0}/{:.0}, baseline {:.0}/{:.0}/{:.0}; p99 ratio {:.1}",
                        rw.start[0],
                        rw.start[1],
                        rw.start[2],
                        base.start[0],
                        base.start[1],
                        base.start[2],
                        rw.start[1] / base.start[1]
                    );
                }
                "durable" => {
                    let tmp = std::env::temp_dir();
                    let durable = durable_throughput(runs, &tmp).await;
                    let memory = runwarden_throughput(runs).await.0;
                    eprintln!(
                        "durable {durable:.0}/s, in memory {memory:.0}/s, {:.2}",
                        durable / memory
                    );
                }
                "bulk" => {
                    let tmp = std::env::temp_dir();
                    let bulk = durable_submits(runs, 1000, &tmp).await;
                    let one = durable_submits((runs / 50).max(100), 1, &tmp).await;
                    eprintln!(
                        "bulk {bulk:.0}/s, one by one {one:.0}/s, {:.1}x",
                        bulk / one
                    );
                }
                other => eprintln!("unknown scenario {other}"),
            }
        }));
        return ExitCode::SUCCESS;
    }
    if let Some(kind) = &flags.child {
        let v = rt.block_on(memory_child(kind, flags.parked));
        println!("{v}");
        return ExitCode::SUCCESS;
    }
    // Jobs run inside `CatchUnwind`; keep the default hook but there are no planned panics.
    rt.block_on(on_worker(run(flags)))
}

/// Runs the scenario driver as a task on the runtime's workers, where application code that
/// submits runs and queries them lives (a request handler, an actor), rather than on the
/// thread that called `block_on`: from there every wake-up of a task crosses threads.
async fn on_worker<T: Send + 'static>(
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    tokio::spawn(f).await.expect("the bench task panicked")
}

async fn run(f: Flags) -> ExitCode {
    let (mut rw_tp, mut base_tp, mut submit_ns, mut rw_cancel, mut base_cancel) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut floor_tp, mut floor_cancel, mut rate_tp) = (vec![], vec![], vec![]);
    let mut keyed_tp = vec![];
    for rep in 0..f.reps {
        eprintln!("rep {}/{}: throughput", rep + 1, f.reps);
        // Alternate which side goes first, so neither always gets the warmer process.
        let (a, s) = if rep % 2 == 0 {
            let r = runwarden_throughput(f.runs).await;
            base_tp.push(baseline_throughput(f.runs).await);
            r
        } else {
            base_tp.push(baseline_throughput(f.runs).await);
            runwarden_throughput(f.runs).await
        };
        rw_tp.push(a);
        floor_tp.push(floor::throughput(f.runs).await);
        rate_tp.push(rate_limited_throughput(f.runs).await);
        keyed_tp.push(keyed_throughput(f.runs).await);
        submit_ns.push(s);
        eprintln!("rep {}/{}: cancel_all", rep + 1, f.reps);
        rw_cancel.push(runwarden_cancel_all(f.parked).await);
        base_cancel.push(baseline_cancel_all(f.parked).await);
        floor_cancel.push(floor::cancel_all(f.parked).await);
    }
    let capacity = stat(rw_tp.clone()).median;
    let loads = [0.25, 0.5, 0.9];
    let mut lat = Vec::new();
    for load in loads {
        eprintln!("latency at {:.0}% of {capacity:.0} runs/s", load * 100.0);
        let secs = f.latency_secs as f64;
        let rw = latency::runwarden(capacity * load, secs).await;
        let base = latency::baseline(capacity * load, secs).await;
        // The floor's own wait, at the row the target is set for.
        let floor = if load == 0.5 {
            Some(latency::floor(capacity * load, secs).await)
        } else {
            None
        };
        lat.push((load, rw, base, floor));
    }
    eprintln!("queries");
    let q = runwarden_queries().await;
    let call_floor = floor::call_rtt(None).await;
    eprintln!("memory");
    let mem = |kind: &str| {
        stat(
            (0..f.reps)
                .filter_map(|_| run_child(kind, f.parked))
                .collect::<Vec<_>>(),
        )
    };
    let retained = |_| {
        let kept = run_child("finished", f.parked)?;
        let none = run_child("finished-none", f.parked)?;
        Some((kept - none) / f.parked as f64)
    };
    let m_finished = stat((0..f.reps).filter_map(retained).collect());
    let (m_run, m_queued, m_base) = (mem("running"), mem("queued"), mem("baseline-running"));
    let m_queued_paced = mem("queued-paced");
    let m_run_paced = mem("running-paced");
    let m_floor = mem("floor-running");
    eprintln!("durable");
    let mut durable = Vec::new();
    let mut memory_same_run = Vec::new();
    let tmp = std::env::temp_dir();
    for _ in 0..f.reps {
        durable.push(durable_throughput(f.runs, &tmp).await);
        memory_same_run.push(runwarden_throughput(f.runs).await.0);
    }
    let (durable, memory_same_run) = (stat(durable), stat(memory_same_run));
    eprintln!("durable submits: bulk and one by one");
    let (mut bulk, mut one_by_one) = (Vec::new(), Vec::new());
    for _ in 0..f.reps {
        bulk.push(durable_submits(f.runs, 1000, &tmp).await);
        // One by one is one commit per run: a smaller count keeps it to a few seconds.
        one_by_one.push(durable_submits((f.runs / 50).max(100), 1, &tmp).await);
    }
    let (bulk, one_by_one) = (stat(bulk), stat(one_by_one));
    eprintln!("memory flat over 1,000,000 runs");
    let flat_runs = |kind: &str| {
        let xs: Vec<f64> = (0..f.reps)
            .filter_map(|_| run_child_with(kind, 1_000_000))
            .collect();
        (!xs.is_empty()).then(|| stat(xs))
    };
    let flat = flat_runs("flat");
    let base_flat = flat_runs("baseline-flat");

    let (rw_tp, base_tp, submit_ns) = (stat(rw_tp), stat(base_tp), stat(submit_ns));
    let floor_tp = stat(floor_tp);
    let rate_tp = stat(rate_tp);
    let keyed_tp = stat(keyed_tp);
    let (rw_cancel, base_cancel) = (stat(rw_cancel), stat(base_cancel));
    let floor_cancel = stat(floor_cancel);
    let row = |name: &str, s: Stat, unit: &str| {
        println!(
            "{name:<34} {:>14.0} {unit:<8} (min {:.0}, max {:.0})",
            s.median, s.min, s.max
        )
    };
    println!(
        "runwarden bench on {} — medians of {} reps",
        machine(),
        f.reps
    );
    row("throughput runwarden", rw_tp, "runs/s");
    row("throughput baseline", base_tp, "runs/s");
    println!(
        "{:<34} {:>14.2}",
        "throughput ratio (rw/baseline)",
        rw_tp.median / base_tp.median
    );
    row("floor: one bare actor per run", floor_tp, "runs/s");
    println!(
        "{:<34} {:>14.2}",
        "floor ratio (floor/baseline)",
        floor_tp.median / base_tp.median
    );
    row("throughput, rate-limited queue", rate_tp, "runs/s");
    println!(
        "{:<34} {:>14.2}",
        "rate-limited ratio (to plain)",
        rate_tp.median / rw_tp.median
    );
    row("throughput, 100 partition keys", keyed_tp, "runs/s");
    println!(
        "{:<34} {:>14.2}",
        "keyed ratio (to plain)",
        keyed_tp.median / rw_tp.median
    );
    row("submit", submit_ns, "ns/call");
    row("bytes per running run", m_run, "B");
    row("bytes per running run, paced", m_run_paced, "B");
    row("bytes per running task (baseline)", m_base, "B");
    row("bytes per bare actor (floor)", m_floor, "B");
    row("bytes per queued run", m_queued, "B");
    row("bytes per queued run, paced", m_queued_paced, "B");
    row("bytes per finished record", m_finished, "B");
    println!(
        "{:<34} {:>14.1} ms  (min {:.1}, max {:.1})",
        "cancel_all runwarden", rw_cancel.median, rw_cancel.min, rw_cancel.max
    );
    println!(
        "{:<34} {:>14.1} ms  (min {:.1}, max {:.1})",
        "cancel_all baseline", base_cancel.median, base_cancel.min, base_cancel.max
    );
    println!(
        "{:<34} {:>14.2}",
        "cancel_all ratio (rw/baseline)",
        rw_cancel.median / base_cancel.median
    );
    println!(
        "{:<34} {:>14.1} ms  (min {:.1}, max {:.1})",
        "floor: cancel_all", floor_cancel.median, floor_cancel.min, floor_cancel.max
    );
    println!(
        "{:<34} {:>14.2}",
        "cancel_all speed (floor/rw)",
        floor_cancel.median / rw_cancel.median
    );
    println!(
        "latency, 1 ms jobs (µs: p50 / p99 / p99.9)  submit → start          job end → visible"
    );
    for (load, rw, base, floor) in &lat {
        let sides = [
            ("runwarden", Some(rw)),
            ("baseline", Some(base)),
            ("floor", floor.as_ref()),
        ];
        for (who, l) in sides.into_iter().filter_map(|(who, l)| Some((who, l?))) {
            println!(
                "  {:>3.0}% {who:<10} {:>8.0} runs/s  {:>7.0} / {:>7.0} / {:>7.0}    {:>7.0} / {:>7.0} / {:>7.0}",
                load * 100.0,
                l.rate,
                l.start[0],
                l.start[1],
                l.start[2],
                l.end[0],
                l.end[1],
                l.end[2]
            );
        }
    }
    println!(
        "{:<34} {:>14.0} ns",
        "floor: bare ractor call rtt", call_floor
    );
    println!("{:<34} {:>14.0} ns", "status(id) rtt", q[0]);
    println!("{:<34} {:>14.0} ns", "active_count rtt", q[1]);
    println!("{:<34} {:>14.0} ns", "active_ids rtt (1,000 active)", q[2]);
    println!("{:<34} {:>14.0} ns", "list(running, 50) rtt", q[3]);
    row("durable (SQLite) throughput", durable, "runs/s");
    row("in-memory throughput (same run)", memory_same_run, "runs/s");
    row("durable bulk submits (1,000 each)", bulk, "runs/s");
    row("durable submits one by one", one_by_one, "runs/s");
    println!(
        "{:<34} {:>14.1} ×",
        "bulk / one by one",
        bulk.median / one_by_one.median
    );
    for (name, s) in [
        ("memory flat (retention on)", flat),
        ("memory flat (baseline)", base_flat),
    ] {
        match s {
            Some(s) => println!(
                "{name:<34} {:>14.3} x  (min {:.3}, max {:.3}; RSS at 1,000,000 runs / at 100,000)",
                s.median, s.min, s.max
            ),
            None => println!("{name:<34} {:>14}", "failed"),
        }
    }
    eprintln!("cores: 1 and 2 runtime worker threads");
    let scaling = threads_scaling(f.runs);
    match scaling {
        Some([one, two]) => {
            for (name, a, b) in [
                ("runwarden", one.0, two.0),
                ("floor", one.1, two.1),
                ("baseline", one.2, two.2),
            ] {
                println!(
                    "{:<34} {:>8.0} → {:>8.0} runs/s ({:.2}× with 2 threads)",
                    format!("threads 1 → 2, {name}"),
                    a,
                    b,
                    b / a
                );
            }
        }
        None => println!("{:<34} {:>14}", "threads 1 → 2", "failed"),
    }
    if f.json {
        let per_threads = |i: usize| {
            scaling.map(|s| {
                serde_json::json!({
                    "runs_per_sec": s[i].0,
                    "floor_runs_per_sec": s[i].1,
                    "baseline_runs_per_sec": s[i].2,
                })
            })
        };
        let mut line = serde_json::json!({
            "threads_1": per_threads(0),
            "threads_2": per_threads(1),
            "machine": machine(),
            "reps": f.reps,
            "runs": f.runs,
            "parked": f.parked,
            "throughput_ratio": rw_tp.median / base_tp.median,
            "runs_per_sec": rw_tp.median,
            "baseline_runs_per_sec": base_tp.median,
            "submit_ns": submit_ns.median,
            "bytes_per_running_run": m_run.median,
            "baseline_bytes_per_running_task": m_base.median,
            "floor_runs_per_sec": floor_tp.median,
            "floor_throughput_ratio": floor_tp.median / base_tp.median,
            "floor_bytes_per_actor": m_floor.median,
            "bytes_per_queued_run": m_queued.median,
            "bytes_per_queued_run_paced": m_queued_paced.median,
            "bytes_per_finished_record": m_finished.median,
            "cancel_all_ms": rw_cancel.median,
            "baseline_cancel_all_ms": base_cancel.median,
            "cancel_all_ratio": rw_cancel.median / base_cancel.median,
            "status_rtt_ns": q[0],
            "active_count_rtt_ns": q[1],
            "active_ids_rtt_ns": q[2],
            "list_running_rtt_ns": q[3],
            "call_floor_rtt_ns": call_floor,
            "rate_limited_runs_per_sec": rate_tp.median,
            "rate_limited_ratio": rate_tp.median / rw_tp.median,
            "keyed_runs_per_sec": keyed_tp.median,
            "keyed_ratio": keyed_tp.median / rw_tp.median,
            "floor_cancel_all_ms": floor_cancel.median,
            "p99_start_us_50": lat[1].1.start[1],
            "baseline_p99_start_us_50": lat[1].2.start[1],
            "latency": lat.iter().map(|(load, rw, base, _)| serde_json::json!({
                "load": load,
                "runwarden": {"rate": rw.rate, "start_us": rw.start, "end_us": rw.end},
                "baseline": {"rate": base.rate, "start_us": base.start, "end_us": base.end},
            })).collect::<Vec<_>>(),
            "durable_runs_per_sec": durable.median,
            "memory_runs_per_sec_same_run": memory_same_run.median,
            "bulk_durable_submits_per_sec": bulk.median,
            "one_by_one_durable_submits_per_sec": one_by_one.median,
            "bulk_submit_ratio": bulk.median / one_by_one.median,
            "rss_ratio_1m_vs_100k": flat.map(|s| s.median),
            "baseline_rss_ratio_1m_vs_100k": base_flat.map(|s| s.median),
        });
        // Past the `json!` macro's recursion limit: added to the object.
        line["floor_p99_start_us_50"] = serde_json::json!(lat[1].3.map(|f| f.start[1]));
        line["bytes_per_running_run_paced"] = serde_json::json!(m_run_paced.median);
        line["running_paced_vs_floor"] = serde_json::json!(m_run_paced.median / m_floor.median);
        println!("{line}");
    }
    ExitCode::SUCCESS
}
