//! Prometheus metrics: one process-wide recorder, rendered at `GET /metrics` on
//! `--metrics-listen` by a small HTTP/1.1 responder (nothing else is served there).

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// The process's recorder, installed on first use (`None` if another recorder was installed).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

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
    tokio::spawn(async move {
        let mut upkeep = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((mut socket, _)) = accepted else { continue };
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await.ok().and_then(Result::ok).unwrap_or(0);
                        let request = String::from_utf8_lossy(&buf[..n]);
                        let response = if request.starts_with("GET /metrics") {
                            let body = handle.render();
                            format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
                        } else {
                            "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                        };
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    });
                }
                _ = upkeep.tick() => handle.run_upkeep(),
                _ = stop.changed() => return,
            }
        }
    });
    Ok(bound)
}
