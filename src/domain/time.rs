//! Points in time, as microseconds since the Unix epoch (UTC). The engine never reads the
//! clock: callers pass `now` in, and [`Timestamp::now`] is the one clock read, for them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The time `micros` microseconds after the Unix epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }

    /// The current time (read at the edges, never inside a decision).
    pub fn now() -> Self {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
        };
        Self(micros)
    }

    /// Whole seconds and the nanoseconds within the second, as protobuf timestamps hold them.
    pub fn to_seconds_nanos(self) -> (i64, i32) {
        let secs = self.0.div_euclid(1_000_000);
        let nanos = (self.0.rem_euclid(1_000_000) * 1_000) as i32;
        (secs, nanos)
    }

    /// The time from seconds and nanoseconds; sub-microsecond precision is dropped.
    pub fn from_seconds_nanos(seconds: i64, nanos: i32) -> Option<Self> {
        seconds
            .checked_mul(1_000_000)
            .and_then(|m| m.checked_add(i64::from(nanos) / 1_000))
            .map(Self)
    }

    /// This time plus `d`, saturating.
    pub fn plus(self, d: Duration) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, n) = self.to_seconds_nanos();
        write!(f, "{s}.{:06}", n / 1_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_and_from_seconds_and_nanos() {
        let t = Timestamp::from_micros(1_700_000_000_123_456);
        assert_eq!(t.to_seconds_nanos(), (1_700_000_000, 123_456_000));
        assert_eq!(
            Timestamp::from_seconds_nanos(1_700_000_000, 123_456_789),
            Some(t)
        );
        let before_epoch = Timestamp::from_micros(-1);
        assert_eq!(before_epoch.to_seconds_nanos(), (-1, 999_999_000));
        assert_eq!(
            Timestamp::from_seconds_nanos(-1, 999_999_000),
            Some(before_epoch)
        );
        assert_eq!(Timestamp::from_seconds_nanos(i64::MAX, 0), None);
    }
}
