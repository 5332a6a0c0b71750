//! The supervisor's periodic schedules: each submits an occurrence (a normal run) on its
//! timer, skips an occurrence while the previous one is still active, and stops when a drain
//! begins.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{ActorRef, MessagingErr};

use crate::error::SubmitError;
use crate::hash::IdMap;
use crate::job::BoxedJob;
use crate::protocol::registry::RegistryMessage;
use crate::protocol::supervisor::{SupervisorMessage, SupervisorStep};
use crate::queue::QueueTable;
use crate::run::{RunId, RunStatus};
use crate::schedule::{NoSuchSchedule, ScheduleId, ScheduleInfo, ScheduleMode, ScheduleSpec};
use crate::submitter;
use crate::task::AbortOnDrop;

type Timer = AbortOnDrop<Result<(), MessagingErr<SupervisorMessage>>>;

/// Where an occurrence is admitted: the supervisor's queue table and registry.
pub(super) struct Admit<'a> {
    pub(super) myself: &'a ActorRef<SupervisorMessage>,
    pub(super) table: &'a Arc<QueueTable>,
    pub(super) registry: &'a ActorRef<RegistryMessage>,
}

struct Schedule {
    spec: ScheduleSpec,
    job: BoxedJob,
    info: ScheduleInfo,
    /// Bumped whenever the timer is re-armed or dropped, so a stale `ScheduleDue` is ignored.
    generation: u64,
    timer: Option<Timer>,
}

impl Schedule {
    /// Arms (or re-arms) the timer; the previous timer, if any, is aborted.
    fn arm(&mut self, myself: &ActorRef<SupervisorMessage>, after: Duration) {
        self.generation += 1;
        let (id, generation) = (self.info.id, self.generation);
        let timer = myself.send_after(after, move || {
            SupervisorStep::ScheduleDue(id, generation).into()
        });
        self.timer = Some(AbortOnDrop(timer));
    }

    /// Drops the timer: no occurrence is due until it is armed again.
    fn disarm(&mut self) {
        self.generation += 1;
        self.timer = None;
    }
}

/// Every schedule of one supervisor, and which schedule each active occurrence belongs to.
pub(super) struct Schedules {
    schedules: BTreeMap<ScheduleId, Schedule>,
    occurrence_of: IdMap<RunId, ScheduleId>,
    next: u64,
}

impl Schedules {
    pub(super) fn new() -> Self {
        Schedules {
            schedules: BTreeMap::new(),
            occurrence_of: IdMap::default(),
            next: 1,
        }
    }

    /// Registers a schedule and submits its first occurrence. Refused once draining
    /// (`accepting` is false), for a run-once job, or for an unknown queue.
    pub(super) fn add(
        &mut self,
        at: &Admit<'_>,
        accepting: bool,
        spec: ScheduleSpec,
        job: BoxedJob,
    ) -> Result<ScheduleId, SubmitError> {
        if !accepting {
            return Err(SubmitError::ShuttingDown);
        }
        if !job.is_repeatable() {
            return Err(SubmitError::NotRepeatable);
        }
        if at.table.index(spec.run.queue_name()).is_none() {
            return Err(SubmitError::UnknownQueue(spec.run.queue_name().to_owned()));
        }
        let id = ScheduleId(self.next);
        self.next += 1;
        let info = ScheduleInfo {
            id,
            label: spec.run.label.clone(),
            every_ms: spec.every.as_millis() as u64,
            mode: spec.mode,
            paused: false,
            runs: 0,
            completed: 0,
            failed: 0,
            cancelled: 0,
            skipped: 0,
            last_run: None,
            last_status: None,
            active_run: None,
        };
        let schedule = Schedule {
            spec,
            job,
            info,
            generation: 0,
            timer: None,
        };
        self.schedules.insert(id, schedule);
        self.fire(at, id);
        tracing::info!(schedule = %id, "schedule added");
        Ok(id)
    }

    /// A timer fired: fires the schedule unless the timer was re-armed or dropped since.
    pub(super) fn due(&mut self, at: &Admit<'_>, accepting: bool, id: ScheduleId, generation: u64) {
        let current = self
            .schedules
            .get(&id)
            .is_some_and(|s| s.generation == generation);
        if current && accepting {
            self.fire(at, id);
        }
    }

    /// An occurrence is due: submit it (or skip it), and plan the next one.
    fn fire(&mut self, at: &Admit<'_>, id: ScheduleId) {
        let Some(s) = self.schedules.get_mut(&id) else {
            return;
        };
        if s.info.paused {
            return;
        }
        if s.spec.mode == ScheduleMode::FixedRate {
            s.arm(at.myself, s.spec.every);
        }
        if s.info.active_run.is_some() {
            s.info.skipped += 1;
            return;
        }
        let Some(job) = s.job.try_clone() else {
            return;
        };
        let spec = s.spec.run.clone();
        let admitted = submitter::admit(at.table, at.registry, spec, job, submitter::admit_step);
        let run_id = match admitted {
            Ok(run_id) => run_id,
            Err(refused) if refused.error == SubmitError::Unavailable => {
                tracing::error!(schedule = %id, "registry unreachable; occurrence not submitted");
                return;
            }
            Err(refused) => {
                let e = refused.error;
                tracing::warn!(schedule = %id, error = %e, "schedule occurrence skipped");
                s.info.skipped += 1;
                if s.spec.mode == ScheduleMode::FixedDelay {
                    s.arm(at.myself, s.spec.every);
                }
                return;
            }
        };
        s.info.runs += 1;
        s.info.last_run = Some(run_id);
        s.info.active_run = Some(run_id);
        self.occurrence_of.insert(run_id, id);
    }

    /// Stops submitting occurrences until resumed (an active one carries on).
    pub(super) fn pause(&mut self, id: ScheduleId) -> Result<(), NoSuchSchedule> {
        let s = self.schedules.get_mut(&id).ok_or(NoSuchSchedule(id))?;
        s.info.paused = true;
        s.disarm();
        Ok(())
    }

    /// Submits occurrences again, the next one at once (unless draining).
    pub(super) fn resume(
        &mut self,
        at: &Admit<'_>,
        accepting: bool,
        id: ScheduleId,
    ) -> Result<(), NoSuchSchedule> {
        let s = self.schedules.get_mut(&id).ok_or(NoSuchSchedule(id))?;
        let was_paused = std::mem::replace(&mut s.info.paused, false);
        if was_paused && accepting {
            self.fire(at, id);
        }
        Ok(())
    }

    /// Forgets a schedule; an active occurrence carries on as a normal run.
    pub(super) fn remove(&mut self, id: ScheduleId) -> Result<ScheduleInfo, NoSuchSchedule> {
        let s = self.schedules.remove(&id).ok_or(NoSuchSchedule(id))?;
        self.occurrence_of.retain(|_, sid| *sid != id);
        Ok(s.info)
    }

    /// Every schedule's counters.
    pub(super) fn infos(&self) -> Vec<ScheduleInfo> {
        self.schedules.values().map(|s| s.info.clone()).collect()
    }

    /// Stops every schedule's timer (a drain began): no occurrence is submitted any more.
    pub(super) fn stop_all(&mut self) {
        for s in self.schedules.values_mut() {
            s.disarm();
        }
    }

    /// A run ended: if it was an occurrence, its schedule counts it and (fixed delay) plans
    /// the next one.
    pub(super) fn run_ended(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        accepting: bool,
        id: RunId,
        status: RunStatus,
    ) {
        let Some(sid) = self.occurrence_of.remove(&id) else {
            return;
        };
        let Some(s) = self.schedules.get_mut(&sid) else {
            return;
        };
        match status {
            RunStatus::Completed => s.info.completed += 1,
            RunStatus::Failed => s.info.failed += 1,
            _ => s.info.cancelled += 1,
        }
        s.info.last_status = Some(status);
        s.info.active_run = None;
        if s.spec.mode == ScheduleMode::FixedDelay && !s.info.paused && accepting {
            s.arm(myself, s.spec.every);
        }
    }
}
