//! Revisions: one number bumped by every write transaction in commit order, handed to callers
//! as opaque tokens (`written_at`, `checked_at`, `at_least_as_fresh`).

use std::fmt;

use super::error::{Valid, ValidationError, quoted};

/// A point in the store's history: the number of write transactions committed so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Revision(pub u64);

impl Revision {
    /// The token callers see.
    pub fn token(self) -> String {
        use std::fmt::Write;
        let mut token = String::with_capacity(21);
        token.push('r');
        let _ = write!(token, "{}", self.0);
        token
    }

    /// Parses a token, naming `field` in the error.
    pub fn parse_token(field: &str, token: &str) -> Valid<Self> {
        token
            .strip_prefix('r')
            .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|digits| digits.parse().ok())
            .map(Revision)
            .ok_or_else(|| {
                ValidationError::new(
                    field,
                    format_args!("{} is not a revision token", quoted(token)),
                )
            })
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_malformed_ones_are_rejected() {
        for n in [0, 1, 42, u64::MAX] {
            assert_eq!(
                Revision::parse_token("t", &Revision(n).token()).unwrap(),
                Revision(n)
            );
        }
        for bad in [
            "",
            "r",
            "42",
            "r-1",
            "r+1",
            "rx",
            "r 1",
            "R1",
            "r18446744073709551616",
        ] {
            assert_eq!(
                Revision::parse_token("at_least_as_fresh", bad)
                    .unwrap_err()
                    .field,
                "at_least_as_fresh"
            );
        }
    }
}
