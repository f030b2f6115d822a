//! The consent prompt (docs/rules.md §8): what an approver is asked to accept right now. The current
//! manifest, whether approval is mandatory, who may approve, and each difference from the
//! consent in force, in plain words (the SuperOffice consent dialog's "from … to …").

use super::app::{AppKind, Manifest, PermissionRequest, Policy, RunAs, ScopeLevel};
use super::effective::{AppSnapshot, ConsentState, ReapprovalReason};
use super::ids::{AppId, Name, Scope};
use super::names::named_enum;
use super::rights::Right;
use super::rules;

/// The `from` of RUN_AS_SYSTEM_USER: an app in the user context, in the seed's words.
pub const SYSTEM_USER_FROM: &str = "sentry prevents a user from seeing what they should see";
/// The `to` of RUN_AS_SYSTEM_USER: an app running as the system user, in the seed's words.
pub const SYSTEM_USER_TO: &str = "full access to everything in a customer database";

named_enum! {
    /// The kind of a difference between the consent in force and the current manifest.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum ChangeKind {
        /// USER_CONTEXT → SYSTEM_USER.
        RunAsSystemUser = "RUN_AS_SYSTEM_USER",
        /// Webhooks added.
        WebhooksAdded = "WEBHOOKS_ADDED",
        /// Database mirroring added.
        DatabaseMirroringAdded = "DATABASE_MIRRORING_ADDED",
        /// API scopes requested that are not approved.
        ScopesAdded = "SCOPES_ADDED",
        /// Rights requested at levels where none are approved.
        PermissionRequestsAdded = "PERMISSION_REQUESTS_ADDED",
        /// A higher right requested at a level than the one approved.
        RightRaised = "RIGHT_RAISED",
        /// App-only access requested and not approved.
        AppOnlyAdded = "APP_ONLY_ADDED",
        /// USER_AND_APP → USER_ONLY.
        PolicyRelaxed = "POLICY_RELAXED",
    }
    /// Every kind, in the order a prompt lists them.
    const ALL;
    /// The fixed token callers see.
    fn as_str;
    /// The kind named by its token, if any.
    fn from_name;
}

impl ChangeKind {
    /// The re-approval trigger this change is, for the three that take everything away.
    pub fn reapproval_reason(self) -> Option<ReapprovalReason> {
        match self {
            ChangeKind::RunAsSystemUser => Some(ReapprovalReason::RunAsSystemUser),
            ChangeKind::WebhooksAdded => Some(ReapprovalReason::WebhooksAdded),
            ChangeKind::DatabaseMirroringAdded => Some(ReapprovalReason::DatabaseMirroringAdded),
            _ => None,
        }
    }
}

/// One difference an approver accepts: its kind, and what it was and becomes in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChange {
    /// Which difference.
    pub change: ChangeKind,
    /// What the consent in force allows (or "nothing" words, without one).
    pub from: String,
    /// What approving allows.
    pub to: String,
}

/// Who may approve an application in a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Approver {
    /// An acting tenant administrator (GENERAL_ADMIN or USER_ADMIN).
    Administrator,
    /// A client with `app_manager`, acting as itself.
    AppManager,
}

/// The answer to GetConsentPrompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPrompt {
    /// The application.
    pub app_id: AppId,
    /// Its display name.
    pub name: Name,
    /// STANDARD or CUSTOM.
    pub kind: AppKind,
    /// The manifest revision to pass to ApproveConsent.
    pub manifest_revision: i64,
    /// The API scopes the current manifest requests.
    pub scopes: Vec<Scope>,
    /// The rights it requests, by level.
    pub permission_requests: Vec<PermissionRequest>,
    /// The application gets nothing until approved: no consent in force, or a re-approval
    /// trigger since approval.
    pub mandatory: bool,
    /// Who may approve now.
    pub approvers: Vec<Approver>,
    /// Each difference from the consent in force (from nothing, without one).
    pub changes: Vec<ConsentChange>,
}

impl ConsentPrompt {
    /// The prompt for a snapshot whose tenant and application both exist, else `None`.
    pub fn of(snapshot: &AppSnapshot) -> Option<ConsentPrompt> {
        let (_, app) = (snapshot.tenant.as_ref()?, snapshot.app.as_ref()?);
        let state = snapshot.consent_state();
        // The consent in force is the base of every change; without one (never approved, or
        // revoked), everything the manifest asks for is new.
        let in_force = match (state, &snapshot.consent) {
            (ConsentState::Approved | ConsentState::ReapprovalRequired(_), Some(c)) => {
                Some(&c.approved_manifest)
            }
            _ => None,
        };
        let empty = Manifest::default();
        let mut approvers = vec![Approver::Administrator];
        if rules::app_manager_may_approve(app.kind, snapshot.consent.is_some()) {
            approvers.push(Approver::AppManager);
        }
        Some(ConsentPrompt {
            app_id: app.app_id.clone(),
            name: app.name.clone(),
            kind: app.kind,
            manifest_revision: app.manifest_revision,
            scopes: app.manifest.scopes.iter().cloned().collect(),
            permission_requests: app.manifest.requests().collect(),
            mandatory: *state != ConsentState::Approved,
            approvers,
            changes: changes(in_force.unwrap_or(&empty), &app.manifest),
        })
    }
}

/// The differences from `approved` to `current` that approving `current` would accept, in the
/// order of [`ChangeKind::ALL`], at most one of each kind. Removals and downgrades are not
/// changes to accept: they take effect at once.
pub fn changes(approved: &Manifest, current: &Manifest) -> Vec<ConsentChange> {
    let mut out = Vec::new();
    let mut push = |change, from: String, to: String| {
        out.push(ConsentChange { change, from, to });
    };
    if approved.run_as == RunAs::UserContext && current.run_as == RunAs::SystemUser {
        push(
            ChangeKind::RunAsSystemUser,
            SYSTEM_USER_FROM.to_owned(),
            SYSTEM_USER_TO.to_owned(),
        );
    }
    if !approved.webhooks && current.webhooks {
        push(
            ChangeKind::WebhooksAdded,
            "no webhooks".to_owned(),
            "webhooks: the app is told about changes in the customer database".to_owned(),
        );
    }
    if !approved.database_mirroring && current.database_mirroring {
        push(
            ChangeKind::DatabaseMirroringAdded,
            "no database mirroring".to_owned(),
            "database mirroring: the app keeps a copy of the customer database".to_owned(),
        );
    }
    let added: Vec<&str> = current
        .scopes
        .difference(&approved.scopes)
        .map(Scope::as_str)
        .collect();
    if !added.is_empty() {
        let which = scope_list(&added);
        push(
            ChangeKind::ScopesAdded,
            format!("no access to {which}"),
            format!("access to {which}"),
        );
    }
    let mut new_levels = Vec::new();
    let mut raised = Vec::new();
    for r in current.requests() {
        match approved.permission_requests.get(&r.scope_level) {
            None => new_levels.push(r),
            Some(&had) if r.right > had => raised.push((had, r)),
            Some(_) => {}
        }
    }
    if !new_levels.is_empty() {
        let levels: Vec<&str> = new_levels
            .iter()
            .map(|r| level_words(r.scope_level))
            .collect();
        push(
            ChangeKind::PermissionRequestsAdded,
            format!("no rights on {}", join(&levels, " or ")),
            join_owned(new_levels.iter().map(|r| right_on(r.right, r.scope_level))),
        );
    }
    if !raised.is_empty() {
        push(
            ChangeKind::RightRaised,
            join_owned(raised.iter().map(|(had, r)| right_on(*had, r.scope_level))),
            join_owned(raised.iter().map(|(_, r)| right_on(r.right, r.scope_level))),
        );
    }
    if !approved.allow_app_only && current.allow_app_only {
        push(
            ChangeKind::AppOnlyAdded,
            "acts only for a signed-in user".to_owned(),
            "may also act without a signed-in user (app-only)".to_owned(),
        );
    }
    if approved.policy == Policy::UserAndApp && current.policy == Policy::UserOnly {
        push(
            ChangeKind::PolicyRelaxed,
            "both the user and the app must hold a permission".to_owned(),
            "only the user must hold a permission".to_owned(),
        );
    }
    out
}

/// "the API scope a" or "the API scopes a, b".
fn scope_list(scopes: &[&str]) -> String {
    let noun = if scopes.len() == 1 { "scope" } else { "scopes" };
    format!("the API {noun} {}", scopes.join(", "))
}

/// A level of the resource hierarchy in plain words.
fn level_words(level: ScopeLevel) -> &'static str {
    match level {
        ScopeLevel::Tenancy => "the whole tenancy",
        ScopeLevel::SiteCollection => "a site collection",
        ScopeLevel::Web => "a web",
        ScopeLevel::List => "a list",
    }
}

/// "WRITE on a site collection".
fn right_on(right: Right, level: ScopeLevel) -> String {
    format!("{right} on {}", level_words(level))
}

/// "a, b or c" (with `last` as the final separator).
fn join(items: &[&str], last: &str) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., end] => format!("{}{last}{end}", init.join(", ")),
    }
}

/// "a, b, c".
fn join_owned(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(", ")
}
