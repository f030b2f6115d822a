//! [`Lists`]: what the AdminService reads, one tenant and the list queries, paged by key.

use super::*;

#[async_trait]
impl Lists for SqlStore {
    async fn tenant(&self, tenant: &TenantId) -> StoreResult<Option<Tenant>> {
        tenant_in(&mut *self.conn().await?, tenant).await
    }

    async fn list_tenants(
        &self,
        bounds: &TenantBounds,
        page: &PageRequest<TenantId>,
    ) -> StoreResult<Page<Tenant, TenantId>> {
        let mut sql = String::from(
            "SELECT tenant_id, environment, whitelisting_enabled FROM tenants WHERE tenant_id > $1",
        );
        let only: Vec<&str> = match bounds {
            TenantBounds::All => Vec::new(),
            TenantBounds::Only(set) => set.iter().map(TenantId::as_str).collect(),
        };
        if let TenantBounds::Only(_) = bounds {
            let marks: Vec<String> = (0..only.len()).map(|i| format!("${}", i + 3)).collect();
            let marks = if marks.is_empty() {
                "NULL".to_owned()
            } else {
                marks.join(", ")
            };
            sql.push_str(&format!(" AND tenant_id IN ({marks})"));
        }
        sql.push_str(" ORDER BY tenant_id LIMIT $2");
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(page.after.as_ref().map_or("", AsRef::as_ref))
            .bind(fetch_limit(page));
        for t in only {
            query = query.bind(t);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let items = rows
            .iter()
            .map(tenant_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |t| t.tenant_id.clone()))
    }

    async fn list_apps(&self, page: &PageRequest<AppId>) -> StoreResult<Page<App, AppId>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {APP_COLUMNS} FROM apps a WHERE a.app_id > $1 ORDER BY a.app_id LIMIT $2"
        )))
        .bind(page.after.as_ref().map_or("", AsRef::as_ref))
        .bind(fetch_limit(page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(app_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |a| a.app_id.clone()))
    }

    async fn list_clients(
        &self,
        page: &PageRequest<ClientId>,
    ) -> StoreResult<Page<ClientRecord, ClientId>> {
        let rows = sqlx::query(
            "SELECT client_id, tenants, capabilities, created_at, revoked_at FROM clients WHERE client_id > $1 ORDER BY client_id LIMIT $2",
        )
        .bind(page.after.as_ref().map_or("", AsRef::as_ref))
        .bind(fetch_limit(page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(client_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |c| c.caller.client_id.clone()))
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        page: &PageRequest<UserId>,
    ) -> StoreResult<Page<(UserId, RoleSet), UserId>> {
        let rows = self
            .tenant_rows(
                "SELECT user_id, roles FROM tenant_users WHERE tenant_id = $1 AND user_id > $2 ORDER BY user_id LIMIT $3",
                tenant,
                page,
            )
            .await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok((
                    stored(UserId::parse("user_id", &col::<String>(r, "user_id")?))?,
                    roles_from(col(r, "roles")?),
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |(u, _)| u.clone()))
    }

    async fn list_api_users(
        &self,
        tenant: &TenantId,
        page: &PageRequest<UserId>,
    ) -> StoreResult<Page<(UserId, ApiUser), UserId>> {
        let sql = format!(
            "SELECT a.user_id, {API_USER_COLUMNS} FROM api_users a WHERE a.tenant_id = $1 AND a.user_id > $2 \
             ORDER BY a.user_id LIMIT $3"
        );
        let rows = self.tenant_rows(sql, tenant, page).await?;
        let items = rows
            .iter()
            .filter_map(|r| {
                let user =
                    col::<String>(r, "user_id").and_then(|u| stored(UserId::parse("user_id", &u)));
                api_user_from(r)
                    .and_then(|a| user.map(|u| a.map(|a| (u, a))))
                    .transpose()
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |(u, _)| u.clone()))
    }

    async fn list_consents(
        &self,
        tenant: &TenantId,
        page: &PageRequest<AppId>,
    ) -> StoreResult<Page<(AppId, Consent), AppId>> {
        let sql = format!(
            "SELECT c.app_id, {CONSENT_COLUMNS} FROM consents c WHERE c.tenant_id = $1 AND c.app_id > $2 ORDER BY c.app_id LIMIT $3"
        );
        let rows = self.tenant_rows(sql, tenant, page).await?;
        let items = rows
            .iter()
            .filter_map(|r| {
                let app =
                    col::<String>(r, "app_id").and_then(|a| stored(AppId::parse("app_id", &a)));
                consent_from(r)
                    .and_then(|c| app.map(|a| c.map(|c| (a, c))))
                    .transpose()
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |(a, _)| a.clone()))
    }

    async fn list_whitelist_entries(
        &self,
        tenant: &TenantId,
        page: &PageRequest<AppId>,
    ) -> StoreResult<Page<(AppId, WhitelistEntry), AppId>> {
        let rows = self
            .tenant_rows(
                "SELECT app_id, allowed_scopes, content_access FROM whitelist_entries WHERE tenant_id = $1 AND app_id > $2 \
                 ORDER BY app_id LIMIT $3",
                tenant,
                page,
            )
            .await?;
        let items = rows
            .iter()
            .filter_map(|r| {
                let app =
                    col::<String>(r, "app_id").and_then(|a| stored(AppId::parse("app_id", &a)));
                whitelist_from(r)
                    .and_then(|e| app.map(|a| e.map(|e| (a, e))))
                    .transpose()
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |(a, _)| a.clone()))
    }

    async fn list_groups(
        &self,
        tenant: &TenantId,
        viewer: &Viewer,
        page: &PageRequest<GroupId>,
    ) -> StoreResult<Page<GroupWithPermissions, GroupId>> {
        let mut conn = self.conn().await?;
        require_tenant(&mut conn, tenant).await?;
        let (principal, relation) = viewer_relation(viewer);
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT g.group_id FROM permission_groups g WHERE g.tenant_id = $1 AND g.group_id > $2 \
               AND EXISTS (SELECT 1 FROM group_principals v WHERE v.tenant_id = g.tenant_id AND v.group_id = g.group_id \
                           AND v.principal = $3 AND (v.relation = 'manager' OR v.relation = $4)) \
             ORDER BY g.group_id LIMIT $5",
        )
        .bind(tenant.as_str())
        .bind(page.after.as_ref().map_or("", AsRef::as_ref))
        .bind(principal)
        .bind(relation)
        .bind(fetch_limit(page))
        .fetch_all(&mut *conn)
        .await?;
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            let group_id = stored(GroupId::parse("group_id", &id))?;
            let Some(group) = group_in(&mut conn, tenant, &group_id).await? else {
                continue;
            };
            let permissions = permissions_of(&mut conn, tenant, &group_id).await?;
            items.push(GroupWithPermissions { group, permissions });
        }
        Ok(paged(items, page.limit, |g| g.group.group_id.clone()))
    }

    async fn list_user_rights(
        &self,
        tenant: &TenantId,
        user: &UserId,
        page: &PageRequest<ResourcePath>,
    ) -> StoreResult<Page<(ResourcePath, Right), ResourcePath>> {
        let mut conn = self.conn().await?;
        require_tenant(&mut conn, tenant).await?;
        require_user(&mut conn, tenant, user).await?;
        let rows = sqlx::query(
            "SELECT resource, right_level FROM user_rights WHERE tenant_id = $1 AND user_id = $2 AND resource > $3 \
             ORDER BY resource LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(page.after.as_ref().map_or("", ResourcePath::as_str))
        .bind(fetch_limit(page))
        .fetch_all(&mut *conn)
        .await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok((
                    stored(ResourcePath::parse(
                        "resource",
                        &col::<String>(r, "resource")?,
                    ))?,
                    json::right_from_code(col(r, "right_level")?)?,
                ))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |(p, _)| p.clone()))
    }

    async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest<Revision>,
    ) -> StoreResult<Page<AuditEvent, Revision>> {
        let after = page.after.map_or(0, rev_i64);
        let (actor_client, actor_user) = match &filter.actor {
            Some(Principal::Client(c)) => (c.as_str(), ""),
            Some(Principal::User(u)) => ("", u.as_str()),
            Some(Principal::App(_)) => {
                return Ok(Page {
                    items: Vec::new(),
                    next: None,
                });
            }
            None => ("", ""),
        };
        let mut sql = String::from(
            "SELECT revision, tag, at, actor_client, actor_user, action, tenant_id, target, before, after FROM audit_events \
             WHERE revision > $1 AND ($2 = '' OR tenant_id = $2) AND ($3 = '' OR target = $3) \
               AND ($4 = '' OR actor_client = $4) AND ($5 = '' OR actor_user = $5) AND at >= $6",
        );
        let bounded: Vec<&str> = match &filter.visible_to {
            Some(TenantBounds::Only(set)) => set.iter().map(TenantId::as_str).collect(),
            _ => Vec::new(),
        };
        if let Some(TenantBounds::Only(_)) = &filter.visible_to {
            // Tenant events within the caller's tenants only; global events need `*`.
            let marks: Vec<String> = (0..bounded.len()).map(|i| format!("${}", i + 8)).collect();
            sql.push_str(&format!(
                " AND tenant_id IN ({})",
                if marks.is_empty() {
                    "NULL".into()
                } else {
                    marks.join(", ")
                }
            ));
        }
        sql.push_str(" ORDER BY revision LIMIT $7");
        let mut query = sqlx::query(AssertSqlSafe(sql))
            .bind(after)
            .bind(filter.tenant_id.as_ref().map_or("", TenantId::as_str))
            .bind(filter.target.as_ref().map_or("", |t| t.as_str()))
            .bind(actor_client)
            .bind(actor_user)
            .bind(filter.since.map_or(i64::MIN, Timestamp::as_micros))
            .bind(fetch_limit(page));
        for t in bounded {
            query = query.bind(t);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(AuditEvent {
                    revision: revision_of(col(r, "revision")?, col(r, "tag")?),
                    at: Timestamp::from_micros(col(r, "at")?),
                    actor_client: col(r, "actor_client")?,
                    actor_user: col::<Option<String>>(r, "actor_user")?
                        .map(|u| stored(UserId::parse("actor_user", &u)))
                        .transpose()?,
                    action: col(r, "action")?,
                    tenant_id: col::<Option<String>>(r, "tenant_id")?
                        .map(|t| stored(TenantId::parse("tenant_id", &t)))
                        .transpose()?,
                    target: col(r, "target")?,
                    before: col(r, "before")?,
                    after: col(r, "after")?,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |e| e.revision))
    }
}
