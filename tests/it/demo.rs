//! `serve --demo` writes a client with every capability whose key the README prints, so it runs
//! only on a database of its own: a new SQLite file, and that file again after a restart; a file
//! holding data the demo did not write is refused, with the reason, before anything is written;
//! Postgres only with `--demo-allow-postgres`. It never signs context tokens with a key file,
//! only with a throwaway key of its own.

use std::path::Path;
use std::time::Duration;

use consentry::domain::{Capabilities, ClientId, TenantBounds};
use consentry::proto::CheckAccessRequest;
use consentry::proto::permission_service_client::PermissionServiceClient;
use consentry::service::auth::hash_key;
use consentry::store::{ClientKeys, ClientWrites};
use sqlx::{Connection, PgConnection, SqliteConnection};

use crate::support::calls::req;
use crate::support::db::TestDb;
use crate::support::dir::TempDir;
use crate::support::fixtures::tenant_req;
use crate::support::server::{BOOTSTRAP_KEY, BinaryServer, connect};

/// The key the README's examples use.
const DEMO_KEY: &str = "csk_demo-key-only-for-the-example-world";

/// The demo server printed the README's key, and a check the demo world allows is allowed.
async fn demo_answers(server: &BinaryServer) {
    assert_eq!(server.stdout.first().map(String::as_str), Some(DEMO_KEY));
    let mut client = PermissionServiceClient::new(connect(server.addr).await);
    let question = CheckAccessRequest {
        tenant_id: "acme".into(),
        app_id: "crm".into(),
        user_id: "dave".into(),
        permission: "EDIT_ITEMS".into(),
        resource: "/hr/team/docs".into(),
        ..Default::default()
    };
    let answer = client
        .check_access(req(question, DEMO_KEY, None))
        .await
        .expect("the demo key answers")
        .into_inner();
    assert!(answer.allowed, "{answer:?}");
}

/// Runs `consentry serve --demo` plus `args` on `url` (with the bootstrap key, as the other
/// binary tests do) and expects it to stop by itself, failing; returns what it wrote to stderr.
async fn refused(url: &str, args: &[&str]) -> String {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_consentry"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            url,
            "--demo",
        ])
        .args(args)
        .env("CONSENTRY_BOOTSTRAP_KEY", BOOTSTRAP_KEY)
        .env_remove("DATABASE_URL")
        .env_remove("CONSENTRY_DEMO_ALLOW_POSTGRES")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("a refused demo exits by itself")
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "the demo was not refused: {stderr}"
    );
    stderr
}

/// The bytes of an SQLite file and of the journal files beside it.
fn sqlite_files(db: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    ["", "-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let path = format!("{}{suffix}", db.display());
            let bytes = std::fs::read(&path).ok();
            (path, bytes)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_starts_on_a_new_sqlite_file_and_again_on_its_own() {
    let dir = TempDir::new("demo-own");
    let url = format!("sqlite://{}", dir.0.join("consentry.db").display());
    let server = BinaryServer::start(&url, &["--demo"]).await;
    demo_answers(&server).await;
    // What the README's examples do with the demo key: write to the demo's world.
    let mut admin = server.admin().await;
    admin
        .put_tenant(req(tenant_req("extra", "test", false), DEMO_KEY, None))
        .await
        .expect("a write with the demo key");
    assert!(server.terminate().await.success());

    let again = BinaryServer::start(&url, &["--demo"]).await;
    demo_answers(&again).await;
    assert!(again.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_refuses_a_sqlite_file_holding_consentry_data_it_did_not_write() {
    let db = TestDb::sqlite().await;
    let path = db.sqlite_path().unwrap();
    {
        let store = db.store().await;
        store
            .create_client(
                None,
                &ClientId::parse("id", "ops").unwrap(),
                &TenantBounds::All,
                Capabilities::all(),
                &hash_key("an-operator-key"),
            )
            .await
            .unwrap();
        store.pool().close().await;
    }
    let before = sqlite_files(&path);
    let stderr = refused(&db.url, &[]).await;
    assert!(
        stderr.contains("--demo refuses")
            && stderr.contains("data the demo did not write")
            && stderr.contains("CreateClient of client:ops")
            && stderr.contains("new SQLite file"),
        "{stderr}"
    );
    assert!(!stderr.contains("an-operator-key"), "{stderr}");
    assert_eq!(
        sqlite_files(&path),
        before,
        "the refused demo wrote to the file"
    );
    let store = db.store().await;
    assert!(
        store
            .client_by_key_hash(&hash_key(DEMO_KEY))
            .await
            .unwrap()
            .is_none(),
        "the demo client was written"
    );
    store.pool().close().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_refuses_another_applications_sqlite_file() {
    let dir = TempDir::new("demo-foreign");
    let path = dir.0.join("shop.db");
    let url = format!("sqlite://{}", path.display());
    let mut conn = SqliteConnection::connect(&format!("{url}?mode=rwc"))
        .await
        .unwrap();
    sqlx::raw_sql("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers (name) VALUES ('Ada');")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let before = sqlite_files(&path);
    let stderr = refused(&url, &[]).await;
    assert!(
        stderr.contains("--demo refuses") && stderr.contains("not consentry's (customers)"),
        "{stderr}"
    );
    assert_eq!(
        sqlite_files(&path),
        before,
        "the refused demo wrote to the file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_postgres_only_when_forced() {
    let db = TestDb::postgres().await;
    let stderr = refused(&db.url, &[]).await;
    assert!(
        stderr.contains("--demo refuses Postgres") && stderr.contains("--demo-allow-postgres"),
        "{stderr}"
    );
    let clients = |url: String| async move {
        let mut conn = PgConnection::connect(&url).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clients")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        n
    };
    assert_eq!(clients(db.url.clone()).await, 0, "the refused demo wrote");

    let server = BinaryServer::start(&db.url, &["--demo", "--demo-allow-postgres"]).await;
    demo_answers(&server).await;
    assert!(server.terminate().await.success());
    // Its own database again, forced again: it carries on.
    let again = BinaryServer::start(&db.url, &["--demo", "--demo-allow-postgres"]).await;
    demo_answers(&again).await;
    assert!(again.terminate().await.success());
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forced_demo_still_refuses_a_postgres_database_with_other_data() {
    let db = TestDb::postgres().await;
    {
        let store = db.store().await;
        store
            .ensure_bootstrap_client(&hash_key("a-production-bootstrap-key"))
            .await
            .unwrap();
        store.pool().close().await;
    }
    let stderr = refused(&db.url, &["--demo-allow-postgres"]).await;
    assert!(
        stderr.contains("data the demo did not write") && stderr.contains("client:bootstrap"),
        "{stderr}"
    );
    db.cleanup().await;
}

/// The published key set of `server` (asked with no key) and a token the demo key mints for dave.
async fn demo_token(server: &BinaryServer) -> (consentry::token::Jwks, String) {
    use consentry::proto::{GetSigningKeysRequest, IssueContextTokenRequest};
    let mut client = PermissionServiceClient::new(connect(server.addr).await);
    let jwks = client
        .get_signing_keys(GetSigningKeysRequest {})
        .await
        .expect("the keys need no key")
        .into_inner()
        .jwks;
    let reply = client
        .issue_context_token(req(
            IssueContextTokenRequest {
                tenant_id: "acme".into(),
                app_id: "crm".into(),
                user_id: "dave".into(),
                resource: "/hr".into(),
                audience: "https://docs.example".into(),
                ..Default::default()
            },
            DEMO_KEY,
            None,
        ))
        .await
        .expect("the demo issues tokens")
        .into_inner();
    assert!(reply.issued, "{reply:?}");
    (consentry::token::Jwks::parse(&jwks).unwrap(), reply.token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_signs_only_with_a_throwaway_key_of_its_own() {
    let dir = TempDir::new("demo-keys");
    let key_file = dir.write("signing.pem", &consentry::token::generate_pem().unwrap());
    let url = format!("sqlite://{}", dir.0.join("consentry.db").display());
    // A key file with --demo is refused at start, before anything binds or is written.
    let stderr = refused(&url, &["--signing-key-file", key_file.to_str().unwrap()]).await;
    assert!(
        stderr.contains("--demo refuses --signing-key-file") && !stderr.contains("listening"),
        "{stderr}"
    );
    assert!(
        !dir.0.join("consentry.db").exists(),
        "the refused demo wrote"
    );

    // Without one it signs with a key it made at start: published, and new at every start.
    let verify = |jwks: &consentry::token::Jwks, token: &str| {
        let expected = consentry::token::Expected::new("https://docs.example");
        consentry::token::verify(token, jwks, &expected, std::time::SystemTime::now())
    };
    let server = BinaryServer::start(&url, &["--demo"]).await;
    let (first_keys, first_token) = demo_token(&server).await;
    assert_eq!(first_keys.keys.len(), 1);
    assert_eq!(
        verify(&first_keys, &first_token).unwrap().sub.as_deref(),
        Some("dave")
    );
    assert!(server.terminate().await.success());
    let again = BinaryServer::start(&url, &["--demo"]).await;
    let (keys, token) = demo_token(&again).await;
    assert_ne!(
        keys.keys[0].kid, first_keys.keys[0].kid,
        "a new key every start"
    );
    assert!(verify(&keys, &token).is_ok());
    let old = verify(&keys, &first_token).unwrap_err();
    assert_eq!(old.reason(), "UNKNOWN_KEY");
    assert!(again.terminate().await.success());
}
