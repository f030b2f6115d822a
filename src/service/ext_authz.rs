//! `envoy.service.auth.v3.Authorization`: an Envoy or Istio sidecar asks before it forwards a
//! request (docs/rules.md §10.4). The request is placed as an access question
//! (`convert::envoy::place`) and decided by the same reader and engine as CheckAccess.
//!
//! Every outcome but one is an answer Envoy acts on without its failure mode: allowed, denied,
//! or refused (the request cannot be placed, or the ext_authz client may not ask) as a 403.
//! Only when consentry cannot decide now (the store unreachable past the staleness bound, an
//! overload) is the answer `UNAVAILABLE` with a 503 error response, so that the filter's
//! `failure_mode_allow` decides and an outage never reads as a deny, nor a deny as an outage.

use tonic::{Code, Request, Response, Status};

use super::auth::Authenticator;
use super::observe::Decisions;
use super::status::ServiceError;
use crate::cache::{Reader, Wanted};
use crate::convert::envoy as ev;
use crate::domain::mesh::{self, ExtAuthzSettings};
use crate::domain::{Capability, check_access, context_grant};
use crate::proto::envoy::service::auth::v3::authorization_server::Authorization;
use crate::proto::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use crate::token::{TokenIssuer, TokenRequest};

/// The Authorization service over the cache's reader.
pub struct ExtAuthzApi {
    reader: Reader,
    auth: Authenticator,
    settings: ExtAuthzSettings,
    tokens: Option<TokenIssuer>,
    decisions: Decisions,
}

impl ExtAuthzApi {
    /// The service, placing requests by `settings`; it attaches context tokens when `settings`
    /// asks and `tokens` can sign them.
    pub fn new(
        reader: Reader,
        auth: Authenticator,
        settings: ExtAuthzSettings,
        tokens: Option<TokenIssuer>,
    ) -> Self {
        Self {
            reader,
            auth,
            settings,
            tokens,
            decisions: Decisions::new(),
        }
    }

    /// The answer to `request`, or the error that kept it from being decided.
    async fn answer(&self, request: Request<CheckRequest>) -> Result<CheckResponse, ServiceError> {
        let at = self.reader.at()?;
        // The ext_authz client's own key; an acting user is never read from a sidecar.
        let caller = self.auth.caller(&request, at).await?;
        caller.require(Capability::Query)?;
        let placed = ev::place(&self.settings, request.get_ref())?;
        caller.require_tenant(&placed.query.tenant_id)?;
        let signer = match (&self.settings.context_token, &self.tokens) {
            (Some(token), Some(issuer)) => Some((token, issuer)),
            _ => None,
        };
        let Some(((audience, ttl), issuer)) = signer else {
            let (decision, revision) = self.reader.check(at, Wanted::Cached, &placed.query).await?;
            self.decisions.record(decision.reason);
            return Ok(ev::decided(&decision, revision, placed.smuggled, None));
        };
        // The decision and the token's grant from one gathering of the snapshots, at one
        // revision.
        let ((decision, grant), revision) = self
            .reader
            .evaluate(at, Wanted::Cached, &placed.query, |q, app, users| {
                let decision = check_access(q, app, users);
                let grant = decision
                    .allowed
                    .then(|| context_grant(q, app, users).ok())
                    .flatten();
                (decision, grant)
            })
            .await?;
        self.decisions.record(decision.reason);
        let token = match grant {
            Some(grant) => {
                let request = TokenRequest {
                    tenant_id: placed.query.tenant_id.clone(),
                    app_id: placed.query.app_id.clone(),
                    audience: audience.clone(),
                    ttl: *ttl,
                };
                let (jws, _) = issuer
                    .issue(&request, grant, revision, std::time::SystemTime::now())
                    .map_err(|cause| ServiceError::Internal {
                        what: "signing the context token",
                        cause,
                    })?;
                Some(jws)
            }
            None => None,
        };
        Ok(ev::decided(&decision, revision, placed.smuggled, token))
    }
}

#[tonic::async_trait]
impl Authorization for ExtAuthzApi {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        let (answer, status) = match self.answer(request).await {
            Ok(answer) => (answer, None),
            Err(error) => {
                let status = Status::from(error);
                let answer = match status.code() {
                    Code::InvalidArgument => {
                        ev::refused(status.code(), mesh::INVALID_REQUEST, status.message())
                    }
                    Code::Unauthenticated => {
                        ev::refused(status.code(), mesh::UNAUTHENTICATED, status.message())
                    }
                    Code::PermissionDenied | Code::FailedPrecondition | Code::NotFound => {
                        ev::refused(status.code(), mesh::CLIENT_NOT_ALLOWED, status.message())
                    }
                    code => ev::undecided(code, status.message()),
                };
                (answer, Some(status))
            }
        };
        let mut response = Response::new(answer);
        // The call itself succeeds (Envoy reads the answer), but its metrics and request log
        // count what kept it from being decided, as every other call's do.
        if let Some(status) = status {
            response.extensions_mut().insert(status);
        }
        Ok(response)
    }
}
