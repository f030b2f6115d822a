//! The transport around every call, as one tower layer in front of all services: load shedding
//! (beyond the concurrency limit a call is refused at once with `RESOURCE_EXHAUSTED`); a request
//! id (the caller's `x-request-id`, or a new one); a span that costs nothing unless `debug` is
//! enabled; a deadline that is the lower of the caller's `grpc-timeout` and the server's own
//! limit; metrics recorded through handles registered once (no label is built and no registry is
//! searched per call); and the request log.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue};
use metrics::{Counter, Histogram};
use prost::Message;
use tonic::body::Body;
use tonic::{Code, Status};

use super::status::{ServiceError, transport};
use tower::{Layer, Service};
use tracing::Instrument;

/// The metadata header carrying a request id (taken from the caller, or made up).
pub const REQUEST_ID_HEADER: &str = "x-request-id";
const REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);

/// The name of a gRPC status code, as metrics and logs spell it.
pub fn code_name(code: Code) -> &'static str {
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

/// The caller's `grpc-timeout` (1 to 8 digits and a unit), if it sent a valid one.
pub fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("grpc-timeout")?.as_bytes();
    let (&unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// One RPC's metric handles: a request counter per status code (registered on first use) and
/// a duration histogram.
struct Rpc {
    name: String,
    /// Whether calls may be shed under load (health checks never are: a probe must learn how
    /// the server is, and an overloaded server is not a dead one).
    sheddable: bool,
    codes: [OnceLock<Counter>; 17],
    seconds: Histogram,
}

impl Rpc {
    fn new(name: String, sheddable: bool) -> Self {
        let seconds =
            metrics::histogram!("consentry_request_duration_seconds", "rpc" => name.clone());
        Self {
            name,
            sheddable,
            codes: Default::default(),
            seconds,
        }
    }

    fn count(&self, code: Code) {
        let slot = usize::try_from(i32::from(code)).unwrap_or(0) % self.codes.len();
        self.codes[slot]
            .get_or_init(|| {
                metrics::counter!(
                    "consentry_requests_total",
                    "rpc" => self.name.clone(),
                    "code" => code_name(code)
                )
            })
            .increment(1);
    }
}

/// What every call shares: the RPC table, the server's deadline, request id numbering.
struct Shared {
    /// Calls in flight, and how many may be.
    in_flight: AtomicUsize,
    max_in_flight: usize,
    rpcs: HashMap<String, Arc<Rpc>>,
    /// Paths that are no RPC of this server share one label, so they cannot grow the metrics.
    unknown: Arc<Rpc>,
    limit: Duration,
    id_prefix: Vec<u8>,
    next_id: AtomicU64,
}

impl Shared {
    /// Takes a place among the calls in flight, if fewer than the limit are taken (or the call
    /// is never shed); a call that took one gives it back with [`Shared::leave`].
    fn enter(&self, sheddable: bool) -> bool {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before < self.max_in_flight || !sheddable {
            return true;
        }
        self.leave();
        false
    }

    fn leave(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
    }

    fn rpc(&self, path: &str) -> &Arc<Rpc> {
        self.rpcs.get(path).unwrap_or(&self.unknown)
    }

    /// A new request id: `cs-<pid>-<n>`, built without formatting machinery.
    fn new_id(&self) -> HeaderValue {
        let mut buf = [0u8; 64];
        let prefix = self.id_prefix.len().min(buf.len() - 20);
        buf[..prefix].copy_from_slice(&self.id_prefix[..prefix]);
        let mut n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let len = prefix + digits.len() - i;
        buf[prefix..len].copy_from_slice(&digits[i..]);
        HeaderValue::from_bytes(&buf[..len]).unwrap_or_else(|_| HeaderValue::from_static("cs"))
    }
}

/// A caller's request id is used if it is short printable ASCII.
fn valid_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= 128 && bytes.iter().all(u8::is_ascii_graphic)
}

/// The layer: wraps every service of the server.
#[derive(Clone)]
pub struct ObserveLayer {
    shared: Arc<Shared>,
}

/// The `rpc` label of a method: its name for consentry's and gRPC's own services, and a name of
/// the protocol for another's (`ext_authz.check` for Envoy's `Check`), so that dashboards tell
/// the mesh's calls from CheckAccess.
fn rpc_label(package: &str, method: &str) -> String {
    match package {
        "envoy.service.auth.v3" => format!("ext_authz.{}", method.to_ascii_lowercase()),
        _ => method.to_owned(),
    }
}

impl ObserveLayer {
    /// A layer that lets at most `max_in_flight` calls run at once, whose deadline is at most
    /// `limit`, naming in its metrics the methods of every service in `descriptor_sets` (encoded
    /// `FileDescriptorSet`s).
    pub fn new(max_in_flight: usize, limit: Duration, descriptor_sets: &[&[u8]]) -> Self {
        let mut rpcs = HashMap::new();
        for encoded in descriptor_sets {
            let Ok(set) = prost_types::FileDescriptorSet::decode(*encoded) else {
                continue;
            };
            for file in &set.file {
                for service in &file.service {
                    for method in &service.method {
                        let path =
                            format!("/{}.{}/{}", file.package(), service.name(), method.name());
                        let sheddable = file.package() != "grpc.health.v1";
                        let rpc = Rpc::new(rpc_label(file.package(), method.name()), sheddable);
                        rpcs.insert(path, Arc::new(rpc));
                    }
                }
            }
        }
        Self {
            shared: Arc::new(Shared {
                in_flight: AtomicUsize::new(0),
                max_in_flight,
                rpcs,
                unknown: Arc::new(Rpc::new("unknown".to_owned(), true)),
                limit,
                id_prefix: format!("cs-{:x}-", std::process::id()).into_bytes(),
                next_id: AtomicU64::new(1),
            }),
        }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`ObserveLayer`] makes.
#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    shared: Arc<Shared>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> Service<http::Request<B>> for Observe<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Error: Into<BoxError>,
{
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let shared = &self.shared;
        let rpc = shared.rpc(request.uri().path()).clone();
        let entered = shared.enter(rpc.sheddable);
        // The caller's id, else one made up when something may show it (a debug log now, or a
        // refusal later).
        let id = match request.headers().get(&REQUEST_ID) {
            Some(id) if valid_id(id) => Some((id.clone(), true)),
            _ if tracing::enabled!(tracing::Level::DEBUG) => Some((shared.new_id(), false)),
            _ => None,
        };
        let (limit, by_caller) = match grpc_timeout(request.headers()) {
            Some(d) if d < shared.limit => (d, true),
            _ => (shared.limit, false),
        };
        // Taken before anything after this layer starts its own clock, and a millisecond early
        // for the caller's: its answer should reach the caller before the caller gives up (and
        // before tonic's own timer on the caller's deadline, which would say CANCELLED).
        let early = if by_caller {
            limit.saturating_sub(Duration::from_millis(1))
        } else {
            limit
        };
        let deadline = tokio::time::Instant::from_std(
            started
                .checked_add(early)
                .unwrap_or_else(|| started + Duration::from_secs(86_400 * 365)),
        );
        let span = tracing::debug_span!(
            "rpc",
            rpc = rpc.name.as_str(),
            request_id = %id.as_ref().and_then(|(id, _)| id.to_str().ok()).unwrap_or("")
        );
        // Shed: refused before the call is made at all.
        let inner = entered
            .then(|| tokio::time::timeout_at(deadline, self.inner.call(request).instrument(span)));
        ObserveFuture {
            inner: OptionFuture { inner },
            call: Some(Call {
                entered,
                shared: shared.clone(),
                rpc,
                id,
                started,
                limit,
                by_caller,
            }),
        }
    }
}

pin_project_lite::pin_project! {
    /// A future that may not have been started (a shed call): `None` when it was not.
    struct OptionFuture<F> {
        #[pin]
        inner: Option<F>,
    }
}

impl<F: Future> Future for OptionFuture<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.as_pin_mut() {
            Some(inner) => inner.poll(cx).map(Some),
            None => Poll::Ready(None),
        }
    }
}

/// What a call's answer is recorded with. While it lives, the call holds its place among those
/// in flight (given back when the call ends or is dropped).
struct Call {
    /// Whether the call took a place (`false`: it was shed).
    entered: bool,
    shared: Arc<Shared>,
    rpc: Arc<Rpc>,
    /// The request id, and whether the caller sent it.
    id: Option<(HeaderValue, bool)>,
    started: Instant,
    limit: Duration,
    by_caller: bool,
}

impl Drop for Call {
    fn drop(&mut self) {
        if self.entered {
            self.shared.leave();
        }
    }
}

pin_project_lite::pin_project! {
    /// The answer of an observed call: the inner answer, or `DEADLINE_EXCEEDED` once the
    /// deadline passes; recorded and given its request id on the way out.
    pub struct ObserveFuture<F> {
        #[pin]
        inner: OptionFuture<tokio::time::Timeout<tracing::instrument::Instrumented<F>>>,
        call: Option<Call>,
    }
}

impl<F, E> Future for ObserveFuture<F>
where
    F: Future<Output = Result<http::Response<Body>, E>>,
    E: Into<BoxError>,
{
    type Output = Result<http::Response<Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = std::task::ready!(this.inner.poll(cx));
        let Some(mut call) = this.call.take() else {
            return Poll::Ready(Err("an observed call was polled after it finished".into()));
        };
        let mut response = match outcome {
            None => Status::from(ServiceError::Overloaded {
                limit: call.shared.max_in_flight,
            })
            .into_http(),
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(e))) => transport(e.into()).into_http(),
            Some(Err(_)) => Status::from(ServiceError::Deadline {
                by_caller: call.by_caller,
                limit: call.limit,
            })
            .into_http(),
        };
        let code = code_of(&response);
        // An id is made up now if a refusal or failure needs one for its log line.
        let (id, echo) = match call.id.take() {
            Some((id, from_caller)) => (Some(id), from_caller),
            None if code != Code::Ok => (Some(call.shared.new_id()), false),
            None => (None, false),
        };
        finish(&call, code, id.as_ref(), &response);
        // The id goes back when the caller sent it, and with every answer that is not OK (the
        // ones that are logged); never indexed, since each one is new.
        if let Some(mut id) = id.filter(|_| echo || code != Code::Ok) {
            id.set_sensitive(true);
            response.headers_mut().insert(REQUEST_ID, id);
        }
        Poll::Ready(Ok(response))
    }
}

/// The status code of an answer: its `Status` for an error, else its `grpc-status` header,
/// else OK (a successful unary answer carries its status in the trailers).
fn code_of(response: &http::Response<Body>) -> Code {
    if let Some(status) = response.extensions().get::<Status>() {
        return status.code();
    }
    response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map_or(Code::Ok, Code::from_i32)
}

/// Records the call's metrics and logs it: successes at `debug`, refusals at `info`, failures
/// at `warn`.
fn finish(call: &Call, code: Code, id: Option<&HeaderValue>, response: &http::Response<Body>) {
    let status = response.extensions().get::<Status>();
    record(call, code, id, status.map_or("", Status::message));
}

/// [`finish`] of a call whose answer's code and message are known.
fn record(call: &Call, code: Code, id: Option<&HeaderValue>, message: &str) {
    let (rpc, elapsed) = (&call.rpc, call.started.elapsed());
    rpc.count(code);
    rpc.seconds.record(elapsed.as_secs_f64());
    if code == Code::Ok && !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let request_id = id.and_then(|id| id.to_str().ok()).unwrap_or("");
    let ms = elapsed.as_secs_f64() * 1e3;
    let (name, code_str) = (rpc.name.as_str(), code_name(code));
    match code {
        Code::Ok => tracing::debug!(
            rpc = name,
            request_id = %request_id,
            code = code_str,
            duration_ms = ms,
            "request"
        ),
        Code::Internal | Code::Unavailable | Code::DeadlineExceeded | Code::Unknown => {
            tracing::warn!(rpc = name, request_id = %request_id, code = code_str, duration_ms = ms, message, "request failed")
        }
        _ => {
            tracing::info!(rpc = name, request_id = %request_id, code = code_str, duration_ms = ms, message, "request refused")
        }
    }
}

/// What a listener other than gRPC's (AuthZEN over HTTP) shares with [`ObserveLayer`]: the same
/// limit of calls in flight, the same server deadline and request ids, and the same metrics and
/// request log, under its own `rpc` names.
#[derive(Clone)]
pub struct Admission {
    shared: Arc<Shared>,
    rpcs: Arc<HashMap<&'static str, Arc<Rpc>>>,
}

impl ObserveLayer {
    /// The admission of calls named `rpcs` (their `rpc` labels), counted with this layer's.
    pub fn admission(&self, rpcs: &[&'static str]) -> Admission {
        let rpcs = rpcs
            .iter()
            .map(|name| (*name, Arc::new(Rpc::new((*name).to_owned(), true))))
            .collect();
        Admission {
            shared: self.shared.clone(),
            rpcs: Arc::new(rpcs),
        }
    }
}

impl Admission {
    /// A call of `rpc` with the caller's request id, if valid: it holds a place among the calls
    /// in flight until it is finished or dropped; `shed` when none was free.
    pub fn enter(&self, rpc: &str, given_id: Option<&HeaderValue>) -> AdmittedCall {
        let rpc = self.rpcs.get(rpc).unwrap_or(&self.shared.unknown).clone();
        let entered = self.shared.enter(rpc.sheddable);
        let id = match given_id {
            Some(id) if valid_id(id) => (id.clone(), true),
            _ => (self.shared.new_id(), false),
        };
        AdmittedCall {
            call: Call {
                entered,
                shared: self.shared.clone(),
                rpc,
                id: Some(id),
                started: Instant::now(),
                limit: self.shared.limit,
                by_caller: false,
            },
        }
    }

    /// The server's deadline for a call (`--request-timeout-ms`).
    pub fn limit(&self) -> Duration {
        self.shared.limit
    }
}

/// A call admitted by [`Admission::enter`].
pub struct AdmittedCall {
    call: Call,
}

impl AdmittedCall {
    /// Whether it was shed: no place among the calls in flight was free.
    pub fn shed(&self) -> bool {
        !self.call.entered
    }

    /// The error of a shed call.
    pub fn overloaded(&self) -> ServiceError {
        ServiceError::Overloaded {
            limit: self.call.shared.max_in_flight,
        }
    }

    /// The request id: the caller's, or one made up for it.
    pub fn id(&self) -> Option<&HeaderValue> {
        self.call.id.as_ref().map(|(id, _)| id)
    }

    /// Records the answer's code and message (metrics and the request log) and gives the place
    /// back.
    pub fn finish(self, code: Code, message: &str) {
        record(&self.call, code, self.id(), message);
    }
}

/// `consentry_decisions_total{reason}`: one counter handle per reason, made once, so that a
/// decision counts without a registry lookup.
pub struct Decisions([metrics::Counter; 12]);

impl Decisions {
    /// The handles of every reason, in [`Reason::ALL`](crate::domain::Reason::ALL) order.
    pub fn new() -> Self {
        Self(
            crate::domain::Reason::ALL
                .map(|r| metrics::counter!("consentry_decisions_total", "reason" => r.as_str())),
        )
    }

    /// Counts one decision for `reason`.
    pub fn record(&self, reason: crate::domain::Reason) {
        if let Some(i) = crate::domain::Reason::ALL.iter().position(|r| *r == reason) {
            self.0[i].increment(1);
        }
    }
}

impl Default for Decisions {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(timeout: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("grpc-timeout", HeaderValue::from_str(timeout).unwrap());
        h
    }

    #[test]
    fn grpc_timeouts_parse_by_the_spec_and_nothing_else() {
        let t = |s: &str| grpc_timeout(&headers(s));
        assert_eq!(t("300m"), Some(Duration::from_millis(300)));
        assert_eq!(t("2S"), Some(Duration::from_secs(2)));
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("5M"), Some(Duration::from_secs(300)));
        assert_eq!(t("7u"), Some(Duration::from_micros(7)));
        assert_eq!(t("9n"), Some(Duration::from_nanos(9)));
        assert_eq!(t("99999999m"), Some(Duration::from_millis(99_999_999)));
        for bad in [
            "",
            "m",
            "100",
            "123456789m",
            "+5S",
            "-5S",
            "5s",
            "5 S",
            "5x",
        ] {
            assert_eq!(t(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&HeaderMap::new()), None);
    }

    #[test]
    fn shedding_gives_places_back_and_spares_health_checks() {
        let layer = ObserveLayer::new(1, Duration::from_secs(1), &[]);
        let shared = &layer.shared;
        assert!(shared.enter(true), "the first call fits");
        assert!(!shared.enter(true), "the second is shed");
        assert!(shared.enter(false), "a health check never is");
        shared.leave();
        shared.leave();
        assert!(shared.enter(true), "a place is given back");
        shared.leave();
        assert_eq!(shared.in_flight.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn request_ids_are_numbered_and_callers_ids_are_checked() {
        let layer = ObserveLayer::new(1, Duration::from_secs(1), &[]);
        let a = layer.shared.new_id();
        let b = layer.shared.new_id();
        assert_ne!(a, b);
        let prefix = format!("cs-{:x}-", std::process::id());
        assert!(a.to_str().unwrap().starts_with(&prefix), "{a:?}");
        assert!(valid_id(&HeaderValue::from_static("abc-123")));
        assert!(!valid_id(&HeaderValue::from_static("")));
        assert!(!valid_id(&HeaderValue::from_static("a b")));
        assert!(!valid_id(&HeaderValue::from_str(&"x".repeat(129)).unwrap()));
    }
}
