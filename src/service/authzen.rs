//! The OpenID AuthZEN Authorization API 1.0 over HTTP/1.1 and HTTP/2 (h2c) on `--http-listen`
//! (docs/rules.md §10.5): evaluation, evaluations, action and resource search, and the PDP
//! metadata. Requests are read by `convert::authzen` and decided by the same reader and engine
//! as CheckAccess; they share the gRPC listener's limit of calls in flight, deadline, request
//! ids, metrics and request log ([`Admission`]).
//!
//! Every answer is JSON. A deny is 200 with `"decision": false`; an error is its HTTP status with
//! `{"error": {"status", "message"}}` (the message naming the member at fault), never a 500 for
//! bad input: 400, 401 (with `WWW-Authenticate`), 403, 404 for an unknown path, 405, 413 over
//! `--max-message-bytes`, 415, 429 when shed, 503 when the store is unreachable past the bound,
//! 504 past the deadline. `X-Request-ID` is echoed on every answer (one is made when none came).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::Code;

use super::auth::Authenticator;
use super::observe::{Admission, AdmittedCall, Decisions};
use super::paging::{SharedSecret, next_page_token};
use super::status::{ServiceError, code_and_message, http_status};
use crate::cache::{At, Reader};
use crate::convert::authzen::{self as az, Evaluations};
use crate::convert::{Limits, Parsing};
use crate::domain::search::{action_search, resource_search, tree_order};
use crate::domain::{Capability, ValidationError};
use crate::store::Page;

/// The request header (and answer header) that identifies a request.
const REQUEST_ID: &str = "x-request-id";
/// The well-known path of the PDP metadata (before the issuer's own path, if any).
pub const WELL_KNOWN: &str = "/.well-known/authzen-configuration";

/// The `POST` endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Evaluation,
    Evaluations,
    SearchAction,
    SearchResource,
}

impl Endpoint {
    const ALL: [Endpoint; 4] = [
        Endpoint::Evaluation,
        Endpoint::Evaluations,
        Endpoint::SearchAction,
        Endpoint::SearchResource,
    ];

    /// Its path, under the identifier's.
    fn path(self) -> &'static str {
        match self {
            Endpoint::Evaluation => "/access/v1/evaluation",
            Endpoint::Evaluations => "/access/v1/evaluations",
            Endpoint::SearchAction => "/access/v1/search/action",
            Endpoint::SearchResource => "/access/v1/search/resource",
        }
    }

    /// Its `rpc` label.
    fn rpc(self) -> &'static str {
        match self {
            Endpoint::Evaluation => "authzen.evaluation",
            Endpoint::Evaluations => "authzen.evaluations",
            Endpoint::SearchAction => "authzen.search.action",
            Endpoint::SearchResource => "authzen.search.resource",
        }
    }
}

/// The `rpc` label of the metadata.
const METADATA_RPC: &str = "authzen.metadata";

/// The `rpc` labels of the AuthZEN listener, for [`crate::service::ObserveLayer::admission`].
pub fn rpcs() -> [&'static str; 5] {
    let [a, b, c, d] = Endpoint::ALL.map(Endpoint::rpc);
    [a, b, c, d, METADATA_RPC]
}

/// The AuthZEN API over the cache's reader.
pub struct AuthzenApi {
    reader: Reader,
    auth: Authenticator,
    limits: Limits,
    page_secret: SharedSecret,
    /// The PDP identifier (`--authzen-issuer-url`), without a trailing `/`.
    issuer: Option<String>,
    max_body: usize,
    admission: Admission,
    decisions: Decisions,
}

impl AuthzenApi {
    /// The API, reading bodies up to `max_body` bytes and naming `issuer` in its metadata.
    pub fn new(
        reader: Reader,
        auth: Authenticator,
        limits: Limits,
        page_secret: SharedSecret,
        issuer: Option<String>,
        max_body: usize,
        admission: Admission,
    ) -> Self {
        Self {
            reader,
            auth,
            limits,
            page_secret,
            issuer: issuer.map(|i| i.trim_end_matches('/').to_owned()),
            max_body,
            admission,
            decisions: Decisions::new(),
        }
    }

    /// Answers one HTTP request.
    pub async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        // The endpoints answer at their paths and under the identifier's own path, which the
        // metadata names (an ingress may pass that path on, or strip it).
        let full = request.uri().path();
        let path = self
            .issuer_path()
            .and_then(|prefix| full.strip_prefix(prefix))
            .filter(|rest| rest.starts_with("/access/"))
            .unwrap_or(full)
            .to_owned();
        let endpoint = Endpoint::ALL.into_iter().find(|e| e.path() == path);
        let metadata = endpoint.is_none() && self.metadata_path().as_deref() == Some(path.as_str());
        let rpc = match endpoint {
            Some(endpoint) => endpoint.rpc(),
            None if metadata => METADATA_RPC,
            None => "unknown",
        };
        let call = self.admission.enter(rpc, request.headers().get(REQUEST_ID));
        // A HEAD answer has the headers of a GET and no body.
        let head = request.method() == Method::HEAD;
        let outcome = if call.shed() {
            Err(Failure::Service(call.overloaded()))
        } else {
            let limit = self.admission.limit();
            match tokio::time::timeout(limit, self.route(endpoint, metadata, request)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Failure::Service(ServiceError::Deadline {
                    by_caller: false,
                    limit,
                })),
            }
        };
        respond(call, outcome, head)
    }

    async fn route(
        &self,
        endpoint: Option<Endpoint>,
        metadata: bool,
        request: Request<Incoming>,
    ) -> Result<Value, Failure> {
        if metadata {
            if request.method() != Method::GET && request.method() != Method::HEAD {
                return Err(Failure::Method("GET, HEAD"));
            }
            return self.metadata();
        }
        let Some(endpoint) = endpoint else {
            return Err(Failure::NotFound);
        };
        if request.method() != Method::POST {
            return Err(Failure::Method("POST"));
        }
        let at = self.reader.at().map_err(ServiceError::from)?;
        let header = request.headers().get(http::header::AUTHORIZATION);
        let caller = self
            .auth
            .caller_by(header.map(HeaderValue::as_bytes), at)
            .await?;
        caller
            .require(Capability::Query)
            .map_err(ServiceError::from)?;
        let body = self.body(request).await?;
        let secret = self.page_secret.get().map_err(ServiceError::from)?;
        let cx = Parsing {
            caller: &caller,
            acting_user: None,
            limits: self.limits,
            page_secret: secret,
        };
        match endpoint {
            Endpoint::Evaluation => self.decide(at, az::evaluation(&cx, &body)?).await,
            Endpoint::Evaluations => self.evaluations(&cx, at, &body).await,
            Endpoint::SearchAction => self.search_action(&cx, at, &body).await,
            Endpoint::SearchResource => self.search_resource(&cx, at, &body).await,
        }
    }

    /// The request's JSON body: at most `max_body` bytes (413), JSON (415 for another content
    /// type, 400 when it does not parse).
    async fn body(&self, request: Request<Incoming>) -> Result<Value, Failure> {
        if let Some(kind) = request.headers().get(CONTENT_TYPE) {
            let kind = kind.to_str().unwrap_or_default();
            let essence = kind.split(';').next().unwrap_or_default().trim();
            if !essence.eq_ignore_ascii_case("application/json") {
                return Err(Failure::MediaType);
            }
        }
        let declared = request
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return Err(Failure::TooLarge(self.max_body));
        }
        let bytes = Limited::new(request.into_body(), self.max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    Failure::TooLarge(self.max_body)
                } else {
                    Failure::Service(ServiceError::from(ValidationError::new(
                        "body",
                        "was not received whole",
                    )))
                }
            })?
            .to_bytes();
        // A parsed value takes many times its bytes (each `{}` of `[{},{},…]` a map): the
        // values are counted first, so that one body never holds more than a bounded number.
        let max_values = VALUES_PER_ITEM * (self.limits.max_batch + 1) + 1024;
        if !values_within(&bytes, max_values) {
            return Err(Failure::TooComplex(max_values));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Service(ServiceError::from(ValidationError::new(
                "body",
                format_args!("is not JSON: {e}"),
            )))
        })
    }

    /// One evaluation's answer.
    async fn decide(&self, at: At, evaluation: az::Evaluation) -> Result<Value, Failure> {
        let (decision, revision) = self
            .reader
            .check(at, evaluation.wanted, &evaluation.query)
            .await
            .map_err(ServiceError::from)?;
        self.decisions.record(decision.reason);
        Ok(az::decision_to_json(&decision, revision))
    }

    async fn evaluations(&self, cx: &Parsing<'_>, at: At, body: &Value) -> Result<Value, Failure> {
        let (items, semantic) = match az::evaluations(cx, body)? {
            Evaluations::Single(evaluation) => return self.decide(at, evaluation).await,
            Evaluations::Many { items, semantic } => (items, semantic),
        };
        // Every item at one revision, as freshly as the strictest item asks; an item a rule
        // refused keeps its place, as its error.
        let mut wanted = crate::cache::Wanted::Cached;
        let mut queries = Vec::with_capacity(items.len());
        let mut refused = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Ok(evaluation) => {
                    wanted = wanted.stricter(evaluation.wanted);
                    queries.push(evaluation.query);
                    refused.push(None);
                }
                Err(e) => refused.push(Some(e)),
            }
        }
        let (decisions, revision) = self
            .reader
            .check_all(at, wanted, &queries)
            .await
            .map_err(ServiceError::from)?;
        let mut decided = decisions.into_iter();
        let mut answers = Vec::with_capacity(refused.len());
        for item in refused {
            match item {
                None => {
                    let Some(decision) = decided.next() else {
                        break;
                    };
                    self.decisions.record(decision.reason);
                    answers.push(az::decision_to_json(&decision, revision));
                }
                Some(e) => {
                    let (code, message) = code_and_message(e);
                    answers.push(az::item_error_to_json(http_status(code), &message));
                }
            }
        }
        Ok(json!({"evaluations": az::cut(answers, semantic)}))
    }

    async fn search_action(
        &self,
        cx: &Parsing<'_>,
        at: At,
        body: &Value,
    ) -> Result<Value, Failure> {
        let search = az::action_search(cx, body)?;
        let (outcome, revision) = self
            .reader
            .evaluate(at, search.wanted, &search.query, action_search)
            .await
            .map_err(ServiceError::from)?;
        Ok(az::actions_to_json(outcome, revision))
    }

    async fn search_resource(
        &self,
        cx: &Parsing<'_>,
        at: At,
        body: &Value,
    ) -> Result<Value, Failure> {
        let search = az::resource_search(cx, cx.page_secret, body)?;
        let permission = search.permission;
        let (outcome, revision) = self
            .reader
            .evaluate(at, search.wanted, &search.query, |q, app, users| {
                resource_search(q, permission, app, users)
            })
            .await
            .map_err(ServiceError::from)?;
        let (paths, refused) = match outcome {
            Ok(paths) => (paths, None),
            Err(decision) => (Vec::new(), Some(decision)),
        };
        let total = paths.len();
        let start = match &search.page.after {
            None => 0,
            Some(position) => paths
                .iter()
                .position(|p| tree_order(p, &position.after).is_gt())
                .unwrap_or(total),
        };
        let limit = search.page.limit as usize;
        let items: Vec<_> = paths.into_iter().skip(start).take(limit).collect();
        let more = start + items.len() < total;
        let next = match (more, items.last()) {
            (true, Some(last)) => Some(az::SearchPosition {
                after: last.clone(),
                limit: search.page.limit,
            }),
            _ => None,
        };
        let page = Page { items, next };
        let token = next_page_token(cx.page_secret, &page, &search.listing);
        Ok(az::resources_to_json(
            &page.items,
            token,
            total,
            refused.as_ref(),
            revision,
        ))
    }

    /// The identifier's own path (`/tenant1` of `https://pdp.example.com/tenant1`), if any.
    fn issuer_path(&self) -> Option<&str> {
        let issuer = self.issuer.as_deref()?;
        let rest = issuer.split_once("://").map_or(issuer, |(_, r)| r);
        rest.find('/').map(|i| &rest[i..]).filter(|p| !p.is_empty())
    }

    /// The path the metadata is served at: the well-known path, then the issuer's own path.
    fn metadata_path(&self) -> Option<String> {
        self.issuer.as_ref()?;
        Some(format!("{WELL_KNOWN}{}", self.issuer_path().unwrap_or("")))
    }

    /// The PDP metadata, built from `--authzen-issuer-url` (never from the request's `Host`).
    fn metadata(&self) -> Result<Value, Failure> {
        let issuer = self.issuer.as_deref().ok_or(Failure::NotFound)?;
        let url = |path: &str| format!("{issuer}{path}");
        Ok(json!({
            "policy_decision_point": issuer,
            "access_evaluation_endpoint": url(Endpoint::Evaluation.path()),
            "access_evaluations_endpoint": url(Endpoint::Evaluations.path()),
            "search_action_endpoint": url(Endpoint::SearchAction.path()),
            "search_resource_endpoint": url(Endpoint::SearchResource.path()),
        }))
    }
}

/// The JSON values a body may hold per evaluation of `--max-batch` (and for one more), beyond a
/// fixed allowance: room for members consentry does not use.
const VALUES_PER_ITEM: usize = 64;

/// Whether the JSON text `bytes` holds at most `max` values, counted by what opens or separates
/// them (`{`, `[`, `,`, `:`) outside strings. Only counts: a body that is not JSON is refused
/// by the parser after.
fn values_within(bytes: &[u8], max: usize) -> bool {
    let (mut in_string, mut escaped, mut count) = (false, false, 0usize);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' | b',' | b':' => {
                count += 1;
                if count > max {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// Why a request was not answered with a body of its own.
enum Failure {
    /// An error of the service, answered with its code's HTTP status.
    Service(ServiceError),
    /// No such endpoint (404).
    NotFound,
    /// Another method than the endpoint's (405, with `Allow`).
    Method(&'static str),
    /// A body over the limit (413).
    TooLarge(usize),
    /// A body that is not JSON by its content type (415).
    MediaType,
    /// A body of more JSON values than the server parses (413).
    TooComplex(usize),
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        Failure::Service(e)
    }
}

/// The answer to a call, recorded with its code.
fn respond(
    call: AdmittedCall,
    outcome: Result<Value, Failure>,
    head: bool,
) -> Response<Full<Bytes>> {
    let (status, body, code, message, allow) = match outcome {
        Ok(body) => (200, body, Code::Ok, String::new(), None),
        Err(failure) => {
            let (status, code, message, allow) = match failure {
                Failure::Service(e) => {
                    let (code, message) = code_and_message(e);
                    (http_status(code), code, message, None)
                }
                Failure::NotFound => (
                    404,
                    Code::NotFound,
                    "no such endpoint: POST /access/v1/evaluation, /access/v1/evaluations, /access/v1/search/action or /access/v1/search/resource".to_owned(),
                    None,
                ),
                Failure::Method(allow) => (
                    405,
                    Code::InvalidArgument,
                    format!("this endpoint takes {allow}"),
                    Some(allow),
                ),
                Failure::TooLarge(max) => (
                    413,
                    Code::ResourceExhausted,
                    format!("the body is larger than the {max} bytes this server takes (--max-message-bytes)"),
                    None,
                ),
                Failure::TooComplex(max) => (
                    413,
                    Code::ResourceExhausted,
                    format!("the body holds more than {max} JSON values, more than this server parses (64 per evaluation of --max-batch)"),
                    None,
                ),
                Failure::MediaType => (
                    415,
                    Code::InvalidArgument,
                    "the body must be application/json".to_owned(),
                    None,
                ),
            };
            let body = json!({"error": {"status": status, "message": message}});
            (status, body, code, message, allow)
        }
    };
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(id) = call.id() {
        headers.insert(REQUEST_ID, id.clone());
    }
    if status == 401 {
        headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(allow) = allow {
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    call.finish(code, &message);
    response
}

/// How long a client may take to send a request's head before its connection is closed (and,
/// before that, the first bytes that tell HTTP/1.1 from HTTP/2).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The most connections the listener holds at once; further ones wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 1024;

/// The pause after a failed accept (out of file descriptors, say), so that the loop never spins.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// The start of every HTTP/2 connection (its preface), told apart from HTTP/1.1 by its first
/// bytes.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves `api` on `listener` (HTTP/1.1 and h2c) until `stop` turns true: then it stops
/// accepting, each connection finishes the request in progress and closes, and those still open
/// after `grace` are dropped.
pub fn serve(
    listener: TcpListener,
    api: Arc<AuthzenApi>,
    mut stop: watch::Receiver<bool>,
    grace: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let permit = tokio::select! {
                permit = slots.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = stop.changed() => break,
            };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, peer)) => {
                        let _ = socket.set_nodelay(true);
                        let connection = connection(socket, peer, api.clone(), stop.clone());
                        connections.spawn(async move {
                            connection.await;
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "AuthZEN listener cannot accept; retrying");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                _ = stop.changed() => break,
            }
            while connections.try_join_next().is_some() {}
        }
        drop(listener);
        let drained = async { while connections.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drained).await.is_err() {
            connections.abort_all();
        }
    })
}

/// Whether the client sent enough to tell its protocol: a byte that is not HTTP/2's preface, or
/// the whole preface. A client that sends nothing, or part of the preface, is not waited for
/// past [`HEADER_READ_TIMEOUT`].
async fn protocol_sent(socket: &tokio::net::TcpStream) -> bool {
    let mut start = [0u8; 24];
    loop {
        match socket.peek(&mut start).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if n >= H2_PREFACE.len() || !H2_PREFACE.starts_with(&start[..n]) => return true,
            // Part of the preface: wait for the rest (peek does not wait for more).
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
}

/// One connection, until the client closes it or `stop` turns true (then the request in
/// progress is answered first).
async fn connection(
    socket: tokio::net::TcpStream,
    peer: SocketAddr,
    api: Arc<AuthzenApi>,
    mut stop: watch::Receiver<bool>,
) {
    let sent = tokio::time::timeout(HEADER_READ_TIMEOUT, protocol_sent(&socket)).await;
    if !matches!(sent, Ok(true)) {
        return;
    }
    let service = service_fn(move |request| {
        let api = api.clone();
        async move { Ok::<_, Infallible>(api.handle(request).await) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(std::time::Duration::from_secs(30)))
        .keep_alive_timeout(std::time::Duration::from_secs(10));
    let connection = builder.serve_connection(TokioIo::new(socket), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "AuthZEN connection ended");
            }
        }
        _ = stop.changed() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}
