//! A store written by an older build opens with this one: its schema is migrated in place, in
//! one transaction, and nothing of it is lost. Schema 2 found a workflow's steps through an
//! index over the record's JSON (schema 1 had none); schema 3 keeps the workflow in a column of
//! its own, filled from the records by the migration, so a listing by workflow still finds
//! every step.
#[path = "support/helpers.rs"]
mod support;

use std::path::Path;
use std::time::Duration;

use runwarden::{
    BoxedJob, ListQuery, RunSpec, RunStatus, RunStore, Runwarden, SCHEMA_VERSION, SqliteStore,
    Step, Workflow,
};
use support::{TempDir, within};

/// Turns a current store into the shape an older schema gave it: no `workflow` column, the
/// end-time index, and (schema 2) the workflow index over the record's JSON, which schema 1 did
/// not have.
fn as_schema(path: &Path, version: u32) {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    let json_index = if version == 2 {
        "CREATE INDEX runs_workflow ON runs(json_extract(record, '$.workflow'));"
    } else {
        ""
    };
    conn.execute_batch(&format!(
        "BEGIN;
         DROP INDEX runs_workflow;
         ALTER TABLE runs DROP COLUMN workflow;
         {json_index}
         CREATE INDEX runs_finished ON runs(finished_at);
         UPDATE schema_version SET version = {version};
         COMMIT;"
    ))
    .expect("downgrade");
}

/// The store's own indexes (not SQLite's automatic ones), by name.
fn indexes(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' \
         ORDER BY name",
    )
    .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
    .expect("indexes")
}

fn schema(path: &Path) -> (u32, Vec<String>) {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    let version = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .expect("version");
    let columns = conn
        .prepare("SELECT name FROM pragma_table_info('runs') ORDER BY cid")
        .and_then(|mut q| q.query_map([], |r| r.get(0))?.collect())
        .expect("columns");
    (version, columns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_1_and_2_stores_are_migrated_and_their_workflows_are_found() {
    for version in [1, 2] {
        migrated_from(version).await;
    }
}

async fn migrated_from(version: u32) {
    let dir = TempDir::new("migrate");
    let path = dir.0.join("runs.db");

    // A workflow of three steps, and one run outside any workflow, all finished and committed.
    let rw = Runwarden::builder()
        .store(SqliteStore::open(&path).expect("open"))
        .start()
        .await
        .expect("start");
    let ok = || BoxedJob::new(|_| async { Ok(()) });
    let workflow = Workflow::new()
        .step(Step::new("a", RunSpec::new("a"), ok()))
        .step(Step::new("b", RunSpec::new("b"), ok()).after("a"))
        .step(Step::new("c", RunSpec::new("c"), ok()).after("b"));
    let runs = rw.submit_workflow(workflow).await.expect("workflow");
    let alone = rw
        .request(RunSpec::new("alone"), |_| async { Ok(()) })
        .durable()
        .send()
        .await
        .expect("a run alone");
    within("every run to end", async {
        for id in runs.steps.values().copied().chain([alone]) {
            rw.wait(id).await.expect("wait");
        }
    })
    .await;
    rw.shutdown(Duration::from_secs(10))
        .await
        .expect("shutdown");
    drop(rw);

    as_schema(&path, version);
    assert_eq!(schema(&path).0, version);

    let mut store = SqliteStore::open(&path).expect("an older store opens");
    let (version, columns) = schema(&path);
    assert_eq!(version, SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 3);
    assert!(columns.iter().any(|c| c == "workflow"), "{columns:?}");
    assert_eq!(
        indexes(&path),
        ["runs_label", "runs_status", "runs_workflow"],
        "the end-time index is dropped and the workflow index rebuilt"
    );

    let steps = store
        .list(&ListQuery::new().workflow(runs.id))
        .expect("list by workflow");
    assert_eq!(steps.total, 3);
    let mut found: Vec<_> = steps.runs.iter().map(|r| r.id).collect();
    let mut expected: Vec<_> = runs.steps.values().copied().collect();
    found.sort();
    expected.sort();
    assert_eq!(found, expected);
    assert!(steps.runs.iter().all(|r| r.status == RunStatus::Completed));

    let all = store.list(&ListQuery::new()).expect("list all");
    assert_eq!(all.total, 4, "no record lost by the migration");
    let record = store.get(alone).expect("get").expect("the run alone");
    assert_eq!(
        (record.workflow, record.status),
        (None, RunStatus::Completed)
    );
    store.integrity_check().expect("sound after the migration");

    // Opened again, it is already current: nothing more to migrate.
    drop(store);
    drop(SqliteStore::open(&path).expect("opens again"));
    assert_eq!(schema(&path).0, SCHEMA_VERSION);
}
