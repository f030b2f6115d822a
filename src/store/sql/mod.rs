//! [`SqlStore`]: the [`Store`] over sqlx's `Any` driver. Every statement here runs unchanged on
//! Postgres and SQLite (`$n` placeholders, integer flags and times, JSON text for lists).
//!
//! Each role trait of the store is implemented in the module that holds its SQL, with no layer
//! in between: `snapshots` ([`Snapshots`], what the caches load), `changes` ([`ChangeLog`]),
//! `clients` ([`ClientKeys`] and [`ClientWrites`]), one module per family of writes (`tenants`,
//! `apps`, `app_rights`, `external`), `lists` ([`Lists`], what the AdminService reads) and
//! `settings` ([`Settings`]). Beside them: `rows` (rows to domain values), `facts` (reads inside
//! a connection or write transaction) and `audit` (the write transaction with its audit event
//! and change-log keys). Here: the pool, and [`SqlStore::begin_write`], which takes the write
//! lock.

use crate::domain::Entity;
use async_trait::async_trait;
use serde_json::{Value, json};
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, AnyPool, AssertSqlSafe, Decode, Row, Transaction, Type};

#[cfg(doc)]
use super::Store;
use super::change::ChangeKey;
use super::json;
use super::{
    AppRightWrites, AppWrites, AuditEvent, AuditFilter, Backend, BootstrapOutcome, ChangeLog,
    ChangeRead, ClientKeys, ClientRecord, ClientWrites, ExternalWrites, GrantKey, GrantQuery,
    GroupSpec, GroupWithPermissions, Lists, Page, PageRequest, PageSecret, PermissionRef, Settings,
    Snapshots, StoreError, StoreResult, TenantWrites, WriteCtx,
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
    /// Hot standbys that snapshot loads may go to (none unless `--database-read-url`).
    replicas: Arc<Replicas>,
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
mod replicas;
mod rows;
mod settings;
mod snapshots;
mod tenants;

use audit::*;
use facts::*;
use rows::*;

pub use replicas::{ReadFrom, Replicas};
use std::future::Future;
use std::sync::Arc;

/// Runs the read `read`, and once more if its connection turned out broken under it: a pooled
/// connection reused without a ping (see `backend::PING_IF_IDLE_FOR`) may have died since it was
/// returned. The pool drops it, the error has every pool ping before use for a while, and the
/// second read gets a connection that answers. A database that is really gone fails it too.
/// Only for work that has written nothing when it returns (reads, and a write transaction's
/// opening in `begin_write`): a commit is never repeated behind its caller's back.
async fn read_again_if_dropped<T, F, Fut>(read: F) -> StoreResult<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    match read().await {
        Err(StoreError::Unavailable(e)) if e.is_broken_connection() => {
            tracing::debug!(error = %e, "read on a dropped connection, read again");
            read().await
        }
        answer => answer,
    }
}

impl SqlStore {
    /// A store over `pool` (made with `backend::pool_options`), whose schema is migrated for
    /// `backend`.
    pub fn new(pool: AnyPool, backend: Backend) -> Self {
        Self {
            pool,
            replicas: Arc::new(Replicas::default()),
            backend,
            listen_url: None,
        }
    }

    /// The same store, with snapshot loads that may go to `replicas`.
    pub fn with_replicas(mut self, replicas: Replicas) -> Self {
        self.replicas = Arc::new(replicas);
        self
    }

    /// The store's read replicas.
    pub fn replicas(&self) -> &Replicas {
        &self.replicas
    }

    /// A snapshot read: on a replica when `from` allows it and one has replayed far enough,
    /// else on the primary.
    async fn snapshot<T, F, Fut>(&self, from: ReadFrom, read: F) -> StoreResult<(T, Revision)>
    where
        F: Fn(AnyPool) -> Fut,
        Fut: Future<Output = StoreResult<(T, Revision)>>,
    {
        if let Some(answer) = self.replicas.read(from, &read).await {
            return Ok(answer);
        }
        read_again_if_dropped(|| read(self.pool.clone())).await
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
        // Nothing is written until the transaction commits, so its first statement meeting a
        // dropped connection is begun again like a read; a commit is never repeated.
        let (tx, value) = read_again_if_dropped(|| async {
            let mut tx = self.pool.begin().await?;
            let value: i64 = sqlx::query_scalar(
                "UPDATE revision SET value = value + 1 WHERE id = 1 RETURNING value",
            )
            .fetch_one(&mut *tx)
            .await?;
            Ok((tx, value))
        })
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
