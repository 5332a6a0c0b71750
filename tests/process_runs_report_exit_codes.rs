//! A process run completes on exit 0 and fails on a non-zero exit (with its exit code and the
//! tail of stderr) or when the program cannot start (a typed kind, never a panic). Parameters
//! become `--key value` arguments and the program runs in its own folder.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{ErrorKind, LogConfig, ProcessJob, RunSpec, RunStatus, Runwarden};
use support::{TempDir, live_children, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_become_statuses_and_records_keep_them() {
    let dir = TempDir::new("exit");
    let logs = TempDir::new("exit-logs");
    let rw = start(Runwarden::builder().logs(LogConfig::new(&logs.0))).await;
    let ok = dir.script("ok.sh", r#"echo "args: $*"; echo "cwd: $(pwd)""#);
    let bad = dir.script(
        "bad.sh",
        "echo working; echo 'first problem' >&2; echo 'disk full' >&2; exit 3",
    );

    let spec = RunSpec::new("ok").param("width", 640).param("fast", true);
    let id = rw.submit_job(spec, ProcessJob::new(&ok)).expect("submit");
    let r = within("ok run", rw.wait(id)).await.expect("wait");
    assert_eq!((r.status, r.exit_code), (RunStatus::Completed, Some(0)));
    let lines: Vec<String> = rw
        .log_tail(id, 100)
        .await
        .expect("log")
        .into_iter()
        .map(|e| e.message)
        .collect();
    assert!(
        lines.contains(&"args: --fast --width 640".to_owned()),
        "{lines:?}"
    );
    let cwd = std::fs::canonicalize(&dir.0).expect("canonical");
    assert!(
        lines.contains(&format!("cwd: {}", cwd.display())),
        "{lines:?}"
    );

    let id = rw
        .submit_job(RunSpec::new("bad"), ProcessJob::new(&bad))
        .expect("submit");
    let r = within("bad run", rw.wait(id)).await.expect("wait");
    assert_eq!((r.status, r.exit_code), (RunStatus::Failed, Some(3)));
    let e = r.error.expect("error");
    assert_eq!(e.kind, ErrorKind::NonZeroExit);
    assert!(
        e.message.contains("exited with code 3") && e.message.ends_with("first problem\ndisk full"),
        "{}",
        e.message
    );

    let missing = dir.0.join("does-not-exist");
    let id = rw
        .submit_job(RunSpec::new("missing"), ProcessJob::new(&missing))
        .expect("submit");
    let r = within("missing run", rw.wait(id)).await.expect("wait");
    assert_eq!(r.status, RunStatus::Failed);
    let e = r.error.expect("error");
    assert_eq!(e.kind, ErrorKind::SpawnFailed);
    assert!(e.message.contains("does-not-exist"), "{}", e.message);

    let not_executable = dir.0.join("plain.txt");
    std::fs::write(&not_executable, "not a program").expect("write");
    let id = rw
        .submit_job(RunSpec::new("noexec"), ProcessJob::new(&not_executable))
        .expect("submit");
    let r = within("noexec run", rw.wait(id)).await.expect("wait");
    assert_eq!(r.error.expect("error").kind, ErrorKind::SpawnFailed);

    rw.shutdown(support::STEP).await.expect("shutdown");
    assert_eq!(
        live_children(),
        Vec::<i32>::new(),
        "a child process outlived its run"
    );
}
