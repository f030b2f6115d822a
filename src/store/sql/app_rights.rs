//! [`AppRightWrites`]: writes of site-level app rights (docs/rules.md §8), resolved requests that a
//! tenant administrator or a site owner gives an application beside its consent in force, kept
//! in the consent's row.

use super::*;

#[async_trait]
impl AppRightWrites for SqlStore {
    async fn grant_app_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision> {
        let (mut w, app, consent) = self
            .begin_write_on_app_right(ctx, tenant, app_id, resource)
            .await?;
        let granted = app_right(&app.manifest, resource.clone(), right)?;
        let granted = consent.admit_app_right(granted)?;
        let before = consent.app_right_at(resource).cloned();
        let updated = consent.with_app_right(granted.clone());
        sqlx::query("UPDATE consents SET app_rights = $3 WHERE tenant_id = $1 AND app_id = $2")
            .bind(tenant.as_str())
            .bind(app_id.as_str())
            .bind(json::resolved_to_text(&updated.app_rights))
            .execute(w.conn())
            .await?;
        let audit = Audit::new("GrantAppRight", Touched::app_in(tenant, app_id))
            .before(before.map(|r| json::app_right_value(app_id.as_str(), &r)))
            .after(Some(json::app_right_value(app_id.as_str(), &granted)));
        w.commit_as(ctx, audit).await
    }

    async fn revoke_app_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision> {
        let (mut w, _, consent) = self
            .begin_write_on_app_right(ctx, tenant, app_id, resource)
            .await?;
        let missing = |r| {
            StoreError::NotFound(Entity::AppRight(
                tenant.clone(),
                app_id.clone(),
                resource.clone(),
                r,
            ))
        };
        let held = match (consent.app_right_at(resource), right) {
            (None, _) => return Err(missing(None)),
            (Some(h), wanted) if h.right != wanted => return Err(missing(Some(wanted))),
            (Some(h), _) => h.clone(),
        };
        let updated = consent.without_app_right(resource);
        sqlx::query("UPDATE consents SET app_rights = $3 WHERE tenant_id = $1 AND app_id = $2")
            .bind(tenant.as_str())
            .bind(app_id.as_str())
            .bind(json::resolved_to_text(&updated.app_rights))
            .execute(w.conn())
            .await?;
        let audit = Audit::new("RevokeAppRight", Touched::app_in(tenant, app_id))
            .before(Some(json::app_right_value(app_id.as_str(), &held)));
        w.commit_as(ctx, audit).await
    }
}

impl SqlStore {
    /// The write transaction for a change to `app_id`'s right at `resource` in `tenant`, with
    /// the app and its consent in force, once the acting user may manage app rights there.
    async fn begin_write_on_app_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        resource: &ResourcePath,
    ) -> StoreResult<(WriteTx, App, Consent)> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        let app = require_app(w.conn(), app_id).await?;
        let consent = consent_in(w.conn(), tenant, app_id).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        let owner = owner_right(w.conn(), ctx, tenant, resource).await?;
        rules::manage_app_right(&actor(ctx, acting), resource, owner)?;
        let consent = rules::consent_in_force(consent.as_ref(), tenant, app_id)?.clone();
        Ok((w, app, consent))
    }
}

/// The acting user's effective right at `resource`: the highest level they hold there or on an
/// ancestor (`None` without an acting user).
async fn owner_right(
    conn: &mut AnyConnection,
    ctx: &WriteCtx,
    tenant: &TenantId,
    resource: &ResourcePath,
) -> StoreResult<Option<Right>> {
    let Some(user) = &ctx.acting_user else {
        return Ok(None);
    };
    let paths: Vec<&str> = resource.self_and_ancestors().collect();
    let placeholders: Vec<String> = (0..paths.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "SELECT resource, right_level FROM user_rights WHERE tenant_id = $1 AND user_id = $2 AND resource IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(tenant.as_str())
        .bind(user.as_str());
    for p in &paths {
        query = query.bind(*p);
    }
    let mut rights = Vec::new();
    for row in query.fetch_all(conn).await? {
        let path = stored(ResourcePath::parse(
            "resource",
            &col::<String>(&row, "resource")?,
        ))?;
        rights.push((path, json::right_from_code(col(&row, "right_level")?)?));
    }
    Ok(UserSnapshot::new(RoleSet::EMPTY, rights).right_at(resource))
}
