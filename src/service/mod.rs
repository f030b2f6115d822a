//! The transport layer: tonic services, authentication, paging and status mapping.
//!
//! Architecture invariant: handlers are thin. They authenticate, convert proto → domain (which
//! validates), call the store or the cache and the pure engine, and convert back. Only this
//! layer and `convert` see prost types; errors become `tonic::Status` only in [`status`].

pub mod admin;
pub mod auth;
pub mod paging;
pub mod status;

use crate::domain::Revision;

/// A revision this instance's own write committed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written(pub Revision);

/// Brings this instance's view of the store up to its own writes before it replies, so that its
/// next read sees them without a token.
#[derive(Clone)]
pub struct Applied(pub std::sync::Arc<crate::cache::Caches>);

impl Applied {
    /// Waits until `written` is applied here.
    pub async fn wait_for(&self, written: Written) {
        self.0.applied_through(written.0).await;
    }
}

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tonic::metadata::MetadataValue;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

pub mod permission;

/// The metadata header carrying a request id (taken from the caller, or made up).
pub const REQUEST_ID_HEADER: &str = "x-request-id";

static REQUEST_TIMEOUT_MS: AtomicU64 = AtomicU64::new(5_000);
static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Sets how long a request may run before it fails with `DEADLINE_EXCEEDED`.
pub fn set_request_timeout(timeout: Duration) {
    REQUEST_TIMEOUT_MS.store(
        u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1),
        Ordering::Relaxed,
    );
}

fn request_id<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(
            || {
                format!(
                    "cs-{:x}-{}",
                    std::process::id(),
                    NEXT_REQUEST.fetch_add(1, Ordering::Relaxed)
                )
            },
            str::to_owned,
        )
}

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Runs one RPC handler with its request id, span, timeout, metrics and request log.
pub async fn observe<Req, Resp, F, Fut>(
    rpc: &'static str,
    request: Request<Req>,
    handler: F,
) -> Result<Response<Resp>, Status>
where
    F: FnOnce(Request<Req>) -> Fut,
    Fut: Future<Output = Result<Response<Resp>, Status>>,
{
    let id = request_id(&request);
    let span = tracing::info_span!("rpc", rpc, request_id = %id);
    let started = Instant::now();
    let timeout = Duration::from_millis(REQUEST_TIMEOUT_MS.load(Ordering::Relaxed));
    let result =
        match tokio::time::timeout(timeout, handler(request).instrument(span.clone())).await {
            Ok(result) => result,
            Err(_) => Err(Status::deadline_exceeded(format!(
                "{rpc} took longer than {} ms",
                timeout.as_millis()
            ))),
        };
    let elapsed = started.elapsed();
    let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
    metrics::counter!("consentry_requests_total", "rpc" => rpc, "code" => code_name(code))
        .increment(1);
    metrics::histogram!("consentry_request_duration_seconds", "rpc" => rpc)
        .record(elapsed.as_secs_f64());
    let _entered = span.enter();
    let ms = elapsed.as_secs_f64() * 1e3;
    match &result {
        Ok(_) => tracing::debug!(code = code_name(code), duration_ms = ms, "request"),
        Err(s)
            if matches!(
                s.code(),
                Code::Internal | Code::Unavailable | Code::DeadlineExceeded | Code::Unknown
            ) =>
        {
            tracing::warn!(
                code = code_name(code),
                duration_ms = ms,
                message = s.message(),
                "request failed"
            )
        }
        Err(s) => tracing::info!(
            code = code_name(code),
            duration_ms = ms,
            message = s.message(),
            "request refused"
        ),
    }
    let value = MetadataValue::try_from(id.as_str()).ok();
    match result {
        Ok(mut response) => {
            if let Some(v) = value {
                response.metadata_mut().insert(REQUEST_ID_HEADER, v);
            }
            Ok(response)
        }
        Err(mut status) => {
            if let Some(v) = value {
                status.metadata_mut().insert(REQUEST_ID_HEADER, v);
            }
            Err(status)
        }
    }
}
