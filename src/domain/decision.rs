//! CheckAccess: the ordered steps of docs/rules.md §3. The first failing step decides; with
//! `explain`, every evaluated step is traced. Pure: facts in, a [`Decision`] out.

use super::names::named_enum;
use super::{Entity, NotFound};

use super::app::Policy;
use super::effective::{AppSnapshot, ConsentState};
use super::ids::{AppId, Scope, TenantId, UserId};
use super::path::ResourcePath;
use super::rights::{PermissionName, Right};
use super::tenant::{Role, UserSnapshot};
use super::whitelist::ContentAccess;

named_enum! {
    /// One step of the decision, in evaluation order.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Step {
        /// The tenant exists.
        Tenant = "TENANT",
        /// The application is registered.
        App = "APP",
        /// Whitelisting lets the application in.
        Whitelist = "WHITELIST",
        /// The consent is in force.
        Consent = "CONSENT",
        /// The scope asked for is effective.
        Scope = "SCOPE",
        /// A user is present, or the application may act app-only.
        User = "USER",
        /// Acting on behalf of another user is allowed.
        OnBehalfOf = "ON_BEHALF_OF",
        /// The permission is held at the resource.
        Permission = "PERMISSION",
    }
    /// Every step, in evaluation order.
    const ALL;
    /// The fixed token a trace names the step by.
    fn as_str;
    /// The step named by its token, if any.
    fn from_name;
}

named_enum! {
    /// Why a check was decided as it was.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[allow(missing_docs)] // each variant is documented by docs/rules.md §3 and the proto enum
    pub enum Reason {
        Allowed = "ALLOWED",
        UnknownTenant = "UNKNOWN_TENANT",
        UnknownApp = "UNKNOWN_APP",
        AppNotWhitelisted = "APP_NOT_WHITELISTED",
        NoConsent = "NO_CONSENT",
        ConsentRevoked = "CONSENT_REVOKED",
        ReapprovalRequired = "REAPPROVAL_REQUIRED",
        ScopeNotGranted = "SCOPE_NOT_GRANTED",
        ImpersonationNotAllowed = "IMPERSONATION_NOT_ALLOWED",
        UserRequired = "USER_REQUIRED",
        AppPermissionInsufficient = "APP_PERMISSION_INSUFFICIENT",
        UserPermissionInsufficient = "USER_PERMISSION_INSUFFICIENT",
    }
    /// Every reason.
    const ALL;
    /// The reason's name without the proto prefix, for logs and metrics.
    fn as_str;
    /// The reason named `name` (without the proto prefix), if any.
    fn from_name;
}

impl Reason {
    /// The step that fails with this reason; `None` for ALLOWED.
    pub fn step(self) -> Option<Step> {
        Some(match self {
            Reason::Allowed => return None,
            Reason::UnknownTenant => Step::Tenant,
            Reason::UnknownApp => Step::App,
            Reason::AppNotWhitelisted => Step::Whitelist,
            Reason::NoConsent | Reason::ConsentRevoked | Reason::ReapprovalRequired => {
                Step::Consent
            }
            Reason::ScopeNotGranted => Step::Scope,
            Reason::UserRequired => Step::User,
            Reason::ImpersonationNotAllowed => Step::OnBehalfOf,
            Reason::AppPermissionInsufficient | Reason::UserPermissionInsufficient => {
                Step::Permission
            }
        })
    }
}

/// A validated access question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessQuery {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The application.
    pub app_id: AppId,
    /// The signed-in user; `None` for an app-only call.
    pub user_id: Option<UserId>,
    /// The user to act on behalf of.
    pub on_behalf_of: Option<UserId>,
    /// An API scope the call needs.
    pub scope: Option<Scope>,
    /// A permission needed at `resource`.
    pub permission: Option<PermissionName>,
    /// The resource (`/` when not given).
    pub resource: ResourcePath,
    /// Trace every evaluated step.
    pub explain: bool,
}

/// One evaluated step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    /// The step.
    pub step: Step,
    /// Whether it passed.
    pub passed: bool,
    /// What it found.
    pub detail: String,
}

/// The answer to an access question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether access is allowed.
    pub allowed: bool,
    /// ALLOWED, or the first failing step's reason.
    pub reason: Reason,
    /// A human-readable explanation: the failing step's finding, or a summary of the grant.
    pub message: String,
    /// Every evaluated step, in order, when the query asked to explain.
    pub trace: Vec<TraceStep>,
}

/// The facts about the users a check involves, as the store or cache loaded them. `None` is a
/// user the tenant does not know (no roles, no rights).
#[derive(Debug, Clone, Copy, Default)]
pub struct UserFacts<'a> {
    /// The signed-in user.
    pub user: Option<&'a UserSnapshot>,
    /// The user named in `on_behalf_of`.
    pub target: Option<&'a UserSnapshot>,
}

/// Collects the trace while the steps run; formats details only when explaining.
struct Eval {
    explain: bool,
    trace: Vec<TraceStep>,
}

impl Eval {
    fn pass(&mut self, step: Step, detail: impl FnOnce() -> String) {
        if self.explain {
            self.trace.push(TraceStep {
                step,
                passed: true,
                detail: detail(),
            });
        }
    }

    fn deny(mut self, step: Step, reason: Reason, detail: String) -> Decision {
        debug_assert_eq!(reason.step(), Some(step));
        if self.explain {
            self.trace.push(TraceStep {
                step,
                passed: false,
                detail: detail.clone(),
            });
        }
        Decision {
            allowed: false,
            reason,
            message: detail,
            trace: self.trace,
        }
    }

    fn allow(self, message: String) -> Decision {
        Decision {
            allowed: true,
            reason: Reason::Allowed,
            message,
            trace: self.trace,
        }
    }
}

static UNKNOWN_USER: std::sync::LazyLock<UserSnapshot> =
    std::sync::LazyLock::new(UserSnapshot::default);

/// Decides `query` against the facts of one snapshot (docs/rules.md §3).
pub fn check_access(query: &AccessQuery, app: &AppSnapshot, users: UserFacts<'_>) -> Decision {
    let mut eval = Eval {
        explain: query.explain,
        trace: Vec::new(),
    };
    let (tenant_id, app_id) = (&query.tenant_id, &query.app_id);

    // 1. Tenant and application.
    if app.tenant.is_none() {
        return eval.deny(
            Step::Tenant,
            Reason::UnknownTenant,
            NotFound(Entity::Tenant(tenant_id.clone())).to_string(),
        );
    }
    eval.pass(Step::Tenant, || format!("tenant {tenant_id} exists"));
    let Some(registered) = &app.app else {
        return eval.deny(
            Step::App,
            Reason::UnknownApp,
            NotFound(Entity::App(app_id.clone())).to_string(),
        );
    };
    eval.pass(Step::App, || {
        format!(
            "app {app_id} is registered ({}, manifest revision {})",
            registered.kind.as_str(),
            registered.manifest_revision
        )
    });

    // 2. Whitelisting.
    if app.blocked_by_whitelist() {
        return eval.deny(
            Step::Whitelist,
            Reason::AppNotWhitelisted,
            format!(
                "whitelisting is enabled in tenant {tenant_id} and app {app_id} is not whitelisted"
            ),
        );
    }
    eval.pass(Step::Whitelist, || {
        if app.whitelisting_enabled() {
            format!(
                "app {app_id} is whitelisted (content access {})",
                app.content_access().as_str()
            )
        } else {
            "whitelisting is disabled".to_owned()
        }
    });

    // 3. Consent.
    let grant = match (app.consent_state(), app.effective(), &app.consent) {
        (ConsentState::Approved, Some(grant), Some(consent)) => {
            eval.pass(Step::Consent, || {
                format!(
                    "approved by {} at manifest revision {}",
                    consent.approved_by, consent.approved_manifest_revision
                )
            });
            grant
        }
        (ConsentState::Revoked, _, Some(consent)) => {
            let at = consent
                .revoked_at
                .map(|t| format!(" at {t}"))
                .unwrap_or_default();
            return eval.deny(
                Step::Consent,
                Reason::ConsentRevoked,
                format!("the consent for app {app_id} in tenant {tenant_id} was revoked{at}"),
            );
        }
        (ConsentState::ReapprovalRequired(reasons), _, _) => {
            let reasons: Vec<_> = reasons.iter().map(|r| r.as_str()).collect();
            return eval.deny(
                Step::Consent,
                Reason::ReapprovalRequired,
                format!("app {app_id} escalated since approval ({}); an administrator must approve it again", reasons.join(", ")),
            );
        }
        _ => {
            return eval.deny(
                Step::Consent,
                Reason::NoConsent,
                format!("no administrator has approved app {app_id} in tenant {tenant_id}"),
            );
        }
    };

    // 4. Scope: effective for the app and, when the signed-in user is an API user, among
    // their scopes too (docs/rules.md §8).
    let api_user = query
        .user_id
        .as_ref()
        .zip(users.user.and_then(|u| u.api_user.as_ref()));
    match (&query.scope, api_user) {
        (None, _) => eval.pass(Step::Scope, || "no scope asked for".to_owned()),
        (Some(scope), _) if !grant.scopes.contains(scope) => {
            return eval.deny(
                Step::Scope,
                Reason::ScopeNotGranted,
                scope_refusal(scope, app),
            );
        }
        (Some(scope), None) => eval.pass(Step::Scope, || format!("scope {scope} is granted")),
        (Some(scope), Some((user, api))) if api.allows(scope) => eval.pass(Step::Scope, || {
            format!("scope {scope} is granted and among the scopes of API user {user}")
        }),
        (Some(scope), Some((user, api))) => {
            return eval.deny(
                Step::Scope,
                Reason::ScopeNotGranted,
                format!(
                    "scope {scope} is not granted: it is not among the scopes of API user {user} ({})",
                    api.scopes_text()
                ),
            );
        }
    }

    // 5. User or app-only.
    let app_only = query.user_id.is_none();
    match &query.user_id {
        Some(user) => eval.pass(Step::User, || format!("signed-in user {user}")),
        None if grant.system_user => eval.pass(Step::User, || {
            "app-only call by a system-user app".to_owned()
        }),
        None if grant.allow_app_only => eval.pass(Step::User, || {
            "app-only call, allowed by allow_app_only".to_owned()
        }),
        None => {
            return eval.deny(
                Step::User,
                Reason::UserRequired,
                format!("the call has no user_id and app {app_id} may not act app-only"),
            );
        }
    }

    // 6. On behalf of.
    let user_facts = users.user.unwrap_or(&UNKNOWN_USER);
    let mut subject = (query.user_id.as_ref(), user_facts);
    if let Some(target) = &query.on_behalf_of {
        let target_facts = users.target.unwrap_or(&UNKNOWN_USER);
        let by = match impersonation(
            query.user_id.as_ref(),
            user_facts,
            target,
            target_facts,
            Access {
                whitelisting: app.whitelisting_enabled(),
                content: app.content_access(),
            },
        ) {
            Ok(by) => by,
            Err(why) => return eval.deny(Step::OnBehalfOf, Reason::ImpersonationNotAllowed, why),
        };
        eval.pass(Step::OnBehalfOf, || {
            let actor = query.user_id.as_ref().map_or("", UserId::as_str);
            match by {
                Delegation::Role => format!(
                    "{actor} acts on behalf of managed user {target} (DELEGATE or an administrator role; the app's content access is ON_BEHALF_OF_MANAGED_USERS)"
                ),
                Delegation::AsUser { whitelisting: true } => format!(
                    "API user {actor} acts on behalf of managed user {target} (as_user; whitelisting is on and the app's content access is ON_BEHALF_OF_MANAGED_USERS)"
                ),
                Delegation::AsUser { whitelisting: false } => format!(
                    "API user {actor} acts on behalf of managed user {target} (as_user; whitelisting is off, so no content access is needed)"
                ),
            }
        });
        subject = (Some(target), target_facts);
    } else {
        eval.pass(Step::OnBehalfOf, || "not asked for".to_owned());
    }

    // 7. Permission.
    let Some(permission) = query.permission else {
        eval.pass(Step::Permission, || "no permission asked for".to_owned());
        return eval.allow(format!("app {app_id} may act in tenant {tenant_id}"));
    };
    let resource = &query.resource;
    let need = permission.required_right();
    let shortfall = |who: String, held: Option<Right>| match held {
        Some(r) => format!("{who} holds {r} at {resource}; {permission} needs {need}"),
        None => format!("{who} holds no right at {resource}; {permission} needs {need}"),
    };
    let policy = if grant.system_user {
        "system user"
    } else if app_only {
        "APP_ONLY"
    } else {
        grant.policy.as_str()
    };
    // The app is checked first; each side's right is looked up once, only if the policy needs it.
    let app_needed = grant.system_user || app_only || grant.policy == Policy::UserAndApp;
    let user_needed = !grant.system_user && !app_only;
    if app_needed {
        let held = grant.app_right_at(resource);
        if held.is_none_or(|r| r < need) {
            let detail = shortfall(format!("app {app_id}"), held);
            return eval.deny(Step::Permission, Reason::AppPermissionInsufficient, detail);
        }
    }
    if user_needed {
        let held = subject.1.right_at(resource);
        if held.is_none_or(|r| r < need) {
            let who = subject
                .0
                .map_or_else(|| "the user".to_owned(), |u| format!("user {u}"));
            return eval.deny(
                Step::Permission,
                Reason::UserPermissionInsufficient,
                shortfall(who, held),
            );
        }
    }
    let summary = format!("{permission} at {resource} is allowed under the {policy} policy");
    eval.pass(Step::Permission, || summary.clone());
    eval.allow(summary)
}

/// Why a scope is not effective: never requested, pending approval, withdrawn, or whitelisted out.
fn scope_refusal(scope: &Scope, app: &AppSnapshot) -> String {
    let requested = app
        .app
        .as_ref()
        .is_some_and(|a| a.manifest.scopes.contains(scope));
    let approved = app
        .consent
        .as_ref()
        .is_some_and(|c| c.approved_manifest.scopes.contains(scope));
    let why = match (requested, approved) {
        (false, false) => "the app does not request it",
        (true, false) => "it is requested but not approved (pending re-approval)",
        (false, true) => "the app no longer requests it",
        (true, true) => "the tenant's whitelist entry does not allow it",
    };
    format!("scope {scope} is not granted: {why}")
}

/// What lets a signed-in user act on behalf of others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delegation {
    /// DELEGATE or an administrator role, through an app whose content access is
    /// ON_BEHALF_OF_MANAGED_USERS.
    Role,
    /// `as_user` of the user's API-user record, in place of DELEGATE (docs/rules.md §8): with
    /// whitelisting off it needs no content access; with it on, the app's content access
    /// still applies.
    AsUser {
        /// Whether whitelisting was on (and the content access therefore applied).
        whitelisting: bool,
    },
}

/// What the tenant's whitelisting says about acting on behalf through the app.
#[derive(Debug, Clone, Copy)]
struct Access {
    /// Whether whitelisting is enabled in the tenant.
    whitelisting: bool,
    /// The content access in force (OWN_CONTENT while whitelisting is off).
    content: ContentAccess,
}

/// Whether `actor` may act on behalf of `target` (docs/rules.md §3 step 6, amended by §8 for API
/// users), and on what ground; the refusal says why. A role counts only through an app whose
/// content access is ON_BEHALF_OF_MANAGED_USERS; an API user's `as_user` counts through one too,
/// or through any app while whitelisting is off. The managed-user rule applies to both.
fn impersonation(
    actor: Option<&UserId>,
    actor_facts: &UserSnapshot,
    target: &UserId,
    target_facts: &UserSnapshot,
    access: Access,
) -> Result<Delegation, String> {
    let Some(actor) = actor else {
        return Err(format!(
            "acting on behalf of {target} needs a signed-in user_id"
        ));
    };
    let on_behalf = access.content == ContentAccess::OnBehalfOfManagedUsers;
    let by_role = actor_facts.roles.has(Role::Delegate) || actor_facts.roles.is_admin();
    let as_user = actor_facts.api_user.as_ref().map(|api| api.as_user);
    let by = if on_behalf && by_role {
        Delegation::Role
    } else if as_user == Some(true) && (on_behalf || !access.whitelisting) {
        Delegation::AsUser {
            whitelisting: access.whitelisting,
        }
    } else if !on_behalf && access.whitelisting {
        return Err(format!(
            "the app's content access is {}; acting on behalf of users needs ON_BEHALF_OF_MANAGED_USERS while whitelisting is on (API users included)",
            access.content.as_str()
        ));
    } else if !on_behalf {
        let who = match as_user {
            Some(_) => format!("API user {actor} has as_user off"),
            None => format!("user {actor} is no API user"),
        };
        return Err(format!(
            "whitelisting is off, so the app's content access is OWN_CONTENT: only an API user with as_user may act on behalf of users, and {who}"
        ));
    } else {
        return Err(match as_user {
            Some(_) => format!(
                "API user {actor} may not act as another user (as_user is off) and holds neither DELEGATE nor an administrator role"
            ),
            None => format!("user {actor} holds neither DELEGATE nor an administrator role"),
        });
    };
    if !target_facts.known {
        return Err(format!("user {target} is not known in the tenant"));
    }
    if let Some(role) = target_facts.roles.role_missing_from(actor_facts.roles) {
        let actor = match by {
            Delegation::Role => actor.to_string(),
            Delegation::AsUser { .. } => format!("API user {actor}"),
        };
        return Err(format!(
            "user {target} holds {role}, which {actor} lacks, so is not a managed user"
        ));
    }
    Ok(by)
}

/// An access question as the caller sent it, before validation: its text fields borrowed
/// ([`RawAccessQuery`]) or owned ([`OwnedAccessQuery`], kept by parsing rather than copied), its
/// tenant as text or already parsed ([`TenantAccessQuery`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct AccessFields<S, T = S> {
    /// The tenant (required).
    pub tenant_id: T,
    /// The application (required).
    pub app_id: S,
    /// The signed-in user; empty for app-only.
    pub user_id: S,
    /// A user to act on behalf of; empty for none.
    pub on_behalf_of: S,
    /// An API scope; empty for none.
    pub scope: S,
    /// A permission name; empty for none.
    pub permission: S,
    /// A path; empty means `/`.
    pub resource: S,
    /// Trace every evaluated step.
    pub explain: bool,
}

/// An access question with borrowed fields.
pub type RawAccessQuery<'a> = AccessFields<&'a str>;

/// An access question with owned fields.
pub type OwnedAccessQuery = AccessFields<String>;

/// An access question with owned fields whose tenant was parsed already (checked first, against
/// the caller's bounds): it is taken as it is, not turned back into text.
pub type TenantAccessQuery = AccessFields<String, TenantId>;

/// The tenant of an access question: text to validate, or a tenant validated already.
pub trait TenantField {
    /// The tenant, validated.
    fn into_tenant(self) -> super::error::Valid<TenantId>;
}

impl TenantField for &str {
    fn into_tenant(self) -> super::error::Valid<TenantId> {
        TenantId::parse("tenant_id", self)
    }
}

impl TenantField for String {
    fn into_tenant(self) -> super::error::Valid<TenantId> {
        TenantId::parse("tenant_id", self)
    }
}

impl TenantField for TenantId {
    fn into_tenant(self) -> super::error::Valid<TenantId> {
        Ok(self)
    }
}

impl AccessQuery {
    /// Validates every field; the first problem found is the error.
    pub fn parse(raw: &RawAccessQuery<'_>) -> super::error::Valid<Self> {
        Self::parse_fields(*raw)
    }

    /// [`AccessQuery::parse`] of owned fields, which are kept rather than copied; a tenant
    /// parsed already is kept as it is.
    pub fn parse_owned<T: TenantField>(raw: AccessFields<String, T>) -> super::error::Valid<Self> {
        Self::parse_fields(raw)
    }

    fn parse_fields<S: AsRef<str> + Into<String>, T: TenantField>(
        raw: AccessFields<S, T>,
    ) -> super::error::Valid<Self> {
        Ok(Self {
            tenant_id: raw.tenant_id.into_tenant()?,
            app_id: AppId::parse("app_id", raw.app_id)?,
            user_id: UserId::parse_optional("user_id", raw.user_id)?,
            on_behalf_of: UserId::parse_optional("on_behalf_of", raw.on_behalf_of)?,
            scope: if raw.scope.as_ref().is_empty() {
                None
            } else {
                Some(Scope::parse("scope", raw.scope)?)
            },
            permission: if raw.permission.as_ref().is_empty() {
                None
            } else {
                Some(PermissionName::parse(
                    "permission",
                    raw.permission.as_ref(),
                )?)
            },
            resource: ResourcePath::parse_or_root("resource", raw.resource)?,
            explain: raw.explain,
        })
    }
}
