//! Periodic schedules submit one tracked run per occurrence (fixed delay, or fixed rate
//! without overlap), count runs and errors, pause, resume and remove, and stop submitting
//! when a drain begins while the drain waits for the occurrence in flight.
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use runwarden::{EventFilter, EventItem, RunSpec, RunStatus, Runwarden, ScheduleSpec};
use support::{start, within};

async fn schedule_runs(rw: &Runwarden, id: runwarden::ScheduleId) -> u64 {
    rw.schedules()
        .await
        .expect("schedules")
        .into_iter()
        .find(|s| s.id == id)
        .expect("schedule")
        .runs
}

// Fixed delay, paused clock: each occurrence takes 1 s and the delay is 10 s, so occurrences
// start at 0, 11, 22, ... seconds. Every third one fails.
#[tokio::test(start_paused = true)]
async fn fixed_delay_counts_runs_and_errors_and_stops_on_drain() {
    let rw = start(Runwarden::builder()).await;
    let mut ticks = rw
        .events(EventFilter::Label("tick".into()))
        .await
        .expect("subscribe");
    let n = Arc::new(AtomicU32::new(0));
    let counter = n.clone();
    let spec = ScheduleSpec::fixed_delay(RunSpec::new("tick"), Duration::from_secs(10));
    let id = rw
        .schedule(spec, move |_| {
            let k = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                if k.is_multiple_of(3) {
                    Err(runwarden::JobError::msg(format!("occurrence {k} failed")))
                } else {
                    Ok(())
                }
            }
        })
        .await
        .expect("schedule");
    // Watch the occurrences start, on the paused clock (5 delays of 11 s pass in no time).
    let mut running = 0;
    while running < 6 {
        let item = tokio::time::timeout(Duration::from_secs(600), ticks.next())
            .await
            .expect("an occurrence within 600 s of paused time")
            .expect("stream open");
        if let EventItem::Event(e) = item {
            running += usize::from(e.status() == Some(RunStatus::Running));
        }
    }
    assert_eq!(schedule_runs(&rw, id).await, 6);
    // The sixth is in flight when the drain begins: the drain waits for it, and nothing new
    // is submitted after.
    let report = within("drain", rw.drain(Duration::from_secs(60)))
        .await
        .expect("drain");
    assert!(!report.deadline_hit);
    let info = rw.schedules().await.expect("schedules").remove(0);
    assert_eq!(info.runs, 6);
    assert_eq!((info.completed, info.failed), (4, 2));
    assert_eq!(info.active_run, None);
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(
        schedule_runs(&rw, id).await,
        6,
        "no occurrence after the drain"
    );
    // Every occurrence is a normal run in the registry.
    let stats = rw.stats().await.expect("stats");
    assert_eq!(
        (
            stats.count(RunStatus::Completed),
            stats.count(RunStatus::Failed)
        ),
        (4, 2)
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Fixed rate never overlaps: an occurrence that is still running when the next is due makes
// the due one skipped. Pause stops occurrences, resume starts one at once, remove forgets.
#[tokio::test(start_paused = true)]
async fn fixed_rate_skips_overlaps_and_pauses_resumes_removes() {
    let rw = start(Runwarden::builder()).await;
    // Each occurrence takes 25 s; one is due every 10 s.
    let spec = ScheduleSpec::fixed_rate(RunSpec::new("rate"), Duration::from_secs(10));
    let id = rw
        .schedule(spec, |_| async {
            tokio::time::sleep(Duration::from_secs(25)).await;
            Ok(())
        })
        .await
        .expect("schedule");
    tokio::time::sleep(Duration::from_secs(61)).await;
    let info = rw.schedules().await.expect("schedules").remove(0);
    // Due at 0,10,...,60: started at 0 and 30 and 60; 10, 20, 40, 50 were skipped.
    assert_eq!((info.runs, info.skipped), (3, 4), "{info:?}");

    rw.pause_schedule(id).await.expect("pause");
    tokio::time::sleep(Duration::from_secs(100)).await;
    let paused = rw.schedules().await.expect("schedules").remove(0);
    assert_eq!(paused.runs, 3, "nothing submitted while paused");
    assert!(paused.paused && paused.active_run.is_none());

    rw.resume_schedule(id).await.expect("resume");
    assert_eq!(schedule_runs(&rw, id).await, 4, "resume submits at once");
    let removed = rw.remove_schedule(id).await.expect("remove");
    assert_eq!(removed.runs, 4);
    assert!(matches!(
        rw.pause_schedule(id).await,
        Err(runwarden::Error::NoSuchSchedule(_))
    ));
    rw.shutdown(support::STEP).await.expect("shutdown");
}
