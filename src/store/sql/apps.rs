//! [`AppWrites`]: writes of apps, consents and whitelist entries.

use super::*;

#[async_trait]
impl AppWrites for SqlStore {
    async fn register_app(
        &self,
        ctx: &WriteCtx,
        app_id: &AppId,
        name: &Name,
        kind: AppKind,
        manifest: &Manifest,
    ) -> StoreResult<Revision> {
        // A rule of the caller alone: judged before the write lock.
        rules::manage_apps(&ctx.caller)?;
        let mut w = self.begin_write().await?;
        if app_in(w.conn(), app_id).await?.is_some() {
            return Err(StoreError::AlreadyExists(Entity::App(app_id.clone())));
        }
        let app = App {
            app_id: app_id.clone(),
            name: name.clone(),
            kind,
            manifest: manifest.clone(),
            manifest_revision: 1,
        };
        sqlx::query("INSERT INTO apps (app_id, name, kind, manifest, manifest_revision) VALUES ($1, $2, $3, $4, 1)")
            .bind(app_id.as_str())
            .bind(name.as_str())
            .bind(kind_code(kind))
            .bind(json::manifest_to_text(manifest))
            .execute(w.conn())
            .await
            .map_err(conflict(Entity::App(app_id.clone())))?;
        let audit =
            Audit::new("RegisterApp", Touched::app(app_id)).after(Some(json::app_value(&app)));
        w.commit_as(ctx, audit).await
    }

    async fn update_app_manifest(
        &self,
        ctx: &WriteCtx,
        app_id: &AppId,
        manifest: &Manifest,
    ) -> StoreResult<(Revision, i64)> {
        may_manage(self, ctx, app_id).await?;
        let mut w = self.begin_write().await?;
        let app = require_app(w.conn(), app_id).await?;
        if app.manifest == *manifest {
            // Nothing changes: no new manifest revision, nothing written (the transaction rolls back).
            return Ok((w.previous().await?, app.manifest_revision));
        }
        let updated = App {
            manifest: manifest.clone(),
            manifest_revision: app.manifest_revision + 1,
            ..app.clone()
        };
        sqlx::query("UPDATE apps SET manifest = $2, manifest_revision = $3 WHERE app_id = $1")
            .bind(app_id.as_str())
            .bind(json::manifest_to_text(manifest))
            .bind(updated.manifest_revision)
            .execute(w.conn())
            .await?;
        let audit = Audit::new("UpdateAppManifest", Touched::app(app_id))
            .before(Some(json::app_value(&app)))
            .after(Some(json::app_value(&updated)));
        Ok((w.commit_as(ctx, audit).await?, updated.manifest_revision))
    }

    async fn unregister_app(&self, ctx: &WriteCtx, app_id: &AppId) -> StoreResult<Revision> {
        may_manage(self, ctx, app_id).await?;
        let mut w = self.begin_write().await?;
        let app = require_app(w.conn(), app_id).await?;
        let consents = sqlx::query(AssertSqlSafe(format!("SELECT c.tenant_id, {CONSENT_COLUMNS} FROM consents c WHERE c.app_id = $1 ORDER BY c.tenant_id")))
            .bind(app_id.as_str())
            .fetch_all(w.conn())
            .await?;
        let consents = per_tenant(&consents, |r| {
            Ok(consent_from(r)?.map(|c| json::consent_value(app_id.as_str(), &c)))
        })?;
        let entries = sqlx::query("SELECT tenant_id, allowed_scopes, content_access FROM whitelist_entries WHERE app_id = $1 ORDER BY tenant_id")
            .bind(app_id.as_str())
            .fetch_all(w.conn())
            .await?;
        let entries = per_tenant(&entries, |r| {
            Ok(whitelist_from(r)?.map(|e| json::whitelist_value(app_id.as_str(), &e)))
        })?;
        sqlx::query("DELETE FROM apps WHERE app_id = $1")
            .bind(app_id.as_str())
            .execute(w.conn())
            .await?;
        let mut before = json::app_value(&app);
        if let Value::Object(map) = &mut before {
            map.insert("consents".into(), Value::Array(consents));
            map.insert("whitelist_entries".into(), Value::Array(entries));
        }
        let audit = Audit::new("UnregisterApp", Touched::app(app_id)).before(Some(before));
        w.commit_as(ctx, audit).await
    }

    async fn approve_consent(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        manifest_revision: i64,
        resolved: Vec<ResolvedRequest>,
    ) -> StoreResult<(Revision, Consent)> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        let app = require_app(w.conn(), app_id).await?;
        let existing = consent_in(w.conn(), tenant, app_id).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        let approved_by =
            rules::approve_consent(app.kind, existing.is_some(), &actor(ctx, acting))?;
        if manifest_revision != app.manifest_revision {
            return Err(StoreError::Aborted(format!(
                "app {app_id} is at manifest revision {}, not {manifest_revision}: review the current manifest and approve that",
                app.manifest_revision
            )));
        }
        let resolved_requests = resolve_requests(&app.manifest, resolved)?;
        let consent = Consent {
            approved_by,
            approved_at: ctx.at,
            approved_manifest_revision: app.manifest_revision,
            approved_manifest: app.manifest.clone(),
            resolved_requests,
            // Re-approval keeps the site-level app rights given since (docs/rules.md §8).
            app_rights: carried_app_rights(existing.as_ref()),
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO consents (tenant_id, app_id, approved_by, approved_at, approved_manifest_revision, \
                                   approved_manifest, resolved_requests, app_rights, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL) \
             ON CONFLICT (tenant_id, app_id) DO UPDATE SET approved_by = excluded.approved_by, \
                approved_at = excluded.approved_at, approved_manifest_revision = excluded.approved_manifest_revision, \
                approved_manifest = excluded.approved_manifest, resolved_requests = excluded.resolved_requests, \
                app_rights = excluded.app_rights, revoked_at = NULL",
        )
        .bind(tenant.as_str())
        .bind(app_id.as_str())
        .bind(consent.approved_by.to_string())
        .bind(consent.approved_at.as_micros())
        .bind(consent.approved_manifest_revision)
        .bind(json::manifest_to_text(&consent.approved_manifest))
        .bind(json::resolved_to_text(&consent.resolved_requests))
        .bind(json::resolved_to_text(&consent.app_rights))
        .execute(w.conn())
        .await?;
        let audit = Audit::new("ApproveConsent", Touched::app_in(tenant, app_id))
            .before(
                existing
                    .as_ref()
                    .map(|c| json::consent_value(app_id.as_str(), c)),
            )
            .after(Some(json::consent_value(app_id.as_str(), &consent)));
        Ok((w.commit_as(ctx, audit).await?, consent))
    }

    async fn revoke_consent(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        let app = require_app(w.conn(), app_id).await?;
        let consent = consent_in(w.conn(), tenant, app_id)
            .await?
            .filter(Consent::is_active)
            .ok_or_else(|| StoreError::NotFound(Entity::Consent(tenant.clone(), app_id.clone())))?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        rules::revoke_consent(app.kind, &actor(ctx, acting))?;
        // The site-level app rights go with the consent (docs/rules.md §8).
        let revoked = consent.revoked(ctx.at);
        sqlx::query(
            "UPDATE consents SET revoked_at = $3, app_rights = $4 WHERE tenant_id = $1 AND app_id = $2",
        )
        .bind(tenant.as_str())
        .bind(app_id.as_str())
        .bind(ctx.at.as_micros())
        .bind(json::resolved_to_text(&revoked.app_rights))
        .execute(w.conn())
        .await?;
        let audit = Audit::new("RevokeConsent", Touched::app_in(tenant, app_id))
            .before(Some(json::consent_value(app_id.as_str(), &consent)))
            .after(Some(json::consent_value(app_id.as_str(), &revoked)));
        w.commit_as(ctx, audit).await
    }

    async fn put_whitelist_entry(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        entry: &WhitelistEntry,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        require_app(w.conn(), app_id).await?;
        let before = whitelist_in(w.conn(), tenant, app_id).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        actor(ctx, acting).require_tenant_admin("changing the whitelist")?;
        sqlx::query(
            "INSERT INTO whitelist_entries (tenant_id, app_id, allowed_scopes, content_access) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tenant_id, app_id) DO UPDATE SET allowed_scopes = excluded.allowed_scopes, \
                content_access = excluded.content_access",
        )
        .bind(tenant.as_str())
        .bind(app_id.as_str())
        .bind(json::strings_to_text(&entry.allowed_scopes))
        .bind(json::content_access_code(entry.content_access))
        .execute(w.conn())
        .await?;
        let audit = Audit::new("PutWhitelistEntry", Touched::app_in(tenant, app_id))
            .before(before.map(|e| json::whitelist_value(app_id.as_str(), &e)))
            .after(Some(json::whitelist_value(app_id.as_str(), entry)));
        w.commit_as(ctx, audit).await
    }

    async fn delete_whitelist_entry(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        let entry = whitelist_in(w.conn(), tenant, app_id)
            .await?
            .ok_or_else(|| {
                StoreError::NotFound(Entity::WhitelistEntry(tenant.clone(), app_id.clone()))
            })?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        actor(ctx, acting).require_tenant_admin("changing the whitelist")?;
        sqlx::query("DELETE FROM whitelist_entries WHERE tenant_id = $1 AND app_id = $2")
            .bind(tenant.as_str())
            .bind(app_id.as_str())
            .execute(w.conn())
            .await?;
        let audit = Audit::new("DeleteWhitelistEntry", Touched::app_in(tenant, app_id))
            .before(Some(json::whitelist_value(app_id.as_str(), &entry)));
        w.commit_as(ctx, audit).await
    }
}

/// `manage_apps` for a write to a registered app, a rule of the caller alone, judged before the
/// write lock so that a refused caller never takes it. Existence comes before the rules, so a
/// refused caller is still told first that the app is missing: read without the lock, it answers
/// as the write would have at that moment. An admitted caller finds the app inside the write.
async fn may_manage(store: &SqlStore, ctx: &WriteCtx, app_id: &AppId) -> StoreResult<()> {
    let Err(refused) = rules::manage_apps(&ctx.caller) else {
        return Ok(());
    };
    require_app(&mut *store.conn().await?, app_id).await?;
    Err(refused.into())
}

/// An app's rows across tenants as audit values, each with its `tenant_id` added.
fn per_tenant(
    rows: &[AnyRow],
    value: impl Fn(&AnyRow) -> StoreResult<Option<Value>>,
) -> StoreResult<Vec<Value>> {
    rows.iter()
        .map(|r| {
            let mut v = value(r)?.unwrap_or(Value::Null);
            if let Value::Object(map) = &mut v {
                map.insert("tenant_id".into(), json!(col::<String>(r, "tenant_id")?));
            }
            Ok(v)
        })
        .collect()
}
