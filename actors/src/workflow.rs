//! Runs that depend on runs: [`Dependency`], [`Workflow`] (named steps submitted as one graph)
//! and [`Batch`] (a group of runs with a callback run).
//!
//! A run with dependencies is recorded `Waiting` and holds no concurrency slot. When every
//! dependency has ended it becomes `Queued` (its job then reads their outcomes through
//! [`RunContext::dependencies`](crate::RunContext::dependencies)), unless one that had to
//! complete did not: then it ends `Cancelled` by [`CancelReason::Dependency`], the message
//! naming that dependency and how it ended. Dependencies must exist before their dependent, so
//! a cycle cannot be built from single submits; a workflow's graph is checked whole.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{SubmitError, WorkflowError};
use crate::job::BoxedJob;
use crate::kinds::JobKinds;
use crate::run::{
    Dependency, OnDependencyFailure, RunId, RunRecord, RunSpec, StatusCounts, WorkflowId,
};
use crate::submit::IntoJob;

/// A workflow's overall state, from its runs' statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkflowState {
    /// Some step has not ended.
    Active,
    /// Every step completed.
    Completed,
    /// Every step ended, and at least one failed.
    Failed,
    /// Every step ended, none failed, and at least one was cancelled.
    Cancelled,
}

impl WorkflowState {
    /// The state of a workflow whose runs are counted in `counts`.
    #[must_use]
    pub fn of(counts: &StatusCounts) -> Self {
        if counts.active() > 0 {
            WorkflowState::Active
        } else if counts.failed > 0 {
            WorkflowState::Failed
        } else if counts.cancelled > 0 {
            WorkflowState::Cancelled
        } else {
            WorkflowState::Completed
        }
    }
}

/// A workflow as the registry holds it: every step's record, by step name.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkflowView {
    /// The workflow.
    pub id: WorkflowId,
    /// Its state, from its steps' statuses.
    pub state: WorkflowState,
    /// Its steps' runs counted by status.
    pub counts: StatusCounts,
    /// Each step's run record, by step name.
    pub steps: BTreeMap<String, RunRecord>,
}

impl WorkflowView {
    /// The view of the workflow `id` whose records are `records` (`None` if there are none).
    #[must_use]
    pub fn from_records(id: WorkflowId, records: Vec<RunRecord>) -> Option<Self> {
        if records.is_empty() {
            return None;
        }
        let counts = StatusCounts::of(records.iter().map(|r| r.status));
        let steps = records
            .into_iter()
            .map(|r| (r.step.clone().unwrap_or_else(|| r.id.to_string()), r))
            .collect();
        Some(WorkflowView {
            id,
            state: WorkflowState::of(&counts),
            counts,
            steps,
        })
    }
}

/// A workflow submitted: its id, and each step's run id by step name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowRuns {
    /// The workflow's id.
    pub id: WorkflowId,
    /// Each step's run, by step name.
    pub steps: BTreeMap<String, RunId>,
}

impl WorkflowRuns {
    /// The run of step `name`.
    #[must_use]
    pub fn run(&self, name: &str) -> Option<RunId> {
        self.steps.get(name).copied()
    }
}

/// What a step waits for: another step of its workflow, or a run that already exists.
#[derive(Debug, Clone, PartialEq, Eq)]
enum After {
    Step(String),
    Run(RunId),
}

type JobMaker = Box<dyn FnOnce(&mut RunSpec, &JobKinds) -> Result<BoxedJob, SubmitError> + Send>;

/// One named step of a [`Workflow`]: a run's spec and job, and what it runs after.
pub struct Step {
    name: String,
    spec: RunSpec,
    job: JobMaker,
    after: Vec<(After, OnDependencyFailure)>,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("label", &self.spec.label)
            .field("after", &self.after)
            .finish_non_exhaustive()
    }
}

impl Step {
    /// A step named `name` (unique in its workflow) running `job` with `spec`.
    pub fn new(name: impl Into<String>, spec: RunSpec, job: impl IntoJob + Send + 'static) -> Self {
        Step {
            name: name.into(),
            spec,
            job: Box::new(move |spec, kinds| job.into_job(spec, kinds)),
            after: Vec::new(),
        }
    }

    /// A step running the registered job kind `kind` with `spec`'s parameters: a step that
    /// recovery can re-queue after a crash.
    pub fn kind(name: impl Into<String>, kind: impl Into<String>, spec: RunSpec) -> Self {
        let kind = kind.into();
        Step::new(name, spec, KindByName(kind))
    }

    /// Runs after step `step` has completed; if it does not, this step is cancelled.
    #[must_use]
    pub fn after(mut self, step: impl Into<String>) -> Self {
        self.after
            .push((After::Step(step.into()), OnDependencyFailure::Cancel));
        self
    }

    /// Runs after step `step` has ended, however it ended.
    #[must_use]
    pub fn after_anyway(mut self, step: impl Into<String>) -> Self {
        self.after
            .push((After::Step(step.into()), OnDependencyFailure::RunAnyway));
        self
    }

    /// Runs after the existing run `dependency` (see [`Dependency`]).
    #[must_use]
    pub fn after_run(mut self, dependency: Dependency) -> Self {
        self.after
            .push((After::Run(dependency.run), dependency.on_failure));
        self
    }

    /// The step's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A registered kind named by an owned string (what [`crate::Kind`] is for a `&str`).
struct KindByName(String);

impl IntoJob for KindByName {
    fn into_job(self, spec: &mut RunSpec, kinds: &JobKinds) -> Result<BoxedJob, SubmitError> {
        crate::Kind(&self.0).into_job(spec, kinds)
    }
}

/// A graph of named steps submitted in one call: every step is recorded together (with a
/// store, in one transaction) or, if the graph or any step is refused, none is.
///
/// # Examples
/// ```
/// use runwarden_actors::{RunSpec, Step, SupervisorActor, SupervisorArguments, Workflow};
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let (supervisor, _) = SupervisorActor::spawn(SupervisorArguments::default()).await?;
/// let ok = |_ctx| async { Ok(()) };
/// let media = Workflow::new()
///     .step(Step::new("transcode", RunSpec::new("transcode"), ok))
///     .step(Step::new("thumbnail", RunSpec::new("thumbnail"), ok).after("transcode"))
///     .step(Step::new("caption", RunSpec::new("caption"), ok).after("transcode"))
///     .step(Step::new("publish", RunSpec::new("publish"), ok).after("thumbnail").after("caption"));
/// let runs = supervisor.submit_workflow(media).await??;
/// let publish = supervisor.registry().await?.wait(runs.run("publish").expect("a step")).await??;
/// assert_eq!(publish.status, runwarden_actors::RunStatus::Completed);
/// # supervisor.shutdown(std::time::Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct Workflow {
    steps: Vec<Step>,
}

impl Workflow {
    /// An empty workflow.
    #[must_use]
    pub fn new() -> Self {
        Workflow::default()
    }

    /// Adds a step.
    #[must_use]
    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// How many steps it has.
    #[must_use]
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether it has no steps.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Checks the graph and orders it: every step after the steps it waits for. Each planned
    /// step has its spec, its job maker and its dependencies, within the workflow by position
    /// in the returned order.
    pub(crate) fn plan(self) -> Result<Vec<PlannedStep>, WorkflowError> {
        if self.steps.is_empty() {
            return Err(WorkflowError::Empty);
        }
        let mut index = HashMap::with_capacity(self.steps.len());
        for (i, s) in self.steps.iter().enumerate() {
            if index.insert(s.name.clone(), i).is_some() {
                return Err(WorkflowError::DuplicateStep(s.name.clone()));
            }
        }
        // Edges by position; unknown names are refused.
        let mut waits_for = vec![Vec::new(); self.steps.len()];
        let mut dependents = vec![Vec::new(); self.steps.len()];
        for (i, s) in self.steps.iter().enumerate() {
            for (after, _) in &s.after {
                if let After::Step(name) = after {
                    let Some(&j) = index.get(name) else {
                        return Err(WorkflowError::UnknownStep {
                            step: s.name.clone(),
                            after: name.clone(),
                        });
                    };
                    waits_for[i].push(j);
                    dependents[j].push(i);
                }
            }
        }
        // Kahn's algorithm; what is left over is on or after a cycle. Ties keep the order
        // the steps were given in.
        let mut pending: Vec<usize> = waits_for.iter().map(Vec::len).collect();
        let mut ready: std::collections::VecDeque<usize> =
            (0..pending.len()).filter(|&i| pending[i] == 0).collect();
        let mut order = Vec::with_capacity(pending.len());
        while let Some(i) = ready.pop_front() {
            order.push(i);
            for &d in &dependents[i] {
                pending[d] -= 1;
                if pending[d] == 0 {
                    ready.push_back(d);
                }
            }
        }
        if order.len() < self.steps.len() {
            let stuck = (0..pending.len())
                .filter(|&i| pending[i] > 0)
                .map(|i| self.steps[i].name.clone())
                .collect();
            return Err(WorkflowError::Cycle(stuck));
        }
        let mut position = vec![0; self.steps.len()];
        for (p, &i) in order.iter().enumerate() {
            position[i] = p;
        }
        let mut steps: Vec<Option<Step>> = self.steps.into_iter().map(Some).collect();
        Ok(order
            .iter()
            .map(|&i| {
                let step = steps[i].take().expect("each step is planned once");
                let after = step
                    .after
                    .into_iter()
                    .map(|(after, policy)| match after {
                        After::Step(name) => (Planned::Step(position[index[&name]]), policy),
                        After::Run(id) => (Planned::Run(id), policy),
                    })
                    .collect();
                PlannedStep {
                    name: step.name,
                    spec: step.spec,
                    job: step.job,
                    after,
                }
            })
            .collect())
    }
}

/// A dependency of a planned step: an earlier step (by position in the plan) or a run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Planned {
    Step(usize),
    Run(RunId),
}

/// A step in dependency order, ready to be admitted.
pub(crate) struct PlannedStep {
    pub(crate) name: String,
    pub(crate) spec: RunSpec,
    pub(crate) job: JobMaker,
    pub(crate) after: Vec<(Planned, OnDependencyFailure)>,
}

/// When a [`Batch`]'s callback runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackWhen {
    /// Once every member has ended, however (the default); it reads the counts with
    /// [`RunContext::dependency_counts`](crate::RunContext::dependency_counts).
    #[default]
    AllEnded,
    /// Only if every member completed; otherwise it is cancelled, unstarted.
    AllCompleted,
}

/// A group of runs with a callback run submitted with them, which waits for them all: a
/// [`Workflow`] of `members` steps (named `member-0`, `member-1`, ...) and one `callback`
/// step after every one of them. Its id is a [`WorkflowId`]; its aggregate progress is that
/// workflow's [`WorkflowView::counts`].
pub struct Batch {
    members: Vec<Step>,
    callback: Option<(Step, CallbackWhen)>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("members", &self.members.len())
            .field("callback", &self.callback.as_ref().map(|(_, w)| w))
            .finish()
    }
}

impl Default for Batch {
    fn default() -> Self {
        Batch::new()
    }
}

impl Batch {
    /// The name of the callback's step.
    pub const CALLBACK: &'static str = "callback";

    /// An empty batch.
    #[must_use]
    pub fn new() -> Self {
        Batch {
            members: Vec::new(),
            callback: None,
        }
    }

    /// Adds a member run.
    #[must_use]
    pub fn run(mut self, spec: RunSpec, job: impl IntoJob + Send + 'static) -> Self {
        let name = format!("member-{}", self.members.len());
        self.members.push(Step::new(name, spec, job));
        self
    }

    /// Adds a member run of a registered kind.
    #[must_use]
    pub fn run_kind(mut self, kind: impl Into<String>, spec: RunSpec) -> Self {
        let name = format!("member-{}", self.members.len());
        self.members.push(Step::kind(name, kind, spec));
        self
    }

    /// The callback run, and when it runs.
    #[must_use]
    pub fn callback(
        mut self,
        spec: RunSpec,
        job: impl IntoJob + Send + 'static,
        when: CallbackWhen,
    ) -> Self {
        self.callback = Some((Step::new(Batch::CALLBACK, spec, job), when));
        self
    }

    /// The batch as a workflow.
    #[must_use]
    pub fn into_workflow(self) -> Workflow {
        let names: Vec<String> = self.members.iter().map(|m| m.name.clone()).collect();
        let mut workflow = Workflow {
            steps: self.members,
        };
        if let Some((mut callback, when)) = self.callback {
            let policy = match when {
                CallbackWhen::AllEnded => OnDependencyFailure::RunAnyway,
                CallbackWhen::AllCompleted => OnDependencyFailure::Cancel,
            };
            callback.after = names
                .into_iter()
                .map(|n| (After::Step(n), policy))
                .collect();
            workflow.steps.push(callback);
        }
        workflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str) -> Step {
        Step::new(name, RunSpec::new(name), |_ctx| async { Ok(()) })
    }

    fn names(plan: &[PlannedStep]) -> Vec<&str> {
        plan.iter().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn a_diamond_is_planned_in_dependency_order() {
        let w = Workflow::new()
            .step(step("publish").after("thumbnail").after("caption"))
            .step(step("caption").after("transcode"))
            .step(step("thumbnail").after("transcode"))
            .step(step("transcode"));
        let plan = w.plan().expect("a diamond is a graph");
        assert_eq!(
            names(&plan),
            ["transcode", "caption", "thumbnail", "publish"]
        );
        let publish = &plan[3];
        let after: Vec<usize> = publish
            .after
            .iter()
            .map(|(p, _)| match p {
                Planned::Step(i) => *i,
                Planned::Run(_) => usize::MAX,
            })
            .collect();
        assert_eq!(after, [2, 1]);
    }

    #[test]
    fn cycles_duplicates_unknown_names_and_empty_graphs_are_refused() {
        let cyclic = Workflow::new()
            .step(step("a").after("c"))
            .step(step("b").after("a"))
            .step(step("c").after("b"))
            .step(step("d").after("c"))
            .step(step("e"));
        assert_eq!(
            cyclic.plan().err(),
            Some(WorkflowError::Cycle(vec![
                "a".into(),
                "b".into(),
                "c".into(),
                "d".into()
            ]))
        );
        let selfish = Workflow::new().step(step("a").after("a"));
        assert_eq!(
            selfish.plan().err(),
            Some(WorkflowError::Cycle(vec!["a".into()]))
        );
        let twice = Workflow::new().step(step("a")).step(step("a"));
        assert_eq!(
            twice.plan().err(),
            Some(WorkflowError::DuplicateStep("a".into()))
        );
        let unknown = Workflow::new().step(step("a").after("zzz"));
        assert_eq!(
            unknown.plan().err(),
            Some(WorkflowError::UnknownStep {
                step: "a".into(),
                after: "zzz".into()
            })
        );
        assert_eq!(Workflow::new().plan().err(), Some(WorkflowError::Empty));
    }

    #[test]
    fn a_batch_callback_waits_for_every_member_by_its_policy() {
        let b = Batch::new()
            .run(RunSpec::new("m"), |_ctx| async { Ok(()) })
            .run(RunSpec::new("m"), |_ctx| async { Ok(()) })
            .callback(
                RunSpec::new("cb"),
                |_ctx| async { Ok(()) },
                CallbackWhen::AllEnded,
            );
        let plan = b.into_workflow().plan().expect("a batch is a graph");
        assert_eq!(names(&plan), ["member-0", "member-1", "callback"]);
        assert!(
            plan[2]
                .after
                .iter()
                .all(|(_, p)| *p == OnDependencyFailure::RunAnyway)
        );
        assert_eq!(plan[2].after.len(), 2);
    }

    #[test]
    fn workflow_state_follows_its_counts() {
        use crate::run::RunStatus::{self, *};
        let state = |s: &[RunStatus]| WorkflowState::of(&StatusCounts::of(s.iter().copied()));
        assert_eq!(state(&[Completed, Waiting]), WorkflowState::Active);
        assert_eq!(state(&[Completed, Completed]), WorkflowState::Completed);
        assert_eq!(
            state(&[Completed, Failed, Cancelled]),
            WorkflowState::Failed
        );
        assert_eq!(state(&[Completed, Cancelled]), WorkflowState::Cancelled);
    }
}
