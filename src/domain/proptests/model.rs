//! The engine against a literal model (docs/rules.md §2, §3, §8), after Cedar's definitional engine
//! and differential testing: a slow transcription of the decision, step by step, that shares
//! nothing with the engine but the types and their stored fields. It never calls the engine's
//! logic (no `check_access`, `effective()`, `consent_state()`, `app_right_at`, `right_at`,
//! `covers`, `RoleSet::has`, `ApiUser::allows`, `required_right`, `token_rights`, …): each rule
//! is written out again with loops over paths and ancestors and explicit lowest and highest, so a
//! bug in the engine is not shared by the model. On generated worlds:
//!
//! * `check_access == model`: `allowed`, `reason` and the trace's steps and outcomes;
//! * a context token's `sub`, `act`, `scp`, `pol` and `rights` are the model's (§8);
//! * the app-right ceiling: the effective app grants, and the app's right at every path, are the
//!   model's (the lowest of granted, approved and currently requested; §2, §8).
//!
//! Each property counts the cases that reach what it is about and fails when too few do
//! ([`counted`]).

use std::collections::{BTreeMap, BTreeSet};

use proptest::sample::select;

use super::strategies::{open_world, open_world_and_ask};
use super::*;

// ---------------------------------------------------------------------------------------------
// Levels, permissions and paths, by hand (docs/rules.md §2 "Resources", "Rights")
// ---------------------------------------------------------------------------------------------

/// The order of the cumulative levels: READ < WRITE < MANAGE < FULL_CONTROL.
fn rank(level: Right) -> u8 {
    match level {
        Right::Read => 1,
        Right::Write => 2,
        Right::Manage => 3,
        Right::FullControl => 4,
    }
}

/// The lower of two levels.
fn lowest(a: Right, b: Right) -> Right {
    if rank(a) <= rank(b) { a } else { b }
}

/// The higher of a level held so far (if any) and another.
fn highest(so_far: Option<Right>, other: Right) -> Right {
    match so_far {
        Some(held) if rank(held) >= rank(other) => held,
        _ => other,
    }
}

/// Whether `held` is at least `need`.
fn reaches(held: Option<Right>, need: Right) -> bool {
    match held {
        Some(held) => rank(held) >= rank(need),
        None => false,
    }
}

/// The fine-grained permissions READ holds (docs/rules.md §2, the seed table).
const READ_HOLDS: [&str; 6] = [
    "VIEW_ITEMS",
    "OPEN_ITEMS",
    "VIEW_VERSIONS",
    "CREATE_ALERTS",
    "USE_SELF_SERVICE_SITE_CREATION",
    "VIEW_PAGES",
];

/// What WRITE holds beyond READ.
const WRITE_ADDS: [&str; 9] = [
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

/// What MANAGE holds beyond WRITE (FULL_CONTROL adds nothing: the 19 names are the whole set).
const MANAGE_ADDS: [&str; 4] = [
    "MANAGE_LISTS",
    "ADD_AND_CUSTOMIZE_PAGES",
    "APPLY_THEMES_AND_BORDERS",
    "APPLY_STYLE_SHEETS",
];

/// The lowest level that holds the permission a check names (a level holds itself).
fn needed(name: &str) -> Right {
    match name {
        "READ" => Right::Read,
        "WRITE" => Right::Write,
        "MANAGE" => Right::Manage,
        "FULL_CONTROL" => Right::FullControl,
        _ if READ_HOLDS.contains(&name) => Right::Read,
        _ if WRITE_ADDS.contains(&name) => Right::Write,
        _ if MANAGE_ADDS.contains(&name) => Right::Manage,
        _ => panic!("{name} is not a permission of docs/rules.md §2"),
    }
}

/// `path` and its ancestors, from `/` down, each one segment deeper than the last.
fn self_and_ancestors(path: &str) -> Vec<String> {
    let mut all = vec!["/".to_owned()];
    let mut at = String::new();
    for segment in path.split('/') {
        if segment.is_empty() {
            continue;
        }
        at.push('/');
        at.push_str(segment);
        all.push(at.clone());
    }
    all
}

/// Whether a grant at `granted` applies at `q`: `granted` is `q` or one of its ancestors.
fn applies(granted: &str, q: &str) -> bool {
    for p in self_and_ancestors(q) {
        if p == granted {
            return true;
        }
    }
    false
}

/// The highest level `grants` give at `q`: granted on `q` or any ancestor.
fn level_at<'g>(grants: impl IntoIterator<Item = (&'g str, Right)>, q: &str) -> Option<Right> {
    let mut best = None;
    for (granted, level) in grants {
        if applies(granted, q) {
            best = Some(highest(best, level));
        }
    }
    best
}

/// A user's level at `q`; a user the tenant does not know holds nothing.
fn user_level(user: Option<&UserSnapshot>, q: &str) -> Option<Right> {
    let user = user?;
    level_at(user.rights.iter().map(|(p, r)| (p.as_str(), *r)), q)
}

/// The roles a user holds: those given, and every role with GENERAL_ADMIN (docs/rules.md §2).
fn roles_held(user: Option<&UserSnapshot>) -> BTreeSet<Role> {
    let Some(user) = user else {
        return BTreeSet::new();
    };
    let given: BTreeSet<Role> = user.roles.roles().collect();
    if given.contains(&Role::GeneralAdmin) {
        Role::ALL.into_iter().collect()
    } else {
        given
    }
}

// ---------------------------------------------------------------------------------------------
// The consent and the effective grant (docs/rules.md §2, §8)
// ---------------------------------------------------------------------------------------------

/// What an approved application may do now, by the model.
#[derive(Debug, Clone)]
struct Grant {
    /// Approved ∩ requested now (∩ the whitelist entry's scopes when they narrow).
    scopes: BTreeSet<Scope>,
    /// The app's grants, one per path.
    app: BTreeMap<String, Right>,
    /// SYSTEM_USER both approved and current.
    system_user: bool,
    /// `allow_app_only` both approved and current.
    app_only: bool,
    /// USER_ONLY both approved and current (USER_AND_APP is the stricter).
    user_only: bool,
}

impl Grant {
    /// The app's level at `q`: FULL_CONTROL on `/` for a system user, else its grants'.
    fn app_level(&self, q: &str) -> Option<Right> {
        if self.system_user {
            return level_at([("/", Right::FullControl)], q);
        }
        level_at(self.app.iter().map(|(p, r)| (p.as_str(), *r)), q)
    }
}

/// Where the consent stands (docs/rules.md §3 step 3).
#[derive(Debug, Clone)]
enum Standing {
    /// Nobody approved the application (or it is not registered).
    None,
    /// Approved, then revoked.
    Revoked,
    /// A mandatory re-approval trigger since approval.
    Reapproval,
    /// Approved and in force.
    InForce(Grant),
}

/// Whether whitelisting is on in the snapshot's tenant.
fn whitelisting(s: &AppSnapshot) -> bool {
    match &s.tenant {
        Some(t) => t.whitelisting_enabled,
        None => false,
    }
}

/// The consent of `s`, by docs/rules.md §2: revoked, escalated (USER_CONTEXT → SYSTEM_USER, webhooks
/// added, database mirroring added) or in force with approved ∩ current.
fn standing(s: &AppSnapshot) -> Standing {
    let (Some(consent), Some(app)) = (&s.consent, &s.app) else {
        return Standing::None;
    };
    if consent.revoked_at.is_some() {
        return Standing::Revoked;
    }
    let (was, now) = (&consent.approved_manifest, &app.manifest);
    let run_as_system = was.run_as == RunAs::UserContext && now.run_as == RunAs::SystemUser;
    let webhooks_added = !was.webhooks && now.webhooks;
    let mirroring_added = !was.database_mirroring && now.database_mirroring;
    if run_as_system || webhooks_added || mirroring_added {
        return Standing::Reapproval;
    }

    // Scopes: approved ∩ requested now, ∩ the entry's when whitelisting is on and it lists any.
    let narrowing = match &s.whitelist {
        Some(entry) if whitelisting(s) && !entry.allowed_scopes.is_empty() => {
            Some(&entry.allowed_scopes)
        }
        _ => None,
    };
    let mut scopes = BTreeSet::new();
    for scope in &was.scopes {
        let requested = now.scopes.contains(scope);
        let whitelisted = match narrowing {
            Some(allowed) => allowed.contains(scope),
            None => true,
        };
        if requested && whitelisted {
            scopes.insert(scope.clone());
        }
    }

    // App rights: what is stored at each path, a site-level app right replacing the resolved
    // request there (docs/decisions.md), counted only at a level both manifests request, at
    // the lowest of the granted, the approved and the currently requested right.
    let mut stored: BTreeMap<String, &ResolvedRequest> = BTreeMap::new();
    for r in &consent.resolved_requests {
        stored.insert(r.resource.as_str().to_owned(), r);
    }
    for r in &consent.app_rights {
        stored.insert(r.resource.as_str().to_owned(), r);
    }
    let mut app_grants = BTreeMap::new();
    for (at, r) in stored {
        let approved = was.permission_requests.get(&r.scope_level);
        let requested = now.permission_requests.get(&r.scope_level);
        if let (Some(&approved), Some(&requested)) = (approved, requested) {
            app_grants.insert(at, lowest(lowest(r.right, approved), requested));
        }
    }

    Standing::InForce(Grant {
        scopes,
        app: app_grants,
        system_user: was.run_as == RunAs::SystemUser && now.run_as == RunAs::SystemUser,
        app_only: was.allow_app_only && now.allow_app_only,
        user_only: was.policy == Policy::UserOnly && now.policy == Policy::UserOnly,
    })
}

// ---------------------------------------------------------------------------------------------
// The decision (docs/rules.md §3, with §8's API users)
// ---------------------------------------------------------------------------------------------

/// The model's answer to a check.
#[derive(Debug)]
struct Verdict<'w> {
    allowed: bool,
    reason: Reason,
    /// Every step evaluated, in order, with whether it passed.
    steps: Vec<(Step, bool)>,
    /// Whether step 7 compared a permission with the rights held (steps 1 to 6 passed).
    permission_checked: bool,
    /// The grant in force, once step 3 passed.
    grant: Option<Grant>,
    /// The user whose rights count, once step 6 passed (`None`: unknown or app-only).
    subject: Option<&'w UserSnapshot>,
}

impl<'w> Verdict<'w> {
    fn pass(&mut self, step: Step) {
        self.steps.push((step, true));
    }

    fn deny(mut self, step: Step, reason: Reason) -> Self {
        self.steps.push((step, false));
        self.allowed = false;
        self.reason = reason;
        self
    }
}

/// The decision on `q` in `s`, the signed-in user's facts `user` and the on-behalf target's
/// `target` (`None`: unknown to the tenant), transcribed from docs/rules.md §3 step by step.
fn model<'w>(
    q: &AccessQuery,
    s: &AppSnapshot,
    user: Option<&'w UserSnapshot>,
    target: Option<&'w UserSnapshot>,
) -> Verdict<'w> {
    let mut v = Verdict {
        allowed: true,
        reason: Reason::Allowed,
        steps: Vec::new(),
        permission_checked: false,
        grant: None,
        subject: None,
    };

    // 1. The tenant exists, the application is registered.
    if s.tenant.is_none() {
        return v.deny(Step::Tenant, Reason::UnknownTenant);
    }
    v.pass(Step::Tenant);
    if s.app.is_none() {
        return v.deny(Step::App, Reason::UnknownApp);
    }
    v.pass(Step::App);

    // 2. Whitelisting enabled and no entry for the application.
    if whitelisting(s) && s.whitelist.is_none() {
        return v.deny(Step::Whitelist, Reason::AppNotWhitelisted);
    }
    v.pass(Step::Whitelist);

    // 3. The consent.
    let grant = match standing(s) {
        Standing::None => return v.deny(Step::Consent, Reason::NoConsent),
        Standing::Revoked => return v.deny(Step::Consent, Reason::ConsentRevoked),
        Standing::Reapproval => return v.deny(Step::Consent, Reason::ReapprovalRequired),
        Standing::InForce(grant) => grant,
    };
    v.pass(Step::Consent);
    v.grant = Some(grant.clone());

    // 4. The scope: effective, and among an API user's scopes when the signed-in user is one
    // (§8).
    let signed_in = match &q.user_id {
        Some(_) => user,
        None => None,
    };
    if let Some(scope) = &q.scope {
        if !grant.scopes.contains(scope) {
            return v.deny(Step::Scope, Reason::ScopeNotGranted);
        }
        let api_scopes = signed_in
            .and_then(|u| u.api_user.as_ref())
            .map(|a| &a.scopes);
        if api_scopes.is_some_and(|scopes| !scopes.contains(scope)) {
            return v.deny(Step::Scope, Reason::ScopeNotGranted);
        }
    }
    v.pass(Step::Scope);

    // 5. No user: app-only, which needs an effective allow_app_only or SYSTEM_USER.
    if q.user_id.is_none() && !grant.app_only && !grant.system_user {
        return v.deny(Step::User, Reason::UserRequired);
    }
    v.pass(Step::User);

    // 6. On behalf of another user: a signed-in actor, a ground (DELEGATE or an administrator
    // role through content access ON_BEHALF_OF_MANAGED_USERS; or an API user's `as_user`,
    // through such an app, or through any while whitelisting is off, §8), and a managed target:
    // known, and holding no role the actor lacks. The content access is the entry's while
    // whitelisting is on, else OWN_CONTENT.
    let mut subject = signed_in;
    if q.on_behalf_of.is_some() {
        if q.user_id.is_none() {
            return v.deny(Step::OnBehalfOf, Reason::ImpersonationNotAllowed);
        }
        let on_behalf = whitelisting(s)
            && s.whitelist.as_ref().map(|e| e.content_access)
                == Some(ContentAccess::OnBehalfOfManagedUsers);
        let actor_roles = roles_held(user);
        let by_role = actor_roles.contains(&Role::Delegate)
            || actor_roles.contains(&Role::GeneralAdmin)
            || actor_roles.contains(&Role::UserAdmin);
        let as_user = user
            .and_then(|u| u.api_user.as_ref())
            .is_some_and(|api| api.as_user);
        let ground = (on_behalf && by_role) || (as_user && (on_behalf || !whitelisting(s)));
        if !ground {
            return v.deny(Step::OnBehalfOf, Reason::ImpersonationNotAllowed);
        }
        let known = target.is_some_and(|t| t.known);
        if !known {
            return v.deny(Step::OnBehalfOf, Reason::ImpersonationNotAllowed);
        }
        for role in roles_held(target) {
            if !actor_roles.contains(&role) {
                return v.deny(Step::OnBehalfOf, Reason::ImpersonationNotAllowed);
            }
        }
        subject = target;
    }
    v.pass(Step::OnBehalfOf);
    v.subject = subject;

    // 7. The permission: a system-user app holds FULL_CONTROL on `/` and is evaluated app-only;
    // else APP_ONLY without a user, else the effective policy (app first under USER_AND_APP).
    if let Some(permission) = q.permission {
        v.permission_checked = true;
        let need = needed(permission.as_str());
        let at = q.resource.as_str();
        let app_only = grant.system_user || q.user_id.is_none();
        let app_counts = app_only || !grant.user_only;
        let user_counts = !app_only;
        if app_counts && !reaches(grant.app_level(at), need) {
            return v.deny(Step::Permission, Reason::AppPermissionInsufficient);
        }
        if user_counts && !reaches(user_level(subject, at), need) {
            return v.deny(Step::Permission, Reason::UserPermissionInsufficient);
        }
    }
    v.pass(Step::Permission);
    v
}

/// Least share of cases of [`the_engine_decides_as_the_model`] whose check reaches step 7 with
/// a permission (steps 1 to 6 passed). The generators shape worlds and queries so that 62–64%
/// do (measured at 4 × 1,024 cases; over `world()` and `ask()` it is 19%); at 256 cases the
/// guard sits four standard deviations below the lowest, and the other cases cover the earlier
/// steps' refusals.
const MIN_PERMISSION_SHARE: f64 = 0.5;

/// The engine decides every check as the model does: `allowed`, the reason, and the trace's
/// steps in order with their outcomes. (The message is the engine's own wording and is not
/// compared; `decision.rs` holds that a denial's message is its failing step's detail.)
#[test]
fn the_engine_decides_as_the_model() {
    counted(
        "the_engine_decides_as_the_model",
        MIN_PERMISSION_SHARE,
        open_world_and_ask(),
        |(w, a)| {
            let query = Ask { explain: true, ..a }.query();
            let snapshot = w.snapshot();
            let users = w.users(&query);
            let got = check_access(&query, &snapshot, users);
            let want = model(&query, &snapshot, users.user, users.target);
            let trace: Vec<(Step, bool)> = got.trace.iter().map(|t| (t.step, t.passed)).collect();
            prop_assert_eq!(
                (got.allowed, got.reason, &trace),
                (want.allowed, want.reason, &want.steps),
                "left the engine, right the model; the engine says: {}",
                got.message
            );
            Ok(want.permission_checked)
        },
    );
}

// ---------------------------------------------------------------------------------------------
// Context tokens (docs/rules.md §8)
// ---------------------------------------------------------------------------------------------

/// Three paths of one to six segments from a small alphabet that shares prefixes with the pools
/// (`b` and `bc`), most of which no world names: deeper than the tree, or beside it.
fn fresh_paths() -> impl Strategy<Value = Vec<String>> {
    let segments = prop::collection::vec(select(vec!["a", "b", "bc", "x", "z"]), 1..7);
    prop::collection::vec(segments, 3).prop_map(|all| {
        all.into_iter()
            .map(|segs| format!("/{}", segs.join("/")))
            .collect()
    })
}

/// Every path a world names (the pools, each user's rights, the consent's grants) and `extra`.
fn every_path(w: &World, extra: &[String]) -> BTreeSet<String> {
    let mut all: BTreeSet<String> = RESOURCES.iter().map(|p| p.to_string()).collect();
    all.extend(PATHS.iter().map(|p| p.to_string()));
    for u in w.users.values() {
        all.extend(u.rights.keys().map(|p| p.as_str().to_owned()));
    }
    if let Some(c) = &w.consent {
        for r in c.resolved.iter().chain(&c.app_rights) {
            all.insert(r.resource.as_str().to_owned());
        }
    }
    all.extend(extra.iter().cloned());
    all
}

/// The level the model allows at `q` under `policy`: the app's, the subject's, or the lower of
/// both (docs/rules.md §3 step 7).
fn allowed_level(
    policy: ReportedPolicy,
    grant: &Grant,
    subject: Option<&UserSnapshot>,
    q: &str,
) -> Option<Right> {
    match policy {
        ReportedPolicy::AppOnly => grant.app_level(q),
        ReportedPolicy::UserOnly => user_level(subject, q),
        ReportedPolicy::UserAndApp => {
            let (app, user) = (grant.app_level(q)?, user_level(subject, q)?);
            Some(lowest(app, user))
        }
    }
}

/// Least share of cases of [`a_tokens_claims_are_the_models`] where the token is issued (and
/// so its claims compared): 70–72% measured at 4 × 1,024 cases; at 256 cases this guard sits
/// seven standard deviations below.
const MIN_ISSUED_SHARE: f64 = 0.5;

/// IssueContextToken's answer is the model's: the model's refusal when its check (no scope, no
/// permission) denies; otherwise `sub` and `act`, `scp` (the effective scopes, narrowed by the
/// signed-in API user's), `pol` (APP_ONLY without a user or for a system-user app, else the
/// effective policy), and `rights`: each listed path at or below the resource or one of its
/// ancestors, carrying the model's level there, every path that carries a grant of a side the
/// policy counts listed where the policy allows something, and, at every path `q` under the
/// resource (every path the world names, and fresh ones), the highest level listed at `q` or an
/// ancestor equal to the level the model allows at `q`.
#[test]
fn a_tokens_claims_are_the_models() {
    counted(
        "a_tokens_claims_are_the_models",
        MIN_ISSUED_SHARE,
        (
            open_world_and_ask(),
            select(RESOURCES.to_vec()),
            fresh_paths(),
        ),
        |((w, a), resource, fresh)| {
            let query = Ask {
                scope: "",
                permission: "",
                resource,
                explain: false,
                ..a
            }
            .query();
            let snapshot = w.snapshot();
            let users = w.users(&query);
            let want = model(&query, &snapshot, users.user, users.target);
            let token = match context_grant(&query, &snapshot, users) {
                Err(refused) => {
                    prop_assert!(
                        !want.allowed,
                        "refused: {:?} ({})",
                        refused.reason,
                        refused.message
                    );
                    prop_assert_eq!((refused.allowed, refused.reason), (false, want.reason));
                    return Ok(false);
                }
                Ok(token) => token,
            };
            prop_assert!(
                want.allowed,
                "issued where the model says {:?}",
                want.reason
            );
            let grant = want.grant.as_ref().unwrap();

            // sub, act.
            let (sub, act) = match &query.on_behalf_of {
                Some(target) => (Some(target.clone()), query.user_id.clone()),
                None => (query.user_id.clone(), None),
            };
            prop_assert_eq!(&token.subject, &sub);
            prop_assert_eq!(&token.actor, &act);

            // scp.
            let mut scp = BTreeSet::new();
            for scope in &grant.scopes {
                let narrowed = match users.user.and_then(|u| u.api_user.as_ref()) {
                    Some(api) if query.user_id.is_some() => api.scopes.contains(scope),
                    _ => true,
                };
                if narrowed {
                    scp.insert(scope.clone());
                }
            }
            let got_scp: BTreeSet<Scope> = token.scopes.iter().cloned().collect();
            prop_assert_eq!(token.scopes.len(), got_scp.len(), "scp lists a scope twice");
            prop_assert_eq!(got_scp, scp);

            // pol.
            let policy = if grant.system_user || query.user_id.is_none() {
                ReportedPolicy::AppOnly
            } else if grant.user_only {
                ReportedPolicy::UserOnly
            } else {
                ReportedPolicy::UserAndApp
            };
            prop_assert_eq!(token.policy, policy);

            // rights: what is listed, and where.
            let resource = query.resource.as_str();
            let mut listed: BTreeMap<String, Right> = BTreeMap::new();
            for r in &token.rights {
                let at = r.path.as_str();
                prop_assert!(
                    applies(resource, at) || applies(at, resource),
                    "{} is neither under {} nor above it",
                    at,
                    resource
                );
                let level = allowed_level(policy, grant, want.subject, at);
                prop_assert_eq!(Some(r.level), level, "the level listed at {}", at);
                prop_assert!(
                    listed.insert(at.to_owned(), r.level).is_none(),
                    "{} twice",
                    at
                );
            }
            let mut carried: BTreeSet<String> = BTreeSet::new();
            if policy != ReportedPolicy::UserOnly {
                if grant.system_user {
                    carried.insert("/".to_owned());
                }
                carried.extend(grant.app.keys().cloned());
            }
            if let Some(subject) = want.subject.filter(|_| policy != ReportedPolicy::AppOnly) {
                carried.extend(subject.rights.keys().map(|p| p.as_str().to_owned()));
            }
            for at in carried {
                let related = applies(resource, &at) || applies(&at, resource);
                if related && allowed_level(policy, grant, want.subject, &at).is_some() {
                    prop_assert!(
                        listed.contains_key(&at),
                        "{} carries a grant, not listed",
                        at
                    );
                }
            }

            // rights: the offline rule under the resource.
            for q in every_path(&w, &fresh) {
                if !applies(resource, &q) {
                    continue;
                }
                let offline = level_at(listed.iter().map(|(p, r)| (p.as_str(), *r)), &q);
                let allowed = allowed_level(policy, grant, want.subject, &q);
                prop_assert_eq!(
                    offline,
                    allowed,
                    "at {} under {}: {:?}",
                    q,
                    resource,
                    listed
                );
            }
            Ok(true)
        },
    );
}

// ---------------------------------------------------------------------------------------------
// The app-right ceiling (docs/rules.md §2, §8)
// ---------------------------------------------------------------------------------------------

/// Least share of cases of [`the_app_right_ceiling_is_the_models`] with a consent in force that
/// stores a grant the ceiling cuts or drops (above the approved or the current request, or at a
/// level either leaves out): 40–42% measured at 4 × 1,024 cases; at 256 cases this guard sits
/// five standard deviations below.
const MIN_CAPPED_SHARE: f64 = 0.25;

/// The engine's effective app grants are the model's, one per path (the lowest of granted,
/// approved and currently requested; a level not approved or not requested counts for nothing;
/// an app right replaces the resolved request at its path), GetAppScopes reports them (none while
/// whitelisting blocks the app), and the app's right at every path the world names (and fresh
/// ones) is the model's (FULL_CONTROL everywhere for a system-user app).
#[test]
fn the_app_right_ceiling_is_the_models() {
    counted(
        "the_app_right_ceiling_is_the_models",
        MIN_CAPPED_SHARE,
        (open_world(), fresh_paths()),
        |(w, fresh)| {
            let snapshot = w.snapshot();
            let grant = match standing(&snapshot) {
                Standing::InForce(grant) => grant,
                other => {
                    prop_assert!(
                        snapshot.effective().is_none(),
                        "in force, the model says {:?}",
                        other
                    );
                    return Ok(false);
                }
            };
            let Some(effective) = snapshot.effective() else {
                return Err(TestCaseError::fail(
                    "the model has a consent in force, the engine none",
                ));
            };
            let got: BTreeMap<String, Right> = effective
                .app_rights
                .iter()
                .map(|r| (r.resource.as_str().to_owned(), r.right))
                .collect();
            prop_assert_eq!(got.len(), effective.app_rights.len(), "one grant per path");
            prop_assert_eq!(&got, &grant.app);
            if let Some(report) = AppScopes::report(&snapshot) {
                let blocked = whitelisting(&snapshot) && snapshot.whitelist.is_none();
                let reported: BTreeMap<String, Right> = report
                    .app_grants
                    .iter()
                    .map(|r| (r.resource.as_str().to_owned(), r.right))
                    .collect();
                let want = if blocked {
                    BTreeMap::new()
                } else {
                    grant.app.clone()
                };
                prop_assert_eq!(reported, want);
            }
            for q in every_path(&w, &fresh) {
                let at = ResourcePath::parse("resource", q.as_str()).unwrap();
                prop_assert_eq!(effective.app_right_at(&at), grant.app_level(&q), "at {}", q);
            }
            // Reached: a stored grant that the approval or the current manifest cuts or drops.
            let c = w.consent.as_ref().unwrap();
            Ok(c.resolved.iter().chain(&c.app_rights).any(|r| {
                let approved = c.approved.permission_requests.get(&r.scope_level);
                let requested = w.current.permission_requests.get(&r.scope_level);
                match (approved, requested) {
                    (Some(&a), Some(&n)) => rank(r.right) > rank(lowest(a, n)),
                    _ => true,
                }
            }))
        },
    );
}
