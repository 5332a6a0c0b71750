//! The latency scenario of the `bench` example (included by `bench.rs`, not an example itself):
//! a steady submit rate of 1 ms jobs, and how long each run waits between submit and the start
//! of its job, and between the end of its job and its terminal status being visible to `wait`.
//! The baseline's are its own: submit → task start, and job end → its `JoinHandle` resolving.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use runwarden::{RunSpec, Runwarden};
use tokio::task::JoinSet;

/// Every this many runs, one also measures end → visible (a waiter per run would be load of
/// its own).
const SAMPLE_EVERY: usize = 20;

/// Percentiles in µs of one side at one load.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Latency {
    pub(crate) start: [f64; 3],
    pub(crate) end: [f64; 3],
    /// Runs/s actually submitted.
    pub(crate) rate: f64,
}

/// p50, p99 and p99.9 of `xs`.
fn percentiles(mut xs: Vec<f64>) -> [f64; 3] {
    if xs.is_empty() {
        return [f64::NAN; 3];
    }
    xs.sort_by(f64::total_cmp);
    let at = |p: f64| xs[((xs.len() - 1) as f64 * p).round() as usize];
    [at(0.50), at(0.99), at(0.999)]
}

/// Calls `submit(i)` for runs `0..rate * secs`, paced evenly over `secs` on a 1 ms tick.
async fn paced(rate: f64, secs: f64, mut submit: impl FnMut(usize)) -> f64 {
    let total = (rate * secs) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let begin = Instant::now();
    let mut done = 0;
    while done < total {
        tick.tick().await;
        let due = ((begin.elapsed().as_secs_f64() * rate) as usize).min(total);
        while done < due {
            submit(done);
            done += 1;
        }
    }
    total as f64 / begin.elapsed().as_secs_f64()
}

fn micros_since(epoch: Instant) -> u64 {
    epoch.elapsed().as_nanos() as u64 / 1_000
}

/// runwarden at `rate` runs/s for `secs`.
pub(crate) async fn runwarden(rate: f64, secs: f64) -> Latency {
    let rw = Runwarden::start().await.expect("start");
    let epoch = Instant::now();
    let starts = Arc::new(Mutex::new(Vec::with_capacity((rate * secs) as usize)));
    let mut waits = JoinSet::new();
    let achieved = paced(rate, secs, |i| {
        let submitted = Instant::now();
        let starts = starts.clone();
        let ended = Arc::new(AtomicU64::new(0));
        let mark = ended.clone();
        let id = rw
            .submit(RunSpec::new("latency"), move |_ctx| async move {
                starts.lock().push(submitted.elapsed().as_secs_f64() * 1e6);
                tokio::time::sleep(Duration::from_millis(1)).await;
                mark.store(micros_since(epoch), Ordering::Release);
                Ok(())
            })
            .expect("submit");
        if i % SAMPLE_EVERY == 0 {
            let rw = rw.clone();
            waits.spawn(async move {
                rw.wait(id).await.expect("wait");
                (micros_since(epoch) - ended.load(Ordering::Acquire)) as f64
            });
        }
    })
    .await;
    let mut ends = Vec::new();
    while let Some(e) = waits.join_next().await {
        ends.push(e.expect("waiter"));
    }
    rw.shutdown(Duration::from_secs(30))
        .await
        .expect("shutdown");
    let starts = std::mem::take(&mut *starts.lock());
    Latency {
        start: percentiles(starts),
        end: percentiles(ends),
        rate: achieved,
    }
}

/// The baseline (`tokio::spawn` and a status map) at `rate` runs/s for `secs`.
pub(crate) async fn baseline(rate: f64, secs: f64) -> Latency {
    let epoch = Instant::now();
    let starts = Arc::new(Mutex::new(Vec::with_capacity((rate * secs) as usize)));
    let map: Arc<Mutex<std::collections::HashMap<usize, u8>>> = Arc::default();
    let mut waits = JoinSet::new();
    let mut rest = JoinSet::new();
    let achieved = paced(rate, secs, |i| {
        let submitted = Instant::now();
        let (starts, map) = (starts.clone(), map.clone());
        let ended = Arc::new(AtomicU64::new(0));
        let mark = ended.clone();
        map.lock().insert(i, 0);
        let task = async move {
            starts.lock().push(submitted.elapsed().as_secs_f64() * 1e6);
            map.lock().insert(i, 1);
            tokio::time::sleep(Duration::from_millis(1)).await;
            mark.store(micros_since(epoch), Ordering::Release);
            map.lock().insert(i, 2);
        };
        if i % SAMPLE_EVERY == 0 {
            let handle = tokio::spawn(task);
            waits.spawn(async move {
                handle.await.expect("task");
                (micros_since(epoch) - ended.load(Ordering::Acquire)) as f64
            });
        } else {
            rest.spawn(task);
        }
    })
    .await;
    let mut ends = Vec::new();
    while let Some(e) = waits.join_next().await {
        ends.push(e.expect("waiter"));
    }
    while rest.join_next().await.is_some() {}
    let starts = std::mem::take(&mut *starts.lock());
    Latency {
        start: percentiles(starts),
        end: percentiles(ends),
        rate: achieved,
    }
}

/// The floor design (`floor` in `bench.rs`: a supervisor actor spawning one bare actor per
/// run, statuses cast to a registry actor) at `rate` runs/s for `secs`: how much of
/// runwarden's wait is the one actor per run that the design requires.
pub(crate) async fn floor(rate: f64, secs: f64) -> Latency {
    use ractor::Actor;
    let (registry, _) = Actor::spawn(None, super::floor::Registry, ())
        .await
        .expect("registry");
    let (supervisor, _) = Actor::spawn(None, floor_actors::Supervisor, registry.clone())
        .await
        .expect("supervisor");
    let epoch = Instant::now();
    let starts = Arc::new(Mutex::new(Vec::with_capacity((rate * secs) as usize)));
    let mut waits = JoinSet::new();
    let achieved = paced(rate, secs, |i| {
        let (done, seen) = if i % SAMPLE_EVERY == 0 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let run = floor_actors::Run {
            id: i as u64,
            submitted: Instant::now(),
            starts: starts.clone(),
            done,
            epoch,
        };
        supervisor.cast(run).expect("submit");
        if let Some(seen) = seen {
            // The worker sends its job's end after its `Completed` cast: the registry has it
            // in its mailbox then, as runwarden's `wait` sees a status the registry applied.
            waits.spawn(async move {
                let ended = seen.await.expect("worker");
                (micros_since(epoch) - ended) as f64
            });
        }
    })
    .await;
    let mut ends = Vec::new();
    while let Some(e) = waits.join_next().await {
        ends.push(e.expect("waiter"));
    }
    let total = (rate * secs) as usize;
    loop {
        let done = ractor::call!(registry, super::floor::RegistryMsg::Count, 2).expect("count");
        if done >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    supervisor.stop(None);
    registry.stop(None);
    let starts = std::mem::take(&mut *starts.lock());
    Latency {
        start: percentiles(starts),
        end: percentiles(ends),
        rate: achieved,
    }
}

/// The floor's actors for the latency scenario: the same shape as `floor`'s, with a 1 ms job
/// run in the worker's `post_start` (its own task, as runwarden's worker runs its job).
mod floor_actors {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use parking_lot::Mutex;
    use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

    use super::super::floor::RegistryMsg;

    pub(crate) struct Run {
        pub(crate) id: u64,
        pub(crate) submitted: Instant,
        pub(crate) starts: Arc<Mutex<Vec<f64>>>,
        /// For a sampled run: told the µs (since `epoch`) its job ended, once its
        /// `Completed` is cast.
        pub(crate) done: Option<tokio::sync::oneshot::Sender<u64>>,
        pub(crate) epoch: Instant,
    }

    pub(crate) struct Supervisor;

    impl Actor for Supervisor {
        type Msg = Run;
        type State = ActorRef<RegistryMsg>;
        type Arguments = ActorRef<RegistryMsg>;

        async fn pre_start(
            &self,
            _: ActorRef<Run>,
            registry: ActorRef<RegistryMsg>,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(registry)
        }

        async fn handle(
            &self,
            myself: ActorRef<Run>,
            run: Run,
            registry: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            registry.cast(RegistryMsg::Status(run.id, 0))?;
            Actor::spawn_linked(None, Worker, (run, registry.clone()), myself.get_cell()).await?;
            Ok(())
        }

        async fn handle_supervisor_evt(
            &self,
            _: ActorRef<Run>,
            _: SupervisionEvent,
            _: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            Ok(())
        }
    }

    pub(crate) struct Worker;

    impl Actor for Worker {
        type Msg = ();
        type State = Option<(Run, ActorRef<RegistryMsg>)>;
        type Arguments = (Run, ActorRef<RegistryMsg>);

        async fn pre_start(
            &self,
            _: ActorRef<()>,
            (run, registry): (Run, ActorRef<RegistryMsg>),
        ) -> Result<Self::State, ActorProcessingErr> {
            registry.cast(RegistryMsg::Status(run.id, 1))?;
            Ok(Some((run, registry)))
        }

        async fn post_start(
            &self,
            myself: ActorRef<()>,
            state: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            let Some((run, registry)) = state.take() else {
                return Ok(());
            };
            run.starts
                .lock()
                .push(run.submitted.elapsed().as_secs_f64() * 1e6);
            tokio::time::sleep(Duration::from_millis(1)).await;
            let ended = run.epoch.elapsed().as_nanos() as u64 / 1_000;
            registry.cast(RegistryMsg::Status(run.id, 2))?;
            if let Some(done) = run.done {
                let _ = done.send(ended);
            }
            myself.stop(None);
            Ok(())
        }
    }
}
