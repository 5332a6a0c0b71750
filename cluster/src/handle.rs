//! [`Node`]: the async handle over a node actor; one call per [`NodeMessage`].

use std::time::Duration;

use ractor::{Actor, ActorCell, ActorRef};
use runwarden::RunId;

use crate::config::{ClusterKinds, NodeConfig};
use crate::error::ClusterError;
use crate::events::EventCursor;
use crate::feed::EventFeed;
use crate::node::{NodeActor, NodeArguments};
use crate::protocol::{ListRuns, NodeDrainReport, NodeInfo, NodeMessage};
use crate::run::{
    CancelAnswer, ClusterRun, ClusterStats, LogLine, NewRun, QueueLimit, ScheduleInfo,
};

/// How long a query waits for the node actor and the database.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A handle to a running node. Cheap to clone; every method is one message to the node actor.
#[derive(Debug, Clone)]
pub struct Node {
    actor: ActorRef<NodeMessage>,
}

impl Node {
    /// Starts a node: connects, migrates the schema, joins the cluster under a new id, and
    /// begins claiming.
    ///
    /// # Errors
    /// Bad settings, or the database could not be reached or migrated.
    pub async fn start(config: NodeConfig, kinds: ClusterKinds) -> Result<Self, ClusterError> {
        let (actor, _) = Actor::spawn(None, NodeActor, NodeArguments { config, kinds })
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        Ok(Node { actor })
    }

    /// [`start`](Self::start), the node actor linked under `parent` (the application's own
    /// supervisor hears of its end).
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn start_linked(
        config: NodeConfig,
        kinds: ClusterKinds,
        parent: ActorCell,
    ) -> Result<Self, ClusterError> {
        let (actor, _) =
            Actor::spawn_linked(None, NodeActor, NodeArguments { config, kinds }, parent)
                .await
                .map_err(|e| ClusterError::Unavailable(e.to_string()))?;
        Ok(Node { actor })
    }

    /// The node actor, to message it directly.
    #[must_use]
    pub fn actor(&self) -> &ActorRef<NodeMessage> {
        &self.actor
    }

    /// Commits a run; answers once it is committed (any node may then run it).
    ///
    /// # Errors
    /// [`ClusterError::UnknownKind`], [`ClusterError::DuplicateKey`], [`ClusterError::Closed`]
    /// while draining, or the database's error (then nothing was committed).
    pub async fn submit(&self, run: NewRun) -> Result<RunId, ClusterError> {
        ractor::call_t!(
            self.actor,
            NodeMessage::Submit,
            CALL_TIMEOUT.as_millis() as u64,
            Box::new(run)
        )?
    }

    /// Commits runs in one transaction; one answer per run.
    ///
    /// # Errors
    /// An unknown kind or a bad run refuses the whole batch; a key already held refuses only
    /// its run.
    pub async fn submit_many(
        &self,
        runs: Vec<NewRun>,
    ) -> Result<Vec<Result<RunId, ClusterError>>, ClusterError> {
        ractor::call_t!(
            self.actor,
            NodeMessage::SubmitMany,
            CALL_TIMEOUT.as_millis() as u64,
            runs
        )?
    }

    /// One run, wherever it ran.
    ///
    /// # Errors
    /// The database's error.
    pub async fn status(&self, id: RunId) -> Result<Option<ClusterRun>, ClusterError> {
        ractor::call_t!(
            self.actor,
            NodeMessage::Status,
            CALL_TIMEOUT.as_millis() as u64,
            id
        )?
    }

    /// Runs, newest first.
    ///
    /// # Errors
    /// The database's error.
    pub async fn list(&self, query: ListRuns) -> Result<Vec<ClusterRun>, ClusterError> {
        ractor::call_t!(
            self.actor,
            NodeMessage::List,
            CALL_TIMEOUT.as_millis() as u64,
            query
        )?
    }

    /// Counts over the whole cluster.
    ///
    /// # Errors
    /// The database's error.
    pub async fn stats(&self) -> Result<ClusterStats, ClusterError> {
        ractor::call_t!(
            self.actor,
            NodeMessage::Stats,
            CALL_TIMEOUT.as_millis() as u64
        )?
    }

    /// Cancels a run wherever it runs.
    ///
    /// # Errors
    /// The database's error.
    pub async fn cancel(&self, id: RunId) -> Result<CancelAnswer, ClusterError> {
        ractor::call_t!(
            self.actor,
            NodeMessage::Cancel,
            CALL_TIMEOUT.as_millis() as u64,
            id
        )?
    }

    /// Answers when the run has ended, wherever it runs. No timeout: wrap it in one.
    ///
    /// # Errors
    /// No such run, or the database's error.
    pub async fn wait(&self, id: RunId) -> Result<ClusterRun, ClusterError> {
        ractor::call!(self.actor, NodeMessage::Wait, id)?
    }

    /// A feed of the cluster's status changes after `after` (`None`: from now), from every
    /// node, in commit order. A feed resumed from the cursor of the last event it handed out
    /// misses nothing and repeats nothing, for as long as retention keeps the events.
    ///
    /// # Errors
    /// The database's error, or the node actor is gone.
    pub async fn events(&self, after: Option<EventCursor>) -> Result<EventFeed, ClusterError> {
        ractor::call_t!(
            self.actor,
            NodeMessage::Events,
            CALL_TIMEOUT.as_millis() as u64,
            after
        )?
    }

    /// Adds (or replaces) the schedule `name`: at each fire time of `cron` the leader submits
    /// `run` once for the whole cluster, following the schedule's overlap and missed-fire
    /// policies and its starting deadline (fires missed while no leader ran become at most
    /// one). The run's label is the schedule's name unless `run` has one.
    ///
    /// # Errors
    /// [`ClusterError::UnknownKind`] or [`ClusterError::BadRequest`] for a run this node's
    /// kinds refuse, or the database's error.
    pub async fn schedule(
        &self,
        name: impl Into<String>,
        cron: runwarden::CronSchedule,
        run: NewRun,
    ) -> Result<(), ClusterError> {
        let spec = Box::new((name.into(), cron, run));
        ractor::call_t!(
            self.actor,
            NodeMessage::Schedule,
            CALL_TIMEOUT.as_millis() as u64,
            spec
        )?
    }

    /// Removes the schedule `name`; `false` if there was none.
    ///
    /// # Errors
    /// The database's error.
    pub async fn unschedule(&self, name: impl Into<String>) -> Result<bool, ClusterError> {
        let name = name.into();
        ractor::call_t!(
            self.actor,
            NodeMessage::Unschedule,
            CALL_TIMEOUT.as_millis() as u64,
            name
        )?
    }

    /// Every schedule of the cluster, with what each has done.
    ///
    /// # Errors
    /// The database's error.
    pub async fn schedules(&self) -> Result<Vec<ScheduleInfo>, ClusterError> {
        ractor::call_t!(
            self.actor,
            NodeMessage::Schedules,
            CALL_TIMEOUT.as_millis() as u64
        )?
    }

    /// Lets at most `limit` runs of `queue` run at once over the whole cluster (`None` lifts
    /// the limit). A dead node's runs count until they are rescued, so a crash never lets
    /// more run; runs already running above a lowered limit go on.
    ///
    /// # Errors
    /// The database's error.
    pub async fn set_queue_limit(
        &self,
        queue: impl Into<String>,
        limit: Option<u32>,
    ) -> Result<(), ClusterError> {
        let queue = queue.into();
        ractor::call_t!(
            self.actor,
            NodeMessage::SetQueueLimit,
            CALL_TIMEOUT.as_millis() as u64,
            queue,
            limit
        )?
    }

    /// The queues limited cluster-wide, with how many of each run now.
    ///
    /// # Errors
    /// The database's error.
    pub async fn queue_limits(&self) -> Result<Vec<QueueLimit>, ClusterError> {
        ractor::call_t!(
            self.actor,
            NodeMessage::QueueLimits,
            CALL_TIMEOUT.as_millis() as u64
        )?
    }

    /// The log of a run's attempt (`None`: its latest), from whichever node ran it: live
    /// from the node running it, else the last lines (`log_lines_kept`) its node copied to
    /// the database with the attempt's outcome. Empty when nothing was logged, or the node
    /// that ran it keeps no logs.
    ///
    /// # Errors
    /// The database's error.
    pub async fn logs(
        &self,
        run: RunId,
        attempt: Option<u32>,
    ) -> Result<Vec<LogLine>, ClusterError> {
        ractor::call_t!(
            self.actor,
            NodeMessage::Logs,
            CALL_TIMEOUT.as_millis() as u64,
            run,
            attempt
        )?
    }

    /// This node's own account.
    ///
    /// # Errors
    /// The node actor is gone.
    pub async fn info(&self) -> Result<NodeInfo, ClusterError> {
        Ok(ractor::call_t!(
            self.actor,
            NodeMessage::Info,
            CALL_TIMEOUT.as_millis() as u64
        )?)
    }

    /// Drains this node (see [`NodeMessage::Drain`]) and waits for the actor to stop.
    ///
    /// # Errors
    /// The node actor is gone.
    pub async fn drain(&self, deadline: Duration) -> Result<NodeDrainReport, ClusterError> {
        let report = ractor::call!(self.actor, NodeMessage::Drain, deadline)?;
        let cell = self.actor.get_cell();
        while cell.get_status() != ractor::ActorStatus::Stopped {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(report)
    }
}
