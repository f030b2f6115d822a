//! How an instance's caches recognise revisions of the history they applied, over the real store:
//! the latest ones from memory, an older one by asking the store once, and one of another
//! history never.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::support::db::{TestDb, backend_tests};
use consentry::cache::{CacheConfig, Caches, Cause, Known};

backend_tests!(a_revision_older_than_the_remembered_ones_is_confirmed_by_the_store);

/// More revisions than an instance remembers the tags of.
const WRITES: u64 = 4200;

async fn a_revision_older_than_the_remembered_ones_is_confirmed_by_the_store(db: &TestDb) {
    let store: Arc<dyn Store> = Arc::new(db.store().await);
    tenant_with_admin(store.as_ref(), "acme", "alice").await;
    let first = store.revision().await.unwrap();
    let caches = Caches::new(
        store.clone(),
        CacheConfig {
            budget_bytes: 1 << 20,
            ttl: Duration::from_secs(300),
            max_staleness: Duration::from_secs(60),
        },
    );
    caches.start().await.unwrap();
    for i in 0..WRITES {
        let right = if i % 2 == 0 {
            Right::Read
        } else {
            Right::Write
        };
        store
            .grant_user_right(&by_root(), &tid("acme"), &uid("alice"), &path("/a"), right)
            .await
            .unwrap();
    }
    let head = caches.poll().await.unwrap();
    assert!(head.same_point(store.revision().await.unwrap()));
    assert_eq!(head.0, first.0 + WRITES);

    // The latest revisions are known from memory; the first one has fallen out of it.
    let recent = Revision(
        head.0 - 1,
        store.revision_tag(head.0 - 1).await.unwrap().unwrap(),
    );
    assert_eq!(caches.knows(recent), Known::Yes);
    assert_eq!(caches.knows(first), Known::Unknown);
    // The store confirms it, and from then on it is known.
    assert_eq!(
        caches.verify(first, Cause::Token).await.unwrap(),
        Known::Yes
    );
    assert_eq!(caches.knows(first), Known::Yes);
    // Another tag at either number is another history, however the number compares.
    for revision in [first, recent] {
        let other = Revision(revision.0, Tag(revision.tag().0 ^ 1));
        assert_eq!(caches.verify(other, Cause::Token).await.unwrap(), Known::No);
    }
    // A number not committed yet is unknown; one without a tag is judged by its number.
    let ahead = Revision(head.0 + 1, Tag(7));
    assert_eq!(
        caches.verify(ahead, Cause::Token).await.unwrap(),
        Known::Unknown
    );
    assert_eq!(caches.knows(Revision::number(1)), Known::Yes);
}
