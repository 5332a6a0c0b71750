//! Every statement the cluster runs, over a connection pool: [`Db`].
//!
//! The tables are the truth; these functions are the only writers. Each write that takes a
//! run out of `running` is fenced on the lease (node and epoch) and on the node being alive,
//! so a node that lost its lease changes nothing.

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use runwarden::{CronSchedule, LogEntry, MissedFires, Overlap, RunId, RunStatus, Timestamp};
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, NoTls};
use uuid::Uuid;

use crate::error::ClusterError;
use crate::events::{ClusterEvent, EventCursor};
use crate::run::{
    CancelAnswer, ClusterRun, ClusterStats, LogLine, NewRun, Params, QueueLimit, ScheduleInfo,
    parse_error_kind, parse_status,
};

/// The channel a commit that makes a run claimable notifies (a hint: nodes also poll).
pub(crate) const WAKE_CHANNEL: &str = "runwarden_wake";
/// The channel a cancel of a running run notifies, with the run's id (a hint: owners also
/// re-check on every heartbeat).
pub(crate) const CANCEL_CHANNEL: &str = "runwarden_cancel";

/// Most rows one retention pass deletes from each table.
const RETENTION_BATCH: i64 = 10_000;

/// A pool of connections to the cluster's database.
#[derive(Clone)]
pub(crate) struct Db {
    pool: Pool,
    config: tokio_postgres::Config,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

/// A run a node has just claimed.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) id: RunId,
    pub(crate) kind: String,
    pub(crate) params: Params,
    pub(crate) label: String,
    pub(crate) epoch: i64,
    pub(crate) attempt: u32,
    pub(crate) max_attempts: u32,
    pub(crate) timeout: Option<Duration>,
    pub(crate) cancel_requested: bool,
}

/// How a claimed run leaves `running`, as its node reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// A terminal status, with the job's result or the error.
    Ended {
        status: RunStatus,
        result: Option<serde_json::Value>,
        error: Option<(String, String)>,
    },
    /// The attempt failed and attempts remain: queued again after `delay`.
    Retry {
        delay: Duration,
        error: (String, String),
    },
    /// Claimed but never started (a drain): queued again at once, the claim not counted.
    HandBack,
}

/// One fenced write: a run, the epoch of the claim, and its outcome.
#[derive(Debug, Clone)]
pub(crate) struct Finish {
    pub(crate) id: RunId,
    pub(crate) epoch: i64,
    pub(crate) outcome: Outcome,
    /// The attempt's log, to copy with the outcome: its local id on this node, and the
    /// attempt.
    pub(crate) log: Option<(RunId, u32)>,
}

/// An attempt's last log lines, copied to the database with its outcome.
#[derive(Debug, Clone)]
pub(crate) struct AttemptLog {
    pub(crate) run: RunId,
    pub(crate) attempt: u32,
    pub(crate) lines: Vec<LogEntry>,
}

/// A run the database says a node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned {
    pub(crate) id: RunId,
    pub(crate) epoch: i64,
    /// The node's claim that took it (`None` for a row written by hand).
    pub(crate) claim: Option<u64>,
}

/// What one rescue pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Rescued {
    pub(crate) nodes_declared_dead: u64,
    pub(crate) requeued: u64,
    pub(crate) failed: u64,
    pub(crate) cancelled: u64,
}

const RUN_COLUMNS: &str = "id, kind, label, queue, priority, params, status, attempt, \
     max_attempts, rerun_on_loss, ran_on, ran_on_id, created_at, started_at, finished_at, \
     result, error_kind, error, cancel_requested, rescues, idempotency_key";

fn to_run(row: &tokio_postgres::Row) -> ClusterRun {
    let params: serde_json::Value = row.get("params");
    let status: String = row.get("status");
    let error_kind: Option<String> = row.get("error_kind");
    ClusterRun {
        id: RunId::from_uuid(row.get("id")),
        kind: row.get("kind"),
        label: row.get("label"),
        queue: row.get("queue"),
        priority: row.get("priority"),
        params: match params {
            serde_json::Value::Object(m) => m,
            _ => Params::new(),
        },
        status: parse_status(&status),
        attempt: u32::try_from(row.get::<_, i32>("attempt")).unwrap_or(0),
        max_attempts: u32::try_from(row.get::<_, i32>("max_attempts")).unwrap_or(1),
        rerun_on_loss: row.get("rerun_on_loss"),
        node: row.get("ran_on"),
        node_id: row.get("ran_on_id"),
        created_at: row.get("created_at"),
        started_at: row.get("started_at"),
        finished_at: row.get("finished_at"),
        result: row.get("result"),
        error_kind: error_kind.as_deref().and_then(parse_error_kind),
        error: row.get("error"),
        cancel_requested: row.get("cancel_requested"),
        rescues: u32::try_from(row.get::<_, i32>("rescues")).unwrap_or(0),
        idempotency_key: row.get("idempotency_key"),
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Db {
    /// A pool of at most `size` connections to `url` (a `postgres://` URL or a libpq
    /// key=value string). Connections are made when first needed.
    pub(crate) fn connect(url: &str, size: usize) -> Result<Self, ClusterError> {
        let config = tokio_postgres::Config::from_str(url)
            .map_err(|e| ClusterError::BadRequest(format!("the database URL: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| ClusterError::Database(e.to_string()))?;
        Ok(Db { pool, config })
    }

    /// A connection of its own, outside the pool (for LISTEN), and its driver future.
    pub(crate) async fn dedicated(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
        ),
        ClusterError,
    > {
        Ok(self.config.connect(NoTls).await?)
    }

    pub(crate) async fn migrate(&self) -> Result<(), ClusterError> {
        let mut client = self.pool.get().await?;
        crate::schema::migrate(&mut client).await
    }

    /// Records a node as alive (a new id for every process start).
    pub(crate) async fn join(&self, node: Uuid, name: &str) -> Result<(), ClusterError> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO rw_nodes (id, name) VALUES ($1, $2)",
            &[&node, &name],
        )
        .await?;
        Ok(())
    }

    /// Renews a node's lease (and with it its runs'). `false`: the node has been declared
    /// dead (or left) and must fence itself.
    ///
    /// Committed without waiting for the WAL to reach the disk (as is the leader's lease): a
    /// heartbeat lost in a database crash only makes the node look older, which is safe, and
    /// the heartbeat never waits on a slow disk.
    pub(crate) async fn heartbeat(&self, node: Uuid) -> Result<bool, ClusterError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await?;
        let alive = tx
            .execute(
                "UPDATE rw_nodes SET heartbeat_at = now() WHERE id = $1 AND dead_at IS NULL",
                &[&node],
            )
            .await?
            == 1;
        tx.commit().await?;
        Ok(alive)
    }

    /// Takes or renews the leader's lease for `ttl` (whoever holds an unexpired one keeps
    /// it); `true` if this node holds it now. A lease lost in a database crash makes at worst
    /// two leaders for a moment, whose rescues lock the rows they change, so they cannot both
    /// take one run.
    pub(crate) async fn try_lead(&self, node: Uuid, ttl: Duration) -> Result<bool, ClusterError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await?;
        let leader = tx
            .query_opt(
                "INSERT INTO rw_leader (id, node_id, expires_at)
                 SELECT 1, $1, now() + $2::bigint * interval '1 millisecond'
                 WHERE EXISTS (SELECT 1 FROM rw_nodes WHERE id = $1 AND dead_at IS NULL)
                 ON CONFLICT (id) DO UPDATE
                    SET node_id = EXCLUDED.node_id, expires_at = EXCLUDED.expires_at
                    WHERE rw_leader.node_id = EXCLUDED.node_id OR rw_leader.expires_at < now()
                 RETURNING node_id",
                &[&node, &ms(ttl)],
            )
            .await?
            .is_some();
        tx.commit().await?;
        Ok(leader)
    }

    /// The leader's pass: declares dead every node silent for `dead_after` (by the database's
    /// clock, so nodes' clocks do not matter), then takes back every run a dead node holds:
    /// queued again (with backoff) if its kind may run twice and attempts remain, else
    /// `failed` (`node_lost`), or `cancelled` if a cancel was asked for.
    pub(crate) async fn rescue(&self, dead_after: Duration) -> Result<Rescued, ClusterError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let dead = tx
            .execute(
                "UPDATE rw_nodes SET dead_at = now()
                 WHERE dead_at IS NULL
                   AND heartbeat_at < now() - $1::bigint * interval '1 millisecond'",
                &[&ms(dead_after)],
            )
            .await?;
        let rows = tx
            .query(
                "WITH lost AS (
                    SELECT r.id,
                           CASE WHEN r.cancel_requested THEN 'cancelled'
                                WHEN r.rerun_on_loss AND r.attempt < r.max_attempts THEN 'queued'
                                ELSE 'failed' END AS next
                    FROM rw_runs r JOIN rw_nodes n ON n.id = r.node_id
                    WHERE r.status = 'running' AND n.dead_at IS NOT NULL
                    FOR UPDATE OF r
                 )
                 UPDATE rw_runs r SET
                    status = lost.next,
                    node_id = NULL,
                    rescues = r.rescues + 1,
                    run_after = now() + least(250 * power(2, r.rescues), 30000)
                                        * interval '1 millisecond',
                    finished_at = CASE WHEN lost.next = 'queued' THEN NULL ELSE now() END,
                    error_kind = CASE WHEN lost.next = 'cancelled' THEN 'cancelled_while_running'
                                      ELSE 'node_lost' END,
                    error = CASE
                        WHEN lost.next = 'cancelled'
                            THEN 'cancelled: its node was lost before it reported the end'
                        WHEN lost.next = 'queued'
                            THEN 'its node was lost; queued again'
                        WHEN r.rerun_on_loss
                            THEN 'its node was lost and no attempts remain'
                        ELSE 'its node was lost, and its kind must not run twice' END
                 FROM lost WHERE r.id = lost.id
                 RETURNING lost.next",
                &[],
            )
            .await?;
        let mut out = Rescued {
            nodes_declared_dead: dead,
            ..Rescued::default()
        };
        for r in &rows {
            match r.get::<_, &str>(0) {
                "queued" => out.requeued += 1,
                "cancelled" => out.cancelled += 1,
                _ => out.failed += 1,
            }
        }
        if out.requeued > 0 {
            tx.execute(&format!("NOTIFY {WAKE_CHANNEL}"), &[]).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Commits runs (one statement, one transaction) and answers per run: its id, or why it
    /// was refused. `rerun_on_loss[i]` is the kind's rule for `runs[i]`.
    pub(crate) async fn submit(
        &self,
        runs: &[NewRun],
        rerun_on_loss: &[bool],
    ) -> Result<Vec<Result<RunId, ClusterError>>, ClusterError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let answers = insert_runs(&*tx, runs, rerun_on_loss).await?;
        tx.commit().await?;
        Ok(answers)
    }

    /// Claims up to `n` runs for `node`, by priority then submit order, skipping rows other
    /// nodes are claiming; nothing if the node has been declared dead.
    pub(crate) async fn claim(
        &self,
        node: Uuid,
        name: &str,
        n: usize,
        seq: u64,
    ) -> Result<Vec<Claimed>, ClusterError> {
        let mut c = self.pool.get().await?;
        let mut left = i64::try_from(n).unwrap_or(i64::MAX);
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let limited: i64 = c
            .query_one("SELECT count(*) FROM rw_queues", &[])
            .await?
            .get(0);
        if limited == 0 {
            // No queue is limited: one statement, which still leaves alone any queue limited
            // since the count (its snapshot is later).
            return Ok(c
                .query(&claim_sql(false), &[&node, &name, &left, &seq])
                .await?
                .iter()
                .map(claimed)
                .collect());
        }
        // Limited queues with runs to claim, locked (in one order, so claimers never
        // deadlock) until this claim commits: claimers of one limited queue take turns. The
        // count of its running runs is a statement of its own, so it sees the claims of the
        // claimer before.
        let tx = c.transaction().await?;
        let queues: Vec<(String, i64)> = tx
            .query(
                "SELECT q.queue, q.global_limit FROM rw_queues q
                 WHERE EXISTS (SELECT 1 FROM rw_runs r WHERE r.queue = q.queue
                               AND r.status = 'queued' AND r.run_after <= now())
                 ORDER BY q.queue
                 FOR UPDATE OF q",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), i64::from(r.get::<_, i32>(1))))
            .collect();
        let mut out: Vec<Claimed> = tx
            .query(&claim_sql(false), &[&node, &name, &left, &seq])
            .await?
            .iter()
            .map(claimed)
            .collect();
        left -= out.len() as i64;
        for (queue, limit) in queues {
            if left <= 0 {
                break;
            }
            let running: i64 = tx
                .query_one(
                    "SELECT count(*) FROM rw_runs WHERE queue = $1 AND status = 'running'",
                    &[&queue],
                )
                .await?
                .get(0);
            let take = left.min(limit - running);
            if take <= 0 {
                continue;
            }
            let got = tx
                .query(&claim_sql(true), &[&node, &name, &take, &seq, &queue])
                .await?;
            left -= got.len() as i64;
            out.extend(got.iter().map(claimed));
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Sets (or, with `None`, removes) a queue's limit on the runs running at once, across
    /// the cluster. Runs already running above a new limit go on; no more start until the
    /// queue is under it.
    pub(crate) async fn set_queue_limit(
        &self,
        queue: &str,
        limit: Option<u32>,
    ) -> Result<(), ClusterError> {
        let c = self.pool.get().await?;
        match limit {
            Some(l) => {
                let l = i32::try_from(l).unwrap_or(i32::MAX);
                c.execute(
                    "INSERT INTO rw_queues (queue, global_limit) VALUES ($1, $2)
                     ON CONFLICT (queue) DO UPDATE SET global_limit = EXCLUDED.global_limit",
                    &[&queue, &l],
                )
                .await?;
            }
            None => {
                c.execute("DELETE FROM rw_queues WHERE queue = $1", &[&queue])
                    .await?;
            }
        }
        // More may be claimable now.
        c.execute(&format!("NOTIFY {WAKE_CHANNEL}"), &[]).await?;
        Ok(())
    }

    /// Every queue limited cluster-wide, with its limit and how many of its runs run now.
    pub(crate) async fn queue_limits(&self) -> Result<Vec<QueueLimit>, ClusterError> {
        let c = self.pool.get().await?;
        Ok(c.query(
            "SELECT q.queue, q.global_limit,
                        (SELECT count(*) FROM rw_runs r
                         WHERE r.queue = q.queue AND r.status = 'running')
                 FROM rw_queues q ORDER BY q.queue",
            &[],
        )
        .await?
        .iter()
        .map(|r| QueueLimit {
            queue: r.get(0),
            global_limit: u32::try_from(r.get::<_, i32>(1)).unwrap_or(0),
            running: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
        })
        .collect())
    }

    /// Writes outcomes in one statement, each fenced on (node, epoch, `running`) and on the
    /// node being alive. Answers the ids whose write took effect; the others had lost their
    /// lease.
    pub(crate) async fn finish(
        &self,
        node: Uuid,
        batch: &[Finish],
        logs: &[AttemptLog],
    ) -> Result<Vec<RunId>, ClusterError> {
        let mut ids = Vec::with_capacity(batch.len());
        let mut epochs = Vec::with_capacity(batch.len());
        let mut statuses = Vec::with_capacity(batch.len());
        let mut delays = Vec::with_capacity(batch.len());
        let mut adjust = Vec::with_capacity(batch.len());
        let mut results: Vec<Option<serde_json::Value>> = Vec::with_capacity(batch.len());
        let mut kinds: Vec<Option<String>> = Vec::with_capacity(batch.len());
        let mut errors: Vec<Option<String>> = Vec::with_capacity(batch.len());
        for f in batch {
            ids.push(*f.id.as_uuid());
            epochs.push(f.epoch);
            match &f.outcome {
                Outcome::Ended {
                    status,
                    result,
                    error,
                } => {
                    statuses.push(crate::run::status_str(*status));
                    delays.push(0i64);
                    adjust.push(0i32);
                    results.push(result.clone());
                    kinds.push(error.as_ref().map(|e| e.0.clone()));
                    errors.push(error.as_ref().map(|e| e.1.clone()));
                }
                Outcome::Retry { delay, error } => {
                    statuses.push("queued");
                    delays.push(ms(*delay));
                    adjust.push(0);
                    results.push(None);
                    kinds.push(Some(error.0.clone()));
                    errors.push(Some(error.1.clone()));
                }
                Outcome::HandBack => {
                    statuses.push("queued");
                    delays.push(0);
                    adjust.push(-1);
                    results.push(None);
                    kinds.push(None);
                    errors.push(None);
                }
            }
        }
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let rows = tx
            .query(
                "UPDATE rw_runs r SET
                    status = f.status,
                    node_id = NULL,
                    finished_at = CASE WHEN f.status = 'queued' THEN NULL ELSE now() END,
                    run_after = CASE WHEN f.status = 'queued'
                                     THEN now() + f.delay_ms * interval '1 millisecond'
                                     ELSE r.run_after END,
                    attempt = r.attempt + f.adjust,
                    result = f.result,
                    error_kind = coalesce(f.error_kind, r.error_kind),
                    error = coalesce(f.error, r.error)
                 FROM unnest($2::uuid[], $3::bigint[], $4::text[], $5::bigint[], $6::int[],
                             $7::jsonb[], $8::text[], $9::text[])
                      AS f(id, epoch, status, delay_ms, adjust, result, error_kind, error)
                 WHERE r.id = f.id AND r.node_id = $1 AND r.lease_epoch = f.epoch
                   AND r.status = 'running'
                   AND EXISTS (SELECT 1 FROM rw_nodes n WHERE n.id = $1 AND n.dead_at IS NULL)
                 RETURNING r.id, f.status",
                &[
                    &node, &ids, &epochs, &statuses, &delays, &adjust, &results, &kinds, &errors,
                ],
            )
            .await?;
        if rows.iter().any(|r| r.get::<_, &str>(1) == "queued") {
            tx.execute(&format!("NOTIFY {WAKE_CHANNEL}"), &[]).await?;
        }
        if !logs.is_empty() {
            // Only the logs of outcomes that took effect: a lost lease's attempt is not ours.
            let accepted: std::collections::HashSet<Uuid> =
                rows.iter().map(|r| r.get::<_, Uuid>(0)).collect();
            let (mut ids, mut attempts, mut seqs, mut ats) = (vec![], vec![], vec![], vec![]);
            let (mut levels, mut streams, mut messages) = (vec![], vec![], vec![]);
            for log in logs.iter().filter(|l| accepted.contains(l.run.as_uuid())) {
                for (i, line) in log.lines.iter().enumerate() {
                    ids.push(*log.run.as_uuid());
                    attempts.push(i32::try_from(log.attempt).unwrap_or(i32::MAX));
                    seqs.push(i32::try_from(i).unwrap_or(i32::MAX));
                    ats.push(line.at.to_system_time());
                    levels.push(line.level.as_str());
                    streams.push(line.stream.as_str());
                    messages.push(line.message.as_str());
                }
            }
            if !ids.is_empty() {
                tx.execute(
                    "INSERT INTO rw_logs (run_id, attempt, seq, at, level, stream, message)
                     SELECT * FROM unnest($1::uuid[], $2::int[], $3::int[], $4::timestamptz[],
                                          $5::text[], $6::text[], $7::text[])
                     ON CONFLICT DO NOTHING",
                    &[&ids, &attempts, &seqs, &ats, &levels, &streams, &messages],
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(rows
            .iter()
            .map(|r| RunId::from_uuid(r.get::<_, Uuid>(0)))
            .collect())
    }

    /// Cancels a queued run at once; marks a running one and notifies its node.
    pub(crate) async fn cancel(&self, id: RunId) -> Result<CancelAnswer, ClusterError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let row = tx
            .query_opt(
                "UPDATE rw_runs SET
                    cancel_requested = true,
                    status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
                    finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END,
                    error_kind = CASE WHEN status = 'queued' THEN 'cancelled_while_queued'
                                      ELSE error_kind END,
                    error = CASE WHEN status = 'queued' THEN 'cancelled before it started'
                                 ELSE error END
                 WHERE id = $1 AND status IN ('queued', 'running')
                 RETURNING status",
                &[id.as_uuid()],
            )
            .await?;
        let answer = match row {
            Some(r) if r.get::<_, &str>(0) == "cancelled" => CancelAnswer::CancelledWhileQueued,
            Some(_) => {
                tx.execute(
                    "SELECT pg_notify($1, $2)",
                    &[&CANCEL_CHANNEL, &id.to_string()],
                )
                .await?;
                CancelAnswer::Requested
            }
            None => {
                match tx
                    .query_opt("SELECT status FROM rw_runs WHERE id = $1", &[id.as_uuid()])
                    .await?
                {
                    Some(r) => CancelAnswer::AlreadyFinished(parse_status(r.get(0))),
                    None => CancelAnswer::NotFound,
                }
            }
        };
        tx.commit().await?;
        Ok(answer)
    }

    /// The running runs of `node` someone has asked to cancel.
    pub(crate) async fn cancel_requests(&self, node: Uuid) -> Result<Vec<RunId>, ClusterError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT id FROM rw_runs
                 WHERE node_id = $1 AND status = 'running' AND cancel_requested",
                &[&node],
            )
            .await?;
        Ok(rows.iter().map(|r| RunId::from_uuid(r.get(0))).collect())
    }

    /// The runs the database says `node` holds: id, epoch, and the claim that took each.
    pub(crate) async fn owned(&self, node: Uuid) -> Result<Vec<Owned>, ClusterError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT id, lease_epoch, claim_seq FROM rw_runs
                 WHERE node_id = $1 AND status = 'running'",
                &[&node],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Owned {
                id: RunId::from_uuid(r.get(0)),
                epoch: r.get(1),
                claim: r
                    .get::<_, Option<i64>>(2)
                    .and_then(|s| u64::try_from(s).ok()),
            })
            .collect())
    }

    /// Events after `after`, in commit order, of transactions older than every one still
    /// running (so none can later appear before them).
    pub(crate) async fn events_after(
        &self,
        after: EventCursor,
        limit: i64,
    ) -> Result<Vec<ClusterEvent>, ClusterError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT tx, seq, run_id, status, attempt, node, error_kind, at FROM rw_events
                 WHERE (tx, seq) > ($1, $2)
                   AND tx < pg_snapshot_xmin(pg_current_snapshot())::text::bigint
                 ORDER BY tx, seq
                 LIMIT $3",
                &[&after.tx, &after.seq, &limit],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ClusterEvent {
                cursor: EventCursor {
                    tx: r.get(0),
                    seq: r.get(1),
                },
                run_id: RunId::from_uuid(r.get(2)),
                status: parse_status(r.get(3)),
                attempt: u32::try_from(r.get::<_, i32>(4)).unwrap_or(0),
                node: r.get(5),
                error_kind: r.get(6),
                at: r.get(7),
            })
            .collect())
    }

    /// The cursor for "from now": after every event of a transaction that has ended.
    pub(crate) async fn events_now(&self) -> Result<EventCursor, ClusterError> {
        let c = self.pool.get().await?;
        let row = c
            .query_one(
                "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint - 1",
                &[],
            )
            .await?;
        Ok(EventCursor {
            tx: row.get(0),
            seq: i64::MAX,
        })
    }

    /// Deletes events older than `events` and runs that ended longer than `runs` ago, at most
    /// `RETENTION_BATCH` of each per call. Answers how many of each it deleted.
    pub(crate) async fn retain(
        &self,
        events: Duration,
        runs: Duration,
    ) -> Result<(u64, u64), ClusterError> {
        let c = self.pool.get().await?;
        let events = c
            .execute(
                "DELETE FROM rw_events WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM rw_events
                    WHERE at < now() - $1::bigint * interval '1 millisecond'
                    LIMIT $2))",
                &[&ms(events), &RETENTION_BATCH],
            )
            .await?;
        let runs = c
            .execute(
                "DELETE FROM rw_runs WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM rw_runs
                    WHERE finished_at < now() - $1::bigint * interval '1 millisecond'
                      AND status IN ('completed', 'failed', 'cancelled')
                    LIMIT $2))",
                &[&ms(runs), &RETENTION_BATCH],
            )
            .await?;
        Ok((events, runs))
    }

    /// Adds or replaces a schedule; its first fire is the expression's first time after now.
    pub(crate) async fn put_schedule(
        &self,
        name: &str,
        cron: &CronSchedule,
        run: &NewRun,
        rerun_on_loss: bool,
    ) -> Result<(), ClusterError> {
        let c = self.pool.get().await?;
        let now: SystemTime = c.query_one("SELECT now()", &[]).await?.get(0);
        let next = next_fire(cron, now);
        c.execute(
            "INSERT INTO rw_schedules (name, cron, time_zone, overlap, missed, deadline_ms, kind,
                                       label, queue, priority, params, max_attempts,
                                       rerun_on_loss, timeout_ms, next_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,
                     coalesce($15, 'infinity'::timestamptz))
             ON CONFLICT (name) DO UPDATE SET
                cron = EXCLUDED.cron, time_zone = EXCLUDED.time_zone,
                overlap = EXCLUDED.overlap, missed = EXCLUDED.missed,
                deadline_ms = EXCLUDED.deadline_ms, kind = EXCLUDED.kind,
                label = EXCLUDED.label, queue = EXCLUDED.queue, priority = EXCLUDED.priority,
                params = EXCLUDED.params, max_attempts = EXCLUDED.max_attempts,
                rerun_on_loss = EXCLUDED.rerun_on_loss, timeout_ms = EXCLUDED.timeout_ms,
                next_at = EXCLUDED.next_at",
            &[
                &name,
                &cron.expression(),
                &cron.time_zone(),
                &overlap_str(cron.overlap_policy()),
                &missed_str(cron.missed_policy()),
                &ms(cron.deadline()),
                &run.kind,
                &run.label,
                &run.queue,
                &run.priority,
                &serde_json::Value::Object(run.params.clone()),
                &i32::try_from(run.max_attempts).unwrap_or(i32::MAX),
                &rerun_on_loss,
                &run.timeout.map(ms),
                &next,
            ],
        )
        .await?;
        Ok(())
    }

    /// Removes a schedule; `false` if there was none of that name.
    pub(crate) async fn delete_schedule(&self, name: &str) -> Result<bool, ClusterError> {
        let c = self.pool.get().await?;
        Ok(
            c.execute("DELETE FROM rw_schedules WHERE name = $1", &[&name])
                .await?
                == 1,
        )
    }

    /// Every schedule.
    pub(crate) async fn schedules(&self) -> Result<Vec<ScheduleInfo>, ClusterError> {
        let c = self.pool.get().await?;
        Ok(c.query(
            "SELECT name, cron, time_zone, kind,
                        CASE WHEN next_at = 'infinity' THEN NULL ELSE next_at END,
                        fires, skipped, missed_fires, last_fired_at, last_run_id
                 FROM rw_schedules ORDER BY name",
            &[],
        )
        .await?
        .iter()
        .map(|r| ScheduleInfo {
            name: r.get(0),
            cron: r.get(1),
            time_zone: r.get(2),
            kind: r.get(3),
            next_at: r.get(4),
            fires: u64::try_from(r.get::<_, i64>(5)).unwrap_or(0),
            skipped: u64::try_from(r.get::<_, i64>(6)).unwrap_or(0),
            missed: u64::try_from(r.get::<_, i64>(7)).unwrap_or(0),
            last_fired_at: r.get(8),
            last_run_id: r.get::<_, Option<Uuid>>(9).map(RunId::from_uuid),
        })
        .collect())
    }

    /// The leader's schedules: each schedule due is locked (a second leader skips it), then
    /// fires one run, or skips (its last run still going, `overlap` skip) or waits for it
    /// (`queue_one`: stays due), or counts a fire later than its deadline as missed (`missed`
    /// skip); its next fire is the first after now, so fires missed while no leader ran
    /// become at most one. The run's idempotency key names the schedule and the fire time,
    /// so one fire time never makes two runs. Answers how many runs it submitted.
    pub(crate) async fn fire_schedules(&self) -> Result<u64, ClusterError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let due = tx
            .query(
                "SELECT s.name, s.cron, s.time_zone, s.overlap, s.missed, s.deadline_ms, s.kind,
                        s.label, s.queue, s.priority, s.params, s.max_attempts,
                        s.rerun_on_loss, s.timeout_ms, s.next_at, now(),
                        (SELECT r.status FROM rw_runs r WHERE r.id = s.last_run_id)
                 FROM rw_schedules s
                 WHERE s.next_at <= now()
                 ORDER BY s.next_at
                 LIMIT 100
                 FOR UPDATE OF s SKIP LOCKED",
                &[],
            )
            .await?;
        let mut fired = 0;
        for row in &due {
            let name: String = row.get(0);
            let due_at: SystemTime = row.get(14);
            let now: SystemTime = row.get(15);
            let active = matches!(row.get::<_, Option<&str>>(16), Some("queued" | "running"));
            let cron = CronSchedule::new(row.get(1), row.get(2));
            let next = match &cron {
                Ok(cron) => next_fire(cron, now),
                // Written by a build that read it differently: never fires again.
                Err(_) => None,
            };
            let late = now
                .duration_since(due_at)
                .is_ok_and(|d| d.as_millis() > u128::try_from(row.get::<_, i64>(5)).unwrap_or(0));
            let (overlap, missed): (&str, &str) = (row.get(3), row.get(4));
            if active && overlap != "allow" {
                if overlap == "queue_one" {
                    continue; // stays due: fires as soon as the last run ends
                }
                tx.execute(
                    "UPDATE rw_schedules SET skipped = skipped + 1,
                        next_at = coalesce($2, 'infinity'::timestamptz) WHERE name = $1",
                    &[&name, &next],
                )
                .await?;
                continue;
            }
            if late && missed == "skip" {
                tx.execute(
                    "UPDATE rw_schedules SET missed_fires = missed_fires + 1,
                        next_at = coalesce($2, 'infinity'::timestamptz) WHERE name = $1",
                    &[&name, &next],
                )
                .await?;
                continue;
            }
            let params: serde_json::Value = row.get(10);
            let micros = due_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_micros())
                .unwrap_or(0);
            let run = NewRun {
                kind: row.get(6),
                params: match params {
                    serde_json::Value::Object(m) => m,
                    _ => Params::new(),
                },
                label: row
                    .get::<_, Option<String>>(7)
                    .or_else(|| Some(name.clone())),
                queue: row.get(8),
                priority: row.get(9),
                max_attempts: u32::try_from(row.get::<_, i32>(11)).unwrap_or(1),
                timeout: row
                    .get::<_, Option<i64>>(13)
                    .map(|m| Duration::from_millis(u64::try_from(m).unwrap_or(0))),
                delay: Duration::ZERO,
                idempotency_key: Some(format!("schedule:{name}:{micros}")),
            };
            let answer = insert_runs(&*tx, std::slice::from_ref(&run), &[row.get(12)]).await?;
            let id = match answer.into_iter().next() {
                Some(Ok(id)) => {
                    fired += 1;
                    Some(*id.as_uuid())
                }
                _ => None,
            };
            tx.execute(
                "UPDATE rw_schedules SET fires = fires + CASE WHEN $3::uuid IS NULL THEN 0 ELSE 1 END,
                    last_fired_at = CASE WHEN $3::uuid IS NULL THEN last_fired_at ELSE now() END,
                    last_run_id = coalesce($3, last_run_id),
                    next_at = coalesce($2, 'infinity'::timestamptz)
                 WHERE name = $1",
                &[&name, &next, &id],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(fired)
    }

    /// The log lines kept of a run's attempt (`None`: its latest attempt with a log).
    pub(crate) async fn logs(
        &self,
        run: RunId,
        attempt: Option<u32>,
    ) -> Result<Vec<LogLine>, ClusterError> {
        let c = self.pool.get().await?;
        let attempt = attempt.map(|a| i32::try_from(a).unwrap_or(i32::MAX));
        Ok(c.query(
            "SELECT attempt, at, level, stream, message FROM rw_logs
                 WHERE run_id = $1
                   AND attempt = coalesce($2, (SELECT max(attempt) FROM rw_logs WHERE run_id = $1))
                 ORDER BY seq",
            &[run.as_uuid(), &attempt],
        )
        .await?
        .iter()
        .map(|r| LogLine {
            attempt: u32::try_from(r.get::<_, i32>(0)).unwrap_or(0),
            at: r.get(1),
            level: r.get(2),
            stream: r.get(3),
            message: r.get(4),
        })
        .collect())
    }

    /// One run.
    pub(crate) async fn get(&self, id: RunId) -> Result<Option<ClusterRun>, ClusterError> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                &format!("SELECT {RUN_COLUMNS} FROM rw_runs WHERE id = $1"),
                &[id.as_uuid()],
            )
            .await?;
        Ok(row.as_ref().map(to_run))
    }

    /// Runs newest first, of one status or all, at most `limit`, after the cursor `before`.
    pub(crate) async fn list(
        &self,
        status: Option<RunStatus>,
        limit: usize,
        before: Option<RunId>,
    ) -> Result<Vec<ClusterRun>, ClusterError> {
        let c = self.pool.get().await?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let status = status.map(crate::run::status_str);
        let before = before.map(|b| *b.as_uuid());
        let params: [&(dyn ToSql + Sync); 3] = [&status, &before, &limit];
        let rows = c
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM rw_runs
                     WHERE ($1::text IS NULL OR status = $1)
                       AND ($2::uuid IS NULL OR id < $2)
                     ORDER BY id DESC LIMIT $3"
                ),
                &params,
            )
            .await?;
        Ok(rows.iter().map(to_run).collect())
    }

    /// Counts per status, and live and dead nodes.
    pub(crate) async fn stats(&self) -> Result<ClusterStats, ClusterError> {
        let c = self.pool.get().await?;
        let mut s = ClusterStats::default();
        for row in c
            .query("SELECT status, count(*) FROM rw_runs GROUP BY status", &[])
            .await?
        {
            let n = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
            match row.get::<_, &str>(0) {
                "queued" => s.queued = n,
                "running" => s.running = n,
                "completed" => s.completed = n,
                "failed" => s.failed = n,
                _ => s.cancelled = n,
            }
        }
        let row = c
            .query_one(
                "SELECT count(*) FILTER (WHERE dead_at IS NULL),
                        count(*) FILTER (WHERE dead_at IS NOT NULL) FROM rw_nodes",
                &[],
            )
            .await?;
        s.live_nodes = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        s.dead_nodes = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
        Ok(s)
    }

    /// A node's clean exit: it holds nothing, so no rescue is needed.
    pub(crate) async fn leave(&self, node: Uuid) -> Result<(), ClusterError> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE rw_nodes SET dead_at = now(), left_cleanly = true
             WHERE id = $1 AND dead_at IS NULL",
            &[&node],
        )
        .await?;
        c.execute("DELETE FROM rw_leader WHERE node_id = $1", &[&node])
            .await?;
        Ok(())
    }
}

/// Inserts runs through `tx` (a transaction, or a client that commits each statement), and
/// answers per run: its id, or why it was refused. `rerun_on_loss[i]` is the kind's rule for
/// `runs[i]`. The wake-up NOTIFY is sent with the commit, so nodes hear of the runs only if
/// they exist.
pub(crate) async fn insert_runs<C: GenericClient + Sync>(
    tx: &C,
    runs: &[NewRun],
    rerun_on_loss: &[bool],
) -> Result<Vec<Result<RunId, ClusterError>>, ClusterError> {
    let ids: Vec<Uuid> = runs.iter().map(|_| *RunId::new().as_uuid()).collect();
    let kinds: Vec<&str> = runs.iter().map(|r| r.kind.as_str()).collect();
    let labels: Vec<&str> = runs
        .iter()
        .map(|r| r.label.as_deref().unwrap_or(&r.kind))
        .collect();
    let queues: Vec<&str> = runs.iter().map(|r| r.queue.as_str()).collect();
    let priorities: Vec<i32> = runs.iter().map(|r| r.priority).collect();
    let params: Vec<serde_json::Value> = runs
        .iter()
        .map(|r| serde_json::Value::Object(r.params.clone()))
        .collect();
    let attempts: Vec<i32> = runs
        .iter()
        .map(|r| i32::try_from(r.max_attempts).unwrap_or(i32::MAX))
        .collect();
    let timeouts: Vec<Option<i64>> = runs.iter().map(|r| r.timeout.map(ms)).collect();
    let delays: Vec<i64> = runs.iter().map(|r| ms(r.delay)).collect();
    let keys: Vec<Option<&str>> = runs.iter().map(|r| r.idempotency_key.as_deref()).collect();
    let inserted = tx
        .query(
            "INSERT INTO rw_runs (id, kind, label, queue, priority, params, status,
                                  max_attempts, rerun_on_loss, timeout_ms, run_after,
                                  idempotency_key)
             SELECT id, kind, label, queue, priority, params, 'queued', max_attempts,
                    rerun, timeout_ms, now() + delay_ms * interval '1 millisecond', key
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[],
                         $6::jsonb[], $7::int[], $8::bool[], $9::bigint[], $10::bigint[],
                         $11::text[])
                  AS t(id, kind, label, queue, priority, params, max_attempts, rerun,
                       timeout_ms, delay_ms, key)
             ON CONFLICT (idempotency_key)
                WHERE idempotency_key IS NOT NULL AND status IN ('queued', 'running')
                DO NOTHING
             RETURNING id",
            &[
                &ids,
                &kinds,
                &labels,
                &queues,
                &priorities,
                &params,
                &attempts,
                &rerun_on_loss,
                &timeouts,
                &delays,
                &keys,
            ],
        )
        .await?;
    let accepted: std::collections::HashSet<Uuid> =
        inserted.iter().map(|r| r.get::<_, Uuid>(0)).collect();
    let mut answers = Vec::with_capacity(runs.len());
    for (i, id) in ids.iter().enumerate() {
        if accepted.contains(id) {
            answers.push(Ok(RunId::from_uuid(*id)));
            continue;
        }
        // Refused by the key's index: name the run that holds it (in this batch or not).
        let holder = tx
            .query_opt(
                "SELECT id FROM rw_runs WHERE idempotency_key = $1
                   AND status IN ('queued', 'running')",
                &[&keys[i]],
            )
            .await?;
        answers.push(Err(match holder {
            Some(row) => ClusterError::DuplicateKey(RunId::from_uuid(row.get(0))),
            None => ClusterError::Database("the run was not inserted".into()),
        }));
    }
    if !accepted.is_empty() {
        tx.execute(&format!("NOTIFY {WAKE_CHANNEL}"), &[]).await?;
    }
    Ok(answers)
}

/// The claim: up to `$3` queued runs due now, by priority then submit order, skipping rows
/// other claimers hold, and only while the node (`$1`) is alive. With `one_queue`, only
/// queue `$5`; without, only queues with no cluster-wide limit.
fn claim_sql(one_queue: bool) -> String {
    let queue = if one_queue {
        "r.queue = $5"
    } else {
        "NOT EXISTS (SELECT 1 FROM rw_queues q WHERE q.queue = r.queue)"
    };
    format!(
        "WITH c AS (
            SELECT r.id FROM rw_runs r
            WHERE r.status = 'queued' AND r.run_after <= now() AND {queue}
              AND EXISTS (SELECT 1 FROM rw_nodes WHERE id = $1 AND dead_at IS NULL)
            ORDER BY r.priority DESC, r.id
            LIMIT $3
            FOR UPDATE OF r SKIP LOCKED
         )
         UPDATE rw_runs r SET
            status = 'running', node_id = $1, ran_on = $2, ran_on_id = $1,
            lease_epoch = r.lease_epoch + 1, attempt = r.attempt + 1, claim_seq = $4,
            started_at = coalesce(r.started_at, now())
         FROM c WHERE r.id = c.id
         RETURNING r.id, r.kind, r.params, r.label, r.lease_epoch, r.attempt,
                   r.max_attempts, r.timeout_ms, r.cancel_requested"
    )
}

fn claimed(row: &tokio_postgres::Row) -> Claimed {
    let params: serde_json::Value = row.get(2);
    Claimed {
        id: RunId::from_uuid(row.get(0)),
        kind: row.get(1),
        params: match params {
            serde_json::Value::Object(m) => m,
            _ => Params::new(),
        },
        label: row.get(3),
        epoch: row.get(4),
        attempt: u32::try_from(row.get::<_, i32>(5)).unwrap_or(0),
        max_attempts: u32::try_from(row.get::<_, i32>(6)).unwrap_or(1),
        timeout: row
            .get::<_, Option<i64>>(7)
            .map(|m| Duration::from_millis(u64::try_from(m).unwrap_or(0))),
        cancel_requested: row.get(8),
    }
}

/// The schedule's first fire time strictly after `now`.
fn next_fire(cron: &CronSchedule, now: SystemTime) -> Option<SystemTime> {
    cron.next_after(Timestamp::from_system_time(now))
        .map(Timestamp::to_system_time)
}

fn overlap_str(o: Overlap) -> &'static str {
    match o {
        Overlap::Skip => "skip",
        Overlap::QueueOne => "queue_one",
        Overlap::Allow => "allow",
    }
}

fn missed_str(m: MissedFires) -> &'static str {
    match m {
        MissedFires::Skip => "skip",
        MissedFires::RunOnce => "run_once",
    }
}

#[cfg(test)]
mod tests {
    //! The fence, against a real PostgreSQL: a write from a lost lease changes nothing.
    use super::*;
    use crate::postgres::TempPostgres;

    fn ended() -> Outcome {
        Outcome::Ended {
            status: RunStatus::Completed,
            result: Some(serde_json::json!("late")),
            error: None,
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_lost_lease_writes_nothing() {
        let pg = TempPostgres::start().expect("PostgreSQL");
        let db = Db::connect(pg.url(), 4).expect("a pool");
        db.migrate().await.expect("migrate");
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        db.join(a, "a").await.expect("join a");
        db.join(b, "b").await.expect("join b");
        let runs = vec![NewRun::new("k"), NewRun::new("k").max_attempts(1)];
        let ids: Vec<RunId> = db
            .submit(&runs, &[true, true])
            .await
            .expect("submit")
            .into_iter()
            .map(|r| r.expect("accepted"))
            .collect();
        let claimed = db.claim(a, "a", 10, 1).await.expect("claim");
        assert_eq!(claimed.len(), 2);
        // b cannot claim what a holds.
        assert!(db.claim(b, "b", 10, 1).await.expect("claim").is_empty());

        // a goes silent; b's heartbeats go on; the rescue declares a dead.
        let c = db.pool.get().await.expect("a connection");
        c.execute(
            "UPDATE rw_nodes SET heartbeat_at = now() - interval '1 hour' WHERE id = $1",
            &[&a],
        )
        .await
        .expect("age a");
        let rescued = db.rescue(Duration::from_secs(10)).await.expect("rescue");
        assert_eq!(rescued.nodes_declared_dead, 1);
        assert_eq!((rescued.requeued, rescued.failed), (1, 1), "{rescued:?}");

        // a's late writes, with its old epochs, are all refused.
        let late: Vec<Finish> = claimed
            .iter()
            .map(|c| Finish {
                id: c.id,
                epoch: c.epoch,
                outcome: ended(),
                log: None,
            })
            .collect();
        assert!(db.finish(a, &late, &[]).await.expect("finish").is_empty());
        assert!(!db.heartbeat(a).await.expect("heartbeat"), "a is dead");
        let lead = db.try_lead(a, Duration::from_secs(1)).await.expect("lead");
        assert!(!lead, "a dead node cannot lead");
        assert!(db.claim(a, "a", 10, 1).await.expect("claim").is_empty());

        // The re-queued run is b's now, at a new epoch; a's old epoch cannot end it even
        // under b's name, and b's own write does.
        tokio::time::sleep(Duration::from_millis(300)).await; // the rescue's backoff
        let again = db.claim(b, "b", 10, 1).await.expect("claim");
        assert_eq!(again.len(), 1);
        let old = claimed
            .iter()
            .find(|c| c.id == again[0].id)
            .expect("the same run");
        assert!(again[0].epoch > old.epoch);
        let stale = Finish {
            id: old.id,
            epoch: old.epoch,
            outcome: ended(),
            log: None,
        };
        assert!(
            db.finish(b, &[stale], &[])
                .await
                .expect("finish")
                .is_empty()
        );
        let fresh = Finish {
            id: again[0].id,
            epoch: again[0].epoch,
            outcome: ended(),
            log: None,
        };
        assert_eq!(
            db.finish(b, std::slice::from_ref(&fresh), &[])
                .await
                .expect("finish"),
            vec![fresh.id]
        );
        // A terminal row never changes again.
        assert!(
            db.finish(b, &[fresh], &[])
                .await
                .expect("finish")
                .is_empty()
        );

        let one = db.get(ids[0]).await.expect("get").expect("a run");
        let two = db.get(ids[1]).await.expect("get").expect("a run");
        let (requeued, failed) = if one.status == RunStatus::Completed {
            (one, two)
        } else {
            (two, one)
        };
        assert_eq!(requeued.status, RunStatus::Completed);
        assert_eq!(requeued.node.as_deref(), Some("b"));
        assert_eq!(requeued.attempt, 2);
        assert_eq!(failed.status, RunStatus::Failed);
        assert_eq!(failed.error_kind, Some(runwarden::ErrorKind::NodeLost));
    }
}
