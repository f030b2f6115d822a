//! The cache: caches of the engine's snapshots (never of decisions), in front of the store, kept
//! in step with every instance's writes through the store's change log. `Caches` ties together
//! one part per job: the snapshot caches (`snapshots.rs`, `quick_cache` caches weighed against
//! the memory budget), the few active clients (`clients.rs`, a map read without a lock), the
//! watermarks that say whether an entry is current (`marks.rs`), the instance's place in the
//! store's history (`history.rs`) and its freshness (`freshness.rs`); applying the change log
//! (`apply.rs`) moves them together.
//!
//! Architecture invariant: the cache holds facts exactly as the store returns them; all logic
//! stays in the domain. Every entry remembers the revision this instance had applied when its
//! load began (`floor`) and the revision the store read it at (`read_at`); it is used only while
//! the marks say it is current, so a load racing with an invalidation can never leave a stale
//! entry behind. Answers built from current entries hold at one revision: the instance's
//! `applied` revision, its `checked_at`.
//!
//! Freshness (docs/rules.md §9): answers come from the cache only while the change log was read
//! successfully within `max_staleness`; while the store is known to be unreachable, nothing
//! waits for it: what needs the store fails at once, and only the poll keeps probing.
//!
//! History (docs/rules.md §9): every read of the change log first checks that the store still holds
//! the applied revision with its tag. When it does not, every entry and client is dropped at
//! once (they belong to an older *generation*, which no request uses again), the store's head
//! is adopted, and the change is logged and counted. Snapshots read from another history than
//! the applied one, and revision tokens that name one, set off the same check.

mod apply;
mod clients;
mod error;
mod freshness;
mod handles;
mod history;
mod key;
mod marks;
pub mod reader;
mod snapshots;
pub mod sync;

use std::borrow::Borrow;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use metrics::Counter;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Equivalent, Lifecycle, OptionsBuilder, Weighter};

pub use key::{Pair, PairRef};
pub use reader::{Reader, Wanted};

use crate::domain::{
    AppId, AppSnapshot, Caller, ExternalCatalog, KeyHash, Revision, TenantId, UserGrant, UserId,
    UserSnapshot,
};
use crate::store::change::ChangeKey;
use crate::store::{CacheReads, ReadFrom, StoreResult};

use clients::Clients;
pub use error::ReadError;
use freshness::SyncState;
pub use handles::Cause;
use handles::{Handles, Kind};
pub use history::Known;
use history::{Head, History};
use marks::Marks;
pub use snapshots::Entry;
use snapshots::{SnapshotCaches, Snapshots, Weigh};

/// The snapshots of one check's application and (up to two) users, all current.
pub type CheckHits = (
    Arc<Entry<AppSnapshot>>,
    [Option<Arc<Entry<Option<UserSnapshot>>>>; 2],
);

/// Where one request reads: taken once per request, after the freshness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// The instance's applied revision (with its tag): the answer's `checked_at`.
    pub applied: Revision,
    /// The generation of the caches: entries of another one are never used.
    generation: u64,
    /// The newest revision whose invalidations were recorded, read after `applied`: an entry
    /// verified through it needs no watermark lookups.
    changed: u64,
    /// When the freshness check ran (entries older than the TTL then are not used).
    now: Instant,
}

/// Sizes, lifetimes and the staleness bound of the caches.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Memory budget for all snapshot caches, in bytes (approximate: entries are weighed).
    pub budget_bytes: u64,
    /// Longest an entry is kept, whatever happens: a safety net behind invalidation.
    pub ttl: Duration,
    /// How long after the last successful read of the change log the cache may still answer.
    pub max_staleness: Duration,
}

/// The caches of one instance, and how far it has applied the change log: one part per job.
pub struct Caches {
    /// The store, through the reads the cache makes and nothing else (it cannot write).
    store: Arc<dyn CacheReads>,
    /// Apps, users, grants and catalogs.
    snapshots: SnapshotCaches,
    /// Active clients by key hash.
    clients: Clients,
    /// Watermarks, the stale floor and the change mark: whether an entry is current.
    marks: Marks,
    /// The applied revision, the generation and the remembered tags.
    history: History,
    catching_up: tokio::sync::Mutex<()>,
    sync: SyncState,
    metrics: Handles,
}

/// How long one read of the change log may take before the store counts as unreachable.
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);

impl Caches {
    /// Empty caches over `store`. Nothing is read until [`Caches::start`]; until then every
    /// lookup fails with [`ReadError::Starting`].
    pub fn new(store: Arc<dyn CacheReads>, config: CacheConfig) -> Arc<Self> {
        let metrics = Handles::new(config.max_staleness);
        metrics.store_up.set(0.0);
        Arc::new(Self {
            store,
            snapshots: SnapshotCaches::new(config.budget_bytes),
            clients: Clients::default(),
            marks: Marks::new(config.ttl),
            history: History::new(),
            catching_up: tokio::sync::Mutex::new(()),
            sync: SyncState::new(config.max_staleness),
            metrics,
        })
    }

    /// Starts at the store's current revision (nothing is cached yet, so nothing before it
    /// matters) and counts as the first read of the change log.
    pub async fn start(&self) -> StoreResult<Revision> {
        let _one_at_a_time = self.catching_up.lock().await;
        let began = self.sync.now_us();
        self.metrics.catch_ups[Cause::Start as usize].increment(1);
        let current = self.store.revision().await?;
        if current > self.applied() {
            self.advance(current, &[]);
        }
        self.synced(began);
        Ok(self.applied())
    }

    fn head(&self) -> Head {
        self.history.head()
    }

    /// The newest revision this instance has fully applied, with its tag: its `checked_at`.
    pub fn applied(&self) -> Revision {
        self.head().applied
    }

    /// Whether `revision` belongs to the history this instance applied, as far as it knows
    /// without asking the store. A revision without a tag is judged by its number alone.
    pub fn knows(&self, revision: Revision) -> Known {
        self.history.knows(revision)
    }

    /// Whether `revision` belongs to the history the store holds now, asking it if need be:
    /// the change log is read first (which checks this instance's own history, and catches up
    /// to `revision` when it is newer), then the store's record of that revision if the
    /// instance does not remember it (remembered once confirmed, so that a token used again and
    /// again costs one such read). [`Known::Unknown`] only for a revision the store has not
    /// committed.
    pub async fn verify(&self, revision: Revision, cause: Cause) -> Result<Known, ReadError> {
        if self.knows(revision) == Known::Yes {
            return Ok(Known::Yes);
        }
        if revision > self.applied() {
            self.catch_up_to(revision, cause).await?;
        } else {
            self.reread(cause).await?;
        }
        match self.knows(revision) {
            Known::Unknown if revision <= self.applied() => {
                self.require_store()?;
                let generation = self.head().generation;
                let tag = self.store.revision_tag(revision.0).await.map_err(|e| {
                    self.note_failure(&e);
                    ReadError::Store(e)
                })?;
                if tag != Some(revision.tag()) {
                    return Ok(Known::No);
                }
                self.history.confirm(revision, generation);
                Ok(Known::Yes)
            }
            known => Ok(known),
        }
    }

    /// Whether `entry` holds at `at`: read no later than it and untouched since.
    pub fn holds<T>(&self, entry: &Entry<T>, at: At) -> bool {
        entry.read_at <= at.applied && self.marks.untouched(entry, at)
    }

    /// The cached entry for `key` if it is untouched at `at` (a stale one is dropped); counts
    /// nothing, and never waits.
    fn cached<K, Q, V>(&self, cache: &Snapshots<K, V>, at: At, key: &Q) -> Option<Arc<Entry<V>>>
    where
        K: Hash + Eq + Clone,
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let entry = cache.get(key)?;
        if self.marks.untouched(&entry, at) {
            return Some(entry);
        }
        cache.remove_if(key, |cached| Arc::ptr_eq(cached, &entry));
        None
    }

    fn count_hit(&self, kind: Kind) {
        self.metrics.hits[kind as usize].increment(1);
    }

    /// The entry for `key`: the cached one if untouched (a hit), else loaded from the store (a
    /// miss; concurrent misses for one key load once). The owned key and the change-log keys are
    /// built only on a miss.
    #[allow(clippy::too_many_arguments)]
    async fn lookup<K, Q, V, F>(
        &self,
        kind: Kind,
        cache: &Snapshots<K, V>,
        at: At,
        key: &Q,
        owned: impl FnOnce() -> K,
        keys: impl FnOnce() -> Vec<ChangeKey>,
        load: impl FnOnce(ReadFrom) -> F,
    ) -> Result<Arc<Entry<V>>, ReadError>
    where
        K: Hash + Eq + Clone + Send + Sync,
        Q: Hash + Equivalent<K> + ?Sized,
        V: Weigh + Send + Sync,
        F: Future<Output = StoreResult<(V, Revision)>> + Send,
    {
        let which = kind as usize;
        if let Some(entry) = self.cached(cache, at, key) {
            self.count_hit(kind);
            return Ok(entry);
        }
        self.metrics.misses[which].increment(1);
        self.require_store()?;
        // The floor (and the entry's age) are taken before the read, so an invalidation racing
        // it is caught, and no watermark is forgotten while the entry may still be used.
        let (head, began) = (self.head(), Instant::now());
        // A replica may answer only once it has replayed the revision the entry is marked with.
        let from = ReadFrom::AtLeast(head.applied.0);
        let (owned, keys, load) = (owned(), keys(), load(from));
        let seconds = &self.metrics.load_seconds[which];
        // Boxed, so that the state of a load (which only a miss needs) does not make every
        // cache hit's future larger.
        let loaded: Pin<Box<dyn Future<Output = _> + Send + '_>> = Box::pin(async move {
            let guard = match cache.get_value_or_guard_async(&owned).await {
                // Loaded meanwhile by another request (the settle check decides if it holds).
                Ok(entry) => return Ok(entry),
                Err(guard) => guard,
            };
            // A request that waited behind a load that failed does not try again once the
            // store is known to be unreachable.
            self.require_store()?;
            let started = Instant::now();
            let loaded = load.await;
            seconds.record(started.elapsed().as_secs_f64());
            let (value, read_at) = loaded.map_err(ReadError::Store)?;
            // Read from a history older than, or other than, the one applied here: the store's
            // history changed. Nothing is cached; the change log is read at once (which finds
            // out), and the request gathers again in the new generation.
            if read_at < head.applied || self.knows(read_at) == Known::No {
                drop(guard);
                self.reread(Cause::Read).await?;
                return Err(ReadError::HistoryChanged);
            }
            let mut entry =
                Entry::new(value, (head.applied, head.generation), read_at, keys, began);
            entry.weight = entry.value.weigh();
            let entry = Arc::new(entry);
            // Refused if the key was invalidated while this load ran: then it is not cached.
            let _ = guard.insert(entry.clone());
            Ok(entry)
        });
        loaded.await.inspect_err(|e: &ReadError| {
            if let ReadError::Store(e) = e {
                self.note_failure(e);
            }
        })
    }

    /// [`Caches::lookup`] of an entry keyed by a tenant and an app or a user.
    async fn lookup_pair<B, V, F>(
        &self,
        kind: Kind,
        cache: &Snapshots<Pair<TenantId, B>, V>,
        at: At,
        (tenant, second): (&TenantId, &B),
        keys: impl FnOnce() -> Vec<ChangeKey>,
        load: impl FnOnce(ReadFrom) -> F,
    ) -> Result<Arc<Entry<V>>, ReadError>
    where
        B: Borrow<str> + Eq + Clone + Send + Sync,
        V: Weigh + Send + Sync,
        F: Future<Output = StoreResult<(V, Revision)>> + Send,
    {
        let key = (tenant.as_str(), second.borrow());
        let owned = || Pair(tenant.clone(), second.clone());
        self.lookup(kind, cache, at, &key as &dyn PairRef, owned, keys, load)
            .await
    }

    /// The snapshot of an application in a tenant.
    pub async fn app(
        &self,
        at: At,
        tenant: &TenantId,
        app: &AppId,
    ) -> Result<Arc<Entry<AppSnapshot>>, ReadError> {
        self.lookup_pair(
            Kind::Apps,
            &self.snapshots.apps,
            at,
            (tenant, app),
            || {
                vec![
                    ChangeKey::Tenant(tenant.clone()),
                    ChangeKey::App(app.clone()),
                    ChangeKey::AppInTenant(tenant.clone(), app.clone()),
                ]
            },
            |from| self.store.app_snapshot(tenant, app, from),
        )
        .await
    }

    /// The snapshot of a user's roles and rights in a tenant (`None`: unknown to it).
    pub async fn user(
        &self,
        at: At,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Arc<Entry<Option<UserSnapshot>>>, ReadError> {
        self.lookup_pair(
            Kind::Users,
            &self.snapshots.users,
            at,
            (tenant, user),
            || user_keys(tenant, user).to_vec(),
            |from| self.store.user_snapshot(tenant, user, from),
        )
        .await
    }

    /// The current cached snapshots of a check's application and users, or `None` if any of them
    /// is not a current cache hit. Counts nothing: see [`Caches::count_check_hits`].
    pub fn check_hits(
        &self,
        at: At,
        tenant: &TenantId,
        (app, users): (&AppId, [Option<&UserId>; 2]),
    ) -> Option<CheckHits> {
        let user = |u: Option<&UserId>| match u {
            None => Some(None),
            Some(u) => self
                .cached(
                    &self.snapshots.users,
                    at,
                    &(tenant.as_str(), u.as_str()) as &dyn PairRef,
                )
                .filter(|e| e.read_at <= at.applied)
                .map(Some),
        };
        let app = self
            .cached(
                &self.snapshots.apps,
                at,
                &(tenant.as_str(), app.as_str()) as &dyn PairRef,
            )
            .filter(|e| e.read_at <= at.applied)?;
        let first = user(users[0])?;
        // Acting on behalf of oneself: one user, looked up once.
        let second = if users[1].is_some() && users[1] == users[0] {
            first.clone()
        } else {
            user(users[1])?
        };
        Some((app, [first, second]))
    }

    /// Counts the hits of answers given from [`Caches::check_hits`] (only once they are used, so
    /// that a caller that falls back to [`Caches::app`] and [`Caches::user`] counts each once).
    pub fn count_check_hits(&self, hits: &CheckHits) {
        self.count_hit(Kind::Apps);
        for _ in hits.1.iter().flatten() {
            self.count_hit(Kind::Users);
        }
    }

    /// A user's external permission grants in a tenant.
    pub async fn grants(
        &self,
        at: At,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Arc<Entry<Vec<UserGrant>>>, ReadError> {
        self.lookup_pair(
            Kind::Grants,
            &self.snapshots.grants,
            at,
            (tenant, user),
            // A grant's visibility also follows the tenant's groups.
            || {
                [
                    &user_keys(tenant, user)[..],
                    &[ChangeKey::Groups(tenant.clone())],
                ]
                .concat()
            },
            |from| self.store.user_grants(tenant, user, from),
        )
        .await
    }

    /// A tenant's external permission catalog (`None`: no such tenant).
    pub async fn catalog(
        &self,
        at: At,
        tenant: &TenantId,
    ) -> Result<Arc<Entry<Option<ExternalCatalog>>>, ReadError> {
        self.lookup(
            Kind::Catalogs,
            &self.snapshots.catalogs,
            at,
            tenant.as_str(),
            || tenant.clone(),
            || {
                vec![
                    ChangeKey::Tenant(tenant.clone()),
                    ChangeKey::Groups(tenant.clone()),
                ]
            },
            |from| self.store.external_catalog(tenant, from),
        )
        .await
    }

    /// The active client holding the key with this hash (`None`: unknown or revoked): the cached
    /// one if it is current, without awaiting anything; otherwise from the store (boxed: only a
    /// miss needs the state of a read that waits).
    pub async fn client(&self, at: At, hash: &KeyHash) -> Result<Option<Arc<Caller>>, ReadError> {
        match self.client_hit(at, hash) {
            Some(caller) => Ok(Some(caller)),
            None => Box::pin(self.load_client(hash)).await,
        }
    }

    /// The cached active client holding the key with this hash, if it is current; never waits.
    fn client_hit(&self, at: At, hash: &KeyHash) -> Option<Arc<Caller>> {
        let caller = self.clients.find(hash, |e| {
            self.marks.untouched(e, at).then(|| e.value.clone())
        })?;
        self.count_hit(Kind::Clients);
        Some(caller)
    }

    /// The active client holding the key with this hash, from the store, after
    /// [`Caches::client_hit`] missed (`None`: unknown or revoked). Only found clients are cached,
    /// so a flood of unknown keys cannot push real clients out.
    async fn load_client(&self, hash: &KeyHash) -> Result<Option<Arc<Caller>>, ReadError> {
        let which = Kind::Clients as usize;
        self.metrics.misses[which].increment(1);
        self.require_store()?;
        // The floor is taken before the read, so a revocation racing it is caught.
        let (head, began) = (self.head(), Instant::now());
        let caller = match self.store.client_by_key_hash(&hash.hex()).await {
            Ok(caller) => caller.map(Arc::new),
            Err(e) => {
                self.note_failure(&e);
                return Err(e.into());
            }
        };
        if let Some(caller) = &caller {
            let entry = Arc::new(Entry::new(
                caller.clone(),
                (head.applied, head.generation),
                Revision::default(),
                vec![ChangeKey::Clients],
                began,
            ));
            self.clients.insert(*hash, entry);
        }
        Ok(caller)
    }

    /// Entry counts per cache and the staleness, for metrics.
    pub fn report(&self) {
        let [apps, users, grants, catalogs] = self.snapshots.sizes();
        let sizes = [apps, users, grants, catalogs, self.clients.len()];
        for (gauge, size) in self.metrics.entries.iter().zip(sizes) {
            gauge.set(size as f64);
        }
        if let Some(age) = self.sync.age() {
            self.metrics.staleness.set(age.as_secs_f64());
        }
    }

    /// The store behind the caches, as far as they may use it: the reads of [`CacheReads`].
    pub fn store(&self) -> &Arc<dyn CacheReads> {
        &self.store
    }
}

/// The change keys that make a user's entries stale: the tenant's and the user's own.
fn user_keys(tenant: &TenantId, user: &UserId) -> [ChangeKey; 2] {
    [
        ChangeKey::Tenant(tenant.clone()),
        ChangeKey::User(tenant.clone(), user.clone()),
    ]
}
