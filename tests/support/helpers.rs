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

    /// A job that announces `tag` when it starts, then waits for `gate` and completes: the
    /// usual way these tests hold a run busy.
    pub fn held(
        &self,
        gate: &Gate,
        tag: u64,
    ) -> impl FnOnce(
        runwarden::RunContext,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<(), runwarden::JobError>> + Send>,
    > + Send
    + 'static {
        let (gate, tx) = (gate.clone(), self.tx.clone());
        move |_| {
            Box::pin(async move {
                let _ = tx.send(tag);
                gate.wait().await;
                Ok(())
            })
        }
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

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("runwarden-test-{tag}-{}", uuid_like()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    /// Writes an executable shell script into the directory.
    pub fn script(&self, name: &str, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uuid_like() -> String {
    runwarden::RunId::new().to_string()
}

/// Direct child processes of this test process that are still alive (not zombies).
pub fn live_children() -> Vec<i32> {
    let mut pids = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return pids;
    };
    for t in tasks.flatten() {
        let children = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        pids.extend(
            children
                .split_whitespace()
                .filter_map(|p| p.parse::<i32>().ok()),
        );
    }
    pids.retain(|p| pid_alive(*p));
    pids
}

/// Whether a process exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Serialises the tests of one file that check for leftover child processes: the check sees
/// every child of the test process, so another test's running program would show up.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::OnceLock<tokio::sync::Mutex<()>> = std::sync::OnceLock::new();
    LOCK.get_or_init(|| tokio::sync::Mutex::new(()))
        .lock()
        .await
}
