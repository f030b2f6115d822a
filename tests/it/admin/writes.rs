//! What a write takes with it and what a failed one leaves: deletes cascade (and their audit
//! events record what went), and a write that fails at any point leaves no trace.

use std::collections::BTreeSet;

use consentry::proto::*;
use serde_json::json;
use tonic::Code;

use super::*;
use crate::support::calls::{Who, fails, ok};
use crate::support::db::{TestDb, backend_tests, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;

backend_tests!(a_failed_write_leaves_no_trace);

postgres_tests!(deletes_cascade_and_their_audit_events_record_what_went);

async fn deletes_cascade_and_their_audit_events_record_what_went(db: &TestDb) {
    let server = TestServer::start(db).await;
    let mut a = server.admin().await;
    let mut p = server.permission().await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    put_tenant(&mut a, "beta").await;
    put_user(&mut a, &boot, "beta", "bea", &[Role::GeneralAdmin]).await;
    put_user(&mut a, &boot, ACME, "dave", &[]).await;
    ok(
        a.grant_user_right(boot.r(right_req(ACME, "carol", "/hr", Right::Read)))
            .await,
    );
    ok(a.create_permission_group(bob.r(group_req(
        ACME,
        "g1",
        &[("user:carol", ManagerAccess::Read)],
        &["user:bob", "user:carol"],
        &["user:carol", "client:bootstrap"],
    )))
    .await);
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p2", "P-2")))
            .await,
    );
    ok(
        a.grant_external_permission(bob.r(grant_req(ACME, "carol", "p1")))
            .await,
    );
    ok(
        a.grant_external_permission(bob.r(grant_req(ACME, "dave", "p1")))
            .await,
    );
    ok(
        a.grant_external_permission(bob.r(grant_req(ACME, "dave", "p2")))
            .await,
    );

    let grants = |user: &str| ListExternalPermissionsRequest {
        tenant_id: ACME.into(),
        user_id: user.into(),
        ..Default::default()
    };
    let carol_grants = p
        .list_external_permissions(boot.r(grants("carol")))
        .await
        .expect("lists")
        .into_inner()
        .permissions;
    assert_eq!(carol_grants.len(), 1, "{carol_grants:?}");

    // DeleteUser takes the user's rights, grants and group entries.
    ok(a.delete_user(boot.r(DeleteUserRequest {
        tenant_id: ACME.into(),
        user_id: "carol".into(),
    }))
    .await);
    let e = all_events(&mut a).await.pop().expect("an event");
    let before = parse_json("DeleteUser", &e.before);
    assert!(
        includes(
            &before,
            &json!({"user_id": "carol", "rights": [{"resource": "/hr", "right": "READ"}],
                "grants": [{"permission_id": "p1", "granted_by": "user:bob"}]})
        ),
        "{before}"
    );
    let entries: BTreeSet<String> = before["group_entries"]
        .as_array()
        .expect("group entries")
        .iter()
        .map(|v| {
            format!(
                "{}/{}",
                v["group_id"].as_str().unwrap(),
                v["relation"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        entries,
        BTreeSet::from([
            "g1/grantor".to_owned(),
            "g1/manager".into(),
            "g1/visible_to".into()
        ])
    );
    let g1 = ok(a
        .list_permission_groups(bob.r(ListPermissionGroupsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .groups
    .remove(0);
    assert_eq!(g1.managers.len(), 1);
    assert_eq!(g1.grantors, strings(&["user:bob"]));
    assert_eq!(g1.visible_to, strings(&["client:bootstrap"]));
    put_user(&mut a, &boot, ACME, "carol", &[]).await;
    let rights = ok(a
        .list_user_rights(boot.r(ListUserRightsRequest {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
            ..Default::default()
        }))
        .await)
    .rights;
    assert!(rights.is_empty(), "a re-added user starts without rights");
    let carol_grants = p
        .list_external_permissions(boot.r(grants("carol")))
        .await
        .expect("lists")
        .into_inner()
        .permissions;
    assert!(carol_grants.is_empty(), "{carol_grants:?}");

    // DeleteExternalPermission takes its grants.
    ok(
        a.delete_external_permission(bob.r(DeleteExternalPermissionRequest {
            tenant_id: ACME.into(),
            permission_id: "p2".into(),
        }))
        .await,
    );
    let e = all_events(&mut a).await.pop().expect("an event");
    assert!(includes(
        &parse_json("DeleteExternalPermission", &e.before),
        &json!({"permission_id": "p2", "grants": [{"user_id": "dave", "permission_id": "p2"}]})
    ));
    // DeletePermissionGroup takes its permissions and their grants.
    ok(
        a.delete_permission_group(bob.r(DeletePermissionGroupRequest {
            tenant_id: ACME.into(),
            group_id: "g1".into(),
        }))
        .await,
    );
    let e = all_events(&mut a).await.pop().expect("an event");
    assert!(includes(
        &parse_json("DeletePermissionGroup", &e.before),
        &json!({"group_id": "g1", "permissions": [{"permission_id": "p1", "external_id": "P-1"}],
            "grants": [{"user_id": "dave", "permission_id": "p1"}]})
    ));
    let dave_grants = p
        .list_external_permissions(boot.r(grants("dave")))
        .await
        .expect("lists")
        .into_inner()
        .permissions;
    assert!(dave_grants.is_empty(), "{dave_grants:?}");
    // The ids are free again.
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );

    // UnregisterApp takes its consents and whitelist entries, in every tenant.
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    ok(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 1, vec![])))
            .await,
    );
    ok(
        a.approve_consent(boot.user("bea").r(approve_req("beta", "crm", 1, vec![])))
            .await,
    );
    ok(
        a.put_whitelist_entry(alice.r(whitelist_req(ACME, "crm", &[])))
            .await,
    );
    ok(a.unregister_app(boot.r(UnregisterAppRequest {
        app_id: "crm".into(),
    }))
    .await);
    let e = all_events(&mut a).await.pop().expect("an event");
    assert!(includes(
        &parse_json("UnregisterApp", &e.before),
        &json!({"app_id": "crm",
            "consents": [{"tenant_id": "acme", "approved_by": "user:alice"},
                         {"tenant_id": "beta", "approved_by": "user:bea"}],
            "whitelist_entries": [{"tenant_id": "acme", "app_id": "crm"}]})
    ));
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    for tenant in [ACME, "beta"] {
        let consents = ok(a
            .list_consents(boot.r(ListConsentsRequest {
                tenant_id: tenant.into(),
                ..Default::default()
            }))
            .await)
        .consents;
        assert!(
            consents.is_empty(),
            "re-registering does not bring consent back: {consents:?}"
        );
    }
    let entries = ok(a
        .list_whitelist_entries(boot.r(ListWhitelistEntriesRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .entries;
    assert!(entries.is_empty());
    server.stop().await;
}

async fn a_failed_write_leaves_no_trace(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    register(&mut a, "crm", AppKind::Standard, manifest(&["docs"], &[])).await;
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
    );
    let last = ok(a
        .create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "INV-1")))
        .await)
    .written_at;
    let events_before = all_events(&mut a).await;
    assert_eq!(
        events_before.last().map(|e| e.revision.clone()),
        Some(last.clone())
    );
    let groups = |a: &mut Admin| {
        let mut a = a.clone();
        async move {
            ok(
                a.list_permission_groups(Who::boot().user("bob").r(ListPermissionGroupsRequest {
                    tenant_id: ACME.into(),
                    ..Default::default()
                }))
                .await,
            )
            .groups
        }
    };
    let groups_before = groups(&mut a).await;

    // A duplicate external id fails inside the write transaction, after the revision was bumped
    // and the row insert was attempted.
    fails(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p2", "INV-1")))
            .await,
        Code::AlreadyExists,
        "INV-1",
    );
    // Other failures at other points of a write.
    fails(
        a.create_permission_group(boot.user("carol").r(group_req(ACME, "g2", &[], &[], &[])))
            .await,
        DENIED,
        "carol",
    );
    fails(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 2, vec![])))
            .await,
        Code::Aborted,
        "crm",
    );
    fails(
        a.put_tenant(boot.r(tenant_req(ACME, "stage", false))).await,
        Code::FailedPrecondition,
        "production",
    );
    fails(
        a.create_client(boot.r(client_req("bootstrap", &["*"], &[Capability::Query])))
            .await,
        Code::AlreadyExists,
        "bootstrap",
    );
    // An identical manifest is not a failure, but writes nothing either.
    let same = ok(a
        .update_app_manifest(boot.r(UpdateAppManifestRequest {
            app_id: "crm".into(),
            manifest: Some(manifest(&["docs"], &[])),
        }))
        .await);
    assert_eq!(same.written_at, last);

    assert_eq!(all_events(&mut a).await, events_before, "no audit event");
    assert_eq!(groups(&mut a).await, groups_before, "no permission");
    // The revision was not bumped: the next write takes the one after the last success.
    let next = put_user(&mut a, &boot, ACME, "dave", &[]).await;
    assert_eq!(rev(&next), rev(&last) + 1, "{last} then {next}");
    let events_after = all_events(&mut a).await;
    assert_eq!(events_after.len(), events_before.len() + 1);
    assert_eq!(events_after.last().map(|e| e.revision.clone()), Some(next));
    server.stop().await;
}
