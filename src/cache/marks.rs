//! Watermarks: what the change log said about each key, and whether an entry is still current.
//!
//! Invariant: every entry remembers the revision this instance had applied when its load began
//! (its floor). Applying the change log records, per touched key, the revision that invalidated
//! it (a watermark); an entry is current while no watermark above its floor covers one of its
//! keys, while its floor is not below the stale floor, and while it is younger than the TTL.
//! Watermarks are kept for as long as an entry may live (the TTL, and a minute for loads in
//! flight); forgetting any earlier raises the stale floor, below which every entry counts as
//! stale, so a load racing with an invalidation can never leave a stale entry behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::{At, Entry};
use crate::domain::Revision;
use crate::store::change::ChangeKey;

/// The most watermarks kept at once; more forgets them all and raises the stale floor.
const MAX_WATERMARKS: usize = 500_000;

/// The watermarks of one instance, the stale floor and the change mark.
pub(super) struct Marks {
    /// Longest an entry is kept.
    ttl: Duration,
    /// Per change-log key, the newest revision that invalidated it and when that was applied.
    watermarks: std::sync::Mutex<HashMap<ChangeKey, (u64, Instant)>>,
    /// Entries whose load began before this revision are stale: raised when everything is
    /// cleared and whenever watermarks are forgotten early, so losing one never makes a stale
    /// entry look current.
    stale_below: AtomicU64,
    /// The newest revision whose watermarks are all recorded; stored before `applied` moves.
    changed: AtomicU64,
}

impl Marks {
    /// No watermarks yet; entries live for `ttl` at most.
    pub(super) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            watermarks: std::sync::Mutex::default(),
            stale_below: AtomicU64::new(0),
            changed: AtomicU64::new(0),
        }
    }

    /// The newest revision whose watermarks are all recorded (see [`At::changed`]).
    pub(super) fn changed(&self) -> u64 {
        self.changed.load(Ordering::Acquire)
    }

    /// Every watermark through `newest` is recorded.
    pub(super) fn recorded_through(&self, newest: u64) {
        self.changed.fetch_max(newest, Ordering::AcqRel);
    }

    /// Whether `entry` is untouched since its load began, as far as `at` knows (no watermark
    /// above its floor covers any of its keys), and young enough to use.
    pub(super) fn untouched<T>(&self, entry: &Entry<T>, at: At) -> bool {
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

    /// Records that `key` changed at `revision`.
    pub(super) fn record(&self, key: &ChangeKey, revision: Revision) {
        let mut watermarks = self.watermarks.lock().unwrap_or_else(|e| e.into_inner());
        if watermarks.len() >= MAX_WATERMARKS && !watermarks.contains_key(key) {
            // Forgetting watermarks early makes everything loaded before them stale.
            watermarks.clear();
            self.stale_below.fetch_max(revision.0, Ordering::AcqRel);
        }
        let mark = watermarks.entry(key.clone()).or_insert((0, Instant::now()));
        *mark = (mark.0.max(revision.0), Instant::now());
    }

    /// Nothing loaded before `at` counts as current again.
    pub(super) fn stale_before(&self, at: Revision) {
        self.stale_below.fetch_max(at.0, Ordering::AcqRel);
    }

    /// Starts over at `head` of a new history: watermarks, the stale floor and the change mark
    /// are numbers of the old one.
    pub(super) fn restart(&self, head: Revision) {
        self.watermarks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.stale_below.store(0, Ordering::Release);
        self.changed.store(head.0, Ordering::Release);
    }

    /// Forgets watermarks older than any entry can be (the TTL, and a minute for loads in
    /// flight); nothing they covered can still be cached.
    pub(super) fn forget_old(&self) {
        let keep = self.ttl + Duration::from_secs(60);
        let mut watermarks = self.watermarks.lock().unwrap_or_else(|e| e.into_inner());
        watermarks.retain(|_, (_, at)| at.elapsed() < keep);
    }
}
