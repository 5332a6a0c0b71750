//! A feed of the cluster's events: reads `rw_events` past a cursor as transactions commit
//! (see `events.rs` for what an event and a cursor are).

use std::time::Duration;

use crate::db::Db;
use crate::error::ClusterError;
use crate::events::{ClusterEvent, EventCursor};

/// Most events one read answers.
const BATCH: i64 = 1_000;

/// Events after a cursor, read from the database as they commit. Get one from
/// [`crate::Node::events`] (or the [`crate::NodeMessage::Events`] message).
#[derive(Debug)]
pub struct EventFeed {
    db: Db,
    cursor: EventCursor,
    poll: Duration,
}

impl EventFeed {
    pub(crate) fn new(db: Db, cursor: EventCursor, poll: Duration) -> Self {
        EventFeed { db, cursor, poll }
    }

    /// The position after the last event handed out.
    #[must_use]
    pub fn cursor(&self) -> EventCursor {
        self.cursor
    }

    /// The next events, at least one, in commit order. Looks every `poll` until there is one.
    ///
    /// # Errors
    /// The database's error; the feed's position is kept, so calling again resumes.
    pub async fn next_batch(&mut self) -> Result<Vec<ClusterEvent>, ClusterError> {
        loop {
            let events = self.db.events_after(self.cursor, BATCH).await?;
            if let Some(last) = events.last() {
                self.cursor = last.cursor;
                return Ok(events);
            }
            tokio::time::sleep(self.poll).await;
        }
    }

    /// The events there are now (perhaps none), without waiting.
    ///
    /// # Errors
    /// The database's error.
    pub async fn try_next_batch(&mut self) -> Result<Vec<ClusterEvent>, ClusterError> {
        let events = self.db.events_after(self.cursor, BATCH).await?;
        if let Some(last) = events.last() {
            self.cursor = last.cursor;
        }
        Ok(events)
    }
}
