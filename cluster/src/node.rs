//! The node actor: one per process in a cluster. It claims runs from PostgreSQL for its free
//! capacity, runs each in a local runwarden supervisor (one worker actor per run, a local
//! registry), and writes each outcome back fenced on its lease. Its database work runs in
//! tasks that answer it by message, so it never waits on the database in a handler.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use runwarden::{RunId, RunRecord, RunSpec, RunStatus, Runwarden};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::config::{ClusterKinds, JobInput, NodeConfig};
use crate::db::{AttemptLog, CANCEL_CHANNEL, Claimed, Db, Finish, Outcome, Owned, WAKE_CHANNEL};
use crate::error::ClusterError;
use crate::feed::EventFeed;
use crate::protocol::{Duties, NodeDrainReport, NodeInfo, NodeMessage, NodeStep, Step};
use crate::run::{ClusterRun, LogLine, error_kind_str};

/// The node actor. Spawn it with [`NodeArguments`] (or use [`Node::start`](crate::Node::start)).
#[derive(Debug, Default)]
pub struct NodeActor;

/// What a node actor starts from.
#[derive(Debug)]
pub struct NodeArguments {
    /// Its settings.
    pub config: NodeConfig,
    /// The kinds it runs (and accepts submits of).
    pub kinds: ClusterKinds,
}

/// A run this node has claimed and not yet seen end.
#[derive(Debug)]
struct Held {
    /// The node id it was claimed under: its lease.
    node: Uuid,
    run: RunId,
    epoch: i64,
    attempt: u32,
    max_attempts: u32,
    cancel_requested: bool,
}

#[derive(Debug, Default)]
struct Drain {
    waiters: Vec<RpcReplyPort<NodeDrainReport>>,
    local_done: bool,
    leaving: bool,
}

/// The node actor's state.
#[derive(Debug)]
pub struct NodeState {
    config: NodeConfig,
    kinds: ClusterKinds,
    db: Db,
    local: Runwarden,
    node: Uuid,
    joined: bool,
    leader: bool,
    /// Claimed runs by their local id.
    held: HashMap<RunId, Held>,
    /// Local ids by cluster run id (for cancels).
    local_of: HashMap<RunId, RunId>,
    cancels_sent: HashSet<RunId>,
    claiming: bool,
    /// When the heartbeat in flight was sent.
    beating: Option<Instant>,
    /// Is a leader's pass (with cancel checks) in flight?
    on_duty: bool,
    last_ok: Instant,
    writer: mpsc::UnboundedSender<(Uuid, Finish)>,
    writes_held: usize,
    /// Runs whose outcome is with the writer, not yet committed.
    writing: HashSet<RunId>,
    /// Runs whose outcome was committed since the duties pass in flight was sent: its read
    /// of what the database says this node holds may predate the commit.
    written_since_pass: HashSet<RunId>,
    /// This node's claims are numbered; the latest sent, and the latest answered (one is in
    /// flight at a time, so every claim up to it has been answered).
    claims_sent: u64,
    claims_answered: u64,
    /// Is there reason to think the queue holds a run for this node? Set by a wake-up (the
    /// poll, a NOTIFY), cleared by a claim that came back short, so an idle node does not
    /// claim in a loop.
    queue_may_have_work: bool,
    woken_while_claiming: bool,
    /// Runs handed back because the database said this node held them and it did not (a
    /// claim whose answer was lost with its connection).
    reconciled: u64,
    drain: Option<Drain>,
    report: NodeDrainReport,
    info: NodeInfo,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for NodeState {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn cast(me: &ActorRef<NodeMessage>, step: Step) {
    let _ = me.cast(step.into());
}

impl Actor for NodeActor {
    type Msg = NodeMessage;
    type State = NodeState;
    type Arguments = NodeArguments;

    async fn pre_start(
        &self,
        myself: ActorRef<NodeMessage>,
        args: NodeArguments,
    ) -> Result<NodeState, ActorProcessingErr> {
        let config = args.config;
        config.check()?;
        let db = Db::connect(&config.url, config.pool_size)?;
        db.migrate().await?;
        let node = Uuid::now_v7();
        db.join(node, &config.name).await?;
        let mut builder = Runwarden::builder()
            .max_concurrent(config.concurrency)
            .cancel_grace(config.cancel_grace);
        if let Some(logs) = &config.logs {
            builder = builder.logs(logs.clone());
        }
        let local = builder.start_linked(myself.get_cell()).await?;
        let log_reader = config
            .logs
            .is_some()
            .then(|| (local.clone(), config.log_lines_kept));
        let (writer, rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(write_loop(db.clone(), rx, myself.clone(), log_reader)),
            tokio::spawn(listen_loop(db.clone(), myself.clone())),
            tokio::spawn(tick_loop(myself.clone(), config.heartbeat, || Step::Tick)),
            tokio::spawn(tick_loop(myself.clone(), config.poll, || Step::Wake)),
        ];
        cast(&myself, Step::Wake);
        tracing::info!(node = %node, name = %config.name, "joined the cluster");
        Ok(NodeState {
            info: NodeInfo {
                id: node,
                name: config.name.clone(),
                leader: false,
                running: 0,
                claimed: 0,
                written: 0,
                fenced_out: 0,
                discarded: 0,
                self_fenced: 0,
                rescued_requeued: 0,
                rescued_ended: 0,
                scheduled: 0,
                retained_events: 0,
                retained_runs: 0,
                reconciled: 0,
            },
            config,
            kinds: args.kinds,
            db,
            local,
            node,
            joined: true,
            leader: false,
            held: HashMap::new(),
            local_of: HashMap::new(),
            cancels_sent: HashSet::new(),
            claiming: false,
            beating: None,
            on_duty: false,
            last_ok: Instant::now(),
            writer,
            writes_held: 0,
            writing: HashSet::new(),
            written_since_pass: HashSet::new(),
            claims_sent: 0,
            claims_answered: 0,
            queue_may_have_work: true,
            woken_while_claiming: false,
            reconciled: 0,
            drain: None,
            report: NodeDrainReport::default(),
            tasks,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeMessage>,
        msg: NodeMessage,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeMessage::Submit(run, reply) => {
                let runs = vec![*run];
                match state.rules(&runs) {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(rerun) => {
                        let db = state.db.clone();
                        tokio::spawn(async move {
                            let answer = match db.submit(&runs, &rerun).await {
                                Ok(mut v) => v.pop().unwrap_or(Err(ClusterError::Closed)),
                                Err(e) => Err(e),
                            };
                            let _ = reply.send(answer);
                        });
                    }
                }
            }
            NodeMessage::SubmitMany(runs, reply) => match state.rules(&runs) {
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
                Ok(rerun) => {
                    let db = state.db.clone();
                    tokio::spawn(async move {
                        let _ = reply.send(db.submit(&runs, &rerun).await);
                    });
                }
            },
            NodeMessage::Status(id, reply) => {
                let db = state.db.clone();
                tokio::spawn(async move {
                    let _ = reply.send(db.get(id).await);
                });
            }
            NodeMessage::List(q, reply) => {
                let db = state.db.clone();
                tokio::spawn(async move {
                    let limit = if q.limit == 0 { 100 } else { q.limit };
                    let _ = reply.send(db.list(q.status, limit, q.before).await);
                });
            }
            NodeMessage::Stats(reply) => {
                let db = state.db.clone();
                tokio::spawn(async move {
                    let _ = reply.send(db.stats().await);
                });
            }
            NodeMessage::Cancel(id, reply) => {
                let db = state.db.clone();
                let me = myself.clone();
                tokio::spawn(async move {
                    let answer = db.cancel(id).await;
                    if matches!(answer, Ok(crate::run::CancelAnswer::Requested)) {
                        // Our own run needs no round trip through the notification.
                        cast(&me, Step::CancelHint(id));
                    }
                    let _ = reply.send(answer);
                });
            }
            NodeMessage::Wait(id, reply) => {
                let db = state.db.clone();
                tokio::spawn(async move {
                    let _ = reply.send(wait_for_end(&db, id).await);
                });
            }
            NodeMessage::Events(after, reply) => {
                let (db, poll) = (state.db.clone(), state.config.events_poll);
                tokio::spawn(async move {
                    let cursor = match after {
                        Some(c) => Ok(c),
                        None => db.events_now().await,
                    };
                    let _ = reply.send(cursor.map(|c| EventFeed::new(db, c, poll)));
                });
            }
            NodeMessage::Schedule(spec, reply) => {
                let (name, cron, run) = *spec;
                match state.kinds.rules(std::slice::from_ref(&run)) {
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                    Ok(rules) => {
                        let db = state.db.clone();
                        tokio::spawn(async move {
                            let answer = db.put_schedule(&name, &cron, &run, rules[0]).await;
                            let _ = reply.send(answer);
                        });
                    }
                }
            }
            NodeMessage::Unschedule(name, reply) => {
                let db = state.db.clone();
                tokio::spawn(async move {
                    let _ = reply.send(db.delete_schedule(&name).await);
                });
            }
            NodeMessage::Schedules(reply) => {
                let db = state.db.clone();
                tokio::spawn(async move {
                    let _ = reply.send(db.schedules().await);
                });
            }
            NodeMessage::SetQueueLimit(queue, limit, reply) => {
                let db = state.db.clone();
                tokio::spawn(async move {
                    let _ = reply.send(db.set_queue_limit(&queue, limit).await);
                });
            }
            NodeMessage::QueueLimits(reply) => {
                let db = state.db.clone();
                tokio::spawn(async move {
                    let _ = reply.send(db.queue_limits().await);
                });
            }
            NodeMessage::Logs(run, attempt, reply) => {
                let live = state.local_of.get(&run).and_then(|local| {
                    let held = state.held.get(local)?;
                    let wanted = attempt.is_none_or(|a| a == held.attempt);
                    (wanted && state.config.logs.is_some()).then_some((*local, held.attempt))
                });
                let (db, local, kept) = (
                    state.db.clone(),
                    state.local.clone(),
                    state.config.log_lines_kept,
                );
                tokio::spawn(async move {
                    let answer = match live {
                        Some((id, attempt)) => local
                            .log_tail(id, kept)
                            .await
                            .map(|lines| {
                                lines
                                    .into_iter()
                                    .map(|l| LogLine {
                                        attempt,
                                        at: l.at.to_system_time(),
                                        level: l.level.as_str().to_owned(),
                                        stream: l.stream.as_str().to_owned(),
                                        message: l.message,
                                    })
                                    .collect()
                            })
                            .map_err(|e| ClusterError::Unavailable(e.to_string())),
                        None => db.logs(run, attempt).await,
                    };
                    let _ = reply.send(answer);
                });
            }
            NodeMessage::Info(reply) => {
                let mut info = state.info.clone();
                info.id = state.node;
                info.leader = state.leader;
                info.running = state.held.len();
                info.reconciled = state.reconciled;
                let _ = reply.send(info);
            }
            NodeMessage::Drain(deadline, reply) => {
                let first = state.drain.is_none();
                state
                    .drain
                    .get_or_insert_with(Drain::default)
                    .waiters
                    .push(reply);
                if first {
                    tracing::info!(node = %state.node, ?deadline, "draining");
                    let local = state.local.clone();
                    let me = myself.clone();
                    tokio::spawn(async move {
                        let _ = local.drain(deadline).await;
                        cast(&me, Step::LocalDrained);
                    });
                }
            }
            NodeMessage::Step(NodeStep(step)) => state.step(&myself, step),
        }
        state.settle(&myself);
        Ok(())
    }

    async fn post_stop(
        &self,
        _: ActorRef<NodeMessage>,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        for t in state.tasks.drain(..) {
            t.abort();
        }
        Ok(())
    }
}

impl NodeState {
    /// Each run's loss rule, or why the submit is refused.
    fn rules(&self, runs: &[crate::run::NewRun]) -> Result<Vec<bool>, ClusterError> {
        if self.drain.is_some() {
            return Err(ClusterError::Closed);
        }
        self.kinds.rules(runs)
    }

    fn step(&mut self, me: &ActorRef<NodeMessage>, step: Step) {
        match step {
            Step::Tick => self.tick(me),
            Step::Beat(node, started, answer) => self.beat(node, started, answer),
            Step::Duties(answer) => self.duties(answer),
            Step::Wake => {
                self.queue_may_have_work = true;
                self.woken_while_claiming = self.claiming;
            }
            Step::Claimed(node, seq, asked, answer) => {
                self.claimed(me, node, (seq, asked), answer);
            }
            Step::Ended(local, record) => self.ended(local, &record),
            Step::Written { runs, refused } => {
                let held = runs.len();
                for id in &runs {
                    self.writing.remove(id);
                    if self.on_duty {
                        self.written_since_pass.insert(*id);
                    }
                }
                self.writes_held = self.writes_held.saturating_sub(held);
                self.info.written += (held - refused) as u64;
                self.info.fenced_out += refused as u64;
                self.report.fenced_out += refused as u64;
            }
            Step::CancelHint(run) => self.cancel_local(run),
            Step::Joined(node, result) => match result {
                Ok(()) if node == self.node => {
                    tracing::info!(node = %node, "rejoined the cluster under a new id");
                    self.joined = true;
                    self.queue_may_have_work = true;
                    self.last_ok = Instant::now();
                }
                Ok(()) => {}
                Err(e) => tracing::warn!(error = %e, "rejoining failed; trying again"),
            },
            Step::LocalDrained => {
                if let Some(d) = &mut self.drain {
                    d.local_done = true;
                }
            }
        }
    }

    fn tick(&mut self, me: &ActorRef<NodeMessage>) {
        if !self.joined {
            let db = self.db.clone();
            let (node, name, me) = (self.node, self.config.name.clone(), me.clone());
            tokio::spawn(async move {
                let r = db.join(node, &name).await;
                cast(&me, Step::Joined(node, r));
            });
            return;
        }
        if self.last_ok.elapsed() > self.config.fence_after {
            self.fence("no heartbeat renewed the lease within fence_after");
            return;
        }
        if self.beating.is_none() {
            // The lease first, alone: nothing else this node does may delay it.
            let started = Instant::now();
            self.beating = Some(started);
            let (db, node, me, limit) = (
                self.db.clone(),
                self.node,
                me.clone(),
                self.config.fence_after,
            );
            tokio::spawn(async move {
                let answer = match tokio::time::timeout(limit, db.heartbeat(node)).await {
                    Ok(r) => r,
                    Err(_) => Err(ClusterError::Database("the heartbeat timed out".into())),
                };
                cast(&me, Step::Beat(node, started, answer));
            });
        }
        if !self.on_duty {
            // Then the leader's lease and, leading, a rescue; and this node's cancel requests.
            self.on_duty = true;
            self.written_since_pass.clear();
            let (db, node, me) = (self.db.clone(), self.node, me.clone());
            let (ttl, dead_after) = (self.config.fence_after, self.config.dead_after);
            let may_lead = self.config.may_lead;
            let retain = (self.config.retain_events, self.config.retain_finished);
            tokio::spawn(async move {
                let duties = async {
                    let leader = may_lead && db.try_lead(node, ttl).await?;
                    let (rescued, fired, retained) = if leader {
                        let rescued = db.rescue(dead_after).await?;
                        let fired = db.fire_schedules().await?;
                        (rescued, fired, db.retain(retain.0, retain.1).await?)
                    } else {
                        Default::default()
                    };
                    let cancels = db.cancel_requests(node).await?;
                    let owned = db.owned(node).await?;
                    Ok(Duties {
                        node,
                        leader,
                        rescued,
                        cancels,
                        retained,
                        fired,
                        owned,
                    })
                };
                let answer = match tokio::time::timeout(dead_after, duties).await {
                    Ok(r) => r,
                    Err(_) => Err(ClusterError::Database("the leader's pass timed out".into())),
                };
                cast(&me, Step::Duties(answer));
            });
        }
    }

    fn beat(&mut self, node: Uuid, started: Instant, answer: Result<bool, ClusterError>) {
        if node != self.node {
            return;
        }
        self.beating = None;
        match answer {
            Ok(true) => self.last_ok = self.last_ok.max(started),
            Ok(false) => self.fence("the cluster declared this node dead"),
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }

    fn duties(&mut self, answer: Result<Duties, ClusterError>) {
        self.on_duty = false;
        match answer {
            Ok(d) if d.node != self.node => {}
            Ok(d) => {
                if d.leader != self.leader {
                    tracing::info!(node = %self.node, leader = d.leader, "leadership changed");
                }
                self.leader = d.leader;
                self.info.rescued_requeued += d.rescued.requeued;
                self.info.rescued_ended += d.rescued.failed + d.rescued.cancelled;
                self.info.scheduled += d.fired;
                self.info.retained_events += d.retained.0;
                self.info.retained_runs += d.retained.1;
                if d.rescued != Default::default() {
                    tracing::warn!(rescued = ?d.rescued, "rescued the runs of dead nodes");
                }
                for id in d.cancels {
                    self.cancel_local(id);
                }
                self.reconcile(d.owned);
            }
            Err(e) => tracing::warn!(error = %e, "the leader's pass failed"),
        }
    }

    /// Stops every run this node holds and forgets them, and rejoins under a new id: the
    /// lease is (or may soon be) someone else's, so no outcome of these runs may be written.
    fn fence(&mut self, why: &str) {
        tracing::error!(node = %self.node, why, runs = self.held.len(), "fencing this node");
        self.info.self_fenced += 1;
        self.info.discarded += self.held.len() as u64;
        for local in self.held.keys().copied() {
            let rw = self.local.clone();
            tokio::spawn(async move {
                let _ = rw.cancel(local).await;
            });
        }
        self.held.clear();
        self.local_of.clear();
        self.cancels_sent.clear();
        self.leader = false;
        self.node = Uuid::now_v7();
        self.joined = false;
        self.beating = None;
    }

    /// Hands back the runs the database says this node holds that it does not: a claim that
    /// committed while its answer was lost with the connection (a database restart). Only a
    /// run taken by a claim already answered (a claim in flight may hold it), and never one
    /// running here, whose outcome is being written, or whose outcome was committed after
    /// the read may have been taken (the handback would be refused, but counted).
    fn reconcile(&mut self, owned: Vec<Owned>) {
        for Owned { id, epoch, claim } in owned {
            if claim.is_some_and(|c| c > self.claims_answered)
                || self.local_of.contains_key(&id)
                || self.writing.contains(&id)
                || self.written_since_pass.contains(&id)
            {
                continue;
            }
            tracing::warn!(run = %id, "the database says this node holds a run it never got: handing it back");
            self.reconciled += 1;
            self.write(
                self.node,
                Finish {
                    id,
                    epoch,
                    outcome: Outcome::HandBack,
                    log: None,
                },
            );
        }
    }

    fn settle(&mut self, me: &ActorRef<NodeMessage>) {
        self.maybe_claim(me);
        let Some(d) = &mut self.drain else { return };
        if d.local_done && !d.leaving && self.held.is_empty() && self.writes_held == 0 {
            d.leaving = true;
            let waiters = std::mem::take(&mut d.waiters);
            self.report.discarded = self.info.discarded;
            self.report.self_fenced = self.info.self_fenced;
            let (db, node, report, me) =
                (self.db.clone(), self.node, self.report.clone(), me.clone());
            tokio::spawn(async move {
                if let Err(e) = db.leave(node).await {
                    tracing::warn!(error = %e, "could not mark this node as left; it will be rescued");
                }
                for w in waiters {
                    let _ = w.send(report.clone());
                }
                me.stop(Some("drained".into()));
            });
        }
    }

    fn maybe_claim(&mut self, me: &ActorRef<NodeMessage>) {
        let free = self.config.concurrency.saturating_sub(self.held.len());
        if self.claiming
            || !self.queue_may_have_work
            || !self.joined
            || self.drain.is_some()
            || free == 0
        {
            return;
        }
        self.claiming = true;
        self.woken_while_claiming = false;
        self.claims_sent += 1;
        let seq = self.claims_sent;
        let n = free.min(self.config.claim_batch);
        let (db, node, name, me) = (
            self.db.clone(),
            self.node,
            self.config.name.clone(),
            me.clone(),
        );
        tokio::spawn(async move {
            let answer = db.claim(node, &name, n, seq).await;
            cast(&me, Step::Claimed(node, seq, n, answer));
        });
    }

    fn claimed(
        &mut self,
        me: &ActorRef<NodeMessage>,
        node: Uuid,
        (seq, asked): (u64, usize),
        answer: Result<Vec<Claimed>, ClusterError>,
    ) {
        self.claiming = false;
        self.claims_answered = seq;
        let runs = match answer {
            Ok(runs) => runs,
            Err(e) => {
                // It may have committed: a later duties pass hands such runs back. The next
                // try waits for a wake-up, so a database that is down is not hammered.
                tracing::warn!(error = %e, "claim failed");
                self.queue_may_have_work = false;
                return;
            }
        };
        // A short answer means the queue had no more for now; a wake-up during the claim
        // may have brought more.
        self.queue_may_have_work = runs.len() >= asked || self.woken_while_claiming;
        if node != self.node {
            // Claimed under an id this node has since fenced: the rows are that id's, and a
            // rescue takes them back; running them here could run them twice.
            self.info.discarded += runs.len() as u64;
            return;
        }
        for c in runs {
            self.info.claimed += 1;
            self.start_local(me, c);
        }
    }

    fn start_local(&mut self, me: &ActorRef<NodeMessage>, c: Claimed) {
        let input = JobInput {
            run_id: c.id,
            attempt: c.attempt,
            params: &c.params,
        };
        let built = self.kinds.build(&c.kind, &input);
        let mut spec = RunSpec::new(c.label.clone()).name(c.id.to_string());
        spec.timeout = c.timeout;
        let submitted = match built {
            Ok(job) => self.local.submit_job(spec, job).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match submitted {
            Ok(local) => {
                self.local_of.insert(c.id, local);
                self.held.insert(
                    local,
                    Held {
                        node: self.node,
                        run: c.id,
                        epoch: c.epoch,
                        attempt: c.attempt,
                        max_attempts: c.max_attempts,
                        cancel_requested: c.cancel_requested,
                    },
                );
                if c.cancel_requested {
                    self.cancel_local(c.id);
                }
                let (rw, me) = (self.local.clone(), me.clone());
                tokio::spawn(async move {
                    if let Ok(record) = rw.wait(local).await {
                        cast(&me, Step::Ended(local, Box::new(record)));
                    }
                });
            }
            Err(why) => {
                // The job could not be built here (bad parameters, a kind this node lacks):
                // the run fails; that is its outcome, written like any other.
                self.write(
                    self.node,
                    Finish {
                        id: c.id,
                        epoch: c.epoch,
                        outcome: Outcome::Ended {
                            status: RunStatus::Failed,
                            result: None,
                            error: Some(("returned".into(), why)),
                        },
                        log: None,
                    },
                );
            }
        }
    }

    fn ended(&mut self, local: RunId, record: &RunRecord) {
        let Some(h) = self.held.remove(&local) else {
            // Forgotten when this node fenced itself: its outcome must not be written.
            return;
        };
        self.local_of.remove(&h.run);
        self.cancels_sent.remove(&h.run);
        let error = record
            .error
            .as_ref()
            .map(|e| (error_kind_str(e.kind), e.message.clone()));
        let outcome = match record.status {
            RunStatus::Completed => {
                self.report.completed += 1;
                Outcome::Ended {
                    status: RunStatus::Completed,
                    result: record
                        .result
                        .as_ref()
                        .and_then(|j| serde_json::to_value(j).ok()),
                    error: None,
                }
            }
            RunStatus::Cancelled if record.started_at.is_none() && !h.cancel_requested => {
                self.report.handed_back += 1;
                Outcome::HandBack
            }
            RunStatus::Cancelled => {
                self.report.cancelled += 1;
                Outcome::Ended {
                    status: RunStatus::Cancelled,
                    result: None,
                    error,
                }
            }
            _ if h.attempt < h.max_attempts && !h.cancel_requested => {
                self.report.retried += 1;
                Outcome::Retry {
                    delay: retry_delay(h.attempt),
                    error: error.unwrap_or_else(|| ("returned".into(), "failed".into())),
                }
            }
            _ => {
                self.report.failed += 1;
                Outcome::Ended {
                    status: RunStatus::Failed,
                    result: None,
                    error,
                }
            }
        };
        let log = self.config.logs.is_some().then_some((local, h.attempt));
        self.write(
            h.node,
            Finish {
                id: h.run,
                epoch: h.epoch,
                outcome,
                log,
            },
        );
    }

    fn write(&mut self, node: Uuid, finish: Finish) {
        let id = finish.id;
        if self.writer.send((node, finish)).is_ok() {
            self.writing.insert(id);
            self.writes_held += 1;
        }
    }

    fn cancel_local(&mut self, run: RunId) {
        let Some(local) = self.local_of.get(&run).copied() else {
            return;
        };
        if let Some(h) = self.held.get_mut(&local) {
            h.cancel_requested = true;
        }
        if !self.cancels_sent.insert(run) {
            return;
        }
        let rw = self.local.clone();
        tokio::spawn(async move {
            let _ = rw.cancel(local).await;
        });
    }
}

/// A failed attempt's wait before the next: 100 ms, doubling, at most 30 s.
fn retry_delay(attempt: u32) -> Duration {
    let ms = 100u64.saturating_mul(1 << attempt.saturating_sub(1).min(9));
    Duration::from_millis(ms.min(30_000))
}

/// The writer: everything waiting goes into one fenced statement (group commit). A failed
/// statement is tried again, with backoff, until it commits: fencing makes a late write safe.
async fn write_loop(
    db: Db,
    mut rx: mpsc::UnboundedReceiver<(Uuid, Finish)>,
    me: ActorRef<NodeMessage>,
    log_reader: Option<(Runwarden, usize)>,
) {
    let mut batch: Vec<(Uuid, Finish)> = Vec::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        let runs: Vec<RunId> = batch.iter().map(|(_, f)| f.id).collect();
        let mut refused = 0;
        let mut by_node: HashMap<Uuid, Vec<Finish>> = HashMap::new();
        for (node, f) in batch.drain(..) {
            by_node.entry(node).or_default().push(f);
        }
        for (node, finishes) in by_node {
            let logs = match &log_reader {
                Some((local, kept)) => read_logs(local, *kept, &finishes).await,
                None => Vec::new(),
            };
            let mut backoff = Duration::from_millis(50);
            loop {
                match db.finish(node, &finishes, &logs).await {
                    Ok(accepted) => {
                        refused += finishes.len() - accepted.len();
                        if accepted.len() < finishes.len() {
                            let accepted: HashSet<RunId> = accepted.into_iter().collect();
                            for f in finishes.iter().filter(|f| !accepted.contains(&f.id)) {
                                tracing::warn!(
                                    run = %f.id, node = %node,
                                    "the lease was lost: this outcome is discarded"
                                );
                            }
                        }
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "writing outcomes failed; trying again");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                }
            }
        }
        cast(&me, Step::Written { runs, refused });
    }
}

/// The last lines of each attempt's log, read from the local log keeper, for the finishes
/// that carry one; an attempt that logged nothing (or whose log cannot be read) has none.
async fn read_logs(local: &Runwarden, kept: usize, finishes: &[Finish]) -> Vec<AttemptLog> {
    let reads = finishes.iter().filter_map(|f| {
        let (id, attempt) = f.log?;
        let run = f.id;
        Some(async move {
            let lines = local.log_tail(id, kept).await.unwrap_or_default();
            AttemptLog {
                run,
                attempt,
                lines,
            }
        })
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .filter(|l| !l.lines.is_empty())
        .collect()
}

/// LISTENs for wake-ups and cancels; reconnects after a lost connection (and wakes the node,
/// since notifications sent meanwhile are lost: the tables are the truth).
async fn listen_loop(db: Db, me: ActorRef<NodeMessage>) {
    loop {
        if let Ok((client, mut conn)) = db.dedicated().await {
            let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            let sql = format!("LISTEN {WAKE_CHANNEL}; LISTEN {CANCEL_CHANNEL}");
            let ok = {
                // The connection must be driven while the LISTEN is sent.
                let mut listen = std::pin::pin!(client.batch_execute(&sql));
                loop {
                    tokio::select! {
                        r = &mut listen => break r.is_ok(),
                        m = messages.next() => if m.is_none() { break false; },
                    }
                }
            };
            if ok {
                cast(&me, Step::Wake);
                while let Some(m) = messages.next().await {
                    match m {
                        Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                            if n.channel() == CANCEL_CHANNEL {
                                if let Ok(u) = n.payload().parse::<Uuid>() {
                                    cast(&me, Step::CancelHint(RunId::from_uuid(u)));
                                }
                            } else {
                                cast(&me, Step::Wake);
                            }
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            }
            drop(client);
        }
        cast(&me, Step::Wake);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn tick_loop(me: ActorRef<NodeMessage>, every: Duration, step: fn() -> Step) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        interval.tick().await;
        if me.cast(step().into()).is_err() {
            return;
        }
    }
}

/// Answers when the run has ended: reads its row, then again after 20 ms, doubling to 500 ms.
async fn wait_for_end(db: &Db, id: RunId) -> Result<ClusterRun, ClusterError> {
    let mut pause = Duration::from_millis(20);
    loop {
        match db.get(id).await? {
            None => return Err(ClusterError::BadRequest(format!("no run has id {id}"))),
            Some(r) if r.status.is_terminal() => return Ok(r),
            Some(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}
