//! The cache: caches of the engine's snapshots (never of decisions), in front of the store, kept
//! in step with every instance's writes through the store's change log. The snapshot caches are
//! `quick_cache` caches weighed against the memory budget; the few active clients sit in a map
//! that is read without a lock.
//!
//! Architecture invariant: the cache holds facts exactly as the store returns them; all logic
//! stays in the domain. Every entry remembers the revision this instance had applied when its
//! load began (`floor`) and the revision the store read it at (`read_at`). Applying the change
//! log records, per touched key, the revision that invalidated it (a watermark); entries a key
//! names exactly are dropped at once, and the rest are found stale at their next lookup: an
//! entry is current while no watermark above its floor covers it. Watermarks are kept for as
//! long as an entry may live (the TTL); forgetting any earlier raises a floor below which every
//! entry counts as stale, so a load racing with an invalidation can never leave a stale entry
//! behind. Answers built from current entries hold at one revision: the instance's `applied`
//! revision, its `checked_at`.
//!
//! Freshness (DESIGN.md §9): answers come from the cache only while the change log was read
//! successfully within `max_staleness`. While the store is known to be unreachable, nothing
//! waits for it: what needs the store fails at once, and only the poll keeps probing.
//!
//! History (DESIGN.md §9): every read of the change log first checks that the store still holds
//! the applied revision with its tag. When it does not (a restore from a backup, a failover that
//! lost commits), the history this instance applied is gone: every entry and client is dropped
//! at once (they belong to an older *generation*, which no request uses again), the store's head
//! is adopted, and the change is logged and counted. Snapshots read from another history than
//! the applied one, and revision tokens that name one, set off the same check.

mod error;
mod handles;
mod key;
pub mod reader;
mod snapshots;
pub mod sync;

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use metrics::Counter;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Equivalent, Lifecycle, OptionsBuilder, Weighter};

pub use key::{Pair, PairRef};
pub use reader::{Reader, Wanted};

use crate::domain::{
    AppId, AppSnapshot, Caller, ExternalCatalog, KeyHash, Revision, Tag, TenantId, UserGrant,
    UserId, UserSnapshot,
};
use crate::store::change::ChangeKey;
use crate::store::{PageSecret, Store, StoreError, StoreResult};

pub use error::ReadError;
pub use handles::Cause;
use handles::{Handles, Kind};
pub use snapshots::Entry;
use snapshots::{Snapshots, Weigh, build};

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

/// Hit and miss counts of one cache, for tests and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Lookups answered from the cache.
    pub hits: AtomicU64,
    /// Lookups that went to the store.
    pub misses: AtomicU64,
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

/// The most clients kept at once; more (which takes that many clients in use) starts afresh.
const MAX_CLIENTS: usize = 10_000;

/// How many of the latest applied revisions' tags are remembered, so that a token naming one
/// is recognised without asking the store; as many older revisions, once the store confirmed
/// them, are remembered beside them.
const RECENT_TAGS: usize = 4096;

/// Where this instance stands in the store's history: replaced whole, so that a request reads
/// the applied revision, its tag and the generation together.
#[derive(Debug, Clone, Copy)]
struct Head {
    /// The newest revision fully applied, with its tag.
    applied: Revision,
    /// Bumped whenever the store's history was found replaced; entries loaded in an earlier
    /// generation are stale.
    generation: u64,
}

/// Whether a revision belongs to the history this instance applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// It does: applied here, with the same tag (or named by number only).
    Yes,
    /// It does not: this instance applied that number with another tag.
    No,
    /// Not known here: newer than the applied revision, or older than the tags remembered.
    Unknown,
}

/// When the change log was last read, and whether the store is reachable.
struct SyncState {
    epoch: Instant,
    /// When the newest successful read of the change log began, in µs after `epoch`, plus one;
    /// zero until the first.
    synced_us: AtomicU64,
    /// Set when the store was found unreachable; cleared by the next successful read.
    store_down: AtomicBool,
    max_staleness: Duration,
}

impl SyncState {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// How long ago the change log was last read in full; `None` if it never was.
    fn age(&self) -> Option<Duration> {
        self.age_at(Instant::now())
    }

    /// [`Self::age`] as of `now`.
    fn age_at(&self, now: Instant) -> Option<Duration> {
        let now = u64::try_from(now.saturating_duration_since(self.epoch).as_micros())
            .unwrap_or(u64::MAX);
        match self.synced_us.load(Ordering::Acquire) {
            0 => None,
            synced => Some(Duration::from_micros(now.saturating_sub(synced - 1))),
        }
    }
}

/// The snapshot caches of one instance, and how far it has applied the change log.
pub struct Caches {
    store: Arc<dyn Store>,
    apps: Snapshots<Pair<TenantId, AppId>, AppSnapshot>,
    users: Snapshots<Pair<TenantId, UserId>, Option<UserSnapshot>>,
    grants: Snapshots<Pair<TenantId, UserId>, Vec<UserGrant>>,
    catalogs: Snapshots<TenantId, Option<ExternalCatalog>>,
    /// Active clients by key hash. Every call looks one up, and there are few of them, so this is
    /// a map read without a lock and replaced whole when it changes (only found clients enter it,
    /// so unknown keys cannot grow it).
    clients: ArcSwap<HashMap<KeyHash, Arc<Entry<Arc<Caller>>>>>,
    /// Longest an entry is kept (the clients map checks it itself).
    ttl: Duration,
    /// Per change-log key, the newest revision that invalidated it and when that was applied.
    watermarks: std::sync::Mutex<HashMap<ChangeKey, (u64, Instant)>>,
    /// Entries whose load began before this revision are stale: raised by [`Caches::clear`] and
    /// whenever watermarks are forgotten early, so losing one never makes a stale entry look
    /// current.
    stale_below: AtomicU64,
    /// The applied revision and the generation (see [`Head`]).
    head: ArcSwap<Head>,
    /// The tags of the latest applied revisions, in revision order (see [`RECENT_TAGS`]).
    recent: std::sync::Mutex<VecDeque<Revision>>,
    /// Tags of older revisions of the applied history, as the store confirmed them for tokens
    /// that named them (forgotten whole when full, and when the history is replaced).
    confirmed: std::sync::Mutex<HashMap<u64, Tag>>,
    /// The newest revision whose watermarks are all recorded; stored before `applied` moves.
    changed: AtomicU64,
    catching_up: tokio::sync::Mutex<()>,
    sync: SyncState,
    /// The deployment's page-token secret, set once the store is prepared.
    page_secret: std::sync::OnceLock<PageSecret>,
    metrics: Handles,
    /// Counters per cache: apps, users, grants, catalogs, clients.
    pub counters: [Counters; 5],
}

/// The most watermarks kept at once; more forgets them all and raises the stale floor.
const MAX_WATERMARKS: usize = 500_000;

/// How long one read of the change log may take before the store counts as unreachable.
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);

impl Caches {
    /// Empty caches over `store`. Nothing is read until [`Caches::start`]; until then every
    /// lookup fails with [`ReadError::Starting`].
    pub fn new(store: Arc<dyn Store>, config: CacheConfig) -> Arc<Self> {
        let b = config.budget_bytes;
        let metrics = Handles::new(config.max_staleness);
        metrics.store_up.set(0.0);
        Arc::new(Self {
            store,
            apps: build("apps", b * 45 / 100),
            users: build("users", b * 3 / 10),
            grants: build("grants", b / 10),
            catalogs: build("catalogs", b * 15 / 100),
            clients: ArcSwap::default(),
            ttl: config.ttl,
            watermarks: std::sync::Mutex::default(),
            stale_below: AtomicU64::new(0),
            head: ArcSwap::from_pointee(Head {
                applied: Revision::default(),
                generation: 0,
            }),
            recent: std::sync::Mutex::default(),
            confirmed: std::sync::Mutex::default(),
            changed: AtomicU64::new(0),
            catching_up: tokio::sync::Mutex::new(()),
            sync: SyncState {
                epoch: Instant::now(),
                synced_us: AtomicU64::new(0),
                store_down: AtomicBool::new(false),
                max_staleness: config.max_staleness,
            },
            page_secret: std::sync::OnceLock::new(),
            metrics,
            counters: Default::default(),
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
        **self.head.load()
    }

    /// The newest revision this instance has fully applied, with its tag: its `checked_at`.
    pub fn applied(&self) -> Revision {
        self.head().applied
    }

    /// Whether `revision` belongs to the history this instance applied, as far as it knows
    /// without asking the store. A revision without a tag is judged by its number alone.
    pub fn knows(&self, revision: Revision) -> Known {
        let applied = self.applied();
        if revision > applied {
            return Known::Unknown;
        }
        if revision.tag() == Tag::NONE {
            return Known::Yes;
        }
        let tag = if revision == applied {
            Some(applied.tag())
        } else {
            let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            match recent.binary_search(&revision) {
                Ok(i) => Some(recent[i].tag()),
                Err(_) => {
                    drop(recent);
                    let confirmed = self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
                    confirmed.get(&revision.0).copied()
                }
            }
        };
        match tag {
            Some(tag) if tag == revision.tag() => Known::Yes,
            Some(_) => Known::No,
            None => Known::Unknown,
        }
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
                let mut confirmed = self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
                // Only if no other history was found meanwhile (that moves the generation on,
                // then clears the map).
                if generation == self.head().generation {
                    if confirmed.len() >= RECENT_TAGS {
                        confirmed.clear();
                    }
                    confirmed.insert(revision.0, revision.tag());
                }
                Ok(Known::Yes)
            }
            known => Ok(known),
        }
    }

    /// The freshness check of a request: fails once the change log was last read longer ago than
    /// the staleness bound (or never); otherwise where the request reads.
    pub fn at(&self) -> Result<At, ReadError> {
        let now = Instant::now();
        let age = self.sync.age_at(now).ok_or(ReadError::Starting)?;
        if age > self.sync.max_staleness {
            return Err(ReadError::Stale {
                age,
                bound: self.sync.max_staleness,
            });
        }
        let head = self.head();
        Ok(At {
            applied: head.applied,
            generation: head.generation,
            changed: self.changed.load(Ordering::Acquire),
            now,
        })
    }

    /// Keeps the deployment's page-token secret (read from the store before [`Caches::start`];
    /// it never changes while the process runs, so a second call changes nothing).
    pub fn set_page_secret(&self, secret: PageSecret) {
        let _ = self.page_secret.set(secret);
    }

    /// The deployment's page-token secret; [`ReadError::Starting`] until the store is prepared.
    pub fn page_secret(&self) -> Result<&PageSecret, ReadError> {
        self.page_secret.get().ok_or(ReadError::Starting)
    }

    /// Whether answers may come from the cache now: started, and within the staleness bound.
    pub fn fresh(&self) -> bool {
        self.at().is_ok()
    }

    /// Fails at once while the store is known to be unreachable, so nothing waits for it.
    pub fn require_store(&self) -> Result<(), ReadError> {
        if self.sync.store_down.load(Ordering::Acquire) {
            Err(ReadError::StoreDown)
        } else {
            Ok(())
        }
    }

    /// Notes a store failure: one that says the store cannot be reached makes everything that
    /// needs the store fail at once until the poll reaches it again. (A pool exhausted by a
    /// flood of misses looks the same; then misses are shed until the next poll, a quarter of a
    /// second later.)
    pub fn note_failure(&self, e: &StoreError) {
        if e.is_unreachable() {
            self.note_unreachable(e);
        }
    }

    /// Notes that the store cannot be reached, and why.
    pub fn note_unreachable(&self, why: impl std::fmt::Display) {
        if !self.sync.store_down.swap(true, Ordering::AcqRel) {
            self.metrics.store_up.set(0.0);
            tracing::warn!(error = %why, "the store is unreachable; answering cache hits only, within the staleness bound");
        }
    }

    fn synced(&self, began: u64) {
        self.sync.synced_us.fetch_max(began + 1, Ordering::AcqRel);
        if self.sync.store_down.swap(false, Ordering::AcqRel) {
            tracing::info!("the store is reachable again");
        }
        self.metrics.store_up.set(1.0);
    }

    /// Whether `entry` is untouched since its load began, as far as `at` knows (no watermark
    /// above its floor covers any of its keys), and young enough to use.
    fn untouched<T>(&self, entry: &Entry<T>, at: At) -> bool {
        let floor = entry.floor.0;
        if entry.generation != at.generation
            || floor < self.stale_below.load(Ordering::Acquire)
            || at.now.saturating_duration_since(entry.loaded) >= self.ttl
        {
            return false;
        }
        if entry.verified.load(Ordering::Acquire) >= at.changed {
            return true;
        }
        {
            let watermarks = self.watermarks.lock().unwrap_or_else(|e| e.into_inner());
            let newer = |key: &ChangeKey| watermarks.get(key).is_some_and(|(r, _)| *r > floor);
            // Looked at again under the lock: forgetting watermarks (under it too) raises the
            // floor, and an entry must not pass on a map that was just emptied.
            if entry.keys.iter().any(newer) || floor < self.stale_below.load(Ordering::Acquire) {
                return false;
            }
        }
        entry.verified.fetch_max(at.changed, Ordering::AcqRel);
        true
    }

    /// Whether `entry` holds at `at`: read no later than it and untouched since.
    pub fn holds<T>(&self, entry: &Entry<T>, at: At) -> bool {
        entry.read_at <= at.applied && self.untouched(entry, at)
    }

    /// The cached entry for `key` if it is untouched at `at` (a stale one is dropped); counts
    /// nothing, and never waits.
    fn cached<K, Q, V>(&self, cache: &Snapshots<K, V>, at: At, key: &Q) -> Option<Arc<Entry<V>>>
    where
        K: Hash + Eq + Clone,
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let entry = cache.get(key)?;
        if self.untouched(&entry, at) {
            return Some(entry);
        }
        cache.remove_if(key, |cached| Arc::ptr_eq(cached, &entry));
        None
    }

    fn count_hit(&self, kind: Kind) {
        self.counters[kind as usize]
            .hits
            .fetch_add(1, Ordering::Relaxed);
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
        load: impl FnOnce() -> F,
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
        self.counters[which].misses.fetch_add(1, Ordering::Relaxed);
        self.metrics.misses[which].increment(1);
        self.require_store()?;
        // The floor (and the entry's age) are taken before the read, so an invalidation racing
        // it is caught, and no watermark is forgotten while the entry may still be used.
        let (head, began) = (self.head(), Instant::now());
        let (owned, keys, load) = (owned(), keys(), load());
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

    /// The snapshot of an application in a tenant.
    pub async fn app(
        &self,
        at: At,
        tenant: &TenantId,
        app: &AppId,
    ) -> Result<Arc<Entry<AppSnapshot>>, ReadError> {
        self.lookup(
            Kind::Apps,
            &self.apps,
            at,
            &(tenant.as_str(), app.as_str()) as &dyn PairRef,
            || Pair(tenant.clone(), app.clone()),
            || {
                vec![
                    ChangeKey::Tenant(tenant.clone()),
                    ChangeKey::App(app.clone()),
                    ChangeKey::AppInTenant(tenant.clone(), app.clone()),
                ]
            },
            || self.store.app_snapshot(tenant, app),
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
        self.lookup(
            Kind::Users,
            &self.users,
            at,
            &(tenant.as_str(), user.as_str()) as &dyn PairRef,
            || Pair(tenant.clone(), user.clone()),
            || {
                vec![
                    ChangeKey::Tenant(tenant.clone()),
                    ChangeKey::User(tenant.clone(), user.clone()),
                ]
            },
            || self.store.user_snapshot(tenant, user),
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
                    &self.users,
                    at,
                    &(tenant.as_str(), u.as_str()) as &dyn PairRef,
                )
                .filter(|e| e.read_at <= at.applied)
                .map(Some),
        };
        let app = self
            .cached(
                &self.apps,
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
        self.lookup(
            Kind::Grants,
            &self.grants,
            at,
            &(tenant.as_str(), user.as_str()) as &dyn PairRef,
            || Pair(tenant.clone(), user.clone()),
            || {
                vec![
                    ChangeKey::Tenant(tenant.clone()),
                    ChangeKey::User(tenant.clone(), user.clone()),
                    ChangeKey::Groups(tenant.clone()),
                ]
            },
            || self.store.user_grants(tenant, user),
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
            &self.catalogs,
            at,
            tenant.as_str(),
            || tenant.clone(),
            || {
                vec![
                    ChangeKey::Tenant(tenant.clone()),
                    ChangeKey::Groups(tenant.clone()),
                ]
            },
            || self.store.external_catalog(tenant),
        )
        .await
    }

    /// The cached active client holding the key with this hash, if it is current; never waits.
    /// Otherwise [`Caches::load_client`] asks the store.
    pub fn client_hit(&self, at: At, hash: &KeyHash) -> Option<Arc<Caller>> {
        let clients = self.clients.load();
        let entry = clients.get(hash).filter(|e| self.untouched(e, at))?;
        self.count_hit(Kind::Clients);
        Some(entry.value.clone())
    }

    /// The active client holding the key with this hash, from the store, after
    /// [`Caches::client_hit`] missed (`None`: unknown or revoked). Only found clients are cached,
    /// so a flood of unknown keys cannot push real clients out.
    pub async fn load_client(&self, hash: &KeyHash) -> Result<Option<Arc<Caller>>, ReadError> {
        let which = Kind::Clients as usize;
        self.counters[which].misses.fetch_add(1, Ordering::Relaxed);
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
            self.clients.rcu(|clients| {
                let mut clients = if clients.len() < MAX_CLIENTS {
                    HashMap::clone(clients)
                } else {
                    HashMap::new()
                };
                clients.insert(*hash, entry.clone());
                clients
            });
        }
        Ok(caller)
    }

    /// Applies the change log up to at least `target` unless that is done already; returns the
    /// applied revision. Requests waiting for the same revision share one read of the log: each
    /// looks again once it holds the lock, and a read that began after a request arrived
    /// answers it too (if it did not reach `target`, nothing committed has).
    pub async fn catch_up_to(&self, target: Revision, cause: Cause) -> Result<Revision, ReadError> {
        if self.applied() >= target {
            return Ok(self.applied());
        }
        self.require_store()?;
        let arrived = self.sync.now_us();
        let _one_at_a_time = self.catching_up.lock().await;
        if self.applied() >= target || self.read_since(arrived) {
            return Ok(self.applied());
        }
        self.catch_up_locked(cause).await
    }

    /// Applies the change log up to the store's newest revision, whether or not the store is
    /// known to be reachable: the poll, which is also the probe that finds it again.
    pub async fn poll(&self) -> Result<Revision, ReadError> {
        let _one_at_a_time = self.catching_up.lock().await;
        self.catch_up_locked(Cause::Poll).await
    }

    /// Reads the change log now, even if nothing is known to be newer (which also checks that
    /// the store still holds this instance's history), unless a read that began after the call
    /// did already.
    async fn reread(&self, cause: Cause) -> Result<Revision, ReadError> {
        self.require_store()?;
        let arrived = self.sync.now_us();
        let _one_at_a_time = self.catching_up.lock().await;
        if self.read_since(arrived) {
            return Ok(self.applied());
        }
        self.catch_up_locked(cause).await
    }

    /// Whether a read of the change log began after `arrived` (µs after the epoch).
    fn read_since(&self, arrived: u64) -> bool {
        self.sync
            .synced_us
            .load(Ordering::Acquire)
            .saturating_sub(1)
            > arrived
    }

    /// Brings this instance up to its own write before it replies, so that its next read sees
    /// the write without a token (a write into a history this instance has not noticed yet sets
    /// off the history check); if that fails, forgets everything cached instead.
    pub async fn applied_through(&self, written: Revision) {
        let why = match self.verify(written, Cause::Write).await {
            Ok(Known::Yes) => return,
            Ok(_) => "the store no longer holds this write".to_owned(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(error = %why, "cannot apply the change log after a write; clearing the caches");
        self.clear(written);
    }

    /// Reads and applies the change log, with `catching_up` held.
    async fn catch_up_locked(&self, cause: Cause) -> Result<Revision, ReadError> {
        let began = self.sync.now_us();
        let applied = self.applied();
        self.metrics.catch_ups[cause as usize].increment(1);
        // Bounded, so that no one holds the lock (and the poll behind it) for longer.
        let read = tokio::time::timeout(READ_TIMEOUT, self.store.changes_since(applied)).await;
        let read = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                self.note_failure(&e);
                return Err(e.into());
            }
            Err(_) => {
                self.note_unreachable("reading the change log timed out");
                return Err(ReadError::StoreDown);
            }
        };
        let current = read.head;
        if !read.same_history {
            self.replace_history(applied, current);
        } else if current > applied {
            // Every write records at least one key, so the log is contiguous unless it was pruned.
            let contiguous = read
                .changes
                .first()
                .is_some_and(|(r, _)| r.0 == applied.0 + 1);
            if contiguous {
                let mut newest = 0;
                for (revision, key) in &read.changes {
                    self.invalidate(key, *revision);
                    newest = newest.max(revision.0);
                }
                self.changed.fetch_max(newest, Ordering::AcqRel);
                self.advance(current, &read.changes);
            } else {
                tracing::warn!(%applied, %current, "the change log no longer reaches back to this instance; clearing the caches");
                self.clear(current);
                self.advance(current, &[]);
            }
        }
        self.synced(began);
        Ok(self.applied())
    }

    /// Moves the applied revision forward to `current` (same history, same generation),
    /// remembering the tags of the revisions applied on the way.
    fn advance(&self, current: Revision, changes: &[(Revision, ChangeKey)]) {
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            let revisions = changes.iter().map(|(r, _)| *r).chain([current]);
            for revision in revisions {
                if recent.back().is_none_or(|last| *last < revision) {
                    recent.push_back(revision);
                }
            }
            while recent.len() > RECENT_TAGS {
                recent.pop_front();
            }
        }
        let generation = self.head().generation;
        self.head.store(Arc::new(Head {
            applied: current,
            generation,
        }));
        self.metrics.applied.set(current.0 as f64);
    }

    /// The store no longer holds the history this instance applied (restored from a backup, or
    /// failed over with commits lost): a new generation begins at the store's head, and nothing
    /// cached before is used again. With `catching_up` held.
    fn replace_history(&self, applied: Revision, head: Revision) {
        let generation = self.head().generation + 1;
        // Watermarks, floors and change marks are numbers of the old history: start over.
        self.watermarks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.stale_below.store(0, Ordering::Release);
        self.changed.store(head.0, Ordering::Release);
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.clear();
            recent.push_back(head);
        }
        self.drop_entries();
        self.head.store(Arc::new(Head {
            applied: head,
            generation,
        }));
        // After the generation moved on, so that no confirmation of the old one slips in.
        self.confirmed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.metrics.applied.set(head.0 as f64);
        self.metrics.regressions.increment(1);
        tracing::warn!(
            applied = %applied.token(),
            head = %head.token(),
            "the store no longer holds the history this instance applied (restored from a backup, \
             or failed over with commits lost): every cached snapshot and client was dropped, and \
             the store's head is followed from here"
        );
    }

    /// Empties every cache: nothing cached before `at` is used again.
    pub fn clear(&self, at: Revision) {
        self.stale_below.fetch_max(at.0, Ordering::AcqRel);
        self.drop_entries();
    }

    /// Drops every cached snapshot and client.
    fn drop_entries(&self) {
        self.apps.clear();
        self.users.clear();
        self.grants.clear();
        self.catalogs.clear();
        self.clients.store(Arc::default());
    }

    /// Records that `key` changed at `revision`, and drops at once the entries it names exactly
    /// (coarser keys leave theirs to be found stale by the watermark).
    fn invalidate(&self, key: &ChangeKey, revision: Revision) {
        if *key == ChangeKey::Everything {
            return self.clear(revision);
        }
        {
            let mut watermarks = self.watermarks.lock().unwrap_or_else(|e| e.into_inner());
            if watermarks.len() >= MAX_WATERMARKS && !watermarks.contains_key(key) {
                // Forgetting watermarks early makes everything loaded before them stale.
                watermarks.clear();
                self.stale_below.fetch_max(revision.0, Ordering::AcqRel);
            }
            let mark = watermarks.entry(key.clone()).or_insert((0, Instant::now()));
            *mark = (mark.0.max(revision.0), Instant::now());
        }
        match key {
            ChangeKey::AppInTenant(t, a) => {
                self.apps.remove(&(t.as_str(), a.as_str()) as &dyn PairRef);
            }
            ChangeKey::User(t, u) => {
                self.users.remove(&(t.as_str(), u.as_str()) as &dyn PairRef);
                self.grants
                    .remove(&(t.as_str(), u.as_str()) as &dyn PairRef);
            }
            ChangeKey::Groups(t) => {
                self.catalogs.remove(t.as_str());
            }
            ChangeKey::Clients => self.clients.store(Arc::default()),
            // A tenant, an app in every tenant: the watermark alone makes the entries stale.
            ChangeKey::Tenant(_) | ChangeKey::App(_) | ChangeKey::Everything => {}
        }
    }

    /// Forgets watermarks older than any entry can be (the TTL, and a minute for loads in
    /// flight); nothing they covered can still be cached.
    pub fn forget_old_watermarks(&self) {
        let keep = self.ttl + Duration::from_secs(60);
        let mut watermarks = self.watermarks.lock().unwrap_or_else(|e| e.into_inner());
        watermarks.retain(|_, (_, at)| at.elapsed() < keep);
    }

    /// Entry counts per cache and the staleness, for metrics.
    pub fn report(&self) {
        let sizes = [
            self.apps.len(),
            self.users.len(),
            self.grants.len(),
            self.catalogs.len(),
            self.clients.load().len(),
        ];
        for (gauge, size) in self.metrics.entries.iter().zip(sizes) {
            gauge.set(size as f64);
        }
        if let Some(age) = self.sync.age() {
            self.metrics.staleness.set(age.as_secs_f64());
        }
    }

    /// The store behind the caches.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
