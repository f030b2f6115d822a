//! What the mesh's authorizer is configured with (docs/rules.md §10.4): where each part of a
//! request's question comes from, the method table and the route's default prefix, and the
//! names of the headers and reasons it answers with.

use std::collections::HashMap;

use super::http::MethodTable;
use super::{AppId, ResourcePath};

/// The prefix of every header consentry sets on a request; a client's own copies never reach
/// the upstream.
pub const HEADER_PREFIX: &str = "x-consentry-";
/// The revision an allowed request was decided at.
pub const REVISION_HEADER: &str = "x-consentry-revision";
/// A context token for the upstream, when configured.
pub const CONTEXT_TOKEN_HEADER: &str = "x-consentry-context-token";
/// The reason a request was refused.
pub const REASON_HEADER: &str = "x-consentry-reason";

/// The reason token of a request consentry could not place as a question (no tenant, a bad
/// path, a method the table does not name, a value of the wrong shape).
pub const INVALID_REQUEST: &str = "INVALID_REQUEST";
/// The reason token of an ext_authz client whose key is missing, unknown or revoked.
pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
/// The reason token of an ext_authz client that may not ask this (a tenant outside its bounds,
/// no `query` capability).
pub const CLIENT_NOT_ALLOWED: &str = "CLIENT_NOT_ALLOWED";

/// Names of one part of the question (tenant, app, user) in one source.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// The tenant's name there.
    pub tenant_id: Option<String>,
    /// The app's name there.
    pub app_id: Option<String>,
    /// The signed-in user's name there.
    pub user_id: Option<String>,
}

/// Verified claims that an earlier filter (such as `jwt_authn`) wrote into the request's
/// metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimSource {
    /// The filter's namespace in `metadata_context.filter_metadata`.
    pub namespace: String,
    /// The key of the claims' struct inside the namespace (jwt_authn's `payload_in_metadata`);
    /// `None` when the claims sit directly in the namespace.
    pub payload: Option<String>,
    /// The claim naming each part.
    pub names: Names,
}

/// How consentry places the mesh's requests (`--ext-authz`, `--ext-authz-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtAuthzSettings {
    /// The resource a path is under when its route sets no `resource_prefix`.
    pub resource_prefix: ResourcePath,
    /// The permission each method needs when the route names none.
    pub methods: MethodTable,
    /// Verified claims, if the mesh sends any.
    pub claims: Option<ClaimSource>,
    /// The app of each mTLS peer, by its principal (a SPIFFE id).
    pub principals: HashMap<String, AppId>,
    /// Request headers trusted for each part; named only where the mesh strips clients' copies.
    pub headers: Names,
    /// Attach a context token for this audience and lifetime to allowed requests.
    pub context_token: Option<(String, std::time::Duration)>,
    /// Ask a request that names no user as the app alone, even where a user source is
    /// configured (`app_only_requests`); otherwise such a request is refused.
    pub app_only_requests: bool,
}

impl Default for ExtAuthzSettings {
    /// `--ext-authz` with no other setting: routes name tenant and app.
    fn default() -> Self {
        Self {
            resource_prefix: ResourcePath::root(),
            methods: MethodTable::default(),
            claims: None,
            principals: HashMap::new(),
            headers: Names::default(),
            context_token: None,
            app_only_requests: false,
        }
    }
}
