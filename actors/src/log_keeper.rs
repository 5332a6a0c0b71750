//! The log keeper actor: it owns every run's in-memory ring and log file, and answers reads
//! and live follows.
//!
//! Lines reach it from jobs through [`KeeperSink`] (the [`LogSink`] the supervisor hands its
//! workers and registry), and each run's end from the registry through the same sink, after
//! every line the job logged. Files are `<dir>/<run_id>.log`, one
//! `[timestamp] [LEVEL] [stream] message` line each, appended through buffered writers; they
//! outlive the process.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::{mpsc, oneshot};

use crate::error::NotFound;
use crate::log::{LogConfig, LogEntry, LogSink, read_lines};
use crate::protocol::logs::{
    LogEnd, LogFollow, LogItem, LogMessage, LogStep, ReadAnswer, ReadQuery,
};
use crate::protocol::registry::RegistryMessage;
use crate::run::{RunId, RunStatus};

/// The `LogSink` the supervisor hands its registry and workers: casts to the keeper.
#[derive(Debug)]
pub(crate) struct KeeperSink(pub(crate) ActorRef<LogMessage>);

impl LogSink for KeeperSink {
    fn append(&self, run: RunId, entries: Vec<LogEntry>) {
        let _ = self.0.cast(LogStep::Append(run, entries).into());
    }

    fn run_ended(&self, run: RunId, status: RunStatus) {
        let _ = self.0.cast(LogStep::Ended(run, status).into());
    }

    fn runs_pruned(&self, runs: Vec<RunId>) {
        let _ = self.0.cast(LogStep::Pruned(runs).into());
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

/// The log keeper actor.
#[derive(Debug)]
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
    fn step(&mut self, step: LogStep) {
        match step {
            LogStep::Append(run, entries) => self.append(run, entries),
            LogStep::Ended(run, status) => self.ended(run, status),
            LogStep::Pruned(runs) => self.pruned(runs),
            LogStep::Registry(registry) => self.registry = Some(registry),
        }
    }

    /// Log retention follows run retention. The files are removed off the actor.
    fn pruned(&mut self, runs: Vec<RunId>) {
        let paths: Vec<PathBuf> = runs
            .iter()
            .map(|r| {
                self.close(*r);
                self.runs.remove(r);
                self.config.path_of(*r)
            })
            .collect();
        tokio::task::spawn_blocking(move || {
            for p in paths {
                let _ = std::fs::remove_file(p);
            }
        });
    }

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

    async fn follow(&mut self, run: RunId) -> Result<Follow, NotFound> {
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
                    return Err(NotFound(run));
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
            return Ok(Follow::Ready(LogFollow::finished(backlog)));
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
    LogFollow::finished(backlog)
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
            LogMessage::Internal(step) => state.step(step.0),
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
