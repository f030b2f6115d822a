//! What docs/operations.md tells an operator to do, done: the least-privilege roles' SQL run as
//! written, migrations applied by the migration role, and the server serving, writing and
//! reading as the runtime role with `--migrate=false`; and a rollback (`rollback`).

use std::sync::atomic::{AtomicU32, Ordering};

use consentry::proto::{CheckAccessRequest, PutTenantRequest};
use consentry::store::backend::{check_migrated, is_schema_behind};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use crate::support::calls::boot;
use crate::support::db::{postgres_server_url, with_database};
use crate::support::server::{TestServer, config_at};

mod guide;
mod rollback;

const OPERATIONS: &str = include_str!("../../docs/operations.md");

/// The `sql` blocks of the operations guide's section `heading`, in order.
fn sql_blocks(heading: &str) -> Vec<String> {
    let section = OPERATIONS
        .split_once(heading)
        .unwrap_or_else(|| panic!("docs/operations.md has {heading:?}"))
        .1;
    let section = section.split("\n#").next().unwrap_or(section);
    section
        .split("```sql\n")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().to_owned())
        .collect()
}

/// The statements of a block, with the guide's names replaced by this test's own.
fn statements(block: &str, names: &Names) -> Vec<String> {
    let renamed = block
        .replace("consentry_migrator", "\u{1}")
        .replace("consentry_runtime", "\u{2}")
        .replace("consentry", &names.database)
        .replace('\u{1}', &names.migrator)
        .replace('\u{2}', &names.runtime);
    renamed
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Cluster-wide names of one run, dropped afterwards (roles outlive databases, so this does not
/// rely on the test-database sweep).
struct Names {
    database: String,
    migrator: String,
    runtime: String,
}

impl Names {
    fn new() -> Names {
        static N: AtomicU32 = AtomicU32::new(0);
        let n = format!(
            "{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Names {
            // Not the test databases' prefix: their sweep must not take this one.
            database: format!("consentry_ops_{n}"),
            migrator: format!("consentry_ops_migrator_{n}"),
            runtime: format!("consentry_ops_runtime_{n}"),
        }
    }

    /// The URL of this run's database, connecting as `role`.
    fn url(&self, role: &str) -> String {
        let server = postgres_server_url();
        let url = with_database(&server, &self.database);
        let start = url.find("://").unwrap() + 3;
        let at = url[start..]
            .find('@')
            .map(|i| start + i + 1)
            .unwrap_or(start);
        format!("{}{role}@{}", &url[..start], &url[at..])
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        // One statement per `-c`: DROP DATABASE cannot share a transaction.
        let database = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.database);
        let migrator = format!("DROP ROLE IF EXISTS \"{}\"", self.migrator);
        let runtime = format!("DROP ROLE IF EXISTS \"{}\"", self.runtime);
        let out = std::process::Command::new("psql")
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", &postgres_server_url()])
            .args(["-c", &database, "-c", &migrator, "-c", &runtime])
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!("cleanup: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => eprintln!("cleanup: cannot run psql: {e}"),
        }
    }
}

async fn run(url: &str, statements: &[String]) {
    let mut conn = PgConnection::connect(url).await.unwrap();
    for statement in statements {
        sqlx::raw_sql(AssertSqlSafe(statement.clone()))
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    conn.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_least_privilege_roles_migrate_and_serve() {
    let blocks = sql_blocks("### Least privilege");
    assert_eq!(blocks.len(), 2, "the guide's two blocks");
    let names = Names::new();
    run(&postgres_server_url(), &statements(&blocks[0], &names)).await;
    run(
        &with_database(&postgres_server_url(), &names.database),
        &statements(&blocks[1], &names),
    )
    .await;
    let (migrator, runtime) = (names.url(&names.migrator), names.url(&names.runtime));

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
    // A runtime role that cannot read the migrations table is an error, not a wait.
    let database = with_database(&postgres_server_url(), &names.database);
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
