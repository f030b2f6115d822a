//! The effective grant, approved ∩ current manifest (docs/rules.md §2 "Effective grant"): the
//! mandatory re-approval triggers, additions that stay pending until re-approved, removals and
//! downgrades that take effect at once, and the app rights that result.

use super::*;

/// The default app, approved again with its site collection resolved to `/hr` at the full
/// MANAGE it requests.
fn app_with_manage_on_hr() -> World {
    World::new().approved(vec![resolved(
        ScopeLevel::SiteCollection,
        Right::Manage,
        "/hr",
    )])
}

// ---------------------------------------------------------------------------------------------
// Re-approval triggers, pending additions, immediate downgrades
// ---------------------------------------------------------------------------------------------

/// A change to a manifest.
type ManifestChange = fn(&mut Manifest);

#[test]
fn each_mandatory_trigger_takes_everything_until_reapproved() {
    let triggers: [(ManifestChange, ReapprovalReason); 3] = [
        (
            |m| m.run_as = RunAs::SystemUser,
            ReapprovalReason::RunAsSystemUser,
        ),
        (|m| m.webhooks = true, ReapprovalReason::WebhooksAdded),
        (
            |m| m.database_mirroring = true,
            ReapprovalReason::DatabaseMirroringAdded,
        ),
    ];
    for (escalate, reason) in triggers {
        let w = World::new().with_manifest(escalate);
        let d = w.check(perm("alice", "READ", "/hr"));
        assert_denied(&d, Reason::ReapprovalRequired);
        assert!(d.message.contains(reason.as_str()), "{}", d.message);
        // Scope-only and act-at-all checks are refused too: the app gets nothing.
        let d = w.check(RawAccessQuery {
            user_id: "alice",
            scope: "documents:read",
            ..ask()
        });
        assert_denied(&d, Reason::ReapprovalRequired);

        let report = w.report();
        assert_eq!(
            report.consent.state,
            ConsentState::ReapprovalRequired(vec![reason])
        );
        assert_eq!(report.reapproval_reasons, [reason]);
        assert!(report.effective_scopes.is_empty());
        assert!(report.app_grants.is_empty());

        // Re-approving the new manifest clears it.
        let w = w.reapproved();
        assert_allowed(&w.check(perm("alice", "READ", "/hr")));
        let report = w.report();
        assert_eq!(report.consent.state, ConsentState::Approved);
        assert!(report.reapproval_reasons.is_empty());
        assert_eq!(report.consent.approved_manifest_revision, 2);
    }
}

#[test]
fn the_three_triggers_are_reported_together_in_a_fixed_order() {
    let w = World::new().with_manifest(|m| {
        m.database_mirroring = true;
        m.webhooks = true;
        m.run_as = RunAs::SystemUser;
    });
    let d = w.check(perm("alice", "READ", "/hr"));
    assert_denied(&d, Reason::ReapprovalRequired);
    assert!(
        d.message
            .contains("RUN_AS_SYSTEM_USER, WEBHOOKS_ADDED, DATABASE_MIRRORING_ADDED"),
        "{}",
        d.message
    );
    let tokens: Vec<_> = w
        .report()
        .reapproval_reasons
        .iter()
        .map(|r| r.as_str())
        .collect();
    assert_eq!(
        tokens,
        [
            "RUN_AS_SYSTEM_USER",
            "WEBHOOKS_ADDED",
            "DATABASE_MIRRORING_ADDED"
        ]
    );
}

#[test]
fn a_feature_that_was_approved_is_no_trigger_when_it_comes_back() {
    let w = World::new()
        .with_manifest(|m| {
            m.webhooks = true;
            m.database_mirroring = true;
        })
        .reapproved();
    assert!(w.report().webhooks && w.report().database_mirroring);
    // Dropped: takes effect at once, no re-approval.
    let w = w.with_manifest(|m| {
        m.webhooks = false;
        m.database_mirroring = false;
    });
    let report = w.report();
    assert_eq!(report.consent.state, ConsentState::Approved);
    assert!(!report.webhooks && !report.database_mirroring);
    // Back again: still within what was approved.
    let w = w.with_manifest(|m| {
        m.webhooks = true;
        m.database_mirroring = true;
    });
    assert_allowed(&w.check(perm("alice", "READ", "/hr")));
    assert!(w.report().webhooks && w.report().database_mirroring);
}

#[test]
fn a_new_scope_is_pending_not_effective_and_no_reapproval() {
    let w = World::new().with_manifest(|m| {
        m.scopes.insert(scope("calendar:read"));
    });
    let d = w.check(RawAccessQuery {
        user_id: "alice",
        scope: "calendar:read",
        ..ask()
    });
    assert_denied(&d, Reason::ScopeNotGranted);
    assert!(d.message.contains("pending"), "{}", d.message);
    // Everything approved still works.
    assert_allowed(&w.check(RawAccessQuery {
        user_id: "alice",
        scope: "documents:read",
        ..ask()
    }));
    let report = w.report();
    assert_eq!(report.consent.state, ConsentState::Approved);
    assert!(report.reapproval_reasons.is_empty());
    assert_eq!(report.pending_scopes, [scope("calendar:read")]);
    assert_eq!(
        report.effective_scopes,
        [scope("documents:read"), scope("documents:write")]
    );
    // Approving the new manifest makes it effective.
    let w = w.reapproved();
    assert_allowed(&w.check(RawAccessQuery {
        user_id: "alice",
        scope: "calendar:read",
        ..ask()
    }));
    assert!(w.report().pending_scopes.is_empty());
}

#[test]
fn a_new_permission_request_level_is_pending() {
    let w = World::new().with_manifest(|m| {
        m.permission_requests
            .insert(ScopeLevel::Tenancy, Right::Read);
    });
    // No TENANCY grant yet: the app still holds nothing at /fin.
    assert_denied(
        &w.check(perm("owner", "READ", "/fin")),
        Reason::AppPermissionInsufficient,
    );
    let report = w.report();
    assert_eq!(report.consent.state, ConsentState::Approved);
    assert_eq!(
        report.pending_permission_requests,
        [request(ScopeLevel::Tenancy, Right::Read)]
    );
    let w = w.approved(vec![
        resolved(ScopeLevel::Tenancy, Right::Read, "/"),
        resolved(ScopeLevel::SiteCollection, Right::Write, "/hr"),
    ]);
    assert_allowed(&w.check(perm("owner", "READ", "/fin")));
    assert!(w.report().pending_permission_requests.is_empty());
}

#[test]
fn a_right_above_the_approved_one_is_pending() {
    let w = app_with_manage_on_hr();
    assert_allowed(&w.check(perm("owner", "MANAGE", "/hr")));
    let w = w.with_manifest(|m| {
        m.permission_requests
            .insert(ScopeLevel::SiteCollection, Right::FullControl);
    });
    assert_denied(
        &w.check(perm("owner", "FULL_CONTROL", "/hr")),
        Reason::AppPermissionInsufficient,
    );
    assert_allowed(&w.check(perm("owner", "MANAGE", "/hr")));
    let report = w.report();
    assert_eq!(report.consent.state, ConsentState::Approved);
    assert_eq!(
        report.pending_permission_requests,
        [request(ScopeLevel::SiteCollection, Right::FullControl)]
    );
    assert_eq!(
        report.app_grants,
        [resolved(ScopeLevel::SiteCollection, Right::Manage, "/hr")]
    );
    let w = w.approved(vec![resolved(
        ScopeLevel::SiteCollection,
        Right::FullControl,
        "/hr",
    )]);
    assert_allowed(&w.check(perm("owner", "FULL_CONTROL", "/hr")));
    assert!(w.report().pending_permission_requests.is_empty());
}

#[test]
fn allow_app_only_added_is_pending() {
    let w = World::new().with_manifest(|m| m.allow_app_only = true);
    assert_denied(&w.check(perm("", "READ", "/hr")), Reason::UserRequired);
    let report = w.report();
    assert!(report.pending_allow_app_only);
    assert!(!report.allow_app_only);
    assert!(report.reapproval_reasons.is_empty());
    let w = w.reapproved();
    assert_allowed(&w.check(perm("", "READ", "/hr")));
    let report = w.report();
    assert!(!report.pending_allow_app_only);
    assert!(report.allow_app_only);
}

#[test]
fn switching_to_user_only_is_pending() {
    let w = World::new().with_manifest(|m| m.policy = Policy::UserOnly);
    // Still USER_AND_APP: the app's missing right at /fin refuses.
    assert_denied(
        &w.check(perm("reader", "READ", "/fin")),
        Reason::AppPermissionInsufficient,
    );
    let report = w.report();
    assert_eq!(report.pending_policy, Some(Policy::UserOnly));
    assert_eq!(report.policy, ReportedPolicy::UserAndApp);
    assert!(report.reapproval_reasons.is_empty());
    let w = w.reapproved();
    assert_allowed(&w.check(perm("reader", "READ", "/fin")));
    let report = w.report();
    assert_eq!(report.pending_policy, None);
    assert_eq!(report.policy, ReportedPolicy::UserOnly);
}

#[test]
fn removals_and_downgrades_take_effect_at_once() {
    // A scope withdrawn.
    let w = World::new().with_manifest(|m| {
        m.scopes.remove("documents:write");
    });
    let d = w.check(RawAccessQuery {
        user_id: "alice",
        scope: "documents:write",
        ..ask()
    });
    assert_denied(&d, Reason::ScopeNotGranted);
    assert!(d.message.contains("no longer requests"), "{}", d.message);

    // A level no longer requested: its grant is gone.
    let w = World::new().with_manifest(|m| m.permission_requests.clear());
    assert_denied(
        &w.check(perm("owner", "READ", "/hr")),
        Reason::AppPermissionInsufficient,
    );
    assert!(w.report().app_grants.is_empty());

    // A right lowered below the resolved one.
    let w = World::new().with_manifest(|m| {
        m.permission_requests
            .insert(ScopeLevel::SiteCollection, Right::Read);
    });
    assert_allowed(&w.check(perm("owner", "VIEW_ITEMS", "/hr")));
    assert_denied(
        &w.check(perm("owner", "ADD_ITEMS", "/hr")),
        Reason::AppPermissionInsufficient,
    );

    // allow_app_only switched off.
    let approved = World::new()
        .with_manifest(|m| m.allow_app_only = true)
        .reapproved();
    assert_allowed(&approved.check(perm("", "READ", "/hr")));
    let w = approved.with_manifest(|m| m.allow_app_only = false);
    assert_denied(&w.check(perm("", "READ", "/hr")), Reason::UserRequired);

    // USER_ONLY back to USER_AND_APP.
    let approved = World::new()
        .with_manifest(|m| m.policy = Policy::UserOnly)
        .reapproved();
    assert_allowed(&approved.check(perm("reader", "READ", "/fin")));
    let w = approved.with_manifest(|m| m.policy = Policy::UserAndApp);
    assert_denied(
        &w.check(perm("reader", "READ", "/fin")),
        Reason::AppPermissionInsufficient,
    );

    // SYSTEM_USER back to USER_CONTEXT.
    let approved = World::new()
        .with_manifest(|m| m.run_as = RunAs::SystemUser)
        .reapproved();
    assert_allowed(&approved.check(perm("nobody", "FULL_CONTROL", "/fin")));
    let w = approved.with_manifest(|m| m.run_as = RunAs::UserContext);
    assert_denied(
        &w.check(perm("nobody", "READ", "/hr")),
        Reason::UserPermissionInsufficient,
    );
    assert_eq!(w.report().consent.state, ConsentState::Approved);
    assert_eq!(w.report().run_as, RunAs::UserContext);
}

// ---------------------------------------------------------------------------------------------
// Effective app rights
// ---------------------------------------------------------------------------------------------

#[test]
fn the_app_holds_the_lower_of_the_resolved_and_the_currently_requested_right() {
    // The app holds `held` at /hr and not `above`, and that is its one grant.
    fn holds(w: &World, held: Right, above: &'static str) {
        assert_allowed(&w.check(perm("owner", held.as_str(), "/hr")));
        assert_denied(
            &w.check(perm("owner", above, "/hr")),
            Reason::AppPermissionInsufficient,
        );
        assert_eq!(
            w.report().app_grants,
            [resolved(ScopeLevel::SiteCollection, held, "/hr")]
        );
    }
    // Resolved WRITE under a MANAGE request: WRITE.
    let w = World::new();
    holds(&w, Right::Write, "MANAGE");
    // The request lowered to READ: READ.
    let w = w.with_manifest(|m| {
        m.permission_requests
            .insert(ScopeLevel::SiteCollection, Right::Read);
    });
    holds(&w, Right::Read, "WRITE");
    // Raised again to FULL_CONTROL: back to the resolved WRITE, and the raise is pending.
    let w = w.with_manifest(|m| {
        m.permission_requests
            .insert(ScopeLevel::SiteCollection, Right::FullControl);
    });
    assert_eq!(
        w.report().app_grants,
        [resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")]
    );
    assert_eq!(
        w.report().pending_permission_requests,
        [request(ScopeLevel::SiteCollection, Right::FullControl)]
    );
}

#[test]
fn a_resolved_request_whose_level_is_no_longer_requested_is_gone() {
    let w = World::new().with_manifest(|m| {
        m.permission_requests = [(ScopeLevel::Web, Right::Manage)].into();
    });
    assert_denied(
        &w.check(perm("owner", "READ", "/hr/team")),
        Reason::AppPermissionInsufficient,
    );
    let report = w.report();
    assert!(report.app_grants.is_empty());
    assert_eq!(
        report.pending_permission_requests,
        [request(ScopeLevel::Web, Right::Manage)]
    );
    // Computed directly: the WEB request has no resolution, the SITE_COLLECTION one no request.
    let consent = World::new().consent.unwrap();
    let grant = EffectiveGrant::compute(&consent, &w.app.unwrap().manifest, None);
    assert!(grant.app_rights.is_empty());
    assert_eq!(grant.app_right_at(&path("/hr")), None);
}

#[test]
fn the_effective_grant_intersects_approved_and_current() {
    let approved = manifest(
        &["a", "b", "c"],
        &[
            (ScopeLevel::Tenancy, Right::Read),
            (ScopeLevel::List, Right::Manage),
        ],
    );
    let consent = Consent {
        approved_by: principal("user:boss"),
        approved_at: Timestamp::from_micros(1),
        approved_manifest_revision: 1,
        approved_manifest: approved.clone(),
        resolved_requests: resolve_requests(
            &approved,
            vec![
                resolved(ScopeLevel::Tenancy, Right::Read, "/"),
                resolved(ScopeLevel::List, Right::Write, "/a/b/c"),
            ],
        )
        .unwrap(),
        app_rights: Vec::new(),
        revoked_at: None,
    };
    let current = manifest(
        &["b", "c", "d"],
        &[
            (ScopeLevel::List, Right::Read),
            (ScopeLevel::Web, Right::FullControl),
        ],
    );
    let grant = EffectiveGrant::compute(&consent, &current, None);
    assert_eq!(grant.scopes, scopes(&["b", "c"]));
    assert_eq!(
        grant.app_rights,
        [resolved(ScopeLevel::List, Right::Read, "/a/b/c")]
    );
    assert_eq!(grant.app_right_at(&path("/a/b/c/d")), Some(Right::Read));
    assert_eq!(grant.app_right_at(&path("/")), None);
    let narrowed = EffectiveGrant::compute(&consent, &current, Some(&scopes(&["c", "d"])));
    assert_eq!(narrowed.scopes, scopes(&["c"]));
    let unnarrowed = EffectiveGrant::compute(&consent, &current, Some(&BTreeSet::new()));
    assert_eq!(unnarrowed.scopes, scopes(&["b", "c"]));
}
