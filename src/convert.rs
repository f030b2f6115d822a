//! Conversions between the generated proto types and the domain, in one place. Incoming values
//! are validated here (unknown or unspecified enums, malformed ids and paths become
//! [`ValidationError`]s); outgoing values are plain mappings.

use crate::domain::{
    self, AccessQuery, AppScopes, ConsentState, Decision, GrantView, Manifest, ManifestParts,
    OwnedAccessQuery, PermissionRequest, Reason, ReportedPolicy, ResolvedRequest, ResourcePath,
    Revision, Timestamp, Valid, ValidationError,
};
use crate::proto;
use crate::store::{AuditEvent, ClientRecord, GroupSpec};

/// Decodes a proto enum value, rejecting unknown numbers.
fn known<E: TryFrom<i32>>(field: &str, value: i32) -> Valid<E> {
    E::try_from(value)
        .map_err(|_| ValidationError::new(field, format_args!("{value} is not a known value")))
}

/// The two functions between a domain enum and its proto enum whose variants share their names:
/// `$from(field, value)` (an unknown or unspecified value is a [`ValidationError`] naming the
/// field) and `$to(value)`.
macro_rules! required_enum {
    ($domain:ident, $proto:ident, $from:ident, $to:ident, $missing:literal, [$($variant:ident),+ $(,)?]) => {
        #[doc = concat!("A required `", stringify!($domain), "`.")]
        pub fn $from(field: &str, value: i32) -> Valid<domain::$domain> {
            match known::<proto::$proto>(field, value)? {
                proto::$proto::Unspecified => Err(ValidationError::new(field, $missing)),
                $(proto::$proto::$variant => Ok(domain::$domain::$variant),)+
            }
        }

        #[doc = concat!("A `", stringify!($domain), "` for the wire.")]
        pub fn $to(value: domain::$domain) -> proto::$proto {
            match value {
                $(domain::$domain::$variant => proto::$proto::$variant,)+
            }
        }
    };
}

required_enum!(
    Role,
    Role,
    role_from_proto,
    role_to_proto,
    "a role is required (ROLE_UNSPECIFIED given)",
    [GeneralAdmin, UserAdmin, PermissionManager, Delegate]
);
required_enum!(
    Right,
    Right,
    right_from_proto,
    right_to_proto,
    "a right is required (RIGHT_UNSPECIFIED given)",
    [Read, Write, Manage, FullControl]
);
required_enum!(
    ScopeLevel,
    ScopeLevel,
    scope_level_from_proto,
    scope_level_to_proto,
    "a scope level is required (SCOPE_LEVEL_UNSPECIFIED given)",
    [Tenancy, SiteCollection, Web, List]
);
required_enum!(
    AppKind,
    AppKind,
    app_kind_from_proto,
    app_kind_to_proto,
    "a kind is required (APP_KIND_UNSPECIFIED given)",
    [Standard, Custom]
);
required_enum!(
    ManagerAccess,
    ManagerAccess,
    manager_access_from_proto,
    manager_access_to_proto,
    "an access is required (MANAGER_ACCESS_UNSPECIFIED given)",
    [Read, ReadWrite]
);
required_enum!(
    Capability,
    Capability,
    capability_from_proto,
    capability_to_proto,
    "a capability is required (CAPABILITY_UNSPECIFIED given)",
    [Query, Admin, AppManager, AssertUser]
);

/// A `RunAs`; unspecified is USER_CONTEXT.
pub fn run_as_from_proto(field: &str, value: i32) -> Valid<domain::RunAs> {
    use proto::RunAs as P;
    Ok(match known::<P>(field, value)? {
        P::Unspecified | P::UserContext => domain::RunAs::UserContext,
        P::SystemUser => domain::RunAs::SystemUser,
    })
}

/// A `RunAs` for the wire.
pub fn run_as_to_proto(run_as: domain::RunAs) -> proto::RunAs {
    match run_as {
        domain::RunAs::UserContext => proto::RunAs::UserContext,
        domain::RunAs::SystemUser => proto::RunAs::SystemUser,
    }
}

/// A manifest `Policy`; unspecified is USER_AND_APP, and APP_ONLY is never set in a manifest.
pub fn policy_from_proto(field: &str, value: i32) -> Valid<domain::Policy> {
    use proto::Policy as P;
    match known::<P>(field, value)? {
        P::Unspecified | P::UserAndApp => Ok(domain::Policy::UserAndApp),
        P::UserOnly => Ok(domain::Policy::UserOnly),
        P::AppOnly => Err(ValidationError::new(
            field,
            "POLICY_APP_ONLY is only ever reported; ask for app-only calls with allow_app_only",
        )),
    }
}

/// A manifest `Policy` for the wire.
pub fn policy_to_proto(policy: domain::Policy) -> proto::Policy {
    match policy {
        domain::Policy::UserAndApp => proto::Policy::UserAndApp,
        domain::Policy::UserOnly => proto::Policy::UserOnly,
    }
}

/// A reported policy for the wire.
pub fn reported_policy_to_proto(policy: ReportedPolicy) -> proto::Policy {
    match policy {
        ReportedPolicy::UserAndApp => proto::Policy::UserAndApp,
        ReportedPolicy::UserOnly => proto::Policy::UserOnly,
        ReportedPolicy::AppOnly => proto::Policy::AppOnly,
    }
}

/// A `ContentAccess`; unspecified is OWN_CONTENT.
pub fn content_access_from_proto(field: &str, value: i32) -> Valid<domain::ContentAccess> {
    use proto::ContentAccess as P;
    Ok(match known::<P>(field, value)? {
        P::Unspecified | P::OwnContent => domain::ContentAccess::OwnContent,
        P::OnBehalfOfManagedUsers => domain::ContentAccess::OnBehalfOfManagedUsers,
    })
}

/// A `ContentAccess` for the wire.
pub fn content_access_to_proto(access: domain::ContentAccess) -> proto::ContentAccess {
    match access {
        domain::ContentAccess::OwnContent => proto::ContentAccess::OwnContent,
        domain::ContentAccess::OnBehalfOfManagedUsers => {
            proto::ContentAccess::OnBehalfOfManagedUsers
        }
    }
}

/// A decision `Reason` for the wire.
pub fn reason_to_proto(reason: Reason) -> proto::Reason {
    match reason {
        Reason::Allowed => proto::Reason::Allowed,
        Reason::UnknownTenant => proto::Reason::UnknownTenant,
        Reason::UnknownApp => proto::Reason::UnknownApp,
        Reason::AppNotWhitelisted => proto::Reason::AppNotWhitelisted,
        Reason::NoConsent => proto::Reason::NoConsent,
        Reason::ConsentRevoked => proto::Reason::ConsentRevoked,
        Reason::ReapprovalRequired => proto::Reason::ReapprovalRequired,
        Reason::ScopeNotGranted => proto::Reason::ScopeNotGranted,
        Reason::ImpersonationNotAllowed => proto::Reason::ImpersonationNotAllowed,
        Reason::UserRequired => proto::Reason::UserRequired,
        Reason::AppPermissionInsufficient => proto::Reason::AppPermissionInsufficient,
        Reason::UserPermissionInsufficient => proto::Reason::UserPermissionInsufficient,
    }
}

/// A `ConsentState` for the wire.
pub fn consent_status_to_proto(state: &ConsentState) -> proto::ConsentStatus {
    match state {
        ConsentState::NotConsented => proto::ConsentStatus::NotConsented,
        ConsentState::Revoked => proto::ConsentStatus::Revoked,
        ConsentState::ReapprovalRequired(_) => proto::ConsentStatus::ReapprovalRequired,
        ConsentState::Approved => proto::ConsentStatus::Approved,
    }
}

/// A timestamp for the wire.
pub fn timestamp_to_proto(t: Timestamp) -> prost_types::Timestamp {
    let (seconds, nanos) = t.to_seconds_nanos();
    prost_types::Timestamp { seconds, nanos }
}

/// A timestamp from the wire: nanos within a second, and representable in microseconds.
pub fn timestamp_from_proto(field: &str, t: &prost_types::Timestamp) -> Valid<Timestamp> {
    if !(0..1_000_000_000).contains(&t.nanos) {
        return Err(ValidationError::new(
            field,
            format_args!("nanos {} is outside 0..1e9", t.nanos),
        ));
    }
    Timestamp::from_seconds_nanos(t.seconds, t.nanos).ok_or_else(|| {
        ValidationError::new(field, format_args!("{} seconds is out of range", t.seconds))
    })
}

/// A manifest from the wire, validated.
pub fn manifest_from_proto(field: &str, m: Option<&proto::Manifest>) -> Valid<Manifest> {
    let Some(m) = m else {
        return Err(ValidationError::new(field, "a manifest is required"));
    };
    let permission_requests = m
        .permission_requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let item = format!("{field}.permission_requests[{i}]");
            Ok(PermissionRequest {
                scope_level: scope_level_from_proto(&format!("{item}.scope_level"), r.scope_level)?,
                right: right_from_proto(&format!("{item}.right"), r.right)?,
            })
        })
        .collect::<Valid<_>>()?;
    Manifest::parse(ManifestParts {
        run_as: run_as_from_proto(&format!("{field}.run_as"), m.run_as)?,
        webhooks: m.webhooks,
        database_mirroring: m.database_mirroring,
        scopes: m.scopes.clone(),
        permission_requests,
        allow_app_only: m.allow_app_only,
        policy: policy_from_proto(&format!("{field}.policy"), m.policy)?,
    })
    .map_err(|e| e.within(field))
}

/// A manifest for the wire.
pub fn manifest_to_proto(m: &Manifest) -> proto::Manifest {
    proto::Manifest {
        run_as: run_as_to_proto(m.run_as).into(),
        webhooks: m.webhooks,
        database_mirroring: m.database_mirroring,
        scopes: m.scopes.iter().map(|s| s.to_string()).collect(),
        permission_requests: m.requests().map(permission_request_to_proto).collect(),
        allow_app_only: m.allow_app_only,
        policy: policy_to_proto(m.policy).into(),
    }
}

/// A permission request for the wire.
pub fn permission_request_to_proto(r: PermissionRequest) -> proto::PermissionRequest {
    proto::PermissionRequest {
        scope_level: scope_level_to_proto(r.scope_level).into(),
        right: right_to_proto(r.right).into(),
    }
}

/// Resolved requests from the wire, each well-formed (matching them to a manifest is the domain's job).
pub fn resolved_requests_from_proto(
    field: &str,
    items: &[proto::ResolvedRequest],
) -> Valid<Vec<ResolvedRequest>> {
    items
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let item = format!("{field}[{i}]");
            Ok(ResolvedRequest {
                scope_level: scope_level_from_proto(&format!("{item}.scope_level"), r.scope_level)?,
                right: right_from_proto(&format!("{item}.right"), r.right)?,
                resource: ResourcePath::parse(&format!("{item}.resource"), &r.resource)?,
            })
        })
        .collect()
}

/// A resolved request for the wire.
pub fn resolved_request_to_proto(r: &ResolvedRequest) -> proto::ResolvedRequest {
    proto::ResolvedRequest {
        scope_level: scope_level_to_proto(r.scope_level).into(),
        right: right_to_proto(r.right).into(),
        resource: r.resource.to_string(),
    }
}

/// A CheckAccess request, validated. Its consistency is the service's business.
pub fn access_query_from_proto(req: proto::CheckAccessRequest) -> Valid<AccessQuery> {
    AccessQuery::parse_owned(OwnedAccessQuery {
        tenant_id: req.tenant_id,
        app_id: req.app_id,
        user_id: req.user_id,
        on_behalf_of: req.on_behalf_of,
        scope: req.scope,
        permission: req.permission,
        resource: req.resource,
        explain: req.explain,
    })
}

/// A decision for the wire, evaluated at `checked_at`.
pub fn decision_to_proto(d: Decision, checked_at: Revision) -> proto::CheckAccessResponse {
    proto::CheckAccessResponse {
        allowed: d.allowed,
        reason: reason_to_proto(d.reason).into(),
        message: d.message,
        checked_at: checked_at.token(),
        trace: d
            .trace
            .into_iter()
            .map(|s| proto::TraceStep {
                step: s.step.as_str().to_owned(),
                passed: s.passed,
                detail: s.detail,
            })
            .collect(),
    }
}

/// A GetAppScopes report for the wire.
pub fn app_scopes_to_proto(r: AppScopes, checked_at: Revision) -> proto::GetAppScopesResponse {
    proto::GetAppScopesResponse {
        whitelisting_enabled: r.whitelisting_enabled,
        whitelisted: r.whitelisted,
        consent: Some(proto::ConsentInfo {
            status: consent_status_to_proto(&r.consent.state).into(),
            approved_by: r
                .consent
                .approved_by
                .map(|p| p.to_string())
                .unwrap_or_default(),
            approved_at: r.consent.approved_at.map(timestamp_to_proto),
            approved_manifest_revision: r.consent.approved_manifest_revision,
            current_manifest_revision: r.consent.current_manifest_revision,
        }),
        effective_scopes: r.effective_scopes.iter().map(|s| s.to_string()).collect(),
        pending_scopes: r.pending_scopes.iter().map(|s| s.to_string()).collect(),
        pending_permission_requests: r
            .pending_permission_requests
            .into_iter()
            .map(permission_request_to_proto)
            .collect(),
        pending_allow_app_only: r.pending_allow_app_only,
        pending_policy: r
            .pending_policy
            .map_or(proto::Policy::Unspecified, policy_to_proto)
            .into(),
        content_access: content_access_to_proto(r.content_access).into(),
        run_as: run_as_to_proto(r.run_as).into(),
        webhooks: r.webhooks,
        database_mirroring: r.database_mirroring,
        app_grants: r.app_grants.iter().map(resolved_request_to_proto).collect(),
        policy: reported_policy_to_proto(r.policy).into(),
        allow_app_only: r.allow_app_only,
        reapproval_required: !r.reapproval_reasons.is_empty(),
        reapproval_reasons: r
            .reapproval_reasons
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        checked_at: checked_at.token(),
    }
}

/// A user's external permission grant for the wire.
pub fn grant_to_proto(g: &GrantView) -> proto::ExternalPermissionGrant {
    proto::ExternalPermissionGrant {
        permission_id: g.permission_id.to_string(),
        group_id: g.group_id.to_string(),
        group_name: g.group_name.clone(),
        name: g.name.clone(),
        external_id: g.external_id.clone(),
        granted_by: g.granted_by.to_string(),
        granted_at: Some(timestamp_to_proto(g.granted_at)),
        expires_at: g.expires_at.map(timestamp_to_proto),
    }
}

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

/// Decodes each value of a repeated enum field as `field[i]`.
fn each<T>(field: &str, values: &[i32], from: fn(&str, i32) -> Valid<T>) -> Valid<Vec<T>> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| from(&format!("{field}[{i}]"), *v))
        .collect()
}

/// A set of roles from the wire (`roles[i]` names a bad one).
pub fn roles_from_proto(field: &str, roles: &[i32]) -> Valid<domain::RoleSet> {
    Ok(domain::RoleSet::of(each(field, roles, role_from_proto)?))
}

/// A set of capabilities from the wire (`capabilities[i]` names a bad one).
pub fn capabilities_from_proto(field: &str, caps: &[i32]) -> Valid<domain::Capabilities> {
    Ok(domain::Capabilities::of(each(
        field,
        caps,
        capability_from_proto,
    )?))
}

/// An optional timestamp from the wire.
pub fn optional_timestamp_from_proto(
    field: &str,
    t: Option<&prost_types::Timestamp>,
) -> Valid<Option<Timestamp>> {
    t.map(|t| timestamp_from_proto(field, t)).transpose()
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

/// An approver for the wire.
pub fn approver_to_proto(a: domain::Approver) -> proto::Approver {
    match a {
        domain::Approver::Administrator => proto::Approver::Administrator,
        domain::Approver::AppManager => proto::Approver::AppManager,
    }
}

/// The consent prompt for the wire.
pub fn consent_prompt_to_proto(
    p: domain::ConsentPrompt,
    checked_at: Revision,
) -> proto::GetConsentPromptResponse {
    proto::GetConsentPromptResponse {
        app_id: p.app_id.to_string(),
        name: p.name.to_string(),
        kind: app_kind_to_proto(p.kind).into(),
        manifest_revision: p.manifest_revision,
        scopes: p.scopes.iter().map(|s| s.to_string()).collect(),
        permission_requests: p
            .permission_requests
            .into_iter()
            .map(permission_request_to_proto)
            .collect(),
        mandatory: p.mandatory,
        approvers: p
            .approvers
            .into_iter()
            .map(|a| approver_to_proto(a).into())
            .collect(),
        changes: p
            .changes
            .into_iter()
            .map(|c| proto::ConsentChange {
                change: c.change.as_str().to_owned(),
                from: c.from,
                to: c.to,
            })
            .collect(),
        checked_at: checked_at.token(),
    }
}

// Context tokens (DESIGN.md §8)

/// An IssueContextToken request: its access question (no scope, no permission) and what the
/// token is for. The tenant is validated first by the caller, for the bounds check.
pub fn token_request_from_proto(
    req: proto::IssueContextTokenRequest,
) -> Valid<(AccessQuery, crate::token::TokenRequest)> {
    let query = AccessQuery::parse_owned(OwnedAccessQuery {
        tenant_id: req.tenant_id,
        app_id: req.app_id,
        user_id: req.user_id,
        on_behalf_of: req.on_behalf_of,
        resource: req.resource,
        ..OwnedAccessQuery::default()
    })?;
    let request = crate::token::TokenRequest {
        tenant_id: query.tenant_id.clone(),
        app_id: query.app_id.clone(),
        audience: crate::token::parse_audience(&req.audience)?,
        ttl: crate::token::parse_ttl(req.ttl_seconds)?,
    };
    Ok((query, request))
}

/// An IssueContextToken answer: the signed token, its expiry and a message, or the refusal.
pub fn token_to_proto(
    outcome: Result<(String, std::time::SystemTime, String), Decision>,
    checked_at: Revision,
) -> proto::IssueContextTokenResponse {
    let (issued, reason, message, token, expires_at) = match outcome {
        Ok((token, expires, message)) => (true, Reason::Allowed, message, token, Some(expires)),
        Err(d) => (false, d.reason, d.message, String::new(), None),
    };
    proto::IssueContextTokenResponse {
        issued,
        reason: reason_to_proto(reason).into(),
        message,
        token,
        expires_at: expires_at.map(prost_types::Timestamp::from),
        checked_at: checked_at.token(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_and_unknown_enums_are_rejected_where_required() {
        assert!(
            role_from_proto("roles[0]", 0)
                .unwrap_err()
                .problem
                .contains("required")
        );
        assert!(
            role_from_proto("roles[0]", 99)
                .unwrap_err()
                .problem
                .contains("99")
        );
        assert!(right_from_proto("right", 0).is_err());
        assert!(scope_level_from_proto("scope_level", 0).is_err());
        assert!(app_kind_from_proto("kind", 0).is_err());
        assert!(manager_access_from_proto("access", 0).is_err());
        assert!(capability_from_proto("capabilities[0]", 0).is_err());
    }

    #[test]
    fn unspecified_defaults_apply_where_the_contract_says() {
        assert_eq!(
            run_as_from_proto("run_as", 0).unwrap(),
            domain::RunAs::UserContext
        );
        assert_eq!(
            policy_from_proto("policy", 0).unwrap(),
            domain::Policy::UserAndApp
        );
        assert_eq!(
            content_access_from_proto("c", 0).unwrap(),
            domain::ContentAccess::OwnContent
        );
        assert!(policy_from_proto("policy", proto::Policy::AppOnly as i32).is_err());
        assert!(run_as_from_proto("run_as", 7).is_err());
    }

    #[test]
    fn manifests_round_trip_and_name_the_nested_field_at_fault() {
        let wire = proto::Manifest {
            run_as: proto::RunAs::SystemUser as i32,
            webhooks: true,
            database_mirroring: false,
            scopes: vec!["b".into(), "a".into()],
            permission_requests: vec![proto::PermissionRequest {
                scope_level: proto::ScopeLevel::Web as i32,
                right: proto::Right::Write as i32,
            }],
            allow_app_only: true,
            policy: proto::Policy::UserOnly as i32,
        };
        let m = manifest_from_proto("manifest", Some(&wire)).unwrap();
        let back = manifest_to_proto(&m);
        assert_eq!(back.scopes, ["a", "b"]);
        assert_eq!(manifest_from_proto("manifest", Some(&back)).unwrap(), m);

        let bad = proto::Manifest {
            scopes: vec!["a".into(), "a".into()],
            ..wire.clone()
        };
        assert_eq!(
            manifest_from_proto("manifest", Some(&bad))
                .unwrap_err()
                .field,
            "manifest.scopes[1]"
        );
        let bad = proto::Manifest {
            permission_requests: vec![proto::PermissionRequest {
                scope_level: 0,
                right: 1,
            }],
            ..wire
        };
        assert_eq!(
            manifest_from_proto("manifest", Some(&bad))
                .unwrap_err()
                .field,
            "manifest.permission_requests[0].scope_level"
        );
        assert!(manifest_from_proto("manifest", None).is_err());
    }

    #[test]
    fn timestamps_round_trip_and_reject_bad_nanos() {
        let t = Timestamp::from_micros(1_234_567);
        assert_eq!(
            timestamp_from_proto("t", &timestamp_to_proto(t)).unwrap(),
            t
        );
        assert!(
            timestamp_from_proto(
                "t",
                &prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1
                }
            )
            .is_err()
        );
        assert!(
            timestamp_from_proto(
                "t",
                &prost_types::Timestamp {
                    seconds: i64::MAX,
                    nanos: 0
                }
            )
            .is_err()
        );
    }
}
