//! Run logs: the log keeper actor, which owns every run's in-memory ring and log file, and the
//! queries and live follow built on it.
//!
//! Lines reach the keeper from jobs through [`KeeperSink`] (the actors crate's `LogSink`
//! seam), and each run's end from the registry through the same sink, after every line the
//! job logged. Files are `<log_dir>/<run_id>.log`, one `[timestamp] [LEVEL] [stream] message`
//! line each, appended through buffered writers; they outlive the process.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use runwarden_actors::{LogEntry, LogSink, RegistryMessage, RunId, RunStatus, Timestamp};
use tokio::sync::{mpsc, oneshot};

/// How a run's log is kept.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Where log files go (created if missing).
    pub dir: PathBuf,
    /// Lines kept in memory per run (default 10,000).
    pub ring_lines: usize,
    /// Finished runs whose rings stay in memory (default 1,000); older ones are read from
    /// their files.
    pub keep_finished: usize,
    /// Log files held open at once (default 128); others are reopened on their next line.
    pub max_open_files: usize,
    /// Lines a follower may fall behind before lines are skipped for it (default 4,096).
    pub follow_buffer: usize,
}

impl LogConfig {
    /// Logs under `dir` with the defaults.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LogConfig {
            dir: dir.into(),
            ring_lines: 10_000,
            keep_finished: 1_000,
            max_open_files: 128,
            follow_buffer: 4_096,
        }
    }

    /// The log file of a run.
    #[must_use]
    pub fn path_of(&self, run: RunId) -> PathBuf {
        self.dir.join(format!("{run}.log"))
    }
}

/// How a followed run's log ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogEnd {
    /// The run's terminal status (`None` for a run this instance's registry does not know,
    /// whose log was found on disk).
    pub status: Option<RunStatus>,
    /// Lines skipped for this follower because it fell behind.
    pub missed: u64,
}

/// One item of a [`LogFollow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogItem {
    /// A log line, in order.
    Line(LogEntry),
    /// This many lines were skipped here (the follower fell behind, or they had already left
    /// the in-memory ring when it started).
    Missed(u64),
    /// The run ended; always the last item.
    End(LogEnd),
}

/// A live follow of one run's log: the lines so far, new lines as they come, then always the
/// run's end — also when the run ended before the follow started.
#[derive(Debug)]
pub struct LogFollow {
    backlog: VecDeque<LogItem>,
    lines: Option<mpsc::Receiver<LogEntry>>,
    end: Option<oneshot::Receiver<LogEnd>>,
    done: bool,
}

impl LogFollow {
    /// The next item, or `None` after the end.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn next(&mut self) -> Option<LogItem> {
        if let Some(item) = self.backlog.pop_front() {
            return Some(item);
        }
        if self.done {
            return None;
        }
        if let Some(lines) = &mut self.lines {
            // The keeper drops the sender after the last line, so `None` here means every
            // line it could deliver has been read; the end comes next.
            match lines.recv().await {
                Some(line) => return Some(LogItem::Line(line)),
                None => self.lines = None,
            }
        }
        self.done = true;
        let end = match self.end.take() {
            Some(rx) => rx.await.unwrap_or(LogEnd {
                status: None,
                missed: 0,
            }),
            None => return None,
        };
        if end.missed > 0 {
            self.backlog
                .push_back(LogItem::End(LogEnd { missed: 0, ..end }));
            return Some(LogItem::Missed(end.missed));
        }
        Some(LogItem::End(end))
    }
}

/// Messages the log keeper handles.
pub(crate) enum LogMessage {
    Append(RunId, Vec<LogEntry>),
    Ended(RunId, RunStatus),
    Pruned(Vec<RunId>),
    Read(RunId, ReadQuery, RpcReplyPort<ReadAnswer>),
    Follow(
        RunId,
        RpcReplyPort<Result<LogFollow, runwarden_actors::NotFound>>,
    ),
    Flush(RpcReplyPort<()>),
    /// The registry to ask about runs the keeper has no lines of. Sent once, right after the
    /// supervisor (and so the registry) exists, before any caller can read a log.
    Registry(ActorRef<RegistryMessage>),
}

pub(crate) enum ReadQuery {
    Tail(usize),
    Since(Timestamp),
}

pub(crate) enum ReadAnswer {
    /// Served from memory.
    Lines(Vec<LogEntry>),
    /// Not all in memory: read the (flushed) file.
    File(PathBuf),
}

/// The `LogSink` the supervisor and registry use: casts to the keeper, set once it runs.
#[derive(Debug, Default)]
pub(crate) struct KeeperSink {
    keeper: OnceLock<ActorRef<LogMessage>>,
}

impl KeeperSink {
    pub(crate) fn connect(&self, keeper: ActorRef<LogMessage>) {
        let _ = self.keeper.set(keeper);
    }
}

impl LogSink for KeeperSink {
    fn append(&self, run: RunId, entries: Vec<LogEntry>) {
        if let Some(k) = self.keeper.get() {
            let _ = k.cast(LogMessage::Append(run, entries));
        }
    }

    fn run_ended(&self, run: RunId, status: RunStatus) {
        if let Some(k) = self.keeper.get() {
            let _ = k.cast(LogMessage::Ended(run, status));
        }
    }

    fn runs_pruned(&self, runs: Vec<RunId>) {
        if let Some(k) = self.keeper.get() {
            let _ = k.cast(LogMessage::Pruned(runs));
        }
    }
}

struct Follower {
    lines: mpsc::Sender<LogEntry>,
    missed: u64,
    end: oneshot::Sender<LogEnd>,
}

#[derive(Default)]
struct RunLog {
    ring: VecDeque<LogEntry>,
    /// Lines ever appended (the ring holds the last `ring_lines` of them).
    lines: u64,
    ended: Option<RunStatus>,
    followers: Vec<Follower>,
}

pub(crate) struct LogKeeper;

pub(crate) struct KeeperArgs {
    pub(crate) config: LogConfig,
}

pub(crate) struct KeeperState {
    config: LogConfig,
    registry: Option<ActorRef<RegistryMessage>>,
    runs: HashMap<RunId, RunLog>,
    /// Finished runs in the order they ended, for evicting their rings.
    finished: VecDeque<RunId>,
    writers: HashMap<RunId, BufWriter<File>>,
    /// Open writers, least recently opened first.
    open_order: VecDeque<RunId>,
}

impl KeeperState {
    fn writer(&mut self, run: RunId) -> Option<&mut BufWriter<File>> {
        if !self.writers.contains_key(&run) {
            while self.writers.len() >= self.config.max_open_files.max(1) {
                let Some(old) = self.open_order.pop_front() else {
                    break;
                };
                if let Some(mut w) = self.writers.remove(&old) {
                    let _ = w.flush();
                }
            }
            let path = self.config.path_of(run);
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(f) => {
                    self.writers
                        .insert(run, BufWriter::with_capacity(16 * 1024, f));
                    self.open_order.push_back(run);
                }
                Err(e) => {
                    tracing::error!(run_id = %run, path = %path.display(), error = %e, "cannot open log file");
                    return None;
                }
            }
        }
        self.writers.get_mut(&run)
    }

    fn close(&mut self, run: RunId) {
        if let Some(mut w) = self.writers.remove(&run) {
            if let Err(e) = w.flush() {
                tracing::error!(run_id = %run, error = %e, "cannot flush log file");
            }
            self.open_order.retain(|r| *r != run);
        }
    }

    fn append(&mut self, run: RunId, entries: Vec<LogEntry>) {
        if let Some(w) = self.writer(run) {
            for e in &entries {
                if let Err(err) = writeln!(w, "{e}") {
                    tracing::error!(run_id = %run, error = %err, "cannot write log file");
                    break;
                }
            }
        }
        let ring_lines = self.config.ring_lines.max(1);
        let log = self.runs.entry(run).or_default();
        for e in entries {
            log.lines += 1;
            // A follower that is behind skips lines rather than holding up the keeper; how
            // many it missed comes with the end.
            log.followers.retain_mut(|f| {
                match f.lines.try_send(e.clone()) {
                    Ok(()) => true,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        f.missed += 1;
                        true
                    }
                    // The follower went away.
                    Err(mpsc::error::TrySendError::Closed(_)) => false,
                }
            });
            if log.ring.len() == ring_lines {
                log.ring.pop_front();
            }
            log.ring.push_back(e);
        }
    }

    fn ended(&mut self, run: RunId, status: RunStatus) {
        self.close(run);
        let log = self.runs.entry(run).or_default();
        log.ended = Some(status);
        for f in log.followers.drain(..) {
            // Dropping `f.lines` closes the follower's line channel after the lines sent.
            let _ = f.end.send(LogEnd {
                status: Some(status),
                missed: f.missed,
            });
        }
        self.finished.push_back(run);
        while self.finished.len() > self.config.keep_finished {
            if let Some(old) = self.finished.pop_front() {
                self.runs.remove(&old);
            }
        }
    }

    fn read(&mut self, run: RunId, q: ReadQuery) -> ReadAnswer {
        if let Some(log) = self.runs.get(&run) {
            let complete = log.lines == log.ring.len() as u64;
            match q {
                ReadQuery::Tail(n) if complete || n <= log.ring.len() => {
                    let skip = log.ring.len().saturating_sub(n);
                    return ReadAnswer::Lines(log.ring.iter().skip(skip).cloned().collect());
                }
                ReadQuery::Since(t) if complete || log.ring.front().is_some_and(|e| e.at < t) => {
                    return ReadAnswer::Lines(
                        log.ring.iter().filter(|e| e.at >= t).cloned().collect(),
                    );
                }
                _ => {}
            }
        }
        // Not all in memory: make the file complete, and let the caller read it off-actor.
        if let Some(w) = self.writers.get_mut(&run) {
            let _ = w.flush();
        }
        ReadAnswer::File(self.config.path_of(run))
    }

    async fn follow(&mut self, run: RunId) -> Result<Follow, runwarden_actors::NotFound> {
        let known = self.runs.contains_key(&run);
        if !known {
            // Ask the registry whether the run is still going. It never waits on this actor,
            // and it tells this actor of the run's end only after this answer, so the end
            // cannot slip past the follower registered below.
            let record = match &self.registry {
                Some(registry) => Some(
                    registry
                        .call(
                            |r| RegistryMessage::Get(run, r),
                            Some(Duration::from_secs(5)),
                        )
                        .await,
                ),
                None => None,
            };
            let record = record.ok_or(());
            match record {
                Ok(Ok(CallResult::Success(Ok(r)))) if r.status.is_terminal() => {
                    return Ok(Follow::FromFile(self.config.path_of(run), Some(r.status)));
                }
                Ok(Ok(CallResult::Success(Ok(_)))) => {}
                _ => {
                    if self.config.path_of(run).exists() {
                        return Ok(Follow::FromFile(self.config.path_of(run), None));
                    }
                    return Err(runwarden_actors::NotFound(run));
                }
            }
        }
        let buffer = self.config.follow_buffer.max(1);
        let log = self.runs.entry(run).or_default();
        let mut backlog: VecDeque<LogItem> = VecDeque::new();
        let before_ring = log.lines - log.ring.len() as u64;
        if before_ring > 0 {
            backlog.push_back(LogItem::Missed(before_ring));
        }
        backlog.extend(log.ring.iter().cloned().map(LogItem::Line));
        if let Some(status) = log.ended {
            backlog.push_back(LogItem::End(LogEnd {
                status: Some(status),
                missed: 0,
            }));
            return Ok(Follow::Ready(LogFollow {
                backlog,
                lines: None,
                end: None,
                done: true,
            }));
        }
        let (tx, rx) = mpsc::channel(buffer);
        let (end_tx, end_rx) = oneshot::channel();
        log.followers.push(Follower {
            lines: tx,
            missed: 0,
            end: end_tx,
        });
        Ok(Follow::Ready(LogFollow {
            backlog,
            lines: Some(rx),
            end: Some(end_rx),
            done: false,
        }))
    }
}

/// What a follow needs: ready now, or the file of a run that has ended and left memory.
enum Follow {
    Ready(LogFollow),
    FromFile(PathBuf, Option<RunStatus>),
}

/// A follow of a run that has ended and left memory: its file (read on a blocking thread,
/// not on the keeper's), then its end.
async fn finished_follow(path: PathBuf, status: Option<RunStatus>) -> LogFollow {
    let lines = tokio::task::spawn_blocking(move || read_lines(&path, None))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut backlog: VecDeque<LogItem> = lines.into_iter().map(LogItem::Line).collect();
    backlog.push_back(LogItem::End(LogEnd { status, missed: 0 }));
    LogFollow {
        backlog,
        lines: None,
        end: None,
        done: true,
    }
}

impl Actor for LogKeeper {
    type Msg = LogMessage;
    type State = KeeperState;
    type Arguments = KeeperArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<LogMessage>,
        args: KeeperArgs,
    ) -> Result<KeeperState, ActorProcessingErr> {
        std::fs::create_dir_all(&args.config.dir).map_err(|e| {
            format!(
                "cannot create log directory {}: {e}",
                args.config.dir.display()
            )
        })?;
        Ok(KeeperState {
            config: args.config,
            registry: None,
            runs: HashMap::new(),
            finished: VecDeque::new(),
            writers: HashMap::new(),
            open_order: VecDeque::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<LogMessage>,
        msg: LogMessage,
        state: &mut KeeperState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LogMessage::Append(run, entries) => state.append(run, entries),
            LogMessage::Ended(run, status) => state.ended(run, status),
            LogMessage::Pruned(runs) => {
                // Log retention follows run retention. The files are removed off the actor.
                let paths: Vec<PathBuf> = runs
                    .iter()
                    .map(|r| {
                        state.close(*r);
                        state.runs.remove(r);
                        state.config.path_of(*r)
                    })
                    .collect();
                tokio::task::spawn_blocking(move || {
                    for p in paths {
                        let _ = std::fs::remove_file(p);
                    }
                });
            }
            LogMessage::Read(run, q, reply) => {
                let _ = reply.send(state.read(run, q));
            }
            LogMessage::Follow(run, reply) => match state.follow(run).await {
                Ok(Follow::Ready(f)) => {
                    let _ = reply.send(Ok(f));
                }
                Ok(Follow::FromFile(path, status)) => {
                    tokio::spawn(async move {
                        let _ = reply.send(Ok(finished_follow(path, status).await));
                    });
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            LogMessage::Registry(registry) => state.registry = Some(registry),
            LogMessage::Flush(reply) => {
                for w in state.writers.values_mut() {
                    let _ = w.flush();
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<LogMessage>,
        state: &mut KeeperState,
    ) -> Result<(), ActorProcessingErr> {
        for w in state.writers.values_mut() {
            let _ = w.flush();
        }
        Ok(())
    }
}

/// Reads a log file's lines; with `tail`, only the last `tail` lines (reading backwards from
/// the end, so a large file is not read whole). Lines that do not parse are skipped.
pub(crate) fn read_lines(path: &Path, tail: Option<usize>) -> std::io::Result<Vec<LogEntry>> {
    let mut file = File::open(path)?;
    let text = match tail {
        None => {
            let mut s = String::new();
            file.read_to_string(&mut s)?;
            s
        }
        Some(n) => {
            let len = file.metadata()?.len();
            let mut start = len;
            let mut buf: Vec<u8> = Vec::new();
            const CHUNK: u64 = 64 * 1024;
            while start > 0 && buf.iter().filter(|b| **b == b'\n').count() <= n {
                let from = start.saturating_sub(CHUNK);
                let mut chunk = vec![0; (start - from) as usize];
                file.seek(SeekFrom::Start(from))?;
                file.read_exact(&mut chunk)?;
                chunk.extend_from_slice(&buf);
                buf = chunk;
                start = from;
            }
            String::from_utf8_lossy(&buf).into_owned()
        }
    };
    let mut lines: Vec<LogEntry> = text.lines().filter_map(|l| l.parse().ok()).collect();
    if let Some(n) = tail {
        let skip = lines.len().saturating_sub(n);
        lines.drain(..skip);
    }
    Ok(lines)
}

pub(crate) fn sink() -> Arc<KeeperSink> {
    Arc::new(KeeperSink::default())
}
