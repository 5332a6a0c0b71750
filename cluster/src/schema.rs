//! The cluster's tables, and the migrations that make them.
//!
//! `runwarden_cluster_schema` holds one row: the version this database is at. A node migrates
//! under a transaction-scoped advisory lock, so nodes starting together migrate once; a
//! database at a newer version than this build knows is refused, never changed.

use tokio_postgres::Client;

use crate::error::ClusterError;

/// The schema version this build writes.
pub const SCHEMA_VERSION: i32 = 5;

/// The advisory lock key under which nodes migrate (any fixed number; "rwmigr" in ASCII).
const MIGRATION_LOCK: i64 = 0x7277_6d69_6772;

const V1: &str = r"
CREATE TABLE rw_nodes (
    id           uuid PRIMARY KEY,
    name         text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    -- Set once, by a rescue (the node stopped heartbeating) or a node's own clean exit.
    dead_at      timestamptz,
    left_cleanly boolean NOT NULL DEFAULT false
);

-- One row: the leader's lease. Whoever holds an unexpired lease runs rescue.
CREATE TABLE rw_leader (
    id         int PRIMARY KEY CHECK (id = 1),
    node_id    uuid NOT NULL,
    expires_at timestamptz NOT NULL
);

CREATE TABLE rw_runs (
    id               uuid PRIMARY KEY,
    kind             text NOT NULL,
    label            text NOT NULL,
    queue            text NOT NULL,
    priority         int NOT NULL DEFAULT 0,
    params           jsonb NOT NULL,
    status           text NOT NULL
                     CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled')),
    attempt          int NOT NULL DEFAULT 0,
    max_attempts     int NOT NULL CHECK (max_attempts >= 1),
    -- May this run be executed again after the node running it is lost?
    rerun_on_loss    boolean NOT NULL,
    timeout_ms       bigint,
    -- The lease: the node that owns this run while it is running, and the claim's epoch.
    node_id          uuid,
    lease_epoch      bigint NOT NULL DEFAULT 0,
    -- Which of its node's claims took it (the node counts its claims): a node compares the
    -- runs it holds here with the claims it has had answers to.
    claim_seq        bigint,
    -- The node that ran (or is running) the latest attempt.
    ran_on           text,
    ran_on_id        uuid,
    run_after        timestamptz NOT NULL DEFAULT now(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    result           jsonb,
    error_kind       text,
    error            text,
    cancel_requested boolean NOT NULL DEFAULT false,
    rescues          int NOT NULL DEFAULT 0,
    idempotency_key  text,
    CHECK ((status = 'running') = (node_id IS NOT NULL))
);

CREATE INDEX rw_runs_claim ON rw_runs (priority DESC, id) WHERE status = 'queued';
CREATE INDEX rw_runs_owner ON rw_runs (node_id) WHERE status = 'running';
CREATE INDEX rw_runs_status ON rw_runs (status, id);
-- An idempotency key is held by one run that has not ended, cluster-wide.
CREATE UNIQUE INDEX rw_runs_key ON rw_runs (idempotency_key)
    WHERE idempotency_key IS NOT NULL AND status IN ('queued', 'running');
";

/// v2: every status a run takes, appended to `rw_events` in the transaction that sets it (by
/// statement-level triggers, so every path that changes a status records it, an application's
/// own transaction included). An event carries its transaction's id: a reader takes only
/// events of transactions older than every transaction still running (the snapshot's
/// `xmin`), so no event can later appear before one it has read, and a reader's position
/// (`tx`, `seq`) is exact. Retention deletes old events and finished runs by time.
const V2: &str = r"
CREATE TABLE rw_events (
    tx         bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    at         timestamptz NOT NULL DEFAULT now(),
    run_id     uuid NOT NULL,
    status     text NOT NULL,
    attempt    int NOT NULL,
    node       text,
    error_kind text,
    PRIMARY KEY (tx, seq)
);
CREATE INDEX rw_events_at ON rw_events (at);
CREATE INDEX rw_runs_finished ON rw_runs (finished_at) WHERE finished_at IS NOT NULL;

CREATE FUNCTION rw_runs_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rw_events (run_id, status, attempt, node, error_kind)
    SELECT id, status, attempt, ran_on, error_kind FROM rw_new ORDER BY id;
    RETURN NULL;
END $$;
CREATE TRIGGER rw_runs_events_on_insert AFTER INSERT ON rw_runs
    REFERENCING NEW TABLE AS rw_new
    FOR EACH STATEMENT EXECUTE FUNCTION rw_runs_inserted();

CREATE FUNCTION rw_runs_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rw_events (run_id, status, attempt, node, error_kind)
    SELECT n.id, n.status, n.attempt, n.ran_on, n.error_kind
    FROM rw_new n JOIN rw_old o ON o.id = n.id
    WHERE n.status <> o.status
    ORDER BY n.id;
    RETURN NULL;
END $$;
CREATE TRIGGER rw_runs_events_on_update AFTER UPDATE ON rw_runs
    REFERENCING OLD TABLE AS rw_old NEW TABLE AS rw_new
    FOR EACH STATEMENT EXECUTE FUNCTION rw_runs_updated();
";

/// v3: queues limited cluster-wide (at most `global_limit` of a queue's runs running at once,
/// over every node), and the index that counts a queue's running runs.
const V3: &str = r"
CREATE TABLE rw_queues (
    queue        text PRIMARY KEY,
    global_limit int NOT NULL CHECK (global_limit >= 0)
);
CREATE INDEX rw_runs_running_queue ON rw_runs (queue) WHERE status = 'running';
";

/// v4: cron schedules, fired by the leader: one run per fire time for the whole cluster.
const V4: &str = r"
CREATE TABLE rw_schedules (
    name          text PRIMARY KEY,
    cron          text NOT NULL,
    time_zone     text NOT NULL,
    overlap       text NOT NULL CHECK (overlap IN ('skip', 'queue_one', 'allow')),
    missed        text NOT NULL CHECK (missed IN ('skip', 'run_once')),
    deadline_ms   bigint NOT NULL,
    -- The run each fire submits.
    kind          text NOT NULL,
    label         text,
    queue         text NOT NULL,
    priority      int NOT NULL,
    params        jsonb NOT NULL,
    max_attempts  int NOT NULL,
    rerun_on_loss boolean NOT NULL,
    timeout_ms    bigint,
    -- The next fire time; 'infinity' once the expression never fires again.
    next_at       timestamptz NOT NULL,
    fires         bigint NOT NULL DEFAULT 0,
    skipped       bigint NOT NULL DEFAULT 0,
    missed_fires  bigint NOT NULL DEFAULT 0,
    last_fired_at timestamptz,
    last_run_id   uuid
);
CREATE INDEX rw_schedules_due ON rw_schedules (next_at);
";

/// v5: the last lines of each attempt's log, copied by the node that ran it in the commit of
/// the attempt's outcome, so any node can serve them; deleted with their run.
const V5: &str = r"
CREATE TABLE rw_logs (
    run_id  uuid NOT NULL REFERENCES rw_runs (id) ON DELETE CASCADE,
    attempt int NOT NULL,
    seq     int NOT NULL,
    at      timestamptz NOT NULL,
    level   text NOT NULL,
    stream  text NOT NULL,
    message text NOT NULL,
    PRIMARY KEY (run_id, attempt, seq)
);
";

/// Brings the database to [`SCHEMA_VERSION`].
///
/// # Errors
/// [`ClusterError::NewerSchema`] for a database a newer build has migrated, or the database's
/// own error.
pub(crate) async fn migrate(client: &mut Client) -> Result<(), ClusterError> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS runwarden_cluster_schema (version int NOT NULL)")
        .await?;
    let version: i32 = match tx
        .query_opt("SELECT version FROM runwarden_cluster_schema", &[])
        .await?
    {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO runwarden_cluster_schema VALUES (0)", &[])
                .await?;
            0
        }
    };
    if version > SCHEMA_VERSION {
        return Err(ClusterError::NewerSchema {
            found: version,
            known: SCHEMA_VERSION,
        });
    }
    if version < 1 {
        tx.batch_execute(V1).await?;
    }
    if version < 2 {
        tx.batch_execute(V2).await?;
    }
    if version < 3 {
        tx.batch_execute(V3).await?;
    }
    if version < 4 {
        tx.batch_execute(V4).await?;
    }
    if version < 5 {
        tx.batch_execute(V5).await?;
    }
    tx.execute(
        "UPDATE runwarden_cluster_schema SET version = $1",
        &[&SCHEMA_VERSION],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Migrations, against a real PostgreSQL: an old database is brought up keeping its rows;
    //! a newer one is refused and left as it was.
    use super::*;
    use crate::postgres::TempPostgres;

    #[tokio::test(flavor = "multi_thread")]
    async fn a_v1_database_is_migrated_and_a_newer_one_refused() {
        let pg = TempPostgres::start().expect("PostgreSQL");
        let (mut client, conn) = tokio_postgres::connect(pg.url(), tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        // A database as a v1 build left it, with a run in it.
        client
            .batch_execute(&format!(
                "CREATE TABLE runwarden_cluster_schema (version int NOT NULL);
                 INSERT INTO runwarden_cluster_schema VALUES (1);
                 {V1}
                 INSERT INTO rw_runs (id, kind, label, queue, params, status, max_attempts,
                                      rerun_on_loss)
                 VALUES ('00000000-0000-7000-8000-000000000001', 'k', 'k', 'default', '{{}}',
                         'queued', 1, true);"
            ))
            .await
            .expect("a v1 database");
        migrate(&mut client).await.expect("migrate");
        let version: i32 = client
            .query_one("SELECT version FROM runwarden_cluster_schema", &[])
            .await
            .expect("version")
            .get(0);
        assert_eq!(version, SCHEMA_VERSION);
        let runs: i64 = client
            .query_one("SELECT count(*) FROM rw_runs", &[])
            .await
            .expect("count")
            .get(0);
        assert_eq!(runs, 1, "the run was kept");
        for table in ["rw_events", "rw_queues", "rw_schedules", "rw_logs"] {
            client
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .unwrap_or_else(|e| panic!("{table}: {e}"));
        }
        // Migrating again changes nothing.
        migrate(&mut client).await.expect("migrate again");

        client
            .execute("UPDATE runwarden_cluster_schema SET version = 99", &[])
            .await
            .expect("a newer build's mark");
        match migrate(&mut client).await {
            Err(ClusterError::NewerSchema { found: 99, known }) => {
                assert_eq!(known, SCHEMA_VERSION);
            }
            other => panic!("{other:?}"),
        }
        let version: i32 = client
            .query_one("SELECT version FROM runwarden_cluster_schema", &[])
            .await
            .expect("version")
            .get(0);
        assert_eq!(version, 99, "the newer database was changed");
    }
}
