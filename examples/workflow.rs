//! A workflow of real programs: transcode, then thumbnail and caption in parallel, then
//! publish once both are done; if a step fails, what depends on it is cancelled, unstarted.
//!
//! ```text
//! cargo run --release --example workflow -- [--fail STEP] [--db PATH] [--json]
//! ```
//!
//! - `--fail STEP`: that step's program exits non-zero (`transcode`, `thumbnail`, `caption`
//!   or `publish`).
//! - `--db PATH`: a durable store. Kill the example mid-way (Ctrl-C, or `kill -9`) and start
//!   it again with the same path: it finds the unfinished workflow and follows it to its end,
//!   every step still after the steps it waits for.
//! - `--json`: the last line is `{"workflow": ID, "steps": {NAME: {"status", "started_at",
//!   "finished_at", "id"}}}` (RFC 3339 times; `null` for a step that never started).
//!
//! Each step is a registered job kind running a shell program, so a durable run can be
//! rebuilt after a crash; the graph is printed with each step's status as it changes.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use runwarden::{
    ListQuery, OnInterrupt, ProcessJob, RunSpec, RunStatus, Runwarden, SqliteStore, Step, Workflow,
    WorkflowId, WorkflowState, WorkflowView,
};
use serde_json::{Value, json};

const STEPS: [&str; 4] = ["transcode", "thumbnail", "caption", "publish"];

struct Args {
    fail: Option<String>,
    db: Option<PathBuf>,
    json: bool,
}

fn parse_args() -> Result<Args, String> {
    let usage = "usage: workflow [--fail STEP] [--db PATH] [--json]";
    let mut parsed = Args {
        fail: None,
        db: None,
        json: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--json" => parsed.json = true,
            "--fail" => match args.next() {
                Some(step) if STEPS.contains(&step.as_str()) => parsed.fail = Some(step),
                Some(step) => {
                    return Err(format!(
                        "--fail: no step `{step}` (one of {})",
                        STEPS.join(", ")
                    ));
                }
                None => return Err(format!("--fail needs a step name; {usage}")),
            },
            "--db" => match args.next() {
                Some(path) => parsed.db = Some(PathBuf::from(path)),
                None => return Err(format!("--db needs a path; {usage}")),
            },
            other => return Err(format!("unknown flag {other}; {usage}")),
        }
    }
    Ok(parsed)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("workflow: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("workflow: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The program every step runs: a few lines of work, then exit 0, or 1 with `--fail`.
fn write_program(dir: &Path) -> std::io::Result<PathBuf> {
    let path = dir.join("media-step.sh");
    let body = r#"#!/bin/sh
step=""; fail=""
while [ $# -gt 0 ]; do
  case "$1" in
    --step) step="$2"; shift 2 ;;
    --fail) fail="yes"; shift ;;
    *) shift ;;
  esac
done
for i in 1 2 3; do echo "$step: part $i of 3"; sleep 0.15; done
if [ -n "$fail" ]; then echo "ERROR: $step failed" >&2; exit 1; fi
echo "$step: done"
"#;
    std::fs::write(&path, body)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let work = std::env::temp_dir().join(format!("runwarden-workflow-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let program = write_program(&work)?;
    let mut builder = Runwarden::builder().job_kind("media", OnInterrupt::Rerun, move |params| {
        Ok(ProcessJob::new(&program).job_for(params))
    });
    if let Some(db) = &args.db {
        builder = builder.store(SqliteStore::open(db)?);
    }
    let rw = builder.start().await?;
    let id = match unfinished_workflow(&rw).await? {
        Some(id) => {
            println!("resuming workflow {id}, left unfinished in the store");
            id
        }
        None => {
            let step = |name: &str| {
                let mut spec = RunSpec::new(name).param("step", name);
                if args.fail.as_deref() == Some(name) {
                    spec = spec.param("fail", true);
                }
                Step::kind(name, "media", spec)
            };
            let graph = Workflow::new()
                .step(step("transcode"))
                .step(step("thumbnail").after("transcode"))
                .step(step("caption").after("transcode"))
                .step(step("publish").after("thumbnail").after("caption"));
            let runs = rw.submit_workflow(graph).await?;
            println!("workflow {} submitted", runs.id);
            runs.id
        }
    };
    println!();
    println!("  transcode ──┬──► thumbnail ──┬──► publish");
    println!("              └──► caption ────┘");
    println!();
    let view = follow(&rw, id).await?;
    println!();
    println!(
        "workflow {id}: {}",
        serde_json::to_value(view.state)?.as_str().unwrap_or("?")
    );
    for (name, r) in &view.steps {
        if let Some(e) = &r.error {
            println!("  {name}: {}", e.message);
        }
    }
    rw.shutdown(Duration::from_secs(10)).await?;
    let _ = std::fs::remove_dir_all(&work);
    if args.json {
        println!("{}", summary(&view));
    }
    Ok(())
}

/// A workflow the store holds with a step not yet ended (after a crash), if any.
async fn unfinished_workflow(rw: &Runwarden) -> Result<Option<WorkflowId>, runwarden::Error> {
    for status in [RunStatus::Waiting, RunStatus::Queued, RunStatus::Running] {
        let page = rw.list(ListQuery::new().status(status).limit(100)).await?;
        if let Some(id) = page.runs.iter().find_map(|r| r.workflow) {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

/// Prints a line each time a step's status changes, until every step has ended.
async fn follow(
    rw: &Runwarden,
    id: WorkflowId,
) -> Result<WorkflowView, Box<dyn std::error::Error>> {
    let began = Instant::now();
    let mut last: Option<Vec<RunStatus>> = None;
    loop {
        let view = rw
            .workflow(id)
            .await?
            .ok_or_else(|| format!("workflow {id} is not known"))?;
        let statuses: Vec<RunStatus> = STEPS
            .iter()
            .filter_map(|s| view.steps.get(*s).map(|r| r.status))
            .collect();
        if last.as_ref() != Some(&statuses) {
            let line: Vec<String> = STEPS
                .iter()
                .zip(&statuses)
                .map(|(name, status)| format!("{name}: {status:<9}"))
                .collect();
            println!(
                "[{:>6.2}s] {}",
                began.elapsed().as_secs_f64(),
                line.join("  ")
            );
            last = Some(statuses);
        }
        if view.state != WorkflowState::Active {
            return Ok(view);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn summary(view: &WorkflowView) -> Value {
    let steps: BTreeMap<&str, Value> = view
        .steps
        .iter()
        .map(|(name, r)| {
            (
                name.as_str(),
                json!({
                    "status": r.status,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "id": r.id,
                }),
            )
        })
        .collect();
    json!({"workflow": view.id, "steps": steps})
}
