//! The binary: everything written survives a restart, and the `client create` and `client
//! revoke` commands (keys that work, revocations that arrive, a revoked bootstrap client that
//! stays revoked).

use std::time::Duration;

use consentry::proto::*;
use consentry::service::auth::hash_key;
use tonic::Code;

use super::*;
use crate::support::calls::{Who, fails, ok};
use crate::support::db::{TestDb, backend_tests};
use crate::support::fixtures::*;
use crate::support::server::{BinaryServer, TestServer, eventually};

backend_tests!(
    the_binary_keeps_everything_across_a_restart,
    the_cli_creates_clients_whose_keys_work_and_revokes_them,
    a_revoked_bootstrap_client_stays_revoked,
);

// ---------------------------------------------------------------------------------------------
// Restarts.

/// Everything the AdminService lists, as one comparable value.
#[derive(Debug, PartialEq)]
struct Everything {
    tenants: Vec<Tenant>,
    users: Vec<TenantUser>,
    rights: Vec<UserRight>,
    apps: Vec<App>,
    consents: Vec<Consent>,
    entries: Vec<WhitelistEntry>,
    groups: Vec<PermissionGroup>,
    clients: Vec<Client>,
    events: Vec<AuditEvent>,
}

async fn everything(a: &mut Admin) -> Everything {
    let boot = Who::boot();
    let t = || ACME.to_owned();
    Everything {
        tenants: ok(a.list_tenants(boot.r(ListTenantsRequest::default())).await).tenants,
        users: ok(a
            .list_users(boot.r(ListUsersRequest {
                tenant_id: t(),
                ..Default::default()
            }))
            .await)
        .users,
        rights: ok(a
            .list_user_rights(boot.r(ListUserRightsRequest {
                tenant_id: t(),
                user_id: "carol".into(),
                ..Default::default()
            }))
            .await)
        .rights,
        apps: ok(a.list_apps(boot.r(ListAppsRequest::default())).await).apps,
        consents: ok(a
            .list_consents(boot.r(ListConsentsRequest {
                tenant_id: t(),
                ..Default::default()
            }))
            .await)
        .consents,
        entries: ok(a
            .list_whitelist_entries(boot.r(ListWhitelistEntriesRequest {
                tenant_id: t(),
                ..Default::default()
            }))
            .await)
        .entries,
        groups: ok(a
            .list_permission_groups(boot.user("bob").r(ListPermissionGroupsRequest {
                tenant_id: t(),
                ..Default::default()
            }))
            .await)
        .groups,
        clients: ok(a.list_clients(boot.r(ListClientsRequest::default())).await).clients,
        events: all_events(a).await,
    }
}

async fn the_binary_keeps_everything_across_a_restart(db: &TestDb) {
    let first = BinaryServer::start(&db.url, &[]).await;
    let mut a = first.admin().await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    ok(a.put_tenant(alice.r(tenant_req(ACME, "production", true)))
        .await);
    ok(
        a.grant_user_right(boot.r(right_req(ACME, "carol", "/hr/team", Right::Write)))
            .await,
    );
    register(
        &mut a,
        "crm",
        AppKind::Standard,
        manifest(&["docs"], &[(ScopeLevel::Tenancy, Right::Read)]),
    )
    .await;
    ok(a.approve_consent(alice.r(approve_req(
        ACME,
        "crm",
        1,
        vec![resolved(ScopeLevel::Tenancy, Right::Read, "/")],
    )))
    .await);
    ok(
        a.put_whitelist_entry(alice.r(whitelist_req(ACME, "crm", &["docs"])))
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
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    ok(
        a.grant_external_permission(bob.r(grant_req(ACME, "carol", "p1")))
            .await,
    );
    let svc_key = new_client(
        &mut a,
        &boot,
        "svc",
        &[ACME],
        &[Capability::Admin, Capability::Query],
    )
    .await;
    let last = all_events(&mut a).await.pop().expect("an event").revision;
    let before = everything(&mut a).await;
    assert!(before.events.len() >= 14, "{}", before.events.len());

    let status = first.terminate().await;
    assert!(
        status.success(),
        "SIGTERM ends the server cleanly: {status:?}"
    );

    let second = BinaryServer::start(&db.url, &[]).await;
    let mut b = second.admin().await;
    assert_eq!(everything(&mut b).await, before);
    // Keys still work; revisions continue where they were.
    let svc = Who::key(&svc_key);
    ok(b.list_users(svc.r(ListUsersRequest {
        tenant_id: ACME.into(),
        ..Default::default()
    }))
    .await);
    let next = put_user(&mut b, &svc, ACME, "dave", &[]).await;
    assert_eq!(rev(&next), rev(&last) + 1, "{last} then {next}");
    let events = all_events(&mut b).await;
    assert_eq!(events.len(), before.events.len() + 1);
    assert_eq!(
        events
            .last()
            .map(|e| (e.revision.as_str(), e.actor_client.as_str())),
        Some((next.as_str(), "svc"))
    );
    let status = second.terminate().await;
    assert!(status.success(), "{status:?}");
}

// ---------------------------------------------------------------------------------------------
// The `client` commands.

/// Runs `consentry <args>` to completion.
async fn cli(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_consentry"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CONSENTRY_BOOTSTRAP_KEY")
        .output()
        .await
        .expect("the consentry binary runs")
}

/// Runs `consentry client create` on `url`; returns the key it prints.
async fn cli_create(url: &str, id: &str, tenants: &str, capabilities: &str) -> String {
    let out = cli(&[
        "client",
        "create",
        "--id",
        id,
        "--tenants",
        tenants,
        "--capabilities",
        capabilities,
        "--database-url",
        url,
    ])
    .await;
    assert!(
        out.status.success(),
        "client create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout holds the key alone: {stdout:?}");
    lines[0].trim().to_owned()
}

async fn the_cli_creates_clients_whose_keys_work_and_revokes_them(db: &TestDb) {
    let key = cli_create(&db.url, "x", "a,b", "query,admin").await;
    assert!(key.len() >= 22);
    let server = TestServer::start(db).await;
    let mut a = server.admin().await;
    let boot = Who::boot();
    put_tenant(&mut a, "a").await;
    put_tenant(&mut a, "c").await;
    let x = Who::key(&key);
    let tenants = ok(a.list_tenants(x.r(ListTenantsRequest::default())).await).tenants;
    assert_eq!(
        tenants
            .iter()
            .map(|t| t.tenant_id.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    ok(a.put_user(x.r(user_req("a", "carol", &[]))).await);
    fails(
        a.put_user(x.r(user_req("c", "carol", &[]))).await,
        DENIED,
        "c",
    );
    fails(
        a.register_app(x.r(app_req("crm", AppKind::Standard, Manifest::default())))
            .await,
        DENIED,
        "app_manager",
    );
    let clients = ok(a.list_clients(boot.r(ListClientsRequest::default())).await).clients;
    let row = clients
        .iter()
        .find(|c| c.client_id == "x")
        .expect("x is listed");
    assert_eq!(row.tenants, strings(&["a", "b"]));
    assert_eq!(
        row.capabilities,
        caps(&[Capability::Query, Capability::Admin])
    );
    let created = events(
        &mut a,
        &boot,
        ListAuditEventsRequest {
            target: "client:x".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        (
            created[0].action.as_str(),
            created[0].actor_client.as_str(),
            created[0].actor_user.as_str()
        ),
        ("CreateClient", "(cli)", "")
    );
    assert!(!created[0].after.contains(&key) && !created[0].after.contains(&hash_key(&key)));

    // Revoked in the database by the CLI, the key stops working on the running server within
    // the bound of any other change (one second; polled with a generous deadline).
    let out = cli(&["client", "revoke", "--id", "x", "--database-url", &db.url]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = eventually(Duration::from_secs(5), || {
        let mut a = a.clone();
        let x = x.clone();
        async move {
            matches!(
                a.list_tenants(x.r(ListTenantsRequest::default())).await,
                Err(s) if s.code() == Code::Unauthenticated
            )
        }
    })
    .await;
    assert!(
        took < Duration::from_secs(2),
        "the revocation took {took:?} to arrive"
    );
    let clients = ok(a.list_clients(boot.r(ListClientsRequest::default())).await).clients;
    let row = clients
        .iter()
        .find(|c| c.client_id == "x")
        .expect("x is listed");
    assert!(near_now(row.revoked_at.as_ref()));

    // The CLI fails (non-zero) on what the API refuses.
    for args in [
        vec![
            "client",
            "create",
            "--id",
            "x",
            "--tenants",
            "a",
            "--capabilities",
            "query",
        ],
        vec![
            "client",
            "create",
            "--id",
            "y",
            "--tenants",
            "a",
            "--capabilities",
            "root",
        ],
        vec![
            "client",
            "create",
            "--id",
            "bad id",
            "--tenants",
            "a",
            "--capabilities",
            "query",
        ],
        vec!["client", "revoke", "--id", "x"],
        vec!["client", "revoke", "--id", "ghost"],
    ] {
        let mut args = args;
        args.extend(["--database-url", db.url.as_str()]);
        let out = cli(&args).await;
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "{args:?} printed no key");
    }
    server.stop().await;
}

async fn a_revoked_bootstrap_client_stays_revoked(db: &TestDb) {
    // The first start creates the bootstrap client from CONSENTRY_BOOTSTRAP_KEY.
    let first = BinaryServer::start(&db.url, &[]).await;
    let mut a = first.admin().await;
    ok(a.list_tenants(Who::boot().r(ListTenantsRequest::default()))
        .await);
    assert!(first.terminate().await.success());

    let out = cli(&[
        "client",
        "revoke",
        "--id",
        "bootstrap",
        "--database-url",
        &db.url,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ops_key = cli_create(&db.url, "ops", "*", "admin,query").await;

    // Started again with the same CONSENTRY_BOOTSTRAP_KEY: bootstrap stays revoked.
    let second = BinaryServer::start(&db.url, &[]).await;
    let mut b = second.admin().await;
    fails(
        b.list_tenants(Who::boot().r(ListTenantsRequest::default()))
            .await,
        Code::Unauthenticated,
        "",
    );
    let ops = Who::key(&ops_key);
    let clients = ok(b.list_clients(ops.r(ListClientsRequest::default())).await).clients;
    let row = clients
        .iter()
        .find(|c| c.client_id == "bootstrap")
        .expect("bootstrap is listed");
    assert!(row.revoked_at.is_some(), "{row:?}");
    let created = events(
        &mut b,
        &ops,
        ListAuditEventsRequest {
            target: "client:bootstrap".into(),
            ..Default::default()
        },
    )
    .await;
    let actions: Vec<(&str, &str)> = created
        .iter()
        .map(|e| (e.action.as_str(), e.actor_client.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("CreateClient", "(bootstrap)"), ("RevokeClient", "(cli)")]
    );
    assert!(second.terminate().await.success());
}
