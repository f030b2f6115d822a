//! JSON forms of the values stored inside rows (manifests, resolved requests, scope lists) and
//! of the before/after values audit events record. Never holds a key or its hash.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ClientRecord, StoreError, StoreResult};
use crate::domain::{
    ApiUser, App, Caller, Consent, ContentAccess, ExternalPermission, GroupAcl, Manifest,
    ManifestParts, PermissionGroup, PermissionRequest, Policy, ResolvedRequest, ResourcePath,
    Right, RoleSet, RunAs, Scope, ScopeLevel, Tenant, TenantBounds, Timestamp, WhitelistEntry,
};

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

#[derive(Serialize, Deserialize)]
struct RequestJson {
    scope_level: String,
    right: String,
}

#[derive(Serialize, Deserialize)]
struct ManifestJson {
    run_as: String,
    webhooks: bool,
    database_mirroring: bool,
    scopes: Vec<String>,
    permission_requests: Vec<RequestJson>,
    allow_app_only: bool,
    policy: String,
}

#[derive(Serialize, Deserialize)]
struct ResolvedJson {
    scope_level: String,
    right: String,
    resource: String,
}

fn manifest_json(m: &Manifest) -> ManifestJson {
    ManifestJson {
        run_as: m.run_as.as_str().to_owned(),
        webhooks: m.webhooks,
        database_mirroring: m.database_mirroring,
        scopes: m.scopes.iter().map(|s| s.to_string()).collect(),
        permission_requests: m
            .requests()
            .map(|r| RequestJson {
                scope_level: r.scope_level.as_str().to_owned(),
                right: r.right.as_str().to_owned(),
            })
            .collect(),
        allow_app_only: m.allow_app_only,
        policy: m.policy.as_str().to_owned(),
    }
}

/// A manifest as stored and audited.
pub fn manifest_value(m: &Manifest) -> Value {
    serde_json::to_value(manifest_json(m)).unwrap_or(Value::Null)
}

/// A manifest as stored.
pub fn manifest_to_text(m: &Manifest) -> String {
    manifest_value(m).to_string()
}

/// A stored manifest, read back through the domain's validation.
pub fn manifest_from_text(text: &str) -> StoreResult<Manifest> {
    let j: ManifestJson = serde_json::from_str(text).map_err(|e| corrupt("manifest", e))?;
    let run_as = match j.run_as.as_str() {
        "USER_CONTEXT" => RunAs::UserContext,
        "SYSTEM_USER" => RunAs::SystemUser,
        other => return Err(corrupt("manifest run_as", other)),
    };
    let policy = match j.policy.as_str() {
        "USER_AND_APP" => Policy::UserAndApp,
        "USER_ONLY" => Policy::UserOnly,
        other => return Err(corrupt("manifest policy", other)),
    };
    let permission_requests = j
        .permission_requests
        .iter()
        .map(|r| {
            Some(PermissionRequest {
                scope_level: ScopeLevel::from_name(&r.scope_level)?,
                right: Right::from_name(&r.right)?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| corrupt("manifest permission_requests", "unknown level or right"))?;
    Manifest::parse(ManifestParts {
        run_as,
        webhooks: j.webhooks,
        database_mirroring: j.database_mirroring,
        scopes: j.scopes,
        permission_requests,
        allow_app_only: j.allow_app_only,
        policy,
    })
    .map_err(|e| corrupt("manifest", e))
}

fn resolved_json(r: &ResolvedRequest) -> ResolvedJson {
    ResolvedJson {
        scope_level: r.scope_level.as_str().to_owned(),
        right: r.right.as_str().to_owned(),
        resource: r.resource.to_string(),
    }
}

/// Resolved requests as stored.
pub fn resolved_to_text(items: &[ResolvedRequest]) -> String {
    serde_json::to_string(&items.iter().map(resolved_json).collect::<Vec<_>>()).unwrap_or_default()
}

/// Stored resolved requests, read back.
pub fn resolved_from_text(text: &str) -> StoreResult<Vec<ResolvedRequest>> {
    let items: Vec<ResolvedJson> =
        serde_json::from_str(text).map_err(|e| corrupt("resolved_requests", e))?;
    items
        .into_iter()
        .map(|r| {
            Ok(ResolvedRequest {
                scope_level: ScopeLevel::from_name(&r.scope_level)
                    .ok_or_else(|| corrupt("resolved level", &r.scope_level))?,
                right: Right::from_name(&r.right)
                    .ok_or_else(|| corrupt("resolved right", &r.right))?,
                resource: ResourcePath::parse("resource", &r.resource)
                    .map_err(|e| corrupt("resolved resource", e))?,
            })
        })
        .collect()
}

/// A list of strings as stored.
pub fn strings_to_text<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    serde_json::to_string(&items.into_iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .unwrap_or_default()
}

/// A stored list of scopes, read back.
pub fn scopes_from_text(text: &str) -> StoreResult<std::collections::BTreeSet<Scope>> {
    let items: Vec<String> = serde_json::from_str(text).map_err(|e| corrupt("scopes", e))?;
    crate::domain::app::parse_scope_set("scopes", &items).map_err(|e| corrupt("scopes", e))
}

/// A stored list of client tenants, read back.
pub fn tenants_from_text(text: &str) -> StoreResult<TenantBounds> {
    let items: Vec<String> = serde_json::from_str(text).map_err(|e| corrupt("tenants", e))?;
    TenantBounds::parse("tenants", &items).map_err(|e| corrupt("tenants", e))
}

fn time(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| json!(t.as_micros()))
}

/// A tenant, as audited.
pub fn tenant_value(t: &Tenant) -> Value {
    json!({
        "tenant_id": t.tenant_id.as_str(),
        "environment": t.environment.as_str(),
        "whitelisting_enabled": t.whitelisting_enabled,
    })
}

/// A tenant user, as audited.
pub fn user_value(user: &str, roles: RoleSet) -> Value {
    json!({ "user_id": user, "roles": roles.roles().map(|r| r.as_str()).collect::<Vec<_>>() })
}

/// A user's API-user record, as audited.
pub fn api_user_value(user: &str, a: &ApiUser) -> Value {
    json!({
        "user_id": user,
        "scopes": a.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "as_user": a.as_user,
    })
}

/// A user's right, as audited.
pub fn right_value(user: &str, resource: &ResourcePath, right: Right) -> Value {
    json!({ "user_id": user, "resource": resource.as_str(), "right": right.as_str() })
}

/// An application's site-level app right, as audited.
pub fn app_right_value(app: &str, r: &ResolvedRequest) -> Value {
    json!({
        "app_id": app,
        "resource": r.resource.as_str(),
        "scope_level": r.scope_level.as_str(),
        "right": r.right.as_str(),
    })
}

/// An application, as audited.
pub fn app_value(app: &App) -> Value {
    json!({
        "app_id": app.app_id.as_str(),
        "name": app.name.as_str(),
        "kind": app.kind.as_str(),
        "manifest": manifest_value(&app.manifest),
        "manifest_revision": app.manifest_revision,
    })
}

/// A consent, as audited.
pub fn consent_value(app: &str, c: &Consent) -> Value {
    json!({
        "app_id": app,
        "approved_by": c.approved_by.to_string(),
        "approved_at": c.approved_at.as_micros(),
        "approved_manifest_revision": c.approved_manifest_revision,
        "approved_manifest": manifest_value(&c.approved_manifest),
        "resolved_requests": c.resolved_requests.iter().map(resolved_json).collect::<Vec<_>>(),
        "app_rights": c.app_rights.iter().map(resolved_json).collect::<Vec<_>>(),
        "revoked_at": time(c.revoked_at),
    })
}

/// A whitelist entry, as audited.
pub fn whitelist_value(app: &str, e: &WhitelistEntry) -> Value {
    json!({
        "app_id": app,
        "allowed_scopes": e.allowed_scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "content_access": e.content_access.as_str(),
    })
}

/// A group's principals, as audited.
pub fn acl_value(acl: &GroupAcl) -> Value {
    json!({
        "managers": acl.managers.iter().map(|(p, a)| json!({"principal": p.to_string(), "access": a.as_str()})).collect::<Vec<_>>(),
        "grantors": acl.grantors.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "visible_to": acl.visible_to.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
    })
}

/// A group, as audited.
pub fn group_value(g: &PermissionGroup) -> Value {
    let mut v = json!({
        "group_id": g.group_id.as_str(),
        "name": g.name.as_str(),
        "description": g.description.as_str(),
    });
    if let (Value::Object(map), Value::Object(acl)) = (&mut v, acl_value(&g.acl)) {
        map.extend(acl);
    }
    v
}

/// An external permission, as audited.
pub fn permission_value(p: &ExternalPermission) -> Value {
    json!({
        "permission_id": p.permission_id.as_str(),
        "group_id": p.group_id.as_str(),
        "name": p.name.as_str(),
        "description": p.description.as_str(),
        "external_id": p.external_id.as_str(),
    })
}

/// An external permission grant, as audited.
pub fn grant_value(
    user: &str,
    permission: &str,
    granted_by: &str,
    granted_at: Timestamp,
    expires_at: Option<Timestamp>,
) -> Value {
    json!({
        "user_id": user,
        "permission_id": permission,
        "granted_by": granted_by,
        "granted_at": granted_at.as_micros(),
        "expires_at": time(expires_at),
    })
}

/// A client, as audited (never its key or hash).
pub fn client_value(c: &ClientRecord) -> Value {
    client_parts_value(&c.caller, Some(c.created_at), c.revoked_at)
}

/// A client's parts, as audited.
pub fn client_parts_value(
    caller: &Caller,
    created_at: Option<Timestamp>,
    revoked_at: Option<Timestamp>,
) -> Value {
    json!({
        "client_id": caller.client_id.as_str(),
        "tenants": caller.tenants.to_strings(),
        "capabilities": caller.capabilities.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        "created_at": time(created_at),
        "revoked_at": time(revoked_at),
    })
}

/// A content access as stored.
pub fn content_access_code(c: ContentAccess) -> i64 {
    match c {
        ContentAccess::OwnContent => 1,
        ContentAccess::OnBehalfOfManagedUsers => 2,
    }
}

/// A stored content access, read back.
pub fn content_access_from_code(code: i64) -> StoreResult<ContentAccess> {
    match code {
        1 => Ok(ContentAccess::OwnContent),
        2 => Ok(ContentAccess::OnBehalfOfManagedUsers),
        other => Err(corrupt("content_access", other)),
    }
}

/// A right as stored: 1 READ … 4 FULL_CONTROL.
pub fn right_code(r: Right) -> i64 {
    r as i64 + 1
}

/// A stored right, read back.
pub fn right_from_code(code: i64) -> StoreResult<Right> {
    usize::try_from(code - 1)
        .ok()
        .and_then(|i| Right::ALL.get(i).copied())
        .ok_or_else(|| corrupt("right", code))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn manifests_and_resolved_requests_round_trip() {
        let m = Manifest::parse(ManifestParts {
            run_as: RunAs::SystemUser,
            webhooks: true,
            scopes: vec!["b".into(), "a:read".into()],
            permission_requests: vec![PermissionRequest {
                scope_level: ScopeLevel::Web,
                right: Right::Manage,
            }],
            policy: Policy::UserOnly,
            ..ManifestParts::default()
        })
        .unwrap();
        assert_eq!(manifest_from_text(&manifest_to_text(&m)).unwrap(), m);
        let r = vec![ResolvedRequest {
            scope_level: ScopeLevel::Web,
            right: Right::Write,
            resource: ResourcePath::parse("r", "/hr/web").unwrap(),
        }];
        assert_eq!(resolved_from_text(&resolved_to_text(&r)).unwrap(), r);
        for code in 1..=4 {
            assert_eq!(right_code(right_from_code(code).unwrap()), code);
        }
        assert!(right_from_code(0).is_err());
        assert!(manifest_from_text("{}").is_err());
    }
}
