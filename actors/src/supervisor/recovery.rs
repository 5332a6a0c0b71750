//! Start-up recovery: loading the store, and reconciling the runs a previous process left
//! active, before the supervisor takes its first message.

use ractor::{ActorProcessingErr, ActorRef};

use crate::kinds::{JobKinds, OnInterrupt, RecoveryReport};
use crate::protocol::registry::{RegistryMessage, RegistryStep};
use crate::protocol::run::Submission;
use crate::run::{ErrorKind, FailureKind, RunRecord, RunStatus, Transition};
use crate::store::{RunStore, StoredState};
use crate::time::Timestamp;

/// What the store held: the registry's starting state, and the active runs to reconcile.
pub(super) struct Loaded {
    pub(super) state: StoredState,
    pub(super) active: Active,
}

/// The runs a previous process left active, and how many records the store held.
pub(super) struct Active {
    runs: Vec<RunRecord>,
    records: usize,
}

/// Loads the store on a blocking thread (a store may block; the actors' threads never do).
///
/// # Errors
/// The store's own [`crate::StoreError`], boxed: an embedding application's spawn fails with
/// it, and the async handle hands it back typed.
pub(super) async fn load(
    mut store: Box<dyn RunStore>,
    window: usize,
) -> Result<(Box<dyn RunStore>, Loaded), ActorProcessingErr> {
    let (store, state) = tokio::task::spawn_blocking(move || {
        let state = crate::store::load_with_dependencies(store.as_mut(), window);
        (store, state)
    })
    .await?;
    let state = state?;
    let mut runs: Vec<RunRecord> = state
        .records
        .iter()
        .filter(|r| r.status.is_active())
        .cloned()
        .collect();
    // Re-queued in their original order: higher priority first, then creation (ids are
    // time-ordered). The registry hands each to the supervisor in the order it receives them.
    runs.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.id));
    let records = state.counts.iter().sum();
    Ok((
        store,
        Loaded {
            state,
            active: Active { runs, records },
        },
    ))
}

/// Reconciles each run a previous process left active, by messages to the registry sent in
/// order (a query sent after them is answered after they are applied):
///
/// - a run that was `Waiting` is handed back the same way, and judged again against how its
///   dependencies stand (they may have ended, or end in this same recovery);
/// - a run that was `Queued` never started the attempt it waits for: it is queued again as it
///   is (no attempt is counted) if its kind is registered, whatever the kind's
///   [`OnInterrupt`] says, since running it cannot run it twice;
/// - a run that was `Running` had its attempt interrupted: it is queued again, the interrupted
///   attempt recorded, if its kind is registered with [`OnInterrupt::Rerun`] and it has been
///   interrupted fewer than `max_rescues` times before;
/// - any other run ends `Failed` with kind `Interrupted`.
pub(super) fn recover(
    registry: &ActorRef<RegistryMessage>,
    kinds: &JobKinds,
    max_rescues: u32,
    active: Active,
) -> RecoveryReport {
    let mut report = RecoveryReport {
        records: active.records,
        ..RecoveryReport::default()
    };
    for run in active.runs {
        let id = run.id;
        let rescued = run
            .attempt_errors
            .iter()
            .filter(|e| e.kind == ErrorKind::Interrupted)
            .count();
        let spent = run.status == RunStatus::Running && rescued >= max_rescues as usize;
        let rerun = !spent
            && run.kind.as_deref().is_some_and(|k| {
                matches!(run.status, RunStatus::Queued | RunStatus::Waiting)
                    || kinds.on_interrupt(k) == Some(OnInterrupt::Rerun)
            });
        let job = run
            .kind
            .as_deref()
            .filter(|_| rerun)
            .and_then(|k| kinds.build(k, &run.params))
            .and_then(Result::ok);
        let step = match job {
            Some(job) => {
                report.requeued.push(id);
                RegistryStep::Requeue(id, Submission::new(job))
            }
            None => {
                report.interrupted.push(id);
                let at = Timestamp::now();
                let message = match (run.status, spent) {
                    (RunStatus::Queued | RunStatus::Waiting, _) => format!(
                        "not run: it was queued when its process stopped and its job cannot be \
                         rebuilt (no registered kind); recovered at {at}"
                    ),
                    (_, true) => format!(
                        "interrupted {} times: not rescued again; recovered at {at}",
                        rescued + 1
                    ),
                    _ => format!("interrupted: the process running it stopped; recovered at {at}"),
                };
                let t = Transition::failed(FailureKind::Interrupted, message);
                RegistryStep::Transition(id, t, None)
            }
        };
        if let Err(e) = registry.cast(step.into()) {
            tracing::error!(run_id = %id, error = %e, "registry unreachable during recovery");
        }
    }
    if report.recovered() > 0 {
        tracing::info!(
            requeued = report.requeued.len(),
            interrupted = report.interrupted.len(),
            "recovered runs left active by a previous process"
        );
    }
    report
}
