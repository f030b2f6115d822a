//! The rules of docs/rules.md §6 for applications: managing them needs app_manager on every tenant;
//! STANDARD apps are approved by tenant administrators; CUSTOM apps are first activated by app
//! managers and re-activated by administrators.

use consentry::proto::*;

use super::*;
use crate::support::calls::{Who, fails, ok};
use crate::support::db::{TestDb, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;

postgres_tests!(
    rule_app_management_needs_app_manager_on_every_tenant,
    rule_standard_apps_are_approved_by_tenant_administrators_only,
    rule_custom_apps_are_activated_by_app_managers_and_reactivated_by_administrators,
);

async fn rule_app_management_needs_app_manager_on_every_tenant(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let admin_star = Who::key(
        &new_client(
            &mut a,
            &boot,
            "admin-star",
            &["*"],
            &[Capability::Admin, Capability::AssertUser],
        )
        .await,
    );
    let mgr_bound = Who::key(
        &new_client(
            &mut a,
            &boot,
            "mgr-bound",
            &[ACME],
            &[Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let mgr_star = Who::key(
        &new_client(
            &mut a,
            &boot,
            "mgr-star",
            &["*"],
            &[Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let m = manifest(&["docs"], &[]);
    let update = || UpdateAppManifestRequest {
        app_id: "crm".into(),
        manifest: Some(manifest(&["docs", "more"], &[])),
    };
    let unregister = || UnregisterAppRequest {
        app_id: "crm".into(),
    };
    for (who, needle) in [
        (&admin_star, "app_manager"),
        (&admin_star.user("alice"), "app_manager"),
        (&mgr_bound, "tenants"),
    ] {
        fails(
            a.register_app(who.r(app_req("crm", AppKind::Standard, m.clone())))
                .await,
            DENIED,
            needle,
        );
    }
    ok(
        a.register_app(mgr_star.r(app_req("crm", AppKind::Standard, m.clone())))
            .await,
    );
    for (who, needle) in [(&admin_star, "app_manager"), (&mgr_bound, "tenants")] {
        fails(a.update_app_manifest(who.r(update())).await, DENIED, needle);
        fails(a.unregister_app(who.r(unregister())).await, DENIED, needle);
    }
    assert_eq!(
        ok(a.update_app_manifest(mgr_star.r(update())).await).manifest_revision,
        2
    );
    ok(a.unregister_app(mgr_star.r(unregister())).await);
    assert!(
        ok(a.list_apps(admin_star.r(ListAppsRequest::default())).await)
            .apps
            .is_empty()
    );
    server.stop().await;
}

async fn rule_standard_apps_are_approved_by_tenant_administrators_only(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    put_user(
        &mut a,
        &boot.user("alice"),
        ACME,
        "dave",
        &[Role::UserAdmin],
    )
    .await;
    put_tenant(&mut a, "beta").await;
    register(
        &mut a,
        "crm",
        AppKind::Standard,
        manifest(&["docs"], &[(ScopeLevel::Web, Right::Write)]),
    )
    .await;
    let mgr = Who::key(
        &new_client(
            &mut a,
            &boot,
            "mgr",
            &[ACME],
            &[Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let request = |tenant: &str| {
        approve_req(
            tenant,
            "crm",
            1,
            vec![resolved(ScopeLevel::Web, Right::Read, "/hr/team")],
        )
    };
    // The bootstrap client has app_manager; for a STANDARD app that does not count.
    for (who, needle) in [
        (boot.clone(), "STANDARD"),
        (mgr.clone(), "STANDARD"),
        (boot.user("carol"), "carol"),
        (boot.user("bob"), "bob"),
    ] {
        fails(
            a.approve_consent(who.r(request(ACME))).await,
            DENIED,
            needle,
        );
    }
    fails(
        a.approve_consent(boot.user("alice").r(request("beta")))
            .await,
        DENIED,
        "alice",
    );
    let consent = ok(a.approve_consent(boot.user("alice").r(request(ACME))).await)
        .consent
        .expect("the consent");
    assert_eq!(consent.approved_by, "user:alice");
    // Re-approval is another approval by an administrator (USER_ADMIN counts).
    let consent = ok(a.approve_consent(boot.user("dave").r(request(ACME))).await)
        .consent
        .expect("the consent");
    assert_eq!(consent.approved_by, "user:dave");
    let consents = ok(a
        .list_consents(boot.r(ListConsentsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .consents;
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].approved_by, "user:dave");
    server.stop().await;
}

async fn rule_custom_apps_are_activated_by_app_managers_and_reactivated_by_administrators(
    db: &TestDb,
) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    acme(&mut a).await;
    put_tenant(&mut a, "beta").await;
    register(&mut a, "tool", AppKind::Custom, manifest(&["docs"], &[])).await;
    let mgr = Who::key(
        &new_client(
            &mut a,
            &boot,
            "mgr",
            &[ACME, "beta"],
            &[Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let plain = Who::key(
        &new_client(
            &mut a,
            &boot,
            "plain",
            &[ACME],
            &[Capability::Admin, Capability::AssertUser],
        )
        .await,
    );
    let approve = |rev: i64| approve_req(ACME, "tool", rev, vec![]);

    // First activation: an app manager client, recorded as `client:<id>`; without app_manager
    // it takes an administrator.
    fails(
        a.approve_consent(plain.r(approve(1))).await,
        DENIED,
        "CUSTOM",
    );
    fails(
        a.approve_consent(plain.user("carol").r(approve(1))).await,
        DENIED,
        "carol",
    );
    let consent = ok(a.approve_consent(mgr.r(approve(1))).await)
        .consent
        .expect("the consent");
    assert_eq!(consent.approved_by, "client:mgr");
    // The first activation is per tenant: beta has never consented.
    let consent = ok(a
        .approve_consent(mgr.r(approve_req("beta", "tool", 1, vec![])))
        .await)
    .consent
    .expect("the consent");
    assert_eq!(consent.approved_by, "client:mgr");

    // Re-approval after an escalation needs an administrator.
    let update = UpdateAppManifestRequest {
        app_id: "tool".into(),
        manifest: Some(Manifest {
            webhooks: true,
            ..manifest(&["docs"], &[])
        }),
    };
    assert_eq!(
        ok(a.update_app_manifest(boot.r(update)).await).manifest_revision,
        2
    );
    fails(a.approve_consent(mgr.r(approve(2))).await, DENIED, "CUSTOM");
    let consent = ok(a.approve_consent(alice.r(approve(2))).await)
        .consent
        .expect("the consent");
    assert_eq!(consent.approved_by, "user:alice");

    // Reactivation after a revocation needs an administrator too.
    ok(a.revoke_consent(mgr.r(RevokeConsentRequest {
        tenant_id: ACME.into(),
        app_id: "tool".into(),
    }))
    .await);
    fails(a.approve_consent(mgr.r(approve(2))).await, DENIED, "CUSTOM");
    let consent = ok(a.approve_consent(alice.r(approve(2))).await)
        .consent
        .expect("the consent");
    assert_eq!(
        (consent.approved_by.as_str(), consent.revoked_at),
        ("user:alice", None)
    );
    server.stop().await;
}
