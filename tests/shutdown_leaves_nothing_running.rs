//! After `shutdown`, no actor and no task of runwarden is left running: workers, job tasks,
//! grace and drain timers, the registry and the supervisor are all gone.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::ractor::ActorStatus;
use runwarden::{Error, RunSpec, Runwarden, SubmitError};
use support::{DropSignal, Gate, Started, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_actor_and_task() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();

    let rw = start(
        Runwarden::builder()
            .cancel_grace(Duration::from_millis(200))
            .max_concurrent(4),
    )
    .await;
    let gate = Gate::new();
    let mut started = Started::new();
    let mut dropped = Vec::new();
    for i in 0..8u64 {
        let (g, tx) = (gate.clone(), started.tx.clone());
        let (drop_tx, drop_rx) = tokio::sync::oneshot::channel();
        dropped.push(drop_rx);
        rw.submit(RunSpec::new("mixed"), move |ctx| async move {
            let _guard = DropSignal(Some(drop_tx));
            let _ = tx.send(i);
            match i % 4 {
                0 => std::future::pending::<()>().await, // ignores cancel: forced at grace
                1 => ctx.cancelled().await,              // stops on cancel
                _ => g.wait().await,                     // never released
            }
            Ok(())
        })
        .expect("submit");
    }
    started.expect(4).await; // four running, four queued
    let supervisor = rw.supervisor().actor().clone();
    let registry = rw.registry().actor().clone();
    let workers: Vec<_> = supervisor
        .get_children()
        .into_iter()
        .filter(|c| c.get_id() != registry.get_id())
        .collect();
    assert_eq!(
        workers.len(),
        4,
        "one worker actor per running run, none for queued runs"
    );

    let report = within("shutdown", rw.shutdown(Duration::from_millis(100)))
        .await
        .expect("shutdown");
    assert_eq!(report.cancelled, 8);
    assert_eq!(report.cancelled_by_drain.len(), 8);

    assert_eq!(supervisor.get_status(), ActorStatus::Stopped);
    assert_eq!(registry.get_status(), ActorStatus::Stopped);
    for w in &workers {
        assert_eq!(w.get_status(), ActorStatus::Stopped);
    }
    // Every job future that started was dropped (the guard fired: `Ok`), and every job that
    // never started had its closure dropped with its queue entry (the sender vanished:
    // `Err`). Either way it is gone; a leaked one would hold the channel open forever.
    let mut fired = 0;
    for rx in dropped {
        fired += within("a job to be dropped", rx).await.is_ok() as usize;
    }
    assert_eq!(fired, 4, "the four started jobs were dropped as futures");
    // Aborted tasks are reaped by the runtime shortly after abort; wait for the count to
    // return to where it was, observing rather than sleeping.
    within("runwarden's tasks to be gone", async {
        while metrics.num_alive_tasks() > tasks_before {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        rw.submit(RunSpec::new("late"), |_| async { Ok(()) }),
        Err(SubmitError::ShuttingDown)
    );
    assert_eq!(
        rw.active_count().await,
        Err(Error::Unavailable {
            request: "active_count"
        })
    );
}
