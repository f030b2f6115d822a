//! API users (docs/rules.md §8) through the AdminService, on both backends: PutApiUser,
//! DeleteApiUser and ListApiUsers succeed, list in pages and are audited; a non-administrator is
//! PERMISSION_DENIED, something missing NOT_FOUND, malformed input INVALID_ARGUMENT (in the
//! order of §6), none of them leaving a trace; and a deleted user's API-user record goes with
//! them. What an API user does to CheckAccess is in `permission/api_users.rs`.

use consentry::proto::*;
use serde_json::json;
use tonic::Code;

use super::*;
use crate::support::calls::{Cases, Who, ok};
use crate::support::db::{TestDb, backend_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;

backend_tests!(
    api_user_rpcs_succeed_list_in_pages_and_are_audited,
    api_user_writes_refuse_as_documented_and_leave_no_trace,
    deleting_a_user_takes_their_api_user_record_with_them,
);

/// Every API user of `tenant`, as `(user_id, scopes, as_user)`, from one large page.
async fn api_users(a: &mut Admin, tenant: &str) -> Vec<(String, Vec<String>, bool)> {
    let reply = ok(a
        .list_api_users(Who::boot().r(ListApiUsersRequest {
            tenant_id: tenant.into(),
            page_size: 500,
            ..Default::default()
        }))
        .await);
    assert!(reply.next_page_token.is_empty());
    reply
        .api_users
        .into_iter()
        .map(|u| {
            assert_eq!(u.tenant_id, tenant);
            (u.user_id, u.scopes, u.as_user)
        })
        .collect()
}

fn row(user: &str, scopes: &[&str], as_user: bool) -> (String, Vec<String>, bool) {
    (user.to_owned(), strings(scopes), as_user)
}

async fn api_user_rpcs_succeed_list_in_pages_and_are_audited(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    acme(&mut a).await;
    assert!(api_users(&mut a, ACME).await.is_empty());

    // Made (scopes come back sorted, each once), replaced, and another user made.
    let made = ok(a
        .put_api_user(alice.r(api_user_req(ACME, "carol", &["mail", "docs:read"], true)))
        .await)
    .written_at;
    assert_eq!(
        api_users(&mut a, ACME).await,
        [row("carol", &["docs:read", "mail"], true)]
    );
    let replaced = ok(a
        .put_api_user(alice.r(api_user_req(ACME, "carol", &[], false)))
        .await)
    .written_at;
    ok(
        a.put_api_user(alice.r(api_user_req(ACME, "bob", &["docs:read"], false)))
            .await,
    );
    assert_eq!(
        api_users(&mut a, ACME).await,
        [row("bob", &["docs:read"], false), row("carol", &[], false)]
    );
    // Whitelisting makes no difference to who may.
    ok(a.put_tenant(alice.r(tenant_req(ACME, "production", true)))
        .await);
    ok(
        a.put_api_user(alice.r(api_user_req(ACME, "bob", &["mail"], true)))
            .await,
    );
    let unmade = ok(a
        .delete_api_user(alice.r(delete_api_user_req(ACME, "carol")))
        .await)
    .written_at;
    assert!(rev(&made) < rev(&replaced) && rev(&replaced) < rev(&unmade));
    assert_eq!(api_users(&mut a, ACME).await, [row("bob", &["mail"], true)]);
    // The user stays a tenant user with their roles.
    let users = ok(a
        .list_users(boot.r(ListUsersRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .users;
    assert!(users.iter().any(|u| u.user_id == "carol"));

    // Each write left one event on the user, by the acting administrator.
    let carol = events(
        &mut a,
        &boot,
        ListAuditEventsRequest {
            tenant_id: ACME.into(),
            target: "user:carol".into(),
            ..Default::default()
        },
    )
    .await;
    let api_events: Vec<&AuditEvent> = carol
        .iter()
        .filter(|e| e.action.contains("ApiUser"))
        .collect();
    let expected = [
        (
            "PutApiUser",
            &made,
            None,
            Some(json!({"user_id": "carol", "scopes": ["docs:read", "mail"], "as_user": true})),
        ),
        (
            "PutApiUser",
            &replaced,
            Some(json!({"user_id": "carol", "scopes": ["docs:read", "mail"], "as_user": true})),
            Some(json!({"user_id": "carol", "scopes": [], "as_user": false})),
        ),
        (
            "DeleteApiUser",
            &unmade,
            Some(json!({"user_id": "carol", "scopes": [], "as_user": false})),
            None,
        ),
    ];
    assert_eq!(api_events.len(), expected.len(), "{api_events:#?}");
    for (e, (action, written_at, before, after)) in api_events.iter().zip(expected) {
        assert_eq!(
            (
                e.action.as_str(),
                &e.revision,
                e.actor_user.as_str(),
                e.actor_client.as_str()
            ),
            (action, written_at, "alice", "bootstrap")
        );
        for (side, text, want) in [("before", &e.before, before), ("after", &e.after, after)] {
            match want {
                None => assert!(text.is_empty(), "{action} {side}: {text}"),
                Some(want) => assert_eq!(parse_json(action, text), want, "{action} {side}"),
            }
        }
    }

    // Paging: 25 API users in pages of 10, in user id order, each once.
    put_tenant(&mut a, "big").await;
    put_user(&mut a, &boot, "big", "admin", &[Role::UserAdmin]).await;
    let ids: Vec<String> = (0..25).map(|i| format!("u{i:02}")).collect();
    for id in &ids {
        put_user(&mut a, &boot, "big", id, &[]).await;
        ok(a.put_api_user(
            boot.user("admin")
                .r(api_user_req("big", id, &["docs:read"], false)),
        )
        .await);
    }
    let got = pages!(
        a,
        boot,
        10,
        list_api_users,
        ListApiUsersRequest {
            tenant_id: "big".into(),
            ..Default::default()
        },
        api_users,
        |u| u.user_id.clone()
    );
    assert_eq!(got.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(got.concat(), ids);
    // A page token belongs to its tenant's listing.
    let first = ok(a
        .list_api_users(boot.r(ListApiUsersRequest {
            tenant_id: "big".into(),
            page_size: 10,
            ..Default::default()
        }))
        .await);
    let elsewhere = a
        .list_api_users(boot.r(ListApiUsersRequest {
            tenant_id: ACME.into(),
            page_size: 10,
            page_token: first.next_page_token,
        }))
        .await;
    assert_eq!(
        elsewhere.map(|_| ()).unwrap_err().code(),
        Code::InvalidArgument
    );
    server.stop().await;
}

async fn api_user_writes_refuse_as_documented_and_leave_no_trace(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    acme(&mut a).await;
    put_tenant(&mut a, "beta").await;
    put_user(&mut a, &boot, "beta", "barb", &[Role::GeneralAdmin]).await;
    ok(
        a.put_api_user(alice.r(api_user_req(ACME, "bob", &["docs:read"], true)))
            .await,
    );
    let before = all_events(&mut a).await.len();
    let mut cases = Cases::new("API user writes that must be refused");

    // PERMISSION_DENIED: anyone but an acting administrator of the tenant.
    let not_admins = [
        (boot.clone(), "x-consentry-user"),
        (boot.user("bob"), "bob"),
        (boot.user("carol"), "carol"),
        (boot.user("stranger"), "stranger"),
        (boot.user("barb"), "barb"),
    ];
    for (who, needle) in &not_admins {
        cases.check(
            format!("PutApiUser by {needle}"),
            a.put_api_user(who.r(api_user_req(ACME, "carol", &["docs:read"], true)))
                .await,
            DENIED,
            needle,
        );
        cases.check(
            format!("DeleteApiUser by {needle}"),
            a.delete_api_user(who.r(delete_api_user_req(ACME, "bob")))
                .await,
            DENIED,
            needle,
        );
    }

    // NOT_FOUND: the tenant, the user, or (for a delete) the API user; existence is checked
    // before the rule, as docs/rules.md §6 orders them.
    const NF: Code = Code::NotFound;
    for who in [&alice, &boot.user("carol")] {
        cases.check(
            "PutApiUser in a missing tenant",
            a.put_api_user(who.r(api_user_req("ghost", "carol", &[], false)))
                .await,
            NF,
            "ghost",
        );
        cases.check(
            "PutApiUser of an unknown user",
            a.put_api_user(who.r(api_user_req(ACME, "nobody", &[], false)))
                .await,
            NF,
            "nobody",
        );
        cases.check(
            "DeleteApiUser of an unknown user",
            a.delete_api_user(who.r(delete_api_user_req(ACME, "nobody")))
                .await,
            NF,
            "nobody",
        );
        cases.check_all(
            "DeleteApiUser of a user who is not an API user",
            a.delete_api_user(who.r(delete_api_user_req(ACME, "carol")))
                .await,
            NF,
            &["carol", "not an API user"],
        );
    }
    cases.check(
        "ListApiUsers of a missing tenant",
        a.list_api_users(boot.r(ListApiUsersRequest {
            tenant_id: "ghost".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "ghost",
    );

    // INVALID_ARGUMENT, naming the field; validation comes before existence and the rules.
    const BAD: Code = Code::InvalidArgument;
    let too_many: Vec<String> = (0..257).map(|i| format!("s{i}")).collect();
    let malformed = [
        (
            "a malformed scope",
            api_user_req(ACME, "carol", &["docs:read", "bad scope"], false),
            "scopes[1]",
        ),
        (
            "an empty scope",
            api_user_req(ACME, "carol", &[""], false),
            "scopes[0]",
        ),
        (
            "a scope twice",
            api_user_req(ACME, "carol", &["a", "b", "a"], false),
            "scopes[2]",
        ),
        (
            "too many scopes",
            PutApiUserRequest {
                scopes: too_many,
                ..api_user_req(ACME, "carol", &[], false)
            },
            "scopes",
        ),
        ("no user", api_user_req(ACME, "", &[], false), "user_id"),
        (
            "a malformed user",
            api_user_req(ACME, "bad user", &[], false),
            "user_id",
        ),
        (
            "no tenant",
            api_user_req("", "carol", &[], false),
            "tenant_id",
        ),
        (
            "a malformed scope in a missing tenant",
            api_user_req("ghost", "nobody", &["bad scope"], false),
            "scopes[0]",
        ),
    ];
    for (what, request, field) in malformed {
        for who in [&alice, &boot] {
            cases.check(
                format!("PutApiUser with {what}"),
                a.put_api_user(who.r(request.clone())).await,
                BAD,
                field,
            );
        }
    }
    cases.check(
        "DeleteApiUser with a malformed user",
        a.delete_api_user(boot.r(delete_api_user_req(ACME, "bad user")))
            .await,
        BAD,
        "user_id",
    );
    cases.check(
        "ListApiUsers with a negative page size",
        a.list_api_users(boot.r(ListApiUsersRequest {
            tenant_id: ACME.into(),
            page_size: -1,
            ..Default::default()
        }))
        .await,
        BAD,
        "page_size",
    );
    let after = all_events(&mut a).await.len();
    cases.expect(
        "nothing was written",
        after == before,
        format!("{before} audit events before, {after} after"),
    );
    cases.finish();
    // Listing needs only an admin client within the tenant's bounds, like ListUsers.
    ok(a.list_api_users(boot.r(ListApiUsersRequest {
        tenant_id: ACME.into(),
        ..Default::default()
    }))
    .await);
    server.stop().await;
}

/// Deletes `user` as `who`; returns the `api_user` its DeleteUser audit event recorded.
async fn delete_user(a: &mut Admin, who: &Who, user: &str) -> serde_json::Value {
    let request = DeleteUserRequest {
        tenant_id: ACME.into(),
        user_id: user.into(),
    };
    let written_at = ok(a.delete_user(who.r(request)).await).written_at;
    let event = all_events(a)
        .await
        .into_iter()
        .find(|e| e.revision == written_at)
        .expect("an event at the write's revision");
    assert_eq!(event.action, "DeleteUser");
    parse_json("DeleteUser before", &event.before)["api_user"].take()
}

async fn deleting_a_user_takes_their_api_user_record_with_them(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    acme(&mut a).await;
    ok(
        a.put_api_user(alice.r(api_user_req(ACME, "carol", &["docs:read"], true)))
            .await,
    );
    ok(
        a.put_api_user(alice.r(api_user_req(ACME, "bob", &[], false)))
            .await,
    );
    // carol holds no roles, so any admin client may delete her; her record goes with her.
    assert_eq!(
        delete_user(&mut a, &boot, "carol").await,
        json!({"user_id": "carol", "scopes": ["docs:read"], "as_user": true})
    );
    assert_eq!(api_users(&mut a, ACME).await, [row("bob", &[], false)]);
    // bob holds a role (an administrator deletes him) and a record without scopes.
    assert_eq!(
        delete_user(&mut a, &alice, "bob").await,
        json!({"user_id": "bob", "scopes": [], "as_user": false})
    );
    assert!(api_users(&mut a, ACME).await.is_empty());
    // Added again, carol is an ordinary user: the record did not survive.
    put_user(&mut a, &boot, ACME, "carol", &[]).await;
    assert!(api_users(&mut a, ACME).await.is_empty());
    let refused = a
        .delete_api_user(alice.r(delete_api_user_req(ACME, "carol")))
        .await;
    assert_eq!(refused.unwrap_err().code(), Code::NotFound);
    // A user who never was an API user is recorded as not having been one.
    assert!(delete_user(&mut a, &boot, "carol").await.is_null());
    server.stop().await;
}
