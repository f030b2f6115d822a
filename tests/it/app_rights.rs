//! Site-level app rights (docs/rules.md §8) over a real server, on Postgres and SQLite:
//! GrantAppRight and RevokeAppRight by administrators and site owners, every status they
//! answer, their effect on CheckAccess and GetAppScopes, re-approval, revocation, unregistering
//! and the audit trail. What awaits re-approval is in `app_rights_pending.rs`, which shares this
//! module's world and helpers.

use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::proto::*;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

use crate::support::calls::{Cases, Who, ok};
use crate::support::db::{TestDb, backend_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;
use crate::support::world::{Admin, put_tenant, put_user, register};

backend_tests!(
    app_rights_grant_access_survive_reapproval_and_go_with_revocation,
    app_rights_refuse_what_they_must_and_leave_no_trace,
    app_rights_go_with_an_unregistered_app,
);

pub(crate) const ACME: &str = "acme";

/// The app's manifest: MANAGE on a site collection, READ on a web.
pub(crate) fn crm_manifest(webhooks: bool) -> Manifest {
    Manifest {
        webhooks,
        ..manifest(
            &["documents:read"],
            &[
                (ScopeLevel::SiteCollection, Right::Manage),
                (ScopeLevel::Web, Right::Read),
            ],
        )
    }
}

/// `acme` with alice (GENERAL_ADMIN); fin owning `/fin` (FULL_CONTROL there); owner holding
/// FULL_CONTROL on `/` (a site owner everywhere, no role); carol with WRITE on `/fin`;
/// teamlead owning only the web `/fin/team`. `crm` is registered and approved by alice, its
/// site collection resolved to `/hr` at WRITE and its web to `/hr/team` at READ.
pub(crate) async fn world(a: &mut Admin) {
    let boot = Who::boot();
    put_tenant(a, ACME).await;
    put_user(a, &boot, ACME, "alice", &[Role::GeneralAdmin]).await;
    for (user, resource, right) in [
        ("fin", "/fin", Right::FullControl),
        ("owner", "/", Right::FullControl),
        ("carol", "/fin", Right::Write),
        ("teamlead", "/fin/team", Right::FullControl),
    ] {
        put_user(a, &boot, ACME, user, &[]).await;
        ok(
            a.grant_user_right(boot.r(right_req(ACME, user, resource, right)))
                .await,
        );
    }
    register(a, "crm", AppKind::Standard, crm_manifest(false)).await;
    approve(a, 1).await;
}

/// alice approves `crm` at `revision`, resolving as in [`world`].
pub(crate) async fn approve(a: &mut Admin, revision: i64) {
    ok(a.approve_consent(Who::boot().user("alice").r(approve_req(
        ACME,
        "crm",
        revision,
        vec![
            resolved(ScopeLevel::SiteCollection, Right::Write, "/hr"),
            resolved(ScopeLevel::Web, Right::Read, "/hr/team"),
        ],
    )))
    .await);
}

/// Whether `user` may use `permission` at `resource` through `crm`, and the reason.
pub(crate) async fn check(
    p: &mut PermissionServiceClient<Channel>,
    user: &str,
    permission: &str,
    resource: &str,
) -> (bool, Reason) {
    let reply = ok(p
        .check_access(Who::boot().r(CheckAccessRequest {
            tenant_id: ACME.into(),
            app_id: "crm".into(),
            user_id: user.into(),
            permission: permission.into(),
            resource: resource.into(),
            ..CheckAccessRequest::default()
        }))
        .await);
    (reply.allowed, reply.reason())
}

/// GetAppScopes' `app_grants` for `crm`, as (resource, level, right) in the order answered.
pub(crate) async fn app_grants(
    p: &mut PermissionServiceClient<Channel>,
) -> Vec<(String, String, String)> {
    ok(p.get_app_scopes(Who::boot().r(GetAppScopesRequest {
        tenant_id: ACME.into(),
        app_id: "crm".into(),
        consistency: None,
    }))
    .await)
    .app_grants
    .iter()
    .map(|g| {
        (
            g.resource.clone(),
            g.scope_level().as_str_name().to_owned(),
            g.right().as_str_name().to_owned(),
        )
    })
    .collect()
}

pub(crate) fn grant(resource: &str, level: &str, right: &str) -> (String, String, String) {
    (
        resource.to_owned(),
        format!("SCOPE_LEVEL_{level}"),
        format!("RIGHT_{right}"),
    )
}

/// `crm`'s app rights as ListConsents shows them, as (resource, right).
pub(crate) async fn listed_app_rights(a: &mut Admin) -> Vec<(String, String)> {
    let consents = ok(a
        .list_consents(Who::boot().r(ListConsentsRequest {
            tenant_id: ACME.into(),
            ..ListConsentsRequest::default()
        }))
        .await)
    .consents;
    let crm = consents
        .iter()
        .find(|c| c.app_id == "crm")
        .expect("crm's consent");
    crm.app_rights
        .iter()
        .map(|r| (r.resource.clone(), r.right().as_str_name().to_owned()))
        .collect()
}

/// The last audit event with `action`, as (actor user, tenant, target, before, after).
pub(crate) async fn last_event(
    a: &mut Admin,
    action: &str,
) -> (String, String, String, Value, Value) {
    let events = ok(a
        .list_audit_events(Who::boot().r(ListAuditEventsRequest {
            tenant_id: ACME.into(),
            target: "app:crm".into(),
            page_size: 500,
            ..ListAuditEventsRequest::default()
        }))
        .await)
    .events;
    let e = events
        .iter()
        .rfind(|e| e.action == action)
        .unwrap_or_else(|| panic!("no {action} event in {events:#?}"));
    let json = |text: &str| {
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(text).unwrap()
        }
    };
    (
        e.actor_user.clone(),
        e.tenant_id.clone(),
        e.target.clone(),
        json(&e.before),
        json(&e.after),
    )
}

async fn app_rights_grant_access_survive_reapproval_and_go_with_revocation(db: &TestDb) {
    let server = TestServer::start(db).await;
    let (mut a, mut p) = (server.admin().await, server.permission().await);
    world(&mut a).await;
    let boot = Who::boot();
    let denied = (false, Reason::AppPermissionInsufficient);

    // The consent gives the app nothing on /fin.
    assert_eq!(check(&mut p, "fin", "MANAGE", "/fin/reports").await, denied);

    // The site owner gives it MANAGE there.
    let written = ok(a
        .grant_app_right(
            boot.user("fin")
                .r(app_right_req(ACME, "crm", "/fin", Right::Manage)),
        )
        .await)
    .written_at;
    assert!(rev(&written) > 0);
    assert_eq!(
        check(&mut p, "fin", "MANAGE", "/fin/reports").await,
        (true, Reason::Allowed)
    );
    assert_eq!(
        check(&mut p, "fin", "MANAGE_LISTS", "/fin").await,
        (true, Reason::Allowed)
    );
    // Not above the right given, not beside the site, not for a user without the right.
    assert_eq!(check(&mut p, "fin", "FULL_CONTROL", "/fin").await, denied);
    assert_eq!(check(&mut p, "owner", "READ", "/finance").await, denied);
    assert_eq!(
        check(&mut p, "carol", "MANAGE", "/fin").await,
        (false, Reason::UserPermissionInsufficient)
    );
    assert_eq!(
        app_grants(&mut p).await,
        [
            grant("/fin", "SITE_COLLECTION", "MANAGE"),
            grant("/hr", "SITE_COLLECTION", "WRITE"),
            grant("/hr/team", "WEB", "READ"),
        ]
    );
    assert_eq!(
        listed_app_rights(&mut a).await,
        [("/fin".to_owned(), "RIGHT_MANAGE".to_owned())]
    );
    let (user, tenant, target, before, after) = last_event(&mut a, "GrantAppRight").await;
    assert_eq!(
        (user.as_str(), tenant.as_str(), target.as_str()),
        ("fin", ACME, "app:crm")
    );
    assert_eq!(before, Value::Null);
    assert_eq!(
        after,
        json!({"app_id": "crm", "resource": "/fin", "scope_level": "SITE_COLLECTION", "right": "MANAGE"})
    );

    // Granting again at the path replaces the right; an administrator may do it as well.
    ok(a.grant_app_right(
        boot.user("alice")
            .r(app_right_req(ACME, "crm", "/fin", Right::Read)),
    )
    .await);
    assert_eq!(check(&mut p, "fin", "WRITE", "/fin").await, denied);
    assert_eq!(
        check(&mut p, "fin", "READ", "/fin").await,
        (true, Reason::Allowed)
    );
    let (_, _, _, before, after) = last_event(&mut a, "GrantAppRight").await;
    assert_eq!(
        (before["right"].as_str(), after["right"].as_str()),
        (Some("MANAGE"), Some("READ"))
    );
    // An app right where the consent resolved a request replaces it (here raising it).
    ok(a.grant_app_right(
        boot.user("owner")
            .r(app_right_req(ACME, "crm", "/hr", Right::Manage)),
    )
    .await);
    assert_eq!(
        check(&mut p, "owner", "MANAGE", "/hr/x").await,
        (true, Reason::Allowed)
    );
    assert_eq!(
        app_grants(&mut p).await,
        [
            grant("/fin", "SITE_COLLECTION", "READ"),
            grant("/hr", "SITE_COLLECTION", "MANAGE"),
            grant("/hr/team", "WEB", "READ"),
        ]
    );
    // Revoking it leaves the consent's own request.
    ok(
        a.revoke_app_right(boot.user("alice").r(revoke_app_right_req(
            ACME,
            "crm",
            "/hr",
            Right::Manage,
        )))
        .await,
    );
    assert_eq!(check(&mut p, "owner", "MANAGE", "/hr/x").await, denied);
    assert_eq!(
        check(&mut p, "owner", "WRITE", "/hr/x").await,
        (true, Reason::Allowed)
    );
    let (user, _, _, before, after) = last_event(&mut a, "RevokeAppRight").await;
    assert_eq!(user, "alice");
    assert_eq!(before["resource"], "/hr");
    assert_eq!(after, Value::Null);

    // An escalation takes everything, the app right included, until re-approval; re-approval
    // keeps the app right.
    let request = UpdateAppManifestRequest {
        app_id: "crm".into(),
        manifest: Some(crm_manifest(true)),
    };
    assert_eq!(
        ok(a.update_app_manifest(boot.r(request)).await).manifest_revision,
        2
    );
    assert_eq!(
        check(&mut p, "fin", "READ", "/fin").await,
        (false, Reason::ReapprovalRequired)
    );
    approve(&mut a, 2).await;
    assert_eq!(
        check(&mut p, "fin", "READ", "/fin").await,
        (true, Reason::Allowed)
    );
    assert_eq!(
        listed_app_rights(&mut a).await,
        [("/fin".to_owned(), "RIGHT_READ".to_owned())]
    );

    // Revocation takes the app rights with the consent; a new approval starts without them.
    ok(a.revoke_consent(boot.user("alice").r(RevokeConsentRequest {
        tenant_id: ACME.into(),
        app_id: "crm".into(),
    }))
    .await);
    assert_eq!(
        check(&mut p, "fin", "READ", "/fin").await,
        (false, Reason::ConsentRevoked)
    );
    let (_, _, _, before, after) = last_event(&mut a, "RevokeConsent").await;
    assert_eq!(
        before["app_rights"],
        json!([{"scope_level": "SITE_COLLECTION", "right": "READ", "resource": "/fin"}])
    );
    assert_eq!(after["app_rights"], json!([]));
    approve(&mut a, 2).await;
    assert_eq!(check(&mut p, "fin", "READ", "/fin").await, denied);
    assert_eq!(
        check(&mut p, "owner", "WRITE", "/hr").await,
        (true, Reason::Allowed)
    );
    assert!(listed_app_rights(&mut a).await.is_empty());
    assert_eq!(
        app_grants(&mut p).await,
        [
            grant("/hr", "SITE_COLLECTION", "WRITE"),
            grant("/hr/team", "WEB", "READ"),
        ]
    );
    server.stop().await;
}

async fn app_rights_refuse_what_they_must_and_leave_no_trace(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    world(&mut a).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    register(&mut a, "erp", AppKind::Standard, crm_manifest(false)).await;
    ok(
        a.grant_app_right(alice.r(app_right_req(ACME, "crm", "/sales", Right::Read)))
            .await,
    );
    let events = |a: &mut Admin| {
        let mut a = a.clone();
        async move {
            ok(a.list_audit_events(Who::boot().r(ListAuditEventsRequest {
                page_size: 500,
                ..ListAuditEventsRequest::default()
            }))
            .await)
            .events
            .len()
        }
    };
    let before = events(&mut a).await;

    let mut cases = Cases::new("GrantAppRight and RevokeAppRight refusals");
    let g = |tenant: &str, app: &str, resource: &str, right: i32| GrantAppRightRequest {
        tenant_id: tenant.into(),
        app_id: app.into(),
        resource: resource.into(),
        right,
    };
    let manage = i32::from(Right::Manage);
    let full = i32::from(Right::FullControl);
    // Neither a tenant administrator nor a site owner.
    for (name, who, resource, needle) in [
        (
            "WRITE at the site",
            boot.user("carol"),
            "/fin",
            "user carol is neither",
        ),
        (
            "owner of a web below",
            boot.user("teamlead"),
            "/fin",
            "user teamlead",
        ),
        ("owner of another site", boot.user("fin"), "/hr", "user fin"),
        ("unknown user", boot.user("ghost"), "/fin", "user ghost"),
        ("no acting user", boot.clone(), "/fin", "x-consentry-user"),
    ] {
        cases.check(
            format!("grant: {name}"),
            a.grant_app_right(who.r(g(ACME, "crm", resource, manage)))
                .await,
            Code::PermissionDenied,
            needle,
        );
    }
    cases.check(
        "revoke: WRITE at the site",
        a.revoke_app_right(boot.user("carol").r(revoke_app_right_req(
            ACME,
            "crm",
            "/sales",
            Right::Manage,
        )))
        .await,
        Code::PermissionDenied,
        "carol",
    );
    // What does not exist.
    cases.check(
        "grant: unknown tenant",
        a.grant_app_right(alice.r(g("nowhere", "crm", "/fin", manage)))
            .await,
        Code::NotFound,
        "tenant nowhere does not exist",
    );
    cases.check(
        "grant: unknown app",
        a.grant_app_right(alice.r(g(ACME, "ghost", "/fin", manage)))
            .await,
        Code::NotFound,
        "app ghost is not registered",
    );
    cases.check(
        "revoke: no app right there",
        a.revoke_app_right(alice.r(revoke_app_right_req(ACME, "crm", "/fin", Right::Manage)))
            .await,
        Code::NotFound,
        "app crm holds no app right at /fin in tenant acme",
    );
    cases.check(
        "revoke: another level",
        a.revoke_app_right(alice.r(revoke_app_right_req(ACME, "crm", "/sales", Right::Write)))
            .await,
        Code::NotFound,
        "does not hold WRITE",
    );
    cases.check(
        "revoke: a resolved request is no app right",
        a.revoke_app_right(alice.r(revoke_app_right_req(ACME, "crm", "/hr", Right::Read)))
            .await,
        Code::NotFound,
        "no app right at /hr",
    );
    // No consent in force.
    cases.check(
        "grant: never approved",
        a.grant_app_right(alice.r(g(ACME, "erp", "/fin", manage)))
            .await,
        Code::FailedPrecondition,
        "app erp has no consent in force in tenant acme",
    );
    cases.check(
        "revoke: never approved",
        a.revoke_app_right(alice.r(revoke_app_right_req(ACME, "erp", "/fin", Right::Manage)))
            .await,
        Code::FailedPrecondition,
        "no consent in force",
    );
    // Bad input.
    for (name, request, needle) in [
        (
            "a level not requested",
            g(ACME, "crm", "/fin/team/docs", manage),
            "resource: /fin/team/docs is at the level LIST",
        ),
        (
            "the tenancy, not requested",
            g(ACME, "crm", "/", i32::from(Right::Read)),
            "resource: / is at the level TENANCY",
        ),
        (
            "below every level",
            g(ACME, "crm", "/fin/team/docs/x", manage),
            "depth 4",
        ),
        (
            "above the request",
            g(ACME, "crm", "/fin", full),
            "right: FULL_CONTROL is above the manifest's request of MANAGE",
        ),
        (
            "above the request at a web",
            g(ACME, "crm", "/fin/team", i32::from(Right::Write)),
            "request of READ at WEB",
        ),
        (
            "a relative resource",
            g(ACME, "crm", "fin", manage),
            "resource",
        ),
        (
            "a dot-dot segment",
            g(ACME, "crm", "/fin/..", manage),
            "resource",
        ),
        (
            "a trailing slash",
            g(ACME, "crm", "/fin/", manage),
            "resource",
        ),
        ("an unspecified right", g(ACME, "crm", "/fin", 0), "right"),
        ("an unknown right", g(ACME, "crm", "/fin", 99), "right"),
        ("an empty app", g(ACME, "", "/fin", manage), "app_id"),
        (
            "a malformed tenant",
            g("bad tenant", "crm", "/fin", manage),
            "tenant_id",
        ),
    ] {
        cases.check(
            format!("grant: {name}"),
            a.grant_app_right(alice.r(request)).await,
            Code::InvalidArgument,
            needle,
        );
    }
    cases.check(
        "revoke: a bad resource",
        a.revoke_app_right(alice.r(revoke_app_right_req(ACME, "crm", "sales", Right::Read)))
            .await,
        Code::InvalidArgument,
        "resource",
    );
    cases.finish();
    assert_eq!(
        events(&mut a).await,
        before,
        "a refused write leaves no audit event"
    );
    server.stop().await;
}

async fn app_rights_go_with_an_unregistered_app(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    world(&mut a).await;
    let boot = Who::boot();
    ok(a.grant_app_right(
        boot.user("fin")
            .r(app_right_req(ACME, "crm", "/fin", Right::Write)),
    )
    .await);
    ok(a.unregister_app(boot.r(UnregisterAppRequest {
        app_id: "crm".into(),
    }))
    .await);
    let events = ok(a
        .list_audit_events(boot.r(ListAuditEventsRequest {
            target: "app:crm".into(),
            page_size: 500,
            ..ListAuditEventsRequest::default()
        }))
        .await)
    .events;
    let unregistered = events
        .iter()
        .rfind(|e| e.action == "UnregisterApp")
        .expect("an UnregisterApp event");
    let before: Value = serde_json::from_str(&unregistered.before).unwrap();
    assert_eq!(
        before["consents"][0]["app_rights"],
        json!([{"scope_level": "SITE_COLLECTION", "right": "WRITE", "resource": "/fin"}]),
        "{before}"
    );
    // Registered and approved again, the app starts without them.
    register(&mut a, "crm", AppKind::Standard, crm_manifest(false)).await;
    approve(&mut a, 1).await;
    assert!(listed_app_rights(&mut a).await.is_empty());
    let mut p = server.permission().await;
    assert_eq!(
        check(&mut p, "fin", "READ", "/fin").await,
        (false, Reason::AppPermissionInsufficient)
    );
    server.stop().await;
}
