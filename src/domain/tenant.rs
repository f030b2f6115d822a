//! Tenants, their users, roles and the rights users hold at resources.

use std::collections::HashMap;

use super::api_user::ApiUser;
use super::ids::{Environment, TenantId};
use super::names::named_enum;
use super::path::ResourcePath;
use super::rights::Right;

/// A tenant: one customer environment. Consent is given per tenant, so per environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// The tenant.
    pub tenant_id: TenantId,
    /// Free text such as `production`; never changes once the tenant exists.
    pub environment: Environment,
    /// Only whitelisted applications may act in the tenant.
    pub whitelisting_enabled: bool,
}

named_enum! {
    /// A role a tenant user holds. Roles grant no resource rights.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum Role {
        /// An administrator; implies every other role.
        GeneralAdmin = "GENERAL_ADMIN",
        /// An administrator.
        UserAdmin = "USER_ADMIN",
        /// May create external permission groups ("Manage External Permissions").
        PermissionManager = "PERMISSION_MANAGER",
        /// May act on behalf of managed users.
        Delegate = "DELEGATE",
    }
    /// Every role.
    const ALL;
    /// The role's name, as audit records and messages spell it.
    fn as_str;
    /// The role named `name` (`GENERAL_ADMIN`, …), if any.
    fn from_name;
}

impl Role {
    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The roles a user was given (as given: GENERAL_ADMIN's implications are applied on reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RoleSet(u8);

impl RoleSet {
    /// No roles.
    pub const EMPTY: RoleSet = RoleSet(0);

    /// The set of `roles`.
    pub fn of(roles: impl IntoIterator<Item = Role>) -> Self {
        Self(roles.into_iter().fold(0, |bits, r| bits | r.bit()))
    }

    /// Rebuilds a set from [`Self::bits`]; unknown bits are dropped.
    pub fn from_bits(bits: u8) -> Self {
        Self(bits & RoleSet::of(Role::ALL).0)
    }

    /// The set as bits, for storage.
    pub fn bits(self) -> u8 {
        self.0
    }

    /// The roles as given, in declaration order.
    pub fn roles(self) -> impl Iterator<Item = Role> {
        Role::ALL.into_iter().filter(move |r| self.0 & r.bit() != 0)
    }

    /// Whether no role was given.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The roles in effect: GENERAL_ADMIN implies every other role.
    pub fn effective(self) -> Self {
        if self.0 & Role::GeneralAdmin.bit() != 0 {
            RoleSet::of(Role::ALL)
        } else {
            self
        }
    }

    /// Whether the user holds `role`, directly or through GENERAL_ADMIN.
    pub fn has(self, role: Role) -> bool {
        self.effective().0 & role.bit() != 0
    }

    /// Whether the user is an administrator (GENERAL_ADMIN or USER_ADMIN).
    pub fn is_admin(self) -> bool {
        self.has(Role::GeneralAdmin) || self.has(Role::UserAdmin)
    }

    /// A role in effect for `self` that is not in effect for `other`, if any (`None`: every
    /// role of `self` is within `other`).
    pub fn role_missing_from(self, other: RoleSet) -> Option<Role> {
        let missing = RoleSet(self.effective().0 & !other.effective().0);
        missing.roles().next()
    }
}

/// What a check knows about one user in one tenant: their roles, rights and API-user record.
/// A user the tenant does not know is [`UserSnapshot::default`]: no roles, no rights, not an
/// API user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSnapshot {
    /// Whether the tenant knows the user.
    pub known: bool,
    /// The user's roles.
    pub roles: RoleSet,
    /// The level the user holds at each path (one per path).
    pub rights: HashMap<ResourcePath, Right>,
    /// The user's API-user record, if an administrator made them an API user.
    pub api_user: Option<ApiUser>,
}

impl UserSnapshot {
    /// A known user with `roles` and `rights`.
    pub fn new(roles: RoleSet, rights: impl IntoIterator<Item = (ResourcePath, Right)>) -> Self {
        Self {
            known: true,
            roles,
            rights: rights.into_iter().collect(),
            api_user: None,
        }
    }

    /// The same user, made an API user with `api_user`.
    pub fn with_api_user(self, api_user: ApiUser) -> Self {
        Self {
            api_user: Some(api_user),
            ..self
        }
    }

    /// The highest level held at `path` or any ancestor, if any.
    pub fn right_at(&self, path: &ResourcePath) -> Option<Right> {
        if self.rights.is_empty() {
            return None;
        }
        path.self_and_ancestors()
            .filter_map(|p| self.rights.get(p).copied())
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::path as p;

    #[test]
    fn general_admin_implies_every_role() {
        let ga = RoleSet::of([Role::GeneralAdmin]);
        for role in Role::ALL {
            assert!(ga.has(role));
        }
        assert!(ga.is_admin());
        assert_eq!(ga.roles().collect::<Vec<_>>(), [Role::GeneralAdmin]);
    }

    #[test]
    fn user_admin_is_an_administrator_without_other_roles() {
        let ua = RoleSet::of([Role::UserAdmin]);
        assert!(ua.is_admin());
        assert!(!ua.has(Role::Delegate));
        assert!(!ua.has(Role::PermissionManager));
        assert!(!RoleSet::of([Role::Delegate, Role::PermissionManager]).is_admin());
    }

    #[test]
    fn role_sets_round_trip_through_bits() {
        let set = RoleSet::of([Role::UserAdmin, Role::Delegate]);
        assert_eq!(RoleSet::from_bits(set.bits()), set);
        assert_eq!(RoleSet::from_bits(0xF0), RoleSet::EMPTY);
    }

    #[test]
    fn within_compares_effective_roles() {
        let ga = RoleSet::of([Role::GeneralAdmin]);
        let delegate = RoleSet::of([Role::Delegate]);
        assert_eq!(delegate.role_missing_from(ga), None);
        assert_eq!(ga.role_missing_from(delegate), Some(Role::GeneralAdmin));
        assert_eq!(RoleSet::EMPTY.role_missing_from(delegate), None);
        assert_eq!(RoleSet::of(Role::ALL).role_missing_from(ga), None);
        let all_but_general =
            RoleSet::of([Role::UserAdmin, Role::Delegate, Role::PermissionManager]);
        assert_eq!(
            ga.role_missing_from(all_but_general),
            Some(Role::GeneralAdmin)
        );
        assert_eq!(
            RoleSet::of([Role::Delegate]).role_missing_from(RoleSet::EMPTY),
            Some(Role::Delegate)
        );
    }

    #[test]
    fn rights_are_inherited_down_the_path_and_the_highest_wins() {
        let user = UserSnapshot::new(
            RoleSet::EMPTY,
            [
                (p("/hr"), Right::Read),
                (p("/hr/team"), Right::Manage),
                (p("/fin"), Right::Write),
            ],
        );
        assert_eq!(user.right_at(&p("/hr")), Some(Right::Read));
        assert_eq!(user.right_at(&p("/hr/other/x")), Some(Right::Read));
        assert_eq!(user.right_at(&p("/hr/team/docs")), Some(Right::Manage));
        assert_eq!(user.right_at(&p("/")), None);
        assert_eq!(user.right_at(&p("/hrx")), None);
        let top = UserSnapshot::new(
            RoleSet::EMPTY,
            [(p("/"), Right::Write), (p("/a/b"), Right::Read)],
        );
        assert_eq!(top.right_at(&p("/a/b/c")), Some(Right::Write));
    }
}
