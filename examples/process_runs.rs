//! External programs as runs: output capture, live follow, cancel with SIGTERM then SIGKILL.
//!
//! ```text
//! cargo run --release --example process_runs -- [--flood-lines N] [--json]
//! ```
//!
//! Starts four shell programs — one printing progress, one failing with output on stderr, one
//! cancelled mid-way, one that ignores SIGTERM and needs SIGKILL — follows the first live on
//! the terminal, then measures how many lines per second are captured from a program writing
//! as fast as it can.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use runwarden::{LogConfig, LogItem, ProcessJob, RunSpec, Runwarden};

fn script(dir: &Path, name: &str, body: &str) -> std::io::Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut flood_lines: u64 = 200_000;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => json = true,
            "--flood-lines" => match args.next().and_then(|v| v.parse().ok()) {
                Some(n) => flood_lines = n,
                None => {
                    eprintln!("--flood-lines needs a whole number");
                    return ExitCode::from(2);
                }
            },
            other => {
                eprintln!("unknown flag {other}; usage: process_runs [--flood-lines N] [--json]");
                return ExitCode::from(2);
            }
        }
    }
    match run(flood_lines, json).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("process_runs: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(flood_lines: u64, json: bool) -> Result<(), Box<dyn std::error::Error>> {
    let work = std::env::temp_dir().join(format!("runwarden-process-runs-{}", std::process::id()));
    let scripts = work.join("modules");
    std::fs::create_dir_all(&scripts)?;
    let rw = Runwarden::builder()
        .cancel_grace(Duration::from_secs(10))
        .logs(LogConfig::new(work.join("logs")))
        .start()
        .await?;

    let progress = script(
        &scripts,
        "progress.sh",
        r#"for i in 1 2 3 4 5; do echo "step $i of 5 for $1 $2"; sleep 0.1; done; echo "INFO done""#,
    )?;
    let failing = script(
        &scripts,
        "failing.sh",
        "echo 'loading input'; echo 'ERROR: input file is corrupt' >&2; exit 2",
    )?;
    let long = script(
        &scripts,
        "long.sh",
        "i=0; while true; do echo \"tick $i\"; i=$((i+1)); sleep 0.05; done",
    )?;
    let stubborn = script(
        &scripts,
        "stubborn.sh",
        "trap 'echo WARNING got SIGTERM, ignoring it' TERM; while true; do sleep 0.05; done",
    )?;

    let watched = rw.submit_job(
        RunSpec::new("progress").param("name", "demo"),
        ProcessJob::new(&progress),
    )?;
    let failed = rw.submit_job(RunSpec::new("failing"), ProcessJob::new(&failing))?;
    let cancelled = rw.submit_job(RunSpec::new("long"), ProcessJob::new(&long))?;
    let killed = rw.submit_job(
        RunSpec::new("stubborn"),
        ProcessJob::new(&stubborn).kill_grace(Duration::from_millis(500)),
    )?;

    println!("following run {watched} (progress.sh) live:");
    let mut follow = rw.follow_log(watched).await?;
    while let Some(item) = follow.next().await {
        match item {
            LogItem::Line(e) => println!("  {e}"),
            LogItem::Missed(n) => println!("  … {n} lines skipped"),
            LogItem::End(end) => println!("  [end: {:?}]", end.status),
        }
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    rw.cancel(cancelled).await?;
    rw.cancel(killed).await?;
    for id in [failed, cancelled, killed] {
        let r = rw.wait(id).await?;
        let error = r
            .error
            .map(|e| format!("{:?}: {}", e.kind, e.message))
            .unwrap_or_default();
        println!(
            "{:<9} {:<10} exit {:>4}  {}",
            r.label,
            r.status,
            r.exit_code.map_or("-".into(), |c| c.to_string()),
            error.replace('\n', " | ")
        );
        for e in rw.log_tail(id, 3).await? {
            println!("    {e}");
        }
    }

    // Capture throughput: a program writing as fast as it can.
    let flood = script(
        &scripts,
        "flood.sh",
        &format!("yes 'a line of output from a busy program' | head -n {flood_lines}"),
    )?;
    let started = Instant::now();
    let id = rw.submit_job(RunSpec::new("flood"), ProcessJob::new(&flood))?;
    let r = rw.wait(id).await?;
    let secs = started.elapsed().as_secs_f64();
    let path = rw.log_file(id).await?;
    let captured = std::fs::read_to_string(&path)?
        .lines()
        .filter(|l| l.contains("[stdout]"))
        .count();
    let rate = captured as f64 / secs;
    println!(
        "flood: {captured} lines captured in {:.0} ms: {rate:.0} lines/s ({})",
        secs * 1e3,
        r.status
    );
    rw.shutdown(Duration::from_secs(10)).await?;
    let _ = std::fs::remove_dir_all(&work);
    if json {
        println!(
            "{}",
            serde_json::json!({"flood_lines": captured, "flood_ms": (secs * 1e3).round(), "lines_per_sec": rate.round()})
        );
    }
    Ok(())
}
