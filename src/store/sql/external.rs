//! [`ExternalWrites`]: writes of external permission groups, their permissions and grants.

use super::*;

#[async_trait]
impl ExternalWrites for SqlStore {
    async fn create_group(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        spec: GroupSpec,
    ) -> StoreResult<(Revision, PermissionGroup)> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        let creator = rules::create_group(&actor(ctx, acting))?;
        if group_in(w.conn(), tenant, &spec.group_id).await?.is_some() {
            return Err(StoreError::AlreadyExists(Entity::Group(
                tenant.clone(),
                spec.group_id.clone(),
            )));
        }
        let mut acl = spec.acl;
        acl.add_read_write_manager(creator);
        let group = PermissionGroup {
            group_id: spec.group_id,
            name: spec.name,
            description: spec.description,
            acl,
        };
        sqlx::query("INSERT INTO permission_groups (tenant_id, group_id, name, description) VALUES ($1, $2, $3, $4)")
            .bind(tenant.as_str())
            .bind(group.group_id.as_str())
            .bind(group.name.as_str())
            .bind(group.description.as_str())
            .execute(w.conn())
            .await
            .map_err(conflict(Entity::Group(tenant.clone(), group.group_id.clone())))?;
        write_acl(w.conn(), tenant, &group.group_id, &group.acl).await?;
        let audit = Audit::new(
            "CreatePermissionGroup",
            Touched::group(tenant, &group.group_id),
        )
        .after(Some(json::group_value(&group)));
        Ok((w.commit_as(ctx, audit).await?, group))
    }

    async fn update_group(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        spec: GroupSpec,
    ) -> StoreResult<(Revision, GroupWithPermissions)> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        let old = require_group(w.conn(), tenant, &spec.group_id).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        rules::change_group(&old.acl, &actor(ctx, acting))?;
        let group = PermissionGroup {
            group_id: spec.group_id,
            name: spec.name,
            description: spec.description,
            acl: spec.acl,
        };
        sqlx::query("UPDATE permission_groups SET name = $3, description = $4 WHERE tenant_id = $1 AND group_id = $2")
            .bind(tenant.as_str())
            .bind(group.group_id.as_str())
            .bind(group.name.as_str())
            .bind(group.description.as_str())
            .execute(w.conn())
            .await?;
        write_acl(w.conn(), tenant, &group.group_id, &group.acl).await?;
        let audit = Audit::new(
            "UpdatePermissionGroup",
            Touched::group(tenant, &group.group_id),
        )
        .before(Some(json::group_value(&old)))
        .after(Some(json::group_value(&group)));
        let permissions = permissions_of(w.conn(), tenant, &group.group_id).await?;
        Ok((
            w.commit_as(ctx, audit).await?,
            GroupWithPermissions { group, permissions },
        ))
    }

    async fn delete_group(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        group: &GroupId,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        let old = require_group(w.conn(), tenant, group).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        rules::change_group(&old.acl, &actor(ctx, acting))?;
        let permissions: Vec<_> = permissions_of(w.conn(), tenant, group)
            .await?
            .iter()
            .map(json::permission_value)
            .collect();
        let grants = grants_value(w.conn(), tenant, "group_id", group.as_str()).await?;
        sqlx::query("DELETE FROM permission_groups WHERE tenant_id = $1 AND group_id = $2")
            .bind(tenant.as_str())
            .bind(group.as_str())
            .execute(w.conn())
            .await?;
        let mut before = json::group_value(&old);
        if let Value::Object(map) = &mut before {
            map.insert("permissions".into(), Value::Array(permissions));
            map.insert("grants".into(), grants);
        }
        let audit =
            Audit::new("DeletePermissionGroup", Touched::group(tenant, group)).before(Some(before));
        w.commit_as(ctx, audit).await
    }

    async fn create_permission(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        permission: &ExternalPermission,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        let group = require_group(w.conn(), tenant, &permission.group_id).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        rules::change_group(&group.acl, &actor(ctx, acting))?;
        if permission_in(w.conn(), tenant, &permission.permission_id)
            .await?
            .is_some()
        {
            return Err(StoreError::AlreadyExists(Entity::Permission(
                tenant.clone(),
                permission.permission_id.clone(),
            )));
        }
        sqlx::query(
            "INSERT INTO external_permissions (tenant_id, permission_id, group_id, name, description, external_id) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(tenant.as_str())
        .bind(permission.permission_id.as_str())
        .bind(permission.group_id.as_str())
        .bind(permission.name.as_str())
        .bind(permission.description.as_str())
        .bind(permission.external_id.as_str())
        .execute(w.conn())
        .await
        .map_err(conflict(Entity::ExternalId(
            permission.group_id.clone(),
            permission.external_id.clone(),
        )))?;
        let audit = Audit::new(
            "CreateExternalPermission",
            Touched::permission(tenant, &permission.permission_id),
        )
        .after(Some(json::permission_value(permission)));
        w.commit_as(ctx, audit).await
    }

    async fn delete_permission(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        permission: &PermissionId,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        let old = require_permission(w.conn(), tenant, permission).await?;
        let group = require_group(w.conn(), tenant, &old.group_id).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        rules::change_group(&group.acl, &actor(ctx, acting))?;
        let grants = grants_value(w.conn(), tenant, "permission_id", permission.as_str()).await?;
        sqlx::query("DELETE FROM external_permissions WHERE tenant_id = $1 AND permission_id = $2")
            .bind(tenant.as_str())
            .bind(permission.as_str())
            .execute(w.conn())
            .await?;
        let mut before = json::permission_value(&old);
        if let Value::Object(map) = &mut before {
            map.insert("grants".into(), grants);
        }
        let audit = Audit::new(
            "DeleteExternalPermission",
            Touched::permission(tenant, permission),
        )
        .before(Some(before));
        w.commit_as(ctx, audit).await
    }

    async fn grant_external(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        permission: &PermissionId,
        expires_at: Option<Timestamp>,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        require_user(w.conn(), tenant, user).await?;
        let perm = require_permission(w.conn(), tenant, permission).await?;
        let group = require_group(w.conn(), tenant, &perm.group_id).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        let actor = actor(ctx, acting);
        rules::grant_external(&group.acl, &actor)?;
        let before = grant_in(w.conn(), tenant, user, permission).await?;
        let after = HeldGrant {
            granted_by: before
                .as_ref()
                .map_or_else(|| actor.principal().to_string(), |b| b.granted_by.clone()),
            granted_at: before.as_ref().map_or(ctx.at, |b| b.granted_at),
            expires_at,
        };
        sqlx::query(
            "INSERT INTO external_grants (tenant_id, user_id, permission_id, group_id, granted_by, granted_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (tenant_id, user_id, permission_id) DO UPDATE SET expires_at = excluded.expires_at",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(permission.as_str())
        .bind(perm.group_id.as_str())
        .bind(&after.granted_by)
        .bind(after.granted_at.as_micros())
        .bind(expires_at.map(Timestamp::as_micros))
        .execute(w.conn())
        .await?;
        let audit = Audit::new("GrantExternalPermission", Touched::user(tenant, user))
            .before(before.map(|b| b.value(user, permission)))
            .after(Some(after.value(user, permission)));
        w.commit_as(ctx, audit).await
    }

    async fn revoke_external(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        permission: &PermissionId,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        require_user(w.conn(), tenant, user).await?;
        let perm = require_permission(w.conn(), tenant, permission).await?;
        let existing = grant_in(w.conn(), tenant, user, permission)
            .await?
            .ok_or_else(|| StoreError::NotFound(Entity::Grant(user.clone(), permission.clone())))?;
        let group = require_group(w.conn(), tenant, &perm.group_id).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        rules::grant_external(&group.acl, &actor(ctx, acting))?;
        sqlx::query("DELETE FROM external_grants WHERE tenant_id = $1 AND user_id = $2 AND permission_id = $3")
            .bind(tenant.as_str())
            .bind(user.as_str())
            .bind(permission.as_str())
            .execute(w.conn())
            .await?;
        let audit = Audit::new("RevokeExternalPermission", Touched::user(tenant, user))
            .before(Some(existing.value(user, permission)));
        w.commit_as(ctx, audit).await
    }
}
