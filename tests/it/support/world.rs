//! Writes through the AdminService that build a test's world: tenants, users, applications and
//! clients, each as a call that must succeed.

use consentry::proto::admin_service_client::AdminServiceClient;
use consentry::proto::{AppKind, Capability, Manifest, Role, UpdateAppManifestRequest};
use tonic::transport::Channel;

use super::calls::{Who, ok};
use super::fixtures::{app_req, client_req, tenant_req, user_req};

/// An AdminService client.
pub type Admin = AdminServiceClient<Channel>;

/// Creates a tenant (environment `production`, whitelisting off) as the bootstrap client;
/// returns the revision it was written at.
pub async fn put_tenant(a: &mut Admin, tenant: &str) -> String {
    ok(
        a.put_tenant(Who::boot().r(tenant_req(tenant, "production", false)))
            .await,
    )
    .written_at
}

/// Puts a user with `roles` as `who`; returns the revision it was written at.
pub async fn put_user(
    a: &mut Admin,
    who: &Who,
    tenant: &str,
    user: &str,
    roles: &[Role],
) -> String {
    ok(a.put_user(who.r(user_req(tenant, user, roles))).await).written_at
}

/// Registers an application as the bootstrap client; returns its manifest revision.
pub async fn register(a: &mut Admin, app: &str, kind: AppKind, m: Manifest) -> i64 {
    ok(a.register_app(Who::boot().r(app_req(app, kind, m))).await).manifest_revision
}

/// Replaces an application's manifest as the bootstrap client; returns its new manifest
/// revision.
pub async fn update_manifest(a: &mut Admin, app: &str, manifest: Manifest) -> i64 {
    let request = UpdateAppManifestRequest {
        app_id: app.into(),
        manifest: Some(manifest),
    };
    ok(a.update_app_manifest(Who::boot().r(request)).await).manifest_revision
}

/// Creates a client as `who`; returns its key.
pub async fn new_client(
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
