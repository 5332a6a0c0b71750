//! Opening a store decides what the file is on a read-only connection, before it writes a byte
//! or changes a pragma: an empty file becomes a store, a store is opened with its records
//! intact, and another application's database, a store of a newer schema and garbage are each
//! refused with a typed error naming the path — their bytes exactly as before, and nothing of
//! runwarden's (WAL, shared memory, lock file) left beside them.
#[path = "support/helpers.rs"]
mod support;

use std::path::{Path, PathBuf};

use runwarden::{SCHEMA_VERSION, SqliteStore, StoreError};
use support::TempDir;

/// The file's length and a digest of its bytes, and which of its companion files exist.
fn snapshot(path: &Path) -> (usize, u64, Vec<bool>) {
    let companions = ["-wal", "-shm", "-journal", ".lock"]
        .iter()
        .map(|suffix| {
            let mut p = path.as_os_str().to_owned();
            p.push(suffix);
            PathBuf::from(p).exists()
        })
        .collect();
    let bytes = std::fs::read(path).expect("read the file");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&bytes, &mut h);
    (bytes.len(), std::hash::Hasher::finish(&h), companions)
}

fn table_rows(path: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

/// Another application's database: its own tables and rows, in the given journal mode.
fn foreign(path: &Path, journal: &str, tables: &[&str]) {
    let conn = rusqlite::Connection::open(path).expect("create foreign db");
    let mode: String = conn
        .query_row(&format!("PRAGMA journal_mode = {journal}"), [], |r| {
            r.get(0)
        })
        .expect("journal mode");
    assert_eq!(mode, journal.to_lowercase());
    for t in tables {
        conn.execute_batch(&format!(
            "CREATE TABLE {t} (id INTEGER PRIMARY KEY, name TEXT);
             INSERT INTO {t}(name) VALUES ('alice'), ('bob');"
        ))
        .expect("foreign table");
    }
    if journal.eq_ignore_ascii_case("wal") {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
    }
}

fn assert_refused_untouched(path: &Path, check: impl Fn(&StoreError) -> bool) {
    let before = snapshot(path);
    let e = SqliteStore::open(path).expect_err("refused");
    assert!(check(&e), "{}: unexpected error {e:?}", path.display());
    assert!(
        e.to_string().contains(&path.display().to_string()),
        "the error names the path: {e}"
    );
    assert_eq!(
        snapshot(path),
        before,
        "{} was changed (length, digest, -wal/-shm/-journal/.lock present)",
        path.display()
    );
}

#[test]
fn foreign_databases_newer_stores_and_garbage_are_refused_byte_for_byte() {
    let dir = TempDir::new("foreign");

    // Another application's database, in each journal mode an application may use.
    for journal in ["DELETE", "WAL"] {
        // Odd characters in the name, which an SQLite URI must encode.
        let path = dir.0.join(format!("app {journal} ?#%.db"));
        foreign(&path, journal, &["customers", "orders"]);
        assert_refused_untouched(&path, |e| {
            matches!(e, StoreError::Foreign { path: p, found }
                if p == &path && found.contains("customers") && found.contains("orders"))
        });
        assert_eq!(table_rows(&path, "customers"), 2);
    }

    // One whose only table happens to share a name with ours is still not ours.
    let runs_named = dir.0.join("runs-named.db");
    foreign(&runs_named, "DELETE", &["runs"]);
    assert_refused_untouched(
        &runs_named,
        |e| matches!(e, StoreError::Foreign { found, .. } if found.contains("runs")),
    );

    // A store written by a newer runwarden.
    let newer = dir.0.join("newer.db");
    drop(SqliteStore::open(&newer).expect("create"));
    {
        let conn = rusqlite::Connection::open(&newer).expect("raw open");
        conn.execute("INSERT INTO schema_version(version) VALUES (99)", [])
            .expect("bump");
    }
    assert_refused_untouched(
        &newer,
        |e| matches!(e, StoreError::NewerSchema { found: 99, supported, .. } if *supported == SCHEMA_VERSION),
    );

    // Garbage, with and without SQLite's magic header.
    let garbage = dir.0.join("garbage.db");
    std::fs::write(&garbage, b"not a database at all, just text\n".repeat(100)).expect("write");
    assert_refused_untouched(&garbage, |e| matches!(e, StoreError::Corrupt { .. }));
    let fake = dir.0.join("fake-header.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend((0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&fake, &bytes).expect("write");
    assert_refused_untouched(&fake, |e| matches!(e, StoreError::Corrupt { .. }));
}

#[test]
fn an_empty_file_becomes_a_store_and_a_store_keeps_its_records() {
    let dir = TempDir::new("accepted");

    let empty = dir.0.join("empty.db");
    std::fs::write(&empty, b"").expect("create an empty file");
    drop(SqliteStore::open(&empty).expect("an empty file becomes a store"));
    assert_eq!(table_rows(&empty, "schema_version"), 1);
    assert_eq!(table_rows(&empty, "runs"), 0);

    // A store with records: opened again, nothing of it is lost.
    let store = dir.0.join("store.db");
    drop(SqliteStore::open(&store).expect("create"));
    {
        let conn = rusqlite::Connection::open(&store).expect("raw open");
        conn.execute(
            "INSERT INTO runs(id, status, label, finished_at, record) VALUES ('x', 'completed', 'l', 1, '{}')",
            [],
        )
        .expect("a row");
    }
    drop(SqliteStore::open(&store).expect("a store opens again"));
    assert_eq!(table_rows(&store, "runs"), 1);
    assert_eq!(table_rows(&store, "schema_version"), 1);
}
