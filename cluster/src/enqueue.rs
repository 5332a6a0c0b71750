//! Transactional enqueue: runs submitted in the application's own transaction exist if and
//! only if that transaction commits.

use runwarden::RunId;
use tokio_postgres::GenericClient;

use crate::config::ClusterKinds;
use crate::db::insert_runs;
use crate::error::ClusterError;
use crate::run::NewRun;

/// Submits `runs` through the application's own connection to the cluster's database,
/// usually inside its transaction (`tokio_postgres::Transaction`; with deadpool, `&*tx`):
/// the runs exist, and nodes hear of them, if and only if the transaction commits; rolled
/// back or failed, it leaves nothing. Answers per run, in order: its id, or
/// [`ClusterError::DuplicateKey`] naming the run that holds its idempotency key.
///
/// `kinds` gives each run's loss rule and refuses unknown kinds before anything is written.
/// The database must already be migrated (any node's start does it).
///
/// # Errors
/// [`ClusterError::UnknownKind`] or [`ClusterError::BadRequest`] for a run that cannot be
/// taken (nothing was written: the transaction is as it was), or the database's error (the
/// transaction is then aborted, as PostgreSQL does after any error).
pub async fn enqueue<C: GenericClient + Sync>(
    tx: &C,
    kinds: &ClusterKinds,
    runs: &[NewRun],
) -> Result<Vec<Result<RunId, ClusterError>>, ClusterError> {
    let rules = kinds.rules(runs)?;
    insert_runs(tx, runs, &rules).await
}
