//! Reads inside a connection or a write transaction: the facts the domain's rules need, and
//! the ACL rows of a group.

use super::*;

pub(super) async fn tenant_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
) -> StoreResult<Option<Tenant>> {
    let row = sqlx::query(
        "SELECT tenant_id, environment, whitelisting_enabled FROM tenants WHERE tenant_id = $1",
    )
    .bind(tenant.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(tenant_from).transpose()
}

pub(super) async fn require_tenant(
    conn: &mut AnyConnection,
    tenant: &TenantId,
) -> StoreResult<Tenant> {
    tenant_in(conn, tenant)
        .await?
        .ok_or_else(|| StoreError::NotFound(Entity::Tenant(tenant.clone())))
}

pub(super) async fn roles_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    user: &UserId,
) -> StoreResult<Option<RoleSet>> {
    let bits: Option<i64> =
        sqlx::query_scalar("SELECT roles FROM tenant_users WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant.as_str())
            .bind(user.as_str())
            .fetch_optional(conn)
            .await?;
    Ok(bits.map(roles_from))
}

pub(super) async fn require_user(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    user: &UserId,
) -> StoreResult<RoleSet> {
    roles_in(conn, tenant, user)
        .await?
        .ok_or_else(|| StoreError::NotFound(Entity::User(tenant.clone(), user.clone())))
}

/// A user's API-user record, if they are an API user.
pub(super) async fn api_user_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    user: &UserId,
) -> StoreResult<Option<ApiUser>> {
    let sql = format!(
        "SELECT {API_USER_COLUMNS} FROM api_users a WHERE a.tenant_id = $1 AND a.user_id = $2"
    );
    row_in(conn, &sql, tenant, user.as_str(), api_user_from).await
}

/// The acting user's roles in `tenant` (empty without an acting user or if unknown).
pub(super) async fn acting_roles(
    conn: &mut AnyConnection,
    ctx: &WriteCtx,
    tenant: &TenantId,
) -> StoreResult<RoleSet> {
    match &ctx.acting_user {
        Some(user) => Ok(roles_in(conn, tenant, user).await?.unwrap_or_default()),
        None => Ok(RoleSet::EMPTY),
    }
}

pub(super) fn actor(ctx: &WriteCtx, roles: RoleSet) -> Actor<'_> {
    Actor {
        caller: &ctx.caller,
        user: ctx.acting_user.as_ref(),
        roles,
    }
}

pub(super) async fn app_in(conn: &mut AnyConnection, app: &AppId) -> StoreResult<Option<App>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {APP_COLUMNS} FROM apps a WHERE a.app_id = $1"
    )))
    .bind(app.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(app_from).transpose()
}

pub(super) async fn require_app(conn: &mut AnyConnection, app: &AppId) -> StoreResult<App> {
    app_in(conn, app)
        .await?
        .ok_or_else(|| StoreError::NotFound(Entity::App(app.clone())))
}

pub(super) async fn consent_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    app: &AppId,
) -> StoreResult<Option<Consent>> {
    let sql = format!(
        "SELECT {CONSENT_COLUMNS} FROM consents c WHERE c.tenant_id = $1 AND c.app_id = $2"
    );
    row_in(conn, &sql, tenant, app.as_str(), consent_from).await
}

pub(super) async fn whitelist_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    app: &AppId,
) -> StoreResult<Option<WhitelistEntry>> {
    let sql = "SELECT allowed_scopes, content_access FROM whitelist_entries \
               WHERE tenant_id = $1 AND app_id = $2";
    row_in(conn, sql, tenant, app.as_str(), whitelist_from).await
}

/// The one row of `sql` for `tenant` and `id` (its two parameters), if any, read by `from`.
async fn row_in<T>(
    conn: &mut AnyConnection,
    sql: &str,
    tenant: &TenantId,
    id: &str,
    from: impl FnOnce(&AnyRow) -> StoreResult<Option<T>>,
) -> StoreResult<Option<T>> {
    let row = sqlx::query(AssertSqlSafe(sql.to_owned()))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(match row {
        Some(row) => from(&row)?,
        None => None,
    })
}

pub(super) async fn acl_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    group: &GroupId,
) -> StoreResult<GroupAcl> {
    let rows = sqlx::query(
        "SELECT relation, principal, access FROM group_principals WHERE tenant_id = $1 AND group_id = $2 \
         ORDER BY relation, position",
    )
    .bind(tenant.as_str())
    .bind(group.as_str())
    .fetch_all(conn)
    .await?;
    let mut acl = GroupAcl::default();
    for row in &rows {
        let principal = stored(Principal::parse(
            "principal",
            &col::<String>(row, "principal")?,
        ))?;
        match col::<String>(row, "relation")?.as_str() {
            "manager" => {
                let access = if col::<i64>(row, "access")? == 2 {
                    ManagerAccess::ReadWrite
                } else {
                    ManagerAccess::Read
                };
                acl.managers.push((principal, access));
            }
            "grantor" => acl.grantors.push(principal),
            _ => acl.visible_to.push(principal),
        }
    }
    Ok(acl)
}

pub(super) async fn group_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    group: &GroupId,
) -> StoreResult<Option<PermissionGroup>> {
    let row = sqlx::query(
        "SELECT name, description FROM permission_groups WHERE tenant_id = $1 AND group_id = $2",
    )
    .bind(tenant.as_str())
    .bind(group.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(PermissionGroup {
        group_id: group.clone(),
        name: stored(Name::parse("name", &col::<String>(&row, "name")?))?,
        description: stored(Description::parse(
            "description",
            &col::<String>(&row, "description")?,
        ))?,
        acl: acl_in(conn, tenant, group).await?,
    }))
}

pub(super) async fn require_group(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    group: &GroupId,
) -> StoreResult<PermissionGroup> {
    group_in(conn, tenant, group)
        .await?
        .ok_or_else(|| StoreError::NotFound(Entity::Group(tenant.clone(), group.clone())))
}

pub(super) async fn write_acl(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    group: &GroupId,
    acl: &GroupAcl,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM group_principals WHERE tenant_id = $1 AND group_id = $2")
        .bind(tenant.as_str())
        .bind(group.as_str())
        .execute(&mut *conn)
        .await?;
    let managers = acl.managers.iter().map(|(p, a)| {
        (
            "manager",
            p,
            if *a == ManagerAccess::ReadWrite { 2 } else { 1 },
        )
    });
    let grantors = acl.grantors.iter().map(|p| ("grantor", p, 0));
    let visible = acl.visible_to.iter().map(|p| ("visible_to", p, 0));
    for (position, (relation, principal, access)) in
        managers.chain(grantors).chain(visible).enumerate()
    {
        sqlx::query(
            "INSERT INTO group_principals (tenant_id, group_id, relation, principal, access, position) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant.as_str())
        .bind(group.as_str())
        .bind(relation)
        .bind(principal.to_string())
        .bind(access)
        .bind(i64::try_from(position).unwrap_or(i64::MAX))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub(super) async fn permission_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    permission: &PermissionId,
) -> StoreResult<Option<ExternalPermission>> {
    let row = sqlx::query(
        "SELECT permission_id, group_id, name, description, external_id FROM external_permissions \
         WHERE tenant_id = $1 AND permission_id = $2",
    )
    .bind(tenant.as_str())
    .bind(permission.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(permission_from).transpose()
}

pub(super) async fn require_permission(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    permission: &PermissionId,
) -> StoreResult<ExternalPermission> {
    permission_in(conn, tenant, permission)
        .await?
        .ok_or_else(|| StoreError::NotFound(Entity::Permission(tenant.clone(), permission.clone())))
}

/// A group's permissions, ordered by id.
pub(super) async fn permissions_of(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    group: &GroupId,
) -> StoreResult<Vec<ExternalPermission>> {
    sqlx::query(
        "SELECT permission_id, group_id, name, description, external_id FROM external_permissions \
         WHERE tenant_id = $1 AND group_id = $2 ORDER BY permission_id",
    )
    .bind(tenant.as_str())
    .bind(group.as_str())
    .fetch_all(conn)
    .await?
    .iter()
    .map(permission_from)
    .collect()
}

/// Grants of one user (or of one permission) as audit values, before a cascade removes them.
pub(super) async fn grants_value(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    column: &'static str,
    id: &str,
) -> StoreResult<Value> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "SELECT user_id, permission_id, granted_by, granted_at, expires_at FROM external_grants \
         WHERE tenant_id = $1 AND {column} = $2 ORDER BY user_id, permission_id"
    )))
    .bind(tenant.as_str())
    .bind(id)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(json::grant_value(
                &col::<String>(r, "user_id")?,
                &col::<String>(r, "permission_id")?,
                &col::<String>(r, "granted_by")?,
                Timestamp::from_micros(col(r, "granted_at")?),
                col::<Option<i64>>(r, "expires_at")?.map(Timestamp::from_micros),
            ))
        })
        .collect::<StoreResult<Vec<_>>>()
        .map(Value::Array)
}

/// The revision committed so far, read inside the caller's transaction.
pub(super) async fn revision_in(conn: &mut AnyConnection) -> StoreResult<Revision> {
    let row = sqlx::query(AssertSqlSafe(format!("SELECT {REVISION_COLUMNS}")))
        .fetch_one(conn)
        .await?;
    revision_from(&row)
}

/// The tag the store records for revision `number`: `None` when it records no such revision
/// (none was committed, or its audit event is gone), [`Tag::NONE`] for revision 0 and for
/// revisions from before tags were recorded.
pub(super) async fn tag_in(conn: &mut AnyConnection, number: u64) -> StoreResult<Option<Tag>> {
    if number == 0 {
        return Ok(Some(Tag::NONE));
    }
    let tag: Option<Option<i64>> =
        sqlx::query_scalar("SELECT tag FROM audit_events WHERE revision = $1")
            .bind(rev_i64(Revision::number(number)))
            .fetch_optional(conn)
            .await?;
    Ok(tag.map(|t| revision_of(0, t).tag()))
}

/// The right a user holds exactly at `resource`, if any.
pub(super) async fn right_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    user: &UserId,
    resource: &ResourcePath,
) -> StoreResult<Option<Right>> {
    let code: Option<i64> = sqlx::query_scalar(
        "SELECT right_level FROM user_rights WHERE tenant_id = $1 AND user_id = $2 AND resource = $3",
    )
    .bind(tenant.as_str())
    .bind(user.as_str())
    .bind(resource.as_str())
    .fetch_optional(conn)
    .await?;
    code.map(json::right_from_code).transpose()
}

/// A user's grant of one external permission: who granted it, when, and until when.
pub(super) struct HeldGrant {
    pub(super) granted_by: String,
    pub(super) granted_at: Timestamp,
    pub(super) expires_at: Option<Timestamp>,
}

impl HeldGrant {
    /// The grant as an audit value.
    pub(super) fn value(&self, user: &UserId, permission: &PermissionId) -> Value {
        json::grant_value(
            user.as_str(),
            permission.as_str(),
            &self.granted_by,
            self.granted_at,
            self.expires_at,
        )
    }
}

/// A user's grant of `permission`, if they hold one.
pub(super) async fn grant_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    user: &UserId,
    permission: &PermissionId,
) -> StoreResult<Option<HeldGrant>> {
    let row = sqlx::query(
        "SELECT granted_by, granted_at, expires_at FROM external_grants WHERE tenant_id = $1 AND user_id = $2 AND permission_id = $3",
    )
    .bind(tenant.as_str())
    .bind(user.as_str())
    .bind(permission.as_str())
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(HeldGrant {
            granted_by: col(&r, "granted_by")?,
            granted_at: Timestamp::from_micros(col(&r, "granted_at")?),
            expires_at: col::<Option<i64>>(&r, "expires_at")?.map(Timestamp::from_micros),
        })
    })
    .transpose()
}
