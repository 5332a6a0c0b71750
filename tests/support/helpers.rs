//! Helpers shared by the behaviour tests: gates that hold jobs busy, start signals, and a
//! timeout wrapper, so no test sleeps to "wait until" something.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::time::Duration;

use runwarden::{Runwarden, RunwardenBuilder};
use tokio::sync::{mpsc, watch};

/// How long any single awaited step may take before the test fails with a message.
pub const STEP: Duration = Duration::from_secs(20);

/// Awaits `fut`, failing the test with `what` if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A gate jobs can wait on; `open` releases every waiter, now and later.
#[derive(Clone)]
pub struct Gate {
    tx: watch::Sender<bool>,
}

impl Gate {
    pub fn new() -> Self {
        Gate {
            tx: watch::channel(false).0,
        }
    }

    pub fn open(&self) {
        self.tx.send_replace(true);
    }

    pub async fn wait(&self) {
        let mut rx = self.tx.subscribe();
        let _ = rx.wait_for(|open| *open).await;
    }
}

/// A channel on which jobs announce that they have started.
pub struct Started {
    pub tx: mpsc::UnboundedSender<u64>,
    rx: mpsc::UnboundedReceiver<u64>,
}

impl Started {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Started { tx, rx }
    }

    /// A start announcement already sent, if any (never waits).
    pub fn rx_try(&mut self) -> Result<u64, mpsc::error::TryRecvError> {
        self.rx.try_recv()
    }

    /// Waits for `n` start announcements and returns their tags.
    pub async fn expect(&mut self, n: usize) -> Vec<u64> {
        let mut tags = Vec::with_capacity(n);
        for _ in 0..n {
            let tag = within("a job to start", self.rx.recv())
                .await
                .expect("start channel closed");
            tags.push(tag);
        }
        tags
    }
}

/// Sends `()` when dropped: proves a job's future was dropped.
pub struct DropSignal(pub Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn start(builder: RunwardenBuilder) -> Runwarden {
    within("runwarden to start", builder.start())
        .await
        .expect("runwarden starts")
}
