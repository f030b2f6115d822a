//! [`SqlStore`]: the [`Store`] over sqlx's `Any` driver. Every statement here runs unchanged on
//! Postgres and SQLite (`$n` placeholders, integer flags and times, JSON text for lists).
//!
//! By concern: `rows` (rows to domain values), `facts` (reads inside a connection or write
//! transaction), `audit` (the write transaction with its audit event and change-log keys),
//! `snapshots` (what the caches load), one module per family of writes (`tenants`, `apps`,
//! `external`, `clients`, `app_rights`) and `lists` (the AdminService lists). The `Store` implementation below
//! only hands each call to the module that does it.

use crate::domain::Entity;
use async_trait::async_trait;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Decode, Row, Transaction, Type};
use subtle::ConstantTimeEq;

use super::change::ChangeKey;
use super::json;
use super::{
    AuditEvent, AuditFilter, Backend, BootstrapOutcome, ChangeRead, ClientRecord, GrantKey,
    GrantQuery, GroupSpec, GroupWithPermissions, Page, PageRequest, PageSecret, PermissionRef,
    Store, StoreError, StoreResult, WriteCtx,
};
use crate::domain::consent::{app_right, carried_app_rights, resolve_requests};
use crate::domain::rules;
use crate::domain::{
    Actor, ApiUser, App, AppId, AppKind, AppSnapshot, Caller, Capabilities, ClientId, Consent,
    Description, Environment, ExternalCatalog, ExternalId, ExternalPermission, GrantView, GroupAcl,
    GroupId, ManagerAccess, Manifest, Name, PermissionGroup, PermissionId, Principal,
    ResolvedRequest, ResourcePath, Revision, Right, RoleSet, Tag, Tenant, TenantBounds, TenantId,
    Timestamp, UserGrant, UserId, UserSnapshot, Viewer, WhitelistEntry,
};

/// The actor recorded for writes made by the operator's CLI, which has no client.
pub const CLI_ACTOR: &str = "(cli)";
/// The actor recorded for the bootstrap client's creation at start.
pub const BOOTSTRAP_ACTOR: &str = "(bootstrap)";

/// The store over a Postgres or SQLite pool.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// Where a change listener connects (Postgres only); never logged.
    listen_url: Option<String>,
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the listener's URL: it may carry a password.
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .field("listens", &self.listen_url.is_some())
            .finish_non_exhaustive()
    }
}

mod app_rights;
mod apps;
mod audit;
mod changes;
mod clients;
mod external;
mod facts;
mod lists;
mod rows;
mod settings;
mod snapshots;
mod tenants;

use audit::*;
use facts::*;
use rows::*;

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
            revision: Revision(rev_from(value).0, fresh_tag()),
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
        page: &PageRequest<impl AsRef<str>>,
    ) -> StoreResult<Vec<AnyRow>> {
        let mut conn = self.conn().await?;
        require_tenant(&mut conn, tenant).await?;
        Ok(sqlx::query(AssertSqlSafe(sql.into()))
            .bind(tenant.as_str())
            .bind(page.after.as_ref().map_or("", AsRef::as_ref))
            .bind(fetch_limit(page))
            .fetch_all(&mut *conn)
            .await?)
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn revision(&self) -> StoreResult<Revision> {
        SqlStore::revision(self).await
    }

    async fn app_snapshot(
        &self,
        tenant: &TenantId,
        app: &AppId,
    ) -> StoreResult<(AppSnapshot, Revision)> {
        SqlStore::app_snapshot(self, tenant, app).await
    }

    async fn user_snapshot(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<(Option<UserSnapshot>, Revision)> {
        SqlStore::user_snapshot(self, tenant, user).await
    }

    async fn tenant(&self, tenant: &TenantId) -> StoreResult<Option<Tenant>> {
        SqlStore::tenant(self, tenant).await
    }

    async fn list_user_grants(
        &self,
        tenant: &TenantId,
        user: &UserId,
        query: &GrantQuery,
        page: &PageRequest<GrantKey>,
    ) -> StoreResult<(Page<GrantView, GrantKey>, Revision)> {
        SqlStore::list_user_grants(self, tenant, user, query, page).await
    }

    async fn find_grant(
        &self,
        tenant: &TenantId,
        user: &UserId,
        permission: &PermissionRef,
        viewer: &Viewer,
    ) -> StoreResult<(Option<GrantView>, Revision)> {
        SqlStore::find_grant(self, tenant, user, permission, viewer).await
    }

    async fn external_catalog(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<(Option<ExternalCatalog>, Revision)> {
        SqlStore::external_catalog(self, tenant).await
    }

    async fn user_grants(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<(Vec<UserGrant>, Revision)> {
        SqlStore::user_grants(self, tenant, user).await
    }

    async fn changes_since(&self, after: Revision) -> StoreResult<ChangeRead> {
        SqlStore::changes_since(self, after).await
    }

    async fn revision_tag(&self, number: u64) -> StoreResult<Option<Tag>> {
        SqlStore::revision_tag(self, number).await
    }

    async fn prune_changes(&self, before: Revision) -> StoreResult<()> {
        SqlStore::prune_changes(self, before).await
    }

    async fn listen_for_changes(&self) -> StoreResult<Option<super::listener::ChangeListener>> {
        SqlStore::listen_for_changes(self).await
    }

    async fn try_connect(&self) -> StoreResult<()> {
        SqlStore::try_connect(self).await
    }

    async fn client_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<Caller>> {
        SqlStore::client_by_key_hash(self, key_hash).await
    }

    async fn put_tenant(&self, ctx: &WriteCtx, tenant: &Tenant) -> StoreResult<(Revision, bool)> {
        SqlStore::put_tenant(self, ctx, tenant).await
    }

    async fn put_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        roles: RoleSet,
    ) -> StoreResult<Revision> {
        SqlStore::put_user(self, ctx, tenant, user, roles).await
    }

    async fn delete_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Revision> {
        SqlStore::delete_user(self, ctx, tenant, user).await
    }

    async fn put_api_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        api_user: &ApiUser,
    ) -> StoreResult<Revision> {
        SqlStore::put_api_user(self, ctx, tenant, user, api_user).await
    }

    async fn delete_api_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Revision> {
        SqlStore::delete_api_user(self, ctx, tenant, user).await
    }

    async fn grant_user_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision> {
        SqlStore::grant_user_right(self, ctx, tenant, user, resource, right).await
    }

    async fn revoke_user_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision> {
        SqlStore::revoke_user_right(self, ctx, tenant, user, resource, right).await
    }

    async fn register_app(
        &self,
        ctx: &WriteCtx,
        app_id: &AppId,
        name: &Name,
        kind: AppKind,
        manifest: &Manifest,
    ) -> StoreResult<Revision> {
        SqlStore::register_app(self, ctx, app_id, name, kind, manifest).await
    }

    async fn update_app_manifest(
        &self,
        ctx: &WriteCtx,
        app_id: &AppId,
        manifest: &Manifest,
    ) -> StoreResult<(Revision, i64)> {
        SqlStore::update_app_manifest(self, ctx, app_id, manifest).await
    }

    async fn unregister_app(&self, ctx: &WriteCtx, app_id: &AppId) -> StoreResult<Revision> {
        SqlStore::unregister_app(self, ctx, app_id).await
    }

    async fn approve_consent(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        manifest_revision: i64,
        resolved: Vec<ResolvedRequest>,
    ) -> StoreResult<(Revision, Consent)> {
        SqlStore::approve_consent(self, ctx, tenant, app_id, manifest_revision, resolved).await
    }

    async fn revoke_consent(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
    ) -> StoreResult<Revision> {
        SqlStore::revoke_consent(self, ctx, tenant, app_id).await
    }

    async fn put_whitelist_entry(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        entry: &WhitelistEntry,
    ) -> StoreResult<Revision> {
        SqlStore::put_whitelist_entry(self, ctx, tenant, app_id, entry).await
    }

    async fn delete_whitelist_entry(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
    ) -> StoreResult<Revision> {
        SqlStore::delete_whitelist_entry(self, ctx, tenant, app_id).await
    }

    async fn create_group(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        spec: GroupSpec,
    ) -> StoreResult<(Revision, PermissionGroup)> {
        SqlStore::create_group(self, ctx, tenant, spec).await
    }

    async fn update_group(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        spec: GroupSpec,
    ) -> StoreResult<(Revision, GroupWithPermissions)> {
        SqlStore::update_group(self, ctx, tenant, spec).await
    }

    async fn delete_group(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        group: &GroupId,
    ) -> StoreResult<Revision> {
        SqlStore::delete_group(self, ctx, tenant, group).await
    }

    async fn create_permission(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        permission: &ExternalPermission,
    ) -> StoreResult<Revision> {
        SqlStore::create_permission(self, ctx, tenant, permission).await
    }

    async fn delete_permission(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        permission: &PermissionId,
    ) -> StoreResult<Revision> {
        SqlStore::delete_permission(self, ctx, tenant, permission).await
    }

    async fn grant_external(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        permission: &PermissionId,
        expires_at: Option<Timestamp>,
    ) -> StoreResult<Revision> {
        SqlStore::grant_external(self, ctx, tenant, user, permission, expires_at).await
    }

    async fn revoke_external(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        permission: &PermissionId,
    ) -> StoreResult<Revision> {
        SqlStore::revoke_external(self, ctx, tenant, user, permission).await
    }

    async fn create_client(
        &self,
        ctx: Option<&WriteCtx>,
        client_id: &ClientId,
        tenants: &TenantBounds,
        capabilities: Capabilities,
        key_hash: &str,
    ) -> StoreResult<Revision> {
        SqlStore::create_client(self, ctx, client_id, tenants, capabilities, key_hash).await
    }

    async fn revoke_client(
        &self,
        ctx: Option<&WriteCtx>,
        client_id: &ClientId,
    ) -> StoreResult<Revision> {
        SqlStore::revoke_client(self, ctx, client_id).await
    }

    async fn ensure_bootstrap_client(&self, key_hash: &str) -> StoreResult<BootstrapOutcome> {
        SqlStore::ensure_bootstrap_client(self, key_hash).await
    }

    async fn list_tenants(
        &self,
        bounds: &TenantBounds,
        page: &PageRequest<TenantId>,
    ) -> StoreResult<Page<Tenant, TenantId>> {
        SqlStore::list_tenants(self, bounds, page).await
    }

    async fn list_apps(&self, page: &PageRequest<AppId>) -> StoreResult<Page<App, AppId>> {
        SqlStore::list_apps(self, page).await
    }

    async fn list_clients(
        &self,
        page: &PageRequest<ClientId>,
    ) -> StoreResult<Page<ClientRecord, ClientId>> {
        SqlStore::list_clients(self, page).await
    }

    async fn list_users(
        &self,
        tenant: &TenantId,
        page: &PageRequest<UserId>,
    ) -> StoreResult<Page<(UserId, RoleSet), UserId>> {
        SqlStore::list_users(self, tenant, page).await
    }

    async fn list_api_users(
        &self,
        tenant: &TenantId,
        page: &PageRequest<UserId>,
    ) -> StoreResult<Page<(UserId, ApiUser), UserId>> {
        SqlStore::list_api_users(self, tenant, page).await
    }

    async fn list_consents(
        &self,
        tenant: &TenantId,
        page: &PageRequest<AppId>,
    ) -> StoreResult<Page<(AppId, Consent), AppId>> {
        SqlStore::list_consents(self, tenant, page).await
    }

    async fn list_whitelist_entries(
        &self,
        tenant: &TenantId,
        page: &PageRequest<AppId>,
    ) -> StoreResult<Page<(AppId, WhitelistEntry), AppId>> {
        SqlStore::list_whitelist_entries(self, tenant, page).await
    }

    async fn list_groups(
        &self,
        tenant: &TenantId,
        viewer: &Viewer,
        page: &PageRequest<GroupId>,
    ) -> StoreResult<Page<GroupWithPermissions, GroupId>> {
        SqlStore::list_groups(self, tenant, viewer, page).await
    }

    async fn list_user_rights(
        &self,
        tenant: &TenantId,
        user: &UserId,
        page: &PageRequest<ResourcePath>,
    ) -> StoreResult<Page<(ResourcePath, Right), ResourcePath>> {
        SqlStore::list_user_rights(self, tenant, user, page).await
    }

    async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest<Revision>,
    ) -> StoreResult<Page<AuditEvent, Revision>> {
        SqlStore::list_audit_events(self, filter, page).await
    }

    async fn grant_app_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision> {
        SqlStore::grant_app_right(self, ctx, tenant, app_id, resource, right).await
    }

    async fn revoke_app_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision> {
        SqlStore::revoke_app_right(self, ctx, tenant, app_id, resource, right).await
    }

    async fn page_token_secret(&self, candidate: &PageSecret) -> StoreResult<PageSecret> {
        SqlStore::page_token_secret(self, candidate).await
    }
}
