//! The rules of docs/rules.md §6 for tenants, users and rights: tenant creation, the whitelisting
//! switch and revoking consent, roles, user rights (one test per row of the rule table).

use consentry::proto::*;

use super::*;
use crate::support::calls::{Who, fails, ok};
use crate::support::db::{TestDb, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;

postgres_tests!(
    rule_tenant_creation_needs_a_client_on_every_tenant,
    rule_whitelisting_and_revoking_consent_need_an_acting_tenant_administrator,
    rule_roles_need_an_acting_administrator_except_the_first_one,
    rule_user_rights_need_only_an_admin_client,
);

async fn rule_tenant_creation_needs_a_client_on_every_tenant(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let bound = Who::key(
        &new_client(
            &mut a,
            &boot,
            "bound",
            &[ACME, "beta"],
            &[
                Capability::Admin,
                Capability::AppManager,
                Capability::AssertUser,
            ],
        )
        .await,
    );
    let star = Who::key(&new_client(&mut a, &boot, "star", &["*"], &[Capability::Admin]).await);
    fails(
        a.put_tenant(bound.r(tenant_req(ACME, "production", false)))
            .await,
        DENIED,
        "tenant",
    );
    fails(
        a.put_tenant(
            bound
                .user("alice")
                .r(tenant_req("beta", "production", false)),
        )
        .await,
        DENIED,
        "tenant",
    );
    fails(
        a.put_tenant(bound.r(tenant_req("gamma", "production", false)))
            .await,
        DENIED,
        "gamma",
    );
    assert!(
        ok(a.list_tenants(boot.r(ListTenantsRequest::default())).await)
            .tenants
            .is_empty()
    );
    // Any admin client with `*` tenants creates tenants, with whitelisting on or off.
    assert!(
        ok(a.put_tenant(star.r(tenant_req(ACME, "production", false)))
            .await)
        .created
    );
    assert!(
        ok(a.put_tenant(star.r(tenant_req("beta", "stage", true)))
            .await)
        .created
    );
    // Once it exists, the bound client may name it (without changing anything).
    assert!(
        !ok(a
            .put_tenant(bound.r(tenant_req(ACME, "production", false)))
            .await)
        .created
    );
    server.stop().await;
}

async fn rule_whitelisting_and_revoking_consent_need_an_acting_tenant_administrator(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    acme(&mut a).await;
    put_user(&mut a, &alice, ACME, "dave", &[Role::UserAdmin]).await;
    put_tenant(&mut a, "beta").await;
    register(&mut a, "crm", AppKind::Standard, manifest(&["docs"], &[])).await;
    register(&mut a, "tool", AppKind::Custom, Manifest::default()).await;
    ok(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 1, vec![])))
            .await,
    );
    ok(
        a.approve_consent(alice.r(approve_req(ACME, "tool", 1, vec![])))
            .await,
    );
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
    let plain = Who::key(&new_client(&mut a, &boot, "plain", &[ACME], &[Capability::Admin]).await);
    // Not administrators: no acting user, a user without an admin role, an unknown user, and
    // an administrator of another tenant.
    let not_admins = [
        (boot.clone(), "x-consentry-user"),
        (boot.user("carol"), "carol"),
        (boot.user("bob"), "bob"),
        (boot.user("stranger"), "stranger"),
    ];

    // The whitelisting switch.
    for (who, needle) in &not_admins {
        fails(
            a.put_tenant(who.r(tenant_req(ACME, "production", true)))
                .await,
            DENIED,
            needle,
        );
    }
    fails(
        a.put_tenant(alice.r(tenant_req("beta", "production", true)))
            .await,
        DENIED,
        "alice",
    );
    // Naming the tenant without switching needs no administrator.
    ok(a.put_tenant(boot.r(tenant_req(ACME, "production", false)))
        .await);
    ok(a.put_tenant(alice.r(tenant_req(ACME, "production", true)))
        .await);
    ok(
        a.put_tenant(boot.user("dave").r(tenant_req(ACME, "production", false)))
            .await,
    );

    // Whitelist entries.
    for (who, needle) in &not_admins {
        fails(
            a.put_whitelist_entry(who.r(whitelist_req(ACME, "crm", &[])))
                .await,
            DENIED,
            needle,
        );
    }
    ok(
        a.put_whitelist_entry(alice.r(whitelist_req(ACME, "crm", &["docs"])))
            .await,
    );
    ok(
        a.put_whitelist_entry(boot.user("dave").r(whitelist_req(ACME, "tool", &[])))
            .await,
    );
    let delete = |app: &str| DeleteWhitelistEntryRequest {
        tenant_id: ACME.into(),
        app_id: app.into(),
    };
    for (who, needle) in &not_admins {
        fails(
            a.delete_whitelist_entry(who.r(delete("crm"))).await,
            DENIED,
            needle,
        );
    }
    ok(a.delete_whitelist_entry(alice.r(delete("crm"))).await);
    let entries = ok(a
        .list_whitelist_entries(boot.r(ListWhitelistEntriesRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .entries;
    assert_eq!(
        entries
            .iter()
            .map(|e| e.app_id.as_str())
            .collect::<Vec<_>>(),
        ["tool"]
    );

    // RevokeConsent: an administrator; app_manager only for a CUSTOM app.
    let revoke = |app: &str| RevokeConsentRequest {
        tenant_id: ACME.into(),
        app_id: app.into(),
    };
    for (who, needle) in &not_admins[1..] {
        fails(a.revoke_consent(who.r(revoke("crm"))).await, DENIED, needle);
    }
    // The bootstrap client has app_manager, which does not count for a STANDARD app.
    fails(
        a.revoke_consent(boot.r(revoke("crm"))).await,
        DENIED,
        "administrator",
    );
    fails(
        a.revoke_consent(mgr.r(revoke("crm"))).await,
        DENIED,
        "administrator",
    );
    fails(
        a.revoke_consent(plain.r(revoke("tool"))).await,
        DENIED,
        "administrator",
    );
    ok(a.revoke_consent(alice.r(revoke("crm"))).await);
    ok(a.revoke_consent(mgr.r(revoke("tool"))).await);
    let consents = ok(a
        .list_consents(boot.r(ListConsentsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .consents;
    assert!(
        consents.iter().all(|c| near_now(c.revoked_at.as_ref())),
        "{consents:?}"
    );
    server.stop().await;
}

async fn rule_roles_need_an_acting_administrator_except_the_first_one(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let t = "fresh";
    put_tenant(&mut a, t).await;
    let plain = Who::key(&new_client(&mut a, &boot, "plain", &[t], &[Capability::Admin]).await);
    let put = |user: &str, roles: &[Role]| user_req(t, user, roles);

    // A user without roles: any admin client.
    ok(a.put_user(plain.r(put("carol", &[]))).await);
    // Roles need an acting administrator; before the tenant has one, only an administrator
    // role may be given that way (the first administrator).
    fails(
        a.put_user(plain.r(put("bob", &[Role::PermissionManager])))
            .await,
        DENIED,
        "role",
    );
    fails(
        a.put_user(boot.user("carol").r(put("bob", &[Role::Delegate])))
            .await,
        DENIED,
        "carol",
    );
    ok(a.put_user(plain.r(put("alice", &[Role::UserAdmin]))).await);
    fails(
        a.put_user(plain.r(put("dave", &[Role::GeneralAdmin])))
            .await,
        DENIED,
        "role",
    );
    fails(
        a.put_user(boot.user("carol").r(put("dave", &[Role::GeneralAdmin])))
            .await,
        DENIED,
        "carol",
    );
    // Any administrator may give or take any role.
    let alice = boot.user("alice");
    ok(a.put_user(alice.r(put("dave", &[Role::GeneralAdmin])))
        .await);
    ok(a.put_user(alice.r(put("bob", &[Role::PermissionManager])))
        .await);
    // Taking a role away.
    fails(a.put_user(boot.r(put("bob", &[]))).await, DENIED, "role");
    fails(
        a.put_user(boot.user("carol").r(put("bob", &[]))).await,
        DENIED,
        "carol",
    );
    ok(
        a.put_user(boot.user("dave").r(put("bob", &[Role::Delegate])))
            .await,
    );
    // Putting a user again with the roles they hold changes no role.
    ok(a.put_user(plain.r(put("bob", &[Role::Delegate]))).await);
    ok(a.put_user(alice.r(put("bob", &[]))).await);
    // Deleting a user with roles needs an administrator; one without, any admin client.
    let delete = |user: &str| DeleteUserRequest {
        tenant_id: t.into(),
        user_id: user.into(),
    };
    fails(
        a.delete_user(plain.r(delete("dave"))).await,
        DENIED,
        "administrator",
    );
    fails(
        a.delete_user(boot.user("carol").r(delete("dave"))).await,
        DENIED,
        "carol",
    );
    ok(a.delete_user(alice.r(delete("dave"))).await);
    ok(a.delete_user(plain.r(delete("bob"))).await);
    // An administrator of another tenant is not one here.
    put_tenant(&mut a, "other").await;
    put_user(&mut a, &boot, "other", "olga", &[Role::GeneralAdmin]).await;
    fails(
        a.put_user(boot.user("olga").r(put("carol", &[Role::Delegate])))
            .await,
        DENIED,
        "olga",
    );

    let users = ok(a
        .list_users(boot.r(ListUsersRequest {
            tenant_id: t.into(),
            ..Default::default()
        }))
        .await)
    .users;
    let users: Vec<(String, Vec<i32>)> = users.into_iter().map(|u| (u.user_id, u.roles)).collect();
    assert_eq!(
        users,
        vec![
            ("alice".to_owned(), role_codes(&[Role::UserAdmin])),
            ("carol".to_owned(), vec![]),
        ]
    );
    server.stop().await;
}

async fn rule_user_rights_need_only_an_admin_client(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let plain = Who::key(&new_client(&mut a, &boot, "plain", &[ACME], &[Capability::Admin]).await);
    ok(
        a.grant_user_right(plain.r(right_req(ACME, "carol", "/hr", Right::Write)))
            .await,
    );
    ok(a.grant_user_right(
        boot.user("carol")
            .r(right_req(ACME, "alice", "/", Right::Read)),
    )
    .await);
    ok(a.revoke_user_right(plain.r(RevokeUserRightRequest {
        tenant_id: ACME.into(),
        user_id: "alice".into(),
        resource: "/".into(),
        right: Right::Read.into(),
    }))
    .await);
    let rights = ok(a
        .list_user_rights(plain.r(ListUserRightsRequest {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
            ..Default::default()
        }))
        .await)
    .rights;
    assert_eq!(
        rights,
        vec![UserRight {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
            resource: "/hr".into(),
            right: Right::Write.into()
        }]
    );
    server.stop().await;
}
