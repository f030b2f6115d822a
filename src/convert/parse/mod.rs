//! Requests into commands: one pure, synchronous [`Parse::parse`] per request type of both
//! services, written once and called by its handler and by the fuzz targets alike
//! (`tests/fuzz/parsers.rs` lists every request type with it). A parse checks, in this order,
//! the tenant (parsed and within the caller's bounds), any refusal that depends only on the
//! caller, then every other field, and returns a command of domain types; the handler then asks
//! the reader or the store and converts the answer back. Nothing is read, written or timed here.

use crate::cache::Wanted;
use crate::domain::{Caller, Revision, TenantId, UserId, Valid, Viewer};
use crate::proto;
use crate::service::paging::{Listing, Position, page_request};
use crate::service::status::ServiceError;
use crate::store::{PageRequest, PageSecret};

mod admin;
mod permission;

pub use admin::*;
pub use permission::*;

/// A request message that validates on its own into the command its handler carries out.
pub trait Parse {
    /// The request in domain types.
    type Command;
    /// Validates the request for the caller in `cx`: `INVALID_ARGUMENT` naming the field at
    /// fault, or `PERMISSION_DENIED` for a tenant outside the caller's bounds (checked first)
    /// or a capability the request needs.
    fn parse(self, cx: &Parsing<'_>) -> Result<Self::Command, ServiceError>;
}

/// The server's limits on what one request may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The most items of one CheckAccessBatch (`--max-batch`).
    pub max_batch: usize,
}

impl Default for Limits {
    /// The limits of a server started without flags.
    fn default() -> Self {
        Limits {
            max_batch: crate::config::DEFAULT_MAX_BATCH,
        }
    }
}

/// What validation needs besides the request: who is calling, the server's limits and the
/// secret that page tokens are signed with.
#[derive(Debug, Clone, Copy)]
pub struct Parsing<'a> {
    /// The authenticated client (tenant bounds, capabilities).
    pub caller: &'a Caller,
    /// The acting user of `x-consentry-user`, if named.
    pub acting_user: Option<&'a UserId>,
    /// The server's limits.
    pub limits: Limits,
    /// The deployment's page-token secret.
    pub page_secret: &'a PageSecret,
}

impl Parsing<'_> {
    /// The request's `tenant_id`, parsed and within the caller's bounds.
    pub fn tenant(&self, value: impl AsRef<str> + Into<String>) -> Result<TenantId, ServiceError> {
        let tenant = TenantId::parse("tenant_id", value)?;
        self.caller.require_tenant(&tenant)?;
        Ok(tenant)
    }

    /// The viewer of an admin listing: the acting user, else the calling client.
    pub fn viewer(&self) -> Viewer {
        match self.acting_user {
            Some(user) => Viewer::User(user.clone()),
            None => Viewer::Client(self.caller.client_id.clone()),
        }
    }

    /// The page a listing request asks for, its token checked against `listing`.
    fn page<K: Position>(
        &self,
        page_size: i32,
        page_token: &str,
        listing: &Listing,
    ) -> Valid<PageRequest<K>> {
        page_request(self.page_secret, page_size, page_token, listing)
    }
}

/// One page of a listing: what selects its items, the page asked for, and the listing that the
/// next page's token is signed over.
#[derive(Debug, Clone)]
pub struct Listed<Q, K> {
    /// What selects the items (the tenant, filters, the viewer).
    pub of: Q,
    /// The page: its size and the position after which it starts.
    pub page: PageRequest<K>,
    /// Everything that selects the items, as page tokens bind it.
    pub listing: Listing,
}

/// What a request's consistency asks for.
pub fn wanted(c: Option<&proto::Consistency>) -> Valid<Wanted> {
    use proto::consistency::Requirement;
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

#[cfg(test)]
mod tests;
