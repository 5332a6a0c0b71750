//! Allocations and live heap per run, counted by a wrapping global allocator.
//!
//! ```text
//! cargo run --release --example allocs -- [--json]
//! ```
//!
//! Timings and resident sizes on a shared two-core machine move from run to run; allocation
//! counts and live bytes barely do, so this is the figure to compare before and after a
//! change to the hot path. It reports, per run: allocations and bytes allocated over a whole
//! trivial run (submit to `Completed`), allocations of the `submit` call alone, and the live
//! heap held by a queued, a running and a finished run. The floor design of `bench.rs` (one
//! bare ractor actor per run) is counted the same way for reference.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use runwarden::{Retention, RunSpec, RunStatus, Runwarden};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

const N: usize = 20_000;

async fn wait_for(rw: &Runwarden, status: RunStatus, n: usize) {
    loop {
        let s = rw.stats().await.expect("stats");
        if s.count(status) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// (allocations per run, bytes allocated per run, allocations per submit call)
async fn whole_runs() -> (f64, f64, f64) {
    let rw = Runwarden::start().await.expect("start");
    // Warm up: the registry's and supervisor's tables, mailboxes, interned labels.
    for _ in 0..1000 {
        rw.submit(RunSpec::new("t"), |_| async { Ok(()) })
            .expect("submit");
    }
    wait_for(&rw, RunStatus::Completed, 1000).await;
    let spec = RunSpec::new("t");
    let whole = Region::new(GLOBAL);
    let mut submit_allocs = 0;
    for _ in 0..N {
        let spec = spec.clone();
        let one = Region::new(GLOBAL);
        rw.submit(spec, |_| async { Ok(()) }).expect("submit");
        submit_allocs += one.change().allocations;
    }
    wait_for(&rw, RunStatus::Completed, N + 1000).await;
    let c = whole.change();
    rw.shutdown(Duration::from_secs(30))
        .await
        .expect("shutdown");
    let n = N as f64;
    (
        (c.allocations + c.reallocations) as f64 / n,
        c.bytes_allocated as f64 / n,
        submit_allocs as f64 / n,
    )
}

/// Live heap bytes per run held `Queued` (global limit 1), `Running` (parked), or finished.
/// Retention is set to keep exactly `N` finished runs and counting starts before the
/// instance does, so the record storage it reserves for that window is counted too.
async fn live(status: RunStatus) -> f64 {
    let retention = Retention {
        max_finished: N,
        ..Retention::default()
    };
    let region = Region::new(GLOBAL);
    let builder = Runwarden::builder().retention(retention);
    let builder = if status == RunStatus::Queued {
        builder.max_concurrent(1)
    } else {
        builder
    };
    let rw = builder.start().await.expect("start");
    let gate = Arc::new(tokio::sync::Notify::new());
    for _ in 0..N {
        let g = gate.clone();
        let park = status != RunStatus::Completed;
        rw.submit(RunSpec::new("parked"), move |_| async move {
            if park {
                g.notified().await;
            }
            Ok(())
        })
        .expect("submit");
    }
    let want = if status == RunStatus::Queued {
        N - 1
    } else {
        N
    };
    wait_for(&rw, status, want).await;
    let c = region.change();
    let live = (c.bytes_allocated as f64 - c.bytes_deallocated as f64) / N as f64;
    gate.notify_waiters();
    rw.shutdown(Duration::from_secs(30))
        .await
        .expect("shutdown");
    live
}

// The floor design (as in bench.rs): a supervisor spawning one bare actor per run, which
// reports two statuses to a registry actor and stops.

struct Registry;

enum RegistryMsg {
    Status,
    Done(RpcReplyPort<usize>),
}

impl Actor for Registry {
    type Msg = RegistryMsg;
    type State = usize;
    type Arguments = ();

    async fn pre_start(
        &self,
        _: ActorRef<RegistryMsg>,
        _: (),
    ) -> Result<usize, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<RegistryMsg>,
        msg: RegistryMsg,
        seen: &mut usize,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RegistryMsg::Status => *seen += 1,
            RegistryMsg::Done(reply) => {
                let _ = reply.send(*seen);
            }
        }
        Ok(())
    }
}

struct Supervisor;

impl Actor for Supervisor {
    type Msg = ();
    type State = ActorRef<RegistryMsg>;
    type Arguments = ActorRef<RegistryMsg>;

    async fn pre_start(
        &self,
        _: ActorRef<()>,
        registry: ActorRef<RegistryMsg>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(registry)
    }

    async fn handle(
        &self,
        myself: ActorRef<()>,
        _: (),
        registry: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        Actor::spawn_linked(None, Worker, registry.clone(), myself.get_cell()).await?;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _: ActorRef<()>,
        _: SupervisionEvent,
        _: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

struct Worker;

impl Actor for Worker {
    type Msg = ();
    type State = ();
    type Arguments = ActorRef<RegistryMsg>;

    async fn pre_start(
        &self,
        myself: ActorRef<()>,
        registry: ActorRef<RegistryMsg>,
    ) -> Result<(), ActorProcessingErr> {
        registry.cast(RegistryMsg::Status)?;
        registry.cast(RegistryMsg::Status)?;
        myself.stop(None);
        Ok(())
    }
}

async fn floor_runs() -> (f64, f64) {
    let (registry, _) = Actor::spawn(None, Registry, ()).await.expect("registry");
    let (supervisor, _) = Actor::spawn(None, Supervisor, registry.clone())
        .await
        .expect("supervisor");
    let region = Region::new(GLOBAL);
    for _ in 0..N {
        supervisor.cast(()).expect("submit");
    }
    while ractor::call!(registry, RegistryMsg::Done).expect("count") < 2 * N {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Let the last workers' exits reach the supervisor.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let c = region.change();
    supervisor.stop(None);
    registry.stop(None);
    let n = N as f64;
    (
        (c.allocations + c.reallocations) as f64 / n,
        c.bytes_allocated as f64 / n,
    )
}

#[tokio::main]
async fn main() {
    let json = std::env::args().any(|a| a == "--json");
    let (allocs, bytes, submit) = whole_runs().await;
    let queued = live(RunStatus::Queued).await;
    let running = live(RunStatus::Running).await;
    let finished = live(RunStatus::Completed).await;
    let (floor_allocs, floor_bytes) = floor_runs().await;
    println!("per run, over {N} runs (counted by the global allocator)");
    println!("{:<40} {allocs:>10.1}", "allocations, submit to Completed");
    println!(
        "{:<40} {bytes:>10.0} B",
        "bytes allocated, submit to Completed"
    );
    println!("{:<40} {submit:>10.1}", "allocations in the submit call");
    println!("{:<40} {queued:>10.0} B", "live heap per queued run");
    println!("{:<40} {running:>10.0} B", "live heap per running run");
    println!("{:<40} {finished:>10.0} B", "live heap per finished record");
    println!("{:<40} {floor_allocs:>10.1}", "floor: allocations per run");
    println!(
        "{:<40} {floor_bytes:>10.0} B",
        "floor: bytes allocated per run"
    );
    if json {
        println!(
            "{}",
            serde_json::json!({
                "allocs_per_run": allocs,
                "bytes_allocated_per_run": bytes,
                "allocs_per_submit": submit,
                "live_bytes_per_queued_run": queued,
                "live_bytes_per_running_run": running,
                "live_bytes_per_finished_record": finished,
                "floor_allocs_per_run": floor_allocs,
                "floor_bytes_allocated_per_run": floor_bytes,
            })
        );
    }
}
