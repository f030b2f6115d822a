//! RevokeUserRight and RevokeAppRight name the level they take away: without a `right`
//! (RIGHT_UNSPECIFIED) they are `INVALID_ARGUMENT` naming `right` and change nothing, on Postgres
//! and SQLite.

use consentry::proto::*;
use tonic::Code;

use crate::support::calls::{Cases, Who, ok};
use crate::support::db::{TestDb, backend_tests};
use crate::support::fixtures::*;
use crate::support::server::TestServer;
use crate::support::world::{put_tenant, put_user, register};

backend_tests!(revoking_without_a_right_is_invalid_and_changes_nothing);

const TENANT: &str = "revoke-acme";

async fn revoking_without_a_right_is_invalid_and_changes_nothing(db: &TestDb) {
    let (server, mut a) = TestServer::start_admin(db).await;
    let boot = Who::boot();
    let alice = boot.user("alice");
    put_tenant(&mut a, TENANT).await;
    put_user(&mut a, &boot, TENANT, "alice", &[Role::GeneralAdmin]).await;
    put_user(&mut a, &boot, TENANT, "bob", &[]).await;
    ok(
        a.grant_user_right(boot.r(right_req(TENANT, "bob", "/hr", Right::FullControl)))
            .await,
    );
    let manifest = manifest(&[], &[(ScopeLevel::SiteCollection, Right::Manage)]);
    register(&mut a, "crm", AppKind::Standard, manifest).await;
    let hr = resolved(ScopeLevel::SiteCollection, Right::Read, "/hr");
    ok(
        a.approve_consent(alice.r(approve_req(TENANT, "crm", 1, vec![hr])))
            .await,
    );
    ok(
        a.grant_app_right(alice.r(app_right_req(TENANT, "crm", "/hr", Right::Manage)))
            .await,
    );

    let mut cases = Cases::new("revoking without a right");
    cases.check(
        "RevokeUserRight without right",
        a.revoke_user_right(boot.r(RevokeUserRightRequest {
            tenant_id: TENANT.into(),
            user_id: "bob".into(),
            resource: "/hr".into(),
            right: Right::Unspecified.into(),
        }))
        .await,
        Code::InvalidArgument,
        "right",
    );
    cases.check(
        "RevokeAppRight without right",
        a.revoke_app_right(alice.r(RevokeAppRightRequest {
            tenant_id: TENANT.into(),
            app_id: "crm".into(),
            resource: "/hr".into(),
            right: Right::Unspecified.into(),
        }))
        .await,
        Code::InvalidArgument,
        "right",
    );
    cases.finish();

    // Nothing was taken away.
    let rights = ok(a
        .list_user_rights(boot.r(ListUserRightsRequest {
            tenant_id: TENANT.into(),
            user_id: "bob".into(),
            ..Default::default()
        }))
        .await)
    .rights;
    assert_eq!(
        rights
            .iter()
            .map(|r| (r.resource.as_str(), r.right))
            .collect::<Vec<_>>(),
        [("/hr", i32::from(Right::FullControl))],
        "bob's right"
    );
    let consents = ok(a
        .list_consents(boot.r(ListConsentsRequest {
            tenant_id: TENANT.into(),
            ..Default::default()
        }))
        .await)
    .consents;
    let app_rights: Vec<_> = consents
        .iter()
        .flat_map(|c| c.app_rights.iter())
        .map(|r| (r.resource.as_str(), r.right))
        .collect();
    assert_eq!(
        app_rights,
        [("/hr", i32::from(Right::Manage))],
        "crm's app rights"
    );

    // Naming the level held still revokes it.
    ok(
        a.revoke_user_right(boot.r(revoke_right_req(TENANT, "bob", "/hr", Right::FullControl)))
            .await,
    );
    ok(a.revoke_app_right(alice.r(RevokeAppRightRequest {
        tenant_id: TENANT.into(),
        app_id: "crm".into(),
        resource: "/hr".into(),
        right: Right::Manage.into(),
    }))
    .await);
    server.stop().await;
}
