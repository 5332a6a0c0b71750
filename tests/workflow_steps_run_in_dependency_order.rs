//! A run that depends on others waits (`Waiting`, counted against no limit) until they have
//! ended, then runs; a dependency that does not complete cancels its dependents (the record
//! naming it and how it ended) unless they run anyway; a cyclic graph is refused whole and
//! creates nothing; dependents read their dependencies' results; cancel and drain reach
//! waiting runs. Checked from the handle and from the actor path alike.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{
    BoxedJob, CancelOutcome, CancelReason, Dependency, ErrorKind, JobError, Json, ListQuery, RunId,
    RunRecord, RunSpec, RunStatus, Runwarden, Step, SubmitError, SupervisorActor,
    SupervisorArguments, Workflow, WorkflowError, WorkflowState,
};
use support::{Gate, within};

fn ok(name: &str) -> Step {
    let result = Json::from(format!("{name} done"));
    Step::new(
        name,
        RunSpec::new(name),
        move |_ctx| async move { Ok(result) },
    )
}

fn failing(name: &str) -> Step {
    Step::new(name, RunSpec::new(name), |_ctx| async {
        Err::<(), _>(JobError::msg("no such codec"))
    })
}

fn diamond(a: Step, d: Step) -> Workflow {
    Workflow::new()
        .step(a)
        .step(ok("b").after("a"))
        .step(ok("c").after("a"))
        .step(d.after("b").after("c"))
}

async fn ended(rw: &Runwarden, id: RunId) -> RunRecord {
    within("a step to end", rw.wait(id)).await.expect("wait")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_runs_in_dependency_order_and_each_step_reads_its_dependencies() {
    let rw = support::start(Runwarden::builder()).await;
    let d = Step::new(
        "d",
        RunSpec::new("d"),
        |ctx: runwarden::RunContext| async move {
            let seen: Vec<String> = ctx
                .dependencies()
                .iter()
                .map(|o| format!("{}={:?}", o.step.as_deref().unwrap_or("?"), o.result))
                .collect();
            Ok(Json::from(seen.join(";")))
        },
    );
    let runs = within("submit", rw.submit_workflow(diamond(ok("a"), d)))
        .await
        .expect("a diamond is accepted");
    let rec = |name: &str| runs.run(name).expect("step");
    let d = ended(&rw, rec("d")).await;
    let (a, b, c) = (
        ended(&rw, rec("a")).await,
        ended(&rw, rec("b")).await,
        ended(&rw, rec("c")).await,
    );
    for r in [&a, &b, &c, &d] {
        assert_eq!(r.status, RunStatus::Completed, "{r:?}");
        assert_eq!(r.workflow, Some(runs.id));
    }
    // Each step started only after every step it waits for had finished.
    let fin = |r: &RunRecord| r.finished_at.expect("present");
    let start = |r: &RunRecord| r.started_at.expect("present");
    assert!(
        start(&b) >= fin(&a) && start(&c) >= fin(&a),
        "{a:?} {b:?} {c:?}"
    );
    assert!(
        start(&d) >= fin(&b) && start(&d) >= fin(&c),
        "{b:?} {c:?} {d:?}"
    );
    assert_eq!(
        d.depends_on,
        [Dependency::on(rec("b")), Dependency::on(rec("c"))]
    );
    // d read both results, in the order it named them.
    assert_eq!(
        d.result,
        Some(Json::from(
            "b=Some(String(\"b done\"));c=Some(String(\"c done\"))"
        ))
    );
    let view = rw.workflow(runs.id).await.expect("query").expect("known");
    assert_eq!(view.state, WorkflowState::Completed);
    assert_eq!(view.counts.completed, 4);
    assert_eq!(view.steps["d"].id, rec("d"));
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_cancels_its_dependents_naming_it_unless_they_run_anyway() {
    let rw = support::start(Runwarden::builder()).await;
    let runs = within("submit", rw.submit_workflow(diamond(failing("a"), ok("d"))))
        .await
        .expect("accepted");
    let a = runs.run("a").expect("present");
    assert_eq!(ended(&rw, a).await.status, RunStatus::Failed);
    for step in ["b", "c", "d"] {
        let r = ended(&rw, runs.run(step).expect("present")).await;
        assert_eq!(r.status, RunStatus::Cancelled, "{step}: {r:?}");
        assert_eq!(r.cancelled_by, Some(CancelReason::Dependency));
        assert!(r.started_at.is_none(), "{step} never started");
        let error = r.error.expect("why");
        assert_eq!(error.kind, ErrorKind::DependencyNotCompleted);
        // b and c name a; d names whichever of b and c ended first.
        let named = if step == "d" {
            vec!["b", "c"]
        } else {
            vec!["a"]
        };
        assert!(
            named.iter().any(|n| {
                let id = runs.run(n).expect("present").to_string();
                error.message.contains(&id) && error.message.contains(&format!("`{n}`"))
            }),
            "{step}: {}",
            error.message
        );
    }
    let a_error = &ended(&rw, runs.run("b").expect("present"))
        .await
        .error
        .expect("present");
    assert!(
        a_error.message.contains("failed") && a_error.message.contains("no such codec"),
        "{}",
        a_error.message
    );
    let view = rw.workflow(runs.id).await.expect("query").expect("known");
    assert_eq!(view.state, WorkflowState::Failed);
    assert_eq!((view.counts.failed, view.counts.cancelled), (1, 3));

    // "Run anyway": d runs after a failed c, and reads how c ended.
    let d = Step::new(
        "d",
        RunSpec::new("d"),
        |ctx: runwarden::RunContext| async move {
            let c = ctx.dependency("c").expect("c's outcome");
            Ok(Json::from(format!(
                "{} {}",
                c.status,
                ctx.dependency_counts().failed
            )))
        },
    );
    let lenient = Workflow::new()
        .step(ok("a"))
        .step(ok("b").after("a"))
        .step(failing("c").after("a"))
        .step(d.after("b").after_anyway("c"));
    let runs = within("submit", rw.submit_workflow(lenient))
        .await
        .expect("accepted");
    let d = ended(&rw, runs.run("d").expect("present")).await;
    let c = ended(&rw, runs.run("c").expect("present")).await;
    assert_eq!(d.status, RunStatus::Completed, "{d:?}");
    assert!(d.started_at.expect("present") >= c.finished_at.expect("present"));
    assert_eq!(d.result, Some(Json::from("failed 1")));
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cyclic_or_refused_graph_creates_nothing() {
    let rw = support::start(
        Runwarden::builder().queue("tiny", runwarden::QueueConfig::default().max_length(1)),
    )
    .await;
    let before = rw.stats().await.expect("stats").total();
    let cyclic = Workflow::new()
        .step(ok("a").after("c"))
        .step(ok("b").after("a"))
        .step(ok("c").after("b"))
        .step(ok("free"));
    let refused = rw.submit_workflow(cyclic).await.expect_err("a cycle");
    assert!(
        matches!(
            &refused,
            runwarden::Error::Submit(SubmitError::Workflow(WorkflowError::Cycle(steps)))
                if steps == &["a", "b", "c"]
        ),
        "{refused:?}"
    );
    // A step refused as a single submit would be (its queue holds one) refuses the whole.
    let full = Workflow::new()
        .step(Step::new(
            "one",
            RunSpec::new("x").queue("tiny"),
            |_ctx| async { Ok(()) },
        ))
        .step(
            Step::new("two", RunSpec::new("x").queue("tiny"), |_ctx| async {
                Ok(())
            })
            .after("one"),
        );
    let refused = rw.submit_workflow(full).await.expect_err("queue full");
    assert!(
        matches!(
            &refused,
            runwarden::Error::Submit(SubmitError::Workflow(WorkflowError::Step { step, error }))
                if step == "two" && matches!(**error, SubmitError::QueueFull { .. })
        ),
        "{refused:?}"
    );
    // A dependency on a run that does not exist refuses the workflow, and a single submit.
    let ghost = RunId::new();
    let orphan = Workflow::new()
        .step(ok("a"))
        .step(ok("b").after("a").after_run(Dependency::on(ghost)));
    let refused = rw.submit_workflow(orphan).await.expect_err("unknown run");
    assert!(
        matches!(&refused, runwarden::Error::Submit(SubmitError::UnknownDependency(id)) if *id == ghost),
        "{refused:?}"
    );
    let single = rw
        .request(RunSpec::new("after-ghost"), |_ctx| async { Ok(()) })
        .after(Dependency::on(ghost))
        .send()
        .await;
    assert_eq!(single, Err(SubmitError::UnknownDependency(ghost)));
    assert_eq!(
        rw.stats().await.expect("stats").total(),
        before,
        "nothing created"
    );
    // The refused runs gave back their queue places: the tiny queue takes one run.
    let one = rw
        .submit(RunSpec::new("x").queue("tiny"), |_ctx| async { Ok(()) })
        .expect("the queue has room");
    ended(&rw, one).await;
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_runs_take_no_slot_and_cancel_and_drain_reach_them() {
    let rw = support::start(Runwarden::builder().max_concurrent(1)).await;
    let gate = Gate::new();
    let g = gate.clone();
    let first = rw
        .submit(RunSpec::new("first"), move |_ctx| async move {
            g.wait().await;
            Ok(())
        })
        .expect("submit");
    // Two runs waiting for `first`, and one free run: the free one is queued behind `first`
    // (the only slot), the waiting ones hold none.
    let after = |label: &str| {
        rw.request(RunSpec::new(label), |_ctx| async { Ok(()) })
            .after(Dependency::on(first))
    };
    let cancelled = within("submit", after("cancel-me").send())
        .await
        .expect("ok");
    let kept = within("submit", after("kept").send()).await.expect("ok");
    assert_eq!(
        rw.status(kept).await.expect("status").status,
        RunStatus::Waiting
    );
    let status = rw.supervisor_status().await.expect("status");
    assert_eq!((status.running, status.awaiting, status.queued), (1, 2, 0));
    assert_eq!(
        rw.cancel(cancelled).await.expect("cancel"),
        CancelOutcome::CancelledWhileQueued
    );
    let r = ended(&rw, cancelled).await;
    assert_eq!(r.cancelled_by, Some(CancelReason::User));
    gate.open();
    let kept = ended(&rw, kept).await;
    assert_eq!(kept.status, RunStatus::Completed);
    // A dependency on a finished run is met at once.
    let late = within("submit", after("late").send()).await.expect("ok");
    assert_eq!(ended(&rw, late).await.status, RunStatus::Completed);

    // A drain lets waiting runs run when their dependencies end before its deadline, and
    // cancels those still waiting at it.
    let hold = Gate::new();
    let h = hold.clone();
    let blocker = rw
        .submit(RunSpec::new("blocker"), move |ctx| async move {
            tokio::select! { () = h.wait() => {}, () = ctx.cancelled() => {} }
            Ok(())
        })
        .expect("submit");
    let stuck = within(
        "submit",
        rw.request(RunSpec::new("stuck"), |_ctx| async { Ok(()) })
            .after(Dependency::anyway(blocker))
            .send(),
    )
    .await
    .expect("ok");
    let report = within("drain", rw.drain(Duration::from_millis(200)))
        .await
        .expect("drain");
    assert!(report.cancelled_by_drain.contains(&stuck), "{report:?}");
    let stuck = ended(&rw, stuck).await;
    assert_eq!(stuck.cancelled_by, Some(CancelReason::DrainDeadline));
    assert_eq!(rw.active_count().await.expect("count"), 0);
    drop(hold);
    rw.shutdown(Duration::from_secs(5)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_path_submits_queries_and_cancels_workflows() {
    let (supervisor, _) = SupervisorActor::spawn(SupervisorArguments::default())
        .await
        .expect("spawn");
    let registry = supervisor.registry().await.expect("registry");
    let gate = Gate::new();
    let g = gate.clone();
    let slow = Step::new(
        "slow",
        RunSpec::new("slow"),
        BoxedJob::new(move |ctx| async move {
            tokio::select! { () = g.wait() => {}, () = ctx.cancelled() => {} }
            Ok(())
        }),
    );
    let graph = Workflow::new()
        .step(slow)
        .step(ok("next").after("slow"))
        .step(ok("last").after("next"));
    let runs = supervisor
        .submit_workflow(graph)
        .await
        .expect("call")
        .expect("accepted");
    let view = supervisor
        .workflow(runs.id)
        .await
        .expect("call")
        .expect("known");
    assert_eq!(view.state, WorkflowState::Active);
    assert_eq!(view.counts.waiting, 2);
    let answers = supervisor.cancel_workflow(runs.id).await.expect("call");
    assert_eq!(answers.len(), 3, "every step not ended: {answers:?}");
    for (id, answer) in &answers {
        assert!(answer.as_ref().is_ok_and(Result::is_ok), "{id}: {answer:?}");
    }
    for step in ["slow", "next", "last"] {
        let r = within("end", registry.wait(runs.run(step).expect("present")))
            .await
            .expect("call")
            .expect("known");
        assert_eq!(r.status, RunStatus::Cancelled, "{step}");
    }
    let page = registry
        .list(ListQuery::new().workflow(runs.id))
        .await
        .expect("list");
    assert_eq!(page.total, 3);
    drop(gate);
    supervisor
        .shutdown(Duration::from_secs(5))
        .await
        .expect("shutdown");
}
