//! API users (docs/rules.md §8): when the signed-in user (`user_id`, also when acting on behalf of
//! another) is an API user, §3 step 4 also requires the scope to be among the API user's scopes,
//! and step 6 accepts `as_user` in place of DELEGATE. The managed-user rule still applies; the
//! app's content access applies only while whitelisting is on (with it off, `as_user` needs
//! none, and the trace says which rule decided). Everyone else is unaffected.

use super::*;

fn api(scope_list: &[&str], as_user: bool) -> ApiUser {
    ApiUser {
        scopes: scopes(scope_list),
        as_user,
    }
}

/// `World::new()` where `alice` (no roles, WRITE on `/hr`) is an API user.
fn with_api_alice(a: ApiUser) -> World {
    World::new().with_user(
        "alice",
        user(&[], &[("/hr", Right::Write)]).with_api_user(a),
    )
}

/// `user` asks for `s`, nothing else.
fn scoped(w: &World, user: &'static str, s: &'static str) -> Decision {
    w.check(RawAccessQuery {
        user_id: user,
        scope: s,
        ..ask()
    })
}

fn detail(d: &Decision, step: Step) -> &str {
    &d.trace.iter().find(|t| t.step == step).unwrap().detail
}

// ---------------------------------------------------------------------------------------------
// Step 4: scopes
// ---------------------------------------------------------------------------------------------

#[test]
fn an_api_user_may_use_a_scope_among_their_scopes_and_the_trace_names_them() {
    let w = with_api_alice(api(&["documents:read"], false));
    let d = scoped(&w, "alice", "documents:read");
    assert_allowed(&d);
    let scope_step = detail(&d, Step::Scope);
    assert!(scope_step.contains("API user alice"), "{scope_step}");
}

#[test]
fn an_api_user_is_refused_a_scope_the_app_has_but_they_do_not() {
    let w = with_api_alice(api(&["documents:read"], false));
    let d = scoped(&w, "alice", "documents:write");
    assert_denied(&d, Reason::ScopeNotGranted);
    assert!(
        d.message.contains("API user alice") && d.message.contains("documents:read"),
        "{}",
        d.message
    );
    // The same user asking for no scope, or for a permission, is not narrowed.
    assert_allowed(&w.check(RawAccessQuery {
        user_id: "alice",
        ..ask()
    }));
    assert_allowed(&w.check(perm("alice", "WRITE", "/hr")));
    // With the scope and a permission, the scope decides first.
    let d = w.check(RawAccessQuery {
        scope: "documents:write",
        ..perm("alice", "WRITE", "/hr")
    });
    assert_denied(&d, Reason::ScopeNotGranted);
}

#[test]
fn an_api_users_scopes_never_add_a_scope_the_app_lacks() {
    let w = with_api_alice(api(&["documents:read", "calendar:read"], false));
    let d = scoped(&w, "alice", "calendar:read");
    assert_denied(&d, Reason::ScopeNotGranted);
    // The app's refusal is the one reported: the API user is not what decides.
    assert!(d.message.contains("does not request it"), "{}", d.message);
    assert!(!d.message.contains("API user"), "{}", d.message);
}

#[test]
fn an_api_user_with_no_scopes_may_use_none() {
    let w = with_api_alice(api(&[], false));
    for s in ["documents:read", "documents:write"] {
        let d = scoped(&w, "alice", s);
        assert_denied(&d, Reason::ScopeNotGranted);
        assert!(d.message.contains("(none)"), "{}", d.message);
    }
    assert_allowed(&w.check(perm("alice", "READ", "/hr/team")));
}

#[test]
fn narrowing_works_with_whitelisting_on_or_off_and_meets_the_whitelist() {
    let a = api(&["documents:write"], false);
    let off = with_api_alice(a.clone());
    assert_allowed(&scoped(&off, "alice", "documents:write"));
    assert_denied(
        &scoped(&off, "alice", "documents:read"),
        Reason::ScopeNotGranted,
    );
    // Whitelisting on: the entry narrows the app, the record narrows the user; both must admit.
    let on = with_api_alice(a)
        .whitelisting(true)
        .whitelisted(&["documents:read"], ContentAccess::OwnContent);
    let d = scoped(&on, "alice", "documents:write");
    assert_denied(&d, Reason::ScopeNotGranted);
    assert!(d.message.contains("whitelist"), "{}", d.message);
    let d = scoped(&on, "alice", "documents:read");
    assert_denied(&d, Reason::ScopeNotGranted);
    assert!(d.message.contains("API user alice"), "{}", d.message);
}

#[test]
fn narrowing_applies_to_a_system_user_app_too() {
    let w = system_user_app().with_user("alice", user(&[], &[]).with_api_user(api(&[], false)));
    assert_denied(
        &scoped(&w, "alice", "documents:read"),
        Reason::ScopeNotGranted,
    );
    // Without a scope, the system user's full control stands.
    assert_allowed(&w.check(perm("alice", "FULL_CONTROL", "/finance")));
}

#[test]
fn what_step_4_admits_for_an_api_user_is_the_narrowed_effective_scopes() {
    let a = api(&["documents:write", "calendar:read"], false);
    for w in [
        with_api_alice(a.clone()),
        with_api_alice(a.clone())
            .whitelisting(true)
            .whitelisted(&["documents:write"], ContentAccess::OwnContent),
    ] {
        let admitted = a.narrow(&w.report().effective_scopes);
        assert_eq!(admitted, scopes(&["documents:write"]));
        for s in ["documents:read", "documents:write", "calendar:read"] {
            assert_eq!(
                scoped(&w, "alice", s).allowed,
                admitted.contains(&scope(s)),
                "{s}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Step 6: as_user
// ---------------------------------------------------------------------------------------------

/// Whitelisting on, `crm` whitelisted for every consented scope on behalf of managed users.
fn delegating(a: ApiUser) -> World {
    with_api_alice(a)
        .whitelisting(true)
        .whitelisted(&[], ContentAccess::OnBehalfOfManagedUsers)
}

#[test]
fn as_user_acts_on_behalf_of_a_managed_user_in_place_of_delegate() {
    let w = delegating(api(&["documents:read"], true));
    // bob holds MANAGE on /hr/team; his rights count, alice's do not.
    let d = w.check(obo("alice", "bob", "MANAGE", "/hr/team"));
    assert_denied(&d, Reason::AppPermissionInsufficient);
    let d = w.check(obo("alice", "bob", "WRITE", "/hr/team"));
    assert_allowed(&d);
    let step = detail(&d, Step::OnBehalfOf);
    assert!(
        step.contains("API user alice") && step.contains("as_user") && step.contains("bob"),
        "{step}"
    );
    // bob has nothing at /hr itself, though alice has WRITE there.
    assert_denied(
        &w.check(obo("alice", "bob", "READ", "/hr")),
        Reason::UserPermissionInsufficient,
    );
}

#[test]
fn an_api_user_without_as_user_may_not_act_for_others() {
    let w = delegating(api(&["documents:read"], false));
    let d = w.check(obo("alice", "bob", "WRITE", "/hr/team"));
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(
        d.message.contains("API user alice") && d.message.contains("as_user"),
        "{}",
        d.message
    );
    // Without the record the refusal does not speak of API users.
    let plain = World::new()
        .whitelisting(true)
        .whitelisted(&[], ContentAccess::OnBehalfOfManagedUsers);
    let d = plain.check(obo("alice", "bob", "WRITE", "/hr/team"));
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(!d.message.contains("API user"), "{}", d.message);
}

#[test]
fn with_whitelisting_off_as_user_needs_no_content_access() {
    // Whitelisting off: no entry matters and every app has OWN_CONTENT, yet the API user acts.
    let off = with_api_alice(api(&["documents:read"], true));
    assert!(!off.report().whitelisting_enabled);
    let d = off.check(obo("alice", "bob", "WRITE", "/hr/team"));
    assert_allowed(&d);
    assert_eq!(
        detail(&d, Step::OnBehalfOf),
        "API user alice acts on behalf of managed user bob (as_user; whitelisting is off, so no content access is needed)"
    );
    // bob's rights count, and the app's: as with whitelisting on.
    assert_denied(
        &off.check(obo("alice", "bob", "MANAGE", "/hr/team")),
        Reason::AppPermissionInsufficient,
    );
    // The managed-user rule still applies.
    let d = off.check(obo("alice", "dora", "READ", "/hr"));
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(
        d.message.contains("DELEGATE") && d.message.contains("API user alice"),
        "{}",
        d.message
    );
    assert_denied(
        &off.check(obo("alice", "ghost", "READ", "/hr")),
        Reason::ImpersonationNotAllowed,
    );
    // A prepared entry changes nothing while whitelisting is off, OWN_CONTENT included.
    let prepared =
        with_api_alice(api(&["documents:read"], true)).whitelisted(&[], ContentAccess::OwnContent);
    assert_allowed(&prepared.check(obo("alice", "bob", "WRITE", "/hr/team")));
}

#[test]
fn with_whitelisting_off_only_as_user_acts_on_behalf() {
    // A delegate who is no API user still gets OWN_CONTENT, failing closed.
    let off = World::new();
    let d = off.check(obo("dora", "bob", "WRITE", "/hr/team"));
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(
        d.message.contains("whitelisting is off")
            && d.message.contains("OWN_CONTENT")
            && d.message.contains("user dora is no API user"),
        "{}",
        d.message
    );
    // An API user without as_user neither.
    let d = with_api_alice(api(&["documents:read"], false))
        .check(obo("alice", "bob", "WRITE", "/hr/team"));
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(
        d.message.contains("API user alice has as_user off"),
        "{}",
        d.message
    );
    // A delegate who is also an API user with as_user acts by as_user, and the trace says so.
    let both = World::new().with_user(
        "dora",
        user(&[Role::Delegate], &[("/hr", Right::Read)]).with_api_user(api(&[], true)),
    );
    let d = both.check(obo("dora", "bob", "WRITE", "/hr/team"));
    assert_allowed(&d);
    assert!(
        detail(&d, Step::OnBehalfOf).contains("as_user; whitelisting is off"),
        "{d:?}"
    );
}

#[test]
fn with_whitelisting_on_as_user_still_needs_the_apps_content_access() {
    let a = api(&["documents:read"], true);
    // An entry with OWN_CONTENT forbids acting on behalf through the app, API users included.
    let own = with_api_alice(a.clone())
        .whitelisting(true)
        .whitelisted(&[], ContentAccess::OwnContent);
    let d = own.check(obo("alice", "bob", "WRITE", "/hr/team"));
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(
        d.message.contains("OWN_CONTENT") && d.message.contains("API users included"),
        "{}",
        d.message
    );
    // With ON_BEHALF_OF_MANAGED_USERS it acts, and the trace names the content-access rule.
    let d = delegating(a).check(obo("alice", "bob", "WRITE", "/hr/team"));
    assert_allowed(&d);
    assert_eq!(
        detail(&d, Step::OnBehalfOf),
        "API user alice acts on behalf of managed user bob (as_user; whitelisting is on and the app's content access is ON_BEHALF_OF_MANAGED_USERS)"
    );
}

#[test]
fn as_user_still_needs_a_managed_target() {
    let w = delegating(api(&["documents:read"], true));
    // dora holds DELEGATE, which alice lacks: not a managed user.
    let d = w.check(obo("alice", "dora", "READ", "/hr"));
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(
        d.message.contains("DELEGATE") && d.message.contains("API user alice"),
        "{}",
        d.message
    );
    // An administrator is not managed by an API user either; an unknown user not at all.
    assert_denied(
        &w.check(obo("alice", "uma", "READ", "/hr")),
        Reason::ImpersonationNotAllowed,
    );
    let d = w.check(obo("alice", "ghost", "READ", "/hr"));
    assert_denied(&d, Reason::ImpersonationNotAllowed);
    assert!(d.message.contains("not known"), "{}", d.message);
}

#[test]
fn an_api_user_acting_for_another_keeps_their_own_scopes() {
    let w = delegating(api(&["documents:read"], true));
    let q = |s: &'static str| RawAccessQuery {
        scope: s,
        ..obo("alice", "bob", "WRITE", "/hr/team")
    };
    assert_allowed(&w.check(q("documents:read")));
    let d = w.check(q("documents:write"));
    assert_denied(&d, Reason::ScopeNotGranted);
    assert!(d.message.contains("API user alice"), "{}", d.message);
}

// ---------------------------------------------------------------------------------------------
// Everyone else
// ---------------------------------------------------------------------------------------------

#[test]
fn users_who_are_not_api_users_are_unaffected() {
    let plain = World::new()
        .whitelisting(true)
        .whitelisted(&[], ContentAccess::OnBehalfOfManagedUsers);
    let with = delegating(api(&[], false));
    let queries = [
        RawAccessQuery {
            user_id: "owner",
            scope: "documents:write",
            ..ask()
        },
        RawAccessQuery {
            scope: "documents:read",
            ..obo("dora", "bob", "WRITE", "/hr/team")
        },
        perm("reader", "READ", "/hr"),
        obo("bob", "nobody", "READ", "/hr"),
    ];
    for q in queries {
        assert_eq!(with.check(q), plain.check(q), "{q:?}");
    }
}

#[test]
fn the_targets_api_user_record_does_not_narrow_the_signed_in_user() {
    // bob, the target, is an API user with no scopes; dora, a delegate, signs in.
    let w = World::new()
        .whitelisting(true)
        .whitelisted(&[], ContentAccess::OnBehalfOfManagedUsers)
        .with_user(
            "bob",
            user(&[], &[("/hr/team", Right::Manage)]).with_api_user(api(&[], false)),
        );
    let d = w.check(RawAccessQuery {
        scope: "documents:write",
        ..obo("dora", "bob", "WRITE", "/hr/team")
    });
    assert_allowed(&d);
    assert!(!detail(&d, Step::Scope).contains("API user"));
}

#[test]
fn an_api_user_who_holds_delegate_acts_by_the_role() {
    let w = World::new()
        .whitelisting(true)
        .whitelisted(&[], ContentAccess::OnBehalfOfManagedUsers)
        .with_user(
            "dora",
            user(&[Role::Delegate], &[]).with_api_user(api(&["documents:read"], false)),
        );
    let d = w.check(obo("dora", "bob", "WRITE", "/hr/team"));
    assert_allowed(&d);
    assert_eq!(
        detail(&d, Step::OnBehalfOf),
        "dora acts on behalf of managed user bob (DELEGATE or an administrator role; the app's content access is ON_BEHALF_OF_MANAGED_USERS)"
    );
    // The record still narrows her scopes.
    assert_denied(
        &scoped(&w, "dora", "documents:write"),
        Reason::ScopeNotGranted,
    );
}
