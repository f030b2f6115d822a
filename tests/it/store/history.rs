//! The identity of revisions: every write's revision carries a tag, every read says the tag of
//! the revision it read at, and a read of the change log says whether the store still holds the
//! history the reader applied. The store is restored from a backup for real (`pg_dump` and
//! `pg_restore` on Postgres; a copy of the file on SQLite), so the history after the restore
//! reuses revision numbers with other tags.

use std::path::PathBuf;

use super::*;
use crate::support::db::{TestDb, backend_tests};
use consentry::store::{Snapshots, SqlStore};

backend_tests!(
    every_read_carries_the_tag_of_its_revision,
    a_restored_store_is_another_history_though_it_reuses_the_numbers,
);

async fn every_read_carries_the_tag_of_its_revision(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let zero = s.revision().await.unwrap();
    assert!(zero.same_point(Revision::default()), "{zero:?}");
    assert_eq!(s.revision_tag(0).await.unwrap(), Some(Tag::NONE));
    assert_eq!(s.revision_tag(1).await.unwrap(), None, "nothing committed");

    tenant_with_admin(s, "acme", "alice").await;
    let head = s.revision().await.unwrap();
    assert_eq!(head.0, 2);
    let (first, second) = (
        s.revision_tag(1).await.unwrap().unwrap(),
        s.revision_tag(2).await.unwrap().unwrap(),
    );
    assert_eq!(second, head.tag());
    assert!(
        first != Tag::NONE && first != second,
        "{first:?} {second:?}"
    );

    let (acme, alice) = (tid("acme"), uid("alice"));
    let reads = [
        s.app_snapshot(&acme, &aid("crm"), consentry::store::ReadFrom::Primary)
            .await
            .unwrap()
            .1,
        s.user_snapshot(&acme, &alice, consentry::store::ReadFrom::Primary)
            .await
            .unwrap()
            .1,
        s.external_catalog(&acme, consentry::store::ReadFrom::Primary)
            .await
            .unwrap()
            .1,
        s.user_grants(&acme, &alice, consentry::store::ReadFrom::Primary)
            .await
            .unwrap()
            .1,
    ];
    for (i, read_at) in reads.iter().enumerate() {
        assert!(
            read_at.same_point(head),
            "read {i}: {read_at:?}, head {head:?}"
        );
    }

    // The change log after the head: the same history, nothing new.
    let read = s.changes_since(head).await.unwrap();
    assert!(read.same_history && read.head.same_point(head) && read.changes.is_empty());
    // After the first revision: the second one's keys, with its tag.
    let read = s.changes_since(Revision(1, first)).await.unwrap();
    assert!(read.same_history);
    assert!(!read.changes.is_empty());
    assert!(read.changes.iter().all(|(r, _)| r.same_point(head)));
    // Another tag for a revision the store holds, or a revision it has not reached: another
    // history, and nothing read.
    for other in [
        Revision(1, Tag(first.0 ^ 1)),
        Revision(1, Tag::NONE),
        Revision::number(3),
    ] {
        let read = s.changes_since(other).await.unwrap();
        assert!(!read.same_history, "{other:?}");
        assert!(read.head.same_point(head) && read.changes.is_empty());
    }
    // An unchanged manifest writes nothing and answers the head, tag included.
    let manifest = manifest(&["documents:read"], &[]);
    s.register_app(
        &by_root(),
        &aid("crm"),
        &name("CRM"),
        AppKind::Standard,
        &manifest,
    )
    .await
    .unwrap();
    let head = s.revision().await.unwrap();
    let (written, _) = s
        .update_app_manifest(&by_root(), &aid("crm"), &manifest)
        .await
        .unwrap();
    assert!(written.same_point(head), "{written:?} {head:?}");
}

/// A backup of the store's database, taken and put back as an operator would.
struct Backup {
    file: PathBuf,
}

impl Backup {
    /// Takes a backup of `db` (the store on it closed first on SQLite, so the file is whole).
    async fn take(db: &TestDb, store: SqlStore) -> Backup {
        let place = match db.sqlite_path() {
            Some(path) => path
                .parent()
                .unwrap()
                .display()
                .to_string()
                .replace('/', "_"),
            None => db.postgres_name().to_owned(),
        };
        let file = std::env::temp_dir().join(format!("{place}.backup"));
        match db.sqlite_path() {
            Some(path) => {
                store.pool().close().await;
                std::fs::copy(path, &file).unwrap();
            }
            None => db.dump(&file),
        }
        Backup { file }
    }

    /// Replaces `db` by the backup, under `store` (closed first on SQLite); returns a store on
    /// the restored database.
    async fn restore(self, db: &TestDb, store: SqlStore) -> SqlStore {
        match db.sqlite_path() {
            Some(path) => {
                store.pool().close().await;
                for suffix in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                std::fs::copy(&self.file, path).unwrap();
            }
            None => db.restore(&self.file).await,
        }
        let _ = std::fs::remove_file(&self.file);
        db.store().await
    }
}

async fn a_restored_store_is_another_history_though_it_reuses_the_numbers(db: &TestDb) {
    let store = db.store().await;
    tenant_with_admin(&store, "acme", "alice").await;
    let backed_up = store.revision().await.unwrap();
    let backup = Backup::take(db, store).await;
    let store = db.store().await;
    let s: &dyn Store = &store;

    // Two writes the restore will lose, applied by a reader.
    let acme = tid("acme");
    s.put_user(&by_root(), &acme, &uid("bob"), RoleSet::default())
        .await
        .unwrap();
    let lost = s
        .put_user(&by_root(), &acme, &uid("carol"), RoleSet::default())
        .await
        .unwrap();
    let read = s.changes_since(backed_up).await.unwrap();
    assert!(read.same_history && read.head.same_point(lost));

    let store = backup.restore(db, store).await;
    let s: &dyn Store = &store;
    let head = s.revision().await.unwrap();
    assert!(head.same_point(backed_up), "the backup's head: {head:?}");
    // A head below what the reader applied.
    let read = s.changes_since(lost).await.unwrap();
    assert!(!read.same_history && read.head.same_point(backed_up));

    // Writes after the restore reuse the lost revisions' numbers, with other tags.
    s.put_user(&by_root(), &acme, &uid("dave"), RoleSet::default())
        .await
        .unwrap();
    let reused = s
        .put_user(&by_root(), &acme, &uid("erin"), RoleSet::default())
        .await
        .unwrap();
    assert_eq!(reused, lost, "the number is reused");
    assert_ne!(reused.tag(), lost.tag(), "the tag is not");
    let read = s.changes_since(lost).await.unwrap();
    assert!(!read.same_history, "another history at the same number");
    assert!(read.head.same_point(reused) && read.changes.is_empty());
    assert_eq!(s.revision_tag(lost.0).await.unwrap(), Some(reused.tag()));
    // From the backup's head, the new history reads on as usual.
    let read = s.changes_since(backed_up).await.unwrap();
    assert!(read.same_history);
    let keys: Vec<String> = read.changes.iter().map(|(_, k)| k.to_string()).collect();
    assert_eq!(keys, ["u/acme/dave", "u/acme/erin"]);
    assert!(read.changes[1].0.same_point(reused));
}
