//! CheckAccess as a whole (docs/rules.md §3): every reason, each through its own scenario; the
//! first failing step decides; a check with neither scope nor permission; and input validation
//! before anything is read.

use std::collections::HashSet;

use super::*;

// ---------------------------------------------------------------------------------------------
// Every reason, each through its own scenario
// ---------------------------------------------------------------------------------------------

fn allowed_edit_in_a_granted_list() -> Decision {
    World::new().check(perm("alice", "EDIT_ITEMS", "/hr/team/docs"))
}

fn unknown_tenant() -> Decision {
    let mut w = World::new();
    w.tenant = None;
    w.check(perm("alice", "READ", "/hr"))
}

fn unknown_app() -> Decision {
    let mut w = World::new();
    w.app = None;
    w.check(perm("alice", "READ", "/hr"))
}

fn whitelisting_on_without_an_entry() -> Decision {
    World::new()
        .whitelisting(true)
        .check(perm("alice", "READ", "/hr"))
}

fn never_approved() -> Decision {
    let mut w = World::new();
    w.consent = None;
    w.check(perm("alice", "READ", "/hr"))
}

fn consent_revoked() -> Decision {
    World::new().revoked().check(perm("alice", "READ", "/hr"))
}

fn webhooks_added_since_approval() -> Decision {
    World::new()
        .with_manifest(|m| m.webhooks = true)
        .check(perm("alice", "READ", "/hr"))
}

fn scope_never_requested() -> Decision {
    World::new().check(RawAccessQuery {
        user_id: "alice",
        scope: "calendar:read",
        ..ask()
    })
}

fn on_behalf_of_without_whitelisting() -> Decision {
    World::new().check(obo("dora", "bob", "READ", "/hr"))
}

fn app_only_call_without_allow_app_only() -> Decision {
    World::new().check(perm("", "READ", "/hr"))
}

fn app_holds_nothing_at_the_resource() -> Decision {
    World::new().check(perm("reader", "READ", "/fin"))
}

fn user_holds_nothing_at_the_resource() -> Decision {
    World::new().check(perm("nobody", "READ", "/hr"))
}

type Scenario = (&'static str, fn() -> Decision, Reason);

macro_rules! reason_scenarios {
    ($($scenario:ident => $reason:ident,)*) => {
        /// Every reason scenario with the reason it must produce.
        const REASON_SCENARIOS: &[Scenario] =
            &[$((stringify!($scenario), $scenario, Reason::$reason)),*];

        mod each_reason {
            $(
                #[test]
                fn $scenario() {
                    super::assert_reason_scenario(
                        stringify!($scenario),
                        super::$scenario,
                        super::Reason::$reason,
                    );
                }
            )*
        }
    };
}

reason_scenarios! {
    allowed_edit_in_a_granted_list => Allowed,
    unknown_tenant => UnknownTenant,
    unknown_app => UnknownApp,
    whitelisting_on_without_an_entry => AppNotWhitelisted,
    never_approved => NoConsent,
    consent_revoked => ConsentRevoked,
    webhooks_added_since_approval => ReapprovalRequired,
    scope_never_requested => ScopeNotGranted,
    on_behalf_of_without_whitelisting => ImpersonationNotAllowed,
    app_only_call_without_allow_app_only => UserRequired,
    app_holds_nothing_at_the_resource => AppPermissionInsufficient,
    user_holds_nothing_at_the_resource => UserPermissionInsufficient,
}

fn assert_reason_scenario(name: &str, scenario: fn() -> Decision, expected: Reason) {
    let d = scenario();
    assert_eq!(d.reason, expected, "{name}: {}", d.message);
    assert_eq!(d.allowed, expected == Reason::Allowed, "{name}");
    // The scenarios explain; World::check already verified the shape, so spot-check it here.
    let last = d.trace.last().unwrap();
    match expected.step() {
        None => {
            assert_eq!(d.trace.len(), Step::ALL.len(), "{name}");
            assert!(last.passed, "{name}");
        }
        Some(step) => {
            assert_eq!(last.step, step, "{name}");
            assert!(!last.passed, "{name}");
        }
    }
}

#[test]
fn every_reason_is_produced_by_exactly_one_scenario() {
    let mut produced = HashSet::new();
    for &(name, scenario, expected) in REASON_SCENARIOS {
        assert_reason_scenario(name, scenario, expected);
        assert!(
            produced.insert(scenario().reason),
            "{name} repeats a reason"
        );
    }
    let all: HashSet<Reason> = Reason::ALL.into_iter().collect();
    assert_eq!(produced, all);
    assert_eq!(REASON_SCENARIOS.len(), Reason::ALL.len());
}

#[test]
fn a_check_with_neither_scope_nor_permission_asks_whether_the_app_may_act_at_all() {
    let w = World::new();
    assert_allowed(&w.check(RawAccessQuery {
        user_id: "ghost",
        ..ask()
    }));
    let d = w.revoked().check(RawAccessQuery {
        user_id: "ghost",
        ..ask()
    });
    assert_denied(&d, Reason::ConsentRevoked);
}

#[test]
fn the_first_failing_step_decides_when_several_fail() {
    // Unknown tenant beats everything else that is also wrong.
    let mut w = World::new().revoked().whitelisting(true);
    w.tenant = None;
    assert_denied(&w.check(perm("", "READ", "/fin")), Reason::UnknownTenant);
    // Whitelisting is checked before consent.
    let w = World::new().whitelisting(true).revoked();
    assert_denied(
        &w.check(perm("", "READ", "/fin")),
        Reason::AppNotWhitelisted,
    );
    // Revoked is reported before a re-approval trigger.
    let w = World::new().with_manifest(|m| m.webhooks = true).revoked();
    assert_denied(
        &w.check(perm("alice", "READ", "/hr")),
        Reason::ConsentRevoked,
    );
    // Scope before the missing user, the missing user before on-behalf-of.
    let w = World::new();
    let d = w.check(RawAccessQuery {
        scope: "calendar:read",
        on_behalf_of: "bob",
        ..perm("", "READ", "/fin")
    });
    assert_denied(&d, Reason::ScopeNotGranted);
    let d = w.check(RawAccessQuery {
        on_behalf_of: "bob",
        ..perm("", "READ", "/fin")
    });
    assert_denied(&d, Reason::UserRequired);
    // On-behalf-of before the permission.
    assert_denied(
        &w.check(obo("alice", "bob", "READ", "/fin")),
        Reason::ImpersonationNotAllowed,
    );
}

// ---------------------------------------------------------------------------------------------
// Input validation
// ---------------------------------------------------------------------------------------------

#[test]
fn a_well_formed_query_parses_with_defaults() {
    let q = AccessQuery::parse(&RawAccessQuery {
        tenant_id: "acme",
        app_id: "crm",
        ..RawAccessQuery::default()
    })
    .unwrap();
    assert_eq!(q.user_id, None);
    assert_eq!(q.on_behalf_of, None);
    assert_eq!(q.scope, None);
    assert_eq!(q.permission, None);
    assert_eq!(q.resource, ResourcePath::root());
    let q = AccessQuery::parse(&RawAccessQuery {
        scope: "documents:read",
        on_behalf_of: "bob",
        ..perm("alice", "EDIT_ITEMS", "/a..b/c")
    })
    .unwrap();
    assert_eq!(q.user_id, Some(uid("alice")));
    assert_eq!(q.on_behalf_of, Some(uid("bob")));
    assert_eq!(q.scope, Some(scope("documents:read")));
    assert_eq!(
        q.permission,
        Some(PermissionName::Fine(FinePermission::EditItems))
    );
    assert_eq!(q.resource.as_str(), "/a..b/c");
}

/// `raw` with the field named `field` set to `value`.
fn with_field<'a>(mut raw: RawAccessQuery<'a>, field: &str, value: &'a str) -> RawAccessQuery<'a> {
    let slot = match field {
        "tenant_id" => &mut raw.tenant_id,
        "app_id" => &mut raw.app_id,
        "user_id" => &mut raw.user_id,
        "on_behalf_of" => &mut raw.on_behalf_of,
        "scope" => &mut raw.scope,
        "permission" => &mut raw.permission,
        "resource" => &mut raw.resource,
        _ => panic!("RawAccessQuery has no string field {field}"),
    };
    *slot = value;
    raw
}

#[test]
fn each_malformed_field_is_named_in_the_validation_error() {
    let base = perm("alice", "READ", "/hr");
    let long_id = "a".repeat(129);
    let long_path = format!("/{}", "a".repeat(1024));
    let deep_path = "/a".repeat(33);
    // Each field with a malformed value for it.
    let cases: [(&str, &str); 20] = [
        ("tenant_id", ""),
        ("tenant_id", "ac me"),
        ("tenant_id", &long_id),
        ("app_id", ""),
        ("app_id", "crm/x"),
        ("user_id", "al ice"),
        ("user_id", &long_id),
        ("on_behalf_of", "bö"),
        ("scope", "documents read"),
        ("scope", "docs*"),
        ("permission", "read"),
        ("permission", "RIGHT_READ"),
        ("resource", "hr"),
        ("resource", "/hr/"),
        ("resource", "/hr/../fin"),
        ("resource", "/hr/."),
        ("resource", "/hr//x"),
        ("resource", "/hr\u{0}"),
        ("resource", &long_path),
        ("resource", &deep_path),
    ];
    for (field, value) in cases {
        let raw = with_field(base, field, value);
        let err = AccessQuery::parse(&raw).unwrap_err();
        assert_eq!(err.field, field, "{raw:?}: {err}");
        assert!(!err.problem.is_empty());
    }
}
