//! Runs waiting for a slot start by priority (higher first), then in submission order.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{QueueConfig, RunSpec, Runwarden};
use support::{Gate, Started, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_runs_start_by_priority_then_fifo() {
    let rw = start(Runwarden::builder().queue("one", QueueConfig::limited(1))).await;
    let gate = Gate::new();
    let mut started = Started::new();
    let blocker = rw
        .submit(
            RunSpec::new("blocker").queue("one").priority(100),
            started.held(&gate, 999),
        )
        .expect("submit");
    assert_eq!(started.expect(1).await, vec![999]);

    // (tag, priority) in submission order.
    let plan = [
        (0, 0),
        (1, 5),
        (2, 5),
        (3, 1),
        (4, 5),
        (5, 0),
        (6, -3),
        (7, 1),
    ];
    let mut ids = Vec::new();
    for (tag, priority) in plan {
        let tx = started.tx.clone();
        ids.push(
            rw.submit(
                RunSpec::new("waiter").queue("one").priority(priority),
                move |_| async move {
                    let _ = tx.send(tag);
                    Ok(())
                },
            )
            .expect("submit"),
        );
    }
    // A run in another queue is not held back by the busy one.
    let tx = started.tx.clone();
    let elsewhere = rw
        .submit(RunSpec::new("elsewhere"), move |_| async move {
            let _ = tx.send(42);
            Ok(())
        })
        .expect("submit");
    assert_eq!(started.expect(1).await, vec![42]);
    within("elsewhere", rw.wait(elsewhere)).await.expect("wait");

    gate.open();
    assert_eq!(started.expect(8).await, vec![1, 2, 4, 3, 7, 0, 5, 6]);
    for id in ids.into_iter().chain([blocker]) {
        within("run", rw.wait(id)).await.expect("wait");
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}
