//! A PostgreSQL primary with a real hot standby, for reads that may go to a replica: both are
//! [`Cluster`]s of the test's own (so made, stopped and removed the same way), the standby a
//! `pg_basebackup -R` copy of the primary streaming from it through a replication slot.
//!
//! Lag is made, not waited for: [`Pair::pause_replay`] stops the standby applying WAL (it still
//! receives it, [`Pair::wait_received`]), [`Pair::resume_replay`] lets it go on. Every wait polls
//! against a deadline and fails with the standby's log.

use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};

use super::cluster::{Cluster, REPLICATION};

/// How long a wait for the standby (its replay, its receipt, its pause) may take.
const WAIT: Duration = Duration::from_secs(15);
/// How often a wait asks again.
const POLL: Duration = Duration::from_millis(20);
/// The replication slot the standby streams through.
const SLOT: &str = "consentry_standby";

/// A position in the primary's WAL, as PostgreSQL writes a `pg_lsn` (`16/B374D848`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lsn(String);

/// A primary and its hot standby, both stopped and removed when dropped (the standby first).
pub struct Pair {
    standby: Cluster,
    primary: Cluster,
}

impl Pair {
    /// Starts a primary with `settings` (after what replication needs) and a standby of it, and
    /// waits until the standby is streaming.
    pub async fn start(settings: &[(&str, &str)]) -> Pair {
        let all: Vec<(&str, &str)> = REPLICATION.iter().chain(settings).copied().collect();
        let primary = Cluster::start(&all).await;
        let standby = Cluster::standby_of(&primary, SLOT).await;
        let pair = Pair { standby, primary };
        pair.wait_caught_up().await;
        pair
    }

    /// The primary.
    pub fn primary(&self) -> &Cluster {
        &self.primary
    }

    /// The standby.
    pub fn standby(&self) -> &Cluster {
        &self.standby
    }

    /// The primary's superuser URL of `database`.
    pub fn primary_url(&self, database: &str) -> String {
        self.primary.superuser_url(database)
    }

    /// The standby's superuser URL of `database` (the superuser and its password are the
    /// primary's, copied with everything else).
    pub fn standby_url(&self, database: &str) -> String {
        self.standby.superuser_url(database)
    }

    /// The primary's current WAL position: whatever was committed before is at or before it.
    pub async fn primary_lsn(&self) -> Lsn {
        let mut primary = self.primary.admin().await;
        let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
            .fetch_one(&mut primary)
            .await
            .unwrap();
        Lsn(lsn)
    }

    /// Whether the standby is in recovery (a standby, not promoted).
    pub async fn is_in_recovery(&self) -> bool {
        let mut standby = self.standby.admin().await;
        sqlx::query_scalar("SELECT pg_is_in_recovery()")
            .fetch_one(&mut standby)
            .await
            .unwrap()
    }

    /// Stops the standby applying WAL, and waits until it has stopped.
    pub async fn pause_replay(&self) {
        let mut standby = self.standby.admin().await;
        sqlx::query("SELECT pg_wal_replay_pause()")
            .execute(&mut standby)
            .await
            .unwrap();
        self.wait_for(
            "the standby's replay paused",
            "SELECT pg_get_wal_replay_pause_state() = 'paused'",
            None,
        )
        .await;
    }

    /// Lets the standby apply WAL again, and waits until it does.
    pub async fn resume_replay(&self) {
        let mut standby = self.standby.admin().await;
        sqlx::query("SELECT pg_wal_replay_resume()")
            .execute(&mut standby)
            .await
            .unwrap();
        self.wait_for(
            "the standby's replay resumed",
            "SELECT pg_get_wal_replay_pause_state() = 'not paused'",
            None,
        )
        .await;
    }

    /// Waits until the standby has applied the primary's WAL up to `lsn`.
    pub async fn wait_replayed(&self, lsn: &Lsn) {
        self.wait_for(
            &format!("the standby's replay of {}", lsn.0),
            "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)",
            Some(lsn),
        )
        .await;
    }

    /// Waits until the standby has received (not necessarily applied) the primary's WAL up to
    /// `lsn`: with replay paused, proof that what it does not show has reached it.
    pub async fn wait_received(&self, lsn: &Lsn) {
        self.wait_for(
            &format!("the standby's receipt of {}", lsn.0),
            "SELECT coalesce(pg_last_wal_receive_lsn() >= $1::pg_lsn, false)",
            Some(lsn),
        )
        .await;
    }

    /// Waits until the standby has applied everything committed on the primary so far.
    pub async fn wait_caught_up(&self) {
        let lsn = self.primary_lsn().await;
        self.wait_replayed(&lsn).await;
    }

    /// Stops the standby (`pg_ctl stop -m fast`): it refuses connections until started again.
    pub async fn stop_standby(&mut self) {
        self.standby.stop().await;
    }

    /// Starts the stopped standby again, on its port; it streams on from where it stopped.
    pub async fn start_standby(&mut self) {
        self.standby.start_again().await;
    }

    /// Polls `query` (a boolean, given `lsn` as `$1` if any) on the standby until it is true,
    /// failing with the standby's log at the deadline. A connection refused meanwhile (the
    /// standby starting) is asked again.
    async fn wait_for(&self, what: &str, query: &'static str, lsn: Option<&Lsn>) {
        let url = self.standby_url("postgres");
        let deadline = Instant::now() + WAIT;
        loop {
            let answer = async {
                let mut conn = PgConnection::connect(&url).await?;
                let mut q = sqlx::query_scalar::<_, bool>(query);
                if let Some(lsn) = lsn {
                    q = q.bind(lsn.0.as_str());
                }
                q.fetch_one(&mut conn).await
            };
            let last = match tokio::time::timeout(POLL * 50, answer).await {
                Ok(Ok(true)) => return,
                Ok(Ok(false)) => "not yet".to_owned(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "no answer within a second".to_owned(),
            };
            assert!(
                Instant::now() < deadline,
                "{what} did not happen within {WAIT:?} ({last}); standby log: {}",
                self.standby.log()
            );
            tokio::time::sleep(POLL).await;
        }
    }
}
