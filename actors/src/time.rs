//! [`Timestamp`]: a UTC instant that serialises as ISO-8601 / RFC 3339.
//!
//! This module carries the few lines of calendar arithmetic needed to print and parse
//! `YYYY-MM-DDTHH:MM:SS.ffffffZ` (chrono is used only for cron schedules' time zones), and
//! [`WallClock`], where cron schedules read the time of day.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Where cron schedules read the time of day.
///
/// The system clock in production. For tests on tokio's paused clock, a clock that starts at
/// a chosen instant and moves with tokio's time, so a schedule fires exactly when the test
/// advances time: `0 2 * * *` can be run across a DST change in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WallClock {
    /// [`Timestamp::now`].
    #[default]
    System,
    /// This instant when the supervisor starts, then moving with tokio's clock.
    StartingAt(Timestamp),
}

impl WallClock {
    /// Fixes the clock's start: a running clock for one supervisor.
    pub(crate) fn start(self) -> RunningClock {
        match self {
            WallClock::System => RunningClock(None),
            WallClock::StartingAt(at) => RunningClock(Some((at, tokio::time::Instant::now()))),
        }
    }
}

/// A [`WallClock`] as one supervisor reads it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunningClock(Option<(Timestamp, tokio::time::Instant)>);

impl RunningClock {
    /// The wall-clock time of a tokio instant (as it stands now: the system clock may step).
    pub(crate) fn at(&self, instant: tokio::time::Instant) -> Timestamp {
        let now = tokio::time::Instant::now();
        let t = self.now();
        if instant >= now {
            let us = (instant - now).as_micros().min(u128::from(u64::MAX)) as u64;
            Timestamp::from_unix_micros(t.unix_micros().saturating_add(us))
        } else {
            t.saturating_sub(now - instant)
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        match self.0 {
            None => Timestamp::now(),
            Some((at, since)) => {
                let us = since.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                Timestamp::from_unix_micros(at.unix_micros().saturating_add(us))
            }
        }
    }
}

/// A UTC instant with microsecond precision, serialised as an RFC 3339 string such as
/// `2026-11-26T05:12:37.123456Z`.
///
/// Instants before 1970 are not representable; runwarden only stamps the present.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    micros: u64,
}

impl Timestamp {
    /// The current time, read from the system clock.
    #[must_use]
    pub fn now() -> Self {
        Self::from_system_time(SystemTime::now())
    }

    /// Converts a [`SystemTime`]; instants before the Unix epoch clamp to the epoch.
    #[must_use]
    pub fn from_system_time(t: SystemTime) -> Self {
        let micros = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros().min(u128::from(u64::MAX)) as u64)
            .unwrap_or(0);
        Self { micros }
    }

    /// Microseconds since the Unix epoch.
    #[must_use]
    pub fn from_unix_micros(micros: u64) -> Self {
        Self { micros }
    }

    /// Microseconds since the Unix epoch.
    #[must_use]
    pub fn unix_micros(self) -> u64 {
        self.micros
    }

    /// This instant as a [`SystemTime`].
    #[must_use]
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(self.micros)
    }

    /// Time elapsed from `earlier` to `self`, or zero if `earlier` is later (clock step).
    #[must_use]
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.micros.saturating_sub(earlier.micros))
    }

    /// This instant moved back by `d`, clamped at the epoch.
    #[must_use]
    pub fn saturating_sub(self, d: Duration) -> Timestamp {
        let d = d.as_micros().min(u128::from(u64::MAX)) as u64;
        Timestamp {
            micros: self.micros.saturating_sub(d),
        }
    }
}

// Howard Hinnant's `civil_from_days` / `days_from_civil`, for the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Timestamp {
    /// The RFC 3339 text of an instant in the years 0000 to 9999, written without the
    /// formatting machinery (records carry several timestamps, and the store and the HTTP API
    /// print every one of them); `None` beyond year 9999.
    fn rfc3339(self) -> Option<[u8; 27]> {
        let secs = (self.micros / 1_000_000) as i64;
        let micros = self.micros % 1_000_000;
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400) as u64;
        if !(0..=9999).contains(&y) {
            return None;
        }
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                out[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y as u64);
        put(5, 2, u64::from(mo));
        put(8, 2, u64::from(d));
        put(11, 2, sod / 3600);
        put(14, 2, (sod / 60) % 60);
        put(17, 2, sod % 60);
        put(20, 6, micros);
        Some(out)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = self.rfc3339() {
            // Only ASCII digits and separators were written.
            return f.pad(std::str::from_utf8(&text).map_err(|_| fmt::Error)?);
        }
        let secs = (self.micros / 1_000_000) as i64;
        let micros = self.micros % 1_000_000;
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        f.pad(&format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        ))
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text given to [`Timestamp::from_str`] is not an RFC 3339 UTC time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseTimestampError {
    input: String,
}

impl fmt::Display for ParseTimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not an RFC 3339 UTC timestamp (expected YYYY-MM-DDTHH:MM:SS[.ffffff]Z)",
            self.input
        )
    }
}

impl std::error::Error for ParseTimestampError {}

impl FromStr for Timestamp {
    type Err = ParseTimestampError;

    /// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`; other offsets are refused.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseTimestampError {
            input: s.to_owned(),
        };
        let b = s.as_bytes();
        let num = |r: std::ops::Range<usize>| -> Result<u32, ParseTimestampError> {
            let part = s.get(r).ok_or_else(err)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return Err(err());
            }
            part.parse().map_err(|_| err())
        };
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return Err(err());
        }
        if b[13] != b':' || b[16] != b':' {
            return Err(err());
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
            return Err(err());
        }
        let mut rest = &s[19..];
        let mut micros = 0u64;
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(err());
            }
            for (i, c) in frac[..digits].bytes().enumerate().take(6) {
                micros += u64::from(c - b'0') * 10u64.pow(5 - i as u32);
            }
            rest = &frac[digits..];
        }
        if !matches!(rest, "Z" | "z" | "+00:00" | "-00:00") {
            return Err(err());
        }
        let days = days_from_civil(i64::from(y), mo, d);
        let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(sec);
        let secs = u64::try_from(secs).map_err(|_| err())?;
        Ok(Timestamp {
            micros: secs * 1_000_000 + micros,
        })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.rfc3339() {
            Some(text) => match std::str::from_utf8(&text) {
                Ok(text) => serializer.serialize_str(text),
                Err(_) => serializer.collect_str(self),
            },
            None => serializer.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(
            Timestamp::from_unix_micros(0).to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        // 2024-02-29T12:34:56.789012Z, a leap day.
        let t = Timestamp::from_unix_micros(1_709_210_096_789_012);
        assert_eq!(t.to_string(), "2024-02-29T12:34:56.789012Z");
    }

    /// The general formatter, which the fast one must match digit for digit.
    fn formatted(t: Timestamp) -> String {
        let secs = (t.micros / 1_000_000) as i64;
        let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
        let sod = secs.rem_euclid(86_400);
        format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60,
            t.micros % 1_000_000
        )
    }

    #[test]
    fn the_fast_text_matches_the_general_one_and_serialises_the_same() {
        // The last microsecond of year 9999, and the first of 10000 (past the fast path).
        let last = 253_402_300_799_999_999;
        let mut micros: Vec<u64> = vec![0, 1, 999_999, 1_000_000, last, last + 1, u64::MAX / 2];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            micros.push(x % (last + 1));
        }
        for m in micros {
            let t = Timestamp::from_unix_micros(m);
            let text = formatted(t);
            assert_eq!(t.to_string(), text, "{m}");
            assert_eq!(t.rfc3339().is_some(), m <= last, "{m}");
            let json = serde_json::to_string(&t).expect("serialise");
            assert_eq!(json, format!("\"{text}\""));
        }
        let t = Timestamp::from_unix_micros(0);
        assert_eq!(format!("[{t:>30}]"), "[   1970-01-01T00:00:00.000000Z]");
    }

    #[test]
    fn parse_is_the_inverse_of_display() {
        for micros in [
            0,
            1,
            951_782_400_000_000,
            1_709_210_096_789_012,
            4_102_444_799_999_999,
        ] {
            let t = Timestamp::from_unix_micros(micros);
            assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }
    }

    #[test]
    fn parse_accepts_offset_zero_and_short_fractions() {
        let t: Timestamp = "2024-02-29T12:34:56.7+00:00".parse().expect("valid");
        assert_eq!(t.to_string(), "2024-02-29T12:34:56.700000Z");
    }

    #[test]
    fn parse_refuses_garbage_with_a_typed_error() {
        for bad in [
            "",
            "yesterday",
            "2024-13-01T00:00:00Z",
            "2024-01-01T00:00:00+02:00",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad:?} parsed");
        }
    }
}
