//! Cache keys that a lookup borrows instead of building: a cache hit allocates nothing, and the
//! owned key is made only on a miss.

use std::borrow::Borrow;
use std::hash::{Hash, Hasher};

/// A key of two ids, such as a tenant and an application. Looked up as a [`PairRef`], which two
/// borrowed `&str` are too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair<A, B>(pub A, pub B);

/// Two ids as a cache key, however they are held.
pub trait PairRef: Sync {
    /// The first id.
    fn first(&self) -> &str;
    /// The second id.
    fn second(&self) -> &str;
}

impl<A: Borrow<str> + Sync, B: Borrow<str> + Sync> PairRef for Pair<A, B> {
    fn first(&self) -> &str {
        self.0.borrow()
    }
    fn second(&self) -> &str {
        self.1.borrow()
    }
}

impl PairRef for (&str, &str) {
    fn first(&self) -> &str {
        self.0
    }
    fn second(&self) -> &str {
        self.1
    }
}

// `Pair` and every `dyn PairRef` hash and compare by their two strings alike, which is what
// makes borrowing one as the other sound.
impl<A: Borrow<str> + Sync, B: Borrow<str> + Sync> Hash for Pair<A, B> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.first().hash(state);
        self.second().hash(state);
    }
}

impl Hash for dyn PairRef + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.first().hash(state);
        self.second().hash(state);
    }
}

impl PartialEq for dyn PairRef + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.first() == other.first() && self.second() == other.second()
    }
}

impl Eq for dyn PairRef + '_ {}

impl<'a, A: Borrow<str> + Sync + 'a, B: Borrow<str> + Sync + 'a> Borrow<dyn PairRef + 'a>
    for Pair<A, B>
{
    fn borrow(&self) -> &(dyn PairRef + 'a) {
        self
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_pair_is_found_by_two_borrowed_strings_and_only_by_them() {
        let mut map = HashMap::new();
        map.insert(Pair("acme".to_owned(), "crm".to_owned()), 1);
        map.insert(Pair("acm".to_owned(), "ecrm".to_owned()), 2);
        let find = |a: &str, b: &str| map.get(&(a, b) as &dyn PairRef).copied();
        assert_eq!(find("acme", "crm"), Some(1));
        assert_eq!(find("acm", "ecrm"), Some(2));
        assert_eq!(find("acmecrm", ""), None);
        assert_eq!(find("crm", "acme"), None);
    }
}
