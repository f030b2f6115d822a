//! The primary's pool hands out a connection used a moment ago without pinging it first; a read
//! that meets one whose backend has ended since is read again on another, so a dropped
//! connection costs a round trip, never an answer.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::*;
use crate::support::db::{TestDb, postgres_tests};
use consentry::store::backend::PING_IF_IDLE_FOR;
use consentry::store::{ReadFrom, Snapshots};

postgres_tests!(a_read_on_a_connection_whose_backend_ended_is_read_again);

/// Ends every session on the test's database but `admin`'s own, and waits until they are gone.
async fn end_other_sessions(admin: &mut PgConnection) -> i64 {
    let ended: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_one(&mut *admin)
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut *admin)
        .await
        .unwrap();
        if left == 0 {
            return ended;
        }
        assert!(
            Instant::now() < deadline,
            "{left} sessions outlived pg_terminate_backend"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn a_read_on_a_connection_whose_backend_ended_is_read_again(db: &TestDb) {
    let store = db.store().await;
    tenant_with_admin(&store, "acme", "alice").await;
    let mut admin = PgConnection::connect(&db.url).await.unwrap();
    for round in 0..3 {
        // Past the second in which every acquire pings after a broken connection, so that the
        // read below reuses its connection unpinged (unless another test broke one meanwhile).
        tokio::time::sleep(PING_IF_IDLE_FOR + Duration::from_millis(100)).await;
        let (before, _) = store
            .user_snapshot(&tid("acme"), &uid("alice"), ReadFrom::Primary)
            .await
            .unwrap();
        assert!(before.is_some(), "round {round}: alice is a user of acme");
        // The pool's connection was just returned (and pinged on return): within
        // PING_IF_IDLE_FOR it is handed out again as it is, its backend now gone.
        assert!(
            end_other_sessions(&mut admin).await >= 1,
            "round {round}: the pool had a session"
        );
        let (after, _) = store
            .user_snapshot(&tid("acme"), &uid("alice"), ReadFrom::Primary)
            .await
            .unwrap_or_else(|e| panic!("round {round}: the read after the cut failed: {e}"));
        assert_eq!(after, before, "round {round}");
    }
}
