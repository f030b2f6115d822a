//! The consent prompt (docs/rules.md §8): each change token exactly when its difference exists, the
//! seed's words for the system user, mandatory or not, and who may approve.

use super::*;

fn prompt(w: &World) -> ConsentPrompt {
    ConsentPrompt::of(&w.snapshot()).unwrap()
}

fn tokens(p: &ConsentPrompt) -> Vec<&'static str> {
    p.changes.iter().map(|c| c.change.as_str()).collect()
}

/// The default world with nobody's consent.
fn never_consented() -> World {
    World {
        consent: None,
        ..World::new()
    }
}

fn custom(mut w: World) -> World {
    w.app.as_mut().unwrap().kind = AppKind::Custom;
    w
}

/// A change to a manifest.
type ManifestChange = fn(&mut Manifest);

#[test]
fn nothing_changed_means_no_changes_and_no_mandatory_approval() {
    let p = prompt(&World::new());
    assert!(!p.mandatory);
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert_eq!(p.approvers, [Approver::Administrator]);
    assert_eq!(p.app_id.as_str(), APP);
    assert_eq!(p.name.as_str(), "CRM");
    assert_eq!(p.kind, AppKind::Standard);
    assert_eq!(p.manifest_revision, 1);
    assert_eq!(
        p.scopes,
        [scope("documents:read"), scope("documents:write")]
    );
    assert_eq!(
        p.permission_requests,
        [request(ScopeLevel::SiteCollection, Right::Manage)]
    );
}

#[test]
fn each_change_token_appears_exactly_when_its_difference_exists() {
    let cases: [(&str, ManifestChange, &[&str]); 15] = [
        (
            "system user",
            |m| m.run_as = RunAs::SystemUser,
            &["RUN_AS_SYSTEM_USER"],
        ),
        ("webhooks", |m| m.webhooks = true, &["WEBHOOKS_ADDED"]),
        (
            "mirroring",
            |m| m.database_mirroring = true,
            &["DATABASE_MIRRORING_ADDED"],
        ),
        (
            "a scope",
            |m| {
                m.scopes.insert(scope("calendar:read"));
            },
            &["SCOPES_ADDED"],
        ),
        (
            "a new level",
            |m| {
                m.permission_requests.insert(ScopeLevel::Web, Right::Read);
            },
            &["PERMISSION_REQUESTS_ADDED"],
        ),
        (
            "a higher right",
            |m| {
                m.permission_requests
                    .insert(ScopeLevel::SiteCollection, Right::FullControl);
            },
            &["RIGHT_RAISED"],
        ),
        ("app-only", |m| m.allow_app_only = true, &["APP_ONLY_ADDED"]),
        (
            "user only",
            |m| m.policy = Policy::UserOnly,
            &["POLICY_RELAXED"],
        ),
        // Removals and downgrades take effect at once: nothing to accept.
        (
            "a scope dropped",
            |m| {
                m.scopes.remove(&scope("documents:write"));
            },
            &[],
        ),
        (
            "a lower right",
            |m| {
                m.permission_requests
                    .insert(ScopeLevel::SiteCollection, Right::Read);
            },
            &[],
        ),
        (
            "a level dropped",
            |m| {
                m.permission_requests.clear();
            },
            &[],
        ),
        (
            "a scope swapped for another",
            |m| {
                m.scopes.remove(&scope("documents:write"));
                m.scopes.insert(scope("mail"));
            },
            &["SCOPES_ADDED"],
        ),
        (
            "a level moved",
            |m| {
                m.permission_requests.clear();
                m.permission_requests.insert(ScopeLevel::List, Right::Read);
            },
            &["PERMISSION_REQUESTS_ADDED"],
        ),
        (
            "a higher right and a new level",
            |m| {
                m.permission_requests
                    .insert(ScopeLevel::SiteCollection, Right::FullControl);
                m.permission_requests
                    .insert(ScopeLevel::Tenancy, Right::Read);
            },
            &["PERMISSION_REQUESTS_ADDED", "RIGHT_RAISED"],
        ),
        (
            "everything at once",
            |m| {
                m.run_as = RunAs::SystemUser;
                m.webhooks = true;
                m.database_mirroring = true;
                m.scopes.insert(scope("mail"));
                m.permission_requests
                    .insert(ScopeLevel::SiteCollection, Right::FullControl);
                m.permission_requests.insert(ScopeLevel::List, Right::Write);
                m.allow_app_only = true;
                m.policy = Policy::UserOnly;
            },
            &[
                "RUN_AS_SYSTEM_USER",
                "WEBHOOKS_ADDED",
                "DATABASE_MIRRORING_ADDED",
                "SCOPES_ADDED",
                "PERMISSION_REQUESTS_ADDED",
                "RIGHT_RAISED",
                "APP_ONLY_ADDED",
                "POLICY_RELAXED",
            ],
        ),
    ];
    for (what, change, want) in cases {
        let w = World::new().with_manifest(change);
        let p = prompt(&w);
        assert_eq!(tokens(&p), want, "{what}");
        assert_eq!(p.manifest_revision, 2, "{what}: the revision to approve");
        // Mandatory exactly when one of the changes is a re-approval trigger.
        let triggers = p
            .changes
            .iter()
            .any(|c| c.change.reapproval_reason().is_some());
        assert_eq!(p.mandatory, triggers, "{what}");
        for c in &p.changes {
            assert!(!c.from.is_empty() && !c.to.is_empty(), "{what}: {c:?}");
            assert_ne!(c.from, c.to, "{what}: {c:?}");
        }
        // Approving what changed leaves nothing to accept.
        let p = prompt(
            &w.clone().approved(
                w.app
                    .as_ref()
                    .unwrap()
                    .manifest
                    .requests()
                    .map(|r| {
                        let at = match r.scope_level {
                            ScopeLevel::Tenancy => "/",
                            ScopeLevel::SiteCollection => "/hr",
                            ScopeLevel::Web => "/hr/team",
                            ScopeLevel::List => "/hr/team/docs",
                        };
                        resolved(r.scope_level, r.right, at)
                    })
                    .collect(),
            ),
        );
        assert!(p.changes.is_empty() && !p.mandatory, "{what}: {p:?}");
    }
}

#[test]
fn the_system_user_change_uses_the_seeds_words() {
    let p = prompt(&World::new().with_manifest(|m| m.run_as = RunAs::SystemUser));
    assert_eq!(
        p.changes,
        [ConsentChange {
            change: ChangeKind::RunAsSystemUser,
            from: "sentry prevents a user from seeing what they should see".to_owned(),
            to: "full access to everything in a customer database".to_owned(),
        }]
    );
    assert!(p.mandatory);
    // Back to the user context: a withdrawn escalation is nothing to accept.
    let w = system_user_app().with_manifest(|m| m.run_as = RunAs::UserContext);
    assert!(prompt(&w).changes.is_empty());
}

#[test]
fn every_change_says_what_it_was_and_becomes_in_plain_words() {
    let w = World::new().with_manifest(|m| {
        m.webhooks = true;
        m.database_mirroring = true;
        m.scopes.insert(scope("calendar:read"));
        m.scopes.insert(scope("mail"));
        m.permission_requests
            .insert(ScopeLevel::SiteCollection, Right::FullControl);
        m.permission_requests.insert(ScopeLevel::Web, Right::Read);
        m.permission_requests.insert(ScopeLevel::List, Right::Write);
        m.allow_app_only = true;
        m.policy = Policy::UserOnly;
    });
    let p = prompt(&w);
    let words: Vec<(&str, &str, &str)> = p
        .changes
        .iter()
        .map(|c| (c.change.as_str(), c.from.as_str(), c.to.as_str()))
        .collect();
    assert_eq!(
        words,
        [
            (
                "WEBHOOKS_ADDED",
                "no webhooks",
                "webhooks: the app is told about changes in the customer database"
            ),
            (
                "DATABASE_MIRRORING_ADDED",
                "no database mirroring",
                "database mirroring: the app keeps a copy of the customer database"
            ),
            (
                "SCOPES_ADDED",
                "no access to the API scopes calendar:read, mail",
                "access to the API scopes calendar:read, mail"
            ),
            (
                "PERMISSION_REQUESTS_ADDED",
                "no rights on a web or a list",
                "READ on a web, WRITE on a list"
            ),
            (
                "RIGHT_RAISED",
                "MANAGE on a site collection",
                "FULL_CONTROL on a site collection"
            ),
            (
                "APP_ONLY_ADDED",
                "acts only for a signed-in user",
                "may also act without a signed-in user (app-only)"
            ),
            (
                "POLICY_RELAXED",
                "both the user and the app must hold a permission",
                "only the user must hold a permission"
            ),
        ]
    );
    // One scope is named in the singular.
    let one = World::new().with_manifest(|m| {
        m.scopes.insert(scope("mail"));
    });
    assert_eq!(prompt(&one).changes[0].to, "access to the API scope mail");
}

#[test]
fn without_a_consent_everything_requested_is_an_addition_from_nothing() {
    let w = never_consented().with_manifest(|m| {
        m.run_as = RunAs::SystemUser;
        m.allow_app_only = true;
    });
    let p = prompt(&w);
    assert!(p.mandatory);
    assert_eq!(
        tokens(&p),
        [
            "RUN_AS_SYSTEM_USER",
            "SCOPES_ADDED",
            "PERMISSION_REQUESTS_ADDED",
            "APP_ONLY_ADDED"
        ]
    );
    assert_eq!(
        p.changes[0].to,
        "full access to everything in a customer database"
    );
    assert_eq!(
        p.changes[1].to,
        "access to the API scopes documents:read, documents:write"
    );
    assert_eq!(
        (p.changes[2].from.as_str(), p.changes[2].to.as_str()),
        (
            "no rights on a site collection",
            "MANAGE on a site collection"
        )
    );
    // A manifest that asks for nothing is still a mandatory approval, with nothing to list.
    let bare = never_consented().with_manifest(|m| *m = Manifest::default());
    let p = prompt(&bare);
    assert!(p.mandatory && p.changes.is_empty(), "{p:?}");
}

#[test]
fn a_revoked_consent_prompts_like_none_at_all() {
    let revoked = World::new().revoked();
    let p = prompt(&revoked);
    assert!(p.mandatory);
    assert_eq!(p.changes, prompt(&never_consented()).changes);
    assert_eq!(tokens(&p), ["SCOPES_ADDED", "PERMISSION_REQUESTS_ADDED"]);
}

#[test]
fn approval_is_mandatory_without_consent_or_after_a_trigger_and_optional_for_additions() {
    let cases: [(&str, World, bool); 6] = [
        ("approved, unchanged", World::new(), false),
        ("never consented", never_consented(), true),
        ("revoked", World::new().revoked(), true),
        (
            "webhooks added",
            World::new().with_manifest(|m| m.webhooks = true),
            true,
        ),
        (
            "a scope added: pending, not mandatory",
            World::new().with_manifest(|m| {
                m.scopes.insert(scope("mail"));
            }),
            false,
        ),
        (
            "whitelisting blocks the app: still approved",
            World::new().whitelisting(true),
            false,
        ),
    ];
    for (what, w, mandatory) in cases {
        let p = prompt(&w);
        assert_eq!(p.mandatory, mandatory, "{what}");
        let report = w.report();
        assert_eq!(
            p.mandatory,
            !report.reapproval_reasons.is_empty()
                || matches!(
                    report.consent.state,
                    ConsentState::NotConsented | ConsentState::Revoked
                ),
            "{what}: agrees with GetAppScopes"
        );
    }
}

#[test]
fn an_app_manager_may_approve_only_a_custom_apps_first_activation() {
    use Approver::{Administrator, AppManager};
    let cases: [(&str, World, &[Approver]); 8] = [
        (
            "standard, never consented",
            never_consented(),
            &[Administrator],
        ),
        ("standard, approved", World::new(), &[Administrator]),
        (
            "standard, revoked",
            World::new().revoked(),
            &[Administrator],
        ),
        (
            "custom, never consented: first activation",
            custom(never_consented()),
            &[Administrator, AppManager],
        ),
        (
            "custom, first activation of an escalated manifest",
            custom(never_consented()).with_manifest(|m| m.webhooks = true),
            &[Administrator, AppManager],
        ),
        ("custom, approved", custom(World::new()), &[Administrator]),
        (
            "custom, re-approval after an escalation",
            custom(World::new()).with_manifest(|m| m.run_as = RunAs::SystemUser),
            &[Administrator],
        ),
        (
            "custom, revoked: reactivation",
            custom(World::new()).revoked(),
            &[Administrator],
        ),
    ];
    for (what, w, want) in cases {
        assert_eq!(prompt(&w).approvers, want, "{what}");
    }
}

#[test]
fn an_unknown_tenant_or_app_has_no_prompt() {
    let no_tenant = World {
        tenant: None,
        ..World::new()
    };
    let no_app = World {
        app: None,
        ..World::new()
    };
    assert!(ConsentPrompt::of(&no_tenant.snapshot()).is_none());
    assert!(ConsentPrompt::of(&no_app.snapshot()).is_none());
}
