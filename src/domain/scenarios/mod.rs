//! Hand-written scenarios for the pure decision engine (docs/rules.md §2–§4 and §6): the world every
//! scenario is built from and the fixtures more than one area uses, defined once here. Each test
//! is one named situation; they live by area, following docs/rules.md:
//!
//! * `steps.rs`: every reason, the order of the CheckAccess steps, input validation (§3);
//! * `effective.rs`: re-approval triggers, pending additions, immediate downgrades and the
//!   effective app rights (§2 "Effective grant");
//! * `whitelist.rs`: whitelisting and acting on behalf of managed users (§2 "Whitelist entry",
//!   §3 steps 2, 4 and 6);
//! * `policy.rs`: the policies and the system user (§3 step 7);
//! * `rights.rs`: inheritance down the path tree and the seed permission table (§2 "Resources",
//!   "Rights");
//! * `queries.rs`: GetAppScopes and the visibility of external permission groups (§4);
//! * `prompt.rs`: the consent prompt, its changes, and who may approve (§8);
//! * `admin.rs`: who may write what (§6);
//! * `app_rights.rs`: site-level app rights, their rule, depth and ceiling, and how they join
//!   the effective grant (§8);
//! * `api_users.rs`: API users narrowing scopes and acting with `as_user` (§8, §3 steps 4 and 6);
//! * `tokens.rs`: what a context token says (§8 "Context tokens").

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};

use super::consent::{carried_app_rights, resolve_requests};
use super::*;
use crate::testing::{self, manifest, path, principal, resolved, scope, scopes, uid, user};

mod admin;
mod api_users;
mod app_rights;
mod effective;
mod policy;
mod prompt;
mod queries;
mod rights;
mod steps;
mod tokens;
mod whitelist;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

const TENANT: &str = "acme";
const APP: &str = "crm";

fn request(scope_level: ScopeLevel, right: Right) -> PermissionRequest {
    PermissionRequest { scope_level, right }
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
        let consent = testing::consent(
            &current,
            1,
            vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
            Timestamp::from_micros(1_000),
        );
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
            tenant: Some(testing::tenant(TENANT, "production", false)),
            app: Some(testing::app(APP, AppKind::Standard, current, 1)),
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
            app_rights: carried_app_rights(self.consent.as_ref()),
            revoked_at: None,
        });
        self
    }

    /// An administrator approves the current manifest again, resolving its site collection to
    /// `/hr` at WRITE as the first approval did.
    fn reapproved(self) -> Self {
        self.approved(vec![resolved(
            ScopeLevel::SiteCollection,
            Right::Write,
            "/hr",
        )])
    }

    fn revoked(mut self) -> Self {
        self.consent = Some(
            self.consent
                .as_ref()
                .unwrap()
                .revoked(Timestamp::from_micros(3_000)),
        );
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

/// `crm` approved to run as the system user.
fn system_user_app() -> World {
    World::new()
        .with_manifest(|m| m.run_as = RunAs::SystemUser)
        .reapproved()
}

/// An external permission group: managers `user:mara` (READ), `user:wes` and `client:ops`
/// (READ_WRITE); grantors `user:gina` and `client:hr-sync`; visible to `client:crm` and
/// `app:portal`.
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
