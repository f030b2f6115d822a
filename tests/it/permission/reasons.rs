//! One test per CheckAccess reason (docs/rules.md §3), on both backends, each with its trace.

use super::*;
use crate::support::db::backend_tests;

backend_tests!(
    reason_allowed,
    reason_unknown_tenant,
    reason_unknown_app,
    reason_app_not_whitelisted,
    reason_no_consent,
    reason_consent_revoked,
    reason_reapproval_required,
    reason_scope_not_granted,
    reason_impersonation_not_allowed,
    reason_user_required,
    reason_app_permission_insufficient,
    reason_user_permission_insufficient,
);

async fn reason_allowed(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = CheckAccessRequest {
        scope: "documents:read".into(),
        ..may("dave", "EDIT_ITEMS", "/hr/team/docs")
    };
    let r = api.decide(q.clone()).await;
    decided(&r, Reason::Allowed, None);
    // Without explain, no trace; a level is a permission too; the whole-tenant question.
    let quiet = api
        .decide(CheckAccessRequest {
            explain: false,
            ..q.clone()
        })
        .await;
    assert!(quiet.allowed && quiet.trace.is_empty(), "{quiet:#?}");
    decided(
        &api.decide(may("dave", "WRITE", "/hr/team")).await,
        Reason::Allowed,
        None,
    );
    let at_all = api
        .decide(CheckAccessRequest {
            explain: true,
            ..ask("crm", "dave")
        })
        .await;
    decided(&at_all, Reason::Allowed, None);
    // `/a..b` is a fine segment, not a parent reference.
    let dots = api.decide(may("alice", "READ", "/hr/a..b")).await;
    decided(&dots, Reason::Allowed, None);
    // The same answer straight from the store.
    let store = api
        .decide(CheckAccessRequest {
            consistency: fully(),
            ..q
        })
        .await;
    decided(&store, Reason::Allowed, None);
    server.stop().await;
}

async fn reason_unknown_tenant(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = CheckAccessRequest {
        tenant_id: "globex".into(),
        ..may("dave", "EDIT_ITEMS", "/hr")
    };
    decided(
        &api.decide(q.clone()).await,
        Reason::UnknownTenant,
        Some("TENANT"),
    );
    let store = CheckAccessRequest {
        consistency: fully(),
        ..q
    };
    decided(
        &api.decide(store).await,
        Reason::UnknownTenant,
        Some("TENANT"),
    );
    server.stop().await;
}

async fn reason_unknown_app(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = CheckAccessRequest {
        app_id: "ghost".into(),
        ..may("dave", "EDIT_ITEMS", "/hr")
    };
    decided(&api.decide(q).await, Reason::UnknownApp, Some("APP"));
    // An app unregistered is unknown at once (its consent went with it).
    let crm = may("dave", "EDIT_ITEMS", "/hr");
    decided(&api.decide(crm.clone()).await, Reason::Allowed, None);
    let r = api
        .admin
        .clone()
        .unregister_app(boot(
            UnregisterAppRequest {
                app_id: "crm".into(),
            },
            None,
        ))
        .await;
    ok(r);
    decided(&api.decide(crm).await, Reason::UnknownApp, Some("APP"));
    server.stop().await;
}

async fn reason_app_not_whitelisted(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = may("dave", "EDIT_ITEMS", "/hr");
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    // Enabled with no entries: an allow-list that blocks every app.
    api.put_tenant("acme", true, Some("alice")).await;
    decided(
        &api.decide(q.clone()).await,
        Reason::AppNotWhitelisted,
        Some("WHITELIST"),
    );
    api.whitelist("acme", "crm", &[], ContentAccess::OwnContent)
        .await;
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    // An entry prepared while whitelisting is off changes nothing; switching it off lets all in.
    api.put_tenant("acme", false, Some("alice")).await;
    decided(&api.decide(q).await, Reason::Allowed, None);
    server.stop().await;
}

async fn reason_no_consent(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    api.register("fresh", AppKind::Standard, crm_manifest())
        .await;
    let q = CheckAccessRequest {
        app_id: "fresh".into(),
        ..may("dave", "EDIT_ITEMS", "/hr")
    };
    decided(&api.decide(q).await, Reason::NoConsent, Some("CONSENT"));
    // Consent is never copied between tenants.
    api.put_tenant("acme-stage", false, None).await;
    let stage = CheckAccessRequest {
        tenant_id: "acme-stage".into(),
        ..may("dave", "EDIT_ITEMS", "/hr")
    };
    decided(&api.decide(stage).await, Reason::NoConsent, Some("CONSENT"));
    server.stop().await;
}

async fn reason_consent_revoked(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = may("dave", "EDIT_ITEMS", "/hr");
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    api.revoke_consent("acme", "crm").await;
    let r = api.decide(q.clone()).await;
    decided(&r, Reason::ConsentRevoked, Some("CONSENT"));
    // Approving again is how an administrator restores it.
    api.approve(
        "acme",
        "crm",
        1,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;
    decided(&api.decide(q).await, Reason::Allowed, None);
    server.stop().await;
}

async fn reason_reapproval_required(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = may("dave", "EDIT_ITEMS", "/hr");
    let escalated = Manifest {
        webhooks: true,
        ..crm_manifest()
    };
    let revision = api.update_manifest("crm", escalated).await;
    assert_eq!(revision, 2);
    let r = api.decide(q.clone()).await;
    decided(&r, Reason::ReapprovalRequired, Some("CONSENT"));
    assert!(r.message.contains("WEBHOOKS_ADDED"), "{r:#?}");
    api.approve(
        "acme",
        "crm",
        revision,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;
    decided(&api.decide(q).await, Reason::Allowed, None);
    server.stop().await;
}

async fn reason_scope_not_granted(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = |scope: &str| CheckAccessRequest {
        scope: scope.into(),
        ..may("dave", "EDIT_ITEMS", "/hr")
    };
    decided(
        &api.decide(q("calendar:read")).await,
        Reason::ScopeNotGranted,
        Some("SCOPE"),
    );
    // Scopes match exactly and case-sensitively.
    decided(
        &api.decide(q("Documents:read")).await,
        Reason::ScopeNotGranted,
        Some("SCOPE"),
    );
    decided(
        &api.decide(q("documents:write")).await,
        Reason::Allowed,
        None,
    );
    // The whitelist entry's allowed scopes narrow the consented ones while whitelisting is on.
    api.put_tenant("acme", true, Some("alice")).await;
    api.whitelist(
        "acme",
        "crm",
        &["documents:read"],
        ContentAccess::OwnContent,
    )
    .await;
    decided(
        &api.decide(q("documents:write")).await,
        Reason::ScopeNotGranted,
        Some("SCOPE"),
    );
    decided(
        &api.decide(q("documents:read")).await,
        Reason::Allowed,
        None,
    );
    server.stop().await;
}

async fn reason_impersonation_not_allowed(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let obo = |user: &str, target: &str| CheckAccessRequest {
        on_behalf_of: target.into(),
        ..may(user, "EDIT_ITEMS", "/hr")
    };
    // Whitelisting off: every app has OWN_CONTENT, so impersonation fails closed.
    decided(
        &api.decide(obo("bob", "dave")).await,
        Reason::ImpersonationNotAllowed,
        Some("ON_BEHALF_OF"),
    );
    api.put_tenant("acme", true, Some("alice")).await;
    api.whitelist("acme", "crm", &[], ContentAccess::OnBehalfOfManagedUsers)
        .await;
    // The delegate acts for a managed user, whose rights then count (bob only reads).
    decided(&api.decide(obo("bob", "dave")).await, Reason::Allowed, None);
    decided(
        &api.decide(may("bob", "EDIT_ITEMS", "/hr")).await,
        Reason::UserPermissionInsufficient,
        Some("PERMISSION"),
    );
    // Not a delegate; a target holding a role the actor lacks; a target the tenant does not know.
    for (user, target) in [("dave", "bob"), ("bob", "alice"), ("bob", "stranger")] {
        decided(
            &api.decide(obo(user, target)).await,
            Reason::ImpersonationNotAllowed,
            Some("ON_BEHALF_OF"),
        );
    }
    server.stop().await;
}

async fn reason_user_required(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    decided(
        &api.decide(may("", "READ", "/hr")).await,
        Reason::UserRequired,
        Some("USER"),
    );
    // allow_app_only, once approved, lets the app act without a user, on its own rights.
    let rev = api
        .update_manifest(
            "crm",
            Manifest {
                allow_app_only: true,
                ..crm_manifest()
            },
        )
        .await;
    decided(
        &api.decide(may("", "READ", "/hr")).await,
        Reason::UserRequired,
        Some("USER"),
    );
    api.approve(
        "acme",
        "crm",
        rev,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;
    decided(
        &api.decide(may("", "READ", "/hr")).await,
        Reason::Allowed,
        None,
    );
    decided(
        &api.decide(may("", "READ", "/finance")).await,
        Reason::AppPermissionInsufficient,
        Some("PERMISSION"),
    );
    server.stop().await;
}

async fn reason_app_permission_insufficient(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    // The app holds WRITE on /hr only: nothing elsewhere, and not MANAGE even for alice.
    decided(
        &api.decide(may("alice", "EDIT_ITEMS", "/finance")).await,
        Reason::AppPermissionInsufficient,
        Some("PERMISSION"),
    );
    decided(
        &api.decide(may("alice", "MANAGE_LISTS", "/hr/team")).await,
        Reason::AppPermissionInsufficient,
        Some("PERMISSION"),
    );
    // The app is checked first, when neither holds it.
    decided(
        &api.decide(may("dave", "EDIT_ITEMS", "/")).await,
        Reason::AppPermissionInsufficient,
        Some("PERMISSION"),
    );
    // A downgrade in the manifest takes effect at once.
    api.update_manifest(
        "crm",
        manifest(
            &["documents:read", "documents:write"],
            &[(ScopeLevel::SiteCollection, Right::Read)],
        ),
    )
    .await;
    decided(
        &api.decide(may("dave", "EDIT_ITEMS", "/hr")).await,
        Reason::AppPermissionInsufficient,
        Some("PERMISSION"),
    );
    decided(
        &api.decide(may("dave", "VIEW_ITEMS", "/hr")).await,
        Reason::Allowed,
        None,
    );
    server.stop().await;
}

async fn reason_user_permission_insufficient(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    decided(
        &api.decide(may("bob", "EDIT_ITEMS", "/hr")).await,
        Reason::UserPermissionInsufficient,
        Some("PERMISSION"),
    );
    // A user the tenant does not know holds nothing.
    decided(
        &api.decide(may("nobody", "VIEW_ITEMS", "/hr")).await,
        Reason::UserPermissionInsufficient,
        Some("PERMISSION"),
    );
    // Rights are per path and below; granting again replaces the level.
    api.grant_right("acme", "bob", "/hr/team", Right::Write)
        .await;
    decided(
        &api.decide(may("bob", "EDIT_ITEMS", "/hr/team/docs")).await,
        Reason::Allowed,
        None,
    );
    decided(
        &api.decide(may("bob", "EDIT_ITEMS", "/hr/other")).await,
        Reason::UserPermissionInsufficient,
        Some("PERMISSION"),
    );
    api.revoke_right("acme", "bob", "/hr/team", Right::Write)
        .await;
    decided(
        &api.decide(may("bob", "EDIT_ITEMS", "/hr/team/docs")).await,
        Reason::UserPermissionInsufficient,
        Some("PERMISSION"),
    );
    server.stop().await;
}
