//! Site-level app rights and what awaits re-approval (docs/rules.md §2, §8) over a real server, on
//! Postgres and SQLite: while a raise or a new level waits for an administrator, neither a site
//! owner nor an administrator can make it effective through GrantAppRight (INVALID_ARGUMENT
//! naming `right`, or `resource` for a level not approved at all), and app rights kept through a
//! lower re-approval count only up to it. GetAppScopes never lists a request as pending that an
//! app grant already holds.

use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::proto::*;
use tonic::Code;
use tonic::transport::Channel;

use crate::app_rights::{
    ACME, app_grants, approve, check, crm_manifest, grant, listed_app_rights, world,
};
use crate::support::calls::{Cases, Who, ok};
use crate::support::db::{TestDb, backend_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;
use crate::support::world::{Admin, update_manifest};

backend_tests!(
    a_site_owner_cannot_make_a_pending_request_effective,
    app_rights_kept_through_a_lower_approval_count_only_up_to_it,
);

/// GetAppScopes' `pending_permission_requests` for `crm`, as (level, right).
async fn pending(p: &mut PermissionServiceClient<Channel>) -> Vec<(String, String)> {
    ok(p.get_app_scopes(Who::boot().r(GetAppScopesRequest {
        tenant_id: ACME.into(),
        app_id: "crm".into(),
        consistency: None,
    }))
    .await)
    .pending_permission_requests
    .iter()
    .map(|r| {
        (
            r.scope_level().as_str_name().to_owned(),
            r.right().as_str_name().to_owned(),
        )
    })
    .collect()
}

fn request(level: &str, right: &str) -> (String, String) {
    (format!("SCOPE_LEVEL_{level}"), format!("RIGHT_{right}"))
}

/// Rights in the order of the proto enum, to compare the names GetAppScopes answers.
fn rank(right: &str) -> usize {
    [
        "RIGHT_READ",
        "RIGHT_WRITE",
        "RIGHT_MANAGE",
        "RIGHT_FULL_CONTROL",
    ]
    .iter()
    .position(|r| *r == right)
    .unwrap_or_else(|| panic!("not a right: {right}"))
}

/// Nothing in GetAppScopes is both pending and in force: every app grant is below every pending
/// request at its level.
async fn nothing_both_pending_and_in_force(p: &mut PermissionServiceClient<Channel>) {
    let (pending, grants) = (pending(p).await, app_grants(p).await);
    for (level, right) in &pending {
        for (resource, _, held) in grants.iter().filter(|(_, l, _)| l == level) {
            assert!(
                rank(held) < rank(right),
                "{resource} holds {held} in force while {level} {right} is pending"
            );
        }
    }
}

/// The number of audit events.
async fn events(a: &mut Admin) -> usize {
    ok(a.list_audit_events(Who::boot().r(ListAuditEventsRequest {
        page_size: 500,
        ..ListAuditEventsRequest::default()
    }))
    .await)
    .events
    .len()
}

/// The manifest of [`crm_manifest`] with the site collection raised to FULL_CONTROL and a new
/// request of WRITE on a list.
fn raised_manifest() -> Manifest {
    manifest(
        &["documents:read"],
        &[
            (ScopeLevel::SiteCollection, Right::FullControl),
            (ScopeLevel::Web, Right::Read),
            (ScopeLevel::List, Right::Write),
        ],
    )
}

async fn a_site_owner_cannot_make_a_pending_request_effective(db: &TestDb) {
    let server = TestServer::start(db).await;
    let (mut a, mut p) = (server.admin().await, server.permission().await);
    world(&mut a).await;
    let boot = Who::boot();
    let denied = (false, Reason::AppPermissionInsufficient);

    // The app raises its site-collection request (MANAGE approved) and adds a list request.
    assert_eq!(update_manifest(&mut a, "crm", raised_manifest()).await, 2);
    let awaiting = [
        request("SITE_COLLECTION", "FULL_CONTROL"),
        request("LIST", "WRITE"),
    ];
    assert_eq!(pending(&mut p).await, awaiting);
    let before = events(&mut a).await;

    let mut cases = Cases::new("GrantAppRight of what awaits re-approval");
    for who in ["fin", "alice"] {
        cases.check(
            format!("{who}: FULL_CONTROL at a site collection while the raise is pending"),
            a.grant_app_right(boot.user(who).r(app_right_req(
                ACME,
                "crm",
                "/fin",
                Right::FullControl,
            )))
            .await,
            Code::InvalidArgument,
            "right: FULL_CONTROL is above the approved request of MANAGE at SITE_COLLECTION",
        );
    }
    cases.check(
        "owner: a list while the list request is pending",
        a.grant_app_right(boot.user("owner").r(app_right_req(
            ACME,
            "crm",
            "/fin/team/docs",
            Right::Read,
        )))
        .await,
        Code::InvalidArgument,
        "resource: /fin/team/docs is at the level LIST, which the manifest requests but the consent in force has not approved",
    );
    cases.finish();
    assert_eq!(
        events(&mut a).await,
        before,
        "a refused write leaves no audit event"
    );

    // The raise is pending only: not among the app grants, not allowed.
    assert_eq!(pending(&mut p).await, awaiting);
    assert_eq!(
        app_grants(&mut p).await,
        [
            grant("/hr", "SITE_COLLECTION", "WRITE"),
            grant("/hr/team", "WEB", "READ"),
        ]
    );
    assert_eq!(check(&mut p, "fin", "FULL_CONTROL", "/fin").await, denied);
    assert_eq!(
        check(&mut p, "owner", "READ", "/fin/team/docs").await,
        denied
    );

    // Up to the approved request the site owner may grant; the raise stays pending.
    ok(a.grant_app_right(
        boot.user("fin")
            .r(app_right_req(ACME, "crm", "/fin", Right::Manage)),
    )
    .await);
    assert_eq!(
        check(&mut p, "fin", "MANAGE", "/fin").await,
        (true, Reason::Allowed)
    );
    assert_eq!(check(&mut p, "fin", "FULL_CONTROL", "/fin").await, denied);
    assert_eq!(pending(&mut p).await, awaiting);
    nothing_both_pending_and_in_force(&mut p).await;

    // Once alice approves the new manifest, both may be given.
    ok(a.approve_consent(boot.user("alice").r(approve_req(
        ACME,
        "crm",
        2,
        vec![
            resolved(ScopeLevel::SiteCollection, Right::Write, "/hr"),
            resolved(ScopeLevel::Web, Right::Read, "/hr/team"),
            resolved(ScopeLevel::List, Right::Read, "/hr/team/docs"),
        ],
    )))
    .await);
    assert!(pending(&mut p).await.is_empty());
    ok(a.grant_app_right(boot.user("fin").r(app_right_req(
        ACME,
        "crm",
        "/fin",
        Right::FullControl,
    )))
    .await);
    ok(a.grant_app_right(boot.user("owner").r(app_right_req(
        ACME,
        "crm",
        "/fin/team/docs",
        Right::Write,
    )))
    .await);
    assert_eq!(
        check(&mut p, "fin", "FULL_CONTROL", "/fin").await,
        (true, Reason::Allowed)
    );
    assert_eq!(
        check(&mut p, "owner", "WRITE", "/fin/team/docs").await,
        (true, Reason::Allowed)
    );
    server.stop().await;
}

async fn app_rights_kept_through_a_lower_approval_count_only_up_to_it(db: &TestDb) {
    let server = TestServer::start(db).await;
    let (mut a, mut p) = (server.admin().await, server.permission().await);
    world(&mut a).await;
    let boot = Who::boot();
    let denied = (false, Reason::AppPermissionInsufficient);
    let allowed = (true, Reason::Allowed);

    // App rights given while MANAGE on site collections and READ on webs are approved.
    ok(a.grant_app_right(
        boot.user("fin")
            .r(app_right_req(ACME, "crm", "/fin", Right::Manage)),
    )
    .await);
    ok(a.grant_app_right(boot.user("owner").r(app_right_req(
        ACME,
        "crm",
        "/sales/web",
        Right::Read,
    )))
    .await);

    // The app asks for less (READ on site collections, no webs) and is approved so; the app
    // rights survive the re-approval as they were given.
    let lower = manifest(
        &["documents:read"],
        &[(ScopeLevel::SiteCollection, Right::Read)],
    );
    assert_eq!(update_manifest(&mut a, "crm", lower).await, 2);
    ok(a.approve_consent(boot.user("alice").r(approve_req(
        ACME,
        "crm",
        2,
        vec![resolved(ScopeLevel::SiteCollection, Right::Read, "/hr")],
    )))
    .await);

    // It asks for the old manifest again: a raise and a new level, pending until approved.
    assert_eq!(update_manifest(&mut a, "crm", crm_manifest(false)).await, 3);
    assert_eq!(
        pending(&mut p).await,
        [request("SITE_COLLECTION", "MANAGE"), request("WEB", "READ")]
    );
    // The stored app rights count only up to the approval in force.
    assert_eq!(check(&mut p, "fin", "MANAGE", "/fin").await, denied);
    assert_eq!(check(&mut p, "fin", "READ", "/fin").await, allowed);
    assert_eq!(check(&mut p, "owner", "READ", "/sales/web").await, denied);
    assert_eq!(
        app_grants(&mut p).await,
        [
            grant("/fin", "SITE_COLLECTION", "READ"),
            grant("/hr", "SITE_COLLECTION", "READ"),
        ]
    );
    nothing_both_pending_and_in_force(&mut p).await;
    assert_eq!(
        listed_app_rights(&mut a).await,
        [
            ("/fin".to_owned(), "RIGHT_MANAGE".to_owned()),
            ("/sales/web".to_owned(), "RIGHT_READ".to_owned()),
        ]
    );

    // Approved again, they count as given.
    approve(&mut a, 3).await;
    assert!(pending(&mut p).await.is_empty());
    assert_eq!(check(&mut p, "fin", "MANAGE", "/fin").await, allowed);
    assert_eq!(check(&mut p, "owner", "READ", "/sales/web").await, allowed);
    server.stop().await;
}
