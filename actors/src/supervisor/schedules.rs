//! The supervisor's periodic schedules: each submits an occurrence (a normal run) on its
//! timer, skips an occurrence while the previous one is still active (a cron schedule's
//! overlap policy may queue one or allow it), applies a cron schedule's missed-fire policy to
//! fire times that passed unseen, and stops when a drain begins.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;

use crate::cron::{CronSchedule, MissedFires, Overlap};
use crate::error::SubmitError;
use crate::hash::IdMap;
use crate::job::BoxedJob;
use crate::protocol::registry::RegistryMessage;
use crate::protocol::supervisor::{SupervisorMessage, SupervisorStep};
use crate::queue::QueueTable;
use crate::run::{RunId, RunStatus};
use crate::schedule::{NoSuchSchedule, ScheduleId, ScheduleInfo, ScheduleMode, ScheduleSpec};
use crate::submitter;
use crate::time::{RunningClock, Timestamp};

use super::timer::Timer;

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
        let timer = Timer::after(myself, after, move || {
            SupervisorStep::ScheduleDue(id, generation).into()
        });
        self.timer = Some(timer);
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
    /// Where cron schedules read the time of day.
    clock: RunningClock,
}

impl Schedules {
    /// The schedule whose timer fires first after `now`, and when (a timer that fired stays
    /// held until the schedule re-arms, so it is skipped here).
    pub(super) fn next_timer(
        &self,
        now: tokio::time::Instant,
    ) -> Option<(tokio::time::Instant, ScheduleId)> {
        let armed = self.schedules.iter();
        let timers = armed.filter_map(|(id, s)| s.timer.as_ref().map(|t| (t.due(), *id)));
        timers.filter(|(at, _)| *at > now).min_by_key(|(at, _)| *at)
    }

    pub(super) fn new(clock: RunningClock) -> Self {
        Schedules {
            schedules: BTreeMap::new(),
            occurrence_of: IdMap::default(),
            next: 1,
            clock,
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
        if spec.mode == ScheduleMode::Cron && spec.cron.is_none() {
            return Err(SubmitError::InvalidSchedule(
                "a cron schedule needs its CronSchedule".to_owned(),
            ));
        }
        if spec.mode != ScheduleMode::Cron && spec.every.is_zero() {
            return Err(SubmitError::InvalidSchedule(
                "an interval schedule needs an interval above zero".to_owned(),
            ));
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
            missed: 0,
            cron: spec.cron.as_ref().map(ToString::to_string),
            next_fire_at: None,
            last_run: None,
            last_status: None,
            active_run: None,
            active: 0,
            pending: false,
        };
        let schedule = Schedule {
            spec,
            job,
            info,
            generation: 0,
            timer: None,
        };
        self.schedules.insert(id, schedule);
        match self.cron_of(id) {
            // Fire times since it last fired (before this process) were missed while down.
            Some(cron) => {
                let now = self.clock.now();
                let missed = cron
                    .fired_before()
                    .map_or(0, |before| cron.fires_between(before, now).0);
                self.catch_up(at, id, missed);
                self.plan_cron(at.myself, id, now);
            }
            None => self.fire(at, id),
        }
        tracing::info!(schedule = %id, "schedule added");
        Ok(id)
    }

    fn cron_of(&self, id: ScheduleId) -> Option<CronSchedule> {
        self.schedules.get(&id)?.spec.cron.clone()
    }

    /// Arms a cron schedule's timer for its first fire time after `now`.
    fn plan_cron(&mut self, myself: &ActorRef<SupervisorMessage>, id: ScheduleId, now: Timestamp) {
        let Some(s) = self.schedules.get_mut(&id) else {
            return;
        };
        let Some(next) = s.spec.cron.as_ref().and_then(|c| c.next_after(now)) else {
            s.info.next_fire_at = None;
            s.disarm();
            return;
        };
        s.info.next_fire_at = Some(next);
        s.arm(myself, next.saturating_duration_since(now));
    }

    /// `missed` fire times passed unseen: the missed-fire policy runs one occurrence for all
    /// of them, or none; the rest are counted.
    fn catch_up(&mut self, at: &Admit<'_>, id: ScheduleId, missed: u64) {
        let Some(s) = self.schedules.get_mut(&id) else {
            return;
        };
        if missed == 0 {
            return;
        }
        let policy = s.spec.cron.as_ref().map(CronSchedule::missed_policy);
        if policy == Some(MissedFires::RunOnce) {
            s.info.missed += missed - 1;
            self.occurrence_due(at, id);
        } else {
            s.info.missed += missed;
        }
    }

    /// A cron schedule's timer fired: the fire time it was armed for is run if the timer is
    /// on time (within the starting deadline) and it is the only one due; otherwise every due
    /// time was missed, and the missed-fire policy decides.
    fn cron_due(&mut self, at: &Admit<'_>, id: ScheduleId) {
        let Some(s) = self.schedules.get(&id) else {
            return;
        };
        let (Some(cron), Some(due)) = (s.spec.cron.clone(), s.info.next_fire_at) else {
            return;
        };
        let now = self.clock.now();
        if now < due {
            // The clock stepped back: wait for the fire time again.
            self.plan_cron(at.myself, id, now);
            return;
        }
        let later = cron.fires_between(due, now).0;
        if later == 0 && now.saturating_duration_since(due) <= cron.deadline() {
            self.occurrence_due(at, id);
        } else {
            self.catch_up(at, id, later + 1);
        }
        self.plan_cron(at.myself, id, now);
    }

    /// An occurrence of a cron schedule is due: its overlap policy decides whether it is
    /// submitted now, waits for the active one, or is skipped.
    fn occurrence_due(&mut self, at: &Admit<'_>, id: ScheduleId) {
        let Some(s) = self.schedules.get_mut(&id) else {
            return;
        };
        let overlap = s
            .spec
            .cron
            .as_ref()
            .map_or(Overlap::Skip, CronSchedule::overlap_policy);
        match (s.info.active, overlap) {
            (0, _) | (_, Overlap::Allow) => self.submit(at, id),
            (_, Overlap::QueueOne) if !s.info.pending => s.info.pending = true,
            _ => s.info.skipped += 1,
        }
    }

    /// A timer fired: fires the schedule unless the timer was re-armed or dropped since.
    pub(super) fn due(&mut self, at: &Admit<'_>, accepting: bool, id: ScheduleId, generation: u64) {
        let current = self
            .schedules
            .get(&id)
            .is_some_and(|s| s.generation == generation);
        if !(current && accepting) {
            return;
        }
        if self.schedules.get(&id).is_some_and(|s| s.info.paused) {
            return;
        }
        if self.cron_of(id).is_some() {
            self.cron_due(at, id);
        } else {
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
        if s.info.active > 0 {
            s.info.skipped += 1;
            return;
        }
        self.submit(at, id);
    }

    /// Submits an occurrence now.
    fn submit(&mut self, at: &Admit<'_>, id: ScheduleId) {
        let Some(s) = self.schedules.get_mut(&id) else {
            return;
        };
        let Some(job) = s.job.try_clone() else {
            return;
        };
        let spec = s.spec.run.clone();
        let admitted = submitter::admit(
            at.table,
            at.registry,
            spec,
            job,
            None,
            submitter::admit_step,
        );
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
        s.info.active += 1;
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
        if !(was_paused && accepting) {
            return Ok(());
        }
        match (s.spec.cron.clone(), s.info.next_fire_at) {
            // Fire times that passed while paused were missed.
            (Some(cron), next) => {
                let now = self.clock.now();
                let missed = match next {
                    Some(due) if due <= now => 1 + cron.fires_between(due, now).0,
                    _ => 0,
                };
                self.catch_up(at, id, missed);
                self.plan_cron(at.myself, id, now);
                // An occurrence queued behind one that ended while paused goes now.
                if let Some(s) = self.schedules.get_mut(&id)
                    && s.info.active == 0
                    && std::mem::take(&mut s.info.pending)
                {
                    self.submit(at, id);
                }
            }
            (None, _) => self.fire(at, id),
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
            s.info.next_fire_at = None;
            s.info.pending = false;
        }
    }

    /// A run ended: if it was an occurrence, its schedule counts it and (fixed delay) plans
    /// the next one.
    pub(super) fn run_ended(
        &mut self,
        at: &Admit<'_>,
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
        s.info.active = s.info.active.saturating_sub(1);
        if s.info.active_run == Some(id) {
            s.info.active_run = None;
        }
        if s.spec.mode == ScheduleMode::FixedDelay && !s.info.paused && accepting {
            s.arm(at.myself, s.spec.every);
        }
        // A queued occurrence starts once the active one is over.
        if s.info.active == 0 && std::mem::take(&mut s.info.pending) && !s.info.paused && accepting
        {
            self.submit(at, sid);
        }
    }
}
