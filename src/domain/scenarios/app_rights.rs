//! Site-level app rights (docs/rules.md §8): who may give them, the depth and ceiling they must fit,
//! how they join the effective grant, and how they survive re-approval and go with revocation.

use crate::domain::consent::{app_right, carried_app_rights};
use crate::domain::rules::{consent_in_force, manage_app_right};

use super::*;

/// The caller every write here comes through.
fn ops() -> Caller {
    Caller {
        client_id: ClientId::parse("client_id", "ops").unwrap(),
        tenants: TenantBounds::All,
        capabilities: Capabilities::of([Capability::Admin, Capability::AssertUser]),
    }
}

impl World {
    /// GrantAppRight as the store applies it: the rule for `who` (a user of the world, or the
    /// client itself for `""`), the fit to the current manifest, the consent in force, the fit
    /// to what it approved, then the right added (replacing one at the same resource).
    fn grant_app_right(&self, who: &str, resource: &str, right: Right) -> Result<World, String> {
        let consent = self.checked(who, resource)?;
        let invalid = |e: ValidationError| format!("INVALID_ARGUMENT {e}");
        let granted = app_right(&self.app.as_ref().unwrap().manifest, path(resource), right)
            .map_err(invalid)?;
        let consent = consent_in_force(consent.as_ref(), &tenant_id(), &app_id())
            .map_err(|e| format!("FAILED_PRECONDITION {e}"))?;
        let granted = consent.admit_app_right(granted).map_err(invalid)?;
        let mut w = self.clone();
        w.consent = Some(consent.with_app_right(granted));
        Ok(w)
    }

    /// RevokeAppRight by the tenant administrator `boss`.
    fn revoke_app_right(&self, resource: &str) -> Result<World, String> {
        let consent = self.checked("boss", resource)?;
        let consent = consent_in_force(consent.as_ref(), &tenant_id(), &app_id())
            .map_err(|e| format!("FAILED_PRECONDITION {e}"))?;
        if consent.app_right_at(&path(resource)).is_none() {
            return Err(format!("NOT_FOUND no app right at {resource}"));
        }
        let mut w = self.clone();
        w.consent = Some(consent.without_app_right(&path(resource)));
        Ok(w)
    }

    /// The management rule for `who` at `resource`; the consent on success.
    fn checked(&self, who: &str, resource: &str) -> Result<Option<Consent>, String> {
        let caller = ops();
        let user = (!who.is_empty()).then(|| uid(who));
        let facts = self.users.get(who).cloned().unwrap_or_default();
        let actor = Actor {
            caller: &caller,
            user: user.as_ref(),
            roles: facts.roles,
        };
        manage_app_right(&actor, &path(resource), facts.right_at(&path(resource)))
            .map_err(|e| format!("PERMISSION_DENIED {e}"))?;
        Ok(self.consent.clone())
    }
}

fn tenant_id() -> TenantId {
    TenantId::parse("tenant_id", TENANT).unwrap()
}

fn app_id() -> AppId {
    AppId::parse("app_id", APP).unwrap()
}

/// The default world (the app holds WRITE on `/hr` through its consent, and the manifest asks
/// MANAGE at the SITE_COLLECTION level) with `fin` owning `/fin` (FULL_CONTROL there) and
/// `teamlead` owning only the web `/fin/team`.
fn with_site_owners() -> World {
    World::new()
        .with_user("fin", user(&[], &[("/fin", Right::FullControl)]))
        .with_user("teamlead", user(&[], &[("/fin/team", Right::FullControl)]))
}

#[track_caller]
fn refused(r: Result<World, String>, code: &str, words: &str) {
    match r {
        Ok(_) => panic!("expected {code}, the write succeeded"),
        Err(e) => {
            assert!(e.starts_with(code), "expected {code}: {e}");
            assert!(e.contains(words), "expected {words:?} in {e}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Who may
// ---------------------------------------------------------------------------------------------

#[test]
fn an_administrator_or_a_site_owner_may_grant_and_nobody_else() {
    let w = with_site_owners();
    // Administrators of either kind, anywhere the manifest allows.
    assert!(w.grant_app_right("boss", "/fin", Right::Read).is_ok());
    assert!(w.grant_app_right("uma", "/fin", Right::Read).is_ok());
    // FULL_CONTROL at the site itself, or inherited from `/`.
    assert!(w.grant_app_right("fin", "/fin", Right::Read).is_ok());
    assert!(w.grant_app_right("owner", "/fin", Right::Read).is_ok());
    // Less than FULL_CONTROL, FULL_CONTROL only below the site, another site, or no user; and
    // DELEGATE and PERMISSION_MANAGER are no administrators.
    for (user, site, words) in [
        ("alice", "/hr", "user alice is neither"),
        ("teamlead", "/fin", "FULL_CONTROL there"),
        ("fin", "/hr", "user fin"),
        ("ghost", "/fin", "user ghost"),
        ("", "/fin", "x-consentry-user"),
        ("dora", "/fin", "user dora"),
    ] {
        refused(
            w.grant_app_right(user, site, Right::Read),
            "PERMISSION_DENIED",
            words,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Depth and ceiling
// ---------------------------------------------------------------------------------------------

#[test]
fn the_resource_must_be_at_the_depth_of_a_requested_level() {
    // The manifest requests only SITE_COLLECTION: depth 1.
    let w = World::new();
    assert!(w.grant_app_right("boss", "/fin", Right::Manage).is_ok());
    for (resource, words) in [
        ("/", "resource: / is at the level TENANCY"),
        ("/fin/team", "resource: /fin/team is at the level WEB"),
        (
            "/fin/team/docs",
            "the manifest does not request (it requests SITE_COLLECTION)",
        ),
        (
            "/fin/team/docs/folder",
            "resource: /fin/team/docs/folder is at depth 4",
        ),
    ] {
        refused(
            w.grant_app_right("boss", resource, Right::Read),
            "INVALID_ARGUMENT",
            words,
        );
    }
    // A manifest requesting every level, approved, takes each depth at its level.
    let all = World::new()
        .with_manifest(|m| {
            m.permission_requests = ScopeLevel::ALL.map(|l| (l, Right::Write)).into();
        })
        .approved(vec![
            resolved(ScopeLevel::Tenancy, Right::Read, "/"),
            resolved(ScopeLevel::SiteCollection, Right::Read, "/hr"),
            resolved(ScopeLevel::Web, Right::Read, "/hr/team"),
            resolved(ScopeLevel::List, Right::Read, "/hr/team/docs"),
        ]);
    for (resource, level) in [
        ("/", ScopeLevel::Tenancy),
        ("/fin", ScopeLevel::SiteCollection),
        ("/fin/team", ScopeLevel::Web),
        ("/fin/team/docs", ScopeLevel::List),
    ] {
        let granted = app_right(
            &all.app.as_ref().unwrap().manifest,
            path(resource),
            Right::Read,
        )
        .unwrap();
        assert_eq!(granted.scope_level, level, "{resource}");
        assert!(all.grant_app_right("boss", resource, Right::Write).is_ok());
    }
}

#[test]
fn the_right_must_not_exceed_the_current_request() {
    let w = World::new();
    for right in [Right::Read, Right::Write, Right::Manage] {
        assert!(w.grant_app_right("boss", "/fin", right).is_ok(), "{right}");
    }
    refused(
        w.grant_app_right("boss", "/fin", Right::FullControl),
        "INVALID_ARGUMENT",
        "right: FULL_CONTROL is above the manifest's request of MANAGE at SITE_COLLECTION",
    );
    // The ceiling is the current manifest's: lowered to READ, WRITE is refused.
    let lowered = w.with_manifest(|m| {
        m.permission_requests
            .insert(ScopeLevel::SiteCollection, Right::Read);
    });
    refused(
        lowered.grant_app_right("boss", "/fin", Right::Write),
        "INVALID_ARGUMENT",
        "above the manifest's request of READ",
    );
}

// ---------------------------------------------------------------------------------------------
// What awaits re-approval
// ---------------------------------------------------------------------------------------------

/// Every pending request of `report` is above whatever `app_grants` holds at its level: nothing
/// is listed both as pending and as in force.
#[track_caller]
fn nothing_both_pending_and_in_force(report: &AppScopes) {
    for p in &report.pending_permission_requests {
        for g in report
            .app_grants
            .iter()
            .filter(|g| g.scope_level == p.scope_level)
        {
            assert!(g.right < p.right, "{g:?} in force and {p:?} pending");
        }
    }
}

#[test]
fn a_site_owner_cannot_make_a_raise_awaiting_re_approval_effective() {
    // The manifest raises its site-collection request from MANAGE (approved) to FULL_CONTROL.
    let raised = with_site_owners().with_manifest(|m| {
        m.permission_requests
            .insert(ScopeLevel::SiteCollection, Right::FullControl);
    });
    assert_eq!(
        raised.report().pending_permission_requests,
        [request(ScopeLevel::SiteCollection, Right::FullControl)]
    );
    // The site owner, and an administrator too, may give no more than was approved.
    for who in ["fin", "boss"] {
        refused(
            raised.grant_app_right(who, "/fin", Right::FullControl),
            "INVALID_ARGUMENT",
            "right: FULL_CONTROL is above the approved request of MANAGE at SITE_COLLECTION",
        );
    }
    let w = raised
        .grant_app_right("fin", "/fin", Right::Manage)
        .unwrap();
    assert_allowed(&w.check(perm("owner", "MANAGE", "/fin")));
    assert_denied(
        &w.check(perm("owner", "FULL_CONTROL", "/fin")),
        Reason::AppPermissionInsufficient,
    );
    let report = w.report();
    assert_eq!(
        report.pending_permission_requests,
        [request(ScopeLevel::SiteCollection, Right::FullControl)]
    );
    assert_eq!(
        report.app_grants,
        [
            resolved(ScopeLevel::SiteCollection, Right::Manage, "/fin"),
            resolved(ScopeLevel::SiteCollection, Right::Write, "/hr"),
        ]
    );
    nothing_both_pending_and_in_force(&report);
    // Once an administrator approves the raise, it may be given.
    let approved = w.reapproved();
    assert!(approved.report().pending_permission_requests.is_empty());
    let w = approved
        .grant_app_right("fin", "/fin", Right::FullControl)
        .unwrap();
    assert_allowed(&w.check(perm("owner", "FULL_CONTROL", "/fin")));
}

#[test]
fn a_site_owner_cannot_give_rights_at_a_level_awaiting_approval() {
    // The manifest adds a WEB request that nobody has approved yet.
    let added = with_site_owners().with_manifest(|m| {
        m.permission_requests.insert(ScopeLevel::Web, Right::Read);
    });
    assert_eq!(
        added.report().pending_permission_requests,
        [request(ScopeLevel::Web, Right::Read)]
    );
    for who in ["teamlead", "fin", "boss"] {
        refused(
            added.grant_app_right(who, "/fin/team", Right::Read),
            "INVALID_ARGUMENT",
            "resource: /fin/team is at the level WEB, which the manifest requests but the consent in force has not approved",
        );
    }
    assert_denied(
        &added.check(perm("owner", "READ", "/fin/team")),
        Reason::AppPermissionInsufficient,
    );
    // Approved (the web resolved elsewhere), the level takes app rights.
    let approved = added.approved(vec![
        resolved(ScopeLevel::SiteCollection, Right::Write, "/hr"),
        resolved(ScopeLevel::Web, Right::Read, "/sales/web"),
    ]);
    let w = approved
        .grant_app_right("teamlead", "/fin/team", Right::Read)
        .unwrap();
    assert_allowed(&w.check(perm("owner", "READ", "/fin/team")));
}

#[test]
fn app_rights_stored_above_the_approval_count_only_up_to_it() {
    // App rights written before the approval capped them: FULL_CONTROL on a site collection
    // (MANAGE approved) and WRITE on a web (no WEB level approved), while the manifest asks for
    // both and awaits re-approval.
    let mut w = World::new().with_manifest(|m| {
        m.permission_requests
            .insert(ScopeLevel::SiteCollection, Right::FullControl);
        m.permission_requests.insert(ScopeLevel::Web, Right::Write);
    });
    let consent = w.consent.as_mut().unwrap();
    consent.app_rights = vec![
        resolved(ScopeLevel::SiteCollection, Right::FullControl, "/fin"),
        resolved(ScopeLevel::Web, Right::Write, "/sales/web"),
    ];
    // In force: MANAGE on /fin, nothing on /sales/web; both raises pending only.
    assert_allowed(&w.check(perm("owner", "MANAGE", "/fin")));
    for (permission, resource) in [("FULL_CONTROL", "/fin"), ("READ", "/sales/web")] {
        assert_denied(
            &w.check(perm("owner", permission, resource)),
            Reason::AppPermissionInsufficient,
        );
    }
    let report = w.report();
    assert_eq!(
        report.app_grants,
        [
            resolved(ScopeLevel::SiteCollection, Right::Manage, "/fin"),
            resolved(ScopeLevel::SiteCollection, Right::Write, "/hr"),
        ]
    );
    assert_eq!(
        report.pending_permission_requests,
        [
            request(ScopeLevel::SiteCollection, Right::FullControl),
            request(ScopeLevel::Web, Right::Write),
        ]
    );
    nothing_both_pending_and_in_force(&report);
    // Approved, they count as stored.
    let w = w.approved(vec![
        resolved(ScopeLevel::SiteCollection, Right::Write, "/hr"),
        resolved(ScopeLevel::Web, Right::Read, "/hr/team"),
    ]);
    assert_allowed(&w.check(perm("owner", "FULL_CONTROL", "/fin")));
    assert_allowed(&w.check(perm("owner", "WRITE", "/sales/web")));
}

// ---------------------------------------------------------------------------------------------
// The consent in force
// ---------------------------------------------------------------------------------------------

#[test]
fn without_a_consent_in_force_nothing_is_granted_or_revoked() {
    let mut none = World::new();
    none.consent = None;
    refused(
        none.grant_app_right("boss", "/fin", Right::Read),
        "FAILED_PRECONDITION",
        "app crm has no consent in force in tenant acme",
    );
    let granted = World::new()
        .grant_app_right("boss", "/fin", Right::Read)
        .unwrap();
    let revoked = granted.clone().revoked();
    refused(
        revoked.grant_app_right("boss", "/fin", Right::Read),
        "FAILED_PRECONDITION",
        "approve the app first",
    );
    refused(revoked.revoke_app_right("/fin"), "FAILED_PRECONDITION", "");
    // A consent waiting for re-approval is still in force: rights can be given meanwhile.
    let escalated = World::new().with_manifest(|m| m.webhooks = true);
    assert!(
        escalated
            .grant_app_right("boss", "/fin", Right::Read)
            .is_ok()
    );
    // An app right that is not there.
    refused(granted.revoke_app_right("/hr"), "NOT_FOUND", "/hr");
}

// ---------------------------------------------------------------------------------------------
// The effective grant
// ---------------------------------------------------------------------------------------------

#[test]
fn an_app_right_grants_the_app_access_where_the_consent_did_not() {
    let w = with_site_owners();
    // `owner` holds FULL_CONTROL everywhere; the app holds nothing on /fin.
    assert_denied(
        &w.check(perm("owner", "MANAGE", "/fin/team")),
        Reason::AppPermissionInsufficient,
    );
    let w = w.grant_app_right("fin", "/fin", Right::Manage).unwrap();
    assert_allowed(&w.check(perm("owner", "MANAGE", "/fin/team")));
    assert_allowed(&w.check(perm("owner", "MANAGE_LISTS", "/fin")));
    // Never above the right given, nor outside its resource, nor for a user without the right.
    assert_denied(
        &w.check(perm("owner", "FULL_CONTROL", "/fin")),
        Reason::AppPermissionInsufficient,
    );
    assert_denied(
        &w.check(perm("owner", "READ", "/finance")),
        Reason::AppPermissionInsufficient,
    );
    assert_denied(
        &w.check(perm("alice", "READ", "/fin")),
        Reason::UserPermissionInsufficient,
    );
    // The consent's own grant is untouched.
    assert_allowed(&w.check(perm("alice", "WRITE", "/hr/team")));
    let report = w.report();
    assert_eq!(
        report.app_grants,
        [
            resolved(ScopeLevel::SiteCollection, Right::Manage, "/fin"),
            resolved(ScopeLevel::SiteCollection, Right::Write, "/hr"),
        ]
    );
    // An app right asks for nothing new: nothing is pending.
    assert!(report.pending_permission_requests.is_empty());
    assert_eq!(
        w.consent.as_ref().unwrap().app_rights,
        [resolved(ScopeLevel::SiteCollection, Right::Manage, "/fin")]
    );
}

#[test]
fn granting_again_at_a_path_replaces_and_revoking_removes() {
    let w = World::new()
        .grant_app_right("boss", "/fin", Right::Manage)
        .unwrap()
        .grant_app_right("boss", "/fin", Right::Read)
        .unwrap();
    assert_eq!(
        w.consent.as_ref().unwrap().app_rights,
        [resolved(ScopeLevel::SiteCollection, Right::Read, "/fin")]
    );
    assert_denied(
        &w.check(perm("owner", "WRITE", "/fin")),
        Reason::AppPermissionInsufficient,
    );
    let w = w.revoke_app_right("/fin").unwrap();
    assert!(w.consent.as_ref().unwrap().app_rights.is_empty());
    assert_denied(
        &w.check(perm("owner", "READ", "/fin")),
        Reason::AppPermissionInsufficient,
    );
}

#[test]
fn an_app_right_where_the_consent_resolved_a_request_replaces_it() {
    // The consent resolved the site collection to /hr at WRITE; an app right there at READ
    // lowers it, one at MANAGE raises it.
    let lowered = World::new()
        .grant_app_right("boss", "/hr", Right::Read)
        .unwrap();
    assert_eq!(
        lowered.report().app_grants,
        [resolved(ScopeLevel::SiteCollection, Right::Read, "/hr")]
    );
    assert_allowed(&lowered.check(perm("owner", "READ", "/hr")));
    assert_denied(
        &lowered.check(perm("owner", "WRITE", "/hr")),
        Reason::AppPermissionInsufficient,
    );
    let w = World::new()
        .grant_app_right("boss", "/hr", Right::Manage)
        .unwrap();
    assert_allowed(&w.check(perm("owner", "MANAGE", "/hr")));
    assert_eq!(
        w.report().app_grants,
        [resolved(ScopeLevel::SiteCollection, Right::Manage, "/hr")]
    );
    // Revoking the app right leaves the consent's own request.
    let w = w.revoke_app_right("/hr").unwrap();
    assert_eq!(
        w.report().app_grants,
        [resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")]
    );
    assert_allowed(&w.check(perm("owner", "WRITE", "/hr")));
    assert_denied(
        &w.check(perm("owner", "MANAGE", "/hr")),
        Reason::AppPermissionInsufficient,
    );
}

#[test]
fn an_app_right_counts_at_the_lower_of_granted_and_currently_requested() {
    let w = World::new()
        .grant_app_right("boss", "/fin", Right::Manage)
        .unwrap();
    // The manifest lowers its request: the app right follows at once.
    let lowered = w.clone().with_manifest(|m| {
        m.permission_requests
            .insert(ScopeLevel::SiteCollection, Right::Read);
    });
    assert_eq!(
        lowered.report().app_grants,
        [
            resolved(ScopeLevel::SiteCollection, Right::Read, "/fin"),
            resolved(ScopeLevel::SiteCollection, Right::Read, "/hr"),
        ]
    );
    assert_allowed(&lowered.check(perm("owner", "READ", "/fin")));
    assert_denied(
        &lowered.check(perm("owner", "WRITE", "/fin")),
        Reason::AppPermissionInsufficient,
    );
    // The level is no longer requested: the app right counts for nothing, but stays stored.
    let dropped = w.clone().with_manifest(|m| m.permission_requests.clear());
    assert!(dropped.report().app_grants.is_empty());
    assert_denied(
        &dropped.check(perm("owner", "READ", "/fin")),
        Reason::AppPermissionInsufficient,
    );
    assert_eq!(dropped.consent.as_ref().unwrap().app_rights.len(), 1);
    // Requested again: effective again, as granted (within the request).
    let back = dropped.with_manifest(|m| {
        m.permission_requests
            .insert(ScopeLevel::SiteCollection, Right::Manage);
    });
    assert_allowed(&back.check(perm("owner", "MANAGE", "/fin")));
}

#[test]
fn app_rights_count_for_nothing_while_the_app_gets_nothing() {
    let w = World::new()
        .grant_app_right("boss", "/fin", Right::Manage)
        .unwrap();
    // A mandatory re-approval trigger takes everything away, app rights included.
    let escalated = w.clone().with_manifest(|m| m.webhooks = true);
    assert_denied(
        &escalated.check(perm("owner", "READ", "/fin")),
        Reason::ReapprovalRequired,
    );
    assert!(escalated.report().app_grants.is_empty());
    // Whitelisting without an entry blocks the app.
    let blocked = w.whitelisting(true);
    assert_denied(
        &blocked.check(perm("owner", "READ", "/fin")),
        Reason::AppNotWhitelisted,
    );
    assert!(blocked.report().app_grants.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Re-approval and revocation
// ---------------------------------------------------------------------------------------------

#[test]
fn app_rights_survive_re_approval() {
    let w = with_site_owners()
        .grant_app_right("fin", "/fin", Right::Manage)
        .unwrap();
    // Escalated, then re-approved: the app right is effective again.
    let w = w.with_manifest(|m| m.webhooks = true).reapproved();
    assert_eq!(w.report().consent.state, ConsentState::Approved);
    assert_allowed(&w.check(perm("owner", "MANAGE", "/fin")));
    assert_eq!(
        w.consent.as_ref().unwrap().app_rights,
        [resolved(ScopeLevel::SiteCollection, Right::Manage, "/fin")]
    );
    // Approving again with another resolution keeps it too.
    let w = w.approved(vec![resolved(
        ScopeLevel::SiteCollection,
        Right::Read,
        "/sales",
    )]);
    assert_allowed(&w.check(perm("owner", "MANAGE", "/fin")));
    assert_denied(
        &w.check(perm("owner", "READ", "/hr")),
        Reason::AppPermissionInsufficient,
    );
}

#[test]
fn app_rights_go_with_the_consent_when_it_is_revoked() {
    let w = World::new()
        .grant_app_right("boss", "/fin", Right::Manage)
        .unwrap()
        .revoked();
    assert!(w.consent.as_ref().unwrap().app_rights.is_empty());
    assert_denied(
        &w.check(perm("owner", "READ", "/fin")),
        Reason::ConsentRevoked,
    );
    assert_eq!(carried_app_rights(w.consent.as_ref()), []);
    // Approved again: the consent starts without them.
    let w = w.reapproved();
    assert!(w.consent.as_ref().unwrap().app_rights.is_empty());
    assert_denied(
        &w.check(perm("owner", "READ", "/fin")),
        Reason::AppPermissionInsufficient,
    );
    assert_allowed(&w.check(perm("owner", "WRITE", "/hr")));
}
