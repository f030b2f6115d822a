//! GetAppScopes (docs/rules.md §4): pending additions until approved, and each escalation requiring
//! re-approval until approved again.

use tonic::Code;

use super::*;
use crate::support::calls::fails;
use crate::support::db::{backend_tests, postgres_tests};

backend_tests!(app_scopes_report_pending_additions_until_approved);

postgres_tests!(each_escalation_requires_reapproval_until_approved_again);

fn requests(list: &[(ScopeLevel, Right)]) -> Vec<PermissionRequest> {
    manifest(&[], list).permission_requests
}

async fn app_scopes_report_pending_additions_until_approved(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let report = async |consistency: Option<Consistency>| {
        api.scopes(GetAppScopesRequest {
            consistency,
            ..scopes_of("acme", "crm")
        })
        .await
        .unwrap()
    };
    let r = report(None).await;
    assert_eq!(r.effective_scopes, ["documents:read", "documents:write"]);
    assert!(r.pending_scopes.is_empty() && r.pending_permission_requests.is_empty());
    assert!(!r.reapproval_required && r.reapproval_reasons.is_empty());
    let consent = r.consent.clone().unwrap();
    assert_eq!(consent.status(), ConsentStatus::Approved);
    assert_eq!(consent.approved_by, "user:alice");
    assert!(consent.approved_at.is_some());
    assert_eq!(
        (
            consent.approved_manifest_revision,
            consent.current_manifest_revision
        ),
        (1, 1)
    );
    assert_eq!(
        r.app_grants,
        [resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")]
    );
    assert_eq!(r.policy(), Policy::UserAndApp);
    assert_eq!(r.run_as(), RunAs::UserContext);
    assert_eq!(r.content_access(), ContentAccess::OwnContent);
    assert!(!r.whitelisting_enabled && !r.whitelisted);

    // Additions: a scope, a new level, a higher right, app-only and the looser policy.
    let wider = Manifest {
        allow_app_only: true,
        policy: Policy::UserOnly as i32,
        ..manifest(
            &["documents:read", "documents:write", "calendar:read"],
            &[
                (ScopeLevel::SiteCollection, Right::Manage),
                (ScopeLevel::Web, Right::Read),
            ],
        )
    };
    let revision = api.update_manifest("crm", wider).await;
    for consistency in [None, fully()] {
        let r = report(consistency).await;
        assert_eq!(r.pending_scopes, ["calendar:read"]);
        let mut pending = r.pending_permission_requests.clone();
        pending.sort_by_key(|p| p.scope_level);
        assert_eq!(
            pending,
            requests(&[
                (ScopeLevel::SiteCollection, Right::Manage),
                (ScopeLevel::Web, Right::Read)
            ])
        );
        assert!(r.pending_allow_app_only);
        assert_eq!(r.pending_policy(), Policy::UserOnly);
        // Pending is not effective.
        assert_eq!(r.effective_scopes, ["documents:read", "documents:write"]);
        assert_eq!(
            r.app_grants,
            [resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")]
        );
        assert!(!r.allow_app_only);
        assert_eq!(r.policy(), Policy::UserAndApp);
        assert!(!r.reapproval_required);
        let consent = r.consent.unwrap();
        assert_eq!(consent.status(), ConsentStatus::Approved);
        assert_eq!(
            (
                consent.approved_manifest_revision,
                consent.current_manifest_revision
            ),
            (1, revision)
        );
    }
    decided(
        &api.decide(CheckAccessRequest {
            scope: "calendar:read".into(),
            ..may("dave", "READ", "/hr")
        })
        .await,
        Reason::ScopeNotGranted,
        Some("SCOPE"),
    );
    decided(
        &api.decide(may("dave", "READ", "/hr/team")).await,
        Reason::Allowed,
        None,
    );

    // Re-approval makes them effective and clears what was pending.
    api.approve(
        "acme",
        "crm",
        revision,
        vec![
            resolved(ScopeLevel::SiteCollection, Right::Manage, "/hr"),
            resolved(ScopeLevel::Web, Right::Read, "/finance/team"),
        ],
    )
    .await;
    let r = report(None).await;
    assert!(r.pending_scopes.is_empty() && r.pending_permission_requests.is_empty());
    assert!(!r.pending_allow_app_only);
    assert_eq!(r.pending_policy(), Policy::Unspecified);
    assert_eq!(
        r.effective_scopes,
        ["calendar:read", "documents:read", "documents:write"]
    );
    assert!(r.allow_app_only);
    assert_eq!(r.policy(), Policy::UserOnly);
    assert_eq!(r.app_grants.len(), 2);
    assert_eq!(r.consent.unwrap().approved_manifest_revision, revision);

    // Whitelisting: an entry prepared while it is off is reported but not in force.
    api.whitelist(
        "acme",
        "crm",
        &["documents:read"],
        ContentAccess::OnBehalfOfManagedUsers,
    )
    .await;
    let r = report(None).await;
    assert!(r.whitelisted && !r.whitelisting_enabled);
    assert_eq!(r.content_access(), ContentAccess::OwnContent);
    assert_eq!(r.effective_scopes.len(), 3);
    api.put_tenant("acme", true, Some("alice")).await;
    for consistency in [None, fully()] {
        let r = report(consistency).await;
        assert!(r.whitelisted && r.whitelisting_enabled);
        assert_eq!(r.content_access(), ContentAccess::OnBehalfOfManagedUsers);
        assert_eq!(
            r.effective_scopes,
            ["documents:read"],
            "narrowed by the entry"
        );
    }
    // Enabled, and no entry: the app gets nothing.
    let r = api
        .admin
        .clone()
        .delete_whitelist_entry(boot(
            DeleteWhitelistEntryRequest {
                tenant_id: "acme".into(),
                app_id: "crm".into(),
            },
            Some("alice"),
        ))
        .await;
    ok(r);
    let r = report(None).await;
    assert!(!r.whitelisted && r.whitelisting_enabled);
    assert!(
        r.effective_scopes.is_empty() && r.app_grants.is_empty(),
        "{r:#?}"
    );
    assert_eq!(r.consent.unwrap().status(), ConsentStatus::Approved);
    api.put_tenant("acme", false, Some("alice")).await;

    // A registered app nobody approved: everything pending, nothing effective.
    api.register("fresh", AppKind::Custom, crm_manifest()).await;
    let r = api.scopes(scopes_of("acme", "fresh")).await.unwrap();
    assert_eq!(r.consent.unwrap().status(), ConsentStatus::NotConsented);
    assert!(r.effective_scopes.is_empty() && r.app_grants.is_empty());
    assert_eq!(r.pending_scopes, ["documents:read", "documents:write"]);
    assert_eq!(
        r.pending_permission_requests,
        requests(&[(ScopeLevel::SiteCollection, Right::Write)])
    );

    // Unknown tenant or app: NOT_FOUND, from the cache or the store.
    for consistency in [None, fully()] {
        for (tenant, app) in [("ghost", "crm"), ("acme", "ghost")] {
            fails(
                api.scopes(GetAppScopesRequest {
                    consistency: consistency.clone(),
                    ..scopes_of(tenant, app)
                })
                .await,
                Code::NotFound,
                "",
            );
        }
    }
    server.stop().await;
}

async fn each_escalation_requires_reapproval_until_approved_again(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let base = || manifest(&["documents:read"], &[]);
    type Escalate = fn(Manifest) -> Manifest;
    let cases: [(&str, &[&str], Escalate); 4] = [
        ("sys", &["RUN_AS_SYSTEM_USER"], |m| Manifest {
            run_as: RunAs::SystemUser as i32,
            ..m
        }),
        ("hooks", &["WEBHOOKS_ADDED"], |m| Manifest {
            webhooks: true,
            ..m
        }),
        ("mirror", &["DATABASE_MIRRORING_ADDED"], |m| Manifest {
            database_mirroring: true,
            ..m
        }),
        (
            "all",
            &[
                "RUN_AS_SYSTEM_USER",
                "WEBHOOKS_ADDED",
                "DATABASE_MIRRORING_ADDED",
            ],
            |m| Manifest {
                run_as: RunAs::SystemUser as i32,
                webhooks: true,
                database_mirroring: true,
                ..m
            },
        ),
    ];
    for (app, reasons, escalate) in cases {
        let revision = api.register(app, AppKind::Standard, base()).await;
        api.approve("acme", app, revision, vec![]).await;
        let q = CheckAccessRequest {
            scope: "documents:read".into(),
            explain: true,
            ..ask(app, "dave")
        };
        decided(&api.decide(q.clone()).await, Reason::Allowed, None);
        let revision = api.update_manifest(app, escalate(base())).await;
        for consistency in [None, fully()] {
            let r = api
                .scopes(GetAppScopesRequest {
                    consistency,
                    ..scopes_of("acme", app)
                })
                .await
                .unwrap();
            assert!(r.reapproval_required, "{app}: {r:#?}");
            let mut got = r.reapproval_reasons.clone();
            got.sort();
            let mut want = strings(reasons);
            want.sort();
            assert_eq!(got, want, "{app}");
            assert_eq!(
                r.consent.as_ref().unwrap().status(),
                ConsentStatus::ReapprovalRequired
            );
            // The app gets nothing until re-approved.
            assert!(r.effective_scopes.is_empty(), "{app}: {r:#?}");
            assert_eq!(r.run_as(), RunAs::UserContext);
            assert!(!r.webhooks && !r.database_mirroring);
        }
        let d = api.decide(q.clone()).await;
        decided(&d, Reason::ReapprovalRequired, Some("CONSENT"));
        for reason in reasons {
            assert!(d.message.contains(reason), "{app}: {}", d.message);
        }
        // Re-approval clears it, and the escalation is then effective.
        api.approve("acme", app, revision, vec![]).await;
        let r = api.scopes(scopes_of("acme", app)).await.unwrap();
        assert!(
            !r.reapproval_required && r.reapproval_reasons.is_empty(),
            "{app}"
        );
        assert_eq!(
            r.consent.as_ref().unwrap().status(),
            ConsentStatus::Approved
        );
        assert_eq!(r.effective_scopes, ["documents:read"]);
        let system = reasons.contains(&"RUN_AS_SYSTEM_USER");
        assert_eq!(r.run_as() == RunAs::SystemUser, system, "{app}");
        assert_eq!(r.webhooks, reasons.contains(&"WEBHOOKS_ADDED"), "{app}");
        assert_eq!(
            r.database_mirroring,
            reasons.contains(&"DATABASE_MIRRORING_ADDED"),
            "{app}"
        );
        if system {
            // A system-user app holds FULL_CONTROL on `/` and is evaluated app-only.
            assert_eq!(r.policy(), Policy::AppOnly);
            decided(
                &api.decide(CheckAccessRequest {
                    permission: "FULL_CONTROL".into(),
                    resource: "/finance".into(),
                    ..q.clone()
                })
                .await,
                Reason::Allowed,
                None,
            );
            decided(
                &api.decide(CheckAccessRequest {
                    user_id: String::new(),
                    ..q.clone()
                })
                .await,
                Reason::Allowed,
                None,
            );
        }
        decided(&api.decide(q).await, Reason::Allowed, None);
    }
    server.stop().await;
}
