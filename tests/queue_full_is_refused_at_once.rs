//! A queue's length bound is backpressure: past it `submit` fails at once with `QueueFull`,
//! and a place comes back as soon as a waiting run starts or is cancelled. Bad submits get
//! typed errors too.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{QueueConfig, RetryPolicy, RunSpec, Runwarden, SubmitError};
use support::{Gate, Started, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_past_the_bound_are_refused_until_a_place_frees() {
    let rw =
        start(Runwarden::builder().queue("small", QueueConfig::limited(1).max_length(3))).await;
    let gate = Gate::new();
    let mut started = Started::new();
    let running = rw
        .submit(RunSpec::new("r").queue("small"), started.held(&gate, 0))
        .expect("first");
    started.expect(1).await; // started: no longer counts against the bound
    let waiting: Vec<_> = (1..=3)
        .map(|t| {
            rw.submit(RunSpec::new("w").queue("small"), started.held(&gate, t))
                .expect("fits")
        })
        .collect();
    let full = rw.submit(RunSpec::new("w").queue("small"), started.held(&gate, 9));
    assert_eq!(
        full,
        Err(SubmitError::QueueFull {
            queue: "small".into()
        })
    );
    // Other queues are not affected.
    let other = rw
        .submit(RunSpec::new("other"), |_| async { Ok(()) })
        .expect("default queue is unbounded");

    rw.cancel(waiting[0]).await.expect("cancel a waiting run");
    let again = rw
        .submit(RunSpec::new("w").queue("small"), started.held(&gate, 4))
        .expect("a place came back");
    assert_eq!(
        rw.submit(RunSpec::new("w").queue("small"), started.held(&gate, 9)),
        Err(SubmitError::QueueFull {
            queue: "small".into()
        })
    );
    rw.set_queue_max_length("small", Some(4))
        .await
        .expect("raise the bound");
    let fourth = rw
        .submit(RunSpec::new("w").queue("small"), started.held(&gate, 5))
        .expect("room again");

    // A registry round trip first: the registry forwards each run to the supervisor before it
    // answers anything after it, so the supervisor's figures below include `fourth`.
    rw.status(fourth).await.expect("recorded");
    let status = rw.supervisor_status().await.expect("status");
    let small = status
        .queues
        .iter()
        .find(|q| q.name == "small")
        .expect("queue");
    assert_eq!(
        (small.queued, small.running, small.admitted_waiting),
        (4, 1, 4)
    );

    gate.open();
    for id in [running, waiting[1], waiting[2], again, fourth, other] {
        within("run", rw.wait(id)).await.expect("wait");
    }
    // The drain returns once every worker has exited, so the figures below are final.
    rw.drain(support::STEP).await.expect("drain");
    let status = rw.supervisor_status().await.expect("status");
    let small = status
        .queues
        .iter()
        .find(|q| q.name == "small")
        .expect("queue");
    assert_eq!(
        (small.queued, small.running, small.admitted_waiting),
        (0, 0, 0)
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_queue_and_a_retried_run_once_job_are_typed_errors() {
    let rw = start(Runwarden::builder()).await;
    assert_eq!(
        rw.submit(RunSpec::new("x").queue("nope"), |_| async { Ok(()) }),
        Err(SubmitError::UnknownQueue("nope".into()))
    );
    assert_eq!(
        rw.submit(
            RunSpec::new("x").retry(RetryPolicy::attempts(3)),
            |_| async { Ok(()) }
        ),
        Err(SubmitError::NotRepeatable)
    );
    assert!(matches!(
        rw.set_queue_limit("nope", Some(1)).await,
        Err(runwarden::Error::UnknownQueue(_))
    ));
    assert_eq!(
        rw.stats().await.expect("stats").total(),
        0,
        "nothing was recorded"
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}
