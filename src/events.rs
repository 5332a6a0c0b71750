//! [`EventStream`]: live run events on the handle.

use std::fmt;

use futures_util::Stream;
use runwarden_actors::{EventFilter, RunEvent, Subscription};
use tokio::sync::broadcast::error::RecvError;

/// One item of an [`EventStream`].
#[derive(Debug, Clone, PartialEq)]
pub enum EventItem {
    /// An event, in the order the registry applied it.
    Event(RunEvent),
    /// The subscriber fell this many events behind and they were skipped (its buffer is
    /// bounded, so a slow subscriber never slows the registry).
    Lagged(u64),
}

/// Why an [`EventStream`] ended (see [`EventStream::end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The followed run's terminal event was the last item.
    RunEnded,
    /// The registry stopped (a shutdown, or a failure its supervisor did not restart it
    /// from): no further events can come. A run stream ending this way never saw its run's
    /// end; ask the store-backed handle again after a restart.
    RegistryStopped,
}

/// Live events from the registry, filtered for all runs, one label, or one run.
///
/// A stream for one run starts with the run's current status and always ends with its
/// terminal event — also when the run ended before the subscription, or when the subscriber
/// lagged past the event — and then yields `None`. Streams for all runs or a label run until
/// the registry stops. After `None`, [`EventStream::end`] says which of the two happened.
///
/// Use [`EventStream::next`] in a loop, or [`EventStream::into_stream`] for a
/// `futures::Stream`.
///
/// # Examples
/// ```
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), runwarden::Error> {
/// use runwarden::{EventFilter, EventItem, RunEvent, RunSpec, Runwarden};
///
/// let rw = Runwarden::start().await?;
/// let id = rw.submit(RunSpec::new("watched"), |_ctx| async { Ok(()) })?;
/// let mut events = rw.events(EventFilter::Run(id)).await?;
/// let mut last = None;
/// while let Some(item) = events.next().await {
///     if let EventItem::Event(RunEvent::Status { status, .. }) = item {
///         last = Some(status);
///     }
/// }
/// assert!(last.is_some_and(|s| s.is_terminal()));
/// # rw.shutdown(std::time::Duration::from_secs(1)).await?;
/// # Ok(())
/// # }
/// ```
pub struct EventStream {
    sub: Subscription,
    first: Option<RunEvent>,
    end: Option<StreamEnd>,
}

impl EventStream {
    pub(crate) fn new(mut sub: Subscription) -> Self {
        let first = sub.current.take().map(|r| RunEvent::from_record(&r));
        EventStream {
            sub,
            first,
            end: None,
        }
    }

    /// Why the stream ended, once it has (`None` while it goes on).
    #[must_use]
    pub fn end(&self) -> Option<StreamEnd> {
        self.end
    }

    /// Marks the stream ended by its run's terminal event if `event` is one (run streams).
    fn ends_with(&mut self, by_run: bool, event: &RunEvent) {
        if by_run && event.is_terminal() {
            self.end = Some(StreamEnd::RunEnded);
        }
    }

    /// The next event, or `None` when the stream has ended.
    ///
    /// # Cancel safety
    /// Cancel safe: an event is removed from the buffer only when it is returned.
    pub async fn next(&mut self) -> Option<EventItem> {
        if self.end.is_some() {
            return None;
        }
        let by_run = matches!(self.sub.filter, EventFilter::Run(_));
        if let Some(first) = self.first.take() {
            self.ends_with(by_run, &first);
            return Some(EventItem::Event(first));
        }
        loop {
            // The broadcast is polled first: the registry publishes a run's terminal event
            // before it answers the terminal waiter, so the waiter only wins when the event
            // was lost to lag.
            let received = tokio::select! {
                biased;
                r = self.sub.events.recv() => r,
                end = async {
                    match self.sub.terminal.as_mut() {
                        Some(rx) => rx.await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.sub.terminal = None;
                    if let Ok(Ok(record)) = end {
                        self.end = Some(StreamEnd::RunEnded);
                        return Some(EventItem::Event(RunEvent::from_record(&record)));
                    }
                    continue;
                }
            };
            match received {
                Ok(event) if self.sub.filter.matches(&event) => {
                    self.ends_with(by_run, &event);
                    return Some(EventItem::Event(event));
                }
                Ok(_) => {}
                Err(RecvError::Lagged(n)) => return Some(EventItem::Lagged(n)),
                Err(RecvError::Closed) => {
                    // The registry stopped. A run stream still gets its end if it was sent.
                    if let Some(rx) = self.sub.terminal.take()
                        && let Ok(Ok(record)) = rx.await
                    {
                        self.end = Some(StreamEnd::RunEnded);
                        return Some(EventItem::Event(RunEvent::from_record(&record)));
                    }
                    self.end = Some(StreamEnd::RegistryStopped);
                    return None;
                }
            }
        }
    }

    /// This subscription as a `futures::Stream`.
    pub fn into_stream(self) -> impl Stream<Item = EventItem> + Send {
        futures_util::stream::unfold(self, |mut s| async move {
            let item = s.next().await?;
            Some((item, s))
        })
    }
}

impl fmt::Debug for EventStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStream")
            .field("filter", &self.sub.filter)
            .field("end", &self.end)
            .finish()
    }
}
