//! An audit event for every write RPC (enumerated from the service descriptor), with what it
//! changed and never a key; filtering the audit log by tenant, target, actor and time.

use std::collections::{BTreeMap, BTreeSet};

use consentry::proto::*;
use consentry::service::auth::hash_key;
use serde_json::{Value, json};

use super::*;
use crate::support::calls::{Who, ok};
use crate::support::db::{TestDb, backend_tests, postgres_tests};
use crate::support::fixtures::*;
use crate::support::server::{BOOTSTRAP_KEY, TestServer};

backend_tests!(every_write_rpc_succeeds_and_is_audited);

postgres_tests!(audit_events_filter_by_tenant_target_actor_and_time);

// ---------------------------------------------------------------------------------------------
// One event for every write RPC.

/// A write the test made, and the audit event it must have left.
struct Done {
    action: &'static str,
    written_at: String,
    client: &'static str,
    user: &'static str,
    tenant: &'static str,
    target: String,
    before: Option<Value>,
    after: Option<Value>,
}

/// A write's expected event: `actor` is (client, user or ""), `place` is (tenant or "", target);
/// `before`/`after` list what the JSON must include, `None` when it must be empty.
fn done(
    action: &'static str,
    written_at: String,
    actor: (&'static str, &'static str),
    place: (&'static str, &str),
    before: Option<Value>,
    after: Option<Value>,
) -> Done {
    Done {
        action,
        written_at,
        client: actor.0,
        user: actor.1,
        tenant: place.0,
        target: place.1.to_owned(),
        before,
        after,
    }
}

impl Done {
    #[track_caller]
    fn check(&self, e: &AuditEvent) {
        let what = format!("{} at {}", self.action, self.written_at);
        assert_eq!(e.action, self.action, "{what}: action");
        assert_eq!(e.revision, self.written_at, "{what}: revision");
        assert_eq!(e.actor_client, self.client, "{what}: actor_client");
        assert_eq!(e.actor_user, self.user, "{what}: actor_user");
        assert_eq!(e.tenant_id, self.tenant, "{what}: tenant_id");
        assert_eq!(e.target, self.target, "{what}: target");
        assert!(near_now(e.at.as_ref()), "{what}: at {:?}", e.at);
        for (side, text, expected) in [
            ("before", &e.before, &self.before),
            ("after", &e.after, &self.after),
        ] {
            match expected {
                None => assert!(text.is_empty(), "{what}: {side} must be empty, is {text}"),
                Some(expected) => {
                    let actual = parse_json(&format!("{what}: {side}"), text);
                    assert!(
                        includes(&actual, expected),
                        "{what}: {side} {actual} does not include {expected}"
                    );
                }
            }
        }
    }
}

async fn every_write_rpc_succeeds_and_is_audited(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let mut log: Vec<Done> = Vec::new();

    let reply = ok(a
        .create_client(boot.r(client_req("ops", &["*"], &ALL_CAPS)))
        .await);
    let ops_key = reply.key.clone();
    log.push(done(
        "CreateClient",
        reply.written_at,
        ("bootstrap", ""),
        ("", "client:ops"),
        None,
        Some(json!({"client_id": "ops", "tenants": ["*"],
            "capabilities": ["query", "admin", "app_manager", "assert_user"], "revoked_at": null})),
    ));
    let ops = Who::key(&ops_key);
    let alice = ops.user("alice");
    let bob = ops.user("bob");

    // Tenants, users and rights.
    let reply = ok(a
        .put_tenant(ops.r(tenant_req(ACME, "production", false)))
        .await);
    assert!(reply.created);
    log.push(done(
        "PutTenant",
        reply.written_at,
        ("ops", ""),
        (ACME, "tenant:acme"),
        None,
        Some(json!({"tenant_id": "acme", "environment": "production", "whitelisting_enabled": false})),
    ));
    let w = put_user(&mut a, &ops, ACME, "alice", &[Role::GeneralAdmin]).await;
    log.push(done(
        "PutUser",
        w,
        ("ops", ""),
        (ACME, "user:alice"),
        None,
        Some(json!({"user_id": "alice", "roles": ["GENERAL_ADMIN"]})),
    ));
    let w = put_user(&mut a, &alice, ACME, "bob", &[Role::PermissionManager]).await;
    log.push(done(
        "PutUser",
        w,
        ("ops", "alice"),
        (ACME, "user:bob"),
        None,
        Some(json!({"user_id": "bob", "roles": ["PERMISSION_MANAGER"]})),
    ));
    let w = put_user(&mut a, &ops, ACME, "carol", &[]).await;
    log.push(done(
        "PutUser",
        w,
        ("ops", ""),
        (ACME, "user:carol"),
        None,
        Some(json!({"user_id": "carol", "roles": []})),
    ));
    let reply = ok(a
        .put_tenant(alice.r(tenant_req(ACME, "production", true)))
        .await);
    assert!(!reply.created);
    log.push(done(
        "PutTenant",
        reply.written_at,
        ("ops", "alice"),
        (ACME, "tenant:acme"),
        Some(json!({"environment": "production", "whitelisting_enabled": false})),
        Some(json!({"environment": "production", "whitelisting_enabled": true})),
    ));
    let right = json!({"user_id": "carol", "resource": "/hr", "right": "WRITE"});
    let w = ok(a
        .grant_user_right(ops.r(right_req(ACME, "carol", "/hr", Right::Write)))
        .await)
    .written_at;
    log.push(done(
        "GrantUserRight",
        w,
        ("ops", ""),
        (ACME, "user:carol"),
        None,
        Some(right.clone()),
    ));
    let w = ok(a
        .revoke_user_right(ops.r(RevokeUserRightRequest {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
            resource: "/hr".into(),
            right: Right::Write.into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "RevokeUserRight",
        w,
        ("ops", ""),
        (ACME, "user:carol"),
        Some(right),
        None,
    ));

    // API users: made, narrowed, unmade and made again (DeleteUser below records the record).
    let carol_api = json!({"user_id": "carol", "scopes": ["documents:read"], "as_user": true});
    let narrower = json!({"user_id": "carol", "scopes": [], "as_user": false});
    let api_user =
        |scopes: &[&str], as_user: bool| alice.r(api_user_req(ACME, "carol", scopes, as_user));
    let made = ok(a.put_api_user(api_user(&["documents:read"], true)).await).written_at;
    let narrowed = ok(a.put_api_user(api_user(&[], false)).await).written_at;
    let unmade = ok(a
        .delete_api_user(alice.r(delete_api_user_req(ACME, "carol")))
        .await)
    .written_at;
    let remade = ok(a.put_api_user(api_user(&["documents:read"], true)).await).written_at;
    let carol = (ACME, "user:carol");
    let by_alice = ("ops", "alice");
    log.extend([
        done(
            "PutApiUser",
            made,
            by_alice,
            carol,
            None,
            Some(carol_api.clone()),
        ),
        done(
            "PutApiUser",
            narrowed,
            by_alice,
            carol,
            Some(carol_api.clone()),
            Some(narrower.clone()),
        ),
        done(
            "DeleteApiUser",
            unmade,
            by_alice,
            carol,
            Some(narrower),
            None,
        ),
        done(
            "PutApiUser",
            remade,
            by_alice,
            carol,
            None,
            Some(carol_api.clone()),
        ),
    ]);

    // Applications, consent and whitelisting.
    let reply = ok(a
        .register_app(ops.r(RegisterAppRequest {
            app_id: "crm".into(),
            name: "CRM".into(),
            kind: AppKind::Standard.into(),
            manifest: Some(manifest(
                &["documents:read"],
                &[(ScopeLevel::Web, Right::Write)],
            )),
        }))
        .await);
    assert_eq!(reply.manifest_revision, 1);
    log.push(done(
        "RegisterApp",
        reply.written_at,
        ("ops", ""),
        ("", "app:crm"),
        None,
        Some(
            json!({"app_id": "crm", "name": "CRM", "kind": "STANDARD", "manifest_revision": 1,
            "manifest": {"scopes": ["documents:read"],
                         "permission_requests": [{"scope_level": "WEB", "right": "WRITE"}]}}),
        ),
    ));
    let reply = ok(a
        .update_app_manifest(ops.r(UpdateAppManifestRequest {
            app_id: "crm".into(),
            manifest: Some(manifest(
                &["documents:read", "documents:write"],
                &[(ScopeLevel::Web, Right::Write)],
            )),
        }))
        .await);
    assert_eq!(reply.manifest_revision, 2);
    log.push(done(
        "UpdateAppManifest",
        reply.written_at,
        ("ops", ""),
        ("", "app:crm"),
        Some(json!({"manifest_revision": 1, "manifest": {"scopes": ["documents:read"]}})),
        Some(json!({"manifest_revision": 2,
            "manifest": {"scopes": ["documents:read", "documents:write"]}})),
    ));
    let reply = ok(a
        .approve_consent(alice.r(approve_req(
            ACME,
            "crm",
            2,
            vec![resolved(ScopeLevel::Web, Right::Write, "/hr/team")],
        )))
        .await);
    let consent = reply.consent.expect("the consent");
    assert_eq!(consent.approved_by, "user:alice");
    assert_eq!(consent.approved_manifest_revision, 2);
    log.push(done(
        "ApproveConsent",
        reply.written_at,
        ("ops", "alice"),
        (ACME, "app:crm"),
        None,
        Some(
            json!({"app_id": "crm", "approved_by": "user:alice", "approved_manifest_revision": 2,
            "resolved_requests": [{"scope_level": "WEB", "right": "WRITE", "resource": "/hr/team"}],
            "revoked_at": null}),
        ),
    ));
    let app_right = json!({"app_id": "crm", "resource": "/sales/web", "scope_level": "WEB",
        "right": "READ"});
    let w = ok(a
        .grant_app_right(alice.r(app_right_req(ACME, "crm", "/sales/web", Right::Read)))
        .await)
    .written_at;
    log.push(done(
        "GrantAppRight",
        w,
        ("ops", "alice"),
        (ACME, "app:crm"),
        None,
        Some(app_right.clone()),
    ));
    let w = ok(a
        .revoke_app_right(alice.r(revoke_app_right_req(ACME, "crm", "/sales/web", Right::Read)))
        .await)
    .written_at;
    log.push(done(
        "RevokeAppRight",
        w,
        ("ops", "alice"),
        (ACME, "app:crm"),
        Some(app_right),
        None,
    ));
    let entry = json!({"app_id": "crm", "allowed_scopes": ["documents:read"],
        "content_access": "ON_BEHALF_OF_MANAGED_USERS"});
    let w = ok(a
        .put_whitelist_entry(alice.r(PutWhitelistEntryRequest {
            content_access: ContentAccess::OnBehalfOfManagedUsers.into(),
            ..whitelist_req(ACME, "crm", &["documents:read"])
        }))
        .await)
    .written_at;
    log.push(done(
        "PutWhitelistEntry",
        w,
        ("ops", "alice"),
        (ACME, "app:crm"),
        None,
        Some(entry.clone()),
    ));
    let w = ok(a
        .delete_whitelist_entry(alice.r(DeleteWhitelistEntryRequest {
            tenant_id: ACME.into(),
            app_id: "crm".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "DeleteWhitelistEntry",
        w,
        ("ops", "alice"),
        (ACME, "app:crm"),
        Some(entry),
        None,
    ));
    let w = ok(a
        .revoke_consent(alice.r(RevokeConsentRequest {
            tenant_id: ACME.into(),
            app_id: "crm".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "RevokeConsent",
        w,
        ("ops", "alice"),
        (ACME, "app:crm"),
        Some(json!({"approved_by": "user:alice", "revoked_at": null})),
        Some(json!({"approved_by": "user:alice", "approved_manifest_revision": 2})),
    ));

    // External permission groups, permissions and grants.
    let reply = ok(a
        .create_permission_group(bob.r(group_req(
            ACME,
            "billing",
            &[],
            &["user:bob"],
            &["client:ops"],
        )))
        .await);
    let group = reply.group.expect("the group");
    assert_eq!(
        group.managers,
        vec![Manager {
            principal: "user:bob".into(),
            access: ManagerAccess::ReadWrite.into()
        }]
    );
    log.push(done(
        "CreatePermissionGroup",
        reply.written_at,
        ("ops", "bob"),
        (ACME, "group:billing"),
        None,
        Some(json!({"group_id": "billing", "name": "Group billing",
            "managers": [{"principal": "user:bob", "access": "READ_WRITE"}],
            "grantors": ["user:bob"], "visible_to": ["client:ops"]})),
    ));
    let mut update = update_req(group_req(
        ACME,
        "billing",
        &[("user:bob", ManagerAccess::ReadWrite)],
        &["user:bob"],
        &["client:ops"],
    ));
    update.name = "Billing".into();
    let reply = ok(a.update_permission_group(bob.r(update)).await);
    assert_eq!(reply.group.expect("the group").name, "Billing");
    log.push(done(
        "UpdatePermissionGroup",
        reply.written_at,
        ("ops", "bob"),
        (ACME, "group:billing"),
        Some(json!({"name": "Group billing"})),
        Some(json!({"name": "Billing",
            "managers": [{"principal": "user:bob", "access": "READ_WRITE"}]})),
    ));
    let permission = json!({"permission_id": "invoice.view", "group_id": "billing",
        "name": "Permission invoice.view", "external_id": "INV-VIEW"});
    let w = ok(a
        .create_external_permission(bob.r(permission_req(
            ACME,
            "billing",
            "invoice.view",
            "INV-VIEW",
        )))
        .await)
    .written_at;
    log.push(done(
        "CreateExternalPermission",
        w,
        ("ops", "bob"),
        (ACME, "permission:invoice.view"),
        None,
        Some(permission.clone()),
    ));
    let expires = timestamp(3600);
    let w = ok(a
        .grant_external_permission(bob.r(GrantExternalPermissionRequest {
            expires_at: Some(expires),
            ..grant_req(ACME, "carol", "invoice.view")
        }))
        .await)
    .written_at;
    let grant = json!({"user_id": "carol", "permission_id": "invoice.view",
        "granted_by": "user:bob", "expires_at": micros(&expires)});
    log.push(done(
        "GrantExternalPermission",
        w,
        ("ops", "bob"),
        (ACME, "user:carol"),
        None,
        Some(grant.clone()),
    ));
    let w = ok(a
        .revoke_external_permission(bob.r(revoke_grant_req(ACME, "carol", "invoice.view")))
        .await)
    .written_at;
    log.push(done(
        "RevokeExternalPermission",
        w,
        ("ops", "bob"),
        (ACME, "user:carol"),
        Some(grant),
        None,
    ));
    let w = ok(a
        .delete_external_permission(bob.r(DeleteExternalPermissionRequest {
            tenant_id: ACME.into(),
            permission_id: "invoice.view".into(),
        }))
        .await)
    .written_at;
    let mut gone = permission;
    gone["grants"] = json!([]);
    log.push(done(
        "DeleteExternalPermission",
        w,
        ("ops", "bob"),
        (ACME, "permission:invoice.view"),
        Some(gone),
        None,
    ));
    let w = ok(a
        .delete_permission_group(bob.r(DeletePermissionGroupRequest {
            tenant_id: ACME.into(),
            group_id: "billing".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "DeletePermissionGroup",
        w,
        ("ops", "bob"),
        (ACME, "group:billing"),
        Some(json!({"group_id": "billing", "name": "Billing", "permissions": [], "grants": []})),
        None,
    ));

    // Removals and clients.
    let w = ok(a
        .delete_user(ops.r(DeleteUserRequest {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "DeleteUser",
        w,
        ("ops", ""),
        (ACME, "user:carol"),
        Some(
            json!({"user_id": "carol", "roles": [], "rights": [], "grants": [],
            "group_entries": [], "api_user": carol_api}),
        ),
        None,
    ));
    let w = ok(a
        .unregister_app(ops.r(UnregisterAppRequest {
            app_id: "crm".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "UnregisterApp",
        w,
        ("ops", ""),
        ("", "app:crm"),
        Some(json!({"app_id": "crm", "manifest_revision": 2, "whitelist_entries": []})),
        None,
    ));
    let svc_key = new_client(&mut a, &ops, "svc", &[ACME], &[Capability::Query]).await;
    let created = all_events(&mut a).await.pop().expect("an event").revision;
    log.push(done(
        "CreateClient",
        created,
        ("ops", ""),
        ("", "client:svc"),
        None,
        Some(
            json!({"client_id": "svc", "tenants": ["acme"], "capabilities": ["query"],
            "revoked_at": null}),
        ),
    ));
    let w = ok(a
        .revoke_client(ops.r(RevokeClientRequest {
            client_id: "svc".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "RevokeClient",
        w,
        ("ops", ""),
        ("", "client:svc"),
        Some(
            json!({"client_id": "svc", "tenants": ["acme"], "capabilities": ["query"],
            "revoked_at": null}),
        ),
        Some(json!({"client_id": "svc", "tenants": ["acme"], "capabilities": ["query"]})),
    ));

    // The test made every write RPC the service has: a new write RPC fails it until it is
    // exercised here too.
    let performed: BTreeSet<String> = log.iter().map(|d| d.action.to_owned()).collect();
    assert_eq!(
        performed,
        write_methods(),
        "every write RPC of consentry.v1.AdminService must be exercised and audited here"
    );
    for pair in log.windows(2) {
        assert!(
            rev(&pair[1].written_at) > rev(&pair[0].written_at),
            "{} wrote at {} after {} at {}",
            pair[1].action,
            pair[1].written_at,
            pair[0].action,
            pair[0].written_at
        );
    }

    // One event per write (plus the bootstrap client's creation at start), oldest first.
    let events = all_events(&mut a).await;
    assert_eq!(events.len(), log.len() + 1, "{events:#?}");
    let first = &events[0];
    assert_eq!(
        (
            first.action.as_str(),
            first.target.as_str(),
            first.tenant_id.as_str()
        ),
        ("CreateClient", "client:bootstrap", "")
    );
    assert_eq!(first.actor_client, "(bootstrap)");
    for pair in events.windows(2) {
        assert!(rev(&pair[1].revision) > rev(&pair[0].revision));
    }
    let by_revision: BTreeMap<&str, &AuditEvent> =
        events.iter().map(|e| (e.revision.as_str(), e)).collect();
    for d in &log {
        let e = by_revision
            .get(d.written_at.as_str())
            .unwrap_or_else(|| panic!("no audit event at {} for {}", d.written_at, d.action));
        d.check(e);
    }
    let event = |action: &str| {
        events
            .iter()
            .rfind(|e| e.action == action)
            .unwrap_or_else(|| panic!("no {action} event"))
    };
    let revoked = parse_json("RevokeConsent", &event("RevokeConsent").after);
    assert!(revoked["revoked_at"].is_i64(), "{revoked}");
    let unregistered = parse_json("UnregisterApp", &event("UnregisterApp").before);
    let consents = unregistered["consents"].as_array().expect("consents");
    assert_eq!(consents.len(), 1, "{unregistered}");
    assert_eq!(consents[0]["tenant_id"], "acme");
    assert!(consents[0]["revoked_at"].is_i64(), "{unregistered}");
    let revoked_client = parse_json("RevokeClient", &event("RevokeClient").after);
    assert!(revoked_client["revoked_at"].is_i64(), "{revoked_client}");

    // Never a key or its hash.
    for secret in [
        ops_key.clone(),
        hash_key(&ops_key),
        svc_key.clone(),
        hash_key(&svc_key),
        BOOTSTRAP_KEY.to_owned(),
        hash_key(BOOTSTRAP_KEY),
    ] {
        for e in &events {
            assert!(
                !e.before.contains(&secret) && !e.after.contains(&secret),
                "{} leaks a key or its hash",
                e.action
            );
        }
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Filters.

/// Asserts `got` is exactly the events of `all` that `keep` keeps, which are some but not all.
#[track_caller]
fn check_filter(what: &str, all: &[AuditEvent], got: &[AuditEvent], keep: fn(&AuditEvent) -> bool) {
    let want: Vec<&AuditEvent> = all.iter().filter(|e| keep(e)).collect();
    assert!(!want.is_empty(), "{what}: the filter must match something");
    assert!(
        want.len() < all.len(),
        "{what}: the filter must leave something out"
    );
    assert_eq!(got.iter().collect::<Vec<_>>(), want, "{what}");
}

async fn audit_events_filter_by_tenant_target_actor_and_time(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    acme(&mut a).await;
    put_tenant(&mut a, "beta").await;
    put_user(&mut a, &Who::boot(), "beta", "carol", &[Role::UserAdmin]).await;
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    let ops_key = new_client(&mut a, &Who::boot(), "ops", &["*"], &ALL_CAPS).await;
    let ops = Who::key(&ops_key);
    ok(
        a.approve_consent(ops.user("alice").r(approve_req(ACME, "crm", 1, vec![])))
            .await,
    );
    ok(
        a.approve_consent(ops.user("carol").r(approve_req("beta", "crm", 1, vec![])))
            .await,
    );
    put_user(&mut a, &ops, ACME, "carol", &[]).await;
    ok(
        a.grant_user_right(ops.r(right_req(ACME, "carol", "/hr", Right::Read)))
            .await,
    );
    let all = all_events(&mut a).await;
    assert!(all.len() >= 12);

    let check = |what: &str, got: &[AuditEvent], keep: fn(&AuditEvent) -> bool| {
        check_filter(what, &all, got, keep)
    };
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        },
    )
    .await;
    check("tenant", &got, |e| e.tenant_id == ACME);
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            target: "user:carol".into(),
            ..Default::default()
        },
    )
    .await;
    check("target", &got, |e| e.target == "user:carol");
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            target: "app:crm".into(),
            tenant_id: "beta".into(),
            ..Default::default()
        },
    )
    .await;
    check("target and tenant", &got, |e| {
        e.target == "app:crm" && e.tenant_id == "beta"
    });
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            actor: "user:alice".into(),
            ..Default::default()
        },
    )
    .await;
    check("acting user", &got, |e| e.actor_user == "alice");
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            actor: "client:ops".into(),
            ..Default::default()
        },
    )
    .await;
    check("client", &got, |e| e.actor_client == "ops");
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            actor: "app:crm".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(got.is_empty(), "no event is by an app: {got:?}");
    let middle = all[all.len() / 2].at.expect("at");
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            since: Some(middle),
            ..Default::default()
        },
    )
    .await;
    let want: Vec<&AuditEvent> = all
        .iter()
        .filter(|e| micros(e.at.as_ref().expect("at")) >= micros(&middle))
        .collect();
    assert!(want.len() < all.len() && !want.is_empty());
    assert_eq!(got.iter().collect::<Vec<_>>(), want, "since");
    // A filtered listing pages completely too.
    let paged = pages!(
        a,
        Who::boot(),
        2,
        list_audit_events,
        ListAuditEventsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        },
        events,
        |e| e.revision.clone()
    );
    let want: Vec<String> = all
        .iter()
        .filter(|e| e.tenant_id == ACME)
        .map(|e| e.revision.clone())
        .collect();
    assert_eq!(paged.concat(), want);
    assert!(paged.iter().all(|p| p.len() <= 2));
    server.stop().await;
}
