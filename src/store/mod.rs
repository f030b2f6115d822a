//! The store: every fact consentry knows, behind traits in domain terms, one per role
//! ([`Snapshots`], [`ChangeLog`], [`ClientKeys`], [`ClientWrites`], [`TenantWrites`],
//! [`AppWrites`], [`AppRightWrites`], [`ExternalWrites`], [`Lists`], [`Settings`]), and two sums
//! of them: [`CacheReads`], what the cache may call, and [`Store`], everything.
//!
//! Architecture invariant: the rest of the crate sees only these traits and domain types; SQL,
//! sqlx and the backend live below them. [`SqlStore`] is the one implementation, each role
//! implemented in the module of `sql/` that holds its SQL: the same SQL statements run on
//! Postgres (production, shared by many instances) and on an embedded SQLite file (the
//! zero-set-up default for one process), through sqlx's `Any` driver. What differs per backend
//! (connecting, migrations) is in [`backend`].
//!
//! Every write is one transaction that bumps the revision first, enforces the rules of
//! docs/rules.md §6 through the domain's pure rule functions on facts read inside that same
//! transaction, appends its audit event, and commits, or leaves no trace at all. A rule that
//! looks only at the caller is judged before the transaction begins, so a refused caller never
//! takes the write lock.

pub mod backend;
pub mod change;
mod json;
pub mod listener;
pub mod occupancy;
mod sql;
mod traits;

use crate::domain::{
    Caller, Description, ExternalPermission, GroupAcl, GroupId, Name, PermissionGroup,
    PermissionId, Principal, Revision, RuleError, TenantBounds, TenantId, Timestamp, UserId,
    ValidationError, Viewer,
};

use crate::domain::{AlreadyExists, AuditTarget, NotFound};
pub use crate::domain::{Entity, PermissionRef};
pub use backend::{Backend, connect, lazy, migrate, open};
pub use sql::{ReadFrom, Replicas, SqlStore};
pub use traits::{
    AppRightWrites, AppWrites, CacheReads, ChangeLog, ClientKeys, ClientWrites, ExternalWrites,
    Lists, Settings, Snapshots, Store, TenantWrites,
};

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
    /// A rule of docs/rules.md §6 refuses the write.
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
}

impl StoreError {
    /// Whether the store could not be reached, or refused the connection (no connection, a
    /// dropped one, a database shutting down, a password or a CONNECT right refused, no free
    /// connection slot, no such database), as opposed to failing one statement.
    pub fn is_unreachable(&self) -> bool {
        match self {
            StoreError::Unavailable(e) => backend::is_connection_error(&e.0),
            _ => false,
        }
    }

    /// Whether a statement gave up waiting for a pooled connection, which does not say why none
    /// came (sqlx retries a refused connection, or one the database has no slot for, until then).
    pub fn is_pool_timeout(&self) -> bool {
        match self {
            StoreError::Unavailable(e) => matches!(e.0, sqlx::Error::PoolTimedOut),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let e = DatabaseError(e);
        if e.is_broken_connection() {
            backend::suspect_connections();
        }
        StoreError::Unavailable(e)
    }
}

/// What the database said when it failed: opaque outside the store (logged, never shown to a
/// caller, and no sqlx type in the store's interface). An error the database returned reads as
/// its message and SQLSTATE (`password authentication failed for user "x" (SQLSTATE 28P01)`);
/// neither holds the URL or a password.
#[derive(Debug)]
pub struct DatabaseError(sqlx::Error);

impl DatabaseError {
    /// Whether the connection broke under the statement (reset, cut, its backend ended or the
    /// server going down), which a read on another connection may not meet. Not a wait for a
    /// connection that never came, and not a refusal to open one (a password, a missing
    /// database, TLS), which another attempt would only repeat.
    pub fn is_broken_connection(&self) -> bool {
        match &self.0 {
            sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
            // Class 08 (connection exception) and 57P01-57P03 (terminated by an administrator,
            // a crash shutdown, the server not yet accepting connections).
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
            _ => false,
        }
    }
}

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

/// The most revisions of change log read at once; see [`ChangeLog::changes_since`].
pub const MAX_CHANGES_READ: u64 = 10_000;

/// One read of the change log ([`ChangeLog::changes_since`]).
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
