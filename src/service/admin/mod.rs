//! `consentry.v1.AdminService`: thin handlers that authenticate, parse the request into its
//! command (`convert::Parse`: tenant bounds, then validation, proto → domain), call the store,
//! and map the answer back. Every write goes through `AdminApi::write`; every listing through
//! `AdminApi::list`. The rules of docs/rules.md §6 run inside the store's write transactions,
//! through the domain's rule functions.

mod handlers;

use std::sync::Arc;

use tonic::{Request, Status};

use super::auth::{Authenticator, CallContext};
use super::paging::{Position, SharedSecret, next_page_token};
use super::status::ServiceError;
use super::{Applied, Written};
use crate::convert::{Limits, Listed, Parse, Parsing};
use crate::domain::{Capability, Revision, Timestamp};
use crate::store::{Page, PageRequest, Store, StoreResult, WriteCtx};

/// The AdminService over a store.
pub struct AdminApi {
    store: Arc<dyn Store>,
    auth: Authenticator,
    applied: Applied,
    limits: Limits,
    /// What page tokens are signed with.
    page_secret: SharedSecret,
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

impl AdminApi {
    /// The service over `store`, validating requests within `limits` and signing page tokens
    /// with `page_secret`; `applied` is told of every write before the reply leaves.
    pub fn new(
        store: Arc<dyn Store>,
        auth: Authenticator,
        applied: Applied,
        limits: Limits,
        page_secret: SharedSecret,
    ) -> Self {
        Self {
            store,
            auth,
            applied,
            limits,
            page_secret,
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

    /// Authenticates, then parses the request into its command for that caller (the tenant
    /// and its bounds first).
    async fn accept<T: Parse>(
        &self,
        request: Request<T>,
    ) -> Result<(CallContext, T::Command), Status> {
        let cx = self.context(&request).await?;
        let parsing = Parsing {
            caller: &cx.caller,
            acting_user: cx.acting_user.as_ref(),
            limits: self.limits,
            page_secret: self.page_secret.get()?,
        };
        let command = request.into_inner().parse(&parsing)?;
        Ok((cx, command))
    }

    /// Every audited write: authenticates and parses the request, lets `write` call the store
    /// with the command, waits until this instance has applied the revision it wrote (so its
    /// next read sees it), and answers with that revision's token and whatever else the write
    /// returned.
    async fn write<T: Parse, W: Wrote>(
        &self,
        request: Request<T>,
        write: impl AsyncFnOnce(WriteCtx, T::Command) -> Result<W, ServiceError>,
    ) -> Result<(String, W::Extra), Status> {
        let (cx, command) = self.accept(request).await?;
        let (revision, extra) = write(write_ctx(cx), command).await?.split();
        self.applied.wait_for(Written(revision)).await;
        Ok((revision.token(), extra))
    }

    /// One page of a listing: authenticates and parses the request into what selects the
    /// items (`Q`) and the page after the token's position `K`; `load` reads the page;
    /// `to_proto` maps each item.
    async fn list<T, Q, K: Position, I, O>(
        &self,
        request: Request<T>,
        load: impl AsyncFnOnce(&Q, &PageRequest<K>) -> StoreResult<Page<I, K>>,
        to_proto: impl Fn(&Q, &I) -> O,
    ) -> Result<(Vec<O>, String), Status>
    where
        T: Parse<Command = Listed<Q, K>>,
    {
        let (_, Listed { of, page, listing }) = self.accept(request).await?;
        let page = load(&of, &page).await?;
        let token = next_page_token(self.page_secret.get()?, &page, &listing);
        Ok((page.items.iter().map(|i| to_proto(&of, i)).collect(), token))
    }
}

fn write_ctx(cx: CallContext) -> WriteCtx {
    WriteCtx {
        caller: (*cx.caller).clone(),
        acting_user: cx.acting_user,
        at: Timestamp::now(),
    }
}
