//! API users (docs/rules.md §8) in CheckAccess through the real server, on both backends: a scope
//! outside the signed-in API user's scopes is SCOPE_NOT_GRANTED naming the API user, `as_user`
//! acts on behalf of a managed user in place of DELEGATE (the managed-user rule still applies;
//! with whitelisting off no content access is needed, with it on the app's content access still
//! decides, an `OWN_CONTENT` entry refusing), other users and GetAppScopes are unaffected, and
//! every change is seen at once by cached, token-fresh, fully consistent and batched checks
//! alike.

use super::*;
use crate::support::db::backend_tests;

backend_tests!(
    api_users_narrow_scopes_and_act_as_users_in_checks,
    as_user_needs_no_whitelisting_and_an_own_content_entry_refuses_it,
);

/// `user` asking through `crm` for `scope`, explained.
fn scoped(user: &str, scope: &str) -> CheckAccessRequest {
    CheckAccessRequest {
        scope: scope.into(),
        explain: true,
        ..ask("crm", user)
    }
}

/// `user` acting on behalf of `target` through `crm`, asking for `permission` at `resource`.
fn for_whom(user: &str, target: &str, permission: &str, resource: &str) -> CheckAccessRequest {
    CheckAccessRequest {
        on_behalf_of: target.into(),
        ..may(user, permission, resource)
    }
}

/// The detail of `step` in an explained answer.
fn step<'r>(r: &'r CheckAccessResponse, step: &str) -> &'r str {
    &r.trace
        .iter()
        .find(|s| s.step == step)
        .unwrap_or_else(|| panic!("no {step} step: {r:#?}"))
        .detail
}

impl Api {
    /// Makes `user` an API user as alice; returns `written_at`.
    async fn api_user(&self, user: &str, scopes: &[&str], as_user: bool) -> String {
        let request = api_user_req("acme", user, scopes, as_user);
        ok(self
            .admin
            .clone()
            .put_api_user(boot(request, Some("alice")))
            .await)
        .written_at
    }
}

async fn api_users_narrow_scopes_and_act_as_users_in_checks(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    api.put_user("acme", "erin", &[], None).await;
    api.grant_right("acme", "erin", "/hr", Right::Read).await;
    let app_scopes = async || {
        api.scopes(scopes_of("acme", "crm"))
            .await
            .unwrap()
            .effective_scopes
    };
    let scopes_before = app_scopes().await;
    assert_eq!(scopes_before, ["documents:read", "documents:write"]);

    // Before: erin may use every scope of the app, and may not act for others.
    let r = api.decide(scoped("erin", "documents:write")).await;
    decided(&r, Reason::Allowed, None);
    api.put_tenant("acme", true, Some("alice")).await;
    api.whitelist("acme", "crm", &[], ContentAccess::OnBehalfOfManagedUsers)
        .await;
    let r = api
        .decide(for_whom("erin", "dave", "WRITE", "/hr/payroll"))
        .await;
    decided(&r, Reason::ImpersonationNotAllowed, Some("ON_BEHALF_OF"));

    // erin becomes an API user narrowed to one scope, with as_user.
    let token = api.api_user("erin", &["documents:read"], true).await;
    let r = api.decide(scoped("erin", "documents:write")).await;
    decided(&r, Reason::ScopeNotGranted, Some("SCOPE"));
    assert!(
        r.message.contains("API user erin") && r.message.contains("documents:read"),
        "{}",
        r.message
    );
    let r = api.decide(scoped("erin", "documents:read")).await;
    decided(&r, Reason::Allowed, None);
    assert!(step(&r, "SCOPE").contains("API user erin"), "{r:#?}");
    // The same answers from the store itself and at the write's token.
    for consistency in [fully(), fresh(&token)] {
        let r = api
            .decide(CheckAccessRequest {
                consistency,
                ..scoped("erin", "documents:write")
            })
            .await;
        assert_eq!(r.reason(), Reason::ScopeNotGranted, "{r:#?}");
    }
    // as_user: erin acts for dave (no roles), whose rights count; the app's rights still do.
    let r = api
        .decide(CheckAccessRequest {
            scope: "documents:read".into(),
            ..for_whom("erin", "dave", "WRITE", "/hr/payroll")
        })
        .await;
    decided(&r, Reason::Allowed, None);
    let detail = step(&r, "ON_BEHALF_OF");
    assert!(
        detail.contains("API user erin") && detail.contains("dave"),
        "{detail}"
    );
    let r = api
        .decide(for_whom("erin", "dave", "WRITE", "/finance"))
        .await;
    decided(&r, Reason::AppPermissionInsufficient, Some("PERMISSION"));
    // Acting for another, erin keeps her own scopes.
    let r = api
        .decide(CheckAccessRequest {
            scope: "documents:write".into(),
            ..for_whom("erin", "dave", "WRITE", "/hr/payroll")
        })
        .await;
    decided(&r, Reason::ScopeNotGranted, Some("SCOPE"));
    // The managed-user rule still applies: bob holds DELEGATE, which erin lacks.
    let r = api.decide(for_whom("erin", "bob", "READ", "/hr")).await;
    decided(&r, Reason::ImpersonationNotAllowed, Some("ON_BEHALF_OF"));
    assert!(r.message.contains("DELEGATE"), "{}", r.message);

    // Nobody else is affected, and the app's scopes are what they were.
    let r = api.decide(scoped("dave", "documents:write")).await;
    decided(&r, Reason::Allowed, None);
    assert!(!step(&r, "SCOPE").contains("API user"), "{r:#?}");
    assert_eq!(app_scopes().await, scopes_before);
    let batch = api
        .batch(
            BOOTSTRAP_KEY,
            vec![
                scoped("erin", "documents:write"),
                scoped("dave", "documents:write"),
                scoped("erin", "documents:read"),
            ],
            None,
        )
        .await
        .unwrap();
    let reasons: Vec<Reason> = batch.results.iter().map(|r| r.reason()).collect();
    assert_eq!(
        reasons,
        [Reason::ScopeNotGranted, Reason::Allowed, Reason::Allowed]
    );

    // Without as_user erin may not act for others; the refusal says why.
    api.api_user("erin", &["documents:read"], false).await;
    let r = api
        .decide(for_whom("erin", "dave", "WRITE", "/hr/payroll"))
        .await;
    decided(&r, Reason::ImpersonationNotAllowed, Some("ON_BEHALF_OF"));
    assert!(
        r.message.contains("API user erin") && r.message.contains("as_user"),
        "{}",
        r.message
    );
    // With it, the app's content access still decides: OWN_CONTENT refuses.
    api.api_user("erin", &["documents:read"], true).await;
    api.whitelist("acme", "crm", &[], ContentAccess::OwnContent)
        .await;
    let r = api
        .decide(for_whom("erin", "dave", "WRITE", "/hr/payroll"))
        .await;
    decided(&r, Reason::ImpersonationNotAllowed, Some("ON_BEHALF_OF"));
    assert!(r.message.contains("OWN_CONTENT"), "{}", r.message);

    // With whitelisting off the narrowing holds just the same.
    api.put_tenant("acme", false, Some("alice")).await;
    let r = api.decide(scoped("erin", "documents:write")).await;
    decided(&r, Reason::ScopeNotGranted, Some("SCOPE"));

    // Unmade, erin is an ordinary user again.
    let request = delete_api_user_req("acme", "erin");
    ok(api
        .admin
        .clone()
        .delete_api_user(boot(request, Some("alice")))
        .await);
    let r = api.decide(scoped("erin", "documents:write")).await;
    decided(&r, Reason::Allowed, None);
    server.stop().await;
}

async fn as_user_needs_no_whitelisting_and_an_own_content_entry_refuses_it(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    api.put_user("acme", "erin", &[], None).await;
    let erin_for_dave = || for_whom("erin", "dave", "WRITE", "/hr/payroll");

    // Whitelisting is off, so every app has OWN_CONTENT: nobody acts for others, bob the
    // delegate included.
    assert!(
        !api.scopes(scopes_of("acme", "crm"))
            .await
            .unwrap()
            .whitelisting_enabled
    );
    let r = api
        .decide(for_whom("bob", "dave", "WRITE", "/hr/payroll"))
        .await;
    decided(&r, Reason::ImpersonationNotAllowed, Some("ON_BEHALF_OF"));
    assert!(
        r.message.contains("whitelisting is off") && r.message.contains("OWN_CONTENT"),
        "{}",
        r.message
    );
    let r = api.decide(erin_for_dave()).await;
    decided(&r, Reason::ImpersonationNotAllowed, Some("ON_BEHALF_OF"));

    // An API user with as_user acts for dave without whitelisting; the trace says why.
    let token = api.api_user("erin", &["documents:read"], true).await;
    for consistency in [None, fresh(&token), fully()] {
        let r = api
            .decide(CheckAccessRequest {
                consistency,
                ..erin_for_dave()
            })
            .await;
        decided(&r, Reason::Allowed, None);
        assert_eq!(
            step(&r, "ON_BEHALF_OF"),
            "API user erin acts on behalf of managed user dave (as_user; whitelisting is off, so no content access is needed)"
        );
    }
    // dave's rights count, and the app's; the managed-user rule still applies.
    let r = api
        .decide(for_whom("erin", "dave", "WRITE", "/finance"))
        .await;
    decided(&r, Reason::AppPermissionInsufficient, Some("PERMISSION"));
    let r = api.decide(for_whom("erin", "bob", "READ", "/hr")).await;
    decided(&r, Reason::ImpersonationNotAllowed, Some("ON_BEHALF_OF"));
    assert!(r.message.contains("DELEGATE"), "{}", r.message);

    // The tenant whitelists crm with OWN_CONTENT and turns whitelisting on: the administrator
    // has forbidden acting on behalf through it, API users included.
    api.whitelist("acme", "crm", &[], ContentAccess::OwnContent)
        .await;
    let r = api.decide(erin_for_dave()).await;
    decided(&r, Reason::Allowed, None);
    api.put_tenant("acme", true, Some("alice")).await;
    let r = api.decide(erin_for_dave()).await;
    decided(&r, Reason::ImpersonationNotAllowed, Some("ON_BEHALF_OF"));
    assert!(
        r.message.contains("OWN_CONTENT") && r.message.contains("API users included"),
        "{}",
        r.message
    );
    // On behalf of managed users: allowed again, by the content-access rule.
    api.whitelist("acme", "crm", &[], ContentAccess::OnBehalfOfManagedUsers)
        .await;
    let r = api.decide(erin_for_dave()).await;
    decided(&r, Reason::Allowed, None);
    assert_eq!(
        step(&r, "ON_BEHALF_OF"),
        "API user erin acts on behalf of managed user dave (as_user; whitelisting is on and the app's content access is ON_BEHALF_OF_MANAGED_USERS)"
    );
    server.stop().await;
}
