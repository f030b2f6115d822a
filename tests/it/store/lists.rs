//! Lists: every list pages completely in id order, and a user's grants list what the viewer
//! sees in complete, stable pages.

use super::*;
use crate::support::db::{TestDb, backend_tests};

backend_tests!(
    every_list_pages_completely_in_id_order,
    a_users_grants_list_what_the_viewer_sees_in_complete_stable_pages,
);

/// 0..n in an order far from sorted: the odd numbers downwards, then the even ones upwards.
fn scrambled(n: usize) -> Vec<usize> {
    (0..n)
        .rev()
        .filter(|i| i % 2 == 1)
        .chain((0..n).filter(|i| i % 2 == 0))
        .collect()
}

async fn every_list_pages_completely_in_id_order(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;

    // Tenants, within bounds.
    for i in scrambled(12) {
        s.put_tenant(
            &by_root(),
            &tenant(&format!("t{i:02}"), "production", false),
        )
        .await
        .unwrap();
    }
    let (tenants, sizes) = all_pages!(5, |page| {
        s.list_tenants(&TenantBounds::All, &page).await.unwrap()
    });
    assert_eq!(sizes, [5, 5, 2]);
    assert_eq!(
        tenants
            .iter()
            .map(|t| t.tenant_id.to_string())
            .collect::<Vec<_>>(),
        (0..12).map(|i| format!("t{i:02}")).collect::<Vec<_>>()
    );
    let bounds = only(&["t11", "t03", "t07", "t99"]);
    let (bounded, sizes) = all_pages!(2, |page| s.list_tenants(&bounds, &page).await.unwrap());
    assert_eq!(sizes, [2, 1]);
    assert_eq!(
        bounded
            .iter()
            .map(|t| t.tenant_id.to_string())
            .collect::<Vec<_>>(),
        ["t03", "t07", "t11"]
    );
    assert!(
        all_pages!(5, |page| s
            .list_tenants(&only(&["t99"]), &page)
            .await
            .unwrap())
        .0
        .is_empty()
    );
    let nothing = TenantBounds::Only(BTreeSet::new());
    let got = s.list_tenants(&nothing, &first_page(5)).await;
    assert!(
        matches!(&got, Ok(page) if page.items.is_empty() && page.next.is_none()),
        "no tenants are within empty bounds: {got:?}"
    );

    // Ids order byte-wise on both backends (upper case, digits and punctuation included).
    let odd = [
        "Zed", "a-b", "a.b", "a:b", "a@b", "a_b", "aB", "Ab", "0x", "t0",
    ];
    for t in odd {
        s.put_tenant(&by_root(), &tenant(t, "production", false))
            .await
            .unwrap();
        s.put_user(&by_root(), &tid("t00"), &uid(t), RoleSet::EMPTY)
            .await
            .unwrap();
    }
    let mut expected: Vec<String> = odd.iter().map(|t| (*t).to_owned()).collect();
    expected.extend((0..12).map(|i| format!("t{i:02}")));
    expected.sort();
    let (tenants, _) = all_pages!(3, |page| {
        s.list_tenants(&TenantBounds::All, &page).await.unwrap()
    });
    assert_eq!(
        tenants
            .iter()
            .map(|t| t.tenant_id.to_string())
            .collect::<Vec<_>>(),
        expected
    );
    let mut expected: Vec<String> = odd.iter().map(|t| (*t).to_owned()).collect();
    expected.sort();
    let (users, _) = all_pages!(4, |page| s.list_users(&tid("t00"), &page).await.unwrap());
    assert_eq!(
        users.iter().map(|(u, _)| u.to_string()).collect::<Vec<_>>(),
        expected
    );
    for t in odd {
        s.delete_user(&by_root(), &tid("t00"), &uid(t))
            .await
            .unwrap();
    }

    // Applications.
    for i in scrambled(7) {
        register(
            s,
            &format!("app{i}"),
            AppKind::Standard,
            &Manifest::default(),
        )
        .await;
    }
    let (apps, sizes) = all_pages!(3, |page| s.list_apps(&page).await.unwrap());
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(
        apps.iter()
            .map(|a| a.app_id.to_string())
            .collect::<Vec<_>>(),
        (0..7).map(|i| format!("app{i}")).collect::<Vec<_>>()
    );

    // Clients.
    for i in scrambled(5) {
        s.create_client(
            None,
            &cid(&format!("c{i}")),
            &TenantBounds::All,
            Capabilities::of([Capability::Query]),
            &format!("hash-{i}"),
        )
        .await
        .unwrap();
    }
    let (clients, sizes) = all_pages!(2, |page| s.list_clients(&page).await.unwrap());
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(
        clients
            .iter()
            .map(|c| c.caller.client_id.to_string())
            .collect::<Vec<_>>(),
        ["c0", "c1", "c2", "c3", "c4"]
    );

    // Users (u0 is the administrator).
    let t = tid("t00");
    s.put_user(&by_root(), &t, &uid("u0"), roles(&[Role::GeneralAdmin]))
        .await
        .unwrap();
    for i in scrambled(7) {
        if i > 0 {
            plain_users(s, "t00", &[&format!("u{i}")]).await;
        }
    }
    let (users, sizes) = all_pages!(3, |page| s.list_users(&t, &page).await.unwrap());
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(
        users.iter().map(|(u, _)| u.to_string()).collect::<Vec<_>>(),
        (0..7).map(|i| format!("u{i}")).collect::<Vec<_>>()
    );
    assert_eq!(users[0].1, roles(&[Role::GeneralAdmin]));
    let got = s.list_users(&tid("initech"), &first_page(3)).await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");

    // Consents and whitelist entries.
    for i in scrambled(4) {
        s.approve_consent(&by("u0"), &t, &aid(&format!("app{i}")), 1, vec![])
            .await
            .unwrap();
    }
    let (consents, sizes) = all_pages!(3, |page| s.list_consents(&t, &page).await.unwrap());
    assert_eq!(sizes, [3, 1]);
    assert_eq!(
        consents
            .iter()
            .map(|(a, _)| a.to_string())
            .collect::<Vec<_>>(),
        ["app0", "app1", "app2", "app3"]
    );
    assert!(
        consents
            .iter()
            .all(|(_, c)| c.approved_by == principal("user:u0"))
    );
    for i in scrambled(5) {
        s.put_whitelist_entry(
            &by("u0"),
            &t,
            &aid(&format!("app{i}")),
            &WhitelistEntry::default(),
        )
        .await
        .unwrap();
    }
    let (entries, sizes) = all_pages!(2, |page| {
        s.list_whitelist_entries(&t, &page).await.unwrap()
    });
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(
        entries
            .iter()
            .map(|(a, _)| a.to_string())
            .collect::<Vec<_>>(),
        ["app0", "app1", "app2", "app3", "app4"]
    );
    let got = s.list_consents(&tid("initech"), &first_page(3)).await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");
    let got = s
        .list_whitelist_entries(&tid("initech"), &first_page(3))
        .await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");

    // Groups: those the viewer may see, plus those it manages.
    for i in scrambled(5) {
        let visible: &[&str] = if i % 2 == 0 { &["client:crm"] } else { &[] };
        let managers: &[(&str, ManagerAccess)] = if i == 3 {
            &[("client:ops", ManagerAccess::Read)]
        } else {
            &[]
        };
        s.create_group(
            &by("u0"),
            &t,
            spec(&format!("grp{i}"), "G", acl(managers, &[], visible)),
        )
        .await
        .unwrap();
        s.create_permission(
            &by("u0"),
            &t,
            &permission(&format!("perm{i}"), &format!("grp{i}"), "X"),
        )
        .await
        .unwrap();
    }
    let (groups, sizes) = all_pages!(2, |page| {
        s.list_groups(&t, &Viewer::User(uid("u0")), &page)
            .await
            .unwrap()
    });
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(
        groups
            .iter()
            .map(|g| g.group.group_id.to_string())
            .collect::<Vec<_>>(),
        ["grp0", "grp1", "grp2", "grp3", "grp4"]
    );
    assert!(groups.iter().zip(0..).all(|(g, i)| {
        g.permissions
            .iter()
            .map(|p| p.permission_id.to_string())
            .collect::<Vec<_>>()
            == [format!("perm{i}")]
    }));
    let seen = |v: Viewer| async move {
        groups_seen_by(s, "t00", &v)
            .await
            .into_iter()
            .map(|g| g.group_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seen(Viewer::Client(cid("crm"))).await,
        ["grp0", "grp2", "grp4"]
    );
    assert_eq!(seen(Viewer::Client(cid("ops"))).await, ["grp3"]);
    assert!(seen(Viewer::User(uid("u1"))).await.is_empty());
    let got = s
        .list_groups(&tid("initech"), &Viewer::User(uid("u0")), &first_page(3))
        .await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");

    // A user's rights, by resource.
    let paths = ["/", "/a", "/a/b", "/a/b/c", "/b", "/b/a", "/c"];
    for i in scrambled(paths.len()) {
        s.grant_user_right(&by_root(), &t, &uid("u1"), &path(paths[i]), Right::Read)
            .await
            .unwrap();
    }
    let (rights, sizes) = all_pages!(3, |page| {
        s.list_user_rights(&t, &uid("u1"), &page).await.unwrap()
    });
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(
        rights
            .iter()
            .map(|(p, _)| p.to_string())
            .collect::<Vec<_>>(),
        paths
    );
    let got = s.list_user_rights(&t, &uid("ghost"), &first_page(3)).await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");

    // Audit events: every revision once, oldest first.
    let total = s.revision().await.unwrap().0;
    let (all, sizes) = all_pages!(7, |page| {
        s.list_audit_events(&AuditFilter::default(), &page)
            .await
            .unwrap()
    });
    assert_eq!(revisions(&all), (1..=total).collect::<Vec<_>>());
    assert_eq!(sizes.iter().sum::<usize>() as u64, total);
    assert!(sizes[..sizes.len() - 1].iter().all(|&n| n == 7));
}

async fn a_users_grants_list_what_the_viewer_sees_in_complete_stable_pages(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["erin", "frank", "mia"]).await;
    // Groups are created out of id order; permission ids sort differently from their groups.
    let groups: [(&str, GroupAcl, &str, usize); 3] = [
        ("g-c", acl(&[], &["user:alice"], &["app:portal"]), "a", 8),
        (
            "g-a",
            acl(
                &[("user:mia", ManagerAccess::Read)],
                &["user:alice"],
                &["client:crm"],
            ),
            "m",
            9,
        ),
        (
            "g-b",
            acl(
                &[("user:mia", ManagerAccess::ReadWrite)],
                &["user:alice"],
                &["client:crm", "app:portal"],
            ),
            "b",
            8,
        ),
    ];
    let mut erin_grants = Vec::new();
    for (group, group_acl, prefix, count) in groups {
        s.create_group(&by("alice"), &acme, spec(group, group, group_acl))
            .await
            .unwrap();
        // Created and granted in reverse order.
        for i in (0..count).rev() {
            let p = format!("{prefix}{i:02}-{group}");
            s.create_permission(
                &by("alice"),
                &acme,
                &permission(&p, group, &format!("X{i}")),
            )
            .await
            .unwrap();
            s.grant_external(&by("alice"), &acme, &uid("erin"), &pid(&p), None)
                .await
                .unwrap();
            erin_grants.push((group.to_owned(), p.clone()));
            if i == 0 {
                s.grant_external(&by("alice"), &acme, &uid("frank"), &pid(&p), None)
                    .await
                    .unwrap();
            }
        }
    }
    // One more grant that expires at 50 s.
    s.create_permission(&by("alice"), &acme, &permission("z-late", "g-a", "LATE"))
        .await
        .unwrap();
    s.grant_external(
        &by("alice"),
        &acme,
        &uid("erin"),
        &pid("z-late"),
        Some(at(50)),
    )
    .await
    .unwrap();
    erin_grants.sort();
    assert_eq!(erin_grants.len(), 25);
    let now = at(100);

    // alice manages every group: all 25 unexpired grants, ordered by (group, permission), in
    // pages of 10, 10 and 5; no duplicates or gaps; only the last page has no `next`.
    let alice_query = grant_query(Viewer::User(uid("alice")), None, now);
    let rev = s.revision().await.unwrap();
    let (items, sizes) = all_pages!(10, |page| {
        let (got, at_rev) = s
            .list_user_grants(&acme, &uid("erin"), &alice_query, &page)
            .await
            .unwrap();
        assert_eq!(at_rev, rev);
        got
    });
    assert_eq!(sizes, [10, 10, 5]);
    let keys: Vec<(String, String)> = items
        .iter()
        .map(|g| (g.group_id.to_string(), g.permission_id.to_string()))
        .collect();
    assert_eq!(keys, erin_grants);
    let first = &items[0];
    assert_eq!(
        (
            first.group_name.as_str(),
            first.name.as_str(),
            first.external_id.as_str()
        ),
        ("g-a", "Permission m00-g-a", "X0")
    );
    assert_eq!(first.granted_by, principal("user:alice"));
    // The same query pages the same way again, and in pages that divide it exactly.
    let (again, _) = all_pages!(10, |page| {
        s.list_user_grants(&acme, &uid("erin"), &alice_query, &page)
            .await
            .unwrap()
            .0
    });
    assert_eq!(again, items);
    let (fives, sizes) = all_pages!(5, |page| {
        s.list_user_grants(&acme, &uid("erin"), &alice_query, &page)
            .await
            .unwrap()
            .0
    });
    assert_eq!(sizes, [5, 5, 5, 5, 5]);
    assert_eq!(fives, items);
    let (ones, sizes) = all_pages!(1, |page| {
        s.list_user_grants(&acme, &uid("erin"), &alice_query, &page)
            .await
            .unwrap()
            .0
    });
    assert_eq!(sizes.len(), 25);
    assert_eq!(ones, items);

    // Before it expires, the extra grant is listed too; from its expiry on, it is not.
    let just_before = Timestamp::from_micros(at(50).as_micros() - 1);
    let early = grant_query(Viewer::User(uid("alice")), None, just_before);
    let with_late = grant_keys(s, "acme", "erin", &early).await;
    assert_eq!(with_late.len(), 26);
    assert!(with_late.contains(&("g-a".to_owned(), "z-late".to_owned())));
    let at_expiry = grant_query(Viewer::User(uid("alice")), None, at(50));
    assert_eq!(grant_keys(s, "acme", "erin", &at_expiry).await, erin_grants);

    // Each viewer sees only its groups.
    let groups_of = |keys: Vec<(String, String)>| {
        keys.into_iter()
            .map(|(g, _)| g)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    };
    for (viewer, expected) in [
        (Viewer::User(uid("mia")), vec!["g-a", "g-b"]),
        (Viewer::Client(cid("crm")), vec!["g-a", "g-b"]),
        (Viewer::App(aid("portal")), vec!["g-b", "g-c"]),
        (Viewer::Client(cid("portal")), vec![]),
        (Viewer::App(aid("crm")), vec![]),
        (Viewer::User(uid("erin")), vec![]),
    ] {
        let keys = grant_keys(s, "acme", "erin", &grant_query(viewer.clone(), None, now)).await;
        let expected_keys: Vec<_> = erin_grants
            .iter()
            .filter(|(g, _)| expected.contains(&g.as_str()))
            .cloned()
            .collect();
        assert_eq!(keys, expected_keys, "{viewer:?}");
        assert_eq!(groups_of(keys), expected, "{viewer:?}");
    }

    // Filtering by group.
    let only_b = grant_keys(
        s,
        "acme",
        "erin",
        &grant_query(Viewer::User(uid("alice")), Some("g-b"), now),
    )
    .await;
    assert_eq!(only_b.len(), 8);
    assert!(only_b.iter().all(|(g, _)| g == "g-b"));
    let (b_pages, sizes) = all_pages!(3, |page| {
        s.list_user_grants(
            &acme,
            &uid("erin"),
            &grant_query(Viewer::User(uid("alice")), Some("g-b"), now),
            &page,
        )
        .await
        .unwrap()
        .0
    });
    assert_eq!(sizes, [3, 3, 2]);
    assert_eq!(b_pages.len(), 8);
    assert!(
        grant_keys(
            s,
            "acme",
            "erin",
            &grant_query(Viewer::User(uid("mia")), Some("g-c"), now)
        )
        .await
        .is_empty()
    );
    assert!(
        grant_keys(
            s,
            "acme",
            "erin",
            &grant_query(Viewer::User(uid("alice")), Some("ghost"), now)
        )
        .await
        .is_empty()
    );

    // Other users' grants are theirs; unknown users have none; unknown tenants are NOT_FOUND.
    assert_eq!(
        grant_keys(s, "acme", "frank", &alice_query).await,
        [
            ("g-a".to_owned(), "m00-g-a".to_owned()),
            ("g-b".to_owned(), "b00-g-b".to_owned()),
            ("g-c".to_owned(), "a00-g-c".to_owned()),
        ]
    );
    assert!(
        grant_keys(s, "acme", "ghost", &alice_query)
            .await
            .is_empty()
    );
    let got = s
        .list_user_grants(&tid("initech"), &uid("erin"), &alice_query, &first_page(10))
        .await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");
}
