//! Page tokens are tamper-evident and bound to their exact query: a token from one query does not
//! page another (even where the ids joined by `:` read alike), a changed or forged token is
//! `INVALID_ARGUMENT` naming `page_token` (never a database error), ListExternalPermissions
//! answers a malformed token alike from the cache and from the store, and every instance of one
//! deployment accepts the others' tokens while another deployment does not.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use consentry::proto::consistency::Requirement;
use consentry::proto::*;
use tonic::Code;

use crate::support::calls::{Cases, Who, ok, req};
use crate::support::db::{TestDb, backend_tests, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;
use crate::support::world::{Admin, new_client, put_tenant, put_user};

backend_tests!(
    page_tokens_are_bound_to_their_query_and_tamper_evident,
    external_permission_paths_agree_on_malformed_tokens,
);

postgres_tests!(page_tokens_work_across_the_instances_of_one_deployment_only);

/// A token in the form page tokens used to have (base64 JSON of a truncated SHA-256 of the query
/// text and a position), as anyone could forge it.
fn legacy_token(query: &str, position: &str) -> String {
    let fingerprint: String = ring::digest::digest(&ring::digest::SHA256, query.as_bytes())
        .as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let json = serde_json::json!({"q": fingerprint, "a": position});
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&json).unwrap())
}

/// `token` with one bit of byte `i` flipped.
fn flipped(token: &str, i: usize) -> String {
    let mut bytes = URL_SAFE_NO_PAD.decode(token).unwrap();
    bytes[i] ^= 1;
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rights_req(tenant: &str, user: &str, page_token: &str) -> ListUserRightsRequest {
    ListUserRightsRequest {
        tenant_id: tenant.into(),
        user_id: user.into(),
        page_size: 1,
        page_token: page_token.into(),
    }
}

/// Puts `user` in `tenant` with READ at each of `resources`.
async fn user_with_rights(a: &mut Admin, tenant: &str, user: &str, resources: &[&str]) {
    let boot = Who::boot();
    put_user(a, &boot, tenant, user, &[]).await;
    for resource in resources {
        ok(
            a.grant_user_right(boot.r(right_req(tenant, user, resource, Right::Read)))
                .await,
        );
    }
}

async fn page_tokens_are_bound_to_their_query_and_tamper_evident(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    // Tenant `pt` with user `b:c`, tenant `pt:b` with user `c`: once joined by `:`, one query.
    put_tenant(&mut a, "pt").await;
    put_tenant(&mut a, "pt:b").await;
    user_with_rights(&mut a, "pt", "b:c", &["/r1", "/r2", "/r3"]).await;
    user_with_rights(&mut a, "pt:b", "c", &["/r1", "/r2", "/r3"]).await;
    let first = ok(a
        .list_user_rights(boot.r(rights_req("pt", "b:c", "")))
        .await);
    assert_eq!(first.rights[0].resource, "/r1");
    let token = first.next_page_token;
    assert!(!token.is_empty(), "a page of one of three has a next page");

    let mut cases = Cases::new("page tokens");
    cases.check(
        "a token of (pt, b:c) on (pt:b, c)",
        a.list_user_rights(boot.r(rights_req("pt:b", "c", &token)))
            .await,
        Code::InvalidArgument,
        "page_token",
    );
    cases.check(
        "a ListUserRights token on ListUsers",
        a.list_users(boot.r(ListUsersRequest {
            tenant_id: "pt".into(),
            page_size: 1,
            page_token: token.clone(),
        }))
        .await,
        Code::InvalidArgument,
        "page_token",
    );
    let len = URL_SAFE_NO_PAD.decode(&token).unwrap().len();
    for i in 0..len {
        cases.check(
            format!("byte {i} of {len} flipped"),
            a.list_user_rights(boot.r(rights_req("pt", "b:c", &flipped(&token, i))))
                .await,
            Code::InvalidArgument,
            "page_token",
        );
    }
    // Forged positions: a NUL (which the database refuses), a position no listing has, a
    // non-numeric audit position (which used to restart from the first event).
    cases.check(
        "a forged ListUsers position with a NUL",
        a.list_users(boot.r(ListUsersRequest {
            tenant_id: "pt".into(),
            page_size: 1,
            page_token: legacy_token("users:pt", "b\0"),
        }))
        .await,
        Code::InvalidArgument,
        "page_token",
    );
    cases.check(
        "a forged ListUserRights position with a NUL",
        a.list_user_rights(boot.r(rights_req(
            "pt",
            "b:c",
            &legacy_token("rights:pt:b:c", "/r1\0"),
        )))
        .await,
        Code::InvalidArgument,
        "page_token",
    );
    let mut nul = URL_SAFE_NO_PAD.decode(&token).unwrap()[..32].to_vec();
    nul.extend_from_slice(&4u64.to_be_bytes());
    nul.extend_from_slice(b"/r\0x");
    cases.check(
        "a NUL position under a genuine tag",
        a.list_user_rights(boot.r(rights_req("pt", "b:c", &URL_SAFE_NO_PAD.encode(&nul))))
            .await,
        Code::InvalidArgument,
        "page_token",
    );
    cases.check(
        "a non-numeric audit position",
        a.list_audit_events(boot.r(ListAuditEventsRequest {
            page_size: 1,
            page_token: legacy_token("audit::::None:*", "abc"),
            ..Default::default()
        }))
        .await,
        Code::InvalidArgument,
        "page_token",
    );
    cases.finish();

    // The genuine token still pages its own query, to the end.
    let second = ok(a
        .list_user_rights(boot.r(rights_req("pt", "b:c", &token)))
        .await);
    assert_eq!(second.rights[0].resource, "/r2");
    let third = ok(a
        .list_user_rights(boot.r(rights_req("pt", "b:c", &second.next_page_token)))
        .await);
    assert_eq!(third.rights[0].resource, "/r3");
    server.stop().await;
}

fn consistency(fully: bool) -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(if fully {
            Requirement::FullyConsistent(true)
        } else {
            Requirement::MinimizeLatency(true)
        }),
    })
}

async fn external_permission_paths_agree_on_malformed_tokens(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    put_tenant(&mut a, "ext").await;
    put_user(&mut a, &boot, "ext", "alice", &[Role::GeneralAdmin]).await;
    put_user(&mut a, &boot, "ext", "dave", &[]).await;
    put_user(&mut a, &boot, "ext", "erin", &[]).await;
    ok(a.create_permission_group(alice.r(group_req(
        "ext",
        "g",
        &[],
        &["user:alice"],
        &["client:viewer"],
    )))
    .await);
    for p in ["p1", "p2", "p3"] {
        ok(
            a.create_external_permission(alice.r(permission_req("ext", "g", p, p)))
                .await,
        );
        for user in ["dave", "erin"] {
            ok(
                a.grant_external_permission(alice.r(grant_req("ext", user, p)))
                    .await,
            );
        }
    }
    let key = new_client(&mut a, &boot, "viewer", &["ext"], &[Capability::Query]).await;
    let mut p = server.permission().await;
    let list = |user: &str, token: &str, fully: bool| ListExternalPermissionsRequest {
        tenant_id: "ext".into(),
        user_id: user.into(),
        page_size: 1,
        page_token: token.into(),
        consistency: consistency(fully),
        ..Default::default()
    };
    let ids = |r: &ListExternalPermissionsResponse| {
        r.permissions
            .iter()
            .map(|g| g.permission_id.clone())
            .collect::<Vec<_>>()
    };

    // A genuine token pages alike on both paths, whichever minted it.
    let mut tokens = Vec::new();
    for fully in [false, true] {
        let first = ok(p
            .list_external_permissions(req(list("dave", "", fully), &key, None))
            .await);
        assert_eq!(ids(&first), ["p1"]);
        tokens.push(first.next_page_token);
    }
    for token in &tokens {
        for fully in [false, true] {
            let next = ok(p
                .list_external_permissions(req(list("dave", token, fully), &key, None))
                .await);
            assert_eq!(ids(&next), ["p2"], "fully_consistent: {fully}");
        }
    }

    let genuine = &tokens[0];
    let old_query = "grants:ext:dave::client:viewer";
    let erins = ok(p
        .list_external_permissions(req(list("erin", "", false), &key, None))
        .await)
    .next_page_token;
    let malformed = [
        (
            "an old-style position without its permission",
            legacy_token(old_query, "g"),
        ),
        ("an old-style position", legacy_token(old_query, "g\np1")),
        (
            "an old-style position with a NUL",
            legacy_token(old_query, "g\0\np1"),
        ),
        ("not base64", "garbage!".to_owned()),
        (
            "a genuine token with a byte flipped",
            flipped(genuine, URL_SAFE_NO_PAD.decode(genuine).unwrap().len() - 3),
        ),
        ("another user's token", erins),
    ];
    let mut cases = Cases::new("malformed ListExternalPermissions tokens");
    for (name, token) in &malformed {
        for fully in [false, true] {
            cases.check(
                format!("{name}, fully_consistent: {fully}"),
                p.list_external_permissions(req(list("dave", token, fully), &key, None))
                    .await,
                Code::InvalidArgument,
                "page_token",
            );
        }
    }
    cases.finish();
    server.stop().await;
}

/// Every page of ListUsers in `tenant`, two at a time, asking `servers` in turn.
async fn users_across(servers: &mut [Admin], tenant: &str) -> Vec<String> {
    let mut users = Vec::new();
    let mut token = String::new();
    for turn in 0.. {
        assert!(turn < 100, "paging does not end");
        let server = &mut servers[turn % servers.len()];
        let page = ok(server
            .list_users(Who::boot().r(ListUsersRequest {
                tenant_id: tenant.into(),
                page_size: 2,
                page_token: token,
            }))
            .await);
        users.extend(page.users.into_iter().map(|u| u.user_id));
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    users
}

async fn page_tokens_work_across_the_instances_of_one_deployment_only(db: &TestDb) {
    let one = TestServer::start(db).await;
    let two = TestServer::start(db).await;
    let mut admins = [one.admin().await, two.admin().await];
    put_tenant(&mut admins[0], "multi").await;
    let names: Vec<String> = (0..7).map(|i| format!("u{i}")).collect();
    for name in &names {
        put_user(&mut admins[0], &Who::boot(), "multi", name, &[]).await;
    }
    // Each page from the other instance, with the token the previous one minted.
    assert_eq!(users_across(&mut admins, "multi").await, names);

    // Another deployment (its own database, its own secret) refuses the token.
    let other_db = TestDb::postgres().await;
    let other = TestServer::start(&other_db).await;
    let mut elsewhere = other.admin().await;
    put_tenant(&mut elsewhere, "multi").await;
    for name in &names {
        put_user(&mut elsewhere, &Who::boot(), "multi", name, &[]).await;
    }
    let first = ok(admins[0]
        .list_users(Who::boot().r(ListUsersRequest {
            tenant_id: "multi".into(),
            page_size: 2,
            page_token: String::new(),
        }))
        .await);
    let refused = elsewhere
        .list_users(Who::boot().r(ListUsersRequest {
            tenant_id: "multi".into(),
            page_size: 2,
            page_token: first.next_page_token,
        }))
        .await;
    crate::support::calls::fails(refused, Code::InvalidArgument, "page_token");
    other.stop().await;
    other_db.cleanup().await;
    one.stop().await;
    two.stop().await;
}
