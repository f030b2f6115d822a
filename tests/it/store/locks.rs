//! The write lock: a caller refused by a rule that looks only at the caller is answered before
//! the lock is taken, so it neither waits behind a write in progress nor holds one up. On
//! PostgreSQL, where the lock is the revision row's, which another session can hold open.

use std::future::Future;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::*;
use crate::support::db::{TestDb, postgres_tests};

postgres_tests!(a_caller_refused_by_its_own_rules_never_waits_for_the_write_lock);

/// How long a refusal may take before the test gives up on it: the lock is held until every
/// refusal has come back, so one that waited for it would never come back at all.
const PATIENCE: Duration = Duration::from_secs(10);

/// Runs `call`, which must not wait for the write lock held meanwhile.
async fn without_waiting<T>(what: &str, call: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, call)
        .await
        .unwrap_or_else(|_| {
            panic!("{what}: still waiting after {PATIENCE:?}, behind the write lock")
        })
}

async fn a_caller_refused_by_its_own_rules_never_waits_for_the_write_lock(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    tenant_with_admin(s, "acme", "alice").await;
    register(s, "crm", AppKind::Standard, &Manifest::default()).await;
    let before = s.revision().await.unwrap();

    // Another session's write in progress: it bumped the revision and holds the row's lock.
    let mut holder = PgConnection::connect(&db.url).await.unwrap();
    let mut held = holder.begin().await.unwrap();
    sqlx::query("UPDATE revision SET value = value + 1 WHERE id = 1")
        .execute(&mut *held)
        .await
        .unwrap();

    // A write its rules admit waits for that lock: the lock is real.
    let admitted = tokio::spawn({
        let store = store.clone();
        async move {
            let s: &dyn Store = &store;
            s.put_user(&by_root(), &tid("acme"), &uid("bob"), RoleSet::EMPTY)
                .await
        }
    });
    let mut watcher = PgConnection::connect(&db.url).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the admitted write never waited for the lock"
        );
        tokio::task::yield_now().await;
    }
    assert!(!admitted.is_finished(), "the admitted write waits");

    // Callers refused by what they are answer at once, in the documented order.
    let admin_only = ctx(
        &caller("plain", TenantBounds::All, &[Capability::Admin]),
        None,
        0,
    );
    let acme_only = ctx(
        &caller("acme-ops", only(&["acme"]), &Capability::ALL),
        None,
        0,
    );
    let beta_only = ctx(
        &caller("beta-ops", only(&["beta"]), &Capability::ALL),
        None,
        0,
    );
    let crm = aid("crm");
    let result = without_waiting(
        "RegisterApp without app_manager",
        s.register_app(
            &admin_only,
            &aid("erp"),
            &name("ERP"),
            AppKind::Standard,
            &Manifest::default(),
        ),
    )
    .await;
    assert!(matches!(result, Err(denied!())), "{result:?}");
    let result = without_waiting(
        "UpdateAppManifest without app_manager",
        s.update_app_manifest(&admin_only, &crm, &manifest(&["docs"], &[])),
    )
    .await;
    assert!(matches!(result, Err(denied!())), "{result:?}");
    let result = without_waiting(
        "UnregisterApp from a client bounded to one tenant",
        s.unregister_app(&acme_only, &crm),
    )
    .await;
    assert!(matches!(result, Err(denied!())), "{result:?}");
    // Existence comes before the rules: a missing app is NOT_FOUND, still without the lock.
    let result = without_waiting(
        "UnregisterApp of a missing app without app_manager",
        s.unregister_app(&admin_only, &aid("ghost")),
    )
    .await;
    assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}");
    let result = without_waiting(
        "CreateClient beyond the caller's tenants",
        s.create_client(
            Some(&acme_only),
            &cid("wider"),
            &TenantBounds::All,
            Capabilities::of([Capability::Query]),
            "hash-wider",
        ),
    )
    .await;
    assert!(matches!(result, Err(denied!())), "{result:?}");
    let result = without_waiting(
        "PutTenant creating a tenant from a client without `*`",
        s.put_tenant(&beta_only, &tenant("beta", "production", false)),
    )
    .await;
    assert!(matches!(result, Err(denied!())), "{result:?}");

    // Once the other session gives up its write, the admitted one goes ahead; the refused ones
    // left no trace.
    held.rollback().await.unwrap();
    let written = admitted.await.unwrap().unwrap();
    check_written(s, before, written).await;
    assert!(
        s.app_snapshot(&tid("acme"), &crm, consentry::store::ReadFrom::Primary)
            .await
            .unwrap()
            .0
            .app
            .is_some()
    );
    assert_eq!(s.tenant(&tid("beta")).await.unwrap(), None);
    let _ = holder.close().await;
    let _ = watcher.close().await;
}
