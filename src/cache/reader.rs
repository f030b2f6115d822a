//! The consistency protocol of the read path. A request takes one freshness check ([`Reader::at`]),
//! then the reader decides where its facts come from (the cache at the applied revision, the
//! cache after catching up to the caller's token, or the store itself) and gathers them in one
//! loop that retries until every snapshot the answer uses holds at one revision.
//!
//! Architecture invariant: the reader gathers facts and hands them to the pure engine; it never
//! decides anything itself, and never turns a failure into an answer.

use crate::domain::Entity;
use std::collections::HashMap;
use std::collections::hash_map::Entry::Vacant;
use std::sync::Arc;

use super::{At, Caches, Cause, CheckHits, Entry, Known, ReadError};
use crate::domain::{
    AccessQuery, AppId, AppSnapshot, Decision, ExternalCatalog, GrantView, PermissionRef, Revision,
    TenantId, Timestamp, UserFacts, UserGrant, UserId, UserSnapshot, Viewer, check_access,
};
use crate::store::{
    CacheReads, GrantKey, GrantQuery, Page, PageRequest, ReadFrom, StoreError, StoreResult,
};

/// How many times a request gathers its snapshots again when writes land while it reads.
const SETTLE_ATTEMPTS: usize = 8;

/// What a request's consistency asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    /// The cache at this instance's applied revision (`minimize_latency`, the default).
    Cached,
    /// The cache once it has applied at least this revision (`at_least_as_fresh`).
    AtLeast(Revision),
    /// The store itself (`fully_consistent`).
    Store,
}

impl Wanted {
    /// The stricter of two: the store over any token, the newer token over the older, any token
    /// over the cache.
    pub fn stricter(self, other: Wanted) -> Wanted {
        use Wanted::{AtLeast, Cached, Store};
        match (self, other) {
            (Store, _) | (_, Store) => Store,
            (AtLeast(x), AtLeast(y)) => AtLeast(x.max(y)),
            (AtLeast(x), Cached) | (Cached, AtLeast(x)) => AtLeast(x),
            (Cached, Cached) => Cached,
        }
    }
}

/// Where one attempt reads.
#[derive(Debug, Clone, Copy)]
enum Source {
    Cache(At),
    Store,
}

/// The read path over the caches and the store.
pub struct Reader {
    caches: Arc<Caches>,
    store: Arc<dyn CacheReads>,
}

type AppEntry = Arc<Entry<AppSnapshot>>;
type UserEntry = Arc<Entry<Option<UserSnapshot>>>;

impl Reader {
    /// A reader over `caches` and the store behind them.
    pub fn new(caches: Arc<Caches>) -> Self {
        let store = caches.store().clone();
        Self { caches, store }
    }

    /// The freshness check, once per request: fails past the staleness bound.
    pub fn at(&self) -> Result<At, ReadError> {
        self.caches.at()
    }

    /// Where facts come from: an instance behind the caller's token catches up first (requests
    /// waiting for the same revision share one read of the change log); a token newer than
    /// anything committed is [`ReadError::FromTheFuture`], and one from a history the store no
    /// longer holds [`ReadError::OtherHistory`].
    async fn source(&self, at: At, wanted: Wanted) -> Result<Source, ReadError> {
        match wanted {
            Wanted::Cached => Ok(Source::Cache(at)),
            Wanted::Store => {
                self.caches.require_store()?;
                Ok(Source::Store)
            }
            Wanted::AtLeast(_) if cache_answers(&self.caches, at, wanted) => Ok(Source::Cache(at)),
            Wanted::AtLeast(token) => match self.caches.verify(token, Cause::Token).await? {
                Known::Yes => Ok(Source::Cache(self.caches.at()?)),
                Known::No => Err(ReadError::OtherHistory { token }),
                Known::Unknown => Err(ReadError::FromTheFuture {
                    token,
                    newest: self.caches.applied(),
                }),
            },
        }
    }

    /// Runs `gather` until every snapshot it gathered holds at one revision; returns what it
    /// gathered and that revision.
    async fn settled<T, F, Fut>(
        &self,
        at: At,
        wanted: Wanted,
        gather: F,
    ) -> Result<(T, Revision), ReadError>
    where
        T: Gathered,
        F: Fn(Source) -> Fut,
        Fut: Future<Output = Result<T, ReadError>>,
    {
        let mut source = self.source(at, wanted).await?;
        for _ in 0..SETTLE_ATTEMPTS {
            let gathered = match gather(source).await {
                Ok(gathered) => gathered,
                // The instance now follows the store's new history: gather again there.
                Err(ReadError::HistoryChanged) => {
                    source = self.source(self.caches.at()?, wanted).await?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match self.outcome(source, &gathered) {
                Outcome::Settled(at) => return Ok((gathered, at)),
                // Something was read fresher than this instance has applied: apply up to it, so
                // that entries the newer writes touched are reloaded.
                Outcome::Behind(read_at) => {
                    self.caches.catch_up_to(read_at, Cause::Read).await?;
                }
                Outcome::Again => {}
            }
            if let Source::Cache(_) = source {
                source = Source::Cache(self.caches.at()?);
            }
        }
        Err(ReadError::Unsettled)
    }

    /// Whether everything gathered from `source` holds at one revision.
    fn outcome(&self, source: Source, gathered: &impl Gathered) -> Outcome {
        match source {
            Source::Cache(at) => {
                let (mut behind, mut again) = (at.applied, false);
                gathered.visit(&mut |read_at, holds| {
                    if read_at > at.applied {
                        behind = behind.max(read_at);
                    } else if !holds(&self.caches, at) {
                        again = true;
                    }
                });
                match (again, behind > at.applied) {
                    (true, _) => Outcome::Again,
                    (false, true) => Outcome::Behind(behind),
                    (false, false) => Outcome::Settled(at.applied),
                }
            }
            Source::Store => {
                let (mut first, mut again) = (None, false);
                gathered.visit(&mut |read_at, _| match first {
                    None => first = Some(read_at),
                    Some(f) => again |= f != read_at,
                });
                match (again, first) {
                    (false, Some(at)) => Outcome::Settled(at),
                    _ => Outcome::Again,
                }
            }
        }
    }

    /// One CheckAccess answered at once from current cache hits, when the consistency allows the
    /// cache as it is and every snapshot is a hit; `None` otherwise. Nothing waits, no key is
    /// built, no map is made.
    fn check_hit(&self, at: At, wanted: Wanted, q: &AccessQuery) -> Option<(Decision, Revision)> {
        if !cache_answers(&self.caches, at, wanted) {
            return None;
        }
        let hits = self.hits(at, q)?;
        self.caches.count_check_hits(&hits);
        Some((decide(q, &hits), at.applied))
    }

    /// [`Reader::check_hit`] for a batch: answered only if every query's snapshots are hits.
    fn check_all_hit(
        &self,
        at: At,
        wanted: Wanted,
        queries: &[AccessQuery],
    ) -> Option<(Vec<Decision>, Revision)> {
        if !cache_answers(&self.caches, at, wanted) {
            return None;
        }
        let hits = queries
            .iter()
            .map(|q| self.hits(at, q))
            .collect::<Option<Vec<_>>>()?;
        let decisions = queries
            .iter()
            .zip(&hits)
            .map(|(q, hits)| {
                self.caches.count_check_hits(hits);
                decide(q, hits)
            })
            .collect();
        Some((decisions, at.applied))
    }

    fn hits(&self, at: At, q: &AccessQuery) -> Option<CheckHits> {
        let users = [q.user_id.as_ref(), q.on_behalf_of.as_ref()];
        self.caches.check_hits(at, &q.tenant_id, (&q.app_id, users))
    }

    /// One CheckAccess, decided at one revision. When the consistency allows the cache as it is
    /// and every snapshot is a current hit, it is answered without awaiting anything (no key
    /// built, no map made); otherwise its snapshots are gathered until they settle (boxed: only
    /// a miss needs the state of a read that waits).
    pub async fn check(
        &self,
        at: At,
        wanted: Wanted,
        q: &AccessQuery,
    ) -> Result<(Decision, Revision), ReadError> {
        if let Some(answer) = self.check_hit(at, wanted, q) {
            return Ok(answer);
        }
        Box::pin(self.evaluate(at, wanted, q, check_access)).await
    }

    /// The snapshots of one access question, and `engine` over them at one revision: the
    /// engine's decision for CheckAccess, the decision and a context token's grant for
    /// IssueContextToken.
    pub async fn evaluate<R>(
        &self,
        at: At,
        wanted: Wanted,
        q: &AccessQuery,
        engine: impl FnOnce(&AccessQuery, &AppSnapshot, UserFacts<'_>) -> R,
    ) -> Result<(R, Revision), ReadError> {
        let gather = |source| async move {
            let app = self.app_in(source, &q.tenant_id, &q.app_id).await?;
            let user = match &q.user_id {
                Some(u) => Some(self.user_in(source, &q.tenant_id, u).await?),
                None => None,
            };
            let target = match &q.on_behalf_of {
                Some(u) if Some(u) == q.user_id.as_ref() => user.clone(),
                Some(u) => Some(self.user_in(source, &q.tenant_id, u).await?),
                None => None,
            };
            Ok((app, [user, target]))
        };
        let (hits, revision) = self.settled(at, wanted, gather).await?;
        Ok((over_facts(q, &hits, engine), revision))
    }

    /// Many checks, every one decided at the same revision: at once when every query's
    /// snapshots are current hits (as [`Reader::check`]), otherwise gathered together (boxed).
    pub async fn check_all(
        &self,
        at: At,
        wanted: Wanted,
        queries: &[AccessQuery],
    ) -> Result<(Vec<Decision>, Revision), ReadError> {
        if let Some(answer) = self.check_all_hit(at, wanted, queries) {
            return Ok(answer);
        }
        Box::pin(self.gather_all(at, wanted, queries)).await
    }

    /// The snapshots of many checks gathered from wherever `wanted` says, until they settle.
    async fn gather_all(
        &self,
        at: At,
        wanted: Wanted,
        queries: &[AccessQuery],
    ) -> Result<(Vec<Decision>, Revision), ReadError> {
        if queries.is_empty() {
            return self.revision(at, wanted).await.map(|r| (Vec::new(), r));
        }
        let gather = |source| async move {
            let mut apps: HashMap<(&str, &str), AppEntry> = HashMap::new();
            let mut users: HashMap<(&str, &str), UserEntry> = HashMap::new();
            for q in queries {
                let tenant = q.tenant_id.as_str();
                if let Vacant(slot) = apps.entry((tenant, q.app_id.as_str())) {
                    slot.insert(self.app_in(source, &q.tenant_id, &q.app_id).await?);
                }
                for user in [&q.user_id, &q.on_behalf_of].into_iter().flatten() {
                    if let Vacant(slot) = users.entry((tenant, user.as_str())) {
                        slot.insert(self.user_in(source, &q.tenant_id, user).await?);
                    }
                }
            }
            Ok((apps, users))
        };
        let ((apps, users), revision) = self.settled(at, wanted, gather).await?;
        let decisions = queries
            .iter()
            .map(|q| {
                let tenant = q.tenant_id.as_str();
                let facts = UserFacts {
                    user: known(&users, tenant, q.user_id.as_ref()),
                    target: known(&users, tenant, q.on_behalf_of.as_ref()),
                };
                match apps.get(&(tenant, q.app_id.as_str())) {
                    Some(app) => Ok(check_access(q, &app.value, facts)),
                    // Every query's app was gathered above; this cannot happen.
                    None => Err(ReadError::Unsettled),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok((decisions, revision))
    }

    /// The revision an answer with no facts in it holds at.
    pub async fn revision(&self, at: At, wanted: Wanted) -> Result<Revision, ReadError> {
        match self.source(at, wanted).await? {
            Source::Cache(at) => Ok(at.applied),
            Source::Store => self.store.revision().await.map_err(|e| self.failed(e)),
        }
    }

    /// The snapshot of an application in a tenant.
    pub async fn app(
        &self,
        at: At,
        wanted: Wanted,
        tenant: &TenantId,
        app: &AppId,
    ) -> Result<(AppEntry, Revision), ReadError> {
        self.settled(at, wanted, |source| self.app_in(source, tenant, app))
            .await
    }

    /// A page of a user's unexpired grants that `query.viewer` may see, ordered by group and
    /// permission, from the cached catalog or from the store.
    pub async fn grants_page(
        &self,
        at: At,
        wanted: Wanted,
        (tenant, user): (&TenantId, &UserId),
        query: &GrantQuery,
        page: &PageRequest<GrantKey>,
    ) -> Result<(Page<GrantView, GrantKey>, Revision), ReadError> {
        if let Wanted::Store = wanted {
            self.caches.require_store()?;
            return self
                .store
                .list_user_grants(tenant, user, query, page)
                .await
                .map_err(|e| self.failed(e));
        }
        let ((catalog, grants), revision) = self.external(at, wanted, tenant, user).await?;
        let catalog = existing(&catalog.value, tenant)?;
        let page = page_of(catalog, &grants.value, query, page);
        Ok((page, revision))
    }

    /// A user's grant of one permission that `viewer` may see (expired or not); the permission
    /// must exist and be visible to the viewer.
    pub async fn grant(
        &self,
        at: At,
        wanted: Wanted,
        (tenant, user): (&TenantId, &UserId),
        which: &PermissionRef,
        viewer: &Viewer,
    ) -> Result<(Option<GrantView>, Revision), ReadError> {
        if let Wanted::Store = wanted {
            self.caches.require_store()?;
            return self
                .store
                .find_grant(tenant, user, which, viewer)
                .await
                .map_err(|e| self.failed(e));
        }
        let ((catalog, grants), revision) = self.external(at, wanted, tenant, user).await?;
        let catalog = existing(&catalog.value, tenant)?;
        let permission = catalog
            .find_visible(which, viewer)
            .ok_or_else(|| StoreError::NotFound(Entity::VisiblePermission))?;
        Ok((
            catalog.grant_of(&grants.value, &permission.permission_id),
            revision,
        ))
    }

    /// The cached catalog of a tenant and a user's grants there, holding at one revision.
    async fn external(
        &self,
        at: At,
        wanted: Wanted,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<
        (
            (
                Arc<Entry<Option<ExternalCatalog>>>,
                Arc<Entry<Vec<UserGrant>>>,
            ),
            Revision,
        ),
        ReadError,
    > {
        let gather = |source| async move {
            let catalog = self.catalog_in(source, tenant).await?;
            Ok((catalog, self.grants_in(source, tenant, user).await?))
        };
        self.settled(at, wanted, gather).await
    }

    fn failed(&self, e: StoreError) -> ReadError {
        self.caches.note_failure(&e);
        ReadError::Store(e)
    }
}

/// The engine's decision on one query over its snapshots.
fn decide(q: &AccessQuery, hits: &CheckHits) -> Decision {
    over_facts(q, hits, check_access)
}

/// `engine` over one query's snapshots.
fn over_facts<R>(
    q: &AccessQuery,
    (app, [user, target]): &CheckHits,
    engine: impl FnOnce(&AccessQuery, &AppSnapshot, UserFacts<'_>) -> R,
) -> R {
    let facts = UserFacts {
        user: user.as_ref().and_then(|e| e.value.as_ref()),
        target: target.as_ref().and_then(|e| e.value.as_ref()),
    };
    engine(q, &app.value, facts)
}

/// Whether a request's consistency lets the cache answer as it is at `at`: a token must be
/// applied, and of the history applied here.
fn cache_answers(caches: &Caches, at: At, wanted: Wanted) -> bool {
    match wanted {
        Wanted::Cached => true,
        Wanted::AtLeast(token) if token.same_point(at.applied) => true,
        Wanted::AtLeast(token) => token <= at.applied && caches.knows(token) == Known::Yes,
        Wanted::Store => false,
    }
}

/// A gathered user's snapshot, if the tenant knows the user.
fn known<'m, 'q>(
    users: &'m HashMap<(&'q str, &'q str), UserEntry>,
    tenant: &'q str,
    user: Option<&'q UserId>,
) -> Option<&'m UserSnapshot> {
    users
        .get(&(tenant, user?.as_str()))
        .and_then(|e| e.value.as_ref())
}

fn existing<'c>(
    catalog: &'c Option<ExternalCatalog>,
    tenant: &TenantId,
) -> Result<&'c ExternalCatalog, ReadError> {
    catalog
        .as_ref()
        .ok_or_else(|| StoreError::NotFound(Entity::Tenant(tenant.clone())).into())
}

/// A page of the user's visible grants from the cached catalog, keyed like the store's pages.
fn page_of(
    catalog: &ExternalCatalog,
    grants: &[UserGrant],
    query: &GrantQuery,
    page: &PageRequest<GrantKey>,
) -> Page<GrantView, GrantKey> {
    let after_ref = page.after.as_ref().map(|(g, p)| (g, p));
    let now: Timestamp = query.now;
    let (items, more) = catalog.visible_grants(
        grants,
        &query.viewer,
        query.group.as_ref(),
        now,
        after_ref,
        page.limit as usize,
    );
    let next = more
        .then(|| {
            items
                .last()
                .map(|g| (g.group_id.clone(), g.permission_id.clone()))
        })
        .flatten();
    Page { items, next }
}

/// How one attempt at gathering ended.
enum Outcome {
    /// Every snapshot holds at this revision.
    Settled(Revision),
    /// A snapshot was read at a revision this instance has not applied yet.
    Behind(Revision),
    /// A snapshot was stale, or store reads disagreed: gather again.
    Again,
}

impl Reader {
    async fn app_in(
        &self,
        source: Source,
        tenant: &TenantId,
        app: &AppId,
    ) -> Result<AppEntry, ReadError> {
        match source {
            Source::Cache(at) => self.caches.app(at, tenant, app).await,
            Source::Store => self.direct(
                self.store
                    .app_snapshot(tenant, app, ReadFrom::Primary)
                    .await,
            ),
        }
    }

    async fn user_in(
        &self,
        source: Source,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<UserEntry, ReadError> {
        match source {
            Source::Cache(at) => self.caches.user(at, tenant, user).await,
            Source::Store => self.direct(
                self.store
                    .user_snapshot(tenant, user, ReadFrom::Primary)
                    .await,
            ),
        }
    }

    async fn catalog_in(
        &self,
        source: Source,
        tenant: &TenantId,
    ) -> Result<Arc<Entry<Option<ExternalCatalog>>>, ReadError> {
        match source {
            Source::Cache(at) => self.caches.catalog(at, tenant).await,
            Source::Store => {
                self.direct(self.store.external_catalog(tenant, ReadFrom::Primary).await)
            }
        }
    }

    async fn grants_in(
        &self,
        source: Source,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Arc<Entry<Vec<UserGrant>>>, ReadError> {
        match source {
            Source::Cache(at) => self.caches.grants(at, tenant, user).await,
            Source::Store => self.direct(
                self.store
                    .user_grants(tenant, user, ReadFrom::Primary)
                    .await,
            ),
        }
    }

    /// A snapshot read straight from the store, as an entry of its own.
    fn direct<T>(&self, read: StoreResult<(T, Revision)>) -> Result<Arc<Entry<T>>, ReadError> {
        match read {
            Ok((value, read_at)) => Ok(Entry::direct(value, read_at)),
            Err(e) => Err(self.failed(e)),
        }
    }
}

/// Whether an entry holds at a revision, as the caches judge it.
type Holds<'e> = &'e dyn Fn(&Caches, At) -> bool;

/// What one answer gathered: every entry in it, for the settle check.
trait Gathered {
    /// Calls `f` with each entry's `read_at` and a check of whether it holds at a revision.
    fn visit(&self, f: &mut dyn FnMut(Revision, Holds<'_>));
}

impl<T> Gathered for Arc<Entry<T>> {
    fn visit(&self, f: &mut dyn FnMut(Revision, Holds<'_>)) {
        f(self.read_at, &|caches, at| caches.holds(self, at));
    }
}

impl<G: Gathered> Gathered for Option<G> {
    fn visit(&self, f: &mut dyn FnMut(Revision, Holds<'_>)) {
        if let Some(g) = self {
            g.visit(f);
        }
    }
}

impl<A: Gathered, B: Gathered> Gathered for (A, B) {
    fn visit(&self, f: &mut dyn FnMut(Revision, Holds<'_>)) {
        self.0.visit(f);
        self.1.visit(f);
    }
}

impl<G: Gathered, const N: usize> Gathered for [G; N] {
    fn visit(&self, f: &mut dyn FnMut(Revision, Holds<'_>)) {
        for g in self {
            g.visit(f);
        }
    }
}

impl<K, G: Gathered> Gathered for HashMap<K, G> {
    fn visit(&self, f: &mut dyn FnMut(Revision, Holds<'_>)) {
        for g in self.values() {
            g.visit(f);
        }
    }
}
