//! The cache: moka caches of the engine's snapshots (never of decisions), in front of the store,
//! kept in step with every instance's writes through the store's change log.
//!
//! Architecture invariant: the cache holds facts exactly as the store returns them; all logic
//! stays in the domain. Every entry remembers the revision this instance had applied when its
//! load began (`floor`) and the revision the store read it at (`read_at`). Applying the change
//! log records, per touched key, the revision that invalidated it (a watermark) and removes the
//! affected entries; an entry is current while no watermark above its floor covers it. Losing a
//! watermark (the map is bounded) raises a floor below which every entry counts as stale, so a
//! load racing with an invalidation can never leave a stale entry behind, and answers built from
//! current entries all hold at one revision: the instance's `applied` revision, its `checked_at`.

pub mod sync;

use std::borrow::Borrow;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use moka::future::Cache;

use crate::domain::{
    AppId, AppSnapshot, Caller, ExternalCatalog, Revision, TenantId, UserGrant, UserId,
    UserSnapshot,
};
use crate::store::change::{self, CLIENTS};
use crate::store::{Store, StoreError, StoreResult};

/// One cached snapshot with the revisions that say whether it is still current.
#[derive(Debug)]
pub struct Entry<T> {
    /// The facts.
    pub value: T,
    /// This instance's applied revision when the load began.
    pub floor: Revision,
    /// The revision the store read the facts at.
    pub read_at: Revision,
    /// The change-log keys whose changes make this entry stale.
    keys: Vec<String>,
}

/// What decides whether a cached entry still holds: its revisions and change-log keys.
pub trait Stamped: Send + Sync {
    /// This instance's applied revision when the load began.
    fn floor(&self) -> Revision;
    /// The revision the store read the facts at.
    fn read_at(&self) -> Revision;
    /// The change-log keys whose changes make the entry stale.
    fn keys(&self) -> &[String];
}

impl<T: Send + Sync> Stamped for Entry<T> {
    fn floor(&self) -> Revision {
        self.floor
    }
    fn read_at(&self) -> Revision {
        self.read_at
    }
    fn keys(&self) -> &[String] {
        &self.keys
    }
}

impl<T> Entry<T> {
    /// An entry read straight from the store at `read_at`, bypassing the cache.
    pub fn direct(value: T, read_at: Revision) -> Arc<Self> {
        Arc::new(Self {
            value,
            floor: read_at,
            read_at,
            keys: Vec::new(),
        })
    }
}

/// How long cached entries may answer after the change log was last read in full. Beyond it a
/// lookup reads the log first, and fails if it cannot: an instance cut off from the store (its
/// listener alive or not) stops answering from facts that may be over a second old (DESIGN.md §2).
pub const MAX_UNSYNCED: Duration = Duration::from_millis(500);

/// Hit and miss counts of one cache, for tests and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Lookups answered from the cache.
    pub hits: AtomicU64,
    /// Lookups that went to the store.
    pub misses: AtomicU64,
}

/// Sizes and lifetimes of the caches.
#[derive(Debug, Clone, Copy)]
pub struct CacheConfig {
    /// Memory budget for all snapshot caches, in bytes (approximate: entries are weighed).
    pub budget_bytes: u64,
    /// Longest an entry is kept, whatever happens: a safety net behind invalidation.
    pub ttl: Duration,
}

/// The snapshot caches of one instance, and how far it has applied the change log.
pub struct Caches {
    store: Arc<dyn Store>,
    apps: Cache<(TenantId, AppId), Arc<Entry<AppSnapshot>>>,
    users: Cache<(TenantId, UserId), Arc<Entry<Option<UserSnapshot>>>>,
    grants: Cache<(TenantId, UserId), Arc<Entry<Vec<UserGrant>>>>,
    catalogs: Cache<TenantId, Arc<Entry<Option<ExternalCatalog>>>>,
    clients: Cache<String, Arc<Entry<Caller>>>,
    /// Per change-log key, the newest revision that invalidated it (kept long enough to
    /// outlive any load in flight).
    watermarks: moka::sync::Cache<String, u64>,
    /// Entries whose load began before this revision are stale: raised by [`Caches::clear`] and
    /// whenever a watermark is evicted, so losing one never makes a stale entry look current.
    stale_below: Arc<AtomicU64>,
    applied: AtomicU64,
    catching_up: tokio::sync::Mutex<()>,
    /// When the newest successful read of the change log began, in µs after `epoch`.
    synced_us: AtomicU64,
    epoch: Instant,
    /// Counters per cache: apps, users, grants, catalogs, clients.
    pub counters: [Counters; 5],
}

const NAMES: [&str; 5] = ["apps", "users", "grants", "catalogs", "clients"];

/// A rough size of a snapshot in bytes, for the memory budget.
trait Weigh {
    fn weigh(&self) -> u32;
}

impl Weigh for AppSnapshot {
    fn weigh(&self) -> u32 {
        let manifest = |m: &crate::domain::Manifest| {
            m.scopes
                .iter()
                .map(|s| s.as_str().len() + 48)
                .sum::<usize>()
                + 128
        };
        let app = self.app.as_ref().map_or(0, |a| manifest(&a.manifest));
        let consent = self.consent.as_ref().map_or(0, |c| {
            manifest(&c.approved_manifest) + c.resolved_requests.len() * 64
        });
        saturate(512 + app * 2 + consent * 2)
    }
}

impl Weigh for Option<UserSnapshot> {
    fn weigh(&self) -> u32 {
        saturate(
            128 + self
                .as_ref()
                .map_or(0, |u| u.rights.keys().map(|p| p.as_str().len() + 64).sum()),
        )
    }
}

impl Weigh for Vec<UserGrant> {
    fn weigh(&self) -> u32 {
        saturate(
            64 + self
                .iter()
                .map(|g| g.permission_id.as_str().len() + 96)
                .sum::<usize>(),
        )
    }
}

impl Weigh for Option<ExternalCatalog> {
    fn weigh(&self) -> u32 {
        saturate(
            128 + self
                .as_ref()
                .map_or(0, |c| c.groups.len() * 512 + c.permissions.len() * 256),
        )
    }
}

impl Weigh for Caller {
    fn weigh(&self) -> u32 {
        256
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn build<K, V>(name: &'static str, budget: u64, ttl: Duration) -> Cache<K, Arc<Entry<V>>>
where
    K: Hash + Eq + Send + Sync + Clone + 'static,
    V: Weigh + Send + Sync + 'static,
{
    Cache::builder()
        .name(name)
        .max_capacity(budget.max(1024))
        .weigher(|_, e: &Arc<Entry<V>>| e.value.weigh())
        .time_to_live(ttl)
        .support_invalidation_closures()
        .eviction_listener(move |_, _, cause| {
            if cause.was_evicted() {
                metrics::counter!("consentry_cache_evictions_total", "cache" => name).increment(1);
            }
        })
        .build()
}

fn shared(e: Arc<StoreError>) -> StoreError {
    StoreError::Shared(e)
}

impl Caches {
    /// Empty caches over `store`, starting at the store's current revision.
    pub async fn new(store: Arc<dyn Store>, config: CacheConfig) -> StoreResult<Arc<Self>> {
        let b = config.budget_bytes;
        let ttl = config.ttl;
        let epoch = Instant::now();
        let start = store.revision().await?;
        let stale_below = Arc::new(AtomicU64::new(0));
        let lost = stale_below.clone();
        Ok(Arc::new(Self {
            store,
            apps: build("apps", b * 4 / 10, ttl),
            users: build("users", b * 3 / 10, ttl),
            grants: build("grants", b / 10, ttl),
            catalogs: build("catalogs", b * 15 / 100, ttl),
            clients: build("clients", b * 5 / 100, ttl),
            watermarks: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(ttl + Duration::from_secs(60))
                .eviction_listener(move |_, revision: u64, cause| {
                    if cause.was_evicted() {
                        lost.fetch_max(revision, Ordering::AcqRel);
                    }
                })
                .build(),
            stale_below,
            applied: AtomicU64::new(start.0),
            catching_up: tokio::sync::Mutex::new(()),
            synced_us: AtomicU64::new(0),
            epoch,
            counters: Default::default(),
        }))
    }

    /// The newest revision this instance has fully applied: its `checked_at`.
    pub fn applied(&self) -> Revision {
        Revision(self.applied.load(Ordering::Acquire))
    }

    /// Whether `entry` still holds at the applied revision: read no later than it, and not
    /// invalidated since its load began.
    pub fn is_current(&self, entry: &dyn Stamped, applied: Revision) -> bool {
        entry.read_at() <= applied && self.untouched(entry)
    }

    fn micros_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether the change log was read in full less than [`MAX_UNSYNCED`] ago.
    fn synced_recently(&self) -> bool {
        let synced = self.synced_us.load(Ordering::Acquire);
        let now = self.micros_since_epoch(Instant::now());
        u128::from(now.saturating_sub(synced)) < MAX_UNSYNCED.as_micros()
    }

    /// Reads the change log unless that was done recently; an error if it cannot be read.
    async fn ensure_synced(&self) -> StoreResult<()> {
        if self.synced_recently() {
            return Ok(());
        }
        let _one_at_a_time = self.catching_up.lock().await;
        // Whoever held the lock may have just read it.
        if self.synced_recently() {
            return Ok(());
        }
        self.catch_up_locked().await.map(drop)
    }

    fn untouched(&self, entry: &dyn Stamped) -> bool {
        let floor = entry.floor().0;
        let newer = |key: &str| self.watermarks.get(key).is_some_and(|r| r > floor);
        floor >= self.stale_below.load(Ordering::Acquire) && !entry.keys().iter().any(|k| newer(k))
    }

    /// The cached entry for `key` if it is still untouched (counted as a hit); a stale one is
    /// dropped and, like an absent one, counted as a miss. Fails if the change log is out of reach.
    async fn current<K, Q, V>(
        &self,
        which: usize,
        cache: &Cache<K, Arc<Entry<V>>>,
        key: &Q,
    ) -> StoreResult<Option<Arc<Entry<V>>>>
    where
        K: Hash + Eq + Send + Sync + Borrow<Q> + 'static,
        Q: Hash + Eq + ?Sized,
        V: Send + Sync + 'static,
    {
        self.ensure_synced().await?;
        let entry = match cache.get(key).await {
            Some(entry) if self.untouched(&*entry) => Some(entry),
            Some(_) => {
                cache.invalidate(key).await;
                None
            }
            None => None,
        };
        let (counter, metric) = match entry {
            Some(_) => (&self.counters[which].hits, "consentry_cache_hits_total"),
            None => (&self.counters[which].misses, "consentry_cache_misses_total"),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric, "cache" => NAMES[which]).increment(1);
        Ok(entry)
    }

    async fn lookup<K, V, F>(
        &self,
        which: usize,
        cache: &Cache<K, Arc<Entry<V>>>,
        key: K,
        keys: impl FnOnce() -> Vec<String>,
        load: impl FnOnce() -> F,
    ) -> StoreResult<Arc<Entry<V>>>
    where
        K: Hash + Eq + Send + Sync + Clone + Debug + 'static,
        V: Send + Sync + 'static,
        F: Future<Output = StoreResult<(V, Revision)>>,
    {
        if let Some(entry) = self.current(which, cache, &key).await? {
            return Ok(entry);
        }
        let floor = self.applied();
        let (keys, load) = (keys(), load());
        cache
            .try_get_with(key, async move {
                let started = Instant::now();
                let loaded = load.await;
                metrics::histogram!("consentry_store_duration_seconds", "op" => NAMES[which])
                    .record(started.elapsed().as_secs_f64());
                let (value, read_at) = loaded?;
                Ok(Arc::new(Entry {
                    value,
                    floor,
                    read_at,
                    keys,
                }))
            })
            .await
            .map_err(shared)
    }

    /// The snapshot of an application in a tenant.
    pub async fn app(
        &self,
        tenant: &TenantId,
        app: &AppId,
    ) -> StoreResult<Arc<Entry<AppSnapshot>>> {
        self.lookup(
            0,
            &self.apps,
            (tenant.clone(), app.clone()),
            || {
                vec![
                    change::tenant(tenant),
                    change::app(app),
                    change::app_in_tenant(tenant, app),
                ]
            },
            || self.store.app_snapshot(tenant, app),
        )
        .await
    }

    /// The snapshot of a user's roles and rights in a tenant (`None`: unknown to it).
    pub async fn user(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Arc<Entry<Option<UserSnapshot>>>> {
        self.lookup(
            1,
            &self.users,
            (tenant.clone(), user.clone()),
            || vec![change::tenant(tenant), change::user(tenant, user)],
            || self.store.user_snapshot(tenant, user),
        )
        .await
    }

    /// A user's external permission grants in a tenant.
    pub async fn grants(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<Arc<Entry<Vec<UserGrant>>>> {
        self.lookup(
            2,
            &self.grants,
            (tenant.clone(), user.clone()),
            || {
                vec![
                    change::tenant(tenant),
                    change::user(tenant, user),
                    change::groups(tenant),
                ]
            },
            || self.store.user_grants(tenant, user),
        )
        .await
    }

    /// A tenant's external permission catalog (`None`: no such tenant).
    pub async fn catalog(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Arc<Entry<Option<ExternalCatalog>>>> {
        self.lookup(
            3,
            &self.catalogs,
            tenant.clone(),
            || vec![change::tenant(tenant), change::groups(tenant)],
            || self.store.external_catalog(tenant),
        )
        .await
    }

    /// The active client holding the key with this hash (`None`: unknown or revoked). Only found
    /// clients are cached, so a flood of unknown keys cannot push real clients out.
    pub async fn client(&self, key_hash: &str) -> StoreResult<Option<Caller>> {
        if let Some(entry) = self.current(4, &self.clients, key_hash).await? {
            return Ok(Some(entry.value.clone()));
        }
        // The floor is taken before the read, so a revocation racing it is caught.
        let floor = self.applied();
        let caller = self.store.client_by_key_hash(key_hash).await?;
        if let Some(caller) = &caller {
            let entry = Entry {
                value: caller.clone(),
                floor,
                read_at: Revision(0),
                keys: vec![CLIENTS.to_owned()],
            };
            self.clients
                .insert(key_hash.to_owned(), Arc::new(entry))
                .await;
        }
        Ok(caller)
    }

    /// Catches up if this instance has not yet applied `written` (its own write), so that its
    /// next read sees the write without a token.
    pub async fn applied_through(&self, written: Revision) {
        if self.applied() >= written {
            return;
        }
        if let Err(e) = self.catch_up().await {
            tracing::warn!(error = %e, "cannot read the change log after a write; clearing the caches");
            self.clear(written);
        }
    }

    /// Applies the change log up to the store's newest revision; returns the applied revision.
    pub async fn catch_up(&self) -> StoreResult<Revision> {
        let _one_at_a_time = self.catching_up.lock().await;
        self.catch_up_locked().await
    }

    /// [`Self::catch_up`], with `catching_up` held.
    async fn catch_up_locked(&self) -> StoreResult<Revision> {
        let started = self.micros_since_epoch(Instant::now());
        let applied = self.applied();
        let (changes, current) = self.store.changes_since(applied).await?;
        if current <= applied {
            self.synced_us.fetch_max(started, Ordering::AcqRel);
            return Ok(applied);
        }
        // Every write records at least one key, so the log is contiguous unless it was pruned.
        let contiguous = changes.first().is_some_and(|(r, _)| r.0 == applied.0 + 1);
        if contiguous {
            for (revision, key) in &changes {
                self.invalidate(key, *revision).await;
            }
        } else {
            tracing::warn!(%applied, %current, "the change log no longer reaches back to this instance; clearing the caches");
            self.clear(current);
        }
        self.applied.store(current.0, Ordering::Release);
        self.synced_us.fetch_max(started, Ordering::AcqRel);
        metrics::gauge!("consentry_applied_revision").set(current.0 as f64);
        Ok(current)
    }

    /// Empties every cache (a lost listener, an unreadable log): nothing cached before `at` is used.
    pub fn clear(&self, at: Revision) {
        self.stale_below.fetch_max(at.0, Ordering::AcqRel);
        self.apps.invalidate_all();
        self.users.invalidate_all();
        self.grants.invalidate_all();
        self.catalogs.invalidate_all();
        self.clients.invalidate_all();
    }

    /// Records that `key` changed at `revision` and drops the entries it covers.
    async fn invalidate(&self, key: &str, revision: Revision) {
        let previous = self.watermarks.get(key).unwrap_or(0);
        self.watermarks
            .insert(key.to_owned(), previous.max(revision.0));
        let mut parts = key.splitn(3, '/');
        let (kind, first, second) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let tenant = TenantId::parse("key", first).ok();
        let (app, user) = (
            AppId::parse("key", second).ok(),
            UserId::parse("key", second).ok(),
        );
        let dropped = match (kind, tenant, app, user) {
            // Keys naming one entry drop exactly that entry.
            (Some("a"), Some(t), Some(a), _) => {
                self.apps.invalidate(&(t, a)).await;
                Ok(())
            }
            (Some("u"), Some(t), _, Some(u)) => {
                let key = (t, u);
                self.users.invalidate(&key).await;
                self.grants.invalidate(&key).await;
                Ok(())
            }
            (Some("g"), Some(t), _, _) => {
                self.catalogs.invalidate(&t).await;
                self.grants
                    .invalidate_entries_if(move |(g, _), _| *g == t)
                    .map(drop)
            }
            // Coarse keys drop every entry they cover.
            (Some("A"), _, _, _) => {
                let app = first.to_owned();
                self.apps
                    .invalidate_entries_if(move |(_, a), _| a.as_str() == app)
                    .map(drop)
            }
            (Some("t"), Some(t), _, _) => {
                let (t2, t3, t4) = (t.clone(), t.clone(), t.clone());
                self.apps
                    .invalidate_entries_if(move |(x, _), _| *x == t)
                    .and_then(|_| self.users.invalidate_entries_if(move |(x, _), _| *x == t2))
                    .and_then(|_| self.grants.invalidate_entries_if(move |(x, _), _| *x == t3))
                    .and_then(|_| self.catalogs.invalidate_entries_if(move |x, _| *x == t4))
                    .map(drop)
            }
            (Some(CLIENTS), _, _, _) => {
                self.clients.invalidate_all();
                Ok(())
            }
            // Anything else (or a key that does not parse) clears everything: never too little.
            _ => {
                self.clear(revision);
                Ok(())
            }
        };
        if let Err(e) = dropped {
            // Watermarks alone keep answers right; this only frees memory sooner.
            tracing::debug!(error = %e, key, "predicate invalidation unavailable");
        }
    }

    /// Lookups and entry counts per cache, for metrics.
    pub fn report_sizes(&self) {
        let sizes = [
            self.apps.entry_count(),
            self.users.entry_count(),
            self.grants.entry_count(),
            self.catalogs.entry_count(),
            self.clients.entry_count(),
        ];
        for (name, size) in NAMES.iter().zip(sizes) {
            metrics::gauge!("consentry_cache_entries", "cache" => *name).set(size as f64);
        }
    }
}
