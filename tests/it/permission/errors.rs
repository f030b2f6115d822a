//! Validation and callers (docs/rules.md §5): malformed input is INVALID_ARGUMENT naming the field,
//! a token from the future FAILED_PRECONDITION; a caller needs a key, the query capability, its
//! tenants, and assert_user to name a user. Tables that report every case that does not hold.

use tonic::Code;

use super::*;
use crate::support::calls::Cases;
use crate::support::db::postgres_tests;

postgres_tests!(
    malformed_input_is_invalid_argument_and_future_tokens_fail_precondition,
    callers_need_the_query_capability_and_their_tenants,
);

async fn malformed_input_is_invalid_argument_and_future_tokens_fail_precondition(db: &TestDb) {
    let (server, api) = acme_server(db).await;
    let base = may("dave", "EDIT_ITEMS", "/hr");
    let case = |field: &'static str, edit: &dyn Fn(&mut CheckAccessRequest)| {
        let mut q = base.clone();
        edit(&mut q);
        (field, q)
    };
    let malformed = [
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
    let mut cases = Cases::new("malformed input and future tokens");
    for (field, q) in malformed {
        let what = format!("{field} in {q:?}");
        cases.check(what, api.check(q).await, Code::InvalidArgument, field);
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
    cases.check(
        "future CheckAccess",
        api.check(CheckAccessRequest {
            consistency: future.clone(),
            ..base.clone()
        })
        .await,
        Code::FailedPrecondition,
        "",
    );
    cases.check(
        "future GetAppScopes",
        api.scopes(GetAppScopesRequest {
            tenant_id: "acme".into(),
            app_id: "crm".into(),
            consistency: future.clone(),
        })
        .await,
        Code::FailedPrecondition,
        "",
    );
    cases.check(
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
        "",
    );
    cases.check(
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
        "",
    );
    // Malformed tokens on the other queries too.
    cases.check(
        "malformed GetAppScopes token",
        api.scopes(GetAppScopesRequest {
            tenant_id: "acme".into(),
            app_id: "crm".into(),
            consistency: fresh("x1"),
        })
        .await,
        Code::InvalidArgument,
        "",
    );
    cases.check(
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
        "",
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
    cases.finish();
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
    let mut cases = Cases::new("callers");
    assert!(api.check_as(&bound, None, q.clone()).await.unwrap().allowed);
    // Another tenant, existing or not, is refused before anything is looked up.
    for tenant in ["globex", "ghost"] {
        let other = CheckAccessRequest {
            tenant_id: tenant.into(),
            ..q.clone()
        };
        cases.check(
            format!("another tenant: {tenant}"),
            api.check_as(&bound, None, other.clone()).await,
            Code::PermissionDenied,
            "",
        );
        cases.check(
            format!("another tenant, fully consistent: {tenant}"),
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
            "",
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
        cases.check(
            format!("GetAppScopes in another tenant: {tenant}"),
            r,
            Code::PermissionDenied,
            "",
        );
        cases.check(
            format!("ListExternalPermissions in another tenant: {tenant}"),
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
            "",
        );
        cases.check(
            format!("CheckExternalPermission in another tenant: {tenant}"),
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
            "",
        );
    }
    // No `query`: refused on every PermissionService RPC.
    cases.check(
        "admin-only CheckAccess",
        api.check_as(&admin_only, None, q.clone()).await,
        Code::PermissionDenied,
        "",
    );
    cases.check(
        "admin-only batch",
        api.batch(&admin_only, vec![q.clone()], None).await,
        Code::PermissionDenied,
        "",
    );
    cases.check(
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
        "",
    );
    // No, unknown and revoked keys.
    let r = api.perm.clone().check_access(q.clone()).await;
    cases.check("no key", r, Code::Unauthenticated, "");
    cases.check(
        "unknown key",
        api.check_as("csk_not-a-key-anybody-was-given", None, q.clone())
            .await,
        Code::Unauthenticated,
        "",
    );
    api.revoke_client("acme-only").await;
    cases.check(
        "revoked key",
        api.check_as(&bound, None, q.clone()).await,
        Code::Unauthenticated,
        "",
    );
    // x-consentry-user from a client without assert_user: refused on every RPC.
    let plain = api.client("plain", &["acme"], &[Capability::Query]).await;
    cases.check(
        "x-consentry-user without assert_user",
        api.check_as(&plain, Some("dave"), q.clone()).await,
        Code::PermissionDenied,
        "",
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
    cases.check(
        "batch with x-consentry-user",
        batch,
        Code::PermissionDenied,
        "",
    );
    let scopes = api
        .perm
        .clone()
        .get_app_scopes(req(scopes_of("acme", "crm"), &plain, Some("dave")))
        .await;
    cases.check(
        "GetAppScopes with x-consentry-user",
        scopes,
        Code::PermissionDenied,
        "",
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
    cases.finish();
    server.stop().await;
}
