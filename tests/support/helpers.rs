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

/// Starts this test binary again as a child process with `env` set (the child side of a crash
/// test), reads the run ids it prints as `id <run id>` lines, and SIGKILLs it once `n` have
/// been printed: no destructor, no flush, no goodbye. Its stdout stays open until it is dead,
/// so it cannot die of a closed pipe first. Returns the ids (fewer than `n` only if the child
/// stopped early) after the child has finished exiting.
pub async fn sigkill_after_ids(env: (&str, &std::path::Path), n: usize) -> Vec<runwarden::RunId> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(&exe)
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let read = tokio::task::spawn_blocking(move || {
        let mut reader = BufReader::new(stdout);
        let mut ids = Vec::new();
        let mut line = String::new();
        while ids.len() < n {
            line.clear();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if let Some(id) = line
                .trim_end()
                .strip_prefix("id ")
                .and_then(|s| s.parse().ok())
            {
                ids.push(id);
            }
        }
        (ids, reader)
    });
    let (ids, reader) = within("the child to print ids", read)
        .await
        .expect("reader");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = child.wait();
    drop(reader);
    ids
}

/// The entry point of a crash test (`harness = false`): the child process when started with
/// `child_env` set (running `child` with its value), otherwise the test `name`, reported in
/// the test harness's words.
pub fn crash_test_main<C, T>(
    child_env: &str,
    child: impl FnOnce(String) -> C,
    name: &str,
    test: impl FnOnce() -> T,
) where
    C: Future<Output = ()>,
    T: Future<Output = ()>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if let Ok(value) = std::env::var(child_env) {
        rt.block_on(child(value));
        return;
    }
    println!("running 1 test");
    rt.block_on(test());
    println!("test {name} ... ok");
    println!();
    println!("test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
}
