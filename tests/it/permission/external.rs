//! The external permission queries (docs/rules.md §4): what each kind of viewer may see, complete
//! and stable pages, and expired grants hidden whether cached or not.

use std::collections::BTreeSet;

use tonic::Code;

use super::*;
use crate::support::calls::{Cases, fails};
use crate::support::db::{backend_tests, postgres_tests};
use crate::support::server::eventually;

backend_tests!(
    external_permissions_are_shown_to_the_viewers_that_may_see_them,
    external_permission_pages_are_complete_and_stable,
    app_id_is_validated_whoever_the_viewer_is,
);

postgres_tests!(expired_grants_are_hidden_cached_or_not);

/// Groups `billing` (read by mona; visible to client `viewer` and app `crm`) and `hr` (visible
/// to client `other`), both created by carol; dave holds all three permissions; the clients
/// `viewer`, `other` (query), `idp` (query + assert_user) and `plain` (query). Returns their
/// keys in that order.
async fn external_world(api: &Api) -> [String; 4] {
    api.put_tenant("acme", false, None).await;
    api.put_user("acme", "alice", &[Role::GeneralAdmin], None)
        .await;
    api.put_user("acme", "carol", &[Role::PermissionManager], Some("alice"))
        .await;
    for user in ["mona", "dave", "erin"] {
        api.put_user("acme", user, &[], None).await;
    }
    api.register("crm", AppKind::Standard, crm_manifest()).await;
    api.group(
        "acme",
        "billing",
        &["user:mona"],
        &["client:viewer", "app:crm"],
    )
    .await;
    api.group("acme", "hr", &[], &["client:other"]).await;
    api.permission("acme", "billing", "billing.view", "INV-VIEW")
        .await;
    api.permission("acme", "billing", "billing.pay", "INV-PAY")
        .await;
    api.permission("acme", "hr", "hr.leave", "LEAVE").await;
    for p in ["billing.view", "billing.pay", "hr.leave"] {
        api.grant("acme", "dave", p, None).await;
    }
    let query = [Capability::Query];
    [
        api.client("viewer", &["acme"], &query).await,
        api.client("other", &["acme"], &query).await,
        api.client(
            "idp",
            &["acme"],
            &[Capability::Query, Capability::AssertUser],
        )
        .await,
        api.client("plain", &["acme"], &query).await,
    ]
}

async fn external_permissions_are_shown_to_the_viewers_that_may_see_them(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(server.addr).await;
    let [viewer, other, idp, plain] = external_world(&api).await;
    let billing = ["billing.pay", "billing.view"];
    let all = ["billing.pay", "billing.view", "hr.leave"];
    let none: [&str; 0] = [];
    // The same answers from the cache (default) and from the store.
    for consistency in [None, fully()] {
        let ids = async |key: &str, user: Option<&str>, r: ListExternalPermissionsRequest| {
            let r = ListExternalPermissionsRequest {
                consistency: consistency.clone(),
                ..r
            };
            let what = format!("list {r:?} as {user:?} with {consistency:?}");
            let page = api
                .list(key, user, r)
                .await
                .unwrap_or_else(|s| panic!("{what}: {:?}: {}", s.code(), s.message()));
            assert!(page.next_page_token.is_empty());
            rev(&page.checked_at);
            page.permissions
                .iter()
                .map(|g| g.permission_id.clone())
                .collect::<Vec<_>>()
        };
        // Client viewers: on a group's visible_to or not.
        assert_eq!(ids(&viewer, None, listing("dave", "", "")).await, billing);
        assert_eq!(
            ids(&other, None, listing("dave", "", "")).await,
            ["hr.leave"]
        );
        assert_eq!(ids(&plain, None, listing("dave", "", "")).await, none);
        // User viewers: managers with READ (mona) or READ_WRITE (carol, the creator); others none.
        assert_eq!(
            ids(&idp, Some("mona"), listing("dave", "", "")).await,
            billing
        );
        assert_eq!(ids(&idp, Some("carol"), listing("dave", "", "")).await, all);
        assert_eq!(ids(&idp, Some("dave"), listing("dave", "", "")).await, none);
        // The acting user decides even when an app_id is named too.
        assert_eq!(
            ids(&idp, Some("mona"), listing("dave", "crm", "")).await,
            billing
        );
        // App viewers (need assert_user): groups whose visible_to lists app:<id>.
        assert_eq!(ids(&idp, None, listing("dave", "crm", "")).await, billing);
        assert_eq!(ids(&idp, None, listing("dave", "portal", "")).await, none);
        // The idp itself, as a client, is on no visible_to list.
        assert_eq!(ids(&idp, None, listing("dave", "", "")).await, none);
        // Group filters: a visible group, an invisible one, an unknown one (empty, not an error).
        assert_eq!(
            ids(&viewer, None, listing("dave", "", "billing")).await,
            billing
        );
        assert_eq!(ids(&viewer, None, listing("dave", "", "hr")).await, none);
        assert_eq!(ids(&viewer, None, listing("dave", "", "nope")).await, none);
        // A user with no grants, and one the tenant does not know.
        assert_eq!(ids(&viewer, None, listing("erin", "", "")).await, none);
        assert_eq!(ids(&viewer, None, listing("zed", "", "")).await, none);

        // The grants carry what an app needs.
        let page = api
            .list(
                &viewer,
                None,
                ListExternalPermissionsRequest {
                    consistency: consistency.clone(),
                    ..listing("dave", "", "")
                },
            )
            .await
            .unwrap();
        let pay = &page.permissions[0];
        assert_eq!(
            (
                pay.group_id.as_str(),
                pay.group_name.as_str(),
                pay.name.as_str(),
                pay.external_id.as_str(),
                pay.granted_by.as_str()
            ),
            (
                "billing",
                "Group billing",
                "Permission billing.pay",
                "INV-PAY",
                "client:bootstrap"
            )
        );
        assert!(pay.granted_at.is_some() && pay.expires_at.is_none());

        // Without assert_user, neither a user header nor an app_id may be named.
        fails(
            api.list(&plain, Some("mona"), listing("dave", "", ""))
                .await,
            Code::PermissionDenied,
            "",
        );
        fails(
            api.list(&plain, None, listing("dave", "crm", "")).await,
            Code::PermissionDenied,
            "",
        );
        fails(
            api.list(&idp, None, listing("dave", "bad app", "")).await,
            Code::InvalidArgument,
            "",
        );
        // An unknown tenant is NOT_FOUND (the bootstrap client may ask about any tenant).
        fails(
            api.list(
                BOOTSTRAP_KEY,
                None,
                ListExternalPermissionsRequest {
                    tenant_id: "ghost".into(),
                    consistency: consistency.clone(),
                    ..listing("dave", "", "")
                },
            )
            .await,
            Code::NotFound,
            "",
        );

        // CheckExternalPermission, by id or by group and external id, under the same rules.
        let check = async |key: &str, user: Option<&str>, r: CheckExternalPermissionRequest| {
            api.check_external(
                key,
                user,
                CheckExternalPermissionRequest {
                    consistency: consistency.clone(),
                    ..r
                },
            )
            .await
        };
        let r = check(&viewer, None, by_id("dave", "billing.view"))
            .await
            .unwrap();
        assert!(r.granted && r.expires_at.is_none());
        rev(&r.checked_at);
        let by_external = CheckExternalPermissionRequest {
            tenant_id: "acme".into(),
            user_id: "dave".into(),
            group_id: "billing".into(),
            external_id: "INV-PAY".into(),
            ..Default::default()
        };
        assert!(
            check(&viewer, None, by_external.clone())
                .await
                .unwrap()
                .granted
        );
        assert!(
            !check(&viewer, None, by_id("erin", "billing.view"))
                .await
                .unwrap()
                .granted
        );
        fails(
            check(&viewer, None, by_id("dave", "hr.leave")).await,
            Code::NotFound,
            "",
        );
        // An app viewer (needs assert_user) sees what visible_to lists it for.
        let as_app =
            |app: &str, r: CheckExternalPermissionRequest| CheckExternalPermissionRequest {
                app_id: app.into(),
                ..r
            };
        assert!(
            check(&idp, None, as_app("crm", by_id("dave", "billing.view")))
                .await
                .unwrap()
                .granted
        );
        fails(
            check(&idp, None, as_app("crm", by_id("dave", "hr.leave"))).await,
            Code::NotFound,
            "",
        );
        fails(
            check(&plain, None, as_app("crm", by_id("dave", "billing.view"))).await,
            Code::PermissionDenied,
            "",
        );

        fails(
            check(&viewer, None, by_id("dave", "nope")).await,
            Code::NotFound,
            "",
        );
        assert!(
            check(&other, None, by_id("dave", "hr.leave"))
                .await
                .unwrap()
                .granted
        );
        assert!(
            check(&idp, Some("mona"), by_id("dave", "billing.view"))
                .await
                .unwrap()
                .granted
        );
        assert!(
            check(&idp, Some("carol"), by_id("dave", "hr.leave"))
                .await
                .unwrap()
                .granted
        );
        fails(
            check(&idp, Some("dave"), by_id("dave", "billing.view")).await,
            Code::NotFound,
            "",
        );
        fails(
            check(&plain, Some("mona"), by_id("dave", "billing.view")).await,
            Code::PermissionDenied,
            "",
        );
        fails(
            check(
                &viewer,
                None,
                CheckExternalPermissionRequest {
                    permission_id: "billing.view".into(),
                    ..by_external
                },
            )
            .await,
            Code::InvalidArgument,
            "",
        );
        fails(
            check(
                BOOTSTRAP_KEY,
                None,
                CheckExternalPermissionRequest {
                    tenant_id: "ghost".into(),
                    ..by_id("dave", "billing.view")
                },
            )
            .await,
            Code::NotFound,
            "",
        );
    }
    server.stop().await;
}

async fn external_permission_pages_are_complete_and_stable(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(server.addr).await;
    api.put_tenant("acme", false, None).await;
    api.put_user("acme", "alice", &[Role::GeneralAdmin], None)
        .await;
    api.put_user("acme", "carol", &[Role::PermissionManager], Some("alice"))
        .await;
    api.put_user("acme", "dave", &[], None).await;
    api.put_user("acme", "erin", &[], None).await;
    // Two groups, so pages cross a group boundary: 12 in `a-group`, 13 in `b-group`.
    api.group("acme", "a-group", &[], &["client:bootstrap"])
        .await;
    api.group("acme", "b-group", &[], &["client:bootstrap"])
        .await;
    let mut expected = Vec::new();
    for i in 0..25 {
        let group = if i < 12 { "a-group" } else { "b-group" };
        let id = format!("p{i:02}");
        api.permission("acme", group, &id, &format!("X{i}")).await;
        api.grant("acme", "dave", &id, None).await;
        expected.push(id);
    }
    let page = async |token: &str, size: i32, consistency: Option<Consistency>| {
        api.list(
            BOOTSTRAP_KEY,
            None,
            ListExternalPermissionsRequest {
                page_size: size,
                page_token: token.to_owned(),
                consistency,
                ..listing("dave", "", "")
            },
        )
        .await
        .unwrap_or_else(|s| panic!("page after {token:?}: {s:?}"))
    };
    // The cache path, then the store path.
    for consistency in [None, fully()] {
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut token = String::new();
        loop {
            let p = page(&token, 10, consistency.clone()).await;
            sizes.push(p.permissions.len());
            seen.extend(p.permissions.iter().map(|g| g.permission_id.clone()));
            if p.next_page_token.is_empty() {
                break;
            }
            token = p.next_page_token;
            assert!(sizes.len() < 10, "paging does not end");
        }
        assert_eq!(sizes, [10, 10, 5], "{seen:?}");
        let distinct: BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), seen.len(), "no duplicates: {seen:?}");
        assert_eq!(seen, expected, "complete and in (group, permission) order");

        // The first page's token is only valid with the same query.
        let first = page("", 10, consistency.clone()).await;
        let reuse = |r: ListExternalPermissionsRequest| ListExternalPermissionsRequest {
            page_size: 10,
            page_token: first.next_page_token.clone(),
            consistency: consistency.clone(),
            ..r
        };
        let mut cases = Cases::new("page tokens not from this query");
        for (what, r) in [
            ("another user", listing("erin", "", "")),
            ("a group filter", listing("dave", "", "b-group")),
            ("an app viewer", listing("dave", "crm", "")),
        ] {
            cases.check(
                what,
                api.list(BOOTSTRAP_KEY, None, reuse(r)).await,
                Code::InvalidArgument,
                "page_token",
            );
        }
        cases.check(
            "a garbage token",
            api.list(
                BOOTSTRAP_KEY,
                None,
                ListExternalPermissionsRequest {
                    page_token: "not-a-token".into(),
                    consistency: consistency.clone(),
                    ..listing("dave", "", "")
                },
            )
            .await,
            Code::InvalidArgument,
            "",
        );
        cases.finish();
        // Another page size is still the same query.
        let rest = page(&first.next_page_token, 100, consistency.clone()).await;
        assert_eq!(rest.permissions.len(), 15);
        assert_eq!(rest.permissions[0].permission_id, "p10");
        // Default page size (50) and the 500 clamp hold everything here.
        for size in [0, 100_000] {
            let all = page("", size, consistency.clone()).await;
            assert_eq!(all.permissions.len(), 25);
            assert!(all.next_page_token.is_empty());
        }
    }
    // Stable under writes: a grant sorting before the cursor, added between pages, neither
    // shifts nor repeats what follows; one sorting after it shows up in its place.
    let first = page("", 10, None).await;
    api.permission("acme", "a-group", "p00a", "EARLY").await;
    api.grant("acme", "dave", "p00a", None).await;
    api.permission("acme", "b-group", "p24a", "LATE").await;
    api.grant("acme", "dave", "p24a", None).await;
    let mut seen: Vec<String> = first
        .permissions
        .iter()
        .map(|g| g.permission_id.clone())
        .collect();
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let p = page(&token, 10, None).await;
        seen.extend(p.permissions.iter().map(|g| g.permission_id.clone()));
        token = p.next_page_token;
    }
    let mut want = expected.clone();
    want.push("p24a".into());
    assert_eq!(seen, want);
    server.stop().await;
}

async fn expired_grants_are_hidden_cached_or_not(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(server.addr).await;
    let [viewer, ..] = external_world(&api).await;
    // billing.view expired an hour ago (accepted: the grant is simply expired); billing.pay
    // expires in three seconds.
    api.grant("acme", "dave", "billing.view", Some(timestamp(-3600)))
        .await;
    let soon = timestamp(3);
    api.grant("acme", "dave", "billing.pay", Some(soon)).await;
    let listed = async |consistency: Option<Consistency>| {
        let page = api
            .list(
                &viewer,
                None,
                ListExternalPermissionsRequest {
                    consistency,
                    ..listing("dave", "", "")
                },
            )
            .await
            .unwrap();
        page.permissions
    };
    let granted = async |permission: &str, consistency: Option<Consistency>| {
        api.check_external(
            &viewer,
            None,
            CheckExternalPermissionRequest {
                consistency,
                ..by_id("dave", permission)
            },
        )
        .await
        .unwrap()
    };
    for consistency in [None, fully()] {
        let page = listed(consistency.clone()).await;
        let ids: Vec<_> = page.iter().map(|g| g.permission_id.as_str()).collect();
        assert_eq!(ids, ["billing.pay"], "the expired grant is hidden");
        assert_eq!(page[0].expires_at, Some(soon));
        assert!(!granted("billing.view", consistency.clone()).await.granted);
        let pay = granted("billing.pay", consistency).await;
        assert!(pay.granted);
        assert_eq!(pay.expires_at, Some(soon));
    }
    // With no write in between, the wall clock alone hides it: from the cache and the store.
    let took = eventually(Duration::from_secs(15), || async {
        listed(None).await.is_empty()
            && listed(fully()).await.is_empty()
            && !granted("billing.pay", None).await.granted
            && !granted("billing.pay", fully()).await.granted
    })
    .await;
    eprintln!("the expiring grant disappeared after {took:?}");
    // Once hidden it stays hidden; an expired grant reports no expiry.
    let r = granted("billing.pay", None).await;
    assert!(r.expires_at.is_none(), "{r:?}");
    server.stop().await;
}

/// A malformed `app_id` is INVALID_ARGUMENT naming it (with a short quote) on both external
/// permission queries, also when `x-consentry-user` names the viewer and the app is not used.
async fn app_id_is_validated_whoever_the_viewer_is(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(server.addr).await;
    let [_, _, idp, _] = external_world(&api).await;
    let long = "x".repeat(10_000);
    let mut cases = Cases::new("app_id beside an acting user");
    for (what, app) in [("a space", "bad app"), ("10,000 bytes", long.as_str())] {
        for user in [Some("mona"), None] {
            let listed = api.list(&idp, user, listing("dave", app, "")).await;
            let message = cases.check(
                format!("ListExternalPermissions, {what}, as {user:?}"),
                listed,
                Code::InvalidArgument,
                "app_id",
            );
            cases.expect(
                format!("a short message for {what}"),
                message.is_none_or(|m| m.len() < 300),
                "the message quotes the whole value",
            );
            let r = CheckExternalPermissionRequest {
                app_id: app.into(),
                ..by_id("dave", "billing.view")
            };
            cases.check(
                format!("CheckExternalPermission, {what}, as {user:?}"),
                api.check_external(&idp, user, r).await,
                Code::InvalidArgument,
                "app_id",
            );
        }
    }
    // A well-formed app_id beside an acting user is still answered for the user.
    let listed = api
        .list(&idp, Some("mona"), listing("dave", "crm", ""))
        .await;
    cases.expect("a valid app_id", listed.is_ok(), format!("{listed:?}"));
    cases.finish();
    server.stop().await;
}
