//! API users (docs/rules.md §8, the Syncplicity seed): a tenant user whom an administrator has made
//! an API user, narrowed to a set of API scopes and, with `as_user`, allowed to act on behalf of
//! managed users without holding DELEGATE. The record belongs to the user, not to an app: it
//! narrows the scopes the user may use through any app (§3 step 4), and `as_user` is the one
//! thing it adds (a ground for §3 step 6; the managed-user rule still applies, and the app's
//! content access only while whitelisting is on). It works whether whitelisting is on or off.

use std::collections::BTreeSet;

use super::ids::Scope;

/// What makes a tenant user an API user. An empty `scopes` is allowed and means *no* scope:
/// every check that names a scope is refused for the user, checks that name none are not
/// (unlike a whitelist entry, where empty means every consented scope; an API user's record
/// only ever narrows, so an empty list never grants everything).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApiUser {
    /// The API scopes the user may use, through any app.
    pub scopes: BTreeSet<Scope>,
    /// May act on behalf of managed users in place of DELEGATE (Syncplicity's As-User): through
    /// any app while whitelisting is off, through one whitelisted ON_BEHALF_OF_MANAGED_USERS
    /// while it is on.
    pub as_user: bool,
}

impl ApiUser {
    /// Whether the API user may use `scope` (§3 step 4 admits it only if the app may too).
    pub fn allows(&self, scope: &Scope) -> bool {
        self.scopes.contains(scope)
    }

    /// `scopes` narrowed to those the API user may use: what §3 step 4 admits for this user
    /// when `scopes` are the app's effective scopes (and so what a context token's `scp` may
    /// carry for them).
    pub fn narrow<'s>(&self, scopes: impl IntoIterator<Item = &'s Scope>) -> BTreeSet<Scope> {
        scopes
            .into_iter()
            .filter(|s| self.allows(s))
            .cloned()
            .collect()
    }

    /// The scopes for a message: `a, b`, or `none`.
    pub fn scopes_text(&self) -> String {
        if self.scopes.is_empty() {
            return "none".to_owned();
        }
        let names: Vec<&str> = self.scopes.iter().map(Scope::as_str).collect();
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn set(list: &[&str]) -> BTreeSet<Scope> {
        list.iter()
            .map(|s| Scope::parse("s", *s).unwrap())
            .collect()
    }

    #[test]
    fn narrowing_keeps_only_the_api_users_scopes() {
        let api = ApiUser {
            scopes: set(&["docs:read", "mail"]),
            as_user: false,
        };
        let app = set(&["docs:read", "docs:write"]);
        assert_eq!(api.narrow(&app), set(&["docs:read"]));
        assert_eq!(api.narrow(&set(&[])), set(&[]));
        assert!(api.allows(&Scope::parse("s", "mail").unwrap()));
        assert!(!api.allows(&Scope::parse("s", "docs:write").unwrap()));
        assert_eq!(api.scopes_text(), "docs:read, mail");
    }

    #[test]
    fn an_api_user_without_scopes_narrows_to_nothing() {
        let api = ApiUser::default();
        assert!(api.narrow(&set(&["docs:read", "docs:write"])).is_empty());
        assert_eq!(api.scopes_text(), "none");
    }
}
