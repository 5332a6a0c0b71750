//! Following a run's log gives every line in order and then always the run's end — also when
//! the run ended between two lines or before the follow started (defect 10 of the original) —
//! and logs stay readable from their files after runwarden is stopped and started again.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{LogConfig, LogItem, ProcessJob, RunSpec, RunStatus, Runwarden};
use support::{Gate, TempDir, start, within};

async fn collect(follow: &mut runwarden::LogFollow) -> (Vec<String>, Option<runwarden::LogEnd>) {
    let mut lines = Vec::new();
    let mut end = None;
    while let Some(item) = within("the next log item", follow.next()).await {
        match item {
            LogItem::Line(e) => lines.push(e.message),
            LogItem::Missed(n) => panic!("missed {n} lines"),
            LogItem::End(e) => end = Some(e),
        }
    }
    (lines, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_follow_sees_every_line_then_the_end() {
    let logs = TempDir::new("follow-logs");
    let rw = start(Runwarden::builder().logs(LogConfig::new(&logs.0))).await;
    let gate = Gate::new();
    let g = gate.clone();
    let id = rw
        .submit(RunSpec::new("talker"), move |ctx| async move {
            ctx.info("before the gate");
            g.wait().await;
            for i in 0..500 {
                ctx.info(format!("line {i}"));
            }
            Err::<(), _>(runwarden::JobError::msg("ended right after its last line"))
        })
        .expect("submit");
    // Wait until the first line is in, so the follow starts mid-run.
    within("the first line", async {
        while rw.log_tail(id, 1).await.expect("tail").is_empty() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    let mut follow = rw.follow_log(id).await.expect("follow");
    gate.open();
    let (lines, end) = collect(&mut follow).await;
    let mut want = vec!["before the gate".to_owned()];
    want.extend((0..500).map(|i| format!("line {i}")));
    assert_eq!(lines, want);
    assert_eq!(end.expect("end").status, Some(RunStatus::Failed));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_after_the_end_gets_the_lines_and_the_end_at_once() {
    let dir = TempDir::new("late");
    let logs = TempDir::new("late-logs");
    let rw = start(Runwarden::builder().logs(LogConfig::new(&logs.0))).await;
    let script = dir.script("count.sh", "for i in 1 2 3; do echo \"n $i\"; done");
    let job = ProcessJob::new(&script);
    let id = rw.submit_job(RunSpec::new("count"), job).expect("submit");
    within("run", rw.wait(id)).await.expect("wait");
    let mut follow = rw.follow_log(id).await.expect("follow");
    let (lines, end) = collect(&mut follow).await;
    let captured: Vec<_> = lines
        .iter()
        .filter(|l| l.starts_with("n "))
        .cloned()
        .collect();
    assert_eq!(captured, ["n 1", "n 2", "n 3"]);
    assert_eq!(end.expect("end").status, Some(RunStatus::Completed));
    rw.shutdown(support::STEP).await.expect("shutdown");
}

// Logs are files: after shutdown, a new runwarden on the same directory reads them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_readable_after_a_restart() {
    let logs = TempDir::new("restart-logs");
    let first = start(Runwarden::builder().logs(LogConfig::new(&logs.0))).await;
    let id = first
        .submit(RunSpec::new("noted"), |ctx| async move {
            for i in 0..20 {
                ctx.info(format!("note {i}"));
            }
            Ok(())
        })
        .expect("submit");
    within("run", first.wait(id)).await.expect("wait");
    first.shutdown(support::STEP).await.expect("shutdown");
    drop(first);

    let second = start(Runwarden::builder().logs(LogConfig::new(&logs.0))).await;
    let tail = second.log_tail(id, 3).await.expect("tail after restart");
    let msgs: Vec<_> = tail.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(msgs, ["note 17", "note 18", "note 19"]);
    let mut follow = second.follow_log(id).await.expect("follow after restart");
    let (lines, end) = collect(&mut follow).await;
    assert_eq!(lines.len(), 20);
    // This instance's registry does not know the run; its log still ends.
    assert_eq!(end.expect("end").status, None);
    second.shutdown(support::STEP).await.expect("shutdown");
}
