//! Target `mesh`: `convert::envoy::place`, what the ext_authz service runs on every request a
//! sidecar forwards, on `CheckRequest`s decoded from arbitrary bytes and on requests built from
//! hostile paths, methods, headers, context extensions and claims, with every source configured.
//! A request is placed or refused naming a field of the request, briefly; a placed resource lies
//! under its prefix and never holds a `..` segment, a NUL or a `%` the upstream could decode again.

use std::collections::{BTreeMap, HashMap};

use consentry::convert::envoy::place;
use consentry::domain::http::MethodTable;
use consentry::domain::mesh::{ClaimSource, ExtAuthzSettings, Names};
use consentry::domain::{AppId, ResourcePath};
use consentry::proto::envoy::config::core::v3::Metadata;
use consentry::proto::envoy::service::auth::v3::attribute_context::{HttpRequest, Peer, Request};
use consentry::proto::envoy::service::auth::v3::{AttributeContext, CheckRequest};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use prost::Message;

use crate::harness::{self, fuzz};

/// Every source configured, so every branch of placement runs.
fn settings() -> ExtAuthzSettings {
    ExtAuthzSettings {
        resource_prefix: ResourcePath::parse("p", "/base").unwrap(),
        methods: MethodTable::default(),
        claims: Some(ClaimSource {
            namespace: "jwt".into(),
            payload: Some("payload".into()),
            names: Names {
                tenant_id: Some("tid".into()),
                app_id: Some("azp".into()),
                user_id: Some("sub".into()),
            },
        }),
        principals: HashMap::from([("spiffe://a".to_owned(), AppId::parse("p", "crm").unwrap())]),
        headers: Names {
            tenant_id: Some("x-tenant".into()),
            app_id: Some("x-app".into()),
            user_id: Some("x-user".into()),
        },
        context_token: None,
        app_only_requests: false,
    }
}

/// How a case's request is made.
#[derive(Debug, Clone)]
enum Input {
    /// Arbitrary bytes, decoded as a CheckRequest (refused by the codec when they do not decode).
    Bytes(Vec<u8>),
    /// A request whose parts are hostile strings.
    Parts {
        method: String,
        path: String,
        extensions: Vec<(String, String)>,
        headers: Vec<(String, String)>,
        claim: Option<String>,
        principal: String,
    },
}

fn hostile() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z/.%;\\\\0-9A-F]{0,24}",
        Just("/a/../b".to_owned()),
        Just("/%2e%2e/x".to_owned()),
        Just("acme".to_owned()),
        Just("crm".to_owned()),
        Just("READ".to_owned()),
    ]
}

/// A value that is mostly well-formed, so that cases reach the path's checks.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z]{1,6}", 1 => hostile()]
}

fn inputs() -> impl Strategy<Value = Input> {
    let key = prop_oneof![
        Just("tenant_id".to_owned()),
        Just("app_id".to_owned()),
        Just("permission".to_owned()),
        Just("resource_prefix".to_owned()),
        Just("scope".to_owned()),
        any::<String>(),
    ];
    let header = prop_oneof![
        Just("x-tenant".to_owned()),
        Just("x-app".to_owned()),
        Just("x-user".to_owned()),
        Just("x-consentry-user".to_owned()),
        "x-consentry-[a-z]{0,6}",
        any::<String>(),
    ];
    let path = prop_oneof![
        3 => "(/[a-z.%;0-9A-F\\\\]{0,6}){0,5}",
        1 => hostile()
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256).prop_map(Input::Bytes),
        // A well-formed route and user: only the path is hostile.
        path.clone().prop_map(|path| Input::Parts {
            method: "GET".to_owned(),
            path,
            extensions: Vec::new(),
            headers: vec![("x-user".to_owned(), "dave".to_owned())],
            claim: None,
            principal: String::new(),
        }),
        (
            prop_oneof![
                Just("GET".to_owned()),
                Just("DELETE".to_owned()),
                any::<String>()
            ],
            path,
            prop::collection::vec((key, value()), 0..3),
            prop::collection::vec((header, value()), 0..5),
            prop::option::weighted(0.3, value()),
            prop_oneof![Just("spiffe://a".to_owned()), any::<String>()],
        )
            .prop_map(|(method, path, extensions, headers, claim, principal)| {
                Input::Parts {
                    method,
                    path,
                    extensions,
                    headers,
                    claim,
                    principal,
                }
            }),
    ]
}

fn request(input: Input) -> Option<CheckRequest> {
    let text = |s: String| prost_types::Value {
        kind: Some(prost_types::value::Kind::StringValue(s)),
    };
    match input {
        Input::Bytes(bytes) => CheckRequest::decode(bytes.as_slice()).ok(),
        Input::Parts {
            method,
            path,
            extensions,
            headers,
            claim,
            principal,
        } => {
            let claims = claim.map(|c| {
                let payload = prost_types::Struct {
                    fields: BTreeMap::from([("sub".to_owned(), text(c))]),
                };
                let namespace = prost_types::Struct {
                    fields: BTreeMap::from([(
                        "payload".to_owned(),
                        prost_types::Value {
                            kind: Some(prost_types::value::Kind::StructValue(payload)),
                        },
                    )]),
                };
                Metadata {
                    filter_metadata: HashMap::from([("jwt".to_owned(), namespace)]),
                }
            });
            Some(CheckRequest {
                attributes: Some(AttributeContext {
                    source: Some(Peer {
                        principal,
                        ..Default::default()
                    }),
                    request: Some(Request {
                        http: Some(HttpRequest {
                            method,
                            path,
                            headers: headers.into_iter().collect(),
                            ..Default::default()
                        }),
                    }),
                    // A route naming tenant and app, its values replaced by the case's.
                    context_extensions: [("tenant_id", "acme"), ("app_id", "crm")]
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .into_iter()
                        .chain(extensions)
                        .collect(),
                    metadata_context: claims,
                    ..Default::default()
                }),
            })
        }
    }
}

#[test]
fn mesh_requests_are_placed_or_refused_naming_their_field() {
    let settings = settings();
    // What a refusal may name: the request's attributes, or the part no source gave.
    let fields = [
        "attributes".to_owned(),
        "tenant_id".to_owned(),
        "app_id".to_owned(),
        "user_id".to_owned(),
    ];
    fuzz("mesh", harness::budget(), inputs(), |input| {
        let Some(request) = request(input) else {
            harness::tally("undecodable");
            return Ok(());
        };
        match place(&settings, &request) {
            Ok(placed) => {
                harness::tally("placed");
                let resource = placed.query.resource.as_str();
                let prefix = request
                    .attributes
                    .as_ref()
                    .and_then(|a| a.context_extensions.get("resource_prefix"))
                    .filter(|p| !p.is_empty())
                    .map_or("/base", String::as_str);
                prop_assert!(
                    resource == prefix
                        || resource.starts_with(&format!("{}/", prefix.trim_end_matches('/'))),
                    "{resource} is not under {prefix}"
                );
                let path = request
                    .attributes
                    .as_ref()
                    .and_then(|a| a.request.as_ref())
                    .and_then(|r| r.http.as_ref())
                    .map(|h| h.path.as_str())
                    .unwrap_or_default();
                let under = &resource[prefix.trim_end_matches('/').len()..];
                for segment in under.split('/') {
                    prop_assert!(segment != "..", "a '..' from {path:?}: {resource}");
                    prop_assert!(!segment.contains('%'), "a '%' from {path:?}: {resource}");
                    prop_assert!(!segment.contains('\0'), "a NUL from {path:?}");
                }
                for name in &placed.smuggled {
                    prop_assert!(name.starts_with("x-consentry-"), "{name}");
                }
            }
            Err(e) => {
                harness::tally("refused");

                harness::validation(&fields, e).map_err(|f| {
                    TestCaseError::fail(format!(
                        "{f} (request {})",
                        harness::shorten(&format!("{request:?}"))
                    ))
                })?;
            }
        }
        Ok(())
    });
}
