//! Property tests for the decision engine (docs/rules.md §2–§3) over random but well-formed worlds:
//! a tenant, an application with a random manifest, an optional consent consistent with the
//! manifest it approved, an optional whitelist entry, users with random roles and rights over a
//! small path tree, and random queries drawn from the same pools. This module holds the pools,
//! the world and the query; `strategies.rs` generates them; the properties live by family:
//!
//! * `decision.rs`: the shape of a decision, determinism, revocation, scopes (§3);
//! * `paths.rs`: rights down the path tree and path validation (§2 "Resources", "Rights");
//! * `monotone.rs`: more rights, grants or whitelisting never take an ALLOW away, and a
//!   downgraded manifest never widens access (§2 "Effective grant", §3);
//! * `prompt.rs`: the consent prompt agrees with GetAppScopes and the approval rule (§8);
//! * `app_rights.rs`: a site-level app right never takes an ALLOW away and never allows above
//!   the manifest's request nor the approved one, whatever is stored (§2, §8);
//! * `tokens.rs`: a context token's `rights` against the engine (§8 "Context tokens");
//! * `search.rs`: the action and resource searches against the engine (§10);
//! * `model.rs`: the engine against a literal model of §2, §3 and §8 that shares nothing with it
//!   but the types: every decision, a context token's claims and the app-right ceiling.
//!
//! The number of cases follows `PROPTEST_CASES` (proptest's default configuration). A property
//! that can return before its comparison runs through [`counted`] (or `monotone`), which fails
//! when too few cases reach the comparison.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::testing::{self, path, scope};

mod app_rights;
mod decision;
mod model;
mod monotone;
mod paths;
mod prompt;
mod search;
mod strategies;
mod tokens;

// ---------------------------------------------------------------------------------------------
// Pools
// ---------------------------------------------------------------------------------------------

const SCOPES: [&str; 4] = ["docs:read", "docs:write", "mail", "x.y"];

/// A small tree with siblings that share a prefix (`/a`, `/ab`; `/a/b`, `/a/bc`), so a grant
/// that leaked by string prefix would show.
const PATHS: [&str; 12] = [
    "/", "/a", "/b", "/ab", "/a/b", "/a/bc", "/b/x", "/a/b/c", "/a/b/cd", "/b/x/y", "/a/b/c/d",
    "/ab/b",
];

/// Resources a query may name: the tree, plus deeper and unrelated paths.
const RESOURCES: [&str; 16] = [
    "/",
    "/a",
    "/b",
    "/ab",
    "/a/b",
    "/a/bc",
    "/b/x",
    "/a/b/c",
    "/a/b/cd",
    "/b/x/y",
    "/a/b/c/d",
    "/ab/b",
    "/a/b/c/d/e",
    "/b/x/y/z",
    "/c",
    "/a/c",
];

/// Users a world may know.
const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];

/// Users a query may name: the known ones and one the tenant never knows.
const QUERY_USERS: [&str; 5] = ["u0", "u1", "u2", "u3", "ghost"];

/// Every name a check may ask for (each level and each fine-grained permission), parsed.
fn every_permission() -> Vec<PermissionName> {
    Right::ALL
        .iter()
        .map(|r| r.as_str())
        .chain(FinePermission::ALL.iter().map(|p| p.as_str()))
        .map(|name| PermissionName::parse("permission", name).unwrap())
        .collect()
}

fn paths_at_depth(depth: usize) -> Vec<&'static str> {
    PATHS
        .iter()
        .copied()
        .filter(|p| path(p).depth() == depth)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Worlds and queries
// ---------------------------------------------------------------------------------------------

/// A consent: the manifest approved, its requests resolved, the site-level app rights stored
/// with it (fitting or not), maybe revoked.
#[derive(Debug, Clone)]
struct ConsentFacts {
    approved: Manifest,
    resolved: Vec<ResolvedRequest>,
    app_rights: Vec<ResolvedRequest>,
    revoked: bool,
}

/// Everything one check reads, in a form that is easy to change.
#[derive(Debug, Clone)]
struct World {
    tenant_exists: bool,
    app_exists: bool,
    whitelisting: bool,
    kind: AppKind,
    current: Manifest,
    consent: Option<ConsentFacts>,
    whitelist: Option<WhitelistEntry>,
    users: BTreeMap<&'static str, UserSnapshot>,
}

impl World {
    /// The users the engine gets for `q`: the acting user and the one acted for, if known.
    fn users(&self, q: &AccessQuery) -> UserFacts<'_> {
        UserFacts {
            user: q.user_id.as_ref().and_then(|u| self.users.get(u.as_str())),
            target: q
                .on_behalf_of
                .as_ref()
                .and_then(|u| self.users.get(u.as_str())),
        }
    }

    fn snapshot(&self) -> AppSnapshot {
        let tenant = self
            .tenant_exists
            .then(|| testing::tenant("acme", "production", self.whitelisting));
        let app = self
            .app_exists
            .then(|| testing::app("crm", self.kind, self.current.clone(), 2));
        let consent = self.consent.as_ref().map(|c| {
            // The strategies only build consistent consents; this re-checks them.
            let mut consent = testing::consent(
                &c.approved,
                1,
                c.resolved.clone(),
                Timestamp::from_micros(1),
            );
            consent.revoked_at = c.revoked.then(|| Timestamp::from_micros(5));
            // Stored as GrantAppRight stores them: one per resource, the later replacing.
            c.app_rights
                .iter()
                .fold(consent, |c, r| c.with_app_right(r.clone()))
        });
        AppSnapshot::new(tenant, app, consent, self.whitelist.clone())
    }

    /// Gives `id` more: the union of roles, and at each path the higher of the two rights.
    /// A user the tenant did not know becomes known.
    fn give(&mut self, id: &'static str, roles: RoleSet, rights: &[(&'static str, Right)]) {
        let u = self.users.entry(id).or_insert_with(|| UserSnapshot {
            known: true,
            ..UserSnapshot::default()
        });
        u.roles = RoleSet::of(u.roles.roles().chain(roles.roles()));
        for &(p, r) in rights {
            let held = u.rights.entry(path(p)).or_insert(r);
            *held = (*held).max(r);
        }
    }
}

/// A query over the pools; empty strings are absent fields.
#[derive(Debug, Clone, Copy)]
struct Ask {
    user: &'static str,
    on_behalf_of: &'static str,
    scope: &'static str,
    permission: &'static str,
    resource: &'static str,
    explain: bool,
}

impl Ask {
    fn query(&self) -> AccessQuery {
        AccessQuery::parse(&RawAccessQuery {
            tenant_id: "acme",
            app_id: "crm",
            user_id: self.user,
            on_behalf_of: self.on_behalf_of,
            scope: self.scope,
            permission: self.permission,
            resource: self.resource,
            explain: self.explain,
        })
        .unwrap()
    }
}

fn decide_query(w: &World, query: &AccessQuery) -> Decision {
    decide_with(w, &w.snapshot(), query)
}

/// The decision for `query` in `w`, with `snapshot` in place of the world's own.
fn decide_with(w: &World, snapshot: &AppSnapshot, query: &AccessQuery) -> Decision {
    let users = UserFacts {
        user: query.user_id.as_ref().and_then(|u| w.users.get(u.as_str())),
        target: query
            .on_behalf_of
            .as_ref()
            .and_then(|u| w.users.get(u.as_str())),
    };
    check_access(query, snapshot, users)
}

fn decide(w: &World, ask: &Ask) -> Decision {
    decide_query(w, &ask.query())
}

/// Runs `property` over `strategy` with proptest's configuration (`PROPTEST_CASES` included);
/// `property` answers whether the case reached the comparison the property is about. Fails on a
/// counterexample (shrunk) or when fewer than `min_share` of the cases reached it, so a generator
/// that drifted away from the cases that matter proves nothing silently.
fn counted<S>(
    name: &str,
    min_share: f64,
    strategy: S,
    property: impl Fn(S::Value) -> Result<bool, TestCaseError>,
) where
    S: Strategy,
{
    use std::sync::atomic::{AtomicU32, Ordering};
    let (cases, reached) = (AtomicU32::new(0), AtomicU32::new(0));
    let config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let mut runner = proptest::test_runner::TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, |value| {
        let hit = property(value)?;
        cases.fetch_add(1, Ordering::Relaxed);
        reached.fetch_add(u32::from(hit), Ordering::Relaxed);
        Ok(())
    }) {
        panic!("{name}: {e}");
    }
    let (cases, reached) = (cases.into_inner(), reached.into_inner());
    assert_share(name, "reached the comparison", reached, cases, min_share);
}

/// Fails when fewer than `min_share` of `cases` did `what` (`reached` of them did).
fn assert_share(name: &str, what: &str, reached: u32, cases: u32, min_share: f64) {
    let share = f64::from(reached) / f64::from(cases.max(1));
    assert!(
        share >= min_share,
        "{name}: only {reached} of {cases} cases {what} ({:.1}%, want at least {:.0}%)",
        share * 100.0,
        min_share * 100.0
    );
}
