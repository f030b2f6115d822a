//! `scripts/bench-data`, the dataset generator: what it writes is what consentry reads. A small
//! dataset loaded into a fresh database serves a real server through the generated client key
//! (every check the manifest lists is ALLOWED, every app's grants are reported, the hot users'
//! external grants hold), the server's revisions follow the dataset's, and the same seed writes
//! the same tables while another seed does not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use consentry::proto::consistency::Requirement;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::proto::*;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tonic::transport::Channel;

use crate::support::calls::{ok, req};
use crate::support::db::TestDb;
use crate::support::dir::TempDir;
use crate::support::fixtures::rev;
use crate::support::server::TestServer;

/// Every table of the schema but the migration history (which records when it ran).
const TABLES: [&str; 16] = [
    "revision",
    "tenants",
    "tenant_users",
    "user_rights",
    "api_users",
    "apps",
    "consents",
    "whitelist_entries",
    "permission_groups",
    "group_principals",
    "external_permissions",
    "external_grants",
    "clients",
    "audit_events",
    "changes",
    "settings",
];

/// Runs the generator into `db` with `seed` at 2,000 rights; returns its manifest.
async fn generate(db: &TestDb, seed: u32, dir: &TempDir) -> (Value, PathBuf) {
    let manifest = dir
        .0
        .join(format!("bench-data-{seed}-{}.json", db.postgres_name()));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/bench-data");
    let out = tokio::process::Command::new(script)
        .args(["--database-url", &db.url, "--seed", &seed.to_string()])
        .args([
            "--rights",
            "2000",
            "--tenants",
            "3",
            "--users",
            "240",
            "--manifest",
        ])
        .arg(&manifest)
        .output()
        .await
        .expect("scripts/bench-data runs (python3 and psql)");
    assert!(
        out.status.success(),
        "scripts/bench-data failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&manifest).unwrap();
    (serde_json::from_str(&text).unwrap(), manifest)
}

/// The MD5 of each table's rows, in order.
async fn digests(db: &TestDb) -> BTreeMap<&'static str, String> {
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let mut out = BTreeMap::new();
    for table in TABLES {
        let digest: String = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT md5(COALESCE(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {table} t"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        out.insert(table, digest);
    }
    let _ = conn.close().await;
    out
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn list<'a>(v: &'a Value, key: &str) -> &'a Vec<Value> {
    v[key].as_array().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn fully() -> Option<Consistency> {
    Some(Consistency {
        requirement: Some(Requirement::FullyConsistent(true)),
    })
}

/// A resolved request as the manifest lists it, as GetAppScopes answers it.
fn grant(g: &Value) -> ResolvedRequest {
    let level = ScopeLevel::from_str_name(&format!("SCOPE_LEVEL_{}", text(g, "scope_level")));
    let right = Right::from_str_name(&format!("RIGHT_{}", text(g, "right")));
    ResolvedRequest {
        scope_level: level.expect("a scope level").into(),
        right: right.expect("a right").into(),
        resource: text(g, "resource").to_owned(),
    }
}

/// Asks the server at `api` everything the manifest says the data allows, with its key.
async fn serves_the_manifest(api: &mut PermissionServiceClient<Channel>, manifest: &Value) {
    let key = text(&manifest["client"], "key");
    let tenants = list(manifest, "tenants");
    assert!(!tenants.is_empty(), "the manifest describes tenants");
    let (mut checks, mut grants) = (0, 0);
    for tenant in tenants {
        let tenant_id = text(tenant, "tenant_id");
        for app in list(tenant, "apps") {
            let app_id = text(app, "app_id");
            for consistency in [None, fully()] {
                let r = ok(api
                    .get_app_scopes(req(
                        GetAppScopesRequest {
                            tenant_id: tenant_id.to_owned(),
                            app_id: app_id.to_owned(),
                            consistency,
                        },
                        key,
                        None,
                    ))
                    .await);
                let expected: Vec<ResolvedRequest> =
                    list(app, "app_grants").iter().map(grant).collect();
                assert_eq!(r.app_grants, expected, "{tenant_id}/{app_id}");
                let scopes: Vec<&str> = list(app, "scopes")
                    .iter()
                    .map(|s| s.as_str().unwrap())
                    .collect();
                assert_eq!(r.effective_scopes, scopes, "{tenant_id}/{app_id}");
                let consent = r.consent.expect("a consent");
                assert_eq!(consent.status(), ConsentStatus::Approved);
                assert!(!r.reapproval_required && r.pending_scopes.is_empty());
                // Revision 1 is the dataset, 2 the server's bootstrap client.
                assert_eq!(rev(&r.checked_at), 2, "the head after the dataset");
            }
        }
        for check in list(tenant, "checks") {
            let r = ok(api
                .check_access(req(
                    CheckAccessRequest {
                        tenant_id: tenant_id.to_owned(),
                        app_id: text(check, "app_id").to_owned(),
                        user_id: text(check, "user_id").to_owned(),
                        permission: text(check, "permission").to_owned(),
                        resource: text(check, "resource").to_owned(),
                        ..CheckAccessRequest::default()
                    },
                    key,
                    None,
                ))
                .await);
            assert!(
                r.allowed && r.reason() == Reason::Allowed,
                "{tenant_id} {check}: {:?} {}",
                r.reason(),
                r.message
            );
            checks += 1;
        }
        for g in list(tenant, "grants") {
            let r = ok(api
                .check_external_permission(req(
                    CheckExternalPermissionRequest {
                        tenant_id: tenant_id.to_owned(),
                        user_id: text(g, "user_id").to_owned(),
                        group_id: text(g, "group_id").to_owned(),
                        external_id: text(g, "external_id").to_owned(),
                        ..CheckExternalPermissionRequest::default()
                    },
                    key,
                    None,
                ))
                .await);
            assert!(r.granted, "{tenant_id} {g}");
            grants += 1;
        }
    }
    assert!(checks >= 20, "only {checks} checks in the manifest");
    assert!(grants >= 1, "no external grant in the manifest");
}

#[tokio::test]
async fn generated_data_serves_and_follows_from_the_seed() {
    let dir = TempDir::new("bench-data");
    let (a, b, c) = (
        TestDb::postgres().await,
        TestDb::postgres().await,
        TestDb::postgres().await,
    );
    let (manifest, manifest_a) = generate(&a, 7, &dir).await;
    let (_, manifest_b) = generate(&b, 7, &dir).await;
    generate(&c, 8, &dir).await;
    assert_eq!(manifest["counts"]["user_rights"], 2000);
    assert_eq!(manifest["counts"]["tenants"], 3);
    assert_eq!(manifest["counts"]["tenant_users"], 240);

    let (da, db, dc) = (digests(&a).await, digests(&b).await, digests(&c).await);
    assert_eq!(da, db, "the same seed writes the same tables");
    assert_eq!(
        std::fs::read(&manifest_a).unwrap(),
        std::fs::read(&manifest_b).unwrap(),
        "and the same manifest"
    );
    assert_ne!(
        da["user_rights"], dc["user_rights"],
        "another seed, other rights"
    );

    let server = TestServer::start(&a).await;
    let mut api = server.permission().await;
    serves_the_manifest(&mut api, &manifest).await;
    server.stop().await;
    for db in [a, b, c] {
        db.cleanup().await;
    }
}
