//! Applications and their manifests: what an application asks of a tenant.

use std::collections::{BTreeMap, BTreeSet};

use super::error::{Valid, ValidationError, quoted};
use super::ids::{AppId, Name, Scope};
use super::names::named_enum;
use super::rights::Right;

/// The most scopes a manifest or a whitelist entry may list.
pub const MAX_SCOPES: usize = 256;

named_enum! {
    /// How an application is distributed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub enum AppKind {
        /// An app-store application: approved only by a tenant administrator.
        Standard = "STANDARD",
        /// A custom application: its first activation may be done by an app manager.
        Custom = "CUSTOM",
    }
    /// Every kind.
    const ALL;
    /// The kind's name.
    fn as_str;
    /// The kind named `name` (`STANDARD`, `CUSTOM`), if any.
    fn from_name;
}

named_enum! {
    /// Whose identity an application runs under.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum RunAs {
        /// The signed-in user (the default).
        #[default]
        UserContext = "USER_CONTEXT",
        /// The system user: full access to everything in the tenant.
        SystemUser = "SYSTEM_USER",
    }
    /// Every value.
    const ALL;
    /// The value's name.
    fn as_str;
    /// The value named `name` (`USER_CONTEXT`, `SYSTEM_USER`), if any.
    fn from_name;
}

named_enum! {
    /// The authorization policy a manifest asks for.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub enum Policy {
        /// Both the user and the application must hold a permission (the default; the stricter).
        #[default]
        UserAndApp = "USER_AND_APP",
        /// Only the user must hold a permission.
        UserOnly = "USER_ONLY",
    }
    /// Every policy a manifest may ask for.
    const ALL;
    /// The value's name.
    fn as_str;
    /// The policy named `name` (`USER_AND_APP`, `USER_ONLY`), if any.
    fn from_name;
}

impl Policy {
    /// The stricter of two policies: USER_AND_APP unless both are USER_ONLY.
    pub fn stricter(self, other: Policy) -> Policy {
        if self == Policy::UserOnly && other == Policy::UserOnly {
            Policy::UserOnly
        } else {
            Policy::UserAndApp
        }
    }
}

named_enum! {
    /// A level of the resource hierarchy.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum ScopeLevel {
        /// The whole tenant: `/`.
        Tenancy = "TENANCY",
        /// A site collection: depth 1.
        SiteCollection = "SITE_COLLECTION",
        /// A web: depth 2.
        Web = "WEB",
        /// A list: depth 3.
        List = "LIST",
    }
    /// Every level, from the top.
    const ALL;
    /// The level's name.
    fn as_str;
    /// The level named `name` (`TENANCY`, …), if any.
    fn from_name;
}

impl ScopeLevel {
    /// The depth of a path at this level.
    pub fn depth(self) -> usize {
        match self {
            ScopeLevel::Tenancy => 0,
            ScopeLevel::SiteCollection => 1,
            ScopeLevel::Web => 2,
            ScopeLevel::List => 3,
        }
    }
}

/// Rights an application asks for at one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PermissionRequest {
    /// The level.
    pub scope_level: ScopeLevel,
    /// The highest right asked for there.
    pub right: Right,
}

/// What an application asks of a tenant. Scopes are a set and requests are keyed by level,
/// so two manifests are equal exactly when they ask for the same things.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// Whose identity the application runs under.
    pub run_as: RunAs,
    /// The application registers webhooks.
    pub webhooks: bool,
    /// The application mirrors the tenant's database.
    pub database_mirroring: bool,
    /// API scopes it requests.
    pub scopes: BTreeSet<Scope>,
    /// Rights it requests, at most one per level.
    pub permission_requests: BTreeMap<ScopeLevel, Right>,
    /// It asks to act without a signed-in user.
    pub allow_app_only: bool,
    /// The authorization policy.
    pub policy: Policy,
}

/// The raw parts of a manifest, before duplicate and limit checks.
#[derive(Debug, Clone, Default)]
pub struct ManifestParts {
    /// Whose identity the application runs under.
    pub run_as: RunAs,
    /// The application registers webhooks.
    pub webhooks: bool,
    /// The application mirrors the tenant's database.
    pub database_mirroring: bool,
    /// API scopes, unparsed.
    pub scopes: Vec<String>,
    /// Permission requests in the order given.
    pub permission_requests: Vec<PermissionRequest>,
    /// It asks to act without a signed-in user.
    pub allow_app_only: bool,
    /// The authorization policy.
    pub policy: Policy,
}

impl Manifest {
    /// Validates `parts`: well-formed scopes, no duplicate scope, at most one request per level.
    pub fn parse(parts: ManifestParts) -> Valid<Self> {
        let scopes = parse_scope_set("scopes", &parts.scopes)?;
        let mut permission_requests = BTreeMap::new();
        for (i, req) in parts.permission_requests.iter().enumerate() {
            if permission_requests
                .insert(req.scope_level, req.right)
                .is_some()
            {
                return Err(ValidationError::new(
                    format!("permission_requests[{i}]"),
                    format_args!(
                        "a second request for the level {}; at most one per level",
                        req.scope_level
                    ),
                ));
            }
        }
        Ok(Self {
            run_as: parts.run_as,
            webhooks: parts.webhooks,
            database_mirroring: parts.database_mirroring,
            scopes,
            permission_requests,
            allow_app_only: parts.allow_app_only,
            policy: parts.policy,
        })
    }

    /// The requests as a list, ordered by level.
    pub fn requests(&self) -> impl Iterator<Item = PermissionRequest> + '_ {
        self.permission_requests
            .iter()
            .map(|(&scope_level, &right)| PermissionRequest { scope_level, right })
    }
}

/// Parses a list of scopes into a set: each well-formed, none twice, at most [`MAX_SCOPES`].
pub fn parse_scope_set(field: &str, scopes: &[String]) -> Valid<BTreeSet<Scope>> {
    if scopes.len() > MAX_SCOPES {
        return Err(ValidationError::new(
            field,
            format_args!(
                "lists {} scopes; at most {MAX_SCOPES} are allowed",
                scopes.len()
            ),
        ));
    }
    let mut set = BTreeSet::new();
    for (i, raw) in scopes.iter().enumerate() {
        let item = format!("{field}[{i}]");
        let scope = Scope::parse(&item, raw)?;
        if !set.insert(scope) {
            return Err(ValidationError::new(
                item,
                format_args!("{} is listed twice", quoted(raw)),
            ));
        }
    }
    Ok(set)
}

/// A registered application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// The application's client id.
    pub app_id: AppId,
    /// Display name.
    pub name: Name,
    /// STANDARD or CUSTOM.
    pub kind: AppKind,
    /// The current manifest.
    pub manifest: Manifest,
    /// The current manifest's revision: 1, 2, … bumped on every change.
    pub manifest_revision: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(scopes: &[&str], requests: &[(ScopeLevel, Right)]) -> ManifestParts {
        ManifestParts {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            permission_requests: requests
                .iter()
                .map(|&(scope_level, right)| PermissionRequest { scope_level, right })
                .collect(),
            ..ManifestParts::default()
        }
    }

    #[test]
    fn duplicate_scopes_are_rejected_with_their_position() {
        let err = Manifest::parse(parts(&["a:read", "b", "a:read"], &[])).unwrap_err();
        assert_eq!(err.field, "scopes[2]");
        assert!(err.problem.contains("twice"));
    }

    #[test]
    fn malformed_scopes_are_rejected() {
        let err = Manifest::parse(parts(&["ok", "not ok"], &[])).unwrap_err();
        assert_eq!(err.field, "scopes[1]");
    }

    #[test]
    fn two_requests_for_one_level_are_rejected() {
        let err = Manifest::parse(parts(
            &[],
            &[
                (ScopeLevel::Web, Right::Read),
                (ScopeLevel::Web, Right::Write),
            ],
        ))
        .unwrap_err();
        assert_eq!(err.field, "permission_requests[1]");
    }

    #[test]
    fn too_many_scopes_are_rejected() {
        let many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("s{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(Manifest::parse(parts(&refs, &[])).is_err());
        assert!(Manifest::parse(parts(&refs[..MAX_SCOPES], &[])).is_ok());
    }

    #[test]
    fn manifests_compare_by_content_not_order() {
        let a = Manifest::parse(parts(
            &["x", "y"],
            &[
                (ScopeLevel::Web, Right::Read),
                (ScopeLevel::List, Right::Write),
            ],
        ));
        let b = Manifest::parse(parts(
            &["y", "x"],
            &[
                (ScopeLevel::List, Right::Write),
                (ScopeLevel::Web, Right::Read),
            ],
        ));
        assert_eq!(a.unwrap(), b.unwrap());
    }

    #[test]
    fn the_stricter_policy_is_user_and_app_unless_both_are_user_only() {
        use Policy::*;
        assert_eq!(UserOnly.stricter(UserOnly), UserOnly);
        assert_eq!(UserOnly.stricter(UserAndApp), UserAndApp);
        assert_eq!(UserAndApp.stricter(UserOnly), UserAndApp);
        assert_eq!(UserAndApp.stricter(UserAndApp), UserAndApp);
    }
}
