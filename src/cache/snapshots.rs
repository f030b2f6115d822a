//! The snapshot caches' parts: an [`Entry`] with the revisions that say whether it is current,
//! what each snapshot weighs against the memory budget, and the `quick_cache` caches built
//! over them (weighed, evictions counted).

use super::*;

/// One cached snapshot with the revisions that say whether it is still current.
#[derive(Debug)]
pub struct Entry<T> {
    /// The facts.
    pub value: T,
    /// This instance's applied revision when the load began.
    pub floor: Revision,
    /// The generation of the caches when the load began (see `Caches`): an entry of another
    /// generation is never used.
    pub(super) generation: u64,
    /// The revision the store read the facts at.
    pub read_at: Revision,
    /// The change-log keys whose changes make this entry stale.
    pub(super) keys: Box<[ChangeKey]>,
    /// The change mark (see [`At::changed`]) through which no watermark was found above the
    /// floor: while the instance's mark is no higher, the entry is current without looking.
    pub(super) verified: AtomicU64,
    /// When it was loaded.
    pub(super) loaded: Instant,
    /// Its rough size in bytes, for the memory budget (fixed once loaded).
    pub(super) weight: u32,
}

impl<T> Entry<T> {
    /// An entry whose load began at `loaded`, at the applied revision `floor` of `generation`
    /// (its age, and the TTL, count from then).
    pub(super) fn new(
        value: T,
        (floor, generation): (Revision, u64),
        read_at: Revision,
        keys: Vec<ChangeKey>,
        loaded: Instant,
    ) -> Self {
        Self {
            value,
            floor,
            generation,
            read_at,
            keys: keys.into_boxed_slice(),
            verified: AtomicU64::new(floor.0),
            loaded,
            weight: 0,
        }
    }

    /// An entry read straight from the store at `read_at`, bypassing the cache.
    pub fn direct(value: T, read_at: Revision) -> Arc<Self> {
        // Never looked up in a cache, so its generation is never compared.
        Arc::new(Self::new(
            value,
            (read_at, 0),
            read_at,
            Vec::new(),
            Instant::now(),
        ))
    }
}

/// A rough size of a snapshot in bytes, for the memory budget.
pub(super) trait Weigh {
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
            128 + self.as_ref().map_or(0, |u| {
                let rights: usize = u.rights.keys().map(|p| p.as_str().len() + 64).sum();
                let api_user = u.api_user.as_ref().map_or(0, |a| {
                    64 + a
                        .scopes
                        .iter()
                        .map(|s| s.as_str().len() + 48)
                        .sum::<usize>()
                });
                rights + api_user
            }),
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

pub(super) fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A snapshot cache: entries weighed in bytes against its share of the budget, evictions counted.
pub(super) type Snapshots<K, V> =
    Cache<K, Arc<Entry<V>>, ByWeight, DefaultHashBuilder, CountEvictions>;

/// Weighs an entry by the size recorded when it was loaded.
#[derive(Clone)]
pub(super) struct ByWeight;

impl<K, V> Weighter<K, Arc<Entry<V>>> for ByWeight {
    fn weight(&self, _: &K, entry: &Arc<Entry<V>>) -> u64 {
        u64::from(entry.weight.max(1))
    }
}

/// Counts the entries evicted to stay within the budget.
#[derive(Clone)]
pub(super) struct CountEvictions(Counter);

impl<K, V> Lifecycle<K, V> for CountEvictions {
    type RequestState = ();

    fn begin_request(&self) -> Self::RequestState {}

    fn on_evict(&self, _: &mut (), _: K, _: V) {
        self.0.increment(1);
    }
}

pub(super) fn build<K, V>(name: &'static str, budget: u64) -> Snapshots<K, V>
where
    K: Hash + Eq + Clone,
{
    let budget = budget.max(64 * 1024);
    let options = OptionsBuilder::new()
        // A guess from a typical snapshot of half a kilobyte; it only sizes the tables.
        .estimated_items_capacity(
            usize::try_from(budget / 512)
                .unwrap_or(usize::MAX)
                .min(1 << 20),
        )
        .weight_capacity(budget)
        .build()
        .unwrap_or_else(|_| unreachable!("both capacities are set"));
    let evicted = metrics::counter!("consentry_cache_evictions_total", "cache" => name);
    Cache::with_options(
        options,
        ByWeight,
        DefaultHashBuilder::default(),
        CountEvictions(evicted),
    )
}

/// The four snapshot caches, each with its share of the memory budget.
pub(super) struct SnapshotCaches {
    /// Applications in tenants.
    pub(super) apps: Snapshots<Pair<TenantId, AppId>, AppSnapshot>,
    /// Users in tenants (`None`: unknown to the tenant).
    pub(super) users: Snapshots<Pair<TenantId, UserId>, Option<UserSnapshot>>,
    /// Users' external permission grants.
    pub(super) grants: Snapshots<Pair<TenantId, UserId>, Vec<UserGrant>>,
    /// Tenants' external permission catalogs (`None`: no such tenant).
    pub(super) catalogs: Snapshots<TenantId, Option<ExternalCatalog>>,
}

impl SnapshotCaches {
    /// Empty caches sharing `budget` bytes.
    pub(super) fn new(budget: u64) -> Self {
        Self {
            apps: build("apps", budget / 4),
            users: build("users", budget / 2),
            grants: build("grants", budget / 10),
            catalogs: build("catalogs", budget * 15 / 100),
        }
    }

    /// Drops every snapshot.
    pub(super) fn clear(&self) {
        self.apps.clear();
        self.users.clear();
        self.grants.clear();
        self.catalogs.clear();
    }

    /// Drops the snapshots that `key` names exactly (coarser keys leave theirs to be found
    /// stale by their watermark).
    pub(super) fn drop_named(&self, key: &ChangeKey) {
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
            // A tenant, an app in every tenant: the watermark alone makes the entries stale.
            // Clients are no snapshots; everything is cleared, not dropped key by key.
            ChangeKey::Tenant(_)
            | ChangeKey::App(_)
            | ChangeKey::Clients
            | ChangeKey::Everything => {}
        }
    }

    /// Entries held per cache: apps, users, grants, catalogs.
    pub(super) fn sizes(&self) -> [usize; 4] {
        [
            self.apps.len(),
            self.users.len(),
            self.grants.len(),
            self.catalogs.len(),
        ]
    }
}
