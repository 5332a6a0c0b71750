//! Rate limits beyond a whole queue, on tokio's paused clock so that windows are exact: each
//! partition key of a queue can have its own rate limit, and a kind (run label) one over all
//! queues, each holding back only its own runs; a limit with a burst is a token bucket; the
//! run a rate limit holds first in line shows when it may start on its record; and priority
//! aging lets a low-priority run through a steady stream of higher ones.
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use runwarden::{
    QueueConfig, RateLimit, RunId, RunSpec, RunStatus, Runwarden, Timestamp, WallClock,
};
use support::{Gate, start, within};
use tokio::time::Instant;

/// Start times, as (tag, milliseconds after `t0`), recorded inside the jobs.
type Starts = Arc<Mutex<Vec<(String, u64)>>>;

fn submit_tagged(rw: &Runwarden, spec: RunSpec, tag: &str, t0: Instant, starts: &Starts) -> RunId {
    let (starts, tag) = (starts.clone(), tag.to_owned());
    rw.submit(spec, move |_ctx| async move {
        starts.lock().push((tag, t0.elapsed().as_millis() as u64));
        Ok(())
    })
    .expect("submit")
}

async fn wait_all(rw: &Runwarden, ids: &[RunId]) {
    for id in ids {
        let r = within("a rate-held run ends", rw.wait(*id))
            .await
            .expect("wait");
        assert_eq!(r.status, RunStatus::Completed, "a held run is never failed");
    }
}

/// Starts of `tag` per whole second, for seconds `0..secs`.
fn per_second(starts: &[(String, u64)], tag: &str, secs: u64) -> Vec<usize> {
    (0..secs)
        .map(|s| {
            starts
                .iter()
                .filter(|(t, ms)| t == tag && *ms / 1000 == s)
                .count()
        })
        .collect()
}

fn last_start(starts: &[(String, u64)], tag: &str) -> u64 {
    starts
        .iter()
        .filter(|(t, _)| t == tag)
        .map(|(_, ms)| *ms)
        .max()
        .expect("some start")
}

#[tokio::test(start_paused = true)]
async fn each_key_has_its_own_rate_and_a_held_key_does_not_hold_the_others() {
    let rw = start(Runwarden::builder().queue(
        "api",
        QueueConfig::default().key_rate(RateLimit::per_second(2)),
    ))
    .await;
    let t0 = Instant::now();
    let starts: Starts = Arc::default();
    let mut ids = Vec::new();
    for _ in 0..20 {
        for key in ["a", "b"] {
            let spec = RunSpec::new("call").queue("api").partition_key(key);
            ids.push(submit_tagged(&rw, spec, key, t0, &starts));
        }
    }
    for _ in 0..3 {
        let spec = RunSpec::new("call").queue("api").partition_key("c");
        ids.push(submit_tagged(&rw, spec, "c", t0, &starts));
    }
    for _ in 0..10 {
        // Runs without a key are not held by the per-key limit.
        ids.push(submit_tagged(
            &rw,
            RunSpec::new("call").queue("api"),
            "none",
            t0,
            &starts,
        ));
    }
    wait_all(&rw, &ids).await;
    let starts = starts.lock().clone();
    assert_eq!(per_second(&starts, "a", 10), vec![2; 10]);
    assert_eq!(per_second(&starts, "b", 10), vec![2; 10]);
    assert_eq!(per_second(&starts, "c", 2), vec![2, 1]);
    assert_eq!(per_second(&starts, "none", 1), vec![10]);
    let status = rw.supervisor_status().await.expect("status");
    let api = status.queues.iter().find(|q| q.name == "api").expect("api");
    assert_eq!(api.key_rate, Some(RateLimit::per_second(2)));
    assert_eq!(api.queued, 0);
}

#[tokio::test(start_paused = true)]
async fn a_kinds_rate_holds_its_runs_over_all_queues_and_no_others() {
    let rw = start(
        Runwarden::builder()
            .queue("a", QueueConfig::default())
            .queue("b", QueueConfig::default())
            .kind_rate("email", RateLimit::per_second(5)),
    )
    .await;
    let t0 = Instant::now();
    let starts: Starts = Arc::default();
    let mut ids = Vec::new();
    // Emails first in both queues, then other work behind them in each.
    for queue in ["a", "b"] {
        for _ in 0..25 {
            let spec = RunSpec::new("email").queue(queue);
            ids.push(submit_tagged(&rw, spec, "email", t0, &starts));
        }
    }
    for queue in ["a", "b"] {
        for _ in 0..10 {
            let spec = RunSpec::new("thumbnail").queue(queue);
            ids.push(submit_tagged(&rw, spec, "thumbnail", t0, &starts));
        }
    }
    let status = supervisor_after_registry(&rw, ids[ids.len() - 1]).await;
    assert_eq!(status.kind_rates.len(), 1);
    assert_eq!(status.kind_rates[0].kind, "email");
    assert_eq!(status.kind_rates[0].queued, 45, "5 of 50 started at once");
    wait_all(&rw, &ids).await;
    let starts = starts.lock().clone();
    assert_eq!(per_second(&starts, "email", 10), vec![5; 10]);
    assert_eq!(
        last_start(&starts, "thumbnail"),
        0,
        "the runs behind the held kind start at once"
    );
    let status = rw.supervisor_status().await.expect("status");
    assert_eq!(status.kind_rates[0].queued, 0);
}

#[tokio::test(start_paused = true)]
async fn a_kind_rate_set_at_run_time_holds_runs_already_waiting_and_lifted_frees_them() {
    let rw = start(Runwarden::builder().queue("q", QueueConfig::default())).await;
    rw.pause_queue("q").await.expect("pause");
    let t0 = Instant::now();
    let starts: Starts = Arc::default();
    let ids: Vec<RunId> = (0..12)
        .map(|_| submit_tagged(&rw, RunSpec::new("email").queue("q"), "email", t0, &starts))
        .collect();
    rw.set_kind_rate("email", Some(RateLimit::per_second(2)))
        .await
        .expect("set");
    rw.resume_queue("q").await.expect("resume");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        per_second(&starts.lock(), "email", 3),
        vec![2, 2, 2],
        "the runs that waited before the limit was set are held by it"
    );
    rw.set_kind_rate("email", None).await.expect("lift");
    wait_all(&rw, &ids).await;
    assert_eq!(
        per_second(&starts.lock(), "email", 3),
        vec![2, 2, 8],
        "lifted, the rest start at once"
    );
    let status = rw.supervisor_status().await.expect("status");
    assert!(status.kind_rates.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_burst_makes_a_token_bucket_its_size_at_once_then_one_per_refill() {
    let rate = RateLimit::per_second(10).burst(3);
    let rw = start(Runwarden::builder().queue("q", QueueConfig::default().rate(rate))).await;
    let t0 = Instant::now();
    let starts: Starts = Arc::default();
    let ids: Vec<RunId> = (0..8)
        .map(|_| submit_tagged(&rw, RunSpec::new("call").queue("q"), "call", t0, &starts))
        .collect();
    wait_all(&rw, &ids).await;
    let mut ms: Vec<u64> = starts.lock().iter().map(|(_, ms)| *ms).collect();
    ms.sort_unstable();
    // Tokio's timers have millisecond steps: a refill due at 100 ms fires at 100 or 101.
    let expected = [0, 0, 0, 100, 200, 300, 400, 500];
    for (got, want) in ms.iter().zip(expected) {
        assert!(
            (*got).abs_diff(want) <= 2,
            "starts {ms:?}, expected about {expected:?}"
        );
    }
    // After a quiet spell the bucket is full again: its size, no more.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let t1 = Instant::now();
    let again: Starts = Arc::default();
    let ids: Vec<RunId> = (0..4)
        .map(|_| submit_tagged(&rw, RunSpec::new("call").queue("q"), "call", t1, &again))
        .collect();
    wait_all(&rw, &ids).await;
    let mut ms: Vec<u64> = again.lock().iter().map(|(_, ms)| *ms).collect();
    ms.sort_unstable();
    assert_eq!(&ms[..3], &[0, 0, 0]);
    assert!(ms[3] >= 99, "{ms:?}");
}

#[tokio::test(start_paused = true)]
async fn the_run_a_rate_holds_first_in_line_shows_when_it_may_start() {
    let t_wall = at("2026-12-02T12:00:00Z");
    let rw = start(
        Runwarden::builder()
            .wall_clock(WallClock::StartingAt(t_wall))
            .queue(
                "slow",
                QueueConfig::default().rate(RateLimit::new(1, Duration::from_secs(10))),
            ),
    )
    .await;
    let gate = Gate::new();
    let (started, mut started_rx) = tokio::sync::mpsc::unbounded_channel();
    let ids: Vec<RunId> = (0..3)
        .map(|i| {
            let (gate, started) = (gate.clone(), started.clone());
            rw.submit(RunSpec::new("call").queue("slow"), move |_ctx| async move {
                let _ = started.send(i);
                gate.wait().await;
                Ok(())
            })
            .expect("submit")
        })
        .collect();
    // The first starts at once; the second is first in line, eligible 10 s later.
    assert_eq!(within("the first starts", started_rx.recv()).await, Some(0));
    let second = eventually_eligible(&rw, ids[1]).await;
    assert_eq!(second, at("2026-12-02T12:00:10Z"));
    let third = rw.status(ids[2]).await.expect("status");
    assert_eq!(
        third.eligible_at, None,
        "only the run first in line is told"
    );
    // Started, the second's eligible time is gone, and the third is first in line.
    assert_eq!(
        within("the second starts", started_rx.recv()).await,
        Some(1)
    );
    let second = rw.status(ids[1]).await.expect("status");
    assert_eq!(second.status, RunStatus::Running);
    assert_eq!(second.eligible_at, None);
    let third = eventually_eligible(&rw, ids[2]).await;
    assert_eq!(third, at("2026-12-02T12:00:20Z"));
    gate.open();
    wait_all(&rw, &ids).await;
}

fn at(rfc3339: &str) -> Timestamp {
    rfc3339.parse().expect("a time")
}

/// The supervisor's status once it holds every run the registry has recorded up to `last`:
/// the registry casts each run's `Start` before it answers for `last`, so the supervisor has
/// them in its mailbox ahead of this request.
async fn supervisor_after_registry(rw: &Runwarden, last: RunId) -> runwarden::SupervisorStatus {
    rw.status(last).await.expect("status");
    rw.supervisor_status().await.expect("status")
}

/// The record's eligible time. The supervisor casts it to the registry while settling the
/// message that held the run; once it has answered a later request, the registry has the
/// cast in its mailbox ahead of this query.
async fn eventually_eligible(rw: &Runwarden, id: RunId) -> Timestamp {
    rw.supervisor_status().await.expect("status");
    let record = rw.status(id).await.expect("status");
    record
        .eligible_at
        .unwrap_or_else(|| panic!("run {id} was not given an eligible time: {record:?}"))
}

/// With one slot, a low-priority run submitted first, and a run of priority 3 submitted
/// every second: the order in which they start, as tags.
async fn starvation_order(aging: Option<Duration>) -> Vec<String> {
    let mut config = QueueConfig::limited(1);
    if let Some(step) = aging {
        config = config.aging(step);
    }
    let rw = start(Runwarden::builder().queue("q", config)).await;
    let t0 = Instant::now();
    let starts: Starts = Arc::default();
    let sleeper = |starts: &Starts, tag: String| {
        let starts = starts.clone();
        move |_ctx: runwarden::RunContext| async move {
            starts.lock().push((tag, t0.elapsed().as_millis() as u64));
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok(())
        }
    };
    let mut ids = vec![
        rw.submit(
            RunSpec::new("blocker").queue("q"),
            sleeper(&starts, "blocker".into()),
        )
        .expect("submit"),
        rw.submit(
            RunSpec::new("low").queue("q"),
            sleeper(&starts, "low".into()),
        )
        .expect("submit"),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..6 {
        let spec = RunSpec::new("high").queue("q").priority(3);
        ids.push(
            rw.submit(spec, sleeper(&starts, format!("high{i}")))
                .expect("submit"),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    wait_all(&rw, &ids).await;
    let order: Vec<String> = starts.lock().iter().map(|(tag, _)| tag.clone()).collect();
    order
}

#[tokio::test(start_paused = true)]
async fn aging_lets_a_low_priority_run_through_a_steady_stream_of_higher_ones() {
    // Without aging the low run waits until the stream stops.
    let plain = starvation_order(None).await;
    assert_eq!(
        plain,
        [
            "blocker", "high0", "high1", "high2", "high3", "high4", "high5", "low"
        ]
    );
    // Aged one priority a second, the low run (waiting since 0 s) counts as priority 3 at
    // 3 s, and goes before the run of priority 3 submitted at 3.5 s.
    let aged = starvation_order(Some(Duration::from_secs(1))).await;
    assert_eq!(
        aged,
        [
            "blocker", "high0", "high1", "high2", "low", "high3", "high4", "high5"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_held_by_a_long_kind_hold_releases_a_run_of_another_kind_at_the_keys_time() {
    // Key k may start one run per 10 s; kind `slow` one per hour.
    let rw = start(
        Runwarden::builder()
            .queue(
                "q",
                QueueConfig::default().key_rate(RateLimit::new(1, Duration::from_secs(10))),
            )
            .kind_rate("slow", RateLimit::new(1, Duration::from_secs(3600))),
    )
    .await;
    let t0 = Instant::now();
    let starts: Starts = Arc::default();
    let spec = |label: &str| RunSpec::new(label).queue("q").partition_key("k");
    let x = submit_tagged(&rw, spec("slow"), "x", t0, &starts);
    wait_all(&rw, &[x]).await;
    // At 20 s the key allows a start but the kind holds it for an hour: k's group waits.
    tokio::time::sleep_until(t0 + Duration::from_secs(20)).await;
    let b = submit_tagged(&rw, spec("slow"), "b", t0, &starts);
    tokio::time::sleep_until(t0 + Duration::from_secs(30)).await;
    rw.cancel(b).await.expect("cancel");
    // At 31 s a run of another kind starts at once, which holds the key until 41 s.
    tokio::time::sleep_until(t0 + Duration::from_secs(31)).await;
    let c = submit_tagged(&rw, spec("other"), "c", t0, &starts);
    tokio::time::sleep_until(t0 + Duration::from_secs(35)).await;
    let d = submit_tagged(&rw, spec("other"), "d", t0, &starts);
    wait_all(&rw, &[c, d]).await;
    let starts = starts.lock().clone();
    let at = |tag: &str| last_start(&starts, tag);
    assert_eq!(at("c"), 31_000);
    assert!(
        (41_000..=41_002).contains(&at("d")),
        "d is held by its key (until 41 s), not by the hour the other kind waits: {starts:?}"
    );
    assert_eq!(rw.status(b).await.expect("b").status, RunStatus::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_window_too_long_for_the_clock_holds_runs_and_the_supervisor_goes_on() {
    let rw = start(Runwarden::builder().queue("q", QueueConfig::default())).await;
    // Any `per` a caller gives is taken: here one start per `Duration::MAX`.
    let forever = RateLimit::new(1, Duration::MAX);
    rw.set_queue_rate("q", Some(forever)).await.expect("set");
    let first = rw
        .submit(RunSpec::new("call").queue("q"), |_| async { Ok(()) })
        .expect("submit");
    let second = rw
        .submit(RunSpec::new("call").queue("q"), |_| async { Ok(()) })
        .expect("submit");
    wait_all(&rw, &[first]).await;
    assert!(eventually_eligible(&rw, second).await > Timestamp::now());
    let status = rw
        .supervisor_status()
        .await
        .expect("the supervisor still answers");
    assert_eq!(
        status
            .queues
            .iter()
            .find(|q| q.name == "q")
            .map(|q| q.queued),
        Some(1)
    );
    rw.cancel(second).await.expect("cancel");
    let r = within("the held run ends", rw.wait(second))
        .await
        .expect("wait");
    assert_eq!(r.status, RunStatus::Cancelled);
}
