//! Atomicity, persistence and concurrency: a write that fails part way leaves no trace, a
//! restarted store keeps everything, and concurrent writes take consecutive revisions.

use super::*;
use crate::support::db::{TestDb, backend_tests};
use consentry::store::TenantWrites;

backend_tests!(
    a_write_that_fails_part_way_leaves_no_trace,
    a_restarted_store_keeps_everything,
    concurrent_writes_take_consecutive_revisions,
);

async fn a_write_that_fails_part_way_leaves_no_trace(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    let ((_, group), _) = wrote!(
        s,
        s.create_group(
            &by("alice"),
            &acme,
            spec(
                "g",
                "Original",
                acl(
                    &[("user:dave", ManagerAccess::Read)],
                    &["user:alice"],
                    &["client:crm"]
                )
            )
        )
    );
    let alice = Viewer::User(uid("alice"));
    assert_eq!(
        groups_seen_by(s, "acme", &alice).await,
        std::slice::from_ref(&group)
    );

    // An ACL built around GroupAcl::new's checks, listing one manager twice: the UPDATE of the
    // name and the DELETE of the old principals run before the second INSERT fails.
    let twice = GroupAcl {
        managers: vec![
            (principal("user:alice"), ManagerAccess::ReadWrite),
            (principal("user:alice"), ManagerAccess::ReadWrite),
        ],
        grantors: vec![],
        visible_to: vec![],
    };
    let before = s.revision().await.unwrap();
    let result = s
        .update_group(&by("alice"), &acme, spec("g", "Renamed", twice))
        .await;
    assert!(result.is_err(), "{result:?}");
    check_untouched(s, before).await;
    assert_eq!(
        groups_seen_by(s, "acme", &alice).await,
        std::slice::from_ref(&group)
    );

    // A create that fails after its first INSERT: no group is left behind.
    let grantor_twice = GroupAcl {
        managers: vec![],
        grantors: vec![principal("user:bob"), principal("user:bob")],
        visible_to: vec![],
    };
    let result = s
        .create_group(&by("alice"), &acme, spec("g2", "New", grantor_twice))
        .await;
    assert!(result.is_err(), "{result:?}");
    check_untouched(s, before).await;
    assert_eq!(
        groups_seen_by(s, "acme", &alice).await,
        std::slice::from_ref(&group)
    );

    // The store carries on: the next writes take the next revisions, and g2 is free.
    let ((written, g2), _) = wrote!(
        s,
        s.create_group(&by("alice"), &acme, spec("g2", "New", GroupAcl::default()))
    );
    assert_eq!(written, Revision::number(before.0 + 1));
    assert_eq!(groups_seen_by(s, "acme", &alice).await, [group, g2]);
}

async fn a_restarted_store_keeps_everything(db: &TestDb) {
    let store = db.store().await;
    assert_eq!(store.backend(), db.backend);
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["bob"]).await;
    s.put_tenant(&by("alice"), &tenant("acme", "production", true))
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
    let m = manifest(
        &["documents:read"],
        &[(ScopeLevel::SiteCollection, Right::Manage)],
    );
    register(s, "crm", AppKind::Standard, &m).await;
    s.approve_consent(
        &by("alice"),
        &acme,
        &aid("crm"),
        1,
        vec![rr(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await
    .unwrap();
    s.put_whitelist_entry(
        &by("alice"),
        &acme,
        &aid("crm"),
        &WhitelistEntry {
            allowed_scopes: scopes(&["documents:read"]),
            content_access: ContentAccess::OnBehalfOfManagedUsers,
        },
    )
    .await
    .unwrap();
    s.create_group(
        &by("alice"),
        &acme,
        spec("g", "G", acl(&[], &["user:alice"], &["client:crm"])),
    )
    .await
    .unwrap();
    s.create_permission(&by("alice"), &acme, &permission("p", "g", "P"))
        .await
        .unwrap();
    s.grant_external(&by("alice"), &acme, &uid("bob"), &pid("p"), Some(at(900)))
        .await
        .unwrap();
    s.create_client(
        None,
        &cid("svc"),
        &only(&["acme"]),
        Capabilities::of([Capability::Query]),
        "hash-svc",
    )
    .await
    .unwrap();

    let revision = s.revision().await.unwrap();
    let app = s
        .app_snapshot(&acme, &aid("crm"), consentry::store::ReadFrom::Primary)
        .await
        .unwrap();
    let users: BTreeMap<&str, _> = [
        (
            "alice",
            s.user_snapshot(&acme, &uid("alice"), consentry::store::ReadFrom::Primary)
                .await
                .unwrap(),
        ),
        (
            "bob",
            s.user_snapshot(&acme, &uid("bob"), consentry::store::ReadFrom::Primary)
                .await
                .unwrap(),
        ),
    ]
    .into_iter()
    .collect();
    let query = grant_query(Viewer::Client(cid("crm")), None, at(0));
    let grants = s
        .list_user_grants(&acme, &uid("bob"), &query, &first_page(10))
        .await
        .unwrap();
    let audit = events(s).await;
    let groups = groups_seen_by(s, "acme", &Viewer::User(uid("alice"))).await;
    let client = s.client_by_key_hash("hash-svc").await.unwrap();
    assert!(client.is_some());
    assert_eq!(app.0.consent_state(), &ConsentState::Approved);
    assert!(!app.0.blocked_by_whitelist());
    assert_eq!(grants.0.items.len(), 1);

    store.pool().close().await;
    drop(store);
    if let Some(file) = db.sqlite_path() {
        assert!(file.is_file(), "{} holds the data", file.display());
    }

    let store = db.store().await;
    let s: &dyn Store = &store;
    assert_eq!(s.revision().await.unwrap(), revision);
    assert_eq!(
        s.app_snapshot(&acme, &aid("crm"), consentry::store::ReadFrom::Primary)
            .await
            .unwrap(),
        app
    );
    for (user, snap) in &users {
        assert_eq!(
            &s.user_snapshot(&acme, &uid(user), consentry::store::ReadFrom::Primary)
                .await
                .unwrap(),
            snap
        );
    }
    let again = s
        .list_user_grants(&acme, &uid("bob"), &query, &first_page(10))
        .await
        .unwrap();
    assert_eq!((again.0.items, again.1), (grants.0.items, grants.1));
    assert_eq!(events(s).await, audit);
    assert_eq!(
        groups_seen_by(s, "acme", &Viewer::User(uid("alice"))).await,
        groups
    );
    assert_eq!(s.client_by_key_hash("hash-svc").await.unwrap(), client);
    assert_eq!(
        s.tenant(&acme).await.unwrap(),
        Some(tenant("acme", "production", true))
    );
    // And it carries on from where it was.
    let (written, _) = wrote!(
        s,
        s.put_user(&by_root(), &acme, &uid("carol"), RoleSet::EMPTY)
    );
    assert_eq!(written, Revision::number(revision.0 + 1));
}

async fn concurrent_writes_take_consecutive_revisions(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    tenant_with_admin(s, "acme", "alice").await;
    let base = s.revision().await.unwrap().0;
    let writers = 16_u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..writers {
        let store = store.clone();
        tasks.spawn(async move {
            let user = format!("u{i:02}");
            let written = store
                .put_user(&by_root(), &tid("acme"), &uid(&user), RoleSet::EMPTY)
                .await
                .unwrap();
            (written, user)
        });
    }
    let mut written: BTreeMap<u64, String> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (revision, user) = done.unwrap();
        assert!(
            written.insert(revision.0, user).is_none(),
            "revision taken twice"
        );
    }
    // Every write took its own revision, with no gap, and its own audit event there.
    assert_eq!(
        written.keys().copied().collect::<Vec<_>>(),
        (base + 1..=base + writers).collect::<Vec<_>>()
    );
    assert_eq!(
        s.revision().await.unwrap(),
        Revision::number(base + writers)
    );
    let all = events(s).await;
    assert_eq!(revisions(&all), (1..=base + writers).collect::<Vec<_>>());
    for event in &all[base as usize..] {
        assert_eq!(event.target, format!("user:{}", written[&event.revision.0]));
    }
    let (users, _) = all_pages!(100, |page| s.list_users(&tid("acme"), &page).await.unwrap());
    assert_eq!(users.len() as u64, writers + 1);
}
