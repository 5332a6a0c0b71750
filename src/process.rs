//! [`ProcessJob`]: an external program as a run.
//!
//! The program runs in its own process group. Its stdout and stderr are read concurrently,
//! line by line, so neither pipe can fill up and stall it; every line goes to the run's log
//! with a level guessed from its text. Cancelling the run (or its time limit, or a drain) sends
//! SIGTERM to the whole group, waits the kill grace period, then sends SIGKILL; and whatever
//! ends the job — even its future being dropped — the group is killed, so no child outlives
//! its run.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use runwarden_actors::{
    BoxedJob, FailureKind, IntoJob, JobError, JobKinds, Json, JsonObject, LogEntry, LogLevel,
    LogStream, RunContext, RunSpec, SubmitError,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

/// Lines longer than this are cut, with a marker saying how much was dropped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// How many lines of stderr make up a failed run's error message.
const STDERR_TAIL_LINES: usize = 20;

/// An external program run as a job. Cheap to clone; each attempt starts the program anew.
///
/// ```no_run
/// # async fn demo(rw: runwarden::Runwarden) -> Result<(), runwarden::SubmitError> {
/// use runwarden::{ProcessJob, RunSpec};
///
/// let job = ProcessJob::new("/opt/modules/resize.sh").arg("--verbose");
/// let spec = RunSpec::new("resize").param("width", 640);
/// // Runs `/opt/modules/resize.sh --verbose --width 640` in `/opt/modules`.
/// let id = rw.submit_job(spec, job)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProcessJob {
    program: PathBuf,
    args: Vec<OsString>,
    params_as_args: bool,
    dir: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    kill_grace: Duration,
}

impl ProcessJob {
    /// Runs `program`. By default: the run's parameters are appended as `--key value`
    /// arguments, the working directory is the program's folder (when the program is given
    /// with a path), the environment is inherited, and the kill grace is 5 s.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        ProcessJob {
            program: program.into(),
            args: Vec::new(),
            params_as_args: true,
            dir: None,
            env: Vec::new(),
            kill_grace: Duration::from_secs(5),
        }
    }

    /// Adds one argument (before the parameters' arguments).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Whether the run's parameters become `--key value` arguments (default `true`).
    #[must_use]
    pub fn params_as_args(mut self, yes: bool) -> Self {
        self.params_as_args = yes;
        self
    }

    /// Runs in `dir` instead of the program's folder.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Sets an environment variable for the program.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long the program may take to exit after SIGTERM before it gets SIGKILL.
    #[must_use]
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.kill_grace = grace;
        self
    }

    /// The `--key value` arguments for `params` (sorted by key; `true` flags become `--key`,
    /// `false` and `null` are left out, arrays repeat the flag, objects are passed as JSON).
    #[must_use]
    pub fn param_args(params: &JsonObject) -> Vec<String> {
        let mut out = Vec::new();
        for (key, value) in params {
            let flag = format!("--{key}");
            let mut push = |v: &Json| match v {
                Json::Bool(true) => out.push(flag.clone()),
                Json::Bool(false) | Json::Null => {}
                Json::String(s) => out.extend([flag.clone(), s.clone()]),
                Json::Int(n) => out.extend([flag.clone(), n.to_string()]),
                Json::UInt(n) => out.extend([flag.clone(), n.to_string()]),
                Json::Float(n) => out.extend([flag.clone(), n.to_string()]),
                other => {
                    let text = serde_json::to_string(other).unwrap_or_default();
                    out.extend([flag.clone(), text]);
                }
            };
            match value {
                Json::Array(items) => items.iter().for_each(&mut push),
                v => push(v),
            }
        }
        out
    }

    /// This program as a repeatable job for a run with these parameters (what a job kind's
    /// factory returns for a program; submitting a `ProcessJob` directly does this itself).
    #[must_use]
    pub fn job_for(self, params: &JsonObject) -> BoxedJob {
        let mut args = self.args.clone();
        if self.params_as_args {
            args.extend(Self::param_args(params).into_iter().map(OsString::from));
        }
        BoxedJob::repeatable(move |ctx| {
            let job = self.clone();
            let args = args.clone();
            async move { job.run(args, ctx).await }
        })
    }

    fn working_dir(&self) -> Option<PathBuf> {
        self.dir.clone().or_else(|| {
            self.program
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(Path::to_path_buf)
        })
    }

    async fn run(&self, args: Vec<OsString>, ctx: RunContext) -> Result<(), JobError> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = self.working_dir() {
            cmd.current_dir(dir);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| {
            JobError::new(
                FailureKind::SpawnFailed,
                format!("could not start {}: {e}", self.program.display()),
            )
        })?;
        let pid = child.id().and_then(|p| i32::try_from(p).ok());
        // From here on, however this future ends, the whole process group is killed.
        let _group = pid.map(GroupGuard);
        ctx.info(format!(
            "started {} (pid {})",
            self.program.display(),
            pid.unwrap_or(-1)
        ));

        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(JobError::new(
                FailureKind::SpawnFailed,
                "no pipes to the child",
            ));
        };
        let mut capture = Capture::new(&ctx);
        let mut out = LineReader::new(stdout);
        let mut err = LineReader::new(stderr);
        let (mut out_open, mut err_open) = (true, true);
        let mut exited = None;
        let mut kill_at: Option<tokio::time::Instant> = None;
        let mut stopping = false;
        let kill = |signal| {
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid), signal);
            }
        };
        // Read both pipes until both close; the program's exit ends anything it left behind
        // in its group (which also closes pipes a background child inherited).
        while out_open || err_open || exited.is_none() {
            tokio::select! {
                line = out.next_line(), if out_open => match line {
                    Ok(Some(l)) => capture.line(LogStream::Stdout, l),
                    _ => out_open = false,
                },
                line = err.next_line(), if err_open => match line {
                    Ok(Some(l)) => capture.line(LogStream::Stderr, l),
                    _ => err_open = false,
                },
                status = child.wait(), if exited.is_none() => {
                    exited = Some(status);
                    kill(Signal::SIGKILL);
                }
                _ = capture.flush_due() => capture.flush(),
                _ = ctx.cancelled(), if !stopping => {
                    stopping = true;
                    kill(Signal::SIGTERM);
                    capture.note(LogLevel::Warning, "stop requested: sent SIGTERM to the process group");
                    kill_at = Some(tokio::time::Instant::now() + self.kill_grace);
                }
                _ = sleep_until(kill_at), if kill_at.is_some() => {
                    kill_at = None;
                    kill(Signal::SIGKILL);
                    capture.note(LogLevel::Error, "still running after the kill grace: sent SIGKILL");
                }
            }
        }
        let Some(status) = exited else {
            return Err(JobError::new(
                FailureKind::Returned,
                "the program's exit was not seen",
            ));
        };
        let status = status
            .map_err(|e| JobError::new(FailureKind::Returned, format!("wait failed: {e}")))?;
        let code = status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            -status.signal().unwrap_or(0)
        });
        ctx.set_exit_code(code);
        capture.note(LogLevel::Info, format!("exited with code {code}"));
        capture.flush();
        if code == 0 {
            Ok(())
        } else {
            let tail = capture.stderr_tail();
            let message = if tail.is_empty() {
                format!("exited with code {code}")
            } else {
                format!("exited with code {code}: {tail}")
            };
            Err(JobError::new(FailureKind::NonZeroExit, message))
        }
    }
}

async fn sleep_until(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Kills the process group when dropped: on normal exit (stragglers), cancel, or the job's
/// future being dropped.
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        // ESRCH (the group is already empty) is the usual, harmless answer.
        let _ = killpg(Pid::from_raw(self.0), Signal::SIGKILL);
    }
}

/// Batches captured lines into the run's log, and keeps the stderr tail.
struct Capture<'a> {
    ctx: &'a RunContext,
    batch: Vec<LogEntry>,
    first_at: Option<tokio::time::Instant>,
    stderr_tail: VecDeque<String>,
}

impl<'a> Capture<'a> {
    const BATCH: usize = 256;
    const LATENCY: Duration = Duration::from_millis(20);

    fn new(ctx: &'a RunContext) -> Self {
        Capture {
            ctx,
            batch: Vec::new(),
            first_at: None,
            stderr_tail: VecDeque::new(),
        }
    }

    fn line(&mut self, stream: LogStream, line: Line) {
        if stream == LogStream::Stderr {
            if self.stderr_tail.len() == STDERR_TAIL_LINES {
                self.stderr_tail.pop_front();
            }
            self.stderr_tail.push_back(line.text.clone());
        }
        let level = guess_level(&line.text, stream);
        let mut entry = LogEntry::new(level, stream, line.text);
        entry.cut_bytes = line.cut_bytes;
        self.push(entry);
    }

    fn note(&mut self, level: LogLevel, message: impl Into<String>) {
        self.push(LogEntry::new(level, LogStream::Job, message));
    }

    fn push(&mut self, e: LogEntry) {
        self.batch.push(e);
        self.first_at.get_or_insert_with(tokio::time::Instant::now);
        if self.batch.len() >= Self::BATCH {
            self.flush();
        }
    }

    /// Resolves when the oldest unsent line has waited long enough.
    async fn flush_due(&self) {
        match self.first_at {
            Some(t) => tokio::time::sleep_until(t + Self::LATENCY).await,
            None => std::future::pending().await,
        }
    }

    fn flush(&mut self) {
        self.first_at = None;
        if !self.batch.is_empty() {
            self.ctx.log_entries(std::mem::take(&mut self.batch));
        }
    }

    fn stderr_tail(&self) -> String {
        self.stderr_tail
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Guesses a line's level from its text, as the original did; otherwise stderr is `ERROR` and
/// stdout `INFO`.
#[must_use]
pub fn guess_level(text: &str, stream: LogStream) -> LogLevel {
    let upper = text.to_uppercase();
    let has = |w: &str| upper.contains(w);
    if has("CRITICAL") || has("FATAL") {
        LogLevel::Critical
    } else if has("ERROR") || has("EXCEPTION") {
        LogLevel::Error
    } else if has("WARNING") || has("WARN") {
        LogLevel::Warning
    } else if has("DEBUG") {
        LogLevel::Debug
    } else if has("INFO") {
        LogLevel::Info
    } else if stream == LogStream::Stderr {
        LogLevel::Error
    } else {
        LogLevel::Info
    }
}

/// Reads lines of any length and encoding: invalid UTF-8 is kept lossily, and a line longer
/// than [`MAX_LINE_BYTES`] is cut with a marker while the rest of it is skipped, so memory
/// stays bounded whatever the program writes.
struct LineReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
    /// Bytes of the current line dropped so far (kept across calls, like `line`).
    dropped: u64,
}

/// A captured line: its text (cut lines end with a marker) and how many bytes were dropped.
#[derive(Debug, PartialEq, Eq)]
struct Line {
    text: String,
    cut_bytes: u64,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(inner: R) -> Self {
        LineReader {
            inner: BufReader::with_capacity(64 * 1024, inner),
            line: Vec::new(),
            dropped: 0,
        }
    }

    /// The next line without its ending, or `None` at end of stream.
    ///
    /// # Cancel safety
    /// Cancel safe: everything read of a line so far, the bytes kept and the count of those
    /// dropped, stays in `self` for the next call.
    async fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                if self.line.is_empty() && self.dropped == 0 {
                    return Ok(None);
                }
                return Ok(Some(self.finish()));
            }
            let (chunk, found) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], Some(i)),
                None => (available, None),
            };
            let room = MAX_LINE_BYTES.saturating_sub(self.line.len());
            let keep = chunk.len().min(room);
            self.line.extend_from_slice(&chunk[..keep]);
            self.dropped += (chunk.len() - keep) as u64;
            let consumed = found.map_or(chunk.len(), |i| i + 1);
            self.inner.consume(consumed);
            if found.is_some() {
                return Ok(Some(self.finish()));
            }
        }
    }

    fn finish(&mut self) -> Line {
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        let mut text = String::from_utf8_lossy(&self.line).into_owned();
        self.line.clear();
        let cut_bytes = std::mem::take(&mut self.dropped);
        if cut_bytes > 0 {
            text.push_str(&format!(" …[line cut: {cut_bytes} more bytes]"));
        }
        Line { text, cut_bytes }
    }
}

/// A program is a kind of job: submitted, its run's parameters become its `--key value`
/// arguments unless the job says otherwise.
impl IntoJob for ProcessJob {
    fn into_job(self, spec: &mut RunSpec, _: &JobKinds) -> Result<BoxedJob, SubmitError> {
        Ok(self.job_for(&spec.params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_guessed_like_the_original() {
        assert_eq!(
            guess_level("Fatal: boom", LogStream::Stdout),
            LogLevel::Critical
        );
        assert_eq!(
            guess_level("an Exception occurred", LogStream::Stdout),
            LogLevel::Error
        );
        assert_eq!(
            guess_level("WARN low disk", LogStream::Stdout),
            LogLevel::Warning
        );
        assert_eq!(
            guess_level("debug: x=1", LogStream::Stderr),
            LogLevel::Debug
        );
        assert_eq!(guess_level("plain", LogStream::Stderr), LogLevel::Error);
        assert_eq!(guess_level("plain", LogStream::Stdout), LogLevel::Info);
    }

    #[test]
    fn params_become_key_value_arguments() {
        let params: JsonObject = [
            ("width".to_owned(), Json::Int(640)),
            ("dry-run".to_owned(), Json::Bool(true)),
            ("quiet".to_owned(), Json::Bool(false)),
            ("tag".to_owned(), Json::Array(vec!["a".into(), "b".into()])),
            ("name".to_owned(), Json::String("x y".into())),
        ]
        .into();
        assert_eq!(
            ProcessJob::param_args(&params),
            [
                "--dry-run",
                "--name",
                "x y",
                "--tag",
                "a",
                "--tag",
                "b",
                "--width",
                "640"
            ]
        );
    }

    #[tokio::test]
    async fn lines_are_cut_and_decoded_lossily() {
        let mut data = vec![b'a'; MAX_LINE_BYTES + 10];
        data.push(b'\n');
        data.extend_from_slice(b"ok\xff\r\nlast");
        let mut r = LineReader::new(&data[..]);
        let long = r.next_line().await.expect("read").expect("line");
        assert_eq!(long.cut_bytes, 10);
        assert!(long.text.starts_with("aaa") && long.text.ends_with("[line cut: 10 more bytes]"));
        let whole = |text: &str| {
            Some(Line {
                text: text.to_owned(),
                cut_bytes: 0,
            })
        };
        assert_eq!(r.next_line().await.expect("read"), whole("ok\u{fffd}"));
        assert_eq!(r.next_line().await.expect("read"), whole("last"));
        assert_eq!(r.next_line().await.expect("read"), None);
    }
}
