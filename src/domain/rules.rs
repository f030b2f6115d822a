//! Who may write what: the table of docs/rules.md §6 and the caller bounds of §5, as pure
//! functions over the caller, the acting user's roles and the facts a write touches.

use std::collections::BTreeSet;
use std::fmt;

use super::app::AppKind;
use super::consent::Consent;
use super::error::{Valid, ValidationError, quoted};
use super::external::{GroupAcl, Principal};
use super::ids::{AppId, ClientId, Environment, TenantId, UserId};
use super::names::named_enum;
use super::path::ResourcePath;
use super::rights::Right;
use super::tenant::{Role, RoleSet, Tenant};

named_enum! {
    /// What a calling client may do.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Capability {
        /// Call PermissionService.
        Query = "query",
        /// Call AdminService.
        Admin = "admin",
        /// Register applications and activate custom applications.
        AppManager = "app_manager",
        /// Name the acting user in `x-consentry-user`, or an application viewer.
        AssertUser = "assert_user",
    }
    /// Every capability.
    const ALL;
    /// The capability's name, in lower case as API.md and the CLI spell it.
    fn as_str;
    /// The capability named `name` (lower case), if any.
    fn from_name;
}

impl Capability {
    /// Parses a lower-case name.
    pub fn parse(field: &str, value: &str) -> Valid<Self> {
        Capability::from_name(value).ok_or_else(|| {
            ValidationError::new(
                field,
                format_args!(
                    "{} is not a capability; use query, admin, app_manager or assert_user",
                    quoted(value)
                ),
            )
        })
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(u8);

impl Capabilities {
    /// Every capability.
    pub fn all() -> Self {
        Self::of(Capability::ALL)
    }

    /// The set of `caps`.
    pub fn of(caps: impl IntoIterator<Item = Capability>) -> Self {
        Self(caps.into_iter().fold(0, |bits, c| bits | c.bit()))
    }

    /// Rebuilds a set from [`Self::bits`]; unknown bits are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & Self::all().0)
    }

    /// The set as bits, for storage.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// Whether `cap` is in the set.
    pub fn has(self, cap: Capability) -> bool {
        self.0 & cap.bit() != 0
    }

    /// Whether every capability of `self` is in `other`.
    pub fn is_within(self, other: Capabilities) -> bool {
        self.0 & !other.0 == 0
    }

    /// The capabilities, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL.into_iter().filter(move |c| self.has(*c))
    }
}

/// The tenants a client may act in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TenantBounds {
    /// Every tenant (`*`).
    All,
    /// Only these.
    Only(BTreeSet<TenantId>),
}

impl TenantBounds {
    /// Parses a list of tenant ids, where `*` alone means every tenant.
    pub fn parse(field: &str, tenants: &[String]) -> Valid<Self> {
        if tenants.iter().any(|t| t == "*") {
            if tenants.len() != 1 {
                return Err(ValidationError::new(
                    field,
                    "`*` means every tenant and cannot be combined with others",
                ));
            }
            return Ok(TenantBounds::All);
        }
        if tenants.is_empty() {
            return Err(ValidationError::new(
                field,
                "at least one tenant (or `*`) is required",
            ));
        }
        let mut set = BTreeSet::new();
        for (i, t) in tenants.iter().enumerate() {
            let item = format!("{field}[{i}]");
            if !set.insert(TenantId::parse(&item, t)?) {
                return Err(ValidationError::new(
                    item,
                    format_args!("{} is listed twice", quoted(t)),
                ));
            }
        }
        Ok(TenantBounds::Only(set))
    }

    /// Whether `tenant` is within the bounds.
    pub fn contains(&self, tenant: &TenantId) -> bool {
        match self {
            TenantBounds::All => true,
            TenantBounds::Only(set) => set.contains(tenant),
        }
    }

    /// Whether every tenant of `other` is within these bounds.
    pub fn covers(&self, other: &TenantBounds) -> bool {
        match (self, other) {
            (TenantBounds::All, _) => true,
            (TenantBounds::Only(_), TenantBounds::All) => false,
            (TenantBounds::Only(mine), TenantBounds::Only(theirs)) => theirs.is_subset(mine),
        }
    }

    /// The bounds as a list: `["*"]` or the tenant ids.
    pub fn to_strings(&self) -> Vec<String> {
        match self {
            TenantBounds::All => vec!["*".to_owned()],
            TenantBounds::Only(set) => set.iter().map(|t| t.to_string()).collect(),
        }
    }
}

/// An authenticated calling client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The client's id.
    pub client_id: ClientId,
    /// The tenants it may act in.
    pub tenants: TenantBounds,
    /// What it may do.
    pub capabilities: Capabilities,
}

/// The SHA-256 hash of a client key: what a key is stored and looked up by (keys are random, so
/// a plain hash suffices).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(pub [u8; 32]);

/// Hashed by its first eight bytes, as one `u64`: a SHA-256 digest is spread evenly already
/// (equal hashes still compare all 32 bytes).
impl std::hash::Hash for KeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        state.write_u64(u64::from_le_bytes([a, b, c, d, e, f, g, h]));
    }
}

impl KeyHash {
    /// The hash of `key`.
    pub fn of(key: &str) -> Self {
        let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
        Self(digest.as_ref().try_into().unwrap_or_default())
    }

    /// The hash in lower-case hex, as the store keeps it.
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = String::with_capacity(64);
        for byte in self.0 {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 0xf)]));
        }
        hex
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash of a key is not the key, but it is still nobody's business in a log.
        f.write_str("KeyHash(…)")
    }
}

/// Why a write or a call is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// The caller or the acting principal may not do this (`PERMISSION_DENIED`).
    #[error("{0}")]
    Denied(String),
    /// The write conflicts with the state of what it names, such as an environment that never
    /// changes or a consent not in force (`FAILED_PRECONDITION`).
    #[error("{0}")]
    FailedPrecondition(String),
}

fn denied(why: impl Into<String>) -> RuleError {
    RuleError::Denied(why.into())
}

impl Caller {
    /// Refuses unless the caller has `cap`.
    pub fn require(&self, cap: Capability) -> Result<(), RuleError> {
        if self.capabilities.has(cap) {
            Ok(())
        } else {
            Err(denied(format!(
                "client {} lacks the {cap} capability",
                self.client_id
            )))
        }
    }

    /// Refuses unless `tenant` is within the caller's bounds.
    pub fn require_tenant(&self, tenant: &TenantId) -> Result<(), RuleError> {
        if self.tenants.contains(tenant) {
            Ok(())
        } else {
            Err(denied(format!(
                "client {} may not act in tenant {tenant}",
                self.client_id
            )))
        }
    }

    /// Refuses unless the caller may act in every tenant (`*`).
    pub fn require_all_tenants(&self, what: &str) -> Result<(), RuleError> {
        match self.tenants {
            TenantBounds::All => Ok(()),
            TenantBounds::Only(_) => Err(denied(format!("{what} needs a client with `*` tenants"))),
        }
    }

    /// Refuses an acting user named by a client without `assert_user` (on every RPC).
    pub fn require_may_assert_user(&self) -> Result<(), RuleError> {
        if self.capabilities.has(Capability::AssertUser) {
            Ok(())
        } else {
            Err(denied(format!(
                "client {} lacks the assert_user capability and may not name a user in x-consentry-user",
                self.client_id
            )))
        }
    }

    /// Refuses a context token that names `user_id` or `on_behalf_of` unless the caller has
    /// `assert_user` (docs/rules.md §8): the token is a bearer credential speaking for that user.
    pub fn require_may_mint_for_user(&self) -> Result<(), RuleError> {
        if self.capabilities.has(Capability::AssertUser) {
            Ok(())
        } else {
            Err(denied(format!(
                "client {} lacks the assert_user capability, which a context token naming user_id or on_behalf_of needs (it speaks for that user); with query alone only app-only tokens are issued",
                self.client_id
            )))
        }
    }
}

/// Who a write acts as: the calling client, and the acting user with their roles in the tenant.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// The authenticated client.
    pub caller: &'a Caller,
    /// The acting user (`x-consentry-user`), if any.
    pub user: Option<&'a UserId>,
    /// The acting user's roles in the tenant written to (empty if unknown or none).
    pub roles: RoleSet,
}

impl Actor<'_> {
    /// The acting principal: `user:<x-consentry-user>` when given, else `client:<caller>`.
    pub fn principal(&self) -> Principal {
        match self.user {
            Some(u) => Principal::User(u.clone()),
            None => Principal::Client(self.caller.client_id.clone()),
        }
    }

    /// Whether the calling client has `app_manager`.
    pub fn is_app_manager(&self) -> bool {
        self.caller.capabilities.has(Capability::AppManager)
    }

    /// Whether the acting user is a tenant administrator.
    pub fn is_tenant_admin(&self) -> bool {
        self.user.is_some() && self.roles.is_admin()
    }

    /// Refuses unless the acting user is a tenant administrator.
    pub fn require_tenant_admin(&self, what: &str) -> Result<(), RuleError> {
        match self.user {
            _ if self.is_tenant_admin() => Ok(()),
            None => Err(denied(format!(
                "{what} needs an acting tenant administrator (x-consentry-user)"
            ))),
            Some(u) => Err(denied(format!(
                "{what} needs a tenant administrator; user {u} is not one"
            ))),
        }
    }
}

/// PutTenant on a new tenant: a client with `*` tenants.
pub fn create_tenant(caller: &Caller) -> Result<(), RuleError> {
    caller.require_all_tenants("creating a tenant")
}

/// PutTenant on an existing tenant: switching whitelisting needs an acting administrator; the
/// environment never changes.
pub fn update_tenant(
    existing: &Tenant,
    environment: &Environment,
    whitelisting_enabled: bool,
    actor: &Actor<'_>,
) -> Result<(), RuleError> {
    if existing.whitelisting_enabled != whitelisting_enabled {
        actor.require_tenant_admin("switching whitelisting")?;
    }
    if existing.environment != *environment {
        return Err(RuleError::FailedPrecondition(format!(
            "tenant {} is in the environment {:?}, which never changes; an environment is its own tenant",
            existing.tenant_id,
            existing.environment.as_str()
        )));
    }
    Ok(())
}

/// PutUser: a user without role changes needs only an admin client; giving or taking a role
/// needs an acting administrator, except the first administrator of a tenant that has none.
pub fn put_user(
    before: Option<RoleSet>,
    after: RoleSet,
    actor: &Actor<'_>,
    tenant_has_admin: bool,
) -> Result<(), RuleError> {
    if before.unwrap_or_default() == after || actor.is_tenant_admin() {
        return Ok(());
    }
    if !tenant_has_admin && after.is_admin() {
        return Ok(());
    }
    actor.require_tenant_admin("giving or taking a role")
}

/// DeleteUser: a user with no roles needs only an admin client; one with roles, an acting administrator.
pub fn delete_user(roles: RoleSet, actor: &Actor<'_>) -> Result<(), RuleError> {
    if roles.is_empty() {
        Ok(())
    } else {
        actor.require_tenant_admin("deleting a user who holds roles")
    }
}

/// PutApiUser and DeleteApiUser: an acting tenant administrator (docs/rules.md §8), whether
/// whitelisting is on or off.
pub fn manage_api_users(actor: &Actor<'_>) -> Result<(), RuleError> {
    actor.require_tenant_admin("making or unmaking an API user")
}

/// RegisterApp, UpdateAppManifest, UnregisterApp: `app_manager` on `*` tenants.
pub fn manage_apps(caller: &Caller) -> Result<(), RuleError> {
    caller.require(Capability::AppManager)?;
    caller.require_all_tenants("managing applications")
}

/// ApproveConsent: an acting administrator, or for a CUSTOM application's first activation a
/// client with `app_manager`. Returns who approved: the administrator, else the client.
pub fn approve_consent(
    kind: AppKind,
    ever_consented: bool,
    actor: &Actor<'_>,
) -> Result<Principal, RuleError> {
    if actor.is_tenant_admin() {
        return Ok(actor.principal());
    }
    // The app-manager path is the client's own: a named user is the acting principal, and must
    // then be an administrator.
    if actor.user.is_none()
        && app_manager_may_approve(kind, ever_consented)
        && actor.is_app_manager()
    {
        return Ok(actor.principal());
    }
    let what = match (kind, ever_consented) {
        (AppKind::Standard, _) => "approving a STANDARD app",
        (AppKind::Custom, true) => "re-approving or reactivating a CUSTOM app",
        (AppKind::Custom, false) => "activating a CUSTOM app without an app_manager client",
    };
    actor.require_tenant_admin(what).map(|()| actor.principal())
}

/// Whether an `app_manager` client (acting as itself) may approve: only a CUSTOM application's
/// first activation, before any consent was ever given in the tenant.
pub fn app_manager_may_approve(kind: AppKind, ever_consented: bool) -> bool {
    kind == AppKind::Custom && !ever_consented
}

/// RevokeConsent: an acting administrator, or for a CUSTOM application an `app_manager` client
/// acting as itself.
pub fn revoke_consent(kind: AppKind, actor: &Actor<'_>) -> Result<(), RuleError> {
    if actor.user.is_none() && kind == AppKind::Custom && actor.is_app_manager() {
        return Ok(());
    }
    actor.require_tenant_admin("revoking consent")
}

/// GrantAppRight and RevokeAppRight: an acting tenant administrator, or an acting user who owns
/// `resource`: holds FULL_CONTROL there, granted at it or inherited from an ancestor
/// (`owner_right` is the acting user's effective right at `resource`, docs/rules.md §2). A client
/// acting as itself is neither.
pub fn manage_app_right(
    actor: &Actor<'_>,
    resource: &ResourcePath,
    owner_right: Option<Right>,
) -> Result<(), RuleError> {
    if actor.is_tenant_admin() {
        return Ok(());
    }
    match actor.user {
        Some(_) if owner_right == Some(Right::FullControl) => Ok(()),
        Some(u) => Err(denied(format!(
            "managing app rights at {resource} needs a tenant administrator or FULL_CONTROL there; user {u} is neither"
        ))),
        None => Err(denied(format!(
            "managing app rights at {resource} needs an acting tenant administrator or site owner (x-consentry-user)"
        ))),
    }
}

/// GrantAppRight and RevokeAppRight need the application's consent in force in the tenant
/// (approved and not revoked; one waiting for re-approval is still in force).
pub fn consent_in_force<'c>(
    consent: Option<&'c Consent>,
    tenant: &TenantId,
    app: &AppId,
) -> Result<&'c Consent, RuleError> {
    consent.filter(|c| c.is_active()).ok_or_else(|| {
        RuleError::FailedPrecondition(format!(
            "app {app} has no consent in force in tenant {tenant}: app rights join a consent, so approve the app first (ApproveConsent)"
        ))
    })
}

/// CreatePermissionGroup: an acting user with PERMISSION_MANAGER; returns the creator, who
/// becomes a READ_WRITE manager.
pub fn create_group(actor: &Actor<'_>) -> Result<Principal, RuleError> {
    match actor.user {
        Some(_) if actor.roles.has(Role::PermissionManager) => Ok(actor.principal()),
        Some(u) => Err(denied(format!(
            "creating a permission group needs PERMISSION_MANAGER; user {u} lacks it"
        ))),
        None => Err(denied(
            "creating a permission group needs an acting user with PERMISSION_MANAGER (x-consentry-user)",
        )),
    }
}

/// Changing or deleting a group or its permissions: a READ_WRITE manager.
pub fn change_group(acl: &GroupAcl, actor: &Actor<'_>) -> Result<(), RuleError> {
    let who = actor.principal();
    if acl.can_write(&who) {
        Ok(())
    } else {
        Err(denied(format!(
            "{who} is not a READ_WRITE manager of the group"
        )))
    }
}

/// Granting or revoking a group's permission: a grantor of the group.
pub fn grant_external(acl: &GroupAcl, actor: &Actor<'_>) -> Result<(), RuleError> {
    let who = actor.principal();
    if acl.can_grant(&who) {
        Ok(())
    } else {
        Err(denied(format!("{who} is not a grantor of the group")))
    }
}

/// CreateClient: only within the caller's own tenants and capabilities (a client never creates
/// a stronger one).
pub fn create_client(
    caller: &Caller,
    tenants: &TenantBounds,
    capabilities: Capabilities,
) -> Result<(), RuleError> {
    if !caller.tenants.covers(tenants) {
        return Err(denied(format!(
            "client {} may not create a client with tenants beyond its own",
            caller.client_id
        )));
    }
    if !capabilities.is_within(caller.capabilities) {
        let extra: Vec<_> = capabilities
            .iter()
            .filter(|c| !caller.capabilities.has(*c))
            .map(Capability::as_str)
            .collect();
        return Err(denied(format!(
            "client {} may not create a client with capabilities it lacks ({})",
            caller.client_id,
            extra.join(", ")
        )));
    }
    Ok(())
}

/// RevokeClient: any client whose tenants lie within the caller's, whatever its capabilities
/// (revoking never escalates, and an incident must not need the strongest key).
pub fn revoke_client(caller: &Caller, tenants: &TenantBounds) -> Result<(), RuleError> {
    if caller.tenants.covers(tenants) {
        Ok(())
    } else {
        Err(denied(format!(
            "client {} may not revoke a client with tenants beyond its own",
            caller.client_id
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager_client() -> Caller {
        Caller {
            client_id: ClientId::parse("c", "appmgr").unwrap(),
            tenants: TenantBounds::All,
            capabilities: Capabilities::of([
                Capability::Admin,
                Capability::AppManager,
                Capability::AssertUser,
            ]),
        }
    }

    #[test]
    fn an_app_manager_naming_a_user_acts_as_that_user_who_must_be_an_administrator() {
        let caller = manager_client();
        let dave = UserId::parse("u", "dave").unwrap();
        let as_client = Actor {
            caller: &caller,
            user: None,
            roles: RoleSet::EMPTY,
        };
        let as_plain_user = Actor {
            caller: &caller,
            user: Some(&dave),
            roles: RoleSet::EMPTY,
        };
        let as_admin = Actor {
            caller: &caller,
            user: Some(&dave),
            roles: RoleSet::of([Role::UserAdmin]),
        };
        assert_eq!(
            approve_consent(AppKind::Custom, false, &as_client).unwrap(),
            Principal::Client(caller.client_id.clone())
        );
        assert!(matches!(
            approve_consent(AppKind::Custom, false, &as_plain_user),
            Err(RuleError::Denied(_))
        ));
        assert_eq!(
            approve_consent(AppKind::Custom, false, &as_admin).unwrap(),
            Principal::User(dave.clone())
        );
        assert!(revoke_consent(AppKind::Custom, &as_client).is_ok());
        assert!(matches!(
            revoke_consent(AppKind::Custom, &as_plain_user),
            Err(RuleError::Denied(_))
        ));
        assert!(revoke_consent(AppKind::Custom, &as_admin).is_ok());
    }
}
