//! runwarden on PostgreSQL: many nodes, one queue and one history, no run lost and none run
//! twice when a node dies.
//!
//! Each process runs a [`Node`]: a node actor that claims runs from the database for its free
//! capacity and runs each in a local runwarden supervisor (one worker actor per run, a local
//! registry). PostgreSQL is the system of record: a submit is committed before it is
//! acknowledged, a claim takes a lease (the node, an epoch), every write that takes a run out
//! of `running` is fenced on that lease, and a leader declares silent nodes dead and takes
//! their runs back. LISTEN/NOTIFY only wakes nodes early; they also poll.
//!
//! ```no_run
//! use runwarden::{BoxedJob, OnInterrupt};
//! use runwarden_cluster::{ClusterKinds, NewRun, Node, NodeConfig};
//!
//! # async fn demo() -> Result<(), runwarden_cluster::ClusterError> {
//! let kinds = ClusterKinds::new().register("hello", OnInterrupt::Rerun, |input| {
//!     let who = input.params.get("who").and_then(|v| v.as_str()).unwrap_or("world").to_owned();
//!     Ok(BoxedJob::new(move |_ctx| async move { Ok(runwarden::Json::from(format!("hello, {who}"))) }))
//! });
//! let node = Node::start(NodeConfig::new("postgres://localhost/jobs", "node-a"), kinds).await?;
//! let id = node.submit(NewRun::new("hello").param("who", "cluster")).await?;
//! let run = node.wait(id).await?;
//! println!("{:?}: {:?}", run.status, run.result);
//! # Ok(()) }
//! ```

mod config;
mod db;
mod enqueue;
mod error;
mod events;
mod feed;
mod handle;
pub mod http;
mod node;
pub mod postgres;
mod protocol;
mod run;
mod schema;

pub use config::{ClusterKinds, JobInput, NodeConfig};
pub use enqueue::enqueue;
pub use error::ClusterError;
pub use events::{ClusterEvent, EventCursor};
pub use feed::EventFeed;
pub use handle::Node;
pub use node::{NodeActor, NodeArguments, NodeState};
pub use protocol::{ListRuns, NodeDrainReport, NodeInfo, NodeMessage, NodeStep};
pub use run::{
    CancelAnswer, ClusterRun, ClusterStats, DEFAULT_MAX_ATTEMPTS, LogLine, NewRun, Params,
    QueueLimit, ScheduleInfo,
};
pub use schema::SCHEMA_VERSION;
