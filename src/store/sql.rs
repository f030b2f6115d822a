//! [`SqlStore`]: the [`Store`] over sqlx's `Any` driver. Every statement here runs unchanged on
//! Postgres and SQLite (`$n` placeholders, integer flags and times, JSON text for lists).

use crate::domain::Missing;
use async_trait::async_trait;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Decode, Row, Transaction, Type};
use subtle::ConstantTimeEq;

use super::{
    AuditEvent, AuditFilter, Backend, BootstrapOutcome, ClientRecord, GrantQuery, GroupSpec,
    GroupWithPermissions, Page, PageRequest, PermissionRef, Store, StoreError, StoreResult,
    WriteCtx,
};
use super::{change, json};
use crate::domain::consent::resolve_requests;
use crate::domain::rules;
use crate::domain::{
    Actor, App, AppId, AppKind, AppSnapshot, Caller, Capabilities, ClientId, Consent, Description,
    Environment, ExternalCatalog, ExternalId, ExternalPermission, GrantView, GroupAcl, GroupId,
    ManagerAccess, Manifest, Name, PermissionGroup, PermissionId, Principal, ResolvedRequest,
    ResourcePath, Revision, Right, RoleSet, Tenant, TenantBounds, TenantId, Timestamp, UserGrant,
    UserId, UserSnapshot, Viewer, WhitelistEntry,
};

/// The actor recorded for writes made by the operator's CLI, which has no client.
pub const CLI_ACTOR: &str = "(cli)";
/// The actor recorded for the bootstrap client's creation at start.
pub const BOOTSTRAP_ACTOR: &str = "(bootstrap)";

/// The store over a Postgres or SQLite pool.
#[derive(Debug, Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// Where a change listener connects (Postgres only); never logged.
    listen_url: Option<String>,
}

/// What a write's audit event records besides its actor, time and revision.
struct Audit {
    action: &'static str,
    tenant: Option<TenantId>,
    target: String,
    before: Option<Value>,
    after: Option<Value>,
}

/// An open write transaction whose revision is already bumped (and so holds the write lock).
struct WriteTx {
    tx: Transaction<'static, Any>,
    revision: Revision,
}

impl WriteTx {
    fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// Appends the audit event and the change-log keys, and commits: the write, its event, its
    /// keys and its revision together.
    async fn commit(
        mut self,
        actor: (&str, Option<&UserId>),
        at: Timestamp,
        audit: Audit,
    ) -> StoreResult<Revision> {
        sqlx::query(
            "INSERT INTO audit_events (revision, at, actor_client, actor_user, action, tenant_id, target, before, after) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(rev_i64(self.revision))
        .bind(at.as_micros())
        .bind(actor.0)
        .bind(actor.1.map(UserId::as_str))
        .bind(audit.action)
        .bind(audit.tenant.as_ref().map(TenantId::as_str))
        .bind(&audit.target)
        .bind(audit.before.map(|v| v.to_string()))
        .bind(audit.after.map(|v| v.to_string()))
        .execute(&mut *self.tx)
        .await?;
        for key in change::touched(audit.action, audit.tenant.as_ref(), &audit.target) {
            sqlx::query("INSERT INTO changes (revision, key) VALUES ($1, $2)")
                .bind(rev_i64(self.revision))
                .bind(key)
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        Ok(self.revision)
    }

    /// Commits with the actor taken from the write context.
    async fn commit_as(self, ctx: &WriteCtx, audit: Audit) -> StoreResult<Revision> {
        self.commit(
            (ctx.caller.client_id.as_str(), ctx.acting_user.as_ref()),
            ctx.at,
            audit,
        )
        .await
    }

    /// The revision committed before this transaction (nothing is written when it is dropped).
    fn previous(&self) -> Revision {
        Revision(self.revision.0.saturating_sub(1))
    }
}

fn rev_i64(r: Revision) -> i64 {
    i64::try_from(r.0).unwrap_or(i64::MAX)
}

fn rev_from(v: i64) -> Revision {
    Revision(u64::try_from(v).unwrap_or(0))
}

/// Reads a column, treating a value that does not decode as corrupt data.
fn col<'r, T: Decode<'r, Any> + Type<Any>>(row: &'r AnyRow, name: &str) -> StoreResult<T> {
    row.try_get(name)
        .map_err(|e| StoreError::Corrupt(format!("column {name}: {e}")))
}

/// Parses a stored value with a domain parser, treating failure as corrupt data.
fn stored<T>(parsed: Result<T, crate::domain::ValidationError>) -> StoreResult<T> {
    parsed.map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn not_found(what: impl ToString) -> StoreError {
    StoreError::NotFound(what.to_string())
}

/// Maps a unique-constraint violation (a racing create) to `AlreadyExists`.
fn conflict(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |e| match e.as_database_error().map(|d| d.kind()) {
        Some(sqlx::error::ErrorKind::UniqueViolation) => StoreError::AlreadyExists(what.to_owned()),
        _ => StoreError::Unavailable(e),
    }
}

/// Builds a page from up to `limit + 1` rows: the extra row only says there is more.
fn paged<T>(mut items: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let limit = limit as usize;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(key)
    } else {
        None
    };
    Page { items, next }
}

fn fetch_limit(page: &PageRequest) -> i64 {
    i64::from(page.limit) + 1
}

fn tenant_from(row: &AnyRow) -> StoreResult<Tenant> {
    Ok(Tenant {
        tenant_id: stored(TenantId::parse(
            "tenant_id",
            &col::<String>(row, "tenant_id")?,
        ))?,
        environment: stored(Environment::parse(
            "environment",
            &col::<String>(row, "environment")?,
        ))?,
        whitelisting_enabled: col::<i64>(row, "whitelisting_enabled")? != 0,
    })
}

fn roles_from(bits: i64) -> RoleSet {
    RoleSet::from_bits(u8::try_from(bits).unwrap_or(0))
}

fn kind_code(kind: AppKind) -> i64 {
    match kind {
        AppKind::Standard => 1,
        AppKind::Custom => 2,
    }
}

fn kind_from(code: i64) -> StoreResult<AppKind> {
    match code {
        1 => Ok(AppKind::Standard),
        2 => Ok(AppKind::Custom),
        other => Err(StoreError::Corrupt(format!("app kind {other}"))),
    }
}

const APP_COLUMNS: &str = "a.app_id, a.name, a.kind, a.manifest, a.manifest_revision";

fn app_from(row: &AnyRow) -> StoreResult<App> {
    Ok(App {
        app_id: stored(AppId::parse("app_id", &col::<String>(row, "app_id")?))?,
        name: stored(Name::parse("name", &col::<String>(row, "name")?))?,
        kind: kind_from(col(row, "kind")?)?,
        manifest: json::manifest_from_text(&col::<String>(row, "manifest")?)?,
        manifest_revision: col(row, "manifest_revision")?,
    })
}

const CONSENT_COLUMNS: &str = "c.approved_by, c.approved_at, c.approved_manifest_revision, c.approved_manifest, \
                               c.resolved_requests, c.revoked_at";

/// A consent from a row of [`CONSENT_COLUMNS`]; `None` when the row has none (a left join).
fn consent_from(row: &AnyRow) -> StoreResult<Option<Consent>> {
    let Some(approved_by) = col::<Option<String>>(row, "approved_by")? else {
        return Ok(None);
    };
    Ok(Some(Consent {
        approved_by: stored(Principal::parse("approved_by", &approved_by))?,
        approved_at: Timestamp::from_micros(col(row, "approved_at")?),
        approved_manifest_revision: col(row, "approved_manifest_revision")?,
        approved_manifest: json::manifest_from_text(&col::<String>(row, "approved_manifest")?)?,
        resolved_requests: json::resolved_from_text(&col::<String>(row, "resolved_requests")?)?,
        revoked_at: col::<Option<i64>>(row, "revoked_at")?.map(Timestamp::from_micros),
    }))
}

/// A whitelist entry from `allowed_scopes`, `content_access` columns; `None` when absent.
fn whitelist_from(row: &AnyRow) -> StoreResult<Option<WhitelistEntry>> {
    let Some(scopes) = col::<Option<String>>(row, "allowed_scopes")? else {
        return Ok(None);
    };
    Ok(Some(WhitelistEntry {
        allowed_scopes: json::scopes_from_text(&scopes)?,
        content_access: json::content_access_from_code(col(row, "content_access")?)?,
    }))
}

const GRANT_COLUMNS: &str = "g.permission_id, g.group_id, pg.name AS group_name, p.name, p.external_id, \
                             g.granted_by, g.granted_at, g.expires_at";

fn grant_from(row: &AnyRow) -> StoreResult<GrantView> {
    Ok(GrantView {
        permission_id: stored(PermissionId::parse(
            "permission_id",
            &col::<String>(row, "permission_id")?,
        ))?,
        group_id: stored(GroupId::parse("group_id", &col::<String>(row, "group_id")?))?,
        group_name: col(row, "group_name")?,
        name: col(row, "name")?,
        external_id: col(row, "external_id")?,
        granted_by: stored(Principal::parse(
            "granted_by",
            &col::<String>(row, "granted_by")?,
        ))?,
        granted_at: Timestamp::from_micros(col(row, "granted_at")?),
        expires_at: col::<Option<i64>>(row, "expires_at")?.map(Timestamp::from_micros),
    })
}

fn permission_from(row: &AnyRow) -> StoreResult<ExternalPermission> {
    Ok(ExternalPermission {
        permission_id: stored(PermissionId::parse(
            "permission_id",
            &col::<String>(row, "permission_id")?,
        ))?,
        group_id: stored(GroupId::parse("group_id", &col::<String>(row, "group_id")?))?,
        name: stored(Name::parse("name", &col::<String>(row, "name")?))?,
        description: stored(Description::parse(
            "description",
            &col::<String>(row, "description")?,
        ))?,
        external_id: stored(ExternalId::parse(
            "external_id",
            &col::<String>(row, "external_id")?,
        ))?,
    })
}

fn client_from(row: &AnyRow) -> StoreResult<ClientRecord> {
    Ok(ClientRecord {
        caller: Caller {
            client_id: stored(ClientId::parse(
                "client_id",
                &col::<String>(row, "client_id")?,
            ))?,
            tenants: json::tenants_from_text(&col::<String>(row, "tenants")?)?,
            capabilities: Capabilities::from_bits(
                u8::try_from(col::<i64>(row, "capabilities")?).unwrap_or(0),
            ),
        },
        created_at: Timestamp::from_micros(col(row, "created_at")?),
        revoked_at: col::<Option<i64>>(row, "revoked_at")?.map(Timestamp::from_micros),
    })
}

/// The principal and relation a viewer is matched by in `group_principals` for queries.
fn viewer_relation(viewer: &Viewer) -> (String, &'static str) {
    let relation = match viewer {
        Viewer::User(_) => "manager",
        Viewer::App(_) | Viewer::Client(_) => "visible_to",
    };
    (viewer.principal().to_string(), relation)
}

// Reads inside a connection or transaction.

async fn tenant_in(conn: &mut AnyConnection, tenant: &TenantId) -> StoreResult<Option<Tenant>> {
    let row = sqlx::query(
        "SELECT tenant_id, environment, whitelisting_enabled FROM tenants WHERE tenant_id = $1",
    )
    .bind(tenant.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(tenant_from).transpose()
}

async fn require_tenant(conn: &mut AnyConnection, tenant: &TenantId) -> StoreResult<Tenant> {
    tenant_in(conn, tenant)
        .await?
        .ok_or_else(|| not_found(Missing::Tenant(tenant.to_string())))
}

async fn roles_in(
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

async fn require_user(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    user: &UserId,
) -> StoreResult<RoleSet> {
    roles_in(conn, tenant, user).await?.ok_or_else(|| {
        not_found(format!(
            "user {user} is not known in tenant {tenant}; add them with PutUser"
        ))
    })
}

/// The acting user's roles in `tenant` (empty without an acting user or if unknown).
async fn acting_roles(
    conn: &mut AnyConnection,
    ctx: &WriteCtx,
    tenant: &TenantId,
) -> StoreResult<RoleSet> {
    match &ctx.acting_user {
        Some(user) => Ok(roles_in(conn, tenant, user).await?.unwrap_or_default()),
        None => Ok(RoleSet::EMPTY),
    }
}

fn actor(ctx: &WriteCtx, roles: RoleSet) -> Actor<'_> {
    Actor {
        caller: &ctx.caller,
        user: ctx.acting_user.as_ref(),
        roles,
    }
}

async fn app_in(conn: &mut AnyConnection, app: &AppId) -> StoreResult<Option<App>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {APP_COLUMNS} FROM apps a WHERE a.app_id = $1"
    )))
    .bind(app.as_str())
    .fetch_optional(conn)
    .await?;
    row.as_ref().map(app_from).transpose()
}

async fn require_app(conn: &mut AnyConnection, app: &AppId) -> StoreResult<App> {
    app_in(conn, app)
        .await?
        .ok_or_else(|| not_found(Missing::App(app.to_string())))
}

async fn consent_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    app: &AppId,
) -> StoreResult<Option<Consent>> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT {CONSENT_COLUMNS} FROM consents c WHERE c.tenant_id = $1 AND c.app_id = $2"
    )))
    .bind(tenant.as_str())
    .bind(app.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(match row {
        Some(row) => consent_from(&row)?,
        None => None,
    })
}

async fn whitelist_in(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    app: &AppId,
) -> StoreResult<Option<WhitelistEntry>> {
    let row = sqlx::query("SELECT allowed_scopes, content_access FROM whitelist_entries WHERE tenant_id = $1 AND app_id = $2")
        .bind(tenant.as_str())
        .bind(app.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(match row {
        Some(row) => whitelist_from(&row)?,
        None => None,
    })
}

async fn acl_in(
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

async fn group_in(
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

async fn require_group(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    group: &GroupId,
) -> StoreResult<PermissionGroup> {
    group_in(conn, tenant, group).await?.ok_or_else(|| {
        not_found(format!(
            "permission group {group} does not exist in tenant {tenant}"
        ))
    })
}

async fn write_acl(
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

async fn permission_in(
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

async fn require_permission(
    conn: &mut AnyConnection,
    tenant: &TenantId,
    permission: &PermissionId,
) -> StoreResult<ExternalPermission> {
    permission_in(conn, tenant, permission)
        .await?
        .ok_or_else(|| {
            not_found(format!(
                "external permission {permission} does not exist in tenant {tenant}"
            ))
        })
}

/// A group's permissions, ordered by id.
async fn permissions_of(
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
async fn grants_value(
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

impl SqlStore {
    /// A store over `pool`, whose schema is migrated for `backend`.
    pub fn new(pool: AnyPool, backend: Backend) -> Self {
        Self {
            pool,
            backend,
            listen_url: None,
        }
    }

    /// The same store, able to listen for changes on a connection of its own to `url`.
    pub fn with_listener(mut self, url: &str) -> Self {
        if self.backend == Backend::Postgres {
            self.listen_url = Some(url.to_owned());
        }
        self
    }

    /// The backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool (for health checks and metrics).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a write: bumps the revision first, which takes the write lock (Postgres row lock,
    /// SQLite database lock) so that revisions follow commit order.
    async fn begin_write(&self) -> StoreResult<WriteTx> {
        let mut tx = self.pool.begin().await?;
        let value: i64 = sqlx::query_scalar(
            "UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(WriteTx {
            tx,
            revision: rev_from(value),
        })
    }

    async fn conn(&self) -> StoreResult<sqlx::pool::PoolConnection<Any>> {
        Ok(self.pool.acquire().await?)
    }

    /// Lists rows of a tenant-scoped table ordered by `key`, after `page.after`.
    async fn tenant_rows(
        &self,
        sql: impl Into<String>,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Vec<AnyRow>> {
        let mut conn = self.conn().await?;
        require_tenant(&mut conn, tenant).await?;
        Ok(sqlx::query(AssertSqlSafe(sql.into()))
            .bind(tenant.as_str())
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(fetch_limit(page))
            .fetch_all(&mut *conn)
            .await?)
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn revision(&self) -> StoreResult<Revision> {
        let value: i64 = sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(rev_from(value))
    }

    async fn app_snapshot(
        &self,
        tenant: &TenantId,
        app: &AppId,
    ) -> StoreResult<(AppSnapshot, Revision)> {
        // One round trip: the revision and every fact, read by one statement (one snapshot).
        let sql = format!(
            "SELECT (SELECT value FROM revision WHERE id = 1) AS rev, \
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
            .fetch_one(&self.pool)
            .await?;
        let revision = rev_from(col(&row, "rev")?);
        let tenant = match col::<Option<String>>(&row, "environment")? {
            Some(_) => Some(tenant_from(&row)?),
            None => None,
        };
        let app = match col::<Option<String>>(&row, "registered_app")? {
            Some(_) => Some(app_from(&row)?),
            None => None,
        };
        let snapshot = AppSnapshot::new(tenant, app, consent_from(&row)?, whitelist_from(&row)?);
        Ok((snapshot, revision))
    }

    async fn user_snapshot(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<(Option<UserSnapshot>, Revision)> {
        let rows = sqlx::query(
            "SELECT (SELECT value FROM revision WHERE id = 1) AS rev, u.roles, r.resource, r.right_level \
             FROM (SELECT $1 AS tenant_id, $2 AS user_id) q \
             LEFT JOIN tenant_users u ON u.tenant_id = q.tenant_id AND u.user_id = q.user_id \
             LEFT JOIN user_rights r ON r.tenant_id = u.tenant_id AND r.user_id = u.user_id",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        let first = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("user snapshot returned no row".into()))?;
        let revision = rev_from(col(first, "rev")?);
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
        Ok((Some(UserSnapshot::new(roles_from(roles), rights)), revision))
    }

    async fn tenant(&self, tenant: &TenantId) -> StoreResult<Option<Tenant>> {
        tenant_in(&mut *self.conn().await?, tenant).await
    }

    async fn list_user_grants(
        &self,
        tenant: &TenantId,
        user: &UserId,
        query: &GrantQuery,
        page: &PageRequest,
    ) -> StoreResult<(Page<GrantView>, Revision)> {
        let mut tx = self.pool.begin().await?;
        require_tenant(&mut tx, tenant).await?;
        let revision: i64 = sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let (after_group, after_permission) = page
            .after
            .as_deref()
            .and_then(|k| k.split_once('\n'))
            .map_or(("", ""), |(g, p)| (g, p));
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
        Ok((page_of_grants(grants, page.limit), rev_from(revision)))
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
        let revision: i64 = sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
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
            return Err(not_found(
                "no such external permission is visible to the caller",
            ));
        };
        let grant = match col::<Option<String>>(&row, "granted_by")? {
            Some(_) => Some(grant_from(&row)?),
            None => None,
        };
        Ok((grant, rev_from(revision)))
    }

    async fn external_catalog(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<(Option<ExternalCatalog>, Revision)> {
        // One statement (one snapshot): the revision, the tenant, its groups, their principals
        // and permissions, as rows of one shape.
        let rows = sqlx::query(
            "SELECT 'R' AS kind, CAST(NULL AS TEXT) AS g, CAST(NULL AS TEXT) AS a, CAST(NULL AS TEXT) AS b, \
                    CAST(NULL AS TEXT) AS c, CAST(NULL AS TEXT) AS d, value AS n, 0 AS m FROM revision WHERE id = 1 \
             UNION ALL SELECT 'T', tenant_id, NULL, NULL, NULL, NULL, 0, 0 FROM tenants WHERE tenant_id = $1 \
             UNION ALL SELECT 'G', group_id, name, description, NULL, NULL, 0, 0 FROM permission_groups WHERE tenant_id = $1 \
             UNION ALL SELECT 'P', group_id, relation, principal, NULL, NULL, access, position FROM group_principals \
                       WHERE tenant_id = $1 \
             UNION ALL SELECT 'X', group_id, permission_id, name, description, external_id, 0, 0 FROM external_permissions \
                       WHERE tenant_id = $1 \
             ORDER BY 1, 2, 8",
        )
        .bind(tenant.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut revision = Revision(0);
        let mut exists = false;
        let mut catalog = ExternalCatalog::default();
        let text = |row: &AnyRow, name: &str| -> StoreResult<String> {
            Ok(col::<Option<String>>(row, name)?.unwrap_or_default())
        };
        for row in &rows {
            let kind = col::<String>(row, "kind")?;
            let group_id = || stored(GroupId::parse("group_id", &text(row, "g")?));
            match kind.as_str() {
                "R" => revision = rev_from(col(row, "n")?),
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
                        permission_id: stored(PermissionId::parse(
                            "permission_id",
                            &text(row, "a")?,
                        ))?,
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
    }

    async fn user_grants(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<(Vec<UserGrant>, Revision)> {
        let rows = sqlx::query(
            "SELECT (SELECT value FROM revision WHERE id = 1) AS rev, g.permission_id, g.granted_by, g.granted_at, g.expires_at \
             FROM (SELECT $1 AS tenant_id, $2 AS user_id) q \
             LEFT JOIN external_grants g ON g.tenant_id = q.tenant_id AND g.user_id = q.user_id",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        let first = rows
            .first()
            .ok_or_else(|| StoreError::Corrupt("user grants returned no row".into()))?;
        let revision = rev_from(col(first, "rev")?);
        let mut grants = Vec::with_capacity(rows.len());
        for row in &rows {
            let Some(permission) = col::<Option<String>>(row, "permission_id")? else {
                continue;
            };
            grants.push(UserGrant {
                permission_id: stored(PermissionId::parse("permission_id", &permission))?,
                granted_by: stored(Principal::parse(
                    "granted_by",
                    &col::<String>(row, "granted_by")?,
                ))?,
                granted_at: Timestamp::from_micros(col(row, "granted_at")?),
                expires_at: col::<Option<i64>>(row, "expires_at")?.map(Timestamp::from_micros),
            });
        }
        Ok((grants, revision))
    }

    async fn changes_since(
        &self,
        after: Revision,
    ) -> StoreResult<(Vec<(Revision, String)>, Revision)> {
        let current = self.revision().await?;
        if current <= after || current.0 - after.0 > super::MAX_CHANGES_READ {
            return Ok((Vec::new(), current));
        }
        let rows = sqlx::query("SELECT revision, key FROM changes WHERE revision > $1 AND revision <= $2 ORDER BY revision, key")
            .bind(rev_i64(after))
            .bind(rev_i64(current))
            .fetch_all(&self.pool)
            .await?;
        let changes = rows
            .iter()
            .map(|r| Ok((rev_from(col(r, "revision")?), col::<String>(r, "key")?)))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok((changes, current))
    }

    async fn prune_changes(&self, before: Revision) -> StoreResult<()> {
        sqlx::query("DELETE FROM changes WHERE revision < $1")
            .bind(rev_i64(before))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn listen_for_changes(&self) -> StoreResult<Option<super::listener::ChangeListener>> {
        match &self.listen_url {
            Some(url) => Ok(Some(super::listener::ChangeListener::connect(url).await?)),
            None => Ok(None),
        }
    }

    async fn client_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<Caller>> {
        let row = sqlx::query(
            "SELECT client_id, key_hash, tenants, capabilities, created_at, revoked_at FROM clients \
             WHERE key_hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored_hash: String = col(&row, "key_hash")?;
        if !bool::from(stored_hash.as_bytes().ct_eq(key_hash.as_bytes())) {
            return Ok(None);
        }
        Ok(Some(client_from(&row)?.caller))
    }

    async fn put_tenant(&self, ctx: &WriteCtx, tenant: &Tenant) -> StoreResult<(Revision, bool)> {
        let mut w = self.begin_write().await?;
        let id = &tenant.tenant_id;
        let after = Some(json::tenant_value(tenant));
        let Some(existing) = tenant_in(w.conn(), id).await? else {
            rules::create_tenant(&ctx.caller)?;
            sqlx::query("INSERT INTO tenants (tenant_id, environment, whitelisting_enabled) VALUES ($1, $2, $3)")
                .bind(id.as_str())
                .bind(tenant.environment.as_str())
                .bind(i64::from(tenant.whitelisting_enabled))
                .execute(w.conn())
                .await
                .map_err(conflict("the tenant was created concurrently"))?;
            let audit = Audit {
                action: "PutTenant",
                tenant: Some(id.clone()),
                target: format!("tenant:{id}"),
                before: None,
                after,
            };
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
        let audit = Audit {
            action: "PutTenant",
            tenant: Some(id.clone()),
            target: format!("tenant:{id}"),
            before,
            after,
        };
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
        let audit = Audit {
            action: "PutUser",
            tenant: Some(tenant.clone()),
            target: format!("user:{user}"),
            before: before.map(|r| json::user_value(user.as_str(), r)),
            after: Some(json::user_value(user.as_str(), roles)),
        };
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
        }
        let audit = Audit {
            action: "DeleteUser",
            tenant: Some(tenant.clone()),
            target: format!("user:{user}"),
            before: Some(before),
            after: None,
        };
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
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        require_user(w.conn(), tenant, user).await?;
        let before: Option<i64> = sqlx::query_scalar(
            "SELECT right_level FROM user_rights WHERE tenant_id = $1 AND user_id = $2 AND resource = $3",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(resource.as_str())
        .fetch_optional(w.conn())
        .await?;
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
        let before = before
            .map(json::right_from_code)
            .transpose()?
            .map(|r| json::right_value(user.as_str(), resource, r));
        let audit = Audit {
            action: "GrantUserRight",
            tenant: Some(tenant.clone()),
            target: format!("user:{user}"),
            before,
            after: Some(json::right_value(user.as_str(), resource, right)),
        };
        w.commit_as(ctx, audit).await
    }

    async fn revoke_user_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        resource: &ResourcePath,
        right: Option<Right>,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        require_tenant(w.conn(), tenant).await?;
        require_user(w.conn(), tenant, user).await?;
        let held: Option<i64> = sqlx::query_scalar(
            "SELECT right_level FROM user_rights WHERE tenant_id = $1 AND user_id = $2 AND resource = $3",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(resource.as_str())
        .fetch_optional(w.conn())
        .await?;
        let held = held.map(json::right_from_code).transpose()?;
        let held = match (held, right) {
            (None, _) => {
                return Err(not_found(format!(
                    "user {user} holds no right at {resource}"
                )));
            }
            (Some(h), Some(r)) if h != r => {
                return Err(not_found(format!(
                    "user {user} holds {h} at {resource}, not {r}"
                )));
            }
            (Some(h), _) => h,
        };
        sqlx::query(
            "DELETE FROM user_rights WHERE tenant_id = $1 AND user_id = $2 AND resource = $3",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(resource.as_str())
        .execute(w.conn())
        .await?;
        let audit = Audit {
            action: "RevokeUserRight",
            tenant: Some(tenant.clone()),
            target: format!("user:{user}"),
            before: Some(json::right_value(user.as_str(), resource, held)),
            after: None,
        };
        w.commit_as(ctx, audit).await
    }

    async fn register_app(
        &self,
        ctx: &WriteCtx,
        app_id: &AppId,
        name: &Name,
        kind: AppKind,
        manifest: &Manifest,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        rules::manage_apps(&ctx.caller)?;
        if app_in(w.conn(), app_id).await?.is_some() {
            return Err(StoreError::AlreadyExists(format!(
                "app {app_id} is already registered"
            )));
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
            .map_err(conflict("the app was registered concurrently"))?;
        let audit = Audit {
            action: "RegisterApp",
            tenant: None,
            target: format!("app:{app_id}"),
            before: None,
            after: Some(json::app_value(&app)),
        };
        w.commit_as(ctx, audit).await
    }

    async fn update_app_manifest(
        &self,
        ctx: &WriteCtx,
        app_id: &AppId,
        manifest: &Manifest,
    ) -> StoreResult<(Revision, i64)> {
        let mut w = self.begin_write().await?;
        let app = require_app(w.conn(), app_id).await?;
        rules::manage_apps(&ctx.caller)?;
        if app.manifest == *manifest {
            // Nothing changes: no new manifest revision, nothing written (the transaction rolls back).
            return Ok((w.previous(), app.manifest_revision));
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
        let audit = Audit {
            action: "UpdateAppManifest",
            tenant: None,
            target: format!("app:{app_id}"),
            before: Some(json::app_value(&app)),
            after: Some(json::app_value(&updated)),
        };
        Ok((w.commit_as(ctx, audit).await?, updated.manifest_revision))
    }

    async fn unregister_app(&self, ctx: &WriteCtx, app_id: &AppId) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        let app = require_app(w.conn(), app_id).await?;
        rules::manage_apps(&ctx.caller)?;
        let consents = sqlx::query(AssertSqlSafe(format!("SELECT c.tenant_id, {CONSENT_COLUMNS} FROM consents c WHERE c.app_id = $1 ORDER BY c.tenant_id")))
            .bind(app_id.as_str())
            .fetch_all(w.conn())
            .await?
            .iter()
            .map(|r| {
                let mut v = consent_from(r)?.map_or(Value::Null, |c| json::consent_value(app_id.as_str(), &c));
                if let Value::Object(map) = &mut v {
                    map.insert("tenant_id".into(), json!(col::<String>(r, "tenant_id")?));
                }
                Ok(v)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        let entries = sqlx::query("SELECT tenant_id, allowed_scopes, content_access FROM whitelist_entries WHERE app_id = $1 ORDER BY tenant_id")
            .bind(app_id.as_str())
            .fetch_all(w.conn())
            .await?
            .iter()
            .map(|r| {
                let mut v = whitelist_from(r)?.map_or(Value::Null, |e| json::whitelist_value(app_id.as_str(), &e));
                if let Value::Object(map) = &mut v {
                    map.insert("tenant_id".into(), json!(col::<String>(r, "tenant_id")?));
                }
                Ok(v)
            })
            .collect::<StoreResult<Vec<_>>>()?;
        sqlx::query("DELETE FROM apps WHERE app_id = $1")
            .bind(app_id.as_str())
            .execute(w.conn())
            .await?;
        let mut before = json::app_value(&app);
        if let Value::Object(map) = &mut before {
            map.insert("consents".into(), Value::Array(consents));
            map.insert("whitelist_entries".into(), Value::Array(entries));
        }
        let audit = Audit {
            action: "UnregisterApp",
            tenant: None,
            target: format!("app:{app_id}"),
            before: Some(before),
            after: None,
        };
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
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO consents (tenant_id, app_id, approved_by, approved_at, approved_manifest_revision, \
                                   approved_manifest, resolved_requests, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) \
             ON CONFLICT (tenant_id, app_id) DO UPDATE SET approved_by = excluded.approved_by, \
                approved_at = excluded.approved_at, approved_manifest_revision = excluded.approved_manifest_revision, \
                approved_manifest = excluded.approved_manifest, resolved_requests = excluded.resolved_requests, \
                revoked_at = NULL",
        )
        .bind(tenant.as_str())
        .bind(app_id.as_str())
        .bind(consent.approved_by.to_string())
        .bind(consent.approved_at.as_micros())
        .bind(consent.approved_manifest_revision)
        .bind(json::manifest_to_text(&consent.approved_manifest))
        .bind(json::resolved_to_text(&consent.resolved_requests))
        .execute(w.conn())
        .await?;
        let audit = Audit {
            action: "ApproveConsent",
            tenant: Some(tenant.clone()),
            target: format!("app:{app_id}"),
            before: existing
                .as_ref()
                .map(|c| json::consent_value(app_id.as_str(), c)),
            after: Some(json::consent_value(app_id.as_str(), &consent)),
        };
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
            .ok_or_else(|| {
                not_found(format!(
                    "app {app_id} has no consent in force in tenant {tenant}"
                ))
            })?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        rules::revoke_consent(app.kind, &actor(ctx, acting))?;
        sqlx::query("UPDATE consents SET revoked_at = $3 WHERE tenant_id = $1 AND app_id = $2")
            .bind(tenant.as_str())
            .bind(app_id.as_str())
            .bind(ctx.at.as_micros())
            .execute(w.conn())
            .await?;
        let revoked = Consent {
            revoked_at: Some(ctx.at),
            ..consent.clone()
        };
        let audit = Audit {
            action: "RevokeConsent",
            tenant: Some(tenant.clone()),
            target: format!("app:{app_id}"),
            before: Some(json::consent_value(app_id.as_str(), &consent)),
            after: Some(json::consent_value(app_id.as_str(), &revoked)),
        };
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
        let audit = Audit {
            action: "PutWhitelistEntry",
            tenant: Some(tenant.clone()),
            target: format!("app:{app_id}"),
            before: before.map(|e| json::whitelist_value(app_id.as_str(), &e)),
            after: Some(json::whitelist_value(app_id.as_str(), entry)),
        };
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
                not_found(format!(
                    "app {app_id} has no whitelist entry in tenant {tenant}"
                ))
            })?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        actor(ctx, acting).require_tenant_admin("changing the whitelist")?;
        sqlx::query("DELETE FROM whitelist_entries WHERE tenant_id = $1 AND app_id = $2")
            .bind(tenant.as_str())
            .bind(app_id.as_str())
            .execute(w.conn())
            .await?;
        let audit = Audit {
            action: "DeleteWhitelistEntry",
            tenant: Some(tenant.clone()),
            target: format!("app:{app_id}"),
            before: Some(json::whitelist_value(app_id.as_str(), &entry)),
            after: None,
        };
        w.commit_as(ctx, audit).await
    }

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
            return Err(StoreError::AlreadyExists(format!(
                "permission group {} already exists in tenant {tenant}",
                spec.group_id
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
            .map_err(conflict("the group was created concurrently"))?;
        write_acl(w.conn(), tenant, &group.group_id, &group.acl).await?;
        let audit = Audit {
            action: "CreatePermissionGroup",
            tenant: Some(tenant.clone()),
            target: format!("group:{}", group.group_id),
            before: None,
            after: Some(json::group_value(&group)),
        };
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
        let audit = Audit {
            action: "UpdatePermissionGroup",
            tenant: Some(tenant.clone()),
            target: format!("group:{}", group.group_id),
            before: Some(json::group_value(&old)),
            after: Some(json::group_value(&group)),
        };
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
        let audit = Audit {
            action: "DeletePermissionGroup",
            tenant: Some(tenant.clone()),
            target: format!("group:{group}"),
            before: Some(before),
            after: None,
        };
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
            return Err(StoreError::AlreadyExists(format!(
                "external permission {} already exists in tenant {tenant}",
                permission.permission_id
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
        .map_err(conflict(&format!(
            "group {} already has a permission with external id {:?}",
            permission.group_id,
            permission.external_id.as_str()
        )))?;
        let audit = Audit {
            action: "CreateExternalPermission",
            tenant: Some(tenant.clone()),
            target: format!("permission:{}", permission.permission_id),
            before: None,
            after: Some(json::permission_value(permission)),
        };
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
        let audit = Audit {
            action: "DeleteExternalPermission",
            tenant: Some(tenant.clone()),
            target: format!("permission:{permission}"),
            before: Some(before),
            after: None,
        };
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
        let existing = sqlx::query(
            "SELECT granted_by, granted_at, expires_at FROM external_grants WHERE tenant_id = $1 AND user_id = $2 AND permission_id = $3",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(permission.as_str())
        .fetch_optional(w.conn())
        .await?;
        let before = existing
            .as_ref()
            .map(|r| -> StoreResult<_> {
                Ok((
                    col::<String>(r, "granted_by")?,
                    Timestamp::from_micros(col(r, "granted_at")?),
                    col::<Option<i64>>(r, "expires_at")?.map(Timestamp::from_micros),
                ))
            })
            .transpose()?;
        let (granted_by, granted_at) = match &before {
            Some((by, at, _)) => (by.clone(), *at),
            None => (actor.principal().to_string(), ctx.at),
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
        .bind(&granted_by)
        .bind(granted_at.as_micros())
        .bind(expires_at.map(Timestamp::as_micros))
        .execute(w.conn())
        .await?;
        let audit = Audit {
            action: "GrantExternalPermission",
            tenant: Some(tenant.clone()),
            target: format!("user:{user}"),
            before: before.map(|(by, at, exp)| {
                json::grant_value(user.as_str(), permission.as_str(), &by, at, exp)
            }),
            after: Some(json::grant_value(
                user.as_str(),
                permission.as_str(),
                &granted_by,
                granted_at,
                expires_at,
            )),
        };
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
        let existing = sqlx::query(
            "SELECT granted_by, granted_at, expires_at FROM external_grants WHERE tenant_id = $1 AND user_id = $2 AND permission_id = $3",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(permission.as_str())
        .fetch_optional(w.conn())
        .await?
        .ok_or_else(|| not_found(format!("user {user} holds no grant of {permission}")))?;
        let group = require_group(w.conn(), tenant, &perm.group_id).await?;
        let acting = acting_roles(w.conn(), ctx, tenant).await?;
        rules::grant_external(&group.acl, &actor(ctx, acting))?;
        sqlx::query("DELETE FROM external_grants WHERE tenant_id = $1 AND user_id = $2 AND permission_id = $3")
            .bind(tenant.as_str())
            .bind(user.as_str())
            .bind(permission.as_str())
            .execute(w.conn())
            .await?;
        let before = json::grant_value(
            user.as_str(),
            permission.as_str(),
            &col::<String>(&existing, "granted_by")?,
            Timestamp::from_micros(col(&existing, "granted_at")?),
            col::<Option<i64>>(&existing, "expires_at")?.map(Timestamp::from_micros),
        );
        let audit = Audit {
            action: "RevokeExternalPermission",
            tenant: Some(tenant.clone()),
            target: format!("user:{user}"),
            before: Some(before),
            after: None,
        };
        w.commit_as(ctx, audit).await
    }

    async fn create_client(
        &self,
        ctx: Option<&WriteCtx>,
        client_id: &ClientId,
        tenants: &TenantBounds,
        capabilities: Capabilities,
        key_hash: &str,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        if let Some(ctx) = ctx {
            rules::manage_client(&ctx.caller, tenants, capabilities)?;
        }
        let exists: Option<String> =
            sqlx::query_scalar("SELECT client_id FROM clients WHERE client_id = $1")
                .bind(client_id.as_str())
                .fetch_optional(w.conn())
                .await?;
        if exists.is_some() {
            return Err(StoreError::AlreadyExists(format!(
                "client {client_id} already exists (client ids are never reused)"
            )));
        }
        let at = ctx.map_or_else(Timestamp::now, |c| c.at);
        sqlx::query(
            "INSERT INTO clients (client_id, key_hash, tenants, capabilities, created_at, revoked_at) VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .bind(client_id.as_str())
        .bind(key_hash)
        .bind(json::strings_to_text(tenants.to_strings()))
        .bind(i64::from(capabilities.bits()))
        .bind(at.as_micros())
        .execute(w.conn())
        .await
        .map_err(conflict("the client was created concurrently"))?;
        let caller = Caller {
            client_id: client_id.clone(),
            tenants: tenants.clone(),
            capabilities,
        };
        let audit = Audit {
            action: "CreateClient",
            tenant: None,
            target: format!("client:{client_id}"),
            before: None,
            after: Some(json::client_parts_value(&caller, Some(at), None)),
        };
        match ctx {
            Some(ctx) => w.commit_as(ctx, audit).await,
            None => w.commit((CLI_ACTOR, None), at, audit).await,
        }
    }

    async fn revoke_client(
        &self,
        ctx: Option<&WriteCtx>,
        client_id: &ClientId,
    ) -> StoreResult<Revision> {
        let mut w = self.begin_write().await?;
        let row = sqlx::query("SELECT client_id, tenants, capabilities, created_at, revoked_at FROM clients WHERE client_id = $1")
            .bind(client_id.as_str())
            .fetch_optional(w.conn())
            .await?;
        let record = row
            .as_ref()
            .map(client_from)
            .transpose()?
            .filter(|c| c.revoked_at.is_none());
        let record = record.ok_or_else(|| {
            not_found(format!(
                "client {client_id} does not exist or is already revoked"
            ))
        })?;
        if let Some(ctx) = ctx {
            rules::manage_client(
                &ctx.caller,
                &record.caller.tenants,
                record.caller.capabilities,
            )?;
        }
        let at = ctx.map_or_else(Timestamp::now, |c| c.at);
        sqlx::query("UPDATE clients SET revoked_at = $2 WHERE client_id = $1")
            .bind(client_id.as_str())
            .bind(at.as_micros())
            .execute(w.conn())
            .await?;
        let revoked = ClientRecord {
            revoked_at: Some(at),
            ..record.clone()
        };
        let audit = Audit {
            action: "RevokeClient",
            tenant: None,
            target: format!("client:{client_id}"),
            before: Some(json::client_value(&record)),
            after: Some(json::client_value(&revoked)),
        };
        match ctx {
            Some(ctx) => w.commit_as(ctx, audit).await,
            None => w.commit((CLI_ACTOR, None), at, audit).await,
        }
    }

    async fn ensure_bootstrap_client(&self, key_hash: &str) -> StoreResult<BootstrapOutcome> {
        let mut w = self.begin_write().await?;
        let revoked_at: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM clients WHERE client_id = 'bootstrap'")
                .fetch_optional(w.conn())
                .await?;
        match revoked_at {
            Some(Some(_)) => return Ok(BootstrapOutcome::Revoked),
            Some(None) => return Ok(BootstrapOutcome::Exists),
            None => {}
        }
        let at = Timestamp::now();
        let caller = Caller {
            client_id: stored(ClientId::parse("client_id", "bootstrap"))?,
            tenants: TenantBounds::All,
            capabilities: Capabilities::all(),
        };
        sqlx::query(
            "INSERT INTO clients (client_id, key_hash, tenants, capabilities, created_at, revoked_at) VALUES ('bootstrap', $1, $2, $3, $4, NULL)",
        )
        .bind(key_hash)
        .bind(json::strings_to_text(caller.tenants.to_strings()))
        .bind(i64::from(caller.capabilities.bits()))
        .bind(at.as_micros())
        .execute(w.conn())
        .await
        .map_err(conflict("another client already holds this key"))?;
        let audit = Audit {
            action: "CreateClient",
            tenant: None,
            target: "client:bootstrap".into(),
            before: None,
            after: Some(json::client_parts_value(&caller, Some(at), None)),
        };
        w.commit((BOOTSTRAP_ACTOR, None), at, audit).await?;
        Ok(BootstrapOutcome::Created)
    }

    async fn list_tenants(
        &self,
        bounds: &TenantBounds,
        page: &PageRequest,
    ) -> StoreResult<Page<Tenant>> {
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
            .bind(page.after.as_deref().unwrap_or(""))
            .bind(fetch_limit(page));
        for t in only {
            query = query.bind(t);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let items = rows
            .iter()
            .map(tenant_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |t| t.tenant_id.to_string()))
    }

    async fn list_apps(&self, page: &PageRequest) -> StoreResult<Page<App>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {APP_COLUMNS} FROM apps a WHERE a.app_id > $1 ORDER BY a.app_id LIMIT $2"
        )))
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(fetch_limit(page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(app_from).collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |a| a.app_id.to_string()))
    }

    async fn list_clients(&self, page: &PageRequest) -> StoreResult<Page<ClientRecord>> {
        let rows = sqlx::query(
            "SELECT client_id, tenants, capabilities, created_at, revoked_at FROM clients WHERE client_id > $1 ORDER BY client_id LIMIT $2",
        )
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(fetch_limit(page))
        .fetch_all(&self.pool)
        .await?;
        let items = rows
            .iter()
            .map(client_from)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(paged(items, page.limit, |c| c.caller.client_id.to_string()))
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<(UserId, RoleSet)>> {
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
        Ok(paged(items, page.limit, |(u, _)| u.to_string()))
    }

    async fn list_consents(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<(AppId, Consent)>> {
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
        Ok(paged(items, page.limit, |(a, _)| a.to_string()))
    }

    async fn list_whitelist_entries(
        &self,
        tenant: &TenantId,
        page: &PageRequest,
    ) -> StoreResult<Page<(AppId, WhitelistEntry)>> {
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
        Ok(paged(items, page.limit, |(a, _)| a.to_string()))
    }

    async fn list_groups(
        &self,
        tenant: &TenantId,
        viewer: &Viewer,
        page: &PageRequest,
    ) -> StoreResult<Page<GroupWithPermissions>> {
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
        .bind(page.after.as_deref().unwrap_or(""))
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
        Ok(paged(items, page.limit, |g| g.group.group_id.to_string()))
    }

    async fn list_user_rights(
        &self,
        tenant: &TenantId,
        user: &UserId,
        page: &PageRequest,
    ) -> StoreResult<Page<(ResourcePath, Right)>> {
        let mut conn = self.conn().await?;
        require_tenant(&mut conn, tenant).await?;
        require_user(&mut conn, tenant, user).await?;
        let rows = sqlx::query(
            "SELECT resource, right_level FROM user_rights WHERE tenant_id = $1 AND user_id = $2 AND resource > $3 \
             ORDER BY resource LIMIT $4",
        )
        .bind(tenant.as_str())
        .bind(user.as_str())
        .bind(page.after.as_deref().unwrap_or(""))
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
        Ok(paged(items, page.limit, |(p, _)| p.to_string()))
    }

    async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<AuditEvent>> {
        let after: i64 = page
            .after
            .as_deref()
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
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
            "SELECT revision, at, actor_client, actor_user, action, tenant_id, target, before, after FROM audit_events \
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
            .bind(filter.target.as_deref().unwrap_or(""))
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
                    revision: rev_from(col(r, "revision")?),
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
        Ok(paged(items, page.limit, |e| e.revision.0.to_string()))
    }
}

/// Pages grants by their (group, permission) key, joined by a newline (which no id contains).
fn page_of_grants(grants: Vec<GrantView>, limit: u32) -> Page<GrantView> {
    paged(grants, limit, |g| {
        format!("{}\n{}", g.group_id, g.permission_id)
    })
}
