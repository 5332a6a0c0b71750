//! A run on its way between actors: its admission, its job and how to run it, the attempt a
//! worker executes, and the cancel requests that follow it.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ractor::RpcReplyPort;
use serde::{Deserialize, Serialize};

use crate::error::CancelError;
use crate::job::BoxedJob;
use crate::json::JsonObject;
use crate::queue::QueueSlot;
pub use crate::run::CancelReason;
use crate::run::{Dependency, DependencyOutcome, WorkflowId};
use crate::run::{RetryPolicy, RunId, RunSpec};
use crate::time::Timestamp;

/// A reply port for a cancel request.
pub type CancelReply = RpcReplyPort<Result<CancelOutcome, CancelError>>;

/// A run's job, and how to run it, travelling with its admission. Only runwarden builds one.
pub struct Submission {
    pub(crate) job: BoxedJob,
    pub(crate) slot: Option<QueueSlot>,
    pub(crate) timeout: Option<Duration>,
    /// Boxed, as in [`PreparedRun`]: most runs have none, and every admission in flight
    /// (the whole burst of a fast submitter) carries this struct.
    pub(crate) retry: Option<Box<RetryPolicy>>,
}

/// A run a submitter admitted: its fresh id, its spec and its job. Only runwarden builds one.
pub struct Admission {
    pub(crate) id: RunId,
    pub(crate) created_at: Timestamp,
    pub(crate) spec: AdmittedSpec,
    /// The job, and the spec's limits as the queue resolved them.
    pub(crate) submission: Submission,
    /// What it depends on and belongs to; most runs have none.
    pub(crate) links: Option<Box<RunLinks>>,
}

/// A [`RunSpec`] as it travels in its admission: its limits are in the [`Submission`] beside
/// it, its name only when it differs from its label, and the fields most runs leave empty in
/// one optional box. Every admission of a burst is in flight at once (a submitter outruns the
/// registry), so their size is what a burst of submits costs in memory and in fresh pages.
pub(crate) struct AdmittedSpec {
    pub(crate) label: String,
    /// `None` when it is the label.
    pub(crate) name: Option<String>,
    pub(crate) params: JsonObject,
    pub(crate) queue: Option<String>,
    pub(crate) priority: i32,
    pub(crate) rare: Option<Box<RareSpec>>,
}

/// What most specs leave empty.
#[derive(Default)]
pub(crate) struct RareSpec {
    pub(crate) kind: Option<String>,
    pub(crate) partition_key: Option<String>,
    pub(crate) trace_parent: Option<String>,
}

impl AdmittedSpec {
    /// The travelling form of `spec` (its limits are left to the submission).
    pub(crate) fn new(spec: RunSpec) -> Self {
        let RunSpec {
            label,
            name,
            params,
            queue,
            priority,
            timeout: _,
            retry: _,
            kind,
            partition_key,
            trace_parent,
        } = spec;
        let rare =
            (kind.is_some() || partition_key.is_some() || trace_parent.is_some()).then(|| {
                Box::new(RareSpec {
                    kind,
                    partition_key,
                    trace_parent,
                })
            });
        AdmittedSpec {
            name: (name != label).then_some(name),
            label,
            params,
            queue,
            priority,
            rare,
        }
    }

    pub(crate) fn queue_name(&self) -> &str {
        self.queue.as_deref().unwrap_or(crate::run::DEFAULT_QUEUE)
    }
}

/// An admitted run's links to other runs: what it waits for, the workflow step it is, the
/// run it re-runs.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunLinks {
    pub(crate) depends_on: Vec<Dependency>,
    pub(crate) workflow: Option<(WorkflowId, String)>,
    pub(crate) rerun_of: Option<RunId>,
    /// The re-run original's record, read from the store when the registry does not hold it
    /// in memory: it is taken back into memory to carry the link.
    pub(crate) original: Option<Box<crate::run::RunRecord>>,
}

impl Admission {
    /// A run admitted now with a fresh id.
    pub(crate) fn new(id: RunId, spec: RunSpec, submission: Submission) -> Box<Self> {
        Box::new(Admission {
            id,
            created_at: Timestamp::now(),
            spec: AdmittedSpec::new(spec),
            submission,
            links: None,
        })
    }

    /// The same admission with these links.
    pub(crate) fn linked(mut self: Box<Self>, links: Option<Box<RunLinks>>) -> Box<Self> {
        self.links = links;
        self
    }
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("id", &self.id)
            .field("label", &self.spec.label)
            .finish_non_exhaustive()
    }
}

impl Submission {
    /// A job without a queue-length slot, time limit or retry (recovery, tests).
    pub(crate) fn new(job: BoxedJob) -> Self {
        Submission {
            job,
            slot: None,
            timeout: None,
            retry: None,
        }
    }

    /// Its time limit and retry policy.
    pub(crate) fn limits(&self) -> (Option<Duration>, Option<RetryPolicy>) {
        (self.timeout, self.retry.as_deref().copied())
    }

    /// A job admitted to its queue by a submitter, with the spec's resolved limits.
    pub(crate) fn admitted(job: BoxedJob, slot: QueueSlot, spec: &RunSpec) -> Self {
        Submission {
            job,
            slot: Some(slot),
            timeout: spec.timeout,
            retry: spec.retry.map(Box::new),
        }
    }
}

impl fmt::Debug for Submission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Submission")
            .field("job", &self.job)
            .field("timeout", &self.timeout)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

/// One attempt of a run on its way from the registry to the supervisor and on to a worker.
/// Its fields are private so only runwarden's actors can make one.
pub struct PreparedRun {
    pub(crate) id: RunId,
    pub(crate) label: Arc<str>,
    pub(crate) queue: Arc<str>,
    pub(crate) priority: i32,
    pub(crate) attempt: u32,
    /// Snoozes so far, for the job's context.
    pub(crate) snoozes: u32,
    pub(crate) timeout: Option<Duration>,
    /// Boxed: most runs have none, and a queued run's size counts.
    pub(crate) retry: Option<Box<RetryPolicy>>,
    pub(crate) job: Option<BoxedJob>,
    /// The run's place in its queue's length bound, held until the run first starts.
    pub(crate) slot: Option<QueueSlot>,
    /// It waits for its dependencies: the supervisor holds it, unqueued, until the registry
    /// says they have ended.
    pub(crate) awaiting: bool,
    /// What only some runs have: boxed, as every queued and running run holds this struct.
    rare: Option<Box<RareRun>>,
}

// Every queued run holds one: 136 B is a 144 B chunk in glibc's malloc (8 B header, 16 B steps),
// 16 B less per queued run than the next size up.
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<PreparedRun>() <= 136);

/// The parts of a prepared run that most runs leave empty.
#[derive(Default)]
struct RareRun {
    /// The partition key, shared with the record.
    partition: Option<Arc<str>>,
    /// Not to start before this (a recovered run's `next_attempt_at`); the supervisor holds
    /// it until then.
    not_before: Option<Timestamp>,
    /// How its dependencies ended, for its job's context.
    dependencies: Option<Arc<[DependencyOutcome]>>,
    /// What its span shows beyond id, label, queue and attempt.
    span: Option<RunSpanInfo>,
}

/// A run's name (when it differs from its label), kind and the trace it continues: what its
/// worker's span needs beyond the prepared run's own fields.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunSpanInfo {
    pub(crate) name: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) trace_parent: Option<String>,
}

impl PreparedRun {
    /// The next attempt of a recorded run: `attempt` is the record's attempt number.
    pub(crate) fn new(
        id: RunId,
        label: Arc<str>,
        (queue, partition): (Arc<str>, Option<Arc<str>>),
        (priority, attempt, snoozes): (i32, u32, u32),
        submission: Submission,
    ) -> Box<Self> {
        Box::new(PreparedRun {
            id,
            label,
            queue,
            priority,
            attempt,
            snoozes,
            timeout: submission.timeout,
            retry: submission.retry,
            job: Some(submission.job),
            slot: submission.slot,
            awaiting: false,
            rare: partition.map(|partition| {
                Box::new(RareRun {
                    partition: Some(partition),
                    ..RareRun::default()
                })
            }),
        })
    }

    /// Its partition key, if it has one.
    pub(crate) fn partition(&self) -> &Option<Arc<str>> {
        static NONE: Option<Arc<str>> = None;
        self.rare.as_ref().map_or(&NONE, |r| &r.partition)
    }

    fn rare_mut(&mut self) -> &mut RareRun {
        self.rare.get_or_insert_with(Box::default)
    }

    /// What its record adds to a prepared run: not to start before `not_before` (`None`: at
    /// once), and what its span shows beyond id, label, queue and attempt.
    pub(crate) fn recorded(
        mut self: Box<Self>,
        not_before: Option<Timestamp>,
        span: Option<RunSpanInfo>,
    ) -> Box<Self> {
        if not_before.is_some() || span.is_some() {
            let rare = self.rare_mut();
            rare.not_before = not_before;
            rare.span = span;
        }
        self
    }

    /// Takes the time it may not start before, if it has one.
    pub(crate) fn take_not_before(&mut self) -> Option<Timestamp> {
        self.rare.as_mut()?.not_before.take()
    }

    /// Sets how its dependencies ended.
    pub(crate) fn set_dependencies(&mut self, outcomes: Arc<[DependencyOutcome]>) {
        self.rare_mut().dependencies = Some(outcomes);
    }

    /// How its dependencies ended, if it had any.
    pub(crate) fn dependencies(&self) -> Option<Arc<[DependencyOutcome]>> {
        self.rare.as_ref()?.dependencies.clone()
    }

    /// What its span shows beyond id, label, queue and attempt; most runs have nothing.
    pub(crate) fn span(&self) -> Option<&RunSpanInfo> {
        self.rare.as_ref()?.span.as_ref()
    }

    pub(crate) fn has_job(&self) -> bool {
        self.job.is_some()
    }

    /// The job for one attempt: a handle to a repeatable job (which stays for retries), or
    /// the run-once job itself.
    pub(crate) fn take_job_for_attempt(&mut self) -> Option<BoxedJob> {
        match self.job.as_ref().and_then(BoxedJob::try_clone) {
            Some(job) => Some(job),
            None => self.job.take(),
        }
    }
}

impl fmt::Debug for PreparedRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedRun")
            .field("id", &self.id)
            .field("label", &self.label)
            .field("queue", &self.queue)
            .field("priority", &self.priority)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// What a successful cancel did. Every `Ok` answer means the run ends `Cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The run was queued (or waiting to be retried): it is `Cancelled` now, and its job will
    /// not run again.
    CancelledWhileQueued,
    /// The run was running: its job was signalled and the run will end `Cancelled`, at the
    /// latest when the grace period runs out.
    Signalled,
    /// A cancel was already under way; the run will end `Cancelled`.
    AlreadyCancelling,
}
