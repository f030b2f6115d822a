//! Building and running the server: one [`App::build`] that checks the configuration and binds
//! the listeners (so the real ports are known) without touching the database, and one
//! [`App::run_until_stopped`] that serves at once (health NOT_SERVING), prepares the store in
//! the background (migrations, bootstrap client, demo world, the cache's first read), retrying
//! with backoff while the database cannot be reached, turns SERVING once it is ready, and on
//! shutdown drains. `main` and the tests use the same path.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::cache::sync::SyncConfig;
use crate::cache::{CacheConfig, Caches, Reader};
use crate::config::ServeConfig;
use crate::convert::Limits;
use crate::health::Readiness;
use crate::proto::admin_service_server::AdminServiceServer;
use crate::proto::envoy::service::auth::v3::authorization_server::AuthorizationServer;
use crate::proto::permission_service_server::PermissionServiceServer;
use crate::service::admin::AdminApi;
use crate::service::auth::{Authenticator, hash_key};
use crate::service::authzen::AuthzenApi;
use crate::service::ext_authz::ExtAuthzApi;
use crate::service::paging::SharedSecret;
use crate::service::permission::PermissionApi;
use crate::service::{Applied, FramingLayer, ObserveLayer};
use crate::store::backend::{is_schema_behind, is_unreachable, redact, sqlstate};
use crate::store::{
    BootstrapOutcome, CacheReads, ClientWrites, PageSecret, Settings, SqlStore, Store,
};
use crate::tls::Tls;
use crate::token::{KeyRing, TokenIssuer};

/// The longest wait between two attempts to reach the database at start.
const MAX_START_BACKOFF: Duration = Duration::from_secs(5);
/// After the grace period, how long each of the health listener and the database pool may take to
/// close: so a stop takes at most `--shutdown-delay-ms` + `--shutdown-grace-ms` + twice this.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often health looks at the cache's staleness.
const FRESHNESS_CHECK: Duration = Duration::from_millis(100);

/// A built server: configuration checked, listeners bound, not yet serving, store not yet
/// touched.
pub struct App {
    config: ServeConfig,
    listener: TcpListener,
    tls: Option<Arc<Tls>>,
    health_listener: Option<TcpListener>,
    http_listener: Option<TcpListener>,
    metrics_addr: Option<SocketAddr>,
    store: Arc<SqlStore>,
    caches: Arc<Caches>,
    health: HealthReporter,
    stop: watch::Sender<bool>,
    demo_key: Option<String>,
    signing_keys: Option<Arc<KeyRing>>,
}

impl App {
    /// Checks the configuration and binds the gRPC (and metrics) listeners. The database is not
    /// touched here: [`App::run_until_stopped`] prepares it, waiting for it if it is down.
    pub async fn build(config: ServeConfig) -> anyhow::Result<App> {
        config.validate()?;
        let tls = config.tls_files().map(Tls::load).transpose()?;
        let signing_keys = signing_keys(&config)?;
        let (stop, _) = watch::channel(false);
        // The recorder comes first: every metric handle registered after it is a live one.
        // Without `--metrics-listen` none is installed, and recording costs nothing.
        let metrics_addr = match config.metrics_listen {
            Some(addr) => Some(crate::metrics::serve(addr, stop.subscribe()).await?),
            None => None,
        };
        let health = HealthReporter::new();
        let url = &config.db.database_url;
        let replicas = crate::store::Replicas::lazy(&config.database_read_urls)?;
        let store =
            Arc::new(crate::store::lazy(url, config.db_max_connections)?.with_replicas(replicas));
        let reads: Arc<dyn CacheReads> = store.clone();
        let caches = Caches::new(
            reads,
            CacheConfig {
                budget_bytes: config.cache_mib.saturating_mul(1024 * 1024),
                ttl: Duration::from_secs(config.cache_ttl_secs),
                max_staleness: config.max_staleness,
            },
        );
        let demo_key = if config.demo {
            Some(crate::demo::key()?)
        } else {
            None
        };
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let health_listener = match config.health_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (--health-listen)"))?,
            ),
            None => None,
        };
        let http_listener = match config.http_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (--http-listen)"))?,
            ),
            None => None,
        };
        Ok(App {
            config,
            listener,
            tls,
            health_listener,
            http_listener,
            metrics_addr,
            store,
            caches,
            health,
            stop,
            demo_key,
            signing_keys,
        })
    }

    /// The address AuthZEN is served on (`--http-listen`), if it is.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The address the server listens on (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    /// The address of the plaintext health-only listener, if there is one.
    pub fn health_addr(&self) -> Option<SocketAddr> {
        self.health_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// Whether gRPC is served over TLS.
    pub fn tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address metrics are served on, if they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The key of the demo client, when started with `--demo` (it works once the server is
    /// SERVING).
    pub fn demo_key(&self) -> Option<&str> {
        self.demo_key.as_deref()
    }

    /// The store this server uses.
    pub fn store(&self) -> Arc<SqlStore> {
        self.store.clone()
    }

    /// Serves until `shutdown` completes: health says NOT_SERVING until the store is prepared
    /// and whenever the cache is past its staleness bound; after `shutdown` it says NOT_SERVING,
    /// stops accepting, and lets requests in flight finish (up to the configured grace period).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let App {
            config,
            listener,
            tls,
            health_listener,
            http_listener,
            store,
            caches,
            health,
            stop,
            signing_keys,
            ..
        } = self;
        let readiness = Arc::new(Readiness::new(health.clone()).await);
        let (fatal_tx, mut fatal_rx) = tokio::sync::oneshot::channel::<anyhow::Error>();
        // Read from the store while it is prepared, before any request is answered.
        let page_secret = SharedSecret::default();
        let follow = tokio::spawn(prepare_and_follow(
            store.clone(),
            caches.clone(),
            page_secret.clone(),
            config.clone(),
            readiness.clone(),
            stop.subscribe(),
            fatal_tx,
        ));
        let pool_gauges = tokio::spawn(report_pool(store.clone(), stop.subscribe()));

        let auth = Authenticator::new(caches.clone());
        let dyn_store: Arc<dyn Store> = store.clone();
        // What one request may ask for, the same for both services.
        let limits = Limits {
            max_batch: config.max_batch,
        };
        let admin = AdminApi::new(
            dyn_store,
            auth.clone(),
            Applied(caches.clone()),
            limits,
            page_secret.clone(),
        );
        let max_message = config.max_message_bytes;
        let tokens = signing_keys
            .clone()
            .map(|keys| TokenIssuer::new(keys, config.token_issuer.clone()));
        // Envoy's external authorization, only when configured (validated before start).
        let ext_authz = config
            .ext_authz_settings()
            .map_err(|problems| anyhow::Error::from(crate::config::ConfigError(problems)))?
            .map(|settings| {
                let api = ExtAuthzApi::new(
                    Reader::new(caches.clone()),
                    auth.clone(),
                    settings,
                    tokens.clone(),
                );
                AuthorizationServer::new(api)
                    .max_decoding_message_size(max_message)
                    .max_encoding_message_size(max_message)
            });
        let permission = PermissionApi::new(
            Reader::new(caches.clone()),
            auth.clone(),
            limits,
            page_secret.clone(),
        )
        .with_tokens(tokens);
        // Reflection lists what is served: Envoy's protocol only when it is.
        let mut served_sets = vec![
            crate::proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ];
        if ext_authz.is_some() {
            served_sets.push(crate::proto::ENVOY_FILE_DESCRIPTOR_SET);
        }
        let reflection = || {
            served_sets.iter().fold(
                tonic_reflection::server::Builder::configure(),
                |builder, set| builder.register_encoded_file_descriptor_set(set),
            )
        };
        let reflection_v1 = reflection().build_v1()?;
        let reflection_v1alpha = reflection().build_v1alpha()?;

        let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
        // AuthZEN stops accepting when gRPC does (or when the server stops for another reason).
        let http_stop = Arc::new(watch::channel(false).0);
        let http_drain = http_stop.clone();
        let drain_readiness = readiness.clone();
        let delay = Duration::from_millis(config.shutdown_delay_ms);
        tokio::spawn(async move {
            shutdown.await;
            // Health says NOT_SERVING first; the server keeps answering for the delay, so load
            // balancers stop sending before the listener closes; then requests in flight drain.
            tracing::info!(
                delay_ms = delay.as_millis() as u64,
                "shutting down: health NOT_SERVING, then draining requests in flight"
            );
            drain_readiness.set_stopping().await;
            tokio::time::sleep(delay).await;
            tracing::info!("no longer accepting; draining requests in flight");
            let _ = drain_tx.send(());
            let _ = http_drain.send(true);
        });

        // The layer every call runs in: load shedding, request id, span, deadline, metrics, log.
        let observe = ObserveLayer::new(
            config.max_concurrent_requests,
            config.request_timeout(),
            &[
                crate::proto::FILE_DESCRIPTOR_SET,
                crate::proto::ENVOY_FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            ],
        );
        // AuthZEN over HTTP, sharing the layer's limit, deadline, ids and metrics.
        let http = http_listener.map(|listener| {
            let api = AuthzenApi::new(
                Reader::new(caches.clone()),
                auth.clone(),
                limits,
                page_secret.clone(),
                config.authzen_issuer_url.clone(),
                max_message,
                observe.admission(&crate::service::authzen::rpcs()),
            );
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(listen = %addr, "serving AuthZEN over HTTP");
            }
            crate::service::authzen::serve(
                listener,
                Arc::new(api),
                http_stop.subscribe(),
                Duration::from_millis(config.shutdown_grace_ms),
            )
        });
        let router = Server::builder()
            .layer(observe)
            // Inside it: request bodies whose framing is broken or too long, refused as such.
            .layer(FramingLayer::new(max_message))
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
            )
            .add_optional_service(ext_authz);
        tracing::info!(
            listen = %listener.local_addr()?,
            tls = tls.is_some(),
            client_certificates = tls.as_ref().is_some_and(|t| t.mutual()),
            "consentry accepting gRPC"
        );
        let health_only = match health_listener {
            Some(listener) => Some(serve_health_only(
                listener,
                &health,
                max_message,
                stop.subscribe(),
            )?),
            None => None,
        };
        let tls_follow = tls.as_ref().map(|tls| {
            tls.clone()
                .follow(config.tls_reload_interval, stop.subscribe())
        });
        let keys_follow = signing_keys
            .and_then(|keys| keys.follow(config.signing_key_reload_interval, stop.subscribe()));

        let grace = Duration::from_millis(config.shutdown_grace_ms);
        let (drained_tx, drained_rx) = tokio::sync::oneshot::channel::<()>();
        let drained = async move {
            let _ = drain_rx.await;
            let _ = drained_tx.send(());
        };
        let serve: std::pin::Pin<
            Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>,
        > = match tls {
            Some(tls) => {
                Box::pin(router.serve_with_incoming_shutdown(tls.incoming(listener), drained))
            }
            None => Box::pin(router.serve_with_incoming_shutdown(incoming(listener), drained)),
        };
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
            Ok(e) = &mut fatal_rx => Err(e),
        };
        let _ = stop.send(true);
        let _ = http_stop.send(true);
        let _ = follow.await;
        let _ = pool_gauges.await;
        for task in [tls_follow, keys_follow, http].into_iter().flatten() {
            let _ = task.await;
        }
        // A probe's connection (a Watch stream never ends by itself) must not hold up the exit.
        if let Some(mut task) = health_only
            && tokio::time::timeout(CLOSE_TIMEOUT, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
        // Connections still held by requests abandoned after the grace period are not waited for.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, store.pool().close()).await;
        tracing::info!("consentry stopped");
        result
    }
}

/// The keys that sign context tokens: the key file's; for `--demo` (which refuses a key file,
/// its client key being public) a throwaway key made now and held only in memory; otherwise
/// `None` (docs/rules.md §8: no key file, no tokens).
fn signing_keys(config: &ServeConfig) -> anyhow::Result<Option<Arc<KeyRing>>> {
    match &config.signing_key_file {
        Some(path) => Ok(Some(KeyRing::load(path.clone())?)),
        None if config.demo => Ok(Some(KeyRing::throwaway()?)),
        None => Ok(None),
    }
}

/// Prepares the store (retrying with backoff while the database cannot be reached or refuses
/// the connection: a password not set yet, a database being restored), then keeps
/// the caches in step with it and health in step with the caches, until `stop`. A failure that
/// waiting cannot mend (a migration that does not apply, a revoked demo client) is sent on
/// `fatal`, which stops the server.
async fn prepare_and_follow(
    store: Arc<SqlStore>,
    caches: Arc<Caches>,
    page_secret: SharedSecret,
    config: ServeConfig,
    readiness: Arc<Readiness>,
    mut stop: watch::Receiver<bool>,
    fatal: tokio::sync::oneshot::Sender<anyhow::Error>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let prepared = tokio::select! {
            prepared = prepare(&store, &caches, &page_secret, &config) => prepared,
            _ = stop.changed() => return,
        };
        match prepared {
            Ok(()) => break,
            Err(e) if is_unreachable(&e) || is_schema_behind(&e) => {
                let why = if is_schema_behind(&e) {
                    "waiting for `consentry migrate`; health stays NOT_SERVING until the schema is current"
                } else {
                    "the database cannot be reached yet, or refuses the connection; health stays NOT_SERVING until it can"
                };
                tracing::warn!(
                    error = format!("{e:#}"),
                    sqlstate = sqlstate(&e),
                    attempts,
                    retry_in_ms = backoff.as_millis() as u64,
                    "{why}"
                );
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_START_BACKOFF);
            }
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "cannot prepare the store");
                let _ = fatal.send(e);
                return;
            }
        }
    }
    let sync_tasks = crate::cache::sync::spawn(
        caches.clone(),
        SyncConfig {
            poll_interval: config.change_poll_interval,
            listen: config.change_listener,
        },
        stop.clone(),
    );
    readiness.set_ready(caches.fresh()).await;
    let mut tick = tokio::time::interval(FRESHNESS_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                readiness.set_fresh(caches.fresh()).await;
                caches.report();
            }
            _ = stop.changed() => break,
        }
    }
    for task in sync_tasks {
        let _ = task.await;
    }
}

/// With `--demo`, refuses a database that is not the demo's own; applies migrations, writes the
/// demo world and creates the bootstrap client when asked, reads the page-token secret into
/// `page_secret`, and has the caches read the store once.
async fn prepare(
    store: &SqlStore,
    caches: &Caches,
    page_secret: &SharedSecret,
    config: &ServeConfig,
) -> anyhow::Result<()> {
    let url = &config.db.database_url;
    if config.demo {
        // Before anything is written (migrations included): the demo's world and its public
        // key go only into a database of the demo's own.
        let occupancy = crate::store::occupancy::occupancy(url).await?;
        crate::demo::may_load(&occupancy, &redact(url))?;
    }
    if config.migrate {
        crate::store::migrate(url).await?;
        tracing::info!(database = %redact(url), backend = ?store.backend(), "store ready, migrations applied");
    } else {
        crate::store::backend::check_migrated(url).await?;
        tracing::info!(database = %redact(url), backend = ?store.backend(), "store ready, schema current");
    }
    // A replica that is no standby is a mistake to refuse; one that is down only waits.
    store.replicas().check_standbys().await?;
    // The demo's world first, so that its client is the first write of its database (what
    // `demo::may_load` recognises at the next start), the bootstrap client after it.
    if config.demo {
        crate::demo::load(store)
            .await
            .context("loading the demo world")?;
    }
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
    // Before the caches start: no request is answered until they have, so every one finds it.
    let secret = store.page_token_secret(&PageSecret::random()?).await?;
    page_secret.set(secret);
    let applied = caches.start().await?;
    tracing::info!(%applied, "caches following the change log");
    Ok(())
}

/// Accepted connections of `listener`, with consentry's socket settings: small unary answers
/// must leave at once, so there is no Nagle delay.
pub fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// The plaintext listener for probes: `grpc.health.v1.Health` (and reflection over it alone, so
/// that `grpcurl` works there too), nothing else, until `stop`.
fn serve_health_only(
    listener: TcpListener,
    health: &HealthReporter,
    max_message: usize,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let server = Server::builder()
        .layer(FramingLayer::new(max_message))
        .add_service(HealthServer::new(HealthService::from_health_reporter(
            health.clone(),
        )))
        .add_service(reflection().build_v1()?)
        .add_service(reflection().build_v1alpha()?)
        .serve_with_incoming_shutdown(incoming(listener), async move {
            let _ = stop.changed().await;
        });
    Ok(tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "the health listener failed");
        }
    }))
}

/// Reports the database pool's size and idle connections every few seconds.
fn report_pool(store: Arc<SqlStore>, mut stop: watch::Receiver<bool>) -> impl Future<Output = ()> {
    let open = metrics::gauge!("consentry_db_pool_connections", "state" => "open");
    let idle = metrics::gauge!("consentry_db_pool_connections", "state" => "idle");
    async move {
        let mut tick = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let pool = store.pool();
                    open.set(f64::from(pool.size()));
                    idle.set(pool.num_idle() as f64);
                }
                _ = stop.changed() => return,
            }
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
