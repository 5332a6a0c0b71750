//! Workflows survive a crash of their process: a child process submits diamond workflows
//! (transcode → thumbnail, caption → publish) to a durable store and prints each workflow's id
//! once it is committed; it is SIGKILLed mid-way, 8 rounds. After each restart every printed
//! workflow is there whole (its four steps were one transaction), recovery hands back its
//! waiting steps, and every workflow finishes `Completed` with no step started before each
//! step it waits for had finished, before or after the crash.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{
    BoxedJob, JobError, OnInterrupt, RunSpec, RunStatus, Runwarden, SqliteStore, Step, Workflow,
    WorkflowId, WorkflowState,
};
use support::{TempDir, within};

const CHILD_ENV: &str = "RUNWARDEN_WORKFLOW_CRASH_CHILD_DB";

fn builder(store: SqliteStore) -> runwarden::RunwardenBuilder {
    // A step checks that every step it waits for completed before it runs, then works a while.
    let step = |_: &runwarden::JsonObject| {
        Ok(BoxedJob::repeatable(|ctx| async move {
            if let Some(d) = ctx
                .dependencies()
                .iter()
                .find(|d| d.status != RunStatus::Completed)
            {
                return Err(JobError::msg(format!(
                    "started after a {} dependency",
                    d.status
                )));
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
            Ok(())
        }))
    };
    Runwarden::builder()
        .store(store)
        .job_kind("media", OnInterrupt::Rerun, step)
}

fn diamond() -> Workflow {
    let step = |name: &str| Step::kind(name, "media", RunSpec::new(name));
    Workflow::new()
        .step(step("transcode"))
        .step(step("thumbnail").after("transcode"))
        .step(step("caption").after("transcode"))
        .step(step("publish").after("thumbnail").after("caption"))
}

/// The child: submits workflows forever, printing each id once its submit (one transaction)
/// returned, until it is killed.
async fn child(path: String) {
    let store = SqliteStore::open(&path).expect("child opens the store");
    let rw = builder(store).start().await.expect("child starts");
    loop {
        let runs = rw
            .submit_workflow(diamond())
            .await
            .expect("workflow submit");
        println!("id {}", runs.id);
    }
}

fn main() {
    support::crash_test_main(
        CHILD_ENV,
        child,
        "workflows_resume_in_order_after_sigkill",
        workflows_resume_in_order_after_sigkill,
    );
}

async fn workflows_resume_in_order_after_sigkill() {
    let dir = TempDir::new("workflow-crash");
    let db = dir.0.join("runs.db");
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut printed: Vec<WorkflowId> = Vec::new();
    let mut waiting_recovered = 0;
    for round in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let kill_after = 1 + (seed % 12) as usize;
        let ids = support::sigkill_after_ids((CHILD_ENV, &db), kill_after).await;
        assert_eq!(
            ids.len(),
            kill_after,
            "round {round}: the child stopped early"
        );
        printed.extend(ids.iter().map(|id| WorkflowId::from_uuid(*id.as_uuid())));

        let mut store = SqliteStore::open(&db).expect("reopen after SIGKILL");
        let waiting = runwarden::RunStore::list(
            &mut store,
            &runwarden::ListQuery::new().status(RunStatus::Waiting),
        )
        .expect("list the store")
        .total;
        waiting_recovered += waiting;
        let rw = builder(store).start().await.expect("start after crash");
        // Every workflow in the store (printed or not: one killed between commit and print
        // is there too) finishes.
        let all = rw
            .list(runwarden::ListQuery::new().limit(usize::MAX))
            .await
            .expect("list");
        let mut workflows: Vec<WorkflowId> = all.runs.iter().filter_map(|r| r.workflow).collect();
        workflows.sort();
        workflows.dedup();
        for id in &printed {
            assert!(workflows.contains(id), "round {round}: workflow {id} lost");
        }
        for id in &workflows {
            let view = within("a workflow to finish", async {
                loop {
                    let view = rw.workflow(*id).await.expect("query").expect("known");
                    if view.state != WorkflowState::Active {
                        return view;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
            .await;
            assert_eq!(view.steps.len(), 4, "round {round}: {id} is whole");
            assert_eq!(
                view.state,
                WorkflowState::Completed,
                "round {round}: {view:?}"
            );
            for (name, record) in &view.steps {
                let started = record.started_at.expect("started");
                for dep in &record.depends_on {
                    let before = view
                        .steps
                        .values()
                        .find(|r| r.id == dep.run)
                        .expect("a dependency in the workflow");
                    let finished = before.finished_at.expect("finished");
                    assert!(
                        started >= finished,
                        "round {round}: {name} started at {started} before its dependency \
                         ended at {finished}"
                    );
                }
            }
        }
        rw.shutdown(support::STEP).await.expect("shutdown");
        let store = SqliteStore::open(&db).expect("reopen");
        store.integrity_check().expect("integrity check");
    }
    assert!(
        waiting_recovered > 0,
        "no round killed a workflow with a step still waiting: the test proved nothing"
    );
    eprintln!(
        "{} workflows acknowledged; {waiting_recovered} waiting steps recovered",
        printed.len()
    );
}
