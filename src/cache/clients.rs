//! The active clients by key hash. Every call looks one up, and there are few of them, so this
//! is a map read without a lock and replaced whole when it changes.
//!
//! Invariant: only clients the store found enter it, so unknown keys cannot grow it; it is
//! emptied whenever any client changes (the change log's `Clients` key), and an entry is used
//! only while the caches' marks say it is current.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::Entry;
use crate::domain::{Caller, KeyHash};

/// The most clients kept at once; more (which takes that many clients in use) starts afresh.
const MAX_CLIENTS: usize = 10_000;

/// A cached client, with the revisions that say whether it is current.
pub(super) type ClientEntry = Arc<Entry<Arc<Caller>>>;

/// The clients map.
#[derive(Default)]
pub(super) struct Clients(ArcSwap<HashMap<KeyHash, ClientEntry, ByDigest>>);

/// Hashes a [`KeyHash`] as the `u64` it hashes itself to, unchanged: it is part of a SHA-256
/// digest, spread evenly already, and only clients the store found enter the map, so no caller
/// can fill it with keys chosen to collide.
type ByDigest = BuildHasherDefault<DigestHasher>;

/// The hasher of [`ByDigest`].
#[derive(Default)]
pub(super) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not reached by `KeyHash`, which writes one `u64`; mixes anything else in regardless.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl Clients {
    /// `f` of the entry for `hash`, if there is one; nothing is cloned to look.
    pub(super) fn find<R>(
        &self,
        hash: &KeyHash,
        f: impl FnOnce(&Entry<Arc<Caller>>) -> Option<R>,
    ) -> Option<R> {
        f(self.0.load().get(hash)?)
    }

    /// Adds a client the store found (starting afresh when the map is full).
    pub(super) fn insert(&self, hash: KeyHash, entry: ClientEntry) {
        self.0.rcu(|clients| {
            let mut clients = if clients.len() < MAX_CLIENTS {
                HashMap::clone(clients)
            } else {
                HashMap::default()
            };
            clients.insert(hash, entry.clone());
            clients
        });
    }

    /// Forgets every client.
    pub(super) fn clear(&self) {
        self.0.store(Arc::default());
    }

    /// How many clients are kept.
    pub(super) fn len(&self) -> usize {
        self.0.load().len()
    }
}
