//! Runs waiting for other runs: who waits for whom, and what each waiting run has learned of
//! the dependencies that have ended.
//!
//! The registry decides; the supervisor holds the waiting runs' jobs. A decision is a
//! [`Verdict`]: release the run (every dependency ended, none that had to complete failed to)
//! or cancel it (one that had to complete did not).

use std::sync::Arc;

use crate::hash::IdMap;
use crate::run::{Dependency, DependencyOutcome, OnDependencyFailure};
use crate::run::{RunId, RunStatus};

/// What became of a waiting run.
#[derive(Debug, PartialEq)]
pub(super) enum Verdict {
    /// Still waiting for some dependency.
    Wait,
    /// Every dependency ended: queue it, with their outcomes (in the order it named them).
    Release(Arc<[DependencyOutcome]>),
    /// A dependency that had to complete did not: cancel it, with this message.
    Cancel(String),
}

/// What one waiting run still waits for, and what it knows of the others.
struct Waiter {
    pending: Vec<Dependency>,
    /// In the order the run named its dependencies, `None` while that one is active.
    outcomes: Vec<(RunId, Option<DependencyOutcome>)>,
}

/// How a dependency stands, as the registry's records say.
pub(super) enum Found {
    /// No such run is held.
    Unknown,
    /// Still active.
    Active,
    /// Ended like this.
    Ended(DependencyOutcome),
}

/// The dependency graph of the runs now waiting.
///
/// Invariant: a run is in `waiting` exactly while its record is `Waiting` and no verdict has
/// been given; each of its pending dependencies lists it in `dependents`.
#[derive(Default)]
pub(super) struct Deps {
    waiting: IdMap<RunId, Waiter>,
    /// For each active run others wait for: those runs (a run no longer waiting is skipped).
    dependents: IdMap<RunId, Vec<RunId>>,
}

/// The dependencies with duplicates merged: the first mention keeps its place, and a run
/// named both ways must complete (`Cancel` is the stricter policy).
pub(super) fn merged(deps: &[Dependency]) -> Vec<Dependency> {
    let mut out: Vec<Dependency> = Vec::with_capacity(deps.len());
    for d in deps {
        match out.iter_mut().find(|o| o.run == d.run) {
            Some(o) if d.on_failure == OnDependencyFailure::Cancel => {
                o.on_failure = OnDependencyFailure::Cancel;
            }
            Some(_) => {}
            None => out.push(*d),
        }
    }
    out
}

fn cancel_message(outcome: &DependencyOutcome) -> String {
    let name = outcome
        .step
        .as_deref()
        .map(|s| format!("step `{s}` (run {})", outcome.run))
        .unwrap_or_else(|| format!("run {}", outcome.run));
    match &outcome.error {
        Some(e) => format!("dependency {name} ended {}: {}", outcome.status, e.message),
        None => format!("dependency {name} ended {}", outcome.status),
    }
}

/// Whether `outcome` lets a dependent with `policy` go on.
fn allows(outcome: &DependencyOutcome, policy: OnDependencyFailure) -> bool {
    outcome.status == RunStatus::Completed || policy == OnDependencyFailure::RunAnyway
}

impl Deps {
    /// How many runs wait.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether `id`'s end matters here: it waits, or others wait for it.
    pub(super) fn waits_on(&self, id: RunId) -> bool {
        self.waiting.contains_key(&id) || self.dependents.contains_key(&id)
    }

    /// Registers the waiting run `id` with its (merged) dependencies, each looked up with
    /// `find`, and returns its verdict. A run decided at once is not registered.
    ///
    /// A dependency with no record (`Unknown`: admission refuses those, so only a record
    /// removed from the store outside runwarden's retention, which keeps dependencies of
    /// active runs) would never end: a dependent that needs it to complete is cancelled, and
    /// one that runs anyway goes on without its outcome. Nothing waits forever.
    pub(super) fn add(
        &mut self,
        id: RunId,
        deps: &[Dependency],
        mut find: impl FnMut(RunId) -> Found,
    ) -> Verdict {
        let mut waiter = Waiter {
            pending: Vec::new(),
            outcomes: Vec::with_capacity(deps.len()),
        };
        for d in deps {
            match find(d.run) {
                Found::Ended(outcome) => {
                    if !allows(&outcome, d.on_failure) {
                        return Verdict::Cancel(cancel_message(&outcome));
                    }
                    waiter.outcomes.push((d.run, Some(outcome)));
                }
                Found::Active => {
                    waiter.pending.push(*d);
                    waiter.outcomes.push((d.run, None));
                }
                Found::Unknown if d.on_failure == OnDependencyFailure::RunAnyway => {}
                Found::Unknown => {
                    return Verdict::Cancel(format!(
                        "dependency run {} has no record (it was removed), so it cannot \
                         complete",
                        d.run
                    ));
                }
            }
        }
        if waiter.pending.is_empty() {
            return Verdict::Release(outcomes(waiter));
        }
        for d in &waiter.pending {
            self.dependents.entry(d.run).or_default().push(id);
        }
        self.waiting.insert(id, waiter);
        Verdict::Wait
    }

    /// Run `outcome.run` has ended: the verdicts of the runs waiting for it that are now
    /// decided, in the order they began to wait.
    pub(super) fn ended(&mut self, outcome: &DependencyOutcome) -> Vec<(RunId, Verdict)> {
        let id = outcome.run;
        // It may itself have been waiting (cancelled or failed before its release).
        self.waiting.remove(&id);
        let Some(dependents) = self.dependents.remove(&id) else {
            self.forget_if_idle();
            return Vec::new();
        };
        let mut decided = Vec::new();
        for d in dependents {
            let Some(waiter) = self.waiting.get_mut(&d) else {
                continue;
            };
            let Some(at) = waiter.pending.iter().position(|p| p.run == id) else {
                continue;
            };
            let dep = waiter.pending.swap_remove(at);
            if !allows(outcome, dep.on_failure) {
                self.waiting.remove(&d);
                decided.push((d, Verdict::Cancel(cancel_message(outcome))));
                continue;
            }
            for (run, slot) in &mut waiter.outcomes {
                if *run == id {
                    *slot = Some(outcome.clone());
                }
            }
            if waiter.pending.is_empty()
                && let Some(waiter) = self.waiting.remove(&d)
            {
                decided.push((d, Verdict::Release(outcomes(waiter))));
            }
        }
        self.forget_if_idle();
        decided
    }

    /// With nothing waiting, the dependents lists of runs that were cancelled while waiting
    /// are dropped (nothing else would remove them).
    fn forget_if_idle(&mut self) {
        if self.waiting.is_empty() && !self.dependents.is_empty() {
            self.dependents.clear();
        }
    }

    /// Forgets everything (a registry restart rebuilds it from the records).
    pub(super) fn clear(&mut self) {
        self.waiting.clear();
        self.dependents.clear();
    }
}

fn outcomes(waiter: Waiter) -> Arc<[DependencyOutcome]> {
    waiter.outcomes.into_iter().filter_map(|(_, o)| o).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::{ErrorKind, RunError};

    fn ended(run: RunId, status: RunStatus) -> DependencyOutcome {
        DependencyOutcome {
            run,
            step: None,
            status,
            result: None,
            error: (status != RunStatus::Completed)
                .then(|| RunError::new(ErrorKind::Returned, "boom")),
        }
    }

    #[test]
    fn a_run_is_released_once_its_last_dependency_ends_with_outcomes_in_its_order() {
        let (a, b, d) = (RunId::new(), RunId::new(), RunId::new());
        let mut deps = Deps::default();
        let v = deps.add(d, &[Dependency::on(a), Dependency::on(b)], |_| {
            Found::Active
        });
        assert_eq!(v, Verdict::Wait);
        assert!(deps.ended(&ended(b, RunStatus::Completed)).is_empty());
        let decided = deps.ended(&ended(a, RunStatus::Completed));
        let [(id, Verdict::Release(outcomes))] = decided.as_slice() else {
            panic!("released: {decided:?}");
        };
        assert_eq!(*id, d);
        let order: Vec<RunId> = outcomes.iter().map(|o| o.run).collect();
        assert_eq!(order, [a, b]);
        assert_eq!(deps.len(), 0);
    }

    #[test]
    fn a_failed_dependency_cancels_unless_the_dependent_runs_anyway() {
        let (a, strict, lenient) = (RunId::new(), RunId::new(), RunId::new());
        let mut deps = Deps::default();
        deps.add(strict, &[Dependency::on(a)], |_| Found::Active);
        deps.add(lenient, &[Dependency::anyway(a)], |_| Found::Active);
        let decided = deps.ended(&ended(a, RunStatus::Failed));
        assert_eq!(decided.len(), 2);
        assert!(
            matches!(&decided[0], (id, Verdict::Cancel(m)) if *id == strict && m.contains(&a.to_string()) && m.contains("failed"))
        );
        assert!(
            matches!(&decided[1], (id, Verdict::Release(o)) if *id == lenient && o[0].status == RunStatus::Failed)
        );
    }

    #[test]
    fn dependencies_ended_before_the_submit_decide_at_once() {
        let (a, b, d) = (RunId::new(), RunId::new(), RunId::new());
        let mut deps = Deps::default();
        let cancelled = deps.add(d, &[Dependency::on(a)], |id| {
            Found::Ended(ended(id, RunStatus::Cancelled))
        });
        assert!(matches!(cancelled, Verdict::Cancel(_)));
        let released = deps.add(d, &[Dependency::anyway(b)], |id| {
            Found::Ended(ended(id, RunStatus::Failed))
        });
        assert!(matches!(released, Verdict::Release(o) if o.len() == 1));
        assert_eq!(deps.len(), 0);
    }

    #[test]
    fn a_dependency_without_a_record_never_leaves_its_dependent_waiting() {
        let (gone, b, d) = (RunId::new(), RunId::new(), RunId::new());
        let mut deps = Deps::default();
        let find = |id| {
            if id == gone {
                Found::Unknown
            } else {
                Found::Active
            }
        };
        let cancelled = deps.add(d, &[Dependency::on(b), Dependency::on(gone)], find);
        assert!(matches!(&cancelled, Verdict::Cancel(m) if m.contains(&gone.to_string())));
        assert_eq!(deps.len(), 0);
        // Run anyway: it waits only for the dependency that can still end.
        assert_eq!(
            deps.add(d, &[Dependency::anyway(gone), Dependency::on(b)], find),
            Verdict::Wait
        );
        let decided = deps.ended(&ended(b, RunStatus::Completed));
        assert!(matches!(&decided[..], [(id, Verdict::Release(o))] if *id == d && o.len() == 1));
    }

    #[test]
    fn dependents_of_a_cancelled_waiter_are_forgotten() {
        let (a, d) = (RunId::new(), RunId::new());
        let mut deps = Deps::default();
        assert_eq!(
            deps.add(d, &[Dependency::on(a)], |_| Found::Active),
            Verdict::Wait
        );
        // The waiting run itself ends (cancelled) before its dependency does.
        assert!(deps.ended(&ended(d, RunStatus::Cancelled)).is_empty());
        assert!(
            !deps.waits_on(a),
            "nothing is kept for a run no one waits for"
        );
    }

    #[test]
    fn a_waiting_run_that_ends_is_forgotten_and_duplicates_merge_strictly() {
        let (a, d) = (RunId::new(), RunId::new());
        let mut deps = Deps::default();
        let named_twice = merged(&[Dependency::anyway(a), Dependency::on(a)]);
        assert_eq!(named_twice, [Dependency::on(a)]);
        deps.add(d, &named_twice, |_| Found::Active);
        // d is cancelled by a caller while it waits: its end reaches the graph first.
        assert!(deps.ended(&ended(d, RunStatus::Cancelled)).is_empty());
        assert!(deps.ended(&ended(a, RunStatus::Completed)).is_empty());
        assert_eq!(deps.len(), 0);
    }
}
