//! A bulk submit answers once per run, in order: a refused run (its queue full or unknown, an
//! unknown kind) keeps its typed error and is not recorded, the others are. The durable form
//! answers only once the batch is in the store, written in one transaction; the actor path's
//! `SubmitMany` does the same; a draining supervisor refuses the whole batch.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use runwarden::{
    BoxedJob, Kind, ListQuery, MemoryStore, QueueConfig, RunId, RunPage, RunRecord, RunSpec,
    RunStatus, RunStore, Runwarden, StoreError, StoreWrite, StoredState, SubmitError,
    SupervisorActor, SupervisorArguments, Timestamp,
};

/// A memory store that keeps, per transaction, the ids of the records it wrote, and whose
/// writes wait while the test holds the gate shut.
#[derive(Debug, Default)]
struct Counting {
    inner: MemoryStore,
    put_per_write: Arc<Mutex<Vec<Vec<RunId>>>>,
    gate: Arc<(Mutex<bool>, parking_lot::Condvar)>,
}

impl RunStore for Counting {
    fn load(&mut self, window: usize) -> Result<StoredState, StoreError> {
        self.inner.load(window)
    }
    fn write(&mut self, batch: &[StoreWrite]) -> Result<(), StoreError> {
        let (held, cv) = &*self.gate;
        let mut held = held.lock();
        while *held {
            cv.wait(&mut held);
        }
        drop(held);
        let puts = batch.iter().filter_map(|w| match w {
            StoreWrite::Put(r) => Some(r.id),
            _ => None,
        });
        self.put_per_write.lock().push(puts.collect());
        self.inner.write(batch)
    }
    fn get(&mut self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        self.inner.get(id)
    }
    fn list(&mut self, query: &ListQuery) -> Result<RunPage, StoreError> {
        self.inner.list(query)
    }
    fn prunable(
        &mut self,
        ended_before: Timestamp,
        keep: usize,
        limit: usize,
    ) -> Result<Vec<(RunId, RunStatus)>, StoreError> {
        self.inner.prunable(ended_before, keep, limit)
    }
}

fn held() -> BoxedJob {
    BoxedJob::new(|ctx| async move {
        ctx.cancelled().await;
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_durable_batch_is_one_transaction_committed_before_its_answers() {
    let store = Counting::default();
    let writes = store.put_per_write.clone();
    let rw = Runwarden::builder()
        .store(store)
        .queue("small", QueueConfig::limited(1).max_length(2))
        .job_kind("noop", runwarden::OnInterrupt::Rerun, |_| {
            Ok(BoxedJob::repeatable(|_ctx| async { Ok(()) }))
        })
        .start()
        .await
        .expect("start");
    // 500 runs: every 100th goes to a queue with room for two, one to a queue that does not
    // exist; the rest are closures and runs of a registered kind.
    let mut runs = Vec::new();
    for i in 0..500 {
        let spec = RunSpec::new("bulk").param("i", i);
        let job: Box<dyn FnOnce() -> (RunSpec, BoxedJob)> = match i {
            7 => Box::new(move || (spec.queue("nowhere"), held())),
            i if i % 100 == 0 => Box::new(move || (spec.queue("small"), held())),
            _ => Box::new(move || (spec, held())),
        };
        runs.push(job());
    }
    let answers = rw.submit_many_durable(runs).await;
    assert_eq!(answers.len(), 500);
    let accepted: Vec<RunId> = answers.iter().filter_map(|a| a.clone().ok()).collect();
    for (i, answer) in answers.iter().enumerate() {
        match i {
            7 => assert_eq!(answer, &Err(SubmitError::UnknownQueue("nowhere".into()))),
            // Two fit in the small queue (its first two), the rest are refused.
            200 | 300 | 400 => assert!(
                matches!(answer, Err(SubmitError::QueueFull { .. })),
                "{i}: {answer:?}"
            ),
            _ => assert!(answer.is_ok(), "{i}: {answer:?}"),
        }
    }
    assert_eq!(accepted.len(), 496);
    // Committed before the answers, in one transaction.
    let committed = writes.lock().clone();
    // The first transaction with any of the batch holds all of it. (Later ones carry starts,
    // and a start recorded before that commit may have been folded into it: a transaction
    // writes each run's last state.)
    let first = committed
        .iter()
        .find(|w| w.iter().any(|id| accepted.contains(id)))
        .expect("the batch was written");
    let missing = accepted.iter().filter(|id| !first.contains(id)).count();
    assert_eq!(
        missing, 0,
        "{missing} runs of the batch came in later transactions"
    );
    // Recorded exactly as single submits are; the refused runs are nowhere.
    let page = rw.list(ListQuery::new().limit(1000)).await.expect("list");
    assert_eq!(page.total, 496);
    let by_kind = rw
        .submit_many_durable([
            (RunSpec::new("k"), Kind("noop")),
            (RunSpec::new("k"), Kind("no-such-kind")),
        ])
        .await;
    assert!(by_kind[0].is_ok());
    assert_eq!(
        by_kind[1],
        Err(SubmitError::UnknownKind("no-such-kind".into()))
    );
    assert_eq!(
        rw.wait(*by_kind[0].as_ref().expect("ok"))
            .await
            .expect("wait")
            .status,
        RunStatus::Completed
    );
    // The held runs end at the drain's deadline.
    let report = rw
        .shutdown(Duration::from_millis(50))
        .await
        .expect("shutdown");
    assert_eq!(report.cancelled_by_drain.len(), 496);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actor_path_submits_a_batch_by_message_and_a_drain_refuses_it_whole() {
    let args = SupervisorArguments {
        queues: vec![("one".into(), QueueConfig::default().max_length(1))],
        ..SupervisorArguments::default()
    };
    let (runs, _) = SupervisorActor::spawn(args).await.expect("spawn");
    let quick = || BoxedJob::new(|_ctx| async { Ok(()) });
    let answers = runs
        .submit_many(vec![
            (RunSpec::new("a").queue("one"), held()),
            (RunSpec::new("b").queue("one"), quick()),
            (RunSpec::new("c"), quick()),
        ])
        .await
        .expect("answered");
    assert!(answers[0].is_ok());
    assert!(
        matches!(answers[1], Err(SubmitError::QueueFull { .. })),
        "{answers:?}"
    );
    let registry = runs.registry().await.expect("registry");
    let c = *answers[2].as_ref().expect("accepted");
    let record = registry.wait(c).await.expect("call").expect("known");
    assert_eq!(record.status, RunStatus::Completed);

    runs.begin_drain(Duration::from_millis(50))
        .await
        .expect("drain");
    let refused = runs
        .submit_many(vec![
            (RunSpec::new("late"), quick()),
            (RunSpec::new("late"), quick()),
        ])
        .await
        .expect("answered");
    assert_eq!(
        refused,
        vec![
            Err(SubmitError::ShuttingDown),
            Err(SubmitError::ShuttingDown)
        ]
    );
    let report = runs
        .shutdown(Duration::from_millis(50))
        .await
        .expect("shutdown");
    // The held run was cancelled by the deadline; nothing of the refused batch exists.
    assert_eq!(
        report.cancelled_by_drain,
        vec![*answers[0].as_ref().expect("ok")]
    );
    assert_eq!((report.completed, report.cancelled), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn an_inline_batch_answers_once_every_run_has_ended() {
    let rw = Runwarden::builder().inline().start().await.expect("start");
    let sleeper = |secs| {
        BoxedJob::new(move |_ctx| async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            Ok(())
        })
    };
    let t0 = tokio::time::Instant::now();
    let answers = rw
        .submit_many_durable([
            (RunSpec::new("a"), sleeper(2)),
            (RunSpec::new("b"), sleeper(5)),
        ])
        .await;
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
    for answer in answers {
        let record = rw.status(answer.expect("accepted")).await.expect("status");
        assert_eq!(record.status, RunStatus::Completed);
    }
    let by_message = rw
        .supervisor()
        .submit_many(vec![(RunSpec::new("c"), sleeper(3))])
        .await
        .expect("answered");
    assert_eq!(t0.elapsed(), Duration::from_secs(8));
    let record = rw
        .status(by_message[0].clone().expect("ok"))
        .await
        .expect("status");
    assert_eq!(record.status, RunStatus::Completed);
    rw.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_answers_wait_for_the_commit_and_a_refused_run_takes_no_place() {
    let store = Counting::default();
    let gate = store.gate.clone();
    let rw = Runwarden::builder()
        .store(store)
        .queue("small", QueueConfig::limited(1).max_length(2))
        .start()
        .await
        .expect("start");
    *gate.0.lock() = true;
    let quick = || BoxedJob::new(|_ctx| async { Ok(()) });
    let retried = runwarden::RetryPolicy::attempts(2);
    let batch = vec![
        // Refused (a retry policy needs a repeatable job): it must not hold a place.
        (RunSpec::new("a").queue("small").retry(retried), quick()),
        (RunSpec::new("b").queue("small"), quick()),
        (RunSpec::new("c").queue("small"), quick()),
    ];
    let answering = tokio::spawn({
        let rw = rw.clone();
        async move { rw.submit_many_durable(batch).await }
    });
    tokio::pin!(answering);
    // While the store holds the commit, no answer comes.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut answering).await;
    assert!(early.is_err(), "answered before the commit: {early:?}");
    *gate.0.lock() = false;
    gate.1.notify_all();
    let answers = answering.await.expect("join");
    assert_eq!(answers[0], Err(SubmitError::NotRepeatable));
    assert!(answers[1].is_ok() && answers[2].is_ok(), "{answers:?}");
    for answer in &answers[1..] {
        let id = *answer.as_ref().expect("accepted");
        assert_eq!(
            rw.wait(id).await.expect("wait").status,
            RunStatus::Completed
        );
    }
    rw.shutdown(Duration::from_secs(1)).await.expect("shutdown");
}
