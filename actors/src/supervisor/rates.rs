//! Rate limits' memory of recent starts: a sliding window or a token bucket for each limited
//! thing (a queue, a partition key, a kind), and what it allows next.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::queue::RateLimit;

/// Slack for the token bucket's floating-point refill: a start is allowed at this fraction
/// of a token short of one, so a timer armed for the refill never finds it a hair early.
const EPS: f64 = 1e-9;

/// What "never" is when a limit's window is too long for the clock (a user may set any
/// `per`): thirty years on, as tokio reads a far-off deadline.
const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);

/// `at + d`, saturating at [`FAR`] from `at` instead of overflowing.
fn after(at: Instant, d: Duration) -> Instant {
    at.checked_add(d.min(FAR)).unwrap_or(at)
}

/// One rate limit and the starts it has seen.
#[derive(Debug)]
pub(super) struct Window {
    limit: RateLimit,
    recent: Recent,
}

#[derive(Debug)]
enum Recent {
    /// The last `limit.max` start times, oldest first.
    Sliding(VecDeque<Instant>),
    /// Tokens in the bucket as of `at`.
    Bucket { tokens: f64, at: Instant },
}

impl Window {
    pub(super) fn new(limit: RateLimit, now: Instant) -> Self {
        let limit = limit.normalized();
        let recent = match limit.burst {
            None => Recent::Sliding(VecDeque::new()),
            Some(cap) => Recent::Bucket {
                tokens: f64::from(cap),
                at: now,
            },
        };
        Window { limit, recent }
    }

    pub(super) fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Tokens per second a bucket gains (`None`: a zero window, which never holds a start).
    fn refill_rate(&self) -> Option<f64> {
        let per = self.limit.per.as_secs_f64();
        (per > 0.0).then(|| f64::from(self.limit.max) / per)
    }

    fn tokens_at(&self, tokens: f64, at: Instant, now: Instant) -> f64 {
        let cap = f64::from(self.limit.burst.unwrap_or(1));
        match self.refill_rate() {
            None => cap,
            Some(rate) => {
                (tokens + now.saturating_duration_since(at).as_secs_f64() * rate).min(cap)
            }
        }
    }

    /// When the next start is allowed: `now` if one is allowed now.
    pub(super) fn allows_at(&self, now: Instant) -> Instant {
        match &self.recent {
            Recent::Sliding(starts) if starts.len() >= self.limit.max as usize => starts
                .front()
                .map_or(now, |first| after(*first, self.limit.per).max(now)),
            Recent::Sliding(_) => now,
            Recent::Bucket { tokens, at } => {
                let have = self.tokens_at(*tokens, *at, now);
                match self.refill_rate() {
                    Some(rate) if have < 1.0 - EPS => {
                        let wait = Duration::try_from_secs_f64((1.0 - have) / rate).unwrap_or(FAR);
                        after(now, wait)
                    }
                    _ => now,
                }
            }
        }
    }

    /// Whether it allows a start at `now`.
    pub(super) fn allows(&self, now: Instant) -> bool {
        self.allows_at(now) <= now
    }

    /// A start was made at `now`.
    pub(super) fn record(&mut self, now: Instant) {
        let max = self.limit.max as usize;
        let have = match &self.recent {
            Recent::Bucket { tokens, at } => self.tokens_at(*tokens, *at, now),
            Recent::Sliding(_) => 0.0,
        };
        match &mut self.recent {
            Recent::Sliding(starts) => {
                starts.push_back(now);
                while starts.len() > max {
                    starts.pop_front();
                }
            }
            Recent::Bucket { tokens, at } => {
                *tokens = (have - 1.0).max(0.0);
                *at = now;
            }
        }
    }

    /// Changes the limit; the starts already made count against the new one (a sliding
    /// window keeps its most recent starts, a bucket its tokens up to its new size).
    pub(super) fn set(&mut self, limit: RateLimit, now: Instant) {
        let limit = limit.normalized();
        let recent = match (&self.recent, limit.burst) {
            (Recent::Sliding(starts), None) => {
                let mut starts = starts.clone();
                while starts.len() > limit.max as usize {
                    starts.pop_front();
                }
                Recent::Sliding(starts)
            }
            (Recent::Sliding(starts), Some(cap)) => {
                let used = starts
                    .iter()
                    .filter(|s| after(**s, self.limit.per) > now)
                    .count();
                Recent::Bucket {
                    tokens: (f64::from(cap) - used as f64).max(0.0),
                    at: now,
                }
            }
            (Recent::Bucket { tokens, at }, Some(cap)) => Recent::Bucket {
                tokens: self.tokens_at(*tokens, *at, now).min(f64::from(cap)),
                at: now,
            },
            // The tokens the bucket lacks are starts made lately: the window counts them
            // as made now (erring on the side of fewer starts).
            (Recent::Bucket { tokens, at }, None) => {
                let cap = f64::from(self.limit.burst.unwrap_or(1));
                let used = (cap - self.tokens_at(*tokens, *at, now)).ceil().max(0.0) as usize;
                Recent::Sliding(std::iter::repeat_n(now, used.min(limit.max as usize)).collect())
            }
        };
        self.limit = limit;
        self.recent = recent;
    }

    /// Whether it remembers nothing that could hold a start back, so that forgetting it
    /// changes nothing.
    fn is_idle(&self, now: Instant) -> bool {
        match &self.recent {
            Recent::Sliding(starts) => starts
                .back()
                .is_none_or(|last| after(*last, self.limit.per) <= now),
            Recent::Bucket { tokens, at } => {
                self.tokens_at(*tokens, *at, now) >= f64::from(self.limit.burst.unwrap_or(1)) - EPS
            }
        }
    }
}

/// One rate limit applied to each partition key of a queue on its own. A key's window is
/// kept while it could hold a start back, then swept, so idle keys cost nothing.
#[derive(Debug, Default)]
pub(super) struct KeyWindows {
    limit: Option<RateLimit>,
    windows: HashMap<Arc<str>, Window>,
    /// Sweep idle windows when there are this many.
    sweep_at: usize,
}

impl KeyWindows {
    pub(super) fn new(limit: Option<RateLimit>) -> Self {
        KeyWindows {
            limit: limit.map(RateLimit::normalized),
            windows: HashMap::new(),
            sweep_at: 64,
        }
    }

    pub(super) fn limit(&self) -> Option<RateLimit> {
        self.limit
    }

    /// When `key`'s next start is allowed (`now` if one is).
    pub(super) fn allows_at(&self, key: &str, now: Instant) -> Instant {
        self.windows.get(key).map_or(now, |w| w.allows_at(now))
    }

    /// A run of `key` started at `now`.
    pub(super) fn record(&mut self, key: &Arc<str>, now: Instant) {
        let Some(limit) = self.limit else {
            return;
        };
        self.windows
            .entry(key.clone())
            .or_insert_with(|| Window::new(limit, now))
            .record(now);
        if self.windows.len() >= self.sweep_at {
            self.windows.retain(|_, w| !w.is_idle(now));
            self.sweep_at = (self.windows.len() * 2).max(64);
        }
    }

    /// Sets or lifts the limit; keys' starts already made count against the new one.
    pub(super) fn set(&mut self, limit: Option<RateLimit>, now: Instant) {
        self.limit = limit.map(RateLimit::normalized);
        match self.limit {
            None => self.windows.clear(),
            Some(limit) => self.windows.values_mut().for_each(|w| w.set(limit, now)),
        }
    }
}

/// A kind's rate limit, over all queues, and how many of its runs wait.
#[derive(Debug)]
pub(super) struct KindRate {
    pub(super) window: Window,
    pub(super) waiting: usize,
}

/// The rate limits of kinds (run labels), over all queues.
pub(super) type KindRates = HashMap<Arc<str>, KindRate>;

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_sliding_window_allows_exactly_max_per_window() {
        let t0 = Instant::now();
        let mut w = Window::new(RateLimit::new(3, ms(1000)), t0);
        for i in 0..3 {
            assert!(w.allows(t0 + ms(i)));
            w.record(t0 + ms(i));
        }
        assert_eq!(w.allows_at(t0 + ms(3)), t0 + ms(1000));
        w.record(t0 + ms(1000));
        assert_eq!(w.allows_at(t0 + ms(1000)), t0 + ms(1001));
    }

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_refill() {
        let t0 = Instant::now();
        // 10 per second, burst 3: three at once, then one every 100 ms.
        let mut w = Window::new(RateLimit::per_second(10).burst(3), t0);
        for _ in 0..3 {
            assert!(w.allows(t0));
            w.record(t0);
        }
        let next = w.allows_at(t0);
        assert!(
            next > t0 + ms(99) && next <= t0 + ms(100),
            "{:?}",
            next - t0
        );
        assert!(w.allows(t0 + ms(100)));
        w.record(t0 + ms(100));
        assert!(!w.allows(t0 + ms(150)));
        // A quiet spell refills the bucket to its size, no more.
        assert!(w.is_idle(t0 + ms(400)));
        for _ in 0..3 {
            assert!(w.allows(t0 + ms(10_000)));
            w.record(t0 + ms(10_000));
        }
        assert!(!w.allows(t0 + ms(10_000)));
    }

    #[test]
    fn a_changed_limit_counts_the_starts_already_made() {
        let t0 = Instant::now();
        let mut w = Window::new(RateLimit::new(5, ms(1000)), t0);
        for _ in 0..4 {
            w.record(t0);
        }
        w.set(RateLimit::new(2, ms(1000)), t0);
        assert!(!w.allows(t0));
        w.set(RateLimit::new(5, ms(1000)).burst(5), t0);
        // The window's two remembered starts leave three of the bucket's five tokens.
        w.record(t0);
        w.record(t0);
        w.record(t0);
        assert!(!w.allows(t0));
        // Back to a window: the drained bucket's five starts count as made now.
        w.set(RateLimit::new(5, ms(1000)), t0);
        assert_eq!(w.allows_at(t0), t0 + ms(1000));
    }

    #[test]
    fn a_window_too_long_for_the_clock_holds_instead_of_overflowing() {
        let t0 = Instant::now();
        let mut w = Window::new(RateLimit::new(1, Duration::MAX), t0);
        w.record(t0);
        assert_eq!(w.allows_at(t0), t0 + FAR);
        let mut b = Window::new(RateLimit::new(1, Duration::MAX).burst(1), t0);
        b.record(t0);
        assert!(!b.allows(t0 + ms(1000)));
        b.set(RateLimit::new(1, Duration::MAX), t0);
        assert!(!b.allows(t0));
    }

    #[test]
    fn idle_key_windows_are_swept() {
        let t0 = Instant::now();
        let mut keys = KeyWindows::new(Some(RateLimit::new(1, ms(10))));
        for i in 0..1000u64 {
            let key: Arc<str> = Arc::from(format!("k{i}"));
            keys.record(&key, t0 + ms(i));
        }
        assert!(keys.windows.len() < 200, "{}", keys.windows.len());
        assert!(!keys.allows_at("k999", t0 + ms(999)).le(&(t0 + ms(999))));
    }
}
