//! Where this instance stands in the store's history (docs/rules.md §9): the applied revision with
//! its tag, the generation, and the tags of revisions it applied or had confirmed.
//!
//! Invariant: a revision is said to belong to the applied history only if this instance applied
//! it with the same tag, or the store confirmed that tag within the current generation. When the
//! store's history is found replaced (a restore from a backup, a failover that lost commits),
//! the generation moves on and everything remembered of the old history is forgotten, so that
//! nothing loaded or confirmed in it is used again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::domain::{Revision, Tag};
use crate::store::change::ChangeKey;

/// How many of the latest applied revisions' tags are remembered, so that a token naming one
/// is recognised without asking the store; as many older revisions, once the store confirmed
/// them, are remembered beside them.
const RECENT_TAGS: usize = 4096;

/// Where this instance stands in the store's history: replaced whole, so that a request reads
/// the applied revision, its tag and the generation together.
#[derive(Debug, Clone, Copy)]
pub(super) struct Head {
    /// The newest revision fully applied, with its tag.
    pub(super) applied: Revision,
    /// Bumped whenever the store's history was found replaced; entries loaded in an earlier
    /// generation are stale.
    pub(super) generation: u64,
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

/// The applied revision, the generation and the remembered tags.
pub(super) struct History {
    /// The applied revision and the generation (see [`Head`]).
    head: ArcSwap<Head>,
    /// The tags of the latest applied revisions, in revision order (see [`RECENT_TAGS`]).
    recent: std::sync::Mutex<VecDeque<Revision>>,
    /// Tags of older revisions of the applied history, as the store confirmed them for tokens
    /// that named them (forgotten whole when full, and when the history is replaced).
    confirmed: std::sync::Mutex<HashMap<u64, Tag>>,
}

impl History {
    /// Nothing applied yet, in the first generation.
    pub(super) fn new() -> Self {
        Self {
            head: ArcSwap::from_pointee(Head {
                applied: Revision::default(),
                generation: 0,
            }),
            recent: std::sync::Mutex::default(),
            confirmed: std::sync::Mutex::default(),
        }
    }

    /// The applied revision and the generation, read together.
    pub(super) fn head(&self) -> Head {
        **self.head.load()
    }

    /// Whether `revision` belongs to the history this instance applied, as far as it knows
    /// without asking the store. A revision without a tag is judged by its number alone.
    pub(super) fn knows(&self, revision: Revision) -> Known {
        let applied = self.head().applied;
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

    /// Remembers that the store holds `revision` with its tag, as it said in `generation`: only
    /// if no other history was found meanwhile (that moves the generation on, then clears the
    /// map).
    pub(super) fn confirm(&self, revision: Revision, generation: u64) {
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        if generation == self.head().generation {
            if confirmed.len() >= RECENT_TAGS {
                confirmed.clear();
            }
            confirmed.insert(revision.0, revision.tag());
        }
    }

    /// Moves the applied revision forward to `current` (same history, same generation),
    /// remembering the tags of the revisions applied on the way.
    pub(super) fn advance(&self, current: Revision, changes: &[(Revision, ChangeKey)]) {
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
    }

    /// A new generation begins at the store's `head`: the tags of the old history are forgotten.
    pub(super) fn replace(&self, head: Revision) {
        let generation = self.head().generation + 1;
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            recent.clear();
            recent.push_back(head);
        }
        self.head.store(Arc::new(Head {
            applied: head,
            generation,
        }));
        // After the generation moved on, so that no confirmation of the old one slips in.
        self.confirmed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}
