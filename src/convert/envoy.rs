//! Envoy's external authorization protocol in consentry's terms (docs/rules.md §10.4): a
//! `CheckRequest` placed as an access question, from its sources in their order of trust, and
//! each outcome as the `CheckResponse` Envoy acts on.

use std::collections::BTreeMap;

use prost_types::value::Kind;

use crate::domain::http::resource_of_path;
use crate::domain::mesh::*;
use crate::domain::{
    AccessQuery, AppId, Decision, PermissionName, ResourcePath, Revision, Scope, TenantId, UserId,
    Valid, ValidationError,
};
use crate::proto::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, header_value_option::HeaderAppendAction,
};
use crate::proto::envoy::service::auth::v3::{
    AttributeContext, CheckRequest, CheckResponse, DeniedHttpResponse, OkHttpResponse,
    attribute_context::HttpRequest, check_response::HttpResponse,
};
use crate::proto::envoy::r#type::v3::{HttpStatus, StatusCode};
use crate::proto::google::rpc;

/// A request placed as an access question.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The question.
    pub query: AccessQuery,
    /// The `x-consentry-*` headers the client sent (in lower case): removed before the request
    /// goes upstream, unless consentry sets them itself.
    pub smuggled: Vec<String>,
}

/// The request's headers: Envoy's map, or its list when it encodes raw values.
struct Headers<'a>(&'a HttpRequest);

impl Headers<'_> {
    fn get(&self, name: &str) -> Option<&str> {
        if let Some(value) = self.0.headers.get(name) {
            return Some(value.as_str());
        }
        let list = self.0.header_map.as_ref()?;
        list.headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(name))
            .map(|h| {
                if h.value.is_empty() {
                    std::str::from_utf8(&h.raw_value).unwrap_or("\u{FFFD}")
                } else {
                    h.value.as_str()
                }
            })
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        let listed = self.0.header_map.iter().flat_map(|m| m.headers.iter());
        self.0
            .headers
            .keys()
            .map(String::as_str)
            .chain(listed.map(|h| h.key.as_str()))
    }
}

/// A value one source gave, with where it came from (the field named in a refusal).
struct Found<'a> {
    field: String,
    value: &'a str,
}

/// Places `request` as an access question (docs/rules.md §10.4). Each part comes from the most
/// trusted source that gives it: the route's `context_extensions`, then verified claims, then
/// (for the app) the mTLS peer's principal, then configured headers. Refused, naming the field:
/// no HTTP attributes, no tenant or app from any source, a value that does not parse, a path
/// the rules refuse, a method the table does not name.
pub fn place(settings: &ExtAuthzSettings, request: &CheckRequest) -> Valid<Placed> {
    let attributes = request
        .attributes
        .as_ref()
        .ok_or_else(|| ValidationError::new("attributes", "is missing"))?;
    let http = attributes
        .request
        .as_ref()
        .and_then(|r| r.http.as_ref())
        .ok_or_else(|| {
            ValidationError::new(
                "attributes.request.http",
                "is missing: consentry authorizes HTTP requests",
            )
        })?;
    let headers = Headers(http);
    let sources = Sources {
        settings,
        attributes,
        headers: &headers,
    };
    let extension = |key: &str| {
        attributes
            .context_extensions
            .get(key)
            .filter(|v| !v.is_empty())
            .map(|value| Found {
                field: format!("attributes.context_extensions.{key}"),
                value,
            })
    };

    let tenant = sources.first(extension("tenant_id"), |n| &n.tenant_id, false)?;
    let tenant = tenant.ok_or_else(|| sources.missing("tenant_id"))?;
    let tenant_id = TenantId::parse(tenant.field.as_str(), tenant.value)?;
    let app = sources.first(extension("app_id"), |n| &n.app_id, true)?;
    let app = app.ok_or_else(|| sources.missing("app_id"))?;
    let app_id = AppId::parse(app.field.as_str(), app.value)?;
    let user_id = match sources.first(None, |n| &n.user_id, false)? {
        Some(user) => Some(UserId::parse(user.field.as_str(), user.value)?),
        // Where a source of users is configured, a request without one is not quietly asked
        // as the app alone (a token that failed verification would otherwise get the app's
        // rights), unless the operator says app-only requests come this way.
        None if sources.names_users() && !settings.app_only_requests => {
            return Err(sources.missing("user_id"));
        }
        None => None,
    };
    let scope = match extension("scope") {
        Some(found) => Some(Scope::parse(found.field.as_str(), found.value)?),
        None => None,
    };
    let permission = match extension("permission") {
        Some(found) => PermissionName::parse(found.field.as_str(), found.value)?,
        None => settings
            .methods
            .permission_of("attributes.request.http.method", &http.method)?,
    };
    let prefix = match extension("resource_prefix") {
        Some(found) => ResourcePath::parse(found.field.as_str(), found.value)?,
        None => settings.resource_prefix.clone(),
    };
    let resource = resource_of_path("attributes.request.http.path", &prefix, &http.path)?;
    let mut smuggled: Vec<String> = headers
        .names()
        // `x_consentry_user` too: servers that map headers to variables (CGI, WSGI, Rack, PHP)
        // read it as `x-consentry-user`.
        .filter(|name| {
            name.get(..HEADER_PREFIX.len()).is_some_and(|start| {
                start
                    .bytes()
                    .zip(HEADER_PREFIX.bytes())
                    .all(|(a, b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
            })
        })
        .map(str::to_ascii_lowercase)
        .collect();
    smuggled.sort();
    smuggled.dedup();
    Ok(Placed {
        query: AccessQuery {
            tenant_id,
            app_id,
            user_id,
            on_behalf_of: None,
            scope,
            permission: Some(permission),
            resource,
            explain: false,
        },
        smuggled,
    })
}

/// The sources below the route's own, in their order of trust.
struct Sources<'a> {
    settings: &'a ExtAuthzSettings,
    attributes: &'a AttributeContext,
    headers: &'a Headers<'a>,
}

impl<'a> Sources<'a> {
    /// The first value of a part: `route` (the context extension), then the claim, then the
    /// peer's principal when `by_principal`, then the header. A source that is configured but
    /// holds a value of the wrong shape (a claim that is not text) is refused, not skipped.
    fn first(
        &self,
        route: Option<Found<'a>>,
        name: impl Fn(&Names) -> &Option<String>,
        by_principal: bool,
    ) -> Valid<Option<Found<'a>>> {
        if route.is_some() {
            return Ok(route);
        }
        if let Some(claims) = &self.settings.claims
            && let Some(claim) = name(&claims.names)
            && let Some(found) = self.claim(claims, claim)?
        {
            return Ok(Some(found));
        }
        if by_principal
            && let Some(peer) = &self.attributes.source
            && !peer.principal.is_empty()
            && let Some(app) = self.settings.principals.get(&peer.principal)
        {
            return Ok(Some(Found {
                field: "attributes.source.principal".to_owned(),
                value: app.as_str(),
            }));
        }
        if let Some(header) = name(&self.settings.headers)
            && let Some(value) = self.headers.get(header).filter(|v| !v.is_empty())
        {
            return Ok(Some(Found {
                field: format!("attributes.request.http.headers.{header}"),
                value,
            }));
        }
        Ok(None)
    }

    /// The claim `claim` of the verified claims, if present; text, else refused.
    fn claim(&self, source: &ClaimSource, claim: &str) -> Valid<Option<Found<'a>>> {
        let Some(mut fields) = self
            .attributes
            .metadata_context
            .as_ref()
            .and_then(|m| m.filter_metadata.get(&source.namespace))
            .map(|s| &s.fields)
        else {
            return Ok(None);
        };
        let mut field = format!("attributes.metadata_context.{}", source.namespace);
        if let Some(payload) = &source.payload {
            field.push('.');
            field.push_str(payload);
            match fields.get(payload).and_then(|v| v.kind.as_ref()) {
                Some(Kind::StructValue(inner)) => fields = &inner.fields,
                Some(_) => return Err(ValidationError::new(field, "is not a struct of claims")),
                None => return Ok(None),
            }
        }
        field.push('.');
        field.push_str(claim);
        match fields.get(claim).and_then(|v| v.kind.as_ref()) {
            None | Some(Kind::NullValue(_)) => Ok(None),
            Some(Kind::StringValue(s)) if s.is_empty() => Ok(None),
            Some(Kind::StringValue(value)) => Ok(Some(Found { field, value })),
            Some(_) => Err(ValidationError::new(field, "is not text")),
        }
    }

    /// Whether any source is configured to name the user.
    fn names_users(&self) -> bool {
        let claims = self.settings.claims.as_ref();
        claims.is_some_and(|c| c.names.user_id.is_some()) || self.settings.headers.user_id.is_some()
    }

    /// The refusal of a request with no value for `part` in any source, naming each source
    /// configured for it.
    fn missing(&self, part: &str) -> ValidationError {
        let mut looked = if part == "user_id" {
            Vec::new()
        } else {
            vec![format!("attributes.context_extensions.{part}")]
        };
        let pick = |names: &Names| match part {
            "tenant_id" => names.tenant_id.clone(),
            "user_id" => names.user_id.clone(),
            _ => names.app_id.clone(),
        };
        if let Some(claims) = &self.settings.claims
            && let Some(claim) = pick(&claims.names)
        {
            looked.push(format!("the claim {claim}"));
        }
        if part == "app_id" && !self.settings.principals.is_empty() {
            looked.push("a mapped attributes.source.principal".to_owned());
        }
        if let Some(header) = pick(&self.settings.headers) {
            looked.push(format!("the header {header}"));
        }
        ValidationError::new(
            part,
            format_args!("is required: none of {} gives one", looked.join(", ")),
        )
    }
}

/// A header set on the upstream request, replacing any copy.
fn set_header(key: &str, value: String) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: key.to_owned(),
            value,
            raw_value: Vec::new(),
        }),
        append: None,
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
    }
}

/// The dynamic metadata of an answer: the reason and, when one was read, the revision.
fn metadata(reason: &str, revision: Option<Revision>) -> prost_types::Struct {
    let text = |s: String| prost_types::Value {
        kind: Some(Kind::StringValue(s)),
    };
    let mut fields = BTreeMap::from([("reason".to_owned(), text(reason.to_owned()))]);
    if let Some(revision) = revision {
        fields.insert("revision".to_owned(), text(revision.token()));
    }
    prost_types::Struct { fields }
}

/// A 403 (or, for `error`, the answer of an authorizer that could not decide) with the reason in
/// a header and a short body.
fn refusal(reason: &str, message: &str, status: StatusCode) -> DeniedHttpResponse {
    DeniedHttpResponse {
        status: Some(HttpStatus {
            code: status as i32,
        }),
        headers: vec![set_header(REASON_HEADER, reason.to_owned())],
        body: format!("{reason}: {message}\n"),
    }
}

/// The answer to a decided request: OK with the revision (and the context token, if any) set on
/// the upstream request and the client's `x-consentry-*` headers removed; or a 403 with the
/// reason.
pub fn decided(
    decision: &Decision,
    revision: Revision,
    smuggled: Vec<String>,
    context_token: Option<String>,
) -> CheckResponse {
    let reason = decision.reason.as_str();
    if decision.allowed {
        let mut headers = vec![set_header(REVISION_HEADER, revision.token())];
        if let Some(token) = context_token {
            headers.push(set_header(CONTEXT_TOKEN_HEADER, token));
        }
        // A header consentry sets replaces the client's copy (of that exact name); every other
        // one is removed.
        let set = |name: &String| {
            headers
                .iter()
                .any(|h| h.header.as_ref().is_some_and(|h| &h.key == name))
        };
        let smuggled = smuggled.into_iter().filter(|name| !set(name)).collect();
        return CheckResponse {
            status: Some(rpc::Status {
                code: tonic::Code::Ok as i32,
                message: String::new(),
            }),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse {
                headers,
                headers_to_remove: smuggled,
            })),
            dynamic_metadata: Some(metadata(reason, Some(revision))),
        };
    }
    let code = tonic::Code::PermissionDenied as i32;
    CheckResponse {
        status: Some(rpc::Status {
            code,
            message: format!("{reason}: {}", decision.message),
        }),
        http_response: Some(HttpResponse::DeniedResponse(refusal(
            reason,
            "access denied",
            StatusCode::Forbidden,
        ))),
        dynamic_metadata: Some(metadata(reason, Some(revision))),
    }
}

/// The answer to a request that was not decided because of it or its client (it could not be
/// placed, or the client may not ask): a 403 with `reason`, as a deny.
pub fn refused(code: tonic::Code, reason: &str, message: &str) -> CheckResponse {
    let code = code as i32;
    CheckResponse {
        status: Some(rpc::Status {
            code,
            message: format!("{reason}: {message}"),
        }),
        http_response: Some(HttpResponse::DeniedResponse(refusal(
            reason,
            &short(message),
            StatusCode::Forbidden,
        ))),
        dynamic_metadata: Some(metadata(reason, None)),
    }
}

/// The answer when consentry cannot decide now (the store unreachable past the staleness bound,
/// an overload): `UNAVAILABLE` with an error response of 503, so that Envoy's failure mode
/// decides and an outage never looks like a deny.
pub fn undecided(code: tonic::Code, message: &str) -> CheckResponse {
    let reason = "UNAVAILABLE";
    CheckResponse {
        status: Some(rpc::Status {
            code: code as i32,
            message: message.to_owned(),
        }),
        http_response: Some(HttpResponse::ErrorResponse(refusal(
            reason,
            "the authorizer cannot decide now",
            StatusCode::ServiceUnavailable,
        ))),
        dynamic_metadata: Some(metadata(reason, None)),
    }
}

/// At most a line of `message` for a body the client sees.
fn short(message: &str) -> String {
    const MAX: usize = 200;
    let line = message.lines().next().unwrap_or_default();
    if line.len() <= MAX {
        return line.to_owned();
    }
    let mut end = MAX;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[cfg(test)]
mod tests;
