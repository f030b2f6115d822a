//! What the store does, in domain terms, as one trait per role. Each is declared here once and
//! implemented once, for [`super::SqlStore`], in the module of `store/sql/` where its SQL lives
//! (`impl TenantWrites for SqlStore` in `sql/tenants.rs`, and so on). Two sums name what a part
//! of the crate may use: [`CacheReads`], the reads the cache makes (it cannot write), and
//! [`Store`], everything (the admin service, the demo loader, the tests).

use async_trait::async_trait;

use super::{
    AuditEvent, AuditFilter, BootstrapOutcome, ChangeRead, ClientRecord, GrantKey, GrantQuery,
    GroupSpec, GroupWithPermissions, Page, PageRequest, PageSecret, PermissionRef, ReadFrom,
    StoreResult, WriteCtx, listener,
};
use crate::domain::{
    ApiUser, App, AppId, AppKind, AppSnapshot, Caller, Capabilities, ClientId, Consent,
    ExternalCatalog, ExternalPermission, GrantView, GroupId, Manifest, Name, PermissionGroup,
    PermissionId, ResolvedRequest, ResourcePath, Revision, Right, RoleSet, Tag, Tenant,
    TenantBounds, TenantId, Timestamp, UserGrant, UserId, UserSnapshot, Viewer, WhitelistEntry,
};

/// The facts the read path loads, each read at one revision and returned with it: what the
/// caches hold, and what `fully_consistent` reads directly (`sql/snapshots.rs`). A load the
/// cache will trust from a given revision on may go to a read replica that has replayed it
/// ([`ReadFrom`]); everything else reads the primary.
#[async_trait]
pub trait Snapshots: Send + Sync {
    /// The newest committed revision.
    async fn revision(&self) -> StoreResult<Revision>;

    /// The facts a check needs about an application in a tenant, read at one revision.
    async fn app_snapshot(
        &self,
        tenant: &TenantId,
        app: &AppId,
        from: ReadFrom,
    ) -> StoreResult<(AppSnapshot, Revision)>;

    /// A user's roles and rights in a tenant (`None` if the tenant does not know them), read at one revision.
    async fn user_snapshot(
        &self,
        tenant: &TenantId,
        user: &UserId,
        from: ReadFrom,
    ) -> StoreResult<(Option<UserSnapshot>, Revision)>;

    /// A tenant's external permission groups and permissions (`None` if the tenant does not
    /// exist), read at one revision.
    async fn external_catalog(
        &self,
        tenant: &TenantId,
        from: ReadFrom,
    ) -> StoreResult<(Option<ExternalCatalog>, Revision)>;

    /// A user's external permission grants in a tenant, expired ones included, read at one revision.
    async fn user_grants(
        &self,
        tenant: &TenantId,
        user: &UserId,
        from: ReadFrom,
    ) -> StoreResult<(Vec<UserGrant>, Revision)>;

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
}

/// The change log every instance follows, and the connection that says why it cannot be read
/// (`sql/changes.rs`).
#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// One read of the change log after `after`: the newest committed revision, whether the
    /// store's history still holds `after` (the same tag, and a head no lower), and, if it does,
    /// the changes after it in revision order up to the head. The log may have been pruned:
    /// callers check it starts at `after + 1`. More than [`super::MAX_CHANGES_READ`] revisions
    /// behind, it is not read at all (empty, like a pruned log): a reader that far behind starts
    /// afresh rather than apply it.
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
}

/// Who holds a key: the one read of clients that every call's authentication needs
/// (`sql/clients.rs`).
#[async_trait]
pub trait ClientKeys: Send + Sync {
    /// The active client holding the key with this hash.
    async fn client_by_key_hash(&self, key_hash: &str) -> StoreResult<Option<Caller>>;
}

/// The audited writes of clients (`sql/clients.rs`). `ctx` is `None` for the operator's CLI.
#[async_trait]
pub trait ClientWrites: Send + Sync {
    /// Creates a client with the hash of its key.
    async fn create_client(
        &self,
        ctx: Option<&WriteCtx>,
        client_id: &ClientId,
        tenants: &TenantBounds,
        capabilities: Capabilities,
        key_hash: &str,
    ) -> StoreResult<Revision>;

    /// Revokes a client.
    async fn revoke_client(
        &self,
        ctx: Option<&WriteCtx>,
        client_id: &ClientId,
    ) -> StoreResult<Revision>;

    /// Creates the `bootstrap` client with this key hash unless it exists.
    async fn ensure_bootstrap_client(&self, key_hash: &str) -> StoreResult<BootstrapOutcome>;
}

/// The audited writes of tenants, their users, API-user records and user rights
/// (`sql/tenants.rs`).
#[async_trait]
pub trait TenantWrites: Send + Sync {
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
}

/// The audited writes of applications, consents and whitelist entries (`sql/apps.rs`).
#[async_trait]
pub trait AppWrites: Send + Sync {
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
}

/// The audited writes of site-level app rights, kept in the consent's row
/// (`sql/app_rights.rs`; docs/rules.md §8).
#[async_trait]
pub trait AppRightWrites: Send + Sync {
    /// Gives an application a site-level app right beside its consent in force, replacing the
    /// one at the same resource.
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
}

/// The audited writes of external permission groups, their permissions and grants
/// (`sql/external.rs`).
#[async_trait]
pub trait ExternalWrites: Send + Sync {
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
}

/// What the AdminService reads: one tenant, and the listings, each ordered and paged by its key
/// (`sql/lists.rs`).
#[async_trait]
pub trait Lists: Send + Sync {
    /// A tenant, if it exists.
    async fn tenant(&self, tenant: &TenantId) -> StoreResult<Option<Tenant>>;

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
}

/// The deployment's settings kept in the store (`sql/settings.rs`).
#[async_trait]
pub trait Settings: Send + Sync {
    /// The deployment's page-token secret: the stored one, or `candidate` stored now if there is
    /// none yet (instances starting together all end up with the one that was stored first).
    async fn page_token_secret(&self, candidate: &PageSecret) -> StoreResult<PageSecret>;
}

/// The reads the cache makes, and nothing else: the snapshots it loads, the change log it
/// follows, and who holds a key. It cannot write a fact.
pub trait CacheReads: Snapshots + ChangeLog + ClientKeys + 'static {}

impl<T: Snapshots + ChangeLog + ClientKeys + ?Sized + 'static> CacheReads for T {}

/// Everything consentry reads and writes: the sum of the roles. One implementation; one
/// behavioural test suite runs it against each backend.
pub trait Store:
    CacheReads
    + ClientWrites
    + TenantWrites
    + AppWrites
    + AppRightWrites
    + ExternalWrites
    + Lists
    + Settings
{
}

impl<T> Store for T where
    T: CacheReads
        + ClientWrites
        + TenantWrites
        + AppWrites
        + AppRightWrites
        + ExternalWrites
        + Lists
        + Settings
        + ?Sized
{
}
