//! The testing kit's faults, direct performs and timer stepping: each fault ends its run as
//! production would end it for that failure (and only the next attempt), a crashed registry
//! restarts from its store or escalates without one, a performed job's reports are all kept
//! and its cancel is the test's, and the paused clock steps from one of runwarden's timers
//! to the next, in order, saying what each was for.

use std::time::Duration;

use runwarden::testing::{JobFault, Perform, Probe, advance_to_next_timer, crash_registry, inject};
use runwarden::{
    BoxedJob, CallError, ErrorKind, JobKinds, JobOutcome, Json, JsonObject, MemoryStore,
    OnInterrupt, Progress, QueueConfig, RateLimit, RetryPolicy, RunEvent, RunSpec, RunStatus,
    Runwarden, ScheduleSpec, SubmitError, TimerPurpose,
};

fn ok_job() -> BoxedJob {
    BoxedJob::repeatable(|_ctx| async { Ok(()) })
}

#[tokio::test(start_paused = true)]
async fn each_fault_ends_the_next_attempt_as_that_failure_would() {
    let rw = Runwarden::builder()
        .cancel_grace(Duration::from_secs(2))
        .start()
        .await
        .expect("start");
    let sup = rw.supervisor();

    inject(sup, "charge", JobFault::Panic("boom".into()))
        .await
        .expect("inject");
    // Another label is untouched while the fault waits for its own.
    let other = rw
        .submit_job(RunSpec::new("refund"), ok_job())
        .expect("submit");
    let record = rw.wait(other).await.expect("wait");
    assert_eq!(record.status, RunStatus::Completed);
    let id = rw
        .submit_job(RunSpec::new("charge"), ok_job())
        .expect("submit");
    let record = rw.wait(id).await.expect("wait");
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.expect("error");
    assert_eq!(
        (error.kind, error.message.as_str()),
        (ErrorKind::Panicked, "boom")
    );

    // Only one attempt had the fault: a retried run's next attempt runs its own job.
    inject(sup, "charge", JobFault::Fail("declined".into()))
        .await
        .expect("inject");
    let retry = RetryPolicy::attempts(2)
        .backoff(Duration::from_secs(10), Duration::from_secs(10))
        .jitter(0.0);
    let id = rw
        .submit_job(RunSpec::new("charge").retry(retry), ok_job())
        .expect("submit");
    let record = rw.wait(id).await.expect("wait");
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.attempt, 2);
    assert_eq!(record.attempt_errors[0].message, "declined");

    // Hangs until its time limit cancels it.
    inject(sup, "charge", JobFault::HangUntilCancelled)
        .await
        .expect("inject");
    let t0 = tokio::time::Instant::now();
    let id = rw
        .submit_job(
            RunSpec::new("charge").timeout(Duration::from_secs(5)),
            ok_job(),
        )
        .expect("submit");
    let record = rw.wait(id).await.expect("wait");
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.error.expect("error").kind, ErrorKind::TimedOut);

    // Ignores its cancel: forced after the grace period.
    inject(sup, "charge", JobFault::Unresponsive)
        .await
        .expect("inject");
    let mut probe = Probe::attach(rw.registry()).await.expect("probe");
    let id = rw
        .submit_job(RunSpec::new("charge"), ok_job())
        .expect("submit");
    probe.await_status(id, RunStatus::Running).await;
    let t0 = tokio::time::Instant::now();
    rw.cancel(id).await.expect("cancel");
    let record = rw.wait(id).await.expect("wait");
    assert_eq!(t0.elapsed(), Duration::from_secs(2));
    assert_eq!(record.status, RunStatus::Cancelled);
    rw.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_registry_restarts_from_its_store_and_escalates_without_one() {
    let rw = Runwarden::builder()
        .store(MemoryStore::default())
        .start()
        .await
        .expect("start");
    let before = rw
        .submit_job(RunSpec::new("before"), ok_job())
        .expect("submit");
    rw.wait(before).await.expect("wait");
    // A run active across both crashes, with a caller waiting for its end.
    let (go, gate) = tokio::sync::oneshot::channel::<()>();
    let during = rw
        .submit_job(
            RunSpec::new("during"),
            BoxedJob::new(move |ctx| async move {
                let _ = gate.await;
                ctx.report(Progress::items(1, 1));
                Ok(())
            }),
        )
        .expect("submit");
    let waiter = tokio::spawn({
        let rw = rw.clone();
        async move { rw.wait(during).await }
    });
    assert_eq!(crash_registry(rw.registry()).await.expect("restarted"), 1);
    assert_eq!(crash_registry(rw.registry()).await.expect("restarted"), 2);
    assert!(rw.is_active(during).await.expect("kept"));
    go.send(()).expect("the run waits");
    let ended = waiter.await.expect("join").expect("the waiter is answered");
    assert_eq!(ended.status, RunStatus::Completed);
    assert_eq!(ended.progress, Some(Progress::items(1, 1)));
    // Nothing was lost or applied twice, and the registry goes on taking runs.
    assert_eq!(
        rw.status(before).await.expect("kept").status,
        RunStatus::Completed
    );
    let stats = rw.stats().await.expect("stats");
    assert_eq!((stats.restarts, stats.refused), (2, 0));
    let after = rw
        .submit_job(RunSpec::new("after"), ok_job())
        .expect("submit");
    assert_eq!(
        rw.wait(after).await.expect("wait").status,
        RunStatus::Completed
    );
    rw.shutdown(Duration::from_secs(1)).await.expect("shutdown");

    let rw = Runwarden::builder().start().await.expect("start");
    let gone = crash_registry(rw.registry()).await;
    assert!(
        matches!(gone, Err(CallError::Unavailable { .. })),
        "{gone:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_performed_job_keeps_every_report_and_its_cancel_is_the_tests() {
    let kinds = JobKinds::new().register("resize", OnInterrupt::Rerun, |params| {
        let Some(&Json::Int(n)) = params.get("images") else {
            return Err("`images` must be a number".to_owned());
        };
        let n = u64::try_from(n).map_err(|_| "`images` must not be negative".to_owned())?;
        Ok(BoxedJob::repeatable(move |ctx| async move {
            for done in 1..=n {
                ctx.report(Progress::items(done, n));
                ctx.info(format!("image {done} of {n}"));
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = ctx.cancelled() => return Err(runwarden::JobError::msg("stopped")),
                }
            }
            ctx.set_exit_code(0);
            Ok(Json::from(n))
        }))
    });
    let mut params = JsonObject::new();
    params.insert("images".into(), 3.into());
    let done = Perform::kind(&kinds, "resize", params.clone())
        .expect("built")
        .run()
        .await;
    assert_eq!(done.outcome, JobOutcome::Ok(Some(Json::from(3))));
    let want: Vec<_> = (1..=3).map(|d| Progress::items(d, 3)).collect();
    assert_eq!(done.progress, want, "every report, not only the latest");
    let lines: Vec<_> = done.logs.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(lines, ["image 1 of 3", "image 2 of 3", "image 3 of 3"]);
    assert_eq!(done.exit_code, Some(0));

    // Cancelled from another task while it runs, after its second report.
    let perform = Perform::kind(&kinds, "resize", params)
        .expect("built")
        .attempt(2);
    let controls = perform.controls();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(controls.progress().len(), 2);
        controls.cancel();
    });
    let done = perform.run().await;
    canceller.await.expect("canceller");
    assert_eq!(done.progress.len(), 2);
    assert_eq!(
        done.outcome,
        JobOutcome::Err(runwarden::JobError::msg("stopped"))
    );
    assert_eq!(done.logs.len(), 2);

    // The context says what the test made it say.
    let told = |ctx: runwarden::RunContext| async move {
        let said = format!("{} {} {}", ctx.run_id(), ctx.attempt(), ctx.snoozes());
        Ok(Json::from(said))
    };
    let done = Perform::job(BoxedJob::new(told)).attempt(2).run().await;
    let JobOutcome::Ok(Some(Json::String(said))) = done.outcome else {
        panic!("{:?}", done.outcome)
    };
    assert!(said.ends_with(" 2 0"), "{said}");
    let id = runwarden::RunId::new();
    let recording = runwarden::RecordingContext::new(id).attempt(3).snoozes(1);
    let done = Perform::with_context(BoxedJob::new(told), recording)
        .run()
        .await;
    assert_eq!(
        done.outcome,
        JobOutcome::Ok(Some(Json::from(format!("{id} 3 1"))))
    );

    // A panic is an outcome, as a worker reports it; bad input is the submit's typed error.
    let panics = Perform::job(BoxedJob::new(|_ctx| async {
        if true {
            panic!("bad pixel");
        }
        Ok(())
    }));
    assert_eq!(
        panics.run().await.outcome,
        JobOutcome::Panicked("bad pixel".into())
    );
    let unknown = Perform::kind(&kinds, "crop", JsonObject::new()).expect_err("unknown");
    assert_eq!(unknown, SubmitError::UnknownKind("crop".into()));
    let bad = Perform::kind(&kinds, "resize", JsonObject::new()).expect_err("refused");
    assert_eq!(
        bad,
        SubmitError::BadParams("`images` must be a number".into())
    );
}

#[tokio::test(start_paused = true)]
async fn the_clock_steps_from_each_timer_to_the_next_in_order() {
    let rw = Runwarden::builder()
        .queue(
            "mail",
            QueueConfig::default().rate(RateLimit::new(1, Duration::from_secs(50))),
        )
        .start()
        .await
        .expect("start");
    let sup = rw.supervisor();
    assert_eq!(advance_to_next_timer(sup).await.expect("asked"), None);
    let mut probe = Probe::attach(rw.registry()).await.expect("probe");

    // A time limit at 7 s, a retry at 3 s, a rate limit's next start at 60 s, a schedule
    // every 20 s (its first occurrence at once).
    let held = rw
        .submit_job(
            RunSpec::new("slow").timeout(Duration::from_secs(7)),
            BoxedJob::new(|ctx| async move {
                ctx.cancelled().await;
                Ok(())
            }),
        )
        .expect("submit");
    let retry = RetryPolicy::attempts(2)
        .backoff(Duration::from_secs(3), Duration::from_secs(3))
        .jitter(0.0);
    let flaky = rw
        .submit_job(
            RunSpec::new("flaky").retry(retry),
            BoxedJob::repeatable(|ctx| async move {
                if ctx.attempt() == 1 {
                    return Err(runwarden::JobError::msg("once"));
                }
                Ok(())
            }),
        )
        .expect("submit");
    for _ in 0..2 {
        rw.submit_job(RunSpec::new("mail").queue("mail"), ok_job())
            .expect("submit");
    }
    let schedule = rw
        .schedule(
            ScheduleSpec::fixed_rate(RunSpec::new("tick"), Duration::from_secs(20)),
            |_ctx| async { Ok(()) },
        )
        .await
        .expect("schedule");
    // A fixed-delay schedule whose runs outlast its delay: its timer, once fired, stays held
    // while its run goes on, and must not hide the others'.
    let slow = rw
        .schedule(
            ScheduleSpec::fixed_delay(RunSpec::new("slow-tick"), Duration::from_secs(2)),
            |_ctx| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(())
            },
        )
        .await
        .expect("schedule");
    probe.await_status(held, RunStatus::Running).await;
    probe
        .await_event("the retry wait", |e| {
            e.run_id() == flaky
                && matches!(
                    e,
                    RunEvent::Status {
                        status: RunStatus::Queued,
                        attempt: 2,
                        ..
                    }
                )
        })
        .await;

    let t0 = tokio::time::Instant::now();
    let mut seen = Vec::new();
    while tokio::time::Instant::now() - t0 < Duration::from_secs(60) {
        let timer = advance_to_next_timer(sup)
            .await
            .expect("asked")
            .expect("a timer");
        seen.push((t0.elapsed().as_secs(), timer.purpose));
    }
    assert_eq!(
        seen,
        [
            (3, TimerPurpose::Retry(flaky)),
            (7, TimerPurpose::TimeLimit(held)),
            (20, TimerPurpose::Schedule(schedule)),
            (40, TimerPurpose::Schedule(schedule)),
            // The slow tick's first run ended by its own sleep at 30 s, inside the step to
            // 40 s (a job's own timer fires at the end of a step), so its next is at 42 s;
            // from then on its fired timer stays held while its run goes on.
            (42, TimerPurpose::Schedule(slow)),
            (50, TimerPurpose::RateLimit),
            (60, TimerPurpose::Schedule(schedule)),
        ],
        "{seen:?}"
    );
    assert_eq!(
        rw.status(flaky).await.expect("status").status,
        RunStatus::Completed
    );
    assert_eq!(
        rw.status(held).await.expect("status").status,
        RunStatus::Failed
    );
    rw.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}
