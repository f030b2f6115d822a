//! A backup and restore as the guide writes them, followed step by step: its `pg_dump`, its
//! `DROP ... WITH (FORCE)`, the database made again with the setup blocks, its `pg_restore` as
//! the migration role, the migration Job; the Kubernetes steps as the processes they stop and
//! start (the runtime role's server with `--migrate=false`). Afterwards the backup's state is
//! served, the database belongs to the migration role, PUBLIC cannot connect, the runtime role
//! cannot change the migration history, and the next migration applies.

use consentry::proto::{ListTenantsRequest, PutTenantRequest};
use consentry::store::Backend;
use sqlx::Connection;

use super::guide::{
    Names, attempt, blocks, blocks_in, consentry, run, section, setup_blocks, sh, text,
};
use super::rollback::migrate_as_a_newer_release;
use crate::support::calls::{Who, ok};
use crate::support::db::postgres_server_url;
use crate::support::dir::TempDir;
use crate::support::server::BinaryServer;

/// A server as the manifests run it: the runtime role, `--migrate=false`.
async fn replica(names: &Names) -> BinaryServer {
    BinaryServer::start(&names.runtime_url(), &["--migrate=false"]).await
}

/// The tenants `who` sees at `server`.
async fn tenants(server: &BinaryServer, who: &Who) -> Vec<String> {
    let mut admin = server.admin().await;
    ok(admin
        .list_tenants(who.r(ListTenantsRequest::default()))
        .await)
    .tenants
    .into_iter()
    .map(|t| t.tenant_id)
    .collect()
}

async fn put_tenant(server: &BinaryServer, tenant: &str) {
    let mut admin = server.admin().await;
    ok(admin
        .put_tenant(Who::boot().r(PutTenantRequest {
            tenant_id: tenant.into(),
            environment: "production".into(),
            whitelisting_enabled: false,
        }))
        .await);
}

/// One value read as the server's superuser on the server's own database.
async fn scalar<T>(sql: &str, bind: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
{
    let mut conn = sqlx::PgConnection::connect(&postgres_server_url())
        .await
        .unwrap();
    let value = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(bind)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_as_the_guide_writes_it_brings_back_the_backup_as_it_was_set_up() {
    let names = Names::new();
    names.set_up().await;
    let (migrator, runtime) = (names.migrator_url(), names.runtime_url());
    let dir = TempDir::new("ops-restore");
    let env = [("MIGRATOR_URL", migrator.as_str())];
    let out = consentry(&["migrate"], &[("DATABASE_URL", &migrator)], &dir.0).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let server = replica(&names).await;
    put_tenant(&server, "kept").await;
    let create = [
        "client",
        "create",
        "--id",
        "kept-admin",
        "--tenants",
        "*",
        "--capabilities",
        "admin",
    ];
    let out = consentry(&create, &[("DATABASE_URL", &runtime)], &dir.0).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let kept_admin = Who::key(text(&out.stdout).trim());

    // The backup, as the guide takes it.
    let backup = blocks_in("### Backing up PostgreSQL", "sh");
    assert_eq!(backup.len(), 1, "one backup command");
    assert!(backup[0].contains("pg_dump"), "{}", backup[0]);
    sh(&backup[0], &dir.0, &env);
    // Written after the backup: lost by the restore.
    put_tenant(&server, "lost").await;

    // The restore, step by step.
    let restore = section("### Restoring PostgreSQL");
    assert!(
        restore.contains("second and third blocks of \"Least privilege\""),
        "the guide says how the database is made again"
    );
    let [_, database, grants] = setup_blocks();
    let mut server = Some(server);
    let mut steps = Vec::new();
    for block in blocks(&restore) {
        match block.lang.as_str() {
            "sql" => {
                run(&postgres_server_url(), &names.statements(&block.text)).await;
                if block.text.contains("DROP DATABASE") {
                    // Step 3: the database made again as it was set up.
                    names.create_database(&database, &grants).await;
                    steps.push("drop and create");
                }
            }
            "sh" if block.text.contains("--replicas=0") => {
                let stopped = server.take().expect("a server to stop");
                assert!(stopped.terminate().await.success());
                steps.push("scale to zero");
            }
            "sh" if block.text.contains("job/consentry-migrate") => {
                assert!(
                    block.text.lines().all(|l| l.starts_with("kubectl ")),
                    "the release procedure is kubectl alone: {}",
                    block.text
                );
                // The migration Job, then the replicas back.
                let out = consentry(&["migrate"], &[("DATABASE_URL", &migrator)], &dir.0).await;
                assert!(out.status.success(), "{}", text(&out.stderr));
                assert!(server.is_none());
                server = Some(replica(&names).await);
                steps.push("migrate and scale up");
            }
            "sh" => {
                assert!(
                    !block.text.contains("kubectl"),
                    "a Kubernetes step this test does not know how to follow: {}",
                    block.text
                );
                sh(&block.text, &dir.0, &env);
                steps.push("restore");
            }
            other => panic!("a {other:?} block in the restore steps"),
        }
    }
    assert_eq!(
        steps,
        [
            "scale to zero",
            "drop and create",
            "restore",
            "migrate and scale up"
        ]
    );

    // The backup's state, served by the runtime role's replica; keys of the backup work.
    let server = server.expect("serving again");
    assert_eq!(tenants(&server, &Who::boot()).await, ["kept"]);
    assert_eq!(tenants(&server, &kept_admin).await, ["kept"]);
    // Set up as before: owned by the migration role, closed to PUBLIC, the migration history
    // read-only to the runtime role.
    let owner: String = scalar(
        "SELECT CAST(pg_get_userbyid(datdba) AS TEXT) FROM pg_database WHERE datname = $1",
        &names.database,
    )
    .await;
    assert_eq!(owner, names.migrator);
    let public_connects: bool = scalar(
        "SELECT has_database_privilege('public', $1, 'CONNECT')",
        &names.database,
    )
    .await;
    assert!(
        !public_connects,
        "PUBLIC may connect to the restored database"
    );
    let runtime_connects: bool = scalar(
        &format!(
            "SELECT has_database_privilege('{}', $1, 'CONNECT')",
            names.runtime
        ),
        &names.database,
    )
    .await;
    assert!(runtime_connects);
    let refused = attempt(&runtime, "DELETE FROM _sqlx_migrations").await;
    assert_eq!(
        refused.as_ref().map_err(|(code, _)| code.as_str()),
        Err("42501"),
        "{refused:?}"
    );
    assert!(server.terminate().await.success());
    // The next release's migration applies, as the migration role.
    migrate_as_a_newer_release(&migrator, Backend::Postgres).await;
}
