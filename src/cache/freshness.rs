//! Freshness (DESIGN.md §9): when the change log was last read, whether the store is reachable,
//! and the check every request begins with. Answers come from the cache only while the change
//! log was read successfully within `max_staleness`; while the store is known to be unreachable,
//! what needs it fails at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{At, Caches, ReadError};
use crate::store::StoreError;

/// When the change log was last read, and whether the store is reachable.
pub(super) struct SyncState {
    epoch: Instant,
    /// When the newest successful read of the change log began, in µs after `epoch`, plus one;
    /// zero until the first.
    synced_us: AtomicU64,
    /// Set when the store was found unreachable; cleared by the next successful read.
    store_down: AtomicBool,
    max_staleness: Duration,
}

impl SyncState {
    pub(super) fn new(max_staleness: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            synced_us: AtomicU64::new(0),
            store_down: AtomicBool::new(false),
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
            changed: self.changed.load(Ordering::Acquire),
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

    pub(super) fn synced(&self, began: u64) {
        self.sync.synced_us.fetch_max(began + 1, Ordering::AcqRel);
        if self.sync.store_down.swap(false, Ordering::AcqRel) {
            tracing::info!("the store is reachable again");
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
