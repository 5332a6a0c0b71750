//! Run logs: the entry type and its file format, how logs are kept ([`LogConfig`]), and the
//! [`LogSink`] seam through which jobs' log lines and runs' ends reach the log keeper.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::run::{RunId, RunStatus};
use crate::time::Timestamp;

/// How serious a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// Diagnostic detail.
    Debug,
    /// Normal output.
    Info,
    /// Something looks wrong.
    Warning,
    /// Something failed.
    Error,
    /// Something failed badly.
    Critical,
}

impl LogLevel {
    /// The upper-case name used in log files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "DEBUG",
            LogLevel::Info => "INFO",
            LogLevel::Warning => "WARNING",
            LogLevel::Error => "ERROR",
            LogLevel::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogLevel {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "DEBUG" => LogLevel::Debug,
            "INFO" => LogLevel::Info,
            "WARNING" => LogLevel::Warning,
            "ERROR" => LogLevel::Error,
            "CRITICAL" => LogLevel::Critical,
            _ => return Err(()),
        })
    }
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// A process run's standard output.
    Stdout,
    /// A process run's standard error.
    Stderr,
    /// The job itself, through [`crate::RunContext::log`].
    Job,
}

impl LogStream {
    /// The lower-case name used in log files.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
            LogStream::Job => "job",
        }
    }
}

impl FromStr for LogStream {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "stdout" => LogStream::Stdout,
            "stderr" => LogStream::Stderr,
            "job" => LogStream::Job,
            _ => return Err(()),
        })
    }
}

/// One line of a run's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When the line was captured.
    pub at: Timestamp,
    /// Its level.
    pub level: LogLevel,
    /// Where it came from.
    pub stream: LogStream,
    /// The text, without its line ending.
    pub message: String,
    /// Bytes of the line that were dropped because it was longer than the capture limit
    /// (0: the line is whole). The text then ends with a marker saying the same.
    #[serde(default)]
    pub cut_bytes: u64,
}

impl LogEntry {
    /// A whole line logged now.
    pub fn new(level: LogLevel, stream: LogStream, message: impl Into<String>) -> Self {
        LogEntry {
            at: Timestamp::now(),
            level,
            stream,
            message: message.into(),
            cut_bytes: 0,
        }
    }
}

impl fmt::Display for LogEntry {
    /// `[timestamp] [LEVEL] [stream] message`, the log file's line format; a cut line's
    /// stream field is `[stream cut=N]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] [{}] [{}",
            self.at,
            self.level,
            self.stream.as_str()
        )?;
        if self.cut_bytes > 0 {
            write!(f, " cut={}", self.cut_bytes)?;
        }
        write!(f, "] {}", self.message)
    }
}

impl FromStr for LogEntry {
    type Err = ();

    /// Parses a line written by `Display`.
    fn from_str(line: &str) -> Result<Self, ()> {
        let mut rest = line;
        let mut field = || -> Result<&str, ()> {
            let inner = rest.strip_prefix('[').ok_or(())?;
            let end = inner.find("] ").ok_or(())?;
            let value = &inner[..end];
            rest = &inner[end + 2..];
            Ok(value)
        };
        let at = field()?.parse().map_err(|_| ())?;
        let level = field()?.parse()?;
        let stream_field = field()?;
        let (stream, cut_bytes) = match stream_field.split_once(" cut=") {
            Some((stream, cut)) => (stream.parse()?, cut.parse().map_err(|_| ())?),
            None => (stream_field.parse()?, 0),
        };
        Ok(LogEntry {
            at,
            level,
            stream,
            message: rest.to_owned(),
            cut_bytes,
        })
    }
}

/// How a run's log is kept: set it in [`crate::SupervisorArguments::logs`] and the
/// supervisor starts a log keeper, reached through [`crate::LogsRef`].
///
/// # Examples
///
/// ```
/// use runwarden_actors::{LogConfig, RunId};
///
/// let config = LogConfig::new("/var/log/myapp/runs");
/// let id = RunId::new();
/// assert_eq!(config.path_of(id).parent(), Some(config.dir.as_path()));
/// assert_eq!(config.ring_lines, 10_000);
/// ```
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

    /// The log file of a run: `<dir>/<run_id>.log`.
    #[must_use]
    pub fn path_of(&self, run: RunId) -> PathBuf {
        self.dir.join(format!("{run}.log"))
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

/// Where jobs' log lines and runs' ends go: the log keeper the supervisor starts (see
/// [`LogConfig`]), or a sink of one's own for a hand-spawned [`crate::RegistryActor`]. Every
/// method must return at once (send a message, never wait or do I/O).
pub trait LogSink: Send + Sync + 'static {
    /// Lines logged by a run's job, in order. Called from the job's task.
    fn append(&self, run: RunId, entries: Vec<LogEntry>);
    /// The run reached its terminal status. Called by the registry after it applied the
    /// status, so every line the job logged was appended before.
    fn run_ended(&self, run: RunId, status: RunStatus);
    /// Retention forgot these finished runs: their logs go too.
    fn runs_pruned(&self, runs: Vec<RunId>) {
        let _ = runs;
    }
}

impl fmt::Debug for dyn LogSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogSink")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_round_trips_through_its_file_format() {
        let e = LogEntry {
            at: Timestamp::from_unix_micros(1_709_210_096_789_012),
            level: LogLevel::Warning,
            stream: LogStream::Stderr,
            message: "disk [almost] full".into(),
            cut_bytes: 0,
        };
        let line = e.to_string();
        assert_eq!(
            line,
            "[2024-02-29T12:34:56.789012Z] [WARNING] [stderr] disk [almost] full"
        );
        assert_eq!(line.parse::<LogEntry>(), Ok(e.clone()));
        assert!("garbage".parse::<LogEntry>().is_err());
        let cut = LogEntry {
            cut_bytes: 49_934_464,
            ..e
        };
        let line = cut.to_string();
        assert_eq!(
            line,
            "[2024-02-29T12:34:56.789012Z] [WARNING] [stderr cut=49934464] disk [almost] full"
        );
        assert_eq!(line.parse::<LogEntry>(), Ok(cut));
    }
}
