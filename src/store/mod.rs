//! The store: every fact consentry knows, behind one [`Store`] trait in domain terms.
//!
//! Architecture invariant: the rest of the crate sees only this trait and domain types; SQL,
//! sqlx and the backend live below it. [`SqlStore`] is the one implementation: the same SQL
//! statements run on Postgres (production, shared by many instances) and on an embedded SQLite
//! file (the zero-set-up default for one process), through sqlx's `Any` driver. What differs per
//! backend (connecting, migrations) is in [`backend`].
//!
//! Every write is one transaction that bumps the revision first, enforces the rules of
//! DESIGN.md §6 through the domain's pure rule functions on facts read inside that same
//! transaction, appends its audit event, and commits, or leaves no trace at all.

pub mod backend;
pub mod change;
mod json;
pub mod listener;
pub mod occupancy;
mod sql;

use async_trait::async_trait;

use crate::domain::{
    ApiUser, App, AppId, AppKind, AppSnapshot, Caller, Capabilities, ClientId, Consent,
    Description, ExternalCatalog, ExternalPermission, GrantView, GroupAcl, GroupId, Manifest, Name,
    PermissionGroup, PermissionId, Principal, ResolvedRequest, ResourcePath, Revision, Right,
    RoleSet, RuleError, Tag, Tenant, TenantBounds, TenantId, Timestamp, UserGrant, UserId,
    UserSnapshot, ValidationError, Viewer, WhitelistEntry,
};

use crate::domain::{AlreadyExists, AuditTarget, NotFound};
pub use crate::domain::{Entity, PermissionRef};
pub use backend::{Backend, connect, lazy, migrate, open};
pub use sql::SqlStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Something named does not exist.
    #[error("{}", NotFound(.0.clone()))]
    NotFound(Entity),
    /// Something created already exists.
    #[error("{}", AlreadyExists(.0.clone()))]
    AlreadyExists(Entity),
    /// The write was based on something that changed since (e.g. a manifest revision).
    #[error("{0}")]
    Aborted(String),
    /// A rule of DESIGN.md §6 refuses the write.
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The input does not fit the facts (e.g. resolved requests for another manifest).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The database failed or could not be reached.
    #[error("the store is unavailable: {0}")]
    Unavailable(#[source] DatabaseError),
    /// A row could not be read back into the domain.
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    /// One failure shared by every caller that waited on the same load.
    #[error(transparent)]
    Shared(std::sync::Arc<StoreError>),
}

impl StoreError {
    /// Whether the store could not be reached, or refused the connection (no connection, a
    /// dropped one, a database shutting down, a password or a CONNECT right refused, no free
    /// connection slot, no such database), as opposed to failing one statement.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Unavailable(e) => backend::is_connection_error(&e.0),
            StoreError::Shared(inner) => inner.is_unreachable(),
            _ => false,
        }
    }

    /// Whether a statement gave up waiting for a pooled connection, which does not say why none
    /// came (sqlx retries a refused connection, or one the database has no slot for, until then).
    pub fn is_pool_timeout(&self) -> bool {
        match self {
            StoreError::Unavailable(e) => matches!(e.0, sqlx::Error::PoolTimedOut),
            StoreError::Shared(inner) => inner.is_pool_timeout(),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Unavailable(DatabaseError(e))
    }
}

/// What the database said when it failed: opaque outside the store (logged, never shown to a
/// caller, and no sqlx type in the store's interface). An error the database returned reads as
/// its message and SQLSTATE (`password authentication failed for user "x" (SQLSTATE 28P01)`);
/// neither holds the URL or a password.
#[derive(Debug)]
pub struct DatabaseError(sqlx::Error);

impl std::fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            sqlx::Error::Database(db) => match db.code() {
                Some(code) => write!(f, "{} (SQLSTATE {code})", db.message()),
                None => write!(f, "{}", db.message()),
            },
            e => e.fmt(f),
        }
    }
}

impl std::error::Error for DatabaseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0 {
            // Its message is said above already.
            sqlx::Error::Database(_) => None,
            e => e.source(),
        }
    }
}

/// The most revisions of change log read at once; see [`Store::changes_since`].
pub const MAX_CHANGES_READ: u64 = 10_000;

/// One read of the change log ([`Store::changes_since`]).
#[derive(Debug, Clone)]
pub struct ChangeRead {
    /// The newest committed revision, with its tag.
    pub head: Revision,
    /// Whether the store still holds the revision the read started after, with the tag the
    /// reader knows, and a head no lower: the history the reader applied goes on. When it does
    /// not, `changes` is empty.
    pub same_history: bool,
    /// The changes after that revision up to `head`, in revision order, each with its tag.
    pub changes: Vec<(Revision, change::ChangeKey)>,
}

/// The result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Who is writing, and when: the authenticated client and the acting user it names.
#[derive(Debug, Clone)]
pub struct WriteCtx {
    /// The authenticated client.
    pub caller: Caller,
    /// The acting user (`x-consentry-user`), if any.
    pub acting_user: Option<UserId>,
    /// The time recorded on what the write creates and on its audit event.
    pub at: Timestamp,
}

/// A page request: at most `limit` items after the position `after`, the key of the listing's
/// last item on the previous page (typed per listing: an id, a path, a revision).
#[derive(Debug, Clone)]
pub struct PageRequest<K> {
    /// The last key of the previous page; `None` for the first page.
    pub after: Option<K>,
    /// The most items to return.
    pub limit: u32,
}

/// A page of items and the key to continue after, if there may be more.
#[derive(Debug, Clone)]
pub struct Page<T, K> {
    /// The items.
    pub items: Vec<T>,
    /// The key of the last item when the page is full; `None` on the last page.
    pub next: Option<K>,
}

/// The key grants are paged by: the group, then the permission.
pub type GrantKey = (GroupId, PermissionId);

/// The deployment's secret for page tokens: 32 random bytes, created once in the store and
/// read by every instance, so each accepts the others' tokens. Never logged.
#[derive(Clone)]
pub struct PageSecret(pub [u8; 32]);

impl PageSecret {
    /// 32 bytes from the operating system's random source.
    pub fn random() -> anyhow::Result<PageSecret> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes)
            .map_err(|e| anyhow::anyhow!("no randomness for the page-token secret: {e}"))?;
        Ok(PageSecret(bytes))
    }
}

impl std::fmt::Debug for PageSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PageSecret(..)")
    }
}

/// What to list of a user's external permission grants.
#[derive(Debug, Clone)]
pub struct GrantQuery {
    /// Who is looking: decides which groups are visible.
    pub viewer: Viewer,
    /// Only this group, if set.
    pub group: Option<GroupId>,
    /// Hide grants expired at this time.
    pub now: Timestamp,
}

/// A client as listed (never its key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// The client's id, tenants and capabilities.
    pub caller: Caller,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

/// A group with its permissions, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupWithPermissions {
    /// The group.
    pub group: PermissionGroup,
    /// Its permissions, ordered by id.
    pub permissions: Vec<ExternalPermission>,
}

/// One audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// The revision the write committed at.
    pub revision: Revision,
    /// When.
    pub at: Timestamp,
    /// The calling client (`(cli)` for the operator's CLI, `(bootstrap)` for the bootstrap key).
    pub actor_client: String,
    /// The acting user, if any.
    pub actor_user: Option<UserId>,
    /// The RPC, such as `PutTenant`.
    pub action: String,
    /// The tenant; `None` for global writes.
    pub tenant_id: Option<TenantId>,
    /// What was written, such as `user:alice`.
    pub target: String,
    /// The value before, as JSON text.
    pub before: Option<String>,
    /// The value after, as JSON text.
    pub after: Option<String>,
}

/// Filters for listing audit events; `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this tenant.
    pub tenant_id: Option<TenantId>,
    /// Only this exact target.
    pub target: Option<AuditTarget>,
    /// Only this actor: `client:<id>` matches the client, `user:<id>` the acting user.
    pub actor: Option<Principal>,
    /// Only events at or after this time.
    pub since: Option<Timestamp>,
    /// Only events the caller may see (tenant events in its tenants; global ones for `*`).
    pub visible_to: Option<TenantBounds>,
}

/// A new or replacing group's fields.
#[derive(Debug, Clone)]
pub struct GroupSpec {
    /// The group's id.
    pub group_id: GroupId,
    /// Display name.
    pub name: Name,
    /// Free text.
    pub description: Description,
    /// Managers, grantors and visible-to principals.
    pub acl: GroupAcl,
}

/// What happened to the bootstrap client at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// It did not exist and was created with the given key.
    Created,
    /// It exists and is active; the key given is not applied.
    Exists,
    /// It was revoked and stays revoked.
    Revoked,
}

/// Everything consentry reads and writes. One implementation per backend family; the same
/// behavioural test suite runs against each.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The newest committed revision.
    async fn revision(&self) -> StoreResult<Revision>;

    /// The facts a check needs about an application in a tenant, read at one revision.
    async fn app_snapshot(
        &self,
        tenant: &TenantId,
        app: &AppId,
    ) -> StoreResult<(AppSnapshot, Revision)>;

    /// A user's roles and rights in a tenant (`None` if the tenant does not know them), read at one revision.
    async fn user_snapshot(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<(Option<UserSnapshot>, Revision)>;

    /// A tenant, if it exists.
    async fn tenant(&self, tenant: &TenantId) -> StoreResult<Option<Tenant>>;

    /// A user's unexpired grants that the viewer may see, ordered by (group, permission), keyset-paged.
    /// `NotFound` if the tenant does not exist.
    async fn list_user_grants(
        &self,
        tenant: &TenantId,
        user: &UserId,
        query: &GrantQuery,
        page: &PageRequest<GrantKey>,
    ) -> StoreResult<(Page<GrantView, GrantKey>, Revision)>;

    /// A user's grant of one permission, if it exists (expired or not) and the viewer may see
    /// the permission. `NotFound` if the tenant or a visible permission does not exist.
    async fn find_grant(
        &self,
        tenant: &TenantId,
        user: &UserId,
        permission: &PermissionRef,
        viewer: &Viewer,
    ) -> StoreResult<(Option<GrantView>, Revision)>;

    /// A tenant's external permission groups and permissions (`None` if the tenant does not
    /// exist), read at one revision.
    async fn external_catalog(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<(Option<ExternalCatalog>, Revision)>;

    /// A user's external permission grants in a tenant, expired ones included, read at one revision.
    async fn user_grants(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<(Vec<UserGrant>, Revision)>;

    /// One read of the change log after `after`: the newest committed revision, whether the
    /// store's history still holds `after` (the same tag, and a head no lower), and, if it does,
    /// the changes after it in revision order up to the head. The log may have been pruned:
    /// callers check it starts at `after + 1`. More than [`MAX_CHANGES_READ`] revisions behind,
    /// it is not read at all (empty, like a pruned log): a reader that far behind starts afresh
    /// rather than apply it.
    async fn changes_since(&self, after: Revision) -> StoreResult<ChangeRead>;

    /// The tag the store records for revision `number` (see [`crate::domain::Tag`]): `None` when
    /// it records no such revision.
    async fn revision_tag(&self, number: u64) -> StoreResult<Option<Tag>>;

    /// Removes change-log rows older than `before`.
    async fn prune_changes(&self, before: Revision) -> StoreResult<()>;

    /// A subscription to committed writes, on a connection of its own; `None` where the backend
    /// cannot notify (SQLite), and the change-log poll alone follows writes.
    async fn listen_for_changes(&self) -> StoreResult<Option<listener::ChangeListener>>;

    /// Opens one connection of its own (outside the pool) and closes it again: what stands in
    /// the way of a new connection, when waiting for a pooled one timed out without saying why.
    async fn try_connect(&self) -> StoreResult<()>;

    /// The active client holding the key with this hash.
    async fn client_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<Caller>>;

    /// Creates a tenant or switches its whitelisting; returns whether it was created.
    async fn put_tenant(&self, ctx: &WriteCtx, tenant: &Tenant) -> StoreResult<(Revision, bool)>;
    /// Creates a tenant user or replaces their roles.
    async fn put_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        roles: RoleSet,
    ) -> StoreResult<Revision>;
    /// Removes a tenant user with their rights, grants, group entries and API-user record.
    async fn delete_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Revision>;
    /// Makes a tenant user an API user, or replaces their API-user record.
    async fn put_api_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        api_user: &ApiUser,
    ) -> StoreResult<Revision>;
    /// Makes an API user an ordinary tenant user again.
    async fn delete_api_user(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Revision>;
    /// Gives a user a right at a path, replacing the level held there.
    async fn grant_user_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision>;
    /// Takes a user's right at a path away: `NotFound` unless the user holds exactly `right` there.
    async fn revoke_user_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision>;
    /// Registers an application at manifest revision 1.
    async fn register_app(
        &self,
        ctx: &WriteCtx,
        app_id: &AppId,
        name: &Name,
        kind: AppKind,
        manifest: &Manifest,
    ) -> StoreResult<Revision>;
    /// Replaces a manifest; returns the write's revision (the current one if nothing changed)
    /// and the manifest revision after the call.
    async fn update_app_manifest(
        &self,
        ctx: &WriteCtx,
        app_id: &AppId,
        manifest: &Manifest,
    ) -> StoreResult<(Revision, i64)>;
    /// Removes an application with its consents (and their app rights) and whitelist entries.
    async fn unregister_app(&self, ctx: &WriteCtx, app_id: &AppId) -> StoreResult<Revision>;
    /// Approves an application at the manifest revision the approver saw.
    async fn approve_consent(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        manifest_revision: i64,
        resolved: Vec<ResolvedRequest>,
    ) -> StoreResult<(Revision, Consent)>;
    /// Revokes an application's consent; its site-level app rights go with it.
    async fn revoke_consent(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
    ) -> StoreResult<Revision>;
    /// Creates or replaces a whitelist entry.
    async fn put_whitelist_entry(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        entry: &WhitelistEntry,
    ) -> StoreResult<Revision>;
    /// Removes a whitelist entry.
    async fn delete_whitelist_entry(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
    ) -> StoreResult<Revision>;
    /// Creates a permission group; the acting user becomes a READ_WRITE manager.
    async fn create_group(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        spec: GroupSpec,
    ) -> StoreResult<(Revision, PermissionGroup)>;
    /// Replaces a permission group's fields; returns the group with its permissions.
    async fn update_group(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        spec: GroupSpec,
    ) -> StoreResult<(Revision, GroupWithPermissions)>;
    /// Removes a permission group with its permissions and grants.
    async fn delete_group(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        group: &GroupId,
    ) -> StoreResult<Revision>;
    /// Creates an external permission.
    async fn create_permission(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        permission: &ExternalPermission,
    ) -> StoreResult<Revision>;
    /// Removes an external permission with its grants.
    async fn delete_permission(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        permission: &PermissionId,
    ) -> StoreResult<Revision>;
    /// Grants a user an external permission, or updates the grant's expiry.
    async fn grant_external(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        permission: &PermissionId,
        expires_at: Option<Timestamp>,
    ) -> StoreResult<Revision>;
    /// Revokes a user's external permission.
    async fn revoke_external(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        user: &UserId,
        permission: &PermissionId,
    ) -> StoreResult<Revision>;
    /// Creates a client with the hash of its key. `ctx` is `None` for the operator's CLI.
    async fn create_client(
        &self,
        ctx: Option<&WriteCtx>,
        client_id: &ClientId,
        tenants: &TenantBounds,
        capabilities: Capabilities,
        key_hash: &str,
    ) -> StoreResult<Revision>;
    /// Revokes a client. `ctx` is `None` for the operator's CLI.
    async fn revoke_client(
        &self,
        ctx: Option<&WriteCtx>,
        client_id: &ClientId,
    ) -> StoreResult<Revision>;
    /// Creates the `bootstrap` client with this key hash unless it exists.
    async fn ensure_bootstrap_client(&self, key_hash: &str) -> StoreResult<BootstrapOutcome>;

    /// Tenants, ordered by id, within `bounds`.
    async fn list_tenants(
        &self,
        bounds: &TenantBounds,
        page: &PageRequest<TenantId>,
    ) -> StoreResult<Page<Tenant, TenantId>>;
    /// Applications, ordered by id.
    async fn list_apps(&self, page: &PageRequest<AppId>) -> StoreResult<Page<App, AppId>>;
    /// Clients, ordered by id.
    async fn list_clients(
        &self,
        page: &PageRequest<ClientId>,
    ) -> StoreResult<Page<ClientRecord, ClientId>>;
    /// A tenant's users with their roles, ordered by id.
    async fn list_users(
        &self,
        tenant: &TenantId,
        page: &PageRequest<UserId>,
    ) -> StoreResult<Page<(UserId, RoleSet), UserId>>;
    /// A tenant's API users, ordered by user id.
    async fn list_api_users(
        &self,
        tenant: &TenantId,
        page: &PageRequest<UserId>,
    ) -> StoreResult<Page<(UserId, ApiUser), UserId>>;
    /// A tenant's consents, ordered by application id.
    async fn list_consents(
        &self,
        tenant: &TenantId,
        page: &PageRequest<AppId>,
    ) -> StoreResult<Page<(AppId, Consent), AppId>>;
    /// A tenant's whitelist entries, ordered by application id.
    async fn list_whitelist_entries(
        &self,
        tenant: &TenantId,
        page: &PageRequest<AppId>,
    ) -> StoreResult<Page<(AppId, WhitelistEntry), AppId>>;
    /// The groups the viewer may see or manages, with their permissions, ordered by id.
    async fn list_groups(
        &self,
        tenant: &TenantId,
        viewer: &Viewer,
        page: &PageRequest<GroupId>,
    ) -> StoreResult<Page<GroupWithPermissions, GroupId>>;
    /// A user's rights, ordered by resource.
    async fn list_user_rights(
        &self,
        tenant: &TenantId,
        user: &UserId,
        page: &PageRequest<ResourcePath>,
    ) -> StoreResult<Page<(ResourcePath, Right), ResourcePath>>;
    /// Audit events matching the filter, oldest first.
    async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest<Revision>,
    ) -> StoreResult<Page<AuditEvent, Revision>>;

    /// Gives an application a site-level app right beside its consent in force, replacing the
    /// one at the same resource (DESIGN.md §8).
    async fn grant_app_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision>;
    /// Takes an application's site-level app right at a resource away: `NotFound` unless it
    /// holds exactly `right` there.
    async fn revoke_app_right(
        &self,
        ctx: &WriteCtx,
        tenant: &TenantId,
        app_id: &AppId,
        resource: &ResourcePath,
        right: Right,
    ) -> StoreResult<Revision>;
    /// The deployment's page-token secret: the stored one, or `candidate` stored now if there is
    /// none yet (instances starting together all end up with the one that was stored first).
    async fn page_token_secret(&self, candidate: &PageSecret) -> StoreResult<PageSecret>;
}
