//! The store conformance suite: one set of behavioural tests, run through the `Store` trait
//! against Postgres and SQLite (`store::postgres::*`, `store::sqlite::*`), each test on a
//! fresh database with data of its own. It checks DESIGN.md §2, §5 and §6 as the store
//! implements them: revisions and audit events, the write rules, cascades, visibility, paging,
//! atomicity of failed writes and persistence across a restart.

use std::collections::{BTreeMap, BTreeSet};

use consentry::domain::{
    AppId, AppKind, AppSnapshot, Caller, Capabilities, Capability, ClientId, Consent, ConsentState,
    ContentAccess, Description, ExternalId, ExternalPermission, GrantView, GroupAcl, GroupId,
    ManagerAccess, Manifest, ManifestParts, Name, PermissionGroup, PermissionId, PermissionRequest,
    Principal, ReapprovalReason, ResolvedRequest, ResourcePath, Revision, Right, Role, RoleSet,
    RuleError, Scope, ScopeLevel, Tenant, TenantBounds, TenantId, Timestamp, UserId, Viewer,
    WhitelistEntry,
};
use consentry::store::change::ChangeKey;
use consentry::store::{
    AuditEvent, AuditFilter, BootstrapOutcome, GrantQuery, GroupSpec, PageRequest, PermissionRef,
    Store, StoreError, WriteCtx,
};
use serde_json::{Value, json};

use crate::support::db::{TestDb, backend_tests};

backend_tests!(
    revision_starts_at_zero_and_every_write_appends_one_audit_event,
    tenants_are_created_by_star_clients_and_keep_their_environment,
    roles_need_an_acting_administrator_except_the_first_one,
    deleting_a_user_takes_their_rights_grants_and_group_entries,
    a_user_holds_one_right_level_per_path,
    apps_are_registered_updated_and_unregistered_by_app_managers,
    standard_apps_are_approved_by_tenant_administrators,
    custom_apps_are_first_activated_by_app_managers,
    whitelist_entries_are_kept_by_tenant_administrators,
    permission_groups_are_managed_by_read_write_managers,
    external_permissions_are_granted_by_grantors_and_found_by_viewers,
    a_users_grants_list_what_the_viewer_sees_in_complete_stable_pages,
    clients_are_created_found_by_key_hash_and_revoked,
    every_list_pages_completely_in_id_order,
    audit_events_filter_by_tenant_target_actor_time_and_visibility,
    a_write_that_fails_part_way_leaves_no_trace,
    a_restarted_store_keeps_everything,
    concurrent_writes_take_consecutive_revisions,
);

// ---------------------------------------------------------------------------------------------
// Values.

fn tid(s: &str) -> TenantId {
    TenantId::parse("tenant_id", s).unwrap()
}

fn uid(s: &str) -> UserId {
    UserId::parse("user_id", s).unwrap()
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

fn path(s: &str) -> ResourcePath {
    ResourcePath::parse("resource", s).unwrap()
}

fn scope(s: &str) -> Scope {
    Scope::parse("scope", s).unwrap()
}

fn principal(s: &str) -> Principal {
    Principal::parse("principal", s).unwrap()
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

fn tenant(id: &str, environment: &str, whitelisting_enabled: bool) -> Tenant {
    Tenant {
        tenant_id: tid(id),
        environment: consentry::domain::Environment::parse("environment", environment).unwrap(),
        whitelisting_enabled,
    }
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

fn manifest(scopes: &[&str], requests: &[(ScopeLevel, Right)]) -> Manifest {
    Manifest::parse(ManifestParts {
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        permission_requests: requests
            .iter()
            .map(|&(scope_level, right)| PermissionRequest { scope_level, right })
            .collect(),
        ..ManifestParts::default()
    })
    .unwrap()
}

fn rr(scope_level: ScopeLevel, right: Right, resource: &str) -> ResolvedRequest {
    ResolvedRequest {
        scope_level,
        right,
        resource: path(resource),
    }
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

fn scopes(items: &[&str]) -> BTreeSet<Scope> {
    items.iter().map(|s| scope(s)).collect()
}

fn first_page(limit: u32) -> PageRequest {
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
/// revision, `revision()` says so, and it appended exactly one audit event, at that revision
/// (so there is one event per revision). Returns the event.
async fn check_written(s: &dyn Store, before: Revision, written: Revision) -> AuditEvent {
    assert_eq!(written, Revision(before.0 + 1), "written_at");
    assert_eq!(
        s.revision().await.unwrap(),
        written,
        "revision() after the write"
    );
    let all = events(s).await;
    assert_eq!(
        revisions(&all),
        (1..=written.0).collect::<Vec<_>>(),
        "one audit event per revision"
    );
    all.last().cloned().unwrap()
}

/// Checks that nothing was written since the store was at `before`.
async fn check_untouched(s: &dyn Store, before: Revision) {
    assert_eq!(
        s.revision().await.unwrap(),
        before,
        "revision() after a refused write"
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
        let mut after: Option<String> = None;
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

/// The `StoreError` patterns the tests expect.
macro_rules! denied {
    () => {
        StoreError::Rule(RuleError::Denied(_))
    };
}

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
    let (snap, rev) = s.app_snapshot(&tid(t), &aid(app)).await.unwrap();
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

// ---------------------------------------------------------------------------------------------
// Revision and audit.

async fn revision_starts_at_zero_and_every_write_appends_one_audit_event(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    assert_eq!(s.revision().await.unwrap(), Revision(0));
    assert!(events(s).await.is_empty());
    let acme = tid("acme");

    let ((written, created), ev) = wrote!(
        s,
        s.put_tenant(&ctx(&root(), None, 1), &tenant("acme", "production", false))
    );
    assert!(created);
    assert_eq!(written, Revision(1));
    assert_eq!(ev.revision, Revision(1));
    assert_eq!(ev.at, at(1));
    assert_eq!(ev.actor_client, "root");
    assert_eq!(ev.actor_user, None);
    assert_eq!(ev.action, "PutTenant");
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    assert_eq!(ev.target, "tenant:acme");
    assert_eq!(ev.before, None);
    let after = parsed(&ev.after);
    assert_eq!(after["tenant_id"], "acme");
    assert_eq!(after["environment"], "production");
    assert_eq!(after["whitelisting_enabled"], false);

    let (written, ev) = wrote!(
        s,
        s.put_user(
            &ctx(&root(), None, 2),
            &acme,
            &uid("alice"),
            roles(&[Role::GeneralAdmin])
        )
    );
    assert_eq!(written, Revision(2));
    assert_eq!(
        (ev.action.as_str(), ev.target.as_str()),
        ("PutUser", "user:alice")
    );
    assert_eq!(ev.at, at(2));
    assert_eq!(ev.before, None);
    assert_eq!(parsed(&ev.after)["roles"], json!(["GENERAL_ADMIN"]));

    // The acting user is recorded beside the client.
    let (_, ev) = wrote!(
        s,
        s.put_user(
            &ctx(&root(), Some("alice"), 3),
            &acme,
            &uid("bob"),
            roles(&[Role::Delegate])
        )
    );
    assert_eq!(ev.actor_client, "root");
    assert_eq!(ev.actor_user, Some(uid("alice")));
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    // Replacing records what was there before.
    let (_, ev) = wrote!(
        s,
        s.put_user(
            &ctx(&root(), Some("alice"), 4),
            &acme,
            &uid("bob"),
            RoleSet::EMPTY
        )
    );
    assert_eq!(parsed(&ev.before)["roles"], json!(["DELEGATE"]));
    assert_eq!(parsed(&ev.after), json!({"user_id": "bob", "roles": []}));

    // Refused writes take no revision and leave no event ...
    refused!(
        s,
        s.put_user(&by_root(), &tid("nowhere"), &uid("x"), RoleSet::EMPTY),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.put_user(&by_root(), &acme, &uid("carol"), roles(&[Role::UserAdmin])),
        denied!()
    );
    // ... so the next write takes the very next one.
    let (written, _) = wrote!(
        s,
        s.put_user(&by_root(), &acme, &uid("carol"), RoleSet::EMPTY)
    );
    assert_eq!(written, Revision(5));

    let all = events(s).await;
    assert_eq!(revisions(&all), [1, 2, 3, 4, 5]);
    assert_eq!(
        all.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["PutTenant", "PutUser", "PutUser", "PutUser", "PutUser"]
    );
    // Audit rows are never updated or deleted: the schema refuses it.
    for sql in [
        "UPDATE audit_events SET action = 'Forged'",
        "DELETE FROM audit_events",
    ] {
        let got = sqlx::query(sql).execute(store.pool()).await;
        assert!(got.is_err(), "{sql}: {got:?}");
    }
    assert_eq!(events(s).await, all);
    // Reads report the revision they were read at.
    assert_eq!(
        s.user_snapshot(&acme, &uid("bob")).await.unwrap().1,
        Revision(5)
    );
}

// ---------------------------------------------------------------------------------------------
// Tenants.

async fn tenants_are_created_by_star_clients_and_keep_their_environment(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    let bounded = caller(
        "acme-ops",
        only(&["acme"]),
        &[Capability::Admin, Capability::AssertUser],
    );

    // Creating a tenant needs a client with `*` tenants.
    refused!(
        s,
        s.put_tenant(
            &ctx(&bounded, None, 0),
            &tenant("acme", "production", false)
        ),
        denied!()
    );
    assert_eq!(s.tenant(&acme).await.unwrap(), None);
    let ((_, created), _) = wrote!(
        s,
        s.put_tenant(&by_root(), &tenant("acme", "production", false))
    );
    assert!(created);
    assert_eq!(
        s.tenant(&acme).await.unwrap(),
        Some(tenant("acme", "production", false))
    );

    // Putting it again as it is: not created (a client bound to it may do that).
    let ((_, created), ev) = wrote!(
        s,
        s.put_tenant(
            &ctx(&bounded, None, 0),
            &tenant("acme", "production", false)
        )
    );
    assert!(!created);
    assert_eq!(parsed(&ev.before), parsed(&ev.after));

    // The environment never changes.
    refused!(
        s,
        s.put_tenant(&by_root(), &tenant("acme", "stage", false)),
        StoreError::Rule(RuleError::FailedPrecondition(_))
    );
    assert_eq!(
        s.tenant(&acme).await.unwrap(),
        Some(tenant("acme", "production", false))
    );

    // Switching whitelisting needs an acting tenant administrator.
    s.put_user(
        &by_root(),
        &acme,
        &uid("alice"),
        roles(&[Role::GeneralAdmin]),
    )
    .await
    .unwrap();
    plain_users(s, "acme", &["bob"]).await;
    let on = tenant("acme", "production", true);
    refused!(s, s.put_tenant(&by_root(), &on), denied!());
    refused!(s, s.put_tenant(&by("bob"), &on), denied!());
    refused!(s, s.put_tenant(&by("ghost"), &on), denied!());
    let ((_, created), ev) = wrote!(s, s.put_tenant(&by("alice"), &on));
    assert!(!created);
    assert_eq!(ev.actor_user, Some(uid("alice")));
    assert_eq!(parsed(&ev.before)["whitelisting_enabled"], false);
    assert_eq!(parsed(&ev.after)["whitelisting_enabled"], true);
    assert_eq!(s.tenant(&acme).await.unwrap(), Some(on.clone()));
    // Even an administrator cannot change the environment while switching.
    refused!(
        s,
        s.put_tenant(&by("alice"), &tenant("acme", "stage", false)),
        StoreError::Rule(RuleError::FailedPrecondition(_))
    );
    assert_eq!(s.tenant(&acme).await.unwrap(), Some(on));

    // Another environment is a tenant of its own.
    let ((_, created), _) = wrote!(
        s,
        s.put_tenant(&by_root(), &tenant("acme-stage", "stage", false))
    );
    assert!(created);
    assert_eq!(
        s.tenant(&tid("acme-stage")).await.unwrap(),
        Some(tenant("acme-stage", "stage", false))
    );
    assert_eq!(s.tenant(&tid("initech")).await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Users, roles and rights.

async fn roles_need_an_acting_administrator_except_the_first_one(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    s.put_tenant(&by_root(), &tenant("acme", "production", false))
        .await
        .unwrap();
    let bounded = caller("acme-ops", only(&["acme"]), &[Capability::Admin]);

    refused!(
        s,
        s.put_user(&by_root(), &tid("initech"), &uid("bob"), RoleSet::EMPTY),
        StoreError::NotFound(_)
    );
    // Users without roles need no administrator.
    wrote!(
        s,
        s.put_user(&ctx(&bounded, None, 0), &acme, &uid("bob"), RoleSet::EMPTY)
    );
    // Roles do, even while the tenant has none, unless it is the first administrator.
    refused!(
        s,
        s.put_user(&by_root(), &acme, &uid("carol"), roles(&[Role::Delegate])),
        denied!()
    );
    refused!(
        s,
        s.put_user(
            &by_root(),
            &acme,
            &uid("bob"),
            roles(&[Role::PermissionManager])
        ),
        denied!()
    );
    let (_, ev) = wrote!(
        s,
        s.put_user(
            &ctx(&bounded, None, 0),
            &acme,
            &uid("alice"),
            roles(&[Role::UserAdmin])
        )
    );
    assert_eq!(ev.actor_user, None);
    // Now the tenant has one: further roles need an acting administrator.
    refused!(
        s,
        s.put_user(
            &by_root(),
            &acme,
            &uid("dave"),
            roles(&[Role::GeneralAdmin])
        ),
        denied!()
    );
    refused!(
        s,
        s.put_user(
            &by("bob"),
            &acme,
            &uid("dave"),
            roles(&[Role::GeneralAdmin])
        ),
        denied!()
    );
    refused!(
        s,
        s.put_user(
            &by("ghost"),
            &acme,
            &uid("dave"),
            roles(&[Role::GeneralAdmin])
        ),
        denied!()
    );
    wrote!(
        s,
        s.put_user(
            &by("alice"),
            &acme,
            &uid("dave"),
            roles(&[Role::GeneralAdmin, Role::Delegate])
        )
    );
    wrote!(
        s,
        s.put_user(&by("dave"), &acme, &uid("bob"), roles(&[Role::Delegate]))
    );
    // Taking a role away needs one as well; leaving roles as they are does not.
    refused!(
        s,
        s.put_user(&by_root(), &acme, &uid("bob"), RoleSet::EMPTY),
        denied!()
    );
    wrote!(
        s,
        s.put_user(&by_root(), &acme, &uid("bob"), roles(&[Role::Delegate]))
    );

    let (snap, rev) = s.user_snapshot(&acme, &uid("dave")).await.unwrap();
    assert_eq!(rev, s.revision().await.unwrap());
    let snap = snap.unwrap();
    assert!(snap.known);
    assert_eq!(snap.roles, roles(&[Role::GeneralAdmin, Role::Delegate]));
    assert!(snap.rights.is_empty());
    assert_eq!(s.user_snapshot(&acme, &uid("ghost")).await.unwrap().0, None);
    assert_eq!(
        s.user_snapshot(&tid("initech"), &uid("dave"))
            .await
            .unwrap()
            .0,
        None
    );

    // The first-administrator exception is per tenant; roles are per tenant.
    s.put_tenant(&by_root(), &tenant("globex", "production", false))
        .await
        .unwrap();
    refused!(
        s,
        s.put_user(
            &by("alice"),
            &tid("globex"),
            &uid("y"),
            roles(&[Role::Delegate])
        ),
        denied!()
    );
    wrote!(
        s,
        s.put_user(
            &by_root(),
            &tid("globex"),
            &uid("zed"),
            roles(&[Role::GeneralAdmin])
        )
    );

    // Deleting a user who holds roles needs an acting administrator.
    refused!(s, s.delete_user(&by_root(), &acme, &uid("bob")), denied!());
    refused!(s, s.delete_user(&by("bob"), &acme, &uid("bob")), denied!());
    let (written, ev) = wrote!(s, s.delete_user(&by("alice"), &acme, &uid("bob")));
    assert_eq!(
        (ev.action.as_str(), ev.target.as_str()),
        ("DeleteUser", "user:bob")
    );
    // The write declares what it touched: the user, and the groups that named them.
    let (changes, _) = s.changes_since(Revision(written.0 - 1)).await.unwrap();
    let mut keys: Vec<String> = changes.iter().map(|(_, k)| k.to_string()).collect();
    keys.sort();
    assert_eq!(keys, ["g/acme", "u/acme/bob"]);
    assert_eq!(
        changes.iter().map(|(_, k)| k).collect::<Vec<_>>(),
        [
            &ChangeKey::Groups(acme.clone()),
            &ChangeKey::User(acme.clone(), uid("bob"))
        ]
    );
    assert_eq!(ev.after, None);

    let (users, _) = all_pages!(10, |page| s.list_users(&acme, &page).await.unwrap());
    assert_eq!(
        users,
        [
            (uid("alice"), roles(&[Role::UserAdmin])),
            (uid("dave"), roles(&[Role::GeneralAdmin, Role::Delegate])),
        ]
    );
}

async fn deleting_a_user_takes_their_rights_grants_and_group_entries(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["bob", "carol"]).await;
    s.grant_user_right(&by_root(), &acme, &uid("bob"), &path("/hr"), Right::Read)
        .await
        .unwrap();
    s.grant_user_right(
        &by_root(),
        &acme,
        &uid("bob"),
        &path("/hr/team"),
        Right::Write,
    )
    .await
    .unwrap();
    s.create_group(
        &by("alice"),
        &acme,
        spec(
            "g1",
            "Group one",
            acl(
                &[("user:bob", ManagerAccess::Read)],
                &["user:alice", "user:bob"],
                &["user:bob", "client:crm"],
            ),
        ),
    )
    .await
    .unwrap();
    for (p, x) in [("p1", "X1"), ("p2", "X2")] {
        s.create_permission(&by("alice"), &acme, &permission(p, "g1", x))
            .await
            .unwrap();
    }
    s.grant_external(&by("alice"), &acme, &uid("bob"), &pid("p1"), None)
        .await
        .unwrap();
    s.grant_external(&by("alice"), &acme, &uid("bob"), &pid("p2"), Some(at(500)))
        .await
        .unwrap();
    s.grant_external(&by("alice"), &acme, &uid("carol"), &pid("p1"), None)
        .await
        .unwrap();

    // bob holds no roles: any admin client may delete him.
    let (_, ev) = wrote!(s, s.delete_user(&by_root(), &acme, &uid("bob")));
    assert_eq!(ev.action, "DeleteUser");
    assert_eq!(ev.target, "user:bob");
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    assert_eq!(ev.after, None);
    let before = parsed(&ev.before);
    assert_eq!(before["user_id"], "bob");
    assert_eq!(before["roles"], json!([]));
    assert_eq!(
        before["rights"],
        json!([{"resource": "/hr", "right": "READ"}, {"resource": "/hr/team", "right": "WRITE"}])
    );
    let grants = before["grants"].as_array().unwrap();
    assert_eq!(
        grants
            .iter()
            .map(|g| (
                g["permission_id"].as_str().unwrap(),
                g["expires_at"].clone()
            ))
            .collect::<Vec<_>>(),
        [("p1", Value::Null), ("p2", json!(at(500).as_micros()))]
    );
    assert!(grants.iter().all(|g| g["granted_by"] == "user:alice"));
    assert_eq!(
        before["group_entries"],
        json!([
            {"group_id": "g1", "relation": "grantor"},
            {"group_id": "g1", "relation": "manager"},
            {"group_id": "g1", "relation": "visible_to"},
        ])
    );

    assert_eq!(s.user_snapshot(&acme, &uid("bob")).await.unwrap().0, None);
    let groups = groups_seen_by(s, "acme", &Viewer::User(uid("alice"))).await;
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0].acl,
        acl(
            &[("user:alice", ManagerAccess::ReadWrite)],
            &["user:alice"],
            &["client:crm"]
        )
    );
    // Other users' grants stay.
    let alice_sees = grant_query(Viewer::User(uid("alice")), None, at(0));
    assert_eq!(
        grant_keys(s, "acme", "carol", &alice_sees).await,
        [("g1".to_owned(), "p1".to_owned())]
    );

    // Gone for good: the same user added again starts with nothing.
    plain_users(s, "acme", &["bob"]).await;
    let snap = s
        .user_snapshot(&acme, &uid("bob"))
        .await
        .unwrap()
        .0
        .unwrap();
    assert!(snap.rights.is_empty());
    assert!(grant_keys(s, "acme", "bob", &alice_sees).await.is_empty());
    assert_eq!(
        find(
            s,
            "acme",
            "bob",
            &PermissionRef::Id(pid("p1")),
            &Viewer::User(uid("alice"))
        )
        .await
        .unwrap(),
        None
    );
    let (rights, _) = all_pages!(10, |page| {
        s.list_user_rights(&acme, &uid("bob"), &page).await.unwrap()
    });
    assert!(rights.is_empty());

    refused!(
        s,
        s.delete_user(&by_root(), &acme, &uid("ghost")),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.delete_user(&by_root(), &tid("initech"), &uid("bob")),
        StoreError::NotFound(_)
    );
}

async fn a_user_holds_one_right_level_per_path(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    s.put_tenant(&by_root(), &tenant("acme", "production", false))
        .await
        .unwrap();
    plain_users(s, "acme", &["bob"]).await;
    let bob = uid("bob");

    // Users are registered before they get rights.
    refused!(
        s,
        s.grant_user_right(&by_root(), &acme, &uid("ghost"), &path("/hr"), Right::Read),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.grant_user_right(&by_root(), &tid("initech"), &bob, &path("/hr"), Right::Read),
        StoreError::NotFound(_)
    );

    // Any admin client may grant (it mirrors the tenant's own access lists).
    let bounded = caller("acme-ops", only(&["acme"]), &[Capability::Admin]);
    let (_, ev) = wrote!(
        s,
        s.grant_user_right(
            &ctx(&bounded, None, 0),
            &acme,
            &bob,
            &path("/hr"),
            Right::Read
        )
    );
    assert_eq!(ev.action, "GrantUserRight");
    assert_eq!(ev.target, "user:bob");
    assert_eq!(ev.before, None);
    assert_eq!(
        parsed(&ev.after),
        json!({"user_id": "bob", "resource": "/hr", "right": "READ"})
    );
    // Granting again replaces the level.
    let (_, ev) = wrote!(
        s,
        s.grant_user_right(&by_root(), &acme, &bob, &path("/hr"), Right::Manage)
    );
    assert_eq!(parsed(&ev.before)["right"], "READ");
    assert_eq!(parsed(&ev.after)["right"], "MANAGE");
    wrote!(
        s,
        s.grant_user_right(&by_root(), &acme, &bob, &path("/"), Right::Write)
    );
    let snap = s.user_snapshot(&acme, &bob).await.unwrap().0.unwrap();
    assert_eq!(
        snap.rights,
        [(path("/hr"), Right::Manage), (path("/"), Right::Write)]
            .into_iter()
            .collect()
    );
    assert_eq!(snap.right_at(&path("/hr/team/docs")), Some(Right::Manage));
    assert_eq!(snap.right_at(&path("/fin")), Some(Right::Write));

    // Revoking what is not held, or another level than held, is NOT_FOUND.
    refused!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/hr"), Some(Right::Read)),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/fin"), None),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/hr/team"), None),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_user_right(&by_root(), &acme, &uid("ghost"), &path("/hr"), None),
        StoreError::NotFound(_)
    );
    let (_, ev) = wrote!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/hr"), Some(Right::Manage))
    );
    assert_eq!(ev.action, "RevokeUserRight");
    assert_eq!(
        parsed(&ev.before),
        json!({"user_id": "bob", "resource": "/hr", "right": "MANAGE"})
    );
    assert_eq!(ev.after, None);
    wrote!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/"), None)
    );
    assert!(
        s.user_snapshot(&acme, &bob)
            .await
            .unwrap()
            .0
            .unwrap()
            .rights
            .is_empty()
    );
    refused!(
        s,
        s.revoke_user_right(&by_root(), &acme, &bob, &path("/hr"), None),
        StoreError::NotFound(_)
    );
}

// ---------------------------------------------------------------------------------------------
// Applications, consent and whitelisting.

async fn apps_are_registered_updated_and_unregistered_by_app_managers(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let crm = aid("crm");
    let m1 = manifest(&["documents:read"], &[(ScopeLevel::Web, Right::Write)]);
    let no_manager = caller("ops", TenantBounds::All, &[Capability::Admin]);
    let bounded_manager = caller(
        "acme-apps",
        only(&["acme"]),
        &[Capability::Admin, Capability::AppManager],
    );

    // RegisterApp needs app_manager on `*`.
    refused!(
        s,
        s.register_app(
            &ctx(&no_manager, None, 0),
            &crm,
            &name("CRM"),
            AppKind::Standard,
            &m1
        ),
        denied!()
    );
    refused!(
        s,
        s.register_app(
            &ctx(&bounded_manager, None, 0),
            &crm,
            &name("CRM"),
            AppKind::Standard,
            &m1
        ),
        denied!()
    );
    let (_, ev) = wrote!(
        s,
        s.register_app(&by_root(), &crm, &name("CRM"), AppKind::Standard, &m1)
    );
    assert_eq!(ev.action, "RegisterApp");
    assert_eq!(ev.tenant_id, None);
    assert_eq!(ev.target, "app:crm");
    assert_eq!(ev.before, None);
    let after = parsed(&ev.after);
    assert_eq!(after["kind"], "STANDARD");
    assert_eq!(after["manifest_revision"], 1);
    assert_eq!(after["manifest"]["scopes"], json!(["documents:read"]));
    assert_eq!(
        after["manifest"]["permission_requests"],
        json!([{"scope_level": "WEB", "right": "WRITE"}])
    );
    refused!(
        s,
        s.register_app(
            &by_root(),
            &crm,
            &name("CRM 2"),
            AppKind::Custom,
            &Manifest::default()
        ),
        StoreError::AlreadyExists(_)
    );

    // UpdateAppManifest bumps the manifest revision.
    let m2 = manifest(
        &["documents:read", "documents:write"],
        &[(ScopeLevel::Web, Right::Write)],
    );
    refused!(
        s,
        s.update_app_manifest(&by_root(), &aid("ghost"), &m2),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.update_app_manifest(&ctx(&no_manager, None, 0), &crm, &m2),
        denied!()
    );
    let ((written, manifest_revision), ev) =
        wrote!(s, s.update_app_manifest(&by_root(), &crm, &m2));
    assert_eq!(manifest_revision, 2);
    assert_eq!(ev.action, "UpdateAppManifest");
    assert_eq!(parsed(&ev.before)["manifest_revision"], 1);
    assert_eq!(parsed(&ev.after)["manifest_revision"], 2);
    assert_eq!(
        parsed(&ev.after)["manifest"]["scopes"],
        json!(["documents:read", "documents:write"])
    );
    // An identical manifest changes nothing: no manifest revision, no write, no event.
    let (unchanged, manifest_revision) =
        s.update_app_manifest(&by_root(), &crm, &m2).await.unwrap();
    assert_eq!(manifest_revision, 2);
    assert_eq!(unchanged, written);
    check_untouched(s, written).await;

    let snap = snapshot(s, "nowhere", "crm").await;
    assert_eq!(snap.tenant, None);
    let app = snap.app.unwrap();
    assert_eq!(
        (app.name, app.kind, app.manifest, app.manifest_revision),
        (name("CRM"), AppKind::Standard, m2.clone(), 2)
    );
    assert_eq!(snapshot(s, "nowhere", "ghost").await.app, None);

    // UnregisterApp takes the app's consents and whitelist entries with it.
    tenant_with_admin(s, "acme", "alice").await;
    tenant_with_admin(s, "globex", "zed").await;
    register(s, "other", AppKind::Standard, &Manifest::default()).await;
    let resolved = || vec![rr(ScopeLevel::Web, Right::Read, "/hr/web1")];
    s.approve_consent(&by("alice"), &tid("acme"), &crm, 2, resolved())
        .await
        .unwrap();
    s.approve_consent(&by("zed"), &tid("globex"), &crm, 2, resolved())
        .await
        .unwrap();
    s.approve_consent(&by("alice"), &tid("acme"), &aid("other"), 1, vec![])
        .await
        .unwrap();
    s.put_whitelist_entry(&by("alice"), &tid("acme"), &crm, &WhitelistEntry::default())
        .await
        .unwrap();
    refused!(
        s,
        s.unregister_app(&ctx(&no_manager, None, 0), &crm),
        denied!()
    );
    refused!(
        s,
        s.unregister_app(&by_root(), &aid("ghost")),
        StoreError::NotFound(_)
    );
    let (_, ev) = wrote!(s, s.unregister_app(&by_root(), &crm));
    assert_eq!(
        (ev.action.as_str(), ev.target.as_str()),
        ("UnregisterApp", "app:crm")
    );
    assert_eq!(ev.tenant_id, None);
    assert_eq!(ev.after, None);
    let before = parsed(&ev.before);
    assert_eq!(before["manifest_revision"], 2);
    let consents = before["consents"].as_array().unwrap();
    assert_eq!(
        consents
            .iter()
            .map(|c| (
                c["tenant_id"].as_str().unwrap(),
                c["approved_by"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("acme", "user:alice"), ("globex", "user:zed")]
    );
    assert_eq!(
        before["whitelist_entries"],
        json!([{"tenant_id": "acme", "app_id": "crm", "allowed_scopes": [], "content_access": "OWN_CONTENT"}])
    );

    let snap = snapshot(s, "acme", "crm").await;
    assert!(snap.tenant.is_some());
    assert_eq!((snap.app, snap.consent, snap.whitelist), (None, None, None));
    let (consents, _) = all_pages!(10, |page| {
        s.list_consents(&tid("acme"), &page).await.unwrap()
    });
    assert_eq!(
        consents
            .iter()
            .map(|(a, _)| a.to_string())
            .collect::<Vec<_>>(),
        ["other"]
    );
    let (entries, _) = all_pages!(10, |page| {
        s.list_whitelist_entries(&tid("acme"), &page).await.unwrap()
    });
    assert!(entries.is_empty());
    let (apps, _) = all_pages!(10, |page| s.list_apps(&page).await.unwrap());
    assert_eq!(
        apps.iter()
            .map(|a| a.app_id.to_string())
            .collect::<Vec<_>>(),
        ["other"]
    );

    // The id may be registered again: a new app, with none of the old consents.
    wrote!(
        s,
        s.register_app(&by_root(), &crm, &name("CRM"), AppKind::Standard, &m1)
    );
    let snap = snapshot(s, "globex", "crm").await;
    assert_eq!(snap.app.as_ref().unwrap().manifest_revision, 1);
    assert_eq!(snap.consent, None);
    assert_eq!(snap.consent_state(), &ConsentState::NotConsented);
}

async fn standard_apps_are_approved_by_tenant_administrators(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let (acme, crm) = (tid("acme"), aid("crm"));
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["bob"]).await;
    let m1 = manifest(
        &["documents:read", "calendar:read"],
        &[
            (ScopeLevel::Web, Right::Write),
            (ScopeLevel::Tenancy, Right::Read),
        ],
    );
    register(s, "crm", AppKind::Standard, &m1).await;
    register(s, "other", AppKind::Standard, &Manifest::default()).await;
    let good = || {
        vec![
            rr(ScopeLevel::Web, Right::Read, "/hr/web1"),
            rr(ScopeLevel::Tenancy, Right::Read, "/"),
        ]
    };
    assert_eq!(
        snapshot(s, "acme", "crm").await.consent_state(),
        &ConsentState::NotConsented
    );

    // Only an acting administrator approves a STANDARD app (app_manager is not enough).
    refused!(
        s,
        s.approve_consent(&by_root(), &acme, &crm, 1, good()),
        denied!()
    );
    refused!(
        s,
        s.approve_consent(&by("bob"), &acme, &crm, 1, good()),
        denied!()
    );
    // The approver names the manifest revision they saw.
    refused!(
        s,
        s.approve_consent(&by("alice"), &acme, &crm, 2, good()),
        StoreError::Aborted(_)
    );
    refused!(
        s,
        s.approve_consent(&by("alice"), &acme, &crm, 0, good()),
        StoreError::Aborted(_)
    );
    // Resolved requests must fit the manifest.
    refused!(
        s,
        s.approve_consent(
            &by("alice"),
            &acme,
            &crm,
            1,
            vec![rr(ScopeLevel::Web, Right::Read, "/hr/web1")]
        ),
        StoreError::Invalid(_)
    );
    refused!(
        s,
        s.approve_consent(
            &by("alice"),
            &acme,
            &crm,
            1,
            vec![
                rr(ScopeLevel::Web, Right::Read, "/hr"),
                rr(ScopeLevel::Tenancy, Right::Read, "/")
            ]
        ),
        StoreError::Invalid(_)
    );
    refused!(
        s,
        s.approve_consent(
            &by("alice"),
            &acme,
            &crm,
            1,
            vec![
                rr(ScopeLevel::Web, Right::Manage, "/hr/web1"),
                rr(ScopeLevel::Tenancy, Right::Read, "/")
            ]
        ),
        StoreError::Invalid(_)
    );
    refused!(
        s,
        s.approve_consent(
            &by("alice"),
            &acme,
            &crm,
            1,
            vec![
                rr(ScopeLevel::Web, Right::Read, "/hr/web1"),
                rr(ScopeLevel::Tenancy, Right::Read, "/"),
                rr(ScopeLevel::List, Right::Read, "/hr/web1/docs")
            ]
        ),
        StoreError::Invalid(_)
    );
    refused!(
        s,
        s.approve_consent(&by("alice"), &acme, &aid("ghost"), 1, vec![]),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.approve_consent(&by("alice"), &tid("initech"), &crm, 1, good()),
        StoreError::NotFound(_)
    );

    let ((_, consent), ev) = wrote!(
        s,
        s.approve_consent(&ctx(&root(), Some("alice"), 10), &acme, &crm, 1, good())
    );
    let expected = Consent {
        approved_by: principal("user:alice"),
        approved_at: at(10),
        approved_manifest_revision: 1,
        approved_manifest: m1.clone(),
        resolved_requests: vec![
            rr(ScopeLevel::Tenancy, Right::Read, "/"),
            rr(ScopeLevel::Web, Right::Read, "/hr/web1"),
        ],
        revoked_at: None,
    };
    assert_eq!(consent, expected);
    assert_eq!(ev.action, "ApproveConsent");
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    assert_eq!(ev.target, "app:crm");
    assert_eq!(ev.before, None);
    let after = parsed(&ev.after);
    assert_eq!(after["approved_by"], "user:alice");
    assert_eq!(after["approved_manifest_revision"], 1);
    assert_eq!(after["approved_at"], at(10).as_micros());
    assert_eq!(after["revoked_at"], Value::Null);
    assert_eq!(after["resolved_requests"].as_array().unwrap().len(), 2);
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.consent, Some(expected));
    assert_eq!(snap.consent_state(), &ConsentState::Approved);
    assert_eq!(
        snap.effective().unwrap().scopes,
        scopes(&["calendar:read", "documents:read"])
    );

    // An escalation needs re-approval, of the manifest as it is now.
    let m2 = Manifest {
        webhooks: true,
        ..m1.clone()
    };
    let (_, manifest_revision) = s.update_app_manifest(&by_root(), &crm, &m2).await.unwrap();
    assert_eq!(manifest_revision, 2);
    assert_eq!(
        snapshot(s, "acme", "crm").await.consent_state(),
        &ConsentState::ReapprovalRequired(vec![ReapprovalReason::WebhooksAdded])
    );
    refused!(
        s,
        s.approve_consent(&by("alice"), &acme, &crm, 1, good()),
        StoreError::Aborted(_)
    );
    let again = vec![
        rr(ScopeLevel::Web, Right::Write, "/fin/web2"),
        rr(ScopeLevel::Tenancy, Right::Read, "/"),
    ];
    let ((_, consent), ev) = wrote!(
        s,
        s.approve_consent(&ctx(&root(), Some("alice"), 20), &acme, &crm, 2, again)
    );
    // Approving again replaces the snapshot.
    assert_eq!(consent.approved_manifest_revision, 2);
    assert_eq!(consent.approved_manifest, m2);
    assert_eq!(consent.approved_at, at(20));
    assert_eq!(
        consent.resolved_requests,
        [
            rr(ScopeLevel::Tenancy, Right::Read, "/"),
            rr(ScopeLevel::Web, Right::Write, "/fin/web2"),
        ]
    );
    assert_eq!(parsed(&ev.before)["approved_manifest_revision"], 1);
    assert_eq!(parsed(&ev.after)["approved_manifest_revision"], 2);
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.consent.as_ref(), Some(&consent));
    assert_eq!(snap.consent_state(), &ConsentState::Approved);
    let (consents, _) = all_pages!(10, |page| s.list_consents(&acme, &page).await.unwrap());
    assert_eq!(consents, [(crm.clone(), consent.clone())]);

    // Revoking needs an acting administrator too (app_manager only counts for CUSTOM apps).
    refused!(s, s.revoke_consent(&by_root(), &acme, &crm), denied!());
    refused!(s, s.revoke_consent(&by("bob"), &acme, &crm), denied!());
    let (_, ev) = wrote!(
        s,
        s.revoke_consent(&ctx(&root(), Some("alice"), 30), &acme, &crm)
    );
    assert_eq!(ev.action, "RevokeConsent");
    assert_eq!(parsed(&ev.before)["revoked_at"], Value::Null);
    assert_eq!(parsed(&ev.after)["revoked_at"], at(30).as_micros());
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.consent_state(), &ConsentState::Revoked);
    assert_eq!(snap.consent.as_ref().unwrap().revoked_at, Some(at(30)));
    assert_eq!(snap.effective(), None);
    refused!(
        s,
        s.revoke_consent(&by("alice"), &acme, &crm),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_consent(&by("alice"), &acme, &aid("other")),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_consent(&by("alice"), &acme, &aid("ghost")),
        StoreError::NotFound(_)
    );

    // Approving again reinstates it.
    let ((_, consent), _) = wrote!(
        s,
        s.approve_consent(&ctx(&root(), Some("alice"), 40), &acme, &crm, 2, good())
    );
    assert_eq!(consent.revoked_at, None);
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.consent_state(), &ConsentState::Approved);
    assert_eq!(snap.consent.unwrap().approved_at, at(40));
}

async fn custom_apps_are_first_activated_by_app_managers(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let (acme, tool) = (tid("acme"), aid("tool"));
    tenant_with_admin(s, "acme", "alice").await;
    let m = manifest(&["files:read"], &[]);
    register(s, "tool", AppKind::Custom, &m).await;
    let plain_admin = caller("ops", TenantBounds::All, &[Capability::Admin]);
    let deployer = caller(
        "deployer",
        only(&["acme"]),
        &[Capability::Admin, Capability::AppManager],
    );

    refused!(
        s,
        s.approve_consent(&ctx(&plain_admin, None, 0), &acme, &tool, 1, vec![]),
        denied!()
    );
    // The first activation by an app_manager client is recorded as the client's.
    let ((_, consent), ev) = wrote!(
        s,
        s.approve_consent(&ctx(&deployer, None, 5), &acme, &tool, 1, vec![])
    );
    assert_eq!(consent.approved_by, principal("client:deployer"));
    assert_eq!(consent.approved_at, at(5));
    assert_eq!(ev.actor_client, "deployer");
    assert_eq!(ev.actor_user, None);
    assert_eq!(parsed(&ev.after)["approved_by"], "client:deployer");
    let snap = snapshot(s, "acme", "tool").await;
    assert_eq!(snap.consent_state(), &ConsentState::Approved);
    assert_eq!(
        snap.consent.unwrap().approved_by,
        principal("client:deployer")
    );

    // Any later approval needs an administrator.
    refused!(
        s,
        s.approve_consent(&ctx(&deployer, None, 0), &acme, &tool, 1, vec![]),
        denied!()
    );
    // app_manager may revoke a CUSTOM app's consent; an admin client alone may not.
    refused!(
        s,
        s.revoke_consent(&ctx(&plain_admin, None, 0), &acme, &tool),
        denied!()
    );
    wrote!(s, s.revoke_consent(&ctx(&deployer, None, 6), &acme, &tool));
    assert_eq!(
        snapshot(s, "acme", "tool").await.consent_state(),
        &ConsentState::Revoked
    );
    // Reactivation after revocation is for an administrator only.
    refused!(
        s,
        s.approve_consent(&ctx(&deployer, None, 0), &acme, &tool, 1, vec![]),
        denied!()
    );
    let ((_, consent), _) = wrote!(
        s,
        s.approve_consent(&ctx(&deployer, Some("alice"), 7), &acme, &tool, 1, vec![])
    );
    assert_eq!(consent.approved_by, principal("user:alice"));
    assert_eq!(
        snapshot(s, "acme", "tool").await.consent_state(),
        &ConsentState::Approved
    );

    // Consent is never copied between tenants: in another tenant it is a first activation.
    s.put_tenant(&by_root(), &tenant("acme-stage", "stage", false))
        .await
        .unwrap();
    assert_eq!(
        snapshot(s, "acme-stage", "tool").await.consent_state(),
        &ConsentState::NotConsented
    );
    let ((_, consent), _) = wrote!(
        s,
        s.approve_consent(&by_root(), &tid("acme-stage"), &tool, 1, vec![])
    );
    assert_eq!(consent.approved_by, principal("client:root"));
}

async fn whitelist_entries_are_kept_by_tenant_administrators(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let (acme, crm) = (tid("acme"), aid("crm"));
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["bob"]).await;
    register(
        s,
        "crm",
        AppKind::Standard,
        &manifest(&["documents:read"], &[]),
    )
    .await;
    let entry = WhitelistEntry {
        allowed_scopes: scopes(&["documents:read"]),
        content_access: ContentAccess::OnBehalfOfManagedUsers,
    };

    refused!(
        s,
        s.put_whitelist_entry(&by_root(), &acme, &crm, &entry),
        denied!()
    );
    refused!(
        s,
        s.put_whitelist_entry(&by("bob"), &acme, &crm, &entry),
        denied!()
    );
    refused!(
        s,
        s.put_whitelist_entry(&by("alice"), &acme, &aid("ghost"), &entry),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.put_whitelist_entry(&by("alice"), &tid("initech"), &crm, &entry),
        StoreError::NotFound(_)
    );
    let (_, ev) = wrote!(s, s.put_whitelist_entry(&by("alice"), &acme, &crm, &entry));
    assert_eq!(ev.action, "PutWhitelistEntry");
    assert_eq!(ev.target, "app:crm");
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    assert_eq!(ev.before, None);
    assert_eq!(
        parsed(&ev.after),
        json!({"app_id": "crm", "allowed_scopes": ["documents:read"], "content_access": "ON_BEHALF_OF_MANAGED_USERS"})
    );
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.whitelist.as_ref(), Some(&entry));
    // An entry may be prepared while whitelisting is off; it takes effect only when it is on.
    assert_eq!(snap.content_access(), ContentAccess::OwnContent);

    // Put replaces.
    let replacement = WhitelistEntry::default();
    let (_, ev) = wrote!(
        s,
        s.put_whitelist_entry(&by("alice"), &acme, &crm, &replacement)
    );
    assert_eq!(
        parsed(&ev.before)["allowed_scopes"],
        json!(["documents:read"])
    );
    assert_eq!(parsed(&ev.after)["allowed_scopes"], json!([]));
    assert_eq!(
        snapshot(s, "acme", "crm").await.whitelist,
        Some(replacement.clone())
    );
    let (entries, _) = all_pages!(10, |page| {
        s.list_whitelist_entries(&acme, &page).await.unwrap()
    });
    assert_eq!(entries, [(crm.clone(), replacement.clone())]);
    wrote!(s, s.put_whitelist_entry(&by("alice"), &acme, &crm, &entry));
    s.put_tenant(&by("alice"), &tenant("acme", "production", true))
        .await
        .unwrap();
    let snap = snapshot(s, "acme", "crm").await;
    assert!(snap.whitelisting_enabled());
    assert!(!snap.blocked_by_whitelist());
    assert_eq!(snap.content_access(), ContentAccess::OnBehalfOfManagedUsers);

    // Delete.
    refused!(
        s,
        s.delete_whitelist_entry(&by("bob"), &acme, &crm),
        denied!()
    );
    refused!(
        s,
        s.delete_whitelist_entry(&by_root(), &acme, &crm),
        denied!()
    );
    let (_, ev) = wrote!(s, s.delete_whitelist_entry(&by("alice"), &acme, &crm));
    assert_eq!(ev.action, "DeleteWhitelistEntry");
    assert_eq!(
        parsed(&ev.before)["content_access"],
        "ON_BEHALF_OF_MANAGED_USERS"
    );
    assert_eq!(ev.after, None);
    let snap = snapshot(s, "acme", "crm").await;
    assert_eq!(snap.whitelist, None);
    assert!(snap.blocked_by_whitelist());
    refused!(
        s,
        s.delete_whitelist_entry(&by("alice"), &acme, &crm),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.delete_whitelist_entry(&by("alice"), &tid("initech"), &crm),
        StoreError::NotFound(_)
    );
}

// ---------------------------------------------------------------------------------------------
// External permission groups and grants.

async fn permission_groups_are_managed_by_read_write_managers(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["bob", "dave", "erin"]).await;
    s.put_user(
        &by("alice"),
        &acme,
        &uid("carol"),
        roles(&[Role::PermissionManager]),
    )
    .await
    .unwrap();
    let ops = caller("ops", only(&["acme"]), &[Capability::Admin]);
    let hr_acl = acl(
        &[
            ("user:dave", ManagerAccess::Read),
            ("client:ops", ManagerAccess::ReadWrite),
        ],
        &["user:carol"],
        &["client:crm-backend", "app:portal"],
    );

    // Creating a group needs an acting PERMISSION_MANAGER.
    refused!(
        s,
        s.create_group(&by_root(), &acme, spec("hr", "HR", hr_acl.clone())),
        denied!()
    );
    refused!(
        s,
        s.create_group(&by("dave"), &acme, spec("hr", "HR", hr_acl.clone())),
        denied!()
    );
    refused!(
        s,
        s.create_group(
            &by("carol"),
            &tid("initech"),
            spec("hr", "HR", hr_acl.clone())
        ),
        StoreError::NotFound(_)
    );
    let ((_, group), ev) = wrote!(
        s,
        s.create_group(&by("carol"), &acme, spec("hr", "HR", hr_acl.clone()))
    );
    // The creator becomes a READ_WRITE manager.
    let mut created_acl = hr_acl.clone();
    created_acl
        .managers
        .push((principal("user:carol"), ManagerAccess::ReadWrite));
    assert_eq!(group.acl, created_acl);
    assert_eq!(ev.action, "CreatePermissionGroup");
    assert_eq!(ev.target, "group:hr");
    assert_eq!(ev.tenant_id, Some(acme.clone()));
    let after = parsed(&ev.after);
    assert_eq!(after["name"], "HR");
    assert_eq!(
        after["managers"],
        json!([
            {"principal": "user:dave", "access": "READ"},
            {"principal": "client:ops", "access": "READ_WRITE"},
            {"principal": "user:carol", "access": "READ_WRITE"},
        ])
    );
    assert_eq!(after["grantors"], json!(["user:carol"]));
    assert_eq!(
        after["visible_to"],
        json!(["client:crm-backend", "app:portal"])
    );
    assert_eq!(
        groups_seen_by(s, "acme", &Viewer::User(uid("carol"))).await,
        std::slice::from_ref(&group)
    );

    // GENERAL_ADMIN implies PERMISSION_MANAGER; a creator listed as a READ manager is upgraded.
    let ((_, fin), _) = wrote!(
        s,
        s.create_group(
            &by("alice"),
            &acme,
            spec(
                "fin",
                "Finance",
                acl(&[("user:alice", ManagerAccess::Read)], &["user:alice"], &[])
            )
        )
    );
    assert_eq!(
        fin.acl.managers,
        [(principal("user:alice"), ManagerAccess::ReadWrite)]
    );
    refused!(
        s,
        s.create_group(
            &by("carol"),
            &acme,
            spec("hr", "HR again", GroupAcl::default())
        ),
        StoreError::AlreadyExists(_)
    );

    // Updating needs a READ_WRITE manager, a user or a client.
    let new_acl = acl(
        &[
            ("user:carol", ManagerAccess::ReadWrite),
            ("user:dave", ManagerAccess::Read),
        ],
        &["user:carol", "user:bob"],
        &["client:crm-backend"],
    );
    let renamed = || GroupSpec {
        description: Description::parse("description", "people\nand pay").unwrap(),
        ..spec("hr", "Human resources", new_acl.clone())
    };
    refused!(s, s.update_group(&by("dave"), &acme, renamed()), denied!());
    refused!(s, s.update_group(&by("bob"), &acme, renamed()), denied!());
    refused!(s, s.update_group(&by("alice"), &acme, renamed()), denied!());
    refused!(
        s,
        s.update_group(
            &by("carol"),
            &acme,
            GroupSpec {
                group_id: gid("ghost"),
                ..renamed()
            }
        ),
        StoreError::NotFound(_)
    );
    let ((_, updated), ev) = wrote!(s, s.update_group(&ctx(&ops, None, 0), &acme, renamed()));
    let updated = updated.group;
    assert_eq!(updated.name, name("Human resources"));
    assert_eq!(updated.acl, new_acl);
    assert_eq!(ev.action, "UpdatePermissionGroup");
    assert_eq!(ev.actor_client, "ops");
    assert_eq!(parsed(&ev.before)["name"], "HR");
    assert_eq!(parsed(&ev.after)["name"], "Human resources");
    assert_eq!(parsed(&ev.after)["description"], "people\nand pay");
    assert_eq!(
        parsed(&ev.after)["grantors"],
        json!(["user:carol", "user:bob"])
    );
    assert_eq!(
        groups_seen_by(s, "acme", &Viewer::User(uid("carol"))).await,
        std::slice::from_ref(&updated)
    );
    // client:ops is no manager any more.
    refused!(
        s,
        s.update_group(&ctx(&ops, None, 0), &acme, renamed()),
        denied!()
    );

    // Permissions: READ_WRITE managers create them; ids are unique in the tenant, external
    // ids in the group.
    refused!(
        s,
        s.create_permission(&by("dave"), &acme, &permission("hr.view", "hr", "HR-1")),
        denied!()
    );
    refused!(
        s,
        s.create_permission(&by("carol"), &acme, &permission("hr.view", "ghost", "HR-1")),
        StoreError::NotFound(_)
    );
    let (_, ev) = wrote!(
        s,
        s.create_permission(&by("carol"), &acme, &permission("hr.view", "hr", "HR-1"))
    );
    assert_eq!(ev.action, "CreateExternalPermission");
    assert_eq!(ev.target, "permission:hr.view");
    assert_eq!(
        parsed(&ev.after),
        json!({"permission_id": "hr.view", "group_id": "hr", "name": "Permission hr.view",
               "description": "what it allows", "external_id": "HR-1"})
    );
    refused!(
        s,
        s.create_permission(&by("alice"), &acme, &permission("hr.view", "fin", "FIN-1")),
        StoreError::AlreadyExists(_)
    );
    refused!(
        s,
        s.create_permission(&by("carol"), &acme, &permission("hr.view2", "hr", "HR-1")),
        StoreError::AlreadyExists(_)
    );
    wrote!(
        s,
        s.create_permission(&by("alice"), &acme, &permission("fin.view", "fin", "HR-1"))
    );
    wrote!(
        s,
        s.create_permission(&by("carol"), &acme, &permission("hr.edit", "hr", "HR-2"))
    );
    let listed = all_pages!(10, |page| {
        s.list_groups(&acme, &Viewer::User(uid("carol")), &page)
            .await
            .unwrap()
    })
    .0;
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].permissions,
        [
            permission("hr.edit", "hr", "HR-2"),
            permission("hr.view", "hr", "HR-1")
        ]
    );

    // Deleting a permission takes its grants.
    for p in ["hr.view", "hr.edit"] {
        s.grant_external(&by("carol"), &acme, &uid("erin"), &pid(p), None)
            .await
            .unwrap();
    }
    refused!(
        s,
        s.delete_permission(&by("dave"), &acme, &pid("hr.edit")),
        denied!()
    );
    let (_, ev) = wrote!(s, s.delete_permission(&by("carol"), &acme, &pid("hr.edit")));
    assert_eq!(ev.action, "DeleteExternalPermission");
    let before = parsed(&ev.before);
    assert_eq!(before["external_id"], "HR-2");
    assert_eq!(before["grants"][0]["user_id"], "erin");
    assert_eq!(before["grants"].as_array().unwrap().len(), 1);
    refused!(
        s,
        s.delete_permission(&by("carol"), &acme, &pid("hr.edit")),
        StoreError::NotFound(_)
    );
    let carol_sees = grant_query(Viewer::User(uid("carol")), None, at(0));
    assert_eq!(
        grant_keys(s, "acme", "erin", &carol_sees).await,
        [("hr".to_owned(), "hr.view".to_owned())]
    );

    // Deleting a group takes its permissions and their grants.
    refused!(s, s.delete_group(&by("dave"), &acme, &gid("hr")), denied!());
    refused!(s, s.delete_group(&by_root(), &acme, &gid("hr")), denied!());
    let (_, ev) = wrote!(s, s.delete_group(&by("carol"), &acme, &gid("hr")));
    assert_eq!(
        (ev.action.as_str(), ev.target.as_str()),
        ("DeletePermissionGroup", "group:hr")
    );
    assert_eq!(ev.after, None);
    let before = parsed(&ev.before);
    assert_eq!(before["name"], "Human resources");
    assert_eq!(
        before["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["permission_id"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["hr.view"]
    );
    assert_eq!(
        before["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (
                g["user_id"].as_str().unwrap(),
                g["permission_id"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("erin", "hr.view")]
    );
    refused!(
        s,
        s.delete_group(&by("carol"), &acme, &gid("hr")),
        StoreError::NotFound(_)
    );
    assert!(
        groups_seen_by(s, "acme", &Viewer::User(uid("carol")))
            .await
            .is_empty()
    );
    assert_eq!(
        groups_seen_by(s, "acme", &Viewer::User(uid("alice")))
            .await
            .iter()
            .map(|g| g.group_id.to_string())
            .collect::<Vec<_>>(),
        ["fin"]
    );
    assert!(grant_keys(s, "acme", "erin", &carol_sees).await.is_empty());
    // The rows are really gone: the ids are free again and nothing comes back.
    wrote!(
        s,
        s.create_group(&by("carol"), &acme, spec("hr", "HR", GroupAcl::default()))
    );
    wrote!(
        s,
        s.create_permission(&by("carol"), &acme, &permission("hr.view", "hr", "HR-1"))
    );
    assert_eq!(
        find(
            s,
            "acme",
            "erin",
            &PermissionRef::Id(pid("hr.view")),
            &Viewer::User(uid("carol"))
        )
        .await
        .unwrap(),
        None
    );
    let group = &groups_seen_by(s, "acme", &Viewer::User(uid("carol"))).await[0];
    assert_eq!(
        group.acl,
        acl(&[("user:carol", ManagerAccess::ReadWrite)], &[], &[])
    );
}

async fn external_permissions_are_granted_by_grantors_and_found_by_viewers(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["erin", "grace", "mia"]).await;
    s.create_group(
        &by("alice"),
        &acme,
        spec(
            "apps",
            "Apps",
            acl(
                &[("user:mia", ManagerAccess::Read)],
                &["user:grace", "client:hr-sync"],
                &["client:crm", "app:portal"],
            ),
        ),
    )
    .await
    .unwrap();
    s.create_group(
        &by("alice"),
        &acme,
        spec("other", "Other", GroupAcl::default()),
    )
    .await
    .unwrap();
    for (p, x) in [("p.view", "VIEW"), ("p.edit", "EDIT")] {
        s.create_permission(&by("alice"), &acme, &permission(p, "apps", x))
            .await
            .unwrap();
    }
    let hr_sync = caller("hr-sync", only(&["acme"]), &[Capability::Admin]);
    let erin = uid("erin");

    // Granting needs a grantor of the group (a READ_WRITE manager is not one).
    refused!(
        s,
        s.grant_external(&by("alice"), &acme, &erin, &pid("p.view"), None),
        denied!()
    );
    refused!(
        s,
        s.grant_external(&by_root(), &acme, &erin, &pid("p.view"), None),
        denied!()
    );
    refused!(
        s,
        s.grant_external(&by("grace"), &acme, &uid("ghost"), &pid("p.view"), None),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.grant_external(&by("grace"), &acme, &erin, &pid("p.ghost"), None),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.grant_external(&by("grace"), &tid("initech"), &erin, &pid("p.view"), None),
        StoreError::NotFound(_)
    );
    let (_, ev) = wrote!(
        s,
        s.grant_external(
            &ctx(&root(), Some("grace"), 10),
            &acme,
            &erin,
            &pid("p.view"),
            None
        )
    );
    assert_eq!(ev.action, "GrantExternalPermission");
    assert_eq!(ev.target, "user:erin");
    assert_eq!(ev.before, None);
    assert_eq!(
        parsed(&ev.after),
        json!({"user_id": "erin", "permission_id": "p.view", "granted_by": "user:grace",
               "granted_at": at(10).as_micros(), "expires_at": null})
    );
    let alice = Viewer::User(uid("alice"));
    let grant = find(s, "acme", "erin", &PermissionRef::Id(pid("p.view")), &alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        grant,
        GrantView {
            permission_id: pid("p.view"),
            group_id: gid("apps"),
            group_name: "Apps".into(),
            name: "Permission p.view".into(),
            external_id: "VIEW".into(),
            granted_by: principal("user:grace"),
            granted_at: at(10),
            expires_at: None,
        }
    );

    // Granting again updates only the expiry.
    let (_, ev) = wrote!(
        s,
        s.grant_external(
            &ctx(&hr_sync, None, 20),
            &acme,
            &erin,
            &pid("p.view"),
            Some(at(1000))
        )
    );
    assert_eq!(ev.actor_client, "hr-sync");
    assert_eq!(parsed(&ev.before)["expires_at"], Value::Null);
    let after = parsed(&ev.after);
    assert_eq!(after["granted_by"], "user:grace");
    assert_eq!(after["granted_at"], at(10).as_micros());
    assert_eq!(after["expires_at"], at(1000).as_micros());
    let regranted = find(s, "acme", "erin", &PermissionRef::Id(pid("p.view")), &alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        regranted,
        GrantView {
            expires_at: Some(at(1000)),
            ..grant.clone()
        }
    );
    // A client grantor is recorded as the client.
    wrote!(
        s,
        s.grant_external(&ctx(&hr_sync, None, 30), &acme, &erin, &pid("p.edit"), None)
    );
    let by_external = PermissionRef::External(gid("apps"), ExternalId::parse("x", "EDIT").unwrap());
    let edit = find(s, "acme", "erin", &by_external, &alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(edit.permission_id, pid("p.edit"));
    assert_eq!(edit.granted_by, principal("client:hr-sync"));
    assert_eq!(edit.granted_at, at(30));

    // An expiry in the past is accepted: the grant is simply expired, hidden from lists but
    // found (with its expiry) by a direct look-up.
    wrote!(
        s,
        s.grant_external(&by("grace"), &acme, &erin, &pid("p.view"), Some(at(5)))
    );
    assert_eq!(
        grant_keys(s, "acme", "erin", &grant_query(alice.clone(), None, at(40))).await,
        [("apps".to_owned(), "p.edit".to_owned())]
    );
    assert_eq!(
        grant_keys(s, "acme", "erin", &grant_query(alice.clone(), None, at(4))).await,
        [
            ("apps".to_owned(), "p.edit".to_owned()),
            ("apps".to_owned(), "p.view".to_owned())
        ]
    );
    let expired = find(s, "acme", "erin", &PermissionRef::Id(pid("p.view")), &alice)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(expired.expires_at, Some(at(5)));
    assert!(!expired.is_live(at(40)));

    // Who sees a permission: managers (READ or READ_WRITE) as users, visible_to as clients/apps.
    let view = PermissionRef::Id(pid("p.view"));
    let edit_ref = PermissionRef::Id(pid("p.edit"));
    for viewer in [
        Viewer::User(uid("mia")),
        Viewer::Client(cid("crm")),
        Viewer::App(aid("portal")),
    ] {
        assert!(
            find(s, "acme", "erin", &edit_ref, &viewer)
                .await
                .unwrap()
                .is_some(),
            "{viewer:?} sees the grant"
        );
    }
    for viewer in [
        Viewer::User(uid("grace")),
        Viewer::User(uid("erin")),
        Viewer::Client(cid("portal")),
        Viewer::App(aid("crm")),
        Viewer::Client(cid("hr-sync")),
    ] {
        let got = find(s, "acme", "erin", &edit_ref, &viewer).await;
        assert!(
            matches!(got, Err(StoreError::NotFound(_))),
            "{viewer:?} must not see the permission: {got:?}"
        );
    }

    // Revoking needs a grantor; what is not granted is NOT_FOUND.
    refused!(
        s,
        s.revoke_external(&by("alice"), &acme, &erin, &pid("p.view")),
        denied!()
    );
    let (_, ev) = wrote!(
        s,
        s.revoke_external(&by("grace"), &acme, &erin, &pid("p.view"))
    );
    assert_eq!(ev.action, "RevokeExternalPermission");
    assert_eq!(parsed(&ev.before)["expires_at"], at(5).as_micros());
    assert_eq!(ev.after, None);
    refused!(
        s,
        s.revoke_external(&by("grace"), &acme, &erin, &pid("p.view")),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_external(&by("grace"), &acme, &uid("ghost"), &pid("p.view")),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_external(&by("grace"), &acme, &erin, &pid("p.ghost")),
        StoreError::NotFound(_)
    );

    // Visible but not granted: no grant. Not visible or not there: NOT_FOUND.
    let crm = Viewer::Client(cid("crm"));
    assert_eq!(find(s, "acme", "erin", &view, &crm).await.unwrap(), None);
    assert_eq!(find(s, "acme", "ghost", &view, &crm).await.unwrap(), None);
    let (found, rev) = s.find_grant(&acme, &erin, &edit_ref, &crm).await.unwrap();
    assert!(found.is_some());
    assert_eq!(rev, s.revision().await.unwrap());
    for missing in [
        PermissionRef::Id(pid("p.ghost")),
        PermissionRef::External(gid("apps"), ExternalId::parse("x", "NOPE").unwrap()),
        PermissionRef::External(gid("other"), ExternalId::parse("x", "EDIT").unwrap()),
        PermissionRef::External(gid("ghost"), ExternalId::parse("x", "EDIT").unwrap()),
    ] {
        let got = find(s, "acme", "erin", &missing, &alice).await;
        assert!(
            matches!(got, Err(StoreError::NotFound(_))),
            "{missing:?}: {got:?}"
        );
    }
    let got = find(s, "initech", "erin", &view, &alice).await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");
}

async fn a_users_grants_list_what_the_viewer_sees_in_complete_stable_pages(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["erin", "frank", "mia"]).await;
    // Groups are created out of id order; permission ids sort differently from their groups.
    let groups: [(&str, GroupAcl, &str, usize); 3] = [
        ("g-c", acl(&[], &["user:alice"], &["app:portal"]), "a", 8),
        (
            "g-a",
            acl(
                &[("user:mia", ManagerAccess::Read)],
                &["user:alice"],
                &["client:crm"],
            ),
            "m",
            9,
        ),
        (
            "g-b",
            acl(
                &[("user:mia", ManagerAccess::ReadWrite)],
                &["user:alice"],
                &["client:crm", "app:portal"],
            ),
            "b",
            8,
        ),
    ];
    let mut erin_grants = Vec::new();
    for (group, group_acl, prefix, count) in groups {
        s.create_group(&by("alice"), &acme, spec(group, group, group_acl))
            .await
            .unwrap();
        // Created and granted in reverse order.
        for i in (0..count).rev() {
            let p = format!("{prefix}{i:02}-{group}");
            s.create_permission(
                &by("alice"),
                &acme,
                &permission(&p, group, &format!("X{i}")),
            )
            .await
            .unwrap();
            s.grant_external(&by("alice"), &acme, &uid("erin"), &pid(&p), None)
                .await
                .unwrap();
            erin_grants.push((group.to_owned(), p.clone()));
            if i == 0 {
                s.grant_external(&by("alice"), &acme, &uid("frank"), &pid(&p), None)
                    .await
                    .unwrap();
            }
        }
    }
    // One more grant that expires at 50 s.
    s.create_permission(&by("alice"), &acme, &permission("z-late", "g-a", "LATE"))
        .await
        .unwrap();
    s.grant_external(
        &by("alice"),
        &acme,
        &uid("erin"),
        &pid("z-late"),
        Some(at(50)),
    )
    .await
    .unwrap();
    erin_grants.sort();
    assert_eq!(erin_grants.len(), 25);
    let now = at(100);

    // alice manages every group: all 25 unexpired grants, ordered by (group, permission), in
    // pages of 10, 10 and 5; no duplicates or gaps; only the last page has no `next`.
    let alice_query = grant_query(Viewer::User(uid("alice")), None, now);
    let rev = s.revision().await.unwrap();
    let (items, sizes) = all_pages!(10, |page| {
        let (got, at_rev) = s
            .list_user_grants(&acme, &uid("erin"), &alice_query, &page)
            .await
            .unwrap();
        assert_eq!(at_rev, rev);
        got
    });
    assert_eq!(sizes, [10, 10, 5]);
    let keys: Vec<(String, String)> = items
        .iter()
        .map(|g| (g.group_id.to_string(), g.permission_id.to_string()))
        .collect();
    assert_eq!(keys, erin_grants);
    let first = &items[0];
    assert_eq!(
        (
            first.group_name.as_str(),
            first.name.as_str(),
            first.external_id.as_str()
        ),
        ("g-a", "Permission m00-g-a", "X0")
    );
    assert_eq!(first.granted_by, principal("user:alice"));
    // The same query pages the same way again, and in pages that divide it exactly.
    let (again, _) = all_pages!(10, |page| {
        s.list_user_grants(&acme, &uid("erin"), &alice_query, &page)
            .await
            .unwrap()
            .0
    });
    assert_eq!(again, items);
    let (fives, sizes) = all_pages!(5, |page| {
        s.list_user_grants(&acme, &uid("erin"), &alice_query, &page)
            .await
            .unwrap()
            .0
    });
    assert_eq!(sizes, [5, 5, 5, 5, 5]);
    assert_eq!(fives, items);
    let (ones, sizes) = all_pages!(1, |page| {
        s.list_user_grants(&acme, &uid("erin"), &alice_query, &page)
            .await
            .unwrap()
            .0
    });
    assert_eq!(sizes.len(), 25);
    assert_eq!(ones, items);

    // Before it expires, the extra grant is listed too; from its expiry on, it is not.
    let just_before = Timestamp::from_micros(at(50).as_micros() - 1);
    let early = grant_query(Viewer::User(uid("alice")), None, just_before);
    let with_late = grant_keys(s, "acme", "erin", &early).await;
    assert_eq!(with_late.len(), 26);
    assert!(with_late.contains(&("g-a".to_owned(), "z-late".to_owned())));
    let at_expiry = grant_query(Viewer::User(uid("alice")), None, at(50));
    assert_eq!(grant_keys(s, "acme", "erin", &at_expiry).await, erin_grants);

    // Each viewer sees only its groups.
    let groups_of = |keys: Vec<(String, String)>| {
        keys.into_iter()
            .map(|(g, _)| g)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    };
    for (viewer, expected) in [
        (Viewer::User(uid("mia")), vec!["g-a", "g-b"]),
        (Viewer::Client(cid("crm")), vec!["g-a", "g-b"]),
        (Viewer::App(aid("portal")), vec!["g-b", "g-c"]),
        (Viewer::Client(cid("portal")), vec![]),
        (Viewer::App(aid("crm")), vec![]),
        (Viewer::User(uid("erin")), vec![]),
    ] {
        let keys = grant_keys(s, "acme", "erin", &grant_query(viewer.clone(), None, now)).await;
        let expected_keys: Vec<_> = erin_grants
            .iter()
            .filter(|(g, _)| expected.contains(&g.as_str()))
            .cloned()
            .collect();
        assert_eq!(keys, expected_keys, "{viewer:?}");
        assert_eq!(groups_of(keys), expected, "{viewer:?}");
    }

    // Filtering by group.
    let only_b = grant_keys(
        s,
        "acme",
        "erin",
        &grant_query(Viewer::User(uid("alice")), Some("g-b"), now),
    )
    .await;
    assert_eq!(only_b.len(), 8);
    assert!(only_b.iter().all(|(g, _)| g == "g-b"));
    let (b_pages, sizes) = all_pages!(3, |page| {
        s.list_user_grants(
            &acme,
            &uid("erin"),
            &grant_query(Viewer::User(uid("alice")), Some("g-b"), now),
            &page,
        )
        .await
        .unwrap()
        .0
    });
    assert_eq!(sizes, [3, 3, 2]);
    assert_eq!(b_pages.len(), 8);
    assert!(
        grant_keys(
            s,
            "acme",
            "erin",
            &grant_query(Viewer::User(uid("mia")), Some("g-c"), now)
        )
        .await
        .is_empty()
    );
    assert!(
        grant_keys(
            s,
            "acme",
            "erin",
            &grant_query(Viewer::User(uid("alice")), Some("ghost"), now)
        )
        .await
        .is_empty()
    );

    // Other users' grants are theirs; unknown users have none; unknown tenants are NOT_FOUND.
    assert_eq!(
        grant_keys(s, "acme", "frank", &alice_query).await,
        [
            ("g-a".to_owned(), "m00-g-a".to_owned()),
            ("g-b".to_owned(), "b00-g-b".to_owned()),
            ("g-c".to_owned(), "a00-g-c".to_owned()),
        ]
    );
    assert!(
        grant_keys(s, "acme", "ghost", &alice_query)
            .await
            .is_empty()
    );
    let got = s
        .list_user_grants(&tid("initech"), &uid("erin"), &alice_query, &first_page(10))
        .await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");
}

// ---------------------------------------------------------------------------------------------
// Clients.

async fn clients_are_created_found_by_key_hash_and_revoked(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let ops_caps = Capabilities::of([Capability::Admin, Capability::AssertUser]);

    // The operator's CLI (no context) is audited as `(cli)`; the key hash is never recorded.
    let (_, ev) = wrote!(
        s,
        s.create_client(
            None,
            &cid("ops"),
            &only(&["acme", "globex"]),
            ops_caps,
            "hash-ops"
        )
    );
    assert_eq!(ev.actor_client, "(cli)");
    assert_eq!(ev.actor_user, None);
    assert_eq!(ev.action, "CreateClient");
    assert_eq!(ev.tenant_id, None);
    assert_eq!(ev.target, "client:ops");
    assert_eq!(ev.before, None);
    let after = parsed(&ev.after);
    assert_eq!(after["client_id"], "ops");
    assert_eq!(after["tenants"], json!(["acme", "globex"]));
    assert_eq!(after["capabilities"], json!(["admin", "assert_user"]));
    assert_eq!(after["revoked_at"], Value::Null);
    assert!(!ev.after.as_deref().unwrap().contains("hash-ops"));

    let ops = s.client_by_key_hash("hash-ops").await.unwrap().unwrap();
    assert_eq!(
        ops,
        caller(
            "ops",
            only(&["acme", "globex"]),
            &[Capability::Admin, Capability::AssertUser]
        )
    );
    assert_eq!(s.client_by_key_hash("hash-nope").await.unwrap(), None);
    assert_eq!(s.client_by_key_hash("").await.unwrap(), None);

    // A client never creates a stronger one.
    let admin_only = Capabilities::of([Capability::Admin]);
    refused!(
        s,
        s.create_client(
            Some(&ctx(&ops, None, 0)),
            &cid("x"),
            &TenantBounds::All,
            admin_only,
            "h-x"
        ),
        denied!()
    );
    refused!(
        s,
        s.create_client(
            Some(&ctx(&ops, None, 0)),
            &cid("x"),
            &only(&["acme", "initech"]),
            admin_only,
            "h-x"
        ),
        denied!()
    );
    refused!(
        s,
        s.create_client(
            Some(&ctx(&ops, None, 0)),
            &cid("x"),
            &only(&["acme"]),
            Capabilities::of([Capability::Admin, Capability::AppManager]),
            "h-x"
        ),
        denied!()
    );
    let (_, ev) = wrote!(
        s,
        s.create_client(
            Some(&ctx(&ops, Some("alice"), 5)),
            &cid("acme-reader"),
            &only(&["acme"]),
            admin_only,
            "hash-reader"
        )
    );
    assert_eq!(ev.actor_client, "ops");
    assert_eq!(ev.actor_user, Some(uid("alice")));
    assert_eq!(ev.at, at(5));
    assert_eq!(parsed(&ev.after)["created_at"], at(5).as_micros());
    let reader = s.client_by_key_hash("hash-reader").await.unwrap().unwrap();
    assert_eq!(
        reader,
        caller("acme-reader", only(&["acme"]), &[Capability::Admin])
    );

    // Ids and key hashes are unique.
    refused!(
        s,
        s.create_client(
            None,
            &cid("acme-reader"),
            &only(&["acme"]),
            admin_only,
            "hash-new"
        ),
        StoreError::AlreadyExists(_)
    );
    refused!(
        s,
        s.create_client(
            None,
            &cid("another"),
            &only(&["acme"]),
            admin_only,
            "hash-ops"
        ),
        StoreError::AlreadyExists(_)
    );

    // Revocation: only within the caller's own bounds.
    refused!(
        s,
        s.revoke_client(Some(&ctx(&reader, None, 0)), &cid("ops")),
        denied!()
    );
    let (_, ev) = wrote!(
        s,
        s.revoke_client(Some(&ctx(&ops, None, 7)), &cid("acme-reader"))
    );
    assert_eq!(ev.action, "RevokeClient");
    assert_eq!(ev.target, "client:acme-reader");
    assert_eq!(parsed(&ev.before)["revoked_at"], Value::Null);
    assert_eq!(parsed(&ev.after)["revoked_at"], at(7).as_micros());
    assert!(!ev.before.as_deref().unwrap().contains("hash-reader"));
    assert_eq!(s.client_by_key_hash("hash-reader").await.unwrap(), None);
    refused!(
        s,
        s.revoke_client(None, &cid("acme-reader")),
        StoreError::NotFound(_)
    );
    refused!(
        s,
        s.revoke_client(None, &cid("ghost")),
        StoreError::NotFound(_)
    );
    // A revoked client's id is never reused.
    refused!(
        s,
        s.create_client(
            None,
            &cid("acme-reader"),
            &only(&["acme"]),
            admin_only,
            "hash-again"
        ),
        StoreError::AlreadyExists(_)
    );
    let (clients, _) = all_pages!(10, |page| s.list_clients(&page).await.unwrap());
    assert_eq!(
        clients
            .iter()
            .map(|c| (c.caller.client_id.to_string(), c.revoked_at))
            .collect::<Vec<_>>(),
        [
            ("acme-reader".to_owned(), Some(at(7))),
            ("ops".to_owned(), None)
        ]
    );
    assert_eq!(clients[0].created_at, at(5));
    assert_eq!(clients[0].caller, reader);

    // The bootstrap client: created once, never replaced, and a revoked one stays revoked.
    let before = s.revision().await.unwrap();
    assert_eq!(
        s.ensure_bootstrap_client("hash-boot").await.unwrap(),
        BootstrapOutcome::Created
    );
    let ev = check_written(s, before, Revision(before.0 + 1)).await;
    assert_eq!(ev.actor_client, "(bootstrap)");
    assert_eq!(ev.action, "CreateClient");
    assert_eq!(ev.target, "client:bootstrap");
    assert_eq!(parsed(&ev.after)["tenants"], json!(["*"]));
    assert!(!ev.after.as_deref().unwrap().contains("hash-boot"));
    assert_eq!(
        s.client_by_key_hash("hash-boot").await.unwrap(),
        Some(Caller {
            client_id: cid("bootstrap"),
            tenants: TenantBounds::All,
            capabilities: Capabilities::all(),
        })
    );
    let before = s.revision().await.unwrap();
    assert_eq!(
        s.ensure_bootstrap_client("hash-other").await.unwrap(),
        BootstrapOutcome::Exists
    );
    check_untouched(s, before).await;
    assert_eq!(s.client_by_key_hash("hash-other").await.unwrap(), None);
    assert!(s.client_by_key_hash("hash-boot").await.unwrap().is_some());
    let (_, ev) = wrote!(s, s.revoke_client(None, &cid("bootstrap")));
    assert_eq!(ev.actor_client, "(cli)");
    let before = s.revision().await.unwrap();
    assert_eq!(
        s.ensure_bootstrap_client("hash-new").await.unwrap(),
        BootstrapOutcome::Revoked
    );
    check_untouched(s, before).await;
    assert_eq!(s.client_by_key_hash("hash-new").await.unwrap(), None);
    assert_eq!(s.client_by_key_hash("hash-boot").await.unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Lists.

/// 0..n in an order far from sorted: the odd numbers downwards, then the even ones upwards.
fn scrambled(n: usize) -> Vec<usize> {
    (0..n)
        .rev()
        .filter(|i| i % 2 == 1)
        .chain((0..n).filter(|i| i % 2 == 0))
        .collect()
}

async fn every_list_pages_completely_in_id_order(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;

    // Tenants, within bounds.
    for i in scrambled(12) {
        s.put_tenant(
            &by_root(),
            &tenant(&format!("t{i:02}"), "production", false),
        )
        .await
        .unwrap();
    }
    let (tenants, sizes) = all_pages!(5, |page| {
        s.list_tenants(&TenantBounds::All, &page).await.unwrap()
    });
    assert_eq!(sizes, [5, 5, 2]);
    assert_eq!(
        tenants
            .iter()
            .map(|t| t.tenant_id.to_string())
            .collect::<Vec<_>>(),
        (0..12).map(|i| format!("t{i:02}")).collect::<Vec<_>>()
    );
    let bounds = only(&["t11", "t03", "t07", "t99"]);
    let (bounded, sizes) = all_pages!(2, |page| s.list_tenants(&bounds, &page).await.unwrap());
    assert_eq!(sizes, [2, 1]);
    assert_eq!(
        bounded
            .iter()
            .map(|t| t.tenant_id.to_string())
            .collect::<Vec<_>>(),
        ["t03", "t07", "t11"]
    );
    assert!(
        all_pages!(5, |page| s
            .list_tenants(&only(&["t99"]), &page)
            .await
            .unwrap())
        .0
        .is_empty()
    );
    let nothing = TenantBounds::Only(BTreeSet::new());
    let got = s.list_tenants(&nothing, &first_page(5)).await;
    assert!(
        matches!(&got, Ok(page) if page.items.is_empty() && page.next.is_none()),
        "no tenants are within empty bounds: {got:?}"
    );

    // Ids order byte-wise on both backends (upper case, digits and punctuation included).
    let odd = [
        "Zed", "a-b", "a.b", "a:b", "a@b", "a_b", "aB", "Ab", "0x", "t0",
    ];
    for t in odd {
        s.put_tenant(&by_root(), &tenant(t, "production", false))
            .await
            .unwrap();
        s.put_user(&by_root(), &tid("t00"), &uid(t), RoleSet::EMPTY)
            .await
            .unwrap();
    }
    let mut expected: Vec<String> = odd.iter().map(|t| (*t).to_owned()).collect();
    expected.extend((0..12).map(|i| format!("t{i:02}")));
    expected.sort();
    let (tenants, _) = all_pages!(3, |page| {
        s.list_tenants(&TenantBounds::All, &page).await.unwrap()
    });
    assert_eq!(
        tenants
            .iter()
            .map(|t| t.tenant_id.to_string())
            .collect::<Vec<_>>(),
        expected
    );
    let mut expected: Vec<String> = odd.iter().map(|t| (*t).to_owned()).collect();
    expected.sort();
    let (users, _) = all_pages!(4, |page| s.list_users(&tid("t00"), &page).await.unwrap());
    assert_eq!(
        users.iter().map(|(u, _)| u.to_string()).collect::<Vec<_>>(),
        expected
    );
    for t in odd {
        s.delete_user(&by_root(), &tid("t00"), &uid(t))
            .await
            .unwrap();
    }

    // Applications.
    for i in scrambled(7) {
        register(
            s,
            &format!("app{i}"),
            AppKind::Standard,
            &Manifest::default(),
        )
        .await;
    }
    let (apps, sizes) = all_pages!(3, |page| s.list_apps(&page).await.unwrap());
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(
        apps.iter()
            .map(|a| a.app_id.to_string())
            .collect::<Vec<_>>(),
        (0..7).map(|i| format!("app{i}")).collect::<Vec<_>>()
    );

    // Clients.
    for i in scrambled(5) {
        s.create_client(
            None,
            &cid(&format!("c{i}")),
            &TenantBounds::All,
            Capabilities::of([Capability::Query]),
            &format!("hash-{i}"),
        )
        .await
        .unwrap();
    }
    let (clients, sizes) = all_pages!(2, |page| s.list_clients(&page).await.unwrap());
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(
        clients
            .iter()
            .map(|c| c.caller.client_id.to_string())
            .collect::<Vec<_>>(),
        ["c0", "c1", "c2", "c3", "c4"]
    );

    // Users (u0 is the administrator).
    let t = tid("t00");
    s.put_user(&by_root(), &t, &uid("u0"), roles(&[Role::GeneralAdmin]))
        .await
        .unwrap();
    for i in scrambled(7) {
        if i > 0 {
            plain_users(s, "t00", &[&format!("u{i}")]).await;
        }
    }
    let (users, sizes) = all_pages!(3, |page| s.list_users(&t, &page).await.unwrap());
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(
        users.iter().map(|(u, _)| u.to_string()).collect::<Vec<_>>(),
        (0..7).map(|i| format!("u{i}")).collect::<Vec<_>>()
    );
    assert_eq!(users[0].1, roles(&[Role::GeneralAdmin]));
    let got = s.list_users(&tid("initech"), &first_page(3)).await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");

    // Consents and whitelist entries.
    for i in scrambled(4) {
        s.approve_consent(&by("u0"), &t, &aid(&format!("app{i}")), 1, vec![])
            .await
            .unwrap();
    }
    let (consents, sizes) = all_pages!(3, |page| s.list_consents(&t, &page).await.unwrap());
    assert_eq!(sizes, [3, 1]);
    assert_eq!(
        consents
            .iter()
            .map(|(a, _)| a.to_string())
            .collect::<Vec<_>>(),
        ["app0", "app1", "app2", "app3"]
    );
    assert!(
        consents
            .iter()
            .all(|(_, c)| c.approved_by == principal("user:u0"))
    );
    for i in scrambled(5) {
        s.put_whitelist_entry(
            &by("u0"),
            &t,
            &aid(&format!("app{i}")),
            &WhitelistEntry::default(),
        )
        .await
        .unwrap();
    }
    let (entries, sizes) = all_pages!(2, |page| {
        s.list_whitelist_entries(&t, &page).await.unwrap()
    });
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(
        entries
            .iter()
            .map(|(a, _)| a.to_string())
            .collect::<Vec<_>>(),
        ["app0", "app1", "app2", "app3", "app4"]
    );
    let got = s.list_consents(&tid("initech"), &first_page(3)).await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");
    let got = s
        .list_whitelist_entries(&tid("initech"), &first_page(3))
        .await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");

    // Groups: those the viewer may see, plus those it manages.
    for i in scrambled(5) {
        let visible: &[&str] = if i % 2 == 0 { &["client:crm"] } else { &[] };
        let managers: &[(&str, ManagerAccess)] = if i == 3 {
            &[("client:ops", ManagerAccess::Read)]
        } else {
            &[]
        };
        s.create_group(
            &by("u0"),
            &t,
            spec(&format!("grp{i}"), "G", acl(managers, &[], visible)),
        )
        .await
        .unwrap();
        s.create_permission(
            &by("u0"),
            &t,
            &permission(&format!("perm{i}"), &format!("grp{i}"), "X"),
        )
        .await
        .unwrap();
    }
    let (groups, sizes) = all_pages!(2, |page| {
        s.list_groups(&t, &Viewer::User(uid("u0")), &page)
            .await
            .unwrap()
    });
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(
        groups
            .iter()
            .map(|g| g.group.group_id.to_string())
            .collect::<Vec<_>>(),
        ["grp0", "grp1", "grp2", "grp3", "grp4"]
    );
    assert!(groups.iter().zip(0..).all(|(g, i)| {
        g.permissions
            .iter()
            .map(|p| p.permission_id.to_string())
            .collect::<Vec<_>>()
            == [format!("perm{i}")]
    }));
    let seen = |v: Viewer| async move {
        groups_seen_by(s, "t00", &v)
            .await
            .into_iter()
            .map(|g| g.group_id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seen(Viewer::Client(cid("crm"))).await,
        ["grp0", "grp2", "grp4"]
    );
    assert_eq!(seen(Viewer::Client(cid("ops"))).await, ["grp3"]);
    assert!(seen(Viewer::User(uid("u1"))).await.is_empty());
    let got = s
        .list_groups(&tid("initech"), &Viewer::User(uid("u0")), &first_page(3))
        .await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");

    // A user's rights, by resource.
    let paths = ["/", "/a", "/a/b", "/a/b/c", "/b", "/b/a", "/c"];
    for i in scrambled(paths.len()) {
        s.grant_user_right(&by_root(), &t, &uid("u1"), &path(paths[i]), Right::Read)
            .await
            .unwrap();
    }
    let (rights, sizes) = all_pages!(3, |page| {
        s.list_user_rights(&t, &uid("u1"), &page).await.unwrap()
    });
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(
        rights
            .iter()
            .map(|(p, _)| p.to_string())
            .collect::<Vec<_>>(),
        paths
    );
    let got = s.list_user_rights(&t, &uid("ghost"), &first_page(3)).await;
    assert!(matches!(got, Err(StoreError::NotFound(_))), "{got:?}");

    // Audit events: every revision once, oldest first.
    let total = s.revision().await.unwrap().0;
    let (all, sizes) = all_pages!(7, |page| {
        s.list_audit_events(&AuditFilter::default(), &page)
            .await
            .unwrap()
    });
    assert_eq!(revisions(&all), (1..=total).collect::<Vec<_>>());
    assert_eq!(sizes.iter().sum::<usize>() as u64, total);
    assert!(sizes[..sizes.len() - 1].iter().all(|&n| n == 7));
}

async fn audit_events_filter_by_tenant_target_actor_time_and_visibility(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let (acme, globex) = (tid("acme"), tid("globex"));
    let ops = caller(
        "ops",
        TenantBounds::All,
        &[Capability::Admin, Capability::AssertUser],
    );
    // 1..=9, at 1..=9 s.
    s.put_tenant(&ctx(&root(), None, 1), &tenant("acme", "production", false))
        .await
        .unwrap();
    s.put_tenant(
        &ctx(&root(), None, 2),
        &tenant("globex", "production", false),
    )
    .await
    .unwrap();
    s.put_user(
        &ctx(&root(), None, 3),
        &acme,
        &uid("alice"),
        roles(&[Role::GeneralAdmin]),
    )
    .await
    .unwrap();
    s.put_user(
        &ctx(&root(), None, 4),
        &globex,
        &uid("bob"),
        roles(&[Role::GeneralAdmin]),
    )
    .await
    .unwrap();
    s.put_user(
        &ctx(&ops, Some("alice"), 5),
        &acme,
        &uid("bob"),
        RoleSet::EMPTY,
    )
    .await
    .unwrap();
    s.register_app(
        &ctx(&root(), None, 6),
        &aid("crm"),
        &name("CRM"),
        AppKind::Standard,
        &Manifest::default(),
    )
    .await
    .unwrap();
    s.put_user(
        &ctx(&ops, Some("bob"), 7),
        &globex,
        &uid("alice"),
        RoleSet::EMPTY,
    )
    .await
    .unwrap();
    s.create_client(
        Some(&ctx(&root(), None, 8)),
        &cid("x"),
        &TenantBounds::All,
        Capabilities::of([Capability::Query]),
        "hash-x",
    )
    .await
    .unwrap();
    s.grant_user_right(
        &ctx(&root(), Some("alice"), 9),
        &acme,
        &uid("alice"),
        &path("/"),
        Right::Read,
    )
    .await
    .unwrap();
    assert_eq!(s.revision().await.unwrap(), Revision(9));
    let all = events(s).await;
    assert_eq!(
        all.iter().map(|e| e.at).collect::<Vec<_>>(),
        (1..=9).map(at).collect::<Vec<_>>()
    );

    let cases: Vec<(AuditFilter, Vec<u64>)> = vec![
        (AuditFilter::default(), (1..=9).collect()),
        (
            AuditFilter {
                tenant_id: Some(acme.clone()),
                ..AuditFilter::default()
            },
            vec![1, 3, 5, 9],
        ),
        (
            AuditFilter {
                tenant_id: Some(globex.clone()),
                ..AuditFilter::default()
            },
            vec![2, 4, 7],
        ),
        (
            AuditFilter {
                target: Some("user:bob".into()),
                ..AuditFilter::default()
            },
            vec![4, 5],
        ),
        (
            AuditFilter {
                target: Some("user:bob".into()),
                tenant_id: Some(acme.clone()),
                ..AuditFilter::default()
            },
            vec![5],
        ),
        (
            AuditFilter {
                target: Some("app:crm".into()),
                ..AuditFilter::default()
            },
            vec![6],
        ),
        (
            AuditFilter {
                actor: Some(principal("client:ops")),
                ..AuditFilter::default()
            },
            vec![5, 7],
        ),
        (
            AuditFilter {
                actor: Some(principal("client:root")),
                ..AuditFilter::default()
            },
            vec![1, 2, 3, 4, 6, 8, 9],
        ),
        (
            AuditFilter {
                actor: Some(principal("user:alice")),
                ..AuditFilter::default()
            },
            vec![5, 9],
        ),
        (
            AuditFilter {
                actor: Some(principal("user:ghost")),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                actor: Some(principal("app:crm")),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                since: Some(at(6)),
                ..AuditFilter::default()
            },
            vec![6, 7, 8, 9],
        ),
        (
            AuditFilter {
                since: Some(at(10)),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                visible_to: Some(TenantBounds::All),
                ..AuditFilter::default()
            },
            (1..=9).collect(),
        ),
        (
            AuditFilter {
                visible_to: Some(only(&["acme"])),
                ..AuditFilter::default()
            },
            vec![1, 3, 5, 9],
        ),
        (
            AuditFilter {
                visible_to: Some(only(&["acme", "globex"])),
                ..AuditFilter::default()
            },
            vec![1, 2, 3, 4, 5, 7, 9],
        ),
        (
            AuditFilter {
                visible_to: Some(only(&["initech"])),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                visible_to: Some(TenantBounds::Only(BTreeSet::new())),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                visible_to: Some(only(&["globex"])),
                since: Some(at(4)),
                ..AuditFilter::default()
            },
            vec![4, 7],
        ),
        (
            AuditFilter {
                visible_to: Some(only(&["globex"])),
                tenant_id: Some(acme.clone()),
                ..AuditFilter::default()
            },
            vec![],
        ),
        (
            AuditFilter {
                actor: Some(principal("client:ops")),
                tenant_id: Some(globex.clone()),
                ..AuditFilter::default()
            },
            vec![7],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(
            revisions(&events_where(s, &filter).await),
            expected,
            "{filter:?}"
        );
    }
    // The matching events are whole and page like every list.
    let acme_only = AuditFilter {
        tenant_id: Some(acme.clone()),
        ..AuditFilter::default()
    };
    let (acme_events, sizes) = all_pages!(3, |page| {
        s.list_audit_events(&acme_only, &page).await.unwrap()
    });
    assert_eq!(sizes, [3, 1]);
    let expected: Vec<AuditEvent> = all
        .iter()
        .filter(|e| e.tenant_id.as_ref() == Some(&acme))
        .cloned()
        .collect();
    assert_eq!(acme_events, expected);
    assert_eq!(acme_events[2].actor_client, "ops");
    assert_eq!(acme_events[2].actor_user, Some(uid("alice")));
}

// ---------------------------------------------------------------------------------------------
// Atomicity, persistence, concurrency.

async fn a_write_that_fails_part_way_leaves_no_trace(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    let ((_, group), _) = wrote!(
        s,
        s.create_group(
            &by("alice"),
            &acme,
            spec(
                "g",
                "Original",
                acl(
                    &[("user:dave", ManagerAccess::Read)],
                    &["user:alice"],
                    &["client:crm"]
                )
            )
        )
    );
    let alice = Viewer::User(uid("alice"));
    assert_eq!(
        groups_seen_by(s, "acme", &alice).await,
        std::slice::from_ref(&group)
    );

    // An ACL built around GroupAcl::new's checks, listing one manager twice: the UPDATE of the
    // name and the DELETE of the old principals run before the second INSERT fails.
    let twice = GroupAcl {
        managers: vec![
            (principal("user:alice"), ManagerAccess::ReadWrite),
            (principal("user:alice"), ManagerAccess::ReadWrite),
        ],
        grantors: vec![],
        visible_to: vec![],
    };
    let before = s.revision().await.unwrap();
    let result = s
        .update_group(&by("alice"), &acme, spec("g", "Renamed", twice))
        .await;
    assert!(result.is_err(), "{result:?}");
    check_untouched(s, before).await;
    assert_eq!(
        groups_seen_by(s, "acme", &alice).await,
        std::slice::from_ref(&group)
    );

    // A create that fails after its first INSERT: no group is left behind.
    let grantor_twice = GroupAcl {
        managers: vec![],
        grantors: vec![principal("user:bob"), principal("user:bob")],
        visible_to: vec![],
    };
    let result = s
        .create_group(&by("alice"), &acme, spec("g2", "New", grantor_twice))
        .await;
    assert!(result.is_err(), "{result:?}");
    check_untouched(s, before).await;
    assert_eq!(
        groups_seen_by(s, "acme", &alice).await,
        std::slice::from_ref(&group)
    );

    // The store carries on: the next writes take the next revisions, and g2 is free.
    let ((written, g2), _) = wrote!(
        s,
        s.create_group(&by("alice"), &acme, spec("g2", "New", GroupAcl::default()))
    );
    assert_eq!(written, Revision(before.0 + 1));
    assert_eq!(groups_seen_by(s, "acme", &alice).await, [group, g2]);
}

async fn a_restarted_store_keeps_everything(db: &TestDb) {
    let store = db.store().await;
    assert_eq!(store.backend(), db.backend);
    let s: &dyn Store = &store;
    let acme = tid("acme");
    tenant_with_admin(s, "acme", "alice").await;
    plain_users(s, "acme", &["bob"]).await;
    s.put_tenant(&by("alice"), &tenant("acme", "production", true))
        .await
        .unwrap();
    s.grant_user_right(
        &by_root(),
        &acme,
        &uid("bob"),
        &path("/hr/team"),
        Right::Write,
    )
    .await
    .unwrap();
    let m = manifest(
        &["documents:read"],
        &[(ScopeLevel::SiteCollection, Right::Manage)],
    );
    register(s, "crm", AppKind::Standard, &m).await;
    s.approve_consent(
        &by("alice"),
        &acme,
        &aid("crm"),
        1,
        vec![rr(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await
    .unwrap();
    s.put_whitelist_entry(
        &by("alice"),
        &acme,
        &aid("crm"),
        &WhitelistEntry {
            allowed_scopes: scopes(&["documents:read"]),
            content_access: ContentAccess::OnBehalfOfManagedUsers,
        },
    )
    .await
    .unwrap();
    s.create_group(
        &by("alice"),
        &acme,
        spec("g", "G", acl(&[], &["user:alice"], &["client:crm"])),
    )
    .await
    .unwrap();
    s.create_permission(&by("alice"), &acme, &permission("p", "g", "P"))
        .await
        .unwrap();
    s.grant_external(&by("alice"), &acme, &uid("bob"), &pid("p"), Some(at(900)))
        .await
        .unwrap();
    s.create_client(
        None,
        &cid("svc"),
        &only(&["acme"]),
        Capabilities::of([Capability::Query]),
        "hash-svc",
    )
    .await
    .unwrap();

    let revision = s.revision().await.unwrap();
    let app = s.app_snapshot(&acme, &aid("crm")).await.unwrap();
    let users: BTreeMap<&str, _> = [
        (
            "alice",
            s.user_snapshot(&acme, &uid("alice")).await.unwrap(),
        ),
        ("bob", s.user_snapshot(&acme, &uid("bob")).await.unwrap()),
    ]
    .into_iter()
    .collect();
    let query = grant_query(Viewer::Client(cid("crm")), None, at(0));
    let grants = s
        .list_user_grants(&acme, &uid("bob"), &query, &first_page(10))
        .await
        .unwrap();
    let audit = events(s).await;
    let groups = groups_seen_by(s, "acme", &Viewer::User(uid("alice"))).await;
    let client = s.client_by_key_hash("hash-svc").await.unwrap();
    assert!(client.is_some());
    assert_eq!(app.0.consent_state(), &ConsentState::Approved);
    assert!(!app.0.blocked_by_whitelist());
    assert_eq!(grants.0.items.len(), 1);

    store.pool().close().await;
    drop(store);
    if let Some(file) = db.sqlite_path() {
        assert!(file.is_file(), "{} holds the data", file.display());
    }

    let store = db.store().await;
    let s: &dyn Store = &store;
    assert_eq!(s.revision().await.unwrap(), revision);
    assert_eq!(s.app_snapshot(&acme, &aid("crm")).await.unwrap(), app);
    for (user, snap) in &users {
        assert_eq!(&s.user_snapshot(&acme, &uid(user)).await.unwrap(), snap);
    }
    let again = s
        .list_user_grants(&acme, &uid("bob"), &query, &first_page(10))
        .await
        .unwrap();
    assert_eq!((again.0.items, again.1), (grants.0.items, grants.1));
    assert_eq!(events(s).await, audit);
    assert_eq!(
        groups_seen_by(s, "acme", &Viewer::User(uid("alice"))).await,
        groups
    );
    assert_eq!(s.client_by_key_hash("hash-svc").await.unwrap(), client);
    assert_eq!(
        s.tenant(&acme).await.unwrap(),
        Some(tenant("acme", "production", true))
    );
    // And it carries on from where it was.
    let (written, _) = wrote!(
        s,
        s.put_user(&by_root(), &acme, &uid("carol"), RoleSet::EMPTY)
    );
    assert_eq!(written, Revision(revision.0 + 1));
}

async fn concurrent_writes_take_consecutive_revisions(db: &TestDb) {
    let store = db.store().await;
    let s: &dyn Store = &store;
    tenant_with_admin(s, "acme", "alice").await;
    let base = s.revision().await.unwrap().0;
    let writers = 16_u64;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..writers {
        let store = store.clone();
        tasks.spawn(async move {
            let user = format!("u{i:02}");
            let written = store
                .put_user(&by_root(), &tid("acme"), &uid(&user), RoleSet::EMPTY)
                .await
                .unwrap();
            (written, user)
        });
    }
    let mut written: BTreeMap<u64, String> = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (revision, user) = done.unwrap();
        assert!(
            written.insert(revision.0, user).is_none(),
            "revision taken twice"
        );
    }
    // Every write took its own revision, with no gap, and its own audit event there.
    assert_eq!(
        written.keys().copied().collect::<Vec<_>>(),
        (base + 1..=base + writers).collect::<Vec<_>>()
    );
    assert_eq!(s.revision().await.unwrap(), Revision(base + writers));
    let all = events(s).await;
    assert_eq!(revisions(&all), (1..=base + writers).collect::<Vec<_>>());
    for event in &all[base as usize..] {
        assert_eq!(event.target, format!("user:{}", written[&event.revision.0]));
    }
    let (users, _) = all_pages!(100, |page| s.list_users(&tid("acme"), &page).await.unwrap());
    assert_eq!(users.len() as u64, writers + 1);
}
