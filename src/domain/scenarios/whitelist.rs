//! Whitelisting (docs/rules.md §2 "Whitelist entry", §3 steps 2 and 4) and acting on behalf of a
//! managed user, which the entry's content access allows (§3 step 6).

use super::*;

// ---------------------------------------------------------------------------------------------
// Whitelisting
// ---------------------------------------------------------------------------------------------

fn scope_check(w: &World, s: &'static str) -> Decision {
    w.check(RawAccessQuery {
        user_id: "alice",
        scope: s,
        ..ask()
    })
}

#[test]
fn an_entry_with_allowed_scopes_narrows_while_whitelisting_is_enabled() {
    let w = World::new()
        .whitelisting(true)
        .whitelisted(&["documents:read"], ContentAccess::OwnContent);
    assert_allowed(&scope_check(&w, "documents:read"));
    let d = scope_check(&w, "documents:write");
    assert_denied(&d, Reason::ScopeNotGranted);
    assert!(d.message.contains("whitelist"), "{}", d.message);
    let report = w.report();
    assert_eq!(report.effective_scopes, [scope("documents:read")]);
    assert!(report.whitelisting_enabled && report.whitelisted);
    // Permissions are not narrowed by the entry.
    assert_allowed(&w.check(perm("alice", "WRITE", "/hr")));
}

#[test]
fn allowed_scopes_never_add_a_scope_that_was_not_consented() {
    let w = World::new().whitelisting(true).whitelisted(
        &["documents:read", "calendar:read"],
        ContentAccess::OwnContent,
    );
    assert_allowed(&scope_check(&w, "documents:read"));
    assert_denied(&scope_check(&w, "calendar:read"), Reason::ScopeNotGranted);
    assert_denied(&scope_check(&w, "documents:write"), Reason::ScopeNotGranted);
}

#[test]
fn empty_allowed_scopes_mean_every_consented_scope() {
    let w = World::new()
        .whitelisting(true)
        .whitelisted(&[], ContentAccess::OwnContent);
    assert_allowed(&scope_check(&w, "documents:read"));
    assert_allowed(&scope_check(&w, "documents:write"));
    assert_denied(&scope_check(&w, "calendar:read"), Reason::ScopeNotGranted);
    assert_eq!(
        w.report().effective_scopes,
        [scope("documents:read"), scope("documents:write")]
    );
}

#[test]
fn entries_are_ignored_while_whitelisting_is_disabled() {
    let w = World::new().whitelisted(&["documents:read"], ContentAccess::OnBehalfOfManagedUsers);
    assert_allowed(&scope_check(&w, "documents:write"));
    let report = w.report();
    assert!(!report.whitelisting_enabled);
    assert!(report.whitelisted);
    assert_eq!(report.content_access, ContentAccess::OwnContent);
    assert_eq!(report.effective_scopes.len(), 2);
    // Enabling whitelisting brings the prepared entry into force.
    let w = w.whitelisting(true);
    assert_denied(&scope_check(&w, "documents:write"), Reason::ScopeNotGranted);
    assert_eq!(
        w.report().content_access,
        ContentAccess::OnBehalfOfManagedUsers
    );
}

#[test]
fn whitelisting_enabled_with_no_entry_blocks_even_a_consented_app() {
    let w = World::new().whitelisting(true);
    let d = w.check(RawAccessQuery {
        user_id: "owner",
        ..ask()
    });
    assert_denied(&d, Reason::AppNotWhitelisted);
    let report = w.report();
    assert!(report.whitelisting_enabled && !report.whitelisted);
    assert_eq!(report.consent.state, ConsentState::Approved);
    assert!(report.effective_scopes.is_empty());
    assert!(report.app_grants.is_empty());
    // An entry for the app lets it in.
    assert_allowed(
        &w.whitelisted(&[], ContentAccess::OwnContent)
            .check(RawAccessQuery {
                user_id: "owner",
                ..ask()
            }),
    );
}

// ---------------------------------------------------------------------------------------------
// On behalf of
// ---------------------------------------------------------------------------------------------

/// Whitelisting on, and `crm` whitelisted for every consented scope on behalf of managed users.
fn delegating() -> World {
    World::new()
        .whitelisting(true)
        .whitelisted(&[], ContentAccess::OnBehalfOfManagedUsers)
}

#[test]
fn a_delegate_acts_on_behalf_of_a_managed_user() {
    let d = delegating().check(obo("dora", "bob", "WRITE", "/hr/team"));
    assert_allowed(&d);
    let step = d.trace.iter().find(|t| t.step == Step::OnBehalfOf).unwrap();
    assert!(
        step.passed && step.detail.contains("bob"),
        "{}",
        step.detail
    );
}

#[test]
fn on_behalf_of_the_targets_rights_count_not_the_actors() {
    let w = delegating();
    // dora alone holds only READ on /hr: not enough for WRITE at /hr/team.
    assert_denied(
        &w.check(perm("dora", "WRITE", "/hr/team")),
        Reason::UserPermissionInsufficient,
    );
    // bob holds MANAGE on /hr/team: acting for him, WRITE is allowed.
    assert_allowed(&w.check(obo("dora", "bob", "WRITE", "/hr/team")));
    // dora holds READ at /hr/other, bob nothing: acting for bob, it is refused, naming bob.
    assert_allowed(&w.check(perm("dora", "READ", "/hr/other")));
    let d = w.check(obo("dora", "bob", "READ", "/hr/other"));
    assert_denied(&d, Reason::UserPermissionInsufficient);
    assert!(d.message.contains("user bob"), "{}", d.message);
}

#[test]
fn an_administrator_may_act_on_behalf_without_delegate() {
    let w = delegating();
    assert_allowed(&w.check(obo("uma", "bob", "READ", "/hr/team")));
    assert_allowed(&w.check(obo("boss", "bob", "READ", "/hr/team")));
    assert_allowed(&w.check(obo("boss", "dora", "READ", "/hr")));
}

#[test]
fn on_behalf_of_is_refused_without_a_user_id() {
    let w = delegating()
        .with_manifest(|m| m.allow_app_only = true)
        .reapproved();
    let d = w.check(RawAccessQuery {
        on_behalf_of: "bob",
        ..perm("", "READ", "/hr")
    });
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(d.message.contains("user_id"), "{}", d.message);
}

#[test]
fn on_behalf_of_is_refused_with_own_content_access() {
    let d = World::new()
        .whitelisting(true)
        .whitelisted(&[], ContentAccess::OwnContent)
        .check(obo("dora", "bob", "READ", "/hr"));
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(d.message.contains("OWN_CONTENT"), "{}", d.message);
}

#[test]
fn on_behalf_of_is_refused_while_whitelisting_is_off_even_with_an_on_behalf_entry() {
    let d = World::new()
        .whitelisted(&[], ContentAccess::OnBehalfOfManagedUsers)
        .check(obo("dora", "bob", "READ", "/hr"));
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(d.message.contains("OWN_CONTENT"), "{}", d.message);
}

#[test]
fn on_behalf_of_is_refused_for_an_actor_without_delegate_or_admin() {
    let w = delegating().with_user(
        "pm",
        user(&[Role::PermissionManager], &[("/", Right::FullControl)]),
    );
    for actor in ["alice", "pm", "ghost"] {
        let d = w.check(obo(actor, "nobody", "READ", "/hr"));
        assert_denied(&d, Reason::ImpersonationNotAllowed);
        assert!(d.message.contains("DELEGATE"), "{actor}: {}", d.message);
    }
}

#[test]
fn on_behalf_of_is_refused_for_a_target_the_tenant_does_not_know() {
    let d = delegating().check(obo("dora", "ghost", "READ", "/hr"));
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(d.message.contains("not known"), "{}", d.message);
}

#[test]
fn on_behalf_of_is_refused_for_a_target_holding_a_role_the_actor_lacks() {
    let w = delegating().with_user("pm", user(&[Role::PermissionManager], &[]));
    let refused = [
        ("uma", "boss", "GENERAL_ADMIN"),
        ("dora", "uma", "USER_ADMIN"),
        ("dora", "pm", "PERMISSION_MANAGER"),
        ("dora", "boss", "GENERAL_ADMIN"),
    ];
    for (actor, target, role) in refused {
        let d = w.check(obo(actor, target, "READ", "/hr"));
        assert_denied(&d, Reason::ImpersonationNotAllowed);
        assert!(d.message.contains(role), "{actor}->{target}: {}", d.message);
    }
    // A target with the same roles as the actor is managed.
    let w = w.with_user("dave", user(&[Role::Delegate], &[("/hr", Right::Read)]));
    assert_allowed(&w.check(obo("dora", "dave", "READ", "/hr")));
}
