//! Read replicas: PostgreSQL hot standbys (`--database-read-url`) that snapshot loads may go to.
//!
//! Invariant: a replica's answer is used only when the revision it read, in the same statement
//! as the facts, is at least the revision the caller asked for; anything else (behind, an
//! error, a timeout, a cancellation by a recovery conflict) falls back to the primary for that
//! read. A replica that fails is skipped for a short, growing while (never more than
//! [`MAX_BACKOFF`]) and then tried again. Replicas never decide health: the primary does.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge};
use sqlx::AnyPool;

use super::super::StoreResult;
use super::super::backend::{self, Backend, redact};
use crate::domain::Revision;

/// Where a snapshot read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The primary only (`fully_consistent`, and anything the cache does not mark).
    Primary,
    /// A replica that has replayed at least this revision, else the primary.
    AtLeast(u64),
}

/// The longest a failing replica is skipped before it is tried again.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// The first pause after a replica fails; it doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest a replica may take to answer one read before the primary answers it instead.
const READ_TIMEOUT: Duration = Duration::from_millis(500);
/// The most connections one instance keeps to each replica.
const MAX_CONNECTIONS: u32 = 4;

/// One hot standby.
struct Replica {
    pool: AnyPool,
    /// The URL without its password, for messages.
    shown: String,
    /// When the replica may be tried again, and how many failures in a row led there.
    backoff: Mutex<(Option<Instant>, u32)>,
    /// Revisions the replica was behind the asked-for revision at its last read.
    lag: Gauge,
}

impl Replica {
    fn available(&self, now: Instant) -> bool {
        let backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        backoff.0.is_none_or(|until| now >= until)
    }

    fn succeeded(&self) {
        *self.backoff.lock().unwrap_or_else(|p| p.into_inner()) = (None, 0);
    }

    /// Skips the replica for a while, longer with each failure in a row.
    fn failed(&self) -> Duration {
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let failures = backoff.1.saturating_add(1);
        let pause = FIRST_BACKOFF
            .saturating_mul(1 << failures.min(10).saturating_sub(1))
            .min(MAX_BACKOFF);
        *backoff = (Some(Instant::now() + pause), failures);
        pause
    }
}

/// The replicas of one store, tried in turn.
pub struct Replicas {
    list: Vec<Replica>,
    next: AtomicUsize,
    /// `consentry_replica_reads_total` by result: `replica`, `behind`, `down`.
    counted: [Counter; 3],
}

impl std::fmt::Debug for Replicas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replicas")
            .field("count", &self.list.len())
            .finish_non_exhaustive()
    }
}

impl Default for Replicas {
    /// No replicas: every read goes to the primary.
    fn default() -> Replicas {
        Replicas {
            list: Vec::new(),
            next: AtomicUsize::new(0),
            counted: counters(),
        }
    }
}

/// `consentry_replica_reads_total`, one handle per result.
fn counters() -> [Counter; 3] {
    ["replica", "behind", "down"]
        .map(|r| metrics::counter!("consentry_replica_reads_total", "result" => r))
}

impl Replicas {
    /// Replicas at `urls` (PostgreSQL only), connected on first use.
    pub fn lazy(urls: &[String]) -> anyhow::Result<Replicas> {
        let mut list = Vec::with_capacity(urls.len());
        for (i, url) in urls.iter().enumerate() {
            if Backend::of_url(url)? != Backend::Postgres {
                anyhow::bail!(
                    "--database-read-url {}: read replicas are PostgreSQL hot standbys",
                    redact(url)
                );
            }
            let pool = backend::pool_options(MAX_CONNECTIONS, READ_TIMEOUT)
                .connect_lazy_with(backend::options(url, Backend::Postgres)?);
            let name = i.to_string();
            list.push(Replica {
                pool,
                shown: redact(url),
                backoff: Mutex::new((None, 0)),
                lag: metrics::gauge!("consentry_replica_lag_revisions", "replica" => name),
            });
        }
        Ok(Replicas {
            list,
            next: AtomicUsize::new(0),
            counted: counters(),
        })
    }

    /// Refuses a replica that answers and is not in recovery: a primary given by mistake, whose
    /// revision says nothing about what it holds. One that does not answer is only reported:
    /// replicas never decide whether the instance serves.
    pub async fn check_standbys(&self) -> anyhow::Result<()> {
        for replica in &self.list {
            let asked = sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
                .fetch_one(&replica.pool);
            match tokio::time::timeout(READ_TIMEOUT * 4, asked).await {
                Ok(Ok(true)) => {
                    tracing::info!(replica = %replica.shown, "read replica is a hot standby")
                }
                Ok(Ok(false)) => anyhow::bail!(
                    "--database-read-url {}: the server is not in recovery, so it is no hot \
                     standby (a primary given by mistake?); consentry reads only standbys of its \
                     primary",
                    replica.shown
                ),
                Ok(Err(e)) => tracing::warn!(
                    replica = %replica.shown, error = %e,
                    "read replica not reachable at start; the primary answers until it is"
                ),
                Err(_) => tracing::warn!(
                    replica = %replica.shown,
                    "read replica did not answer at start; the primary answers until it does"
                ),
            }
        }
        Ok(())
    }

    /// The next replica not backing off, in turn.
    fn pick(&self) -> Option<&Replica> {
        let now = Instant::now();
        let n = self.list.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|k| &self.list[(start + k) % n])
            .find(|r| r.available(now))
    }

    /// Runs `read` on a replica when `from` allows one and one is available, and returns its
    /// answer if it read at least the revision asked for; `None` when the primary must answer.
    pub async fn read<T, F, Fut>(&self, from: ReadFrom, read: &F) -> Option<(T, Revision)>
    where
        F: Fn(AnyPool) -> Fut,
        Fut: Future<Output = StoreResult<(T, Revision)>>,
    {
        let ReadFrom::AtLeast(wanted) = from else {
            return None;
        };
        if self.list.is_empty() {
            return None;
        }
        let replica = self.pick()?;
        let outcome = tokio::time::timeout(READ_TIMEOUT, read(replica.pool.clone())).await;
        match outcome {
            Ok(Ok((value, read_at))) => {
                replica.succeeded();
                let behind = wanted.saturating_sub(read_at.0);
                replica.lag.set(behind as f64);
                if behind == 0 {
                    self.counted[0].increment(1);
                    Some((value, read_at))
                } else {
                    self.counted[1].increment(1);
                    None
                }
            }
            Ok(Err(e)) => {
                self.down(replica, &e);
                None
            }
            Err(_) => {
                self.down(replica, &"the read took too long");
                None
            }
        }
    }

    fn down(&self, replica: &Replica, e: &dyn std::fmt::Display) {
        self.counted[2].increment(1);
        let pause = replica.failed();
        tracing::warn!(
            error = %e,
            skipped_for_ms = pause.as_millis() as u64,
            "a read replica failed; the primary answers while it is skipped"
        );
    }
}
