//! `consentry.v1.PermissionService`: the queries backend services ask on every request.
//!
//! Each handler takes the request's one freshness check, authenticates, parses the request into
//! its command (`convert::Parse`: nothing is read for a malformed request or a tenant outside
//! the caller's bounds), asks the cache's [`Reader`] for the answer at one revision, and
//! converts it back. A failing store is an error, never an answer: it fails closed.

use tonic::{Request, Response, Status};

use super::auth::{Authenticator, CallContext};
use super::observe::Decisions;
use super::paging::{SharedSecret, next_page_token};
use super::status::ServiceError;
use crate::cache::{At, Reader};
use crate::convert::{self as cv, AppQuestion, Check, CheckBatch, GrantCheck, GrantListing};
use crate::convert::{Limits, Listed, Parse, Parsing, TokenIssue};
use crate::domain::{
    AppScopes, AppSnapshot, Capability, ConsentPrompt, Entity, NotFound, Reason, Revision,
    RuleError, Timestamp, context_grant,
};
use crate::proto::permission_service_server::PermissionService;
use crate::proto::*;
use crate::store::GrantQuery;
use crate::token::TokenIssuer;

/// The PermissionService over the cache's reader.
pub struct PermissionApi {
    reader: Reader,
    auth: Authenticator,
    limits: Limits,
    /// What page tokens are signed with.
    page_secret: SharedSecret,
    /// `consentry_decisions_total`.
    decisions: Decisions,
    /// What signs context tokens; `None` without `--signing-key-file`.
    tokens: Option<TokenIssuer>,
}

impl PermissionApi {
    /// The service, validating requests within `limits` and signing page tokens with
    /// `page_secret`.
    pub fn new(
        reader: Reader,
        auth: Authenticator,
        limits: Limits,
        page_secret: SharedSecret,
    ) -> Self {
        Self {
            reader,
            auth,
            limits,
            page_secret,
            decisions: Decisions::new(),
            tokens: None,
        }
    }

    /// The service, issuing context tokens with `tokens` when there is a key file.
    pub fn with_tokens(self, tokens: Option<TokenIssuer>) -> Self {
        Self { tokens, ..self }
    }

    /// The request's freshness check, then who is calling.
    async fn context<T>(&self, request: &Request<T>) -> Result<(CallContext, At), Status> {
        let at = self.reader.at()?;
        let cx = self.auth.context(request, Capability::Query, at).await?;
        Ok((cx, at))
    }

    /// The request as its command, validated for the caller in `cx`.
    fn parse<T: Parse>(&self, cx: &CallContext, request: Request<T>) -> Result<T::Command, Status> {
        let parsing = Parsing {
            caller: &cx.caller,
            acting_user: cx.acting_user.as_ref(),
            limits: self.limits,
            page_secret: self.page_secret.get()?,
        };
        Ok(request.into_inner().parse(&parsing)?)
    }

    fn record(&self, reason: Reason) {
        self.decisions.record(reason);
    }

    /// An answer about one app in one tenant (GetAppScopes, GetConsentPrompt): the app's
    /// snapshot read through the reader, and `answer` made of it. An unknown tenant is
    /// NOT_FOUND; `answer` says `None` for an unregistered app, which is NOT_FOUND too.
    async fn app_answer<T: Parse<Command = AppQuestion>, R>(
        &self,
        request: Request<T>,
        answer: impl FnOnce(&AppSnapshot) -> Option<R>,
    ) -> Result<(R, Revision), Status> {
        let (cx, at) = self.context(&request).await?;
        let AppQuestion {
            tenant,
            app,
            wanted,
        } = self.parse(&cx, request)?;
        let (entry, revision) = self.reader.app(at, wanted, &tenant, &app).await?;
        let snapshot = &entry.value;
        if snapshot.tenant.is_none() {
            return Err(ServiceError::from(NotFound(Entity::Tenant(tenant))).into());
        }
        let answer =
            answer(snapshot).ok_or_else(|| ServiceError::from(NotFound(Entity::App(app))))?;
        Ok((answer, revision))
    }
}

#[tonic::async_trait]
impl PermissionService for PermissionApi {
    async fn check_access(
        &self,
        request: Request<CheckAccessRequest>,
    ) -> Result<Response<CheckAccessResponse>, Status> {
        let (cx, at) = self.context(&request).await?;
        let Check { query, wanted } = self.parse(&cx, request)?;
        let (decision, revision) = self.reader.check(at, wanted, &query).await?;
        self.record(decision.reason);
        Ok(Response::new(cv::decision_to_proto(decision, revision)))
    }

    async fn check_access_batch(
        &self,
        request: Request<CheckAccessBatchRequest>,
    ) -> Result<Response<CheckAccessBatchResponse>, Status> {
        let (cx, at) = self.context(&request).await?;
        let CheckBatch { queries, wanted } = self.parse(&cx, request)?;
        let (decisions, revision) = self.reader.check_all(at, wanted, &queries).await?;
        let results = decisions
            .into_iter()
            .map(|decision| {
                self.record(decision.reason);
                cv::decision_to_proto(decision, revision)
            })
            .collect();
        Ok(Response::new(CheckAccessBatchResponse {
            results,
            checked_at: revision.token(),
        }))
    }

    async fn list_external_permissions(
        &self,
        request: Request<ListExternalPermissionsRequest>,
    ) -> Result<Response<ListExternalPermissionsResponse>, Status> {
        let (cx, at) = self.context(&request).await?;
        let Listed {
            of:
                GrantListing {
                    tenant,
                    user,
                    group,
                    viewer,
                    wanted,
                },
            page,
            listing,
        } = self.parse(&cx, request)?;
        let query = GrantQuery {
            viewer,
            group,
            now: Timestamp::now(),
        };
        let (page, revision) = self
            .reader
            .grants_page(at, wanted, (&tenant, &user), &query, &page)
            .await?;
        Ok(Response::new(ListExternalPermissionsResponse {
            next_page_token: next_page_token(self.page_secret.get()?, &page, &listing),
            permissions: page.items.iter().map(cv::grant_to_proto).collect(),
            checked_at: revision.token(),
        }))
    }

    async fn check_external_permission(
        &self,
        request: Request<CheckExternalPermissionRequest>,
    ) -> Result<Response<CheckExternalPermissionResponse>, Status> {
        let (cx, at) = self.context(&request).await?;
        let GrantCheck {
            tenant,
            user,
            which,
            viewer,
            wanted,
        } = self.parse(&cx, request)?;
        let now = Timestamp::now();
        let (grant, revision) = self
            .reader
            .grant(at, wanted, (&tenant, &user), &which, &viewer)
            .await?;
        let live = grant.filter(|g| g.is_live(now));
        Ok(Response::new(CheckExternalPermissionResponse {
            granted: live.is_some(),
            expires_at: live.and_then(|g| g.expires_at).map(cv::timestamp_to_proto),
            checked_at: revision.token(),
        }))
    }

    async fn get_app_scopes(
        &self,
        request: Request<GetAppScopesRequest>,
    ) -> Result<Response<GetAppScopesResponse>, Status> {
        let (report, revision) = self.app_answer(request, AppScopes::report).await?;
        Ok(Response::new(cv::app_scopes_to_proto(report, revision)))
    }

    async fn get_consent_prompt(
        &self,
        request: Request<GetConsentPromptRequest>,
    ) -> Result<Response<GetConsentPromptResponse>, Status> {
        let (prompt, revision) = self.app_answer(request, ConsentPrompt::of).await?;
        Ok(Response::new(cv::consent_prompt_to_proto(prompt, revision)))
    }

    async fn issue_context_token(
        &self,
        request: Request<IssueContextTokenRequest>,
    ) -> Result<Response<IssueContextTokenResponse>, Status> {
        let (cx, at) = self.context(&request).await?;
        let TokenIssue {
            query,
            token,
            wanted,
        } = self.parse(&cx, request)?;
        let Some(issuer) = &self.tokens else {
            let why = "this server issues no context tokens: it was started without \
                       --signing-key-file (CONSENTRY_SIGNING_KEY_FILE)";
            return Err(ServiceError::from(RuleError::FailedPrecondition(why.to_owned())).into());
        };
        let (outcome, revision) = self
            .reader
            .evaluate(at, wanted, &query, context_grant)
            .await?;
        let grant = match outcome {
            Ok(grant) => grant,
            Err(decision) => {
                return Ok(Response::new(cv::token_to_proto(Err(decision), revision)));
            }
        };
        let message = format!(
            "a {} token for app {} in tenant {} under {}, valid for {} s",
            grant.policy.as_str(),
            query.app_id,
            query.tenant_id,
            query.resource,
            token.ttl.as_secs()
        );
        let (jws, expires_at) = issuer
            .issue(&token, grant, revision, std::time::SystemTime::now())
            .map_err(|cause| ServiceError::Internal {
                what: "signing the token",
                cause,
            })?;
        let issued = (jws, expires_at, message);
        Ok(Response::new(cv::token_to_proto(Ok(issued), revision)))
    }

    /// Needs no key (docs/rules.md §8: the keys are public, so a verifier holds no credential that
    /// could mint); any `authorization` or `x-consentry-user` sent is ignored. The keys come
    /// from the key file, not the store, so they are answered whatever the database does.
    async fn get_signing_keys(
        &self,
        _request: Request<GetSigningKeysRequest>,
    ) -> Result<Response<GetSigningKeysResponse>, Status> {
        let jwks = match &self.tokens {
            Some(issuer) => issuer.jwks(),
            // No key file: nothing is signed, so nothing is to be trusted.
            None => crate::token::Jwks { keys: Vec::new() },
        };
        Ok(Response::new(GetSigningKeysResponse {
            jwks: jwks.to_json(),
        }))
    }
}
