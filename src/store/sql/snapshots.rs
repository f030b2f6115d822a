//! [`Snapshots`]: what the caches load, snapshots of an app and a user in a tenant, a tenant's
//! external catalog, and a user's grants (a page of them, one of them, or all).

use super::replicas::ReadFrom;
use super::*;

#[async_trait]
impl Snapshots for SqlStore {
    async fn revision(&self) -> StoreResult<Revision> {
        read_again_if_dropped(|| async {
            let mut conn = self.pool.acquire().await?;
            revision_in(&mut conn).await
        })
        .await
    }

    async fn app_snapshot(
        &self,
        tenant: &TenantId,
        app: &AppId,
        from: ReadFrom,
    ) -> StoreResult<(AppSnapshot, Revision)> {
        self.snapshot(from, |pool| async move {
            // One round trip: the revision and every fact, read by one statement (one snapshot).
            let sql = format!(
                "SELECT {REVISION_COLUMNS}, \
                        t.tenant_id, t.environment, t.whitelisting_enabled, \
                        a.app_id AS registered_app, {APP_COLUMNS}, {CONSENT_COLUMNS}, \
                        w.allowed_scopes, w.content_access \
                 FROM (SELECT $1 AS tenant_id, $2 AS app_id) q \
                 LEFT JOIN tenants t ON t.tenant_id = q.tenant_id \
                 LEFT JOIN apps a ON a.app_id = q.app_id \
                 LEFT JOIN consents c ON c.tenant_id = q.tenant_id AND c.app_id = q.app_id \
                 LEFT JOIN whitelist_entries w ON w.tenant_id = q.tenant_id AND w.app_id = q.app_id"
            );
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(tenant.as_str())
                .bind(app.as_str())
                .fetch_one(&pool)
                .await?;
            let revision = revision_from(&row)?;
            let tenant = match col::<Option<String>>(&row, "environment")? {
                Some(_) => Some(tenant_from(&row)?),
                None => None,
            };
            let app = match col::<Option<String>>(&row, "registered_app")? {
                Some(_) => Some(app_from(&row)?),
                None => None,
            };
            let snapshot =
                AppSnapshot::new(tenant, app, consent_from(&row)?, whitelist_from(&row)?);
            Ok((snapshot, revision))
        })
        .await
    }

    async fn user_snapshot(
        &self,
        tenant: &TenantId,
        user: &UserId,
        from: ReadFrom,
    ) -> StoreResult<(Option<UserSnapshot>, Revision)> {
        self.snapshot(from, |pool| async move {
            // One statement (one snapshot): the user, their API-user record (at most one row, so
            // it repeats on every right's row) and their rights.
            let sql = format!(
                "SELECT {REVISION_COLUMNS}, u.roles, {API_USER_COLUMNS}, \
                        r.resource, r.right_level \
                 FROM (SELECT $1 AS tenant_id, $2 AS user_id) q \
                 LEFT JOIN tenant_users u ON u.tenant_id = q.tenant_id AND u.user_id = q.user_id \
                 LEFT JOIN api_users a ON a.tenant_id = u.tenant_id AND a.user_id = u.user_id \
                 LEFT JOIN user_rights r ON r.tenant_id = u.tenant_id AND r.user_id = u.user_id"
            );
            let rows = sqlx::query(AssertSqlSafe(sql))
                .bind(tenant.as_str())
                .bind(user.as_str())
                .fetch_all(&pool)
                .await?;
            let first = rows
                .first()
                .ok_or_else(|| StoreError::Corrupt("user snapshot returned no row".into()))?;
            let revision = revision_from(first)?;
            let Some(roles) = col::<Option<i64>>(first, "roles")? else {
                return Ok((None, revision));
            };
            let mut rights = Vec::new();
            for row in &rows {
                if let Some(resource) = col::<Option<String>>(row, "resource")? {
                    let path = stored(ResourcePath::parse("resource", &resource))?;
                    rights.push((path, json::right_from_code(col(row, "right_level")?)?));
                }
            }
            let snapshot = UserSnapshot {
                api_user: api_user_from(first)?,
                ..UserSnapshot::new(roles_from(roles), rights)
            };
            Ok((Some(snapshot), revision))
        })
        .await
    }

    async fn list_user_grants(
        &self,
        tenant: &TenantId,
        user: &UserId,
        query: &GrantQuery,
        page: &PageRequest<GrantKey>,
    ) -> StoreResult<(Page<GrantView, GrantKey>, Revision)> {
        let mut tx = self.pool.begin().await?;
        require_tenant(&mut tx, tenant).await?;
        let revision = revision_in(&mut tx).await?;
        let (after_group, after_permission) = page
            .after
            .as_ref()
            .map_or(("", ""), |(g, p)| (g.as_str(), p.as_str()));
        let (principal, relation) = viewer_relation(&query.viewer);
        let sql = format!(
            "SELECT {GRANT_COLUMNS} FROM external_grants g \
             JOIN external_permissions p ON p.tenant_id = g.tenant_id AND p.permission_id = g.permission_id \
             JOIN permission_groups pg ON pg.tenant_id = g.tenant_id AND pg.group_id = g.group_id \
             WHERE g.tenant_id = $1 AND g.user_id = $2 \
               AND (g.expires_at IS NULL OR g.expires_at > $3) \
               AND ($4 = '' OR g.group_id = $4) \
               AND (g.group_id > $5 OR (g.group_id = $5 AND g.permission_id > $6)) \
               AND EXISTS (SELECT 1 FROM group_principals v WHERE v.tenant_id = g.tenant_id \
                           AND v.group_id = g.group_id AND v.principal = $7 AND v.relation = $8) \
             ORDER BY g.group_id, g.permission_id LIMIT $9"
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(user.as_str())
            .bind(query.now.as_micros())
            .bind(query.group.as_ref().map_or("", GroupId::as_str))
            .bind(after_group)
            .bind(after_permission)
            .bind(principal)
            .bind(relation)
            .bind(fetch_limit(page))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let grants = rows
            .iter()
            .map(grant_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((page_of_grants(grants, page.limit), revision))
    }

    async fn find_grant(
        &self,
        tenant: &TenantId,
        user: &UserId,
        permission: &PermissionRef,
        viewer: &Viewer,
    ) -> StoreResult<(Option<GrantView>, Revision)> {
        let mut tx = self.pool.begin().await?;
        require_tenant(&mut tx, tenant).await?;
        let revision = revision_in(&mut tx).await?;
        let (by, a, b) = match permission {
            PermissionRef::Id(id) => ("p.permission_id = $2 AND $3 = ''", id.as_str(), ""),
            PermissionRef::External(group, external) => (
                "p.group_id = $2 AND p.external_id = $3",
                group.as_str(),
                external.as_str(),
            ),
        };
        let (principal, relation) = viewer_relation(viewer);
        let sql = format!(
            "SELECT p.permission_id, p.group_id, pg.name AS group_name, p.name, p.external_id, \
                    g.granted_by, g.granted_at, g.expires_at \
             FROM external_permissions p \
             JOIN permission_groups pg ON pg.tenant_id = p.tenant_id AND pg.group_id = p.group_id \
             LEFT JOIN external_grants g ON g.tenant_id = p.tenant_id AND g.permission_id = p.permission_id AND g.user_id = $4 \
             WHERE p.tenant_id = $1 AND {by} \
               AND EXISTS (SELECT 1 FROM group_principals v WHERE v.tenant_id = p.tenant_id \
                           AND v.group_id = p.group_id AND v.principal = $5 AND v.relation = $6)"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(tenant.as_str())
            .bind(a)
            .bind(b)
            .bind(user.as_str())
            .bind(principal)
            .bind(relation)
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(Entity::VisiblePermission));
        };
        let grant = match col::<Option<String>>(&row, "granted_by")? {
            Some(_) => Some(grant_from(&row)?),
            None => None,
        };
        Ok((grant, revision))
    }

    async fn external_catalog(
        &self,
        tenant: &TenantId,
        from: ReadFrom,
    ) -> StoreResult<(Option<ExternalCatalog>, Revision)> {
        self.snapshot(from, |pool| async move {
            // One statement (one snapshot): the revision (its tag in `m`), the tenant, its groups,
            // their principals and permissions, as rows of one shape.
            let rows = sqlx::query(
                "SELECT 'R' AS kind, CAST(NULL AS TEXT) AS g, CAST(NULL AS TEXT) AS a, CAST(NULL AS TEXT) AS b, \
                        CAST(NULL AS TEXT) AS c, CAST(NULL AS TEXT) AS d, value AS n, \
                        COALESCE((SELECT a.tag FROM audit_events a WHERE a.revision = revision.value), 0) AS m \
                        FROM revision WHERE id = 1 \
                 UNION ALL SELECT 'T', tenant_id, NULL, NULL, NULL, NULL, 0, 0 FROM tenants WHERE tenant_id = $1 \
                 UNION ALL SELECT 'G', group_id, name, description, NULL, NULL, 0, 0 FROM permission_groups WHERE tenant_id = $1 \
                 UNION ALL SELECT 'P', group_id, relation, principal, NULL, NULL, access, position FROM group_principals \
                           WHERE tenant_id = $1 \
                 UNION ALL SELECT 'X', group_id, permission_id, name, description, external_id, 0, 0 FROM external_permissions \
                           WHERE tenant_id = $1 \
                 ORDER BY 1, 2, 8",
            )
            .bind(tenant.as_str())
            .fetch_all(&pool)
            .await?;
            let mut revision = Revision::default();
            let mut exists = false;
            let mut catalog = ExternalCatalog::default();
            let text = |row: &AnyRow, name: &str| -> StoreResult<String> {
                Ok(col::<Option<String>>(row, name)?.unwrap_or_default())
            };
            for row in &rows {
                let kind = col::<String>(row, "kind")?;
                let group_id = || stored(GroupId::parse("group_id", &text(row, "g")?));
                match kind.as_str() {
                    "R" => revision = revision_of(col(row, "n")?, Some(col(row, "m")?)),
                    "T" => exists = true,
                    "G" => {
                        let group = PermissionGroup {
                            group_id: group_id()?,
                            name: stored(Name::parse("name", &text(row, "a")?))?,
                            description: stored(Description::parse("description", &text(row, "b")?))?,
                            acl: GroupAcl::default(),
                        };
                        catalog.groups.insert(group.group_id.clone(), group);
                    }
                    "P" => {
                        let Some(group) = catalog.groups.get_mut(&group_id()?) else {
                            continue;
                        };
                        let principal = stored(Principal::parse("principal", &text(row, "b")?))?;
                        match text(row, "a")?.as_str() {
                            "manager" => {
                                let access = if col::<i64>(row, "n")? == 2 {
                                    ManagerAccess::ReadWrite
                                } else {
                                    ManagerAccess::Read
                                };
                                group.acl.managers.push((principal, access));
                            }
                            "grantor" => group.acl.grantors.push(principal),
                            _ => group.acl.visible_to.push(principal),
                        }
                    }
                    _ => {
                        let permission = ExternalPermission {
                            permission_id: stored(PermissionId::parse("permission_id", &text(row, "a")?))?,
                            group_id: group_id()?,
                            name: stored(Name::parse("name", &text(row, "b")?))?,
                            description: stored(Description::parse("description", &text(row, "c")?))?,
                            external_id: stored(ExternalId::parse("external_id", &text(row, "d")?))?,
                        };
                        catalog
                            .permissions
                            .insert(permission.permission_id.clone(), permission);
                    }
                }
            }
            Ok((exists.then_some(catalog), revision))
        })
        .await
    }

    async fn user_grants(
        &self,
        tenant: &TenantId,
        user: &UserId,
        from: ReadFrom,
    ) -> StoreResult<(Vec<UserGrant>, Revision)> {
        self.snapshot(from, |pool| async move {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {REVISION_COLUMNS}, g.permission_id, g.granted_by, g.granted_at, g.expires_at \
                 FROM (SELECT $1 AS tenant_id, $2 AS user_id) q \
                 LEFT JOIN external_grants g ON g.tenant_id = q.tenant_id AND g.user_id = q.user_id"
            )))
            .bind(tenant.as_str())
            .bind(user.as_str())
            .fetch_all(&pool)
            .await?;
            let first = rows
                .first()
                .ok_or_else(|| StoreError::Corrupt("user grants returned no row".into()))?;
            let revision = revision_from(first)?;
            let mut grants = Vec::with_capacity(rows.len());
            for row in &rows {
                let Some(permission) = col::<Option<String>>(row, "permission_id")? else {
                    continue;
                };
                let (granted_by, granted_at, expires_at) = granted_from(row)?;
                grants.push(UserGrant {
                    permission_id: stored(PermissionId::parse("permission_id", &permission))?,
                    granted_by,
                    granted_at,
                    expires_at,
                });
            }
            Ok((grants, revision))
        })
        .await
    }
}
