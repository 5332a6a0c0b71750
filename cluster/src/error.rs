//! [`ClusterError`]: everything a cluster call can answer instead of a result.

use std::fmt;

/// Why a cluster call did not do what was asked.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClusterError {
    /// The database refused or could not be reached; the text is PostgreSQL's (or the
    /// client's) own. Nothing was acknowledged: a submit that answers this may or may not
    /// have committed only if the connection broke during the commit itself.
    Database(String),
    /// The database was migrated by a newer build of runwarden-cluster; it was not changed.
    NewerSchema {
        /// The version found.
        found: i32,
        /// The newest version this build knows.
        known: i32,
    },
    /// No job kind of this name is registered on this node.
    UnknownKind(String),
    /// A submit's fields are not acceptable (the text says which and why).
    BadRequest(String),
    /// An active run already holds this idempotency key (its id is given).
    DuplicateKey(runwarden::RunId),
    /// The node is draining or has stopped: it accepts no new work.
    Closed,
    /// The node actor did not answer in time, or is gone.
    Unavailable(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Database(e) => write!(f, "database: {e}"),
            ClusterError::NewerSchema { found, known } => write!(
                f,
                "the database is at cluster schema {found}, newer than this build's {known}"
            ),
            ClusterError::UnknownKind(k) => write!(f, "no job kind named `{k}` on this node"),
            ClusterError::BadRequest(why) => write!(f, "bad request: {why}"),
            ClusterError::DuplicateKey(id) => {
                write!(f, "run {id} already holds this idempotency key")
            }
            ClusterError::Closed => f.write_str("the node is draining or stopped"),
            ClusterError::Unavailable(why) => write!(f, "the node did not answer: {why}"),
        }
    }
}

impl std::error::Error for ClusterError {}

impl From<tokio_postgres::Error> for ClusterError {
    fn from(e: tokio_postgres::Error) -> Self {
        // The server's message (with its detail) is the useful part; the client's Display
        // alone says only "db error".
        match e.as_db_error() {
            Some(db) => ClusterError::Database(match db.detail() {
                Some(d) => format!("{}: {d}", db.message()),
                None => db.message().to_owned(),
            }),
            None => ClusterError::Database(e.to_string()),
        }
    }
}

impl From<deadpool_postgres::PoolError> for ClusterError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => ClusterError::Database(other.to_string()),
        }
    }
}

impl<T> From<ractor::RactorErr<T>> for ClusterError {
    fn from(e: ractor::RactorErr<T>) -> Self {
        ClusterError::Unavailable(e.to_string())
    }
}
