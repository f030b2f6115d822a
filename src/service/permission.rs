//! `consentry.v1.PermissionService`: the queries backend services ask on every request.
//!
//! Each handler validates first (nothing is read for a malformed request or a tenant outside
//! the caller's bounds), gathers the snapshots it needs at one revision, from the cache or
//! straight from the store as the request's consistency says, and runs the pure engine. A
//! failing store is an error, never an answer: it fails closed.

use std::collections::{BTreeMap, btree_map};
use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::auth::{Authenticator, CallContext};
use super::paging::{next_page_token, page_request};
use crate::cache::{Caches, Entry, Stamped};
use crate::convert as cv;
use crate::domain::{
    AccessQuery, AppId, AppScopes, AppSnapshot, Capability, ExternalCatalog, ExternalId, GroupId,
    PermissionId, PermissionRef, Reason, Revision, TenantId, Timestamp, UserFacts, UserGrant,
    UserId, UserSnapshot, Valid, ValidationError, Viewer, check_access,
};
use crate::proto::permission_service_server::PermissionService;
use crate::proto::*;
use crate::store::{GrantQuery, Page, PageRequest, Store, StoreResult};

/// How many times a request re-gathers its snapshots when writes land while it reads.
const SETTLE_ATTEMPTS: usize = 8;

/// Where a request's facts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The cache, current at this instance's applied revision.
    Cache,
    /// The store itself (`fully_consistent`).
    Store,
}

/// The PermissionService over the caches and the store.
pub struct PermissionApi {
    caches: Arc<Caches>,
    store: Arc<dyn Store>,
    auth: Authenticator,
    max_batch: usize,
}

type AppEntry = Arc<Entry<AppSnapshot>>;
type UserEntry = Arc<Entry<Option<UserSnapshot>>>;

/// The snapshots one CheckAccess or a batch needs, keyed by what they are about.
#[derive(Default)]
struct Snapshots {
    apps: BTreeMap<(TenantId, AppId), AppEntry>,
    users: BTreeMap<(TenantId, UserId), UserEntry>,
}

impl Snapshots {
    fn stamps(&self) -> Vec<&dyn Stamped> {
        let apps = self.apps.values().map(|e| &**e as &dyn Stamped);
        apps.chain(self.users.values().map(|e| &**e as &dyn Stamped))
            .collect()
    }

    fn decide(&self, q: &AccessQuery) -> crate::domain::Decision {
        let user = |u: &Option<UserId>| {
            u.as_ref()
                .and_then(|u| self.users.get(&(q.tenant_id.clone(), u.clone())))
                .and_then(|e| e.value.as_ref())
        };
        let app = &self.apps[&(q.tenant_id.clone(), q.app_id.clone())].value;
        check_access(
            q,
            app,
            UserFacts {
                user: user(&q.user_id),
                target: user(&q.on_behalf_of),
            },
        )
    }
}

/// What a consistency requirement asks for.
enum Wanted {
    Cached,
    AtLeast(Revision),
    Store,
}

fn wanted(field: &str, c: Option<&Consistency>) -> Valid<Wanted> {
    use consistency::Requirement;
    Ok(match c.and_then(|c| c.requirement.as_ref()) {
        None | Some(Requirement::MinimizeLatency(_) | Requirement::FullyConsistent(false)) => {
            Wanted::Cached
        }
        Some(Requirement::FullyConsistent(true)) => Wanted::Store,
        Some(Requirement::AtLeastAsFresh(token)) => Wanted::AtLeast(Revision::parse_token(
            &format!("{field}.at_least_as_fresh"),
            token,
        )?),
    })
}

impl PermissionApi {
    /// The service; a batch holds at most `max_batch` items.
    pub fn new(
        caches: Arc<Caches>,
        store: Arc<dyn Store>,
        auth: Authenticator,
        max_batch: usize,
    ) -> Self {
        Self {
            caches,
            store,
            auth,
            max_batch,
        }
    }

    async fn context<T>(&self, request: &Request<T>) -> Result<CallContext, Status> {
        self.auth.context(request, Capability::Query).await
    }

    /// Decides where facts come from: an instance behind the caller's token catches up first;
    /// a token newer than anything committed is `FAILED_PRECONDITION`.
    async fn source(&self, wanted: Wanted) -> Result<Source, Status> {
        match wanted {
            Wanted::Cached => Ok(Source::Cache),
            Wanted::Store => Ok(Source::Store),
            Wanted::AtLeast(token) if self.caches.applied() >= token => Ok(Source::Cache),
            Wanted::AtLeast(token) => {
                let applied = self.caches.catch_up().await?;
                if applied >= token {
                    Ok(Source::Cache)
                } else {
                    Err(Status::failed_precondition(format!(
                        "at_least_as_fresh {} is newer than anything committed (newest: {})",
                        token.token(),
                        applied.token()
                    )))
                }
            }
        }
    }

    /// The revision all `stamps` hold at, or `None` if they must be gathered again.
    async fn settle(
        &self,
        source: Source,
        stamps: &[&dyn Stamped],
    ) -> Result<Option<Revision>, Status> {
        match source {
            Source::Cache => {
                let applied = self.caches.applied();
                if stamps.iter().all(|s| self.caches.is_current(*s, applied)) {
                    return Ok(Some(applied));
                }
                if stamps.iter().any(|s| s.read_at() > applied) {
                    // Something was read fresher than this instance has applied: apply up to it,
                    // then entries the newer writes touched are reloaded.
                    self.caches.catch_up().await?;
                }
                Ok(None)
            }
            Source::Store => {
                let first = stamps.first().map_or(Revision(0), |s| s.read_at());
                Ok(stamps.iter().all(|s| s.read_at() == first).then_some(first))
            }
        }
    }

    async fn app_entry(
        &self,
        source: Source,
        tenant: &TenantId,
        app: &AppId,
    ) -> StoreResult<AppEntry> {
        match source {
            Source::Cache => self.caches.app(tenant, app).await,
            Source::Store => {
                let (snapshot, at) = self.store.app_snapshot(tenant, app).await?;
                Ok(Entry::direct(snapshot, at))
            }
        }
    }

    async fn user_entry(
        &self,
        source: Source,
        tenant: &TenantId,
        user: &UserId,
    ) -> StoreResult<UserEntry> {
        match source {
            Source::Cache => self.caches.user(tenant, user).await,
            Source::Store => {
                let (snapshot, at) = self.store.user_snapshot(tenant, user).await?;
                Ok(Entry::direct(snapshot, at))
            }
        }
    }

    /// Gathers every snapshot the queries need, all holding at one revision.
    async fn gather(
        &self,
        source: Source,
        queries: &[AccessQuery],
    ) -> Result<(Snapshots, Revision), Status> {
        for _ in 0..SETTLE_ATTEMPTS {
            let mut snaps = Snapshots::default();
            for q in queries {
                if let btree_map::Entry::Vacant(slot) =
                    snaps.apps.entry((q.tenant_id.clone(), q.app_id.clone()))
                {
                    slot.insert(self.app_entry(source, &q.tenant_id, &q.app_id).await?);
                }
                for user in [&q.user_id, &q.on_behalf_of].into_iter().flatten() {
                    if let btree_map::Entry::Vacant(slot) =
                        snaps.users.entry((q.tenant_id.clone(), user.clone()))
                    {
                        slot.insert(self.user_entry(source, &q.tenant_id, user).await?);
                    }
                }
            }
            if let Some(at) = self.settle(source, &snaps.stamps()).await? {
                return Ok((snaps, at));
            }
        }
        Err(Status::unavailable(
            "writes kept landing while the answer was read; retry",
        ))
    }

    /// The cached catalog and the user's grants, holding at one revision.
    async fn external(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<
        (
            Arc<Entry<Option<ExternalCatalog>>>,
            Arc<Entry<Vec<UserGrant>>>,
            Revision,
        ),
        Status,
    > {
        for _ in 0..SETTLE_ATTEMPTS {
            let catalog = self.caches.catalog(tenant).await?;
            let grants = self.caches.grants(tenant, user).await?;
            let stamps: [&dyn Stamped; 2] = [&*catalog, &*grants];
            if let Some(at) = self.settle(Source::Cache, &stamps).await? {
                return Ok((catalog, grants, at));
            }
        }
        Err(Status::unavailable(
            "writes kept landing while the answer was read; retry",
        ))
    }

    /// Parses a query and checks its tenant is within the caller's bounds.
    fn query(&self, cx: &CallContext, req: &CheckAccessRequest) -> Result<AccessQuery, Status> {
        // The tenant first: a tenant outside the caller's bounds is refused before anything else.
        let tenant = TenantId::parse("tenant_id", &req.tenant_id)?;
        cx.caller.require_tenant(&tenant)?;
        Ok(cv::access_query_from_proto(req)?)
    }

    /// The viewer of an external permission query (DESIGN.md §4).
    fn viewer(cx: &CallContext, app_id: &str) -> Result<Viewer, Status> {
        if let Some(user) = &cx.acting_user {
            return Ok(Viewer::User(user.clone()));
        }
        if let Some(app) = AppId::parse_optional("app_id", app_id)? {
            cx.caller.require_may_assert_user()?;
            return Ok(Viewer::App(app));
        }
        Ok(Viewer::Client(cx.caller.client_id.clone()))
    }

    async fn list_external(
        &self,
        request: Request<ListExternalPermissionsRequest>,
    ) -> Result<Response<ListExternalPermissionsResponse>, Status> {
        let cx = self.context(&request).await?;
        let r = request.into_inner();
        let tenant = TenantId::parse("tenant_id", &r.tenant_id)?;
        cx.caller.require_tenant(&tenant)?;
        let user = UserId::parse("user_id", &r.user_id)?;
        let group = GroupId::parse_optional("group_id", &r.group_id)?;
        let viewer = Self::viewer(&cx, &r.app_id)?;
        let query = format!(
            "grants:{tenant}:{user}:{}:{}",
            r.group_id,
            viewer.principal()
        );
        let page = page_request(r.page_size, &r.page_token, &query)?;
        let wanted = wanted("consistency", r.consistency.as_ref())?;
        let now = Timestamp::now();
        let (page, at) = match self.source(wanted).await? {
            Source::Store => {
                let q = GrantQuery { viewer, group, now };
                self.store
                    .list_user_grants(&tenant, &user, &q, &page)
                    .await?
            }
            Source::Cache => {
                let (catalog, grants, at) = self.external(&tenant, &user).await?;
                let catalog = catalog
                    .value
                    .as_ref()
                    .ok_or_else(|| Status::not_found(format!("tenant {tenant} does not exist")))?;
                (
                    page_of(catalog, &grants.value, &viewer, group.as_ref(), now, &page)?,
                    at,
                )
            }
        };
        Ok(Response::new(ListExternalPermissionsResponse {
            next_page_token: next_page_token(&page, &query),
            permissions: page.items.iter().map(cv::grant_to_proto).collect(),
            checked_at: at.token(),
        }))
    }

    async fn check_external(
        &self,
        request: Request<CheckExternalPermissionRequest>,
    ) -> Result<Response<CheckExternalPermissionResponse>, Status> {
        let cx = self.context(&request).await?;
        let r = request.into_inner();
        let tenant = TenantId::parse("tenant_id", &r.tenant_id)?;
        cx.caller.require_tenant(&tenant)?;
        let user = UserId::parse("user_id", &r.user_id)?;
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
                return Err(Status::invalid_argument(
                    "name the permission by permission_id, or by group_id and external_id (not both)",
                ));
            }
        };
        let viewer = Self::viewer(&cx, &r.app_id)?;
        let wanted = wanted("consistency", r.consistency.as_ref())?;
        let now = Timestamp::now();
        let (grant, at) = match self.source(wanted).await? {
            Source::Store => {
                self.store
                    .find_grant(&tenant, &user, &which, &viewer)
                    .await?
            }
            Source::Cache => {
                let (catalog, grants, at) = self.external(&tenant, &user).await?;
                let catalog = catalog
                    .value
                    .as_ref()
                    .ok_or_else(|| Status::not_found(format!("tenant {tenant} does not exist")))?;
                let permission = catalog.find_visible(&which, &viewer).ok_or_else(|| {
                    Status::not_found("no such external permission is visible to the caller")
                })?;
                (
                    catalog.grant_of(&grants.value, &permission.permission_id),
                    at,
                )
            }
        };
        let live = grant.filter(|g| g.is_live(now));
        Ok(Response::new(CheckExternalPermissionResponse {
            granted: live.is_some(),
            expires_at: live.and_then(|g| g.expires_at).map(cv::timestamp_to_proto),
            checked_at: at.token(),
        }))
    }
}

/// A page of the user's visible grants from the cached catalog, keyed like the store's pages.
fn page_of(
    catalog: &ExternalCatalog,
    grants: &[UserGrant],
    viewer: &Viewer,
    group: Option<&GroupId>,
    now: Timestamp,
    page: &PageRequest,
) -> Result<Page<crate::domain::GrantView>, Status> {
    let after = match page.after.as_deref().map(|a| a.split_once('\n')) {
        None => None,
        Some(Some((g, p))) => Some((
            GroupId::parse("page_token", g)?,
            PermissionId::parse("page_token", p)?,
        )),
        Some(None) => {
            return Err(
                ValidationError::new("page_token", "is not a token from a previous page").into(),
            );
        }
    };
    let after_ref = after.as_ref().map(|(g, p)| (g, p));
    let (items, more) =
        catalog.visible_grants(grants, viewer, group, now, after_ref, page.limit as usize);
    let next = more
        .then(|| {
            items
                .last()
                .map(|g| format!("{}\n{}", g.group_id, g.permission_id))
        })
        .flatten();
    Ok(Page { items, next })
}

fn record_decision(reason: Reason) {
    metrics::counter!("consentry_decisions_total", "reason" => reason.as_str()).increment(1);
}

#[tonic::async_trait]
impl PermissionService for PermissionApi {
    async fn check_access(
        &self,
        request: Request<CheckAccessRequest>,
    ) -> Result<Response<CheckAccessResponse>, Status> {
        super::observe("CheckAccess", request, |request| async move {
            let cx = self.context(&request).await?;
            let req = request.into_inner();
            let query = self.query(&cx, &req)?;
            let source = self.source(wanted("consistency", req.consistency.as_ref())?).await?;
            let (snaps, at) = self.gather(source, std::slice::from_ref(&query)).await?;
            let decision = snaps.decide(&query);
            record_decision(decision.reason);
            tracing::debug!(tenant = %query.tenant_id, app = %query.app_id, reason = decision.reason.as_str(), "decided");
            Ok(Response::new(cv::decision_to_proto(decision, at)))
        })
        .await
    }

    async fn check_access_batch(
        &self,
        request: Request<CheckAccessBatchRequest>,
    ) -> Result<Response<CheckAccessBatchResponse>, Status> {
        super::observe("CheckAccessBatch", request, |request| async move {
            let cx = self.context(&request).await?;
            let req = request.into_inner();
            if req.items.len() > self.max_batch {
                return Err(Status::invalid_argument(format!(
                    "items: {} items; at most {} are allowed in one batch",
                    req.items.len(),
                    self.max_batch
                )));
            }
            let mut queries = Vec::with_capacity(req.items.len());
            for (i, item) in req.items.iter().enumerate() {
                if item.consistency.is_some() {
                    return Err(Status::invalid_argument(format!(
                        "items[{i}].consistency: items carry no consistency; set it on the batch"
                    )));
                }
                let query = self.query(&cx, item).map_err(|s| match s.code() {
                    tonic::Code::InvalidArgument => {
                        Status::invalid_argument(format!("items[{i}].{}", s.message()))
                    }
                    _ => Status::new(s.code(), format!("items[{i}]: {}", s.message())),
                })?;
                queries.push(query);
            }
            let source = self
                .source(wanted("consistency", req.consistency.as_ref())?)
                .await?;
            if queries.is_empty() {
                let at = match source {
                    Source::Cache => self.caches.applied(),
                    Source::Store => self.store.revision().await?,
                };
                return Ok(Response::new(CheckAccessBatchResponse {
                    results: Vec::new(),
                    checked_at: at.token(),
                }));
            }
            let (snaps, at) = self.gather(source, &queries).await?;
            let results = queries
                .iter()
                .map(|q| {
                    let decision = snaps.decide(q);
                    record_decision(decision.reason);
                    cv::decision_to_proto(decision, at)
                })
                .collect();
            Ok(Response::new(CheckAccessBatchResponse {
                results,
                checked_at: at.token(),
            }))
        })
        .await
    }

    async fn list_external_permissions(
        &self,
        request: Request<ListExternalPermissionsRequest>,
    ) -> Result<Response<ListExternalPermissionsResponse>, Status> {
        super::observe("ListExternalPermissions", request, |r| {
            self.list_external(r)
        })
        .await
    }

    async fn check_external_permission(
        &self,
        request: Request<CheckExternalPermissionRequest>,
    ) -> Result<Response<CheckExternalPermissionResponse>, Status> {
        super::observe("CheckExternalPermission", request, |r| {
            self.check_external(r)
        })
        .await
    }

    async fn get_app_scopes(
        &self,
        request: Request<GetAppScopesRequest>,
    ) -> Result<Response<GetAppScopesResponse>, Status> {
        super::observe("GetAppScopes", request, |request| async move {
            let cx = self.context(&request).await?;
            let r = request.into_inner();
            let tenant = TenantId::parse("tenant_id", &r.tenant_id)?;
            cx.caller.require_tenant(&tenant)?;
            let app = AppId::parse("app_id", &r.app_id)?;
            let source = self
                .source(wanted("consistency", r.consistency.as_ref())?)
                .await?;
            let mut settled = None;
            for _ in 0..SETTLE_ATTEMPTS {
                let entry = self.app_entry(source, &tenant, &app).await?;
                if let Some(at) = self.settle(source, &[&*entry]).await? {
                    settled = Some((entry, at));
                    break;
                }
            }
            let (entry, at) = settled.ok_or_else(|| {
                Status::unavailable("writes kept landing while the answer was read; retry")
            })?;
            let snapshot = &entry.value;
            if snapshot.tenant.is_none() {
                return Err(Status::not_found(format!("tenant {tenant} does not exist")));
            }
            let report = AppScopes::report(snapshot)
                .ok_or_else(|| Status::not_found(format!("app {app} is not registered")))?;
            Ok(Response::new(cv::app_scopes_to_proto(report, at)))
        })
        .await
    }
}
