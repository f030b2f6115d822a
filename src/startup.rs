//! Building and running the server: one [`App::build`] that connects the store, applies
//! migrations and binds the listener (so the real port is known), and one
//! [`App::run_until_stopped`] that serves until a shutdown signal, then drains. `main` and the
//! tests use the same path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;
use tonic_health::server::HealthReporter;

use crate::config::ServeConfig;
use crate::proto::admin_service_server::AdminServiceServer;
use crate::service::admin::AdminApi;
use crate::service::auth::{Authenticator, hash_key};
use crate::service::Applied;
use crate::store::backend::redact;
use crate::store::{BootstrapOutcome, SqlStore, Store};

/// A built server: store connected, migrations applied, listener bound, not yet serving.
pub struct App {
    config: ServeConfig,
    listener: TcpListener,
    store: Arc<SqlStore>,
    health: HealthReporter,
    health_service: tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
}

impl App {
    /// Connects the store (applying migrations), creates the bootstrap client if asked, and
    /// binds the gRPC listener.
    pub async fn build(config: ServeConfig) -> anyhow::Result<App> {
        let url = &config.db.database_url;
        let store = Arc::new(crate::store::connect(url, config.db_max_connections).await?);
        tracing::info!(database = %redact(url), backend = ?store.backend(), "store ready, migrations applied");
        if let Some(key) = &config.bootstrap_key {
            match store.ensure_bootstrap_client(&hash_key(key.expose())).await? {
                BootstrapOutcome::Created => tracing::info!("created the bootstrap client from CONSENTRY_BOOTSTRAP_KEY"),
                BootstrapOutcome::Exists => tracing::info!("the bootstrap client exists; its key is unchanged"),
                BootstrapOutcome::Revoked => {
                    tracing::warn!("the bootstrap client was revoked and stays revoked; CONSENTRY_BOOTSTRAP_KEY is ignored")
                }
            }
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let health = HealthReporter::new();
        let health_service = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(health.clone()),
        );
        health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
        Ok(App { config, listener, store, health, health_service })
    }

    /// The address the server listens on (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// The store this server uses.
    pub fn store(&self) -> Arc<SqlStore> {
        self.store.clone()
    }

    /// Serves until `shutdown` completes; then reports NOT_SERVING, stops accepting, and lets
    /// requests in flight finish (up to the configured grace period).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let App { config, listener, store, health, health_service } = self;
        let dyn_store: Arc<dyn Store> = store.clone();
        let auth = Authenticator::new(dyn_store.clone());
        let admin = AdminApi::new(dyn_store.clone(), auth.clone(), Applied::default());
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let drain_health = health.clone();
        let signal = async move {
            shutdown.await;
            tracing::info!("shutting down: health NOT_SERVING, draining requests in flight");
            drain_health.set_service_status("", tonic_health::ServingStatus::NotServing).await;
            let _ = stop_tx.send(());
        };
        tokio::spawn(signal);

        let max_message = config.max_message_bytes;
        let router = Server::builder()
            .timeout(config.request_timeout())
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(
                AdminServiceServer::new(admin)
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(max_message),
            );
        health.set_service_status("", tonic_health::ServingStatus::Serving).await;
        tracing::info!(listen = %listener.local_addr()?, "consentry serving gRPC");
        let grace = Duration::from_millis(config.shutdown_grace_ms);
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let serve = router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = stop_rx.await;
            let _ = drained_tx.send(());
        });
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => result?,
            _ = async {
                let _ = drained_rx.await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!(grace_ms = config.shutdown_grace_ms, "grace period over; abandoning requests still in flight"),
        }
        store.pool().close().await;
        tracing::info!("consentry stopped");
        Ok(())
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
