//! Reading and applying the change log: catching up to a revision (requests waiting for one
//! share one read), the poll, a write applied before its reply, invalidating what each change
//! names, and starting afresh when the store's history was replaced.

use super::{Caches, Cause, Known, READ_TIMEOUT, ReadError};
use crate::domain::Revision;
use crate::store::change::ChangeKey;

impl Caches {
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
    /// known to be reachable: the poll, which is also the probe that finds it again (and, once
    /// the catch-up lock is free again, asks why when a failure does not say).
    pub async fn poll(&self) -> Result<Revision, ReadError> {
        let polled = {
            let _one_at_a_time = self.catching_up.lock().await;
            self.catch_up_locked(Cause::Poll).await
        };
        if let Err(e) = &polled {
            self.explain(e).await;
        }
        polled
    }

    /// Reads the change log now, even if nothing is known to be newer (which also checks that
    /// the store still holds this instance's history), unless a read that began after the call
    /// did already.
    pub(super) async fn reread(&self, cause: Cause) -> Result<Revision, ReadError> {
        self.require_store()?;
        let arrived = self.sync.now_us();
        let _one_at_a_time = self.catching_up.lock().await;
        if self.read_since(arrived) {
            return Ok(self.applied());
        }
        self.catch_up_locked(cause).await
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
    pub(super) async fn catch_up_locked(&self, cause: Cause) -> Result<Revision, ReadError> {
        let began = self.sync.now_us();
        let applied = self.applied();
        self.metrics.catch_ups[cause as usize].increment(1);
        // Bounded, so that no one holds the lock (and the poll behind it) for longer.
        let read = tokio::time::timeout(READ_TIMEOUT, self.store.changes_since(applied)).await;
        let read = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => {
                self.change_log_unreadable(Some(&e));
                return Err(e.into());
            }
            Err(_) => {
                self.change_log_unreadable(None);
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
                self.marks.recorded_through(newest);
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
    pub(super) fn advance(&self, current: Revision, changes: &[(Revision, ChangeKey)]) {
        self.history.advance(current, changes);
        self.metrics.applied.set(current.0 as f64);
    }

    /// The store no longer holds the history this instance applied (restored from a backup, or
    /// failed over with commits lost): a new generation begins at the store's head, and nothing
    /// cached before is used again. With `catching_up` held.
    pub(super) fn replace_history(&self, applied: Revision, head: Revision) {
        // Watermarks, floors and change marks are numbers of the old history: start over.
        self.marks.restart(head);
        self.drop_entries();
        self.history.replace(head);
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
        self.marks.stale_before(at);
        self.drop_entries();
    }

    /// Drops every cached snapshot and client.
    pub(super) fn drop_entries(&self) {
        self.snapshots.clear();
        self.clients.clear();
    }

    /// Records that `key` changed at `revision`, and drops at once the entries it names exactly
    /// (coarser keys leave theirs to be found stale by the watermark).
    pub(super) fn invalidate(&self, key: &ChangeKey, revision: Revision) {
        if *key == ChangeKey::Everything {
            return self.clear(revision);
        }
        self.marks.record(key, revision);
        match key {
            ChangeKey::Clients => self.clients.clear(),
            key => self.snapshots.drop_named(key),
        }
    }

    /// Forgets watermarks older than any entry can be (the TTL, and a minute for loads in
    /// flight); nothing they covered can still be cached.
    pub fn forget_old_watermarks(&self) {
        self.marks.forget_old();
    }
}
