//! The HTTP API and the live dashboard, with a few demo job kinds.
//!
//! ```text
//! cargo run --release --example http_service -- [--addr 127.0.0.1:8080] [--token T] [--seconds N]
//! ```
//!
//! Open the printed URL in a browser. Start runs with, for example:
//! `curl -X POST localhost:8080/runs -H 'content-type: application/json' -d '{"kind":"sleep","params":{"ms":3000}}'`

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use runwarden::http::{HttpOptions, serve};
use runwarden::{BoxedJob, Json, LogConfig, OnInterrupt, ProcessJob, Progress, Runwarden};

fn ms_param(params: &runwarden::JsonObject, default: u64) -> u64 {
    match params.get("ms") {
        Some(Json::Int(n)) if *n >= 0 => *n as u64,
        _ => default,
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr: SocketAddr = "127.0.0.1:8080".parse()?;
    let mut token = None;
    let mut seconds = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs a value")?.parse()?,
            "--token" => token = Some(args.next().ok_or("--token needs a value")?),
            "--seconds" => {
                seconds = Some(
                    args.next()
                        .ok_or("--seconds needs a value")?
                        .parse::<u64>()?,
                )
            }
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    let work = std::env::temp_dir().join(format!("runwarden-http-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let script = work.join("count.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nfor i in $(seq 1 ${2:-10}); do echo \"count $i\"; sleep 0.3; done\n",
    )?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;

    let rw = Runwarden::builder()
        .max_concurrent(8)
        .logs(LogConfig::new(work.join("logs")))
        .job_kind("sleep", OnInterrupt::Rerun, |params| {
            let ms = ms_param(params, 2000);
            Ok(BoxedJob::repeatable(move |ctx| async move {
                for i in 1..=20u64 {
                    ctx.report(Progress::items(i, 20));
                    ctx.info(format!("step {i} of 20"));
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(ms / 20)) => {}
                        _ = ctx.cancelled() => return Err(runwarden::JobError::msg("cancelled")),
                    }
                }
                Ok(())
            }))
        })
        .job_kind("fail", OnInterrupt::Fail, |_| {
            Ok(BoxedJob::repeatable(|ctx| async move {
                ctx.error("something went wrong");
                Err::<(), _>(runwarden::JobError::msg("failed on purpose"))
            }))
        })
        .job_kind("count", OnInterrupt::Fail, move |params| {
            let job = ProcessJob::new(&script).params_as_args(false).arg("--n");
            let n = match params.get("n") {
                Some(Json::Int(n)) => n.to_string(),
                _ => "10".into(),
            };
            Ok(job.arg(n).job_for(params))
        })
        .start()
        .await?;
    let mut options = HttpOptions::default();
    if let Some(t) = &token {
        options = options.token(t.clone());
    }
    let (bound, server) = serve(addr, rw.clone(), options).await?;
    match &token {
        Some(t) => println!("runwarden dashboard: http://{bound}/#token={t}"),
        None => println!("runwarden dashboard: http://{bound}/"),
    }
    println!(
        "API: http://{bound}/openapi.json — job kinds: sleep (params.ms), fail, count (params.n, a process run)"
    );
    match seconds {
        Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    server.abort();
    rw.shutdown(Duration::from_secs(5)).await?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}
