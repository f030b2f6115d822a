//! Hostile values in requests: every string field of every request of both services (found from
//! the services' descriptor, so a new field cannot be missed) is sent with a NUL byte, with
//! 10,000 characters and with control characters, the rest of the request well-formed. Each is
//! `INVALID_ARGUMENT` naming the field, with a short message, and nothing reaches the store.
//! Timestamps before year 1 or after year 9999, or with nanos outside the second, are
//! `INVALID_ARGUMENT` naming the field too; the first and last instants are accepted.

use std::collections::BTreeSet;

use consentry::domain::time::{MAX_SECONDS, MIN_SECONDS};
use consentry::proto::admin_service_client::AdminServiceClient;
use consentry::proto::consistency::Requirement;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::proto::*;
use prost_reflect::{DescriptorPool, FieldDescriptor, Kind, MessageDescriptor};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::support::calls::{Cases, Who, ok};
use crate::support::db::{TestDb, backend_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;
use crate::support::world::{Admin, put_tenant, put_user};

backend_tests!(
    a_nul_in_any_request_string_is_invalid_argument_naming_the_field,
    a_long_or_unprintable_value_gets_a_short_message_naming_the_field,
    timestamps_outside_years_1_to_9999_are_invalid_argument_naming_the_field,
);

/// The longest `grpc-message` a hostile value may cause. A grpc-core client refuses a message
/// of 10 KB; what consentry says about a bad value is a field, a problem and a short quote.
const SHORT: usize = 300;

/// A hostile value made from the well-formed value of a field.
type Hostile = fn(&str) -> String;

/// One call of the table: the RPC, the path of the field made hostile (as the descriptor walk
/// spells it), the field the error must name, and the outcome.
struct Outcome {
    rpc: &'static str,
    path: &'static str,
    names: &'static str,
    result: Result<(), Status>,
}

/// Calls every RPC once for each string field of its request, with that field made hostile by
/// `bad` and every other field well-formed, as the bootstrap client (every capability, every
/// tenant). Nothing the requests name needs to exist: validation comes first. A table: one line
/// a field, left as written by rustfmt.
#[rustfmt::skip]
async fn call_with_each_field_hostile(
    a: &mut AdminServiceClient<Channel>,
    p: &mut PermissionServiceClient<Channel>,
    bad: Hostile,
) -> Vec<Outcome> {
    let boot = Who::boot();
    let v = |good: &str| bad(good);
    let s = |good: &str| good.to_owned();
    let fresh = |token: String| {
        Some(Consistency {
            requirement: Some(Requirement::AtLeastAsFresh(token)),
        })
    };
    let mut out = Vec::new();
    macro_rules! field {
        ($rpc:literal, $path:literal, names $names:literal, $client:ident . $method:ident($message:expr)) => {
            let result = $client.$method(boot.r($message)).await.map(|_| ());
            out.push(Outcome { rpc: $rpc, path: $path, names: $names, result });
        };
        ($rpc:literal, $path:literal, $client:ident . $method:ident($message:expr)) => {
            field!($rpc, $path, names $path, $client.$method($message))
        };
    }

    // PermissionService.
    let check = || CheckAccessRequest {
        tenant_id: s("acme"),
        app_id: s("crm"),
        user_id: s("alice"),
        on_behalf_of: s("carol"),
        scope: s("documents:read"),
        permission: s("READ"),
        resource: s("/hr"),
        consistency: None,
        explain: false,
    };
    field!("CheckAccess", "tenant_id", p.check_access(CheckAccessRequest { tenant_id: v("acme"), ..check() }));
    field!("CheckAccess", "app_id", p.check_access(CheckAccessRequest { app_id: v("crm"), ..check() }));
    field!("CheckAccess", "user_id", p.check_access(CheckAccessRequest { user_id: v("alice"), ..check() }));
    field!("CheckAccess", "on_behalf_of", p.check_access(CheckAccessRequest { on_behalf_of: v("carol"), ..check() }));
    field!("CheckAccess", "scope", p.check_access(CheckAccessRequest { scope: v("documents:read"), ..check() }));
    field!("CheckAccess", "permission", p.check_access(CheckAccessRequest { permission: v("READ"), ..check() }));
    field!("CheckAccess", "resource", p.check_access(CheckAccessRequest { resource: v("/hr"), ..check() }));
    field!("CheckAccess", "consistency.at_least_as_fresh", p.check_access(CheckAccessRequest { consistency: fresh(v("r1")), ..check() }));

    let batch = |item: CheckAccessRequest| CheckAccessBatchRequest {
        items: vec![item],
        consistency: None,
    };
    field!("CheckAccessBatch", "items[0].tenant_id", p.check_access_batch(batch(CheckAccessRequest { tenant_id: v("acme"), ..check() })));
    field!("CheckAccessBatch", "items[0].app_id", p.check_access_batch(batch(CheckAccessRequest { app_id: v("crm"), ..check() })));
    field!("CheckAccessBatch", "items[0].user_id", p.check_access_batch(batch(CheckAccessRequest { user_id: v("alice"), ..check() })));
    field!("CheckAccessBatch", "items[0].on_behalf_of", p.check_access_batch(batch(CheckAccessRequest { on_behalf_of: v("carol"), ..check() })));
    field!("CheckAccessBatch", "items[0].scope", p.check_access_batch(batch(CheckAccessRequest { scope: v("documents:read"), ..check() })));
    field!("CheckAccessBatch", "items[0].permission", p.check_access_batch(batch(CheckAccessRequest { permission: v("READ"), ..check() })));
    field!("CheckAccessBatch", "items[0].resource", p.check_access_batch(batch(CheckAccessRequest { resource: v("/hr"), ..check() })));
    // Items carry no consistency at all: any is refused, naming it.
    field!("CheckAccessBatch", "items[0].consistency.at_least_as_fresh", names "items[0].consistency", p.check_access_batch(batch(CheckAccessRequest { consistency: fresh(v("r1")), ..check() })));
    field!("CheckAccessBatch", "consistency.at_least_as_fresh", p.check_access_batch(CheckAccessBatchRequest { consistency: fresh(v("r1")), ..batch(check()) }));

    let grants = || ListExternalPermissionsRequest {
        tenant_id: s("acme"),
        user_id: s("carol"),
        group_id: s("g1"),
        app_id: s("crm"),
        page_size: 0,
        page_token: String::new(),
        consistency: None,
    };
    field!("ListExternalPermissions", "tenant_id", p.list_external_permissions(ListExternalPermissionsRequest { tenant_id: v("acme"), ..grants() }));
    field!("ListExternalPermissions", "user_id", p.list_external_permissions(ListExternalPermissionsRequest { user_id: v("carol"), ..grants() }));
    field!("ListExternalPermissions", "group_id", p.list_external_permissions(ListExternalPermissionsRequest { group_id: v("g1"), ..grants() }));
    field!("ListExternalPermissions", "app_id", p.list_external_permissions(ListExternalPermissionsRequest { app_id: v("crm"), ..grants() }));
    field!("ListExternalPermissions", "page_token", p.list_external_permissions(ListExternalPermissionsRequest { page_token: v(""), ..grants() }));
    field!("ListExternalPermissions", "consistency.at_least_as_fresh", p.list_external_permissions(ListExternalPermissionsRequest { consistency: fresh(v("r1")), ..grants() }));

    let by_id = || CheckExternalPermissionRequest {
        tenant_id: s("acme"),
        user_id: s("carol"),
        permission_id: s("p1"),
        group_id: String::new(),
        external_id: String::new(),
        consistency: None,
        app_id: s("crm"),
    };
    let by_external = || CheckExternalPermissionRequest {
        permission_id: String::new(),
        group_id: s("g1"),
        external_id: s("P-1"),
        ..by_id()
    };
    field!("CheckExternalPermission", "tenant_id", p.check_external_permission(CheckExternalPermissionRequest { tenant_id: v("acme"), ..by_id() }));
    field!("CheckExternalPermission", "user_id", p.check_external_permission(CheckExternalPermissionRequest { user_id: v("carol"), ..by_id() }));
    field!("CheckExternalPermission", "permission_id", p.check_external_permission(CheckExternalPermissionRequest { permission_id: v("p1"), ..by_id() }));
    field!("CheckExternalPermission", "group_id", p.check_external_permission(CheckExternalPermissionRequest { group_id: v("g1"), ..by_external() }));
    field!("CheckExternalPermission", "external_id", p.check_external_permission(CheckExternalPermissionRequest { external_id: v("P-1"), ..by_external() }));
    field!("CheckExternalPermission", "app_id", p.check_external_permission(CheckExternalPermissionRequest { app_id: v("crm"), ..by_id() }));
    field!("CheckExternalPermission", "consistency.at_least_as_fresh", p.check_external_permission(CheckExternalPermissionRequest { consistency: fresh(v("r1")), ..by_id() }));

    field!("GetAppScopes", "tenant_id", p.get_app_scopes(GetAppScopesRequest { tenant_id: v("acme"), app_id: s("crm"), consistency: None }));
    field!("GetAppScopes", "app_id", p.get_app_scopes(GetAppScopesRequest { tenant_id: s("acme"), app_id: v("crm"), consistency: None }));
    field!("GetAppScopes", "consistency.at_least_as_fresh", p.get_app_scopes(GetAppScopesRequest { tenant_id: s("acme"), app_id: s("crm"), consistency: fresh(v("r1")) }));
    field!("GetConsentPrompt", "tenant_id", p.get_consent_prompt(GetConsentPromptRequest { tenant_id: v("acme"), app_id: s("crm"), consistency: None }));
    field!("GetConsentPrompt", "app_id", p.get_consent_prompt(GetConsentPromptRequest { tenant_id: s("acme"), app_id: v("crm"), consistency: None }));
    field!("GetConsentPrompt", "consistency.at_least_as_fresh", p.get_consent_prompt(GetConsentPromptRequest { tenant_id: s("acme"), app_id: s("crm"), consistency: fresh(v("r1")) }));

    let token = || IssueContextTokenRequest {
        tenant_id: s("acme"),
        app_id: s("crm"),
        user_id: s("alice"),
        on_behalf_of: s("carol"),
        resource: s("/hr"),
        audience: s("documents-service"),
        ttl_seconds: 0,
        consistency: None,
    };
    field!("IssueContextToken", "tenant_id", p.issue_context_token(IssueContextTokenRequest { tenant_id: v("acme"), ..token() }));
    field!("IssueContextToken", "app_id", p.issue_context_token(IssueContextTokenRequest { app_id: v("crm"), ..token() }));
    field!("IssueContextToken", "user_id", p.issue_context_token(IssueContextTokenRequest { user_id: v("alice"), ..token() }));
    field!("IssueContextToken", "on_behalf_of", p.issue_context_token(IssueContextTokenRequest { on_behalf_of: v("carol"), ..token() }));
    field!("IssueContextToken", "resource", p.issue_context_token(IssueContextTokenRequest { resource: v("/hr"), ..token() }));
    field!("IssueContextToken", "audience", p.issue_context_token(IssueContextTokenRequest { audience: v("documents-service"), ..token() }));
    field!("IssueContextToken", "consistency.at_least_as_fresh", p.issue_context_token(IssueContextTokenRequest { consistency: fresh(v("r1")), ..token() }));

    // AdminService: tenants, users and their rights.
    field!("PutTenant", "tenant_id", a.put_tenant(tenant_req(&v("acme"), "production", false)));
    field!("PutTenant", "environment", a.put_tenant(tenant_req("acme", &v("production"), false)));
    field!("ListTenants", "page_token", a.list_tenants(ListTenantsRequest { page_size: 0, page_token: v("") }));
    field!("PutUser", "tenant_id", a.put_user(user_req(&v("acme"), "carol", &[Role::Delegate])));
    field!("PutUser", "user_id", a.put_user(user_req("acme", &v("carol"), &[Role::Delegate])));
    field!("DeleteUser", "tenant_id", a.delete_user(DeleteUserRequest { tenant_id: v("acme"), user_id: s("carol") }));
    field!("DeleteUser", "user_id", a.delete_user(DeleteUserRequest { tenant_id: s("acme"), user_id: v("carol") }));
    field!("ListUsers", "tenant_id", a.list_users(ListUsersRequest { tenant_id: v("acme"), ..Default::default() }));
    field!("ListUsers", "page_token", a.list_users(ListUsersRequest { tenant_id: s("acme"), page_token: v(""), ..Default::default() }));
    field!("GrantUserRight", "tenant_id", a.grant_user_right(right_req(&v("acme"), "carol", "/hr", Right::Read)));
    field!("GrantUserRight", "user_id", a.grant_user_right(right_req("acme", &v("carol"), "/hr", Right::Read)));
    field!("GrantUserRight", "resource", a.grant_user_right(right_req("acme", "carol", &v("/hr"), Right::Read)));
    let revoke = |tenant: String, user: String, resource: String| RevokeUserRightRequest {
        tenant_id: tenant,
        user_id: user,
        resource,
        right: Right::Read.into(),
    };
    field!("RevokeUserRight", "tenant_id", a.revoke_user_right(revoke(v("acme"), s("carol"), s("/hr"))));
    field!("RevokeUserRight", "user_id", a.revoke_user_right(revoke(s("acme"), v("carol"), s("/hr"))));
    field!("RevokeUserRight", "resource", a.revoke_user_right(revoke(s("acme"), s("carol"), v("/hr"))));
    field!("ListUserRights", "tenant_id", a.list_user_rights(ListUserRightsRequest { tenant_id: v("acme"), user_id: s("carol"), ..Default::default() }));
    field!("ListUserRights", "user_id", a.list_user_rights(ListUserRightsRequest { tenant_id: s("acme"), user_id: v("carol"), ..Default::default() }));
    field!("ListUserRights", "page_token", a.list_user_rights(ListUserRightsRequest { tenant_id: s("acme"), user_id: s("carol"), page_token: v(""), ..Default::default() }));
    field!("PutApiUser", "tenant_id", a.put_api_user(api_user_req(&v("acme"), "carol", &["documents:read"], false)));
    field!("PutApiUser", "user_id", a.put_api_user(api_user_req("acme", &v("carol"), &["documents:read"], false)));
    field!("PutApiUser", "scopes[0]", a.put_api_user(api_user_req("acme", "carol", &[&v("documents:read")], false)));
    field!("DeleteApiUser", "tenant_id", a.delete_api_user(delete_api_user_req(&v("acme"), "carol")));
    field!("DeleteApiUser", "user_id", a.delete_api_user(delete_api_user_req("acme", &v("carol"))));
    field!("ListApiUsers", "tenant_id", a.list_api_users(ListApiUsersRequest { tenant_id: v("acme"), ..Default::default() }));
    field!("ListApiUsers", "page_token", a.list_api_users(ListApiUsersRequest { tenant_id: s("acme"), page_token: v(""), ..Default::default() }));

    // Apps, consent and the whitelist.
    let m = |scope: &str| Some(manifest(&[scope], &[(ScopeLevel::Web, Right::Write)]));
    field!("RegisterApp", "app_id", a.register_app(RegisterAppRequest { app_id: v("crm"), name: s("CRM"), kind: AppKind::Standard.into(), manifest: m("documents:read") }));
    field!("RegisterApp", "name", a.register_app(RegisterAppRequest { app_id: s("crm"), name: v("CRM"), kind: AppKind::Standard.into(), manifest: m("documents:read") }));
    field!("RegisterApp", "manifest.scopes[0]", a.register_app(RegisterAppRequest { app_id: s("crm"), name: s("CRM"), kind: AppKind::Standard.into(), manifest: m(&v("documents:read")) }));
    field!("UpdateAppManifest", "app_id", a.update_app_manifest(UpdateAppManifestRequest { app_id: v("crm"), manifest: m("documents:read") }));
    field!("UpdateAppManifest", "manifest.scopes[0]", a.update_app_manifest(UpdateAppManifestRequest { app_id: s("crm"), manifest: m(&v("documents:read")) }));
    field!("UnregisterApp", "app_id", a.unregister_app(UnregisterAppRequest { app_id: v("crm") }));
    field!("ListApps", "page_token", a.list_apps(ListAppsRequest { page_size: 0, page_token: v("") }));
    let approve = |tenant: String, app: String, resource: String| ApproveConsentRequest {
        tenant_id: tenant,
        app_id: app,
        manifest_revision: 1,
        resolved_requests: vec![resolved(ScopeLevel::Web, Right::Write, &resource)],
    };
    field!("ApproveConsent", "tenant_id", a.approve_consent(approve(v("acme"), s("crm"), s("/hr/team"))));
    field!("ApproveConsent", "app_id", a.approve_consent(approve(s("acme"), v("crm"), s("/hr/team"))));
    field!("ApproveConsent", "resolved_requests[0].resource", a.approve_consent(approve(s("acme"), s("crm"), v("/hr/team"))));
    field!("RevokeConsent", "tenant_id", a.revoke_consent(RevokeConsentRequest { tenant_id: v("acme"), app_id: s("crm") }));
    field!("RevokeConsent", "app_id", a.revoke_consent(RevokeConsentRequest { tenant_id: s("acme"), app_id: v("crm") }));
    field!("ListConsents", "tenant_id", a.list_consents(ListConsentsRequest { tenant_id: v("acme"), ..Default::default() }));
    field!("ListConsents", "page_token", a.list_consents(ListConsentsRequest { tenant_id: s("acme"), page_token: v(""), ..Default::default() }));
    field!("PutWhitelistEntry", "tenant_id", a.put_whitelist_entry(whitelist_req(&v("acme"), "crm", &["documents:read"])));
    field!("PutWhitelistEntry", "app_id", a.put_whitelist_entry(whitelist_req("acme", &v("crm"), &["documents:read"])));
    field!("PutWhitelistEntry", "allowed_scopes[0]", a.put_whitelist_entry(whitelist_req("acme", "crm", &[&v("documents:read")])));
    field!("DeleteWhitelistEntry", "tenant_id", a.delete_whitelist_entry(DeleteWhitelistEntryRequest { tenant_id: v("acme"), app_id: s("crm") }));
    field!("DeleteWhitelistEntry", "app_id", a.delete_whitelist_entry(DeleteWhitelistEntryRequest { tenant_id: s("acme"), app_id: v("crm") }));
    field!("ListWhitelistEntries", "tenant_id", a.list_whitelist_entries(ListWhitelistEntriesRequest { tenant_id: v("acme"), ..Default::default() }));
    field!("ListWhitelistEntries", "page_token", a.list_whitelist_entries(ListWhitelistEntriesRequest { tenant_id: s("acme"), page_token: v(""), ..Default::default() }));
    field!("GrantAppRight", "tenant_id", a.grant_app_right(app_right_req(&v("acme"), "crm", "/hr", Right::Read)));
    field!("GrantAppRight", "app_id", a.grant_app_right(app_right_req("acme", &v("crm"), "/hr", Right::Read)));
    field!("GrantAppRight", "resource", a.grant_app_right(app_right_req("acme", "crm", &v("/hr"), Right::Read)));
    field!("RevokeAppRight", "tenant_id", a.revoke_app_right(revoke_app_right_req(&v("acme"), "crm", "/hr", Right::Read)));
    field!("RevokeAppRight", "app_id", a.revoke_app_right(revoke_app_right_req("acme", &v("crm"), "/hr", Right::Read)));
    field!("RevokeAppRight", "resource", a.revoke_app_right(revoke_app_right_req("acme", "crm", &v("/hr"), Right::Read)));

    // External permission groups, their permissions and grants.
    let group = || {
        group_req(
            "acme",
            "g1",
            &[("user:carol", ManagerAccess::Read)],
            &["user:bob"],
            &["client:svc"],
        )
    };
    let groups: [(&'static str, CreatePermissionGroupRequest); 7] = [
        ("tenant_id", CreatePermissionGroupRequest { tenant_id: v("acme"), ..group() }),
        ("group_id", CreatePermissionGroupRequest { group_id: v("g1"), ..group() }),
        ("name", CreatePermissionGroupRequest { name: v("Group g1"), ..group() }),
        ("description", CreatePermissionGroupRequest { description: v("What g1 is for."), ..group() }),
        ("managers[0].principal", CreatePermissionGroupRequest { managers: vec![Manager { principal: v("user:carol"), access: ManagerAccess::Read.into() }], ..group() }),
        ("grantors[0]", CreatePermissionGroupRequest { grantors: vec![v("user:bob")], ..group() }),
        ("visible_to[0]", CreatePermissionGroupRequest { visible_to: vec![v("client:svc")], ..group() }),
    ];
    for (path, request) in groups {
        let result = a.create_permission_group(boot.r(request.clone())).await.map(|_| ());
        out.push(Outcome { rpc: "CreatePermissionGroup", path, names: path, result });
        let result = a.update_permission_group(boot.r(update_req(request))).await.map(|_| ());
        out.push(Outcome { rpc: "UpdatePermissionGroup", path, names: path, result });
    }
    field!("DeletePermissionGroup", "tenant_id", a.delete_permission_group(DeletePermissionGroupRequest { tenant_id: v("acme"), group_id: s("g1") }));
    field!("DeletePermissionGroup", "group_id", a.delete_permission_group(DeletePermissionGroupRequest { tenant_id: s("acme"), group_id: v("g1") }));
    field!("ListPermissionGroups", "tenant_id", a.list_permission_groups(ListPermissionGroupsRequest { tenant_id: v("acme"), ..Default::default() }));
    field!("ListPermissionGroups", "page_token", a.list_permission_groups(ListPermissionGroupsRequest { tenant_id: s("acme"), page_token: v(""), ..Default::default() }));
    let permission = || CreateExternalPermissionRequest {
        description: s("What p1 allows."),
        ..permission_req("acme", "g1", "p1", "P-1")
    };
    field!("CreateExternalPermission", "tenant_id", a.create_external_permission(CreateExternalPermissionRequest { tenant_id: v("acme"), ..permission() }));
    field!("CreateExternalPermission", "group_id", a.create_external_permission(CreateExternalPermissionRequest { group_id: v("g1"), ..permission() }));
    field!("CreateExternalPermission", "permission_id", a.create_external_permission(CreateExternalPermissionRequest { permission_id: v("p1"), ..permission() }));
    field!("CreateExternalPermission", "name", a.create_external_permission(CreateExternalPermissionRequest { name: v("Permission p1"), ..permission() }));
    field!("CreateExternalPermission", "description", a.create_external_permission(CreateExternalPermissionRequest { description: v("What p1 allows."), ..permission() }));
    field!("CreateExternalPermission", "external_id", a.create_external_permission(CreateExternalPermissionRequest { external_id: v("P-1"), ..permission() }));
    field!("DeleteExternalPermission", "tenant_id", a.delete_external_permission(DeleteExternalPermissionRequest { tenant_id: v("acme"), permission_id: s("p1") }));
    field!("DeleteExternalPermission", "permission_id", a.delete_external_permission(DeleteExternalPermissionRequest { tenant_id: s("acme"), permission_id: v("p1") }));
    field!("GrantExternalPermission", "tenant_id", a.grant_external_permission(grant_req(&v("acme"), "carol", "p1")));
    field!("GrantExternalPermission", "user_id", a.grant_external_permission(grant_req("acme", &v("carol"), "p1")));
    field!("GrantExternalPermission", "permission_id", a.grant_external_permission(grant_req("acme", "carol", &v("p1"))));
    field!("RevokeExternalPermission", "tenant_id", a.revoke_external_permission(revoke_grant_req(&v("acme"), "carol", "p1")));
    field!("RevokeExternalPermission", "user_id", a.revoke_external_permission(revoke_grant_req("acme", &v("carol"), "p1")));
    field!("RevokeExternalPermission", "permission_id", a.revoke_external_permission(revoke_grant_req("acme", "carol", &v("p1"))));

    // API clients and the audit log.
    field!("CreateClient", "client_id", a.create_client(client_req(&v("svc"), &["acme"], &[Capability::Query])));
    field!("CreateClient", "tenants[0]", a.create_client(client_req("svc", &[&v("acme")], &[Capability::Query])));
    field!("RevokeClient", "client_id", a.revoke_client(RevokeClientRequest { client_id: v("svc") }));
    field!("ListClients", "page_token", a.list_clients(ListClientsRequest { page_size: 0, page_token: v("") }));
    let audit = || ListAuditEventsRequest {
        tenant_id: s("acme"),
        target: s("user:carol"),
        actor: s("user:alice"),
        ..Default::default()
    };
    field!("ListAuditEvents", "tenant_id", a.list_audit_events(ListAuditEventsRequest { tenant_id: v("acme"), ..audit() }));
    field!("ListAuditEvents", "target", a.list_audit_events(ListAuditEventsRequest { target: v("user:carol"), ..audit() }));
    field!("ListAuditEvents", "actor", a.list_audit_events(ListAuditEventsRequest { actor: v("user:alice"), ..audit() }));
    field!("ListAuditEvents", "page_token", a.list_audit_events(ListAuditEventsRequest { page_token: v(""), ..audit() }));
    out
}

// ---------------------------------------------------------------------------------------------
// Every string and timestamp field of every request, from the descriptor set the server reflects.

/// The package of the services and their messages.
const PACKAGE: &str = "consentry.v1";

/// The fields of each RPC's request (of both services) that are `wanted`, by RPC name, as
/// paths: `a.b` into a message of the package, `a[0]` into a repeated field.
fn request_fields(wanted: fn(&FieldDescriptor) -> bool) -> BTreeSet<(String, String)> {
    let pool = DescriptorPool::decode(consentry::proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    fn walk(
        message: &MessageDescriptor,
        prefix: &str,
        wanted: fn(&FieldDescriptor) -> bool,
        out: &mut Vec<String>,
    ) {
        assert!(
            prefix.len() < 200,
            "the request messages nest too deep: {prefix}"
        );
        for field in message.fields() {
            let index = if field.is_list() { "[0]" } else { "" };
            let path = format!("{prefix}{}{index}", field.name());
            if wanted(&field) {
                out.push(path.clone());
            }
            if let Kind::Message(inner) = field.kind()
                && inner.package_name() == PACKAGE
            {
                walk(&inner, &format!("{path}."), wanted, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    for service in pool.services().filter(|s| s.package_name() == PACKAGE) {
        for method in service.methods() {
            let mut paths = Vec::new();
            walk(&method.input(), "", wanted, &mut paths);
            out.extend(paths.into_iter().map(|p| (method.name().to_owned(), p)));
        }
    }
    out
}

fn is_string(f: &FieldDescriptor) -> bool {
    f.kind() == Kind::String
}

fn is_timestamp(f: &FieldDescriptor) -> bool {
    matches!(f.kind(), Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp")
}

// ---------------------------------------------------------------------------------------------
// The tests.

async fn a_nul_in_any_request_string_is_invalid_argument_naming_the_field(db: &TestDb) {
    let server = TestServer::start(db).await;
    let (mut a, mut p) = (server.admin().await, server.permission().await);
    let events_before = audit_count(&mut a).await;
    let outcomes = call_with_each_field_hostile(&mut a, &mut p, |good| format!("{good}\0")).await;

    let mut cases = Cases::new("a NUL in each request string");
    let covered: BTreeSet<(String, String)> = outcomes
        .iter()
        .map(|o| (o.rpc.to_owned(), o.path.to_owned()))
        .collect();
    let every = request_fields(is_string);
    for (rpc, path) in every.difference(&covered) {
        cases.expect(
            format!("{rpc} {path}"),
            false,
            "is a string field no case sends",
        );
    }
    for (rpc, path) in covered.difference(&every) {
        cases.expect(
            format!("{rpc} {path}"),
            false,
            "is not a string field of the request",
        );
    }
    for o in outcomes {
        let prefix = format!("{}: ", o.names);
        cases.check(
            format!("{} {}", o.rpc, o.path),
            o.result,
            Code::InvalidArgument,
            &prefix,
        );
    }
    // Nothing was written.
    cases.expect(
        "the audit log",
        audit_count(&mut a).await == events_before,
        "a refused request wrote an audit event",
    );
    cases.finish();
    server.stop().await;
}

async fn a_long_or_unprintable_value_gets_a_short_message_naming_the_field(db: &TestDb) {
    let server = TestServer::start(db).await;
    let (mut a, mut p) = (server.admin().await, server.permission().await);
    // Each is refused in every field (beyond every limit, or with control characters).
    let refused: [(&str, Hostile); 5] = [
        ("the value and 10,000 x", |good| {
            format!("{good}{}", "x".repeat(10_000))
        }),
        ("10,000 x", |_| "x".repeat(10_000)),
        ("10,000 é", |_| "é".repeat(10_000)),
        ("10,000 control characters", |_| "\u{1}".repeat(10_000)),
        ("a path of 500 control characters", |_| {
            format!("/{}", "\u{1b}".repeat(500))
        }),
    ];
    let mut cases = Cases::new("long and unprintable values");
    for (what, bad) in refused {
        for o in call_with_each_field_hostile(&mut a, &mut p, bad).await {
            let name = format!("{} {} with {what}", o.rpc, o.path);
            let prefix = format!("{}: ", o.names);
            if let Some(message) = cases.check(&name, o.result, Code::InvalidArgument, &prefix) {
                cases.expect(
                    &name,
                    message.len() < SHORT,
                    format!("a message of {} bytes: {message:.400}", message.len()),
                );
            }
        }
    }
    // Within some fields' limits (a description, a path's 1024 bytes): whatever the answer, an
    // error says it briefly.
    for o in call_with_each_field_hostile(&mut a, &mut p, |_| "x".repeat(1_000)).await {
        if let Err(status) = o.result {
            cases.expect(
                format!("{} {} with 1,000 x", o.rpc, o.path),
                status.message().len() < SHORT,
                format!(
                    "{:?}, {} bytes: {:.400}",
                    status.code(),
                    status.message().len(),
                    status.message()
                ),
            );
        }
    }
    cases.finish();
    server.stop().await;
}

async fn timestamps_outside_years_1_to_9999_are_invalid_argument_naming_the_field(db: &TestDb) {
    let server = TestServer::start(db).await;
    let (mut a, mut p) = (server.admin().await, server.permission().await);
    let boot = Who::boot();
    let bob = boot.user("bob");
    put_tenant(&mut a, "acme").await;
    put_user(&mut a, &boot, "acme", "alice", &[Role::GeneralAdmin]).await;
    put_user(
        &mut a,
        &boot.user("alice"),
        "acme",
        "bob",
        &[Role::PermissionManager],
    )
    .await;
    put_user(&mut a, &boot, "acme", "carol", &[]).await;
    ok(
        a.create_permission_group(bob.r(group_req("acme", "g1", &[], &["user:bob"], &[])))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req("acme", "g1", "p1", "P-1")))
            .await,
    );
    let events_before = audit_count(&mut a).await;

    let mut cases = Cases::new("timestamps outside years 1 to 9999");
    let covered = BTreeSet::from([
        (
            "GrantExternalPermission".to_owned(),
            "expires_at".to_owned(),
        ),
        ("ListAuditEvents".to_owned(), "since".to_owned()),
    ]);
    cases.expect(
        "every Timestamp of a request is checked here",
        request_fields(is_timestamp) == covered,
        format!(
            "the requests' timestamps are {:?}",
            request_fields(is_timestamp)
        ),
    );
    let at = |seconds, nanos| Some(prost_types::Timestamp { seconds, nanos });
    for (seconds, nanos) in [
        (MIN_SECONDS - 1, 999_999_999),
        (MAX_SECONDS + 1, 0),
        (i64::MIN, 0),
        (i64::MAX, 0),
        (-1_000_000_000_000, 0),
        (0, -1),
        (0, 1_000_000_000),
        (0, i32::MIN),
        (MIN_SECONDS, -1),
    ] {
        let grant = GrantExternalPermissionRequest {
            expires_at: at(seconds, nanos),
            ..grant_req("acme", "carol", "p1")
        };
        cases.check(
            format!("GrantExternalPermission expiring at {seconds} s {nanos} ns"),
            a.grant_external_permission(bob.r(grant)).await,
            Code::InvalidArgument,
            "expires_at: ",
        );
        let since = ListAuditEventsRequest {
            since: at(seconds, nanos),
            ..Default::default()
        };
        cases.check(
            format!("ListAuditEvents since {seconds} s {nanos} ns"),
            a.list_audit_events(boot.r(since)).await,
            Code::InvalidArgument,
            "since: ",
        );
    }
    cases.expect(
        "the audit log",
        audit_count(&mut a).await == events_before,
        "a refused grant wrote an audit event",
    );

    // The first and the last instants are times like any other.
    let since_year_1 = ok(a
        .list_audit_events(boot.r(ListAuditEventsRequest {
            since: at(MIN_SECONDS, 0),
            page_size: 500,
            ..Default::default()
        }))
        .await);
    cases.expect(
        "ListAuditEvents since year 1",
        since_year_1.events.len() == events_before,
        format!("{} events of {events_before}", since_year_1.events.len()),
    );
    let since_year_9999 = ok(a
        .list_audit_events(boot.r(ListAuditEventsRequest {
            since: at(MAX_SECONDS, 999_999_999),
            ..Default::default()
        }))
        .await);
    cases.expect(
        "ListAuditEvents since the end of year 9999",
        since_year_9999.events.is_empty(),
        format!("{:?}", since_year_9999.events),
    );
    ok(
        a.grant_external_permission(bob.r(GrantExternalPermissionRequest {
            expires_at: at(MAX_SECONDS, 999_999_999),
            ..grant_req("acme", "carol", "p1")
        }))
        .await,
    );
    let grants = ok(p
        .list_external_permissions(bob.r(ListExternalPermissionsRequest {
            tenant_id: "acme".into(),
            user_id: "carol".into(),
            consistency: Some(Consistency {
                requirement: Some(Requirement::FullyConsistent(true)),
            }),
            ..Default::default()
        }))
        .await);
    let expires: Vec<_> = grants.permissions.iter().map(|g| g.expires_at).collect();
    // Kept to the microsecond, as every time is.
    cases.expect(
        "a grant expiring at the end of year 9999",
        expires == [at(MAX_SECONDS, 999_999_000)],
        format!("expires at {expires:?}"),
    );
    cases.finish();
    server.stop().await;
}

/// How many audit events there are.
async fn audit_count(a: &mut Admin) -> usize {
    let mut count = 0;
    let mut token = String::new();
    loop {
        let page = ok(a
            .list_audit_events(Who::boot().r(ListAuditEventsRequest {
                page_size: 500,
                page_token: token,
                ..Default::default()
            }))
            .await);
        count += page.events.len();
        if page.next_page_token.is_empty() {
            return count;
        }
        token = page.next_page_token;
    }
}
