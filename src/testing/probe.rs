//! A probe actor: it receives run events through the registry's event port, as a user's
//! actor would, and lets a test wait for what it expects.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use runwarden_actors::{RegistryRef, RunEvent, RunId, RunStatus};
use tokio::sync::{mpsc, oneshot};

use crate::Error;

/// How long a probe waits by default, in real time.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// Records every run event from the moment it is attached, through an actor subscribed to
/// the registry's event port (the path a user's actor takes), and waits for the ones a test
/// expects.
///
/// Waits are bounded in real time, not by tokio's clock: on a paused clock, a wait for a
/// retry 30 s away returns as soon as the clock gets there, and a wait for something that
/// never comes fails after [`PATIENCE`] with what was seen instead.
#[derive(Debug)]
pub struct Probe {
    actor: ActorRef<RunEvent>,
    rx: mpsc::UnboundedReceiver<RunEvent>,
    seen: Vec<RunEvent>,
    /// How many of `seen` [`Probe::next_event`] has handed out.
    taken: usize,
    patience: Duration,
}

struct ProbeActor;

impl Actor for ProbeActor {
    type Msg = RunEvent;
    type State = mpsc::UnboundedSender<RunEvent>;
    type Arguments = mpsc::UnboundedSender<RunEvent>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        tx: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(tx)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: RunEvent,
        tx: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        // The test may have dropped its probe; the actor is stopped with it.
        let _ = tx.send(event);
        Ok(())
    }
}

impl Probe {
    /// Spawns a probe actor and subscribes it to `registry`'s events.
    ///
    /// # Errors
    /// [`Error`] if the registry does not answer or the actor cannot be spawned.
    pub async fn attach(registry: &RegistryRef) -> Result<Probe, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (actor, _) = Actor::spawn(None, ProbeActor, tx)
            .await
            .map_err(|e| Error::Spawn(format!("could not spawn a probe: {e}")))?;
        let port = registry.event_port().await?;
        port.subscribe(actor.clone(), Some);
        Ok(Probe {
            actor,
            rx,
            seen: Vec::new(),
            taken: 0,
            patience: PATIENCE,
        })
    }

    /// Waits at most `patience` (real time) from now on.
    #[must_use]
    pub fn with_patience(mut self, patience: Duration) -> Self {
        self.patience = patience;
        self
    }

    /// The probe's actor: what the registry's event port sends to.
    #[must_use]
    pub fn actor(&self) -> &ActorRef<RunEvent> {
        &self.actor
    }

    /// Every event received so far, in order.
    #[must_use]
    pub fn seen(&self) -> &[RunEvent] {
        &self.seen
    }

    fn drain(&mut self) {
        while let Ok(e) = self.rx.try_recv() {
            self.seen.push(e);
        }
    }

    /// Waits for one more event; `None` if the patience ran out.
    async fn receive(&mut self, deadline: &mut oneshot::Receiver<()>) -> Option<()> {
        tokio::select! {
            biased;
            e = self.rx.recv() => {
                self.seen.push(e?);
                Some(())
            }
            _ = deadline => None,
        }
    }

    /// The next event not yet handed out.
    ///
    /// # Panics
    /// If none arrives within the patience.
    pub async fn next_event(&mut self) -> RunEvent {
        self.drain();
        let mut deadline = real_time_deadline(self.patience);
        while self.taken >= self.seen.len() {
            if self.receive(&mut deadline).await.is_none() {
                panic!(
                    "waited {:?} (real time) for a run event; none came after the {} seen",
                    self.patience,
                    self.seen.len()
                );
            }
        }
        self.taken += 1;
        self.seen[self.taken - 1].clone()
    }

    /// Waits until run `id` has reached `status` (at once if it already has, since the probe
    /// was attached), and returns that event.
    ///
    /// # Panics
    /// If the run ends in another status, or the patience runs out: the message says what
    /// was awaited and lists the run's events seen instead.
    pub async fn await_status(&mut self, id: RunId, status: RunStatus) -> RunEvent {
        let what = format!("run {id} to reach {status}");
        self.await_where(Some(id), &what, |e| e.status() == Some(status))
            .await
    }

    /// Waits until run `id` has reached its terminal status, and returns that event.
    ///
    /// # Panics
    /// If the patience runs out, saying what was seen instead.
    pub async fn await_terminal(&mut self, id: RunId) -> RunEvent {
        let what = format!("run {id} to end");
        self.await_where(Some(id), &what, RunEvent::is_terminal)
            .await
    }

    /// Waits for the first event, since the probe was attached, that `matches` (`what` names
    /// it in the failure message).
    ///
    /// # Panics
    /// If the patience runs out, saying how many events were seen.
    pub async fn await_event(
        &mut self,
        what: &str,
        matches: impl Fn(&RunEvent) -> bool,
    ) -> RunEvent {
        self.await_where(None, what, matches).await
    }

    async fn await_where(
        &mut self,
        run: Option<RunId>,
        what: &str,
        matches: impl Fn(&RunEvent) -> bool,
    ) -> RunEvent {
        self.drain();
        let mut deadline = real_time_deadline(self.patience);
        let mut looked = 0;
        loop {
            for e in &self.seen[looked..] {
                if run.is_some_and(|id| e.run_id() != id) {
                    continue;
                }
                if matches(e) {
                    return e.clone();
                }
                if let Some(id) = run
                    && let Some(s) = e.status().filter(|s| s.is_terminal())
                {
                    panic!(
                        "run {id} ended {s} while awaiting {what}; {}",
                        self.story(id)
                    );
                }
            }
            looked = self.seen.len();
            if self.receive(&mut deadline).await.is_none() {
                let story = match run {
                    Some(id) => self.story(id),
                    None => format!("{} events seen", self.seen.len()),
                };
                panic!("waited {:?} (real time) for {what}; {story}", self.patience);
            }
        }
    }

    /// What the probe saw of run `id`, and how much else.
    fn story(&self, id: RunId) -> String {
        let mine: Vec<&RunEvent> = self.seen.iter().filter(|e| e.run_id() == id).collect();
        let mut out = if mine.is_empty() {
            "no event of it was seen".to_owned()
        } else {
            "its events:".to_owned()
        };
        for e in &mine {
            match e {
                RunEvent::Status {
                    status,
                    attempt,
                    error,
                    ..
                } => {
                    let _ = write!(out, " {status} (attempt {attempt}");
                    if let Some(err) = error {
                        let _ = write!(out, ", {err}");
                    }
                    out.push(')');
                }
                RunEvent::Progress { .. } => out.push_str(" progress"),
            }
        }
        let others = self.seen.len() - mine.len();
        let _ = write!(out, "; {others} events of other runs");
        out
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.actor.stop(None);
    }
}

/// A signal after `d` of real time, whatever tokio's clock does. One thread keeps every
/// probe's deadlines, so a test that waits often does not leave a sleeping thread per wait.
fn real_time_deadline(d: Duration) -> oneshot::Receiver<()> {
    static DEADLINES: OnceLock<Mutex<std_mpsc::Sender<Deadline>>> = OnceLock::new();
    let (tx, rx) = oneshot::channel();
    let due = Instant::now() + d;
    let sender = DEADLINES.get_or_init(|| {
        let (send, recv) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("runwarden-probe-deadlines".into())
            .spawn(move || keep_deadlines(&recv))
            .expect("the probe's deadline thread starts");
        Mutex::new(send)
    });
    if let Err(std_mpsc::SendError((_, tx))) = sender.lock().send((due, tx)) {
        // The thread is gone (it never exits): fail the wait at once rather than hang.
        let _ = tx.send(());
    }
    rx
}

/// When to signal, and where.
type Deadline = (Instant, oneshot::Sender<()>);

/// The deadline thread: signals each deadline when it passes, earliest first.
fn keep_deadlines(recv: &std_mpsc::Receiver<Deadline>) {
    let mut pending: Vec<Deadline> = Vec::new();
    loop {
        let now = Instant::now();
        let (due, waiting): (Vec<_>, Vec<_>) = pending.drain(..).partition(|(at, _)| *at <= now);
        pending = waiting;
        for (_, tx) in due {
            let _ = tx.send(());
        }
        // Waits whose probe gave up or got its event need no signal.
        pending.retain(|(_, tx)| !tx.is_closed());
        let next = pending.iter().map(|(at, _)| *at).min();
        let got = match next {
            Some(at) => recv.recv_timeout(at.saturating_duration_since(now)),
            None => recv
                .recv()
                .map_err(|_| std_mpsc::RecvTimeoutError::Disconnected),
        };
        match got {
            Ok(deadline) => pending.push(deadline),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {}
            Err(std_mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}
