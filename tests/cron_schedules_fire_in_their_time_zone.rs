//! Cron schedules fire at their expression's instants in their time zone, across DST changes,
//! on tokio's paused clock (a wall clock that starts at a chosen instant and moves with tokio's
//! time). Fire times missed while the process was down, or while paused, follow the
//! missed-fire policy (skip, or run once); an occurrence due while the previous one is active
//! follows the overlap policy (skip, queue one, allow). Next fire times show in `schedules()`
//! and over HTTP; a bad expression or time zone is a typed error.
#[path = "support/http.rs"]
mod http_support;
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use runwarden::{
    CronError, CronSchedule, MissedFires, Overlap, RunSpec, Runwarden, ScheduleId, ScheduleInfo,
    ScheduleSpec, Timestamp, WallClock,
};
use support::start;
use tokio::time::Instant;

fn utc(s: &str) -> Timestamp {
    s.parse().expect("an RFC 3339 instant")
}

/// Runwarden whose schedules read a wall clock starting at `at`; the tokio instant it starts.
async fn starting_at(at: &str) -> (Runwarden, Instant) {
    let t0 = Instant::now();
    let rw = start(Runwarden::builder().wall_clock(WallClock::StartingAt(utc(at)))).await;
    (rw, t0)
}

async fn info(rw: &Runwarden, id: ScheduleId) -> ScheduleInfo {
    rw.schedules()
        .await
        .expect("schedules")
        .into_iter()
        .find(|s| s.id == id)
        .expect("the schedule")
}

#[tokio::test(start_paused = true)]
async fn two_in_the_morning_in_berlin_fires_at_the_right_utc_instants_across_dst() {
    let anchor = "2027-03-26T12:00:00Z";
    let (rw, t0) = starting_at(anchor).await;
    let fired = Arc::new(Mutex::new(Vec::new()));
    let f = fired.clone();
    let cron = CronSchedule::new("0 2 * * *", "Europe/Berlin").expect("valid");
    let id = rw
        .schedule(
            ScheduleSpec::cron(RunSpec::new("nightly"), cron),
            move |_ctx| {
                let at = utc(anchor).unix_micros() + t0.elapsed().as_micros() as u64;
                f.lock().push(Timestamp::from_unix_micros(at).to_string());
                async { Ok(()) }
            },
        )
        .await
        .expect("schedule");
    let first = info(&rw, id).await;
    assert_eq!(first.runs, 0, "a cron schedule submits nothing when added");
    assert_eq!(first.cron.as_deref(), Some("0 2 * * * (Europe/Berlin)"));
    assert_eq!(first.next_fire_at, Some(utc("2027-03-27T01:00:00Z")));
    tokio::time::sleep(Duration::from_secs(4 * 86_400)).await;
    assert_eq!(
        *fired.lock(),
        [
            "2027-03-27T01:00:00.000000Z", // 02:00 CET
            "2027-03-28T01:00:00.000000Z", // 02:00 does not exist: 03:00 CEST
            "2027-03-29T00:00:00.000000Z", // 02:00 CEST
            "2027-03-30T00:00:00.000000Z",
        ]
    );
    let after = info(&rw, id).await;
    assert_eq!((after.runs, after.completed, after.missed), (4, 4, 0));
    assert_eq!(after.next_fire_at, Some(utc("2027-03-31T00:00:00Z")));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

/// An hourly schedule added at 10:30 that last fired at 07:00, before a downtime: 08:00, 09:00
/// and 10:00 were missed.
async fn after_downtime(missed: MissedFires) -> (Runwarden, ScheduleId) {
    let (rw, _) = starting_at("2027-01-01T10:30:00Z").await;
    let cron = CronSchedule::new("0 * * * *", "UTC")
        .expect("valid")
        .missed(missed)
        .last_fired(utc("2027-01-01T07:00:00Z"));
    let id = rw
        .schedule(
            ScheduleSpec::cron(RunSpec::new("hourly"), cron),
            |_ctx| async { Ok(()) },
        )
        .await
        .expect("schedule");
    (rw, id)
}

#[tokio::test(start_paused = true)]
async fn fires_missed_during_a_downtime_run_once_or_are_skipped() {
    // The policy is applied as the schedule is added: its reply comes after.
    let (rw, id) = after_downtime(MissedFires::RunOnce).await;
    let s = info(&rw, id).await;
    assert_eq!((s.runs, s.missed), (1, 2), "one run for the three missed");
    rw.shutdown(support::STEP).await.expect("shutdown");

    let (rw, id) = after_downtime(MissedFires::Skip).await;
    let s = info(&rw, id).await;
    assert_eq!((s.runs, s.missed), (0, 3), "the three missed are skipped");
    assert_eq!(s.next_fire_at, Some(utc("2027-01-01T11:00:00Z")));
    // 11:00 comes 30 minutes later and fires as usual (looked at a second after it).
    tokio::time::sleep(Duration::from_secs(30 * 60 + 1)).await;
    let s = info(&rw, id).await;
    assert_eq!((s.runs, s.missed), (1, 3));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn fires_missed_while_paused_follow_the_missed_fire_policy() {
    let (rw, _) = starting_at("2027-01-01T00:00:30Z").await;
    let cron = CronSchedule::new("0 * * * *", "UTC")
        .expect("valid")
        .missed(MissedFires::RunOnce);
    let id = rw
        .schedule(
            ScheduleSpec::cron(RunSpec::new("hourly"), cron),
            |_ctx| async { Ok(()) },
        )
        .await
        .expect("schedule");
    rw.pause_schedule(id).await.expect("pause");
    // 01:00, 02:00 and 03:00 pass while paused.
    tokio::time::sleep(Duration::from_secs(3 * 3600 + 60)).await;
    assert_eq!(
        info(&rw, id).await.runs,
        0,
        "a paused schedule submits nothing"
    );
    rw.resume_schedule(id).await.expect("resume");
    let s = info(&rw, id).await;
    assert_eq!((s.runs, s.missed), (1, 2));
    assert_eq!(s.next_fire_at, Some(utc("2027-01-01T04:00:00Z")));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

/// A schedule firing every minute whose occurrences last 130 s, watched for 10 minutes (no
/// occurrence ends at a fire time, so no two timers are due at once).
async fn overlapping(overlap: Overlap) -> ScheduleInfo {
    let (rw, _) = starting_at("2027-01-01T00:00:30Z").await;
    let cron = CronSchedule::new("* * * * *", "UTC")
        .expect("valid")
        .overlap(overlap);
    let id = rw
        .schedule(
            ScheduleSpec::cron(RunSpec::new("slow"), cron),
            |_ctx| async {
                tokio::time::sleep(Duration::from_secs(130)).await;
                Ok(())
            },
        )
        .await
        .expect("schedule");
    // Fires at 00:01 .. 00:10.
    tokio::time::sleep(Duration::from_secs(10 * 60)).await;
    let s = info(&rw, id).await;
    rw.shutdown(Duration::from_secs(1)).await.expect("shutdown");
    s
}

#[tokio::test(start_paused = true)]
async fn an_occurrence_due_while_one_is_active_follows_the_overlap_policy() {
    // Skip: runs at 1, 4, 7 and 10 (each until 2:10 later); the six others are skipped.
    let s = overlapping(Overlap::Skip).await;
    assert_eq!((s.runs, s.skipped, s.active, s.pending), (4, 6, 1, false));
    // Queue one: 1 runs to 3:10; 2 waits and starts at 3:10 (to 5:20); 3 is skipped; 4 waits
    // and starts at 5:20; and so on: 5 runs, 3, 5, 7 and 9 skipped, 10 waiting.
    let s = overlapping(Overlap::QueueOne).await;
    assert_eq!((s.runs, s.skipped, s.active, s.pending), (5, 4, 1, true));
    // Allow: all ten run; those of 9 and 10 are still running.
    let s = overlapping(Overlap::Allow).await;
    assert_eq!((s.runs, s.skipped, s.active, s.pending), (10, 0, 2, false));
}

#[test]
fn bad_expressions_and_time_zones_are_typed_errors() {
    assert!(matches!(
        CronSchedule::new("61 * * * *", "UTC"),
        Err(CronError::Expression { .. })
    ));
    assert_eq!(
        CronSchedule::new("0 2 * * *", "Europe/Atlantis").err(),
        Some(CronError::TimeZone("Europe/Atlantis".into()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_and_their_next_fire_times_are_listed_over_http() {
    let s = http_support::server(runwarden::http::HttpOptions::default()).await;
    let cron = CronSchedule::new("30 4 * * 1", "America/New_York").expect("valid");
    s.rw.schedule(
        ScheduleSpec::cron(RunSpec::new("weekly"), cron),
        |_ctx| async { Ok(()) },
    )
    .await
    .expect("schedule");
    let body: serde_json::Value = s
        .client
        .get(s.url("/schedules"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    let first = &body["schedules"][0];
    assert_eq!(first["cron"], "30 4 * * 1 (America/New_York)");
    assert_eq!(first["mode"], "cron");
    let next: Timestamp = first["next_fire_at"]
        .as_str()
        .expect("a next fire time")
        .parse()
        .expect("an instant");
    assert!(next > Timestamp::now());
}
