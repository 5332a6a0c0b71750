//! A program writing megabytes to stdout and stderr at once never stalls on a full pipe, and
//! every line reaches its log file, with levels guessed from the text.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{LogConfig, LogLevel, LogStream, ProcessJob, RunSpec, RunStatus, Runwarden};
use support::{TempDir, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn megabytes_on_both_streams_are_all_captured() {
    let dir = TempDir::new("flood");
    let logs = TempDir::new("flood-logs");
    let rw = start(Runwarden::builder().logs(LogConfig::new(&logs.0))).await;
    // 100,000 lines of ~40 bytes on each stream, written concurrently: 4 MB per stream.
    let flood = dir.script(
        "flood.sh",
        r#"i=0
(while [ $i -lt 100000 ]; do echo "out line $i ......................"; i=$((i+1)); done) &
(j=0; while [ $j -lt 100000 ]; do echo "err WARNING line $j .................." >&2; j=$((j+1)); done) &
wait"#,
    );
    let id = rw
        .submit_job(RunSpec::new("flood"), ProcessJob::new(&flood))
        .expect("submit");
    let r = within("the flood to finish", rw.wait(id))
        .await
        .expect("wait");
    assert_eq!((r.status, r.exit_code), (RunStatus::Completed, Some(0)));

    let path = rw.log_file(id).await.expect("log file");
    let text = std::fs::read_to_string(&path).expect("read log file");
    let out = text
        .lines()
        .filter(|l| l.contains("[stdout] out line"))
        .count();
    let err = text
        .lines()
        .filter(|l| l.contains("[WARNING] [stderr] err WARNING line"))
        .count();
    assert_eq!((out, err), (100_000, 100_000));
    // Lines of one stream keep their order.
    let last = text
        .lines()
        .rfind(|l| l.contains("[stdout]"))
        .expect("a line");
    assert!(last.contains("out line 99999"), "{last}");

    // The ring keeps the most recent 10,000 lines; a longer tail comes from the file.
    let tail = rw.log_tail(id, 5).await.expect("tail");
    assert_eq!(tail.len(), 5);
    let long_tail = rw.log_tail(id, 50_000).await.expect("tail from file");
    assert_eq!(long_tail.len(), 50_000);
    assert!(
        long_tail
            .iter()
            .any(|e| e.stream == LogStream::Stderr && e.level == LogLevel::Warning)
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}
