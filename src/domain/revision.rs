//! Revisions: one number bumped by every write transaction in commit order, with the identity of
//! that point in the store's history (its [`Tag`]), handed to callers as opaque tokens
//! (`written_at`, `checked_at`, `at_least_as_fresh`).
//!
//! A restore from a backup, or a failover that lost commits, replaces the history an instance
//! has applied, and the writes after it reuse revision numbers. The number alone cannot tell the
//! two histories apart; the tag can: every write draws a random one, so two histories that
//! diverged disagree on the tag of every revision after the point where they diverged.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use super::error::{Valid, ValidationError, quoted};

/// The identity of one revision: a random number drawn by the write that committed it, which
/// another history does not repeat. [`Tag::NONE`] for revision 0 (the empty store, the same in
/// every history) and for revisions committed before tags were recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Tag(pub u64);

impl Tag {
    /// No identity: revision 0, or a revision from before tags were recorded.
    pub const NONE: Tag = Tag(0);

    /// A tag from 8 random bytes: never [`Tag::NONE`], and small enough for a signed 64-bit
    /// column.
    pub fn from_random(bytes: [u8; 8]) -> Tag {
        Tag((u64::from_le_bytes(bytes) & i64::MAX as u64).max(1))
    }
}

/// A point in the store's history: the number of write transactions committed so far, and the
/// [`Tag`] of that revision.
///
/// Revisions compare, order and hash by number alone: within one history a number names one
/// point, and that is what ordering is for. Whether two revisions are the same point of the same
/// history is [`Revision::same_point`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Revision(pub u64, pub Tag);

impl PartialEq for Revision {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Revision {}

impl PartialOrd for Revision {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Revision {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp(&other.0)
    }
}

impl Hash for Revision {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// The separator between the number and the tag in a token.
const TAG_SEPARATOR: char = '.';
/// How many hex digits a tag has in a token.
const TAG_DIGITS: usize = 16;

impl Revision {
    /// Revision `n` with no known tag (for numbers that only bound or order revisions).
    pub fn number(n: u64) -> Revision {
        Revision(n, Tag::NONE)
    }

    /// The tag of this revision.
    pub fn tag(self) -> Tag {
        self.1
    }

    /// Whether `self` and `other` are the same point of the same history: the same number and
    /// the same tag.
    pub fn same_point(self, other: Revision) -> bool {
        self.0 == other.0 && self.1 == other.1
    }

    /// The token callers see: `r<number>`, then `.<tag in 16 hex digits>` when the revision has
    /// a tag.
    pub fn token(self) -> String {
        // Written digit by digit: every answer carries one, and the formatting machinery (with
        // its padding) showed in profiles of the cache-hit path.
        let mut token = String::with_capacity(38);
        token.push('r');
        let mut digits = [0u8; 20];
        let mut start = digits.len();
        let mut n = self.0;
        loop {
            start -= 1;
            digits[start] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        token.extend(digits[start..].iter().map(|&d| char::from(d)));
        if self.1 != Tag::NONE {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            token.push(TAG_SEPARATOR);
            token.extend(
                (0..16)
                    .rev()
                    .map(|i| char::from(HEX[(self.1.0 >> (i * 4)) as usize & 0xf])),
            );
        }
        token
    }

    /// Parses a token, naming `field` in the error. A token without a tag (`r<number>`) is read
    /// as [`Tag::NONE`]: it names a revision by number only.
    pub fn parse_token(field: &str, token: &str) -> Valid<Self> {
        let invalid = || {
            ValidationError::new(
                field,
                format_args!("{} is not a revision token", quoted(token)),
            )
        };
        let rest = token.strip_prefix('r').ok_or_else(invalid)?;
        let (digits, tag) = match rest.split_once(TAG_SEPARATOR) {
            Some((digits, tag)) => (digits, Some(tag)),
            None => (rest, None),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let number: u64 = digits.parse().map_err(|_| invalid())?;
        let tag = match tag {
            None => Tag::NONE,
            Some(hex) => {
                let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
                if hex.len() != TAG_DIGITS || !hex.bytes().all(lower_hex) {
                    return Err(invalid());
                }
                match u64::from_str_radix(hex, 16) {
                    // A tag is never zero and fits a signed 64-bit column.
                    Ok(t) if t != 0 && t <= i64::MAX as u64 => Tag(t),
                    _ => return Err(invalid()),
                }
            }
        };
        Ok(Revision(number, tag))
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
            for tag in [
                Tag::NONE,
                Tag(1),
                Tag(0x0123_4567_89ab_cdef),
                Tag(i64::MAX as u64),
            ] {
                let token = Revision(n, tag).token();
                let tagged = format!("r{n}.{:016x}", tag.0);
                assert_eq!(
                    token,
                    if tag == Tag::NONE {
                        format!("r{n}")
                    } else {
                        tagged
                    }
                );
                let parsed = Revision::parse_token("t", &token).unwrap();
                assert!(parsed.same_point(Revision(n, tag)), "{n} {tag:?}");
            }
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
            "r1.",
            ".0123456789abcdef",
            "r.0123456789abcdef",
            "r1.0123456789ABCDEF",
            "r1.0123456789abcde",
            "r1.0123456789abcdef0",
            "r1.0000000000000000",
            "r1.8000000000000000",
            "r1.0123456789abcdeg",
            "r1.0123456789abcdef.1",
            "r1..0123456789abcdef",
        ] {
            assert_eq!(
                Revision::parse_token("at_least_as_fresh", bad)
                    .unwrap_err()
                    .field,
                "at_least_as_fresh",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn revisions_order_by_number_and_are_the_same_point_only_with_the_same_tag() {
        let a = Revision(7, Tag(1));
        let b = Revision(7, Tag(2));
        assert_eq!(a, b);
        assert!(!a.same_point(b));
        assert!(a.same_point(Revision(7, Tag(1))));
        assert!(Revision(6, Tag(9)) < a);
        assert_eq!(Revision::number(7).tag(), Tag::NONE);
    }

    #[test]
    fn random_tags_are_never_none_and_fit_a_signed_column() {
        assert_eq!(Tag::from_random([0; 8]), Tag(1));
        assert_eq!(Tag::from_random([0xff; 8]), Tag(i64::MAX as u64));
        assert_ne!(Tag::from_random([1, 2, 3, 4, 5, 6, 7, 8]), Tag::NONE);
    }
}
