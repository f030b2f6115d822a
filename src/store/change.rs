//! The change log's keys: what a write touched, in the granularity the caches are invalidated
//! at. Writes that fan out use coarse keys (a manifest change touches every tenant's view of
//! that app through `A/<app>`; a tenant change every snapshot in it through `t/<tenant>`).

use crate::domain::{AppId, TenantId, UserId};

/// Everything cached about a tenant (its existence, whitelisting switch).
pub fn tenant(t: &TenantId) -> String {
    format!("t/{t}")
}

/// One application's snapshot in one tenant (consent, whitelist entry).
pub fn app_in_tenant(t: &TenantId, a: &AppId) -> String {
    format!("a/{t}/{a}")
}

/// An application in every tenant (its registration and manifest).
pub fn app(a: &AppId) -> String {
    format!("A/{a}")
}

/// One user in one tenant (roles, rights, external permission grants).
pub fn user(t: &TenantId, u: &UserId) -> String {
    format!("u/{t}/{u}")
}

/// A tenant's external permission groups and permissions.
pub fn groups(t: &TenantId) -> String {
    format!("g/{t}")
}

/// Clients and their keys.
pub const CLIENTS: &str = "c";

/// The keys a write touched, from its action, tenant and audit target (`user:<id>`,
/// `app:<id>`, `tenant:<id>`, `group:<id>`, `permission:<id>`, `client:<id>`).
pub fn touched(action: &str, in_tenant: Option<&TenantId>, target: &str) -> Vec<String> {
    let (kind, id) = target.split_once(':').unwrap_or((target, ""));
    let mut keys = match (kind, in_tenant) {
        ("client", _) => vec![CLIENTS.to_owned()],
        ("tenant", Some(t)) => vec![tenant(t)],
        ("app", Some(t)) => AppId::parse("target", id)
            .map(|a| vec![app_in_tenant(t, &a)])
            .unwrap_or_default(),
        ("app", None) => AppId::parse("target", id)
            .map(|a| vec![app(&a)])
            .unwrap_or_default(),
        ("user", Some(t)) => UserId::parse("target", id)
            .map(|u| vec![user(t, &u)])
            .unwrap_or_default(),
        ("group" | "permission", Some(t)) => vec![groups(t)],
        _ => Vec::new(),
    };
    if action == "DeleteUser" {
        // The user's manager, grantor and visible-to entries went with them.
        keys.extend(in_tenant.map(groups));
    }
    if keys.is_empty() {
        // Unknown shapes invalidate the whole tenant (or everything): never too little.
        keys.push(in_tenant.map_or_else(|| EVERYTHING.to_owned(), tenant));
    }
    keys
}

/// The key that invalidates every cache.
pub const EVERYTHING: &str = "*";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn targets_map_to_the_keys_they_invalidate() {
        let t = TenantId::parse("t", "acme").unwrap();
        assert_eq!(touched("PutUser", Some(&t), "user:bob"), ["u/acme/bob"]);
        assert_eq!(
            touched("DeleteUser", Some(&t), "user:bob"),
            ["u/acme/bob", "g/acme"]
        );
        assert_eq!(
            touched("ApproveConsent", Some(&t), "app:crm"),
            ["a/acme/crm"]
        );
        assert_eq!(touched("UpdateAppManifest", None, "app:crm"), ["A/crm"]);
        assert_eq!(touched("PutTenant", Some(&t), "tenant:acme"), ["t/acme"]);
        assert_eq!(
            touched("CreateExternalPermission", Some(&t), "permission:p"),
            ["g/acme"]
        );
        assert_eq!(touched("RevokeClient", None, "client:svc"), ["c"]);
        assert_eq!(touched("Odd", None, "thing"), [EVERYTHING]);
    }
}
