//! Freshness (docs/rules.md §9): when the change log was last read, whether the store is reachable,
//! and the check every request begins with. Answers come from the cache only while the change
//! log was read successfully within `max_staleness`. Any failed read of the change log (whatever
//! the error, or a timeout) makes the store count as unreachable until a read succeeds, and so
//! does a failure elsewhere that says the database cannot be reached or refuses the connection:
//! `consentry_store_up` says 0 and a warning names the cause (the database's message and
//! SQLSTATE, never the URL or a password). While the store is known to be unreachable, what
//! needs it fails at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{At, Caches, READ_TIMEOUT, ReadError};
use crate::store::StoreError;

/// How often, while the store stays unreachable for a reason that a timed-out wait does not
/// say, a connection of its own asks again.
const EXPLAIN_EVERY: Duration = Duration::from_secs(30);

/// When the change log was last read, and whether the store is reachable.
pub(super) struct SyncState {
    epoch: Instant,
    /// When the newest successful read of the change log began, in µs after `epoch`, plus one;
    /// zero until the first.
    synced_us: AtomicU64,
    /// Set when the store was found unreachable; cleared by the next successful read. Changed
    /// only with `down` locked, so that the two agree.
    store_down: AtomicBool,
    /// Why the store is unreachable, as last logged; `None` while it is not.
    down: std::sync::Mutex<Option<Down>>,
    max_staleness: Duration,
}

/// Why the store is unreachable.
struct Down {
    /// The cause, as logged.
    cause: String,
    /// When a failure that does not say why (a wait for a connection that timed out) was last
    /// explained by connecting afresh.
    explained: Option<Instant>,
}

/// What a store failure says, for the log: the database's own words (its message and SQLSTATE)
/// where it has them; never the URL or a password.
fn cause(e: &StoreError) -> String {
    match e {
        StoreError::Unavailable(db) => db.to_string(),
        e => e.to_string(),
    }
}

impl SyncState {
    pub(super) fn new(max_staleness: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            synced_us: AtomicU64::new(0),
            store_down: AtomicBool::new(false),
            down: std::sync::Mutex::new(None),
            max_staleness,
        }
    }

    pub(super) fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// How long ago the change log was last read in full; `None` if it never was.
    pub(super) fn age(&self) -> Option<Duration> {
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

impl Caches {
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
            changed: self.marks.changed(),
            now,
        })
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

    /// Notes a store failure outside the change log: one that says the store cannot be reached
    /// or refuses the connection makes everything that needs the store fail at once until the
    /// poll reads the change log again. (A pool exhausted by a flood of misses looks the same;
    /// then misses are shed until the next poll, a quarter of a second later.) A statement's own
    /// failure fails its request only: whether the store is up is the change log's to say.
    pub fn note_failure(&self, e: &StoreError) {
        if e.is_unreachable() {
            self.store_is_down(cause(e), false);
        }
    }

    /// A read of the change log failed (`None`: it timed out). Whatever the failure, the
    /// instance no longer hears of changes, so the store counts as unreachable until a read
    /// succeeds. A wait that timed out does not say why: the store is down at once, and the
    /// poll asks why ([`Caches::explain`]) before it says so.
    pub(super) fn change_log_unreadable(&self, failure: Option<&StoreError>) {
        match failure {
            Some(e) if !e.is_pool_timeout() => self.store_is_down(cause(e), false),
            _ => {
                let mut down = self.sync.down.lock().unwrap_or_else(|e| e.into_inner());
                if !self.sync.store_down.swap(true, Ordering::AcqRel) {
                    self.metrics.store_up.set(0.0);
                    *down = None;
                }
            }
        }
    }

    /// After the poll failed to read the change log by waiting in vain (for a pooled connection,
    /// or for the read), asks why with a connection of its own, and says so: when the store went
    /// down, and at most every [`EXPLAIN_EVERY`] while it stays down. Outside the catch-up lock,
    /// so that no reader waits for it.
    pub(super) async fn explain(&self, e: &ReadError) {
        let failed = match e {
            ReadError::Store(e) if e.is_pool_timeout() => cause(e),
            ReadError::StoreDown => format!(
                "reading the change log took longer than {} s",
                READ_TIMEOUT.as_secs_f64()
            ),
            _ => return,
        };
        {
            let down = self.sync.down.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(d) = &*down
                && d.explained.is_some_and(|at| at.elapsed() < EXPLAIN_EVERY)
            {
                return;
            }
        }
        let cause = match tokio::time::timeout(READ_TIMEOUT, self.store.try_connect()).await {
            Ok(Err(e)) => format!("{failed}; a new connection fails: {}", cause(&e)),
            Ok(Ok(())) => format!(
                "{failed}; a new connection succeeds, so the database is slow to answer or every \
                 pooled connection is busy"
            ),
            Err(_) => format!(
                "{failed}; a new connection gets no answer within {} s either",
                READ_TIMEOUT.as_secs_f64()
            ),
        };
        self.store_is_down(cause, true);
    }

    /// Marks the store down (`consentry_store_up` 0) with `cause`, logging it (warn) when the
    /// store goes down and again whenever the cause changes. `explained`: the cause comes from
    /// connecting afresh, after the store was marked down (nothing changes if a read succeeded
    /// meanwhile).
    fn store_is_down(&self, cause: String, explained: bool) {
        let mut down = self.sync.down.lock().unwrap_or_else(|e| e.into_inner());
        if explained && !self.sync.store_down.load(Ordering::Acquire) {
            return;
        }
        if !self.sync.store_down.swap(true, Ordering::AcqRel) {
            self.metrics.store_up.set(0.0);
            *down = None;
        }
        let explained = match &*down {
            _ if explained => Some(Instant::now()),
            Some(d) => d.explained,
            None => None,
        };
        match &*down {
            Some(d) if d.cause == cause => {}
            Some(_) => tracing::warn!(
                error = %cause,
                "the store is still unreachable, for another reason"
            ),
            None => tracing::warn!(
                error = %cause,
                "the store is unreachable; answering cache hits only, within the staleness bound"
            ),
        }
        *down = Some(Down { cause, explained });
    }

    /// A read of the change log that began at `began` succeeded: the store is reachable.
    pub(super) fn synced(&self, began: u64) {
        self.sync.synced_us.fetch_max(began + 1, Ordering::AcqRel);
        if self.sync.store_down.load(Ordering::Acquire) {
            let mut down = self.sync.down.lock().unwrap_or_else(|e| e.into_inner());
            if self.sync.store_down.swap(false, Ordering::AcqRel) {
                tracing::info!("the store is reachable again");
            }
            *down = None;
        }
        self.metrics.store_up.set(1.0);
    }

    /// Whether a read of the change log began after `arrived` (µs after the epoch).
    pub(super) fn read_since(&self, arrived: u64) -> bool {
        self.sync
            .synced_us
            .load(Ordering::Acquire)
            .saturating_sub(1)
            > arrived
    }
}
