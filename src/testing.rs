//! Domain values for tests and benchmarks, written once: the unit tests of `domain/` (its
//! scenarios and property tests), `benches/engine.rs` and the integration tests build their
//! paths, scopes, users with rights, manifests, tenants, applications and consents with these.
//!
//! Compiled for this crate's own tests, and for its benchmarks and integration tests through the
//! `testing` feature, which the crate's dev-dependency on itself turns on; a build of the service
//! never has it. Every function panics on a value that does not parse: a fixture is written by
//! hand and must be valid.

use std::collections::BTreeSet;

use crate::domain::consent::resolve_requests;
use crate::domain::{
    App, AppId, AppKind, Consent, Environment, Manifest, ManifestParts, Name, PermissionRequest,
    Principal, ResolvedRequest, ResourcePath, Right, Role, RoleSet, Scope, ScopeLevel, Tenant,
    TenantId, Timestamp, UserId, UserSnapshot, Valid,
};

/// The value, or a panic naming what does not parse.
fn valid<T>(value: Valid<T>) -> T {
    value.unwrap_or_else(|e| panic!("a fixture that does not parse: {e}"))
}

/// The resource path `s`.
pub fn path(s: &str) -> ResourcePath {
    valid(ResourcePath::parse("resource", s))
}

/// The scope `s`.
pub fn scope(s: &str) -> Scope {
    valid(Scope::parse("scope", s))
}

/// The scopes of `list`, as a set.
pub fn scopes(list: &[&str]) -> BTreeSet<Scope> {
    list.iter().map(|s| scope(s)).collect()
}

/// The user id `s`.
pub fn uid(s: &str) -> UserId {
    valid(UserId::parse("user_id", s))
}

/// The principal `s` (`user:<id>`, `client:<id>` or `app:<id>`).
pub fn principal(s: &str) -> Principal {
    valid(Principal::parse("principal", s))
}

/// A manifest asking for `scopes` and, at each level, the right of `requests` (everything else
/// the default: the user's context, no webhooks or mirroring, USER_AND_APP).
pub fn manifest(scopes: &[&str], requests: &[(ScopeLevel, Right)]) -> Manifest {
    valid(Manifest::parse(ManifestParts {
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        permission_requests: requests
            .iter()
            .map(|&(scope_level, right)| PermissionRequest { scope_level, right })
            .collect(),
        ..ManifestParts::default()
    }))
}

/// A permission request resolved by an approver: `right` at `level`, at `resource`.
pub fn resolved(scope_level: ScopeLevel, right: Right, resource: &str) -> ResolvedRequest {
    ResolvedRequest {
        scope_level,
        right,
        resource: path(resource),
    }
}

/// A known tenant user with `roles` and, at each path of `rights`, that level.
pub fn user(roles: &[Role], rights: &[(&str, Right)]) -> UserSnapshot {
    UserSnapshot::new(
        RoleSet::of(roles.iter().copied()),
        rights.iter().map(|&(p, r)| (path(p), r)),
    )
}

/// The tenant `id` in `environment`, with whitelisting on or off.
pub fn tenant(id: &str, environment: &str, whitelisting_enabled: bool) -> Tenant {
    Tenant {
        tenant_id: valid(TenantId::parse("tenant_id", id)),
        environment: valid(Environment::parse("environment", environment)),
        whitelisting_enabled,
    }
}

/// The application `id`, named after its id in upper case (`crm` is "CRM"), of `kind`, with
/// `manifest` at `manifest_revision`.
pub fn app(id: &str, kind: AppKind, manifest: Manifest, manifest_revision: i64) -> App {
    App {
        app_id: valid(AppId::parse("app_id", id)),
        name: valid(Name::parse("name", &id.to_uppercase())),
        kind,
        manifest,
        manifest_revision,
    }
}

/// A consent in force: `boss` approved `manifest` (its revision `revision`) `at`, resolving its
/// requests as `resolved` says (checked as an approval is); no site-level app rights yet.
pub fn consent(
    manifest: &Manifest,
    revision: i64,
    resolved: Vec<ResolvedRequest>,
    at: Timestamp,
) -> Consent {
    Consent {
        approved_by: principal("user:boss"),
        approved_at: at,
        approved_manifest_revision: revision,
        approved_manifest: manifest.clone(),
        resolved_requests: resolve_requests(manifest, resolved)
            .unwrap_or_else(|e| panic!("a fixture's resolved requests do not fit: {e}")),
        app_rights: Vec::new(),
        revoked_at: None,
    }
}
