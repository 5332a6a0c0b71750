//! Task handles that end their task when dropped.

use tokio::task::JoinHandle;

/// A task handle that aborts the task when dropped, so an actor never leaks a timer task it
/// started, however it ends (stop, kill, or a panic in a handler).
#[derive(Debug)]
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
