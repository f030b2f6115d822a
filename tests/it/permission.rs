//! The PermissionService end to end, over real servers (in-process on port 0, or the binary as
//! a child process) on real databases: every CheckAccess reason with its trace, batches,
//! validation and caller rules (DESIGN.md §3, §5), the external permission queries' visibility,
//! paging and expiry and GetAppScopes (§4), and the freshness contract of §2 across instances
//! (tokens, the one-second bound, read-your-writes, cache hits that never outlive a revocation),
//! failing closed without a store, draining on SIGTERM, and the demo world.
//!
//! Every test builds its world through the AdminService of the server it talks to, on a fresh
//! database of its own. Timing is never slept for: conditions are polled against deadlines.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use consentry::proto::admin_service_client::AdminServiceClient;
use consentry::proto::consistency::Requirement;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::proto::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::transport::Channel;
use tonic::{Code, Response, Status};

use crate::support::db::{TestDb, backend_tests, postgres_server_url};
use crate::support::fixtures::{manifest, resolved, strings};
use crate::support::server::{
    BOOTSTRAP_KEY, BinaryServer, TestServer, boot, config, eventually, req, scrape, wait_serving,
};

/// Like `backend_tests!`, for tests that only make sense on Postgres (several instances on one
/// database, dropping the database underneath a server, the binary): `postgres_only::<name>`.
macro_rules! postgres_tests {
    ($($name:ident),+ $(,)?) => {
        mod postgres_only {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let db = crate::support::db::TestDb::postgres().await;
                    let outcome = crate::support::db::CatchUnwind::new(super::$name(&db)).await;
                    crate::support::db::finish(db, outcome).await;
                }
            )+
        }
    };
}

backend_tests!(
    reason_allowed,
    reason_unknown_tenant,
    reason_unknown_app,
    reason_app_not_whitelisted,
    reason_no_consent,
    reason_consent_revoked,
    reason_reapproval_required,
    reason_scope_not_granted,
    reason_impersonation_not_allowed,
    reason_user_required,
    reason_app_permission_insufficient,
    reason_user_permission_insufficient,
    batches_answer_every_item_in_order_at_one_revision,
    external_permissions_are_shown_to_the_viewers_that_may_see_them,
    external_permission_pages_are_complete_and_stable,
    app_scopes_report_pending_additions_until_approved,
    the_instance_that_wrote_reads_its_write_without_a_token,
);

postgres_tests!(
    batches_fail_as_a_whole,
    malformed_input_is_invalid_argument_and_future_tokens_fail_precondition,
    callers_need_the_query_capability_and_their_tenants,
    expired_grants_are_hidden_cached_or_not,
    each_escalation_requires_reapproval_until_approved_again,
    two_processes_on_one_database_agree_within_a_second,
    two_in_process_servers_agree_within_a_second,
    repeated_checks_are_cache_hits,
    a_revoked_consent_is_never_allowed_once_its_token_is_presented,
    without_the_database_checks_fail_closed,
    a_server_cut_off_from_its_pool_stops_answering_from_its_cache,
    sigterm_drains_requests_in_flight_and_exits_cleanly,
    the_demo_world_answers_with_the_printed_key,
);

// ---------------------------------------------------------------------------------------------
// Clients and the admin writes that build a world.

/// An AdminService and a PermissionService client on one connection to one server.
#[derive(Clone)]
struct Api {
    admin: AdminServiceClient<Channel>,
    perm: PermissionServiceClient<Channel>,
}

async fn channel(addr: SocketAddr) -> Channel {
    Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connects")
}

/// The message of a successful call, or a panic naming the call and the status.
fn ok<T>(what: &str, r: Result<Response<T>, Status>) -> T {
    match r {
        Ok(r) => r.into_inner(),
        Err(s) => panic!("{what}: {:?}: {}", s.code(), s.message()),
    }
}

/// The status of a call that must fail.
fn err<T: std::fmt::Debug>(what: &str, r: Result<T, Status>) -> Status {
    match r {
        Ok(v) => panic!("{what}: expected an error, got {v:?}"),
        Err(s) => s,
    }
}

/// Asserts a call failed with `code`.
fn assert_code<T: std::fmt::Debug>(what: &str, r: Result<T, Status>, code: Code) -> Status {
    let s = err(what, r);
    assert_eq!(s.code(), code, "{what}: {}", s.message());
    s
}

/// The CRM app's manifest: two scopes and WRITE on a site collection.
fn crm_manifest() -> Manifest {
    manifest(
        &["documents:read", "documents:write"],
        &[(ScopeLevel::SiteCollection, Right::Write)],
    )
}

fn now_ts(offset: Duration, past: bool) -> prost_types::Timestamp {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let t = if past { now - offset } else { now + offset };
    // Whole microseconds: what the store keeps.
    prost_types::Timestamp {
        seconds: i64::try_from(t.as_secs()).unwrap(),
        nanos: i32::try_from(t.subsec_micros() * 1000).unwrap(),
    }
}

impl Api {
    async fn at(addr: SocketAddr) -> Api {
        let ch = channel(addr).await;
        Api {
            admin: AdminServiceClient::new(ch.clone()),
            perm: PermissionServiceClient::new(ch),
        }
    }

    async fn put_tenant(&self, tenant: &str, whitelisting: bool, by: Option<&str>) -> String {
        let r = self
            .admin
            .clone()
            .put_tenant(boot(
                PutTenantRequest {
                    tenant_id: tenant.into(),
                    environment: "production".into(),
                    whitelisting_enabled: whitelisting,
                },
                by,
            ))
            .await;
        ok("PutTenant", r).written_at
    }

    async fn put_user(&self, tenant: &str, user: &str, roles: &[Role], by: Option<&str>) -> String {
        let r = self
            .admin
            .clone()
            .put_user(boot(
                PutUserRequest {
                    tenant_id: tenant.into(),
                    user_id: user.into(),
                    roles: roles.iter().map(|r| *r as i32).collect(),
                },
                by,
            ))
            .await;
        ok("PutUser", r).written_at
    }

    async fn grant_right(&self, tenant: &str, user: &str, resource: &str, right: Right) -> String {
        let r = self
            .admin
            .clone()
            .grant_user_right(boot(
                GrantUserRightRequest {
                    tenant_id: tenant.into(),
                    user_id: user.into(),
                    resource: resource.into(),
                    right: right as i32,
                },
                None,
            ))
            .await;
        ok("GrantUserRight", r).written_at
    }

    async fn revoke_right(&self, tenant: &str, user: &str, resource: &str, right: Right) -> String {
        let r = self
            .admin
            .clone()
            .revoke_user_right(boot(
                RevokeUserRightRequest {
                    tenant_id: tenant.into(),
                    user_id: user.into(),
                    resource: resource.into(),
                    right: right as i32,
                },
                None,
            ))
            .await;
        ok("RevokeUserRight", r).written_at
    }

    /// Registers an app; returns its manifest revision.
    async fn register(&self, app: &str, kind: AppKind, manifest: Manifest) -> i64 {
        let r = self
            .admin
            .clone()
            .register_app(boot(
                RegisterAppRequest {
                    app_id: app.into(),
                    name: format!("App {app}"),
                    kind: kind as i32,
                    manifest: Some(manifest),
                },
                None,
            ))
            .await;
        ok("RegisterApp", r).manifest_revision
    }

    /// Replaces an app's manifest; returns its new manifest revision.
    async fn update_manifest(&self, app: &str, manifest: Manifest) -> i64 {
        let r = self
            .admin
            .clone()
            .update_app_manifest(boot(
                UpdateAppManifestRequest {
                    app_id: app.into(),
                    manifest: Some(manifest),
                },
                None,
            ))
            .await;
        ok("UpdateAppManifest", r).manifest_revision
    }

    /// Approves an app in a tenant as alice (the tenant's administrator).
    async fn approve(
        &self,
        tenant: &str,
        app: &str,
        manifest_revision: i64,
        resolved_requests: Vec<ResolvedRequest>,
    ) -> String {
        let r = self
            .admin
            .clone()
            .approve_consent(boot(
                ApproveConsentRequest {
                    tenant_id: tenant.into(),
                    app_id: app.into(),
                    manifest_revision,
                    resolved_requests,
                },
                Some("alice"),
            ))
            .await;
        ok("ApproveConsent", r).written_at
    }

    /// Revokes an app's consent as alice.
    async fn revoke_consent(&self, tenant: &str, app: &str) -> String {
        let r = self
            .admin
            .clone()
            .revoke_consent(boot(
                RevokeConsentRequest {
                    tenant_id: tenant.into(),
                    app_id: app.into(),
                },
                Some("alice"),
            ))
            .await;
        ok("RevokeConsent", r).written_at
    }

    /// Whitelists an app as alice.
    async fn whitelist(&self, tenant: &str, app: &str, scopes: &[&str], access: ContentAccess) {
        let r = self
            .admin
            .clone()
            .put_whitelist_entry(boot(
                PutWhitelistEntryRequest {
                    tenant_id: tenant.into(),
                    app_id: app.into(),
                    allowed_scopes: strings(scopes),
                    content_access: access as i32,
                },
                Some("alice"),
            ))
            .await;
        ok("PutWhitelistEntry", r);
    }

    /// Creates a client; returns its key.
    async fn client(&self, id: &str, tenants: &[&str], caps: &[Capability]) -> String {
        let r = self
            .admin
            .clone()
            .create_client(boot(
                CreateClientRequest {
                    client_id: id.into(),
                    tenants: strings(tenants),
                    capabilities: caps.iter().map(|c| *c as i32).collect(),
                },
                None,
            ))
            .await;
        ok("CreateClient", r).key
    }

    async fn revoke_client(&self, id: &str) -> String {
        let r = self
            .admin
            .clone()
            .revoke_client(boot(
                RevokeClientRequest {
                    client_id: id.into(),
                },
                None,
            ))
            .await;
        ok("RevokeClient", r).written_at
    }

    /// Creates a permission group as carol (a PERMISSION_MANAGER, who becomes a READ_WRITE
    /// manager); the bootstrap client also manages it read-write and grants its permissions.
    async fn group(&self, tenant: &str, group: &str, readers: &[&str], visible_to: &[&str]) {
        let mut managers = vec![Manager {
            principal: "client:bootstrap".into(),
            access: ManagerAccess::ReadWrite as i32,
        }];
        managers.extend(readers.iter().map(|p| Manager {
            principal: (*p).into(),
            access: ManagerAccess::Read as i32,
        }));
        let r = self
            .admin
            .clone()
            .create_permission_group(boot(
                CreatePermissionGroupRequest {
                    tenant_id: tenant.into(),
                    group_id: group.into(),
                    name: format!("Group {group}"),
                    description: String::new(),
                    managers,
                    grantors: strings(&["client:bootstrap"]),
                    visible_to: strings(visible_to),
                },
                Some("carol"),
            ))
            .await;
        ok("CreatePermissionGroup", r);
    }

    async fn permission(&self, tenant: &str, group: &str, id: &str, external_id: &str) {
        let r = self
            .admin
            .clone()
            .create_external_permission(boot(
                CreateExternalPermissionRequest {
                    tenant_id: tenant.into(),
                    group_id: group.into(),
                    permission_id: id.into(),
                    name: format!("Permission {id}"),
                    description: String::new(),
                    external_id: external_id.into(),
                },
                None,
            ))
            .await;
        ok("CreateExternalPermission", r);
    }

    async fn grant(
        &self,
        tenant: &str,
        user: &str,
        permission: &str,
        expires_at: Option<prost_types::Timestamp>,
    ) -> String {
        let r = self
            .admin
            .clone()
            .grant_external_permission(boot(
                GrantExternalPermissionRequest {
                    tenant_id: tenant.into(),
                    user_id: user.into(),
                    permission_id: permission.into(),
                    expires_at,
                },
                None,
            ))
            .await;
        ok("GrantExternalPermission", r).written_at
    }

    async fn revoke_grant(&self, tenant: &str, user: &str, permission: &str) -> String {
        let r = self
            .admin
            .clone()
            .revoke_external_permission(boot(
                RevokeExternalPermissionRequest {
                    tenant_id: tenant.into(),
                    user_id: user.into(),
                    permission_id: permission.into(),
                },
                None,
            ))
            .await;
        ok("RevokeExternalPermission", r).written_at
    }

    // Queries, as the bootstrap client unless a key is given.

    async fn check(&self, q: CheckAccessRequest) -> Result<CheckAccessResponse, Status> {
        self.check_as(BOOTSTRAP_KEY, None, q).await
    }

    async fn check_as(
        &self,
        key: &str,
        user: Option<&str>,
        q: CheckAccessRequest,
    ) -> Result<CheckAccessResponse, Status> {
        self.perm
            .clone()
            .check_access(req(q, key, user))
            .await
            .map(Response::into_inner)
    }

    /// CheckAccess that must answer; panics with the status otherwise.
    async fn decide(&self, q: CheckAccessRequest) -> CheckAccessResponse {
        let what = format!("CheckAccess {q:?}");
        ok(&what, self.check(q).await.map(Response::new))
    }

    async fn batch(
        &self,
        key: &str,
        items: Vec<CheckAccessRequest>,
        consistency: Option<Consistency>,
    ) -> Result<CheckAccessBatchResponse, Status> {
        self.perm
            .clone()
            .check_access_batch(req(
                CheckAccessBatchRequest { items, consistency },
                key,
                None,
            ))
            .await
            .map(Response::into_inner)
    }

    async fn list(
        &self,
        key: &str,
        user: Option<&str>,
        r: ListExternalPermissionsRequest,
    ) -> Result<ListExternalPermissionsResponse, Status> {
        self.perm
            .clone()
            .list_external_permissions(req(r, key, user))
            .await
            .map(Response::into_inner)
    }

    async fn check_external(
        &self,
        key: &str,
        user: Option<&str>,
        r: CheckExternalPermissionRequest,
    ) -> Result<CheckExternalPermissionResponse, Status> {
        self.perm
            .clone()
            .check_external_permission(req(r, key, user))
            .await
            .map(Response::into_inner)
    }

    async fn scopes(&self, r: GetAppScopesRequest) -> Result<GetAppScopesResponse, Status> {
        self.perm
            .clone()
            .get_app_scopes(boot(r, None))
            .await
            .map(Response::into_inner)
    }
}

/// The world most tests start from, in tenant `acme` (whitelisting off): alice the general
/// administrator with FULL_CONTROL on `/`, bob a DELEGATE with READ on `/`, dave with no role
/// and WRITE on `/hr`; the STANDARD app `crm` (scopes `documents:read`, `documents:write`,
/// WRITE on a site collection) approved by alice with WRITE on `/hr`. Returns the last
/// write's `written_at`.
async fn acme(api: &Api) -> String {
    api.put_tenant("acme", false, None).await;
    api.put_user("acme", "alice", &[Role::GeneralAdmin], None)
        .await;
    api.put_user("acme", "bob", &[Role::Delegate], Some("alice"))
        .await;
    api.put_user("acme", "dave", &[], None).await;
    api.grant_right("acme", "alice", "/", Right::FullControl)
        .await;
    api.grant_right("acme", "bob", "/", Right::Read).await;
    api.grant_right("acme", "dave", "/hr", Right::Write).await;
    let revision = api.register("crm", AppKind::Standard, crm_manifest()).await;
    api.approve(
        "acme",
        "crm",
        revision,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await
}

/// A server on `db` with the `acme` world written through it.
async fn acme_server(db: &TestDb) -> (TestServer, Api) {
    acme_server_with(config(db)).await
}

/// A server with `config` and the `acme` world written through it.
async fn acme_server_with(config: consentry::config::ServeConfig) -> (TestServer, Api) {
    let server = TestServer::start_with(config).await;
    let api = Api::at(server.addr).await;
    acme(&api).await;
    (server, api)
}

/// The test configuration on `db`, with a staleness bound short enough to be waited out in a
/// test (and a second, so the freshness contract's bound still holds).
fn short_staleness(db: &TestDb) -> consentry::config::ServeConfig {
    let mut config = config(db);
    config.max_staleness = Duration::from_millis(500);
    config
}

/// A question in tenant `acme`.
fn ask(app: &str, user: &str) -> CheckAccessRequest {
    CheckAccessRequest {
        tenant_id: "acme".into(),
        app_id: app.into(),
        user_id: user.into(),
        ..Default::default()
    }
}

/// `user` asking through `crm` for `permission` at `resource`, explained.
fn may(user: &str, permission: &str, resource: &str) -> CheckAccessRequest {
    CheckAccessRequest {
        permission: permission.into(),
        resource: resource.into(),
        explain: true,
        ..ask("crm", user)
    }
}

fn fresh(token: &str) -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(Requirement::AtLeastAsFresh(token.to_owned())),
    })
}

fn fully() -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(Requirement::FullyConsistent(true)),
    })
}

fn cached() -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(Requirement::MinimizeLatency(true)),
    })
}

/// The revision in a token, for ordering (tokens are opaque to callers; tests may peek).
fn rev(token: &str) -> u64 {
    token
        .strip_prefix('r')
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("{token:?} is not a revision token"))
}

// ---------------------------------------------------------------------------------------------
// Decisions and traces.

/// The step tokens of DESIGN.md §3, in evaluation order.
const STEPS: [&str; 8] = [
    "TENANT",
    "APP",
    "WHITELIST",
    "CONSENT",
    "SCOPE",
    "USER",
    "ON_BEHALF_OF",
    "PERMISSION",
];

/// Asserts the decision's reason and, when it was explained, a trace of every step up to the
/// failing one (all of them when allowed), each passing but the last of a refusal.
#[track_caller]
fn decided(r: &CheckAccessResponse, reason: Reason, failing: Option<&str>) {
    assert_eq!(r.reason(), reason, "{r:#?}");
    assert_eq!(r.allowed, reason == Reason::Allowed, "{r:#?}");
    assert!(!r.message.is_empty(), "a decision explains itself: {r:#?}");
    rev(&r.checked_at);
    let n = failing.map_or(STEPS.len(), |f| {
        STEPS.iter().position(|s| *s == f).expect("a step token") + 1
    });
    let names: Vec<&str> = r.trace.iter().map(|s| s.step.as_str()).collect();
    assert_eq!(names, STEPS[..n], "trace of {reason:?}: {r:#?}");
    for (i, step) in r.trace.iter().enumerate() {
        let last_failing = failing.is_some() && i + 1 == n;
        assert_eq!(step.passed, !last_failing, "step {}: {r:#?}", step.step);
        assert!(!step.detail.is_empty(), "step {} has no detail", step.step);
    }
    if let Some(last) = r.trace.last().filter(|_| failing.is_some()) {
        assert_eq!(
            last.detail, r.message,
            "the failing step's finding is the message"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. One test per reason (DESIGN.md §3), on both backends.

async fn reason_allowed(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = CheckAccessRequest {
        scope: "documents:read".into(),
        ..may("dave", "EDIT_ITEMS", "/hr/team/docs")
    };
    let r = api.decide(q.clone()).await;
    decided(&r, Reason::Allowed, None);
    // Without explain, no trace; a level is a permission too; the whole-tenant question.
    let quiet = api
        .decide(CheckAccessRequest {
            explain: false,
            ..q.clone()
        })
        .await;
    assert!(quiet.allowed && quiet.trace.is_empty(), "{quiet:#?}");
    decided(
        &api.decide(may("dave", "WRITE", "/hr/team")).await,
        Reason::Allowed,
        None,
    );
    let at_all = api
        .decide(CheckAccessRequest {
            explain: true,
            ..ask("crm", "dave")
        })
        .await;
    decided(&at_all, Reason::Allowed, None);
    // `/a..b` is a fine segment, not a parent reference.
    let dots = api.decide(may("alice", "READ", "/hr/a..b")).await;
    decided(&dots, Reason::Allowed, None);
    // The same answer straight from the store.
    let store = api
        .decide(CheckAccessRequest {
            consistency: fully(),
            ..q
        })
        .await;
    decided(&store, Reason::Allowed, None);
    server.stop().await;
}

async fn reason_unknown_tenant(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = CheckAccessRequest {
        tenant_id: "globex".into(),
        ..may("dave", "EDIT_ITEMS", "/hr")
    };
    decided(
        &api.decide(q.clone()).await,
        Reason::UnknownTenant,
        Some("TENANT"),
    );
    let store = CheckAccessRequest {
        consistency: fully(),
        ..q
    };
    decided(
        &api.decide(store).await,
        Reason::UnknownTenant,
        Some("TENANT"),
    );
    server.stop().await;
}

async fn reason_unknown_app(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = CheckAccessRequest {
        app_id: "ghost".into(),
        ..may("dave", "EDIT_ITEMS", "/hr")
    };
    decided(&api.decide(q).await, Reason::UnknownApp, Some("APP"));
    // An app unregistered is unknown at once (its consent went with it).
    let crm = may("dave", "EDIT_ITEMS", "/hr");
    decided(&api.decide(crm.clone()).await, Reason::Allowed, None);
    let r = api
        .admin
        .clone()
        .unregister_app(boot(
            UnregisterAppRequest {
                app_id: "crm".into(),
            },
            None,
        ))
        .await;
    ok("UnregisterApp", r);
    decided(&api.decide(crm).await, Reason::UnknownApp, Some("APP"));
    server.stop().await;
}

async fn reason_app_not_whitelisted(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = may("dave", "EDIT_ITEMS", "/hr");
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    // Enabled with no entries: an allow-list that blocks every app.
    api.put_tenant("acme", true, Some("alice")).await;
    decided(
        &api.decide(q.clone()).await,
        Reason::AppNotWhitelisted,
        Some("WHITELIST"),
    );
    api.whitelist("acme", "crm", &[], ContentAccess::OwnContent)
        .await;
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    // An entry prepared while whitelisting is off changes nothing; switching it off lets all in.
    api.put_tenant("acme", false, Some("alice")).await;
    decided(&api.decide(q).await, Reason::Allowed, None);
    server.stop().await;
}

async fn reason_no_consent(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    api.register("fresh", AppKind::Standard, crm_manifest())
        .await;
    let q = CheckAccessRequest {
        app_id: "fresh".into(),
        ..may("dave", "EDIT_ITEMS", "/hr")
    };
    decided(&api.decide(q).await, Reason::NoConsent, Some("CONSENT"));
    // Consent is never copied between tenants.
    api.put_tenant("acme-stage", false, None).await;
    let stage = CheckAccessRequest {
        tenant_id: "acme-stage".into(),
        ..may("dave", "EDIT_ITEMS", "/hr")
    };
    decided(&api.decide(stage).await, Reason::NoConsent, Some("CONSENT"));
    server.stop().await;
}

async fn reason_consent_revoked(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = may("dave", "EDIT_ITEMS", "/hr");
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    api.revoke_consent("acme", "crm").await;
    let r = api.decide(q.clone()).await;
    decided(&r, Reason::ConsentRevoked, Some("CONSENT"));
    // Approving again is how an administrator restores it.
    api.approve(
        "acme",
        "crm",
        1,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;
    decided(&api.decide(q).await, Reason::Allowed, None);
    server.stop().await;
}

async fn reason_reapproval_required(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = may("dave", "EDIT_ITEMS", "/hr");
    let escalated = Manifest {
        webhooks: true,
        ..crm_manifest()
    };
    let revision = api.update_manifest("crm", escalated).await;
    assert_eq!(revision, 2);
    let r = api.decide(q.clone()).await;
    decided(&r, Reason::ReapprovalRequired, Some("CONSENT"));
    assert!(r.message.contains("WEBHOOKS_ADDED"), "{r:#?}");
    api.approve(
        "acme",
        "crm",
        revision,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;
    decided(&api.decide(q).await, Reason::Allowed, None);
    server.stop().await;
}

async fn reason_scope_not_granted(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = |scope: &str| CheckAccessRequest {
        scope: scope.into(),
        ..may("dave", "EDIT_ITEMS", "/hr")
    };
    decided(
        &api.decide(q("calendar:read")).await,
        Reason::ScopeNotGranted,
        Some("SCOPE"),
    );
    // Scopes match exactly and case-sensitively.
    decided(
        &api.decide(q("Documents:read")).await,
        Reason::ScopeNotGranted,
        Some("SCOPE"),
    );
    decided(
        &api.decide(q("documents:write")).await,
        Reason::Allowed,
        None,
    );
    // The whitelist entry's allowed scopes narrow the consented ones while whitelisting is on.
    api.put_tenant("acme", true, Some("alice")).await;
    api.whitelist(
        "acme",
        "crm",
        &["documents:read"],
        ContentAccess::OwnContent,
    )
    .await;
    decided(
        &api.decide(q("documents:write")).await,
        Reason::ScopeNotGranted,
        Some("SCOPE"),
    );
    decided(
        &api.decide(q("documents:read")).await,
        Reason::Allowed,
        None,
    );
    server.stop().await;
}

async fn reason_impersonation_not_allowed(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let obo = |user: &str, target: &str| CheckAccessRequest {
        on_behalf_of: target.into(),
        ..may(user, "EDIT_ITEMS", "/hr")
    };
    // Whitelisting off: every app has OWN_CONTENT, so impersonation fails closed.
    decided(
        &api.decide(obo("bob", "dave")).await,
        Reason::ImpersonationNotAllowed,
        Some("ON_BEHALF_OF"),
    );
    api.put_tenant("acme", true, Some("alice")).await;
    api.whitelist("acme", "crm", &[], ContentAccess::OnBehalfOfManagedUsers)
        .await;
    // The delegate acts for a managed user, whose rights then count (bob only reads).
    decided(&api.decide(obo("bob", "dave")).await, Reason::Allowed, None);
    decided(
        &api.decide(may("bob", "EDIT_ITEMS", "/hr")).await,
        Reason::UserPermissionInsufficient,
        Some("PERMISSION"),
    );
    // Not a delegate; a target holding a role the actor lacks; a target the tenant does not know.
    for (user, target) in [("dave", "bob"), ("bob", "alice"), ("bob", "stranger")] {
        decided(
            &api.decide(obo(user, target)).await,
            Reason::ImpersonationNotAllowed,
            Some("ON_BEHALF_OF"),
        );
    }
    server.stop().await;
}

async fn reason_user_required(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    decided(
        &api.decide(may("", "READ", "/hr")).await,
        Reason::UserRequired,
        Some("USER"),
    );
    // allow_app_only, once approved, lets the app act without a user, on its own rights.
    let rev = api
        .update_manifest(
            "crm",
            Manifest {
                allow_app_only: true,
                ..crm_manifest()
            },
        )
        .await;
    decided(
        &api.decide(may("", "READ", "/hr")).await,
        Reason::UserRequired,
        Some("USER"),
    );
    api.approve(
        "acme",
        "crm",
        rev,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;
    decided(
        &api.decide(may("", "READ", "/hr")).await,
        Reason::Allowed,
        None,
    );
    decided(
        &api.decide(may("", "READ", "/finance")).await,
        Reason::AppPermissionInsufficient,
        Some("PERMISSION"),
    );
    server.stop().await;
}

async fn reason_app_permission_insufficient(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    // The app holds WRITE on /hr only: nothing elsewhere, and not MANAGE even for alice.
    decided(
        &api.decide(may("alice", "EDIT_ITEMS", "/finance")).await,
        Reason::AppPermissionInsufficient,
        Some("PERMISSION"),
    );
    decided(
        &api.decide(may("alice", "MANAGE_LISTS", "/hr/team")).await,
        Reason::AppPermissionInsufficient,
        Some("PERMISSION"),
    );
    // The app is checked first, when neither holds it.
    decided(
        &api.decide(may("dave", "EDIT_ITEMS", "/")).await,
        Reason::AppPermissionInsufficient,
        Some("PERMISSION"),
    );
    // A downgrade in the manifest takes effect at once.
    api.update_manifest(
        "crm",
        manifest(
            &["documents:read", "documents:write"],
            &[(ScopeLevel::SiteCollection, Right::Read)],
        ),
    )
    .await;
    decided(
        &api.decide(may("dave", "EDIT_ITEMS", "/hr")).await,
        Reason::AppPermissionInsufficient,
        Some("PERMISSION"),
    );
    decided(
        &api.decide(may("dave", "VIEW_ITEMS", "/hr")).await,
        Reason::Allowed,
        None,
    );
    server.stop().await;
}

async fn reason_user_permission_insufficient(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    decided(
        &api.decide(may("bob", "EDIT_ITEMS", "/hr")).await,
        Reason::UserPermissionInsufficient,
        Some("PERMISSION"),
    );
    // A user the tenant does not know holds nothing.
    decided(
        &api.decide(may("nobody", "VIEW_ITEMS", "/hr")).await,
        Reason::UserPermissionInsufficient,
        Some("PERMISSION"),
    );
    // Rights are per path and below; granting again replaces the level.
    api.grant_right("acme", "bob", "/hr/team", Right::Write)
        .await;
    decided(
        &api.decide(may("bob", "EDIT_ITEMS", "/hr/team/docs")).await,
        Reason::Allowed,
        None,
    );
    decided(
        &api.decide(may("bob", "EDIT_ITEMS", "/hr/other")).await,
        Reason::UserPermissionInsufficient,
        Some("PERMISSION"),
    );
    api.revoke_right("acme", "bob", "/hr/team", Right::Write)
        .await;
    decided(
        &api.decide(may("bob", "EDIT_ITEMS", "/hr/team/docs")).await,
        Reason::UserPermissionInsufficient,
        Some("PERMISSION"),
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Batches.

/// Six questions with six different answers, in a fixed order.
fn six_questions() -> (Vec<CheckAccessRequest>, Vec<Reason>) {
    let items = vec![
        may("dave", "EDIT_ITEMS", "/hr/team/docs"),
        may("bob", "EDIT_ITEMS", "/hr"),
        CheckAccessRequest {
            tenant_id: "globex".into(),
            ..may("dave", "READ", "/")
        },
        CheckAccessRequest {
            app_id: "ghost".into(),
            ..may("dave", "READ", "/")
        },
        may("", "READ", "/hr"),
        CheckAccessRequest {
            scope: "calendar:read".into(),
            ..may("dave", "READ", "/hr")
        },
    ];
    let reasons = vec![
        Reason::Allowed,
        Reason::UserPermissionInsufficient,
        Reason::UnknownTenant,
        Reason::UnknownApp,
        Reason::UserRequired,
        Reason::ScopeNotGranted,
    ];
    (items, reasons)
}

async fn batches_answer_every_item_in_order_at_one_revision(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(server.addr).await;
    let written = acme(&api).await;
    let (items, reasons) = six_questions();
    for consistency in [None, fresh(&written), fully(), cached()] {
        let r = api
            .batch(BOOTSTRAP_KEY, items.clone(), consistency.clone())
            .await
            .unwrap_or_else(|s| panic!("batch with {consistency:?}: {s:?}"));
        assert_eq!(r.results.len(), items.len());
        assert!(rev(&r.checked_at) >= rev(&written));
        for (i, (result, reason)) in r.results.iter().zip(&reasons).enumerate() {
            assert_eq!(result.reason(), *reason, "item {i}: {result:#?}");
            assert_eq!(
                result.checked_at, r.checked_at,
                "every item at the batch's revision"
            );
            // Each answer is the single check's answer.
            let single = api.decide(items[i].clone()).await;
            assert_eq!(single.reason(), *reason);
            assert_eq!(single.trace, result.trace, "item {i}");
        }
    }
    // An empty batch answers empty.
    let empty = api.batch(BOOTSTRAP_KEY, vec![], None).await.unwrap();
    assert!(empty.results.is_empty());
    rev(&empty.checked_at);
    let empty = api.batch(BOOTSTRAP_KEY, vec![], fully()).await.unwrap();
    assert!(empty.results.is_empty());
    // Exactly the limit is fine.
    let full = vec![may("dave", "EDIT_ITEMS", "/hr"); 100];
    let r = api.batch(BOOTSTRAP_KEY, full, None).await.unwrap();
    assert_eq!(r.results.len(), 100);
    assert!(r.results.iter().all(|d| d.allowed));
    server.stop().await;
}

async fn batches_fail_as_a_whole(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let (items, _) = six_questions();
    // More than 100 items.
    let many = vec![may("dave", "EDIT_ITEMS", "/hr"); 101];
    let s = assert_code(
        "101 items",
        api.batch(BOOTSTRAP_KEY, many, None).await,
        Code::InvalidArgument,
    );
    assert!(s.message().contains("items"), "{}", s.message());
    // An item with a consistency of its own.
    let mut own = items.clone();
    own[2].consistency = fully();
    let s = assert_code(
        "item consistency",
        api.batch(BOOTSTRAP_KEY, own, None).await,
        Code::InvalidArgument,
    );
    assert!(s.message().contains("items[2]"), "{}", s.message());
    // A malformed item, anywhere in the batch.
    let mut bad = items.clone();
    bad[4].resource = "hr/team".into();
    let s = assert_code(
        "malformed item",
        api.batch(BOOTSTRAP_KEY, bad, None).await,
        Code::InvalidArgument,
    );
    assert!(s.message().contains("items[4]"), "{}", s.message());
    assert!(s.message().contains("resource"), "{}", s.message());
    let mut bad = items.clone();
    bad[1].permission = "edit_items".into();
    assert_code(
        "malformed permission",
        api.batch(BOOTSTRAP_KEY, bad, None).await,
        Code::InvalidArgument,
    );
    // An item outside a tenant-bound caller's tenants: the whole call is refused.
    let key = api
        .client("acme-only", &["acme"], &[Capability::Query])
        .await;
    let acme_only: Vec<_> = items
        .iter()
        .filter(|q| q.tenant_id == "acme")
        .cloned()
        .collect();
    let r = api.batch(&key, acme_only.clone(), None).await.unwrap();
    assert_eq!(r.results.len(), acme_only.len());
    assert_code(
        "out-of-bounds item",
        api.batch(&key, items.clone(), None).await,
        Code::PermissionDenied,
    );
    // A malformed batch consistency token; a token from the future.
    assert_code(
        "malformed batch token",
        api.batch(BOOTSTRAP_KEY, items.clone(), fresh("nope")).await,
        Code::InvalidArgument,
    );
    assert_code(
        "future batch token",
        api.batch(BOOTSTRAP_KEY, items, fresh("r999999")).await,
        Code::FailedPrecondition,
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Validation and callers.

async fn malformed_input_is_invalid_argument_and_future_tokens_fail_precondition(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let base = may("dave", "EDIT_ITEMS", "/hr");
    let case = |field: &'static str, edit: &dyn Fn(&mut CheckAccessRequest)| {
        let mut q = base.clone();
        edit(&mut q);
        (field, q)
    };
    let cases = [
        case("tenant_id", &|q| q.tenant_id = String::new()),
        case("tenant_id", &|q| q.tenant_id = "ac me".into()),
        case("tenant_id", &|q| q.tenant_id = "t".repeat(129)),
        case("app_id", &|q| q.app_id = String::new()),
        case("app_id", &|q| q.app_id = "crm/v2".into()),
        case("user_id", &|q| q.user_id = "dave smith".into()),
        case("on_behalf_of", &|q| q.on_behalf_of = "bob#1".into()),
        case("scope", &|q| q.scope = "documents read".into()),
        case("permission", &|q| q.permission = "edit_items".into()),
        case("permission", &|q| q.permission = "RIGHT_READ".into()),
        case("permission", &|q| q.permission = "EDIT".into()),
        case("resource", &|q| q.resource = "hr".into()),
        case("resource", &|q| q.resource = "/hr/".into()),
        case("resource", &|q| q.resource = "/hr//team".into()),
        case("resource", &|q| q.resource = "/hr/./team".into()),
        case("resource", &|q| q.resource = "/hr/..".into()),
        case("resource", &|q| q.resource = "/hr\nteam".into()),
        case("resource", &|q| q.resource = "/s".repeat(33)),
        case("resource", &|q| {
            q.resource = format!("/{}", "a".repeat(1024))
        }),
        case("at_least_as_fresh", &|q| q.consistency = fresh("42")),
        case("at_least_as_fresh", &|q| q.consistency = fresh("")),
        case("at_least_as_fresh", &|q| q.consistency = fresh("r-1")),
        case("at_least_as_fresh", &|q| q.consistency = fresh("R1")),
    ];
    for (field, q) in cases {
        let what = format!("{field} in {q:?}");
        let s = assert_code(&what, api.check(q).await, Code::InvalidArgument);
        assert!(
            s.message().contains(field),
            "{what}: the message names the field: {}",
            s.message()
        );
    }
    // The longest and deepest paths are fine.
    let ok_paths = [format!("/{}", "a".repeat(1023)), "/s".repeat(32)];
    for resource in ok_paths {
        let r = api
            .decide(CheckAccessRequest {
                resource,
                ..base.clone()
            })
            .await;
        assert_eq!(r.reason(), Reason::AppPermissionInsufficient);
    }
    // A token newer than anything committed, on every query that takes one.
    let future = fresh("r999999");
    assert_code(
        "future CheckAccess",
        api.check(CheckAccessRequest {
            consistency: future.clone(),
            ..base.clone()
        })
        .await,
        Code::FailedPrecondition,
    );
    assert_code(
        "future GetAppScopes",
        api.scopes(GetAppScopesRequest {
            tenant_id: "acme".into(),
            app_id: "crm".into(),
            consistency: future.clone(),
        })
        .await,
        Code::FailedPrecondition,
    );
    assert_code(
        "future ListExternalPermissions",
        api.list(
            BOOTSTRAP_KEY,
            None,
            ListExternalPermissionsRequest {
                tenant_id: "acme".into(),
                user_id: "dave".into(),
                consistency: future.clone(),
                ..Default::default()
            },
        )
        .await,
        Code::FailedPrecondition,
    );
    assert_code(
        "future CheckExternalPermission",
        api.check_external(
            BOOTSTRAP_KEY,
            None,
            CheckExternalPermissionRequest {
                tenant_id: "acme".into(),
                user_id: "dave".into(),
                permission_id: "p".into(),
                consistency: future,
                ..Default::default()
            },
        )
        .await,
        Code::FailedPrecondition,
    );
    // Malformed tokens on the other queries too.
    assert_code(
        "malformed GetAppScopes token",
        api.scopes(GetAppScopesRequest {
            tenant_id: "acme".into(),
            app_id: "crm".into(),
            consistency: fresh("x1"),
        })
        .await,
        Code::InvalidArgument,
    );
    assert_code(
        "malformed ListExternalPermissions token",
        api.list(
            BOOTSTRAP_KEY,
            None,
            ListExternalPermissionsRequest {
                tenant_id: "acme".into(),
                user_id: "dave".into(),
                consistency: fresh("x1"),
                ..Default::default()
            },
        )
        .await,
        Code::InvalidArgument,
    );
    // The current revision is fine, and so is the answer's own checked_at.
    let r = api.decide(base.clone()).await;
    let again = api
        .decide(CheckAccessRequest {
            consistency: fresh(&r.checked_at),
            ..base
        })
        .await;
    assert!(again.allowed);
    assert!(rev(&again.checked_at) >= rev(&r.checked_at));
    server.stop().await;
}

async fn callers_need_the_query_capability_and_their_tenants(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    api.put_tenant("globex", false, None).await;
    let bound = api
        .client("acme-only", &["acme"], &[Capability::Query])
        .await;
    let admin_only = api.client("ops", &["*"], &[Capability::Admin]).await;
    let q = may("dave", "EDIT_ITEMS", "/hr");
    assert!(api.check_as(&bound, None, q.clone()).await.unwrap().allowed);
    // Another tenant, existing or not, is refused before anything is looked up.
    for tenant in ["globex", "ghost"] {
        let other = CheckAccessRequest {
            tenant_id: tenant.into(),
            ..q.clone()
        };
        assert_code(
            "another tenant",
            api.check_as(&bound, None, other.clone()).await,
            Code::PermissionDenied,
        );
        assert_code(
            "another tenant, fully consistent",
            api.check_as(
                &bound,
                None,
                CheckAccessRequest {
                    consistency: fully(),
                    ..other
                },
            )
            .await,
            Code::PermissionDenied,
        );
        let r = api
            .perm
            .clone()
            .get_app_scopes(req(
                GetAppScopesRequest {
                    tenant_id: tenant.into(),
                    app_id: "crm".into(),
                    consistency: None,
                },
                &bound,
                None,
            ))
            .await;
        assert_code("GetAppScopes in another tenant", r, Code::PermissionDenied);
        assert_code(
            "ListExternalPermissions in another tenant",
            api.list(
                &bound,
                None,
                ListExternalPermissionsRequest {
                    tenant_id: tenant.into(),
                    user_id: "dave".into(),
                    ..Default::default()
                },
            )
            .await,
            Code::PermissionDenied,
        );
        assert_code(
            "CheckExternalPermission in another tenant",
            api.check_external(
                &bound,
                None,
                CheckExternalPermissionRequest {
                    tenant_id: tenant.into(),
                    user_id: "dave".into(),
                    permission_id: "p".into(),
                    ..Default::default()
                },
            )
            .await,
            Code::PermissionDenied,
        );
    }
    // No `query`: refused on every PermissionService RPC.
    assert_code(
        "admin-only CheckAccess",
        api.check_as(&admin_only, None, q.clone()).await,
        Code::PermissionDenied,
    );
    assert_code(
        "admin-only batch",
        api.batch(&admin_only, vec![q.clone()], None).await,
        Code::PermissionDenied,
    );
    assert_code(
        "admin-only list",
        api.list(
            &admin_only,
            None,
            ListExternalPermissionsRequest {
                tenant_id: "acme".into(),
                user_id: "dave".into(),
                ..Default::default()
            },
        )
        .await,
        Code::PermissionDenied,
    );
    // No, unknown and revoked keys.
    let r = api.perm.clone().check_access(q.clone()).await;
    assert_code("no key", r, Code::Unauthenticated);
    assert_code(
        "unknown key",
        api.check_as("csk_not-a-key-anybody-was-given", None, q.clone())
            .await,
        Code::Unauthenticated,
    );
    api.revoke_client("acme-only").await;
    assert_code(
        "revoked key",
        api.check_as(&bound, None, q.clone()).await,
        Code::Unauthenticated,
    );
    // x-consentry-user from a client without assert_user: refused on every RPC.
    let plain = api.client("plain", &["acme"], &[Capability::Query]).await;
    assert_code(
        "x-consentry-user without assert_user",
        api.check_as(&plain, Some("dave"), q.clone()).await,
        Code::PermissionDenied,
    );
    let batch = api
        .perm
        .clone()
        .check_access_batch(req(
            CheckAccessBatchRequest {
                items: vec![q.clone()],
                consistency: None,
            },
            &plain,
            Some("dave"),
        ))
        .await;
    assert_code("batch with x-consentry-user", batch, Code::PermissionDenied);
    let scopes = api
        .perm
        .clone()
        .get_app_scopes(req(scopes_of("acme", "crm"), &plain, Some("dave")))
        .await;
    assert_code(
        "GetAppScopes with x-consentry-user",
        scopes,
        Code::PermissionDenied,
    );
    // From a client with assert_user, the header is ignored by CheckAccess.
    let idp = api
        .client(
            "idp",
            &["acme"],
            &[Capability::Query, Capability::AssertUser],
        )
        .await;
    let as_bob = api.check_as(&idp, Some("bob"), q.clone()).await.unwrap();
    decided(&as_bob, Reason::Allowed, None);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 2. External permissions: visibility, paging, expiry.

/// Groups `billing` (read by mona; visible to client `viewer` and app `crm`) and `hr` (visible
/// to client `other`), both created by carol; dave holds all three permissions; the clients
/// `viewer`, `other` (query), `idp` (query + assert_user) and `plain` (query). Returns their
/// keys in that order.
async fn external_world(api: &Api) -> [String; 4] {
    api.put_tenant("acme", false, None).await;
    api.put_user("acme", "alice", &[Role::GeneralAdmin], None)
        .await;
    api.put_user("acme", "carol", &[Role::PermissionManager], Some("alice"))
        .await;
    for user in ["mona", "dave", "erin"] {
        api.put_user("acme", user, &[], None).await;
    }
    api.register("crm", AppKind::Standard, crm_manifest()).await;
    api.group(
        "acme",
        "billing",
        &["user:mona"],
        &["client:viewer", "app:crm"],
    )
    .await;
    api.group("acme", "hr", &[], &["client:other"]).await;
    api.permission("acme", "billing", "billing.view", "INV-VIEW")
        .await;
    api.permission("acme", "billing", "billing.pay", "INV-PAY")
        .await;
    api.permission("acme", "hr", "hr.leave", "LEAVE").await;
    for p in ["billing.view", "billing.pay", "hr.leave"] {
        api.grant("acme", "dave", p, None).await;
    }
    let query = [Capability::Query];
    [
        api.client("viewer", &["acme"], &query).await,
        api.client("other", &["acme"], &query).await,
        api.client(
            "idp",
            &["acme"],
            &[Capability::Query, Capability::AssertUser],
        )
        .await,
        api.client("plain", &["acme"], &query).await,
    ]
}

fn listing(user: &str, app: &str, group: &str) -> ListExternalPermissionsRequest {
    ListExternalPermissionsRequest {
        tenant_id: "acme".into(),
        user_id: user.into(),
        group_id: group.into(),
        app_id: app.into(),
        ..Default::default()
    }
}

fn by_id(user: &str, permission: &str) -> CheckExternalPermissionRequest {
    CheckExternalPermissionRequest {
        tenant_id: "acme".into(),
        user_id: user.into(),
        permission_id: permission.into(),
        ..Default::default()
    }
}

async fn external_permissions_are_shown_to_the_viewers_that_may_see_them(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(server.addr).await;
    let [viewer, other, idp, plain] = external_world(&api).await;
    let billing = ["billing.pay", "billing.view"];
    let all = ["billing.pay", "billing.view", "hr.leave"];
    let none: [&str; 0] = [];
    // The same answers from the cache (default) and from the store.
    for consistency in [None, fully()] {
        let ids = async |key: &str, user: Option<&str>, r: ListExternalPermissionsRequest| {
            let r = ListExternalPermissionsRequest {
                consistency: consistency.clone(),
                ..r
            };
            let what = format!("list {r:?} as {user:?} with {consistency:?}");
            let page = ok(&what, api.list(key, user, r).await.map(Response::new));
            assert!(page.next_page_token.is_empty());
            rev(&page.checked_at);
            page.permissions
                .iter()
                .map(|g| g.permission_id.clone())
                .collect::<Vec<_>>()
        };
        // Client viewers: on a group's visible_to or not.
        assert_eq!(ids(&viewer, None, listing("dave", "", "")).await, billing);
        assert_eq!(
            ids(&other, None, listing("dave", "", "")).await,
            ["hr.leave"]
        );
        assert_eq!(ids(&plain, None, listing("dave", "", "")).await, none);
        // User viewers: managers with READ (mona) or READ_WRITE (carol, the creator); others none.
        assert_eq!(
            ids(&idp, Some("mona"), listing("dave", "", "")).await,
            billing
        );
        assert_eq!(ids(&idp, Some("carol"), listing("dave", "", "")).await, all);
        assert_eq!(ids(&idp, Some("dave"), listing("dave", "", "")).await, none);
        // The acting user decides even when an app_id is named too.
        assert_eq!(
            ids(&idp, Some("mona"), listing("dave", "crm", "")).await,
            billing
        );
        // App viewers (need assert_user): groups whose visible_to lists app:<id>.
        assert_eq!(ids(&idp, None, listing("dave", "crm", "")).await, billing);
        assert_eq!(ids(&idp, None, listing("dave", "portal", "")).await, none);
        // The idp itself, as a client, is on no visible_to list.
        assert_eq!(ids(&idp, None, listing("dave", "", "")).await, none);
        // Group filters: a visible group, an invisible one, an unknown one (empty, not an error).
        assert_eq!(
            ids(&viewer, None, listing("dave", "", "billing")).await,
            billing
        );
        assert_eq!(ids(&viewer, None, listing("dave", "", "hr")).await, none);
        assert_eq!(ids(&viewer, None, listing("dave", "", "nope")).await, none);
        // A user with no grants, and one the tenant does not know.
        assert_eq!(ids(&viewer, None, listing("erin", "", "")).await, none);
        assert_eq!(ids(&viewer, None, listing("zed", "", "")).await, none);

        // The grants carry what an app needs.
        let page = api
            .list(
                &viewer,
                None,
                ListExternalPermissionsRequest {
                    consistency: consistency.clone(),
                    ..listing("dave", "", "")
                },
            )
            .await
            .unwrap();
        let pay = &page.permissions[0];
        assert_eq!(
            (
                pay.group_id.as_str(),
                pay.group_name.as_str(),
                pay.name.as_str(),
                pay.external_id.as_str(),
                pay.granted_by.as_str()
            ),
            (
                "billing",
                "Group billing",
                "Permission billing.pay",
                "INV-PAY",
                "client:bootstrap"
            )
        );
        assert!(pay.granted_at.is_some() && pay.expires_at.is_none());

        // Without assert_user, neither a user header nor an app_id may be named.
        assert_code(
            "user header without assert_user",
            api.list(&plain, Some("mona"), listing("dave", "", ""))
                .await,
            Code::PermissionDenied,
        );
        assert_code(
            "app_id without assert_user",
            api.list(&plain, None, listing("dave", "crm", "")).await,
            Code::PermissionDenied,
        );
        assert_code(
            "malformed app_id",
            api.list(&idp, None, listing("dave", "bad app", "")).await,
            Code::InvalidArgument,
        );
        // An unknown tenant is NOT_FOUND (the bootstrap client may ask about any tenant).
        assert_code(
            "unknown tenant",
            api.list(
                BOOTSTRAP_KEY,
                None,
                ListExternalPermissionsRequest {
                    tenant_id: "ghost".into(),
                    consistency: consistency.clone(),
                    ..listing("dave", "", "")
                },
            )
            .await,
            Code::NotFound,
        );

        // CheckExternalPermission, by id or by group and external id, under the same rules.
        let check = async |key: &str, user: Option<&str>, r: CheckExternalPermissionRequest| {
            api.check_external(
                key,
                user,
                CheckExternalPermissionRequest {
                    consistency: consistency.clone(),
                    ..r
                },
            )
            .await
        };
        let r = check(&viewer, None, by_id("dave", "billing.view"))
            .await
            .unwrap();
        assert!(r.granted && r.expires_at.is_none());
        rev(&r.checked_at);
        let by_external = CheckExternalPermissionRequest {
            tenant_id: "acme".into(),
            user_id: "dave".into(),
            group_id: "billing".into(),
            external_id: "INV-PAY".into(),
            ..Default::default()
        };
        assert!(
            check(&viewer, None, by_external.clone())
                .await
                .unwrap()
                .granted
        );
        assert!(
            !check(&viewer, None, by_id("erin", "billing.view"))
                .await
                .unwrap()
                .granted
        );
        assert_code(
            "invisible permission",
            check(&viewer, None, by_id("dave", "hr.leave")).await,
            Code::NotFound,
        );
        // An app viewer (needs assert_user) sees what visible_to lists it for.
        let as_app =
            |app: &str, r: CheckExternalPermissionRequest| CheckExternalPermissionRequest {
                app_id: app.into(),
                ..r
            };
        assert!(
            check(&idp, None, as_app("crm", by_id("dave", "billing.view")))
                .await
                .unwrap()
                .granted
        );
        assert_code(
            "permission invisible to the app",
            check(&idp, None, as_app("crm", by_id("dave", "hr.leave"))).await,
            Code::NotFound,
        );
        assert_code(
            "app_id without assert_user",
            check(&plain, None, as_app("crm", by_id("dave", "billing.view"))).await,
            Code::PermissionDenied,
        );

        assert_code(
            "unknown permission",
            check(&viewer, None, by_id("dave", "nope")).await,
            Code::NotFound,
        );
        assert!(
            check(&other, None, by_id("dave", "hr.leave"))
                .await
                .unwrap()
                .granted
        );
        assert!(
            check(&idp, Some("mona"), by_id("dave", "billing.view"))
                .await
                .unwrap()
                .granted
        );
        assert!(
            check(&idp, Some("carol"), by_id("dave", "hr.leave"))
                .await
                .unwrap()
                .granted
        );
        assert_code(
            "a non-manager user viewer",
            check(&idp, Some("dave"), by_id("dave", "billing.view")).await,
            Code::NotFound,
        );
        assert_code(
            "user header without assert_user",
            check(&plain, Some("mona"), by_id("dave", "billing.view")).await,
            Code::PermissionDenied,
        );
        assert_code(
            "both ways of naming the permission",
            check(
                &viewer,
                None,
                CheckExternalPermissionRequest {
                    permission_id: "billing.view".into(),
                    ..by_external
                },
            )
            .await,
            Code::InvalidArgument,
        );
        assert_code(
            "unknown tenant",
            check(
                BOOTSTRAP_KEY,
                None,
                CheckExternalPermissionRequest {
                    tenant_id: "ghost".into(),
                    ..by_id("dave", "billing.view")
                },
            )
            .await,
            Code::NotFound,
        );
    }
    server.stop().await;
}

async fn external_permission_pages_are_complete_and_stable(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(server.addr).await;
    api.put_tenant("acme", false, None).await;
    api.put_user("acme", "alice", &[Role::GeneralAdmin], None)
        .await;
    api.put_user("acme", "carol", &[Role::PermissionManager], Some("alice"))
        .await;
    api.put_user("acme", "dave", &[], None).await;
    api.put_user("acme", "erin", &[], None).await;
    // Two groups, so pages cross a group boundary: 12 in `a-group`, 13 in `b-group`.
    api.group("acme", "a-group", &[], &["client:bootstrap"])
        .await;
    api.group("acme", "b-group", &[], &["client:bootstrap"])
        .await;
    let mut expected = Vec::new();
    for i in 0..25 {
        let group = if i < 12 { "a-group" } else { "b-group" };
        let id = format!("p{i:02}");
        api.permission("acme", group, &id, &format!("X{i}")).await;
        api.grant("acme", "dave", &id, None).await;
        expected.push(id);
    }
    let page = async |token: &str, size: i32, consistency: Option<Consistency>| {
        api.list(
            BOOTSTRAP_KEY,
            None,
            ListExternalPermissionsRequest {
                page_size: size,
                page_token: token.to_owned(),
                consistency,
                ..listing("dave", "", "")
            },
        )
        .await
        .unwrap_or_else(|s| panic!("page after {token:?}: {s:?}"))
    };
    // The cache path, then the store path.
    for consistency in [None, fully()] {
        let mut seen = Vec::new();
        let mut sizes = Vec::new();
        let mut token = String::new();
        loop {
            let p = page(&token, 10, consistency.clone()).await;
            sizes.push(p.permissions.len());
            seen.extend(p.permissions.iter().map(|g| g.permission_id.clone()));
            if p.next_page_token.is_empty() {
                break;
            }
            token = p.next_page_token;
            assert!(sizes.len() < 10, "paging does not end");
        }
        assert_eq!(sizes, [10, 10, 5], "{seen:?}");
        let distinct: BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), seen.len(), "no duplicates: {seen:?}");
        assert_eq!(seen, expected, "complete and in (group, permission) order");

        // The first page's token is only valid with the same query.
        let first = page("", 10, consistency.clone()).await;
        let reuse = |r: ListExternalPermissionsRequest| ListExternalPermissionsRequest {
            page_size: 10,
            page_token: first.next_page_token.clone(),
            consistency: consistency.clone(),
            ..r
        };
        for (what, r) in [
            ("another user", listing("erin", "", "")),
            ("a group filter", listing("dave", "", "b-group")),
            ("an app viewer", listing("dave", "crm", "")),
        ] {
            let s = assert_code(
                what,
                api.list(BOOTSTRAP_KEY, None, reuse(r)).await,
                Code::InvalidArgument,
            );
            assert!(s.message().contains("page_token"), "{}", s.message());
        }
        assert_code(
            "a garbage token",
            api.list(
                BOOTSTRAP_KEY,
                None,
                ListExternalPermissionsRequest {
                    page_token: "not-a-token".into(),
                    consistency: consistency.clone(),
                    ..listing("dave", "", "")
                },
            )
            .await,
            Code::InvalidArgument,
        );
        // Another page size is still the same query.
        let rest = page(&first.next_page_token, 100, consistency.clone()).await;
        assert_eq!(rest.permissions.len(), 15);
        assert_eq!(rest.permissions[0].permission_id, "p10");
        // Default page size (50) and the 500 clamp hold everything here.
        for size in [0, 100_000] {
            let all = page("", size, consistency.clone()).await;
            assert_eq!(all.permissions.len(), 25);
            assert!(all.next_page_token.is_empty());
        }
    }
    // Stable under writes: a grant sorting before the cursor, added between pages, neither
    // shifts nor repeats what follows; one sorting after it shows up in its place.
    let first = page("", 10, None).await;
    api.permission("acme", "a-group", "p00a", "EARLY").await;
    api.grant("acme", "dave", "p00a", None).await;
    api.permission("acme", "b-group", "p24a", "LATE").await;
    api.grant("acme", "dave", "p24a", None).await;
    let mut seen: Vec<String> = first
        .permissions
        .iter()
        .map(|g| g.permission_id.clone())
        .collect();
    let mut token = first.next_page_token;
    while !token.is_empty() {
        let p = page(&token, 10, None).await;
        seen.extend(p.permissions.iter().map(|g| g.permission_id.clone()));
        token = p.next_page_token;
    }
    let mut want = expected.clone();
    want.push("p24a".into());
    assert_eq!(seen, want);
    server.stop().await;
}

async fn expired_grants_are_hidden_cached_or_not(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(server.addr).await;
    let [viewer, ..] = external_world(&api).await;
    // billing.view expired an hour ago (accepted: the grant is simply expired); billing.pay
    // expires in three seconds.
    api.grant(
        "acme",
        "dave",
        "billing.view",
        Some(now_ts(Duration::from_secs(3600), true)),
    )
    .await;
    let soon = now_ts(Duration::from_secs(3), false);
    api.grant("acme", "dave", "billing.pay", Some(soon)).await;
    let listed = async |consistency: Option<Consistency>| {
        let page = api
            .list(
                &viewer,
                None,
                ListExternalPermissionsRequest {
                    consistency,
                    ..listing("dave", "", "")
                },
            )
            .await
            .unwrap();
        page.permissions
    };
    let granted = async |permission: &str, consistency: Option<Consistency>| {
        api.check_external(
            &viewer,
            None,
            CheckExternalPermissionRequest {
                consistency,
                ..by_id("dave", permission)
            },
        )
        .await
        .unwrap()
    };
    for consistency in [None, fully()] {
        let page = listed(consistency.clone()).await;
        let ids: Vec<_> = page.iter().map(|g| g.permission_id.as_str()).collect();
        assert_eq!(ids, ["billing.pay"], "the expired grant is hidden");
        assert_eq!(page[0].expires_at, Some(soon));
        assert!(!granted("billing.view", consistency.clone()).await.granted);
        let pay = granted("billing.pay", consistency).await;
        assert!(pay.granted);
        assert_eq!(pay.expires_at, Some(soon));
    }
    // With no write in between, the wall clock alone hides it: from the cache and the store.
    let took = eventually(Duration::from_secs(15), || async {
        listed(None).await.is_empty()
            && listed(fully()).await.is_empty()
            && !granted("billing.pay", None).await.granted
            && !granted("billing.pay", fully()).await.granted
    })
    .await;
    eprintln!("the expiring grant disappeared after {took:?}");
    // Once hidden it stays hidden; an expired grant reports no expiry.
    let r = granted("billing.pay", None).await;
    assert!(r.expires_at.is_none(), "{r:?}");
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 3. GetAppScopes.

fn scopes_of(tenant: &str, app: &str) -> GetAppScopesRequest {
    GetAppScopesRequest {
        tenant_id: tenant.into(),
        app_id: app.into(),
        consistency: None,
    }
}

fn requests(list: &[(ScopeLevel, Right)]) -> Vec<PermissionRequest> {
    manifest(&[], list).permission_requests
}

async fn app_scopes_report_pending_additions_until_approved(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let report = async |consistency: Option<Consistency>| {
        api.scopes(GetAppScopesRequest {
            consistency,
            ..scopes_of("acme", "crm")
        })
        .await
        .unwrap()
    };
    let r = report(None).await;
    assert_eq!(r.effective_scopes, ["documents:read", "documents:write"]);
    assert!(r.pending_scopes.is_empty() && r.pending_permission_requests.is_empty());
    assert!(!r.reapproval_required && r.reapproval_reasons.is_empty());
    let consent = r.consent.clone().unwrap();
    assert_eq!(consent.status(), ConsentStatus::Approved);
    assert_eq!(consent.approved_by, "user:alice");
    assert!(consent.approved_at.is_some());
    assert_eq!(
        (
            consent.approved_manifest_revision,
            consent.current_manifest_revision
        ),
        (1, 1)
    );
    assert_eq!(
        r.app_grants,
        [resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")]
    );
    assert_eq!(r.policy(), Policy::UserAndApp);
    assert_eq!(r.run_as(), RunAs::UserContext);
    assert_eq!(r.content_access(), ContentAccess::OwnContent);
    assert!(!r.whitelisting_enabled && !r.whitelisted);

    // Additions: a scope, a new level, a higher right, app-only and the looser policy.
    let wider = Manifest {
        allow_app_only: true,
        policy: Policy::UserOnly as i32,
        ..manifest(
            &["documents:read", "documents:write", "calendar:read"],
            &[
                (ScopeLevel::SiteCollection, Right::Manage),
                (ScopeLevel::Web, Right::Read),
            ],
        )
    };
    let revision = api.update_manifest("crm", wider).await;
    for consistency in [None, fully()] {
        let r = report(consistency).await;
        assert_eq!(r.pending_scopes, ["calendar:read"]);
        let mut pending = r.pending_permission_requests.clone();
        pending.sort_by_key(|p| p.scope_level);
        assert_eq!(
            pending,
            requests(&[
                (ScopeLevel::SiteCollection, Right::Manage),
                (ScopeLevel::Web, Right::Read)
            ])
        );
        assert!(r.pending_allow_app_only);
        assert_eq!(r.pending_policy(), Policy::UserOnly);
        // Pending is not effective.
        assert_eq!(r.effective_scopes, ["documents:read", "documents:write"]);
        assert_eq!(
            r.app_grants,
            [resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")]
        );
        assert!(!r.allow_app_only);
        assert_eq!(r.policy(), Policy::UserAndApp);
        assert!(!r.reapproval_required);
        let consent = r.consent.unwrap();
        assert_eq!(consent.status(), ConsentStatus::Approved);
        assert_eq!(
            (
                consent.approved_manifest_revision,
                consent.current_manifest_revision
            ),
            (1, revision)
        );
    }
    decided(
        &api.decide(CheckAccessRequest {
            scope: "calendar:read".into(),
            ..may("dave", "READ", "/hr")
        })
        .await,
        Reason::ScopeNotGranted,
        Some("SCOPE"),
    );
    decided(
        &api.decide(may("dave", "READ", "/hr/team")).await,
        Reason::Allowed,
        None,
    );

    // Re-approval makes them effective and clears what was pending.
    api.approve(
        "acme",
        "crm",
        revision,
        vec![
            resolved(ScopeLevel::SiteCollection, Right::Manage, "/hr"),
            resolved(ScopeLevel::Web, Right::Read, "/finance/team"),
        ],
    )
    .await;
    let r = report(None).await;
    assert!(r.pending_scopes.is_empty() && r.pending_permission_requests.is_empty());
    assert!(!r.pending_allow_app_only);
    assert_eq!(r.pending_policy(), Policy::Unspecified);
    assert_eq!(
        r.effective_scopes,
        ["calendar:read", "documents:read", "documents:write"]
    );
    assert!(r.allow_app_only);
    assert_eq!(r.policy(), Policy::UserOnly);
    assert_eq!(r.app_grants.len(), 2);
    assert_eq!(r.consent.unwrap().approved_manifest_revision, revision);

    // Whitelisting: an entry prepared while it is off is reported but not in force.
    api.whitelist(
        "acme",
        "crm",
        &["documents:read"],
        ContentAccess::OnBehalfOfManagedUsers,
    )
    .await;
    let r = report(None).await;
    assert!(r.whitelisted && !r.whitelisting_enabled);
    assert_eq!(r.content_access(), ContentAccess::OwnContent);
    assert_eq!(r.effective_scopes.len(), 3);
    api.put_tenant("acme", true, Some("alice")).await;
    for consistency in [None, fully()] {
        let r = report(consistency).await;
        assert!(r.whitelisted && r.whitelisting_enabled);
        assert_eq!(r.content_access(), ContentAccess::OnBehalfOfManagedUsers);
        assert_eq!(
            r.effective_scopes,
            ["documents:read"],
            "narrowed by the entry"
        );
    }
    // Enabled, and no entry: the app gets nothing.
    let r = api
        .admin
        .clone()
        .delete_whitelist_entry(boot(
            DeleteWhitelistEntryRequest {
                tenant_id: "acme".into(),
                app_id: "crm".into(),
            },
            Some("alice"),
        ))
        .await;
    ok("DeleteWhitelistEntry", r);
    let r = report(None).await;
    assert!(!r.whitelisted && r.whitelisting_enabled);
    assert!(
        r.effective_scopes.is_empty() && r.app_grants.is_empty(),
        "{r:#?}"
    );
    assert_eq!(r.consent.unwrap().status(), ConsentStatus::Approved);
    api.put_tenant("acme", false, Some("alice")).await;

    // A registered app nobody approved: everything pending, nothing effective.
    api.register("fresh", AppKind::Custom, crm_manifest()).await;
    let r = api.scopes(scopes_of("acme", "fresh")).await.unwrap();
    assert_eq!(r.consent.unwrap().status(), ConsentStatus::NotConsented);
    assert!(r.effective_scopes.is_empty() && r.app_grants.is_empty());
    assert_eq!(r.pending_scopes, ["documents:read", "documents:write"]);
    assert_eq!(
        r.pending_permission_requests,
        requests(&[(ScopeLevel::SiteCollection, Right::Write)])
    );

    // Unknown tenant or app: NOT_FOUND, from the cache or the store.
    for consistency in [None, fully()] {
        for (tenant, app) in [("ghost", "crm"), ("acme", "ghost")] {
            assert_code(
                "unknown tenant or app",
                api.scopes(GetAppScopesRequest {
                    consistency: consistency.clone(),
                    ..scopes_of(tenant, app)
                })
                .await,
                Code::NotFound,
            );
        }
    }
    server.stop().await;
}

async fn each_escalation_requires_reapproval_until_approved_again(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let base = || manifest(&["documents:read"], &[]);
    type Escalate = fn(Manifest) -> Manifest;
    let cases: [(&str, &[&str], Escalate); 4] = [
        ("sys", &["RUN_AS_SYSTEM_USER"], |m| Manifest {
            run_as: RunAs::SystemUser as i32,
            ..m
        }),
        ("hooks", &["WEBHOOKS_ADDED"], |m| Manifest {
            webhooks: true,
            ..m
        }),
        ("mirror", &["DATABASE_MIRRORING_ADDED"], |m| Manifest {
            database_mirroring: true,
            ..m
        }),
        (
            "all",
            &[
                "RUN_AS_SYSTEM_USER",
                "WEBHOOKS_ADDED",
                "DATABASE_MIRRORING_ADDED",
            ],
            |m| Manifest {
                run_as: RunAs::SystemUser as i32,
                webhooks: true,
                database_mirroring: true,
                ..m
            },
        ),
    ];
    for (app, reasons, escalate) in cases {
        let revision = api.register(app, AppKind::Standard, base()).await;
        api.approve("acme", app, revision, vec![]).await;
        let q = CheckAccessRequest {
            scope: "documents:read".into(),
            explain: true,
            ..ask(app, "dave")
        };
        decided(&api.decide(q.clone()).await, Reason::Allowed, None);
        let revision = api.update_manifest(app, escalate(base())).await;
        for consistency in [None, fully()] {
            let r = api
                .scopes(GetAppScopesRequest {
                    consistency,
                    ..scopes_of("acme", app)
                })
                .await
                .unwrap();
            assert!(r.reapproval_required, "{app}: {r:#?}");
            let mut got = r.reapproval_reasons.clone();
            got.sort();
            let mut want = strings(reasons);
            want.sort();
            assert_eq!(got, want, "{app}");
            assert_eq!(
                r.consent.as_ref().unwrap().status(),
                ConsentStatus::ReapprovalRequired
            );
            // The app gets nothing until re-approved.
            assert!(r.effective_scopes.is_empty(), "{app}: {r:#?}");
            assert_eq!(r.run_as(), RunAs::UserContext);
            assert!(!r.webhooks && !r.database_mirroring);
        }
        let d = api.decide(q.clone()).await;
        decided(&d, Reason::ReapprovalRequired, Some("CONSENT"));
        for reason in reasons {
            assert!(d.message.contains(reason), "{app}: {}", d.message);
        }
        // Re-approval clears it, and the escalation is then effective.
        api.approve("acme", app, revision, vec![]).await;
        let r = api.scopes(scopes_of("acme", app)).await.unwrap();
        assert!(
            !r.reapproval_required && r.reapproval_reasons.is_empty(),
            "{app}"
        );
        assert_eq!(
            r.consent.as_ref().unwrap().status(),
            ConsentStatus::Approved
        );
        assert_eq!(r.effective_scopes, ["documents:read"]);
        let system = reasons.contains(&"RUN_AS_SYSTEM_USER");
        assert_eq!(r.run_as() == RunAs::SystemUser, system, "{app}");
        assert_eq!(r.webhooks, reasons.contains(&"WEBHOOKS_ADDED"), "{app}");
        assert_eq!(
            r.database_mirroring,
            reasons.contains(&"DATABASE_MIRRORING_ADDED"),
            "{app}"
        );
        if system {
            // A system-user app holds FULL_CONTROL on `/` and is evaluated app-only.
            assert_eq!(r.policy(), Policy::AppOnly);
            decided(
                &api.decide(CheckAccessRequest {
                    permission: "FULL_CONTROL".into(),
                    resource: "/finance".into(),
                    ..q.clone()
                })
                .await,
                Reason::Allowed,
                None,
            );
            decided(
                &api.decide(CheckAccessRequest {
                    user_id: String::new(),
                    ..q.clone()
                })
                .await,
                Reason::Allowed,
                None,
            );
        }
        decided(&api.decide(q).await, Reason::Allowed, None);
    }
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 4–6. Freshness across instances, cache hits, read-your-writes.

/// Polls `check` from `since` until it holds; fails unless it holds within one second of
/// `since`. Returns how long after `since` it first held.
async fn within_a_second<F, Fut>(what: &str, since: Instant, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = since + Duration::from_secs(1);
    let mut polls = 0;
    loop {
        polls += 1;
        if check().await {
            let took = since.elapsed();
            eprintln!("staleness: {what}: {took:?} (poll {polls})");
            assert!(took < Duration::from_secs(1), "{what}: took {took:?}");
            return took;
        }
        assert!(Instant::now() < deadline, "{what}: not seen within 1 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The freshness contract between a writing instance `w` and a reading one `r` on the same
/// database (both already holding the `acme` world): a token makes the first read fresh; without
/// one, a read is fresh within a second; a revoked client stops working within a second.
/// Returns the measured staleness of every untokened read.
async fn freshness_between(w: &Api, r: &Api, written: &str, client: &str) -> Vec<Duration> {
    let mut staleness = Vec::new();
    let allowed = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    // Warm the reader: the allowed answer is cached there.
    for _ in 0..3 {
        let d = r
            .decide(CheckAccessRequest {
                consistency: fresh(written),
                ..allowed.clone()
            })
            .await;
        decided(&d, Reason::Allowed, None);
        assert!(rev(&d.checked_at) >= rev(written));
    }
    decided(&r.decide(allowed.clone()).await, Reason::Allowed, None);

    // A revocation, read with its token: the very first read sees it.
    let revoked = w.revoke_consent("acme", "crm").await;
    let d = r
        .decide(CheckAccessRequest {
            consistency: fresh(&revoked),
            ..allowed.clone()
        })
        .await;
    decided(&d, Reason::ConsentRevoked, Some("CONSENT"));
    assert!(rev(&d.checked_at) >= rev(&revoked));
    // Re-approved, and read without a token: seen within a second.
    w.approve(
        "acme",
        "crm",
        1,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;
    let since = Instant::now();
    staleness.push(
        within_a_second("re-approval, no token", since, || async {
            r.decide(allowed.clone()).await.allowed
        })
        .await,
    );
    // Revoked again, read without a token.
    w.revoke_consent("acme", "crm").await;
    let since = Instant::now();
    staleness.push(
        within_a_second("revocation, no token", since, || async {
            r.decide(allowed.clone()).await.reason() == Reason::ConsentRevoked
        })
        .await,
    );
    w.approve(
        "acme",
        "crm",
        1,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;

    // User rights: bob reads only; a grant through the writer, then its revocation.
    let bob = may("bob", "EDIT_ITEMS", "/hr/team");
    for round in 0..3 {
        let d = r.decide(bob.clone()).await;
        assert_eq!(
            d.reason(),
            Reason::UserPermissionInsufficient,
            "round {round}"
        );
        let granted = w.grant_right("acme", "bob", "/hr", Right::Write).await;
        let d = r
            .decide(CheckAccessRequest {
                consistency: fresh(&granted),
                ..bob.clone()
            })
            .await;
        decided(&d, Reason::Allowed, None);
        w.revoke_right("acme", "bob", "/hr", Right::Write).await;
        let since = Instant::now();
        staleness.push(
            within_a_second("right revoked, no token", since, || async {
                r.decide(bob.clone()).await.reason() == Reason::UserPermissionInsufficient
            })
            .await,
        );
        w.grant_right("acme", "bob", "/hr", Right::Write).await;
        let since = Instant::now();
        staleness.push(
            within_a_second("right granted, no token", since, || async {
                r.decide(bob.clone()).await.allowed
            })
            .await,
        );
        w.revoke_right("acme", "bob", "/hr", Right::Write).await;
        let since = Instant::now();
        staleness.push(
            within_a_second("right revoked again, no token", since, || async {
                !r.decide(bob.clone()).await.allowed
            })
            .await,
        );
    }

    // A client revoked through the writer stops working on the reader within a second.
    let key = w.client(client, &["acme"], &[Capability::Query]).await;
    within_a_second("new client works", Instant::now(), || async {
        r.check_as(&key, None, allowed.clone()).await.is_ok()
    })
    .await;
    for _ in 0..3 {
        assert!(r.check_as(&key, None, allowed.clone()).await.is_ok());
    }
    w.revoke_client(client).await;
    let since = Instant::now();
    staleness.push(
        within_a_second("client revoked", since, || async {
            matches!(
                r.check_as(&key, None, allowed.clone()).await,
                Err(s) if s.code() == Code::Unauthenticated
            )
        })
        .await,
    );
    // And stays revoked.
    for _ in 0..3 {
        assert_code(
            "revoked client",
            r.check_as(&key, None, allowed.clone()).await,
            Code::Unauthenticated,
        );
    }
    staleness
}

/// The same contract for the other queries: external permissions (group `group`, created
/// through the writer) and GetAppScopes.
async fn external_freshness_between(w: &Api, r: &Api, group: &str) -> Vec<Duration> {
    let mut staleness = Vec::new();
    w.put_user("acme", "carol", &[Role::PermissionManager], Some("alice"))
        .await;
    w.group("acme", group, &[], &["client:bootstrap"]).await;
    let permission = format!("{group}.p");
    w.permission("acme", group, &permission, "P").await;
    let listed = async |consistency: Option<Consistency>| {
        r.list(
            BOOTSTRAP_KEY,
            None,
            ListExternalPermissionsRequest {
                consistency,
                ..listing("dave", "", group)
            },
        )
        .await
        .unwrap()
        .permissions
        .len()
    };
    let granted = async |consistency: Option<Consistency>| {
        r.check_external(
            BOOTSTRAP_KEY,
            None,
            CheckExternalPermissionRequest {
                consistency,
                ..by_id("dave", &permission)
            },
        )
        .await
        .unwrap()
        .granted
    };
    let written = w.put_user("acme", "dave", &[], None).await;
    // Warm the reader's catalog and grants.
    assert_eq!(listed(fresh(&written)).await, 0);
    assert!(!granted(None).await);
    let written = w.grant("acme", "dave", &permission, None).await;
    assert_eq!(
        listed(fresh(&written)).await,
        1,
        "first read with the token"
    );
    assert!(granted(fresh(&written)).await);
    let (listed, granted) = (&listed, &granted);
    w.revoke_grant("acme", "dave", &permission).await;
    let since = Instant::now();
    staleness.push(
        within_a_second("external grant revoked, no token", since, || async move {
            listed(None).await == 0 && !granted(None).await
        })
        .await,
    );
    w.grant("acme", "dave", &permission, None).await;
    let since = Instant::now();
    staleness.push(
        within_a_second("external grant given, no token", since, || async move {
            listed(None).await == 1 && granted(None).await
        })
        .await,
    );
    // GetAppScopes: a revocation read with its token, then a re-approval without one.
    let scopes = async |consistency: Option<Consistency>| {
        r.scopes(GetAppScopesRequest {
            consistency,
            ..scopes_of("acme", "crm")
        })
        .await
        .unwrap()
        .consent
        .unwrap()
        .status()
    };
    assert_eq!(scopes(None).await, ConsentStatus::Approved);
    let revoked = w.revoke_consent("acme", "crm").await;
    assert_eq!(scopes(fresh(&revoked)).await, ConsentStatus::Revoked);
    w.approve(
        "acme",
        "crm",
        1,
        vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
    )
    .await;
    let scopes = &scopes;
    let since = Instant::now();
    staleness.push(
        within_a_second("GetAppScopes re-approved, no token", since, || async move {
            scopes(None).await == ConsentStatus::Approved
        })
        .await,
    );
    staleness
}

fn summary(staleness: &[Duration]) -> String {
    let max = staleness.iter().max().copied().unwrap_or_default();
    let mut sorted = staleness.to_vec();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    format!("{} reads: median {median:?}, max {max:?}", staleness.len())
}

async fn two_processes_on_one_database_agree_within_a_second(db: &TestDb) {
    let a = BinaryServer::start(&db.url, &[]).await;
    let b = BinaryServer::start(&db.url, &[]).await;
    let (wa, rb) = (Api::at(a.addr).await, Api::at(b.addr).await);
    let written = acme(&wa).await;
    let mut staleness = freshness_between(&wa, &rb, &written, "svc-a").await;
    staleness.extend(external_freshness_between(&wa, &rb, "ga").await);
    eprintln!("two processes, A writes, B reads: {}", summary(&staleness));
    // And the other way round.
    let written = rb.put_user("acme", "dave", &[], None).await;
    let mut staleness = freshness_between(&rb, &wa, &written, "svc-b").await;
    staleness.extend(external_freshness_between(&rb, &wa, "gb").await);
    eprintln!("two processes, B writes, A reads: {}", summary(&staleness));
    let (sa, sb) = (a.terminate().await, b.terminate().await);
    assert!(sa.success() && sb.success(), "{sa:?} {sb:?}");
}

async fn two_in_process_servers_agree_within_a_second(db: &TestDb) {
    let a = TestServer::start(db).await;
    let b = TestServer::start(db).await;
    let (wa, rb) = (Api::at(a.addr).await, Api::at(b.addr).await);
    let written = acme(&wa).await;
    let mut staleness = freshness_between(&wa, &rb, &written, "svc").await;
    staleness.extend(external_freshness_between(&wa, &rb, "g").await);
    eprintln!("two in-process servers: {}", summary(&staleness));
    a.stop().await;
    b.stop().await;
}

/// Hits of the `apps` and `users` caches, and their misses.
fn counts(server: &TestServer) -> [u64; 4] {
    let c = &server.caches.counters;
    [
        c[0].hits.load(Ordering::Relaxed),
        c[1].hits.load(Ordering::Relaxed),
        c[0].misses.load(Ordering::Relaxed),
        c[1].misses.load(Ordering::Relaxed),
    ]
}

/// The value of `consentry_cache_hits_total{cache="<cache>"}` in a scrape (process-wide).
fn scraped_hits(body: &str, cache: &str) -> f64 {
    let label = format!("cache=\"{cache}\"");
    body.lines()
        .filter(|l| l.starts_with("consentry_cache_hits_total") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn repeated_checks_are_cache_hits(db: &TestDb) {
    let mut cfg = config(db);
    cfg.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    let server = TestServer::start_with(cfg).await;
    let metrics = server.metrics_addr.expect("metrics are served");
    let api = Api::at(server.addr).await;
    acme(&api).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    let before = counts(&server);
    let scraped_before = scrape(metrics).await;
    let timing = Instant::now();
    for _ in 0..20 {
        decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    }
    eprintln!(
        "20 cached checks, one after another: {:?}",
        timing.elapsed()
    );
    let after = counts(&server);
    assert!(
        after[0] >= before[0] + 20,
        "apps hits {before:?} → {after:?}"
    );
    assert!(
        after[1] >= before[1] + 20,
        "users hits {before:?} → {after:?}"
    );
    assert_eq!(
        (after[2], after[3]),
        (before[2], before[3]),
        "no misses for repeated checks"
    );
    let scraped_after = scrape(metrics).await;
    for cache in ["apps", "users"] {
        let (b, a) = (
            scraped_hits(&scraped_before, cache),
            scraped_hits(&scraped_after, cache),
        );
        assert!(
            a >= b + 20.0,
            "{cache}: consentry_cache_hits_total {b} → {a}"
        );
    }
    // A store read is no cache lookup; a write invalidates, and the next read misses once.
    decided(
        &api.decide(CheckAccessRequest {
            consistency: fully(),
            ..q.clone()
        })
        .await,
        Reason::Allowed,
        None,
    );
    assert_eq!(counts(&server), after);
    api.grant_right("acme", "dave", "/hr", Right::Manage).await;
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    let reloaded = counts(&server);
    assert_eq!(reloaded[3], after[3] + 1, "dave's snapshot reloaded once");
    assert_eq!(reloaded[2], after[2], "the app's snapshot was untouched");
    decided(&api.decide(q).await, Reason::Allowed, None);
    assert_eq!(counts(&server)[3], reloaded[3]);
    server.stop().await;
}

async fn a_revoked_consent_is_never_allowed_once_its_token_is_presented(db: &TestDb) {
    // A answers (its cache warm with ALLOWED), B takes the writes.
    let a = TestServer::start(db).await;
    let b = TestServer::start(db).await;
    let (ra, wb) = (Api::at(a.addr).await, Api::at(b.addr).await);
    acme(&wb).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    // Readers hammering A without a token keep loads racing with invalidations.
    let stop = Arc::new(AtomicBool::new(false));
    let hammered = Arc::new(AtomicUsize::new(0));
    let mut hammers = Vec::new();
    for _ in 0..4 {
        let (ra, q, stop, hammered) = (ra.clone(), q.clone(), stop.clone(), hammered.clone());
        hammers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let _ = ra.check(q.clone()).await;
                hammered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for round in 0..20 {
        let approved = wb
            .approve(
                "acme",
                "crm",
                1,
                vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
            )
            .await;
        let d = ra
            .decide(CheckAccessRequest {
                consistency: fresh(&approved),
                ..q.clone()
            })
            .await;
        decided(&d, Reason::Allowed, None);
        // Warm: answered from the cache.
        decided(&ra.decide(q.clone()).await, Reason::Allowed, None);
        let revoked = wb.revoke_consent("acme", "crm").await;
        let d = ra
            .decide(CheckAccessRequest {
                consistency: fresh(&revoked),
                ..q.clone()
            })
            .await;
        assert_eq!(
            d.reason(),
            Reason::ConsentRevoked,
            "round {round}: ALLOWED after the revocation's token: {d:#?}"
        );
        assert!(rev(&d.checked_at) >= rev(&revoked));
        // A batch with the token, too.
        let batch = ra
            .batch(BOOTSTRAP_KEY, vec![q.clone(), q.clone()], fresh(&revoked))
            .await
            .unwrap();
        for d in &batch.results {
            assert_eq!(d.reason(), Reason::ConsentRevoked, "round {round} (batch)");
        }
        // Without a token A now answers at least as fresh as it already did (monotonic reads).
        let untokened = ra.decide(q.clone()).await;
        assert_eq!(
            untokened.reason(),
            Reason::ConsentRevoked,
            "round {round}: an untokened read went back in time: {untokened:#?}"
        );
        assert!(rev(&untokened.checked_at) >= rev(&revoked));
    }
    stop.store(true, Ordering::Relaxed);
    for h in hammers {
        h.await.unwrap();
    }
    eprintln!(
        "20 rounds of approve/revoke with {} concurrent untokened reads",
        hammered.load(Ordering::Relaxed)
    );
    a.stop().await;
    b.stop().await;
}

async fn the_instance_that_wrote_reads_its_write_without_a_token(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    let bob = may("bob", "EDIT_ITEMS", "/hr/team/docs");
    for _ in 0..10 {
        decided(&api.decide(q.clone()).await, Reason::Allowed, None);
        decided(&api.decide(q.clone()).await, Reason::Allowed, None);
        api.revoke_consent("acme", "crm").await;
        decided(
            &api.decide(q.clone()).await,
            Reason::ConsentRevoked,
            Some("CONSENT"),
        );
        api.approve(
            "acme",
            "crm",
            1,
            vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")],
        )
        .await;
        decided(&api.decide(q.clone()).await, Reason::Allowed, None);
        api.grant_right("acme", "bob", "/hr", Right::Write).await;
        decided(&api.decide(bob.clone()).await, Reason::Allowed, None);
        api.revoke_right("acme", "bob", "/hr", Right::Write).await;
        decided(
            &api.decide(bob.clone()).await,
            Reason::UserPermissionInsufficient,
            Some("PERMISSION"),
        );
    }
    // Its external grants and clients too.
    api.put_user("acme", "carol", &[Role::PermissionManager], Some("alice"))
        .await;
    api.group("acme", "g", &[], &["client:bootstrap"]).await;
    api.permission("acme", "g", "g.p", "GP").await;
    let listed = async || {
        api.list(BOOTSTRAP_KEY, None, listing("dave", "", ""))
            .await
            .unwrap()
            .permissions
            .len()
    };
    assert_eq!(listed().await, 0);
    api.grant("acme", "dave", "g.p", None).await;
    assert_eq!(listed().await, 1);
    let key = api.client("svc", &["acme"], &[Capability::Query]).await;
    assert!(api.check_as(&key, None, q.clone()).await.unwrap().allowed);
    api.revoke_client("svc").await;
    assert_code(
        "own revocation",
        api.check_as(&key, None, q).await,
        Code::Unauthenticated,
    );
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 7. Failing closed.

/// The database name in a test database URL.
fn database_name(url: &str) -> String {
    let path = url.rsplit('/').next().unwrap();
    path.split('?').next().unwrap().to_owned()
}

async fn drop_database(url: &str) {
    use sqlx::{AssertSqlSafe, Connection, PgConnection};
    let mut conn = PgConnection::connect(&postgres_server_url())
        .await
        .expect("admin connection");
    sqlx::query(AssertSqlSafe(format!(
        "DROP DATABASE \"{}\" WITH (FORCE)",
        database_name(url)
    )))
    .execute(&mut conn)
    .await
    .expect("drops the database");
    let _ = conn.close().await;
}

async fn without_the_database_checks_fail_closed(db: &TestDb) {
    let (server, api) = acme_server_with(short_staleness(db)).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    drop_database(&db.url).await;
    let needs_store = [
        CheckAccessRequest {
            consistency: fully(),
            ..q.clone()
        },
        // A user never looked up: a cache miss.
        may("erin", "VIEW_ITEMS", "/hr"),
        CheckAccessRequest {
            tenant_id: "globex".into(),
            ..q.clone()
        },
    ];
    for q in needs_store {
        let r = api.check(q.clone()).await;
        let s = err(&format!("{q:?} without a database"), r);
        assert_eq!(s.code(), Code::Unavailable, "{q:?}: {}", s.message());
        assert!(
            !s.message().contains("consentry_t_"),
            "no database details leak: {}",
            s.message()
        );
    }
    let batch = api
        .batch(
            BOOTSTRAP_KEY,
            vec![q.clone(), may("erin", "READ", "/")],
            None,
        )
        .await;
    assert_code("a batch with a miss", batch, Code::Unavailable);
    let scopes = api
        .scopes(GetAppScopesRequest {
            consistency: fully(),
            ..scopes_of("acme", "crm")
        })
        .await;
    assert_code("GetAppScopes from the store", scopes, Code::Unavailable);
    // Knowing it can no longer hear of changes, the instance stops answering from its cache
    // too within the staleness bound (here half a second); it never answers ALLOWED from the
    // store it cannot read.
    let since = Instant::now();
    within_a_second("cached answers stop without a database", since, || async {
        match api.check(q.clone()).await {
            Ok(d) => {
                assert!(d.allowed, "a cached answer is the cached answer");
                false
            }
            Err(s) => {
                assert!(
                    matches!(s.code(), Code::Unavailable | Code::Unauthenticated),
                    "{s:?}"
                );
                s.code() == Code::Unavailable
            }
        }
    })
    .await;
    for _ in 0..5 {
        assert_code(
            "still no database",
            api.check(q.clone()).await,
            Code::Unavailable,
        );
    }
    drop(server);
}

/// Cuts the server's pool off from its database while its change listener stays connected (as a
/// partition might), and lets another writer revoke the consent the server has cached as ALLOWED:
/// the server stops answering ALLOWED once its staleness bound (here half a second) has passed.
async fn a_server_cut_off_from_its_pool_stops_answering_from_its_cache(db: &TestDb) {
    use consentry::domain::{
        AppId, Caller, Capabilities, ClientId, TenantBounds, TenantId, Timestamp, UserId,
    };
    use consentry::store::{Store, WriteCtx};
    use sqlx::{Connection, PgConnection};
    let (server, api) = acme_server_with(short_staleness(db)).await;
    let q = may("dave", "EDIT_ITEMS", "/hr/team/docs");
    let name = database_name(&db.url);
    let mut admin = PgConnection::connect(&postgres_server_url()).await.unwrap();
    // The listener is connected once a backend of the database last ran LISTEN.
    let listeners = async |admin: &mut PgConnection| -> Vec<i32> {
        sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'LISTEN%'",
        )
        .bind(&name)
        .fetch_all(admin)
        .await
        .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while listeners(&mut admin).await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the change listener never connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);
    // Another writer, its one connection open before the cut.
    let writer = consentry::store::connect(&db.url, 1).await.unwrap();
    let writer_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(writer.pool())
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let keep = listeners(&mut admin).await;
    assert!(!keep.is_empty());
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> $2 AND NOT (pid = ANY($3))",
    )
    .bind(&name)
    .bind(writer_pid)
    .bind(&keep)
    .execute(&mut admin)
    .await
    .unwrap();
    let ctx = WriteCtx {
        caller: Caller {
            client_id: ClientId::parse("client_id", "elsewhere").unwrap(),
            tenants: TenantBounds::All,
            capabilities: Capabilities::all(),
        },
        acting_user: Some(UserId::parse("user_id", "alice").unwrap()),
        at: Timestamp::now(),
    };
    let tenant = TenantId::parse("tenant_id", "acme").unwrap();
    let app = AppId::parse("app_id", "crm").unwrap();
    writer
        .revoke_consent(&ctx, &tenant, &app)
        .await
        .expect("the other writer revokes");
    let since = Instant::now();
    let outcome = tokio::time::timeout(
        Duration::from_secs(3),
        within_a_second(
            "a cut-off server stops answering ALLOWED",
            since,
            || async {
                match api.check(q.clone()).await {
                    Ok(d) => !d.allowed,
                    Err(s) => s.code() == Code::Unavailable,
                }
            },
        ),
    )
    .await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    let _ = admin.close().await;
    writer.pool().close().await;
    outcome.expect("the poll ends");
    drop(server);
}

// ---------------------------------------------------------------------------------------------
// 8. SIGTERM drains.

/// The binary as a child whose stderr lines are kept.
struct Child {
    addr: SocketAddr,
    /// Where it serves metrics, if asked to.
    metrics: Option<SocketAddr>,
    child: tokio::process::Child,
    stderr: Arc<Mutex<Vec<String>>>,
    /// Keeps reading stderr until the child closes it.
    reader: tokio::task::JoinHandle<()>,
}

/// The binary on `url` with `args`, once it is SERVING.
async fn spawn_binary(url: &str, args: &[&str]) -> Child {
    let child = spawn_unready(url, args).await;
    wait_serving(child.addr).await;
    child
}

/// The binary on `url` with `args`, as soon as it says where it listens (SERVING or not).
async fn spawn_unready(url: &str, args: &[&str]) -> Child {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_consentry"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", url])
        .args(args)
        .env("CONSENTRY_BOOTSTRAP_KEY", BOOTSTRAP_KEY)
        .env("RUST_LOG", "info,consentry::service=debug")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("consentry binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut metrics = None;
    let addr = loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .expect("the binary says where it listens in time")
            .unwrap()
            .expect("the binary exited before listening");
        stderr.lock().unwrap().push(line.clone());
        // The metrics address comes first, if there is one.
        if let Some(rest) = line.strip_prefix("metrics at http://") {
            metrics = rest.trim().trim_end_matches("/metrics").parse().ok();
        }
        if let Some(rest) = line.strip_prefix("consentry listening on ") {
            break rest.trim().parse::<SocketAddr>().unwrap();
        }
    };
    let kept = stderr.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.lock().unwrap().push(line);
        }
    });
    Child {
        addr,
        metrics,
        child,
        stderr,
        reader,
    }
}

async fn sigterm_drains_requests_in_flight_and_exits_cleanly(db: &TestDb) {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    // Two database connections make the burst's store reads queue, so many are in flight.
    let mut server = spawn_binary(&db.url, &["--db-max-connections", "2"]).await;
    let api = Api::at(server.addr).await;
    acme(&api).await;
    let q = CheckAccessRequest {
        consistency: fully(),
        ..may("dave", "EDIT_ITEMS", "/hr/team/docs")
    };
    decided(&api.decide(q.clone()).await, Reason::Allowed, None);

    // Connections made before the signal.
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(channel(server.addr).await);
    }
    let mut health = HealthClient::new(channel(server.addr).await);
    let statuses = Arc::new(Mutex::new(Vec::<String>::new()));
    let watching = {
        let statuses = statuses.clone();
        tokio::spawn(async move {
            loop {
                let seen = match health
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                {
                    Ok(r) => format!("{:?}", r.into_inner().status()),
                    Err(s) => format!("error {:?}", s.code()),
                };
                {
                    let mut list = statuses.lock().unwrap();
                    if list.last() != Some(&seen) {
                        list.push(seen.clone());
                    }
                }
                if seen.starts_with("error") {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    const CALLS: usize = 200;
    let done = Arc::new(AtomicUsize::new(0));
    // Every call carries its own x-request-id, which the server logs when it answers.
    let tagged = |q: CheckAccessRequest, id: String| {
        let mut r = boot(q, None);
        r.metadata_mut().insert("x-request-id", id.parse().unwrap());
        r
    };
    let mut calls = Vec::new();
    for i in 0..CALLS {
        let mut client = PermissionServiceClient::new(channels[i % channels.len()].clone());
        let (request, done) = (tagged(q.clone(), format!("burst-{i}")), done.clone());
        calls.push(tokio::spawn(async move {
            let r = client.check_access(request).await;
            done.fetch_add(1, Ordering::SeqCst);
            (
                format!("burst-{i}"),
                r.map(Response::into_inner),
                Instant::now(),
            )
        }));
    }
    // Signal while the burst is in flight: some answered, most not yet.
    eventually(Duration::from_secs(10), || async {
        done.load(Ordering::SeqCst) >= 5
    })
    .await;
    let pid = server.child.id().expect("running");
    let signalled = Instant::now();
    let done_at_signal = done.load(Ordering::SeqCst);
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // A second wave after the signal, on the draining connections and on new ones.
    const LATE: usize = 50;
    for i in 0..LATE {
        let ch = if i % 2 == 0 {
            channels[i % channels.len()].clone()
        } else {
            Channel::from_shared(format!("http://{}", server.addr))
                .unwrap()
                .connect_lazy()
        };
        let mut client = PermissionServiceClient::new(ch);
        let request = tagged(q.clone(), format!("late-{i}"));
        calls.push(tokio::spawn(async move {
            let r = client.check_access(request).await;
            (
                format!("late-{i}"),
                r.map(Response::into_inner),
                Instant::now(),
            )
        }));
    }

    let mut answered = BTreeSet::new();
    let (mut answered_after_signal, mut refused) = (0, 0);
    let mut failed = Vec::new();
    for call in calls {
        let (id, r, at) = call.await.unwrap();
        match r {
            Ok(d) => {
                assert!(d.allowed, "{d:#?}");
                answered.insert(id);
                if at > signalled {
                    answered_after_signal += 1;
                }
            }
            // Refused before it was accepted: the connection closed, or the stream refused.
            Err(s) if s.code() == Code::Unavailable => refused += 1,
            Err(s) => failed.push((id, format!("{:?}: {}", s.code(), s.message()))),
        }
    }
    let exit = tokio::time::timeout(Duration::from_secs(30), server.child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    watching.abort();
    // Every line the binary wrote, up to its end of stderr.
    tokio::time::timeout(Duration::from_secs(10), &mut server.reader)
        .await
        .expect("stderr closes after exit")
        .unwrap();
    let stderr = server.stderr.lock().unwrap().clone();
    let statuses = statuses.lock().unwrap().clone();
    // What the server answered, by request id.
    let served: BTreeSet<String> = stderr
        .iter()
        .filter(|l| l.contains("rpc=\"CheckAccess\"") && l.contains("code=\"OK\""))
        .filter_map(|l| {
            let rest = &l[l.find("request_id=")? + "request_id=".len()..];
            Some(rest[..rest.find(['}', ' '])?].to_owned())
        })
        .filter(|id| id.starts_with("burst-") || id.starts_with("late-"))
        .collect();
    eprintln!(
        "SIGTERM after {done_at_signal} of {CALLS} calls had answered, then {LATE} more: \
         {} OK ({answered_after_signal} of them after the signal), {refused} UNAVAILABLE, {} \
         failed otherwise {:?}; health seen: {statuses:?}; exit {exit:?}",
        answered.len(),
        failed.len(),
        failed.iter().map(|(_, s)| s).collect::<BTreeSet<_>>()
    );
    assert_eq!(answered.len() + refused + failed.len(), CALLS + LATE);
    // Every call the server answered reached its caller, and nothing it accepted was cut off:
    // the calls of the burst, all sent before the signal, were answered or refused outright.
    assert_eq!(
        served, answered,
        "answered by the server = answered to the caller"
    );
    for (id, status) in &failed {
        assert!(
            id.starts_with("late-"),
            "{id}, sent before the signal, was cut off: {status}"
        );
        assert!(!served.contains(id), "{id} was served, then lost: {status}");
    }
    assert!(
        answered_after_signal > 0,
        "the signal came while calls were in flight"
    );
    assert!(exit.success(), "exit status {exit:?}; stderr: {stderr:#?}");
    assert!(
        stderr
            .iter()
            .any(|l| l.contains("health NOT_SERVING") && l.contains("draining")),
        "the binary says it reports NOT_SERVING while draining: {stderr:#?}"
    );
    assert!(
        stderr.iter().any(|l| l.contains("consentry stopped")),
        "{stderr:#?}"
    );
    assert!(
        !stderr.iter().any(|l| l.contains("abandoning")),
        "nothing was abandoned: {stderr:#?}"
    );
    // The health poller saw SERVING before; NOT_SERVING is only visible if a check slipped in
    // between the switch and the close of its connection.
    assert_eq!(statuses.first().map(String::as_str), Some("Serving"));
}

// ---------------------------------------------------------------------------------------------
// 9. The demo world.

async fn the_demo_world_answers_with_the_printed_key(db: &TestDb) {
    let server = BinaryServer::start(&db.url, &["--demo"]).await;
    let key = server
        .stdout
        .first()
        .expect("the demo prints its key")
        .trim()
        .to_owned();
    assert!(!key.is_empty());
    let api = Api::at(server.addr).await;
    let q = CheckAccessRequest {
        tenant_id: "acme".into(),
        app_id: "crm".into(),
        user_id: "dave".into(),
        permission: "EDIT_ITEMS".into(),
        resource: "/hr/team/docs".into(),
        explain: true,
        ..Default::default()
    };
    let d = api.check_as(&key, None, q.clone()).await.unwrap();
    decided(&d, Reason::Allowed, None);
    // The demo's other stories: a re-approval and an external permission.
    let mirror = api
        .check_as(
            &key,
            None,
            CheckAccessRequest {
                app_id: "mirror".into(),
                permission: String::new(),
                ..q.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!(mirror.reason(), Reason::ReapprovalRequired);
    let listed = api.list(&key, None, listing("dave", "", "")).await.unwrap();
    assert_eq!(listed.permissions.len(), 2);
    assert!(server.terminate().await.success());
}

// ---------------------------------------------------------------------------------------------
// 10. The read path through outages, and its costs (DESIGN.md §9).

mod outage;
