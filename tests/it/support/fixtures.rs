//! Request fixtures shared by the service tests (proto types).

use consentry::proto::{Manifest, PermissionRequest, ResolvedRequest, Right, ScopeLevel};

/// Owned strings from a list of literals.
pub fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A manifest asking for `scopes` and `requests` (everything else default).
pub fn manifest(scopes: &[&str], requests: &[(ScopeLevel, Right)]) -> Manifest {
    Manifest {
        scopes: strings(scopes),
        permission_requests: requests
            .iter()
            .map(|&(level, right)| PermissionRequest {
                scope_level: level.into(),
                right: right.into(),
            })
            .collect(),
        ..Manifest::default()
    }
}

/// A resolved permission request: `right` at `level`, at `resource`.
pub fn resolved(level: ScopeLevel, right: Right, resource: &str) -> ResolvedRequest {
    ResolvedRequest {
        scope_level: level.into(),
        right: right.into(),
        resource: resource.to_owned(),
    }
}
