//! External permission groups and grants: groups are managed by READ_WRITE managers;
//! permissions are granted by grantors and found by the viewers that may see them.

use super::*;
use crate::support::db::{TestDb, backend_tests};

backend_tests!(
    permission_groups_are_managed_by_read_write_managers,
    external_permissions_are_granted_by_grantors_and_found_by_viewers,
);

async fn permission_groups_are_managed_by_read_write_managers(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["bob", "dave", "erin"]).await;
    s.put_user(
        &by("alice"),
        &acme,
        &uid("carol"),
        roles(&[Role::PermissionManager]),
    )
    .await
    .unwrap();
    let ops = caller("ops", only(&["acme"]), &[Capability::Admin]);
    let hr_acl = acl(
        &[
            ("user:dave", ManagerAccess::Read),
            ("client:ops", ManagerAccess::ReadWrite),
        ],
        &["user:carol"],
        &["client:crm-backend", "app:portal"],
    );

    // Creating a group needs an acting PERMISSION_MANAGER.
    refused!(
        s,
        s.create_group(&by_root(), &acme, spec("hr", "HR", hr_acl.clone())),
        denied!()
    );
    refused!(
        s,
        s.create_group(&by("dave"), &acme, spec("hr", "HR", hr_acl.clone())),
        denied!()
    );
    refused!(
        s,
        s.create_group(
            &by("carol"),
            &tid("initech"),
            spec("hr", "HR", hr_acl.clone())
        ),
        StoreError::NotFound(_)
    );
    let ((_, group), ev) = wrote!(
        s,
        s.create_group(&by("carol"), &acme, spec("hr", "HR", hr_acl.clone()))
    );
    // The creator becomes a READ_WRITE manager.
    let mut created_acl = hr_acl.clone();
    created_acl
        .managers
        .push((principal("user:carol"), ManagerAccess::ReadWrite));
    assert_eq!(group.acl, created_acl);
    assert_eq!(ev.action, "CreatePermissionGroup");
    assert_eq!(ev.target, "group:hr");
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    let after = parsed(&ev.after);
    assert_eq!(after["name"], "HR");
    assert_eq!(
        after["managers"],
        json!([
            {"principal": "user:dave", "access": "READ"},
            {"principal": "client:ops", "access": "READ_WRITE"},
            {"principal": "user:carol", "access": "READ_WRITE"},
        ])
    );
    assert_eq!(after["grantors"], json!(["user:carol"]));
    assert_eq!(
        after["visible_to"],
        json!(["client:crm-backend", "app:portal"])
    );
    assert_eq!(
        groups_seen_by(s, "acme", &Viewer::User(uid("carol"))).await,
        std::slice::from_ref(&group)
    );

    // GENERAL_ADMIN implies PERMISSION_MANAGER; a creator listed as a READ manager is upgraded.
    let ((_, fin), _) = wrote!(
        s,
        s.create_group(
            &by("alice"),
            &acme,
            spec(
                "fin",
                "Finance",
                acl(&[("user:alice", ManagerAccess::Read)], &["user:alice"], &[])
            )
        )
    );
    assert_eq!(
        fin.acl.managers,
        [(principal("user:alice"), ManagerAccess::ReadWrite)]
    );
    refused!(
        s,
        s.create_group(
            &by("carol"),
            &acme,
            spec("hr", "HR again", GroupAcl::default())
        ),
        StoreError::AlreadyExists(_)
    );

    // Updating needs a READ_WRITE manager, a user or a client.
    let new_acl = acl(
        &[
            ("user:carol", ManagerAccess::ReadWrite),
            ("user:dave", ManagerAccess::Read),
        ],
        &["user:carol", "user:bob"],
        &["client:crm-backend"],
    );
    let renamed = || GroupSpec {
        description: Description::parse("description", "people\nand pay").unwrap(),
        ..spec("hr", "Human resources", new_acl.clone())
    };
    refused!(s, s.update_group(&by("dave"), &acme, renamed()), denied!());
    refused!(s, s.update_group(&by("bob"), &acme, renamed()), denied!());
    refused!(s, s.update_group(&by("alice"), &acme, renamed()), denied!());
    refused!(
        s,
        s.update_group(
            &by("carol"),
            &acme,
            GroupSpec {
                group_id: gid("ghost"),
                ..renamed()
            }
        ),
        StoreError::NotFound(_)
    );
    let ((_, updated), ev) = wrote!(s, s.update_group(&ctx(&ops, None, 0), &acme, renamed()));
    let updated = updated.group;
    assert_eq!(updated.name, name("Human resources"));
    assert_eq!(updated.acl, new_acl);
    assert_eq!(ev.action, "UpdatePermissionGroup");
    assert_eq!(ev.actor_client, "ops");
    assert_eq!(parsed(&ev.before)["name"], "HR");
    assert_eq!(parsed(&ev.after)["name"], "Human resources");
    assert_eq!(parsed(&ev.after)["description"], "people\nand pay");
    assert_eq!(
        parsed(&ev.after)["grantors"],
        json!(["user:carol", "user:bob"])
    );
    assert_eq!(
        groups_seen_by(s, "acme", &Viewer::User(uid("carol"))).await,
        std::slice::from_ref(&updated)
    );
    // client:ops is no manager any more.
    refused!(
        s,
        s.update_group(&ctx(&ops, None, 0), &acme, renamed()),
        denied!()
    );

    // Permissions: READ_WRITE managers create them; ids are unique in the tenant, external
    // ids in the group.
    refused!(
        s,
        s.create_permission(&by("dave"), &acme, &permission("hr.view", "hr", "HR-1")),
        denied!()
    );
    refused!(
        s,
        s.create_permission(&by("carol"), &acme, &permission("hr.view", "ghost", "HR-1")),
        StoreError::NotFound(_)
    );
    let (_, ev) = wrote!(
        s,
        s.create_permission(&by("carol"), &acme, &permission("hr.view", "hr", "HR-1"))
    );
    assert_eq!(ev.action, "CreateExternalPermission");
    assert_eq!(ev.target, "permission:hr.view");
    assert_eq!(
        parsed(&ev.after),
        json!({"permission_id": "hr.view", "group_id": "hr", "name": "Permission hr.view",
               "description": "what it allows", "external_id": "HR-1"})
    );
    refused!(
        s,
        s.create_permission(&by("alice"), &acme, &permission("hr.view", "fin", "FIN-1")),
        StoreError::AlreadyExists(_)
    );
    refused!(
        s,
        s.create_permission(&by("carol"), &acme, &permission("hr.view2", "hr", "HR-1")),
        StoreError::AlreadyExists(_)
    );
    wrote!(
        s,
        s.create_permission(&by("alice"), &acme, &permission("fin.view", "fin", "HR-1"))
    );
    wrote!(
        s,
        s.create_permission(&by("carol"), &acme, &permission("hr.edit", "hr", "HR-2"))
    );
    let listed = all_pages!(10, |page| {
        s.list_groups(&acme, &Viewer::User(uid("carol")), &page)
            .await
            .unwrap()
    })
    .0;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].permissions,
        [
            permission("hr.edit", "hr", "HR-2"),
            permission("hr.view", "hr", "HR-1")
        ]
    );

    // Deleting a permission takes its grants.
    for p in ["hr.view", "hr.edit"] {
        s.grant_external(&by("carol"), &acme, &uid("erin"), &pid(p), None)
            .await
            .unwrap();
    }
    refused!(
        s,
        s.delete_permission(&by("dave"), &acme, &pid("hr.edit")),
        denied!()
    );
    let (_, ev) = wrote!(s, s.delete_permission(&by("carol"), &acme, &pid("hr.edit")));
    assert_eq!(ev.action, "DeleteExternalPermission");
    let before = parsed(&ev.before);
    assert_eq!(before["external_id"], "HR-2");
    assert_eq!(before["grants"][0]["user_id"], "erin");
    assert_eq!(before["grants"].as_array().unwrap().len(), 1);
    refused!(
        s,
        s.delete_permission(&by("carol"), &acme, &pid("hr.edit")),
        StoreError::NotFound(_)
    );
    let carol_sees = grant_query(Viewer::User(uid("carol")), None, at(0));
    assert_eq!(
        grant_keys(s, "acme", "erin", &carol_sees).await,
        [("hr".to_owned(), "hr.view".to_owned())]
    );

    // Deleting a group takes its permissions and their grants.
    refused!(s, s.delete_group(&by("dave"), &acme, &gid("hr")), denied!());
    refused!(s, s.delete_group(&by_root(), &acme, &gid("hr")), denied!());
    let (_, ev) = wrote!(s, s.delete_group(&by("carol"), &acme, &gid("hr")));
    assert_eq!(
        (ev.action.as_str(), ev.target.as_str()),
        ("DeletePermissionGroup", "group:hr")
    );
    assert_eq!(ev.after, None);
    let before = parsed(&ev.before);
    assert_eq!(before["name"], "Human resources");
    assert_eq!(
        before["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["permission_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["hr.view"]
    );
    assert_eq!(
        before["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (
                g["user_id"].as_str().unwrap(),
                g["permission_id"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("erin", "hr.view")]
    );
    refused!(
        s,
        s.delete_group(&by("carol"), &acme, &gid("hr")),
        StoreError::NotFound(_)
    );
    assert!(
        groups_seen_by(s, "acme", &Viewer::User(uid("carol")))
            .await
            .is_empty()
    );
    assert_eq!(
        groups_seen_by(s, "acme", &Viewer::User(uid("alice")))
            .await
            .iter()
            .map(|g| g.group_id.to_string())
            .collect::<Vec<_>>(),
        ["fin"]
    );
    assert!(grant_keys(s, "acme", "erin", &carol_sees).await.is_empty());
    // The rows are really gone: the ids are free again and nothing comes back.
    wrote!(
        s,
        s.create_group(&by("carol"), &acme, spec("hr", "HR", GroupAcl::default()))
    );
    wrote!(
        s,
        s.create_permission(&by("carol"), &acme, &permission("hr.view", "hr", "HR-1"))
    );
    assert_eq!(
        find(
            s,
            "acme",
            "erin",
            &PermissionRef::Id(pid("hr.view")),
            &Viewer::User(uid("carol"))
        )
        .await
        .unwrap(),
        None
    );
    let group = &groups_seen_by(s, "acme", &Viewer::User(uid("carol"))).await[0];
    assert_eq!(
        group.acl,
        acl(&[("user:carol", ManagerAccess::ReadWrite)], &[], &[])
    );
}

async fn external_permissions_are_granted_by_grantors_and_found_by_viewers(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["erin", "grace", "mia"]).await;
    s.create_group(
        &by("alice"),
        &acme,
        spec(
            "apps",
            "Apps",
            acl(
                &[("user:mia", ManagerAccess::Read)],
                &["user:grace", "client:hr-sync"],
                &["client:crm", "app:portal"],
            ),
        ),
    )
    .await
    .unwrap();
    s.create_group(
        &by("alice"),
        &acme,
        spec("other", "Other", GroupAcl::default()),
    )
    .await
    .unwrap();
    for (p, x) in [("p.view", "VIEW"), ("p.edit", "EDIT")] {
        s.create_permission(&by("alice"), &acme, &permission(p, "apps", x))
            .await
            .unwrap();
    }
    let hr_sync = caller("hr-sync", only(&["acme"]), &[Capability::Admin]);
    let erin = uid("erin");

    // Granting needs a grantor of the group (a READ_WRITE manager is not one).
    refused!(
        s,
        s.grant_external(&by("alice"), &acme, &erin, &pid("p.view"), None),
        denied!()
    );
    refused!(
        s,
        s.grant_external(&by_root(), &acme, &erin, &pid("p.view"), None),
        denied!()
    );
    refused!(
        s,
        s.grant_external(&by("grace"), &acme, &uid("ghost"), &pid("p.view"), None),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.grant_external(&by("grace"), &acme, &erin, &pid("p.ghost"), None),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.grant_external(&by("grace"), &tid("initech"), &erin, &pid("p.view"), None),
        StoreError::NotFound(_)
    );
    let (_, ev) = wrote!(
        s,
        s.grant_external(
            &ctx(&root(), Some("grace"), 10),
            &acme,
            &erin,
            &pid("p.view"),
            None
        )
    );
    assert_eq!(ev.action, "GrantExternalPermission");
    assert_eq!(ev.target, "user:erin");
    assert_eq!(ev.before, None);
    assert_eq!(
        parsed(&ev.after),
        json!({"user_id": "erin", "permission_id": "p.view", "granted_by": "user:grace",
               "granted_at": at(10).as_micros(), "expires_at": null})
    );
    let alice = Viewer::User(uid("alice"));
    let grant = find(s, "acme", "erin", &PermissionRef::Id(pid("p.view")), &alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        grant,
        GrantView {
            permission_id: pid("p.view"),
            group_id: gid("apps"),
            group_name: "Apps".into(),
            name: "Permission p.view".into(),
            external_id: "VIEW".into(),
            granted_by: principal("user:grace"),
            granted_at: at(10),
            expires_at: None,
        }
    );

    // Granting again updates only the expiry.
    let (_, ev) = wrote!(
        s,
        s.grant_external(
            &ctx(&hr_sync, None, 20),
            &acme,
            &erin,
            &pid("p.view"),
            Some(at(1000))
        )
    );
    assert_eq!(ev.actor_client, "hr-sync");
    assert_eq!(parsed(&ev.before)["expires_at"], Value::Null);
    let after = parsed(&ev.after);
    assert_eq!(after["granted_by"], "user:grace");
    assert_eq!(after["granted_at"], at(10).as_micros());
    assert_eq!(after["expires_at"], at(1000).as_micros());
    let regranted = find(s, "acme", "erin", &PermissionRef::Id(pid("p.view")), &alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        regranted,
        GrantView {
            expires_at: Some(at(1000)),
            ..grant.clone()
        }
    );
    // A client grantor is recorded as the client.
    wrote!(
        s,
        s.grant_external(&ctx(&hr_sync, None, 30), &acme, &erin, &pid("p.edit"), None)
    );
    let by_external = PermissionRef::External(gid("apps"), ExternalId::parse("x", "EDIT").unwrap());
    let edit = find(s, "acme", "erin", &by_external, &alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edit.permission_id, pid("p.edit"));
    assert_eq!(edit.granted_by, principal("client:hr-sync"));
    assert_eq!(edit.granted_at, at(30));

    // An expiry in the past is accepted: the grant is simply expired, hidden from lists but
    // found (with its expiry) by a direct look-up.
    wrote!(
        s,
        s.grant_external(&by("grace"), &acme, &erin, &pid("p.view"), Some(at(5)))
    );
    assert_eq!(
        grant_keys(s, "acme", "erin", &grant_query(alice.clone(), None, at(40))).await,
        [("apps".to_owned(), "p.edit".to_owned())]
    );
    assert_eq!(
        grant_keys(s, "acme", "erin", &grant_query(alice.clone(), None, at(4))).await,
        [
            ("apps".to_owned(), "p.edit".to_owned()),
            ("apps".to_owned(), "p.view".to_owned())
        ]
    );
    let expired = find(s, "acme", "erin", &PermissionRef::Id(pid("p.view")), &alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expired.expires_at, Some(at(5)));
    assert!(!expired.is_live(at(40)));

    // Who sees a permission: managers (READ or READ_WRITE) as users, visible_to as clients/apps.
    let view = PermissionRef::Id(pid("p.view"));
    let edit_ref = PermissionRef::Id(pid("p.edit"));
    for viewer in [
        Viewer::User(uid("mia")),
        Viewer::Client(cid("crm")),
        Viewer::App(aid("portal")),
    ] {
        assert!(
            find(s, "acme", "erin", &edit_ref, &viewer)
                .await
                .unwrap()
                .is_some(),
            "{viewer:?} sees the grant"
        );
    }
    for viewer in [
        Viewer::User(uid("grace")),
        Viewer::User(uid("erin")),
        Viewer::Client(cid("portal")),
        Viewer::App(aid("crm")),
        Viewer::Client(cid("hr-sync")),
    ] {
        let got = find(s, "acme", "erin", &edit_ref, &viewer).await;
        assert!(
            matches!(got, Err(StoreError::NotFound(_))),
            "{viewer:?} must not see the permission: {got:?}"
        );
    }

    // Revoking needs a grantor; what is not granted is NOT_FOUND.
    refused!(
        s,
        s.revoke_external(&by("alice"), &acme, &erin, &pid("p.view")),
        denied!()
    );
    let (_, ev) = wrote!(
        s,
        s.revoke_external(&by("grace"), &acme, &erin, &pid("p.view"))
    );
    assert_eq!(ev.action, "RevokeExternalPermission");
    assert_eq!(parsed(&ev.before)["expires_at"], at(5).as_micros());
    assert_eq!(ev.after, None);
    refused!(
        s,
        s.revoke_external(&by("grace"), &acme, &erin, &pid("p.view")),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_external(&by("grace"), &acme, &uid("ghost"), &pid("p.view")),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_external(&by("grace"), &acme, &erin, &pid("p.ghost")),
        StoreError::NotFound(_)
    );

    // Visible but not granted: no grant. Not visible or not there: NOT_FOUND.
    let crm = Viewer::Client(cid("crm"));
    assert_eq!(find(s, "acme", "erin", &view, &crm).await.unwrap(), None);
    assert_eq!(find(s, "acme", "ghost", &view, &crm).await.unwrap(), None);
    let (found, rev) = s.find_grant(&acme, &erin, &edit_ref, &crm).await.unwrap();
    assert!(found.is_some());
    assert_eq!(rev, s.revision().await.unwrap());
    for missing in [
        PermissionRef::Id(pid("p.ghost")),
        PermissionRef::External(gid("apps"), ExternalId::parse("x", "NOPE").unwrap()),
        PermissionRef::External(gid("other"), ExternalId::parse("x", "EDIT").unwrap()),
        PermissionRef::External(gid("ghost"), ExternalId::parse("x", "EDIT").unwrap()),
    ] {
        let got = find(s, "acme", "erin", &missing, &alice).await;
        assert!(
            matches!(got, Err(StoreError::NotFound(_))),
            "{missing:?}: {got:?}"
        );
    }
    let got = find(s, "initech", "erin", &view, &alice).await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");
}
