//! A damaged, foreign, truncated or too-new store file, an unwritable location, a store already
//! open elsewhere and a full disk are each a typed error naming the path — never a panic, and
//! never a silent loss of the existing history (defect 8 of the original).
#[path = "support/helpers.rs"]
mod support;

use runwarden::{
    RunSpec, RunStatus, Runwarden, SqliteOptions, SqliteStore, StoreError, SubmitError,
};
use support::{TempDir, within};

fn is_corrupt(e: &StoreError, path: &std::path::Path) -> bool {
    matches!(e, StoreError::Corrupt { path: p, .. } if p == path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_and_foreign_files_are_refused_and_left_untouched() {
    let dir = TempDir::new("bad");
    // A text file.
    let text = dir.0.join("notes.db");
    std::fs::write(&text, "these are my notes, not a database").expect("write");
    let e = SqliteStore::open(&text).expect_err("a text file is refused");
    assert!(is_corrupt(&e, &text), "{e}");
    assert!(e.to_string().contains("notes.db"));
    assert_eq!(
        std::fs::read_to_string(&text).expect("read"),
        "these are my notes, not a database"
    );

    // A real store, then truncated to half.
    let db = dir.0.join("runs.db");
    {
        let store = SqliteStore::open(&db).expect("create");
        let rw = Runwarden::builder()
            .store(store)
            .start()
            .await
            .expect("start");
        for _ in 0..200 {
            rw.request(RunSpec::new("x").param("pad", "p".repeat(500)), |_| async {
                Ok(())
            })
            .durable()
            .send()
            .await
            .expect("submit");
        }
        rw.shutdown(support::STEP).await.expect("shutdown");
    }
    // Fold the WAL into the main file so truncating it really cuts records.
    {
        let conn = rusqlite::Connection::open(&db).expect("raw open");
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .expect("checkpoint");
    }
    let full = std::fs::read(&db).expect("read");
    std::fs::write(&db, &full[..full.len() / 2]).expect("truncate");
    let before = std::fs::read(&db).expect("read");
    let e = SqliteStore::open(&db).expect_err("a truncated store is refused");
    assert!(is_corrupt(&e, &db), "{e}");
    assert_eq!(
        std::fs::read(&db).expect("read"),
        before,
        "the damaged file was changed"
    );

    // Garbage after a valid header.
    let garbage = dir.0.join("garbage.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend((0..8192u32).map(|i| (i * 7 % 251) as u8));
    std::fs::write(&garbage, &bytes).expect("write");
    let e = SqliteStore::open(&garbage).expect_err("garbage is refused");
    assert!(is_corrupt(&e, &garbage), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_from_a_newer_runwarden_is_refused() {
    let dir = TempDir::new("newer");
    let db = dir.0.join("runs.db");
    drop(SqliteStore::open(&db).expect("create"));
    {
        let conn = rusqlite::Connection::open(&db).expect("raw open");
        conn.execute("INSERT INTO schema_version(version) VALUES (99)", [])
            .expect("bump");
    }
    match SqliteStore::open(&db) {
        Err(StoreError::NewerSchema {
            found: 99,
            supported,
            path,
        }) => {
            assert_eq!(supported, runwarden::SCHEMA_VERSION);
            assert_eq!(path, db);
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_opener_and_an_unwritable_place_are_refused() {
    let dir = TempDir::new("locked");
    let db = dir.0.join("runs.db");
    let first = SqliteStore::open(&db).expect("first opener");
    match SqliteStore::open(&db) {
        Err(StoreError::Locked { path }) => assert_eq!(path, db),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(first);
    drop(SqliteStore::open(&db).expect("free again once the first is closed"));

    // A place nothing can be created in (a read-only file system, or a missing directory).
    for place in ["/sys/runwarden-test.db", "/nonexistent-dir/runs.db"] {
        match SqliteStore::open(place) {
            Err(StoreError::Open { path, cause }) => {
                assert_eq!(path, std::path::Path::new(place));
                assert!(!cause.is_empty());
            }
            other => panic!("{place}: expected Open, got {other:?}"),
        }
    }
}

// A full disk (the store's size limit) makes durable submits fail with a typed error; the
// runs accepted before are intact and the ones refused are not reported as durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_store_fails_durable_submits_with_a_typed_error() {
    let dir = TempDir::new("full");
    let db = dir.0.join("runs.db");
    let options = SqliteOptions {
        max_pages: Some(40),
        ..Default::default()
    };
    let store = SqliteStore::open_with(&db, options).expect("open");
    let rw = Runwarden::builder()
        .store(store)
        .start()
        .await
        .expect("start");
    let mut durable = Vec::new();
    let mut full = None;
    for i in 0..5000 {
        let spec = RunSpec::new("fill")
            .param("pad", "x".repeat(2000))
            .param("i", i);
        match rw
            .request(spec, |_| async { Ok(()) })
            .durable()
            .send()
            .await
        {
            Ok(id) => durable.push(id),
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    match full {
        Some(SubmitError::Store(StoreError::Full { path })) => assert_eq!(path, db),
        other => panic!("expected a full store, got {other:?}"),
    }
    assert!(!durable.is_empty());
    rw.shutdown(support::STEP).await.expect("shutdown");

    let store = SqliteStore::open(&db).expect("reopen");
    let rw = Runwarden::builder()
        .store(store)
        .start()
        .await
        .expect("start");
    for id in &durable {
        let r = within("status", rw.status(*id))
            .await
            .expect("durable run kept");
        assert!(matches!(
            r.status,
            RunStatus::Queued | RunStatus::Running | RunStatus::Completed | RunStatus::Failed
        ));
    }
    rw.shutdown(support::STEP).await.expect("shutdown");
}
