//! [`SqliteStore`]: the durable `RunStore`, on SQLite (bundled, so nothing needs installing).
//!
//! One file holds every run record as JSON (its compact form, [`RunRecord::compact`], without
//! absent fields) plus the columns queries filter on. WAL mode with
//! `synchronous = NORMAL`: a committed transaction survives a crash of the process (not of the
//! machine's power; use [`SqliteStore::open_with`] and `full_sync` for that). An exclusive
//! `flock` on `<file>.lock` keeps a second process out. Opening never changes a file it cannot
//! read: a damaged or foreign file, or one from a newer runwarden, is a typed error.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use runwarden_actors::{
    ListQuery, RunId, RunPage, RunRecord, RunStatus, RunStore, StoreError, StoreWrite, StoredState,
    Timestamp,
};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

/// The newest schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 3;

/// Options for [`SqliteStore::open_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteOptions {
    /// `synchronous = FULL`: commits also survive a power loss (slower).
    pub full_sync: bool,
    /// Limit the database to this many pages (4 KiB each), to test a full disk.
    pub max_pages: Option<u64>,
}

/// The durable run store. Open it, then give it to `RunwardenBuilder::store`.
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use runwarden::{RunSpec, Runwarden, SqliteStore};
///
/// # let dir = std::env::temp_dir().join(format!("runwarden-sqlite-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let store = SqliteStore::open(dir.join("runs.db"))?;
/// let rw = Runwarden::builder().store(store).start().await?;
/// let id = rw
///     .request(RunSpec::new("invoice"), |_ctx| async { Ok(()) })
///     .durable()
///     .send()
///     .await?; // committed: it survives a crash of this process from here on
/// rw.wait(id).await?;
/// rw.shutdown(std::time::Duration::from_secs(1)).await?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(())
/// # }
/// ```
pub struct SqliteStore {
    path: PathBuf,
    conn: Connection,
    _lock: Flock<File>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn err(path: &Path, e: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    if let rusqlite::Error::SqliteFailure(f, _) = &e {
        match f.code {
            ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
                return StoreError::Corrupt {
                    path,
                    cause: e.to_string(),
                };
            }
            ErrorCode::DiskFull => return StoreError::Full { path },
            ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied => {
                return StoreError::Open {
                    path,
                    cause: e.to_string(),
                };
            }
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                return StoreError::Locked { path };
            }
            _ => {}
        }
    }
    StoreError::Io {
        path,
        cause: e.to_string(),
    }
}

const TERMINAL: &str = "('completed','failed','cancelled')";

/// A workflow's steps are found by their `workflow` column, through an index of only the runs
/// that are steps. (Schema 2 indexed an expression over the record's JSON instead, which SQLite
/// evaluated by parsing the whole record on every write, for every run.)
const WORKFLOW_INDEX: &str =
    "CREATE INDEX runs_workflow ON runs(workflow) WHERE workflow IS NOT NULL";

/// The tables (and their indexes) a runwarden store holds, or held in an older schema (schema 2
/// had `runs_finished`); SQLite's own are `sqlite_*`.
const OURS: [&str; 6] = [
    "schema_version",
    "runs",
    "runs_status",
    "runs_label",
    "runs_finished",
    "runs_workflow",
];

/// `path` for an SQLite URI: every byte but unreserved ones and `/` percent-encoded.
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decides, on a read-only connection, whether the database at `path` may be opened as a
/// store: sound, and either empty or a runwarden store this build can read.
fn inspect(path: &Path) -> Result<(), StoreError> {
    // With no write-ahead log beside it, everything is in the file itself: read it as
    // immutable, so SQLite creates nothing (a read-only connection to a WAL database would
    // leave `-wal` and `-shm` files behind). With a log, its companions exist already.
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let conn = if Path::new(&wal).exists() {
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
    } else {
        Connection::open_with_flags(
            format!("file:{}?immutable=1", uri_path(path)),
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
        )
    }
    .map_err(|e| err(path, e))?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| err(path, e))?;
    if check != "ok" {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            cause: check,
        });
    }
    let mut names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")
        .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| err(path, e))?;
    if names.is_empty() {
        return Ok(());
    }
    // A store always has its version table (created with the rest, in one transaction).
    let versioned = names.iter().any(|n| n == "schema_version");
    if versioned {
        names.retain(|n| !OURS.contains(&n.as_str()));
    }
    if !names.is_empty() {
        let shown: Vec<&str> = names.iter().take(5).map(String::as_str).collect();
        let more = names.len().saturating_sub(shown.len());
        let mut found = format!("tables and indexes {}", shown.join(", "));
        if more > 0 {
            found.push_str(&format!(" and {more} more"));
        }
        return Err(StoreError::Foreign {
            path: path.to_path_buf(),
            found,
        });
    }
    let version: Option<u32> = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .optional()
        .map_err(|e| err(path, e))?
        .flatten();
    match version {
        Some(found) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}

impl SqliteStore {
    /// Opens (or creates) the store at `path` with the default options.
    ///
    /// # Errors
    /// [`StoreError::Locked`] if another process has it open; [`StoreError::Open`] if it
    /// cannot be created or opened; [`StoreError::Corrupt`] for a file that is not a sound
    /// database; [`StoreError::Foreign`] for another application's database;
    /// [`StoreError::NewerSchema`] for one written by a newer build. Each is decided on a
    /// read-only connection: a refused file is left exactly as it was.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (or creates) the store at `path`.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |cause: String| StoreError::Open {
            path: path.clone(),
            cause,
        };
        let mut lock_path = path.clone().into_os_string();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        // A refused file leaves nothing of ours behind, not even the lock file.
        let lock_is_new = !lock_path.exists();
        let refuse = |e: StoreError| {
            if lock_is_new {
                let _ = std::fs::remove_file(&lock_path);
            }
            e
        };
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| open_err(e.to_string()))?;
        let lock =
            Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
                if errno == nix::errno::Errno::EWOULDBLOCK {
                    StoreError::Locked { path: path.clone() }
                } else {
                    open_err(errno.to_string())
                }
            })?;
        // SQLite would treat some damaged files as new databases and overwrite them; check the
        // header first, so a file that is not ours is reported and left alone.
        if let Ok(mut f) = File::open(&path) {
            let mut header = [0u8; 16];
            let read = f.read(&mut header).map_err(|e| open_err(e.to_string()))?;
            if read > 0 && (read < 16 || &header != b"SQLite format 3\0") {
                return Err(refuse(StoreError::Corrupt {
                    path,
                    cause: "the file is not an SQLite database".into(),
                }));
            }
        }
        // What is in the file is decided read-only, before anything is written or a pragma
        // is changed: only an empty database or one of ours goes on.
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > 0) {
            inspect(&path).map_err(refuse)?;
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
        )
        .map_err(|e| err(&path, e))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| err(&path, e))?;
        if mode != "wal" {
            return Err(open_err(format!("cannot use WAL mode (got {mode})")));
        }
        let sync = if options.full_sync { "FULL" } else { "NORMAL" };
        conn.pragma_update(None, "synchronous", sync)
            .map_err(|e| err(&path, e))?;
        if let Some(pages) = options.max_pages {
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(()))
                .map_err(|e| err(&path, e))?;
        }
        let store = SqliteStore {
            path,
            conn,
            _lock: lock,
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let e = |x| err(&self.path, x);
        self.conn
            .execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
                [],
            )
            .map_err(e)?;
        let found: Option<u32> = self
            .conn
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .optional()
            .map_err(e)?
            .flatten();
        match found {
            Some(v) if v > SCHEMA_VERSION => Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            Some(SCHEMA_VERSION) => Ok(()),
            // Migration 1 or 2 -> 3, in one transaction. Schema 2 allowed records that are
            // `waiting` and name a workflow, which a schema 1 build cannot read; schema 3 keeps
            // the workflow in a column of its own, which a schema 2 build would not write, and
            // drops the end-time index, which no query searched (retention finds finished runs
            // through the status index). Only workflow steps are rewritten, found through
            // schema 2's index over the JSON (a schema 1 store is read whole).
            Some(_) => self
                .conn
                .execute_batch(&format!(
                    "BEGIN;
                     ALTER TABLE runs ADD COLUMN workflow TEXT;
                     UPDATE runs SET workflow = json_extract(record, '$.workflow')
                         WHERE json_extract(record, '$.workflow') > '';
                     DROP INDEX IF EXISTS runs_workflow;
                     DROP INDEX IF EXISTS runs_finished;
                     {WORKFLOW_INDEX};
                     UPDATE schema_version SET version = 3;
                     COMMIT;"
                ))
                .map_err(e),
            None => {
                // Migration 0 -> 3, in one transaction.
                self.conn
                    .execute_batch(&format!(
                        "BEGIN;
                         CREATE TABLE runs (
                             id TEXT PRIMARY KEY,
                             status TEXT NOT NULL,
                             label TEXT NOT NULL,
                             finished_at INTEGER,
                             record TEXT NOT NULL,
                             workflow TEXT
                         );
                         CREATE INDEX runs_status ON runs(status);
                         CREATE INDEX runs_label ON runs(label);
                         {WORKFLOW_INDEX};
                         INSERT INTO schema_version(version) VALUES (3);
                         COMMIT;"
                    ))
                    .map_err(e)
            }
        }
    }

    /// SQLite's full integrity check: `Ok` when the database is sound.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] with SQLite's report.
    pub fn integrity_check(&self) -> Result<(), StoreError> {
        let report: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(|e| err(&self.path, e))?;
        if report == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt {
                path: self.path.clone(),
                cause: report,
            })
        }
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn decode(&self, json: &str) -> Result<RunRecord, StoreError> {
        serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
            path: self.path.clone(),
            cause: format!("a record does not decode: {e}"),
        })
    }
}

impl RunStore for SqliteStore {
    fn load(&mut self, window: usize) -> Result<StoredState, StoreError> {
        let path = self.path.clone();
        let e = |x| err(&path, x);
        let mut counts = [0usize; RunStatus::COUNT];
        {
            let mut stmt = self
                .conn
                .prepare("SELECT status, count(*) FROM runs GROUP BY status")
                .map_err(e)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .map_err(e)?;
            for row in rows {
                let (status, n) = row.map_err(e)?;
                if let Some(s) = RunStatus::ALL.iter().find(|s| s.as_str() == status) {
                    counts[s.index()] = n as usize;
                }
            }
        }
        let mut records = Vec::new();
        let sql = format!(
            "SELECT record FROM runs WHERE status NOT IN {TERMINAL}
             UNION ALL
             SELECT record FROM (SELECT record FROM runs WHERE status IN {TERMINAL}
                                 ORDER BY id DESC LIMIT ?1)"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(e)?;
        let rows = stmt
            .query_map(params![window as i64], |r| r.get::<_, String>(0))
            .map_err(e)?;
        let mut texts = Vec::new();
        for row in rows {
            texts.push(row.map_err(e)?);
        }
        drop(stmt);
        for t in texts {
            records.push(self.decode(&t)?);
        }
        Ok(StoredState { records, counts })
    }

    fn write(&mut self, batch: &[StoreWrite]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let e = |x| err(&path, x);
        let tx = self.conn.transaction().map_err(e)?;
        {
            // An upsert changes a held row in place: its label and workflow are fixed at
            // submit, so of the indexes only the status one is touched again (a `REPLACE`
            // would delete the row and insert it anew, through every index).
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO runs (id, status, label, finished_at, record, workflow)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (id) DO UPDATE SET status = excluded.status,
                         finished_at = excluded.finished_at, record = excluded.record",
                )
                .map_err(e)?;
            let mut delete = tx
                .prepare_cached("DELETE FROM runs WHERE id = ?1")
                .map_err(e)?;
            // One buffer for every row's JSON, and ids encoded on the stack: a row costs
            // SQLite's work and the serialisation, not allocations.
            let mut json = Vec::with_capacity(1024);
            let (mut id_text, mut workflow_text) = ([0u8; 36], [0u8; 36]);
            for w in batch {
                match w {
                    StoreWrite::Put(r) => {
                        json.clear();
                        serde_json::to_writer(&mut json, &r.compact()).map_err(|x| {
                            StoreError::Io {
                                path: path.clone(),
                                cause: x.to_string(),
                            }
                        })?;
                        // serde_json writes UTF-8 only.
                        let text = std::str::from_utf8(&json).map_err(|x| StoreError::Io {
                            path: path.clone(),
                            cause: x.to_string(),
                        })?;
                        let finished = r.finished_at.map(|t| t.unix_micros() as i64);
                        let workflow = r
                            .workflow
                            .map(|w| &*w.as_uuid().hyphenated().encode_lower(&mut workflow_text));
                        put.execute(params![
                            &*r.id.as_uuid().hyphenated().encode_lower(&mut id_text),
                            r.status.as_str(),
                            r.label,
                            finished,
                            text,
                            workflow,
                        ])
                        .map_err(e)?;
                    }
                    StoreWrite::Delete(id) => {
                        let id = &*id.as_uuid().hyphenated().encode_lower(&mut id_text);
                        delete.execute(params![id]).map_err(e)?;
                    }
                }
            }
        }
        tx.commit().map_err(e)
    }

    fn get(&mut self, id: RunId) -> Result<Option<RunRecord>, StoreError> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT record FROM runs WHERE id = ?1",
                params![id.to_string()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|x| err(&self.path, x))?;
        json.map(|j| self.decode(&j)).transpose()
    }

    fn list(&mut self, q: &ListQuery) -> Result<RunPage, StoreError> {
        use rusqlite::types::Value;
        let path = self.path.clone();
        let e = |x| err(&path, x);
        // Only the filters given are in the statements (a `(?n IS NULL OR column = ?n)` term
        // cannot use an index). The total counts through the status, label and workflow
        // indexes. The page walks the ids newest first and stops once it is full, as a status
        // or label shared by many runs needs (`+column` keeps SQLite from searching that
        // index and then sorting every match); a workflow's few steps are found by its index.
        // Timestamps are written fixed-width (microseconds, UTC), so they compare as text.
        // Each term, and whether the page walks the ids past it rather than searching its index.
        let mut terms: Vec<(&str, bool)> = Vec::new();
        let mut args: Vec<Value> = Vec::new();
        let mut filter = |term, walk, value: Option<Value>| {
            if let Some(v) = value {
                terms.push((term, walk));
                args.push(v);
            }
        };
        let text = |t: Timestamp| Value::Text(t.to_string());
        let micros = |t: Timestamp| Value::Integer(t.unix_micros() as i64);
        let status = q.status.map(|s| Value::Text(s.as_str().to_owned()));
        filter("status = ?", true, status);
        filter("label = ?", true, q.label.clone().map(Value::Text));
        let queue = q.queue.clone().map(Value::Text);
        filter("json_extract(record, '$.queue') = ?", false, queue);
        let kind = q.kind.clone().map(Value::Text);
        filter("json_extract(record, '$.kind') = ?", false, kind);
        let workflow = q.workflow.map(|w| Value::Text(w.to_string()));
        filter("workflow = ?", false, workflow);
        let after = q.created_after.map(text);
        filter("json_extract(record, '$.created_at') >= ?", false, after);
        let before = q.created_before.map(text);
        filter("json_extract(record, '$.created_at') < ?", false, before);
        filter("finished_at >= ?", false, q.finished_after.map(micros));
        filter("finished_at < ?", false, q.finished_before.map(micros));
        let name = q.name.clone().map(Value::Text);
        filter("json_extract(record, '$.name') = ?", false, name);
        if let Some(prefix) = &q.id_prefix {
            terms.push(("substr(id, 1, length(?)) = lower(?)", false));
            args.push(Value::Text(prefix.clone()));
            args.push(Value::Text(prefix.clone()));
        }
        let clause = |page: bool| {
            let terms: Vec<String> = terms
                .iter()
                .map(|&(term, walk)| {
                    if page && walk {
                        format!("+{term}")
                    } else {
                        term.to_owned()
                    }
                })
                .collect();
            if terms.is_empty() {
                String::new()
            } else {
                format!(" WHERE {}", terms.join(" AND "))
            }
        };
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT count(*) FROM runs{}", clause(false)))
            .and_then(|mut stmt| {
                stmt.query_row(rusqlite::params_from_iter(args.iter()), |r| r.get(0))
            })
            .map_err(e)?;
        // The cursor narrows the page, not the total.
        let mut page = clause(true);
        if let Some(after) = q.after {
            page.push_str(if terms.is_empty() { " WHERE" } else { " AND" });
            page.push_str(" id < ?");
            args.push(Value::Text(after.to_string()));
        }
        args.push(Value::Integer(i64::try_from(q.limit).unwrap_or(-1)));
        args.push(Value::Integer(q.offset as i64));
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT record FROM runs{page} ORDER BY id DESC LIMIT ? OFFSET ?"
            ))
            .map_err(e)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), |r| {
                r.get::<_, String>(0)
            })
            .map_err(e)?;
        let mut texts = Vec::new();
        for row in rows {
            texts.push(row.map_err(e)?);
        }
        drop(stmt);
        let runs = texts
            .iter()
            .map(|t| self.decode(t))
            .collect::<Result<_, _>>()?;
        Ok(RunPage {
            runs,
            total: total as usize,
        })
    }

    /// Never a run an active run depends on (its dependent reads its record), so such runs
    /// cannot fill a pass's batch and stall retention.
    fn prunable(
        &mut self,
        ended_before: Timestamp,
        keep: usize,
        limit: usize,
    ) -> Result<Vec<(RunId, RunStatus)>, StoreError> {
        let path = self.path.clone();
        let e = |x| err(&path, x);
        let sql = format!(
            "SELECT id, status FROM runs WHERE status IN {TERMINAL} AND (
                 finished_at < ?1 OR id IN (
                     SELECT id FROM runs WHERE status IN {TERMINAL}
                     ORDER BY id DESC LIMIT -1 OFFSET ?2))
                 AND id NOT IN (
                     SELECT json_extract(d.value, '$.run')
                     FROM runs w, json_each(w.record, '$.depends_on') d
                     WHERE w.status IN ('waiting', 'queued', 'running'))
             ORDER BY id LIMIT ?3"
        );
        let mut stmt = self.conn.prepare_cached(&sql).map_err(e)?;
        let rows = stmt
            .query_map(
                params![ended_before.unix_micros() as i64, keep as i64, limit as i64],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .map_err(e)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, status) = row.map_err(e)?;
            let (Ok(id), Some(status)) = (
                id.parse::<RunId>(),
                RunStatus::ALL.iter().find(|s| s.as_str() == status),
            ) else {
                continue;
            };
            out.push((id, *status));
        }
        Ok(out)
    }
}
