#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use super::*;
use crate::domain::{Reason, Right};
use crate::proto::envoy::config::core::v3::{HeaderMap, Metadata};
use crate::proto::envoy::service::auth::v3::attribute_context::{Peer, Request};
use crate::testing::path;

fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    ext: &[(&str, &str)],
) -> CheckRequest {
    let pairs = |p: &[(&str, &str)]| {
        p.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<HashMap<_, _>>()
    };
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    method: method.into(),
                    path: path.into(),
                    headers: pairs(headers),
                    ..Default::default()
                }),
            }),
            context_extensions: pairs(ext),
            ..Default::default()
        }),
    }
}

const ROUTE: &[(&str, &str)] = &[("tenant_id", "acme"), ("app_id", "crm")];

fn with_headers() -> ExtAuthzSettings {
    ExtAuthzSettings {
        headers: Names {
            tenant_id: Some("x-tenant".into()),
            app_id: Some("x-app".into()),
            user_id: Some("x-user".into()),
        },
        principals: HashMap::from([(
            "spiffe://a/crm".to_owned(),
            AppId::parse("p", "crm").unwrap(),
        )]),
        ..ExtAuthzSettings::default()
    }
}

#[test]
fn a_route_names_tenant_app_permission_and_prefix() {
    let settings = ExtAuthzSettings::default();
    let placed = place(&settings, &request("GET", "/hr/team?q=1", &[], ROUTE)).unwrap();
    let q = &placed.query;
    assert_eq!(q.tenant_id.as_str(), "acme");
    assert_eq!(q.app_id.as_str(), "crm");
    assert_eq!(q.user_id, None);
    assert_eq!(q.permission, Some(PermissionName::Level(Right::Read)));
    assert_eq!(q.resource, path("/hr/team"));
    assert!(placed.smuggled.is_empty());

    let ext = [
        ("tenant_id", "acme"),
        ("app_id", "crm"),
        ("permission", "MANAGE"),
        ("resource_prefix", "/hr"),
        ("scope", "documents:read"),
    ];
    let q = place(&settings, &request("GET", "/team", &[], &ext))
        .unwrap()
        .query;
    assert_eq!(q.permission, Some(PermissionName::Level(Right::Manage)));
    assert_eq!(q.resource, path("/hr/team"));
    assert_eq!(q.scope.unwrap().as_str(), "documents:read");
}

#[test]
fn headers_count_only_where_configured_and_below_the_route() {
    let headers = [
        ("x-tenant", "globex"),
        ("x-app", "other"),
        ("x-user", "dave"),
    ];
    let q = place(&with_headers(), &request("GET", "/", &headers, ROUTE))
        .unwrap()
        .query;
    assert_eq!((q.tenant_id.as_str(), q.app_id.as_str()), ("acme", "crm"));
    assert_eq!(q.user_id.unwrap().as_str(), "dave");
    // Not configured: not read.
    let e = place(
        &ExtAuthzSettings::default(),
        &request("GET", "/", &headers, &[]),
    )
    .unwrap_err();
    assert_eq!(e.field, "tenant_id");
    assert!(
        e.to_string()
            .contains("attributes.context_extensions.tenant_id"),
        "{e}"
    );
}

#[test]
fn the_raw_header_list_is_read_like_the_map() {
    let mut r = request("GET", "/", &[], &[]);
    let http = r
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.header_map = Some(HeaderMap {
        headers: vec![
            HeaderValue {
                key: "x-tenant".into(),
                value: String::new(),
                raw_value: b"acme".to_vec(),
            },
            HeaderValue {
                key: "x-app".into(),
                value: "crm".into(),
                raw_value: Vec::new(),
            },
            HeaderValue {
                key: "x-user".into(),
                value: "dave".into(),
                raw_value: Vec::new(),
            },
            HeaderValue {
                key: "x-consentry-user".into(),
                value: "alice".into(),
                raw_value: Vec::new(),
            },
        ],
    });
    let placed = place(&with_headers(), &r).unwrap();
    assert_eq!(placed.query.tenant_id.as_str(), "acme");
    assert_eq!(placed.query.app_id.as_str(), "crm");
    assert_eq!(placed.smuggled, ["x-consentry-user"]);
}

#[test]
fn a_mapped_principal_names_the_app_above_headers() {
    let mut r = request(
        "GET",
        "/",
        &[("x-tenant", "acme"), ("x-app", "other"), ("x-user", "dave")],
        &[],
    );
    r.attributes.as_mut().unwrap().source = Some(Peer {
        principal: "spiffe://a/crm".into(),
        ..Default::default()
    });
    let q = place(&with_headers(), &r).unwrap().query;
    assert_eq!(q.app_id.as_str(), "crm");
}

#[test]
fn claims_sit_in_their_namespace_and_payload() {
    let settings = ExtAuthzSettings {
        claims: Some(ClaimSource {
            namespace: "jwt".into(),
            payload: None,
            names: Names {
                user_id: Some("sub".into()),
                ..Names::default()
            },
        }),
        ..ExtAuthzSettings::default()
    };
    let mut r = request("GET", "/", &[], ROUTE);
    let fields = BTreeMap::from([(
        "sub".to_owned(),
        prost_types::Value {
            kind: Some(Kind::StringValue("dave".into())),
        },
    )]);
    r.attributes.as_mut().unwrap().metadata_context = Some(Metadata {
        filter_metadata: HashMap::from([("jwt".to_owned(), prost_types::Struct { fields })]),
    });
    let q = place(&settings, &r).unwrap().query;
    assert_eq!(q.user_id.unwrap().as_str(), "dave");
}

#[test]
fn each_answer_says_what_envoy_does() {
    let revision = Revision::number(7);
    let yes = Decision {
        allowed: true,
        reason: Reason::Allowed,
        message: "ok".into(),
        trace: Vec::new(),
    };
    let sent = vec![REVISION_HEADER.to_owned(), "x-consentry-user".to_owned()];
    let ok = decided(&yes, revision, sent, None);
    assert_eq!(ok.status.as_ref().unwrap().code, 0);
    let Some(HttpResponse::OkResponse(ok_response)) = &ok.http_response else {
        panic!()
    };
    assert_eq!(ok_response.headers_to_remove, ["x-consentry-user"]);
    let set = ok_response.headers[0].header.as_ref().unwrap();
    assert_eq!(
        (set.key.as_str(), set.value.clone()),
        (REVISION_HEADER, revision.token())
    );
    assert_eq!(
        ok_response.headers[0].append_action,
        HeaderAppendAction::OverwriteIfExistsOrAdd as i32
    );

    let no = Decision {
        allowed: false,
        reason: Reason::NoConsent,
        message: "no consent".into(),
        trace: Vec::new(),
    };
    let denied = decided(&no, revision, Vec::new(), None);
    assert_eq!(
        denied.status.as_ref().unwrap().code,
        tonic::Code::PermissionDenied as i32
    );
    let Some(HttpResponse::DeniedResponse(d)) = &denied.http_response else {
        panic!()
    };
    assert_eq!(d.status.as_ref().unwrap().code, 403);
    assert_eq!(d.headers[0].header.as_ref().unwrap().value, "NO_CONSENT");

    let down = undecided(tonic::Code::Unavailable, "the store is unreachable");
    assert_eq!(
        down.status.as_ref().unwrap().code,
        tonic::Code::Unavailable as i32
    );
    let Some(HttpResponse::ErrorResponse(e)) = &down.http_response else {
        panic!()
    };
    assert_eq!(e.status.as_ref().unwrap().code, 503);

    let long = "x".repeat(1000);
    let refused = refused(tonic::Code::InvalidArgument, INVALID_REQUEST, &long);
    let Some(HttpResponse::DeniedResponse(d)) = &refused.http_response else {
        panic!()
    };
    assert!(d.body.len() < 260, "{}", d.body.len());
}

#[test]
fn header_names_of_any_text_are_read_without_panicking() {
    // Found by the `mesh` fuzz target: a name whose prefix length falls inside a character.
    let headers = [
        ("𓭵{𐀟`ﶧѨ.", "x"),
        ("X-Consentry-é", "y"),
        ("x-consentr", "z"),
    ];
    let placed = place(
        &ExtAuthzSettings::default(),
        &request("GET", "/", &headers, ROUTE),
    )
    .unwrap();
    assert_eq!(placed.smuggled, ["x-consentry-é"]);
}

#[test]
fn underscore_spellings_of_consentrys_headers_are_removed_too() {
    // Upstreams that map headers to variables read `x_consentry_user` as `x-consentry-user`.
    let headers = [
        ("x_consentry_user", "alice"),
        ("X_Consentry-Revision", "r1"),
    ];
    let placed = place(
        &ExtAuthzSettings::default(),
        &request("GET", "/", &headers, ROUTE),
    )
    .unwrap();
    assert_eq!(
        placed.smuggled,
        ["x_consentry-revision", "x_consentry_user"]
    );
}

#[test]
fn where_users_are_named_a_request_without_one_is_refused_unless_app_only_is_allowed() {
    let mut settings = with_headers();
    let e = place(&settings, &request("GET", "/", &[], ROUTE)).unwrap_err();
    assert_eq!(e.field, "user_id");
    assert!(e.to_string().contains("the header x-user"), "{e}");
    settings.app_only_requests = true;
    let q = place(&settings, &request("GET", "/", &[], ROUTE))
        .unwrap()
        .query;
    assert_eq!(q.user_id, None);
    // Without a source of users, every request is app-only.
    let q = place(
        &ExtAuthzSettings::default(),
        &request("GET", "/", &[], ROUTE),
    )
    .unwrap()
    .query;
    assert_eq!(q.user_id, None);
}
