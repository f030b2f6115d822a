//! Tenants, users, roles and rights: tenants are created by `*` clients and keep their
//! environment; roles need an acting administrator (except the first); deleting a user takes
//! their rights, grants and group entries; a user holds one right level per path.

use super::*;
use crate::support::db::{TestDb, backend_tests};

backend_tests!(
    tenants_are_created_by_star_clients_and_keep_their_environment,
    roles_need_an_acting_administrator_except_the_first_one,
    deleting_a_user_takes_their_rights_grants_and_group_entries,
    a_user_holds_one_right_level_per_path,
);

async fn tenants_are_created_by_star_clients_and_keep_their_environment(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    let bounded = caller(
        "acme-ops",
        only(&["acme"]),
        &[Capability::Admin, Capability::AssertUser],
    );

    // Creating a tenant needs a client with `*` tenants.
    refused!(
        s,
        s.put_tenant(
            &ctx(&bounded, None, 0),
            &tenant("acme", "production", false)
        ),
        denied!()
    );
    assert_eq!(s.tenant(&acme).await.unwrap(), None);
    let ((_, created), _) = wrote!(
        s,
        s.put_tenant(&by_root(), &tenant("acme", "production", false))
    );
    assert!(created);
    assert_eq!(
        s.tenant(&acme).await.unwrap(),
        Some(tenant("acme", "production", false))
    );

    // Putting it again as it is: not created (a client bound to it may do that).
    let ((_, created), ev) = wrote!(
        s,
        s.put_tenant(
            &ctx(&bounded, None, 0),
            &tenant("acme", "production", false)
        )
    );
    assert!(!created);
    assert_eq!(parsed(&ev.before), parsed(&ev.after));

    // The environment never changes.
    refused!(
        s,
        s.put_tenant(&by_root(), &tenant("acme", "stage", false)),
        StoreError::Rule(RuleError::FailedPrecondition(_))
    );
    assert_eq!(
        s.tenant(&acme).await.unwrap(),
        Some(tenant("acme", "production", false))
    );

    // Switching whitelisting needs an acting tenant administrator.
    s.put_user(
        &by_root(),
        &acme,
        &uid("alice"),
        roles(&[Role::GeneralAdmin]),
    )
    .await
    .unwrap();
    plain_users(s, "acme", &["bob"]).await;
    let on = tenant("acme", "production", true);
    refused!(s, s.put_tenant(&by_root(), &on), denied!());
    refused!(s, s.put_tenant(&by("bob"), &on), denied!());
    refused!(s, s.put_tenant(&by("ghost"), &on), denied!());
    let ((_, created), ev) = wrote!(s, s.put_tenant(&by("alice"), &on));
    assert!(!created);
    assert_eq!(ev.actor_user, Some(uid("alice")));
    assert_eq!(parsed(&ev.before)["whitelisting_enabled"], false);
    assert_eq!(parsed(&ev.after)["whitelisting_enabled"], true);
    assert_eq!(s.tenant(&acme).await.unwrap(), Some(on.clone()));
    // Even an administrator cannot change the environment while switching.
    refused!(
        s,
        s.put_tenant(&by("alice"), &tenant("acme", "stage", false)),
        StoreError::Rule(RuleError::FailedPrecondition(_))
    );
    assert_eq!(s.tenant(&acme).await.unwrap(), Some(on));

    // Another environment is a tenant of its own.
    let ((_, created), _) = wrote!(
        s,
        s.put_tenant(&by_root(), &tenant("acme-stage", "stage", false))
    );
    assert!(created);
    assert_eq!(
        s.tenant(&tid("acme-stage")).await.unwrap(),
        Some(tenant("acme-stage", "stage", false))
    );
    assert_eq!(s.tenant(&tid("initech")).await.unwrap(), None);
}

async fn roles_need_an_acting_administrator_except_the_first_one(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    s.put_tenant(&by_root(), &tenant("acme", "production", false))
        .await
        .unwrap();
    let bounded = caller("acme-ops", only(&["acme"]), &[Capability::Admin]);

    refused!(
        s,
        s.put_user(&by_root(), &tid("initech"), &uid("bob"), RoleSet::EMPTY),
        StoreError::NotFound(_)
    );
    // Users without roles need no administrator.
    wrote!(
        s,
        s.put_user(&ctx(&bounded, None, 0), &acme, &uid("bob"), RoleSet::EMPTY)
    );
    // Roles do, even while the tenant has none, unless it is the first administrator.
    refused!(
        s,
        s.put_user(&by_root(), &acme, &uid("carol"), roles(&[Role::Delegate])),
        denied!()
    );
    refused!(
        s,
        s.put_user(
            &by_root(),
            &acme,
            &uid("bob"),
            roles(&[Role::PermissionManager])
        ),
        denied!()
    );
    let (_, ev) = wrote!(
        s,
        s.put_user(
            &ctx(&bounded, None, 0),
            &acme,
            &uid("alice"),
            roles(&[Role::UserAdmin])
        )
    );
    assert_eq!(ev.actor_user, None);
    // Now the tenant has one: further roles need an acting administrator.
    refused!(
        s,
        s.put_user(
            &by_root(),
            &acme,
            &uid("dave"),
            roles(&[Role::GeneralAdmin])
        ),
        denied!()
    );
    refused!(
        s,
        s.put_user(
            &by("bob"),
            &acme,
            &uid("dave"),
            roles(&[Role::GeneralAdmin])
        ),
        denied!()
    );
    refused!(
        s,
        s.put_user(
            &by("ghost"),
            &acme,
            &uid("dave"),
            roles(&[Role::GeneralAdmin])
        ),
        denied!()
    );
    wrote!(
        s,
        s.put_user(
            &by("alice"),
            &acme,
            &uid("dave"),
            roles(&[Role::GeneralAdmin, Role::Delegate])
        )
    );
    wrote!(
        s,
        s.put_user(&by("dave"), &acme, &uid("bob"), roles(&[Role::Delegate]))
    );
    // Taking a role away needs one as well; leaving roles as they are does not.
    refused!(
        s,
        s.put_user(&by_root(), &acme, &uid("bob"), RoleSet::EMPTY),
        denied!()
    );
    wrote!(
        s,
        s.put_user(&by_root(), &acme, &uid("bob"), roles(&[Role::Delegate]))
    );

    let (snap, rev) = s
        .user_snapshot(&acme, &uid("dave"), consentry::store::ReadFrom::Primary)
        .await
        .unwrap();
    assert_eq!(rev, s.revision().await.unwrap());
    let snap = snap.unwrap();
    assert!(snap.known);
    assert_eq!(snap.roles, roles(&[Role::GeneralAdmin, Role::Delegate]));
    assert!(snap.rights.is_empty());
    assert_eq!(
        s.user_snapshot(&acme, &uid("ghost"), consentry::store::ReadFrom::Primary)
            .await
            .unwrap()
            .0,
        None
    );
    assert_eq!(
        s.user_snapshot(
            &tid("initech"),
            &uid("dave"),
            consentry::store::ReadFrom::Primary
        )
        .await
        .unwrap()
        .0,
        None
    );

    // The first-administrator exception is per tenant; roles are per tenant.
    s.put_tenant(&by_root(), &tenant("globex", "production", false))
        .await
        .unwrap();
    refused!(
        s,
        s.put_user(
            &by("alice"),
            &tid("globex"),
            &uid("y"),
            roles(&[Role::Delegate])
        ),
        denied!()
    );
    wrote!(
        s,
        s.put_user(
            &by_root(),
            &tid("globex"),
            &uid("zed"),
            roles(&[Role::GeneralAdmin])
        )
    );

    // Deleting a user who holds roles needs an acting administrator.
    refused!(s, s.delete_user(&by_root(), &acme, &uid("bob")), denied!());
    refused!(s, s.delete_user(&by("bob"), &acme, &uid("bob")), denied!());
    let (written, ev) = wrote!(s, s.delete_user(&by("alice"), &acme, &uid("bob")));
    assert_eq!(
        (ev.action.as_str(), ev.target.as_str()),
        ("DeleteUser", "user:bob")
    );
    // The write declares what it touched: the user, and the groups that named them.
    let before = written.0 - 1;
    let tag = s.revision_tag(before).await.unwrap().unwrap();
    let read = s.changes_since(Revision(before, tag)).await.unwrap();
    assert!(read.same_history && read.head.same_point(written));
    let changes = read.changes;
    let mut keys: Vec<String> = changes.iter().map(|(_, k)| k.to_string()).collect();
    keys.sort();
    assert_eq!(keys, ["g/acme", "u/acme/bob"]);
    assert_eq!(
        changes.iter().map(|(_, k)| k).collect::<Vec<_>>(),
        [
            &ChangeKey::Groups(acme.clone()),
            &ChangeKey::User(acme.clone(), uid("bob"))
        ]
    );
    assert_eq!(ev.after, None);

    let (users, _) = all_pages!(10, |page| s.list_users(&acme, &page).await.unwrap());
    assert_eq!(
        users,
        [
            (uid("alice"), roles(&[Role::UserAdmin])),
            (uid("dave"), roles(&[Role::GeneralAdmin, Role::Delegate])),
        ]
    );
}

async fn deleting_a_user_takes_their_rights_grants_and_group_entries(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["bob", "carol"]).await;
    s.grant_user_right(&by_root(), &acme, &uid("bob"), &path("/hr"), Right::Read)
        .await
        .unwrap();
    s.grant_user_right(
        &by_root(),
        &acme,
        &uid("bob"),
        &path("/hr/team"),
        Right::Write,
    )
    .await
    .unwrap();
    s.create_group(
        &by("alice"),
        &acme,
        spec(
            "g1",
            "Group one",
            acl(
                &[("user:bob", ManagerAccess::Read)],
                &["user:alice", "user:bob"],
                &["user:bob", "client:crm"],
            ),
        ),
    )
    .await
    .unwrap();
    for (p, x) in [("p1", "X1"), ("p2", "X2")] {
        s.create_permission(&by("alice"), &acme, &permission(p, "g1", x))
            .await
            .unwrap();
    }
    s.grant_external(&by("alice"), &acme, &uid("bob"), &pid("p1"), None)
        .await
        .unwrap();
    s.grant_external(&by("alice"), &acme, &uid("bob"), &pid("p2"), Some(at(500)))
        .await
        .unwrap();
    s.grant_external(&by("alice"), &acme, &uid("carol"), &pid("p1"), None)
        .await
        .unwrap();

    // bob holds no roles: any admin client may delete him.
    let (_, ev) = wrote!(s, s.delete_user(&by_root(), &acme, &uid("bob")));
    assert_eq!(ev.action, "DeleteUser");
    assert_eq!(ev.target, "user:bob");
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    assert_eq!(ev.after, None);
    let before = parsed(&ev.before);
    assert_eq!(before["user_id"], "bob");
    assert_eq!(before["roles"], json!([]));
    assert_eq!(
        before["rights"],
        json!([{"resource": "/hr", "right": "READ"}, {"resource": "/hr/team", "right": "WRITE"}])
    );
    let grants = before["grants"].as_array().unwrap();
    assert_eq!(
        grants
            .iter()
            .map(|g| (
                g["permission_id"].as_str().unwrap(),
                g["expires_at"].clone()
            ))
            .collect::<Vec<_>>(),
        [("p1", Value::Null), ("p2", json!(at(500).as_micros()))]
    );
    assert!(grants.iter().all(|g| g["granted_by"] == "user:alice"));
    assert_eq!(
        before["group_entries"],
        json!([
            {"group_id": "g1", "relation": "grantor"},
            {"group_id": "g1", "relation": "manager"},
            {"group_id": "g1", "relation": "visible_to"},
        ])
    );

    assert_eq!(
        s.user_snapshot(&acme, &uid("bob"), consentry::store::ReadFrom::Primary)
            .await
            .unwrap()
            .0,
        None
    );
    let groups = groups_seen_by(s, "acme", &Viewer::User(uid("alice"))).await;
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0].acl,
        acl(
            &[("user:alice", ManagerAccess::ReadWrite)],
            &["user:alice"],
            &["client:crm"]
        )
    );
    // Other users' grants stay.
    let alice_sees = grant_query(Viewer::User(uid("alice")), None, at(0));
    assert_eq!(
        grant_keys(s, "acme", "carol", &alice_sees).await,
        [("g1".to_owned(), "p1".to_owned())]
    );

    // Gone for good: the same user added again starts with nothing.
    plain_users(s, "acme", &["bob"]).await;
    let snap = s
        .user_snapshot(&acme, &uid("bob"), consentry::store::ReadFrom::Primary)
        .await
        .unwrap()
        .0
        .unwrap();
    assert!(snap.rights.is_empty());
    assert!(grant_keys(s, "acme", "bob", &alice_sees).await.is_empty());
    assert_eq!(
        find(
            s,
            "acme",
            "bob",
            &PermissionRef::Id(pid("p1")),
            &Viewer::User(uid("alice"))
        )
        .await
        .unwrap(),
        None
    );
    let (rights, _) = all_pages!(10, |page| {
        s.list_user_rights(&acme, &uid("bob"), &page).await.unwrap()
    });
    assert!(rights.is_empty());

    refused!(
        s,
        s.delete_user(&by_root(), &acme, &uid("ghost")),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.delete_user(&by_root(), &tid("initech"), &uid("bob")),
        StoreError::NotFound(_)
    );
}

async fn a_user_holds_one_right_level_per_path(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    s.put_tenant(&by_root(), &tenant("acme", "production", false))
        .await
        .unwrap();
    plain_users(s, "acme", &["bob"]).await;
    let bob = uid("bob");

    // Users are registered before they get rights.
    refused!(
        s,
        s.grant_user_right(&by_root(), &acme, &uid("ghost"), &path("/hr"), Right::Read),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.grant_user_right(&by_root(), &tid("initech"), &bob, &path("/hr"), Right::Read),
        StoreError::NotFound(_)
    );

    // Any admin client may grant (it mirrors the tenant's own access lists).
    let bounded = caller("acme-ops", only(&["acme"]), &[Capability::Admin]);
    let (_, ev) = wrote!(
        s,
        s.grant_user_right(
            &ctx(&bounded, None, 0),
            &acme,
            &bob,
            &path("/hr"),
            Right::Read
        )
    );
    assert_eq!(ev.action, "GrantUserRight");
    assert_eq!(ev.target, "user:bob");
    assert_eq!(ev.before, None);
    assert_eq!(
        parsed(&ev.after),
        json!({"user_id": "bob", "resource": "/hr", "right": "READ"})
    );
    // Granting again replaces the level.
    let (_, ev) = wrote!(
        s,
        s.grant_user_right(&by_root(), &acme, &bob, &path("/hr"), Right::Manage)
    );
    assert_eq!(parsed(&ev.before)["right"], "READ");
    assert_eq!(parsed(&ev.after)["right"], "MANAGE");
    wrote!(
        s,
        s.grant_user_right(&by_root(), &acme, &bob, &path("/"), Right::Write)
    );
    let snap = s
        .user_snapshot(&acme, &bob, consentry::store::ReadFrom::Primary)
        .await
        .unwrap()
        .0
        .unwrap();
    assert_eq!(
        snap.rights,
        [(path("/hr"), Right::Manage), (path("/"), Right::Write)]
            .into_iter()
            .collect()
    );
    assert_eq!(snap.right_at(&path("/hr/team/docs")), Some(Right::Manage));
    assert_eq!(snap.right_at(&path("/fin")), Some(Right::Write));

    // Revoking what is not held, or another level than held, is NOT_FOUND.
    refused!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/hr"), Right::Read),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/fin"), Right::Write),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/hr/team"), Right::Manage),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_user_right(
            &by_root(),
            &acme,
            &uid("ghost"),
            &path("/hr"),
            Right::Manage
        ),
        StoreError::NotFound(_)
    );
    let (_, ev) = wrote!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/hr"), Right::Manage)
    );
    assert_eq!(ev.action, "RevokeUserRight");
    assert_eq!(
        parsed(&ev.before),
        json!({"user_id": "bob", "resource": "/hr", "right": "MANAGE"})
    );
    assert_eq!(ev.after, None);
    wrote!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/"), Right::Write)
    );
    assert!(
        s.user_snapshot(&acme, &bob, consentry::store::ReadFrom::Primary)
            .await
            .unwrap()
            .0
            .unwrap()
            .rights
            .is_empty()
    );
    refused!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/hr"), Right::Manage),
        StoreError::NotFound(_)
    );
}
