//! Who listens to the registry: callers waiting for a run's end, handle subscribers (a
//! broadcast channel) and actor subscribers (an output port). Sending to them never blocks;
//! a slow handle subscriber lags, it does not slow the registry.

use std::sync::Arc;

use ractor::{OutputPort, RpcReplyPort};
use tokio::sync::broadcast;

use crate::error::NotFound;
use crate::event::RunEvent;
use crate::hash::IdMap;
use crate::run::{RunId, RunRecord};

/// A caller's port for a run's final record.
pub(super) type Waiter = RpcReplyPort<Result<RunRecord, NotFound>>;

pub(super) struct Subscribers {
    /// Callers waiting for a run to become terminal.
    waiters: IdMap<RunId, Vec<Waiter>>,
    /// Live events for handle subscribers.
    events: broadcast::Sender<RunEvent>,
    /// Live events for actor subscribers, once any actor asked for the port.
    port: Option<Arc<OutputPort<RunEvent>>>,
}

impl Subscribers {
    /// No one listening yet; a handle subscriber may fall `buffer` events behind.
    pub(super) fn new(buffer: usize) -> Self {
        Subscribers {
            waiters: IdMap::default(),
            events: broadcast::channel(buffer.max(1)).0,
            port: None,
        }
    }

    /// Whether anyone listens to events; they are only built when someone does.
    pub(super) fn publishing(&self) -> bool {
        self.events.receiver_count() > 0 || self.port.is_some()
    }

    pub(super) fn publish(&self, event: RunEvent) {
        if let Some(port) = &self.port {
            port.send(event.clone());
        }
        // An error only means no receiver is subscribed right now.
        let _ = self.events.send(event);
    }

    /// A new handle subscriber's receiver: every event from now on.
    pub(super) fn receiver(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }

    /// The actor subscribers' port, made on first use.
    pub(super) fn port(&mut self) -> Arc<OutputPort<RunEvent>> {
        self.port
            .get_or_insert_with(|| Arc::new(OutputPort::default()))
            .clone()
    }

    /// `waiter` waits for active run `id` to end.
    pub(super) fn wait(&mut self, id: RunId, waiter: Waiter) {
        let waiters = self.waiters.entry(id).or_default();
        // Callers that timed out leave closed ports behind; shed them here so a caller
        // polling `wait` with short timeouts cannot grow this list forever.
        waiters.retain(|w| !w.is_closed());
        waiters.push(waiter);
    }

    /// The callers waiting for `id` (none if nobody waits).
    pub(super) fn take_waiters(&mut self, id: RunId) -> Vec<Waiter> {
        self.waiters.remove(&id).unwrap_or_default()
    }

    /// The runs someone waits for.
    pub(super) fn waited_for(&self) -> Vec<RunId> {
        self.waiters.keys().copied().collect()
    }
}
