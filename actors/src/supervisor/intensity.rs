//! Restart intensity, as an Erlang supervisor has it: more than so many restarts of a child
//! within a window, and the supervisor gives up (fails, escalating to its own supervisor).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub(super) struct RestartIntensity {
    max: usize,
    window: Duration,
    /// When the child restarted, within the last `window`.
    at: VecDeque<Instant>,
}

impl RestartIntensity {
    pub(super) fn new(max: usize, window: Duration) -> Self {
        RestartIntensity {
            max,
            window,
            at: VecDeque::new(),
        }
    }

    /// Counts a restart at `now`: `Ok` with the restarts within the window, or `Err` with
    /// that count once it exceeds the maximum.
    pub(super) fn restarted(&mut self, now: Instant) -> Result<usize, usize> {
        self.at.push_back(now);
        while self
            .at
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            self.at.pop_front();
        }
        let n = self.at.len();
        if n > self.max { Err(n) } else { Ok(n) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_up_past_the_maximum_within_the_window_only() {
        let mut r = RestartIntensity::new(2, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(r.restarted(t0), Ok(1));
        assert_eq!(r.restarted(t0 + Duration::from_secs(1)), Ok(2));
        assert_eq!(r.restarted(t0 + Duration::from_secs(2)), Err(3));
        // Restarts older than the window no longer count.
        let later = t0 + Duration::from_secs(200);
        let mut r = RestartIntensity::new(2, Duration::from_secs(60));
        assert_eq!(r.restarted(t0), Ok(1));
        assert_eq!(r.restarted(t0 + Duration::from_secs(1)), Ok(2));
        assert_eq!(r.restarted(later), Ok(1));
    }
}
