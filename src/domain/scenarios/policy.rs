//! The PERMISSION step's policies (docs/rules.md §3 step 7): USER_AND_APP checks the app first,
//! USER_ONLY ignores the app, an app-only call uses the app's rights, and an effective
//! SYSTEM_USER app holds FULL_CONTROL on `/`.

use super::*;

#[test]
fn user_and_app_checks_the_app_first() {
    let w = World::new();
    let d = w.check(perm("nobody", "READ", "/fin"));
    assert_denied(&d, Reason::AppPermissionInsufficient);
    assert!(d.message.contains("app crm"), "{}", d.message);
    assert_denied(
        &w.check(perm("reader", "READ", "/fin")),
        Reason::AppPermissionInsufficient,
    );
    let d = w.check(perm("nobody", "READ", "/hr"));
    assert_denied(&d, Reason::UserPermissionInsufficient);
    assert!(d.message.contains("user nobody"), "{}", d.message);
    assert_allowed(&w.check(perm("reader", "READ", "/hr")));
    // Each must hold the level: the app has WRITE on /hr, owner FULL_CONTROL.
    assert_denied(
        &w.check(perm("owner", "MANAGE", "/hr")),
        Reason::AppPermissionInsufficient,
    );
    assert_denied(
        &w.check(perm("reader", "WRITE", "/hr")),
        Reason::UserPermissionInsufficient,
    );
}

#[test]
fn user_only_ignores_the_apps_rights() {
    let w = World::new()
        .with_manifest(|m| m.policy = Policy::UserOnly)
        .reapproved();
    assert_allowed(&w.check(perm("reader", "READ", "/fin")));
    assert_allowed(&w.check(perm("owner", "FULL_CONTROL", "/")));
    assert_denied(
        &w.check(perm("nobody", "READ", "/fin")),
        Reason::UserPermissionInsufficient,
    );
    // Even where the app holds a right, the user still needs one.
    assert_denied(
        &w.check(perm("nobody", "READ", "/hr")),
        Reason::UserPermissionInsufficient,
    );
    assert_eq!(w.report().policy, ReportedPolicy::UserOnly);
}

#[test]
fn an_app_only_call_uses_the_app_only_policy_and_the_apps_rights() {
    for policy in [Policy::UserAndApp, Policy::UserOnly] {
        let w = World::new()
            .with_manifest(|m| {
                m.allow_app_only = true;
                m.policy = policy;
            })
            .reapproved();
        let d = w.check(perm("", "WRITE", "/hr/team"));
        assert_allowed(&d);
        assert!(d.message.contains("APP_ONLY"), "{}", d.message);
        assert_denied(
            &w.check(perm("", "MANAGE", "/hr")),
            Reason::AppPermissionInsufficient,
        );
        assert_denied(
            &w.check(perm("", "READ", "/fin")),
            Reason::AppPermissionInsufficient,
        );
    }
}

#[test]
fn an_app_only_call_needs_allow_app_only_approved_and_current() {
    // Requested but never approved.
    let w = World::new().with_manifest(|m| m.allow_app_only = true);
    assert_denied(&w.check(perm("", "READ", "/hr")), Reason::UserRequired);
    // Approved, then withdrawn.
    let w = w.reapproved().with_manifest(|m| m.allow_app_only = false);
    assert_denied(&w.check(perm("", "READ", "/hr")), Reason::UserRequired);
}

#[test]
fn a_system_user_app_holds_full_control_on_the_root_whoever_the_user_is() {
    let w = system_user_app();
    for user in ["nobody", "ghost", "alice", ""] {
        for resource in ["/", "/fin", "/hr/team/docs/x"] {
            let d = w.check(perm(user, "FULL_CONTROL", resource));
            assert_allowed(&d);
            assert!(d.message.contains("system user"), "{}", d.message);
        }
    }
    // App-only without allow_app_only: the system user passes the USER step.
    let d = w.check(perm("", "READ", "/"));
    let user_step = d.trace.iter().find(|t| t.step == Step::User).unwrap();
    assert!(
        user_step.detail.contains("system-user"),
        "{}",
        user_step.detail
    );
    let report = w.report();
    assert_eq!(report.policy, ReportedPolicy::AppOnly);
    assert_eq!(report.run_as, RunAs::SystemUser);
}

#[test]
fn system_user_in_the_current_manifest_but_not_approved_requires_reapproval() {
    let w = World::new().with_manifest(|m| m.run_as = RunAs::SystemUser);
    let d = w.check(perm("owner", "READ", "/hr"));
    assert_denied(&d, Reason::ReapprovalRequired);
    assert!(d.message.contains("RUN_AS_SYSTEM_USER"), "{}", d.message);
    let report = w.report();
    assert_eq!(report.run_as, RunAs::UserContext);
    assert_eq!(report.policy, ReportedPolicy::UserAndApp);
}
