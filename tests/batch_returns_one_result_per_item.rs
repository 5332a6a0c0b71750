//! The batch helper runs items as tracked runs with a concurrency limit and returns one
//! result per item, in input order, never failing as a whole.
#[path = "support/helpers.rs"]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use runwarden::{BatchError, ErrorKind, RunSpec, Runwarden};
use support::{start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_come_back_in_input_order_within_the_limit() {
    let rw = start(Runwarden::builder()).await;
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (n, p) = (now.clone(), peak.clone());
    let items: Vec<u32> = (0..40).collect();
    let results = within(
        "batch",
        rw.batch(RunSpec::new("square"), items, 3, move |x, _ctx| {
            let (n, p) = (n.clone(), p.clone());
            async move {
                let k = n.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(k, Ordering::SeqCst);
                tokio::task::yield_now().await;
                n.fetch_sub(1, Ordering::SeqCst);
                match x {
                    x if x % 10 == 7 => panic!("item {x} panicked"),
                    x if x % 5 == 3 => Err(runwarden::JobError::msg(format!("item {x} failed"))),
                    x => Ok(x * x),
                }
            }
        }),
    )
    .await;
    assert_eq!(results.len(), 40);
    for (x, r) in results.iter().enumerate() {
        let x = x as u32;
        match r {
            Ok(v) => assert_eq!(*v, x * x),
            Err(BatchError::Failed(e)) if x % 10 == 7 => assert_eq!(e.kind, ErrorKind::Panicked),
            Err(BatchError::Failed(e)) if x % 5 == 3 => {
                assert_eq!(e.message, format!("item {x} failed"))
            }
            other => panic!("item {x}: {other:?}"),
        }
    }
    assert!(
        peak.load(Ordering::SeqCst) <= 3,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    // Every item was a tracked run.
    assert_eq!(rw.stats().await.expect("stats").total(), 40);
    rw.drain(support::STEP).await.expect("drain");
    // After a drain the batch still answers, item by item.
    let refused = rw
        .batch(
            RunSpec::new("late"),
            vec![1, 2],
            2,
            |x: u32, _| async move { Ok(x) },
        )
        .await;
    assert!(
        refused
            .iter()
            .all(|r| matches!(r, Err(BatchError::NotSubmitted(_))))
    );
    rw.shutdown(support::STEP).await.expect("shutdown");
}
