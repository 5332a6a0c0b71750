//! Inline mode: every awaited submit answers only once its run has ended, on both paths (the
//! supervisor's `Submit` message and the handle's `request(..).send()`), with nested submits
//! from inside a job, whatever the limits say, and with retries at their exact backoff on
//! the paused clock. The synchronous `submit` starts its run at once but cannot wait.

use std::time::Duration;

use runwarden::{
    BoxedJob, Dedup, JobError, RetryPolicy, RunSpec, RunStatus, Runwarden, StartMode,
    SupervisorActor, SupervisorArguments, SupervisorRef,
};

#[tokio::test(start_paused = true)]
async fn a_message_submit_answers_after_its_run_and_its_nested_run_ended() {
    // One run at a time: a nested run waiting for the outer one's slot would never start.
    let args = SupervisorArguments {
        start_mode: StartMode::Inline,
        max_concurrent: Some(1),
        ..SupervisorArguments::default()
    };
    let (runs, _) = SupervisorActor::spawn(args).await.expect("spawn");
    let registry = runs.registry().await.expect("registry");
    let inner_runs = runs.clone();
    let inner_registry = registry.clone();
    let outer = BoxedJob::new(move |_ctx| async move {
        let inner = BoxedJob::new(|_ctx| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(())
        });
        let id = inner_runs.submit(RunSpec::new("inner"), inner).await??;
        // The nested submit answered at the inner run's end.
        let record = inner_registry.get(id).await??;
        if record.status != RunStatus::Completed {
            return Err(JobError::msg(format!("inner run is {}", record.status)));
        }
        Ok(())
    });
    let t0 = tokio::time::Instant::now();
    let outer_id = runs
        .submit(RunSpec::new("outer"), outer)
        .await
        .expect("answered")
        .expect("accepted");
    // It answered after the whole tree ran, 3 s of paused time later, not at once.
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    let outer = registry.get(outer_id).await.expect("call").expect("known");
    assert_eq!(outer.status, RunStatus::Completed, "{:?}", outer.error);
    let status = runs.status().await.expect("status");
    assert_eq!(status.mode, StartMode::Inline);
    assert_eq!((status.running, status.queued), (0, 0));
    runs.shutdown(Duration::from_secs(1))
        .await
        .expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_retried_run_answers_after_its_last_attempt_at_its_exact_backoff() {
    let rw = Runwarden::builder().inline().start().await.expect("start");
    let retry = RetryPolicy::attempts(3)
        .backoff(Duration::from_secs(30), Duration::from_secs(30))
        .jitter(0.0);
    let job = BoxedJob::repeatable(|ctx| async move {
        if ctx.attempt() < 3 {
            return Err(JobError::msg(format!("attempt {} fails", ctx.attempt())));
        }
        Ok(())
    });
    let t0 = tokio::time::Instant::now();
    let id = rw
        .request(RunSpec::new("flaky").retry(retry), job)
        .send()
        .await
        .expect("accepted");
    assert_eq!(t0.elapsed(), Duration::from_secs(60));
    let record = rw.status(id).await.expect("status");
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.attempt, 3);
    assert_eq!(record.attempt_errors.len(), 2);
    rw.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn durable_and_keyed_requests_answer_at_the_end_and_a_failure_is_on_the_record() {
    let rw = Runwarden::builder()
        .inline()
        .store(runwarden::MemoryStore::default())
        .start()
        .await
        .expect("start");
    let slow_failure = |_ctx| async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        Err::<(), _>(JobError::msg("no such customer"))
    };
    let id = rw
        .request(RunSpec::new("charge"), BoxedJob::new(slow_failure))
        .durable()
        .send()
        .await
        .expect("accepted");
    let record = rw.status(id).await.expect("status");
    assert_eq!(record.status, RunStatus::Failed);
    assert_eq!(record.error.expect("error").message, "no such customer");

    let job = || {
        BoxedJob::new(|_ctx| async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Ok(())
        })
    };
    let first = rw
        .request(RunSpec::new("invoice"), job())
        .idempotency_key("invoice-42")
        .send()
        .await
        .expect("accepted");
    let Dedup::New(first) = first else {
        panic!("a new run: {first:?}")
    };
    assert_eq!(
        rw.status(first).await.expect("status").status,
        RunStatus::Completed
    );
    // The key's holder ended within the dedup window: the same run comes back, at once.
    let t0 = tokio::time::Instant::now();
    let again = rw
        .request(RunSpec::new("invoice"), job())
        .idempotency_key("invoice-42")
        .send()
        .await
        .expect("answered");
    assert_eq!(again, Dedup::Existing(first));
    assert_eq!(t0.elapsed(), Duration::ZERO);
    rw.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_synchronous_submit_starts_at_once_whatever_the_limits_but_returns_at_once() {
    let rw = Runwarden::builder()
        .inline()
        .max_concurrent(1)
        .start()
        .await
        .expect("start");
    rw.pause_queue("default").await.expect("pause");
    let t0 = tokio::time::Instant::now();
    let ids: Vec<_> = (0..3)
        .map(|i| {
            rw.submit(RunSpec::new("sync").param("i", i), |_ctx| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok(())
            })
            .expect("accepted")
        })
        .collect();
    assert_eq!(t0.elapsed(), Duration::ZERO);
    for id in &ids {
        let record = rw.wait(*id).await.expect("wait");
        assert_eq!(record.status, RunStatus::Completed);
    }
    // All three ran at once, over the limit of 1 and through the pause.
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    rw.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn a_ref_wrapped_by_hand_learns_the_mode_when_it_connects() {
    let args = SupervisorArguments {
        start_mode: StartMode::Inline,
        ..SupervisorArguments::default()
    };
    let (spawned, _) = SupervisorActor::spawn(args).await.expect("spawn");
    let runs = SupervisorRef::connect(spawned.actor().clone())
        .await
        .expect("connect");
    let job = BoxedJob::new(|_ctx| async {
        // Longer than the ref's 5 s timeout: an inline submit is not bounded by it.
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok(())
    });
    let id = runs
        .submit(RunSpec::new("long"), job)
        .await
        .expect("answered")
        .expect("accepted");
    let record = runs.registry().await.expect("registry").get(id).await;
    assert_eq!(
        record.expect("call").expect("known").status,
        RunStatus::Completed
    );
    runs.shutdown(Duration::from_secs(1))
        .await
        .expect("shutdown");
}

#[tokio::test(start_paused = true)]
async fn nested_requests_from_a_job_run_to_their_end_before_the_job_goes_on() {
    let rw = Runwarden::builder()
        .inline()
        .max_concurrent(1)
        .start()
        .await
        .expect("start");
    let submitter = rw.submitter().clone();
    let registry = rw.registry().clone();
    let outer = BoxedJob::new(move |_ctx| async move {
        let inner = || {
            BoxedJob::new(|_ctx| async {
                tokio::time::sleep(Duration::from_secs(4)).await;
                Ok(())
            })
        };
        let plain = submitter
            .request(RunSpec::new("plain"), inner())
            .send()
            .await?;
        let keyed = submitter
            .request(RunSpec::new("keyed"), inner())
            .idempotency_key("once")
            .send()
            .await?
            .run_id();
        for id in [plain, keyed] {
            let status = registry.get(id).await??.status;
            if status != RunStatus::Completed {
                return Err(JobError::msg(format!("nested run is {status}")));
            }
        }
        Ok(())
    });
    let t0 = tokio::time::Instant::now();
    let id = rw
        .request(RunSpec::new("outer"), outer)
        .send()
        .await
        .expect("accepted");
    assert_eq!(t0.elapsed(), Duration::from_secs(8));
    let record = rw.status(id).await.expect("status");
    assert_eq!(record.status, RunStatus::Completed, "{:?}", record.error);
    rw.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}
