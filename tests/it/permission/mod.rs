//! The PermissionService end to end, over real servers (in-process on port 0, or the binary as
//! a child process) on real databases: every CheckAccess reason with its trace, batches,
//! validation and caller rules (docs/rules.md §3, §5), the external permission queries' visibility,
//! paging and expiry and GetAppScopes (§4), and the freshness contract of §2 across instances
//! (tokens, the one-second bound, read-your-writes, cache hits that never outlive a revocation),
//! failing closed without a store and through outages, draining on SIGTERM, and the demo world.
//!
//! Every test builds its world through the AdminService of the server it talks to, on a fresh
//! database of its own. Timing is never slept for: conditions are polled against deadlines.
//!
//! This module holds what the areas share: the clients, the `acme` world, questions, and the
//! check of a decision and its trace.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use consentry::proto::consistency::Requirement;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::proto::*;
use tonic::transport::Channel;
use tonic::{Response, Status};

use crate::support::calls::{Who, boot, ok, req};
use crate::support::db::TestDb;
use crate::support::fixtures::*;
use crate::support::server::{BOOTSTRAP_KEY, TestServer, config, connect};
use crate::support::world::{Admin, new_client, put_user, register};

mod api_users;
mod authzen;
mod batches;
mod binary;
mod errors;
mod ext_authz;
mod external;
mod freshness;
mod outage;
mod reasons;
mod replicas;
mod restore;
mod scopes;
mod store_down;

// ---------------------------------------------------------------------------------------------
// Clients and the admin writes that build a world.

/// An AdminService and a PermissionService client on one connection to one server.
#[derive(Clone)]
struct Api {
    admin: Admin,
    perm: PermissionServiceClient<Channel>,
}

/// The CRM app's manifest: two scopes and WRITE on a site collection.
fn crm_manifest() -> Manifest {
    manifest(
        &["documents:read", "documents:write"],
        &[(ScopeLevel::SiteCollection, Right::Write)],
    )
}

impl Api {
    async fn at(addr: SocketAddr) -> Api {
        let ch = connect(addr).await;
        Api {
            admin: Admin::new(ch.clone()),
            perm: PermissionServiceClient::new(ch),
        }
    }

    // Writes, as the bootstrap client (acting as `by`, or as alice, or as carol, as each says).

    async fn put_tenant(&self, tenant: &str, whitelisting: bool, by: Option<&str>) -> String {
        let request = tenant_req(tenant, "production", whitelisting);
        ok(self.admin.clone().put_tenant(boot(request, by)).await).written_at
    }

    async fn put_user(&self, tenant: &str, user: &str, roles: &[Role], by: Option<&str>) -> String {
        let who = by.map_or_else(Who::boot, |user| Who::boot().user(user));
        put_user(&mut self.admin.clone(), &who, tenant, user, roles).await
    }

    async fn grant_right(&self, tenant: &str, user: &str, resource: &str, right: Right) -> String {
        let request = right_req(tenant, user, resource, right);
        ok(self
            .admin
            .clone()
            .grant_user_right(boot(request, None))
            .await)
        .written_at
    }

    async fn revoke_right(&self, tenant: &str, user: &str, resource: &str, right: Right) -> String {
        let request = revoke_right_req(tenant, user, resource, right);
        ok(self
            .admin
            .clone()
            .revoke_user_right(boot(request, None))
            .await)
        .written_at
    }

    /// Registers an app; returns its manifest revision.
    async fn register(&self, app: &str, kind: AppKind, manifest: Manifest) -> i64 {
        register(&mut self.admin.clone(), app, kind, manifest).await
    }

    /// Replaces an app's manifest; returns its new manifest revision.
    async fn update_manifest(&self, app: &str, manifest: Manifest) -> i64 {
        crate::support::world::update_manifest(&mut self.admin.clone(), app, manifest).await
    }

    /// Approves an app in a tenant as alice (the tenant's administrator).
    async fn approve(
        &self,
        tenant: &str,
        app: &str,
        manifest_revision: i64,
        resolved_requests: Vec<ResolvedRequest>,
    ) -> String {
        let request = approve_req(tenant, app, manifest_revision, resolved_requests);
        ok(self
            .admin
            .clone()
            .approve_consent(boot(request, Some("alice")))
            .await)
        .written_at
    }

    /// Revokes an app's consent as alice.
    async fn revoke_consent(&self, tenant: &str, app: &str) -> String {
        let request = RevokeConsentRequest {
            tenant_id: tenant.into(),
            app_id: app.into(),
        };
        ok(self
            .admin
            .clone()
            .revoke_consent(boot(request, Some("alice")))
            .await)
        .written_at
    }

    /// Whitelists an app as alice.
    async fn whitelist(&self, tenant: &str, app: &str, scopes: &[&str], access: ContentAccess) {
        let request = PutWhitelistEntryRequest {
            content_access: access as i32,
            ..whitelist_req(tenant, app, scopes)
        };
        ok(self
            .admin
            .clone()
            .put_whitelist_entry(boot(request, Some("alice")))
            .await);
    }

    /// Creates a client; returns its key.
    async fn client(&self, id: &str, tenants: &[&str], caps: &[Capability]) -> String {
        new_client(&mut self.admin.clone(), &Who::boot(), id, tenants, caps).await
    }

    async fn revoke_client(&self, id: &str) -> String {
        let request = RevokeClientRequest {
            client_id: id.into(),
        };
        ok(self.admin.clone().revoke_client(boot(request, None)).await).written_at
    }

    /// Creates a permission group as carol (a PERMISSION_MANAGER, who becomes a READ_WRITE
    /// manager); the bootstrap client also manages it read-write and grants its permissions.
    async fn group(&self, tenant: &str, group: &str, readers: &[&str], visible_to: &[&str]) {
        let mut managers = vec![("client:bootstrap", ManagerAccess::ReadWrite)];
        managers.extend(readers.iter().map(|p| (*p, ManagerAccess::Read)));
        let request = group_req(tenant, group, &managers, &["client:bootstrap"], visible_to);
        ok(self
            .admin
            .clone()
            .create_permission_group(boot(request, Some("carol")))
            .await);
    }

    async fn permission(&self, tenant: &str, group: &str, id: &str, external_id: &str) {
        let request = permission_req(tenant, group, id, external_id);
        ok(self
            .admin
            .clone()
            .create_external_permission(boot(request, None))
            .await);
    }

    async fn grant(
        &self,
        tenant: &str,
        user: &str,
        permission: &str,
        expires_at: Option<prost_types::Timestamp>,
    ) -> String {
        let request = GrantExternalPermissionRequest {
            expires_at,
            ..grant_req(tenant, user, permission)
        };
        ok(self
            .admin
            .clone()
            .grant_external_permission(boot(request, None))
            .await)
        .written_at
    }

    async fn revoke_grant(&self, tenant: &str, user: &str, permission: &str) -> String {
        let request = revoke_grant_req(tenant, user, permission);
        ok(self
            .admin
            .clone()
            .revoke_external_permission(boot(request, None))
            .await)
        .written_at
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

    /// CheckAccess that must answer; panics with the question and the status otherwise.
    async fn decide(&self, q: CheckAccessRequest) -> CheckAccessResponse {
        let what = format!("CheckAccess {q:?}");
        self.check(q)
            .await
            .unwrap_or_else(|s| panic!("{what}: {:?}: {}", s.code(), s.message()))
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

/// The log filter of a binary whose request log or retries a test reads.
const SERVICE_LOG: &str = "info,consentry::service=debug";

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

// ---------------------------------------------------------------------------------------------
// Decisions and traces.

/// The step tokens of docs/rules.md §3, in evaluation order.
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
// Other questions.

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

fn scopes_of(tenant: &str, app: &str) -> GetAppScopesRequest {
    GetAppScopesRequest {
        tenant_id: tenant.into(),
        app_id: app.into(),
        consistency: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Waiting for what must happen within a second.

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
