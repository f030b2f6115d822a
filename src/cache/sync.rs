//! Keeping an instance's caches in step with the store. A short poll reads the change log: it
//! bounds staleness even when notifications are lost, and it is the probe that finds an
//! unreachable store again. On Postgres a LISTEN connection also wakes the instance on every
//! committed write (the payload is the revision; the change log is then read, once for all
//! waiters). A lost listener only reconnects: the poll keeps the caches current meanwhile, so
//! nothing cached is thrown away and cache hits go on through a database outage. The change log
//! is pruned here too.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Caches, Cause, READ_TIMEOUT};
use crate::domain::Revision;
use crate::store::Backend;

/// How long a prune of the change log may take.
const PRUNE_TIMEOUT: Duration = Duration::from_secs(30);
/// How many revisions of change log are kept for instances that fall behind.
pub const KEEP_REVISIONS: u64 = 100_000;
/// The channel writes notify their revision on.
pub const CHANNEL: &str = "consentry_revision";

/// How an instance follows the change log.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The store's backend (only Postgres can notify).
    pub backend: Backend,
    /// The database URL, for the listener's own connection.
    pub database_url: String,
    /// How often the change log is polled.
    pub poll_interval: Duration,
    /// Whether to LISTEN for notifications (Postgres only; off behind a transaction pooler).
    pub listen: bool,
}

/// Starts the tasks that keep `caches` current until `stop` turns true.
pub fn spawn(
    caches: Arc<Caches>,
    config: SyncConfig,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(poll(
        caches.clone(),
        config.poll_interval,
        stop.clone(),
    ))];
    if config.backend == Backend::Postgres && config.listen {
        tasks.push(tokio::spawn(listen(caches, config.database_url, stop)));
    }
    tasks
}

async fn poll(caches: Arc<Caches>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut ticks: u64 = 0;
    let mut pruning: Option<JoinHandle<()>> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        ticks += 1;
        match caches.poll().await {
            Ok(applied) => {
                if failing {
                    tracing::info!(%applied, "change log readable again");
                    failing = false;
                }
                // About once a minute, drop watermarks and change-log rows nobody can still
                // need; the prune runs beside the poll, one at a time, so a slow DELETE never
                // delays the next read of the log.
                if ticks.is_multiple_of((60_000 / interval.as_millis().max(1)).max(1) as u64) {
                    caches.forget_old_watermarks();
                    if applied.0 > KEEP_REVISIONS
                        && pruning.as_ref().is_none_or(|p| p.is_finished())
                    {
                        pruning = Some(tokio::spawn(prune(
                            caches.clone(),
                            Revision(applied.0 - KEEP_REVISIONS),
                        )));
                    }
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the change log; answering from the cache within the staleness bound");
                    failing = true;
                }
            }
        }
    }
}

async fn prune(caches: Arc<Caches>, before: Revision) {
    match tokio::time::timeout(PRUNE_TIMEOUT, caches.store().prune_changes(before)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune the change log"),
        Err(_) => tracing::warn!("pruning the change log timed out"),
    }
}

async fn listen(caches: Arc<Caches>, url: String, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let connected = async {
            let mut listener = PgListener::connect(&url).await?;
            listener.listen(CHANNEL).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let connected = tokio::select! {
            l = tokio::time::timeout(READ_TIMEOUT * 5, connected) => l,
            _ = stop.changed() => return,
        };
        match connected {
            Ok(Ok(mut listener)) => {
                tracing::info!("listening for change notifications");
                backoff = Duration::from_millis(200);
                loop {
                    let note = tokio::select! {
                        n = listener.try_recv() => n,
                        _ = stop.changed() => return,
                    };
                    match note {
                        Ok(Some(note)) => {
                            // The payload is the committed revision; an unreadable one means
                            // "read the log".
                            let revision =
                                note.payload().parse().map_or(Revision(u64::MAX), Revision);
                            if let Err(e) = caches.catch_up_to(revision, Cause::Notify).await {
                                tracing::debug!(error = %e, "cannot read the change log after a notification");
                            }
                        }
                        // The connection was lost: notifications may be missing until the poll
                        // reads the log, which it does within its interval.
                        Ok(None) | Err(_) => break,
                    }
                }
                tracing::warn!(
                    "change listener lost; reconnecting (the poll keeps the caches current)"
                );
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot connect the change listener"),
            Err(_) => tracing::warn!("connecting the change listener timed out"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
