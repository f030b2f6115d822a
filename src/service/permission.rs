//! `consentry.v1.PermissionService`: the queries backend services ask on every request.
//!
//! Each handler takes the request's one freshness check, authenticates, validates (nothing is
//! read for a malformed request or a tenant outside the caller's bounds), asks the cache's
//! [`Reader`] for the answer at one revision, and converts it back. A failing store is an error,
//! never an answer: it fails closed.

use metrics::Counter;
use tonic::{Request, Response, Status};

use super::status::ServiceError;
use crate::domain::{AppSnapshot, Entity, NotFound, RuleError, ValidationError, context_grant};

use super::auth::{Authenticator, CallContext};
use super::paging::{Listing, next_page_token, page_request};
use crate::cache::{At, Reader, Wanted};
use crate::convert as cv;
use crate::domain::{
    AccessQuery, AppId, AppScopes, Capability, ConsentPrompt, ExternalId, GroupId, PermissionId,
    PermissionRef, Reason, Revision, TenantId, Timestamp, UserId, Valid, Viewer,
};
use crate::proto::permission_service_server::PermissionService;
use crate::proto::*;
use crate::store::GrantQuery;
use crate::token::TokenIssuer;

/// The PermissionService over the cache's reader.
pub struct PermissionApi {
    reader: Reader,
    auth: Authenticator,
    max_batch: usize,
    /// `consentry_decisions_total`, one handle per reason, in [`Reason::ALL`] order.
    decisions: [Counter; 12],
    /// What signs context tokens; `None` without `--signing-key-file`.
    tokens: Option<TokenIssuer>,
}

/// What a request's consistency asks for.
fn wanted(c: Option<&Consistency>) -> Valid<Wanted> {
    use consistency::Requirement;
    Ok(match c.and_then(|c| c.requirement.as_ref()) {
        None | Some(Requirement::MinimizeLatency(_) | Requirement::FullyConsistent(false)) => {
            Wanted::Cached
        }
        Some(Requirement::FullyConsistent(true)) => Wanted::Store,
        Some(Requirement::AtLeastAsFresh(token)) => Wanted::AtLeast(Revision::parse_token(
            "consistency.at_least_as_fresh",
            token,
        )?),
    })
}

impl PermissionApi {
    /// The service; a batch holds at most `max_batch` items.
    pub fn new(reader: Reader, auth: Authenticator, max_batch: usize) -> Self {
        Self {
            reader,
            auth,
            max_batch,
            decisions: Reason::ALL
                .map(|r| metrics::counter!("consentry_decisions_total", "reason" => r.as_str())),
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

    fn record(&self, reason: Reason) {
        if let Some(i) = Reason::ALL.iter().position(|r| *r == reason) {
            self.decisions[i].increment(1);
        }
    }

    /// Parses a query (keeping its strings) and checks its tenant is within the caller's bounds.
    fn query(cx: &CallContext, mut req: CheckAccessRequest) -> Result<AccessQuery, ServiceError> {
        // The tenant first: a tenant outside the caller's bounds is refused before anything else.
        // Its string is moved out and back, never copied.
        let tenant = TenantId::parse("tenant_id", std::mem::take(&mut req.tenant_id))?;
        cx.caller.require_tenant(&tenant)?;
        req.tenant_id = tenant.into();
        Ok(cv::access_query_from_proto(req)?)
    }

    /// The tenant and user of an external permission query, within the caller's bounds.
    fn tenant_user(
        cx: &CallContext,
        tenant: &str,
        user: &str,
    ) -> Result<(TenantId, UserId), Status> {
        let tenant = TenantId::parse("tenant_id", tenant)?;
        cx.caller.require_tenant(&tenant)?;
        Ok((tenant, UserId::parse("user_id", user)?))
    }

    /// An answer about one app in one tenant (GetAppScopes, GetConsentPrompt): the tenant within
    /// the caller's bounds, the ids and the consistency validated, the app's snapshot read through
    /// the reader, and `answer` made of it. An unknown tenant is NOT_FOUND; `answer` says `None`
    /// for an unregistered app, which is NOT_FOUND too.
    async fn app_answer<T: AboutApp, R>(
        &self,
        request: Request<T>,
        answer: impl FnOnce(&AppSnapshot) -> Option<R>,
    ) -> Result<(R, Revision), Status> {
        let (cx, at) = self.context(&request).await?;
        let (tenant, app, consistency) = request.get_ref().about();
        let tenant = TenantId::parse("tenant_id", tenant)?;
        cx.caller.require_tenant(&tenant)?;
        let app = AppId::parse("app_id", app)?;
        let wanted = wanted(consistency)?;
        let (entry, revision) = self.reader.app(at, wanted, &tenant, &app).await?;
        let snapshot = &entry.value;
        if snapshot.tenant.is_none() {
            return Err(ServiceError::from(NotFound(Entity::Tenant(tenant))).into());
        }
        let answer =
            answer(snapshot).ok_or_else(|| ServiceError::from(NotFound(Entity::App(app))))?;
        Ok((answer, revision))
    }

    /// The viewer of an external permission query (DESIGN.md §4). `app_id` is validated
    /// whoever the viewer turns out to be, so a malformed one is refused even beside an acting
    /// user (who then decides).
    fn viewer(cx: &CallContext, app_id: &str) -> Result<Viewer, Status> {
        let app = AppId::parse_optional("app_id", app_id)?;
        if let Some(user) = &cx.acting_user {
            return Ok(Viewer::User(user.clone()));
        }
        if let Some(app) = app {
            cx.caller.require_may_assert_user()?;
            return Ok(Viewer::App(app));
        }
        Ok(Viewer::Client(cx.caller.client_id.clone()))
    }
}

/// A request about one app in one tenant.
trait AboutApp {
    /// The tenant, the app and the consistency asked for.
    fn about(&self) -> (&str, &str, Option<&Consistency>);
}

macro_rules! about_app {
    ($($request:ty),+) => {
        $(impl AboutApp for $request {
            fn about(&self) -> (&str, &str, Option<&Consistency>) {
                (&self.tenant_id, &self.app_id, self.consistency.as_ref())
            }
        })+
    };
}

about_app!(GetAppScopesRequest, GetConsentPromptRequest);

#[tonic::async_trait]
impl PermissionService for PermissionApi {
    async fn check_access(
        &self,
        request: Request<CheckAccessRequest>,
    ) -> Result<Response<CheckAccessResponse>, Status> {
        let (cx, at) = self.context(&request).await?;
        let mut req = request.into_inner();
        let consistency = req.consistency.take();
        let query = Self::query(&cx, req)?;
        let wanted = wanted(consistency.as_ref())?;
        let (decision, revision) = match self.reader.check_now(at, wanted, &query) {
            Some(answer) => answer,
            // Boxed: only a miss needs the state of a read that waits.
            None => Box::pin(self.reader.check(at, wanted, &query)).await?,
        };
        self.record(decision.reason);
        Ok(Response::new(cv::decision_to_proto(decision, revision)))
    }

    async fn check_access_batch(
        &self,
        request: Request<CheckAccessBatchRequest>,
    ) -> Result<Response<CheckAccessBatchResponse>, Status> {
        let (cx, at) = self.context(&request).await?;
        let req = request.into_inner();
        if req.items.len() > self.max_batch {
            let problem = format!(
                "{} items; at most {} are allowed in one batch",
                req.items.len(),
                self.max_batch
            );
            return Err(ValidationError::new("items", problem).into());
        }
        let mut queries = Vec::with_capacity(req.items.len());
        for (i, item) in req.items.into_iter().enumerate() {
            let in_item = |e: ServiceError| ServiceError::Item {
                index: i,
                source: Box::new(e),
            };
            if item.consistency.is_some() {
                let problem = "items carry no consistency; set it on the batch";
                return Err(in_item(ValidationError::new("consistency", problem).into()).into());
            }
            let query = Self::query(&cx, item).map_err(in_item)?;
            queries.push(query);
        }
        let wanted = wanted(req.consistency.as_ref())?;
        let (decisions, revision) = match self.reader.check_all_now(at, wanted, &queries) {
            Some(answer) => answer,
            // Boxed: only a miss needs the state of a read that waits.
            None => Box::pin(self.reader.check_all(at, wanted, &queries)).await?,
        };
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
        let r = request.into_inner();
        let (tenant, user) = Self::tenant_user(&cx, &r.tenant_id, &r.user_id)?;
        let group = GroupId::parse_optional("group_id", &r.group_id)?;
        let viewer = Self::viewer(&cx, &r.app_id)?;
        let listing = Listing::new("grants")
            .field(tenant.as_str())
            .field(user.as_str())
            .field(&r.group_id)
            .field(&viewer.principal().to_string());
        let secret = self.reader.page_secret()?;
        let page = page_request(secret, r.page_size, &r.page_token, &listing)?;
        let wanted = wanted(r.consistency.as_ref())?;
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
            next_page_token: next_page_token(secret, &page, &listing),
            permissions: page.items.iter().map(cv::grant_to_proto).collect(),
            checked_at: revision.token(),
        }))
    }

    async fn check_external_permission(
        &self,
        request: Request<CheckExternalPermissionRequest>,
    ) -> Result<Response<CheckExternalPermissionResponse>, Status> {
        let (cx, at) = self.context(&request).await?;
        let r = request.into_inner();
        let (tenant, user) = Self::tenant_user(&cx, &r.tenant_id, &r.user_id)?;
        let which = match (
            r.permission_id.is_empty(),
            r.group_id.is_empty(),
            r.external_id.is_empty(),
        ) {
            (false, true, true) => {
                PermissionRef::Id(PermissionId::parse("permission_id", &r.permission_id)?)
            }
            (true, false, false) => PermissionRef::External(
                GroupId::parse("group_id", &r.group_id)?,
                ExternalId::parse("external_id", &r.external_id)?,
            ),
            _ => {
                let problem = "name the permission by permission_id, or by group_id and external_id (not both)";
                return Err(ValidationError::new("permission_id", problem).into());
            }
        };
        let viewer = Self::viewer(&cx, &r.app_id)?;
        let wanted = wanted(r.consistency.as_ref())?;
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
        let mut req = request.into_inner();
        let consistency = req.consistency.take();
        // The tenant first, as in CheckAccess: outside the caller's bounds nothing else is looked at.
        let tenant = TenantId::parse("tenant_id", std::mem::take(&mut req.tenant_id))?;
        cx.caller.require_tenant(&tenant)?;
        // A token naming a user speaks for them: that needs assert_user, checked with the other
        // capabilities, before validation.
        if !req.user_id.is_empty() || !req.on_behalf_of.is_empty() {
            cx.caller.require_may_mint_for_user()?;
        }
        req.tenant_id = tenant.into();
        let (query, token) = cv::token_request_from_proto(req)?;
        let wanted = wanted(consistency.as_ref())?;
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
            .map_err(|e| ServiceError::Internal(format!("{e:#}")))?;
        let issued = (jws, expires_at, message);
        Ok(Response::new(cv::token_to_proto(Ok(issued), revision)))
    }

    /// Needs no key (DESIGN.md §8: the keys are public, so a verifier holds no credential that
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
