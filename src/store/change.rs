//! The change log's keys: what a write touched, in the granularity the caches are invalidated
//! at. Writes that fan out use coarse keys (a manifest change touches every tenant's view of
//! that app through `A/<app>`; a tenant change every snapshot in it through `t/<tenant>`).
//!
//! Invariant: every write declares its keys as [`ChangeKey`] values; the text form is only how
//! they are stored, and a stored key that does not parse invalidates everything.

use std::fmt;
use std::str::FromStr;

use crate::domain::{AppId, TenantId, UserId};

/// A part of the cached world that a write changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ChangeKey {
    /// Everything cached about a tenant (its existence, whitelisting switch): `t/<tenant>`.
    Tenant(TenantId),
    /// One application's snapshot in one tenant (consent, whitelist entry): `a/<tenant>/<app>`.
    AppInTenant(TenantId, AppId),
    /// An application in every tenant (its registration and manifest): `A/<app>`.
    App(AppId),
    /// One user in one tenant (roles, rights, external permission grants): `u/<tenant>/<user>`.
    User(TenantId, UserId),
    /// A tenant's external permission groups and permissions: `g/<tenant>`.
    Groups(TenantId),
    /// Clients and their keys: `c`.
    Clients,
    /// Every cache: `*`.
    Everything,
}

impl fmt::Display for ChangeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeKey::Tenant(t) => write!(f, "t/{t}"),
            ChangeKey::AppInTenant(t, a) => write!(f, "a/{t}/{a}"),
            ChangeKey::App(a) => write!(f, "A/{a}"),
            ChangeKey::User(t, u) => write!(f, "u/{t}/{u}"),
            ChangeKey::Groups(t) => write!(f, "g/{t}"),
            ChangeKey::Clients => f.write_str("c"),
            ChangeKey::Everything => f.write_str("*"),
        }
    }
}

/// A stored key that is not one [`ChangeKey`] writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a change-log key: {0:?}")]
pub struct UnknownChangeKey(String);

impl FromStr for ChangeKey {
    type Err = UnknownChangeKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownChangeKey(s.chars().take(64).collect());
        let mut parts = s.splitn(3, '/');
        let key = match (parts.next(), parts.next(), parts.next()) {
            (Some("c"), None, None) => ChangeKey::Clients,
            (Some("*"), None, None) => ChangeKey::Everything,
            (Some("t"), Some(t), None) => ChangeKey::Tenant(tenant(t).ok_or_else(unknown)?),
            (Some("g"), Some(t), None) => ChangeKey::Groups(tenant(t).ok_or_else(unknown)?),
            (Some("A"), Some(a), None) => ChangeKey::App(app(a).ok_or_else(unknown)?),
            (Some("a"), Some(t), Some(a)) => {
                ChangeKey::AppInTenant(tenant(t).ok_or_else(unknown)?, app(a).ok_or_else(unknown)?)
            }
            (Some("u"), Some(t), Some(u)) => ChangeKey::User(
                tenant(t).ok_or_else(unknown)?,
                UserId::parse("key", u).ok().ok_or_else(unknown)?,
            ),
            _ => return Err(unknown()),
        };
        Ok(key)
    }
}

fn tenant(s: &str) -> Option<TenantId> {
    TenantId::parse("key", s).ok()
}

fn app(s: &str) -> Option<AppId> {
    AppId::parse("key", s).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_read_back_as_they_were_written() {
        let t = TenantId::parse("t", "acme").unwrap();
        let a = AppId::parse("a", "crm").unwrap();
        let u = UserId::parse("u", "bob").unwrap();
        let keys = [
            (ChangeKey::Tenant(t.clone()), "t/acme"),
            (ChangeKey::AppInTenant(t.clone(), a.clone()), "a/acme/crm"),
            (ChangeKey::App(a), "A/crm"),
            (ChangeKey::User(t.clone(), u), "u/acme/bob"),
            (ChangeKey::Groups(t), "g/acme"),
            (ChangeKey::Clients, "c"),
            (ChangeKey::Everything, "*"),
        ];
        for (key, text) in keys {
            assert_eq!(key.to_string(), text);
            assert_eq!(text.parse::<ChangeKey>().unwrap(), key);
        }
        for odd in [
            "", "x", "t", "t/", "u/acme", "a/acme", "c/x", "t/a/b/c", "A/a b",
        ] {
            assert!(odd.parse::<ChangeKey>().is_err(), "{odd:?}");
        }
    }
}
