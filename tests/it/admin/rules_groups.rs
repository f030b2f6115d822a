//! The rules of docs/rules.md §6 for external permissions: groups are created by permission
//! managers and changed by READ_WRITE managers; grants are given and taken by grantors.

use consentry::proto::*;
use serde_json::Value;
use tonic::Code;

use super::*;
use crate::support::calls::{Who, fails, ok};
use crate::support::db::{TestDb, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;

postgres_tests!(
    rule_permission_groups_are_created_by_permission_managers,
    rule_groups_and_permissions_are_changed_by_read_write_managers,
    rule_external_permissions_are_granted_and_revoked_by_grantors,
);

async fn rule_permission_groups_are_created_by_permission_managers(db: &TestDb) {
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
    for (who, needle) in [
        (boot.clone(), "x-consentry-user"),
        (boot.user("carol"), "carol"),
        (boot.user("dave"), "dave"),
        (boot.user("stranger"), "stranger"),
    ] {
        fails(
            a.create_permission_group(who.r(group_req(ACME, "g1", &[], &[], &[])))
                .await,
            DENIED,
            needle,
        );
    }
    // PERMISSION_MANAGER, directly or through GENERAL_ADMIN; the creator becomes a READ_WRITE
    // manager (also when named as a READ manager).
    let group = ok(a
        .create_permission_group(boot.user("bob").r(group_req(
            ACME,
            "g1",
            &[
                ("user:bob", ManagerAccess::Read),
                ("user:carol", ManagerAccess::Read),
            ],
            &[],
            &[],
        )))
        .await)
    .group
    .expect("the group");
    assert_eq!(
        group.managers,
        vec![
            Manager {
                principal: "user:bob".into(),
                access: ManagerAccess::ReadWrite.into()
            },
            Manager {
                principal: "user:carol".into(),
                access: ManagerAccess::Read.into()
            },
        ]
    );
    let group = ok(a
        .create_permission_group(boot.user("alice").r(group_req(ACME, "g2", &[], &[], &[])))
        .await)
    .group
    .expect("the group");
    assert_eq!(
        group.managers,
        vec![Manager {
            principal: "user:alice".into(),
            access: ManagerAccess::ReadWrite.into()
        }]
    );
    let listed = ok(a
        .list_permission_groups(boot.user("bob").r(ListPermissionGroupsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .groups;
    assert_eq!(
        listed
            .iter()
            .map(|g| g.group_id.as_str())
            .collect::<Vec<_>>(),
        ["g1"]
    );
    server.stop().await;
}

async fn rule_groups_and_permissions_are_changed_by_read_write_managers(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let bob = boot.user("bob");
    acme(&mut a).await;
    let rw = Who::key(&new_client(&mut a, &boot, "rw", &[ACME], &[Capability::Admin]).await);
    let ro = Who::key(&new_client(&mut a, &boot, "ro", &[ACME], &[Capability::Admin]).await);
    let spec = group_req(
        ACME,
        "g1",
        &[
            ("user:carol", ManagerAccess::Read),
            ("client:rw", ManagerAccess::ReadWrite),
            ("client:ro", ManagerAccess::Read),
        ],
        &[],
        &[],
    );
    ok(a.create_permission_group(bob.r(spec.clone())).await);
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    // READ managers, non-managers (an administrator too) and clients that are not managers.
    let refused = [
        (boot.user("carol"), "user:carol"),
        (ro.clone(), "client:ro"),
        (boot.user("alice"), "user:alice"),
        (boot.clone(), "client:bootstrap"),
    ];
    let mut renamed = update_req(spec.clone());
    renamed.name = "Renamed".into();
    renamed.managers.push(Manager {
        principal: "user:bob".into(),
        access: ManagerAccess::ReadWrite.into(),
    });
    let delete_group = DeletePermissionGroupRequest {
        tenant_id: ACME.into(),
        group_id: "g1".into(),
    };
    let delete_permission = |p: &str| DeleteExternalPermissionRequest {
        tenant_id: ACME.into(),
        permission_id: p.into(),
    };
    for (who, needle) in &refused {
        fails(
            a.update_permission_group(who.r(renamed.clone())).await,
            DENIED,
            needle,
        );
        fails(
            a.delete_permission_group(who.r(delete_group.clone())).await,
            DENIED,
            needle,
        );
        fails(
            a.create_external_permission(who.r(permission_req(ACME, "g1", "p2", "P-2")))
                .await,
            DENIED,
            needle,
        );
        fails(
            a.delete_external_permission(who.r(delete_permission("p1")))
                .await,
            DENIED,
            needle,
        );
    }
    // A READ_WRITE manager: a user (the creator) or a client principal.
    ok(
        a.create_external_permission(rw.r(permission_req(ACME, "g1", "p2", "P-2")))
            .await,
    );
    ok(a.delete_external_permission(rw.r(delete_permission("p1")))
        .await);
    ok(a.update_permission_group(rw.r(renamed)).await);
    let groups = ok(a
        .list_permission_groups(rw.r(ListPermissionGroupsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .groups;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].name, "Renamed");
    assert_eq!(
        groups[0]
            .permissions
            .iter()
            .map(|p| p.permission_id.as_str())
            .collect::<Vec<_>>(),
        ["p2"]
    );
    ok(a.delete_permission_group(bob.r(delete_group)).await);
    server.stop().await;
}

async fn rule_external_permissions_are_granted_and_revoked_by_grantors(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let bob = boot.user("bob");
    acme(&mut a).await;
    put_user(&mut a, &boot, ACME, "gina", &[]).await;
    let granter =
        Who::key(&new_client(&mut a, &boot, "granter", &[ACME], &[Capability::Admin]).await);
    ok(a.create_permission_group(bob.r(group_req(
        ACME,
        "g1",
        &[],
        &["user:gina", "client:granter"],
        &["client:granter"],
    )))
    .await);
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    // Managers (READ_WRITE too), administrators and other clients are not grantors.
    let refused = [
        (bob.clone(), "user:bob"),
        (boot.user("alice"), "user:alice"),
        (boot.user("carol"), "user:carol"),
        (boot.clone(), "client:bootstrap"),
    ];
    for (who, needle) in &refused {
        fails(
            a.grant_external_permission(who.r(grant_req(ACME, "carol", "p1")))
                .await,
            DENIED,
            needle,
        );
    }
    ok(
        a.grant_external_permission(boot.user("gina").r(grant_req(ACME, "carol", "p1")))
            .await,
    );
    // Granting again (another grantor) updates the expiry and keeps who granted it first.
    let expires = timestamp(600);
    ok(
        a.grant_external_permission(granter.r(GrantExternalPermissionRequest {
            expires_at: Some(expires),
            ..grant_req(ACME, "carol", "p1")
        }))
        .await,
    );
    let last = all_events(&mut a).await.pop().expect("an event");
    let after = parse_json("grant", &last.after);
    assert_eq!(after["granted_by"], "user:gina");
    assert_eq!(after["expires_at"], micros(&expires));
    assert_eq!(parse_json("grant", &last.before)["expires_at"], Value::Null);
    for (who, needle) in &refused {
        fails(
            a.revoke_external_permission(who.r(revoke_grant_req(ACME, "carol", "p1")))
                .await,
            DENIED,
            needle,
        );
    }
    ok(
        a.revoke_external_permission(granter.r(revoke_grant_req(ACME, "carol", "p1")))
            .await,
    );
    fails(
        a.revoke_external_permission(granter.r(revoke_grant_req(ACME, "carol", "p1")))
            .await,
        Code::NotFound,
        "p1",
    );
    server.stop().await;
}
