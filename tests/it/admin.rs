//! The AdminService over the wire: every RPC through a tonic client against a real server on an
//! ephemeral port and a fresh database of its own (Postgres as `admin::pg::*`; a representative
//! subset on both backends as `admin::postgres::*` and `admin::sqlite::*`), plus the real binary
//! across a restart and its `client` commands. It checks DESIGN.md §5 (callers) and §6 (writes):
//! the status of every kind of failure, one test per row of the rule table, an audit event for
//! every write RPC (enumerated from the service descriptor), atomicity, paging and persistence.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use consentry::domain::Revision;
use consentry::proto::admin_service_client::AdminServiceClient;
use consentry::proto::*;
use consentry::service::auth::hash_key;
use prost::Message;
use serde_json::{Value, json};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

use crate::support::db::{TestDb, backend_tests};
use crate::support::fixtures::{manifest, resolved, strings};
use crate::support::server::{BOOTSTRAP_KEY, BinaryServer, TestServer, eventually};

backend_tests!(
    every_write_rpc_succeeds_and_is_audited,
    a_failed_write_leaves_no_trace,
    lists_page_completely_and_stably,
    the_binary_keeps_everything_across_a_restart,
    the_cli_creates_clients_whose_keys_work_and_revokes_them,
    a_revoked_bootstrap_client_stays_revoked,
);

/// Runs each named `async fn name(db: &TestDb)` of this module on a fresh Postgres database, as
/// the tokio test `pg::name`, removing the database afterwards (also when the body panics).
macro_rules! postgres_tests {
    ($($name:ident),+ $(,)?) => {
        mod pg {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = crate::support::db::TestDb::postgres().await;
                    let outcome = crate::support::db::CatchUnwind::new(super::$name(&db)).await;
                    crate::support::db::finish(db, outcome).await;
                }
            )+
        }
    };
}

postgres_tests!(
    every_list_rpc_answers_what_was_written,
    naming_something_missing_is_not_found,
    creating_an_existing_id_is_already_exists,
    malformed_input_is_invalid_argument_naming_the_field,
    approving_a_stale_manifest_revision_is_aborted,
    changing_a_tenants_environment_is_a_failed_precondition,
    checks_run_in_the_documented_order,
    rule_tenant_creation_needs_a_client_on_every_tenant,
    rule_whitelisting_and_revoking_consent_need_an_acting_tenant_administrator,
    rule_roles_need_an_acting_administrator_except_the_first_one,
    rule_user_rights_need_only_an_admin_client,
    rule_app_management_needs_app_manager_on_every_tenant,
    rule_standard_apps_are_approved_by_tenant_administrators_only,
    rule_custom_apps_are_activated_by_app_managers_and_reactivated_by_administrators,
    rule_permission_groups_are_created_by_permission_managers,
    rule_groups_and_permissions_are_changed_by_read_write_managers,
    rule_external_permissions_are_granted_and_revoked_by_grantors,
    rule_clients_stay_within_their_creators_tenants_and_capabilities,
    rule_audit_events_stay_within_the_callers_tenants,
    a_tenant_bound_client_naming_another_tenant_is_denied,
    a_client_without_the_admin_capability_is_denied_on_every_rpc,
    naming_a_user_without_assert_user_is_denied_on_every_rpc,
    callers_without_a_valid_key_are_unauthenticated_on_every_rpc,
    audit_events_filter_by_tenant_target_actor_and_time,
    deletes_cascade_and_their_audit_events_record_what_went,
);

// ---------------------------------------------------------------------------------------------
// Calling the service.

type Admin = AdminServiceClient<Channel>;

/// Who a request comes from: its `authorization` header and `x-consentry-user`, if any.
#[derive(Debug, Clone)]
struct Who {
    authorization: Option<String>,
    user: Option<String>,
}

impl Who {
    /// A client by its key.
    fn key(key: &str) -> Who {
        Who::header(&format!("Bearer {key}"))
    }

    /// The bootstrap client (every capability, every tenant).
    fn boot() -> Who {
        Who::key(BOOTSTRAP_KEY)
    }

    /// Any `authorization` header, well-formed or not.
    fn header(value: &str) -> Who {
        Who {
            authorization: Some(value.to_owned()),
            user: None,
        }
    }

    /// No `authorization` header at all.
    fn nobody() -> Who {
        Who {
            authorization: None,
            user: None,
        }
    }

    /// The same client naming `user` in `x-consentry-user`.
    fn user(&self, user: &str) -> Who {
        Who {
            user: Some(user.to_owned()),
            ..self.clone()
        }
    }

    /// `message` as a request from this caller.
    fn r<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(value) = &self.authorization {
            request.metadata_mut().insert(
                "authorization",
                MetadataValue::try_from(value.as_str()).unwrap(),
            );
        }
        if let Some(user) = &self.user {
            request.metadata_mut().insert(
                "x-consentry-user",
                MetadataValue::try_from(user.as_str()).unwrap(),
            );
        }
        request
    }
}

/// The reply of a call that must succeed.
#[track_caller]
fn ok<T>(result: Result<Response<T>, Status>) -> T {
    match result {
        Ok(reply) => reply.into_inner(),
        Err(s) => panic!("expected OK, got {:?}: {}", s.code(), s.message()),
    }
}

/// Asserts a call failed with `code` and a message mentioning `needle`; returns the message.
#[track_caller]
fn fails<T: std::fmt::Debug>(
    result: Result<Response<T>, Status>,
    code: Code,
    needle: &str,
) -> String {
    match result {
        Ok(reply) => panic!(
            "expected {code:?} ({needle}), got OK: {:?}",
            reply.get_ref()
        ),
        Err(s) => {
            assert_eq!(s.code(), code, "wrong code; message: {}", s.message());
            assert!(
                s.message().contains(needle),
                "the {code:?} message {:?} does not mention {needle:?}",
                s.message()
            );
            s.message().to_owned()
        }
    }
}

/// A server on `db` and an AdminService client to it.
async fn start(db: &TestDb) -> (TestServer, Admin) {
    let server = TestServer::start(db).await;
    let admin = server.admin().await;
    (server, admin)
}

/// An AdminService client to a server at `addr`.
async fn admin_at(addr: SocketAddr) -> Admin {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connects");
    AdminServiceClient::new(channel)
}

/// The methods of `consentry.v1.AdminService`, from the descriptor set the server reflects.
fn admin_methods() -> BTreeSet<String> {
    let set = prost_types::FileDescriptorSet::decode(consentry::proto::FILE_DESCRIPTOR_SET)
        .expect("the descriptor set decodes");
    let methods: BTreeSet<String> = set
        .file
        .iter()
        .filter(|f| f.package() == "consentry.v1")
        .flat_map(|f| &f.service)
        .filter(|s| s.name() == "AdminService")
        .flat_map(|s| &s.method)
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

/// The RPCs that name a tenant in their request (the rest are global).
const TENANT_SCOPED: [&str; 22] = [
    "PutTenant",
    "PutUser",
    "DeleteUser",
    "GrantUserRight",
    "RevokeUserRight",
    "ApproveConsent",
    "RevokeConsent",
    "PutWhitelistEntry",
    "DeleteWhitelistEntry",
    "CreatePermissionGroup",
    "UpdatePermissionGroup",
    "DeletePermissionGroup",
    "CreateExternalPermission",
    "DeleteExternalPermission",
    "GrantExternalPermission",
    "RevokeExternalPermission",
    "ListAuditEvents",
    "ListUsers",
    "ListConsents",
    "ListWhitelistEntries",
    "ListPermissionGroups",
    "ListUserRights",
];

/// Calls every AdminService RPC once as `who` with a well-formed request naming `tenant`
/// wherever a request names one; returns each outcome by RPC name. Fails if the service has an
/// RPC this does not call.
async fn call_every_rpc(
    a: &mut Admin,
    who: &Who,
    tenant: &str,
) -> BTreeMap<&'static str, Result<(), Status>> {
    let t = || tenant.to_owned();
    let s = |v: &str| v.to_owned();
    let mut out = BTreeMap::new();
    macro_rules! call {
        ($name:literal, $method:ident, $message:expr) => {
            let result = a.$method(who.r($message)).await.map(|_| ());
            assert!(
                out.insert($name, result).is_none(),
                "{} called twice",
                $name
            );
        };
    }
    call!(
        "PutTenant",
        put_tenant,
        PutTenantRequest {
            tenant_id: t(),
            environment: s("production"),
            whitelisting_enabled: false,
        }
    );
    call!("ListTenants", list_tenants, ListTenantsRequest::default());
    call!(
        "PutUser",
        put_user,
        PutUserRequest {
            tenant_id: t(),
            user_id: s("zed"),
            roles: vec![],
        }
    );
    call!(
        "DeleteUser",
        delete_user,
        DeleteUserRequest {
            tenant_id: t(),
            user_id: s("zed"),
        }
    );
    call!(
        "GrantUserRight",
        grant_user_right,
        GrantUserRightRequest {
            tenant_id: t(),
            user_id: s("carol"),
            resource: s("/hr"),
            right: Right::Read.into(),
        }
    );
    call!(
        "RevokeUserRight",
        revoke_user_right,
        RevokeUserRightRequest {
            tenant_id: t(),
            user_id: s("carol"),
            resource: s("/hr"),
            right: 0,
        }
    );
    call!(
        "RegisterApp",
        register_app,
        RegisterAppRequest {
            app_id: s("probe"),
            name: s("Probe"),
            kind: AppKind::Standard.into(),
            manifest: Some(Manifest::default()),
        }
    );
    call!(
        "UpdateAppManifest",
        update_app_manifest,
        UpdateAppManifestRequest {
            app_id: s("probe"),
            manifest: Some(manifest(&["x"], &[])),
        }
    );
    call!(
        "UnregisterApp",
        unregister_app,
        UnregisterAppRequest { app_id: s("probe") }
    );
    call!(
        "ApproveConsent",
        approve_consent,
        approve_req(tenant, "crm", 1, vec![])
    );
    call!(
        "RevokeConsent",
        revoke_consent,
        RevokeConsentRequest {
            tenant_id: t(),
            app_id: s("crm"),
        }
    );
    call!(
        "PutWhitelistEntry",
        put_whitelist_entry,
        PutWhitelistEntryRequest {
            tenant_id: t(),
            app_id: s("crm"),
            allowed_scopes: vec![],
            content_access: 0,
        }
    );
    call!(
        "DeleteWhitelistEntry",
        delete_whitelist_entry,
        DeleteWhitelistEntryRequest {
            tenant_id: t(),
            app_id: s("crm"),
        }
    );
    call!(
        "CreatePermissionGroup",
        create_permission_group,
        group_req(tenant, "probe", &[], &[], &[])
    );
    call!(
        "UpdatePermissionGroup",
        update_permission_group,
        update_req(group_req(tenant, "g1", &[], &[], &[]))
    );
    call!(
        "DeletePermissionGroup",
        delete_permission_group,
        DeletePermissionGroupRequest {
            tenant_id: t(),
            group_id: s("g1"),
        }
    );
    call!(
        "CreateExternalPermission",
        create_external_permission,
        permission_req(tenant, "g1", "probe", "PROBE")
    );
    call!(
        "DeleteExternalPermission",
        delete_external_permission,
        DeleteExternalPermissionRequest {
            tenant_id: t(),
            permission_id: s("p1"),
        }
    );
    call!(
        "GrantExternalPermission",
        grant_external_permission,
        GrantExternalPermissionRequest {
            tenant_id: t(),
            user_id: s("carol"),
            permission_id: s("p1"),
            expires_at: None,
        }
    );
    call!(
        "RevokeExternalPermission",
        revoke_external_permission,
        RevokeExternalPermissionRequest {
            tenant_id: t(),
            user_id: s("carol"),
            permission_id: s("p1"),
        }
    );
    call!(
        "CreateClient",
        create_client,
        CreateClientRequest {
            client_id: s("probe"),
            tenants: vec![t()],
            capabilities: caps(&[Capability::Query]),
        }
    );
    call!(
        "RevokeClient",
        revoke_client,
        RevokeClientRequest {
            client_id: s("svc")
        }
    );
    call!(
        "ListAuditEvents",
        list_audit_events,
        ListAuditEventsRequest {
            tenant_id: t(),
            ..Default::default()
        }
    );
    call!("ListApps", list_apps, ListAppsRequest::default());
    call!("ListClients", list_clients, ListClientsRequest::default());
    call!(
        "ListUsers",
        list_users,
        ListUsersRequest {
            tenant_id: t(),
            ..Default::default()
        }
    );
    call!(
        "ListConsents",
        list_consents,
        ListConsentsRequest {
            tenant_id: t(),
            ..Default::default()
        }
    );
    call!(
        "ListWhitelistEntries",
        list_whitelist_entries,
        ListWhitelistEntriesRequest {
            tenant_id: t(),
            ..Default::default()
        }
    );
    call!(
        "ListPermissionGroups",
        list_permission_groups,
        ListPermissionGroupsRequest {
            tenant_id: t(),
            ..Default::default()
        }
    );
    call!(
        "ListUserRights",
        list_user_rights,
        ListUserRightsRequest {
            tenant_id: t(),
            user_id: s("carol"),
            ..Default::default()
        }
    );
    let called: BTreeSet<String> = out.keys().map(|k| (*k).to_owned()).collect();
    assert_eq!(
        called,
        admin_methods(),
        "call_every_rpc must call every AdminService RPC"
    );
    out
}

/// Asserts every outcome failed with `code` and a message mentioning `needle`.
#[track_caller]
fn all_fail(outcomes: &BTreeMap<&'static str, Result<(), Status>>, code: Code, needle: &str) {
    for (rpc, outcome) in outcomes {
        match outcome {
            Ok(()) => panic!("{rpc}: expected {code:?}, got OK"),
            Err(s) => {
                assert_eq!(s.code(), code, "{rpc}: {}", s.message());
                assert!(
                    s.message().contains(needle),
                    "{rpc}: {:?} does not mention {needle:?}",
                    s.message()
                );
            }
        }
    }
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

// ---------------------------------------------------------------------------------------------
// Values and worlds.

const ACME: &str = "acme";

fn role_codes(roles: &[Role]) -> Vec<i32> {
    roles.iter().map(|r| i32::from(*r)).collect()
}

fn caps(capabilities: &[Capability]) -> Vec<i32> {
    capabilities.iter().map(|c| i32::from(*c)).collect()
}

const ALL_CAPS: [Capability; 4] = [
    Capability::Query,
    Capability::Admin,
    Capability::AppManager,
    Capability::AssertUser,
];

fn approve_req(
    tenant: &str,
    app: &str,
    manifest_revision: i64,
    resolved_requests: Vec<ResolvedRequest>,
) -> ApproveConsentRequest {
    ApproveConsentRequest {
        tenant_id: tenant.to_owned(),
        app_id: app.to_owned(),
        manifest_revision,
        resolved_requests,
    }
}

fn group_req(
    tenant: &str,
    group: &str,
    managers: &[(&str, ManagerAccess)],
    grantors: &[&str],
    visible_to: &[&str],
) -> CreatePermissionGroupRequest {
    CreatePermissionGroupRequest {
        tenant_id: tenant.to_owned(),
        group_id: group.to_owned(),
        name: format!("Group {group}"),
        description: String::new(),
        managers: managers
            .iter()
            .map(|&(principal, access)| Manager {
                principal: principal.to_owned(),
                access: access.into(),
            })
            .collect(),
        grantors: strings(grantors),
        visible_to: strings(visible_to),
    }
}

fn update_req(c: CreatePermissionGroupRequest) -> UpdatePermissionGroupRequest {
    UpdatePermissionGroupRequest {
        tenant_id: c.tenant_id,
        group_id: c.group_id,
        name: c.name,
        description: c.description,
        managers: c.managers,
        grantors: c.grantors,
        visible_to: c.visible_to,
    }
}

fn permission_req(
    tenant: &str,
    group: &str,
    permission: &str,
    external_id: &str,
) -> CreateExternalPermissionRequest {
    CreateExternalPermissionRequest {
        tenant_id: tenant.to_owned(),
        group_id: group.to_owned(),
        permission_id: permission.to_owned(),
        name: format!("Permission {permission}"),
        description: String::new(),
        external_id: external_id.to_owned(),
    }
}

fn grant_req(tenant: &str, user: &str, permission: &str) -> GrantExternalPermissionRequest {
    GrantExternalPermissionRequest {
        tenant_id: tenant.to_owned(),
        user_id: user.to_owned(),
        permission_id: permission.to_owned(),
        expires_at: None,
    }
}

fn revoke_grant_req(tenant: &str, user: &str, permission: &str) -> RevokeExternalPermissionRequest {
    RevokeExternalPermissionRequest {
        tenant_id: tenant.to_owned(),
        user_id: user.to_owned(),
        permission_id: permission.to_owned(),
    }
}

fn whitelist_req(tenant: &str, app: &str, scopes: &[&str]) -> PutWhitelistEntryRequest {
    PutWhitelistEntryRequest {
        tenant_id: tenant.to_owned(),
        app_id: app.to_owned(),
        allowed_scopes: strings(scopes),
        content_access: 0,
    }
}

fn tenant_req(tenant: &str, environment: &str, whitelisting_enabled: bool) -> PutTenantRequest {
    PutTenantRequest {
        tenant_id: tenant.to_owned(),
        environment: environment.to_owned(),
        whitelisting_enabled,
    }
}

fn user_req(tenant: &str, user: &str, roles: &[Role]) -> PutUserRequest {
    PutUserRequest {
        tenant_id: tenant.to_owned(),
        user_id: user.to_owned(),
        roles: role_codes(roles),
    }
}

fn right_req(tenant: &str, user: &str, resource: &str, right: Right) -> GrantUserRightRequest {
    GrantUserRightRequest {
        tenant_id: tenant.to_owned(),
        user_id: user.to_owned(),
        resource: resource.to_owned(),
        right: right.into(),
    }
}

fn app_req(app: &str, kind: AppKind, m: Manifest) -> RegisterAppRequest {
    RegisterAppRequest {
        app_id: app.to_owned(),
        name: format!("App {app}"),
        kind: kind.into(),
        manifest: Some(m),
    }
}

fn client_req(id: &str, tenants: &[&str], capabilities: &[Capability]) -> CreateClientRequest {
    CreateClientRequest {
        client_id: id.to_owned(),
        tenants: strings(tenants),
        capabilities: caps(capabilities),
    }
}

/// Creates a tenant (environment `production`) as the bootstrap client.
async fn put_tenant(a: &mut Admin, tenant: &str) -> String {
    ok(
        a.put_tenant(Who::boot().r(tenant_req(tenant, "production", false)))
            .await,
    )
    .written_at
}

async fn put_user(a: &mut Admin, who: &Who, tenant: &str, user: &str, roles: &[Role]) -> String {
    ok(a.put_user(who.r(user_req(tenant, user, roles))).await).written_at
}

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

/// Registers an application as the bootstrap client; returns its manifest revision.
async fn register(a: &mut Admin, app: &str, kind: AppKind, m: Manifest) -> i64 {
    ok(a.register_app(Who::boot().r(app_req(app, kind, m))).await).manifest_revision
}

/// Creates a client as `who`; returns its key.
async fn new_client(
    a: &mut Admin,
    who: &Who,
    id: &str,
    tenants: &[&str],
    capabilities: &[Capability],
) -> String {
    let reply = ok(a
        .create_client(who.r(client_req(id, tenants, capabilities)))
        .await);
    assert_eq!(reply.client_id, id);
    assert!(reply.key.len() >= 22, "a key of at least 128 bits");
    reply.key
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

/// The number a revision token stands for (tokens are opaque to callers; the tests read them
/// with the crate's own parser to compare them).
fn rev(token: &str) -> u64 {
    Revision::parse_token("token", token)
        .unwrap_or_else(|e| panic!("{token:?} is not a revision token: {e}"))
        .0
}

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A timestamp `offset` seconds from now.
fn timestamp(offset: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: now_secs() + offset,
        nanos: 0,
    }
}

fn micros(t: &prost_types::Timestamp) -> i64 {
    t.seconds * 1_000_000 + i64::from(t.nanos) / 1_000
}

fn near_now(t: Option<&prost_types::Timestamp>) -> bool {
    t.is_some_and(|t| (t.seconds - now_secs()).abs() < 300)
}

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

// ---------------------------------------------------------------------------------------------
// Audit: one event for every write RPC.

/// A write the test made, and the audit event it must have left.
struct Done {
    action: &'static str,
    written_at: String,
    client: &'static str,
    user: &'static str,
    tenant: &'static str,
    target: String,
    before: Option<Value>,
    after: Option<Value>,
}

/// A write's expected event: `actor` is (client, user or ""), `place` is (tenant or "", target);
/// `before`/`after` list what the JSON must include, `None` when it must be empty.
fn done(
    action: &'static str,
    written_at: String,
    actor: (&'static str, &'static str),
    place: (&'static str, &str),
    before: Option<Value>,
    after: Option<Value>,
) -> Done {
    Done {
        action,
        written_at,
        client: actor.0,
        user: actor.1,
        tenant: place.0,
        target: place.1.to_owned(),
        before,
        after,
    }
}

impl Done {
    #[track_caller]
    fn check(&self, e: &AuditEvent) {
        let what = format!("{} at {}", self.action, self.written_at);
        assert_eq!(e.action, self.action, "{what}: action");
        assert_eq!(e.revision, self.written_at, "{what}: revision");
        assert_eq!(e.actor_client, self.client, "{what}: actor_client");
        assert_eq!(e.actor_user, self.user, "{what}: actor_user");
        assert_eq!(e.tenant_id, self.tenant, "{what}: tenant_id");
        assert_eq!(e.target, self.target, "{what}: target");
        assert!(near_now(e.at.as_ref()), "{what}: at {:?}", e.at);
        for (side, text, expected) in [
            ("before", &e.before, &self.before),
            ("after", &e.after, &self.after),
        ] {
            match expected {
                None => assert!(text.is_empty(), "{what}: {side} must be empty, is {text}"),
                Some(expected) => {
                    let actual = parse_json(&format!("{what}: {side}"), text);
                    assert!(
                        includes(&actual, expected),
                        "{what}: {side} {actual} does not include {expected}"
                    );
                }
            }
        }
    }
}

async fn every_write_rpc_succeeds_and_is_audited(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let mut log: Vec<Done> = Vec::new();

    let reply = ok(a
        .create_client(boot.r(client_req("ops", &["*"], &ALL_CAPS)))
        .await);
    let ops_key = reply.key.clone();
    log.push(done(
        "CreateClient",
        reply.written_at,
        ("bootstrap", ""),
        ("", "client:ops"),
        None,
        Some(json!({"client_id": "ops", "tenants": ["*"],
            "capabilities": ["query", "admin", "app_manager", "assert_user"], "revoked_at": null})),
    ));
    let ops = Who::key(&ops_key);
    let alice = ops.user("alice");
    let bob = ops.user("bob");

    // Tenants, users and rights.
    let reply = ok(a
        .put_tenant(ops.r(tenant_req(ACME, "production", false)))
        .await);
    assert!(reply.created);
    log.push(done(
        "PutTenant",
        reply.written_at,
        ("ops", ""),
        (ACME, "tenant:acme"),
        None,
        Some(json!({"tenant_id": "acme", "environment": "production", "whitelisting_enabled": false})),
    ));
    let w = put_user(&mut a, &ops, ACME, "alice", &[Role::GeneralAdmin]).await;
    log.push(done(
        "PutUser",
        w,
        ("ops", ""),
        (ACME, "user:alice"),
        None,
        Some(json!({"user_id": "alice", "roles": ["GENERAL_ADMIN"]})),
    ));
    let w = put_user(&mut a, &alice, ACME, "bob", &[Role::PermissionManager]).await;
    log.push(done(
        "PutUser",
        w,
        ("ops", "alice"),
        (ACME, "user:bob"),
        None,
        Some(json!({"user_id": "bob", "roles": ["PERMISSION_MANAGER"]})),
    ));
    let w = put_user(&mut a, &ops, ACME, "carol", &[]).await;
    log.push(done(
        "PutUser",
        w,
        ("ops", ""),
        (ACME, "user:carol"),
        None,
        Some(json!({"user_id": "carol", "roles": []})),
    ));
    let reply = ok(a
        .put_tenant(alice.r(tenant_req(ACME, "production", true)))
        .await);
    assert!(!reply.created);
    log.push(done(
        "PutTenant",
        reply.written_at,
        ("ops", "alice"),
        (ACME, "tenant:acme"),
        Some(json!({"environment": "production", "whitelisting_enabled": false})),
        Some(json!({"environment": "production", "whitelisting_enabled": true})),
    ));
    let right = json!({"user_id": "carol", "resource": "/hr", "right": "WRITE"});
    let w = ok(a
        .grant_user_right(ops.r(right_req(ACME, "carol", "/hr", Right::Write)))
        .await)
    .written_at;
    log.push(done(
        "GrantUserRight",
        w,
        ("ops", ""),
        (ACME, "user:carol"),
        None,
        Some(right.clone()),
    ));
    let w = ok(a
        .revoke_user_right(ops.r(RevokeUserRightRequest {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
            resource: "/hr".into(),
            right: 0,
        }))
        .await)
    .written_at;
    log.push(done(
        "RevokeUserRight",
        w,
        ("ops", ""),
        (ACME, "user:carol"),
        Some(right),
        None,
    ));

    // Applications, consent and whitelisting.
    let reply = ok(a
        .register_app(ops.r(RegisterAppRequest {
            app_id: "crm".into(),
            name: "CRM".into(),
            kind: AppKind::Standard.into(),
            manifest: Some(manifest(
                &["documents:read"],
                &[(ScopeLevel::Web, Right::Write)],
            )),
        }))
        .await);
    assert_eq!(reply.manifest_revision, 1);
    log.push(done(
        "RegisterApp",
        reply.written_at,
        ("ops", ""),
        ("", "app:crm"),
        None,
        Some(
            json!({"app_id": "crm", "name": "CRM", "kind": "STANDARD", "manifest_revision": 1,
            "manifest": {"scopes": ["documents:read"],
                         "permission_requests": [{"scope_level": "WEB", "right": "WRITE"}]}}),
        ),
    ));
    let reply = ok(a
        .update_app_manifest(ops.r(UpdateAppManifestRequest {
            app_id: "crm".into(),
            manifest: Some(manifest(
                &["documents:read", "documents:write"],
                &[(ScopeLevel::Web, Right::Write)],
            )),
        }))
        .await);
    assert_eq!(reply.manifest_revision, 2);
    log.push(done(
        "UpdateAppManifest",
        reply.written_at,
        ("ops", ""),
        ("", "app:crm"),
        Some(json!({"manifest_revision": 1, "manifest": {"scopes": ["documents:read"]}})),
        Some(json!({"manifest_revision": 2,
            "manifest": {"scopes": ["documents:read", "documents:write"]}})),
    ));
    let reply = ok(a
        .approve_consent(alice.r(approve_req(
            ACME,
            "crm",
            2,
            vec![resolved(ScopeLevel::Web, Right::Write, "/hr/team")],
        )))
        .await);
    let consent = reply.consent.expect("the consent");
    assert_eq!(consent.approved_by, "user:alice");
    assert_eq!(consent.approved_manifest_revision, 2);
    log.push(done(
        "ApproveConsent",
        reply.written_at,
        ("ops", "alice"),
        (ACME, "app:crm"),
        None,
        Some(
            json!({"app_id": "crm", "approved_by": "user:alice", "approved_manifest_revision": 2,
            "resolved_requests": [{"scope_level": "WEB", "right": "WRITE", "resource": "/hr/team"}],
            "revoked_at": null}),
        ),
    ));
    let entry = json!({"app_id": "crm", "allowed_scopes": ["documents:read"],
        "content_access": "ON_BEHALF_OF_MANAGED_USERS"});
    let w = ok(a
        .put_whitelist_entry(alice.r(PutWhitelistEntryRequest {
            content_access: ContentAccess::OnBehalfOfManagedUsers.into(),
            ..whitelist_req(ACME, "crm", &["documents:read"])
        }))
        .await)
    .written_at;
    log.push(done(
        "PutWhitelistEntry",
        w,
        ("ops", "alice"),
        (ACME, "app:crm"),
        None,
        Some(entry.clone()),
    ));
    let w = ok(a
        .delete_whitelist_entry(alice.r(DeleteWhitelistEntryRequest {
            tenant_id: ACME.into(),
            app_id: "crm".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "DeleteWhitelistEntry",
        w,
        ("ops", "alice"),
        (ACME, "app:crm"),
        Some(entry),
        None,
    ));
    let w = ok(a
        .revoke_consent(alice.r(RevokeConsentRequest {
            tenant_id: ACME.into(),
            app_id: "crm".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "RevokeConsent",
        w,
        ("ops", "alice"),
        (ACME, "app:crm"),
        Some(json!({"approved_by": "user:alice", "revoked_at": null})),
        Some(json!({"approved_by": "user:alice", "approved_manifest_revision": 2})),
    ));

    // External permission groups, permissions and grants.
    let reply = ok(a
        .create_permission_group(bob.r(group_req(
            ACME,
            "billing",
            &[],
            &["user:bob"],
            &["client:ops"],
        )))
        .await);
    let group = reply.group.expect("the group");
    assert_eq!(
        group.managers,
        vec![Manager {
            principal: "user:bob".into(),
            access: ManagerAccess::ReadWrite.into()
        }]
    );
    log.push(done(
        "CreatePermissionGroup",
        reply.written_at,
        ("ops", "bob"),
        (ACME, "group:billing"),
        None,
        Some(json!({"group_id": "billing", "name": "Group billing",
            "managers": [{"principal": "user:bob", "access": "READ_WRITE"}],
            "grantors": ["user:bob"], "visible_to": ["client:ops"]})),
    ));
    let mut update = update_req(group_req(
        ACME,
        "billing",
        &[("user:bob", ManagerAccess::ReadWrite)],
        &["user:bob"],
        &["client:ops"],
    ));
    update.name = "Billing".into();
    let reply = ok(a.update_permission_group(bob.r(update)).await);
    assert_eq!(reply.group.expect("the group").name, "Billing");
    log.push(done(
        "UpdatePermissionGroup",
        reply.written_at,
        ("ops", "bob"),
        (ACME, "group:billing"),
        Some(json!({"name": "Group billing"})),
        Some(json!({"name": "Billing",
            "managers": [{"principal": "user:bob", "access": "READ_WRITE"}]})),
    ));
    let permission = json!({"permission_id": "invoice.view", "group_id": "billing",
        "name": "Permission invoice.view", "external_id": "INV-VIEW"});
    let w = ok(a
        .create_external_permission(bob.r(permission_req(
            ACME,
            "billing",
            "invoice.view",
            "INV-VIEW",
        )))
        .await)
    .written_at;
    log.push(done(
        "CreateExternalPermission",
        w,
        ("ops", "bob"),
        (ACME, "permission:invoice.view"),
        None,
        Some(permission.clone()),
    ));
    let expires = timestamp(3600);
    let w = ok(a
        .grant_external_permission(bob.r(GrantExternalPermissionRequest {
            expires_at: Some(expires),
            ..grant_req(ACME, "carol", "invoice.view")
        }))
        .await)
    .written_at;
    let grant = json!({"user_id": "carol", "permission_id": "invoice.view",
        "granted_by": "user:bob", "expires_at": micros(&expires)});
    log.push(done(
        "GrantExternalPermission",
        w,
        ("ops", "bob"),
        (ACME, "user:carol"),
        None,
        Some(grant.clone()),
    ));
    let w = ok(a
        .revoke_external_permission(bob.r(revoke_grant_req(ACME, "carol", "invoice.view")))
        .await)
    .written_at;
    log.push(done(
        "RevokeExternalPermission",
        w,
        ("ops", "bob"),
        (ACME, "user:carol"),
        Some(grant),
        None,
    ));
    let w = ok(a
        .delete_external_permission(bob.r(DeleteExternalPermissionRequest {
            tenant_id: ACME.into(),
            permission_id: "invoice.view".into(),
        }))
        .await)
    .written_at;
    let mut gone = permission;
    gone["grants"] = json!([]);
    log.push(done(
        "DeleteExternalPermission",
        w,
        ("ops", "bob"),
        (ACME, "permission:invoice.view"),
        Some(gone),
        None,
    ));
    let w = ok(a
        .delete_permission_group(bob.r(DeletePermissionGroupRequest {
            tenant_id: ACME.into(),
            group_id: "billing".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "DeletePermissionGroup",
        w,
        ("ops", "bob"),
        (ACME, "group:billing"),
        Some(json!({"group_id": "billing", "name": "Billing", "permissions": [], "grants": []})),
        None,
    ));

    // Removals and clients.
    let w = ok(a
        .delete_user(ops.r(DeleteUserRequest {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "DeleteUser",
        w,
        ("ops", ""),
        (ACME, "user:carol"),
        Some(
            json!({"user_id": "carol", "roles": [], "rights": [], "grants": [],
            "group_entries": []}),
        ),
        None,
    ));
    let w = ok(a
        .unregister_app(ops.r(UnregisterAppRequest {
            app_id: "crm".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "UnregisterApp",
        w,
        ("ops", ""),
        ("", "app:crm"),
        Some(json!({"app_id": "crm", "manifest_revision": 2, "whitelist_entries": []})),
        None,
    ));
    let svc_key = new_client(&mut a, &ops, "svc", &[ACME], &[Capability::Query]).await;
    let created = all_events(&mut a).await.pop().expect("an event").revision;
    log.push(done(
        "CreateClient",
        created,
        ("ops", ""),
        ("", "client:svc"),
        None,
        Some(
            json!({"client_id": "svc", "tenants": ["acme"], "capabilities": ["query"],
            "revoked_at": null}),
        ),
    ));
    let w = ok(a
        .revoke_client(ops.r(RevokeClientRequest {
            client_id: "svc".into(),
        }))
        .await)
    .written_at;
    log.push(done(
        "RevokeClient",
        w,
        ("ops", ""),
        ("", "client:svc"),
        Some(
            json!({"client_id": "svc", "tenants": ["acme"], "capabilities": ["query"],
            "revoked_at": null}),
        ),
        Some(json!({"client_id": "svc", "tenants": ["acme"], "capabilities": ["query"]})),
    ));

    // The test made every write RPC the service has: a new write RPC fails it until it is
    // exercised here too.
    let performed: BTreeSet<String> = log.iter().map(|d| d.action.to_owned()).collect();
    assert_eq!(
        performed,
        write_methods(),
        "every write RPC of consentry.v1.AdminService must be exercised and audited here"
    );
    for pair in log.windows(2) {
        assert!(
            rev(&pair[1].written_at) > rev(&pair[0].written_at),
            "{} wrote at {} after {} at {}",
            pair[1].action,
            pair[1].written_at,
            pair[0].action,
            pair[0].written_at
        );
    }

    // One event per write (plus the bootstrap client's creation at start), oldest first.
    let events = all_events(&mut a).await;
    assert_eq!(events.len(), log.len() + 1, "{events:#?}");
    let first = &events[0];
    assert_eq!(
        (
            first.action.as_str(),
            first.target.as_str(),
            first.tenant_id.as_str()
        ),
        ("CreateClient", "client:bootstrap", "")
    );
    assert_eq!(first.actor_client, "(bootstrap)");
    for pair in events.windows(2) {
        assert!(rev(&pair[1].revision) > rev(&pair[0].revision));
    }
    let by_revision: BTreeMap<&str, &AuditEvent> =
        events.iter().map(|e| (e.revision.as_str(), e)).collect();
    for d in &log {
        let e = by_revision
            .get(d.written_at.as_str())
            .unwrap_or_else(|| panic!("no audit event at {} for {}", d.written_at, d.action));
        d.check(e);
    }
    let event = |action: &str| {
        events
            .iter()
            .rfind(|e| e.action == action)
            .unwrap_or_else(|| panic!("no {action} event"))
    };
    let revoked = parse_json("RevokeConsent", &event("RevokeConsent").after);
    assert!(revoked["revoked_at"].is_i64(), "{revoked}");
    let unregistered = parse_json("UnregisterApp", &event("UnregisterApp").before);
    let consents = unregistered["consents"].as_array().expect("consents");
    assert_eq!(consents.len(), 1, "{unregistered}");
    assert_eq!(consents[0]["tenant_id"], "acme");
    assert!(consents[0]["revoked_at"].is_i64(), "{unregistered}");
    let revoked_client = parse_json("RevokeClient", &event("RevokeClient").after);
    assert!(revoked_client["revoked_at"].is_i64(), "{revoked_client}");

    // Never a key or its hash.
    for secret in [
        ops_key.clone(),
        hash_key(&ops_key),
        svc_key.clone(),
        hash_key(&svc_key),
        BOOTSTRAP_KEY.to_owned(),
        hash_key(BOOTSTRAP_KEY),
    ] {
        for e in &events {
            assert!(
                !e.before.contains(&secret) && !e.after.contains(&secret),
                "{} leaks a key or its hash",
                e.action
            );
        }
    }
    server.stop().await;
}

/// Asserts `got` is exactly the events of `all` that `keep` keeps, which are some but not all.
#[track_caller]
fn check_filter(what: &str, all: &[AuditEvent], got: &[AuditEvent], keep: fn(&AuditEvent) -> bool) {
    let want: Vec<&AuditEvent> = all.iter().filter(|e| keep(e)).collect();
    assert!(!want.is_empty(), "{what}: the filter must match something");
    assert!(
        want.len() < all.len(),
        "{what}: the filter must leave something out"
    );
    assert_eq!(got.iter().collect::<Vec<_>>(), want, "{what}");
}

async fn audit_events_filter_by_tenant_target_actor_and_time(db: &TestDb) {
    let (server, mut a) = start(db).await;
    acme(&mut a).await;
    put_tenant(&mut a, "beta").await;
    put_user(&mut a, &Who::boot(), "beta", "carol", &[Role::UserAdmin]).await;
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    let ops_key = new_client(&mut a, &Who::boot(), "ops", &["*"], &ALL_CAPS).await;
    let ops = Who::key(&ops_key);
    ok(
        a.approve_consent(ops.user("alice").r(approve_req(ACME, "crm", 1, vec![])))
            .await,
    );
    ok(
        a.approve_consent(ops.user("carol").r(approve_req("beta", "crm", 1, vec![])))
            .await,
    );
    put_user(&mut a, &ops, ACME, "carol", &[]).await;
    ok(
        a.grant_user_right(ops.r(right_req(ACME, "carol", "/hr", Right::Read)))
            .await,
    );
    let all = all_events(&mut a).await;
    assert!(all.len() >= 12);

    let check = |what: &str, got: &[AuditEvent], keep: fn(&AuditEvent) -> bool| {
        check_filter(what, &all, got, keep)
    };
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        },
    )
    .await;
    check("tenant", &got, |e| e.tenant_id == ACME);
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            target: "user:carol".into(),
            ..Default::default()
        },
    )
    .await;
    check("target", &got, |e| e.target == "user:carol");
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            target: "app:crm".into(),
            tenant_id: "beta".into(),
            ..Default::default()
        },
    )
    .await;
    check("target and tenant", &got, |e| {
        e.target == "app:crm" && e.tenant_id == "beta"
    });
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            actor: "user:alice".into(),
            ..Default::default()
        },
    )
    .await;
    check("acting user", &got, |e| e.actor_user == "alice");
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            actor: "client:ops".into(),
            ..Default::default()
        },
    )
    .await;
    check("client", &got, |e| e.actor_client == "ops");
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            actor: "app:crm".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(got.is_empty(), "no event is by an app: {got:?}");
    let middle = all[all.len() / 2].at.expect("at");
    let got = events(
        &mut a,
        &Who::boot(),
        ListAuditEventsRequest {
            since: Some(middle),
            ..Default::default()
        },
    )
    .await;
    let want: Vec<&AuditEvent> = all
        .iter()
        .filter(|e| micros(e.at.as_ref().expect("at")) >= micros(&middle))
        .collect();
    assert!(want.len() < all.len() && !want.is_empty());
    assert_eq!(got.iter().collect::<Vec<_>>(), want, "since");
    // A filtered listing pages completely too.
    let paged = pages!(
        a,
        Who::boot(),
        2,
        list_audit_events,
        ListAuditEventsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        },
        events,
        |e| e.revision.clone()
    );
    let want: Vec<String> = all
        .iter()
        .filter(|e| e.tenant_id == ACME)
        .map(|e| e.revision.clone())
        .collect();
    assert_eq!(paged.concat(), want);
    assert!(paged.iter().all(|p| p.len() <= 2));
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Success of every RPC, and what the listings show.

async fn every_list_rpc_answers_what_was_written(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    ok(a.put_tenant(boot.r(tenant_req("beta", "stage", true)))
        .await);
    put_user(
        &mut a,
        &alice,
        ACME,
        "dave",
        &[Role::UserAdmin, Role::Delegate],
    )
    .await;
    for (resource, right) in [
        ("/hr", Right::Write),
        ("/hr/team/docs", Right::Read),
        ("/a..b", Right::FullControl),
    ] {
        ok(
            a.grant_user_right(boot.r(right_req(ACME, "carol", resource, right)))
                .await,
        );
    }
    // Granting again replaces the level held at that path.
    ok(
        a.grant_user_right(boot.r(right_req(ACME, "carol", "/hr", Right::Manage)))
            .await,
    );
    let crm = Manifest {
        allow_app_only: true,
        policy: Policy::UserOnly.into(),
        webhooks: true,
        ..manifest(
            &["documents:read", "documents:write"],
            &[(ScopeLevel::Web, Right::Write)],
        )
    };
    register(&mut a, "crm", AppKind::Standard, crm.clone()).await;
    register(&mut a, "tool", AppKind::Custom, Manifest::default()).await;
    let mgr = Who::key(
        &new_client(
            &mut a,
            &boot,
            "mgr",
            &[ACME],
            &[Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let svc_key = new_client(
        &mut a,
        &boot,
        "svc",
        &[ACME],
        &[Capability::Query, Capability::Admin],
    )
    .await;
    let svc = Who::key(&svc_key);
    new_client(&mut a, &boot, "gone", &["*"], &[Capability::Query]).await;
    ok(a.revoke_client(boot.r(RevokeClientRequest {
        client_id: "gone".into(),
    }))
    .await);
    ok(a.approve_consent(alice.r(approve_req(
        ACME,
        "crm",
        1,
        vec![resolved(ScopeLevel::Web, Right::Write, "/hr/team")],
    )))
    .await);
    ok(
        a.approve_consent(mgr.r(approve_req(ACME, "tool", 1, vec![])))
            .await,
    );
    ok(a.put_whitelist_entry(alice.r(PutWhitelistEntryRequest {
        content_access: ContentAccess::OnBehalfOfManagedUsers.into(),
        ..whitelist_req(ACME, "crm", &["documents:read"])
    }))
    .await);
    ok(
        a.put_whitelist_entry(alice.r(whitelist_req(ACME, "tool", &[])))
            .await,
    );
    ok(a.create_permission_group(bob.r(group_req(
        ACME,
        "g1",
        &[("user:carol", ManagerAccess::Read)],
        &["user:bob"],
        &["client:svc"],
    )))
    .await);
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g2", &[], &[], &[])))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g2", "p2", "P-2")))
            .await,
    );
    // An expiry in the past is accepted (the grant is simply expired); granting again updates it.
    ok(
        a.grant_external_permission(bob.r(GrantExternalPermissionRequest {
            expires_at: Some(timestamp(-3600)),
            ..grant_req(ACME, "carol", "p1")
        }))
        .await,
    );
    ok(
        a.grant_external_permission(bob.r(grant_req(ACME, "carol", "p1")))
            .await,
    );

    // ListTenants: within the caller's tenants.
    let tenants = ok(a.list_tenants(boot.r(ListTenantsRequest::default())).await).tenants;
    assert_eq!(
        tenants,
        vec![
            Tenant {
                tenant_id: "acme".into(),
                environment: "production".into(),
                whitelisting_enabled: false
            },
            Tenant {
                tenant_id: "beta".into(),
                environment: "stage".into(),
                whitelisting_enabled: true
            },
        ]
    );
    let tenants = ok(a.list_tenants(svc.r(ListTenantsRequest::default())).await).tenants;
    assert_eq!(
        tenants
            .iter()
            .map(|t| t.tenant_id.as_str())
            .collect::<Vec<_>>(),
        ["acme"]
    );

    // ListUsers: ordered by id, with their roles as given.
    let users = ok(a
        .list_users(boot.r(ListUsersRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .users;
    let users: Vec<(String, Vec<i32>)> = users
        .into_iter()
        .map(|u| {
            assert_eq!(u.tenant_id, ACME);
            (u.user_id, u.roles)
        })
        .collect();
    assert_eq!(
        users,
        vec![
            ("alice".to_owned(), role_codes(&[Role::GeneralAdmin])),
            ("bob".to_owned(), role_codes(&[Role::PermissionManager])),
            ("carol".to_owned(), vec![]),
            (
                "dave".to_owned(),
                role_codes(&[Role::UserAdmin, Role::Delegate])
            ),
        ]
    );

    // ListUserRights: one level per path, ordered by resource.
    let rights = ok(a
        .list_user_rights(boot.r(ListUserRightsRequest {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
            ..Default::default()
        }))
        .await)
    .rights;
    let rights: Vec<(String, i32)> = rights.into_iter().map(|r| (r.resource, r.right)).collect();
    assert_eq!(
        rights,
        vec![
            ("/a..b".to_owned(), i32::from(Right::FullControl)),
            ("/hr".to_owned(), i32::from(Right::Manage)),
            ("/hr/team/docs".to_owned(), i32::from(Right::Read)),
        ]
    );

    // ListApps: the manifest as registered, defaults filled in.
    let apps = ok(a.list_apps(svc.r(ListAppsRequest::default())).await).apps;
    assert_eq!(
        apps.iter().map(|a| a.app_id.as_str()).collect::<Vec<_>>(),
        ["crm", "tool"]
    );
    let want = Manifest {
        run_as: RunAs::UserContext.into(),
        ..crm.clone()
    };
    assert_eq!(apps[0].manifest.as_ref(), Some(&want));
    assert_eq!(
        (
            apps[0].name.as_str(),
            apps[0].kind,
            apps[0].manifest_revision
        ),
        ("App crm", AppKind::Standard.into(), 1)
    );
    assert_eq!(apps[1].kind, i32::from(AppKind::Custom));
    assert_eq!(
        apps[1].manifest.as_ref().map(|m| (m.run_as, m.policy)),
        Some((RunAs::UserContext.into(), Policy::UserAndApp.into()))
    );

    // ListConsents: with approver, time and the approved snapshot.
    let consents = ok(a
        .list_consents(svc.r(ListConsentsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .consents;
    assert_eq!(consents.len(), 2);
    let c = &consents[0];
    assert_eq!(
        (c.app_id.as_str(), c.approved_by.as_str()),
        ("crm", "user:alice")
    );
    assert!(near_now(c.approved_at.as_ref()), "{c:?}");
    assert_eq!(c.approved_manifest_revision, 1);
    assert_eq!(c.approved_manifest.as_ref(), Some(&want));
    assert_eq!(
        c.resolved_requests,
        vec![resolved(ScopeLevel::Web, Right::Write, "/hr/team")]
    );
    assert_eq!(c.revoked_at, None);
    assert_eq!(
        (
            consents[1].app_id.as_str(),
            consents[1].approved_by.as_str()
        ),
        ("tool", "client:mgr")
    );
    let beta = ok(a
        .list_consents(boot.r(ListConsentsRequest {
            tenant_id: "beta".into(),
            ..Default::default()
        }))
        .await)
    .consents;
    assert!(beta.is_empty(), "consent is never copied between tenants");

    // ListWhitelistEntries.
    let entries = ok(a
        .list_whitelist_entries(svc.r(ListWhitelistEntriesRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .entries;
    assert_eq!(
        entries,
        vec![
            WhitelistEntry {
                tenant_id: ACME.into(),
                app_id: "crm".into(),
                allowed_scopes: strings(&["documents:read"]),
                content_access: ContentAccess::OnBehalfOfManagedUsers.into(),
            },
            WhitelistEntry {
                tenant_id: ACME.into(),
                app_id: "tool".into(),
                allowed_scopes: vec![],
                content_access: ContentAccess::OwnContent.into(),
            },
        ]
    );

    // ListPermissionGroups: what the viewer may see or manages, with the permissions.
    let groups_for = |who: Who| {
        let mut a = a.clone();
        async move {
            ok(a.list_permission_groups(who.r(ListPermissionGroupsRequest {
                tenant_id: ACME.into(),
                ..Default::default()
            }))
            .await)
            .groups
        }
    };
    let groups = groups_for(bob.clone()).await;
    assert_eq!(
        groups
            .iter()
            .map(|g| g.group_id.as_str())
            .collect::<Vec<_>>(),
        ["g1", "g2"]
    );
    let g1 = &groups[0];
    assert_eq!(g1.name, "Group g1");
    assert_eq!(
        g1.managers,
        vec![
            Manager {
                principal: "user:carol".into(),
                access: ManagerAccess::Read.into()
            },
            Manager {
                principal: "user:bob".into(),
                access: ManagerAccess::ReadWrite.into()
            },
        ]
    );
    assert_eq!(g1.grantors, strings(&["user:bob"]));
    assert_eq!(g1.visible_to, strings(&["client:svc"]));
    assert_eq!(
        g1.permissions,
        vec![ExternalPermission {
            permission_id: "p1".into(),
            group_id: "g1".into(),
            name: "Permission p1".into(),
            description: String::new(),
            external_id: "P-1".into(),
        }]
    );
    let ids = |groups: Vec<PermissionGroup>| {
        groups
            .into_iter()
            .map(|g| g.group_id)
            .collect::<Vec<String>>()
    };
    assert_eq!(
        ids(groups_for(boot.user("carol")).await),
        ["g1"],
        "a READ manager"
    );
    assert_eq!(
        ids(groups_for(svc.clone()).await),
        ["g1"],
        "a visible-to client"
    );
    assert!(
        ids(groups_for(alice.clone()).await).is_empty(),
        "an administrator who manages nothing"
    );
    assert!(
        ids(groups_for(boot.clone()).await).is_empty(),
        "a client that sees nothing"
    );

    // ListClients: tenants, capabilities, revocation; never a key.
    let clients = ok(a.list_clients(boot.r(ListClientsRequest::default())).await).clients;
    assert_eq!(
        clients
            .iter()
            .map(|c| c.client_id.as_str())
            .collect::<Vec<_>>(),
        ["bootstrap", "gone", "mgr", "svc"]
    );
    let svc_row = &clients[3];
    assert_eq!(svc_row.tenants, strings(&[ACME]));
    assert_eq!(
        svc_row.capabilities,
        caps(&[Capability::Query, Capability::Admin])
    );
    assert!(near_now(svc_row.created_at.as_ref()));
    assert_eq!(svc_row.revoked_at, None);
    assert!(near_now(clients[1].revoked_at.as_ref()), "gone is revoked");
    assert_eq!(clients[0].tenants, strings(&["*"]));
    assert_eq!(clients[0].capabilities, caps(&ALL_CAPS));
    for c in &clients {
        let bytes = c.encode_to_vec();
        for secret in [svc_key.clone(), hash_key(&svc_key), hash_key(BOOTSTRAP_KEY)] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "ListClients leaks a key or hash"
            );
        }
    }

    // ListAuditEvents: oldest first.
    let audit = all_events(&mut a).await;
    assert!(audit.len() > 20);
    assert!(
        audit
            .windows(2)
            .all(|p| rev(&p[0].revision) < rev(&p[1].revision))
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Status codes: NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT, ABORTED, FAILED_PRECONDITION.

async fn naming_something_missing_is_not_found(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &["user:bob"], &[])))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    new_client(&mut a, &boot, "old", &[ACME], &[Capability::Query]).await;
    ok(a.revoke_client(boot.r(RevokeClientRequest {
        client_id: "old".into(),
    }))
    .await);
    let before = all_events(&mut a).await.len();

    const NF: Code = Code::NotFound;
    fails(
        a.put_user(boot.r(user_req("ghost", "x", &[]))).await,
        NF,
        "ghost",
    );
    fails(
        a.delete_user(boot.r(DeleteUserRequest {
            tenant_id: ACME.into(),
            user_id: "nobody".into(),
        }))
        .await,
        NF,
        "nobody",
    );
    fails(
        a.grant_user_right(boot.r(right_req(ACME, "nobody", "/hr", Right::Read)))
            .await,
        NF,
        "nobody",
    );
    fails(
        a.grant_user_right(boot.r(right_req("ghost", "carol", "/hr", Right::Read)))
            .await,
        NF,
        "ghost",
    );
    let revoke_right = |right: Right| RevokeUserRightRequest {
        tenant_id: ACME.into(),
        user_id: "carol".into(),
        resource: "/hr".into(),
        right: right.into(),
    };
    fails(
        a.revoke_user_right(boot.r(revoke_right(Right::Read))).await,
        NF,
        "/hr",
    );
    ok(
        a.grant_user_right(boot.r(right_req(ACME, "carol", "/hr", Right::Read)))
            .await,
    );
    fails(
        a.revoke_user_right(boot.r(revoke_right(Right::Write)))
            .await,
        NF,
        "/hr",
    );
    let before = before + 1;
    fails(
        a.update_app_manifest(boot.r(UpdateAppManifestRequest {
            app_id: "ghost-app".into(),
            manifest: Some(Manifest::default()),
        }))
        .await,
        NF,
        "ghost-app",
    );
    fails(
        a.unregister_app(boot.r(UnregisterAppRequest {
            app_id: "ghost-app".into(),
        }))
        .await,
        NF,
        "ghost-app",
    );
    fails(
        a.approve_consent(alice.r(approve_req(ACME, "ghost-app", 1, vec![])))
            .await,
        NF,
        "ghost-app",
    );
    fails(
        a.approve_consent(alice.r(approve_req("ghost", "crm", 1, vec![])))
            .await,
        NF,
        "ghost",
    );
    let revoke_consent = |app: &str| RevokeConsentRequest {
        tenant_id: ACME.into(),
        app_id: app.into(),
    };
    fails(
        a.revoke_consent(alice.r(revoke_consent("crm"))).await,
        NF,
        "crm",
    );
    fails(
        a.revoke_consent(alice.r(revoke_consent("ghost-app"))).await,
        NF,
        "ghost-app",
    );
    fails(
        a.put_whitelist_entry(alice.r(whitelist_req(ACME, "ghost-app", &[])))
            .await,
        NF,
        "ghost-app",
    );
    fails(
        a.delete_whitelist_entry(alice.r(DeleteWhitelistEntryRequest {
            tenant_id: ACME.into(),
            app_id: "crm".into(),
        }))
        .await,
        NF,
        "crm",
    );
    fails(
        a.create_permission_group(bob.r(group_req("ghost", "g9", &[], &[], &[])))
            .await,
        NF,
        "ghost",
    );
    fails(
        a.update_permission_group(bob.r(update_req(group_req(ACME, "ghost-group", &[], &[], &[]))))
            .await,
        NF,
        "ghost-group",
    );
    fails(
        a.delete_permission_group(bob.r(DeletePermissionGroupRequest {
            tenant_id: ACME.into(),
            group_id: "ghost-group".into(),
        }))
        .await,
        NF,
        "ghost-group",
    );
    fails(
        a.create_external_permission(bob.r(permission_req(ACME, "ghost-group", "p9", "P-9")))
            .await,
        NF,
        "ghost-group",
    );
    fails(
        a.delete_external_permission(bob.r(DeleteExternalPermissionRequest {
            tenant_id: ACME.into(),
            permission_id: "ghost-perm".into(),
        }))
        .await,
        NF,
        "ghost-perm",
    );
    fails(
        a.grant_external_permission(bob.r(grant_req(ACME, "carol", "ghost-perm")))
            .await,
        NF,
        "ghost-perm",
    );
    fails(
        a.grant_external_permission(bob.r(grant_req(ACME, "nobody", "p1")))
            .await,
        NF,
        "nobody",
    );
    fails(
        a.revoke_external_permission(bob.r(revoke_grant_req(ACME, "carol", "p1")))
            .await,
        NF,
        "p1",
    );
    fails(
        a.revoke_client(boot.r(RevokeClientRequest {
            client_id: "ghost-client".into(),
        }))
        .await,
        NF,
        "ghost-client",
    );
    fails(
        a.revoke_client(boot.r(RevokeClientRequest {
            client_id: "old".into(),
        }))
        .await,
        NF,
        "old",
    );

    // Listings of something missing.
    fails(
        a.list_users(boot.r(ListUsersRequest {
            tenant_id: "ghost".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "ghost",
    );
    fails(
        a.list_consents(boot.r(ListConsentsRequest {
            tenant_id: "ghost".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "ghost",
    );
    fails(
        a.list_whitelist_entries(boot.r(ListWhitelistEntriesRequest {
            tenant_id: "ghost".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "ghost",
    );
    fails(
        a.list_permission_groups(bob.r(ListPermissionGroupsRequest {
            tenant_id: "ghost".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "ghost",
    );
    fails(
        a.list_user_rights(boot.r(ListUserRightsRequest {
            tenant_id: ACME.into(),
            user_id: "nobody".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "nobody",
    );
    fails(
        a.list_user_rights(boot.r(ListUserRightsRequest {
            tenant_id: "ghost".into(),
            user_id: "carol".into(),
            ..Default::default()
        }))
        .await,
        NF,
        "ghost",
    );
    assert_eq!(
        all_events(&mut a).await.len(),
        before,
        "a NOT_FOUND write leaves no audit event"
    );
    server.stop().await;
}

async fn creating_an_existing_id_is_already_exists(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let bob = boot.user("bob");
    acme(&mut a).await;
    const AE: Code = Code::AlreadyExists;
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    fails(
        a.register_app(boot.r(app_req("crm", AppKind::Custom, manifest(&["x"], &[]))))
            .await,
        AE,
        "crm",
    );
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
    );
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g2", &[], &[], &[])))
            .await,
    );
    fails(
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
        AE,
        "g1",
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "INV-1")))
            .await,
    );
    fails(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "INV-2")))
            .await,
        AE,
        "p1",
    );
    fails(
        a.create_external_permission(bob.r(permission_req(ACME, "g2", "p1", "INV-9")))
            .await,
        AE,
        "p1",
    );
    // external_id is unique in its group, not across groups.
    fails(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p2", "INV-1")))
            .await,
        AE,
        "INV-1",
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g2", "p3", "INV-1")))
            .await,
    );
    new_client(&mut a, &boot, "svc", &[ACME], &[Capability::Query]).await;
    fails(
        a.create_client(boot.r(client_req("svc", &["*"], &[Capability::Admin])))
            .await,
        AE,
        "svc",
    );
    fails(
        a.create_client(boot.r(client_req("bootstrap", &[ACME], &[Capability::Query])))
            .await,
        AE,
        "bootstrap",
    );
    ok(a.revoke_client(boot.r(RevokeClientRequest {
        client_id: "svc".into(),
    }))
    .await);
    fails(
        a.create_client(boot.r(client_req("svc", &[ACME], &[Capability::Query])))
            .await,
        AE,
        "svc",
    );
    // Groups of another tenant are another namespace.
    put_tenant(&mut a, "beta").await;
    put_user(&mut a, &boot, "beta", "bob", &[Role::GeneralAdmin]).await;
    ok(
        a.create_permission_group(bob.r(group_req("beta", "g1", &[], &[], &[])))
            .await,
    );
    server.stop().await;
}

async fn malformed_input_is_invalid_argument_naming_the_field(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    register(
        &mut a,
        "crm",
        AppKind::Standard,
        manifest(
            &["documents:read"],
            &[
                (ScopeLevel::Web, Right::Write),
                (ScopeLevel::Tenancy, Right::Read),
            ],
        ),
    )
    .await;
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &["user:bob"], &[])))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    let events_before = all_events(&mut a).await.len();
    const IA: Code = Code::InvalidArgument;

    // Identifiers and text.
    for bad in ["bad id", "", &"t".repeat(129), "tab\tid", "ümlaut"] {
        fails(
            a.put_tenant(boot.r(tenant_req(bad, "production", false)))
                .await,
            IA,
            "tenant_id",
        );
    }
    fails(
        a.put_tenant(boot.r(tenant_req("new", "", false))).await,
        IA,
        "environment",
    );
    fails(
        a.put_tenant(boot.r(tenant_req("new", "pro\nduction", false)))
            .await,
        IA,
        "environment",
    );
    fails(
        a.put_user(boot.r(user_req(ACME, "bob smith", &[]))).await,
        IA,
        "user_id",
    );
    fails(
        a.put_user(boot.r(PutUserRequest {
            roles: vec![0],
            ..user_req(ACME, "dave", &[])
        }))
        .await,
        IA,
        "roles[0]",
    );
    fails(
        a.put_user(boot.r(PutUserRequest {
            roles: vec![Role::Delegate.into(), 99],
            ..user_req(ACME, "dave", &[])
        }))
        .await,
        IA,
        "roles[1]",
    );

    // Paths: accepted or rejected, never normalised.
    let deep = "/a".repeat(33);
    let long = format!("/{}", "a".repeat(1024));
    for bad in [
        "/a/../b",
        "/a/./b",
        "/..",
        "a/b",
        "/a/",
        "//a",
        "/a//b",
        "",
        "/a\u{1}b",
        deep.as_str(),
        long.as_str(),
    ] {
        fails(
            a.grant_user_right(boot.r(right_req(ACME, "carol", bad, Right::Read)))
                .await,
            IA,
            "resource",
        );
        fails(
            a.revoke_user_right(boot.r(RevokeUserRightRequest {
                tenant_id: ACME.into(),
                user_id: "carol".into(),
                resource: bad.to_owned(),
                right: 0,
            }))
            .await,
            IA,
            "resource",
        );
    }
    fails(
        a.grant_user_right(boot.r(GrantUserRightRequest {
            right: 0,
            ..right_req(ACME, "carol", "/hr", Right::Read)
        }))
        .await,
        IA,
        "right",
    );

    // Applications and manifests.
    let register_with = |app: &str, kind: i32, m: Option<Manifest>| RegisterAppRequest {
        app_id: app.to_owned(),
        name: "App".into(),
        kind,
        manifest: m,
    };
    let standard = i32::from(AppKind::Standard);
    fails(
        a.register_app(boot.r(register_with(
            "bad app",
            standard,
            Some(Manifest::default()),
        )))
        .await,
        IA,
        "app_id",
    );
    fails(
        a.register_app(boot.r(register_with("new", 0, Some(Manifest::default()))))
            .await,
        IA,
        "kind",
    );
    fails(
        a.register_app(boot.r(RegisterAppRequest {
            name: String::new(),
            ..register_with("new", standard, Some(Manifest::default()))
        }))
        .await,
        IA,
        "name",
    );
    fails(
        a.register_app(boot.r(register_with("new", standard, None)))
            .await,
        IA,
        "manifest",
    );
    let bad_manifests = [
        (
            manifest(&["docs:read", "docs:read"], &[]),
            "manifest.scopes[1]",
        ),
        (manifest(&["docs read"], &[]), "manifest.scopes[0]"),
        (
            manifest(
                &[],
                &[
                    (ScopeLevel::Web, Right::Read),
                    (ScopeLevel::Web, Right::Write),
                ],
            ),
            "manifest.permission_requests[1]",
        ),
        (
            Manifest {
                permission_requests: vec![PermissionRequest {
                    scope_level: 0,
                    right: Right::Read.into(),
                }],
                ..Manifest::default()
            },
            "manifest.permission_requests[0].scope_level",
        ),
        (
            Manifest {
                permission_requests: vec![PermissionRequest {
                    scope_level: ScopeLevel::List.into(),
                    right: 0,
                }],
                ..Manifest::default()
            },
            "manifest.permission_requests[0].right",
        ),
        (
            Manifest {
                policy: Policy::AppOnly.into(),
                ..Manifest::default()
            },
            "manifest.policy",
        ),
        (
            Manifest {
                run_as: 7,
                ..Manifest::default()
            },
            "manifest.run_as",
        ),
    ];
    for (m, field) in bad_manifests {
        fails(
            a.register_app(boot.r(register_with("new", standard, Some(m.clone()))))
                .await,
            IA,
            field,
        );
        fails(
            a.update_app_manifest(boot.r(UpdateAppManifestRequest {
                app_id: "crm".into(),
                manifest: Some(m),
            }))
            .await,
            IA,
            field,
        );
    }

    // Consent: the revision seen is required; each request is resolved exactly once, to a path
    // of its level's depth, no higher than requested.
    let web = |resource: &str| resolved(ScopeLevel::Web, Right::Write, resource);
    let root = resolved(ScopeLevel::Tenancy, Right::Read, "/");
    let bad_approvals = [
        (
            approve_req(ACME, "crm", 0, vec![web("/hr/team"), root.clone()]),
            "manifest_revision",
        ),
        (
            approve_req(ACME, "crm", -1, vec![web("/hr/team"), root.clone()]),
            "manifest_revision",
        ),
        (
            approve_req(ACME, "crm", 1, vec![web("/hr/../b"), root.clone()]),
            "resolved_requests[0].resource",
        ),
        (
            approve_req(
                ACME,
                "crm",
                1,
                vec![
                    ResolvedRequest {
                        scope_level: 0,
                        ..web("/hr/team")
                    },
                    root.clone(),
                ],
            ),
            "resolved_requests[0].scope_level",
        ),
        (
            approve_req(ACME, "crm", 1, vec![web("/hr"), root.clone()]),
            "resolved_requests[0]",
        ),
        (
            approve_req(
                ACME,
                "crm",
                1,
                vec![
                    resolved(ScopeLevel::Web, Right::Manage, "/hr/team"),
                    root.clone(),
                ],
            ),
            "resolved_requests[0]",
        ),
        (
            approve_req(ACME, "crm", 1, vec![web("/hr/team")]),
            "resolved_requests",
        ),
        (
            approve_req(
                ACME,
                "crm",
                1,
                vec![web("/hr/team"), root.clone(), web("/hr/web")],
            ),
            "resolved_requests[2]",
        ),
        (
            approve_req(
                ACME,
                "crm",
                1,
                vec![
                    web("/hr/team"),
                    root.clone(),
                    resolved(ScopeLevel::List, Right::Read, "/hr/team/docs"),
                ],
            ),
            "resolved_requests[2]",
        ),
    ];
    for (request, field) in bad_approvals {
        fails(a.approve_consent(alice.r(request)).await, IA, field);
    }

    // Whitelist entries.
    fails(
        a.put_whitelist_entry(alice.r(whitelist_req(
            ACME,
            "crm",
            &["documents:read", "documents:read"],
        )))
        .await,
        IA,
        "allowed_scopes[1]",
    );
    fails(
        a.put_whitelist_entry(alice.r(PutWhitelistEntryRequest {
            content_access: 9,
            ..whitelist_req(ACME, "crm", &[])
        }))
        .await,
        IA,
        "content_access",
    );

    // Groups and principals.
    let bad_groups = [
        (group_req(ACME, "g9", &[], &["bob"], &[]), "grantors[0]"),
        (
            group_req(ACME, "g9", &[], &["user:bob", "user:bob"], &[]),
            "grantors[1]",
        ),
        (
            group_req(ACME, "g9", &[], &[], &["group:x"]),
            "visible_to[0]",
        ),
        (group_req(ACME, "g9", &[], &[], &["app:"]), "visible_to[0]"),
        (
            group_req(ACME, "g9", &[], &[], &["user:bad user"]),
            "visible_to[0]",
        ),
        (
            group_req(ACME, "g9", &[("nobody", ManagerAccess::Read)], &[], &[]),
            "managers[0].principal",
        ),
        (
            CreatePermissionGroupRequest {
                managers: vec![Manager {
                    principal: "user:carol".into(),
                    access: 0,
                }],
                ..group_req(ACME, "g9", &[], &[], &[])
            },
            "managers[0].access",
        ),
        (group_req(ACME, "bad group", &[], &[], &[]), "group_id"),
        (
            CreatePermissionGroupRequest {
                name: String::new(),
                ..group_req(ACME, "g9", &[], &[], &[])
            },
            "name",
        ),
    ];
    for (request, field) in bad_groups {
        fails(
            a.create_permission_group(bob.r(request.clone())).await,
            IA,
            field,
        );
        let update = UpdatePermissionGroupRequest {
            group_id: if field == "group_id" {
                request.group_id.clone()
            } else {
                "g1".into()
            },
            ..update_req(request)
        };
        fails(a.update_permission_group(bob.r(update)).await, IA, field);
    }

    // External permissions and grants.
    for (request, field) in [
        (permission_req(ACME, "g1", "p9", ""), "external_id"),
        (permission_req(ACME, "g1", "p9", "a\nb"), "external_id"),
        (
            permission_req(ACME, "g1", "p9", &"x".repeat(129)),
            "external_id",
        ),
        (
            permission_req(ACME, "g1", "bad perm", "P-9"),
            "permission_id",
        ),
        (permission_req(ACME, "bad group", "p9", "P-9"), "group_id"),
    ] {
        fails(
            a.create_external_permission(bob.r(request)).await,
            IA,
            field,
        );
    }
    fails(
        a.grant_external_permission(bob.r(GrantExternalPermissionRequest {
            expires_at: Some(prost_types::Timestamp {
                seconds: now_secs(),
                nanos: -1,
            }),
            ..grant_req(ACME, "carol", "p1")
        }))
        .await,
        IA,
        "expires_at",
    );
    fails(
        a.grant_external_permission(bob.r(grant_req(ACME, "bad user", "p1")))
            .await,
        IA,
        "user_id",
    );

    // Clients.
    for (request, field) in [
        (client_req("svc", &[], &[Capability::Query]), "tenants"),
        (
            client_req("svc", &["*", ACME], &[Capability::Query]),
            "tenants",
        ),
        (
            client_req("svc", &[ACME, ACME], &[Capability::Query]),
            "tenants[1]",
        ),
        (
            client_req("svc", &["bad tenant"], &[Capability::Query]),
            "tenants[0]",
        ),
        (
            CreateClientRequest {
                capabilities: vec![0],
                ..client_req("svc", &[ACME], &[])
            },
            "capabilities[0]",
        ),
        (client_req("", &[ACME], &[Capability::Query]), "client_id"),
    ] {
        fails(a.create_client(boot.r(request)).await, IA, field);
    }
    fails(
        a.revoke_client(boot.r(RevokeClientRequest {
            client_id: "bad client".into(),
        }))
        .await,
        IA,
        "client_id",
    );

    // Audit filters.
    for (request, field) in [
        (
            ListAuditEventsRequest {
                actor: "alice".into(),
                ..Default::default()
            },
            "actor",
        ),
        (
            ListAuditEventsRequest {
                actor: "group:x".into(),
                ..Default::default()
            },
            "actor",
        ),
        (
            ListAuditEventsRequest {
                tenant_id: "bad tenant".into(),
                ..Default::default()
            },
            "tenant_id",
        ),
        (
            ListAuditEventsRequest {
                since: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: 2_000_000_000,
                }),
                ..Default::default()
            },
            "since",
        ),
    ] {
        fails(a.list_audit_events(boot.r(request)).await, IA, field);
    }

    // The acting user.
    fails(
        a.list_tenants(boot.user("bad user").r(ListTenantsRequest::default()))
            .await,
        IA,
        "x-consentry-user",
    );

    // Paging: a negative page size, and tokens that are not from this query.
    put_tenant(&mut a, "beta").await;
    let users_page = ok(a
        .list_users(boot.r(ListUsersRequest {
            tenant_id: ACME.into(),
            page_size: 1,
            ..Default::default()
        }))
        .await);
    let users_token = users_page.next_page_token;
    assert!(!users_token.is_empty());
    let apps_token = {
        register(&mut a, "tool", AppKind::Custom, Manifest::default()).await;
        ok(a.list_apps(boot.r(ListAppsRequest {
            page_size: 1,
            ..Default::default()
        }))
        .await)
        .next_page_token
    };
    assert!(!apps_token.is_empty());
    for (size, token, needle) in [
        (-1, String::new(), "page_size"),
        (10, "not-a-token".to_owned(), "page_token"),
        (10, apps_token.clone(), "page_token"),
    ] {
        let t = || token.clone();
        let tenant = || ACME.to_owned();
        fails(
            a.list_tenants(boot.r(ListTenantsRequest {
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        fails(
            a.list_clients(boot.r(ListClientsRequest {
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        fails(
            a.list_users(boot.r(ListUsersRequest {
                tenant_id: tenant(),
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        fails(
            a.list_consents(boot.r(ListConsentsRequest {
                tenant_id: tenant(),
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        fails(
            a.list_whitelist_entries(boot.r(ListWhitelistEntriesRequest {
                tenant_id: tenant(),
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        fails(
            a.list_permission_groups(bob.r(ListPermissionGroupsRequest {
                tenant_id: tenant(),
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        fails(
            a.list_user_rights(boot.r(ListUserRightsRequest {
                tenant_id: tenant(),
                user_id: "carol".into(),
                page_size: size,
                page_token: t(),
            }))
            .await,
            IA,
            needle,
        );
        fails(
            a.list_audit_events(boot.r(ListAuditEventsRequest {
                page_size: size,
                page_token: t(),
                ..Default::default()
            }))
            .await,
            IA,
            needle,
        );
    }
    fails(
        a.list_apps(boot.r(ListAppsRequest {
            page_size: -1,
            ..Default::default()
        }))
        .await,
        IA,
        "page_size",
    );
    fails(
        a.list_apps(boot.r(ListAppsRequest {
            page_size: 1,
            page_token: users_token.clone(),
        }))
        .await,
        IA,
        "page_token",
    );
    // The same listing for another tenant is another query.
    fails(
        a.list_users(boot.r(ListUsersRequest {
            tenant_id: "beta".into(),
            page_size: 1,
            page_token: users_token.clone(),
        }))
        .await,
        IA,
        "page_token",
    );
    // With the same query, the token works.
    ok(a.list_users(boot.r(ListUsersRequest {
        tenant_id: ACME.into(),
        page_size: 1,
        page_token: users_token,
    }))
    .await);
    // A filtered audit listing's token is not valid for another filter.
    let audit_token = ok(a
        .list_audit_events(boot.r(ListAuditEventsRequest {
            tenant_id: ACME.into(),
            page_size: 1,
            ..Default::default()
        }))
        .await)
    .next_page_token;
    fails(
        a.list_audit_events(boot.r(ListAuditEventsRequest {
            page_size: 1,
            page_token: audit_token,
            ..Default::default()
        }))
        .await,
        IA,
        "page_token",
    );
    // Only `tool` and `beta` were written since; nothing that failed validation was.
    assert_eq!(all_events(&mut a).await.len(), events_before + 2);
    server.stop().await;
}

async fn approving_a_stale_manifest_revision_is_aborted(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let alice = Who::boot().user("alice");
    acme(&mut a).await;
    let m1 = manifest(&["documents:read"], &[]);
    assert_eq!(
        register(&mut a, "crm", AppKind::Standard, m1.clone()).await,
        1
    );
    let m2 = manifest(&["documents:read", "documents:write"], &[]);
    let update = |m: &Manifest| UpdateAppManifestRequest {
        app_id: "crm".into(),
        manifest: Some(m.clone()),
    };
    let reply = ok(a.update_app_manifest(Who::boot().r(update(&m2))).await);
    assert_eq!(reply.manifest_revision, 2);
    let written = reply.written_at;
    // An identical manifest changes nothing: no new revision, no write.
    let same = ok(a.update_app_manifest(Who::boot().r(update(&m2))).await);
    assert_eq!(same.manifest_revision, 2);
    assert_eq!(same.written_at, written);
    let events = all_events(&mut a).await.len();

    let message = fails(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 1, vec![])))
            .await,
        Code::Aborted,
        "crm",
    );
    assert!(
        message.contains('2'),
        "the message names the current revision: {message}"
    );
    fails(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 3, vec![])))
            .await,
        Code::Aborted,
        "crm",
    );
    assert_eq!(
        all_events(&mut a).await.len(),
        events,
        "an aborted approval writes nothing"
    );
    let consent = ok(a
        .approve_consent(alice.r(approve_req(ACME, "crm", 2, vec![])))
        .await)
    .consent
    .expect("the consent");
    assert_eq!(consent.approved_manifest_revision, 2);
    assert_eq!(
        consent.approved_manifest.map(|m| m.scopes),
        Some(m2.scopes.clone())
    );
    // A change after the approver looked aborts their approval of the older revision.
    let m3 = Manifest {
        webhooks: true,
        ..m2
    };
    assert_eq!(
        ok(a.update_app_manifest(Who::boot().r(update(&m3))).await).manifest_revision,
        3
    );
    fails(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 2, vec![])))
            .await,
        Code::Aborted,
        "3",
    );
    ok(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 3, vec![])))
            .await,
    );
    server.stop().await;
}

async fn changing_a_tenants_environment_is_a_failed_precondition(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let events = all_events(&mut a).await.len();
    const FP: Code = Code::FailedPrecondition;
    fails(
        a.put_tenant(boot.r(tenant_req(ACME, "stage", false))).await,
        FP,
        "production",
    );
    fails(
        a.put_tenant(boot.user("alice").r(tenant_req(ACME, "stage", false)))
            .await,
        FP,
        "production",
    );
    fails(
        a.put_tenant(boot.user("alice").r(tenant_req(ACME, "stage", true)))
            .await,
        FP,
        "production",
    );
    assert_eq!(all_events(&mut a).await.len(), events);
    let tenants = ok(a.list_tenants(boot.r(ListTenantsRequest::default())).await).tenants;
    assert_eq!(
        tenants,
        vec![Tenant {
            tenant_id: ACME.into(),
            environment: "production".into(),
            whitelisting_enabled: false
        }]
    );
    // Each environment is its own tenant; naming the same environment again is fine.
    let created = ok(a
        .put_tenant(boot.r(tenant_req("acme-stage", "stage", false)))
        .await);
    assert!(created.created);
    let again = ok(a
        .put_tenant(boot.r(tenant_req(ACME, "production", false)))
        .await);
    assert!(!again.created);
    server.stop().await;
}

async fn checks_run_in_the_documented_order(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    ok(
        a.create_permission_group(boot.user("bob").r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
    );
    let bound = Who::key(
        &new_client(
            &mut a,
            &boot,
            "bound",
            &[ACME],
            &[Capability::Admin, Capability::Query],
        )
        .await,
    );
    let no_admin =
        Who::key(&new_client(&mut a, &boot, "reader", &["*"], &[Capability::Query]).await);
    let admin_only =
        Who::key(&new_client(&mut a, &boot, "plain", &["*"], &[Capability::Admin]).await);

    // The key first, then the capability, then the tenant bounds, all before validation.
    fails(
        a.put_user(Who::key("csk_unknown").r(user_req("bad tenant", "bad user", &[])))
            .await,
        Code::Unauthenticated,
        "",
    );
    fails(
        a.put_user(no_admin.r(user_req("bad tenant", "bad user", &[])))
            .await,
        Code::PermissionDenied,
        "admin",
    );
    fails(
        a.put_user(bound.r(user_req("beta", "bad user", &[]))).await,
        Code::PermissionDenied,
        "beta",
    );
    // Validation before existence.
    fails(
        a.grant_user_right(boot.r(right_req("ghost", "carol", "/a/../b", Right::Read)))
            .await,
        Code::InvalidArgument,
        "resource",
    );
    // Existence before the rules.
    fails(
        a.update_permission_group(boot.user("carol").r(update_req(group_req(
            ACME,
            "ghost",
            &[],
            &[],
            &[],
        ))))
        .await,
        Code::NotFound,
        "ghost",
    );
    fails(
        a.unregister_app(admin_only.r(UnregisterAppRequest {
            app_id: "ghost".into(),
        }))
        .await,
        Code::NotFound,
        "ghost",
    );
    // The rules before conflicts.
    fails(
        a.create_permission_group(boot.user("carol").r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
        Code::PermissionDenied,
        "PERMISSION_MANAGER",
    );
    fails(
        a.register_app(admin_only.r(app_req("crm", AppKind::Standard, Manifest::default())))
            .await,
        Code::PermissionDenied,
        "app_manager",
    );
    fails(
        a.create_client(bound.r(client_req("bound", &["*"], &[Capability::Query])))
            .await,
        Code::PermissionDenied,
        "tenants",
    );
    fails(
        a.approve_consent(boot.user("carol").r(approve_req(ACME, "crm", 7, vec![])))
            .await,
        Code::PermissionDenied,
        "administrator",
    );
    fails(
        a.put_tenant(boot.r(tenant_req(ACME, "stage", true))).await,
        Code::PermissionDenied,
        "administrator",
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The rules of DESIGN.md §6, one test per row of its table.

const DENIED: Code = Code::PermissionDenied;

async fn rule_tenant_creation_needs_a_client_on_every_tenant(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let bound = Who::key(
        &new_client(
            &mut a,
            &boot,
            "bound",
            &[ACME, "beta"],
            &[
                Capability::Admin,
                Capability::AppManager,
                Capability::AssertUser,
            ],
        )
        .await,
    );
    let star = Who::key(&new_client(&mut a, &boot, "star", &["*"], &[Capability::Admin]).await);
    fails(
        a.put_tenant(bound.r(tenant_req(ACME, "production", false)))
            .await,
        DENIED,
        "tenant",
    );
    fails(
        a.put_tenant(
            bound
                .user("alice")
                .r(tenant_req("beta", "production", false)),
        )
        .await,
        DENIED,
        "tenant",
    );
    fails(
        a.put_tenant(bound.r(tenant_req("gamma", "production", false)))
            .await,
        DENIED,
        "gamma",
    );
    assert!(
        ok(a.list_tenants(boot.r(ListTenantsRequest::default())).await)
            .tenants
            .is_empty()
    );
    // Any admin client with `*` tenants creates tenants, with whitelisting on or off.
    assert!(
        ok(a.put_tenant(star.r(tenant_req(ACME, "production", false)))
            .await)
        .created
    );
    assert!(
        ok(a.put_tenant(star.r(tenant_req("beta", "stage", true)))
            .await)
        .created
    );
    // Once it exists, the bound client may name it (without changing anything).
    assert!(
        !ok(a
            .put_tenant(bound.r(tenant_req(ACME, "production", false)))
            .await)
        .created
    );
    server.stop().await;
}

async fn rule_whitelisting_and_revoking_consent_need_an_acting_tenant_administrator(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    acme(&mut a).await;
    put_user(&mut a, &alice, ACME, "dave", &[Role::UserAdmin]).await;
    put_tenant(&mut a, "beta").await;
    register(&mut a, "crm", AppKind::Standard, manifest(&["docs"], &[])).await;
    register(&mut a, "tool", AppKind::Custom, Manifest::default()).await;
    ok(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 1, vec![])))
            .await,
    );
    ok(
        a.approve_consent(alice.r(approve_req(ACME, "tool", 1, vec![])))
            .await,
    );
    let mgr = Who::key(
        &new_client(
            &mut a,
            &boot,
            "mgr",
            &[ACME],
            &[Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let plain = Who::key(&new_client(&mut a, &boot, "plain", &[ACME], &[Capability::Admin]).await);
    // Not administrators: no acting user, a user without an admin role, an unknown user, and
    // an administrator of another tenant.
    let not_admins = [
        (boot.clone(), "x-consentry-user"),
        (boot.user("carol"), "carol"),
        (boot.user("bob"), "bob"),
        (boot.user("stranger"), "stranger"),
    ];

    // The whitelisting switch.
    for (who, needle) in &not_admins {
        fails(
            a.put_tenant(who.r(tenant_req(ACME, "production", true)))
                .await,
            DENIED,
            needle,
        );
    }
    fails(
        a.put_tenant(alice.r(tenant_req("beta", "production", true)))
            .await,
        DENIED,
        "alice",
    );
    // Naming the tenant without switching needs no administrator.
    ok(a.put_tenant(boot.r(tenant_req(ACME, "production", false)))
        .await);
    ok(a.put_tenant(alice.r(tenant_req(ACME, "production", true)))
        .await);
    ok(
        a.put_tenant(boot.user("dave").r(tenant_req(ACME, "production", false)))
            .await,
    );

    // Whitelist entries.
    for (who, needle) in &not_admins {
        fails(
            a.put_whitelist_entry(who.r(whitelist_req(ACME, "crm", &[])))
                .await,
            DENIED,
            needle,
        );
    }
    ok(
        a.put_whitelist_entry(alice.r(whitelist_req(ACME, "crm", &["docs"])))
            .await,
    );
    ok(
        a.put_whitelist_entry(boot.user("dave").r(whitelist_req(ACME, "tool", &[])))
            .await,
    );
    let delete = |app: &str| DeleteWhitelistEntryRequest {
        tenant_id: ACME.into(),
        app_id: app.into(),
    };
    for (who, needle) in &not_admins {
        fails(
            a.delete_whitelist_entry(who.r(delete("crm"))).await,
            DENIED,
            needle,
        );
    }
    ok(a.delete_whitelist_entry(alice.r(delete("crm"))).await);
    let entries = ok(a
        .list_whitelist_entries(boot.r(ListWhitelistEntriesRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .entries;
    assert_eq!(
        entries
            .iter()
            .map(|e| e.app_id.as_str())
            .collect::<Vec<_>>(),
        ["tool"]
    );

    // RevokeConsent: an administrator; app_manager only for a CUSTOM app.
    let revoke = |app: &str| RevokeConsentRequest {
        tenant_id: ACME.into(),
        app_id: app.into(),
    };
    for (who, needle) in &not_admins[1..] {
        fails(a.revoke_consent(who.r(revoke("crm"))).await, DENIED, needle);
    }
    // The bootstrap client has app_manager, which does not count for a STANDARD app.
    fails(
        a.revoke_consent(boot.r(revoke("crm"))).await,
        DENIED,
        "administrator",
    );
    fails(
        a.revoke_consent(mgr.r(revoke("crm"))).await,
        DENIED,
        "administrator",
    );
    fails(
        a.revoke_consent(plain.r(revoke("tool"))).await,
        DENIED,
        "administrator",
    );
    ok(a.revoke_consent(alice.r(revoke("crm"))).await);
    ok(a.revoke_consent(mgr.r(revoke("tool"))).await);
    let consents = ok(a
        .list_consents(boot.r(ListConsentsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .consents;
    assert!(
        consents.iter().all(|c| near_now(c.revoked_at.as_ref())),
        "{consents:?}"
    );
    server.stop().await;
}

async fn rule_roles_need_an_acting_administrator_except_the_first_one(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let t = "fresh";
    put_tenant(&mut a, t).await;
    let plain = Who::key(&new_client(&mut a, &boot, "plain", &[t], &[Capability::Admin]).await);
    let put = |user: &str, roles: &[Role]| user_req(t, user, roles);

    // A user without roles: any admin client.
    ok(a.put_user(plain.r(put("carol", &[]))).await);
    // Roles need an acting administrator; before the tenant has one, only an administrator
    // role may be given that way (the first administrator).
    fails(
        a.put_user(plain.r(put("bob", &[Role::PermissionManager])))
            .await,
        DENIED,
        "role",
    );
    fails(
        a.put_user(boot.user("carol").r(put("bob", &[Role::Delegate])))
            .await,
        DENIED,
        "carol",
    );
    ok(a.put_user(plain.r(put("alice", &[Role::UserAdmin]))).await);
    fails(
        a.put_user(plain.r(put("dave", &[Role::GeneralAdmin])))
            .await,
        DENIED,
        "role",
    );
    fails(
        a.put_user(boot.user("carol").r(put("dave", &[Role::GeneralAdmin])))
            .await,
        DENIED,
        "carol",
    );
    // Any administrator may give or take any role.
    let alice = boot.user("alice");
    ok(a.put_user(alice.r(put("dave", &[Role::GeneralAdmin])))
        .await);
    ok(a.put_user(alice.r(put("bob", &[Role::PermissionManager])))
        .await);
    // Taking a role away.
    fails(a.put_user(boot.r(put("bob", &[]))).await, DENIED, "role");
    fails(
        a.put_user(boot.user("carol").r(put("bob", &[]))).await,
        DENIED,
        "carol",
    );
    ok(
        a.put_user(boot.user("dave").r(put("bob", &[Role::Delegate])))
            .await,
    );
    // Putting a user again with the roles they hold changes no role.
    ok(a.put_user(plain.r(put("bob", &[Role::Delegate]))).await);
    ok(a.put_user(alice.r(put("bob", &[]))).await);
    // Deleting a user with roles needs an administrator; one without, any admin client.
    let delete = |user: &str| DeleteUserRequest {
        tenant_id: t.into(),
        user_id: user.into(),
    };
    fails(
        a.delete_user(plain.r(delete("dave"))).await,
        DENIED,
        "administrator",
    );
    fails(
        a.delete_user(boot.user("carol").r(delete("dave"))).await,
        DENIED,
        "carol",
    );
    ok(a.delete_user(alice.r(delete("dave"))).await);
    ok(a.delete_user(plain.r(delete("bob"))).await);
    // An administrator of another tenant is not one here.
    put_tenant(&mut a, "other").await;
    put_user(&mut a, &boot, "other", "olga", &[Role::GeneralAdmin]).await;
    fails(
        a.put_user(boot.user("olga").r(put("carol", &[Role::Delegate])))
            .await,
        DENIED,
        "olga",
    );

    let users = ok(a
        .list_users(boot.r(ListUsersRequest {
            tenant_id: t.into(),
            ..Default::default()
        }))
        .await)
    .users;
    let users: Vec<(String, Vec<i32>)> = users.into_iter().map(|u| (u.user_id, u.roles)).collect();
    assert_eq!(
        users,
        vec![
            ("alice".to_owned(), role_codes(&[Role::UserAdmin])),
            ("carol".to_owned(), vec![]),
        ]
    );
    server.stop().await;
}

async fn rule_user_rights_need_only_an_admin_client(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let plain = Who::key(&new_client(&mut a, &boot, "plain", &[ACME], &[Capability::Admin]).await);
    ok(
        a.grant_user_right(plain.r(right_req(ACME, "carol", "/hr", Right::Write)))
            .await,
    );
    ok(a.grant_user_right(
        boot.user("carol")
            .r(right_req(ACME, "alice", "/", Right::Read)),
    )
    .await);
    ok(a.revoke_user_right(plain.r(RevokeUserRightRequest {
        tenant_id: ACME.into(),
        user_id: "alice".into(),
        resource: "/".into(),
        right: Right::Read.into(),
    }))
    .await);
    let rights = ok(a
        .list_user_rights(plain.r(ListUserRightsRequest {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
            ..Default::default()
        }))
        .await)
    .rights;
    assert_eq!(
        rights,
        vec![UserRight {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
            resource: "/hr".into(),
            right: Right::Write.into()
        }]
    );
    server.stop().await;
}

async fn rule_app_management_needs_app_manager_on_every_tenant(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let admin_star = Who::key(
        &new_client(
            &mut a,
            &boot,
            "admin-star",
            &["*"],
            &[Capability::Admin, Capability::AssertUser],
        )
        .await,
    );
    let mgr_bound = Who::key(
        &new_client(
            &mut a,
            &boot,
            "mgr-bound",
            &[ACME],
            &[Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let mgr_star = Who::key(
        &new_client(
            &mut a,
            &boot,
            "mgr-star",
            &["*"],
            &[Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let m = manifest(&["docs"], &[]);
    let update = || UpdateAppManifestRequest {
        app_id: "crm".into(),
        manifest: Some(manifest(&["docs", "more"], &[])),
    };
    let unregister = || UnregisterAppRequest {
        app_id: "crm".into(),
    };
    for (who, needle) in [
        (&admin_star, "app_manager"),
        (&admin_star.user("alice"), "app_manager"),
        (&mgr_bound, "tenants"),
    ] {
        fails(
            a.register_app(who.r(app_req("crm", AppKind::Standard, m.clone())))
                .await,
            DENIED,
            needle,
        );
    }
    ok(
        a.register_app(mgr_star.r(app_req("crm", AppKind::Standard, m.clone())))
            .await,
    );
    for (who, needle) in [(&admin_star, "app_manager"), (&mgr_bound, "tenants")] {
        fails(a.update_app_manifest(who.r(update())).await, DENIED, needle);
        fails(a.unregister_app(who.r(unregister())).await, DENIED, needle);
    }
    assert_eq!(
        ok(a.update_app_manifest(mgr_star.r(update())).await).manifest_revision,
        2
    );
    ok(a.unregister_app(mgr_star.r(unregister())).await);
    assert!(
        ok(a.list_apps(admin_star.r(ListAppsRequest::default())).await)
            .apps
            .is_empty()
    );
    server.stop().await;
}

async fn rule_standard_apps_are_approved_by_tenant_administrators_only(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    put_user(
        &mut a,
        &boot.user("alice"),
        ACME,
        "dave",
        &[Role::UserAdmin],
    )
    .await;
    put_tenant(&mut a, "beta").await;
    register(
        &mut a,
        "crm",
        AppKind::Standard,
        manifest(&["docs"], &[(ScopeLevel::Web, Right::Write)]),
    )
    .await;
    let mgr = Who::key(
        &new_client(
            &mut a,
            &boot,
            "mgr",
            &[ACME],
            &[Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let request = |tenant: &str| {
        approve_req(
            tenant,
            "crm",
            1,
            vec![resolved(ScopeLevel::Web, Right::Read, "/hr/team")],
        )
    };
    // The bootstrap client has app_manager; for a STANDARD app that does not count.
    for (who, needle) in [
        (boot.clone(), "STANDARD"),
        (mgr.clone(), "STANDARD"),
        (boot.user("carol"), "carol"),
        (boot.user("bob"), "bob"),
    ] {
        fails(
            a.approve_consent(who.r(request(ACME))).await,
            DENIED,
            needle,
        );
    }
    fails(
        a.approve_consent(boot.user("alice").r(request("beta")))
            .await,
        DENIED,
        "alice",
    );
    let consent = ok(a.approve_consent(boot.user("alice").r(request(ACME))).await)
        .consent
        .expect("the consent");
    assert_eq!(consent.approved_by, "user:alice");
    // Re-approval is another approval by an administrator (USER_ADMIN counts).
    let consent = ok(a.approve_consent(boot.user("dave").r(request(ACME))).await)
        .consent
        .expect("the consent");
    assert_eq!(consent.approved_by, "user:dave");
    let consents = ok(a
        .list_consents(boot.r(ListConsentsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .consents;
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0].approved_by, "user:dave");
    server.stop().await;
}

async fn rule_custom_apps_are_activated_by_app_managers_and_reactivated_by_administrators(
    db: &TestDb,
) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    acme(&mut a).await;
    put_tenant(&mut a, "beta").await;
    register(&mut a, "tool", AppKind::Custom, manifest(&["docs"], &[])).await;
    let mgr = Who::key(
        &new_client(
            &mut a,
            &boot,
            "mgr",
            &[ACME, "beta"],
            &[Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let plain = Who::key(
        &new_client(
            &mut a,
            &boot,
            "plain",
            &[ACME],
            &[Capability::Admin, Capability::AssertUser],
        )
        .await,
    );
    let approve = |rev: i64| approve_req(ACME, "tool", rev, vec![]);

    // First activation: an app manager client, recorded as `client:<id>`; without app_manager
    // it takes an administrator.
    fails(
        a.approve_consent(plain.r(approve(1))).await,
        DENIED,
        "CUSTOM",
    );
    fails(
        a.approve_consent(plain.user("carol").r(approve(1))).await,
        DENIED,
        "carol",
    );
    let consent = ok(a.approve_consent(mgr.r(approve(1))).await)
        .consent
        .expect("the consent");
    assert_eq!(consent.approved_by, "client:mgr");
    // The first activation is per tenant: beta has never consented.
    let consent = ok(a
        .approve_consent(mgr.r(approve_req("beta", "tool", 1, vec![])))
        .await)
    .consent
    .expect("the consent");
    assert_eq!(consent.approved_by, "client:mgr");

    // Re-approval after an escalation needs an administrator.
    let update = UpdateAppManifestRequest {
        app_id: "tool".into(),
        manifest: Some(Manifest {
            webhooks: true,
            ..manifest(&["docs"], &[])
        }),
    };
    assert_eq!(
        ok(a.update_app_manifest(boot.r(update)).await).manifest_revision,
        2
    );
    fails(a.approve_consent(mgr.r(approve(2))).await, DENIED, "CUSTOM");
    let consent = ok(a.approve_consent(alice.r(approve(2))).await)
        .consent
        .expect("the consent");
    assert_eq!(consent.approved_by, "user:alice");

    // Reactivation after a revocation needs an administrator too.
    ok(a.revoke_consent(mgr.r(RevokeConsentRequest {
        tenant_id: ACME.into(),
        app_id: "tool".into(),
    }))
    .await);
    fails(a.approve_consent(mgr.r(approve(2))).await, DENIED, "CUSTOM");
    let consent = ok(a.approve_consent(alice.r(approve(2))).await)
        .consent
        .expect("the consent");
    assert_eq!(
        (consent.approved_by.as_str(), consent.revoked_at),
        ("user:alice", None)
    );
    server.stop().await;
}

async fn rule_permission_groups_are_created_by_permission_managers(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    put_user(
        &mut a,
        &boot.user("alice"),
        ACME,
        "dave",
        &[Role::UserAdmin],
    )
    .await;
    for (who, needle) in [
        (boot.clone(), "x-consentry-user"),
        (boot.user("carol"), "carol"),
        (boot.user("dave"), "dave"),
        (boot.user("stranger"), "stranger"),
    ] {
        fails(
            a.create_permission_group(who.r(group_req(ACME, "g1", &[], &[], &[])))
                .await,
            DENIED,
            needle,
        );
    }
    // PERMISSION_MANAGER, directly or through GENERAL_ADMIN; the creator becomes a READ_WRITE
    // manager (also when named as a READ manager).
    let group = ok(a
        .create_permission_group(boot.user("bob").r(group_req(
            ACME,
            "g1",
            &[
                ("user:bob", ManagerAccess::Read),
                ("user:carol", ManagerAccess::Read),
            ],
            &[],
            &[],
        )))
        .await)
    .group
    .expect("the group");
    assert_eq!(
        group.managers,
        vec![
            Manager {
                principal: "user:bob".into(),
                access: ManagerAccess::ReadWrite.into()
            },
            Manager {
                principal: "user:carol".into(),
                access: ManagerAccess::Read.into()
            },
        ]
    );
    let group = ok(a
        .create_permission_group(boot.user("alice").r(group_req(ACME, "g2", &[], &[], &[])))
        .await)
    .group
    .expect("the group");
    assert_eq!(
        group.managers,
        vec![Manager {
            principal: "user:alice".into(),
            access: ManagerAccess::ReadWrite.into()
        }]
    );
    let listed = ok(a
        .list_permission_groups(boot.user("bob").r(ListPermissionGroupsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .groups;
    assert_eq!(
        listed
            .iter()
            .map(|g| g.group_id.as_str())
            .collect::<Vec<_>>(),
        ["g1"]
    );
    server.stop().await;
}

async fn rule_groups_and_permissions_are_changed_by_read_write_managers(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let bob = boot.user("bob");
    acme(&mut a).await;
    let rw = Who::key(&new_client(&mut a, &boot, "rw", &[ACME], &[Capability::Admin]).await);
    let ro = Who::key(&new_client(&mut a, &boot, "ro", &[ACME], &[Capability::Admin]).await);
    let spec = group_req(
        ACME,
        "g1",
        &[
            ("user:carol", ManagerAccess::Read),
            ("client:rw", ManagerAccess::ReadWrite),
            ("client:ro", ManagerAccess::Read),
        ],
        &[],
        &[],
    );
    ok(a.create_permission_group(bob.r(spec.clone())).await);
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    // READ managers, non-managers (an administrator too) and clients that are not managers.
    let refused = [
        (boot.user("carol"), "user:carol"),
        (ro.clone(), "client:ro"),
        (boot.user("alice"), "user:alice"),
        (boot.clone(), "client:bootstrap"),
    ];
    let mut renamed = update_req(spec.clone());
    renamed.name = "Renamed".into();
    renamed.managers.push(Manager {
        principal: "user:bob".into(),
        access: ManagerAccess::ReadWrite.into(),
    });
    let delete_group = DeletePermissionGroupRequest {
        tenant_id: ACME.into(),
        group_id: "g1".into(),
    };
    let delete_permission = |p: &str| DeleteExternalPermissionRequest {
        tenant_id: ACME.into(),
        permission_id: p.into(),
    };
    for (who, needle) in &refused {
        fails(
            a.update_permission_group(who.r(renamed.clone())).await,
            DENIED,
            needle,
        );
        fails(
            a.delete_permission_group(who.r(delete_group.clone())).await,
            DENIED,
            needle,
        );
        fails(
            a.create_external_permission(who.r(permission_req(ACME, "g1", "p2", "P-2")))
                .await,
            DENIED,
            needle,
        );
        fails(
            a.delete_external_permission(who.r(delete_permission("p1")))
                .await,
            DENIED,
            needle,
        );
    }
    // A READ_WRITE manager: a user (the creator) or a client principal.
    ok(
        a.create_external_permission(rw.r(permission_req(ACME, "g1", "p2", "P-2")))
            .await,
    );
    ok(a.delete_external_permission(rw.r(delete_permission("p1")))
        .await);
    ok(a.update_permission_group(rw.r(renamed)).await);
    let groups = ok(a
        .list_permission_groups(rw.r(ListPermissionGroupsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .groups;
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].name, "Renamed");
    assert_eq!(
        groups[0]
            .permissions
            .iter()
            .map(|p| p.permission_id.as_str())
            .collect::<Vec<_>>(),
        ["p2"]
    );
    ok(a.delete_permission_group(bob.r(delete_group)).await);
    server.stop().await;
}

async fn rule_external_permissions_are_granted_and_revoked_by_grantors(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let bob = boot.user("bob");
    acme(&mut a).await;
    put_user(&mut a, &boot, ACME, "gina", &[]).await;
    let granter =
        Who::key(&new_client(&mut a, &boot, "granter", &[ACME], &[Capability::Admin]).await);
    ok(a.create_permission_group(bob.r(group_req(
        ACME,
        "g1",
        &[],
        &["user:gina", "client:granter"],
        &["client:granter"],
    )))
    .await);
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    // Managers (READ_WRITE too), administrators and other clients are not grantors.
    let refused = [
        (bob.clone(), "user:bob"),
        (boot.user("alice"), "user:alice"),
        (boot.user("carol"), "user:carol"),
        (boot.clone(), "client:bootstrap"),
    ];
    for (who, needle) in &refused {
        fails(
            a.grant_external_permission(who.r(grant_req(ACME, "carol", "p1")))
                .await,
            DENIED,
            needle,
        );
    }
    ok(
        a.grant_external_permission(boot.user("gina").r(grant_req(ACME, "carol", "p1")))
            .await,
    );
    // Granting again (another grantor) updates the expiry and keeps who granted it first.
    let expires = timestamp(600);
    ok(
        a.grant_external_permission(granter.r(GrantExternalPermissionRequest {
            expires_at: Some(expires),
            ..grant_req(ACME, "carol", "p1")
        }))
        .await,
    );
    let last = all_events(&mut a).await.pop().expect("an event");
    let after = parse_json("grant", &last.after);
    assert_eq!(after["granted_by"], "user:gina");
    assert_eq!(after["expires_at"], micros(&expires));
    assert_eq!(parse_json("grant", &last.before)["expires_at"], Value::Null);
    for (who, needle) in &refused {
        fails(
            a.revoke_external_permission(who.r(revoke_grant_req(ACME, "carol", "p1")))
                .await,
            DENIED,
            needle,
        );
    }
    ok(
        a.revoke_external_permission(granter.r(revoke_grant_req(ACME, "carol", "p1")))
            .await,
    );
    fails(
        a.revoke_external_permission(granter.r(revoke_grant_req(ACME, "carol", "p1")))
            .await,
        Code::NotFound,
        "p1",
    );
    server.stop().await;
}

async fn rule_clients_stay_within_their_creators_tenants_and_capabilities(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    put_tenant(&mut a, ACME).await;
    let lead = Who::key(
        &new_client(
            &mut a,
            &boot,
            "lead",
            &[ACME, "beta"],
            &[Capability::Admin, Capability::Query],
        )
        .await,
    );
    new_client(&mut a, &boot, "star", &["*"], &[Capability::Query]).await;
    new_client(
        &mut a,
        &boot,
        "mgr",
        &[ACME],
        &[Capability::Admin, Capability::AppManager],
    )
    .await;
    new_client(
        &mut a,
        &boot,
        "wide",
        &[ACME, "gamma"],
        &[Capability::Query],
    )
    .await;
    // Within the caller's tenants and capabilities: fine, up to equal.
    new_client(&mut a, &lead, "sub1", &[ACME], &[Capability::Query]).await;
    let sub2 = new_client(
        &mut a,
        &lead,
        "sub2",
        &[ACME, "beta"],
        &[Capability::Query, Capability::Admin],
    )
    .await;
    for (request, needle) in [
        (
            client_req("x1", &["gamma"], &[Capability::Query]),
            "tenants",
        ),
        (
            client_req("x2", &[ACME, "gamma"], &[Capability::Query]),
            "tenants",
        ),
        (client_req("x3", &["*"], &[Capability::Query]), "tenants"),
        (
            client_req("x4", &[ACME], &[Capability::AppManager]),
            "app_manager",
        ),
        (
            client_req("x5", &[ACME], &[Capability::Query, Capability::AssertUser]),
            "assert_user",
        ),
    ] {
        fails(a.create_client(lead.r(request)).await, DENIED, needle);
    }
    let revoke = |id: &str| RevokeClientRequest {
        client_id: id.into(),
    };
    fails(
        a.revoke_client(lead.r(revoke("star"))).await,
        DENIED,
        "tenants",
    );
    fails(
        a.revoke_client(lead.r(revoke("wide"))).await,
        DENIED,
        "tenants",
    );
    fails(
        a.revoke_client(lead.r(revoke("mgr"))).await,
        DENIED,
        "app_manager",
    );
    fails(
        a.revoke_client(lead.r(revoke("bootstrap"))).await,
        DENIED,
        "",
    );
    ok(a.revoke_client(lead.r(revoke("sub1"))).await);
    // A client created by another within its bounds works, within its own.
    let sub2 = Who::key(&sub2);
    ok(a.put_user(sub2.r(user_req(ACME, "carol", &[]))).await);
    fails(
        a.put_user(sub2.r(user_req("gamma", "carol", &[]))).await,
        DENIED,
        "gamma",
    );
    let clients = ok(a.list_clients(boot.r(ListClientsRequest::default())).await).clients;
    let ids: Vec<(&str, bool)> = clients
        .iter()
        .map(|c| (c.client_id.as_str(), c.revoked_at.is_some()))
        .collect();
    assert_eq!(
        ids,
        vec![
            ("bootstrap", false),
            ("lead", false),
            ("mgr", false),
            ("star", false),
            ("sub1", true),
            ("sub2", false),
            ("wide", false),
        ]
    );
    server.stop().await;
}

async fn rule_audit_events_stay_within_the_callers_tenants(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    put_tenant(&mut a, "beta").await;
    put_user(&mut a, &boot, "beta", "bea", &[Role::GeneralAdmin]).await;
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    ok(
        a.approve_consent(boot.user("alice").r(approve_req(ACME, "crm", 1, vec![])))
            .await,
    );
    ok(
        a.approve_consent(boot.user("bea").r(approve_req("beta", "crm", 1, vec![])))
            .await,
    );
    let local = Who::key(
        &new_client(
            &mut a,
            &boot,
            "local",
            &[ACME],
            &[Capability::Admin, Capability::Query],
        )
        .await,
    );
    let all = all_events(&mut a).await;
    assert!(
        all.iter().any(|e| e.tenant_id.is_empty()),
        "global events exist"
    );
    assert!(
        all.iter().any(|e| e.tenant_id == "beta"),
        "beta events exist"
    );

    let seen = events(&mut a, &local, ListAuditEventsRequest::default()).await;
    let want: Vec<&AuditEvent> = all.iter().filter(|e| e.tenant_id == ACME).collect();
    assert_eq!(seen.iter().collect::<Vec<_>>(), want);
    let seen = events(
        &mut a,
        &local,
        ListAuditEventsRequest {
            target: "app:crm".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        seen.len(),
        1,
        "only acme's consent, not the global registration: {seen:?}"
    );
    assert_eq!(seen[0].tenant_id, ACME);
    let seen = events(
        &mut a,
        &local,
        ListAuditEventsRequest {
            actor: "client:bootstrap".into(),
            ..Default::default()
        },
    )
    .await;
    assert!(seen.iter().all(|e| e.tenant_id == ACME));
    fails(
        a.list_audit_events(local.r(ListAuditEventsRequest {
            tenant_id: "beta".into(),
            ..Default::default()
        }))
        .await,
        DENIED,
        "beta",
    );
    // A `*` client sees everything, global events included.
    let star = Who::key(&new_client(&mut a, &boot, "star", &["*"], &[Capability::Admin]).await);
    let seen = events(&mut a, &star, ListAuditEventsRequest::default()).await;
    assert_eq!(seen.len(), all.len() + 1);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Callers (DESIGN.md §5).

async fn a_tenant_bound_client_naming_another_tenant_is_denied(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    put_tenant(&mut a, "beta").await;
    put_user(&mut a, &boot, "beta", "carol", &[Role::GeneralAdmin]).await;
    let local = Who::key(&new_client(&mut a, &boot, "local", &[ACME], &ALL_CAPS).await);
    let events_before = all_events(&mut a).await.len();
    // Another tenant that exists and one that does not look the same: existence does not leak.
    for tenant in ["beta", "ghost"] {
        let outcomes = call_every_rpc(&mut a, &local.user("carol"), tenant).await;
        let scoped: BTreeMap<&'static str, Result<(), Status>> = outcomes
            .into_iter()
            .filter(|(rpc, _)| TENANT_SCOPED.contains(rpc))
            .collect();
        assert_eq!(scoped.len(), TENANT_SCOPED.len());
        all_fail(&scoped, DENIED, tenant);
    }
    assert_eq!(
        all_events(&mut a).await.len(),
        events_before,
        "nothing was written"
    );
    // Within its tenant the same client is served.
    ok(a.list_users(local.r(ListUsersRequest {
        tenant_id: ACME.into(),
        ..Default::default()
    }))
    .await);
    server.stop().await;
}

async fn a_client_without_the_admin_capability_is_denied_on_every_rpc(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let querier = Who::key(
        &new_client(
            &mut a,
            &boot,
            "querier",
            &["*"],
            &[
                Capability::Query,
                Capability::AppManager,
                Capability::AssertUser,
            ],
        )
        .await,
    );
    let events_before = all_events(&mut a).await.len();
    all_fail(
        &call_every_rpc(&mut a, &querier, ACME).await,
        DENIED,
        "admin",
    );
    all_fail(
        &call_every_rpc(&mut a, &querier.user("alice"), ACME).await,
        DENIED,
        "admin",
    );
    assert_eq!(all_events(&mut a).await.len(), events_before);
    server.stop().await;
}

async fn naming_a_user_without_assert_user_is_denied_on_every_rpc(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let no_assert = Who::key(
        &new_client(
            &mut a,
            &boot,
            "no-assert",
            &["*"],
            &[Capability::Query, Capability::Admin, Capability::AppManager],
        )
        .await,
    );
    let events_before = all_events(&mut a).await.len();
    all_fail(
        &call_every_rpc(&mut a, &no_assert.user("alice"), ACME).await,
        DENIED,
        "assert_user",
    );
    assert_eq!(all_events(&mut a).await.len(), events_before);
    // Without the header the same client is served; with assert_user the header is honoured.
    ok(a.list_tenants(no_assert.r(ListTenantsRequest::default()))
        .await);
    ok(
        a.list_tenants(boot.user("alice").r(ListTenantsRequest::default()))
            .await,
    );
    server.stop().await;
}

async fn callers_without_a_valid_key_are_unauthenticated_on_every_rpc(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    acme(&mut a).await;
    let events_before = all_events(&mut a).await.len();
    let unauthenticated = [
        Who::nobody(),
        Who::header("Basic dXNlcjpwYXNz"),
        Who::header("Bearer"),
        Who::header(BOOTSTRAP_KEY),
        Who::header(&format!("Token {BOOTSTRAP_KEY}")),
        Who::key("csk_not-a-key-anybody-was-given"),
        Who::key(&format!("{BOOTSTRAP_KEY}x")),
        Who::nobody().user("alice"),
    ];
    for who in &unauthenticated {
        let outcomes = call_every_rpc(&mut a, who, ACME).await;
        all_fail(&outcomes, Code::Unauthenticated, "");
    }
    assert_eq!(all_events(&mut a).await.len(), events_before);

    // A revoked key stops working on this server at once: the very next call is refused.
    let doomed_key = new_client(&mut a, &boot, "doomed", &["*"], &ALL_CAPS).await;
    let doomed = Who::key(&doomed_key);
    ok(a.list_tenants(doomed.r(ListTenantsRequest::default()))
        .await);
    ok(a.list_users(doomed.user("alice").r(ListUsersRequest {
        tenant_id: ACME.into(),
        ..Default::default()
    }))
    .await);
    ok(a.revoke_client(boot.r(RevokeClientRequest {
        client_id: "doomed".into(),
    }))
    .await);
    fails(
        a.list_tenants(doomed.r(ListTenantsRequest::default()))
            .await,
        Code::Unauthenticated,
        "",
    );
    all_fail(
        &call_every_rpc(&mut a, &doomed, ACME).await,
        Code::Unauthenticated,
        "",
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Cascades, atomicity, paging.

async fn deletes_cascade_and_their_audit_events_record_what_went(db: &TestDb) {
    let server = TestServer::start(db).await;
    let mut a = server.admin().await;
    let mut p = server.permission().await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    put_tenant(&mut a, "beta").await;
    put_user(&mut a, &boot, "beta", "bea", &[Role::GeneralAdmin]).await;
    put_user(&mut a, &boot, ACME, "dave", &[]).await;
    ok(
        a.grant_user_right(boot.r(right_req(ACME, "carol", "/hr", Right::Read)))
            .await,
    );
    ok(a.create_permission_group(bob.r(group_req(
        ACME,
        "g1",
        &[("user:carol", ManagerAccess::Read)],
        &["user:bob", "user:carol"],
        &["user:carol", "client:bootstrap"],
    )))
    .await);
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p2", "P-2")))
            .await,
    );
    ok(
        a.grant_external_permission(bob.r(grant_req(ACME, "carol", "p1")))
            .await,
    );
    ok(
        a.grant_external_permission(bob.r(grant_req(ACME, "dave", "p1")))
            .await,
    );
    ok(
        a.grant_external_permission(bob.r(grant_req(ACME, "dave", "p2")))
            .await,
    );

    let grants = |user: &str| ListExternalPermissionsRequest {
        tenant_id: ACME.into(),
        user_id: user.into(),
        ..Default::default()
    };
    let carol_grants = p
        .list_external_permissions(boot.r(grants("carol")))
        .await
        .expect("lists")
        .into_inner()
        .permissions;
    assert_eq!(carol_grants.len(), 1, "{carol_grants:?}");

    // DeleteUser takes the user's rights, grants and group entries.
    ok(a.delete_user(boot.r(DeleteUserRequest {
        tenant_id: ACME.into(),
        user_id: "carol".into(),
    }))
    .await);
    let e = all_events(&mut a).await.pop().expect("an event");
    let before = parse_json("DeleteUser", &e.before);
    assert!(
        includes(
            &before,
            &json!({"user_id": "carol", "rights": [{"resource": "/hr", "right": "READ"}],
                "grants": [{"permission_id": "p1", "granted_by": "user:bob"}]})
        ),
        "{before}"
    );
    let entries: BTreeSet<String> = before["group_entries"]
        .as_array()
        .expect("group entries")
        .iter()
        .map(|v| {
            format!(
                "{}/{}",
                v["group_id"].as_str().unwrap(),
                v["relation"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        entries,
        BTreeSet::from([
            "g1/grantor".to_owned(),
            "g1/manager".into(),
            "g1/visible_to".into()
        ])
    );
    let g1 = ok(a
        .list_permission_groups(bob.r(ListPermissionGroupsRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .groups
    .remove(0);
    assert_eq!(g1.managers.len(), 1);
    assert_eq!(g1.grantors, strings(&["user:bob"]));
    assert_eq!(g1.visible_to, strings(&["client:bootstrap"]));
    put_user(&mut a, &boot, ACME, "carol", &[]).await;
    let rights = ok(a
        .list_user_rights(boot.r(ListUserRightsRequest {
            tenant_id: ACME.into(),
            user_id: "carol".into(),
            ..Default::default()
        }))
        .await)
    .rights;
    assert!(rights.is_empty(), "a re-added user starts without rights");
    let carol_grants = p
        .list_external_permissions(boot.r(grants("carol")))
        .await
        .expect("lists")
        .into_inner()
        .permissions;
    assert!(carol_grants.is_empty(), "{carol_grants:?}");

    // DeleteExternalPermission takes its grants.
    ok(
        a.delete_external_permission(bob.r(DeleteExternalPermissionRequest {
            tenant_id: ACME.into(),
            permission_id: "p2".into(),
        }))
        .await,
    );
    let e = all_events(&mut a).await.pop().expect("an event");
    assert!(includes(
        &parse_json("DeleteExternalPermission", &e.before),
        &json!({"permission_id": "p2", "grants": [{"user_id": "dave", "permission_id": "p2"}]})
    ));
    // DeletePermissionGroup takes its permissions and their grants.
    ok(
        a.delete_permission_group(bob.r(DeletePermissionGroupRequest {
            tenant_id: ACME.into(),
            group_id: "g1".into(),
        }))
        .await,
    );
    let e = all_events(&mut a).await.pop().expect("an event");
    assert!(includes(
        &parse_json("DeletePermissionGroup", &e.before),
        &json!({"group_id": "g1", "permissions": [{"permission_id": "p1", "external_id": "P-1"}],
            "grants": [{"user_id": "dave", "permission_id": "p1"}]})
    ));
    let dave_grants = p
        .list_external_permissions(boot.r(grants("dave")))
        .await
        .expect("lists")
        .into_inner()
        .permissions;
    assert!(dave_grants.is_empty(), "{dave_grants:?}");
    // The ids are free again.
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
    );
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );

    // UnregisterApp takes its consents and whitelist entries, in every tenant.
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    ok(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 1, vec![])))
            .await,
    );
    ok(
        a.approve_consent(boot.user("bea").r(approve_req("beta", "crm", 1, vec![])))
            .await,
    );
    ok(
        a.put_whitelist_entry(alice.r(whitelist_req(ACME, "crm", &[])))
            .await,
    );
    ok(a.unregister_app(boot.r(UnregisterAppRequest {
        app_id: "crm".into(),
    }))
    .await);
    let e = all_events(&mut a).await.pop().expect("an event");
    assert!(includes(
        &parse_json("UnregisterApp", &e.before),
        &json!({"app_id": "crm",
            "consents": [{"tenant_id": "acme", "approved_by": "user:alice"},
                         {"tenant_id": "beta", "approved_by": "user:bea"}],
            "whitelist_entries": [{"tenant_id": "acme", "app_id": "crm"}]})
    ));
    register(&mut a, "crm", AppKind::Standard, Manifest::default()).await;
    for tenant in [ACME, "beta"] {
        let consents = ok(a
            .list_consents(boot.r(ListConsentsRequest {
                tenant_id: tenant.into(),
                ..Default::default()
            }))
            .await)
        .consents;
        assert!(
            consents.is_empty(),
            "re-registering does not bring consent back: {consents:?}"
        );
    }
    let entries = ok(a
        .list_whitelist_entries(boot.r(ListWhitelistEntriesRequest {
            tenant_id: ACME.into(),
            ..Default::default()
        }))
        .await)
    .entries;
    assert!(entries.is_empty());
    server.stop().await;
}

async fn a_failed_write_leaves_no_trace(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    register(&mut a, "crm", AppKind::Standard, manifest(&["docs"], &[])).await;
    ok(
        a.create_permission_group(bob.r(group_req(ACME, "g1", &[], &[], &[])))
            .await,
    );
    let last = ok(a
        .create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "INV-1")))
        .await)
    .written_at;
    let events_before = all_events(&mut a).await;
    assert_eq!(
        events_before.last().map(|e| e.revision.clone()),
        Some(last.clone())
    );
    let groups = |a: &mut Admin| {
        let mut a = a.clone();
        async move {
            ok(
                a.list_permission_groups(Who::boot().user("bob").r(ListPermissionGroupsRequest {
                    tenant_id: ACME.into(),
                    ..Default::default()
                }))
                .await,
            )
            .groups
        }
    };
    let groups_before = groups(&mut a).await;

    // A duplicate external id fails inside the write transaction, after the revision was bumped
    // and the row insert was attempted.
    fails(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p2", "INV-1")))
            .await,
        Code::AlreadyExists,
        "INV-1",
    );
    // Other failures at other points of a write.
    fails(
        a.create_permission_group(boot.user("carol").r(group_req(ACME, "g2", &[], &[], &[])))
            .await,
        DENIED,
        "carol",
    );
    fails(
        a.approve_consent(alice.r(approve_req(ACME, "crm", 2, vec![])))
            .await,
        Code::Aborted,
        "crm",
    );
    fails(
        a.put_tenant(boot.r(tenant_req(ACME, "stage", false))).await,
        Code::FailedPrecondition,
        "production",
    );
    fails(
        a.create_client(boot.r(client_req("bootstrap", &["*"], &[Capability::Query])))
            .await,
        Code::AlreadyExists,
        "bootstrap",
    );
    // An identical manifest is not a failure, but writes nothing either.
    let same = ok(a
        .update_app_manifest(boot.r(UpdateAppManifestRequest {
            app_id: "crm".into(),
            manifest: Some(manifest(&["docs"], &[])),
        }))
        .await);
    assert_eq!(same.written_at, last);

    assert_eq!(all_events(&mut a).await, events_before, "no audit event");
    assert_eq!(groups(&mut a).await, groups_before, "no permission");
    // The revision was not bumped: the next write takes the one after the last success.
    let next = put_user(&mut a, &boot, ACME, "dave", &[]).await;
    assert_eq!(rev(&next), rev(&last) + 1, "{last} then {next}");
    let events_after = all_events(&mut a).await;
    assert_eq!(events_after.len(), events_before.len() + 1);
    assert_eq!(events_after.last().map(|e| e.revision.clone()), Some(next));
    server.stop().await;
}

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
);

/// Asserts pages of `sizes` that together hold `expected`, in order, each once.
#[track_caller]
fn assert_pages(what: &str, pages: &[Vec<String>], sizes: &[usize], expected: &[String]) {
    let got: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(got, sizes, "{what}: page sizes");
    let flat = pages.concat();
    let unique: BTreeSet<&String> = flat.iter().collect();
    assert_eq!(unique.len(), flat.len(), "{what}: an item came twice");
    assert_eq!(flat, expected, "{what}: the items in order");
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i:02}")).collect()
}

async fn lists_page_completely_and_stably(db: &TestDb) {
    let (server, mut a) = start(db).await;
    let boot = Who::boot();
    let admin = boot.user("u00");
    let tenants = ids("t", 25);
    let users = ids("u", 25);
    let apps = ids("app", 25);
    let groups = ids("g", 25);
    let clients = ids("c", 24);
    for t in &tenants {
        put_tenant(&mut a, t).await;
    }
    let t0 = tenants[0].as_str();
    put_user(&mut a, &boot, t0, &users[0], &[Role::GeneralAdmin]).await;
    for u in &users[1..] {
        put_user(&mut a, &boot, t0, u, &[]).await;
    }
    let paths: Vec<String> = ids("/p", 25);
    for path in &paths {
        ok(
            a.grant_user_right(boot.r(right_req(t0, "u01", path, Right::Read)))
                .await,
        );
    }
    for app in &apps {
        register(&mut a, app, AppKind::Standard, Manifest::default()).await;
        ok(a.approve_consent(admin.r(approve_req(t0, app, 1, vec![])))
            .await);
        ok(a.put_whitelist_entry(admin.r(whitelist_req(t0, app, &[])))
            .await);
    }
    for g in &groups {
        ok(
            a.create_permission_group(admin.r(group_req(t0, g, &[], &[], &[])))
                .await,
        );
    }
    for c in &clients {
        new_client(&mut a, &boot, c, &[t0], &[Capability::Query]).await;
    }
    let mut all_clients = clients.clone();
    all_clients.insert(0, "bootstrap".to_owned());
    let sizes = [10, 10, 5];

    let got = pages!(
        a,
        boot,
        10,
        list_tenants,
        ListTenantsRequest::default(),
        tenants,
        |t| t.tenant_id.clone()
    );
    assert_pages("tenants", &got, &sizes, &tenants);
    let got = pages!(
        a,
        boot,
        10,
        list_apps,
        ListAppsRequest::default(),
        apps,
        |x| x.app_id.clone()
    );
    assert_pages("apps", &got, &sizes, &apps);
    let got = pages!(
        a,
        boot,
        10,
        list_clients,
        ListClientsRequest::default(),
        clients,
        |c| c.client_id.clone()
    );
    assert_pages("clients", &got, &sizes, &all_clients);
    let got = pages!(
        a,
        boot,
        10,
        list_users,
        ListUsersRequest {
            tenant_id: t0.into(),
            ..Default::default()
        },
        users,
        |u| u.user_id.clone()
    );
    assert_pages("users", &got, &sizes, &users);
    let got = pages!(
        a,
        boot,
        10,
        list_user_rights,
        ListUserRightsRequest {
            tenant_id: t0.into(),
            user_id: "u01".into(),
            ..Default::default()
        },
        rights,
        |r| r.resource.clone()
    );
    assert_pages("rights", &got, &sizes, &paths);
    let got = pages!(
        a,
        boot,
        10,
        list_consents,
        ListConsentsRequest {
            tenant_id: t0.into(),
            ..Default::default()
        },
        consents,
        |c| c.app_id.clone()
    );
    assert_pages("consents", &got, &sizes, &apps);
    let got = pages!(
        a,
        boot,
        10,
        list_whitelist_entries,
        ListWhitelistEntriesRequest {
            tenant_id: t0.into(),
            ..Default::default()
        },
        entries,
        |e| e.app_id.clone()
    );
    assert_pages("whitelist entries", &got, &sizes, &apps);
    let got = pages!(
        a,
        admin,
        10,
        list_permission_groups,
        ListPermissionGroupsRequest {
            tenant_id: t0.into(),
            ..Default::default()
        },
        groups,
        |g| g.group_id.clone()
    );
    assert_pages("groups", &got, &sizes, &groups);
    let every: Vec<String> = all_events(&mut a)
        .await
        .into_iter()
        .map(|e| e.revision)
        .collect();
    assert!(every.len() > 150, "{}", every.len());
    let got = pages!(
        a,
        boot,
        10,
        list_audit_events,
        ListAuditEventsRequest::default(),
        events,
        |e| e.revision.clone()
    );
    let mut event_sizes = vec![10; every.len() / 10];
    if !every.len().is_multiple_of(10) {
        event_sizes.push(every.len() % 10);
    }
    assert_pages("audit events", &got, &event_sizes, &every);
    // The default page size is 50; larger ones are clamped to 500.
    let first = ok(a
        .list_audit_events(boot.r(ListAuditEventsRequest::default()))
        .await);
    assert_eq!(first.events.len(), 50);
    assert!(!first.next_page_token.is_empty());
    let huge = ok(a
        .list_audit_events(boot.r(ListAuditEventsRequest {
            page_size: i32::MAX,
            ..Default::default()
        }))
        .await);
    assert_eq!(huge.events.len(), every.len().min(500));

    // Stable under writes between pages: an item before the position is not seen, one after
    // it is, nothing comes twice.
    let first = ok(a
        .list_users(boot.r(ListUsersRequest {
            tenant_id: t0.into(),
            page_size: 10,
            ..Default::default()
        }))
        .await);
    put_user(&mut a, &boot, t0, "a-early", &[]).await;
    put_user(&mut a, &boot, t0, "u05x", &[]).await;
    put_user(&mut a, &boot, t0, "zz-late", &[]).await;
    let mut seen: Vec<String> = first.users.into_iter().map(|u| u.user_id).collect();
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let page = ok(a
            .list_users(boot.r(ListUsersRequest {
                tenant_id: t0.into(),
                page_size: 10,
                page_token: token,
            }))
            .await);
        seen.extend(page.users.into_iter().map(|u| u.user_id));
        token = page.next_page_token;
    }
    let mut want = users.clone();
    want.push("zz-late".to_owned());
    assert_eq!(seen, want);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The binary: restarts and the `client` commands.

/// Everything the AdminService lists, as one comparable value.
#[derive(Debug, PartialEq)]
struct Everything {
    tenants: Vec<Tenant>,
    users: Vec<TenantUser>,
    rights: Vec<UserRight>,
    apps: Vec<App>,
    consents: Vec<Consent>,
    entries: Vec<WhitelistEntry>,
    groups: Vec<PermissionGroup>,
    clients: Vec<Client>,
    events: Vec<AuditEvent>,
}

async fn everything(a: &mut Admin) -> Everything {
    let boot = Who::boot();
    let t = || ACME.to_owned();
    Everything {
        tenants: ok(a.list_tenants(boot.r(ListTenantsRequest::default())).await).tenants,
        users: ok(a
            .list_users(boot.r(ListUsersRequest {
                tenant_id: t(),
                ..Default::default()
            }))
            .await)
        .users,
        rights: ok(a
            .list_user_rights(boot.r(ListUserRightsRequest {
                tenant_id: t(),
                user_id: "carol".into(),
                ..Default::default()
            }))
            .await)
        .rights,
        apps: ok(a.list_apps(boot.r(ListAppsRequest::default())).await).apps,
        consents: ok(a
            .list_consents(boot.r(ListConsentsRequest {
                tenant_id: t(),
                ..Default::default()
            }))
            .await)
        .consents,
        entries: ok(a
            .list_whitelist_entries(boot.r(ListWhitelistEntriesRequest {
                tenant_id: t(),
                ..Default::default()
            }))
            .await)
        .entries,
        groups: ok(a
            .list_permission_groups(boot.user("bob").r(ListPermissionGroupsRequest {
                tenant_id: t(),
                ..Default::default()
            }))
            .await)
        .groups,
        clients: ok(a.list_clients(boot.r(ListClientsRequest::default())).await).clients,
        events: all_events(a).await,
    }
}

async fn the_binary_keeps_everything_across_a_restart(db: &TestDb) {
    let first = BinaryServer::start(&db.url, &[]).await;
    let mut a = admin_at(first.addr).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    let bob = boot.user("bob");
    acme(&mut a).await;
    ok(a.put_tenant(alice.r(tenant_req(ACME, "production", true)))
        .await);
    ok(
        a.grant_user_right(boot.r(right_req(ACME, "carol", "/hr/team", Right::Write)))
            .await,
    );
    register(
        &mut a,
        "crm",
        AppKind::Standard,
        manifest(&["docs"], &[(ScopeLevel::Tenancy, Right::Read)]),
    )
    .await;
    ok(a.approve_consent(alice.r(approve_req(
        ACME,
        "crm",
        1,
        vec![resolved(ScopeLevel::Tenancy, Right::Read, "/")],
    )))
    .await);
    ok(
        a.put_whitelist_entry(alice.r(whitelist_req(ACME, "crm", &["docs"])))
            .await,
    );
    ok(a.create_permission_group(bob.r(group_req(
        ACME,
        "g1",
        &[("user:carol", ManagerAccess::Read)],
        &["user:bob"],
        &["client:svc"],
    )))
    .await);
    ok(
        a.create_external_permission(bob.r(permission_req(ACME, "g1", "p1", "P-1")))
            .await,
    );
    ok(
        a.grant_external_permission(bob.r(grant_req(ACME, "carol", "p1")))
            .await,
    );
    let svc_key = new_client(
        &mut a,
        &boot,
        "svc",
        &[ACME],
        &[Capability::Admin, Capability::Query],
    )
    .await;
    let last = all_events(&mut a).await.pop().expect("an event").revision;
    let before = everything(&mut a).await;
    assert!(before.events.len() >= 14, "{}", before.events.len());

    let status = first.terminate().await;
    assert!(
        status.success(),
        "SIGTERM ends the server cleanly: {status:?}"
    );

    let second = BinaryServer::start(&db.url, &[]).await;
    let mut b = admin_at(second.addr).await;
    assert_eq!(everything(&mut b).await, before);
    // Keys still work; revisions continue where they were.
    let svc = Who::key(&svc_key);
    ok(b.list_users(svc.r(ListUsersRequest {
        tenant_id: ACME.into(),
        ..Default::default()
    }))
    .await);
    let next = put_user(&mut b, &svc, ACME, "dave", &[]).await;
    assert_eq!(rev(&next), rev(&last) + 1, "{last} then {next}");
    let events = all_events(&mut b).await;
    assert_eq!(events.len(), before.events.len() + 1);
    assert_eq!(
        events
            .last()
            .map(|e| (e.revision.as_str(), e.actor_client.as_str())),
        Some((next.as_str(), "svc"))
    );
    let status = second.terminate().await;
    assert!(status.success(), "{status:?}");
}

/// Runs `consentry <args>` to completion.
async fn cli(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_consentry"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CONSENTRY_BOOTSTRAP_KEY")
        .output()
        .await
        .expect("the consentry binary runs")
}

/// Runs `consentry client create` on `url`; returns the key it prints.
async fn cli_create(url: &str, id: &str, tenants: &str, capabilities: &str) -> String {
    let out = cli(&[
        "client",
        "create",
        "--id",
        id,
        "--tenants",
        tenants,
        "--capabilities",
        capabilities,
        "--database-url",
        url,
    ])
    .await;
    assert!(
        out.status.success(),
        "client create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "stdout holds the key alone: {stdout:?}");
    lines[0].trim().to_owned()
}

async fn the_cli_creates_clients_whose_keys_work_and_revokes_them(db: &TestDb) {
    let key = cli_create(&db.url, "x", "a,b", "query,admin").await;
    assert!(key.len() >= 22);
    let server = TestServer::start(db).await;
    let mut a = server.admin().await;
    let boot = Who::boot();
    put_tenant(&mut a, "a").await;
    put_tenant(&mut a, "c").await;
    let x = Who::key(&key);
    let tenants = ok(a.list_tenants(x.r(ListTenantsRequest::default())).await).tenants;
    assert_eq!(
        tenants
            .iter()
            .map(|t| t.tenant_id.as_str())
            .collect::<Vec<_>>(),
        ["a"]
    );
    ok(a.put_user(x.r(user_req("a", "carol", &[]))).await);
    fails(
        a.put_user(x.r(user_req("c", "carol", &[]))).await,
        DENIED,
        "c",
    );
    fails(
        a.register_app(x.r(app_req("crm", AppKind::Standard, Manifest::default())))
            .await,
        DENIED,
        "app_manager",
    );
    let clients = ok(a.list_clients(boot.r(ListClientsRequest::default())).await).clients;
    let row = clients
        .iter()
        .find(|c| c.client_id == "x")
        .expect("x is listed");
    assert_eq!(row.tenants, strings(&["a", "b"]));
    assert_eq!(
        row.capabilities,
        caps(&[Capability::Query, Capability::Admin])
    );
    let created = events(
        &mut a,
        &boot,
        ListAuditEventsRequest {
            target: "client:x".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(created.len(), 1);
    assert_eq!(
        (
            created[0].action.as_str(),
            created[0].actor_client.as_str(),
            created[0].actor_user.as_str()
        ),
        ("CreateClient", "(cli)", "")
    );
    assert!(!created[0].after.contains(&key) && !created[0].after.contains(&hash_key(&key)));

    // Revoked in the database by the CLI, the key stops working on the running server within
    // the bound of any other change (one second; polled with a generous deadline).
    let out = cli(&["client", "revoke", "--id", "x", "--database-url", &db.url]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = eventually(Duration::from_secs(5), || {
        let mut a = a.clone();
        let x = x.clone();
        async move {
            matches!(
                a.list_tenants(x.r(ListTenantsRequest::default())).await,
                Err(s) if s.code() == Code::Unauthenticated
            )
        }
    })
    .await;
    assert!(
        took < Duration::from_secs(2),
        "the revocation took {took:?} to arrive"
    );
    let clients = ok(a.list_clients(boot.r(ListClientsRequest::default())).await).clients;
    let row = clients
        .iter()
        .find(|c| c.client_id == "x")
        .expect("x is listed");
    assert!(near_now(row.revoked_at.as_ref()));

    // The CLI fails (non-zero) on what the API refuses.
    for args in [
        vec![
            "client",
            "create",
            "--id",
            "x",
            "--tenants",
            "a",
            "--capabilities",
            "query",
        ],
        vec![
            "client",
            "create",
            "--id",
            "y",
            "--tenants",
            "a",
            "--capabilities",
            "root",
        ],
        vec![
            "client",
            "create",
            "--id",
            "bad id",
            "--tenants",
            "a",
            "--capabilities",
            "query",
        ],
        vec!["client", "revoke", "--id", "x"],
        vec!["client", "revoke", "--id", "ghost"],
    ] {
        let mut args = args;
        args.extend(["--database-url", db.url.as_str()]);
        let out = cli(&args).await;
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(out.stdout.is_empty(), "{args:?} printed no key");
    }
    server.stop().await;
}

async fn a_revoked_bootstrap_client_stays_revoked(db: &TestDb) {
    // The first start creates the bootstrap client from CONSENTRY_BOOTSTRAP_KEY.
    let first = BinaryServer::start(&db.url, &[]).await;
    let mut a = admin_at(first.addr).await;
    ok(a.list_tenants(Who::boot().r(ListTenantsRequest::default()))
        .await);
    assert!(first.terminate().await.success());

    let out = cli(&[
        "client",
        "revoke",
        "--id",
        "bootstrap",
        "--database-url",
        &db.url,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ops_key = cli_create(&db.url, "ops", "*", "admin,query").await;

    // Started again with the same CONSENTRY_BOOTSTRAP_KEY: bootstrap stays revoked.
    let second = BinaryServer::start(&db.url, &[]).await;
    let mut b = admin_at(second.addr).await;
    fails(
        b.list_tenants(Who::boot().r(ListTenantsRequest::default()))
            .await,
        Code::Unauthenticated,
        "",
    );
    let ops = Who::key(&ops_key);
    let clients = ok(b.list_clients(ops.r(ListClientsRequest::default())).await).clients;
    let row = clients
        .iter()
        .find(|c| c.client_id == "bootstrap")
        .expect("bootstrap is listed");
    assert!(row.revoked_at.is_some(), "{row:?}");
    let created = events(
        &mut b,
        &ops,
        ListAuditEventsRequest {
            target: "client:bootstrap".into(),
            ..Default::default()
        },
    )
    .await;
    let actions: Vec<(&str, &str)> = created
        .iter()
        .map(|e| (e.action.as_str(), e.actor_client.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("CreateClient", "(bootstrap)"), ("RevokeClient", "(cli)")]
    );
    assert!(second.terminate().await.success());
}
