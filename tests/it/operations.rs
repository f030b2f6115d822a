//! What docs/operations.md tells an operator to do, done: the least-privilege roles' SQL run as
//! written, migrations applied by the migration role, and the server serving, writing and
//! reading as the runtime role with `--migrate=false`; the admin commands as the runtime role
//! (`admin`), a restore as the guide says (`restore`) and a rollback (`rollback`).

use consentry::proto::{CheckAccessRequest, PutTenantRequest};
use consentry::store::backend::{check_migrated, is_schema_behind};
use sqlx::{Connection, PgConnection};

use crate::support::calls::boot;
use crate::support::db::postgres_server_url;
use crate::support::server::{TestServer, config_at};

mod admin;
mod guide;
mod restore;
mod rollback;

use guide::{Names, attempt, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_least_privilege_roles_migrate_and_serve() {
    let names = Names::new();
    names.set_up().await;
    let (migrator, runtime) = (names.migrator_url(), names.runtime_url());

    // Before `consentry migrate`, a server with --migrate=false would wait.
    let behind = check_migrated(&runtime).await.unwrap_err();
    assert!(is_schema_behind(&behind), "{behind:#}");
    // The runtime role can change no schema: neither migrate nor create a table.
    assert!(consentry::store::migrate(&runtime).await.is_err());
    consentry::store::migrate(&migrator).await.unwrap();
    let mut conn = PgConnection::connect(&runtime).await.unwrap();
    let create = sqlx::raw_sql("CREATE TABLE intruder (x int)")
        .execute(&mut conn)
        .await;
    assert!(create.is_err(), "the runtime role created a table");
    conn.close().await.unwrap();
    check_migrated(&runtime).await.unwrap();
    // Nor the migration history: it reads it (checking the schema needs that) and changes
    // nothing there, though the guide's default privileges cover every table of the migrator.
    let history_is_read_only = || async {
        attempt(&runtime, "SELECT count(*) FROM _sqlx_migrations")
            .await
            .expect("the runtime role reads the migration history");
        for change in [
            "DELETE FROM _sqlx_migrations",
            "UPDATE _sqlx_migrations SET success = false",
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'forged', true, '\\x00', 0)",
            "TRUNCATE _sqlx_migrations",
        ] {
            let refused = attempt(&runtime, change).await;
            assert_eq!(
                refused.as_ref().map_err(|(code, _)| code.as_str()),
                Err("42501"),
                "{change}: {refused:?}"
            );
        }
    };
    history_is_read_only().await;
    // A database set up before the history was kept read-only gets it at its next migration.
    let database = names.superuser_url();
    let regrant = format!(
        "GRANT INSERT, UPDATE, DELETE ON _sqlx_migrations TO {}",
        names.runtime
    );
    run(&database, &[regrant]).await;
    consentry::store::migrate(&migrator).await.unwrap();
    history_is_read_only().await;
    check_migrated(&runtime).await.unwrap();
    // A runtime role that cannot read the migrations table is an error, not a wait.
    let revoke = format!("REVOKE SELECT ON _sqlx_migrations FROM {}", names.runtime);
    run(&database, &[revoke]).await;
    let refused = check_migrated(&runtime).await.unwrap_err();
    assert!(!is_schema_behind(&refused), "{refused:#}");
    let grant = format!("GRANT SELECT ON _sqlx_migrations TO {}", names.runtime);
    run(&database, &[grant]).await;

    // Serving as the runtime role: the demo world written, a tenant written, a check answered.
    let mut config = config_at(&runtime);
    config.migrate = false;
    config.demo = true;
    config.demo_allow_postgres = true;
    let server = TestServer::start_with(config).await;
    let mut admin = server.admin().await;
    admin
        .put_tenant(boot(
            PutTenantRequest {
                tenant_id: "ops".into(),
                environment: "production".into(),
                whitelisting_enabled: false,
            },
            None,
        ))
        .await
        .expect("an audited write as the runtime role");
    let answer = server
        .permission()
        .await
        .check_access(boot(
            CheckAccessRequest {
                tenant_id: "acme".into(),
                app_id: "reports".into(),
                permission: "READ".into(),
                resource: "/finance".into(),
                ..Default::default()
            },
            None,
        ))
        .await
        .expect("a check as the runtime role")
        .into_inner();
    assert!(answer.allowed, "{answer:?}");
    server.stop().await;
}

#[tokio::test]
async fn an_unmigrated_sqlite_file_is_behind_until_migrated() {
    let dir = crate::support::dir::TempDir::new("ops");
    let url = format!("sqlite://{}/consentry.db", dir.0.display());
    let behind = check_migrated(&url).await.unwrap_err();
    assert!(is_schema_behind(&behind), "{behind:#}");
    consentry::store::migrate(&url).await.unwrap();
    check_migrated(&url).await.unwrap();
}

/// The SQLite file holds the page-token secret: it, and the `-wal` and `-shm` files beside it,
/// are readable by their owner alone, whichever command created it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_are_readable_by_their_owner_alone() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    };
    let dir = crate::support::dir::TempDir::new("ops");
    let migrated = dir.0.join("migrated.db");
    consentry::store::migrate(&format!("sqlite://{}", migrated.display()))
        .await
        .unwrap();
    assert_eq!(mode(&migrated), 0o600, "consentry migrate");
    let served = dir.0.join("served.db");
    let server = TestServer::start_with(config_at(&format!("sqlite://{}", served.display()))).await;
    // Written to, so that SQLite has its write-ahead log and shared-memory files open.
    let mut admin = server.admin().await;
    let request = PutTenantRequest {
        tenant_id: "acme".into(),
        environment: "production".into(),
        whitelisting_enabled: false,
    };
    admin.put_tenant(boot(request, None)).await.unwrap();
    for file in ["served.db", "served.db-wal", "served.db-shm"] {
        assert_eq!(mode(&dir.0.join(file)), 0o600, "{file} while serving");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_url_that_asks_for_tls_gets_it() {
    let db = crate::support::db::TestDb::postgres().await;
    let server = TestServer::start_with(config_at(&format!("{}?sslmode=require", db.url))).await;
    let mut admin = PgConnection::connect(&postgres_server_url()).await.unwrap();
    let database = db.url.rsplit('/').next().unwrap().to_owned();
    let encrypted: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.datname = $1 AND s.ssl",
    )
    .bind(&database)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(
        encrypted > 0,
        "no TLS connection from the server to {database}"
    );
    admin.close().await.unwrap();
    server.stop().await;
    db.cleanup().await;
}

/// What a CheckAccess for an app in `tenant` answers at `server`: the code and message.
async fn answer(server: &TestServer, tenant: &str) -> (tonic::Code, String) {
    let request = CheckAccessRequest {
        tenant_id: tenant.into(),
        app_id: "crm".into(),
        permission: "READ".into(),
        resource: "/".into(),
        ..Default::default()
    };
    match server
        .permission()
        .await
        .check_access(boot(request, None))
        .await
    {
        Ok(r) => (tonic::Code::Ok, format!("{:?}", r.into_inner().reason)),
        Err(s) => (s.code(), s.message().to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instances_write_arrives_by_notification_long_before_the_poll() {
    let db = crate::support::db::TestDb::postgres().await;
    let mut slow = crate::support::server::config(&db);
    // Only a notification can bring the write within the test's deadline.
    slow.change_poll_interval = std::time::Duration::from_secs(600);
    slow.max_staleness = std::time::Duration::from_secs(1200);
    let reader = TestServer::start_with(slow).await;
    let writer = TestServer::start(&db).await;
    let before = answer(&reader, "notified").await;
    writer
        .admin()
        .await
        .put_tenant(boot(
            PutTenantRequest {
                tenant_id: "notified".into(),
                environment: "production".into(),
                whitelisting_enabled: false,
            },
            None,
        ))
        .await
        .unwrap();
    crate::support::server::eventually(std::time::Duration::from_secs(10), || async {
        answer(&reader, "notified").await != before
    })
    .await;
    writer.stop().await;
    reader.stop().await;
    db.cleanup().await;
}
