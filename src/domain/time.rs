//! Points in time, as microseconds since the Unix epoch (UTC). The engine never reads the
//! clock: callers pass `now` in, and [`Timestamp::now`] is the one clock read, for them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::{Valid, ValidationError};

/// The first second a request may name, 0001-01-01T00:00:00Z: the start of the range of
/// `google.protobuf.Timestamp` and of RFC 3339.
pub const MIN_SECONDS: i64 = -62_135_596_800;
/// The last second a request may name, 9999-12-31T23:59:59Z (with any nanos within it).
pub const MAX_SECONDS: i64 = 253_402_300_799;

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

    /// Parses a timestamp from the wire, naming `field` in the error: `nanos` within the second
    /// (0 to 999,999,999) and a time from year 1 to year 9999, as `google.protobuf.Timestamp`
    /// allows; sub-microsecond precision is dropped.
    pub fn parse_seconds_nanos(field: &str, seconds: i64, nanos: i32) -> Valid<Self> {
        if !(0..1_000_000_000).contains(&nanos) {
            return Err(ValidationError::new(
                field,
                format_args!("nanos {nanos} is outside 0 to 999999999"),
            ));
        }
        if !(MIN_SECONDS..=MAX_SECONDS).contains(&seconds) {
            return Err(ValidationError::new(
                field,
                format_args!(
                    "{seconds} seconds is outside the years 1 to 9999 \
                     ({MIN_SECONDS} to {MAX_SECONDS} seconds since 1970)"
                ),
            ));
        }
        // In range, the product and the sum cannot overflow.
        Self::from_seconds_nanos(seconds, nanos).ok_or_else(|| {
            ValidationError::new(field, format_args!("{seconds} seconds is out of range"))
        })
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

    #[test]
    fn parsing_accepts_years_1_to_9999_and_nanos_within_the_second() {
        let ok = |s, n| Timestamp::parse_seconds_nanos("t", s, n);
        assert_eq!(
            ok(MIN_SECONDS, 0).unwrap().as_micros(),
            MIN_SECONDS * 1_000_000
        );
        assert_eq!(
            ok(MAX_SECONDS, 999_999_999).unwrap().as_micros(),
            MAX_SECONDS * 1_000_000 + 999_999
        );
        assert_eq!(ok(0, 0).unwrap(), Timestamp::from_micros(0));
        for (s, n, why) in [
            (MIN_SECONDS - 1, 0, "years 1 to 9999"),
            (MAX_SECONDS + 1, 0, "years 1 to 9999"),
            (i64::MIN, 0, "years 1 to 9999"),
            (i64::MAX, 0, "years 1 to 9999"),
            (0, -1, "nanos -1"),
            (0, 1_000_000_000, "nanos 1000000000"),
            (0, i32::MIN, "nanos"),
        ] {
            let err = ok(s, n).unwrap_err();
            assert_eq!(err.field, "t");
            assert!(err.problem.contains(why), "{s} {n}: {err}");
        }
    }
}
