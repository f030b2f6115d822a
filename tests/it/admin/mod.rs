//! The AdminService over the wire: every RPC through a tonic client against a real server on an
//! ephemeral port and a fresh database of its own (Postgres as `admin::<area>::postgres_only::*`;
//! a representative subset on both backends as `admin::<area>::postgres::*` and
//! `admin::<area>::sqlite::*`), plus the real binary across a restart and its `client` commands.
//! It checks docs/rules.md §5 (callers) and §6 (writes): the status of every kind of failure, one
//! test per row of the rule table, an audit event for every write RPC (enumerated from the
//! service descriptor), atomicity, paging and persistence.
//!
//! This module holds what the areas share: the service's methods (from its descriptor), paging,
//! the `acme` world, reading the audit log and comparing the JSON an audit event records.

use std::collections::BTreeSet;

use consentry::proto::*;
use prost_reflect::DescriptorPool;
use serde_json::Value;
use tonic::Code;

use crate::support::calls::{Who, ok};
use crate::support::world::{Admin, new_client, put_tenant, put_user, register};

mod api_users;
mod audit;
mod auth;
mod binary;
mod errors;
mod lists;
mod rules_apps;
mod rules_clients;
mod rules_groups;
mod rules_users;
mod validation;
mod writes;

// ---------------------------------------------------------------------------------------------
// The service's methods, and paging.

/// The methods of `consentry.v1.AdminService`, from the descriptor set the server reflects.
fn admin_methods() -> BTreeSet<String> {
    let pool = DescriptorPool::decode(consentry::proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    let methods: BTreeSet<String> = pool
        .get_service_by_name("consentry.v1.AdminService")
        .expect("the descriptor set has the AdminService")
        .methods()
        .map(|m| m.name().to_owned())
        .collect();
    assert!(
        methods.len() >= 20,
        "AdminService has too few methods: {methods:?}"
    );
    methods
}

/// The write RPCs: every method that is not a `List*`.
fn write_methods() -> BTreeSet<String> {
    admin_methods()
        .into_iter()
        .filter(|m| !m.starts_with("List"))
        .collect()
}

/// Every page of a listing, `$size` items at a time, from the first to the one with an empty
/// `next_page_token`, each page as the keys `$key` gives its items.
macro_rules! pages {
    ($a:expr, $who:expr, $size:expr, $method:ident, $request:expr, $field:ident, $key:expr) => {{
        let mut all: Vec<Vec<String>> = Vec::new();
        let mut token = String::new();
        loop {
            let request = Paged::page($request, $size, token.clone());
            let reply = ok($a.$method($who.r(request)).await);
            all.push(reply.$field.iter().map($key).collect::<Vec<String>>());
            if reply.next_page_token.is_empty() {
                break;
            }
            assert!(all.len() < 1000, "paging never ends");
            token = reply.next_page_token;
        }
        all
    }};
}
use pages;

/// A List* request whose page can be set.
trait Paged {
    fn page(self, page_size: i32, page_token: String) -> Self;
}

macro_rules! paged {
    ($($request:ty),+ $(,)?) => {
        $(
            impl Paged for $request {
                // Some requests have no other fields.
                #[allow(clippy::needless_update)]
                fn page(self, page_size: i32, page_token: String) -> Self {
                    Self { page_size, page_token, ..self }
                }
            }
        )+
    };
}

paged!(
    ListTenantsRequest,
    ListAppsRequest,
    ListClientsRequest,
    ListUsersRequest,
    ListConsentsRequest,
    ListWhitelistEntriesRequest,
    ListPermissionGroupsRequest,
    ListUserRightsRequest,
    ListAuditEventsRequest,
    ListApiUsersRequest,
);

// ---------------------------------------------------------------------------------------------
// Worlds.

const ACME: &str = "acme";

/// What a caller without the right to a write gets.
const DENIED: Code = Code::PermissionDenied;

/// The tenant `acme` with alice (GENERAL_ADMIN, its first administrator), bob
/// (PERMISSION_MANAGER) and carol (no roles).
async fn acme(a: &mut Admin) {
    put_tenant(a, ACME).await;
    put_user(a, &Who::boot(), ACME, "alice", &[Role::GeneralAdmin]).await;
    put_user(
        a,
        &Who::boot().user("alice"),
        ACME,
        "bob",
        &[Role::PermissionManager],
    )
    .await;
    put_user(a, &Who::boot(), ACME, "carol", &[]).await;
}

/// Every audit event `who` may see matching `filter`, oldest first.
async fn events(a: &mut Admin, who: &Who, filter: ListAuditEventsRequest) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let reply = ok(a
            .list_audit_events(who.r(ListAuditEventsRequest {
                page_size: 500,
                page_token: token.clone(),
                ..filter.clone()
            }))
            .await);
        out.extend(reply.events);
        if reply.next_page_token.is_empty() {
            return out;
        }
        token = reply.next_page_token;
    }
}

/// Every audit event, as the bootstrap client sees them.
async fn all_events(a: &mut Admin) -> Vec<AuditEvent> {
    events(a, &Who::boot(), ListAuditEventsRequest::default()).await
}

// ---------------------------------------------------------------------------------------------
// Audit values.

/// Whether `actual` has everything `expected` has: objects may have more keys, arrays match
/// element by element.
fn includes(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| includes(av, v))),
        (Value::Array(a), Value::Array(e)) => {
            a.len() == e.len() && a.iter().zip(e).all(|(x, y)| includes(x, y))
        }
        _ => actual == expected,
    }
}

fn parse_json(what: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: {text:?} is not JSON: {e}"))
}
