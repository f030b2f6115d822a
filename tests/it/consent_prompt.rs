//! GetConsentPrompt (docs/rules.md §8) over a real server on Postgres and SQLite: the prompt before
//! any consent, after approval, after each escalation (with the seed's words for the system
//! user), after a revocation; who may approve a CUSTOM app; and the status codes of a query
//! (NOT_FOUND, INVALID_ARGUMENT, PERMISSION_DENIED, UNAUTHENTICATED, FAILED_PRECONDITION).

use consentry::proto::consistency::Requirement;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::proto::*;
use tonic::transport::Channel;
use tonic::{Code, Response, Status};

use crate::support::calls::{Cases, Who, boot, ok};
use crate::support::db::{TestDb, backend_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;
use crate::support::world::{Admin, new_client, put_tenant, put_user, register};

backend_tests!(
    the_prompt_follows_the_consent_from_first_approval_to_escalation,
    a_custom_apps_first_activation_may_be_approved_by_an_app_manager,
    the_prompt_is_refused_like_every_query,
);

/// The seed's words for running as the system user.
const SEED_FROM: &str = "sentry prevents a user from seeing what they should see";
const SEED_TO: &str = "full access to everything in a customer database";

/// An AdminService and a PermissionService client on one connection.
struct Api {
    admin: Admin,
    perm: PermissionServiceClient<Channel>,
}

impl Api {
    async fn at(server: &TestServer) -> Api {
        let ch = server.channel().await;
        Api {
            admin: Admin::new(ch.clone()),
            perm: PermissionServiceClient::new(ch),
        }
    }

    /// Tenant `acme` with alice, its general administrator.
    async fn acme(&self) {
        put_tenant(&mut self.admin.clone(), "acme").await;
        put_user(
            &mut self.admin.clone(),
            &Who::boot(),
            "acme",
            "alice",
            &[Role::GeneralAdmin],
        )
        .await;
    }

    async fn prompt_as(
        &self,
        who: &Who,
        tenant: &str,
        app: &str,
        consistency: Option<Consistency>,
    ) -> Result<GetConsentPromptResponse, Status> {
        let request = GetConsentPromptRequest {
            tenant_id: tenant.into(),
            app_id: app.into(),
            consistency,
        };
        self.perm
            .clone()
            .get_consent_prompt(who.r(request))
            .await
            .map(Response::into_inner)
    }

    /// The prompt for `app` in `acme`, from the cache and from the store; both must agree but
    /// for `checked_at`, which must be a valid token.
    async fn prompt(&self, app: &str) -> GetConsentPromptResponse {
        let cached = self.prompt_as(&Who::boot(), "acme", app, None).await;
        let cached = cached.unwrap_or_else(|s| panic!("{app}: {s:?}"));
        let stored = self.prompt_as(&Who::boot(), "acme", app, fully()).await;
        let stored = stored.unwrap_or_else(|s| panic!("{app}: {s:?}"));
        rev(&cached.checked_at);
        assert!(rev(&stored.checked_at) >= rev(&cached.checked_at));
        assert_eq!(
            GetConsentPromptResponse {
                checked_at: String::new(),
                ..cached.clone()
            },
            GetConsentPromptResponse {
                checked_at: String::new(),
                ..stored
            },
            "{app}: the cache and the store agree"
        );
        cached
    }

    async fn update_manifest(&self, app: &str, manifest: Manifest) -> i64 {
        crate::support::world::update_manifest(&mut self.admin.clone(), app, manifest).await
    }

    /// Approves as `who` the revision the prompt named.
    async fn approve(
        &self,
        who: &Who,
        app: &str,
        manifest_revision: i64,
        resolved: Vec<ResolvedRequest>,
    ) -> Result<ApproveConsentResponse, Status> {
        let request = approve_req("acme", app, manifest_revision, resolved);
        self.admin
            .clone()
            .approve_consent(who.r(request))
            .await
            .map(Response::into_inner)
    }

    async fn revoke(&self, app: &str) {
        let request = RevokeConsentRequest {
            tenant_id: "acme".into(),
            app_id: app.into(),
        };
        ok(self
            .admin
            .clone()
            .revoke_consent(boot(request, Some("alice")))
            .await);
    }

    async fn scopes(&self, app: &str) -> GetAppScopesResponse {
        let request = GetAppScopesRequest {
            tenant_id: "acme".into(),
            app_id: app.into(),
            consistency: None,
        };
        ok(self.perm.clone().get_app_scopes(boot(request, None)).await)
    }
}

fn fully() -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(Requirement::FullyConsistent(true)),
    })
}

fn fresh(token: &str) -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(Requirement::AtLeastAsFresh(token.to_owned())),
    })
}

fn tokens(p: &GetConsentPromptResponse) -> Vec<&str> {
    p.changes.iter().map(|c| c.change.as_str()).collect()
}

fn change<'a>(p: &'a GetConsentPromptResponse, token: &str) -> &'a ConsentChange {
    p.changes
        .iter()
        .find(|c| c.change == token)
        .unwrap_or_else(|| panic!("no {token} in {:#?}", p.changes))
}

fn approvers(p: &GetConsentPromptResponse) -> Vec<Approver> {
    p.approvers().collect()
}

async fn the_prompt_follows_the_consent_from_first_approval_to_escalation(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(&server).await;
    api.acme().await;
    let base = manifest(
        &["documents:read"],
        &[(ScopeLevel::SiteCollection, Right::Write)],
    );
    register(
        &mut api.admin.clone(),
        "crm",
        AppKind::Standard,
        base.clone(),
    )
    .await;
    let alice = Who::boot().user("alice");

    // Before any consent: mandatory, everything requested is an addition from nothing.
    let p = api.prompt("crm").await;
    assert_eq!((p.app_id.as_str(), p.name.as_str()), ("crm", "App crm"));
    assert_eq!(p.kind(), AppKind::Standard);
    assert_eq!(p.manifest_revision, 1);
    assert_eq!(p.scopes, ["documents:read"]);
    assert_eq!(p.permission_requests, base.permission_requests);
    assert!(p.mandatory);
    assert_eq!(approvers(&p), [Approver::Administrator]);
    assert_eq!(tokens(&p), ["SCOPES_ADDED", "PERMISSION_REQUESTS_ADDED"]);
    let scopes = change(&p, "SCOPES_ADDED");
    assert_eq!(
        (scopes.from.as_str(), scopes.to.as_str()),
        (
            "no access to the API scope documents:read",
            "access to the API scope documents:read"
        )
    );

    // Approved as prompted: nothing to accept, not mandatory.
    let site = vec![resolved(ScopeLevel::SiteCollection, Right::Write, "/hr")];
    let approved = api
        .approve(&alice, "crm", p.manifest_revision, site.clone())
        .await
        .unwrap();
    let p = api.prompt("crm").await;
    assert!(!p.mandatory && p.changes.is_empty(), "{p:#?}");
    assert!(rev(&p.checked_at) >= rev(&approved.written_at));

    // The app now wants the system user, webhooks, mirroring and another scope.
    let escalated = Manifest {
        run_as: RunAs::SystemUser.into(),
        webhooks: true,
        database_mirroring: true,
        ..manifest(
            &["documents:read", "calendar:read"],
            &[(ScopeLevel::SiteCollection, Right::Write)],
        )
    };
    let revision = api.update_manifest("crm", escalated).await;
    let p = api.prompt("crm").await;
    assert_eq!(p.manifest_revision, revision);
    assert!(p.mandatory);
    assert_eq!(
        tokens(&p),
        [
            "RUN_AS_SYSTEM_USER",
            "WEBHOOKS_ADDED",
            "DATABASE_MIRRORING_ADDED",
            "SCOPES_ADDED"
        ]
    );
    let system = change(&p, "RUN_AS_SYSTEM_USER");
    assert_eq!(system.from, SEED_FROM);
    assert_eq!(system.to, SEED_TO);
    assert_eq!(
        change(&p, "SCOPES_ADDED").to,
        "access to the API scope calendar:read"
    );
    assert_eq!(change(&p, "WEBHOOKS_ADDED").from, "no webhooks");
    assert_eq!(
        change(&p, "DATABASE_MIRRORING_ADDED").from,
        "no database mirroring"
    );
    // The triggers are GetAppScopes' re-approval reasons.
    let report = api.scopes("crm").await;
    assert!(report.reapproval_required);
    assert_eq!(
        report.reapproval_reasons,
        tokens(&p)[..3]
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
    );

    // An approval of an older revision is refused; the prompt's revision is the one to pass.
    let stale = api.approve(&alice, "crm", 1, site.clone()).await;
    assert_eq!(stale.unwrap_err().code(), Code::Aborted);
    api.approve(&alice, "crm", p.manifest_revision, site.clone())
        .await
        .unwrap();
    let p = api.prompt("crm").await;
    assert!(!p.mandatory && p.changes.is_empty(), "{p:#?}");

    // A pending addition only: a higher right and a new level, not mandatory.
    let wider = Manifest {
        run_as: RunAs::SystemUser.into(),
        webhooks: true,
        database_mirroring: true,
        ..manifest(
            &["documents:read", "calendar:read"],
            &[
                (ScopeLevel::SiteCollection, Right::Manage),
                (ScopeLevel::List, Right::Read),
            ],
        )
    };
    let written = {
        let request = UpdateAppManifestRequest {
            app_id: "crm".into(),
            manifest: Some(wider),
        };
        ok(api
            .admin
            .clone()
            .update_app_manifest(boot(request, None))
            .await)
        .written_at
    };
    let p = api
        .prompt_as(&Who::boot(), "acme", "crm", fresh(&written))
        .await
        .unwrap();
    assert!(!p.mandatory);
    assert_eq!(tokens(&p), ["PERMISSION_REQUESTS_ADDED", "RIGHT_RAISED"]);
    let raised = change(&p, "RIGHT_RAISED");
    assert_eq!(
        (raised.from.as_str(), raised.to.as_str()),
        ("WRITE on a site collection", "MANAGE on a site collection")
    );
    assert_eq!(change(&p, "PERMISSION_REQUESTS_ADDED").to, "READ on a list");

    // Revoked: mandatory again, and every element is new, the system user with the seed's words.
    api.revoke("crm").await;
    let p = api.prompt("crm").await;
    assert!(p.mandatory);
    assert_eq!(
        tokens(&p),
        [
            "RUN_AS_SYSTEM_USER",
            "WEBHOOKS_ADDED",
            "DATABASE_MIRRORING_ADDED",
            "SCOPES_ADDED",
            "PERMISSION_REQUESTS_ADDED"
        ]
    );
    assert_eq!(change(&p, "RUN_AS_SYSTEM_USER").to, SEED_TO);
    assert_eq!(approvers(&p), [Approver::Administrator]);
    server.stop().await;
}

async fn a_custom_apps_first_activation_may_be_approved_by_an_app_manager(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(&server).await;
    api.acme().await;
    let m = manifest(&["documents:read"], &[]);
    register(&mut api.admin.clone(), "reports", AppKind::Custom, m).await;
    let manager_key = new_client(
        &mut api.admin.clone(),
        &Who::boot(),
        "store",
        &["acme"],
        &[Capability::Admin, Capability::AppManager, Capability::Query],
    )
    .await;
    let manager = Who::key(&manager_key);

    // First activation: an administrator or the app manager.
    let p = api.prompt("reports").await;
    assert_eq!(p.kind(), AppKind::Custom);
    assert!(p.mandatory);
    assert_eq!(
        approvers(&p),
        [Approver::Administrator, Approver::AppManager]
    );
    // The app manager sees the same prompt, and the approval it offers is accepted.
    let seen = api
        .prompt_as(&manager, "acme", "reports", None)
        .await
        .unwrap();
    assert_eq!(seen.approvers, p.approvers);
    api.approve(&manager, "reports", p.manifest_revision, vec![])
        .await
        .unwrap();
    let p = api.prompt("reports").await;
    assert!(!p.mandatory && p.changes.is_empty());
    assert_eq!(approvers(&p), [Approver::Administrator]);

    // Re-approval after an escalation: administrators only, and the app manager is refused.
    let revision = api
        .update_manifest(
            "reports",
            Manifest {
                webhooks: true,
                ..manifest(&["documents:read"], &[])
            },
        )
        .await;
    let p = api.prompt("reports").await;
    assert!(p.mandatory);
    assert_eq!(tokens(&p), ["WEBHOOKS_ADDED"]);
    assert_eq!(approvers(&p), [Approver::Administrator]);
    let refused = api.approve(&manager, "reports", revision, vec![]).await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);

    // Reactivation after a revocation: administrators only.
    api.revoke("reports").await;
    let p = api.prompt("reports").await;
    assert!(p.mandatory);
    assert_eq!(approvers(&p), [Approver::Administrator]);
    let refused = api.approve(&manager, "reports", revision, vec![]).await;
    assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    api.approve(&Who::boot().user("alice"), "reports", revision, vec![])
        .await
        .unwrap();
    assert!(!api.prompt("reports").await.mandatory);
    server.stop().await;
}

async fn the_prompt_is_refused_like_every_query(db: &TestDb) {
    let server = TestServer::start(db).await;
    let api = Api::at(&server).await;
    api.acme().await;
    put_tenant(&mut api.admin.clone(), "globex").await;
    register(
        &mut api.admin.clone(),
        "crm",
        AppKind::Standard,
        manifest(&[], &[]),
    )
    .await;
    let mut a = api.admin.clone();
    let bound = new_client(
        &mut a,
        &Who::boot(),
        "acme-only",
        &["acme"],
        &[Capability::Query],
    )
    .await;
    let admin_only = new_client(&mut a, &Who::boot(), "ops", &["*"], &[Capability::Admin]).await;
    let bound = Who::key(&bound);
    let boot = Who::boot();

    // The tenant-bound client may ask about its own tenant.
    let p = api.prompt_as(&bound, "acme", "crm", None).await.unwrap();
    assert!(p.mandatory && p.changes.is_empty(), "{p:#?}");

    let mut cases = Cases::new("GetConsentPrompt refusals");
    for consistency in [None, fully()] {
        let how = if consistency.is_some() {
            "store"
        } else {
            "cache"
        };
        let ask = async |who: &Who, tenant: &str, app: &str| {
            api.prompt_as(who, tenant, app, consistency.clone()).await
        };
        cases.check(
            format!("unknown tenant ({how})"),
            ask(&boot, "ghost", "crm").await,
            Code::NotFound,
            "ghost",
        );
        cases.check(
            format!("unknown app ({how})"),
            ask(&boot, "acme", "ghost").await,
            Code::NotFound,
            "ghost",
        );
        for (field, tenant, app) in [
            ("tenant_id", "", "crm"),
            ("tenant_id", "ac me", "crm"),
            ("app_id", "acme", ""),
            ("app_id", "acme", "crm/v2"),
        ] {
            cases.check(
                format!("{field} {tenant:?}/{app:?} ({how})"),
                ask(&boot, tenant, app).await,
                Code::InvalidArgument,
                field,
            );
        }
        for tenant in ["globex", "ghost"] {
            cases.check(
                format!("a tenant-bound client asking about {tenant} ({how})"),
                ask(&bound, tenant, "crm").await,
                Code::PermissionDenied,
                "acme-only",
            );
        }
        cases.check(
            format!("a client without query ({how})"),
            ask(&Who::key(&admin_only), "acme", "crm").await,
            Code::PermissionDenied,
            "query",
        );
        cases.check(
            format!("no key ({how})"),
            ask(&Who::nobody(), "acme", "crm").await,
            Code::Unauthenticated,
            "",
        );
        cases.check(
            format!("an unknown key ({how})"),
            ask(&Who::key("no-such-key-0123456789abcdef"), "acme", "crm").await,
            Code::Unauthenticated,
            "",
        );
    }
    cases.check(
        "a malformed token",
        api.prompt_as(&boot, "acme", "crm", fresh("x1")).await,
        Code::InvalidArgument,
        "at_least_as_fresh",
    );
    cases.check(
        "a token from the future",
        api.prompt_as(&boot, "acme", "crm", fresh("r999999")).await,
        Code::FailedPrecondition,
        "",
    );
    cases.finish();
    server.stop().await;
}
