//! Under 5,000 submits with random durations spread over named queues, no queue ever runs
//! more than its limit and the global limit always holds.
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use runwarden::{QueueConfig, RunSpec, RunStatus, Runwarden};
use support::{start, within};

/// Counts what runs at once and remembers the peak.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_hold_for_five_thousand_random_runs() {
    let rw = start(
        Runwarden::builder()
            .max_concurrent(6)
            .queue("default", QueueConfig::limited(4))
            .queue("media", QueueConfig::limited(2)),
    )
    .await;
    let all = Arc::new(Gauge::default());
    let default_q = Arc::new(Gauge::default());
    let media_q = Arc::new(Gauge::default());
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut ids = Vec::new();
    for i in 0..5000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let micros = seed % 400;
        let media = seed.is_multiple_of(3);
        let (all, q) = (
            all.clone(),
            if media {
                media_q.clone()
            } else {
                default_q.clone()
            },
        );
        let spec = if media {
            RunSpec::new("media").queue("media")
        } else {
            RunSpec::new("plain")
        }
        .priority((seed % 5) as i32);
        let id = rw
            .submit(spec, move |_| async move {
                all.enter();
                q.enter();
                if micros.is_multiple_of(4) {
                    tokio::task::yield_now().await;
                } else {
                    tokio::time::sleep(Duration::from_micros(micros)).await;
                }
                q.leave();
                all.leave();
                if i % 17 == 0 {
                    Err(runwarden::JobError::msg("some fail"))
                } else {
                    Ok(())
                }
            })
            .expect("submit");
        ids.push(id);
    }
    for id in ids {
        let r = within("run", rw.wait(id)).await.expect("wait");
        assert!(r.status.is_terminal());
    }
    let (peak_all, peak_default, peak_media) = (
        all.peak.load(Ordering::SeqCst),
        default_q.peak.load(Ordering::SeqCst),
        media_q.peak.load(Ordering::SeqCst),
    );
    assert!(peak_all <= 6, "global peak {peak_all}");
    assert!(peak_default <= 4, "default peak {peak_default}");
    assert!(peak_media <= 2, "media peak {peak_media}");
    // The limits were actually reached, so the test could have caught a breach.
    assert!(peak_all >= 2 && peak_media >= 1, "{peak_all} {peak_media}");
    let stats = rw.stats().await.expect("stats");
    assert_eq!(
        stats.count(RunStatus::Completed) + stats.count(RunStatus::Failed),
        5000
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}
