//! Hand-written scenarios for the domain: the CheckAccess steps and every reason (DESIGN.md §3),
//! re-approval and pending additions, whitelisting, on-behalf-of, the policies, inheritance, the
//! seed permission table, effective app rights (§2), GetAppScopes (§4), the visibility rules of
//! external permission groups (§4) and the admin rules (§6). Each test is one named situation
//! built from the small fixtures below.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap, HashSet};

use super::consent::resolve_requests;
use super::rules::{
    approve_consent, change_group, create_group, create_tenant, delete_user, grant_external,
    manage_apps, manage_client, put_user, revoke_consent, update_tenant,
};
use super::*;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const TENANT: &str = "acme";
const APP: &str = "crm";

fn path(s: &str) -> ResourcePath {
    ResourcePath::parse("resource", s).unwrap()
}

fn scope(s: &str) -> Scope {
    Scope::parse("scope", s).unwrap()
}

fn scopes(list: &[&str]) -> BTreeSet<Scope> {
    list.iter().map(|s| scope(s)).collect()
}

fn uid(s: &str) -> UserId {
    UserId::parse("user_id", s).unwrap()
}

fn principal(s: &str) -> Principal {
    Principal::parse("principal", s).unwrap()
}

fn manifest(scope_list: &[&str], requests: &[(ScopeLevel, Right)]) -> Manifest {
    Manifest::parse(ManifestParts {
        scopes: scope_list.iter().map(|s| s.to_string()).collect(),
        permission_requests: requests
            .iter()
            .map(|&(scope_level, right)| PermissionRequest { scope_level, right })
            .collect(),
        ..ManifestParts::default()
    })
    .unwrap()
}

fn resolved(scope_level: ScopeLevel, right: Right, resource: &str) -> ResolvedRequest {
    ResolvedRequest {
        scope_level,
        right,
        resource: path(resource),
    }
}

fn request(scope_level: ScopeLevel, right: Right) -> PermissionRequest {
    PermissionRequest { scope_level, right }
}

fn user(roles: &[Role], rights: &[(&str, Right)]) -> UserSnapshot {
    UserSnapshot::new(
        RoleSet::of(roles.iter().copied()),
        rights.iter().map(|&(p, r)| (path(p), r)),
    )
}

/// One tenant, one application and its consent, an optional whitelist entry, and the tenant's
/// users: everything a check reads.
#[derive(Clone)]
struct World {
    tenant: Option<Tenant>,
    app: Option<App>,
    consent: Option<Consent>,
    whitelist: Option<WhitelistEntry>,
    users: HashMap<String, UserSnapshot>,
}

impl World {
    /// `acme` (production, whitelisting off). `crm` is a STANDARD app requesting the scopes
    /// `documents:read` and `documents:write` and MANAGE at the SITE_COLLECTION level; user
    /// `boss` approved it at revision 1, resolving the site collection to `/hr` at WRITE. So the
    /// app holds WRITE on `/hr` and below, and nothing elsewhere.
    ///
    /// Users: `boss` GENERAL_ADMIN (no rights), `uma` USER_ADMIN, `dora` DELEGATE with READ on
    /// `/hr`, `alice` WRITE on `/hr`, `reader` READ on `/`, `bob` MANAGE on `/hr/team`, `owner`
    /// FULL_CONTROL on `/`, `nobody` known with nothing. `ghost` is unknown.
    fn new() -> Self {
        let current = manifest(
            &["documents:read", "documents:write"],
            &[(ScopeLevel::SiteCollection, Right::Manage)],
        );
        let consent = Consent {
            approved_by: principal("user:boss"),
            approved_at: Timestamp::from_micros(1_000),
            approved_manifest_revision: 1,
            approved_manifest: current.clone(),
            resolved_requests: resolve_requests(
                &current,
                vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
            )
            .unwrap(),
            revoked_at: None,
        };
        let users = [
            ("boss", user(&[Role::GeneralAdmin], &[])),
            ("uma", user(&[Role::UserAdmin], &[])),
            ("dora", user(&[Role::Delegate], &[("/hr", Right::Read)])),
            ("alice", user(&[], &[("/hr", Right::Write)])),
            ("reader", user(&[], &[("/", Right::Read)])),
            ("bob", user(&[], &[("/hr/team", Right::Manage)])),
            ("owner", user(&[], &[("/", Right::FullControl)])),
            ("nobody", user(&[], &[])),
        ];
        Self {
            tenant: Some(Tenant {
                tenant_id: TenantId::parse("tenant_id", TENANT).unwrap(),
                environment: Environment::parse("environment", "production").unwrap(),
                whitelisting_enabled: false,
            }),
            app: Some(App {
                app_id: AppId::parse("app_id", APP).unwrap(),
                name: Name::parse("name", "CRM").unwrap(),
                kind: AppKind::Standard,
                manifest: current,
                manifest_revision: 1,
            }),
            consent: Some(consent),
            whitelist: None,
            users: users
                .into_iter()
                .map(|(id, u)| (id.to_owned(), u))
                .collect(),
        }
    }

    /// The app publishes a new manifest (a new revision); the consent stays as it was.
    fn with_manifest(mut self, change: impl FnOnce(&mut Manifest)) -> Self {
        let app = self.app.as_mut().unwrap();
        change(&mut app.manifest);
        app.manifest_revision += 1;
        self
    }

    /// An administrator approves the current manifest (again), resolving its requests.
    fn approved(mut self, resolved_requests: Vec<ResolvedRequest>) -> Self {
        let app = self.app.as_ref().unwrap();
        self.consent = Some(Consent {
            approved_by: principal("user:boss"),
            approved_at: Timestamp::from_micros(2_000),
            approved_manifest_revision: app.manifest_revision,
            approved_manifest: app.manifest.clone(),
            resolved_requests: resolve_requests(&app.manifest, resolved_requests).unwrap(),
            revoked_at: None,
        });
        self
    }

    fn revoked(mut self) -> Self {
        self.consent.as_mut().unwrap().revoked_at = Some(Timestamp::from_micros(3_000));
        self
    }

    fn whitelisting(mut self, enabled: bool) -> Self {
        self.tenant.as_mut().unwrap().whitelisting_enabled = enabled;
        self
    }

    fn whitelisted(mut self, allowed: &[&str], content_access: ContentAccess) -> Self {
        self.whitelist = Some(WhitelistEntry {
            allowed_scopes: scopes(allowed),
            content_access,
        });
        self
    }

    fn with_user(mut self, id: &str, snapshot: UserSnapshot) -> Self {
        self.users.insert(id.to_owned(), snapshot);
        self
    }

    fn snapshot(&self) -> AppSnapshot {
        AppSnapshot::new(
            self.tenant.clone(),
            self.app.clone(),
            self.consent.clone(),
            self.whitelist.clone(),
        )
    }

    fn report(&self) -> AppScopes {
        AppScopes::report(&self.snapshot()).unwrap()
    }

    /// Asks `raw`, checking on the way that the trace has the shape §3 demands, that `explain`
    /// changes nothing but the trace, and that asking twice gives the same answer.
    fn check(&self, raw: RawAccessQuery<'_>) -> Decision {
        let query = AccessQuery::parse(&raw).unwrap();
        let snapshot = self.snapshot();
        let facts = UserFacts {
            user: query
                .user_id
                .as_ref()
                .and_then(|u| self.users.get(u.as_str())),
            target: query
                .on_behalf_of
                .as_ref()
                .and_then(|u| self.users.get(u.as_str())),
        };
        let decision = check_access(&query, &snapshot, facts);
        assert_trace_shape(query.explain, &decision);
        assert_eq!(check_access(&query, &snapshot, facts), decision);
        let flipped = AccessQuery {
            explain: !query.explain,
            ..query.clone()
        };
        let other = check_access(&flipped, &snapshot, facts);
        assert_eq!(
            (other.allowed, other.reason, &other.message),
            (decision.allowed, decision.reason, &decision.message),
            "explain changed the answer"
        );
        decision
    }
}

/// The query every scenario starts from: tenant `acme`, app `crm`, explained.
fn ask() -> RawAccessQuery<'static> {
    RawAccessQuery {
        tenant_id: TENANT,
        app_id: APP,
        explain: true,
        ..RawAccessQuery::default()
    }
}

/// `user` asks for `permission` at `resource`.
fn perm(
    user: &'static str,
    permission: &'static str,
    resource: &'static str,
) -> RawAccessQuery<'static> {
    RawAccessQuery {
        user_id: user,
        permission,
        resource,
        ..ask()
    }
}

/// `user` acts on behalf of `target`, asking for `permission` at `resource`.
fn obo(
    user: &'static str,
    target: &'static str,
    permission: &'static str,
    resource: &'static str,
) -> RawAccessQuery<'static> {
    RawAccessQuery {
        on_behalf_of: target,
        ..perm(user, permission, resource)
    }
}

/// With `explain`, the trace lists the steps in the fixed order: for an allow every step,
/// passed; for a deny the steps up to `reason.step()`, all passed but that one, whose detail
/// is the message. Without `explain` there is no trace.
fn assert_trace_shape(explain: bool, d: &Decision) {
    if !explain {
        assert!(d.trace.is_empty(), "a trace without explain: {:?}", d.trace);
        return;
    }
    let steps: Vec<Step> = d.trace.iter().map(|t| t.step).collect();
    match d.reason.step() {
        None => {
            assert!(d.allowed);
            assert_eq!(steps, Step::ALL);
            assert!(d.trace.iter().all(|t| t.passed), "{:?}", d.trace);
        }
        Some(failed) => {
            assert!(!d.allowed);
            let n = Step::ALL.iter().position(|s| *s == failed).unwrap();
            assert_eq!(steps, Step::ALL[..=n], "{:?}", d.reason);
            let (last, earlier) = d.trace.split_last().unwrap();
            assert!(earlier.iter().all(|t| t.passed), "{:?}", d.trace);
            assert!(!last.passed);
            assert_eq!(last.step, failed);
            assert_eq!(last.detail, d.message);
        }
    }
}

#[track_caller]
fn assert_allowed(d: &Decision) {
    assert!(
        d.allowed,
        "expected ALLOWED, got {:?}: {}",
        d.reason, d.message
    );
    assert_eq!(d.reason, Reason::Allowed);
}

#[track_caller]
fn assert_denied(d: &Decision, reason: Reason) {
    assert!(
        !d.allowed,
        "expected {reason:?}, got ALLOWED: {}",
        d.message
    );
    assert_eq!(d.reason, reason, "{}", d.message);
}

/// The app `crm` with TENANCY FULL_CONTROL approved and resolved to `/`: it holds everything,
/// so only the user's rights decide.
fn app_everywhere() -> World {
    World::new()
        .with_manifest(|m| {
            m.permission_requests = [(ScopeLevel::Tenancy, Right::FullControl)].into();
        })
        .approved(vec![resolved(ScopeLevel::Tenancy, Right::FullControl, "/")])
}

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
        let w = w.approved(vec![resolved(
            ScopeLevel::SiteCollection,
            Right::Write,
            "/hr",
        )]);
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
        .approved(vec![resolved(
            ScopeLevel::SiteCollection,
            Right::Write,
            "/hr",
        )]);
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
    let w = w.approved(vec![resolved(
        ScopeLevel::SiteCollection,
        Right::Write,
        "/hr",
    )]);
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
    let w = w.approved(vec![resolved(
        ScopeLevel::SiteCollection,
        Right::Write,
        "/hr",
    )]);
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
    let w = w.approved(vec![resolved(
        ScopeLevel::SiteCollection,
        Right::Write,
        "/hr",
    )]);
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
        .approved(vec![resolved(
            ScopeLevel::SiteCollection,
            Right::Write,
            "/hr",
        )]);
    assert_allowed(&approved.check(perm("", "READ", "/hr")));
    let w = approved.with_manifest(|m| m.allow_app_only = false);
    assert_denied(&w.check(perm("", "READ", "/hr")), Reason::UserRequired);

    // USER_ONLY back to USER_AND_APP.
    let approved = World::new()
        .with_manifest(|m| m.policy = Policy::UserOnly)
        .approved(vec![resolved(
            ScopeLevel::SiteCollection,
            Right::Write,
            "/hr",
        )]);
    assert_allowed(&approved.check(perm("reader", "READ", "/fin")));
    let w = approved.with_manifest(|m| m.policy = Policy::UserAndApp);
    assert_denied(
        &w.check(perm("reader", "READ", "/fin")),
        Reason::AppPermissionInsufficient,
    );

    // SYSTEM_USER back to USER_CONTEXT.
    let approved = World::new()
        .with_manifest(|m| m.run_as = RunAs::SystemUser)
        .approved(vec![resolved(
            ScopeLevel::SiteCollection,
            Right::Write,
            "/hr",
        )]);
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
        .approved(vec![resolved(
            ScopeLevel::SiteCollection,
            Right::Write,
            "/hr",
        )]);
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

// ---------------------------------------------------------------------------------------------
// Policies
// ---------------------------------------------------------------------------------------------

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
        .approved(vec![resolved(
            ScopeLevel::SiteCollection,
            Right::Write,
            "/hr",
        )]);
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
            .approved(vec![resolved(
                ScopeLevel::SiteCollection,
                Right::Write,
                "/hr",
            )]);
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
    let w = w
        .approved(vec![resolved(
            ScopeLevel::SiteCollection,
            Right::Write,
            "/hr",
        )])
        .with_manifest(|m| m.allow_app_only = false);
    assert_denied(&w.check(perm("", "READ", "/hr")), Reason::UserRequired);
}

/// `crm` approved to run as the system user.
fn system_user_app() -> World {
    World::new()
        .with_manifest(|m| m.run_as = RunAs::SystemUser)
        .approved(vec![resolved(
            ScopeLevel::SiteCollection,
            Right::Write,
            "/hr",
        )])
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

// ---------------------------------------------------------------------------------------------
// Inheritance down the path hierarchy
// ---------------------------------------------------------------------------------------------

#[test]
fn a_user_right_on_a_site_applies_below_it_and_nowhere_else() {
    let w = app_everywhere().with_user("hr-only", user(&[], &[("/hr", Right::Read)]));
    for below in ["/hr", "/hr/team", "/hr/team/docs", "/hr/team/docs/f/item"] {
        assert_allowed(&w.check(perm("hr-only", "READ", below)));
    }
    for outside in ["/hrx", "/", "/fin", "/fin/hr", "/h"] {
        assert_denied(
            &w.check(perm("hr-only", "READ", outside)),
            Reason::UserPermissionInsufficient,
        );
    }
}

#[test]
fn an_app_grant_on_a_site_applies_below_it_and_nowhere_else() {
    let w = World::new();
    for below in ["/hr", "/hr/team", "/hr/team/docs", "/hr/team/docs/f/item"] {
        assert_allowed(&w.check(perm("owner", "READ", below)));
    }
    for outside in ["/hrx", "/", "/fin", "/fin/hr", "/h"] {
        assert_denied(
            &w.check(perm("owner", "READ", outside)),
            Reason::AppPermissionInsufficient,
        );
    }
}

#[test]
fn the_highest_right_on_the_path_or_an_ancestor_wins() {
    let w = app_everywhere().with_user(
        "mixed",
        user(
            &[],
            &[
                ("/", Right::Read),
                ("/hr", Right::Manage),
                ("/hr/team", Right::Read),
            ],
        ),
    );
    assert_allowed(&w.check(perm("mixed", "MANAGE", "/hr/team/docs")));
    assert_denied(
        &w.check(perm("mixed", "WRITE", "/fin")),
        Reason::UserPermissionInsufficient,
    );
    // The app side: a TENANCY READ grant and a WEB MANAGE grant combine the same way.
    let w = World::new()
        .with_manifest(|m| {
            m.permission_requests = [
                (ScopeLevel::Tenancy, Right::Read),
                (ScopeLevel::Web, Right::Manage),
            ]
            .into();
        })
        .approved(vec![
            resolved(ScopeLevel::Tenancy, Right::Read, "/"),
            resolved(ScopeLevel::Web, Right::Manage, "/hr/team"),
        ]);
    assert_allowed(&w.check(perm("owner", "MANAGE", "/hr/team/docs")));
    assert_allowed(&w.check(perm("owner", "READ", "/fin")));
    assert_denied(
        &w.check(perm("owner", "WRITE", "/hr/teams")),
        Reason::AppPermissionInsufficient,
    );
}

// ---------------------------------------------------------------------------------------------
// The seed table: each level's fine-grained permissions
// ---------------------------------------------------------------------------------------------

/// DESIGN.md §2, copied by name: READ's permissions, then what WRITE and MANAGE add.
const SEED_READ: [&str; 6] = [
    "VIEW_ITEMS",
    "OPEN_ITEMS",
    "VIEW_VERSIONS",
    "CREATE_ALERTS",
    "USE_SELF_SERVICE_SITE_CREATION",
    "VIEW_PAGES",
];
const SEED_WRITE_ADDS: [&str; 9] = [
    "ADD_ITEMS",
    "EDIT_ITEMS",
    "DELETE_ITEMS",
    "DELETE_VERSIONS",
    "BROWSE_DIRECTORIES",
    "EDIT_PERSONAL_USER_INFORMATION",
    "MANAGE_PERSONAL_VIEWS",
    "ADD_REMOVE_PERSONAL_WEB_PARTS",
    "UPDATE_PERSONAL_WEB_PARTS",
];
const SEED_MANAGE_ADDS: [&str; 4] = [
    "MANAGE_LISTS",
    "ADD_AND_CUSTOMIZE_PAGES",
    "APPLY_THEMES_AND_BORDERS",
    "APPLY_STYLE_SHEETS",
];

fn seed_level(name: &str) -> Right {
    if SEED_READ.contains(&name) {
        Right::Read
    } else if SEED_WRITE_ADDS.contains(&name) {
        Right::Write
    } else if SEED_MANAGE_ADDS.contains(&name) {
        Right::Manage
    } else {
        panic!("{name} is not in the seed table")
    }
}

#[test]
fn the_nineteen_permissions_are_exactly_the_seed_table() {
    let names: BTreeSet<&str> = FinePermission::ALL.iter().map(|p| p.as_str()).collect();
    let seed: BTreeSet<&str> = SEED_READ
        .iter()
        .chain(&SEED_WRITE_ADDS)
        .chain(&SEED_MANAGE_ADDS)
        .copied()
        .collect();
    assert_eq!(names, seed);
    assert_eq!(names.len(), 19);
    for p in FinePermission::ALL {
        assert_eq!(p.minimum_right(), seed_level(p.as_str()), "{}", p.as_str());
    }
}

#[test]
fn a_user_holds_exactly_the_fine_permissions_of_their_level() {
    let w = app_everywhere();
    for held in Right::ALL {
        let w = w.clone().with_user("holder", user(&[], &[("/", held)]));
        for p in FinePermission::ALL {
            let d = w.check(perm("holder", p.as_str(), "/hr/team/docs"));
            if seed_level(p.as_str()) <= held {
                assert_allowed(&d);
            } else {
                assert_denied(&d, Reason::UserPermissionInsufficient);
                assert!(d.message.contains(p.minimum_right().as_str()));
            }
        }
    }
    // The named case: READ at / holds every READ permission and no WRITE-only one.
    let w = w.with_user("r", user(&[], &[("/", Right::Read)]));
    for name in SEED_READ {
        assert_allowed(&w.check(perm("r", name, "/x")));
    }
    for &name in SEED_WRITE_ADDS.iter().chain(&SEED_MANAGE_ADDS) {
        assert_denied(
            &w.check(perm("r", name, "/x")),
            Reason::UserPermissionInsufficient,
        );
    }
}

#[test]
fn the_app_holds_exactly_the_fine_permissions_of_its_level() {
    for granted in Right::ALL {
        let w = World::new()
            .with_manifest(|m| {
                m.permission_requests = [(ScopeLevel::Tenancy, granted)].into();
            })
            .approved(vec![resolved(ScopeLevel::Tenancy, granted, "/")]);
        for p in FinePermission::ALL {
            let d = w.check(perm("owner", p.as_str(), "/a/b"));
            if p.minimum_right() <= granted {
                assert_allowed(&d);
            } else {
                assert_denied(&d, Reason::AppPermissionInsufficient);
            }
        }
    }
}

#[test]
fn checking_a_level_name_requires_that_level() {
    let w = app_everywhere();
    for held in Right::ALL {
        let w = w.clone().with_user("holder", user(&[], &[("/", held)]));
        for asked in Right::ALL {
            let d = w.check(perm("holder", asked.as_str(), "/a"));
            if asked <= held {
                assert_allowed(&d);
            } else {
                assert_denied(&d, Reason::UserPermissionInsufficient);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Effective app rights
// ---------------------------------------------------------------------------------------------

#[test]
fn the_app_holds_the_lower_of_the_resolved_and_the_currently_requested_right() {
    // Resolved WRITE under a MANAGE request: WRITE.
    let w = World::new();
    assert_allowed(&w.check(perm("owner", "WRITE", "/hr")));
    assert_denied(
        &w.check(perm("owner", "MANAGE", "/hr")),
        Reason::AppPermissionInsufficient,
    );
    assert_eq!(
        w.report().app_grants,
        [resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")]
    );
    // The request lowered to READ: READ.
    let w = w.with_manifest(|m| {
        m.permission_requests
            .insert(ScopeLevel::SiteCollection, Right::Read);
    });
    assert_allowed(&w.check(perm("owner", "READ", "/hr")));
    assert_denied(
        &w.check(perm("owner", "WRITE", "/hr")),
        Reason::AppPermissionInsufficient,
    );
    assert_eq!(
        w.report().app_grants,
        [resolved(ScopeLevel::SiteCollection, Right::Read, "/hr")]
    );
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
        .approved(vec![resolved(
            ScopeLevel::SiteCollection,
            Right::Write,
            "/hr",
        )])
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

fn group_acl() -> GroupAcl {
    GroupAcl::new(
        vec![
            (principal("user:mara"), ManagerAccess::Read),
            (principal("user:wes"), ManagerAccess::ReadWrite),
            (principal("client:ops"), ManagerAccess::ReadWrite),
        ],
        vec![principal("user:gina"), principal("client:hr-sync")],
        vec![principal("client:crm"), principal("app:portal")],
    )
    .unwrap()
}

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

// ---------------------------------------------------------------------------------------------
// Admin rules (DESIGN.md §6)
// ---------------------------------------------------------------------------------------------

fn caller(id: &str, tenants: &[&str], caps: &[Capability]) -> Caller {
    let tenants: Vec<String> = tenants.iter().map(|t| t.to_string()).collect();
    Caller {
        client_id: ClientId::parse("client_id", id).unwrap(),
        tenants: TenantBounds::parse("tenants", &tenants).unwrap(),
        capabilities: Capabilities::of(caps.iter().copied()),
    }
}

fn acting<'a>(caller: &'a Caller, user: Option<&'a UserId>, roles: &[Role]) -> Actor<'a> {
    Actor {
        caller,
        user,
        roles: RoleSet::of(roles.iter().copied()),
    }
}

fn is_denied<T>(r: Result<T, RuleError>) -> bool {
    matches!(r, Err(RuleError::Denied(_)))
}

const ADMIN: &[Capability] = &[Capability::Admin];
const ADMIN_APPS: &[Capability] = &[Capability::Admin, Capability::AppManager];

#[test]
fn creating_a_tenant_needs_a_client_with_every_tenant() {
    assert_eq!(create_tenant(&caller("root", &["*"], ADMIN)), Ok(()));
    assert!(is_denied(create_tenant(&caller("ops", &["acme"], ADMIN))));
}

#[test]
fn switching_whitelisting_needs_an_acting_administrator() {
    let tenant = World::new().tenant.unwrap();
    let env = tenant.environment.clone();
    let c = caller("ops", &["acme"], ADMIN);
    let (uma, dora) = (uid("uma"), uid("dora"));
    let admin = acting(&c, Some(&uma), &[Role::UserAdmin]);
    let delegate = acting(&c, Some(&dora), &[Role::Delegate]);
    let client_only = acting(&c, None, &[]);
    assert_eq!(update_tenant(&tenant, &env, true, &admin), Ok(()));
    assert!(is_denied(update_tenant(&tenant, &env, true, &delegate)));
    assert!(is_denied(update_tenant(&tenant, &env, true, &client_only)));
    // No switch: nothing to decide, nothing changes.
    assert_eq!(update_tenant(&tenant, &env, false, &client_only), Ok(()));
}

#[test]
fn the_environment_of_a_tenant_never_changes() {
    let tenant = World::new().tenant.unwrap();
    let stage = Environment::parse("environment", "stage").unwrap();
    let c = caller("root", &["*"], ADMIN);
    let boss = uid("boss");
    let admin = acting(&c, Some(&boss), &[Role::GeneralAdmin]);
    assert!(matches!(
        update_tenant(&tenant, &stage, false, &admin),
        Err(RuleError::FailedPrecondition(_))
    ));
    // The rules come before the conflict: a non-admin switching and moving is denied.
    let client_only = acting(&c, None, &[]);
    assert!(is_denied(update_tenant(
        &tenant,
        &stage,
        true,
        &client_only
    )));
}

#[test]
fn put_user_without_roles_needs_only_an_admin_client() {
    let c = caller("ops", &["acme"], ADMIN);
    let client_only = acting(&c, None, &[]);
    assert_eq!(put_user(None, RoleSet::EMPTY, &client_only, true), Ok(()));
    assert_eq!(
        put_user(Some(RoleSet::EMPTY), RoleSet::EMPTY, &client_only, true),
        Ok(())
    );
    // Re-putting a user with unchanged roles gives and takes nothing.
    let delegate = RoleSet::of([Role::Delegate]);
    assert_eq!(
        put_user(Some(delegate), delegate, &client_only, true),
        Ok(())
    );
}

#[test]
fn giving_or_taking_a_role_needs_an_acting_administrator() {
    let c = caller("ops", &["acme"], ADMIN);
    let (uma, boss, dora) = (uid("uma"), uid("boss"), uid("dora"));
    let client_only = acting(&c, None, &[]);
    let not_admin = acting(&c, Some(&dora), &[Role::Delegate, Role::PermissionManager]);
    let user_admin = acting(&c, Some(&uma), &[Role::UserAdmin]);
    let general_admin = acting(&c, Some(&boss), &[Role::GeneralAdmin]);
    let delegate = RoleSet::of([Role::Delegate]);
    let ga = RoleSet::of([Role::GeneralAdmin]);
    for actor in [&client_only, &not_admin] {
        assert!(is_denied(put_user(None, delegate, actor, true)));
        assert!(is_denied(put_user(
            Some(delegate),
            RoleSet::EMPTY,
            actor,
            true
        )));
        assert!(is_denied(put_user(Some(RoleSet::EMPTY), ga, actor, true)));
    }
    // Any administrator may give or take any role, GENERAL_ADMIN included.
    for actor in [&user_admin, &general_admin] {
        assert_eq!(put_user(None, delegate, actor, true), Ok(()));
        assert_eq!(put_user(Some(ga), RoleSet::EMPTY, actor, true), Ok(()));
        assert_eq!(put_user(Some(RoleSet::EMPTY), ga, actor, true), Ok(()));
    }
}

#[test]
fn the_first_administrator_of_a_tenant_without_one_needs_no_acting_administrator() {
    let c = caller("ops", &["acme"], ADMIN);
    let client_only = acting(&c, None, &[]);
    for first in [
        RoleSet::of([Role::GeneralAdmin]),
        RoleSet::of([Role::UserAdmin]),
        RoleSet::of([Role::UserAdmin, Role::Delegate]),
    ] {
        assert_eq!(put_user(None, first, &client_only, false), Ok(()));
        // Once the tenant has an administrator, the exception is gone.
        assert!(is_denied(put_user(None, first, &client_only, true)));
    }
    // The exception is for an administrator, not for other roles.
    assert!(is_denied(put_user(
        None,
        RoleSet::of([Role::Delegate]),
        &client_only,
        false
    )));
}

#[test]
fn deleting_a_user_with_roles_needs_an_acting_administrator() {
    let c = caller("ops", &["acme"], ADMIN);
    let (uma, dora) = (uid("uma"), uid("dora"));
    let client_only = acting(&c, None, &[]);
    assert_eq!(delete_user(RoleSet::EMPTY, &client_only), Ok(()));
    let roles = RoleSet::of([Role::Delegate]);
    assert!(is_denied(delete_user(roles, &client_only)));
    assert!(is_denied(delete_user(
        roles,
        &acting(&c, Some(&dora), &[Role::Delegate])
    )));
    assert_eq!(
        delete_user(roles, &acting(&c, Some(&uma), &[Role::UserAdmin])),
        Ok(())
    );
}

#[test]
fn managing_apps_needs_app_manager_on_every_tenant() {
    assert_eq!(manage_apps(&caller("store", &["*"], ADMIN_APPS)), Ok(()));
    assert!(is_denied(manage_apps(&caller(
        "store",
        &["acme"],
        ADMIN_APPS
    ))));
    assert!(is_denied(manage_apps(&caller("root", &["*"], ADMIN))));
}

#[test]
fn a_standard_app_is_approved_only_by_a_tenant_administrator() {
    let c = caller("store", &["*"], ADMIN_APPS);
    let (uma, dora) = (uid("uma"), uid("dora"));
    let admin = acting(&c, Some(&uma), &[Role::UserAdmin]);
    for ever in [false, true] {
        assert_eq!(
            approve_consent(AppKind::Standard, ever, &admin),
            Ok(principal("user:uma"))
        );
        assert!(is_denied(approve_consent(
            AppKind::Standard,
            ever,
            &acting(&c, None, &[])
        )));
        assert!(is_denied(approve_consent(
            AppKind::Standard,
            ever,
            &acting(&c, Some(&dora), &[Role::Delegate])
        )));
    }
}

#[test]
fn a_custom_apps_first_activation_may_be_done_by_an_app_manager() {
    let manager = caller("store", &["acme"], ADMIN_APPS);
    let plain = caller("ops", &["acme"], ADMIN);
    let uma = uid("uma");
    assert_eq!(
        approve_consent(AppKind::Custom, false, &acting(&manager, None, &[])),
        Ok(principal("client:store"))
    );
    assert!(is_denied(approve_consent(
        AppKind::Custom,
        false,
        &acting(&plain, None, &[])
    )));
    // An administrator may do it too, and is then the approver.
    assert_eq!(
        approve_consent(
            AppKind::Custom,
            false,
            &acting(&plain, Some(&uma), &[Role::UserAdmin])
        ),
        Ok(principal("user:uma"))
    );
}

#[test]
fn re_approving_or_reactivating_a_custom_app_needs_an_administrator() {
    let manager = caller("store", &["acme"], ADMIN_APPS);
    let boss = uid("boss");
    assert!(is_denied(approve_consent(
        AppKind::Custom,
        true,
        &acting(&manager, None, &[])
    )));
    assert_eq!(
        approve_consent(
            AppKind::Custom,
            true,
            &acting(&manager, Some(&boss), &[Role::GeneralAdmin])
        ),
        Ok(principal("user:boss"))
    );
}

#[test]
fn revoking_consent_needs_an_administrator_or_app_manager_for_a_custom_app() {
    let manager = caller("store", &["acme"], ADMIN_APPS);
    let plain = caller("ops", &["acme"], ADMIN);
    let (uma, dora) = (uid("uma"), uid("dora"));
    let admin = acting(&plain, Some(&uma), &[Role::UserAdmin]);
    for kind in [AppKind::Standard, AppKind::Custom] {
        assert_eq!(revoke_consent(kind, &admin), Ok(()));
        assert!(is_denied(revoke_consent(kind, &acting(&plain, None, &[]))));
        assert!(is_denied(revoke_consent(
            kind,
            &acting(&plain, Some(&dora), &[Role::Delegate])
        )));
    }
    assert_eq!(
        revoke_consent(AppKind::Custom, &acting(&manager, None, &[])),
        Ok(())
    );
    assert!(is_denied(revoke_consent(
        AppKind::Standard,
        &acting(&manager, None, &[])
    )));
}

#[test]
fn creating_a_group_needs_an_acting_permission_manager() {
    let c = caller("ops", &["acme"], ADMIN);
    let (pm, boss, uma) = (uid("pm"), uid("boss"), uid("uma"));
    assert_eq!(
        create_group(&acting(&c, Some(&pm), &[Role::PermissionManager])),
        Ok(principal("user:pm"))
    );
    // GENERAL_ADMIN implies PERMISSION_MANAGER; USER_ADMIN does not.
    assert_eq!(
        create_group(&acting(&c, Some(&boss), &[Role::GeneralAdmin])),
        Ok(principal("user:boss"))
    );
    assert!(is_denied(create_group(&acting(
        &c,
        Some(&uma),
        &[Role::UserAdmin, Role::Delegate]
    ))));
    assert!(is_denied(create_group(&acting(&c, None, &[]))));
}

#[test]
fn changing_a_group_needs_a_read_write_manager() {
    let acl = group_acl();
    let ops = caller("ops", &["acme"], ADMIN);
    let other = caller("other", &["acme"], ADMIN);
    let (wes, mara, gina) = (uid("wes"), uid("mara"), uid("gina"));
    assert_eq!(change_group(&acl, &acting(&other, Some(&wes), &[])), Ok(()));
    assert_eq!(change_group(&acl, &acting(&ops, None, &[])), Ok(()));
    assert!(is_denied(change_group(
        &acl,
        &acting(&other, Some(&mara), &[])
    )));
    assert!(is_denied(change_group(
        &acl,
        &acting(&other, Some(&gina), &[])
    )));
    assert!(is_denied(change_group(&acl, &acting(&other, None, &[]))));
    // The acting user, when named, is the principal: a READ manager acting through the
    // READ_WRITE client is still only a READ manager.
    assert!(is_denied(change_group(
        &acl,
        &acting(&ops, Some(&mara), &[])
    )));
    // Roles do not make a manager.
    let boss = uid("boss");
    assert!(is_denied(change_group(
        &acl,
        &acting(&other, Some(&boss), &[Role::GeneralAdmin])
    )));
}

#[test]
fn granting_an_external_permission_needs_a_grantor() {
    let acl = group_acl();
    let sync = caller("hr-sync", &["acme"], ADMIN);
    let other = caller("other", &["acme"], ADMIN);
    let (gina, wes) = (uid("gina"), uid("wes"));
    assert_eq!(
        grant_external(&acl, &acting(&other, Some(&gina), &[])),
        Ok(())
    );
    assert_eq!(grant_external(&acl, &acting(&sync, None, &[])), Ok(()));
    assert!(is_denied(grant_external(
        &acl,
        &acting(&other, Some(&wes), &[])
    )));
    assert!(is_denied(grant_external(
        &acl,
        &acting(&caller("ops", &["acme"], ADMIN), None, &[])
    )));
}

#[test]
fn a_client_manages_only_clients_within_its_own_tenants_and_capabilities() {
    let bounds = |ts: &[&str]| {
        TenantBounds::parse(
            "tenants",
            &ts.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        )
        .unwrap()
    };
    let scoped = caller(
        "ops",
        &["acme", "beta"],
        &[Capability::Admin, Capability::Query],
    );
    let query = Capabilities::of([Capability::Query]);
    assert_eq!(manage_client(&scoped, &bounds(&["acme"]), query), Ok(()));
    assert_eq!(
        manage_client(&scoped, &bounds(&["acme", "beta"]), scoped.capabilities),
        Ok(())
    );
    assert!(is_denied(manage_client(&scoped, &bounds(&["*"]), query)));
    assert!(is_denied(manage_client(
        &scoped,
        &bounds(&["acme", "gamma"]),
        query
    )));
    let err = manage_client(
        &scoped,
        &bounds(&["acme"]),
        Capabilities::of([Capability::Query, Capability::AssertUser]),
    )
    .unwrap_err();
    assert!(err.to_string().contains("assert_user"), "{err}");
    let root = caller("root", &["*"], &Capability::ALL);
    assert_eq!(
        manage_client(&root, &bounds(&["*"]), Capabilities::all()),
        Ok(())
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

#[test]
fn each_malformed_field_is_named_in_the_validation_error() {
    let base = perm("alice", "READ", "/hr");
    let cases: Vec<(&str, RawAccessQuery<'_>)> = vec![
        (
            "tenant_id",
            RawAccessQuery {
                tenant_id: "",
                ..base
            },
        ),
        (
            "tenant_id",
            RawAccessQuery {
                tenant_id: "ac me",
                ..base
            },
        ),
        ("app_id", RawAccessQuery { app_id: "", ..base }),
        (
            "app_id",
            RawAccessQuery {
                app_id: "crm/x",
                ..base
            },
        ),
        (
            "user_id",
            RawAccessQuery {
                user_id: "al ice",
                ..base
            },
        ),
        (
            "on_behalf_of",
            RawAccessQuery {
                on_behalf_of: "bö",
                ..base
            },
        ),
        (
            "scope",
            RawAccessQuery {
                scope: "documents read",
                ..base
            },
        ),
        (
            "scope",
            RawAccessQuery {
                scope: "docs*",
                ..base
            },
        ),
        (
            "permission",
            RawAccessQuery {
                permission: "read",
                ..base
            },
        ),
        (
            "permission",
            RawAccessQuery {
                permission: "RIGHT_READ",
                ..base
            },
        ),
        (
            "resource",
            RawAccessQuery {
                resource: "hr",
                ..base
            },
        ),
        (
            "resource",
            RawAccessQuery {
                resource: "/hr/",
                ..base
            },
        ),
        (
            "resource",
            RawAccessQuery {
                resource: "/hr/../fin",
                ..base
            },
        ),
        (
            "resource",
            RawAccessQuery {
                resource: "/hr/.",
                ..base
            },
        ),
        (
            "resource",
            RawAccessQuery {
                resource: "/hr//x",
                ..base
            },
        ),
        (
            "resource",
            RawAccessQuery {
                resource: "/hr\u{0}",
                ..base
            },
        ),
    ];
    let long_id = "a".repeat(129);
    let long_path = format!("/{}", "a".repeat(1024));
    let deep_path = "/a".repeat(33);
    let owned: Vec<(&str, RawAccessQuery<'_>)> = vec![
        (
            "tenant_id",
            RawAccessQuery {
                tenant_id: &long_id,
                ..base
            },
        ),
        (
            "user_id",
            RawAccessQuery {
                user_id: &long_id,
                ..base
            },
        ),
        (
            "resource",
            RawAccessQuery {
                resource: &long_path,
                ..base
            },
        ),
        (
            "resource",
            RawAccessQuery {
                resource: &deep_path,
                ..base
            },
        ),
    ];
    for (field, raw) in cases.into_iter().chain(owned) {
        let err = AccessQuery::parse(&raw).unwrap_err();
        assert_eq!(err.field, field, "{raw:?}: {err}");
        assert!(!err.problem.is_empty());
    }
}
