//! The cluster's events: every status a run takes, in commit order, from any node. (The
//! feed that reads them is in `feed.rs`.)
//!
//! Events are rows of `rw_events`, appended in the transaction that changes the status (see
//! the schema), so an event exists if and only if its change committed. A feed reads them
//! after a [`EventCursor`]; it takes only events of transactions older than every one still
//! running, so nothing can appear behind a cursor later and a feed resumed from a cursor
//! (an SSE `Last-Event-ID`) misses nothing and repeats nothing. A transaction left open
//! holds every feed back until it ends (delayed, never lost).

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use runwarden::{RunId, RunStatus};
use serde::Serialize;

use crate::error::ClusterError;

/// A position in the cluster's events: after this one. Written `TX-SEQ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventCursor {
    pub(crate) tx: i64,
    pub(crate) seq: i64,
}

impl EventCursor {
    /// Before every event still kept.
    pub const START: EventCursor = EventCursor { tx: 0, seq: 0 };
}

impl fmt::Display for EventCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.tx, self.seq)
    }
}

impl FromStr for EventCursor {
    type Err = ClusterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ClusterError::BadRequest(format!("`{s}` is not an event cursor (TX-SEQ)"));
        let (tx, seq) = s.split_once('-').ok_or_else(bad)?;
        let (tx, seq): (i64, i64) = (
            tx.parse().map_err(|_| bad())?,
            seq.parse().map_err(|_| bad())?,
        );
        if tx < 0 || seq < 0 {
            return Err(bad());
        }
        Ok(EventCursor { tx, seq })
    }
}

impl Serialize for EventCursor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A run took a status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterEvent {
    /// Where this event is; a feed resumed from it starts with the next.
    pub cursor: EventCursor,
    /// The run.
    pub run_id: RunId,
    /// The status it took.
    pub status: RunStatus,
    /// Its attempt at that moment (0 while first queued).
    pub attempt: u32,
    /// The node running it (or that ran it last), by name.
    pub node: Option<String>,
    /// For a run that failed or was cancelled: the kind of its error.
    pub error_kind: Option<String>,
    /// When the change was written (the database's clock).
    #[serde(serialize_with = "crate::run::ser_time")]
    pub at: SystemTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_what_it_writes_and_refuses_the_rest() {
        let c = EventCursor { tx: 812, seq: 33 };
        assert_eq!(c.to_string(), "812-33");
        assert_eq!("812-33".parse::<EventCursor>().ok(), Some(c));
        for bad in [
            "",
            "812",
            "812-",
            "-3",
            "a-b",
            "1-2-3",
            "-1-2",
            "99999999999999999999-1",
        ] {
            assert!(bad.parse::<EventCursor>().is_err(), "{bad:?} was taken");
        }
        assert!(EventCursor { tx: 1, seq: 9 } < EventCursor { tx: 2, seq: 1 });
    }
}
