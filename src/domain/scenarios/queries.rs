//! The other queries (docs/rules.md §4): the GetAppScopes report, and which viewer sees an
//! external permission group.

use super::*;

// ---------------------------------------------------------------------------------------------
// GetAppScopes
// ---------------------------------------------------------------------------------------------

#[test]
fn report_for_an_approved_app() {
    let report = World::new().report();
    assert_eq!(report.consent.state, ConsentState::Approved);
    assert_eq!(report.consent.approved_by, Some(principal("user:boss")));
    assert_eq!(
        report.consent.approved_at,
        Some(Timestamp::from_micros(1_000))
    );
    assert_eq!(report.consent.approved_manifest_revision, 1);
    assert_eq!(report.consent.current_manifest_revision, 1);
    assert_eq!(
        report.effective_scopes,
        [scope("documents:read"), scope("documents:write")]
    );
    assert!(report.pending_scopes.is_empty());
    assert!(report.pending_permission_requests.is_empty());
    assert!(!report.pending_allow_app_only);
    assert_eq!(report.pending_policy, None);
    assert_eq!(report.content_access, ContentAccess::OwnContent);
    assert_eq!(report.run_as, RunAs::UserContext);
    assert!(!report.webhooks && !report.database_mirroring);
    assert_eq!(
        report.app_grants,
        [resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")]
    );
    assert_eq!(report.policy, ReportedPolicy::UserAndApp);
    assert!(!report.allow_app_only);
    assert!(report.reapproval_reasons.is_empty());
    assert!(!report.whitelisting_enabled && !report.whitelisted);
}

#[test]
fn report_for_an_app_never_consented_lists_everything_as_pending() {
    let mut w = World::new().with_manifest(|m| {
        m.allow_app_only = true;
        m.policy = Policy::UserOnly;
    });
    w.consent = None;
    let report = w.report();
    assert_eq!(report.consent.state, ConsentState::NotConsented);
    assert_eq!(report.consent.approved_by, None);
    assert_eq!(report.consent.approved_at, None);
    assert_eq!(report.consent.approved_manifest_revision, 0);
    assert_eq!(report.consent.current_manifest_revision, 2);
    assert!(report.effective_scopes.is_empty());
    assert_eq!(
        report.pending_scopes,
        [scope("documents:read"), scope("documents:write")]
    );
    assert_eq!(
        report.pending_permission_requests,
        [request(ScopeLevel::SiteCollection, Right::Manage)]
    );
    assert!(report.pending_allow_app_only);
    assert_eq!(report.pending_policy, Some(Policy::UserOnly));
    assert!(report.app_grants.is_empty());
    assert_eq!(report.policy, ReportedPolicy::UserAndApp);
    assert!(!report.allow_app_only);
}

#[test]
fn report_for_a_revoked_consent() {
    let report = World::new().revoked().report();
    assert_eq!(report.consent.state, ConsentState::Revoked);
    assert_eq!(report.consent.approved_by, Some(principal("user:boss")));
    assert_eq!(report.consent.approved_manifest_revision, 1);
    assert!(report.effective_scopes.is_empty());
    assert!(report.app_grants.is_empty());
    assert!(report.reapproval_reasons.is_empty());
    // Nothing is in force, so everything requested awaits an approval.
    assert_eq!(report.pending_scopes.len(), 2);
}

#[test]
fn report_while_reapproval_is_required_keeps_pending_relative_to_the_approval() {
    let w = World::new().with_manifest(|m| {
        m.webhooks = true;
        m.scopes.insert(scope("calendar:read"));
    });
    let report = w.report();
    assert_eq!(
        report.consent.state,
        ConsentState::ReapprovalRequired(vec![ReapprovalReason::WebhooksAdded])
    );
    assert_eq!(report.reapproval_reasons, [ReapprovalReason::WebhooksAdded]);
    assert_eq!(report.pending_scopes, [scope("calendar:read")]);
    assert!(report.effective_scopes.is_empty());
    assert!(!report.webhooks);
    assert!(report.app_grants.is_empty());
}

#[test]
fn report_shows_app_only_for_an_effective_system_user() {
    let report = system_user_app().report();
    assert_eq!(report.policy, ReportedPolicy::AppOnly);
    assert_eq!(report.run_as, RunAs::SystemUser);
}

#[test]
fn report_shows_effective_values_empty_while_blocked_by_the_whitelist() {
    let w = system_user_app()
        .with_manifest(|m| m.allow_app_only = true)
        .reapproved()
        .whitelisting(true);
    let report = w.report();
    assert_eq!(report.consent.state, ConsentState::Approved);
    assert!(report.effective_scopes.is_empty());
    assert!(report.app_grants.is_empty());
    assert_eq!(report.run_as, RunAs::UserContext);
    assert_eq!(report.policy, ReportedPolicy::UserAndApp);
    assert!(!report.allow_app_only);
    // Once whitelisted, the same approval is in force.
    let report = w
        .whitelisted(&[], ContentAccess::OnBehalfOfManagedUsers)
        .report();
    assert_eq!(report.run_as, RunAs::SystemUser);
    assert!(report.allow_app_only);
    assert_eq!(report.content_access, ContentAccess::OnBehalfOfManagedUsers);
    assert_eq!(report.effective_scopes.len(), 2);
}

#[test]
fn report_is_none_for_an_unknown_tenant_or_app() {
    let mut w = World::new();
    w.tenant = None;
    assert_eq!(AppScopes::report(&w.snapshot()), None);
    let mut w = World::new();
    w.app = None;
    assert_eq!(AppScopes::report(&w.snapshot()), None);
}

// ---------------------------------------------------------------------------------------------
// Visibility of external permission groups
// ---------------------------------------------------------------------------------------------

fn user_viewer(id: &str) -> Viewer {
    Viewer::User(uid(id))
}

fn client_viewer(id: &str) -> Viewer {
    Viewer::Client(ClientId::parse("client", id).unwrap())
}

fn app_viewer(id: &str) -> Viewer {
    Viewer::App(AppId::parse("app", id).unwrap())
}

#[test]
fn a_user_sees_a_group_they_manage_with_read_or_read_write() {
    let acl = group_acl();
    assert!(acl.is_visible_to(&user_viewer("mara")));
    assert!(acl.is_visible_to(&user_viewer("wes")));
}

#[test]
fn a_grantor_or_a_stranger_does_not_see_the_group_as_a_user() {
    let acl = group_acl();
    for who in ["gina", "stranger", "crm", "portal", "ops"] {
        assert!(!acl.is_visible_to(&user_viewer(who)), "{who}");
    }
}

#[test]
fn clients_and_apps_see_groups_whose_visible_to_lists_them() {
    let acl = group_acl();
    assert!(acl.is_visible_to(&client_viewer("crm")));
    assert!(acl.is_visible_to(&app_viewer("portal")));
    // The kind matters: client:portal and app:crm are not listed.
    assert!(!acl.is_visible_to(&client_viewer("portal")));
    assert!(!acl.is_visible_to(&app_viewer("crm")));
    // A grantor client does not see it either.
    assert!(!acl.is_visible_to(&client_viewer("hr-sync")));
}
