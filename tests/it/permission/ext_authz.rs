//! Envoy's external authorization end to end (docs/rules.md §10.4), asked by the generated
//! client of the `envoy-types` crate (built from Envoy's own protos, not consentry's subset):
//! every source of tenant, app and user in its order of trust, the method table and the route's
//! prefix, the same decision as CheckAccess, the client's `x-consentry-*` headers never reaching
//! the upstream as theirs, every bad input a 403 naming its field, the ext_authz client's own
//! key and bounds, the service registered only when configured, and an outage (the store cut
//! by a proxy past the staleness bound) a 503 error response rather than a deny.

use std::collections::HashMap;

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValueOption, Metadata, header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use tonic::Code;

use super::*;
use crate::context_tokens::{key_file, new_key};
use crate::support::calls::Who;
use crate::support::db::{backend_tests, postgres_tests};
use crate::support::dir::TempDir;
use crate::support::proxy::Proxy;
use crate::support::server::eventually;

backend_tests!(
    requests_are_placed_from_their_sources_and_decided_as_check_access_decides,
    the_most_trusted_source_gives_each_part,
    a_client_can_never_smuggle_a_consentry_header_to_the_upstream,
    what_cannot_be_placed_is_refused_with_a_403_naming_the_field,
    the_ext_authz_client_needs_its_key_and_its_tenant_bounds,
    the_service_is_served_and_reflected_only_when_configured,
    an_allowed_request_carries_a_context_token_when_configured,
);

postgres_tests!(an_outage_is_a_503_error_response_and_never_a_deny);

/// The settings the tests place requests by: every source configured.
const SETTINGS: &str = r#"
[claims]
namespace = "envoy.filters.http.jwt_authn"
payload = "jwt_payload"
tenant_id = "tid"
user_id = "sub"

[principals]
"spiffe://cluster.local/ns/shop/sa/crm" = "crm"

[headers]
mesh_strips_client_copies = true
tenant_id = "x-tenant-id"
app_id = "x-app-id"
user_id = "x-user-id"
"#;

/// The mesh's ext_authz client and the server it asks.
struct Mesh {
    server: TestServer,
    api: Api,
    authz: AuthorizationClient<Channel>,
    key: String,
    _dir: TempDir,
}

impl Mesh {
    /// A server on `db` with ext_authz configured by `settings` (TOML), the `acme` world, and
    /// a client `mesh` that may query `acme`.
    async fn start(db: &TestDb, settings: &str) -> Mesh {
        Self::start_with(db, settings, |_, _| {}).await
    }

    async fn start_with(
        db: &TestDb,
        settings: &str,
        adjust: impl FnOnce(&mut consentry::config::ServeConfig, &TempDir),
    ) -> Mesh {
        let dir = TempDir::new("ext-authz");
        let mut cfg = config(db);
        cfg.ext_authz.config = Some(dir.write("ext-authz.toml", settings));
        adjust(&mut cfg, &dir);
        let (server, api) = acme_server_with(cfg).await;
        let key = api
            .client("mesh", &["acme"], &[consentry::proto::Capability::Query])
            .await;
        let authz = AuthorizationClient::new(connect(server.addr).await);
        Mesh {
            server,
            api,
            authz,
            key,
            _dir: dir,
        }
    }

    async fn check(&self, request: CheckRequest) -> CheckResponse {
        self.check_as(&self.key, request)
            .await
            .unwrap_or_else(|s| panic!("Check: {:?}: {}", s.code(), s.message()))
    }

    async fn check_as(&self, key: &str, request: CheckRequest) -> Result<CheckResponse, Status> {
        self.authz
            .clone()
            .check(Who::key(key).r(request))
            .await
            .map(Response::into_inner)
    }

    /// What CheckAccess answers for the same question, as the bootstrap client.
    async fn check_access(&self, user: &str, permission: &str, resource: &str) -> Reason {
        let mut q = may(user, permission, resource);
        q.explain = false;
        self.api.decide(q).await.reason()
    }
}

/// An HTTP request: `method` on `path` with `headers`.
fn http(method: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "req-1".into(),
                    method: method.into(),
                    path: path.into(),
                    host: "shop.example".into(),
                    scheme: "https".into(),
                    protocol: "HTTP/1.1".into(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// `request` with the route's context extensions.
fn routed(mut request: CheckRequest, extensions: &[(&str, &str)]) -> CheckRequest {
    if let Some(a) = request.attributes.as_mut() {
        a.context_extensions = extensions
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }
    request
}

fn text(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

/// `request` with the claims jwt_authn verified.
fn claims(mut request: CheckRequest, claims: &[(&str, Value)]) -> CheckRequest {
    let payload = Struct {
        fields: claims
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    };
    let namespace = Struct {
        fields: HashMap::from([(
            "jwt_payload".to_owned(),
            Value {
                kind: Some(Kind::StructValue(payload)),
            },
        )]),
    };
    if let Some(a) = request.attributes.as_mut() {
        a.metadata_context = Some(Metadata {
            filter_metadata: HashMap::from([(
                "envoy.filters.http.jwt_authn".to_owned(),
                namespace,
            )]),
            ..Default::default()
        });
    }
    request
}

/// `request` from an mTLS peer with `principal`.
fn from_peer(mut request: CheckRequest, principal: &str) -> CheckRequest {
    if let Some(a) = request.attributes.as_mut() {
        a.source = Some(Peer {
            principal: principal.into(),
            ..Default::default()
        });
    }
    request
}

/// A GET of `path` by `user` (a verified claim) through crm in acme (the route's extensions).
fn get(user: &str, path: &str) -> CheckRequest {
    let request = routed(
        http("GET", path, &[]),
        &[("tenant_id", "acme"), ("app_id", "crm")],
    );
    claims(request, &[("sub", text(user))])
}

/// A header of an answer, with how it is added.
fn header(options: &[HeaderValueOption], name: &str) -> Option<(String, i32)> {
    options
        .iter()
        .filter_map(|o| o.header.as_ref().map(|h| (h, o.append_action)))
        .find(|(h, _)| h.key == name)
        .map(|(h, action)| (h.value.clone(), action))
}

/// The dynamic metadata's text field `name`.
fn meta(response: &CheckResponse, name: &str) -> Option<String> {
    let field = response.dynamic_metadata.as_ref()?.fields.get(name)?;
    match &field.kind {
        Some(Kind::StringValue(s)) => Some(s.clone()),
        _ => None,
    }
}

/// Asserts `response` allows the request; returns its OK response.
#[track_caller]
fn allowed(response: &CheckResponse) -> &envoy_types::pb::envoy::service::auth::v3::OkHttpResponse {
    assert_eq!(
        response.status.as_ref().map(|s| s.code),
        Some(0),
        "{response:#?}"
    );
    let Some(HttpResponse::OkResponse(ok)) = &response.http_response else {
        panic!("an allowed request has an ok_response: {response:#?}");
    };
    let (revision, action) = header(&ok.headers, "x-consentry-revision").expect("the revision");
    rev(&revision);
    assert_eq!(action, HeaderAppendAction::OverwriteIfExistsOrAdd as i32);
    assert_eq!(meta(response, "reason").as_deref(), Some("ALLOWED"));
    assert_eq!(meta(response, "revision"), Some(revision));
    ok
}

/// Asserts `response` denies the request with a 403 carrying `reason`; returns the status
/// message and the body.
#[track_caller]
fn denied(response: &CheckResponse, reason: &str) -> (String, String) {
    let status = response.status.as_ref().expect("a status");
    assert_ne!(status.code, 0, "{response:#?}");
    assert_ne!(status.code, Code::Unavailable as i32, "{response:#?}");
    let Some(HttpResponse::DeniedResponse(denied)) = &response.http_response else {
        panic!("a refused request has a denied_response: {response:#?}");
    };
    assert_eq!(denied.status.as_ref().map(|s| s.code), Some(403));
    assert_eq!(
        header(&denied.headers, "x-consentry-reason").map(|h| h.0),
        Some(reason.to_owned()),
        "{response:#?}"
    );
    assert_eq!(meta(response, "reason").as_deref(), Some(reason));
    assert!(denied.body.starts_with(reason), "{response:#?}");
    (status.message.clone(), denied.body.clone())
}

// ---------------------------------------------------------------------------------------------

async fn requests_are_placed_from_their_sources_and_decided_as_check_access_decides(db: &TestDb) {
    let mesh = Mesh::start(db, SETTINGS).await;
    // Each request against the same question asked through CheckAccess: one way to decide.
    let cases = [
        ("GET", "/hr/team/docs", "dave", "READ", "/hr/team/docs"),
        ("HEAD", "/hr", "dave", "READ", "/hr"),
        ("POST", "/hr/team", "dave", "EDIT_ITEMS", "/hr/team"),
        ("PUT", "/hr/x/", "dave", "EDIT_ITEMS", "/hr/x"),
        ("PATCH", "/hr/./a", "dave", "EDIT_ITEMS", "/hr/a"),
        ("DELETE", "/hr/a?force=1", "dave", "DELETE_ITEMS", "/hr/a"),
        ("GET", "/finance", "dave", "READ", "/finance"),
        ("DELETE", "/", "bob", "DELETE_ITEMS", "/"),
        ("GET", "/", "bob", "READ", "/"),
        ("GET", "/hr/%74eam", "erin", "READ", "/hr/team"),
    ];
    for (method, path, user, permission, resource) in cases {
        let request = routed(
            claims(http(method, path, &[]), &[("sub", text(user))]),
            &[("tenant_id", "acme"), ("app_id", "crm")],
        );
        let response = mesh.check(request).await;
        let expected = mesh.check_access(user, permission, resource).await;
        let what = format!("{method} {path} by {user}");
        if expected == Reason::Allowed {
            allowed(&response);
        } else {
            let (message, _) = denied(
                &response,
                expected.as_str_name().trim_start_matches("REASON_"),
            );
            assert!(!message.is_empty(), "{what}");
        }
    }

    // The route's permission wins over the method; its prefix places the path under it.
    let manage = routed(
        claims(http("GET", "/hr", &[]), &[("sub", text("dave"))]),
        &[
            ("tenant_id", "acme"),
            ("app_id", "crm"),
            ("permission", "MANAGE"),
        ],
    );
    denied(&mesh.check(manage).await, "APP_PERMISSION_INSUFFICIENT");
    let prefixed = routed(
        claims(http("DELETE", "/team/docs", &[]), &[("sub", text("dave"))]),
        &[
            ("tenant_id", "acme"),
            ("app_id", "crm"),
            ("resource_prefix", "/hr"),
        ],
    );
    allowed(&mesh.check(prefixed).await);
    let outside = routed(
        claims(http("DELETE", "/team/docs", &[]), &[("sub", text("dave"))]),
        &[("tenant_id", "acme"), ("app_id", "crm")],
    );
    denied(&mesh.check(outside).await, "APP_PERMISSION_INSUFFICIENT");
    // A route's scope is checked too.
    let scoped = routed(
        claims(http("GET", "/hr", &[]), &[("sub", text("dave"))]),
        &[
            ("tenant_id", "acme"),
            ("app_id", "crm"),
            ("scope", "mail:send"),
        ],
    );
    denied(&mesh.check(scoped).await, "SCOPE_NOT_GRANTED");
    // No user from any source where users are named: refused, never asked as the app alone.
    let app_only = routed(
        http("GET", "/hr", &[]),
        &[("tenant_id", "acme"), ("app_id", "crm")],
    );
    let (message, _) = denied(&mesh.check(app_only.clone()).await, "INVALID_REQUEST");
    assert!(message.contains("user_id"), "{message}");
    mesh.server.stop().await;
    // Unless the operator says app-only requests come this way: then the engine decides (crm
    // may not act app-only).
    let mut cfg = config(db);
    let dir = TempDir::new("ext-authz-app-only");
    let settings = format!("app_only_requests = true\n{SETTINGS}");
    cfg.ext_authz.config = Some(dir.write("ext-authz.toml", &settings));
    let server = TestServer::start_with(cfg).await;
    let response = AuthorizationClient::new(connect(server.addr).await)
        .check(Who::key(&mesh.key).r(app_only))
        .await
        .unwrap()
        .into_inner();
    denied(&response, "USER_REQUIRED");
    server.stop().await;
}

async fn the_most_trusted_source_gives_each_part(db: &TestDb) {
    let mesh = Mesh::start(db, SETTINGS).await;
    // dave reads /hr; erin (known to no one) reads nothing.
    // Claims over headers: the verified `sub` is erin, whatever the header says.
    let request = claims(
        routed(
            http("GET", "/hr", &[("x-user-id", "dave")]),
            &[("tenant_id", "acme"), ("app_id", "crm")],
        ),
        &[("sub", text("erin"))],
    );
    denied(&mesh.check(request).await, "USER_PERMISSION_INSUFFICIENT");
    // With no claim, the configured header counts.
    let request = routed(
        http("GET", "/hr", &[("x-user-id", "dave")]),
        &[("tenant_id", "acme"), ("app_id", "crm")],
    );
    allowed(&mesh.check(request).await);
    // The route's tenant over the claim's and the header's.
    let request = claims(
        routed(
            http("GET", "/hr", &[("x-tenant-id", "globex")]),
            &[("tenant_id", "acme"), ("app_id", "crm")],
        ),
        &[("sub", text("dave")), ("tid", text("globex"))],
    );
    allowed(&mesh.check(request).await);
    // The claim's tenant over the header's.
    let request = claims(
        http(
            "GET",
            "/hr",
            &[("x-tenant-id", "globex"), ("x-app-id", "crm")],
        ),
        &[("sub", text("dave")), ("tid", text("acme"))],
    );
    allowed(&mesh.check(request).await);
    // The mTLS peer's principal gives the app, over a header naming another.
    let request = from_peer(
        claims(
            http("GET", "/hr", &[("x-app-id", "nope")]),
            &[("sub", text("dave")), ("tid", text("acme"))],
        ),
        "spiffe://cluster.local/ns/shop/sa/crm",
    );
    allowed(&mesh.check(request).await);
    // A peer the map does not name gives nothing: the header's app is asked about.
    let request = from_peer(
        claims(
            http("GET", "/hr", &[("x-app-id", "nope")]),
            &[("sub", text("dave")), ("tid", text("acme"))],
        ),
        "spiffe://cluster.local/ns/other/sa/x",
    );
    denied(&mesh.check(request).await, "UNKNOWN_APP");
    // Everything from headers alone.
    let headers = [
        ("x-tenant-id", "acme"),
        ("x-app-id", "crm"),
        ("x-user-id", "dave"),
    ];
    allowed(&mesh.check(http("GET", "/hr", &headers)).await);
    // Without the headers' settings (--ext-authz alone), a header names nothing.
    let mut cfg = config(db);
    cfg.ext_authz.on = true;
    let bare = TestServer::start_with(cfg).await;
    let response = AuthorizationClient::new(connect(bare.addr).await)
        .check(Who::key(&mesh.key).r(http("GET", "/hr", &headers)))
        .await
        .unwrap()
        .into_inner();
    let (message, _) = denied(&response, "INVALID_REQUEST");
    assert!(message.contains("tenant_id"), "{message}");
    bare.stop().await;
    mesh.server.stop().await;
}

async fn a_client_can_never_smuggle_a_consentry_header_to_the_upstream(db: &TestDb) {
    let mesh = Mesh::start(db, SETTINGS).await;
    let sent = [
        ("x-consentry-revision", "r999999"),
        ("x-consentry-user", "alice"),
        ("x-consentry-context-token", "forged"),
        ("X-Consentry-Reason", "ALLOWED"),
        ("x-consentry-anything", "x"),
        ("x-other", "kept"),
    ];
    let request = claims(
        routed(
            http("GET", "/hr", &sent),
            &[("tenant_id", "acme"), ("app_id", "crm")],
        ),
        &[("sub", text("dave"))],
    );
    let response = mesh.check(request).await;
    let ok = allowed(&response);
    // The revision is consentry's, replacing the client's copy.
    let (revision, _) = header(&ok.headers, "x-consentry-revision").unwrap();
    assert_ne!(revision, "r999999");
    assert_eq!(Some(revision), meta(&response, "revision"));
    // Every other x-consentry-* header the client sent is removed; nothing else is.
    let mut removed = ok.headers_to_remove.clone();
    removed.sort();
    assert_eq!(
        removed,
        [
            "x-consentry-anything",
            "x-consentry-context-token",
            "x-consentry-reason",
            "x-consentry-user"
        ]
    );
    // consentry sets only its own headers.
    for h in &ok.headers {
        let name = &h.header.as_ref().unwrap().key;
        assert!(name.starts_with("x-consentry-"), "{name}");
    }
    // Without a configured token, the client's context token is removed, not passed on.
    assert!(header(&ok.headers, "x-consentry-context-token").is_none());
    mesh.server.stop().await;
}

async fn what_cannot_be_placed_is_refused_with_a_403_naming_the_field(db: &TestDb) {
    let mesh = Mesh::start(db, SETTINGS).await;
    let route = [("tenant_id", "acme"), ("app_id", "crm")];
    let with_user = |r: CheckRequest| claims(r, &[("sub", text("dave"))]);
    let cases: Vec<(&str, CheckRequest, &str)> = vec![
        (
            "no attributes",
            CheckRequest { attributes: None },
            "attributes",
        ),
        (
            "no HTTP request",
            CheckRequest {
                attributes: Some(AttributeContext {
                    context_extensions: HashMap::from([("tenant_id".into(), "acme".into())]),
                    ..Default::default()
                }),
            },
            "attributes.request.http",
        ),
        (
            "'..'",
            with_user(routed(http("GET", "/hr/../finance", &[]), &route)),
            "attributes.request.http.path",
        ),
        (
            "an encoded '..'",
            with_user(routed(http("GET", "/hr/%2e%2E/finance", &[]), &route)),
            "attributes.request.http.path",
        ),
        (
            "NUL",
            with_user(routed(http("GET", "/hr/a%00b", &[]), &route)),
            "attributes.request.http.path",
        ),
        (
            "a bad percent escape",
            with_user(routed(http("GET", "/hr/%zz", &[]), &route)),
            "attributes.request.http.path",
        ),
        (
            "a relative path",
            with_user(routed(http("GET", "hr", &[]), &route)),
            "attributes.request.http.path",
        ),
        (
            "a method the table does not map",
            with_user(routed(http("TRACE", "/hr", &[]), &route)),
            "attributes.request.http.method",
        ),
        (
            "a tenant of the wrong shape",
            with_user(routed(
                http("GET", "/hr", &[]),
                &[("tenant_id", "a b"), ("app_id", "crm")],
            )),
            "attributes.context_extensions.tenant_id",
        ),
        (
            "a permission that does not exist",
            with_user(routed(
                http("GET", "/hr", &[]),
                &[
                    ("tenant_id", "acme"),
                    ("app_id", "crm"),
                    ("permission", "read"),
                ],
            )),
            "attributes.context_extensions.permission",
        ),
        (
            "a prefix that is not a path",
            with_user(routed(
                http("GET", "/hr", &[]),
                &[
                    ("tenant_id", "acme"),
                    ("app_id", "crm"),
                    ("resource_prefix", "hr/"),
                ],
            )),
            "attributes.context_extensions.resource_prefix",
        ),
        (
            "a claim that is not text",
            claims(
                routed(http("GET", "/hr", &[]), &route),
                &[(
                    "sub",
                    Value {
                        kind: Some(Kind::NumberValue(7.0)),
                    },
                )],
            ),
            "attributes.metadata_context.envoy.filters.http.jwt_authn.jwt_payload.sub",
        ),
        (
            "a header user of the wrong shape",
            routed(http("GET", "/hr", &[("x-user-id", "dave smith")]), &route),
            "attributes.request.http.headers.x-user-id",
        ),
        (
            "no tenant from any source",
            with_user(routed(http("GET", "/hr", &[]), &[("app_id", "crm")])),
            "tenant_id",
        ),
        (
            "no app from any source",
            with_user(routed(http("GET", "/hr", &[]), &[("tenant_id", "acme")])),
            "app_id",
        ),
    ];
    for (what, request, field) in cases {
        let response = mesh.check(request).await;
        let (message, body) = denied(&response, "INVALID_REQUEST");
        assert!(
            message.starts_with(&format!("INVALID_REQUEST: {field}")),
            "{what}: {message}"
        );
        assert!(body.len() < 300, "{what}: a short body: {body}");
        assert_eq!(
            response.status.as_ref().unwrap().code,
            Code::InvalidArgument as i32,
            "{what}"
        );
    }
    mesh.server.stop().await;
}

async fn the_ext_authz_client_needs_its_key_and_its_tenant_bounds(db: &TestDb) {
    let mesh = Mesh::start(db, SETTINGS).await;
    // No key, an unknown key: a 403, never an error that a fail-open filter would let through.
    let no_key = mesh
        .authz
        .clone()
        .check(tonic::Request::new(get("dave", "/hr")))
        .await
        .unwrap()
        .into_inner();
    denied(&no_key, "UNAUTHENTICATED");
    let unknown = mesh.check_as("csk_nope", get("dave", "/hr")).await.unwrap();
    denied(&unknown, "UNAUTHENTICATED");
    // A tenant outside the client's bounds, a client without `query`.
    mesh.api.put_tenant("globex", false, None).await;
    let elsewhere = routed(
        claims(http("GET", "/", &[]), &[("sub", text("dave"))]),
        &[("tenant_id", "globex"), ("app_id", "crm")],
    );
    denied(&mesh.check(elsewhere).await, "CLIENT_NOT_ALLOWED");
    let writer = mesh
        .api
        .client("writer", &["acme"], &[consentry::proto::Capability::Admin])
        .await;
    let response = mesh.check_as(&writer, get("dave", "/hr")).await.unwrap();
    denied(&response, "CLIENT_NOT_ALLOWED");
    // A client's revocation reaches ext_authz as it reaches every call.
    mesh.api.revoke_client("mesh").await;
    denied(&mesh.check(get("dave", "/hr")).await, "UNAUTHENTICATED");
    mesh.server.stop().await;
}

async fn the_service_is_served_and_reflected_only_when_configured(db: &TestDb) {
    // Without --ext-authz the service does not exist.
    let (server, _api) = acme_server(db).await;
    let mut authz = AuthorizationClient::new(connect(server.addr).await);
    let status = authz
        .check(Who::boot().r(get("dave", "/hr")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    assert!(
        !crate::support::calls::reflected(server.addr)
            .await
            .contains(&"envoy.service.auth.v3.Authorization".to_owned())
    );
    server.stop().await;
    // --ext-authz alone: served, reflected, and routes name tenant and app.
    let mut cfg = config(db);
    cfg.ext_authz.on = true;
    cfg.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    let server = TestServer::start_with(cfg).await;
    let services = crate::support::calls::reflected(server.addr).await;
    assert!(
        services.contains(&"envoy.service.auth.v3.Authorization".to_owned()),
        "{services:?}"
    );
    let mut authz = AuthorizationClient::new(connect(server.addr).await);
    let response = authz
        .check(Who::boot().r(routed(
            http("GET", "/", &[]),
            &[("tenant_id", "acme"), ("app_id", "crm")],
        )))
        .await
        .unwrap()
        .into_inner();
    // No user from any source: an app-only call, which crm may not make.
    denied(&response, "USER_REQUIRED");
    // Counted under the protocol's name, beside CheckAccess, with the code of what kept a call
    // from being decided (a missing key here), though Envoy gets an answer.
    let unauthenticated = authz
        .check(tonic::Request::new(get("dave", "/hr")))
        .await
        .unwrap()
        .into_inner();
    denied(&unauthenticated, "UNAUTHENTICATED");
    let metrics = crate::support::server::scrape(server.metrics_addr.unwrap()).await;
    let counted = |code: &str| {
        metrics.lines().any(|l| {
            l.starts_with("consentry_requests_total")
                && l.contains("rpc=\"ext_authz.check\"")
                && l.contains(&format!("code=\"{code}\""))
        })
    };
    assert!(counted("OK") && counted("UNAUTHENTICATED"), "{metrics}");
    server.stop().await;
}

async fn an_allowed_request_carries_a_context_token_when_configured(db: &TestDb) {
    let settings =
        format!("{SETTINGS}\n[context_token]\naudience = \"orders-api\"\nttl = \"2m\"\n");
    let mesh = Mesh::start_with(db, &settings, |cfg, dir| {
        cfg.signing_key_file = Some(key_file(dir, &[&new_key()]));
    })
    .await;
    let response = mesh.check(get("dave", "/hr/team")).await;
    let ok = allowed(&response);
    let (token, action) = header(&ok.headers, "x-consentry-context-token").expect("a token");
    assert_eq!(action, HeaderAppendAction::OverwriteIfExistsOrAdd as i32);
    let jwks = mesh
        .api
        .perm
        .clone()
        .get_signing_keys(Who::boot().r(GetSigningKeysRequest {}))
        .await
        .unwrap()
        .into_inner()
        .jwks;
    let jwks = consentry::token::Jwks::parse(&jwks).unwrap();
    let expect = consentry::token::Expected::new("orders-api").with_tenant("acme");
    let claims = consentry::token::verify(&token, &jwks, &expect, std::time::SystemTime::now())
        .unwrap_or_else(|e| panic!("the token verifies: {e}"));
    assert_eq!(claims.sub.as_deref(), Some("dave"));
    let read = consentry::domain::PermissionName::parse("permission", "READ").unwrap();
    assert!(claims.allows(&consentry::testing::path("/hr/team"), read));
    // A denied request carries none.
    let response = mesh.check(get("erin", "/hr")).await;
    denied(&response, "USER_PERMISSION_INSUFFICIENT");
    mesh.server.stop().await;
}

async fn an_outage_is_a_503_error_response_and_never_a_deny(db: &TestDb) {
    let proxy = Proxy::start(super::outage::postgres_addr()).await;
    let mesh = Mesh::start_with(db, SETTINGS, |cfg, _| {
        cfg.db.database_url = proxy.url(&db.url);
        cfg.max_staleness = Duration::from_secs(1);
    })
    .await;
    // Cached now: answered through the outage until the bound.
    allowed(&mesh.check(get("dave", "/hr")).await);
    proxy.cut();
    // A question never asked needs the store: an error response, not a deny.
    let miss = mesh.check(get("erin", "/")).await;
    undecided(&miss);
    // Past the bound even the cached question is undecided, never allowed or denied.
    eventually(Duration::from_secs(10), || async {
        let response = mesh.check(get("dave", "/hr")).await;
        matches!(response.http_response, Some(HttpResponse::ErrorResponse(_)))
    })
    .await;
    undecided(&mesh.check(get("dave", "/hr")).await);
    proxy.restore().await;
    eventually(Duration::from_secs(10), || async {
        let response = mesh.check(get("dave", "/hr")).await;
        matches!(response.http_response, Some(HttpResponse::OkResponse(_)))
    })
    .await;
    mesh.server.stop().await;
}

/// Asserts `response` is the answer of an authorizer that cannot decide: UNAVAILABLE, a 503
/// error response, so that the filter's failure mode decides.
#[track_caller]
fn undecided(response: &CheckResponse) {
    assert_eq!(
        response.status.as_ref().map(|s| s.code),
        Some(Code::Unavailable as i32),
        "{response:#?}"
    );
    let Some(HttpResponse::ErrorResponse(error)) = &response.http_response else {
        panic!("an outage is an error_response: {response:#?}");
    };
    assert_eq!(error.status.as_ref().map(|s| s.code), Some(503));
    assert_eq!(meta(response, "reason").as_deref(), Some("UNAVAILABLE"));
}
