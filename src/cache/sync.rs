//! Keeping an instance's caches in step with the store: on Postgres a LISTEN connection wakes it
//! on every committed write (the payload is only the revision; the change log is then read), and
//! a short poll is the safety net that bounds staleness even when notifications are lost. A lost
//! listener connection clears the caches and reconnects. The change log is pruned here too.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Caches;
use crate::domain::Revision;
use crate::store::Backend;

/// How often the change log is polled when no notification arrives.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How many revisions of change log are kept for instances that fall behind.
pub const KEEP_REVISIONS: u64 = 100_000;
/// The channel writes notify their revision on.
pub const CHANNEL: &str = "consentry_revision";

/// Starts the tasks that keep `caches` current until `stop` turns true.
pub fn spawn(
    caches: Arc<Caches>,
    backend: Backend,
    database_url: String,
    stop: watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = vec![tokio::spawn(poll(caches.clone(), stop.clone()))];
    if backend == Backend::Postgres {
        tasks.push(tokio::spawn(listen(caches, database_url, stop)));
    }
    tasks
}

async fn poll(caches: Arc<Caches>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        ticks += 1;
        match caches.catch_up().await {
            Ok(applied) => {
                if failing {
                    tracing::info!(%applied, "change log readable again");
                    failing = false;
                }
                // About once a minute, drop change-log rows nobody can still need.
                if ticks.is_multiple_of(240)
                    && applied.0 > KEEP_REVISIONS
                    && let Err(e) = caches
                        .store
                        .prune_changes(Revision(applied.0 - KEEP_REVISIONS))
                        .await
                {
                    tracing::warn!(error = %e, "cannot prune the change log");
                }
                caches.report_sizes();
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot read the change log; answers wait for the store");
                    failing = true;
                }
            }
        }
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
        let mut listener = tokio::select! {
            l = connected => l,
            _ = stop.changed() => return,
        };
        match &mut listener {
            Ok(l) => {
                tracing::info!("listening for change notifications");
                backoff = Duration::from_millis(200);
                // Anything committed while no listener was connected is picked up now.
                let _ = caches.catch_up().await;
                loop {
                    let note = tokio::select! {
                        n = l.try_recv() => n,
                        _ = stop.changed() => return,
                    };
                    match note {
                        Ok(Some(_)) => {
                            if let Err(e) = caches.catch_up().await {
                                tracing::warn!(error = %e, "cannot read the change log after a notification");
                            }
                        }
                        // The connection was lost: notifications may be missing.
                        Ok(None) | Err(_) => break,
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot connect the change listener"),
        }
        tracing::warn!("change listener lost; clearing the caches and reconnecting");
        caches.clear(caches.applied());
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
