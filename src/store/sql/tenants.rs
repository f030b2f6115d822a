//! [`TenantWrites`]: writes of tenants, users, their API-user records and their rights.

use super::*;

#[async_trait]
impl TenantWrites for SqlStore {
    async fn put_tenant(&self, ctx: &WriteCtx, tenant: &Tenant) -> StoreResult<(Revision, bool)> {
        let id = &tenant.tenant_id;
        // Creating is for the caller alone to qualify for, and judged before the write lock: a
        // refused caller is answered at once unless the tenant exists (read without the lock),
        // when the write is an update, whose rules need the acting user's roles.
        let may_create = rules::create_tenant(&ctx.caller);
        if let Err(refused) = &may_create
            && tenant_in(&mut *self.conn().await?, id).await?.is_none()
        {
            return Err(refused.clone().into());
        }
        let mut w = self.begin_write().await?;
        let after = Some(json::tenant_value(tenant));
        let Some(existing) = tenant_in(w.conn(), id).await? else {
            may_create?;
            sqlx::query("INSERT INTO tenants (tenant_id, environment, whitelisting_enabled) VALUES ($1, $2, $3)")
                .bind(id.as_str())
                .bind(tenant.environment.as_str())
                .bind(i64::from(tenant.whitelisting_enabled))
                .execute(w.conn())
                .await
                .map_err(conflict(Entity::Tenant(id.clone())))?;
            let audit = Audit::new("PutTenant", Touched::tenant(id)).after(after);
            return Ok((w.commit_as(ctx, audit).await?, true));
        };
        let roles = acting_roles(w.conn(), ctx, id).await?;
        rules::update_tenant(
            &existing,
            &tenant.environment,
            tenant.whitelisting_enabled,
            &actor(ctx, roles),
        )?;
        sqlx::query("UPDATE tenants SET whitelisting_enabled = $2 WHERE tenant_id = $1")
            .bind(id.as_str())
            .bind(i64::from(tenant.whitelisting_enabled))
            .execute(w.conn())
            .await?;
        let before = Some(json::tenant_value(&existing));
        let audit = Audit::new("PutTenant", Touched::tenant(id))
            .before(before)
            .after(after);
        Ok((w.commit_as(ctx, audit).await?, false))
    }

    async fn put_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        roles: RoleSet,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        let before = roles_in(w.conn(), tenant, user).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        let admins: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM tenant_users WHERE tenant_id = $1 AND roles & 3 <> 0",
        )
        .bind(tenant.as_str())
        .fetch_one(w.conn())
        .await?;
        rules::put_user(before, roles, &actor(ctx, acting), admins > 0)?;
        sqlx::query(
            "INSERT INTO tenant_users (tenant_id, user_id, roles) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET roles = excluded.roles",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(i64::from(roles.bits()))
        .execute(w.conn())
        .await?;
        let audit = Audit::new("PutUser", Touched::user(tenant, user))
            .before(before.map(|r| json::user_value(user.as_str(), r)))
            .after(Some(json::user_value(user.as_str(), roles)));
        w.commit_as(ctx, audit).await
    }

    async fn delete_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        let roles = require_user(w.conn(), tenant, user).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        rules::delete_user(roles, &actor(ctx, acting))?;
        // What the cascade removes, for the audit event.
        let rights = sqlx::query("SELECT resource, right_level FROM user_rights WHERE tenant_id = $1 AND user_id = $2 ORDER BY resource")
            .bind(tenant.as_str())
            .bind(user.as_str())
            .fetch_all(w.conn())
            .await?
            .iter()
            .map(|r| Ok(json!({"resource": col::<String>(r, "resource")?, "right": json::right_from_code(col(r, "right_level")?)?.as_str()})))
            .collect::<StoreResult<Vec<_>>>()?;
        let grants = grants_value(w.conn(), tenant, "user_id", user.as_str()).await?;
        let api_user = api_user_in(w.conn(), tenant, user)
            .await?
            .map_or(Value::Null, |a| json::api_user_value(user.as_str(), &a));
        let principal = Principal::User(user.clone()).to_string();
        let entries = sqlx::query(
            "SELECT group_id, relation FROM group_principals WHERE tenant_id = $1 AND principal = $2 ORDER BY group_id, relation",
        )
        .bind(tenant.as_str())
        .bind(&principal)
        .fetch_all(w.conn())
        .await?
        .iter()
        .map(|r| Ok(json!({"group_id": col::<String>(r, "group_id")?, "relation": col::<String>(r, "relation")?})))
        .collect::<StoreResult<Vec<_>>>()?;
        sqlx::query("DELETE FROM group_principals WHERE tenant_id = $1 AND principal = $2")
            .bind(tenant.as_str())
            .bind(&principal)
            .execute(w.conn())
            .await?;
        sqlx::query("DELETE FROM tenant_users WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant.as_str())
            .bind(user.as_str())
            .execute(w.conn())
            .await?;
        let mut before = json::user_value(user.as_str(), roles);
        if let Value::Object(map) = &mut before {
            map.insert("rights".into(), Value::Array(rights));
            map.insert("grants".into(), grants);
            map.insert("group_entries".into(), Value::Array(entries));
            map.insert("api_user".into(), api_user);
        }
        let audit =
            Audit::new("DeleteUser", Touched::user_removed(tenant, user)).before(Some(before));
        w.commit_as(ctx, audit).await
    }

    async fn put_api_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        api_user: &ApiUser,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write_on_user(tenant, user).await?;
        let before = api_user_in(w.conn(), tenant, user).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        rules::manage_api_users(&actor(ctx, acting))?;
        sqlx::query(
            "INSERT INTO api_users (tenant_id, user_id, scopes, as_user) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, user_id) DO UPDATE SET scopes = excluded.scopes, as_user = excluded.as_user",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(json::strings_to_text(&api_user.scopes))
        .bind(i64::from(api_user.as_user))
        .execute(w.conn())
        .await?;
        let audit = Audit::new("PutApiUser", Touched::user(tenant, user))
            .before(before.map(|a| json::api_user_value(user.as_str(), &a)))
            .after(Some(json::api_user_value(user.as_str(), api_user)));
        w.commit_as(ctx, audit).await
    }

    async fn delete_api_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write_on_user(tenant, user).await?;
        let before = api_user_in(w.conn(), tenant, user)
            .await?
            .ok_or_else(|| StoreError::NotFound(Entity::ApiUser(tenant.clone(), user.clone())))?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        rules::manage_api_users(&actor(ctx, acting))?;
        sqlx::query("DELETE FROM api_users WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant.as_str())
            .bind(user.as_str())
            .execute(w.conn())
            .await?;
        let audit = Audit::new("DeleteApiUser", Touched::user(tenant, user))
            .before(Some(json::api_user_value(user.as_str(), &before)));
        w.commit_as(ctx, audit).await
    }

    async fn grant_user_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write_on_user(tenant, user).await?;
        let before = right_in(w.conn(), tenant, user, resource).await?;
        sqlx::query(
            "INSERT INTO user_rights (tenant_id, user_id, resource, right_level) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, user_id, resource) DO UPDATE SET right_level = excluded.right_level",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(resource.as_str())
        .bind(json::right_code(right))
        .execute(w.conn())
        .await?;
        let before = before.map(|r| json::right_value(user.as_str(), resource, r));
        let audit = Audit::new("GrantUserRight", Touched::user(tenant, user))
            .before(before)
            .after(Some(json::right_value(user.as_str(), resource, right)));
        w.commit_as(ctx, audit).await
    }

    async fn revoke_user_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write_on_user(tenant, user).await?;
        let held = match (right_in(w.conn(), tenant, user, resource).await?, right) {
            (None, _) => {
                return Err(StoreError::NotFound(Entity::UserRight(
                    user.clone(),
                    resource.clone(),
                    None,
                )));
            }
            (Some(held), wanted) if held != wanted => {
                return Err(StoreError::NotFound(Entity::UserRight(
                    user.clone(),
                    resource.clone(),
                    Some(wanted),
                )));
            }
            (Some(held), _) => held,
        };
        sqlx::query(
            "DELETE FROM user_rights WHERE tenant_id = $1 AND user_id = $2 AND resource = $3",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(resource.as_str())
        .execute(w.conn())
        .await?;
        let audit = Audit::new("RevokeUserRight", Touched::user(tenant, user))
            .before(Some(json::right_value(user.as_str(), resource, held)));
        w.commit_as(ctx, audit).await
    }
}

impl SqlStore {
    /// The write transaction for a change to `user` of `tenant`, once both are known to exist.
    async fn begin_write_on_user(&self, tenant: &TenantId, user: &UserId) -> StoreResult<WriteTx> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        require_user(w.conn(), tenant, user).await?;
        Ok(w)
    }
}
