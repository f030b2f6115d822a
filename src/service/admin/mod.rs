//! `consentry.v1.AdminService`: thin handlers that authenticate, check capability and tenant
//! bounds, validate (proto → domain, in `convert`), call the store, and map the answer back. Every
//! write goes through `AdminApi::write`; every listing through `AdminApi::list`. The rules of
//! DESIGN.md §6 run inside the store's write transactions, through the domain's rule functions.

mod handlers;

use std::sync::Arc;

use tonic::{Request, Status};

use super::auth::{Authenticator, CallContext};
use super::paging::{Listing, Position, next_page_token, page_request};
use super::status::ServiceError;
use super::{Applied, Written};
use crate::domain::{Capability, Revision, TenantId, Timestamp, Viewer};
use crate::proto::*;
use crate::store::{Page, PageRequest, Store, StoreResult, WriteCtx};

/// The AdminService over a store.
pub struct AdminApi {
    store: Arc<dyn Store>,
    auth: Authenticator,
    applied: Applied,
}

/// What a store write hands back: the revision it committed at, and anything else the reply
/// carries.
trait Wrote {
    /// The rest of the answer.
    type Extra;
    /// The revision and the rest.
    fn split(self) -> (Revision, Self::Extra);
}

impl Wrote for Revision {
    type Extra = ();
    fn split(self) -> (Revision, ()) {
        (self, ())
    }
}

impl<X> Wrote for (Revision, X) {
    type Extra = X;
    fn split(self) -> (Revision, X) {
        self
    }
}

/// A request that names the one tenant it concerns.
trait InTenant {
    /// The tenant as sent.
    fn tenant_id(&self) -> &str;
}

macro_rules! in_tenant {
    ($($request:ty),+ $(,)?) => {
        $(impl InTenant for $request {
            fn tenant_id(&self) -> &str {
                &self.tenant_id
            }
        })+
    };
}

in_tenant!(
    PutTenantRequest,
    PutUserRequest,
    DeleteUserRequest,
    GrantUserRightRequest,
    RevokeUserRightRequest,
    ApproveConsentRequest,
    RevokeConsentRequest,
    PutWhitelistEntryRequest,
    DeleteWhitelistEntryRequest,
    CreatePermissionGroupRequest,
    UpdatePermissionGroupRequest,
    DeletePermissionGroupRequest,
    CreateExternalPermissionRequest,
    DeleteExternalPermissionRequest,
    GrantExternalPermissionRequest,
    RevokeExternalPermissionRequest,
    ListUsersRequest,
    ListConsentsRequest,
    ListWhitelistEntriesRequest,
    ListPermissionGroupsRequest,
    ListUserRightsRequest,
    GrantAppRightRequest,
    RevokeAppRightRequest,
    PutApiUserRequest,
    DeleteApiUserRequest,
    ListApiUsersRequest,
);

impl AdminApi {
    /// The service over `store`; `applied` is told of every write before the reply leaves.
    pub fn new(store: Arc<dyn Store>, auth: Authenticator, applied: Applied) -> Self {
        Self {
            store,
            auth,
            applied,
        }
    }

    /// The request's freshness check, who is calling, and that the store can be reached (every
    /// admin call needs it; while it cannot, calls fail at once rather than wait).
    async fn context<T>(&self, request: &Request<T>) -> Result<CallContext, Status> {
        let caches = &self.applied.0;
        let at = caches.at()?;
        let cx = self.auth.context(request, Capability::Admin, at).await?;
        caches.require_store()?;
        Ok(cx)
    }

    /// Authenticates, then parses the request's tenant and checks it is within the caller's
    /// bounds.
    async fn tenant_context<T: InTenant>(
        &self,
        request: &Request<T>,
    ) -> Result<(CallContext, TenantId), Status> {
        let cx = self.context(request).await?;
        let tenant = TenantId::parse("tenant_id", request.get_ref().tenant_id())?;
        cx.caller.require_tenant(&tenant)?;
        Ok((cx, tenant))
    }

    /// Every audited write: authenticates, lets `write` validate the request and call the store,
    /// waits until this instance has applied the revision it wrote (so its next read sees it),
    /// and answers with that revision's token and whatever else the write returned.
    async fn write<T, W: Wrote>(
        &self,
        request: Request<T>,
        write: impl AsyncFnOnce(WriteCtx, T) -> Result<W, ServiceError>,
    ) -> Result<(String, W::Extra), Status> {
        let cx = self.context(&request).await?;
        let (revision, extra) = write(write_ctx(cx), request.into_inner()).await?.split();
        self.applied.wait_for(Written(revision)).await;
        Ok((revision.token(), extra))
    }

    /// A write within the request's tenant, checked against the caller's bounds first.
    async fn tenant_write<T: InTenant, W: Wrote>(
        &self,
        request: Request<T>,
        write: impl AsyncFnOnce(WriteCtx, TenantId, T) -> Result<W, ServiceError>,
    ) -> Result<(String, W::Extra), Status> {
        self.write(request, async |cx, r| {
            let tenant = TenantId::parse("tenant_id", r.tenant_id())?;
            cx.caller.require_tenant(&tenant)?;
            write(cx, tenant, r).await
        })
        .await
    }

    /// One page of a listing: `query` names everything that selects the items (it binds the
    /// page token); `load` reads the page after the token's position `K`; `to_proto` maps each
    /// item.
    async fn list<I, O, K: Position>(
        &self,
        (page_size, page_token): (i32, &str),
        query: &Listing,
        load: impl AsyncFnOnce(PageRequest<K>) -> StoreResult<Page<I, K>>,
        to_proto: impl Fn(&I) -> O,
    ) -> Result<(Vec<O>, String), Status> {
        let secret = self.applied.0.page_secret()?;
        let page = load(page_request(secret, page_size, page_token, query)?).await?;
        let token = next_page_token(secret, &page, query);
        Ok((page.items.iter().map(to_proto).collect(), token))
    }
}

fn write_ctx(cx: CallContext) -> WriteCtx {
    WriteCtx {
        caller: (*cx.caller).clone(),
        acting_user: cx.acting_user,
        at: Timestamp::now(),
    }
}

/// The viewer of an admin listing: the acting user, else the calling client.
fn viewer(cx: &CallContext) -> Viewer {
    match &cx.acting_user {
        Some(user) => Viewer::User(user.clone()),
        None => Viewer::Client(cx.caller.client_id.clone()),
    }
}
