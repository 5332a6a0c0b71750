//! Start-up recovery: loading the store, and reconciling the runs a previous process left
//! active, before the supervisor takes its first message.

use ractor::{ActorProcessingErr, ActorRef};

use crate::kinds::{JobKinds, OnInterrupt, RecoveryReport};
use crate::protocol::registry::{RegistryMessage, RegistryStep};
use crate::protocol::run::Submission;
use crate::run::{ErrorKind, RunRecord, RunStatus, Transition};
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
        let state = store.load(window);
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
/// - a run whose kind is registered and whose job can be rebuilt is queued again, unless it
///   was `Running` and its kind says [`OnInterrupt::Fail`]: a run that never started its
///   attempt is queued again whatever its kind says, since running it cannot run it twice;
/// - any other run ends `Failed` with kind `Interrupted`.
pub(super) fn recover(
    registry: &ActorRef<RegistryMessage>,
    kinds: &JobKinds,
    active: Active,
) -> RecoveryReport {
    let mut report = RecoveryReport {
        records: active.records,
        ..RecoveryReport::default()
    };
    for run in active.runs {
        let id = run.id;
        let rerun = run.kind.as_deref().is_some_and(|k| {
            run.status == RunStatus::Queued || kinds.on_interrupt(k) == Some(OnInterrupt::Rerun)
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
                let t = Transition::failed(
                    ErrorKind::Interrupted,
                    format!(
                        "interrupted: the process running it stopped; recovered at {}",
                        Timestamp::now()
                    ),
                );
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
