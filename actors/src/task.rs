//! Task handles that end their task when dropped.

use tokio::task::JoinHandle;

/// A task handle that aborts the task when dropped, so a worker never leaks its job or
/// timer task, however the worker ends (stop, kill, or a panic in a handler).
#[derive(Debug)]
pub(crate) struct AbortOnDrop<T>(pub(crate) JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
