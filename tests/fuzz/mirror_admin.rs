//! The validation steps of each AdminService handler (`src/service/admin/handlers.rs`), in the
//! handler's order: the tenant first where the handler checks it (`tenant_write`,
//! `tenant_context`), then what its closure parses, then the page token of a listing. A change to
//! a handler's validation belongs here too; a request type without an arm fails the target.

use consentry::convert as cv;
use consentry::domain::{
    AppId, AuditTarget, ClientId, Environment, GroupId, Name, PermissionId, Principal,
    ResourcePath, TenantBounds, TenantId, UserId, Valid, ValidationError,
};
use consentry::proto::*;
use consentry::service::paging::{Listing, page_request};
use consentry::store::PageSecret;

use crate::requests::{Checked, Verdict, run};

fn tenant(value: &str) -> Valid<TenantId> {
    TenantId::parse("tenant_id", value)
}

fn user(value: &str) -> Valid<UserId> {
    UserId::parse("user_id", value)
}

fn app(value: &str) -> Valid<AppId> {
    AppId::parse("app_id", value)
}

/// The page a listing asks for; the position type does not matter here: a token this harness
/// did not mint never verifies.
fn page(size: i32, token: &str, query: &str) -> Valid<()> {
    page_request::<UserId>(&FUZZ_SECRET, size, token, &Listing::new(query)).map(drop)
}

/// The page-token secret of the fuzzed "deployment".
pub const FUZZ_SECRET: PageSecret = PageSecret([7; 32]);

/// Nothing to note.
fn ok() -> Checked {
    Ok(Vec::new())
}

/// Decodes `bytes` as the AdminService request `name` and validates it as its handler does;
/// `None` for a name that is not one of its request types.
pub fn validate(name: &str, bytes: &[u8]) -> Option<Verdict> {
    Some(match name {
        "PutTenantRequest" => run(bytes, |r: PutTenantRequest| {
            tenant(&r.tenant_id)?;
            Environment::parse("environment", &r.environment)?;
            ok()
        }),
        "ListTenantsRequest" => run(bytes, |r: ListTenantsRequest| {
            page(r.page_size, &r.page_token, "tenants:*")?;
            ok()
        }),
        "PutUserRequest" => run(bytes, |r: PutUserRequest| {
            tenant(&r.tenant_id)?;
            user(&r.user_id)?;
            cv::roles_from_proto("roles", &r.roles)?;
            ok()
        }),
        "DeleteUserRequest" => run(bytes, |r: DeleteUserRequest| {
            tenant(&r.tenant_id)?;
            user(&r.user_id)?;
            ok()
        }),
        "ListUsersRequest" => run(bytes, |r: ListUsersRequest| {
            let t = tenant(&r.tenant_id)?;
            page(r.page_size, &r.page_token, &format!("users:{t}"))?;
            ok()
        }),
        "GrantUserRightRequest" => run(bytes, |r: GrantUserRightRequest| {
            tenant(&r.tenant_id)?;
            user(&r.user_id)?;
            ResourcePath::parse("resource", &r.resource)?;
            cv::right_from_proto("right", r.right)?;
            ok()
        }),
        "RevokeUserRightRequest" => run(bytes, |r: RevokeUserRightRequest| {
            tenant(&r.tenant_id)?;
            user(&r.user_id)?;
            ResourcePath::parse("resource", &r.resource)?;
            cv::right_from_proto("right", r.right)?;
            ok()
        }),
        "ListUserRightsRequest" => run(bytes, |r: ListUserRightsRequest| {
            let t = tenant(&r.tenant_id)?;
            let u = user(&r.user_id)?;
            page(r.page_size, &r.page_token, &format!("rights:{t}:{u}"))?;
            ok()
        }),
        "PutApiUserRequest" => run(bytes, |r: PutApiUserRequest| {
            tenant(&r.tenant_id)?;
            user(&r.user_id)?;
            cv::api_user_from_proto(&r.scopes, r.as_user)?;
            ok()
        }),
        "DeleteApiUserRequest" => run(bytes, |r: DeleteApiUserRequest| {
            tenant(&r.tenant_id)?;
            user(&r.user_id)?;
            ok()
        }),
        "ListApiUsersRequest" => run(bytes, |r: ListApiUsersRequest| {
            let t = tenant(&r.tenant_id)?;
            page(r.page_size, &r.page_token, &format!("api_users:{t}"))?;
            ok()
        }),
        "RegisterAppRequest" => run(bytes, |r: RegisterAppRequest| {
            app(&r.app_id)?;
            Name::parse("name", &r.name)?;
            cv::app_kind_from_proto("kind", r.kind)?;
            cv::manifest_from_proto("manifest", r.manifest.as_ref())?;
            ok()
        }),
        "UpdateAppManifestRequest" => run(bytes, |r: UpdateAppManifestRequest| {
            app(&r.app_id)?;
            cv::manifest_from_proto("manifest", r.manifest.as_ref())?;
            ok()
        }),
        "UnregisterAppRequest" => run(bytes, |r: UnregisterAppRequest| {
            app(&r.app_id)?;
            ok()
        }),
        "ListAppsRequest" => run(bytes, |r: ListAppsRequest| {
            page(r.page_size, &r.page_token, "apps")?;
            ok()
        }),
        "ApproveConsentRequest" => run(bytes, |r: ApproveConsentRequest| {
            tenant(&r.tenant_id)?;
            app(&r.app_id)?;
            if r.manifest_revision < 1 {
                Err(ValidationError::new("manifest_revision", "is required"))?;
            }
            cv::resolved_requests_from_proto("resolved_requests", &r.resolved_requests)?;
            ok()
        }),
        "RevokeConsentRequest" => run(bytes, |r: RevokeConsentRequest| {
            tenant(&r.tenant_id)?;
            app(&r.app_id)?;
            ok()
        }),
        "ListConsentsRequest" => run(bytes, |r: ListConsentsRequest| {
            let t = tenant(&r.tenant_id)?;
            page(r.page_size, &r.page_token, &format!("consents:{t}"))?;
            ok()
        }),
        "PutWhitelistEntryRequest" => run(bytes, |r: PutWhitelistEntryRequest| {
            tenant(&r.tenant_id)?;
            app(&r.app_id)?;
            cv::whitelist_entry_from_proto(&r.allowed_scopes, r.content_access)?;
            ok()
        }),
        "DeleteWhitelistEntryRequest" => run(bytes, |r: DeleteWhitelistEntryRequest| {
            tenant(&r.tenant_id)?;
            app(&r.app_id)?;
            ok()
        }),
        "ListWhitelistEntriesRequest" => run(bytes, |r: ListWhitelistEntriesRequest| {
            let t = tenant(&r.tenant_id)?;
            page(r.page_size, &r.page_token, &format!("whitelist:{t}"))?;
            ok()
        }),
        "CreatePermissionGroupRequest" => run(bytes, |r: CreatePermissionGroupRequest| {
            tenant(&r.tenant_id)?;
            let (managers, grantors, visible_to) = (&r.managers, &r.grantors, &r.visible_to);
            cv::group_spec_from_proto(
                &r.group_id,
                &r.name,
                &r.description,
                managers,
                grantors,
                visible_to,
            )?;
            ok()
        }),
        "UpdatePermissionGroupRequest" => run(bytes, |r: UpdatePermissionGroupRequest| {
            tenant(&r.tenant_id)?;
            let (managers, grantors, visible_to) = (&r.managers, &r.grantors, &r.visible_to);
            cv::group_spec_from_proto(
                &r.group_id,
                &r.name,
                &r.description,
                managers,
                grantors,
                visible_to,
            )?;
            ok()
        }),
        "DeletePermissionGroupRequest" => run(bytes, |r: DeletePermissionGroupRequest| {
            tenant(&r.tenant_id)?;
            GroupId::parse("group_id", &r.group_id)?;
            ok()
        }),
        "ListPermissionGroupsRequest" => run(bytes, |r: ListPermissionGroupsRequest| {
            let t = tenant(&r.tenant_id)?;
            page(
                r.page_size,
                &r.page_token,
                &format!("groups:{t}:client:fuzz"),
            )?;
            ok()
        }),
        "CreateExternalPermissionRequest" => run(bytes, |r: CreateExternalPermissionRequest| {
            tenant(&r.tenant_id)?;
            cv::external_permission_from_proto(&r)?;
            ok()
        }),
        "DeleteExternalPermissionRequest" => run(bytes, |r: DeleteExternalPermissionRequest| {
            tenant(&r.tenant_id)?;
            PermissionId::parse("permission_id", &r.permission_id)?;
            ok()
        }),
        "GrantExternalPermissionRequest" => run(bytes, |r: GrantExternalPermissionRequest| {
            tenant(&r.tenant_id)?;
            user(&r.user_id)?;
            PermissionId::parse("permission_id", &r.permission_id)?;
            cv::optional_timestamp_from_proto("expires_at", r.expires_at.as_ref())?;
            ok()
        }),
        "RevokeExternalPermissionRequest" => run(bytes, |r: RevokeExternalPermissionRequest| {
            tenant(&r.tenant_id)?;
            user(&r.user_id)?;
            PermissionId::parse("permission_id", &r.permission_id)?;
            ok()
        }),
        "CreateClientRequest" => run(bytes, |r: CreateClientRequest| {
            ClientId::parse("client_id", &r.client_id)?;
            TenantBounds::parse("tenants", &r.tenants)?;
            cv::capabilities_from_proto("capabilities", &r.capabilities)?;
            ok()
        }),
        "RevokeClientRequest" => run(bytes, |r: RevokeClientRequest| {
            ClientId::parse("client_id", &r.client_id)?;
            ok()
        }),
        "ListClientsRequest" => run(bytes, |r: ListClientsRequest| {
            page(r.page_size, &r.page_token, "clients")?;
            ok()
        }),
        "ListAuditEventsRequest" => run(bytes, |r: ListAuditEventsRequest| {
            TenantId::parse_optional("tenant_id", &r.tenant_id)?;
            if !r.actor.is_empty() {
                Principal::parse("actor", &r.actor)?;
            }
            if !r.target.is_empty() {
                AuditTarget::parse("target", &r.target)?;
            }
            let since = cv::optional_timestamp_from_proto("since", r.since.as_ref())?;
            let query = format!("audit:{}:{}:{}:{since:?}:*", r.tenant_id, r.target, r.actor);
            page(r.page_size, &r.page_token, &query)?;
            ok()
        }),
        "GrantAppRightRequest" => run(bytes, |r: GrantAppRightRequest| {
            tenant(&r.tenant_id)?;
            app(&r.app_id)?;
            ResourcePath::parse("resource", &r.resource)?;
            cv::right_from_proto("right", r.right)?;
            ok()
        }),
        "RevokeAppRightRequest" => run(bytes, |r: RevokeAppRightRequest| {
            tenant(&r.tenant_id)?;
            app(&r.app_id)?;
            ResourcePath::parse("resource", &r.resource)?;
            cv::right_from_proto("right", r.right)?;
            ok()
        }),
        _ => return None,
    })
}
