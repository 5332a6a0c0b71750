//! A program writing one endless line on stdout and on stderr at once has each cut at the
//! capture limit, and each captured line says exactly how many bytes were dropped, as a field
//! of its log entry (also after the log is read back from its file), whichever of the two
//! streams, the exit or the flush timer the reader raced against meanwhile.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{LogConfig, LogStream, MAX_LINE_BYTES, ProcessJob, RunSpec, RunStatus, Runwarden};
use support::{TempDir, start, within};

const BYTES: u64 = 50_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_without_a_newline_on_both_streams_count_their_dropped_bytes() {
    let dir = TempDir::new("cut");
    let logs = TempDir::new("cut-logs");
    let rw = start(Runwarden::builder().logs(LogConfig::new(&logs.0))).await;
    // Both streams written concurrently, in small writes, so reads of each interleave with
    // reads of the other many times over one line.
    let script = dir.script(
        "endless.sh",
        &format!(
            "head -c {BYTES} /dev/zero | tr '\\0' o &\n\
             head -c {BYTES} /dev/zero | tr '\\0' e >&2 &\n\
             wait"
        ),
    );
    let id = rw
        .submit_job(RunSpec::new("endless"), ProcessJob::new(&script))
        .expect("submit");
    let r = within("the program to finish", rw.wait(id))
        .await
        .expect("wait");
    assert_eq!((r.status, r.exit_code), (RunStatus::Completed, Some(0)));

    let want = BYTES - MAX_LINE_BYTES as u64;
    let check = |entries: &[runwarden::LogEntry], from: &str| {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let lines: Vec<_> = entries.iter().filter(|e| e.stream == stream).collect();
            assert_eq!(lines.len(), 1, "{from}: one line on {stream:?}");
            let line = lines[0];
            assert_eq!(line.cut_bytes, want, "{from}: dropped bytes on {stream:?}");
            // The HTTP API's log lines are these entries as JSON.
            let json = serde_json::to_value(line).expect("json");
            assert_eq!(json["cut_bytes"], want, "{from}: the field in JSON");
            assert!(
                line.message
                    .ends_with(&format!("[line cut: {want} more bytes]")),
                "{from}: the text says the same"
            );
            assert_eq!(
                line.message.len(),
                MAX_LINE_BYTES + format!(" …[line cut: {want} more bytes]").len(),
                "{from}: the kept part is exactly the limit"
            );
        }
    };
    let tail = rw.log_tail(id, 100).await.expect("tail");
    check(&tail, "memory");
    let path = rw.log_file(id).await.expect("file");
    let text = std::fs::read_to_string(&path).expect("read");
    let parsed: Vec<runwarden::LogEntry> = text.lines().filter_map(|l| l.parse().ok()).collect();
    check(&parsed, "file");
    rw.shutdown(support::STEP).await.expect("shutdown");
}
