//! A rollback: a database that a newer release has migrated further (here, this build's
//! migrations plus a later one, applied by sqlx's own migrator as a newer binary would) is
//! served by this build with a warning naming the migration it does not know, with
//! `--migrate` either way; `consentry migrate` applies nothing and succeeds; the `client`
//! commands work. A history that lacks one of this build's migrations besides is refused.

use std::path::Path;
use std::time::Duration;

use consentry::proto::{ListTenantsRequest, PutTenantRequest};
use consentry::store::Backend;
use sqlx::migrate::Migrator;
use sqlx::{AssertSqlSafe, Connection};

use super::guide::{consentry, text};
use crate::support::calls::{Who, ok};
use crate::support::db::{TestDb, backend_tests};
use crate::support::dir::TempDir;
use crate::support::server::{BinaryServer, eventually};

backend_tests!(an_older_build_serves_a_schema_a_newer_release_migrated_further);

/// What the newer release adds: a table, and a column with a default on a table this build
/// writes (its inserts leave it at the default).
const LATER: &str = "CREATE TABLE later_release (id BIGINT PRIMARY KEY);\n\
                     ALTER TABLE clients ADD COLUMN later_note TEXT NOT NULL DEFAULT '';\n";
/// The later migration's version and description, as this build's warning names it.
pub const LATER_NAMED: &str = "9001 (later release)";

/// This build's migrations for `backend`, as files.
fn migrations_dir(backend: Backend) -> std::path::PathBuf {
    let name = match backend {
        Backend::Postgres => "postgres",
        Backend::Sqlite => "sqlite",
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(name)
}

/// The newest migration version this build has for `backend`.
fn newest_known(backend: Backend) -> i64 {
    std::fs::read_dir(migrations_dir(backend))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.split('_').next()?.parse::<i64>().ok()
        })
        .max()
        .unwrap()
}

/// Migrates the database at `url` as a newer release would: every migration of this build,
/// then one more (version 9001, "later release").
pub async fn migrate_as_a_newer_release(url: &str, backend: Backend) {
    let dir = TempDir::new("newer-release");
    for entry in std::fs::read_dir(migrations_dir(backend)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.0.join(entry.file_name())).unwrap();
    }
    dir.write("9001_later_release.sql", LATER);
    // A newer release carries the checksums this one pins for its shipped migrations.
    let newer =
        consentry::store::backend::shipped(Migrator::new(dir.0.as_path()).await.unwrap(), backend);
    assert_eq!(newer.iter().last().map(|m| m.version), Some(9001));
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    newer
        .run(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("the newer release's migrations: {e}"));
    conn.close().await.unwrap();
}

/// The versions the database at `url` records.
async fn recorded(url: &str) -> Vec<i64> {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let versions = sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    versions
}

/// Waits until `server` has logged a line containing every one of `needles`.
async fn logged(server: &BinaryServer, needles: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = server
            .stderr
            .lock()
            .unwrap()
            .iter()
            .any(|l| needles.iter().all(|n| l.contains(n)));
        if seen {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no line with {needles:?} in:\n{}",
            server.stderr.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn an_older_build_serves_a_schema_a_newer_release_migrated_further(db: &TestDb) {
    migrate_as_a_newer_release(&db.url, db.backend).await;
    let dir = TempDir::new("rollback");

    // The rollback's migration Job: nothing to apply, a warning, success.
    let out = consentry(&["migrate", "--database-url", &db.url], &[], &dir.0).await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(LATER_NAMED), "{stderr}");

    // Serving, migrating at start (the binary's default): SERVING, writing, with the warning.
    let server = BinaryServer::start(&db.url, &[]).await;
    logged(&server, &["does not know", LATER_NAMED]).await;
    let mut admin = server.admin().await;
    ok(admin
        .put_tenant(Who::boot().r(PutTenantRequest {
            tenant_id: "acme".into(),
            environment: "production".into(),
            whitelisting_enabled: false,
        }))
        .await);
    // The client commands, on the same schema.
    let create = [
        "client",
        "create",
        "--id",
        "ops",
        "--tenants",
        "acme",
        "--capabilities",
        "admin",
        "--database-url",
        &db.url,
    ];
    let out = consentry(&create, &[], &dir.0).await;
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(LATER_NAMED), "{stderr}");
    let ops = Who::key(text(&out.stdout).trim());
    eventually(Duration::from_secs(5), || {
        let mut admin = admin.clone();
        let ops = ops.clone();
        async move {
            admin
                .list_tenants(ops.r(ListTenantsRequest::default()))
                .await
                .is_ok()
        }
    })
    .await;
    assert!(server.terminate().await.success());

    // A --migrate=false replica is not stuck waiting: SERVING, with the warning.
    let server = BinaryServer::start(&db.url, &["--migrate=false"]).await;
    logged(&server, &["does not know", LATER_NAMED]).await;
    let mut admin = server.admin().await;
    let tenants = ok(admin
        .list_tenants(ops.r(ListTenantsRequest::default()))
        .await)
    .tenants;
    assert_eq!(tenants.len(), 1);
    assert!(server.terminate().await.success());

    // Unknown migrations and a known one missing: another line of releases. Refused, nothing
    // applied.
    let newest = newest_known(db.backend);
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query(AssertSqlSafe(format!(
        "DELETE FROM _sqlx_migrations WHERE version = {newest}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let before = recorded(&db.url).await;
    let out = consentry(&["migrate", "--database-url", &db.url], &[], &dir.0).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(LATER_NAMED) && stderr.contains(&newest.to_string()),
        "{stderr}"
    );
    assert!(stderr.contains("another line of releases"), "{stderr}");
    assert_eq!(recorded(&db.url).await, before, "nothing applied");
}

/// What a rollback relies on: every migration only adds (tables, indexes, columns that are
/// nullable or have a default), so an older binary's statements still run on the newer schema.
/// Comments aside, no migration drops, renames, truncates or changes a column, and no added
/// column is `NOT NULL` without a default.
#[test]
fn every_migration_only_adds() {
    for backend in [Backend::Postgres, Backend::Sqlite] {
        for entry in std::fs::read_dir(migrations_dir(backend)).unwrap() {
            let path = entry.unwrap().path();
            let sql: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n")
                .to_uppercase();
            for word in ["DROP ", "RENAME ", "TRUNCATE ", "ALTER COLUMN "] {
                assert!(!sql.contains(word), "{} has {word:?}", path.display());
            }
            for statement in sql.split(';').filter(|s| s.contains("ADD COLUMN")) {
                assert!(
                    !statement.contains("NOT NULL") || statement.contains("DEFAULT"),
                    "{}: a NOT NULL column without a default: {statement}",
                    path.display()
                );
            }
        }
    }
}
