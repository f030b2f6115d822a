//! Values shared by the service tests (proto types): request messages, manifests, capabilities
//! and roles, timestamps, and the number in a revision token.

use std::time::{SystemTime, UNIX_EPOCH};

use consentry::domain::Revision;
use consentry::proto::*;

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

// ---------------------------------------------------------------------------------------------
// Roles and capabilities.

/// Roles as they travel in a request.
pub fn role_codes(roles: &[Role]) -> Vec<i32> {
    roles.iter().map(|r| i32::from(*r)).collect()
}

/// Capabilities as they travel in a request.
pub fn caps(capabilities: &[Capability]) -> Vec<i32> {
    capabilities.iter().map(|c| i32::from(*c)).collect()
}

/// Every capability a client can hold.
pub const ALL_CAPS: [Capability; 4] = [
    Capability::Query,
    Capability::Admin,
    Capability::AppManager,
    Capability::AssertUser,
];

// ---------------------------------------------------------------------------------------------
// AdminService requests.

pub fn tenant_req(tenant: &str, environment: &str, whitelisting_enabled: bool) -> PutTenantRequest {
    PutTenantRequest {
        tenant_id: tenant.to_owned(),
        environment: environment.to_owned(),
        whitelisting_enabled,
    }
}

pub fn user_req(tenant: &str, user: &str, roles: &[Role]) -> PutUserRequest {
    PutUserRequest {
        tenant_id: tenant.to_owned(),
        user_id: user.to_owned(),
        roles: role_codes(roles),
    }
}

/// Makes `user` an API user with `scopes` and `as_user`.
pub fn api_user_req(tenant: &str, user: &str, scopes: &[&str], as_user: bool) -> PutApiUserRequest {
    PutApiUserRequest {
        tenant_id: tenant.to_owned(),
        user_id: user.to_owned(),
        scopes: strings(scopes),
        as_user,
    }
}

pub fn delete_api_user_req(tenant: &str, user: &str) -> DeleteApiUserRequest {
    DeleteApiUserRequest {
        tenant_id: tenant.to_owned(),
        user_id: user.to_owned(),
    }
}

pub fn right_req(tenant: &str, user: &str, resource: &str, right: Right) -> GrantUserRightRequest {
    GrantUserRightRequest {
        tenant_id: tenant.to_owned(),
        user_id: user.to_owned(),
        resource: resource.to_owned(),
        right: right.into(),
    }
}

pub fn revoke_right_req(
    tenant: &str,
    user: &str,
    resource: &str,
    right: Right,
) -> RevokeUserRightRequest {
    RevokeUserRightRequest {
        tenant_id: tenant.to_owned(),
        user_id: user.to_owned(),
        resource: resource.to_owned(),
        right: right.into(),
    }
}

/// An application named `App <app>`.
pub fn app_req(app: &str, kind: AppKind, m: Manifest) -> RegisterAppRequest {
    RegisterAppRequest {
        app_id: app.to_owned(),
        name: format!("App {app}"),
        kind: kind.into(),
        manifest: Some(m),
    }
}

pub fn approve_req(
    tenant: &str,
    app: &str,
    manifest_revision: i64,
    resolved_requests: Vec<ResolvedRequest>,
) -> ApproveConsentRequest {
    ApproveConsentRequest {
        tenant_id: tenant.to_owned(),
        app_id: app.to_owned(),
        manifest_revision,
        resolved_requests,
    }
}

/// A whitelist entry with OWN_CONTENT access.
pub fn whitelist_req(tenant: &str, app: &str, scopes: &[&str]) -> PutWhitelistEntryRequest {
    PutWhitelistEntryRequest {
        tenant_id: tenant.to_owned(),
        app_id: app.to_owned(),
        allowed_scopes: strings(scopes),
        content_access: 0,
    }
}

/// A permission group named `Group <group>`, without a description.
pub fn group_req(
    tenant: &str,
    group: &str,
    managers: &[(&str, ManagerAccess)],
    grantors: &[&str],
    visible_to: &[&str],
) -> CreatePermissionGroupRequest {
    CreatePermissionGroupRequest {
        tenant_id: tenant.to_owned(),
        group_id: group.to_owned(),
        name: format!("Group {group}"),
        description: String::new(),
        managers: managers
            .iter()
            .map(|&(principal, access)| Manager {
                principal: principal.to_owned(),
                access: access.into(),
            })
            .collect(),
        grantors: strings(grantors),
        visible_to: strings(visible_to),
    }
}

/// The update that makes a group what `c` would create.
pub fn update_req(c: CreatePermissionGroupRequest) -> UpdatePermissionGroupRequest {
    UpdatePermissionGroupRequest {
        tenant_id: c.tenant_id,
        group_id: c.group_id,
        name: c.name,
        description: c.description,
        managers: c.managers,
        grantors: c.grantors,
        visible_to: c.visible_to,
    }
}

/// An external permission named `Permission <permission>`, without a description.
pub fn permission_req(
    tenant: &str,
    group: &str,
    permission: &str,
    external_id: &str,
) -> CreateExternalPermissionRequest {
    CreateExternalPermissionRequest {
        tenant_id: tenant.to_owned(),
        group_id: group.to_owned(),
        permission_id: permission.to_owned(),
        name: format!("Permission {permission}"),
        description: String::new(),
        external_id: external_id.to_owned(),
    }
}

/// A grant that does not expire.
pub fn grant_req(tenant: &str, user: &str, permission: &str) -> GrantExternalPermissionRequest {
    GrantExternalPermissionRequest {
        tenant_id: tenant.to_owned(),
        user_id: user.to_owned(),
        permission_id: permission.to_owned(),
        expires_at: None,
    }
}

pub fn revoke_grant_req(
    tenant: &str,
    user: &str,
    permission: &str,
) -> RevokeExternalPermissionRequest {
    RevokeExternalPermissionRequest {
        tenant_id: tenant.to_owned(),
        user_id: user.to_owned(),
        permission_id: permission.to_owned(),
    }
}

pub fn client_req(id: &str, tenants: &[&str], capabilities: &[Capability]) -> CreateClientRequest {
    CreateClientRequest {
        client_id: id.to_owned(),
        tenants: strings(tenants),
        capabilities: caps(capabilities),
    }
}

// ---------------------------------------------------------------------------------------------
// Time and revisions.

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A timestamp `offset` seconds from now (earlier when negative), in whole microseconds: what
/// the store keeps, so that it comes back exactly.
pub fn timestamp(offset: i64) -> prost_types::Timestamp {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let micros = i64::try_from(now.as_micros()).unwrap() + offset * 1_000_000;
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: i32::try_from(micros.rem_euclid(1_000_000) * 1_000).unwrap(),
    }
}

/// A timestamp in microseconds since the epoch (how audit events record times).
pub fn micros(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

/// Whether `t` is set and within five minutes of now.
pub fn near_now(t: Option<&prost_types::Timestamp>) -> bool {
    t.is_some_and(|t| (t.seconds - now_secs()).abs() < 300)
}

/// The number a revision token stands for (tokens are opaque to callers; the tests read them
/// with the crate's own parser to compare them). Panics if `token` is not one.
pub fn rev(token: &str) -> u64 {
    Revision::parse_token("token", token)
        .unwrap_or_else(|e| panic!("{token:?} is not a revision token: {e}"))
        .0
}

// ---------------------------------------------------------------------------------------------
// Site-level app rights.

/// A site-level app right: `right` for `app` at `resource`.
pub fn app_right_req(
    tenant: &str,
    app: &str,
    resource: &str,
    right: Right,
) -> GrantAppRightRequest {
    GrantAppRightRequest {
        tenant_id: tenant.to_owned(),
        app_id: app.to_owned(),
        resource: resource.to_owned(),
        right: right.into(),
    }
}

/// Takes `app`'s right at `resource` away (it must hold exactly that level).
pub fn revoke_app_right_req(
    tenant: &str,
    app: &str,
    resource: &str,
    right: Right,
) -> RevokeAppRightRequest {
    RevokeAppRightRequest {
        tenant_id: tenant.to_owned(),
        app_id: app.to_owned(),
        resource: resource.to_owned(),
        right: right.into(),
    }
}
