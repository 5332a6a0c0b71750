//! Cancelling a process run stops its whole process group: SIGTERM first, SIGKILL after the
//! kill grace for a program that ignores SIGTERM. The run ends `Cancelled` and stays so, and no
//! process of the group is left — grandchildren included.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{
    CancelOutcome, EventFilter, EventItem, LogConfig, ProcessJob, RunSpec, RunStatus, Runwarden,
};
use support::{TempDir, live_children, one_at_a_time, pid_alive, start, within};

/// Waits until none of `pids` is alive. SIGKILL is delivered asynchronously: a killed
/// process can still be exiting for a moment after its pipes closed.
async fn gone(pids: &[i32], what: &str) {
    within(what, async {
        while pids.iter().any(|p| pid_alive(*p)) {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Reads the pids a script printed as `pid <n>` lines, once it has printed `count` of them.
async fn printed_pids(rw: &Runwarden, id: runwarden::RunId, count: usize) -> Vec<i32> {
    within("the script to print its pids", async {
        loop {
            let pids: Vec<i32> = rw
                .log_tail(id, 100)
                .await
                .expect("log")
                .iter()
                .filter_map(|e| e.message.strip_prefix("pid ").and_then(|p| p.parse().ok()))
                .collect();
            if pids.len() >= count {
                return pids;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_cooperative_program_and_its_grandchild() {
    let _serial = one_at_a_time().await;
    let dir = TempDir::new("term");
    let logs = TempDir::new("term-logs");
    let rw = start(Runwarden::builder().logs(LogConfig::new(&logs.0))).await;
    let script = dir.script(
        "polite.sh",
        "sleep 1000 & echo \"pid $$\"; echo \"pid $!\"; wait",
    );
    let id = rw
        .submit_job(RunSpec::new("polite"), ProcessJob::new(&script))
        .expect("submit");
    let pids = printed_pids(&rw, id, 2).await;
    assert!(pids.iter().all(|p| pid_alive(*p)));

    assert_eq!(
        rw.cancel(id).await.expect("cancel"),
        CancelOutcome::Signalled
    );
    let r = within("the run to end", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Cancelled);
    gone(
        &pids,
        "every process of the group to be gone after the cancel",
    )
    .await;
    let log = rw.log_tail(id, 100).await.expect("log");
    assert!(log.iter().any(|e| e.message.contains("SIGTERM")));
    assert!(
        !log.iter().any(|e| e.message.contains("sent SIGKILL")),
        "SIGTERM was enough"
    );
    // The later exit status of the killed program does not change the outcome.
    assert_eq!(
        rw.status(id).await.expect("status").status,
        RunStatus::Cancelled
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
    assert_eq!(live_children(), Vec::<i32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_ends_a_program_that_ignores_sigterm() {
    let _serial = one_at_a_time().await;
    let dir = TempDir::new("kill");
    let logs = TempDir::new("kill-logs");
    let rw = start(
        Runwarden::builder()
            .cancel_grace(Duration::from_secs(60))
            .logs(LogConfig::new(&logs.0)),
    )
    .await;
    // Ignored signals stay ignored across exec, so the background sleep ignores SIGTERM too.
    let script = dir.script(
        "stubborn.sh",
        "trap '' TERM; sleep 1000 & echo \"pid $$\"; echo \"pid $!\"; while true; do wait; done",
    );
    let job = ProcessJob::new(&script).kill_grace(Duration::from_millis(300));
    let id = rw
        .submit_job(RunSpec::new("stubborn"), job)
        .expect("submit");
    let mut events = rw.events(EventFilter::Run(id)).await.expect("subscribe");
    let pids = printed_pids(&rw, id, 2).await;

    rw.cancel(id).await.expect("cancel");
    let r = within("the run to end", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Cancelled);
    gone(&pids, "every process of the group to be gone after SIGKILL").await;
    let log = rw.log_tail(id, 100).await.expect("log");
    assert!(
        log.iter().any(|e| e.message.contains("sent SIGKILL")),
        "{log:?}"
    );
    // Exactly one terminal event: the cancel's.
    let mut terminal = Vec::new();
    while let Some(item) = within("events", events.next()).await {
        if let EventItem::Event(e) = item {
            terminal.extend(e.status().filter(|s| s.is_terminal()));
        }
    }
    assert_eq!(terminal, vec![RunStatus::Cancelled]);
    rw.shutdown(support::STEP).await.expect("shutdown");
    assert_eq!(live_children(), Vec::<i32>::new());
}

// A time limit and a drain stop processes the same way, and shutdown leaves none behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_limits_and_shutdown_leave_no_process_behind() {
    let _serial = one_at_a_time().await;
    let dir = TempDir::new("drain");
    let logs = TempDir::new("drain-logs");
    let rw = start(Runwarden::builder().logs(LogConfig::new(&logs.0))).await;
    let script = dir.script(
        "sleeper.sh",
        "sleep 1000 & echo \"pid $$\"; echo \"pid $!\"; wait",
    );
    let limited = rw
        .submit_job(
            RunSpec::new("limited").timeout(Duration::from_millis(200)),
            ProcessJob::new(&script),
        )
        .expect("submit");
    let open_ended = rw
        .submit_job(RunSpec::new("open"), ProcessJob::new(&script))
        .expect("submit");
    let mut pids = printed_pids(&rw, limited, 2).await;
    pids.extend(printed_pids(&rw, open_ended, 2).await);

    let r = within("the time limit", rw.wait(limited))
        .await
        .expect("wait");
    assert_eq!(r.error.expect("error").kind, runwarden::ErrorKind::TimedOut);
    let report = rw
        .shutdown(Duration::from_millis(100))
        .await
        .expect("shutdown");
    assert_eq!(report.cancelled_by_drain, vec![open_ended]);
    gone(&pids, "every process to be gone after shutdown").await;
    assert_eq!(live_children(), Vec::<i32>::new());
}
