//! The status of each kind of failed write (NOT_FOUND, ALREADY_EXISTS, ABORTED,
//! FAILED_PRECONDITION), as tables that report every case that does not hold, and the order in
//! which a request's checks run.

use consentry::proto::*;
use tonic::Code;

use super::*;
use crate::support::calls::{Cases, Who, fails, ok};
use crate::support::db::{TestDb, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;

postgres_tests!(
    naming_something_missing_is_not_found,
    creating_an_existing_id_is_already_exists,
    approving_a_stale_manifest_revision_is_aborted,
    changing_a_tenants_environment_is_a_failed_precondition,
    checks_run_in_the_documented_order,
);

async fn naming_something_missing_is_not_found(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &["user:bob"], &[])))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    new_client(&mut a, &boot, "old", &[ACME], &[Capability::Query]).await;
    ok(a.revoke_client(boot.r(RevokeClientRequest {
        client_id: "old".into(),
    }))
    .await);
    let before = all_events(&mut a).await.len();

    const NF: Code = Code::NotFound;
    let mut cases = Cases::new("naming something missing");
    cases.check(
        "PutUser in a missing tenant",
        a.put_user(boot.r(user_req("ghost", "x", &[]))).await,
        NF,
        "ghost",
    );
    cases.check(
        "DeleteUser of a missing user",
        a.delete_user(boot.r(DeleteUserRequest {
            tenant_id: ACME.into(),
            user_id: "nobody".into(),
        }))
        .await,
        NF,
        "nobody",
    );
    cases.check(
        "GrantUserRight to a missing user",
        a.grant_user_right(boot.r(right_req(ACME, "nobody", "/hr", Right::Read)))
            .await,
        NF,
        "nobody",
    );
    cases.check(
        "GrantUserRight in a missing tenant",
        a.grant_user_right(boot.r(right_req("ghost", "carol", "/hr", Right::Read)))
            .await,
        NF,
        "ghost",
    );
    let revoke_right = |right: Right| RevokeUserRightRequest {
        tenant_id: ACME.into(),
        user_id: "carol".into(),
        resource: "/hr".into(),
        right: right.into(),
    };
    cases.check(
        "RevokeUserRight of a right never held",
        a.revoke_user_right(boot.r(revoke_right(Right::Read))).await,
        NF,
        "/hr",
    );
    ok(
        a.grant_user_right(boot.r(right_req(ACME, "carol", "/hr", Right::Read)))
            .await,
    );
    cases.check(
        "RevokeUserRight of another level than the one held",
        a.revoke_user_right(boot.r(revoke_right(Right::Write)))
            .await,
        NF,
        "/hr",
    );
    let before = before + 1;
    cases.check(
        "UpdateAppManifest of a missing app",
        a.update_app_manifest(boot.r(UpdateAppManifestRequest {
            app_id: "ghost-app".into(),
            manifest: Some(Manifest::default()),
        }))
        .await,
        NF,
        "ghost-app",
    );
    cases.check(
        "UnregisterApp of a missing app",
        a.unregister_app(boot.r(UnregisterAppRequest {
            app_id: "ghost-app".into(),
        }))
        .await,
        NF,
        "ghost-app",
    );
    cases.check(
        "ApproveConsent of a missing app",
        a.approve_consent(alice.r(approve_req(ACME, "ghost-app", 1, vec![])))
            .await,
        NF,
        "ghost-app",
    );
    cases.check(
        "ApproveConsent in a missing tenant",
        a.approve_consent(alice.r(approve_req("ghost", "crm", 1, vec![])))
            .await,
        NF,
        "ghost",
    );
    let revoke_consent = |app: &str| RevokeConsentRequest {
        tenant_id: ACME.into(),
        app_id: app.into(),
    };
    cases.check(
        "RevokeConsent never given",
        a.revoke_consent(alice.r(revoke_consent("crm"))).await,
        NF,
        "crm",
    );
    cases.check(
        "RevokeConsent of a missing app",
        a.revoke_consent(alice.r(revoke_consent("ghost-app"))).await,
        NF,
        "ghost-app",
    );
    cases.check(
        "PutWhitelistEntry of a missing app",
        a.put_whitelist_entry(alice.r(whitelist_req(ACME, "ghost-app", &[])))
            .await,
        NF,
        "ghost-app",
    );
    cases.check(
        "DeleteWhitelistEntry never put",
        a.delete_whitelist_entry(alice.r(DeleteWhitelistEntryRequest {
            tenant_id: ACME.into(),
            app_id: "crm".into(),
        }))
        .await,
        NF,
        "crm",
    );
    cases.check(
        "CreatePermissionGroup in a missing tenant",
        a.create_permission_group(bob.r(group_req("ghost", "g9", &[], &[], &[])))
            .await,
        NF,
        "ghost",
    );
    cases.check(
        "UpdatePermissionGroup of a missing group",
        a.update_permission_group(bob.r(update_req(group_req(ACME, "ghost-group", &[], &[], &[]))))
            .await,
        NF,
        "ghost-group",
    );
    cases.check(
        "DeletePermissionGroup of a missing group",
        a.delete_permission_group(bob.r(DeletePermissionGroupRequest {
            tenant_id: ACME.into(),
            group_id: "ghost-group".into(),
        }))
        .await,
        NF,
        "ghost-group",
    );
    cases.check(
        "CreateExternalPermission in a missing group",
        a.create_external_permission(bob.r(permission_req(ACME, "ghost-group", "p9", "P-9")))
            .await,
        NF,
        "ghost-group",
    );
    cases.check(
        "DeleteExternalPermission of a missing permission",
        a.delete_external_permission(bob.r(DeleteExternalPermissionRequest {
            tenant_id: ACME.into(),
            permission_id: "ghost-perm".into(),
        }))
        .await,
        NF,
        "ghost-perm",
    );
    cases.check(
        "GrantExternalPermission of a missing permission",
        a.grant_external_permission(bob.r(grant_req(ACME, "carol", "ghost-perm")))
            .await,
        NF,
        "ghost-perm",
    );
    cases.check(
        "GrantExternalPermission to a missing user",
        a.grant_external_permission(bob.r(grant_req(ACME, "nobody", "p1")))
            .await,
        NF,
        "nobody",
    );
    cases.check(
        "RevokeExternalPermission never granted",
        a.revoke_external_permission(bob.r(revoke_grant_req(ACME, "carol", "p1")))
            .await,
        NF,
        "p1",
    );
    cases.check(
        "RevokeClient of a missing client",
        a.revoke_client(boot.r(RevokeClientRequest {
            client_id: "ghost-client".into(),
        }))
        .await,
        NF,
        "ghost-client",
    );
    cases.check(
        "RevokeClient of a revoked client",
        a.revoke_client(boot.r(RevokeClientRequest {
            client_id: "old".into(),
        }))
        .await,
        NF,
        "old",
    );

    // Listings of something missing.
    cases.check(
        "ListUsers of a missing tenant",
        a.list_users(boot.r(ListUsersRequest {
            tenant_id: "ghost".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "ghost",
    );
    cases.check(
        "ListConsents of a missing tenant",
        a.list_consents(boot.r(ListConsentsRequest {
            tenant_id: "ghost".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "ghost",
    );
    cases.check(
        "ListWhitelistEntries of a missing tenant",
        a.list_whitelist_entries(boot.r(ListWhitelistEntriesRequest {
            tenant_id: "ghost".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "ghost",
    );
    cases.check(
        "ListPermissionGroups of a missing tenant",
        a.list_permission_groups(bob.r(ListPermissionGroupsRequest {
            tenant_id: "ghost".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "ghost",
    );
    cases.check(
        "ListUserRights of a missing user",
        a.list_user_rights(boot.r(ListUserRightsRequest {
            tenant_id: ACME.into(),
            user_id: "nobody".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "nobody",
    );
    cases.check(
        "ListUserRights in a missing tenant",
        a.list_user_rights(boot.r(ListUserRightsRequest {
            tenant_id: "ghost".into(),
            user_id: "carol".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "ghost",
    );
    let after = all_events(&mut a).await.len();
    cases.expect(
        "a NOT_FOUND write leaves no audit event",
        after == before,
        format!("{before} audit events before, {after} after"),
    );
    cases.finish();
    server.stop().await;
}

async fn creating_an_existing_id_is_already_exists(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let bob = boot.user("bob");
    acme(&mut a).await;
    const AE: Code = Code::AlreadyExists;
    let mut cases = Cases::new("creating an existing id");
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    cases.check(
        "RegisterApp of a registered app",
        a.register_app(boot.r(app_req("crm", AppKind::Custom, manifest(&["x"], &[]))))
            .await,
        AE,
        "crm",
    );
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
    );
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g2", &[], &[], &[])))
            .await,
    );
    cases.check(
        "CreatePermissionGroup of an existing group",
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
        AE,
        "g1",
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "INV-1")))
            .await,
    );
    cases.check(
        "CreateExternalPermission of an existing permission",
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "INV-2")))
            .await,
        AE,
        "p1",
    );
    cases.check(
        "CreateExternalPermission of an existing permission in another group",
        a.create_external_permission(bob.r(permission_req(ACME, "g2", "p1", "INV-9")))
            .await,
        AE,
        "p1",
    );
    // external_id is unique in its group, not across groups.
    cases.check(
        "CreateExternalPermission with an external id taken in its group",
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p2", "INV-1")))
            .await,
        AE,
        "INV-1",
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g2", "p3", "INV-1")))
            .await,
    );
    new_client(&mut a, &boot, "svc", &[ACME], &[Capability::Query]).await;
    cases.check(
        "CreateClient of an existing client",
        a.create_client(boot.r(client_req("svc", &["*"], &[Capability::Admin])))
            .await,
        AE,
        "svc",
    );
    cases.check(
        "CreateClient of the bootstrap client",
        a.create_client(boot.r(client_req("bootstrap", &[ACME], &[Capability::Query])))
            .await,
        AE,
        "bootstrap",
    );
    ok(a.revoke_client(boot.r(RevokeClientRequest {
        client_id: "svc".into(),
    }))
    .await);
    cases.check(
        "CreateClient of a revoked client",
        a.create_client(boot.r(client_req("svc", &[ACME], &[Capability::Query])))
            .await,
        AE,
        "svc",
    );
    // Groups of another tenant are another namespace.
    put_tenant(&mut a, "beta").await;
    put_user(&mut a, &boot, "beta", "bob", &[Role::GeneralAdmin]).await;
    ok(
        a.create_permission_group(bob.r(group_req("beta", "g1", &[], &[], &[])))
            .await,
    );
    cases.finish();
    server.stop().await;
}

async fn approving_a_stale_manifest_revision_is_aborted(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let alice = Who::boot().user("alice");
    acme(&mut a).await;
    let m1 = manifest(&["documents:read"], &[]);
    assert_eq!(
        register(&mut a, "crm", AppKind::Standard, m1.clone()).await,
        1
    );
    let m2 = manifest(&["documents:read", "documents:write"], &[]);
    let update = |m: &Manifest| UpdateAppManifestRequest {
        app_id: "crm".into(),
        manifest: Some(m.clone()),
    };
    let reply = ok(a.update_app_manifest(Who::boot().r(update(&m2))).await);
    assert_eq!(reply.manifest_revision, 2);
    let written = reply.written_at;
    // An identical manifest changes nothing: no new revision, no write.
    let same = ok(a.update_app_manifest(Who::boot().r(update(&m2))).await);
    assert_eq!(same.manifest_revision, 2);
    assert_eq!(same.written_at, written);
    let events = all_events(&mut a).await.len();

    let message = fails(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 1, vec![])))
            .await,
        Code::Aborted,
        "crm",
    );
    assert!(
        message.contains('2'),
        "the message names the current revision: {message}"
    );
    fails(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 3, vec![])))
            .await,
        Code::Aborted,
        "crm",
    );
    assert_eq!(
        all_events(&mut a).await.len(),
        events,
        "an aborted approval writes nothing"
    );
    let consent = ok(a
        .approve_consent(alice.r(approve_req(ACME, "crm", 2, vec![])))
        .await)
    .consent
    .expect("the consent");
    assert_eq!(consent.approved_manifest_revision, 2);
    assert_eq!(
        consent.approved_manifest.map(|m| m.scopes),
        Some(m2.scopes.clone())
    );
    // A change after the approver looked aborts their approval of the older revision.
    let m3 = Manifest {
        webhooks: true,
        ..m2
    };
    assert_eq!(
        ok(a.update_app_manifest(Who::boot().r(update(&m3))).await).manifest_revision,
        3
    );
    fails(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 2, vec![])))
            .await,
        Code::Aborted,
        "3",
    );
    ok(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 3, vec![])))
            .await,
    );
    server.stop().await;
}

async fn changing_a_tenants_environment_is_a_failed_precondition(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let events = all_events(&mut a).await.len();
    const FP: Code = Code::FailedPrecondition;
    let mut cases = Cases::new("changing a tenant's environment");
    cases.check(
        "changing the environment",
        a.put_tenant(boot.r(tenant_req(ACME, "stage", false))).await,
        FP,
        "production",
    );
    cases.check(
        "changing the environment as an administrator",
        a.put_tenant(boot.user("alice").r(tenant_req(ACME, "stage", false)))
            .await,
        FP,
        "production",
    );
    cases.check(
        "changing the environment and the whitelisting switch",
        a.put_tenant(boot.user("alice").r(tenant_req(ACME, "stage", true)))
            .await,
        FP,
        "production",
    );
    let after = all_events(&mut a).await.len();
    cases.expect(
        "a refused change leaves no audit event",
        after == events,
        format!("{events} audit events before, {after} after"),
    );
    cases.finish();
    let tenants = ok(a.list_tenants(boot.r(ListTenantsRequest::default())).await).tenants;
    assert_eq!(
        tenants,
        vec![Tenant {
            tenant_id: ACME.into(),
            environment: "production".into(),
            whitelisting_enabled: false
        }]
    );
    // Each environment is its own tenant; naming the same environment again is fine.
    let created = ok(a
        .put_tenant(boot.r(tenant_req("acme-stage", "stage", false)))
        .await);
    assert!(created.created);
    let again = ok(a
        .put_tenant(boot.r(tenant_req(ACME, "production", false)))
        .await);
    assert!(!again.created);
    server.stop().await;
}

async fn checks_run_in_the_documented_order(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    ok(
        a.create_permission_group(boot.user("bob").r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
    );
    let bound = Who::key(
        &new_client(
            &mut a,
            &boot,
            "bound",
            &[ACME],
            &[Capability::Admin, Capability::Query],
        )
        .await,
    );
    let no_admin =
        Who::key(&new_client(&mut a, &boot, "reader", &["*"], &[Capability::Query]).await);
    let admin_only =
        Who::key(&new_client(&mut a, &boot, "plain", &["*"], &[Capability::Admin]).await);

    let mut cases = Cases::new("the order of the checks");
    // The key first, then the capability, then the tenant bounds, all before validation.
    cases.check(
        "an unknown key, before the capability",
        a.put_user(Who::key("csk_unknown").r(user_req("bad tenant", "bad user", &[])))
            .await,
        Code::Unauthenticated,
        "",
    );
    cases.check(
        "no admin capability, before the tenant bounds",
        a.put_user(no_admin.r(user_req("bad tenant", "bad user", &[])))
            .await,
        Code::PermissionDenied,
        "admin",
    );
    cases.check(
        "outside the tenant bounds, before validation",
        a.put_user(bound.r(user_req("beta", "bad user", &[]))).await,
        Code::PermissionDenied,
        "beta",
    );
    // Validation before existence.
    cases.check(
        "invalid, before existence",
        a.grant_user_right(boot.r(right_req("ghost", "carol", "/a/../b", Right::Read)))
            .await,
        Code::InvalidArgument,
        "resource",
    );
    // Existence before the rules.
    cases.check(
        "a missing group, before the rules",
        a.update_permission_group(boot.user("carol").r(update_req(group_req(
            ACME,
            "ghost",
            &[],
            &[],
            &[],
        ))))
        .await,
        Code::NotFound,
        "ghost",
    );
    cases.check(
        "a missing app, before the rules",
        a.unregister_app(admin_only.r(UnregisterAppRequest {
            app_id: "ghost".into(),
        }))
        .await,
        Code::NotFound,
        "ghost",
    );
    // The rules before conflicts.
    cases.check(
        "the group rules, before the conflict",
        a.create_permission_group(boot.user("carol").r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
        Code::PermissionDenied,
        "PERMISSION_MANAGER",
    );
    cases.check(
        "app_manager, before the conflict",
        a.register_app(admin_only.r(app_req("crm", AppKind::Standard, Manifest::default())))
            .await,
        Code::PermissionDenied,
        "app_manager",
    );
    cases.check(
        "the client bounds, before the conflict",
        a.create_client(bound.r(client_req("bound", &["*"], &[Capability::Query])))
            .await,
        Code::PermissionDenied,
        "tenants",
    );
    cases.check(
        "an administrator, before the revision",
        a.approve_consent(boot.user("carol").r(approve_req(ACME, "crm", 7, vec![])))
            .await,
        Code::PermissionDenied,
        "administrator",
    );
    cases.check(
        "an administrator, before the environment",
        a.put_tenant(boot.r(tenant_req(ACME, "stage", true))).await,
        Code::PermissionDenied,
        "administrator",
    );
    cases.finish();
    server.stop().await;
}
