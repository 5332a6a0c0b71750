//! The registry's writer thread: it owns the [`RunStore`] so the registry never waits on disk.
//!
//! The registry sends every record change to a [`StoreWriter`] thread. The thread takes all
//! the changes waiting for it, writes them in one transaction (group commit), and then tells the
//! registry how far it got (a `Committed` step). The registry holds back the acknowledgements
//! that promise durability (durable submits, terminal statuses reported to waiters and
//! subscribers) until then.

use std::collections::HashMap;
use std::fmt;
use std::sync::mpsc;
use std::thread::JoinHandle;

use ractor::{ActorRef, RpcReplyPort};

use crate::error::{NotFound, StoreError};
use crate::protocol::registry::{RegistryMessage, RegistryStep};
use crate::query::{ListQuery, RunPage};
use crate::run::{RunId, RunRecord};
use crate::store::{RunStore, StoreWrite, StoredState};
use crate::time::Timestamp;

/// Work for the writer thread.
pub(crate) enum StoreOp {
    /// A change, numbered by the registry.
    Write(u64, StoreWrite),
    /// Consecutive changes, the last numbered `u64`, always in one transaction (a batch
    /// submit's records).
    WriteMany(u64, Vec<StoreWrite>),
    /// A read of one record, answered directly to the caller (after every earlier write).
    Get(RunId, RpcReplyPort<Result<RunRecord, NotFound>>),
    /// A listing, answered directly to the caller (after every earlier write).
    List(Box<ListQuery>, RpcReplyPort<RunPage>),
    /// Load the registry's state again (a registry restart), after every earlier write.
    Load(
        usize,
        tokio::sync::oneshot::Sender<Result<StoredState, StoreError>>,
    ),
    /// Find finished runs to prune; the answer goes to the registry as `Prunable`.
    Prunable {
        ended_before: Timestamp,
        keep: usize,
        limit: usize,
    },
}

/// The thread that owns a [`RunStore`]. Dropping it closes its channel; the thread finishes
/// the writes it has and exits, and the drop waits for that.
pub(crate) struct StoreWriter {
    tx: Option<mpsc::Sender<StoreOp>>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreWriter")
    }
}

/// Most writes in one transaction.
const MAX_BATCH: usize = 8192;

impl StoreWriter {
    pub(crate) fn spawn(mut store: Box<dyn RunStore>, registry: ActorRef<RegistryMessage>) -> Self {
        let (tx, rx) = mpsc::channel::<StoreOp>();
        let thread = std::thread::Builder::new()
            .name("runwarden-store".into())
            .spawn(move || {
                let mut pending: Vec<StoreOp> = Vec::new();
                while let Ok(first) = rx.recv() {
                    pending.push(first);
                    // Group commit: everything already waiting goes into one transaction.
                    while pending.len() < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(op) => pending.push(op),
                            Err(_) => break,
                        }
                    }
                    run_batch(store.as_mut(), &registry, std::mem::take(&mut pending));
                }
            })
            .ok();
        StoreWriter {
            tx: Some(tx),
            thread,
        }
    }

    pub(crate) fn send(&self, op: StoreOp) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(op).is_ok())
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Applies one batch in order: consecutive writes become one transaction (the last write of a
/// run wins within it), and reads run after the writes before them.
fn run_batch(store: &mut dyn RunStore, registry: &ActorRef<RegistryMessage>, ops: Vec<StoreOp>) {
    let mut writes: Vec<StoreWrite> = Vec::new();
    let mut last_seq = None;
    let flush =
        |store: &mut dyn RunStore, writes: &mut Vec<StoreWrite>, last_seq: &mut Option<u64>| {
            let Some(seq) = last_seq.take() else {
                return;
            };
            let batch = coalesce(std::mem::take(writes));
            let result = store.write(&batch);
            if let Err(e) = &result {
                tracing::error!(error = %e, writes = batch.len(), "store write failed");
            }
            let _ = registry.cast(RegistryStep::Committed(seq, result.err()).into());
        };
    for op in ops {
        match op {
            StoreOp::Write(seq, w) => {
                writes.push(w);
                last_seq = Some(seq);
            }
            StoreOp::WriteMany(seq, ws) => {
                writes.extend(ws);
                last_seq = Some(seq);
            }
            StoreOp::Get(id, reply) => {
                flush(store, &mut writes, &mut last_seq);
                let answer = match store.get(id) {
                    Ok(Some(r)) => Ok(r),
                    _ => Err(NotFound(id)),
                };
                let _ = reply.send(answer);
            }
            StoreOp::List(q, reply) => {
                flush(store, &mut writes, &mut last_seq);
                let page = store.list(&q).unwrap_or(RunPage {
                    runs: Vec::new(),
                    total: 0,
                });
                let _ = reply.send(page);
            }
            StoreOp::Load(window, reply) => {
                flush(store, &mut writes, &mut last_seq);
                let _ = reply.send(crate::store::load_with_dependencies(store, window));
            }
            StoreOp::Prunable {
                ended_before,
                keep,
                limit,
            } => {
                flush(store, &mut writes, &mut last_seq);
                if let Ok(ids) = store.prunable(ended_before, keep, limit) {
                    let _ = registry.cast(RegistryStep::Prunable(ids).into());
                }
            }
        }
    }
    flush(store, &mut writes, &mut last_seq);
}

/// Keeps only the last write of each run, in the order of those last writes.
fn coalesce(writes: Vec<StoreWrite>) -> Vec<StoreWrite> {
    let id = |w: &StoreWrite| match w {
        StoreWrite::Put(r) => r.id,
        StoreWrite::Delete(id) => *id,
    };
    let mut last: HashMap<RunId, usize> = HashMap::with_capacity(writes.len());
    for (i, w) in writes.iter().enumerate() {
        last.insert(id(w), i);
    }
    writes
        .into_iter()
        .enumerate()
        .filter(|(i, w)| last.get(&id(w)) == Some(i))
        .map(|(_, w)| w)
        .collect()
}
