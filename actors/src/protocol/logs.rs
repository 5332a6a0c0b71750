//! The log keeper's protocol: what anyone may ask it (read, follow, flush), the steps only
//! runwarden sends it (lines, ends, pruned runs), its reply types, and [`LogsRef`].

use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, RpcReplyPort};
use tokio::sync::{mpsc, oneshot};

use crate::error::{CallError, NotFound, ask};
use crate::log::{LogConfig, LogEntry, read_lines};
use crate::protocol::registry::{DEFAULT_CALL_TIMEOUT, RegistryMessage};
use crate::run::{RunId, RunStatus};
use crate::time::Timestamp;

/// Messages the log keeper handles. Public requests answer from the keeper's memory or point
/// at the run's log file; lines and ends arrive only as internal steps ([`LogInternal`]).
#[derive(Debug)]
pub enum LogMessage {
    /// The lines a query asks for: from memory when they are all there, else the run's log
    /// file (flushed first) for the caller to read off the keeper's thread.
    Read(RunId, ReadQuery, RpcReplyPort<ReadAnswer>),
    /// A live follow of a run's log ([`LogFollow`]); `NotFound` for a run neither the keeper,
    /// the registry nor the log directory knows.
    Follow(RunId, RpcReplyPort<Result<LogFollow, NotFound>>),
    /// Writes every buffered line to its file, then answers.
    Flush(RpcReplyPort<()>),
    /// One of runwarden's own steps; only this crate can build one.
    Internal(LogInternal),
}

/// An internal step of the log keeper, sealed like [`crate::RegistryInternal`].
///
/// ```compile_fail
/// // A user cannot build one: the field is private to the crate.
/// let _ = runwarden_actors::LogInternal(());
/// ```
#[derive(Debug)]
pub struct LogInternal(pub(crate) LogStep);

/// The log keeper's internal steps.
#[derive(Debug)]
pub(crate) enum LogStep {
    /// From a run's job (through the supervisor's `LogSink`): lines, in order.
    Append(RunId, Vec<LogEntry>),
    /// From the registry, after it recorded the run's end: every line came before.
    Ended(RunId, RunStatus),
    /// From the registry's retention: these runs' logs go too.
    Pruned(Vec<RunId>),
    /// From the supervisor, right after the registry exists and before any caller can read a
    /// log: the registry to ask about runs the keeper has no lines of.
    Registry(ActorRef<RegistryMessage>),
}

impl From<LogStep> for LogMessage {
    fn from(step: LogStep) -> Self {
        LogMessage::Internal(LogInternal(step))
    }
}

/// What a [`LogMessage::Read`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadQuery {
    /// The last this many lines.
    Tail(usize),
    /// The lines at or after this time.
    Since(Timestamp),
}

/// The answer to a [`LogMessage::Read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAnswer {
    /// The lines, all served from memory.
    Lines(Vec<LogEntry>),
    /// Not all in memory: read this (flushed) file.
    File(PathBuf),
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
    pub(crate) backlog: VecDeque<LogItem>,
    pub(crate) lines: Option<mpsc::Receiver<LogEntry>>,
    pub(crate) end: Option<oneshot::Receiver<LogEnd>>,
    pub(crate) done: bool,
}

impl LogFollow {
    /// A follow that has everything already: `backlog`, and nothing after it.
    pub(crate) fn finished(backlog: VecDeque<LogItem>) -> Self {
        LogFollow {
            backlog,
            lines: None,
            end: None,
            done: true,
        }
    }

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

/// Why a log could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogError {
    /// The log keeper did not answer.
    Call(CallError),
    /// The run's log file could not be read.
    Io(String),
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Call(e) => e.fmt(f),
            LogError::Io(e) => write!(f, "could not read a log file: {e}"),
        }
    }
}

impl std::error::Error for LogError {}

impl From<CallError> for LogError {
    fn from(e: CallError) -> Self {
        LogError::Call(e)
    }
}

/// The log keeper's address with a named method per request, as
/// [`crate::SupervisorRef::logs`] returns it when the supervisor keeps logs
/// ([`crate::SupervisorArguments::logs`]). Each request waits at most the ref's timeout (5 s
/// unless set with [`LogsRef::with_timeout`]); files are read off the actors' threads.
#[derive(Debug, Clone)]
pub struct LogsRef {
    actor: ActorRef<LogMessage>,
    config: Arc<LogConfig>,
    timeout: Duration,
}

impl LogsRef {
    pub(crate) fn new(actor: ActorRef<LogMessage>, config: Arc<LogConfig>) -> Self {
        LogsRef {
            actor,
            config,
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// The same keeper, with requests waiting at most `timeout` for an answer.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The keeper's address, to send it messages directly.
    #[must_use]
    pub fn actor(&self) -> &ActorRef<LogMessage> {
        &self.actor
    }

    /// How logs are kept.
    #[must_use]
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The last `n` lines of a run's log (memory first, else its file: also after a
    /// restart). A run that logged nothing has no lines.
    ///
    /// # Errors
    /// [`LogError::Call`] if the keeper does not answer, [`LogError::Io`] if the file cannot
    /// be read.
    pub async fn tail(&self, id: RunId, n: usize) -> Result<Vec<LogEntry>, LogError> {
        self.read(id, ReadQuery::Tail(n)).await
    }

    /// The lines of a run's log at or after `since`.
    ///
    /// # Errors
    /// As [`LogsRef::tail`].
    pub async fn since(&self, id: RunId, since: Timestamp) -> Result<Vec<LogEntry>, LogError> {
        self.read(id, ReadQuery::Since(since)).await
    }

    async fn read(&self, id: RunId, q: ReadQuery) -> Result<Vec<LogEntry>, LogError> {
        let answer = ask(
            &self.actor,
            |r| LogMessage::Read(id, q, r),
            Some(self.timeout),
            "read_log",
        )
        .await?;
        let path = match answer {
            ReadAnswer::Lines(lines) => return Ok(lines),
            ReadAnswer::File(path) => path,
        };
        let tail = match q {
            ReadQuery::Tail(n) => Some(n),
            ReadQuery::Since(_) => None,
        };
        let read = tokio::task::spawn_blocking(move || read_lines(&path, tail))
            .await
            .map_err(|e| LogError::Io(e.to_string()))?;
        match read {
            Ok(mut lines) => {
                if let ReadQuery::Since(t) = q {
                    lines.retain(|e| e.at >= t);
                }
                Ok(lines)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(LogError::Io(e.to_string())),
        }
    }

    /// The path of a run's log file, with everything logged so far written to it (for a
    /// download). The file may not exist for a run that logged nothing.
    ///
    /// # Errors
    /// If the keeper does not answer.
    pub async fn file(&self, id: RunId) -> Result<PathBuf, CallError> {
        ask(
            &self.actor,
            LogMessage::Flush,
            Some(self.timeout),
            "log_file",
        )
        .await?;
        Ok(self.config.path_of(id))
    }

    /// Follows a run's log live: the lines so far, new lines, then always the run's end (see
    /// [`LogFollow`]).
    ///
    /// # Errors
    /// The outer error if the keeper does not answer; the inner `NotFound` for a run nobody
    /// knows.
    pub async fn follow(&self, id: RunId) -> Result<Result<LogFollow, NotFound>, CallError> {
        ask(
            &self.actor,
            |r| LogMessage::Follow(id, r),
            Some(self.timeout),
            "follow_log",
        )
        .await
    }
}
