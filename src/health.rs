//! What `grpc.health.v1.Health` says. SERVING only while the store has been prepared, the cache
//! is within its staleness bound, and no shutdown has begun; NOT_SERVING otherwise, so that load
//! balancers and Kubernetes route away from an instance that cannot answer. The service
//! `liveness` ([`LIVENESS_SERVICE`]) is SERVING from start to exit: it says only that the process
//! answers, for liveness probes that must not restart every instance through a database outage.

use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::LIVENESS_SERVICE;

/// The services health reports on: the whole server (`""`) and each consentry service.
const SERVICES: [&str; 3] = [
    "",
    "consentry.v1.PermissionService",
    "consentry.v1.AdminService",
];

#[derive(Debug, Default)]
struct State {
    ready: bool,
    fresh: bool,
    stopping: bool,
    serving: Option<bool>,
}

/// The server's readiness, reported through the health service.
pub struct Readiness {
    reporter: HealthReporter,
    state: tokio::sync::Mutex<State>,
}

impl Readiness {
    /// Starts out NOT_SERVING (and `liveness` SERVING).
    pub async fn new(reporter: HealthReporter) -> Self {
        reporter
            .set_service_status(LIVENESS_SERVICE, ServingStatus::Serving)
            .await;
        let readiness = Self {
            reporter,
            state: tokio::sync::Mutex::new(State::default()),
        };
        readiness.update(|_| {}).await;
        readiness
    }

    /// The store is migrated and the cache has read it once.
    pub async fn set_ready(&self, fresh: bool) {
        self.update(|s| {
            s.ready = true;
            s.fresh = fresh;
        })
        .await;
    }

    /// Whether the cache is within its staleness bound.
    pub async fn set_fresh(&self, fresh: bool) {
        self.update(|s| s.fresh = fresh).await;
    }

    /// A shutdown began: NOT_SERVING from now on.
    pub async fn set_stopping(&self) {
        self.update(|s| s.stopping = true).await;
    }

    async fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state.lock().await;
        change(&mut state);
        let serving = state.ready && state.fresh && !state.stopping;
        if state.serving == Some(serving) {
            return;
        }
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for service in SERVICES {
            self.reporter.set_service_status(service, status).await;
        }
        if state.serving.is_some() || serving {
            let why = match (state.ready, state.fresh, state.stopping) {
                (_, _, true) => "shutting down",
                (false, _, _) => "the store is not prepared yet",
                (true, false, _) => "the store has not been heard from within --max-staleness",
                (true, true, false) => "ready",
            };
            match (serving, state.stopping) {
                (true, _) => tracing::info!("health SERVING"),
                (false, true) => tracing::info!(why, "health NOT_SERVING"),
                (false, false) => tracing::warn!(why, "health NOT_SERVING"),
            }
        }
        state.serving = Some(serving);
    }
}
