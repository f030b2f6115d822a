//! The domain: plain types for tenants, users, applications, consent, whitelisting, rights and
//! external permissions, and the pure decision engine over them.
//!
//! Architecture invariant: nothing here does I/O, awaits, or knows about tonic, prost or sqlx.
//! Values are validated once when parsed ([`ids`], [`path`], [`rights`]) and trusted after.

pub mod api_user;
pub mod app;
pub mod consent;
pub mod decision;
pub mod effective;
pub mod error;
pub mod external;
pub mod http;
pub mod ids;
pub mod mesh;
mod names;
pub mod path;
pub mod prompt;
pub mod revision;
pub mod rights;
pub mod rules;
pub mod search;
pub mod tenant;
pub mod time;
pub mod token;
pub mod whitelist;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod scenarios;

pub use api_user::ApiUser;
pub use app::{
    App, AppKind, Manifest, ManifestParts, PermissionRequest, Policy, RunAs, ScopeLevel,
};
pub use consent::{Consent, ResolvedRequest};
pub use decision::{
    AccessFields, AccessQuery, Decision, OwnedAccessQuery, RawAccessQuery, Reason, Step,
    TenantAccessQuery, TenantField, TraceStep, UserFacts, check_access,
};
pub use effective::{
    AppScopes, AppSnapshot, ConsentState, EffectiveGrant, ReapprovalReason, ReportedPolicy,
};
pub use error::{AlreadyExists, Entity, NotFound, Valid, ValidationError};
pub use external::{
    ExternalCatalog, ExternalPermission, GrantView, GroupAcl, ManagerAccess, PermissionGroup,
    PermissionRef, Principal, UserGrant, Viewer,
};
pub use ids::{
    AppId, AuditTarget, ClientId, Description, Environment, ExternalId, GroupId, Name,
    PermissionId, Scope, TenantId, UserId,
};
pub use path::ResourcePath;
pub use prompt::{Approver, ChangeKind, ConsentChange, ConsentPrompt};
pub use revision::{Revision, Tag};
pub use rights::{FinePermission, PermissionName, Right};
pub use rules::{Actor, Caller, Capabilities, Capability, KeyHash, RuleError, TenantBounds};
pub use tenant::{Role, RoleSet, Tenant, UserSnapshot};
pub use time::Timestamp;
pub use token::{RightAt, TokenGrant, allows_in, context_grant, level_in};
pub use whitelist::{ContentAccess, WhitelistEntry};
