//! The node actor's messages: [`NodeMessage`], its replies, and the sealed internal steps.
//!
//! Everything the async [`Node`](crate::Node) handle does is one of these messages, so an
//! application that embeds a node under its own supervisor does the same by message.

use std::time::Duration;

use ractor::RpcReplyPort;
use runwarden::{RunId, RunRecord, RunStatus};
use serde::Serialize;
use uuid::Uuid;

use crate::db::{Claimed, Owned, Rescued};
use crate::error::ClusterError;
use crate::events::EventCursor;
use crate::feed::EventFeed;
use crate::run::{
    CancelAnswer, ClusterRun, ClusterStats, LogLine, NewRun, QueueLimit, ScheduleInfo,
};

/// A listing's filter: one status or all, newest first, a page at a time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListRuns {
    /// Only runs of this status.
    pub status: Option<RunStatus>,
    /// At most this many (100 if 0).
    pub limit: usize,
    /// Only runs older than this one (the last id of the previous page).
    pub before: Option<RunId>,
}

/// One node as it sees itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeInfo {
    /// Its id now (a new one after it fenced itself and rejoined).
    pub id: Uuid,
    /// Its name (a label: ids are what the cluster goes by).
    pub name: String,
    /// Does it hold the leader's lease (as of its last heartbeat)?
    pub leader: bool,
    /// Runs it has claimed that have not ended here.
    pub running: usize,
    /// Runs it has claimed since it started.
    pub claimed: u64,
    /// Outcomes it wrote.
    pub written: u64,
    /// Outcomes the database refused because the lease was lost (the run was rescued while
    /// this node ran it): discarded, never a second terminal status.
    pub fenced_out: u64,
    /// Runs it stopped and forgot when it fenced itself.
    pub discarded: u64,
    /// Times it fenced itself (it could not heartbeat for `fence_after`, or was declared dead).
    pub self_fenced: u64,
    /// What its rescues did, if it has led.
    pub rescued_requeued: u64,
    /// Runs its rescues failed (`node_lost`) or cancelled.
    pub rescued_ended: u64,
    /// Runs its schedules submitted, leading.
    pub scheduled: u64,
    /// Events its retention passes deleted, leading.
    pub retained_events: u64,
    /// Ended runs its retention passes deleted, leading.
    pub retained_runs: u64,
    /// Runs the database said it held but it never got (a claim whose answer was lost with
    /// its connection), handed back to the queue.
    pub reconciled: u64,
}

/// What draining one node did, per run it held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NodeDrainReport {
    /// Runs that completed during the drain.
    pub completed: u64,
    /// Runs that failed (their last attempt).
    pub failed: u64,
    /// Runs cancelled (by a caller, or at the deadline).
    pub cancelled: u64,
    /// Runs queued again for another attempt after a failure.
    pub retried: u64,
    /// Claimed runs that had not started, handed back to the queue for other nodes.
    pub handed_back: u64,
    /// Outcomes refused because the lease had been lost, over the node's life.
    pub fenced_out: u64,
    /// Runs stopped and forgotten when the node fenced itself, over its life.
    pub discarded: u64,
    /// Times the node fenced itself, over its life.
    pub self_fenced: u64,
}

/// A message to a node actor.
#[derive(Debug)]
#[non_exhaustive]
pub enum NodeMessage {
    /// Commit a run to the cluster; the answer comes after the commit.
    Submit(Box<NewRun>, RpcReplyPort<Result<RunId, ClusterError>>),
    /// Commit runs in one transaction; one answer per run, in order.
    SubmitMany(
        Vec<NewRun>,
        RpcReplyPort<Result<Vec<Result<RunId, ClusterError>>, ClusterError>>,
    ),
    /// One run, from the system of record.
    Status(
        RunId,
        RpcReplyPort<Result<Option<ClusterRun>, ClusterError>>,
    ),
    /// Runs, newest first.
    List(
        ListRuns,
        RpcReplyPort<Result<Vec<ClusterRun>, ClusterError>>,
    ),
    /// Counts over the whole cluster.
    Stats(RpcReplyPort<Result<ClusterStats, ClusterError>>),
    /// Cancel a run, wherever it runs.
    Cancel(RunId, RpcReplyPort<Result<CancelAnswer, ClusterError>>),
    /// Answer when the run has ended, wherever it runs (or at once if it has).
    Wait(RunId, RpcReplyPort<Result<ClusterRun, ClusterError>>),
    /// A feed of the cluster's events after a cursor (`None`: from now). The feed reads the
    /// database itself; the node only hands it out.
    Events(
        Option<EventCursor>,
        RpcReplyPort<Result<EventFeed, ClusterError>>,
    ),
    /// Add or replace a schedule (name, when, what): the leader submits one run per fire
    /// time for the whole cluster.
    Schedule(
        Box<(String, runwarden::CronSchedule, NewRun)>,
        RpcReplyPort<Result<(), ClusterError>>,
    ),
    /// Remove a schedule; `false` if there was none of that name.
    Unschedule(String, RpcReplyPort<Result<bool, ClusterError>>),
    /// Every schedule, with what it has done.
    Schedules(RpcReplyPort<Result<Vec<ScheduleInfo>, ClusterError>>),
    /// Limit a queue cluster-wide (`None`: lift its limit).
    SetQueueLimit(String, Option<u32>, RpcReplyPort<Result<(), ClusterError>>),
    /// The queues limited cluster-wide.
    QueueLimits(RpcReplyPort<Result<Vec<QueueLimit>, ClusterError>>),
    /// The log of a run's attempt (`None`: the latest): live from this node while it runs
    /// the attempt, else the lines its node copied to the database when the attempt ended.
    Logs(
        RunId,
        Option<u32>,
        RpcReplyPort<Result<Vec<LogLine>, ClusterError>>,
    ),
    /// This node's own account.
    Info(RpcReplyPort<NodeInfo>),
    /// Stop claiming, let runs finish until the deadline, cancel the rest, hand back what
    /// never started, leave the cluster cleanly, and stop the actor. Every caller gets the
    /// report.
    Drain(Duration, RpcReplyPort<NodeDrainReport>),
    /// An internal step (sealed: only this crate makes one).
    Step(NodeStep),
}

/// A step of the node's own protocol (heartbeats, claims, ends, writes). Other crates can
/// neither build nor forge one.
#[derive(Debug)]
pub struct NodeStep(pub(crate) Step);

#[derive(Debug)]
pub(crate) enum Step {
    /// Time for a heartbeat (and, when leading, a rescue pass).
    Tick,
    /// A heartbeat's answer: the node id it renewed, when it was sent, and whether the
    /// node is still alive.
    Beat(Uuid, std::time::Instant, Result<bool, ClusterError>),
    /// The leader's lease, a rescue if leading, and the node's cancel requests.
    Duties(Result<Duties, ClusterError>),
    /// There may be runs to claim.
    Wake,
    /// A claim's answer: the node id it claimed under, the claim's number, and how many
    /// runs it asked for.
    Claimed(Uuid, u64, usize, Result<Vec<Claimed>, ClusterError>),
    /// A local run ended (its record from the local registry).
    Ended(RunId, Box<RunRecord>),
    /// The writer committed a batch: the runs it wrote, and how many writes were refused.
    Written { runs: Vec<RunId>, refused: usize },
    /// Someone asked to cancel this cluster run.
    CancelHint(RunId),
    /// The node (re)joined the cluster under this id.
    Joined(Uuid, Result<(), ClusterError>),
    /// The local executor finished its drain.
    LocalDrained,
}

#[derive(Debug)]
pub(crate) struct Duties {
    /// The id the pass was for.
    pub(crate) node: Uuid,
    pub(crate) leader: bool,
    pub(crate) rescued: Rescued,
    pub(crate) cancels: Vec<RunId>,
    /// Leading: events and ended runs deleted by retention.
    pub(crate) retained: (u64, u64),
    /// Leading: runs the schedules submitted.
    pub(crate) fired: u64,
    /// The runs the database says this node holds.
    pub(crate) owned: Vec<Owned>,
}

impl From<Step> for NodeMessage {
    fn from(s: Step) -> Self {
        NodeMessage::Step(NodeStep(s))
    }
}
