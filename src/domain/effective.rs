//! What an approved application may do now: the approved manifest ∩ the current manifest
//! (∩ the whitelist entry), the mandatory re-approval triggers, and the GetAppScopes report
//! (docs/rules.md §2, §4).

use std::collections::{BTreeMap, BTreeSet};

use super::app::{App, Manifest, PermissionRequest, Policy, RunAs, ScopeLevel};
use super::consent::{Consent, ResolvedRequest};
use super::external::Principal;
use super::ids::Scope;
use super::names::named_enum;
use super::path::ResourcePath;
use super::rights::Right;
use super::tenant::Tenant;
use super::time::Timestamp;
use super::whitelist::{ContentAccess, WhitelistEntry};

named_enum! {
    /// An escalation since approval that takes everything away until an administrator re-approves.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum ReapprovalReason {
        /// USER_CONTEXT → SYSTEM_USER.
        RunAsSystemUser = "RUN_AS_SYSTEM_USER",
        /// Webhooks added.
        WebhooksAdded = "WEBHOOKS_ADDED",
        /// Database mirroring added.
        DatabaseMirroringAdded = "DATABASE_MIRRORING_ADDED",
    }
    /// Every trigger.
    const ALL;
    /// The fixed token callers see.
    fn as_str;
    /// The trigger named by its token, if any.
    fn from_name;
}

/// The mandatory re-approval triggers between the approved and the current manifest.
pub fn reapproval_reasons(approved: &Manifest, current: &Manifest) -> Vec<ReapprovalReason> {
    let mut reasons = Vec::new();
    if approved.run_as == RunAs::UserContext && current.run_as == RunAs::SystemUser {
        reasons.push(ReapprovalReason::RunAsSystemUser);
    }
    if !approved.webhooks && current.webhooks {
        reasons.push(ReapprovalReason::WebhooksAdded);
    }
    if !approved.database_mirroring && current.database_mirroring {
        reasons.push(ReapprovalReason::DatabaseMirroringAdded);
    }
    reasons
}

/// Where an application's consent in a tenant stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentState {
    /// Nobody approved it.
    NotConsented,
    /// It was approved, then revoked.
    Revoked,
    /// It escalated since approval; it gets nothing until re-approved.
    ReapprovalRequired(Vec<ReapprovalReason>),
    /// Approved and in force.
    Approved,
}

/// The effective grant of an approved application: what it may do now.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EffectiveGrant {
    /// Approved ∩ requested now (∩ the whitelist's allowed scopes when they narrow).
    pub scopes: BTreeSet<Scope>,
    /// Resolved requests and site-level app rights whose level is both approved and still
    /// requested, at the lowest of the granted, the approved and the currently requested right;
    /// one per resource, by level.
    pub app_rights: Vec<ResolvedRequest>,
    /// SYSTEM_USER both approved and current.
    pub system_user: bool,
    /// `allow_app_only` both approved and current.
    pub allow_app_only: bool,
    /// The stricter of the approved and the current policy.
    pub policy: Policy,
    /// Webhooks both approved and current.
    pub webhooks: bool,
    /// Database mirroring both approved and current.
    pub database_mirroring: bool,
}

impl EffectiveGrant {
    /// Computes approved ∩ current, narrowing scopes by `allowed_scopes` when it is non-empty.
    pub fn compute(
        consent: &Consent,
        current: &Manifest,
        allowed_scopes: Option<&BTreeSet<Scope>>,
    ) -> Self {
        let approved = &consent.approved_manifest;
        let scopes = approved
            .scopes
            .intersection(&current.scopes)
            .filter(|s| {
                allowed_scopes.is_none_or(|allowed| allowed.is_empty() || allowed.contains(*s))
            })
            .cloned()
            .collect();
        // The resolved requests, then the site-level app rights, which replace a resolved
        // request at the same resource (docs/rules.md §8: granting where an app right is replaces
        // it); each at the lowest of its right, the approved and the current request, by level,
        // then resource. A level either manifest leaves out counts for nothing, so an app right
        // stored at a level (or right) that awaits re-approval stays pending (§2), however it was
        // written.
        let mut by_resource: BTreeMap<(ScopeLevel, &ResourcePath), Right> = BTreeMap::new();
        for r in consent.resolved_requests.iter().chain(&consent.app_rights) {
            let (Some(&now), Some(&was)) = (
                current.permission_requests.get(&r.scope_level),
                approved.permission_requests.get(&r.scope_level),
            ) else {
                continue;
            };
            by_resource.insert((r.scope_level, &r.resource), r.right.min(now).min(was));
        }
        let app_rights = by_resource
            .into_iter()
            .map(|((scope_level, resource), right)| ResolvedRequest {
                scope_level,
                right,
                resource: resource.clone(),
            })
            .collect();
        Self {
            scopes,
            app_rights,
            system_user: approved.run_as == RunAs::SystemUser
                && current.run_as == RunAs::SystemUser,
            allow_app_only: approved.allow_app_only && current.allow_app_only,
            policy: approved.policy.stricter(current.policy),
            webhooks: approved.webhooks && current.webhooks,
            database_mirroring: approved.database_mirroring && current.database_mirroring,
        }
    }

    /// The highest right the application holds at `path` through its grants, if any.
    pub fn app_right_at(&self, path: &ResourcePath) -> Option<Right> {
        if self.system_user {
            return Some(Right::FullControl);
        }
        self.app_rights
            .iter()
            .filter(|r| r.resource.covers(path))
            .map(|r| r.right)
            .max()
    }
}

/// Everything a check or GetAppScopes needs about one application in one tenant, with the
/// derived effective grant computed once when the snapshot is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSnapshot {
    /// The tenant, if it exists.
    pub tenant: Option<Tenant>,
    /// The application, if it is registered.
    pub app: Option<App>,
    /// The application's consent in the tenant, if it was ever approved.
    pub consent: Option<Consent>,
    /// The tenant's whitelist entry for the application, if any.
    pub whitelist: Option<WhitelistEntry>,
    state: ConsentState,
    effective: Option<EffectiveGrant>,
}

impl AppSnapshot {
    /// Builds a snapshot from the facts, deriving the consent state and the effective grant.
    pub fn new(
        tenant: Option<Tenant>,
        app: Option<App>,
        consent: Option<Consent>,
        whitelist: Option<WhitelistEntry>,
    ) -> Self {
        let state = match (&app, &consent) {
            (_, None) => ConsentState::NotConsented,
            (_, Some(c)) if !c.is_active() => ConsentState::Revoked,
            (None, Some(_)) => ConsentState::NotConsented,
            (Some(app), Some(c)) => {
                let reasons = reapproval_reasons(&c.approved_manifest, &app.manifest);
                if reasons.is_empty() {
                    ConsentState::Approved
                } else {
                    ConsentState::ReapprovalRequired(reasons)
                }
            }
        };
        let narrowing = match (&tenant, &whitelist) {
            (Some(t), Some(entry)) if t.whitelisting_enabled => Some(&entry.allowed_scopes),
            _ => None,
        };
        let effective = match (&state, &app, &consent) {
            (ConsentState::Approved, Some(app), Some(c)) => {
                Some(EffectiveGrant::compute(c, &app.manifest, narrowing))
            }
            _ => None,
        };
        Self {
            tenant,
            app,
            consent,
            whitelist,
            state,
            effective,
        }
    }

    /// Where the consent stands.
    pub fn consent_state(&self) -> &ConsentState {
        &self.state
    }

    /// The effective grant, when the consent is approved and in force (whitelisting aside).
    pub fn effective(&self) -> Option<&EffectiveGrant> {
        self.effective.as_ref()
    }

    /// Whether whitelisting is enabled in the tenant.
    pub fn whitelisting_enabled(&self) -> bool {
        self.tenant.as_ref().is_some_and(|t| t.whitelisting_enabled)
    }

    /// Whether whitelisting blocks the application: enabled, and no entry for it.
    pub fn blocked_by_whitelist(&self) -> bool {
        self.whitelisting_enabled() && self.whitelist.is_none()
    }

    /// The content access in force: the entry's while whitelisting is enabled, else OWN_CONTENT.
    pub fn content_access(&self) -> ContentAccess {
        match &self.whitelist {
            Some(entry) if self.whitelisting_enabled() => entry.content_access,
            _ => ContentAccess::OwnContent,
        }
    }
}

named_enum! {
    /// The policy GetAppScopes reports: a manifest policy, or APP_ONLY for a system-user
    /// application.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum ReportedPolicy {
        /// Both user and application must hold a permission.
        UserAndApp = "USER_AND_APP",
        /// Only the user must.
        UserOnly = "USER_ONLY",
        /// Only the application must (an effective SYSTEM_USER application).
        AppOnly = "APP_ONLY",
    }
    /// Every policy reported.
    const ALL;
    /// The policy's token, as `pol` and GetAppScopes spell it.
    fn as_str;
    /// The policy named by its token, if any.
    fn from_name;
}

impl From<Policy> for ReportedPolicy {
    fn from(p: Policy) -> Self {
        match p {
            Policy::UserAndApp => ReportedPolicy::UserAndApp,
            Policy::UserOnly => ReportedPolicy::UserOnly,
        }
    }
}

/// The consent part of a GetAppScopes answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentInfo {
    /// Where the consent stands.
    pub state: ConsentState,
    /// Who approved, if anyone ever did.
    pub approved_by: Option<Principal>,
    /// When, if ever.
    pub approved_at: Option<Timestamp>,
    /// The approved manifest revision; 0 if never approved.
    pub approved_manifest_revision: i64,
    /// The current manifest revision.
    pub current_manifest_revision: i64,
}

/// The answer to GetAppScopes: effective values, and what awaits approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppScopes {
    /// Whitelisting is enabled in the tenant.
    pub whitelisting_enabled: bool,
    /// The tenant has an entry for the application.
    pub whitelisted: bool,
    /// The consent.
    pub consent: ConsentInfo,
    /// Scopes usable now (empty while the application is blocked or not approved).
    pub effective_scopes: Vec<Scope>,
    /// Scopes requested and not approved.
    pub pending_scopes: Vec<Scope>,
    /// Requests (new levels or higher rights) not approved.
    pub pending_permission_requests: Vec<PermissionRequest>,
    /// App-only access requested and not approved.
    pub pending_allow_app_only: bool,
    /// USER_ONLY requested and not in effect.
    pub pending_policy: Option<Policy>,
    /// The content access in force.
    pub content_access: ContentAccess,
    /// The effective run-as.
    pub run_as: RunAs,
    /// Webhooks in effect.
    pub webhooks: bool,
    /// Database mirroring in effect.
    pub database_mirroring: bool,
    /// The application's effective rights.
    pub app_grants: Vec<ResolvedRequest>,
    /// The effective policy.
    pub policy: ReportedPolicy,
    /// App-only access in effect.
    pub allow_app_only: bool,
    /// Re-approval reasons; non-empty exactly when re-approval is required.
    pub reapproval_reasons: Vec<ReapprovalReason>,
}

impl AppScopes {
    /// The report for a snapshot whose tenant and application both exist, else `None`.
    pub fn report(snapshot: &AppSnapshot) -> Option<AppScopes> {
        let (_, app) = (snapshot.tenant.as_ref()?, snapshot.app.as_ref()?);
        let current = &app.manifest;
        let state = snapshot.consent_state().clone();
        // What the current manifest asks beyond what is approved: everything, without a consent
        // in force.
        let approved = match (&state, &snapshot.consent) {
            (ConsentState::Approved | ConsentState::ReapprovalRequired(_), Some(c)) => {
                Some(&c.approved_manifest)
            }
            _ => None,
        };
        let empty = Manifest::default();
        let base = approved.unwrap_or(&empty);
        let pending_scopes = current.scopes.difference(&base.scopes).cloned().collect();
        let pending_permission_requests = current
            .requests()
            .filter(|r| {
                base.permission_requests
                    .get(&r.scope_level)
                    .is_none_or(|&had| r.right > had)
            })
            .collect();
        let effective = snapshot
            .effective()
            .filter(|_| !snapshot.blocked_by_whitelist());
        let in_force = effective.cloned().unwrap_or_default();
        let policy = if in_force.system_user {
            ReportedPolicy::AppOnly
        } else {
            in_force.policy.into()
        };
        let reapproval_reasons = match &state {
            ConsentState::ReapprovalRequired(r) => r.clone(),
            _ => Vec::new(),
        };
        let consent = snapshot.consent.as_ref();
        Some(AppScopes {
            whitelisting_enabled: snapshot.whitelisting_enabled(),
            whitelisted: snapshot.whitelist.is_some(),
            consent: ConsentInfo {
                state,
                approved_by: consent.map(|c| c.approved_by.clone()),
                approved_at: consent.map(|c| c.approved_at),
                approved_manifest_revision: consent.map_or(0, |c| c.approved_manifest_revision),
                current_manifest_revision: app.manifest_revision,
            },
            effective_scopes: in_force.scopes.into_iter().collect(),
            pending_scopes,
            pending_permission_requests,
            pending_allow_app_only: current.allow_app_only && !base.allow_app_only,
            pending_policy: (current.policy == Policy::UserOnly && base.policy != Policy::UserOnly)
                .then_some(Policy::UserOnly),
            content_access: snapshot.content_access(),
            run_as: if in_force.system_user {
                RunAs::SystemUser
            } else {
                RunAs::UserContext
            },
            webhooks: in_force.webhooks,
            database_mirroring: in_force.database_mirroring,
            app_grants: in_force.app_rights,
            policy,
            allow_app_only: in_force.allow_app_only,
            reapproval_reasons,
        })
    }
}
