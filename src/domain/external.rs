//! External permission groups: permissions that control access to functions of other
//! applications, stored here with who manages, grants and sees them (the Trivore ID seed).

use std::fmt;

use super::error::{Valid, ValidationError, quoted};
use super::ids::{AppId, ClientId, Description, ExternalId, GroupId, Name, PermissionId, UserId};
use super::names::named_enum;
use super::time::Timestamp;

/// The most principals a group's managers, grantors or visible-to list may hold.
pub const MAX_PRINCIPALS: usize = 256;

/// Someone who can be named in a group or an audit record: `user:<id>`, `client:<id>`, `app:<id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Principal {
    /// A tenant user.
    User(UserId),
    /// A calling client of consentry.
    Client(ClientId),
    /// An OAuth application.
    App(AppId),
}

impl Principal {
    /// Parses `kind:id`, naming `field` in the error.
    pub fn parse(field: &str, value: &str) -> Valid<Self> {
        let Some((kind, id)) = value.split_once(':') else {
            return Err(ValidationError::new(
                field,
                format_args!(
                    "{} is not a principal; use user:<id>, client:<id> or app:<id>",
                    quoted(value)
                ),
            ));
        };
        match kind {
            "user" => UserId::parse(field, id).map(Principal::User),
            "client" => ClientId::parse(field, id).map(Principal::Client),
            "app" => AppId::parse(field, id).map(Principal::App),
            _ => Err(ValidationError::new(
                field,
                format_args!(
                    "{} is not a principal kind; use user, client or app",
                    quoted(kind)
                ),
            )),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::User(id) => write!(f, "user:{id}"),
            Principal::Client(id) => write!(f, "client:{id}"),
            Principal::App(id) => write!(f, "app:{id}"),
        }
    }
}

named_enum! {
    /// What a group manager may do.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub enum ManagerAccess {
        /// See the group and its permissions.
        Read = "READ",
        /// Also change and delete them.
        ReadWrite = "READ_WRITE",
    }
    /// Every access.
    const ALL;
    /// The value's name.
    fn as_str;
    /// The access named `name`, if any.
    fn from_name;
}

/// Who manages, grants and sees one group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupAcl {
    /// Managers with their access.
    pub managers: Vec<(Principal, ManagerAccess)>,
    /// Who may grant and revoke the group's permissions.
    pub grantors: Vec<Principal>,
    /// Which clients and applications see the group's permissions in queries.
    pub visible_to: Vec<Principal>,
}

impl GroupAcl {
    /// Validates the lists: at most [`MAX_PRINCIPALS`] each, no principal twice in one list.
    pub fn new(
        managers: Vec<(Principal, ManagerAccess)>,
        grantors: Vec<Principal>,
        visible_to: Vec<Principal>,
    ) -> Valid<Self> {
        check_principals("managers", managers.iter().map(|(p, _)| p))?;
        check_principals("grantors", grantors.iter())?;
        check_principals("visible_to", visible_to.iter())?;
        Ok(Self {
            managers,
            grantors,
            visible_to,
        })
    }

    /// The access `principal` has as a manager, if any.
    pub fn manager_access(&self, principal: &Principal) -> Option<ManagerAccess> {
        self.managers
            .iter()
            .find(|(p, _)| p == principal)
            .map(|(_, a)| *a)
    }

    /// Makes `principal` a READ_WRITE manager (the creator of a group).
    pub fn add_read_write_manager(&mut self, principal: Principal) {
        match self.managers.iter_mut().find(|(p, _)| *p == principal) {
            Some(entry) => entry.1 = ManagerAccess::ReadWrite,
            None => self.managers.push((principal, ManagerAccess::ReadWrite)),
        }
    }

    /// Whether `principal` may change the group and its permissions.
    pub fn can_write(&self, principal: &Principal) -> bool {
        self.manager_access(principal) == Some(ManagerAccess::ReadWrite)
    }

    /// Whether `principal` may grant and revoke the group's permissions.
    pub fn can_grant(&self, principal: &Principal) -> bool {
        self.grantors.contains(principal)
    }

    /// Whether `viewer` sees the group's permissions in queries (docs/rules.md §4).
    pub fn is_visible_to(&self, viewer: &Viewer) -> bool {
        match viewer {
            Viewer::User(user) => self
                .manager_access(&Principal::User(user.clone()))
                .is_some(),
            Viewer::App(app) => self.visible_to.contains(&Principal::App(app.clone())),
            Viewer::Client(client) => self.visible_to.contains(&Principal::Client(client.clone())),
        }
    }
}

fn check_principals<'a>(
    field: &str,
    principals: impl ExactSizeIterator<Item = &'a Principal>,
) -> Valid<()> {
    if principals.len() > MAX_PRINCIPALS {
        return Err(ValidationError::new(
            field,
            format_args!(
                "lists {} principals; at most {MAX_PRINCIPALS} are allowed",
                principals.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, p) in principals.enumerate() {
        if !seen.insert(p) {
            return Err(ValidationError::new(
                format!("{field}[{i}]"),
                format_args!("{p} is listed twice"),
            ));
        }
    }
    Ok(())
}

/// Who is looking at external permissions, which decides what is visible (docs/rules.md §4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Viewer {
    /// An acting user (`x-consentry-user`): sees groups they manage with at least READ.
    User(UserId),
    /// An OAuth application the caller asks for: sees groups whose visible_to lists it.
    App(AppId),
    /// The calling client: sees groups whose visible_to lists it.
    Client(ClientId),
}

impl Viewer {
    /// The viewer as a principal.
    pub fn principal(&self) -> Principal {
        match self {
            Viewer::User(id) => Principal::User(id.clone()),
            Viewer::App(id) => Principal::App(id.clone()),
            Viewer::Client(id) => Principal::Client(id.clone()),
        }
    }
}

/// An external permission group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionGroup {
    /// The group's id.
    pub group_id: GroupId,
    /// Display name.
    pub name: Name,
    /// Free text.
    pub description: Description,
    /// Who manages, grants and sees it.
    pub acl: GroupAcl,
}

/// An external permission in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalPermission {
    /// The permission's id, unique in the tenant.
    pub permission_id: PermissionId,
    /// The group it belongs to.
    pub group_id: GroupId,
    /// Display name.
    pub name: Name,
    /// Free text.
    pub description: Description,
    /// The code the owning application knows it by; unique in the group.
    pub external_id: ExternalId,
}

/// A user's grant of an external permission, with what a query shows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantView {
    /// The permission.
    pub permission_id: PermissionId,
    /// Its group.
    pub group_id: GroupId,
    /// The group's name.
    pub group_name: String,
    /// The permission's name.
    pub name: String,
    /// The permission's external id.
    pub external_id: String,
    /// Who granted it.
    pub granted_by: Principal,
    /// When it was (last) granted.
    pub granted_at: Timestamp,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
}

impl GrantView {
    /// Whether the grant is in force at `now`: an expired grant is hidden, cached or not.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::principal as pr;

    fn acl() -> GroupAcl {
        GroupAcl::new(
            vec![
                (pr("user:reader"), ManagerAccess::Read),
                (pr("user:writer"), ManagerAccess::ReadWrite),
                (pr("client:ops"), ManagerAccess::ReadWrite),
            ],
            vec![pr("user:granter")],
            vec![pr("client:crm"), pr("app:portal")],
        )
        .unwrap()
    }

    #[test]
    fn principals_parse_and_print_round_trip() {
        for s in ["user:alice", "client:svc-1", "app:com.example:app"] {
            assert_eq!(pr(s).to_string(), s);
        }
        for bad in ["alice", "group:x", "user:", "user:a b", ":x"] {
            assert!(Principal::parse("p", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_user_sees_groups_they_manage_with_read_or_more() {
        let acl = acl();
        assert!(acl.is_visible_to(&Viewer::User(UserId::parse("u", "reader").unwrap())));
        assert!(acl.is_visible_to(&Viewer::User(UserId::parse("u", "writer").unwrap())));
        assert!(!acl.is_visible_to(&Viewer::User(UserId::parse("u", "granter").unwrap())));
        assert!(!acl.is_visible_to(&Viewer::User(UserId::parse("u", "crm").unwrap())));
    }

    #[test]
    fn clients_and_apps_see_groups_whose_visible_to_lists_them() {
        let acl = acl();
        assert!(acl.is_visible_to(&Viewer::Client(ClientId::parse("c", "crm").unwrap())));
        assert!(!acl.is_visible_to(&Viewer::Client(ClientId::parse("c", "portal").unwrap())));
        assert!(acl.is_visible_to(&Viewer::App(AppId::parse("a", "portal").unwrap())));
        assert!(!acl.is_visible_to(&Viewer::App(AppId::parse("a", "crm").unwrap())));
        // Managing a group is not being on its visible-to list, for queries.
        assert!(!acl.is_visible_to(&Viewer::Client(ClientId::parse("c", "ops").unwrap())));
    }

    #[test]
    fn write_and_grant_rights_follow_the_lists() {
        let acl = acl();
        assert!(acl.can_write(&pr("user:writer")));
        assert!(!acl.can_write(&pr("user:reader")));
        assert!(acl.can_write(&pr("client:ops")));
        assert!(acl.can_grant(&pr("user:granter")));
        assert!(!acl.can_grant(&pr("user:writer")));
    }

    #[test]
    fn duplicates_in_a_list_are_rejected() {
        let err = GroupAcl::new(vec![], vec![pr("user:a"), pr("user:a")], vec![]).unwrap_err();
        assert_eq!(err.field, "grantors[1]");
        let err = GroupAcl::new(
            vec![
                (pr("user:a"), ManagerAccess::Read),
                (pr("user:a"), ManagerAccess::ReadWrite),
            ],
            vec![],
            vec![],
        )
        .unwrap_err();
        assert_eq!(err.field, "managers[1]");
    }

    #[test]
    fn the_creator_becomes_a_read_write_manager() {
        let mut acl =
            GroupAcl::new(vec![(pr("user:a"), ManagerAccess::Read)], vec![], vec![]).unwrap();
        acl.add_read_write_manager(pr("user:a"));
        acl.add_read_write_manager(pr("user:b"));
        assert!(acl.can_write(&pr("user:a")));
        assert!(acl.can_write(&pr("user:b")));
        assert_eq!(acl.managers.len(), 2);
    }

    #[test]
    fn expired_grants_are_not_live() {
        let g = GrantView {
            permission_id: PermissionId::parse("p", "p").unwrap(),
            group_id: GroupId::parse("g", "g").unwrap(),
            group_name: "G".into(),
            name: "P".into(),
            external_id: "X".into(),
            granted_by: pr("user:a"),
            granted_at: Timestamp::from_micros(0),
            expires_at: Some(Timestamp::from_micros(100)),
        };
        assert!(g.is_live(Timestamp::from_micros(99)));
        assert!(!g.is_live(Timestamp::from_micros(100)));
        assert!(
            GrantView {
                expires_at: None,
                ..g
            }
            .is_live(Timestamp::from_micros(i64::MAX))
        );
    }
}

/// How a query names one external permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PermissionRef {
    /// By permission id.
    Id(PermissionId),
    /// By group and external id.
    External(GroupId, ExternalId),
}

/// A tenant's external permission groups and permissions: what the external queries need to
/// decide visibility and to describe a grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExternalCatalog {
    /// Groups by id.
    pub groups: std::collections::BTreeMap<GroupId, PermissionGroup>,
    /// Permissions by id.
    pub permissions: std::collections::HashMap<PermissionId, ExternalPermission>,
}

/// A user's grant of an external permission, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGrant {
    /// The permission.
    pub permission_id: PermissionId,
    /// Who granted it.
    pub granted_by: Principal,
    /// When.
    pub granted_at: Timestamp,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
}

impl ExternalCatalog {
    /// The grant described for a query, if its permission and group are in the catalog.
    fn view(&self, grant: &UserGrant) -> Option<(GrantView, &PermissionGroup)> {
        let permission = self.permissions.get(&grant.permission_id)?;
        let group = self.groups.get(&permission.group_id)?;
        Some((
            GrantView {
                permission_id: permission.permission_id.clone(),
                group_id: group.group_id.clone(),
                group_name: group.name.to_string(),
                name: permission.name.to_string(),
                external_id: permission.external_id.to_string(),
                granted_by: grant.granted_by.clone(),
                granted_at: grant.granted_at,
                expires_at: grant.expires_at,
            },
            group,
        ))
    }

    /// The user's live grants the viewer may see, in (group_id, permission_id) order, starting
    /// after `after` and at most `limit` of them; the flag says whether more follow.
    pub fn visible_grants(
        &self,
        grants: &[UserGrant],
        viewer: &Viewer,
        group: Option<&GroupId>,
        now: Timestamp,
        after: Option<(&GroupId, &PermissionId)>,
        limit: usize,
    ) -> (Vec<GrantView>, bool) {
        let mut visible: Vec<GrantView> = grants
            .iter()
            .filter_map(|g| self.view(g))
            .filter(|(view, grp)| {
                view.is_live(now)
                    && group.is_none_or(|want| *want == view.group_id)
                    && grp.acl.is_visible_to(viewer)
                    && after.is_none_or(|(ag, ap)| (&view.group_id, &view.permission_id) > (ag, ap))
            })
            .map(|(view, _)| view)
            .collect();
        visible
            .sort_by(|a, b| (&a.group_id, &a.permission_id).cmp(&(&b.group_id, &b.permission_id)));
        let more = visible.len() > limit;
        visible.truncate(limit);
        (visible, more)
    }

    /// The permission `which` names, if the viewer may see it.
    pub fn find_visible(
        &self,
        which: &PermissionRef,
        viewer: &Viewer,
    ) -> Option<&ExternalPermission> {
        let permission = match which {
            PermissionRef::Id(id) => self.permissions.get(id),
            PermissionRef::External(group, external) => self
                .permissions
                .values()
                .find(|p| p.group_id == *group && p.external_id == *external),
        }?;
        let group = self.groups.get(&permission.group_id)?;
        group.acl.is_visible_to(viewer).then_some(permission)
    }

    /// The user's grant of the permission, if any (expired or not).
    pub fn grant_of(&self, grants: &[UserGrant], permission: &PermissionId) -> Option<GrantView> {
        grants
            .iter()
            .find(|g| g.permission_id == *permission)
            .and_then(|g| self.view(g))
            .map(|(v, _)| v)
    }
}
