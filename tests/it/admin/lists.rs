//! What every List RPC answers after the writes that fill it, and paging: complete, in order,
//! stable under writes between pages, with the default and largest page sizes.

use std::collections::BTreeSet;

use consentry::proto::*;
use consentry::service::auth::hash_key;
use prost::Message;

use super::*;
use crate::support::calls::{Who, ok};
use crate::support::db::{TestDb, backend_tests, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::{BOOTSTRAP_KEY, TestServer};

backend_tests!(lists_page_completely_and_stably);

postgres_tests!(every_list_rpc_answers_what_was_written);

// ---------------------------------------------------------------------------------------------
// What the listings show.

async fn every_list_rpc_answers_what_was_written(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    ok(a.put_tenant(boot.r(tenant_req("beta", "stage", true)))
        .await);
    put_user(
        &mut a,
        &alice,
        ACME,
        "dave",
        &[Role::UserAdmin, Role::Delegate],
    )
    .await;
    for (resource, right) in [
        ("/hr", Right::Write),
        ("/hr/team/docs", Right::Read),
        ("/a..b", Right::FullControl),
    ] {
        ok(
            a.grant_user_right(boot.r(right_req(ACME, "carol", resource, right)))
                .await,
        );
    }
    // Granting again replaces the level held at that path.
    ok(
        a.grant_user_right(boot.r(right_req(ACME, "carol", "/hr", Right::Manage)))
            .await,
    );
    let crm = Manifest {
        allow_app_only: true,
        policy: Policy::UserOnly.into(),
        webhooks: true,
        ..manifest(
            &["documents:read", "documents:write"],
            &[(ScopeLevel::Web, Right::Write)],
        )
    };
    register(&mut a, "crm", AppKind::Standard, crm.clone()).await;
    register(&mut a, "tool", AppKind::Custom, Manifest::default()).await;
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
    let svc_key = new_client(
        &mut a,
        &boot,
        "svc",
        &[ACME],
        &[Capability::Query, Capability::Admin],
    )
    .await;
    let svc = Who::key(&svc_key);
    new_client(&mut a, &boot, "gone", &["*"], &[Capability::Query]).await;
    ok(a.revoke_client(boot.r(RevokeClientRequest {
        client_id: "gone".into(),
    }))
    .await);
    ok(a.approve_consent(alice.r(approve_req(
        ACME,
        "crm",
        1,
        vec![resolved(ScopeLevel::Web, Right::Write, "/hr/team")],
    )))
    .await);
    ok(
        a.approve_consent(mgr.r(approve_req(ACME, "tool", 1, vec![])))
            .await,
    );
    ok(a.put_whitelist_entry(alice.r(PutWhitelistEntryRequest {
        content_access: ContentAccess::OnBehalfOfManagedUsers.into(),
        ..whitelist_req(ACME, "crm", &["documents:read"])
    }))
    .await);
    ok(
        a.put_whitelist_entry(alice.r(whitelist_req(ACME, "tool", &[])))
            .await,
    );
    ok(a.create_permission_group(bob.r(group_req(
        ACME,
        "g1",
        &[("user:carol", ManagerAccess::Read)],
        &["user:bob"],
        &["client:svc"],
    )))
    .await);
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g2", &[], &[], &[])))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g2", "p2", "P-2")))
            .await,
    );
    // An expiry in the past is accepted (the grant is simply expired); granting again updates it.
    ok(
        a.grant_external_permission(bob.r(GrantExternalPermissionRequest {
            expires_at: Some(timestamp(-3600)),
            ..grant_req(ACME, "carol", "p1")
        }))
        .await,
    );
    ok(
        a.grant_external_permission(bob.r(grant_req(ACME, "carol", "p1")))
            .await,
    );

    // ListTenants: within the caller's tenants.
    let tenants = ok(a.list_tenants(boot.r(ListTenantsRequest::default())).await).tenants;
    assert_eq!(
        tenants,
        vec![
            Tenant {
                tenant_id: "acme".into(),
                environment: "production".into(),
                whitelisting_enabled: false
            },
            Tenant {
                tenant_id: "beta".into(),
                environment: "stage".into(),
                whitelisting_enabled: true
            },
        ]
    );
    let tenants = ok(a.list_tenants(svc.r(ListTenantsRequest::default())).await).tenants;
    assert_eq!(
        tenants
            .iter()
            .map(|t| t.tenant_id.as_str())
            .collect::<Vec<_>>(),
        ["acme"]
    );

    // ListUsers: ordered by id, with their roles as given.
    let users = ok(a
        .list_users(boot.r(ListUsersRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .users;
    let users: Vec<(String, Vec<i32>)> = users
        .into_iter()
        .map(|u| {
            assert_eq!(u.tenant_id, ACME);
            (u.user_id, u.roles)
        })
        .collect();
    assert_eq!(
        users,
        vec![
            ("alice".to_owned(), role_codes(&[Role::GeneralAdmin])),
            ("bob".to_owned(), role_codes(&[Role::PermissionManager])),
            ("carol".to_owned(), vec![]),
            (
                "dave".to_owned(),
                role_codes(&[Role::UserAdmin, Role::Delegate])
            ),
        ]
    );

    // ListUserRights: one level per path, ordered by resource.
    let rights = ok(a
        .list_user_rights(boot.r(ListUserRightsRequest {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
            ..Default::default()
        }))
        .await)
    .rights;
    let rights: Vec<(String, i32)> = rights.into_iter().map(|r| (r.resource, r.right)).collect();
    assert_eq!(
        rights,
        vec![
            ("/a..b".to_owned(), i32::from(Right::FullControl)),
            ("/hr".to_owned(), i32::from(Right::Manage)),
            ("/hr/team/docs".to_owned(), i32::from(Right::Read)),
        ]
    );

    // ListApps: the manifest as registered, defaults filled in.
    let apps = ok(a.list_apps(svc.r(ListAppsRequest::default())).await).apps;
    assert_eq!(
        apps.iter().map(|a| a.app_id.as_str()).collect::<Vec<_>>(),
        ["crm", "tool"]
    );
    let want = Manifest {
        run_as: RunAs::UserContext.into(),
        ..crm.clone()
    };
    assert_eq!(apps[0].manifest.as_ref(), Some(&want));
    assert_eq!(
        (
            apps[0].name.as_str(),
            apps[0].kind,
            apps[0].manifest_revision
        ),
        ("App crm", AppKind::Standard.into(), 1)
    );
    assert_eq!(apps[1].kind, i32::from(AppKind::Custom));
    assert_eq!(
        apps[1].manifest.as_ref().map(|m| (m.run_as, m.policy)),
        Some((RunAs::UserContext.into(), Policy::UserAndApp.into()))
    );

    // ListConsents: with approver, time and the approved snapshot.
    let consents = ok(a
        .list_consents(svc.r(ListConsentsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .consents;
    assert_eq!(consents.len(), 2);
    let c = &consents[0];
    assert_eq!(
        (c.app_id.as_str(), c.approved_by.as_str()),
        ("crm", "user:alice")
    );
    assert!(near_now(c.approved_at.as_ref()), "{c:?}");
    assert_eq!(c.approved_manifest_revision, 1);
    assert_eq!(c.approved_manifest.as_ref(), Some(&want));
    assert_eq!(
        c.resolved_requests,
        vec![resolved(ScopeLevel::Web, Right::Write, "/hr/team")]
    );
    assert_eq!(c.revoked_at, None);
    assert_eq!(
        (
            consents[1].app_id.as_str(),
            consents[1].approved_by.as_str()
        ),
        ("tool", "client:mgr")
    );
    let beta = ok(a
        .list_consents(boot.r(ListConsentsRequest {
            tenant_id: "beta".into(),
            ..Default::default()
        }))
        .await)
    .consents;
    assert!(beta.is_empty(), "consent is never copied between tenants");

    // ListWhitelistEntries.
    let entries = ok(a
        .list_whitelist_entries(svc.r(ListWhitelistEntriesRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .entries;
    assert_eq!(
        entries,
        vec![
            WhitelistEntry {
                tenant_id: ACME.into(),
                app_id: "crm".into(),
                allowed_scopes: strings(&["documents:read"]),
                content_access: ContentAccess::OnBehalfOfManagedUsers.into(),
            },
            WhitelistEntry {
                tenant_id: ACME.into(),
                app_id: "tool".into(),
                allowed_scopes: vec![],
                content_access: ContentAccess::OwnContent.into(),
            },
        ]
    );

    // ListPermissionGroups: what the viewer may see or manages, with the permissions.
    let groups_for = |who: Who| {
        let mut a = a.clone();
        async move {
            ok(a.list_permission_groups(who.r(ListPermissionGroupsRequest {
                tenant_id: ACME.into(),
                ..Default::default()
            }))
            .await)
            .groups
        }
    };
    let groups = groups_for(bob.clone()).await;
    assert_eq!(
        groups
            .iter()
            .map(|g| g.group_id.as_str())
            .collect::<Vec<_>>(),
        ["g1", "g2"]
    );
    let g1 = &groups[0];
    assert_eq!(g1.name, "Group g1");
    assert_eq!(
        g1.managers,
        vec![
            Manager {
                principal: "user:carol".into(),
                access: ManagerAccess::Read.into()
            },
            Manager {
                principal: "user:bob".into(),
                access: ManagerAccess::ReadWrite.into()
            },
        ]
    );
    assert_eq!(g1.grantors, strings(&["user:bob"]));
    assert_eq!(g1.visible_to, strings(&["client:svc"]));
    assert_eq!(
        g1.permissions,
        vec![ExternalPermission {
            permission_id: "p1".into(),
            group_id: "g1".into(),
            name: "Permission p1".into(),
            description: String::new(),
            external_id: "P-1".into(),
        }]
    );
    let ids = |groups: Vec<PermissionGroup>| {
        groups
            .into_iter()
            .map(|g| g.group_id)
            .collect::<Vec<String>>()
    };
    assert_eq!(
        ids(groups_for(boot.user("carol")).await),
        ["g1"],
        "a READ manager"
    );
    assert_eq!(
        ids(groups_for(svc.clone()).await),
        ["g1"],
        "a visible-to client"
    );
    assert!(
        ids(groups_for(alice.clone()).await).is_empty(),
        "an administrator who manages nothing"
    );
    assert!(
        ids(groups_for(boot.clone()).await).is_empty(),
        "a client that sees nothing"
    );

    // ListClients: tenants, capabilities, revocation; never a key.
    let clients = ok(a.list_clients(boot.r(ListClientsRequest::default())).await).clients;
    assert_eq!(
        clients
            .iter()
            .map(|c| c.client_id.as_str())
            .collect::<Vec<_>>(),
        ["bootstrap", "gone", "mgr", "svc"]
    );
    let svc_row = &clients[3];
    assert_eq!(svc_row.tenants, strings(&[ACME]));
    assert_eq!(
        svc_row.capabilities,
        caps(&[Capability::Query, Capability::Admin])
    );
    assert!(near_now(svc_row.created_at.as_ref()));
    assert_eq!(svc_row.revoked_at, None);
    assert!(near_now(clients[1].revoked_at.as_ref()), "gone is revoked");
    assert_eq!(clients[0].tenants, strings(&["*"]));
    assert_eq!(clients[0].capabilities, caps(&ALL_CAPS));
    for c in &clients {
        let bytes = c.encode_to_vec();
        for secret in [svc_key.clone(), hash_key(&svc_key), hash_key(BOOTSTRAP_KEY)] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "ListClients leaks a key or hash"
            );
        }
    }

    // ListAuditEvents: oldest first.
    let audit = all_events(&mut a).await;
    assert!(audit.len() > 20);
    assert!(
        audit
            .windows(2)
            .all(|p| rev(&p[0].revision) < rev(&p[1].revision))
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Paging.

/// Asserts pages of `sizes` that together hold `expected`, in order, each once.
#[track_caller]
fn assert_pages(what: &str, pages: &[Vec<String>], sizes: &[usize], expected: &[String]) {
    let got: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(got, sizes, "{what}: page sizes");
    let flat = pages.concat();
    let unique: BTreeSet<&String> = flat.iter().collect();
    assert_eq!(unique.len(), flat.len(), "{what}: an item came twice");
    assert_eq!(flat, expected, "{what}: the items in order");
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

async fn lists_page_completely_and_stably(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let admin = boot.user("u00");
    let tenants = ids("t", 25);
    let users = ids("u", 25);
    let apps = ids("app", 25);
    let groups = ids("g", 25);
    let clients = ids("c", 24);
    for t in &tenants {
        put_tenant(&mut a, t).await;
    }
    let t0 = tenants[0].as_str();
    put_user(&mut a, &boot, t0, &users[0], &[Role::GeneralAdmin]).await;
    for u in &users[1..] {
        put_user(&mut a, &boot, t0, u, &[]).await;
    }
    let paths: Vec<String> = ids("/p", 25);
    for path in &paths {
        ok(
            a.grant_user_right(boot.r(right_req(t0, "u01", path, Right::Read)))
                .await,
        );
    }
    for app in &apps {
        register(&mut a, app, AppKind::Standard, Manifest::default()).await;
        ok(a.approve_consent(admin.r(approve_req(t0, app, 1, vec![])))
            .await);
        ok(a.put_whitelist_entry(admin.r(whitelist_req(t0, app, &[])))
            .await);
    }
    for g in &groups {
        ok(
            a.create_permission_group(admin.r(group_req(t0, g, &[], &[], &[])))
                .await,
        );
    }
    for c in &clients {
        new_client(&mut a, &boot, c, &[t0], &[Capability::Query]).await;
    }
    let mut all_clients = clients.clone();
    all_clients.insert(0, "bootstrap".to_owned());
    let sizes = [10, 10, 5];

    let got = pages!(
        a,
        boot,
        10,
        list_tenants,
        ListTenantsRequest::default(),
        tenants,
        |t| t.tenant_id.clone()
    );
    assert_pages("tenants", &got, &sizes, &tenants);
    let got = pages!(
        a,
        boot,
        10,
        list_apps,
        ListAppsRequest::default(),
        apps,
        |x| x.app_id.clone()
    );
    assert_pages("apps", &got, &sizes, &apps);
    let got = pages!(
        a,
        boot,
        10,
        list_clients,
        ListClientsRequest::default(),
        clients,
        |c| c.client_id.clone()
    );
    assert_pages("clients", &got, &sizes, &all_clients);
    let got = pages!(
        a,
        boot,
        10,
        list_users,
        ListUsersRequest {
            tenant_id: t0.into(),
            ..Default::default()
        },
        users,
        |u| u.user_id.clone()
    );
    assert_pages("users", &got, &sizes, &users);
    let got = pages!(
        a,
        boot,
        10,
        list_user_rights,
        ListUserRightsRequest {
            tenant_id: t0.into(),
            user_id: "u01".into(),
            ..Default::default()
        },
        rights,
        |r| r.resource.clone()
    );
    assert_pages("rights", &got, &sizes, &paths);
    let got = pages!(
        a,
        boot,
        10,
        list_consents,
        ListConsentsRequest {
            tenant_id: t0.into(),
            ..Default::default()
        },
        consents,
        |c| c.app_id.clone()
    );
    assert_pages("consents", &got, &sizes, &apps);
    let got = pages!(
        a,
        boot,
        10,
        list_whitelist_entries,
        ListWhitelistEntriesRequest {
            tenant_id: t0.into(),
            ..Default::default()
        },
        entries,
        |e| e.app_id.clone()
    );
    assert_pages("whitelist entries", &got, &sizes, &apps);
    let got = pages!(
        a,
        admin,
        10,
        list_permission_groups,
        ListPermissionGroupsRequest {
            tenant_id: t0.into(),
            ..Default::default()
        },
        groups,
        |g| g.group_id.clone()
    );
    assert_pages("groups", &got, &sizes, &groups);
    let every: Vec<String> = all_events(&mut a)
        .await
        .into_iter()
        .map(|e| e.revision)
        .collect();
    assert!(every.len() > 150, "{}", every.len());
    let got = pages!(
        a,
        boot,
        10,
        list_audit_events,
        ListAuditEventsRequest::default(),
        events,
        |e| e.revision.clone()
    );
    let mut event_sizes = vec![10; every.len() / 10];
    if !every.len().is_multiple_of(10) {
        event_sizes.push(every.len() % 10);
    }
    assert_pages("audit events", &got, &event_sizes, &every);
    // The default page size is 50; larger ones are clamped to 500.
    let first = ok(a
        .list_audit_events(boot.r(ListAuditEventsRequest::default()))
        .await);
    assert_eq!(first.events.len(), 50);
    assert!(!first.next_page_token.is_empty());
    let huge = ok(a
        .list_audit_events(boot.r(ListAuditEventsRequest {
            page_size: i32::MAX,
            ..Default::default()
        }))
        .await);
    assert_eq!(huge.events.len(), every.len().min(500));

    // Stable under writes between pages: an item before the position is not seen, one after
    // it is, nothing comes twice.
    let first = ok(a
        .list_users(boot.r(ListUsersRequest {
            tenant_id: t0.into(),
            page_size: 10,
            ..Default::default()
        }))
        .await);
    put_user(&mut a, &boot, t0, "a-early", &[]).await;
    put_user(&mut a, &boot, t0, "u05x", &[]).await;
    put_user(&mut a, &boot, t0, "zz-late", &[]).await;
    let mut seen: Vec<String> = first.users.into_iter().map(|u| u.user_id).collect();
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let page = ok(a
            .list_users(boot.r(ListUsersRequest {
                tenant_id: t0.into(),
                page_size: 10,
                page_token: token,
            }))
            .await);
        seen.extend(page.users.into_iter().map(|u| u.user_id));
        token = page.next_page_token;
    }
    let mut want = users.clone();
    want.push("zz-late".to_owned());
    assert_eq!(seen, want);
    server.stop().await;
}
