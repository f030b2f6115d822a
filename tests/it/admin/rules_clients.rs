//! The rules of docs/rules.md §6 for clients and the audit log: a client creates clients only within
//! its own tenants and capabilities, revokes any client whose tenants lie within its own, and
//! sees the audit events of its tenants only.

use consentry::proto::*;

use super::*;
use crate::support::calls::{Who, fails, ok};
use crate::support::db::{TestDb, backend_tests, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;

postgres_tests!(
    rule_clients_stay_within_their_creators_tenants_and_capabilities,
    rule_audit_events_stay_within_the_callers_tenants,
);

backend_tests!(rule_revoking_a_client_needs_only_its_tenants_within_the_callers,);

async fn rule_clients_stay_within_their_creators_tenants_and_capabilities(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    put_tenant(&mut a, ACME).await;
    let lead = Who::key(
        &new_client(
            &mut a,
            &boot,
            "lead",
            &[ACME, "beta"],
            &[Capability::Admin, Capability::Query],
        )
        .await,
    );
    new_client(&mut a, &boot, "star", &["*"], &[Capability::Query]).await;
    new_client(
        &mut a,
        &boot,
        "mgr",
        &[ACME],
        &[Capability::Admin, Capability::AppManager],
    )
    .await;
    new_client(
        &mut a,
        &boot,
        "wide",
        &[ACME, "gamma"],
        &[Capability::Query],
    )
    .await;
    // Within the caller's tenants and capabilities: fine, up to equal.
    new_client(&mut a, &lead, "sub1", &[ACME], &[Capability::Query]).await;
    let sub2 = new_client(
        &mut a,
        &lead,
        "sub2",
        &[ACME, "beta"],
        &[Capability::Query, Capability::Admin],
    )
    .await;
    for (request, needle) in [
        (
            client_req("x1", &["gamma"], &[Capability::Query]),
            "tenants",
        ),
        (
            client_req("x2", &[ACME, "gamma"], &[Capability::Query]),
            "tenants",
        ),
        (client_req("x3", &["*"], &[Capability::Query]), "tenants"),
        (
            client_req("x4", &[ACME], &[Capability::AppManager]),
            "app_manager",
        ),
        (
            client_req("x5", &[ACME], &[Capability::Query, Capability::AssertUser]),
            "assert_user",
        ),
    ] {
        fails(a.create_client(lead.r(request)).await, DENIED, needle);
    }
    let revoke = |id: &str| RevokeClientRequest {
        client_id: id.into(),
    };
    fails(
        a.revoke_client(lead.r(revoke("star"))).await,
        DENIED,
        "tenants",
    );
    fails(
        a.revoke_client(lead.r(revoke("wide"))).await,
        DENIED,
        "tenants",
    );
    fails(
        a.revoke_client(lead.r(revoke("bootstrap"))).await,
        DENIED,
        "",
    );
    ok(a.revoke_client(lead.r(revoke("sub1"))).await);
    // Revoking looks at tenants only: `mgr` holds app_manager, which `lead` lacks.
    ok(a.revoke_client(lead.r(revoke("mgr"))).await);
    // A client created by another within its bounds works, within its own.
    let sub2 = Who::key(&sub2);
    ok(a.put_user(sub2.r(user_req(ACME, "carol", &[]))).await);
    fails(
        a.put_user(sub2.r(user_req("gamma", "carol", &[]))).await,
        DENIED,
        "gamma",
    );
    let clients = ok(a.list_clients(boot.r(ListClientsRequest::default())).await).clients;
    let ids: Vec<(&str, bool)> = clients
        .iter()
        .map(|c| (c.client_id.as_str(), c.revoked_at.is_some()))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("bootstrap", false),
            ("lead", false),
            ("mgr", true),
            ("star", false),
            ("sub1", true),
            ("sub2", false),
            ("wide", false),
        ]
    );
    server.stop().await;
}

async fn rule_audit_events_stay_within_the_callers_tenants(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    put_tenant(&mut a, "beta").await;
    put_user(&mut a, &boot, "beta", "bea", &[Role::GeneralAdmin]).await;
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    ok(
        a.approve_consent(boot.user("alice").r(approve_req(ACME, "crm", 1, vec![])))
            .await,
    );
    ok(
        a.approve_consent(boot.user("bea").r(approve_req("beta", "crm", 1, vec![])))
            .await,
    );
    let local = Who::key(
        &new_client(
            &mut a,
            &boot,
            "local",
            &[ACME],
            &[Capability::Admin, Capability::Query],
        )
        .await,
    );
    let all = all_events(&mut a).await;
    assert!(
        all.iter().any(|e| e.tenant_id.is_empty()),
        "global events exist"
    );
    assert!(
        all.iter().any(|e| e.tenant_id == "beta"),
        "beta events exist"
    );

    let seen = events(&mut a, &local, ListAuditEventsRequest::default()).await;
    let want: Vec<&AuditEvent> = all.iter().filter(|e| e.tenant_id == ACME).collect();
    assert_eq!(seen.iter().collect::<Vec<_>>(), want);
    let seen = events(
        &mut a,
        &local,
        ListAuditEventsRequest {
            target: "app:crm".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        seen.len(),
        1,
        "only acme's consent, not the global registration: {seen:?}"
    );
    assert_eq!(seen[0].tenant_id, ACME);
    let seen = events(
        &mut a,
        &local,
        ListAuditEventsRequest {
            actor: "client:bootstrap".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(seen.iter().all(|e| e.tenant_id == ACME));
    fails(
        a.list_audit_events(local.r(ListAuditEventsRequest {
            tenant_id: "beta".into(),
            ..Default::default()
        }))
        .await,
        DENIED,
        "beta",
    );
    // A `*` client sees everything, global events included.
    let star = Who::key(&new_client(&mut a, &boot, "star", &["*"], &[Capability::Admin]).await);
    let seen = events(&mut a, &star, ListAuditEventsRequest::default()).await;
    assert_eq!(seen.len(), all.len() + 1);
    server.stop().await;
}

/// The incident case: an admin client narrowed as the operations guide advises (admin and
/// app_manager on `*`) revokes `bootstrap` (every capability) and a query-only service client,
/// capabilities it lacks; a client bounded to one tenant revokes within that tenant whatever the
/// capabilities, never a client with `*` or with a tenant beyond its own; creating still needs
/// the caller's own tenants and capabilities.
async fn rule_revoking_a_client_needs_only_its_tenants_within_the_callers(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let ops = Who::key(
        &new_client(
            &mut a,
            &boot,
            "ops",
            &["*"],
            &[Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    new_client(&mut a, &boot, "svc", &[ACME], &[Capability::Query]).await;
    let local = Who::key(&new_client(&mut a, &boot, "local", &[ACME], &[Capability::Admin]).await);
    new_client(
        &mut a,
        &boot,
        "acme-idp",
        &[ACME],
        &[Capability::Query, Capability::AssertUser],
    )
    .await;
    new_client(&mut a, &boot, "star-q", &["*"], &[Capability::Query]).await;
    new_client(&mut a, &boot, "wide", &[ACME, "beta"], &[Capability::Query]).await;
    new_client(&mut a, &boot, "beta-q", &["beta"], &[Capability::Query]).await;
    let revoke = |id: &str| RevokeClientRequest {
        client_id: id.into(),
    };

    // Creating keeps its rule: nothing beyond the caller's tenants and capabilities.
    fails(
        a.create_client(ops.r(client_req("q2", &[ACME], &[Capability::Query])))
            .await,
        DENIED,
        "query",
    );
    fails(
        a.create_client(local.r(client_req("q3", &["*"], &[Capability::Admin])))
            .await,
        DENIED,
        "tenants",
    );
    new_client(&mut a, &ops, "mgr2", &[ACME], &[Capability::AppManager]).await;

    // Bounded to acme: within acme whatever the capabilities, nothing beyond.
    for (id, needle) in [
        ("star-q", "tenants"),
        ("wide", "tenants"),
        ("beta-q", "tenants"),
    ] {
        fails(a.revoke_client(local.r(revoke(id))).await, DENIED, needle);
    }
    fails(
        a.revoke_client(local.r(revoke("bootstrap"))).await,
        DENIED,
        "tenants",
    );
    ok(a.revoke_client(local.r(revoke("acme-idp"))).await);

    // On `*`: bootstrap and the query-only client, though it holds neither query nor
    // assert_user.
    ok(a.revoke_client(ops.r(revoke("svc"))).await);
    ok(a.revoke_client(ops.r(revoke("bootstrap"))).await);
    fails(
        a.list_tenants(boot.r(ListTenantsRequest::default())).await,
        tonic::Code::Unauthenticated,
        "",
    );
    let clients = ok(a.list_clients(ops.r(ListClientsRequest::default())).await).clients;
    let revoked: Vec<&str> = clients
        .iter()
        .filter(|c| c.revoked_at.is_some())
        .map(|c| c.client_id.as_str())
        .collect();
    assert_eq!(revoked, ["acme-idp", "bootstrap", "svc"]);
    let history = events(
        &mut a,
        &ops,
        ListAuditEventsRequest {
            target: "client:bootstrap".into(),
            ..Default::default()
        },
    )
    .await;
    let actions: Vec<(&str, &str)> = history
        .iter()
        .map(|e| (e.action.as_str(), e.actor_client.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("CreateClient", "(bootstrap)"), ("RevokeClient", "ops")]
    );
    server.stop().await;
}
