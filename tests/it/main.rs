//! consentry's integration tests, in one binary: the store conformance suite (run against
//! Postgres and SQLite), the AdminService and PermissionService over a real server, and the
//! binary end to end.

#![allow(clippy::unwrap_used, missing_docs)]

mod support;

mod admin;
mod app_rights;
mod app_rights_pending;
mod architecture;
mod bench_data;
mod citations;
mod consent_prompt;
mod context_tokens;
mod demo;
mod deploy;
mod hostile_bodies;
mod hostile_strings;
mod limits;
mod metrics_endpoint;
mod model;
mod operations;
mod overload;
mod page_tokens;
mod permission;
mod readme;
mod revoke_rights;
mod store;
mod tls;
mod token_access;
