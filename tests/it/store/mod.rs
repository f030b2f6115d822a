//! The store conformance suite: one set of behavioural tests, run through the `Store` trait
//! against Postgres and SQLite (`store::<area>::postgres::*`, `store::<area>::sqlite::*`), each
//! test on a fresh database with data of its own. It checks docs/rules.md §2, §5 and §6 as the store
//! implements them: revisions and audit events, the write rules, cascades, visibility, paging,
//! atomicity of failed writes and persistence across a restart.
//!
//! This module holds what the areas share: values, the checks every write gets (one revision,
//! one audit event; a refused write leaves no trace), paging, and small worlds.

use std::collections::{BTreeMap, BTreeSet};

use consentry::domain::{
    AppId, AppKind, AppSnapshot, Caller, Capabilities, Capability, ClientId, Consent, ConsentState,
    ContentAccess, Description, ExternalId, ExternalPermission, GrantView, GroupAcl, GroupId,
    ManagerAccess, Manifest, Name, PermissionGroup, PermissionId, ReapprovalReason, Revision,
    Right, Role, RoleSet, RuleError, ScopeLevel, Tag, TenantBounds, TenantId, Timestamp, Viewer,
    WhitelistEntry,
};
use consentry::store::change::ChangeKey;
use consentry::store::{
    AuditEvent, AuditFilter, BootstrapOutcome, GrantQuery, GroupSpec, PageRequest, PermissionRef,
    Store, StoreError, WriteCtx,
};
use consentry::testing::{manifest, path, principal, resolved as rr, scopes, tenant, uid};
use serde_json::{Value, json};

mod apps;
mod audit;
mod clients;
mod external;
mod history;
mod lists;
mod locks;
mod pool;
mod recognised;
mod standby;
mod tenants;
mod writes;

// ---------------------------------------------------------------------------------------------
// Values.

fn tid(s: &str) -> TenantId {
    TenantId::parse("tenant_id", s).unwrap()
}

fn aid(s: &str) -> AppId {
    AppId::parse("app_id", s).unwrap()
}

fn cid(s: &str) -> ClientId {
    ClientId::parse("client_id", s).unwrap()
}

fn gid(s: &str) -> GroupId {
    GroupId::parse("group_id", s).unwrap()
}

fn pid(s: &str) -> PermissionId {
    PermissionId::parse("permission_id", s).unwrap()
}

fn name(s: &str) -> Name {
    Name::parse("name", s).unwrap()
}

fn roles(r: &[Role]) -> RoleSet {
    RoleSet::of(r.iter().copied())
}

/// A point in time `secs` seconds after a fixed instant (the tests never read the clock).
fn at(secs: i64) -> Timestamp {
    Timestamp::from_micros(1_700_000_000_000_000 + secs * 1_000_000)
}

fn only(tenants: &[&str]) -> TenantBounds {
    TenantBounds::Only(tenants.iter().map(|t| tid(t)).collect())
}

fn caller(id: &str, tenants: TenantBounds, caps: &[Capability]) -> Caller {
    Caller {
        client_id: cid(id),
        tenants,
        capabilities: Capabilities::of(caps.iter().copied()),
    }
}

/// The operator's client: every tenant, every capability.
fn root() -> Caller {
    caller("root", TenantBounds::All, &Capability::ALL)
}

fn ctx(caller: &Caller, acting_user: Option<&str>, secs: i64) -> WriteCtx {
    WriteCtx {
        caller: caller.clone(),
        acting_user: acting_user.map(uid),
        at: at(secs),
    }
}

/// The root client with no acting user.
fn by_root() -> WriteCtx {
    ctx(&root(), None, 0)
}

/// The root client naming `user` as the acting user.
fn by(user: &str) -> WriteCtx {
    ctx(&root(), Some(user), 0)
}

fn acl(managers: &[(&str, ManagerAccess)], grantors: &[&str], visible_to: &[&str]) -> GroupAcl {
    GroupAcl::new(
        managers.iter().map(|(p, a)| (principal(p), *a)).collect(),
        grantors.iter().map(|p| principal(p)).collect(),
        visible_to.iter().map(|p| principal(p)).collect(),
    )
    .unwrap()
}

fn spec(id: &str, group_name: &str, acl: GroupAcl) -> GroupSpec {
    GroupSpec {
        group_id: gid(id),
        name: name(group_name),
        description: Description::parse("description", "").unwrap(),
        acl,
    }
}

fn permission(id: &str, group: &str, external_id: &str) -> ExternalPermission {
    ExternalPermission {
        permission_id: pid(id),
        group_id: gid(group),
        name: name(&format!("Permission {id}")),
        description: Description::parse("description", "what it allows").unwrap(),
        external_id: ExternalId::parse("external_id", external_id).unwrap(),
    }
}

fn first_page<K>(limit: u32) -> PageRequest<K> {
    PageRequest { after: None, limit }
}

/// An audit event's before or after value, parsed.
fn parsed(text: &Option<String>) -> Value {
    serde_json::from_str(text.as_deref().expect("the audit event records this value")).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Checks shared by the tests.

/// Every audit event, oldest first.
async fn events(s: &dyn Store) -> Vec<AuditEvent> {
    events_where(s, &AuditFilter::default()).await
}

/// The audit events matching `filter`, oldest first, read page by page.
async fn events_where(s: &dyn Store, filter: &AuditFilter) -> Vec<AuditEvent> {
    all_pages!(50, |page| s.list_audit_events(filter, &page).await.unwrap()).0
}

fn revisions(events: &[AuditEvent]) -> Vec<u64> {
    events.iter().map(|e| e.revision.0).collect()
}

/// What a successful write returns, for its revision.
trait Written {
    fn written_at(&self) -> Revision;
}

impl Written for Revision {
    fn written_at(&self) -> Revision {
        *self
    }
}

impl<T> Written for (Revision, T) {
    fn written_at(&self) -> Revision {
        self.0
    }
}

/// Checks a write that returned `written` after the store was at `before`: it took the next
/// revision, with a tag of its own, `revision()` says so, and it appended exactly one audit
/// event, at that revision (so there is one event per revision). Returns the event.
async fn check_written(s: &dyn Store, before: Revision, written: Revision) -> AuditEvent {
    assert_eq!(written, Revision::number(before.0 + 1), "written_at");
    let head = s.revision().await.unwrap();
    assert_ne!(head.tag(), Tag::NONE, "a write's revision has a tag");
    // (A write that answers no revision of its own is checked by its number.)
    assert!(
        head.same_point(written) || (head == written && written.tag() == Tag::NONE),
        "revision() after the write: {head:?}, written {written:?}"
    );
    let all = events(s).await;
    assert_eq!(
        revisions(&all),
        (1..=written.0).collect::<Vec<_>>(),
        "one audit event per revision"
    );
    let event = all.last().cloned().unwrap();
    assert!(
        event.revision.same_point(head),
        "the audit event records the revision with its tag"
    );
    event
}

/// Checks that nothing was written since the store was at `before`.
async fn check_untouched(s: &dyn Store, before: Revision) {
    let head = s.revision().await.unwrap();
    assert!(
        head.same_point(before),
        "revision() after a refused write: {head:?}, before {before:?}"
    );
    assert_eq!(
        events(s).await.len() as u64,
        before.0,
        "audit events after a refused write"
    );
}

/// Reads every page of a list: `all_pages!(limit, |page| <the page for `page`>)` gives the
/// items and the size of each page, checking that only the last page has no `next`.
macro_rules! all_pages {
    ($limit:expr, |$page:ident| $list:expr) => {{
        let limit: u32 = $limit;
        let mut items = Vec::new();
        let mut sizes: Vec<usize> = Vec::new();
        let mut after = None;
        loop {
            let $page = PageRequest {
                after: after.take(),
                limit,
            };
            let got = $list;
            assert!(
                got.items.len() <= limit as usize,
                "a page holds at most its limit"
            );
            assert!(sizes.len() < 10_000, "paging does not end");
            sizes.push(got.items.len());
            items.extend(got.items);
            match got.next {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        (items, sizes)
    }};
}
use all_pages;

/// `wrote!(s, call)`: runs a write that must succeed, checks [`check_written`], and gives its
/// result and its audit event.
macro_rules! wrote {
    ($s:expr, $call:expr) => {{
        let before = $s.revision().await.unwrap();
        let out = $call
            .await
            .unwrap_or_else(|e| panic!("{} failed: {e:?}", stringify!($call)));
        let event = check_written($s, before, Written::written_at(&out)).await;
        (out, event)
    }};
}
use wrote;

/// `refused!(s, call, pattern)`: runs a write that must fail with `Err(pattern)` and checks that
/// it left no trace (no revision, no audit event).
macro_rules! refused {
    ($s:expr, $call:expr, $pattern:pat) => {{
        let before = $s.revision().await.unwrap();
        let result = $call.await;
        assert!(
            matches!(result, Err($pattern)),
            "{}: expected Err({}), got {:?}",
            stringify!($call),
            stringify!($pattern),
            result
        );
        check_untouched($s, before).await;
    }};
}
use refused;

/// The `StoreError` patterns the tests expect.
macro_rules! denied {
    () => {
        StoreError::Rule(RuleError::Denied(_))
    };
}
use denied;

// ---------------------------------------------------------------------------------------------
// Small worlds.

/// Creates a tenant (production, whitelisting off) with `admin` as its first GENERAL_ADMIN.
async fn tenant_with_admin(s: &dyn Store, t: &str, admin: &str) {
    s.put_tenant(&by_root(), &tenant(t, "production", false))
        .await
        .unwrap();
    s.put_user(
        &by_root(),
        &tid(t),
        &uid(admin),
        roles(&[Role::GeneralAdmin]),
    )
    .await
    .unwrap();
}

/// Adds users without roles.
async fn plain_users(s: &dyn Store, t: &str, users: &[&str]) {
    for u in users {
        s.put_user(&by_root(), &tid(t), &uid(u), RoleSet::EMPTY)
            .await
            .unwrap();
    }
}

async fn register(s: &dyn Store, app: &str, kind: AppKind, m: &Manifest) {
    s.register_app(&by_root(), &aid(app), &name(app), kind, m)
        .await
        .unwrap();
}

async fn snapshot(s: &dyn Store, t: &str, app: &str) -> AppSnapshot {
    let (snap, rev) = s
        .app_snapshot(&tid(t), &aid(app), consentry::store::ReadFrom::Primary)
        .await
        .unwrap();
    assert_eq!(rev, s.revision().await.unwrap(), "app_snapshot's revision");
    snap
}

async fn groups_seen_by(s: &dyn Store, t: &str, viewer: &Viewer) -> Vec<PermissionGroup> {
    all_pages!(100, |page| s
        .list_groups(&tid(t), viewer, &page)
        .await
        .unwrap())
    .0
    .into_iter()
    .map(|g| g.group)
    .collect()
}

fn grant_query(viewer: Viewer, group: Option<&str>, now: Timestamp) -> GrantQuery {
    GrantQuery {
        viewer,
        group: group.map(gid),
        now,
    }
}

/// A user's grants visible to `viewer` at `now`, as (group, permission) pairs, every page read.
async fn grant_keys(
    s: &dyn Store,
    t: &str,
    user: &str,
    query: &GrantQuery,
) -> Vec<(String, String)> {
    all_pages!(100, |page| {
        s.list_user_grants(&tid(t), &uid(user), query, &page)
            .await
            .unwrap()
            .0
    })
    .0
    .iter()
    .map(|g| (g.group_id.to_string(), g.permission_id.to_string()))
    .collect()
}

async fn find(
    s: &dyn Store,
    t: &str,
    user: &str,
    permission: &PermissionRef,
    viewer: &Viewer,
) -> Result<Option<GrantView>, StoreError> {
    s.find_grant(&tid(t), &uid(user), permission, viewer)
        .await
        .map(|(grant, _)| grant)
}
