//! Prometheus metrics: one process-wide recorder, rendered at `GET /metrics` on
//! `--metrics-listen`, served by hyper over HTTP/1.1 (nothing else is served there).
//!
//! Invariant: every metric the code records is described in [`METRICS`] (its `# HELP` text), and
//! nothing else is; a unit test reads `src/` to hold both ways, and `tests/it/deploy/scrape.rs`
//! puts a real scrape through `promtool check metrics`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// What a metric is, for its `# TYPE` and the macro that records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `metrics::counter!`: only goes up (`_total`).
    Counter,
    /// `metrics::gauge!`: a value now.
    Gauge,
    /// `metrics::histogram!`: a distribution (`_bucket`, `_sum`, `_count`).
    Histogram,
}

/// Every metric consentry records: its name, kind and `# HELP` text.
pub const METRICS: &[(&str, Kind, &str)] = &[
    (
        "consentry_requests_total",
        Kind::Counter,
        "Calls answered, by RPC and gRPC status code (UNAVAILABLE: the store was needed and not there; RESOURCE_EXHAUSTED: shed).",
    ),
    (
        "consentry_request_duration_seconds",
        Kind::Histogram,
        "Time from a call's arrival to its answer, by RPC.",
    ),
    (
        "consentry_decisions_total",
        Kind::Counter,
        "Access checks decided, by reason (ALLOWED or the deny).",
    ),
    (
        "consentry_cache_hits_total",
        Kind::Counter,
        "Snapshot lookups answered from the cache, by cache.",
    ),
    (
        "consentry_cache_misses_total",
        Kind::Counter,
        "Snapshot lookups that read the store, by cache.",
    ),
    (
        "consentry_cache_evictions_total",
        Kind::Counter,
        "Snapshots evicted to stay within the cache budget, by cache.",
    ),
    (
        "consentry_cache_entries",
        Kind::Gauge,
        "Snapshots held, by cache.",
    ),
    (
        "consentry_store_duration_seconds",
        Kind::Histogram,
        "Time to load a snapshot from the store, by kind of snapshot.",
    ),
    (
        "consentry_change_log_reads_total",
        Kind::Counter,
        "Reads of the change log, by what caused them.",
    ),
    (
        "consentry_applied_revision",
        Kind::Gauge,
        "The newest revision this instance has applied.",
    ),
    (
        "consentry_replica_reads_total",
        Kind::Counter,
        "Snapshot loads offered to a read replica, by result: replica (it had replayed far enough and answered), behind (it had not; the primary answered), down (it failed or was too slow; the primary answered and it is skipped for a while).",
    ),
    (
        "consentry_replica_lag_revisions",
        Kind::Gauge,
        "How many revisions a read replica was behind the revision asked of it at its last read, per replica (in --database-read-url order, from 0).",
    ),
    (
        "consentry_revision_regressions_total",
        Kind::Counter,
        "Times the store's history was found replaced (a restore, a failover that lost commits) and the instance started afresh from its head.",
    ),
    (
        "consentry_staleness_seconds",
        Kind::Gauge,
        "Seconds since the change log was last read.",
    ),
    (
        "consentry_max_staleness_seconds",
        Kind::Gauge,
        "The configured --max-staleness: past it every check is UNAVAILABLE and health NOT_SERVING.",
    ),
    (
        "consentry_store_up",
        Kind::Gauge,
        "1 while the store answers, 0 while it cannot be reached.",
    ),
    (
        "consentry_db_pool_connections",
        Kind::Gauge,
        "Database pool connections, by state (open, idle); LISTEN holds one more.",
    ),
    (
        "consentry_tls_reloads_total",
        Kind::Counter,
        "Changes of the TLS files, by result: applied, or refused (the previous certificate stays).",
    ),
    (
        "consentry_tls_handshake_failures_total",
        Kind::Counter,
        "TLS handshakes that failed or timed out.",
    ),
    (
        "consentry_signing_key_reloads_total",
        Kind::Counter,
        "Changes of the signing key file, by result: applied, or refused (the previous keys stay).",
    ),
];

/// Counters whose every label value is known, present at zero from the start, so that the first
/// event is an increase to Prometheus (a series that appears at 1 shows no increase).
const AT_ZERO: &[(&str, &str, &[&str])] = &[
    (
        "consentry_replica_reads_total",
        "result",
        &["replica", "behind", "down"],
    ),
    (
        "consentry_tls_reloads_total",
        "result",
        &["applied", "refused"],
    ),
    (
        "consentry_signing_key_reloads_total",
        "result",
        &["applied", "refused"],
    ),
];

/// Describes every metric of [`METRICS`] to the installed recorder and registers [`AT_ZERO`].
fn describe() {
    for &(name, kind, help) in METRICS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
    for &(name, label, values) in AT_ZERO {
        for &value in values {
            metrics::counter!(name, label => value).increment(0);
        }
    }
}

/// The process's recorder, installed on first use (`None` if another recorder was installed).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// How long a client may take to send a request's head, counted from when the connection
/// waits for one: a client that never finishes its headers (a slow loris), or a kept-alive
/// connection left idle, is closed then.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The most a connection buffers of a request (its request line and headers; no body is read):
/// a larger head is answered 431 and the connection closed.
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;

/// The content type of the Prometheus text exposition format.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr` and serves `/metrics` until `stop` turns true; returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<SocketAddr> {
    let handle = handle()
        .ok_or_else(|| anyhow::anyhow!("no metrics recorder"))?
        .clone();
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} for metrics: {e}"))?;
    let bound = listener.local_addr()?;
    tracing::info!(listen = %bound, "serving Prometheus metrics at /metrics");
    let connections_stop = stop.clone();
    tokio::spawn(async move {
        let mut upkeep = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((socket, _)) = accepted else { continue };
                    tokio::spawn(connection(socket, handle.clone(), connections_stop.clone()));
                }
                _ = upkeep.tick() => handle.run_upkeep(),
                _ = stop.changed() => return,
            }
        }
    });
    Ok(bound)
}

/// Serves one connection, keeping it alive between requests, until the client closes it, its
/// head is late or too large, or `stop` turns true (then a request in progress is answered first).
async fn connection(socket: TcpStream, handle: PrometheusHandle, mut stop: watch::Receiver<bool>) {
    let service = service_fn(move |request| {
        let response = respond(&handle, &request);
        std::future::ready(Ok::<_, Infallible>(response))
    });
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_REQUEST_BYTES)
        .keep_alive(true);
    let connection = http.serve_connection(TokioIo::new(socket), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// The answer to one request: the Prometheus text for `GET` (or `HEAD`) `/metrics`, 405 for any
/// other method there, 404 for any other path.
fn respond(handle: &PrometheusHandle, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let answer = |status: StatusCode, body: Bytes| {
        let mut response = Response::new(Full::new(body));
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return answer(StatusCode::NOT_FOUND, Bytes::new());
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = answer(StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let mut response = answer(StatusCode::OK, Bytes::from(handle.render()));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROMETHEUS_TEXT));
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every `counter!`, `gauge!` and `histogram!` under `src/`, as (name, kind, file).
    fn recorded() -> Vec<(String, Kind, String)> {
        let mut found = Vec::new();
        let mut dirs = vec![std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (macro_name, kind) in [
                    ("counter!(", Kind::Counter),
                    ("gauge!(", Kind::Gauge),
                    ("histogram!(", Kind::Histogram),
                ] {
                    for (at, _) in text.match_indices(macro_name) {
                        // Not `describe_counter!(` and the like.
                        if text[..at].ends_with('_') {
                            continue;
                        }
                        let rest = text[at + macro_name.len()..].trim_start();
                        let Some(rest) = rest.strip_prefix('"') else {
                            continue;
                        };
                        let name = rest.split('"').next().unwrap().to_owned();
                        // This test's own strings are no metric names.
                        if name.is_empty()
                            || !name
                                .chars()
                                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                        {
                            continue;
                        }
                        found.push((name, kind, path.display().to_string()));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_recorded_metric_is_described_and_every_description_is_recorded() {
        let recorded = recorded();
        assert!(
            recorded.len() >= 10,
            "the scan finds the metric macros: {recorded:?}"
        );
        for (name, kind, file) in &recorded {
            assert!(
                METRICS.iter().any(|(n, k, _)| n == name && k == kind),
                "{file} records {name} ({kind:?}), which METRICS does not describe as such"
            );
        }
        for (name, _, help) in METRICS {
            assert!(
                recorded.iter().any(|(n, _, _)| n == name),
                "METRICS describes {name}, which nothing records"
            );
            assert!(!help.is_empty() && !help.contains('\n'), "{name}: {help:?}");
        }
        for (name, _, _) in AT_ZERO {
            assert!(
                METRICS
                    .iter()
                    .any(|(n, k, _)| n == name && *k == Kind::Counter)
            );
        }
    }
}
