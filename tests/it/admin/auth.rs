//! Callers (docs/rules.md §5) on every RPC of the service (enumerated from its descriptor): a key
//! is required, then the admin capability, assert_user to name a user, and the client's tenants.
//! Each test checks every RPC and reports every one that does not refuse as it should.

use std::collections::{BTreeMap, BTreeSet};

use consentry::proto::*;
use tonic::{Code, Status};

use super::*;
use crate::support::calls::{Cases, Who, ok};
use crate::support::db::{TestDb, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::{BOOTSTRAP_KEY, TestServer};

postgres_tests!(
    a_tenant_bound_client_naming_another_tenant_is_denied,
    a_client_without_the_admin_capability_is_denied_on_every_rpc,
    naming_a_user_without_assert_user_is_denied_on_every_rpc,
    callers_without_a_valid_key_are_unauthenticated_on_every_rpc,
);

/// The RPCs that name a tenant in their request (the rest are global).
const TENANT_SCOPED: [&str; 27] = [
    "PutTenant",
    "PutUser",
    "DeleteUser",
    "GrantUserRight",
    "RevokeUserRight",
    "ApproveConsent",
    "RevokeConsent",
    "PutWhitelistEntry",
    "DeleteWhitelistEntry",
    "CreatePermissionGroup",
    "UpdatePermissionGroup",
    "DeletePermissionGroup",
    "CreateExternalPermission",
    "DeleteExternalPermission",
    "GrantExternalPermission",
    "RevokeExternalPermission",
    "ListAuditEvents",
    "ListUsers",
    "ListConsents",
    "ListWhitelistEntries",
    "ListPermissionGroups",
    "ListUserRights",
    "GrantAppRight",
    "RevokeAppRight",
    "PutApiUser",
    "DeleteApiUser",
    "ListApiUsers",
];

/// Calls every AdminService RPC once as `who` with a well-formed request naming `tenant`
/// wherever a request names one; returns each outcome by RPC name. Fails if the service has an
/// RPC this does not call.
async fn call_every_rpc(
    a: &mut Admin,
    who: &Who,
    tenant: &str,
) -> BTreeMap<&'static str, Result<(), Status>> {
    let t = || tenant.to_owned();
    let s = |v: &str| v.to_owned();
    let mut out = BTreeMap::new();
    macro_rules! call {
        ($name:literal, $method:ident, $message:expr) => {
            let result = a.$method(who.r($message)).await.map(|_| ());
            assert!(
                out.insert($name, result).is_none(),
                "{} called twice",
                $name
            );
        };
    }
    call!(
        "PutTenant",
        put_tenant,
        PutTenantRequest {
            tenant_id: t(),
            environment: s("production"),
            whitelisting_enabled: false,
        }
    );
    call!("ListTenants", list_tenants, ListTenantsRequest::default());
    call!(
        "PutUser",
        put_user,
        PutUserRequest {
            tenant_id: t(),
            user_id: s("zed"),
            roles: vec![],
        }
    );
    call!(
        "DeleteUser",
        delete_user,
        DeleteUserRequest {
            tenant_id: t(),
            user_id: s("zed"),
        }
    );
    call!(
        "GrantUserRight",
        grant_user_right,
        GrantUserRightRequest {
            tenant_id: t(),
            user_id: s("carol"),
            resource: s("/hr"),
            right: Right::Read.into(),
        }
    );
    call!(
        "RevokeUserRight",
        revoke_user_right,
        RevokeUserRightRequest {
            tenant_id: t(),
            user_id: s("carol"),
            resource: s("/hr"),
            right: Right::Read.into(),
        }
    );
    call!(
        "RegisterApp",
        register_app,
        RegisterAppRequest {
            app_id: s("probe"),
            name: s("Probe"),
            kind: AppKind::Standard.into(),
            manifest: Some(Manifest::default()),
        }
    );
    call!(
        "UpdateAppManifest",
        update_app_manifest,
        UpdateAppManifestRequest {
            app_id: s("probe"),
            manifest: Some(manifest(&["x"], &[])),
        }
    );
    call!(
        "UnregisterApp",
        unregister_app,
        UnregisterAppRequest { app_id: s("probe") }
    );
    call!(
        "ApproveConsent",
        approve_consent,
        approve_req(tenant, "crm", 1, vec![])
    );
    call!(
        "RevokeConsent",
        revoke_consent,
        RevokeConsentRequest {
            tenant_id: t(),
            app_id: s("crm"),
        }
    );
    call!(
        "PutWhitelistEntry",
        put_whitelist_entry,
        PutWhitelistEntryRequest {
            tenant_id: t(),
            app_id: s("crm"),
            allowed_scopes: vec![],
            content_access: 0,
        }
    );
    call!(
        "DeleteWhitelistEntry",
        delete_whitelist_entry,
        DeleteWhitelistEntryRequest {
            tenant_id: t(),
            app_id: s("crm"),
        }
    );
    call!(
        "CreatePermissionGroup",
        create_permission_group,
        group_req(tenant, "probe", &[], &[], &[])
    );
    call!(
        "UpdatePermissionGroup",
        update_permission_group,
        update_req(group_req(tenant, "g1", &[], &[], &[]))
    );
    call!(
        "DeletePermissionGroup",
        delete_permission_group,
        DeletePermissionGroupRequest {
            tenant_id: t(),
            group_id: s("g1"),
        }
    );
    call!(
        "CreateExternalPermission",
        create_external_permission,
        permission_req(tenant, "g1", "probe", "PROBE")
    );
    call!(
        "DeleteExternalPermission",
        delete_external_permission,
        DeleteExternalPermissionRequest {
            tenant_id: t(),
            permission_id: s("p1"),
        }
    );
    call!(
        "GrantExternalPermission",
        grant_external_permission,
        GrantExternalPermissionRequest {
            tenant_id: t(),
            user_id: s("carol"),
            permission_id: s("p1"),
            expires_at: None,
        }
    );
    call!(
        "RevokeExternalPermission",
        revoke_external_permission,
        RevokeExternalPermissionRequest {
            tenant_id: t(),
            user_id: s("carol"),
            permission_id: s("p1"),
        }
    );
    call!(
        "CreateClient",
        create_client,
        CreateClientRequest {
            client_id: s("probe"),
            tenants: vec![t()],
            capabilities: caps(&[Capability::Query]),
        }
    );
    call!(
        "RevokeClient",
        revoke_client,
        RevokeClientRequest {
            client_id: s("svc")
        }
    );
    call!(
        "ListAuditEvents",
        list_audit_events,
        ListAuditEventsRequest {
            tenant_id: t(),
            ..Default::default()
        }
    );
    call!("ListApps", list_apps, ListAppsRequest::default());
    call!("ListClients", list_clients, ListClientsRequest::default());
    call!(
        "ListUsers",
        list_users,
        ListUsersRequest {
            tenant_id: t(),
            ..Default::default()
        }
    );
    call!(
        "ListConsents",
        list_consents,
        ListConsentsRequest {
            tenant_id: t(),
            ..Default::default()
        }
    );
    call!(
        "ListWhitelistEntries",
        list_whitelist_entries,
        ListWhitelistEntriesRequest {
            tenant_id: t(),
            ..Default::default()
        }
    );
    call!(
        "ListPermissionGroups",
        list_permission_groups,
        ListPermissionGroupsRequest {
            tenant_id: t(),
            ..Default::default()
        }
    );
    call!(
        "ListUserRights",
        list_user_rights,
        ListUserRightsRequest {
            tenant_id: t(),
            user_id: s("carol"),
            ..Default::default()
        }
    );
    call!(
        "GrantAppRight",
        grant_app_right,
        app_right_req(tenant, "crm", "/hr", Right::Read)
    );
    call!(
        "RevokeAppRight",
        revoke_app_right,
        revoke_app_right_req(tenant, "crm", "/hr", Right::Read)
    );
    call!(
        "PutApiUser",
        put_api_user,
        api_user_req(tenant, "carol", &["documents:read"], false)
    );
    call!(
        "DeleteApiUser",
        delete_api_user,
        delete_api_user_req(tenant, "carol")
    );
    call!(
        "ListApiUsers",
        list_api_users,
        ListApiUsersRequest {
            tenant_id: t(),
            ..Default::default()
        }
    );
    let called: BTreeSet<String> = out.keys().map(|k| (*k).to_owned()).collect();
    assert_eq!(
        called,
        admin_methods(),
        "call_every_rpc must call every AdminService RPC"
    );
    out
}

/// Records, for every outcome (as the case `<caller>: <RPC>`), whether it failed with `code` and
/// a message mentioning `needle`.
#[track_caller]
fn all_fail(
    cases: &mut Cases,
    caller: &str,
    outcomes: BTreeMap<&'static str, Result<(), Status>>,
    code: Code,
    needle: &str,
) {
    for (rpc, outcome) in outcomes {
        cases.check(format!("{caller}: {rpc}"), outcome, code, needle);
    }
}

/// Records whether the audit log still holds `before` events: nothing was written.
async fn nothing_written(cases: &mut Cases, a: &mut Admin, before: usize) {
    let after = all_events(a).await.len();
    cases.expect(
        "nothing was written",
        after == before,
        format!("{before} audit events before, {after} after"),
    );
}

// ---------------------------------------------------------------------------------------------
// The tests.

async fn a_tenant_bound_client_naming_another_tenant_is_denied(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    put_tenant(&mut a, "beta").await;
    put_user(&mut a, &boot, "beta", "carol", &[Role::GeneralAdmin]).await;
    let local = Who::key(&new_client(&mut a, &boot, "local", &[ACME], &ALL_CAPS).await);
    let events_before = all_events(&mut a).await.len();
    let mut cases = Cases::new("a tenant-bound client naming another tenant");
    // Another tenant that exists and one that does not look the same: existence does not leak.
    for tenant in ["beta", "ghost"] {
        let outcomes = call_every_rpc(&mut a, &local.user("carol"), tenant).await;
        let scoped: BTreeMap<&'static str, Result<(), Status>> = outcomes
            .into_iter()
            .filter(|(rpc, _)| TENANT_SCOPED.contains(rpc))
            .collect();
        assert_eq!(scoped.len(), TENANT_SCOPED.len());
        all_fail(&mut cases, tenant, scoped, DENIED, tenant);
    }
    nothing_written(&mut cases, &mut a, events_before).await;
    cases.finish();
    // Within its tenant the same client is served.
    ok(a.list_users(local.r(ListUsersRequest {
        tenant_id: ACME.into(),
        ..Default::default()
    }))
    .await);
    server.stop().await;
}

async fn a_client_without_the_admin_capability_is_denied_on_every_rpc(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let querier = Who::key(
        &new_client(
            &mut a,
            &boot,
            "querier",
            &["*"],
            &[
                Capability::Query,
                Capability::AppManager,
                Capability::AssertUser,
            ],
        )
        .await,
    );
    let events_before = all_events(&mut a).await.len();
    let mut cases = Cases::new("a client without the admin capability");
    all_fail(
        &mut cases,
        "querier",
        call_every_rpc(&mut a, &querier, ACME).await,
        DENIED,
        "admin",
    );
    all_fail(
        &mut cases,
        "querier as alice",
        call_every_rpc(&mut a, &querier.user("alice"), ACME).await,
        DENIED,
        "admin",
    );
    nothing_written(&mut cases, &mut a, events_before).await;
    cases.finish();
    server.stop().await;
}

async fn naming_a_user_without_assert_user_is_denied_on_every_rpc(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let no_assert = Who::key(
        &new_client(
            &mut a,
            &boot,
            "no-assert",
            &["*"],
            &[Capability::Query, Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let events_before = all_events(&mut a).await.len();
    let mut cases = Cases::new("naming a user without assert_user");
    all_fail(
        &mut cases,
        "no-assert as alice",
        call_every_rpc(&mut a, &no_assert.user("alice"), ACME).await,
        DENIED,
        "assert_user",
    );
    nothing_written(&mut cases, &mut a, events_before).await;
    cases.finish();
    // Without the header the same client is served; with assert_user the header is honoured.
    ok(a.list_tenants(no_assert.r(ListTenantsRequest::default()))
        .await);
    ok(
        a.list_tenants(boot.user("alice").r(ListTenantsRequest::default()))
            .await,
    );
    server.stop().await;
}

async fn callers_without_a_valid_key_are_unauthenticated_on_every_rpc(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let events_before = all_events(&mut a).await.len();
    let unauthenticated = [
        Who::nobody(),
        Who::header("Basic dXNlcjpwYXNz"),
        Who::header("Bearer"),
        Who::header(BOOTSTRAP_KEY),
        Who::header(&format!("Token {BOOTSTRAP_KEY}")),
        Who::key("csk_not-a-key-anybody-was-given"),
        Who::key(&format!("{BOOTSTRAP_KEY}x")),
        Who::nobody().user("alice"),
    ];
    let mut cases = Cases::new("callers without a valid key");
    for who in &unauthenticated {
        let outcomes = call_every_rpc(&mut a, who, ACME).await;
        all_fail(
            &mut cases,
            &format!("{who:?}"),
            outcomes,
            Code::Unauthenticated,
            "",
        );
    }
    nothing_written(&mut cases, &mut a, events_before).await;

    // A revoked key stops working on this server at once: the very next call is refused.
    let doomed_key = new_client(&mut a, &boot, "doomed", &["*"], &ALL_CAPS).await;
    let doomed = Who::key(&doomed_key);
    ok(a.list_tenants(doomed.r(ListTenantsRequest::default()))
        .await);
    ok(a.list_users(doomed.user("alice").r(ListUsersRequest {
        tenant_id: ACME.into(),
        ..Default::default()
    }))
    .await);
    ok(a.revoke_client(boot.r(RevokeClientRequest {
        client_id: "doomed".into(),
    }))
    .await);
    cases.check(
        "the first call after the revocation",
        a.list_tenants(doomed.r(ListTenantsRequest::default()))
            .await,
        Code::Unauthenticated,
        "",
    );
    all_fail(
        &mut cases,
        "revoked",
        call_every_rpc(&mut a, &doomed, ACME).await,
        Code::Unauthenticated,
        "",
    );
    cases.finish();
    server.stop().await;
}
