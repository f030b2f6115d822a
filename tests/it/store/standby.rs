//! The hot standby that replica reads are tested against is a real one: a PostgreSQL standby of
//! a primary of the test's own, streaming its WAL, which the tests hold back by pausing its
//! replay and cut off by stopping it (`support::standby`).

use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::support::standby::Pair;

/// A connection to `url`, or why there is none (within 10 s).
async fn connect(url: &str) -> Result<PgConnection, sqlx::Error> {
    tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url))
        .await
        .expect("a connection or its refusal within 10 s")
}

/// Runs `sql` on `conn`.
async fn exec(conn: &mut PgConnection, sql: &'static str) {
    sqlx::query(sql)
        .execute(conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The values of `marks` on `conn`, in order.
async fn marks(conn: &mut PgConnection) -> Vec<i32> {
    sqlx::query_scalar("SELECT v FROM marks ORDER BY v")
        .fetch_all(conn)
        .await
        .unwrap()
}

/// A pair whose primary has the table `marks` holding 1, replayed on the standby.
async fn pair_with_marks() -> Pair {
    let pair = Pair::start(&[]).await;
    let mut primary = pair.primary().admin().await;
    exec(&mut primary, "CREATE TABLE marks (v int PRIMARY KEY)").await;
    exec(&mut primary, "INSERT INTO marks VALUES (1)").await;
    pair.wait_caught_up().await;
    pair
}

/// The standby is in recovery, refuses writes, and shows what was committed on the primary once
/// it has replayed it.
#[tokio::test]
async fn the_standby_is_in_recovery_and_replays_the_primarys_writes() {
    let pair = pair_with_marks().await;
    assert!(pair.is_in_recovery().await);
    let mut primary = connect(&pair.primary_url("postgres")).await.unwrap();
    let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(&mut primary)
        .await
        .unwrap();
    assert!(!in_recovery, "the primary is not a standby");

    let mut standby = connect(&pair.standby_url("postgres")).await.unwrap();
    assert_eq!(marks(&mut standby).await, [1]);
    let refused = sqlx::query("INSERT INTO marks VALUES (2)")
        .execute(&mut standby)
        .await
        .expect_err("a standby refuses writes");
    let code = refused.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("25006"), "read-only: {refused}");

    exec(&mut primary, "INSERT INTO marks VALUES (3)").await;
    pair.wait_caught_up().await;
    assert_eq!(marks(&mut standby).await, [1, 3]);
}

/// With replay paused, a write committed on the primary reaches the standby but is not shown
/// there, by a connection opened before or after it, until replay resumes.
#[tokio::test]
async fn with_replay_paused_a_primary_write_is_not_seen_on_the_standby_until_resumed() {
    let pair = pair_with_marks().await;
    let mut standby = connect(&pair.standby_url("postgres")).await.unwrap();
    pair.pause_replay().await;

    let mut primary = pair.primary().admin().await;
    exec(&mut primary, "INSERT INTO marks VALUES (2)").await;
    let lsn = pair.primary_lsn().await;
    pair.wait_received(&lsn).await;
    assert_eq!(
        marks(&mut standby).await,
        [1],
        "paused: the write not applied"
    );
    let mut fresh = connect(&pair.standby_url("postgres")).await.unwrap();
    assert_eq!(
        marks(&mut fresh).await,
        [1],
        "paused: for a new connection too"
    );
    assert!(pair.is_in_recovery().await);

    pair.resume_replay().await;
    pair.wait_replayed(&lsn).await;
    assert_eq!(marks(&mut standby).await, [1, 2]);
    assert_eq!(marks(&mut fresh).await, [1, 2]);
}

/// A stopped standby refuses connections; started again, it is a standby still and streams what
/// the primary committed while it was down.
#[tokio::test]
async fn a_stopped_standby_refuses_connections_and_catches_up_when_started() {
    let mut pair = pair_with_marks().await;
    pair.stop_standby().await;
    let refused = connect(&pair.standby_url("postgres"))
        .await
        .expect_err("a stopped standby refuses connections");
    assert!(
        matches!(refused, sqlx::Error::Io(_)),
        "refused at the socket: {refused}"
    );

    let mut primary = pair.primary().admin().await;
    exec(&mut primary, "INSERT INTO marks VALUES (2)").await;
    pair.start_standby().await;
    assert!(pair.is_in_recovery().await);
    pair.wait_caught_up().await;
    let mut standby = pair.standby().admin().await;
    assert_eq!(marks(&mut standby).await, [1, 2]);
}
