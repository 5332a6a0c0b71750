//! The `RunStore` seam works with its in-memory implementation too: durable submits are
//! acknowledged after the writer thread's commit, and finished runs outside the memory window
//! are answered from the store.
#[path = "support/helpers.rs"]
mod support;

use std::time::Duration;

use runwarden::{ListQuery, MemoryStore, Retention, RunSpec, RunStatus, Runwarden};
use support::{start, within};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_backs_the_registry_through_the_seam() {
    let retention = Retention {
        memory_window: 3,
        every: Duration::from_secs(3600),
        ..Retention::default()
    };
    let rw = start(
        Runwarden::builder()
            .store(MemoryStore::default())
            .retention(retention),
    )
    .await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = rw
            .request(RunSpec::new("m").param("i", i), |_| async { Ok(()) })
            .durable()
            .send()
            .await
            .expect("durable submit");
        ids.push(id);
    }
    for id in &ids {
        assert_eq!(
            within("run", rw.wait(*id)).await.expect("wait").status,
            RunStatus::Completed
        );
    }
    // Only 3 finished runs stay in memory; the first comes back from the store.
    assert_eq!(rw.status(ids[0]).await.expect("from the store").id, ids[0]);
    let page = rw.list(ListQuery::new().limit(100)).await.expect("list");
    assert_eq!(page.total, 20);
    assert_eq!(page.runs.last().expect("oldest").id, ids[0]);
    rw.shutdown(support::STEP).await.expect("shutdown");
}
