//! The example world of `consentry serve --demo`: `demo/world.json`, loaded through the store's
//! ordinary audited writes, with a client whose key the README's examples use.

use serde::Deserialize;

use crate::domain::{
    ApiUser, AppId, AppKind, Caller, Capabilities, Capability, ClientId, ContentAccess,
    Description, Environment, ExternalId, ExternalPermission, GroupAcl, GroupId, KeyHash,
    ManagerAccess, Manifest, ManifestParts, Name, PermissionId, PermissionRequest, Policy,
    Principal, ResolvedRequest, ResourcePath, Right, Role, RoleSet, RunAs, ScopeLevel, Tenant,
    TenantBounds, TenantId, Timestamp, UserId, WhitelistEntry,
};
use crate::store::occupancy::Occupancy;
use crate::store::{GroupSpec, Store, StoreError, WriteCtx};

/// The demo world, compiled in.
pub const WORLD: &str = include_str!("../demo/world.json");

#[derive(Deserialize)]
struct World {
    client_id: String,
    key: String,
    /// The demo client's capabilities: every one, so that one key runs every README example
    /// (minting tokens for users included, which needs `assert_user`).
    capabilities: Vec<String>,
    tenants: Vec<TenantJson>,
    users: Vec<UserJson>,
    rights: Vec<RightJson>,
    api_users: Vec<ApiUserJson>,
    apps: Vec<AppJson>,
    consents: Vec<ConsentJson>,
    whitelist: Vec<WhitelistJson>,
    groups: Vec<GroupJson>,
    permissions: Vec<PermissionJson>,
    grants: Vec<GrantJson>,
}

#[derive(Deserialize)]
struct TenantJson {
    tenant_id: String,
    environment: String,
    whitelisting_enabled: bool,
}

#[derive(Deserialize)]
struct UserJson {
    tenant_id: String,
    user_id: String,
    roles: Vec<String>,
    by: String,
}

#[derive(Deserialize)]
struct RightJson {
    tenant_id: String,
    user_id: String,
    resource: String,
    right: String,
}

#[derive(Deserialize)]
struct ApiUserJson {
    tenant_id: String,
    user_id: String,
    scopes: Vec<String>,
    as_user: bool,
    by: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ManifestJson {
    run_as: Option<String>,
    webhooks: bool,
    database_mirroring: bool,
    scopes: Vec<String>,
    permission_requests: Vec<RequestJson>,
    allow_app_only: bool,
    policy: Option<String>,
}

#[derive(Deserialize)]
struct RequestJson {
    scope_level: String,
    right: String,
}

#[derive(Deserialize)]
struct AppJson {
    app_id: String,
    name: String,
    kind: String,
    manifest: ManifestJson,
    later_manifest: Option<ManifestJson>,
}

#[derive(Deserialize)]
struct ResolvedJson {
    scope_level: String,
    right: String,
    resource: String,
}

#[derive(Deserialize)]
struct ConsentJson {
    tenant_id: String,
    app_id: String,
    approver: String,
    resolved: Vec<ResolvedJson>,
}

#[derive(Deserialize)]
struct WhitelistJson {
    tenant_id: String,
    app_id: String,
    allowed_scopes: Vec<String>,
    content_access: String,
    by: String,
}

#[derive(Deserialize)]
struct ManagerJson {
    principal: String,
    access: String,
}

#[derive(Deserialize)]
struct GroupJson {
    tenant_id: String,
    group_id: String,
    name: String,
    description: String,
    creator: String,
    managers: Vec<ManagerJson>,
    grantors: Vec<String>,
    visible_to: Vec<String>,
}

#[derive(Deserialize)]
struct PermissionJson {
    tenant_id: String,
    group_id: String,
    permission_id: String,
    name: String,
    description: String,
    external_id: String,
    by: String,
}

#[derive(Deserialize)]
struct GrantJson {
    tenant_id: String,
    user_id: String,
    permission_id: String,
    by: String,
}

fn right(s: &str) -> anyhow::Result<Right> {
    Right::from_name(s).ok_or_else(|| anyhow::anyhow!("unknown right {s}"))
}

fn level(s: &str) -> anyhow::Result<ScopeLevel> {
    ScopeLevel::from_name(s).ok_or_else(|| anyhow::anyhow!("unknown level {s}"))
}

/// An optional named value: absent is the default; a name that is not one is an error.
fn named<T: Default>(
    name: Option<&str>,
    what: &str,
    from_name: fn(&str) -> Option<T>,
) -> anyhow::Result<T> {
    match name {
        None => Ok(T::default()),
        Some(n) => from_name(n).ok_or_else(|| anyhow::anyhow!("unknown {what} {n}")),
    }
}

fn manifest(m: &ManifestJson) -> anyhow::Result<Manifest> {
    Ok(Manifest::parse(ManifestParts {
        run_as: named(m.run_as.as_deref(), "run_as", RunAs::from_name)?,
        webhooks: m.webhooks,
        database_mirroring: m.database_mirroring,
        scopes: m.scopes.clone(),
        permission_requests: m
            .permission_requests
            .iter()
            .map(|r| {
                Ok(PermissionRequest {
                    scope_level: level(&r.scope_level)?,
                    right: right(&r.right)?,
                })
            })
            .collect::<anyhow::Result<_>>()?,
        allow_app_only: m.allow_app_only,
        policy: named(m.policy.as_deref(), "policy", Policy::from_name)?,
    })?)
}

/// The key of the demo client (fixed, so the README's examples can name it).
pub fn key() -> anyhow::Result<String> {
    let world: World = serde_json::from_str(WORLD)?;
    Ok(world.key)
}

/// Why `--demo` refuses a database: the demo writes a client with every capability on every
/// tenant, whose key is printed in the README, so it only ever writes to a database of its own.
#[derive(Debug, thiserror::Error)]
#[error(
    "--demo refuses {database}: {why}. The demo writes a client with every capability on every tenant whose key is public (README), so it only runs on a database of its own: point --database-url (DATABASE_URL) at a new SQLite file, e.g. sqlite://demo.db, or serve without --demo"
)]
pub struct DemoRefused {
    /// The database, without its password.
    pub database: String,
    /// What it holds that the demo did not write.
    pub why: String,
}

/// Whether `--demo` may write to a database that holds `occupancy`: one with nothing in it
/// (no tables, or consentry's schema and no write), or the demo's own, whose first write (audit
/// events are never updated or deleted) created the demo client, which still has the demo key.
pub fn may_load(occupancy: &Occupancy, database: &str) -> anyhow::Result<()> {
    let world: World = serde_json::from_str(WORLD)?;
    let own_target = format!("client:{}", world.client_id);
    let why = match occupancy {
        Occupancy::Bare | Occupancy::Unwritten => return Ok(()),
        Occupancy::Written(first)
            if first.action == "CreateClient" && first.target == own_target =>
        {
            if first.live_key_hash.as_deref() == Some(KeyHash::of(&world.key).hex().as_str()) {
                return Ok(());
            }
            format!(
                "its first write created the client `{}`, which is revoked or no longer has the demo key",
                world.client_id
            )
        }
        Occupancy::Written(first) => format!(
            "it holds data the demo did not write (its first write: {} of {} by {})",
            first.action, first.target, first.actor
        ),
        Occupancy::Foreign(tables) => format!(
            "it holds tables that are not consentry's ({})",
            tables.join(", ")
        ),
    };
    Err(DemoRefused {
        database: database.to_owned(),
        why,
    }
    .into())
}

/// Loads the demo world unless its client already exists; returns the key that works for it.
pub async fn load(store: &dyn Store) -> anyhow::Result<String> {
    load_json(store, WORLD).await
}

/// Loads the world that `json` describes, in the form of `demo/world.json` (what [`load`] does
/// with the compiled-in world); a malformed world is an error, never a panic.
pub async fn load_json(store: &dyn Store, json: &str) -> anyhow::Result<String> {
    let world: World = serde_json::from_str(json)?;
    let client_id = ClientId::parse("client_id", &world.client_id)?;
    let capabilities = world
        .capabilities
        .iter()
        .map(|c| Capability::parse("capabilities", c))
        .collect::<Result<Vec<_>, _>>()?;
    let caller = Caller {
        client_id: client_id.clone(),
        tenants: TenantBounds::All,
        capabilities: Capabilities::of(capabilities),
    };
    match store
        .create_client(
            None,
            &client_id,
            &caller.tenants,
            caller.capabilities,
            &KeyHash::of(&world.key).hex(),
        )
        .await
    {
        Ok(_) => {}
        Err(StoreError::AlreadyExists(_)) => {
            if store
                .client_by_key_hash(&KeyHash::of(&world.key).hex())
                .await?
                .is_none()
            {
                anyhow::bail!(
                    "the demo client exists but its key was revoked; use a fresh database for --demo"
                );
            }
            return Ok(world.key);
        }
        Err(e) => return Err(e.into()),
    }
    let as_user = |user: Option<&str>| -> anyhow::Result<WriteCtx> {
        Ok(WriteCtx {
            caller: caller.clone(),
            acting_user: user.map(|u| UserId::parse("user", u)).transpose()?,
            at: Timestamp::now(),
        })
    };
    let client = as_user(None)?;
    for t in &world.tenants {
        let tenant = Tenant {
            tenant_id: TenantId::parse("tenant_id", &t.tenant_id)?,
            environment: Environment::parse("environment", &t.environment)?,
            whitelisting_enabled: t.whitelisting_enabled,
        };
        store.put_tenant(&client, &tenant).await?;
    }
    for u in &world.users {
        let roles = u
            .roles
            .iter()
            .map(|r| Role::from_name(r).ok_or_else(|| anyhow::anyhow!("unknown role {r}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let tenant = TenantId::parse("tenant_id", &u.tenant_id)?;
        store
            .put_user(
                &as_user(Some(&u.by))?,
                &tenant,
                &UserId::parse("user_id", &u.user_id)?,
                RoleSet::of(roles),
            )
            .await?;
    }
    for r in &world.rights {
        let tenant = TenantId::parse("tenant_id", &r.tenant_id)?;
        let user = UserId::parse("user_id", &r.user_id)?;
        store
            .grant_user_right(
                &client,
                &tenant,
                &user,
                &ResourcePath::parse("resource", &r.resource)?,
                right(&r.right)?,
            )
            .await?;
    }
    for u in &world.api_users {
        let api_user = ApiUser {
            scopes: crate::domain::app::parse_scope_set("scopes", &u.scopes)?,
            as_user: u.as_user,
        };
        store
            .put_api_user(
                &as_user(Some(&u.by))?,
                &TenantId::parse("tenant_id", &u.tenant_id)?,
                &UserId::parse("user_id", &u.user_id)?,
                &api_user,
            )
            .await?;
    }
    for a in &world.apps {
        let kind = if a.kind == "CUSTOM" {
            AppKind::Custom
        } else {
            AppKind::Standard
        };
        let app_id = AppId::parse("app_id", &a.app_id)?;
        store
            .register_app(
                &client,
                &app_id,
                &Name::parse("name", &a.name)?,
                kind,
                &manifest(&a.manifest)?,
            )
            .await?;
    }
    for c in &world.consents {
        let resolved = c
            .resolved
            .iter()
            .map(|r| {
                Ok(ResolvedRequest {
                    scope_level: level(&r.scope_level)?,
                    right: right(&r.right)?,
                    resource: ResourcePath::parse("resource", &r.resource)?,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let tenant = TenantId::parse("tenant_id", &c.tenant_id)?;
        let app_id = AppId::parse("app_id", &c.app_id)?;
        store
            .approve_consent(&as_user(Some(&c.approver))?, &tenant, &app_id, 1, resolved)
            .await?;
    }
    // Escalations after approval, so the world shows a re-approval.
    for a in &world.apps {
        if let Some(later) = &a.later_manifest {
            store
                .update_app_manifest(
                    &client,
                    &AppId::parse("app_id", &a.app_id)?,
                    &manifest(later)?,
                )
                .await?;
        }
    }
    for w in &world.whitelist {
        let entry = WhitelistEntry {
            allowed_scopes: crate::domain::app::parse_scope_set(
                "allowed_scopes",
                &w.allowed_scopes,
            )?,
            content_access: if w.content_access == "ON_BEHALF_OF_MANAGED_USERS" {
                ContentAccess::OnBehalfOfManagedUsers
            } else {
                ContentAccess::OwnContent
            },
        };
        let tenant = TenantId::parse("tenant_id", &w.tenant_id)?;
        store
            .put_whitelist_entry(
                &as_user(Some(&w.by))?,
                &tenant,
                &AppId::parse("app_id", &w.app_id)?,
                &entry,
            )
            .await?;
    }
    for g in &world.groups {
        let managers = g
            .managers
            .iter()
            .map(|m| {
                let access = if m.access == "READ_WRITE" {
                    ManagerAccess::ReadWrite
                } else {
                    ManagerAccess::Read
                };
                Ok((Principal::parse("principal", &m.principal)?, access))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let principals = |list: &[String]| {
            list.iter()
                .map(|p| Principal::parse("principal", p))
                .collect::<Result<Vec<_>, _>>()
        };
        let spec = GroupSpec {
            group_id: GroupId::parse("group_id", &g.group_id)?,
            name: Name::parse("name", &g.name)?,
            description: Description::parse("description", &g.description)?,
            acl: GroupAcl::new(
                managers,
                principals(&g.grantors)?,
                principals(&g.visible_to)?,
            )?,
        };
        store
            .create_group(
                &as_user(Some(&g.creator))?,
                &TenantId::parse("tenant_id", &g.tenant_id)?,
                spec,
            )
            .await?;
    }
    for p in &world.permissions {
        let permission = ExternalPermission {
            permission_id: PermissionId::parse("permission_id", &p.permission_id)?,
            group_id: GroupId::parse("group_id", &p.group_id)?,
            name: Name::parse("name", &p.name)?,
            description: Description::parse("description", &p.description)?,
            external_id: ExternalId::parse("external_id", &p.external_id)?,
        };
        store
            .create_permission(
                &as_user(Some(&p.by))?,
                &TenantId::parse("tenant_id", &p.tenant_id)?,
                &permission,
            )
            .await?;
    }
    for g in &world.grants {
        let tenant = TenantId::parse("tenant_id", &g.tenant_id)?;
        let user = UserId::parse("user_id", &g.user_id)?;
        let permission = PermissionId::parse("permission_id", &g.permission_id)?;
        store
            .grant_external(&as_user(Some(&g.by))?, &tenant, &user, &permission, None)
            .await?;
    }
    Ok(world.key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn manifest_of(json: serde_json::Value) -> anyhow::Result<Manifest> {
        manifest(&serde_json::from_value(json).unwrap())
    }

    #[test]
    fn the_demo_writes_only_to_an_empty_database_or_its_own() {
        use crate::store::occupancy::FirstWrite;
        let first = |action: &str, target: &str, key: Option<&str>| {
            Occupancy::Written(FirstWrite {
                action: action.to_owned(),
                target: target.to_owned(),
                actor: "(cli)".to_owned(),
                live_key_hash: key.map(|k| KeyHash::of(k).hex()),
            })
        };
        let demo_key = key().unwrap();
        for ok in [
            Occupancy::Bare,
            Occupancy::Unwritten,
            first("CreateClient", "client:demo", Some(&demo_key)),
        ] {
            may_load(&ok, "db").unwrap();
        }
        for (refused, why) in [
            (first("CreateClient", "client:demo", None), "revoked"),
            (
                first("CreateClient", "client:demo", Some("other")),
                "revoked",
            ),
            (first("CreateClient", "client:ops", None), "did not write"),
            (first("PutTenant", "tenant:acme", None), "did not write"),
            (
                Occupancy::Foreign(vec!["customers".to_owned()]),
                "customers",
            ),
        ] {
            let e = may_load(&refused, "db").unwrap_err().to_string();
            assert!(
                e.starts_with("--demo refuses db: ") && e.contains(why),
                "{e}"
            );
        }
    }

    #[test]
    fn a_name_the_world_misspells_is_an_error_not_a_default() {
        let m = manifest_of(serde_json::json!({"run_as": "SYSTEM_USER", "policy": "USER_ONLY"}))
            .unwrap();
        assert_eq!((m.run_as, m.policy), (RunAs::SystemUser, Policy::UserOnly));
        let m = manifest_of(serde_json::json!({})).unwrap();
        assert_eq!(
            (m.run_as, m.policy),
            (RunAs::UserContext, Policy::UserAndApp)
        );
        for bad in [
            serde_json::json!({"run_as": "SYSTEM_USR"}),
            serde_json::json!({"policy": "APP_ONLY"}),
            serde_json::json!({"permission_requests": [{"scope_level": "SITE", "right": "READ"}]}),
            serde_json::json!({"permission_requests": [{"scope_level": "WEB", "right": "ALL"}]}),
        ] {
            assert!(manifest_of(bad.clone()).is_err(), "{bad}");
        }
    }
}
