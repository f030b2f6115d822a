//! AdminService values: the list elements (tenants, users, rights, apps, clients, consents,
//! whitelist entries, groups, permissions, API users, audit events) and the write requests
//! that carry more than ids.

use super::*;

/// An application for the wire.
pub fn app_to_proto(a: &domain::App) -> proto::App {
    proto::App {
        app_id: a.app_id.to_string(),
        name: a.name.to_string(),
        kind: app_kind_to_proto(a.kind).into(),
        manifest: Some(manifest_to_proto(&a.manifest)),
        manifest_revision: a.manifest_revision,
    }
}

/// A client for the wire (never its key).
pub fn client_to_proto(c: &ClientRecord) -> proto::Client {
    proto::Client {
        client_id: c.caller.client_id.to_string(),
        tenants: c.caller.tenants.to_strings(),
        capabilities: c
            .caller
            .capabilities
            .iter()
            .map(|cap| capability_to_proto(cap).into())
            .collect(),
        created_at: Some(timestamp_to_proto(c.created_at)),
        revoked_at: c.revoked_at.map(timestamp_to_proto),
    }
}

/// A consent for the wire.
pub fn consent_to_proto(
    tenant: &domain::TenantId,
    app: &domain::AppId,
    c: &domain::Consent,
) -> proto::Consent {
    proto::Consent {
        tenant_id: tenant.to_string(),
        app_id: app.to_string(),
        approved_by: c.approved_by.to_string(),
        approved_at: Some(timestamp_to_proto(c.approved_at)),
        approved_manifest_revision: c.approved_manifest_revision,
        approved_manifest: Some(manifest_to_proto(&c.approved_manifest)),
        resolved_requests: c
            .resolved_requests
            .iter()
            .map(resolved_request_to_proto)
            .collect(),
        revoked_at: c.revoked_at.map(timestamp_to_proto),
        app_rights: c.app_rights.iter().map(resolved_request_to_proto).collect(),
    }
}

/// A whitelist entry for the wire.
pub fn whitelist_entry_to_proto(
    tenant: &domain::TenantId,
    app: &domain::AppId,
    e: &domain::WhitelistEntry,
) -> proto::WhitelistEntry {
    proto::WhitelistEntry {
        tenant_id: tenant.to_string(),
        app_id: app.to_string(),
        allowed_scopes: e.allowed_scopes.iter().map(|s| s.to_string()).collect(),
        content_access: content_access_to_proto(e.content_access).into(),
    }
}

/// A permission group for the wire, with the permissions given.
pub fn group_to_proto(
    tenant: &domain::TenantId,
    g: &domain::PermissionGroup,
    permissions: &[domain::ExternalPermission],
) -> proto::PermissionGroup {
    proto::PermissionGroup {
        tenant_id: tenant.to_string(),
        group_id: g.group_id.to_string(),
        name: g.name.to_string(),
        description: g.description.to_string(),
        managers: g
            .acl
            .managers
            .iter()
            .map(|(p, a)| proto::Manager {
                principal: p.to_string(),
                access: manager_access_to_proto(*a).into(),
            })
            .collect(),
        grantors: g.acl.grantors.iter().map(|p| p.to_string()).collect(),
        visible_to: g.acl.visible_to.iter().map(|p| p.to_string()).collect(),
        permissions: permissions
            .iter()
            .map(external_permission_to_proto)
            .collect(),
    }
}

/// An external permission for the wire.
pub fn external_permission_to_proto(p: &domain::ExternalPermission) -> proto::ExternalPermission {
    proto::ExternalPermission {
        permission_id: p.permission_id.to_string(),
        group_id: p.group_id.to_string(),
        name: p.name.to_string(),
        description: p.description.to_string(),
        external_id: p.external_id.to_string(),
    }
}

/// An audit event for the wire.
pub fn audit_event_to_proto(e: &AuditEvent) -> proto::AuditEvent {
    proto::AuditEvent {
        revision: e.revision.token(),
        at: Some(timestamp_to_proto(e.at)),
        actor_client: e.actor_client.clone(),
        actor_user: e
            .actor_user
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_default(),
        action: e.action.clone(),
        tenant_id: e
            .tenant_id
            .as_ref()
            .map(|t| t.to_string())
            .unwrap_or_default(),
        target: e.target.clone(),
        before: e.before.clone().unwrap_or_default(),
        after: e.after.clone().unwrap_or_default(),
    }
}

/// A list of principals from the wire.
pub fn principals_from_proto(field: &str, items: &[String]) -> Valid<Vec<domain::Principal>> {
    items
        .iter()
        .enumerate()
        .map(|(i, p)| domain::Principal::parse(&format!("{field}[{i}]"), p))
        .collect()
}

/// A group's managers, grantors and visible-to principals from the wire, validated.
pub fn group_acl_from_proto(
    managers: &[proto::Manager],
    grantors: &[String],
    visible_to: &[String],
) -> Valid<domain::GroupAcl> {
    let managers = managers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            Ok((
                domain::Principal::parse(&format!("managers[{i}].principal"), &m.principal)?,
                manager_access_from_proto(&format!("managers[{i}].access"), m.access)?,
            ))
        })
        .collect::<Valid<Vec<_>>>()?;
    domain::GroupAcl::new(
        managers,
        principals_from_proto("grantors", grantors)?,
        principals_from_proto("visible_to", visible_to)?,
    )
}

/// A tenant for the wire.
pub fn tenant_to_proto(t: &domain::Tenant) -> proto::Tenant {
    proto::Tenant {
        tenant_id: t.tenant_id.to_string(),
        environment: t.environment.to_string(),
        whitelisting_enabled: t.whitelisting_enabled,
    }
}

/// A user known in a tenant, with their roles, for the wire.
pub fn tenant_user_to_proto(
    tenant: &domain::TenantId,
    user: &domain::UserId,
    roles: &domain::RoleSet,
) -> proto::TenantUser {
    proto::TenantUser {
        tenant_id: tenant.to_string(),
        user_id: user.to_string(),
        roles: roles.roles().map(|r| role_to_proto(r).into()).collect(),
    }
}

/// An API user for the wire.
pub fn api_user_to_proto(
    tenant: &domain::TenantId,
    user: &domain::UserId,
    a: &domain::ApiUser,
) -> proto::ApiUser {
    proto::ApiUser {
        tenant_id: tenant.to_string(),
        user_id: user.to_string(),
        scopes: a.scopes.iter().map(|s| s.to_string()).collect(),
        as_user: a.as_user,
    }
}

/// A user's right at a resource for the wire.
pub fn user_right_to_proto(
    tenant: &domain::TenantId,
    user: &domain::UserId,
    resource: &ResourcePath,
    right: domain::Right,
) -> proto::UserRight {
    proto::UserRight {
        tenant_id: tenant.to_string(),
        user_id: user.to_string(),
        resource: resource.to_string(),
        right: right_to_proto(right).into(),
    }
}

/// A whitelist entry's terms from the wire.
pub fn whitelist_entry_from_proto(
    allowed_scopes: &[String],
    content_access: i32,
) -> Valid<domain::WhitelistEntry> {
    Ok(domain::WhitelistEntry {
        allowed_scopes: domain::app::parse_scope_set("allowed_scopes", allowed_scopes)?,
        content_access: content_access_from_proto("content_access", content_access)?,
    })
}

/// An API user's record from the wire: each scope well-formed and listed once.
pub fn api_user_from_proto(scopes: &[String], as_user: bool) -> Valid<domain::ApiUser> {
    Ok(domain::ApiUser {
        scopes: domain::app::parse_scope_set("scopes", scopes)?,
        as_user,
    })
}

/// A new external permission from the wire.
pub fn external_permission_from_proto(
    r: &proto::CreateExternalPermissionRequest,
) -> Valid<domain::ExternalPermission> {
    Ok(domain::ExternalPermission {
        permission_id: domain::PermissionId::parse("permission_id", &r.permission_id)?,
        group_id: domain::GroupId::parse("group_id", &r.group_id)?,
        name: domain::Name::parse("name", &r.name)?,
        description: domain::Description::parse("description", &r.description)?,
        external_id: domain::ExternalId::parse("external_id", &r.external_id)?,
    })
}

/// A permission group's id, name, description and access lists from the wire (create and update
/// carry the same fields).
pub fn group_spec_from_proto(
    group_id: &str,
    name: &str,
    description: &str,
    managers: &[proto::Manager],
    grantors: &[String],
    visible_to: &[String],
) -> Valid<GroupSpec> {
    Ok(GroupSpec {
        group_id: domain::GroupId::parse("group_id", group_id)?,
        name: domain::Name::parse("name", name)?,
        description: domain::Description::parse("description", description)?,
        acl: group_acl_from_proto(managers, grantors, visible_to)?,
    })
}
