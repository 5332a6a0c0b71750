//! The supervisor's timers: a task that sends the supervisor one message when it is due,
//! aborted when dropped, which knows when it is due (what `NextTimer` reports).

use std::time::Duration;

use ractor::{ActorRef, MessagingErr};
use tokio::time::Instant;

use crate::protocol::supervisor::SupervisorMessage;
use crate::task::AbortOnDrop;

pub(super) struct Timer {
    _task: AbortOnDrop<Result<(), MessagingErr<SupervisorMessage>>>,
    due: Instant,
}

impl Timer {
    /// Sends `message()` to `myself` after `wait`.
    pub(super) fn after(
        myself: &ActorRef<SupervisorMessage>,
        wait: Duration,
        message: impl FnOnce() -> SupervisorMessage + Send + 'static,
    ) -> Self {
        let due = Instant::now().checked_add(wait).unwrap_or_else(far_future);
        Timer {
            _task: AbortOnDrop(myself.send_after(wait, message)),
            due,
        }
    }

    /// When it fires.
    pub(super) fn due(&self) -> Instant {
        self.due
    }
}

/// An instant no timer reaches (about 30 years on), for a wait too long for the clock.
pub(super) fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(30 * 365 * 24 * 3600)
}
