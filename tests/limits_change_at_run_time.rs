//! Raising a limit while runs wait starts them at once; lowering it lets running runs finish
//! and holds new ones back.
#[path = "support/helpers.rs"]
mod support;

use runwarden::{RunSpec, Runwarden};
use support::{Gate, Started, start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_and_lowering_the_limit_takes_effect_at_once() {
    let rw = start(Runwarden::builder().max_concurrent(1)).await;
    let gates: Vec<Gate> = (0..6).map(|_| Gate::new()).collect();
    let mut started = Started::new();
    let mut ids = Vec::new();
    for (i, g) in gates.iter().enumerate() {
        ids.push(
            rw.submit(RunSpec::new("held"), started.held(g, i as u64))
                .expect("submit"),
        );
    }
    assert_eq!(started.expect(1).await, vec![0]);
    rw.set_global_limit(Some(3)).await.expect("raise");
    assert_eq!(sorted(started.expect(2).await), vec![1, 2]);

    rw.set_global_limit(Some(1)).await.expect("lower");
    gates[0].open();
    gates[1].open();
    within("two runs to end", async {
        rw.wait(ids[0]).await.expect("wait");
        rw.wait(ids[1]).await.expect("wait");
    })
    .await;
    // Once their workers have exited, the one still running (run 2) fills the lowered limit:
    // nothing new starts.
    let status = within("the two workers to exit", async {
        loop {
            let status = rw.supervisor_status().await.expect("status");
            if status.running == 1 {
                return status;
            }
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(status.queued, 3);
    assert!(
        started.rx_try().is_err(),
        "a run started above the lowered limit"
    );
    gates[2].open();
    assert_eq!(started.expect(1).await, vec![3]);

    rw.set_global_limit(None).await.expect("unlimited");
    assert_eq!(sorted(started.expect(2).await), vec![4, 5]);
    for g in &gates {
        g.open();
    }
    for id in ids {
        within("run", rw.wait(id)).await.expect("wait");
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}

/// Runs started together announce themselves in any order.
fn sorted(mut tags: Vec<u64>) -> Vec<u64> {
    tags.sort();
    tags
}
