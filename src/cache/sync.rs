//! Keeping an instance's caches in step with the store. A short poll reads the change log: it
//! bounds staleness even when notifications are lost, and it is the probe that finds an
//! unreachable store again. On Postgres a LISTEN connection also wakes the instance on every
//! committed write (`ChangeLog::listen_for_changes`; the change log is then read, once for all
//! waiters). A lost listener only reconnects: the poll keeps the caches current meanwhile, so
//! nothing cached is thrown away and cache hits go on through a database outage. The change log
//! is pruned here too.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Caches, Cause, READ_TIMEOUT};
use crate::domain::Revision;

/// How long a prune of the change log may take.
const PRUNE_TIMEOUT: Duration = Duration::from_secs(30);
/// How many revisions of change log are kept for instances that fall behind.
pub const KEEP_REVISIONS: u64 = 100_000;
/// How an instance follows the change log.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// How often the change log is polled.
    pub poll_interval: Duration,
    /// Whether to listen for notifications where the store can (Postgres; off behind a
    /// transaction pooler).
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
    if config.listen {
        tasks.push(tokio::spawn(listen(caches, stop)));
    }
    tasks
}

async fn poll(caches: Arc<Caches>, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                            Revision::number(applied.0 - KEEP_REVISIONS),
                        )));
                    }
                }
            }
            // The caches marked the store down, and said why, when the read failed.
            Err(e) => tracing::debug!(error = %e, "cannot read the change log"),
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

async fn listen(caches: Arc<Caches>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_millis(200);
    loop {
        let connected = tokio::select! {
            l = tokio::time::timeout(READ_TIMEOUT * 5, caches.store().listen_for_changes()) => l,
            _ = stop.changed() => return,
        };
        match connected {
            // The store cannot notify: the poll alone follows the change log.
            Ok(Ok(None)) => return,
            Ok(Ok(Some(mut listener))) => {
                tracing::info!("listening for change notifications");
                backoff = Duration::from_millis(200);
                loop {
                    let note = tokio::select! {
                        n = listener.next() => n,
                        _ = stop.changed() => return,
                    };
                    match note {
                        Ok(revision) => {
                            if let Err(e) = caches.catch_up_to(revision, Cause::Notify).await {
                                tracing::debug!(error = %e, "cannot read the change log after a notification");
                            }
                        }
                        // The connection was lost: notifications may be missing until the poll
                        // reads the log, which it does within its interval.
                        Err(_) => break,
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
