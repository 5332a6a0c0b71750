//! A queue's per-key limit is never exceeded (peaks measured inside the jobs), the keys with
//! runs waiting take turns so a key with a deep backlog cannot starve the others, priorities
//! still order runs within a key, runs without a key are not held by the per-key limit, and
//! the limit changes at run time. On tokio's paused clock, so the jobs' durations are exact.
#[path = "support/helpers.rs"]
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use runwarden::{QueueConfig, RunId, RunSpec, RunStatus, Runwarden};
use support::{Gate, Started, start, within};

/// Runs per key in the jobs right now, the most seen at once, and the order runs finished.
#[derive(Default)]
struct Watch {
    now: HashMap<String, usize>,
    peak: HashMap<String, usize>,
    finished: Vec<String>,
}

/// Submits a run of `key` to `queue` that lasts `ms` (paused clock) and reports to `watch`.
fn submit_watched(
    rw: &Runwarden,
    queue: &str,
    key: &str,
    ms: u64,
    watch: &Arc<Mutex<Watch>>,
) -> RunId {
    let watch = watch.clone();
    let k = key.to_owned();
    rw.submit(
        RunSpec::new("tenant-work").queue(queue).partition_key(key),
        move |_ctx| async move {
            {
                let mut w = watch.lock();
                let n = w.now.entry(k.clone()).or_default();
                *n += 1;
                let n = *n;
                let peak = w.peak.entry(k.clone()).or_default();
                *peak = (*peak).max(n);
            }
            tokio::time::sleep(Duration::from_millis(ms)).await;
            let mut w = watch.lock();
            *w.now.get_mut(&k).expect("counted at start") -= 1;
            w.finished.push(k);
            Ok(())
        },
    )
    .expect("submit")
}

#[tokio::test(start_paused = true)]
async fn a_key_with_5000_waiting_never_passes_its_limit_nor_starves_the_small_keys() {
    let rw = start(Runwarden::builder().queue("tenants", QueueConfig::limited(4).per_key(2))).await;
    let watch = Arc::new(Mutex::new(Watch::default()));
    // The big key's backlog arrives first: in arrival order it would hold the queue for
    // 5,000 runs.
    let mut ids: Vec<RunId> = (0..5000)
        .map(|_| submit_watched(&rw, "tenants", "big", 1, &watch))
        .collect();
    let small = ["a", "b", "c", "d", "e"];
    for key in small {
        for _ in 0..10 {
            ids.push(submit_watched(&rw, "tenants", key, 1, &watch));
        }
    }
    within("5,050 runs", async {
        for id in &ids {
            assert_eq!(
                rw.wait(*id).await.expect("wait").status,
                RunStatus::Completed
            );
        }
    })
    .await;
    let w = std::mem::take(&mut *watch.lock());
    assert_eq!(w.finished.len(), 5050);
    for (key, peak) in &w.peak {
        assert!(*peak <= 2, "key {key} ran {peak} at once; the limit is 2");
    }
    assert_eq!(w.peak["big"], 2, "the big key used its two slots");
    let last_small = w
        .finished
        .iter()
        .rposition(|k| k != "big")
        .expect("small keys ran");
    let big_before = w.finished[..last_small]
        .iter()
        .filter(|k| *k == "big")
        .count();
    // The big key holds at most 2 of the 4 slots while the others wait, so the 50 small runs
    // are done by the time it has finished about as many: not after its 5,000.
    assert!(
        big_before <= 60,
        "the small keys finished only after {big_before} runs of the big key"
    );
    let status = rw.supervisor_status().await.expect("status");
    let q = status
        .queues
        .iter()
        .find(|q| q.name == "tenants")
        .expect("queue");
    assert_eq!(q.per_key, Some(2));
    assert_eq!(
        (q.queued, q.running, q.keys),
        (0, 0, 0),
        "nothing is left of the keys once their runs are over"
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn keys_take_turns_and_priorities_order_the_runs_within_a_key() {
    let rw = start(Runwarden::builder().queue("q", QueueConfig::limited(1).per_key(1))).await;
    rw.pause_queue("q").await.expect("pause");
    let order = Arc::new(Mutex::new(Vec::new()));
    let submit = |key: &str, priority: i32, tag: &'static str| {
        let order = order.clone();
        let spec = RunSpec::new("turns")
            .queue("q")
            .partition_key(key)
            .priority(priority);
        rw.submit(spec, move |_ctx| async move {
            order.lock().push(tag);
            Ok(())
        })
        .expect("submit")
    };
    let ids = [
        submit("a", 0, "a0"),
        submit("a", 5, "a5"),
        submit("a", 1, "a1"),
        submit("b", 9, "b9"),
        submit("b", 2, "b2"),
        submit("c", 0, "c0"),
    ];
    // The registry answers after it handed every earlier run to the supervisor, which then
    // has their `Start`s ahead of the status request: all six are in the queue.
    rw.status(ids[5]).await.expect("status");
    let status = rw.supervisor_status().await.expect("status");
    let q = status.queues.iter().find(|q| q.name == "q").expect("queue");
    assert_eq!((q.queued, q.keys), (6, 3));
    rw.resume_queue("q").await.expect("resume");
    for id in ids {
        rw.wait(id).await.expect("wait");
    }
    // Keys in the order they first arrived, one run per turn, each key's runs by priority.
    assert_eq!(*order.lock(), ["a5", "b9", "c0", "a1", "b2", "a0"]);
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn runs_without_a_key_are_not_held_by_the_per_key_limit() {
    let rw = start(Runwarden::builder().queue("q", QueueConfig::default().per_key(1))).await;
    let mut started = Started::new();
    let gate = Gate::new();
    let ids: Vec<RunId> = (0..3)
        .map(|i| {
            rw.submit(RunSpec::new("plain").queue("q"), started.held(&gate, i))
                .expect("submit")
        })
        .collect();
    within("three unkeyed runs to start", started.expect(3)).await;
    gate.open();
    for id in ids {
        rw.wait(id).await.expect("wait");
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn the_per_key_limit_changes_at_run_time() {
    let rw = start(Runwarden::builder().queue("q", QueueConfig::default().per_key(1))).await;
    let mut started = Started::new();
    let gate = Gate::new();
    let ids: Vec<RunId> = (0..3)
        .map(|i| {
            let spec = RunSpec::new("keyed").queue("q").partition_key("k");
            rw.submit(spec, started.held(&gate, i)).expect("submit")
        })
        .collect();
    within("the first run of the key", started.expect(1)).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(started.rx_try().is_err(), "the key is at its limit of 1");
    let status = rw.supervisor_status().await.expect("status");
    let q = status.queues.iter().find(|q| q.name == "q").expect("queue");
    assert_eq!((q.queued, q.running, q.keys), (2, 1, 1));

    rw.set_queue_per_key("q", Some(3)).await.expect("raise");
    within("the held runs, once the limit is raised", started.expect(2)).await;
    gate.open();
    for id in ids {
        assert_eq!(
            rw.wait(id).await.expect("wait").status,
            RunStatus::Completed
        );
    }
    match rw.set_queue_per_key("nope", Some(1)).await {
        Err(runwarden::Error::UnknownQueue(q)) => assert_eq!(q.0, "nope"),
        other => panic!("an unknown queue is refused, got {other:?}"),
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test]
async fn a_cancelled_waiting_run_of_a_key_leaves_its_turn_to_the_next() {
    let rw = start(Runwarden::builder().queue("q", QueueConfig::limited(1).per_key(1))).await;
    let mut started = Started::new();
    let gate = Gate::new();
    let keyed = |k: &str| RunSpec::new(k).queue("q").partition_key(k);
    let first = rw
        .submit(keyed("k"), started.held(&gate, 1))
        .expect("submit");
    within("the first run", started.expect(1)).await;
    let second = rw
        .submit(keyed("k"), started.held(&gate, 2))
        .expect("submit");
    let other = rw
        .submit(keyed("j"), started.held(&gate, 3))
        .expect("submit");
    rw.cancel(second).await.expect("cancel");
    let r = rw.wait(second).await.expect("wait");
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(
        r.partition_key.as_deref(),
        Some("k"),
        "the record keeps its key"
    );
    gate.open();
    for id in [first, other] {
        assert_eq!(
            rw.wait(id).await.expect("wait").status,
            RunStatus::Completed
        );
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}
