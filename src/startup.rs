//! Building and running the server: one [`App::build`] that connects the store, applies
//! migrations, fills the caches' starting point and binds the listeners (so the real ports are
//! known), and one [`App::run_until_stopped`] that serves until a shutdown signal, then drains.
//! `main` and the tests use the same path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;

use crate::cache::{CacheConfig, Caches};
use crate::config::ServeConfig;
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::permission_service_server::PermissionServiceServer;
use crate::service::admin::AdminApi;
use crate::service::auth::{Authenticator, hash_key};
use crate::service::permission::PermissionApi;
use crate::service::{Applied, set_request_timeout};
use crate::store::backend::redact;
use crate::store::{BootstrapOutcome, SqlStore, Store};

/// A built server: store connected, migrations applied, listeners bound, not yet serving.
pub struct App {
    config: ServeConfig,
    listener: TcpListener,
    metrics_addr: Option<SocketAddr>,
    store: Arc<SqlStore>,
    caches: Arc<Caches>,
    health: HealthReporter,
    stop: watch::Sender<bool>,
    demo_key: Option<String>,
}

impl App {
    /// Connects the store (applying migrations), creates the bootstrap client and the demo world
    /// if asked, and binds the gRPC (and metrics) listeners. Health says NOT_SERVING until
    /// [`App::run_until_stopped`] starts serving.
    pub async fn build(config: ServeConfig) -> anyhow::Result<App> {
        let health = HealthReporter::new();
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        let url = &config.db.database_url;
        let store = Arc::new(crate::store::connect(url, config.db_max_connections).await?);
        tracing::info!(database = %redact(url), backend = ?store.backend(), "store ready, migrations applied");
        if let Some(key) = &config.bootstrap_key {
            match store
                .ensure_bootstrap_client(&hash_key(key.expose()))
                .await?
            {
                BootstrapOutcome::Created => {
                    tracing::info!("created the bootstrap client from CONSENTRY_BOOTSTRAP_KEY")
                }
                BootstrapOutcome::Exists => {
                    tracing::info!("the bootstrap client exists; its key is unchanged")
                }
                BootstrapOutcome::Revoked => {
                    tracing::warn!(
                        "the bootstrap client was revoked and stays revoked; CONSENTRY_BOOTSTRAP_KEY is ignored"
                    )
                }
            }
        }
        let demo_key = if config.demo {
            Some(
                crate::demo::load(store.as_ref())
                    .await
                    .context("loading the demo world")?,
            )
        } else {
            None
        };
        let dyn_store: Arc<dyn Store> = store.clone();
        let cache_config = CacheConfig {
            budget_bytes: config.cache_mib.saturating_mul(1024 * 1024),
            ttl: Duration::from_secs(config.cache_ttl_secs.max(1)),
        };
        let caches = Caches::new(dyn_store, cache_config).await?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let (stop, _) = watch::channel(false);
        let metrics_addr = match config.metrics_listen {
            Some(addr) => Some(crate::metrics::serve(addr, stop.subscribe()).await?),
            None => {
                crate::metrics::handle();
                None
            }
        };
        Ok(App {
            config,
            listener,
            metrics_addr,
            store,
            caches,
            health,
            stop,
            demo_key,
        })
    }

    /// The address the server listens on (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// The address metrics are served on, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The key of the demo client, when started with `--demo`.
    pub fn demo_key(&self) -> Option<&str> {
        self.demo_key.as_deref()
    }

    /// The store this server uses.
    pub fn store(&self) -> Arc<SqlStore> {
        self.store.clone()
    }

    /// The server's snapshot caches.
    pub fn caches(&self) -> Arc<Caches> {
        self.caches.clone()
    }

    /// Serves until `shutdown` completes; then reports NOT_SERVING, stops accepting, and lets
    /// requests in flight finish (up to the configured grace period).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            config,
            listener,
            store,
            caches,
            health,
            stop,
            ..
        } = self;
        let dyn_store: Arc<dyn Store> = store.clone();
        set_request_timeout(config.request_timeout());
        let sync_tasks = crate::cache::sync::spawn(
            caches.clone(),
            store.backend(),
            config.db.database_url.clone(),
            stop.subscribe(),
        );
        let pool_gauges = tokio::spawn(report_pool(store.clone(), stop.subscribe()));

        let auth = Authenticator::new(caches.clone());
        let admin = AdminApi::new(dyn_store.clone(), auth.clone(), Applied(caches.clone()));
        let permission = PermissionApi::new(caches.clone(), dyn_store, auth, config.max_batch);
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;
        let max_message = config.max_message_bytes;

        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        let drain_health = health.clone();
        let delay = Duration::from_millis(config.shutdown_delay_ms);
        tokio::spawn(async move {
            shutdown.await;
            // Health says NOT_SERVING first; the server keeps answering for the delay, so load
            // balancers stop sending before the listener closes; then requests in flight drain.
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "shutting down: health NOT_SERVING, then draining requests in flight"
            );
            drain_health
                .set_service_status("", ServingStatus::NotServing)
                .await;
            tokio::time::sleep(delay).await;
            tracing::info!("no longer accepting; draining requests in flight");
            let _ = drain_tx.send(());
        });

        // Beyond the concurrency limit, requests are shed at once with RESOURCE_EXHAUSTED.
        let limits = tower::ServiceBuilder::new()
            .layer(LoadShedLayer::new())
            .layer(GlobalConcurrencyLimitLayer::new(
                config.max_concurrent_requests.max(1),
            ));
        let router = Server::builder()
            .layer(limits)
            .add_service(HealthServer::new(HealthService::from_health_reporter(
                health.clone(),
            )))
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                AdminServiceServer::new(admin)
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(max_message),
            )
            .add_service(
                PermissionServiceServer::new(permission)
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(max_message),
            );
        health.set_service_status("", ServingStatus::Serving).await;
        tracing::info!(listen = %listener.local_addr()?, "consentry serving gRPC");

        let grace = Duration::from_millis(config.shutdown_grace_ms);
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        // Small unary answers must leave at once: no Nagle delay on accepted connections.
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let serve = router.serve_with_incoming_shutdown(incoming, async move {
            let _ = drain_rx.await;
            let _ = drained_tx.send(());
        });
        tokio::pin!(serve);
        let result = tokio::select! {
            result = &mut serve => result.map_err(anyhow::Error::from),
            _ = async {
                let _ = drained_rx.await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_ms = config.shutdown_grace_ms, "grace period over; abandoning requests still in flight");
                Ok(())
            }
        };
        let _ = stop.send(true);
        for task in sync_tasks {
            let _ = task.await;
        }
        let _ = pool_gauges.await;
        store.pool().close().await;
        tracing::info!("consentry stopped");
        result
    }
}

/// Reports the database pool's size and idle connections every few seconds.
async fn report_pool(store: Arc<SqlStore>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let pool = store.pool();
                metrics::gauge!("consentry_db_pool_connections", "state" => "open").set(f64::from(pool.size()));
                metrics::gauge!("consentry_db_pool_connections", "state" => "idle").set(pool.num_idle() as f64);
            }
            _ = stop.changed() => return,
        }
    }
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
