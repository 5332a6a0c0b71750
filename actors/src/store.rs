//! The `RunStore` seam: where the registry's records are made durable, and the writer thread
//! that keeps the registry from ever waiting on disk.
//!
//! The registry sends every record change to a [`StoreWriter`] thread. The thread takes all
//! the changes waiting for it, writes them in one transaction (group commit), and then tells the
//! registry how far it got ([`RegistryMessage::Committed`]). The registry holds back the
//! acknowledgements that promise durability (durable submits, terminal statuses reported to
//! waiters and subscribers) until then.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use ractor::{ActorRef, RpcReplyPort};

use crate::error::NotFound;
use crate::registry::{ListQuery, RegistryMessage, RunPage};
use crate::run::{RunId, RunRecord, RunStatus};
use crate::time::Timestamp;

/// Why a store could not be opened, read or written. Every variant names the store's path.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The file exists but is not a database, or is damaged. Nothing was changed.
    Corrupt {
        /// The store.
        path: PathBuf,
        /// What the engine said.
        cause: String,
    },
    /// The store was written by a newer runwarden. Nothing was changed.
    NewerSchema {
        /// The store.
        path: PathBuf,
        /// Its schema version.
        found: u32,
        /// The newest this build understands.
        supported: u32,
    },
    /// Another process has the store open.
    Locked {
        /// The store.
        path: PathBuf,
    },
    /// The store cannot be created or opened (missing or read-only directory, permissions).
    Open {
        /// The store.
        path: PathBuf,
        /// What the system said.
        cause: String,
    },
    /// The disk (or the store's size limit) is full; the write was not made.
    Full {
        /// The store.
        path: PathBuf,
    },
    /// Any other I/O or engine failure.
    Io {
        /// The store.
        path: PathBuf,
        /// What failed.
        cause: String,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Corrupt { path, cause } => {
                write!(
                    f,
                    "store {} is not a valid runwarden database: {cause}",
                    path.display()
                )
            }
            StoreError::NewerSchema {
                path,
                found,
                supported,
            } => write!(
                f,
                "store {} has schema version {found}; this build supports up to {supported}",
                path.display()
            ),
            StoreError::Locked { path } => {
                write!(f, "store {} is open in another process", path.display())
            }
            StoreError::Open { path, cause } => {
                write!(f, "cannot open store {}: {cause}", path.display())
            }
            StoreError::Full { path } => write!(f, "store {} is full", path.display()),
            StoreError::Io { path, cause } => {
                write!(f, "store {} failed: {cause}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {}

/// One change to write.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreWrite {
    /// Insert or replace this record.
    Put(Box<RunRecord>),
    /// Forget this run (retention).
    Delete(RunId),
}

/// What a store holds when it is opened.
#[derive(Debug, Default)]
pub struct StoredState {
    /// Every active record, and the most recent finished ones (the registry's memory window).
    pub records: Vec<RunRecord>,
    /// Records per status in the whole store, by [`RunStatus::index`].
    pub counts: [usize; 5],
}

/// Durable storage of run records. Implementations are driven from one dedicated thread, so
/// they may block; they never run on the actors' threads.
pub trait RunStore: Send + 'static {
    /// Loads what the registry needs at start: all active records and the `window` most
    /// recent finished ones, and per-status counts.
    fn load(&mut self, window: usize) -> Result<StoredState, StoreError>;
    /// Applies the writes in one transaction: all or none.
    fn write(&mut self, batch: &[StoreWrite]) -> Result<(), StoreError>;
    /// One record.
    fn get(&mut self, id: RunId) -> Result<Option<RunRecord>, StoreError>;
    /// A page of records, newest first, with the true total.
    fn list(&mut self, query: &ListQuery) -> Result<RunPage, StoreError>;
    /// Ids of finished runs to prune: those that ended before `ended_before`, and beyond the
    /// newest `keep` finished ones; at most `limit`, oldest first.
    fn prunable(
        &mut self,
        ended_before: Timestamp,
        keep: usize,
        limit: usize,
    ) -> Result<Vec<(RunId, RunStatus)>, StoreError>;
}

impl fmt::Debug for dyn RunStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RunStore")
    }
}

/// A store kept in this process's memory: the seam's reference implementation (and what tests
/// use to exercise the durable paths without a disk). Lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: std::collections::BTreeMap<RunId, RunRecord>,
}

impl RunStore for MemoryStore {
    fn load(&mut self, window: usize) -> Result<StoredState, StoreError> {
        let mut counts = [0; 5];
        for r in self.records.values() {
            counts[r.status.index()] += 1;
        }
        let mut finished = 0;
        let records = self
            .records
            .values()
            .rev()
            .filter(|r| {
                let keep = r.status.is_active() || finished < window;
                finished += usize::from(r.status.is_terminal());
                keep
            })
            .cloned()
            .collect();
        Ok(StoredState { records, counts })
    }

    fn write(&mut self, batch: &[StoreWrite]) -> Result<(), StoreError> {
        for w in batch {
            match w {
                StoreWrite::Put(r) => {
                    self.records.insert(r.id, (**r).clone());
                }
                StoreWrite::Delete(id) => {
                    self.records.remove(id);
                }
            }
        }
        Ok(())
    }

    fn get(&mut self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.records.get(&id).cloned())
    }

    fn list(&mut self, q: &ListQuery) -> Result<RunPage, StoreError> {
        let matching = self.records.values().rev().filter(|r| {
            q.status.is_none_or(|s| r.status == s)
                && q.label.as_deref().is_none_or(|l| r.label == l)
                && q.queue.as_deref().is_none_or(|qu| r.queue == qu)
        });
        let mut total = 0;
        let mut runs = Vec::new();
        for r in matching {
            if total >= q.offset && runs.len() < q.limit {
                runs.push(r.clone());
            }
            total += 1;
        }
        Ok(RunPage { runs, total })
    }

    fn prunable(
        &mut self,
        ended_before: Timestamp,
        keep: usize,
        limit: usize,
    ) -> Result<Vec<(RunId, RunStatus)>, StoreError> {
        let finished: Vec<&RunRecord> = self
            .records
            .values()
            .filter(|r| r.status.is_terminal())
            .collect();
        let excess = finished.len().saturating_sub(keep);
        Ok(finished
            .iter()
            .enumerate()
            .filter(|(i, r)| *i < excess || r.finished_at.is_some_and(|t| t < ended_before))
            .map(|(_, r)| (r.id, r.status))
            .take(limit)
            .collect())
    }
}

/// Work for the writer thread.
pub(crate) enum StoreOp {
    /// A change, numbered by the registry.
    Write(u64, StoreWrite),
    /// A read of one record, answered directly to the caller (after every earlier write).
    Get(RunId, RpcReplyPort<Result<RunRecord, NotFound>>),
    /// A listing, answered directly to the caller (after every earlier write).
    List(ListQuery, RpcReplyPort<RunPage>),
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
            let _ = registry.cast(RegistryMessage::Committed(seq, result.err()));
        };
    for op in ops {
        match op {
            StoreOp::Write(seq, w) => {
                writes.push(w);
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
                let _ = reply.send(store.load(window));
            }
            StoreOp::Prunable {
                ended_before,
                keep,
                limit,
            } => {
                flush(store, &mut writes, &mut last_seq);
                if let Ok(ids) = store.prunable(ended_before, keep, limit) {
                    let _ = registry.cast(RegistryMessage::Prunable(ids));
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
