//! The server's request policy: oversized messages, the per-request timeout, and load shedding
//! beyond the concurrency limit. A request is held in flight deterministically by locking the
//! revision row (every write takes it first) from a connection of the test's own.

use std::time::Duration;

use consentry::proto::{
    CheckAccessBatchRequest, CheckAccessRequest, ListAuditEventsRequest, PutTenantRequest,
};
use sqlx::{Connection, PgConnection};
use tonic::Code;

use crate::support::db::TestDb;
use crate::support::server::{TestServer, boot, config, eventually};

fn tenant(id: &str) -> PutTenantRequest {
    PutTenantRequest {
        tenant_id: id.into(),
        environment: "production".into(),
        whitelisting_enabled: false,
    }
}

/// Holds the revision row's lock (so every write waits) until the returned connection rolls back.
async fn block_writes(db: &TestDb) -> PgConnection {
    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    sqlx::query("SELECT value FROM revision WHERE id = 1 FOR UPDATE")
        .execute(&mut conn)
        .await
        .unwrap();
    conn
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_refused_and_the_server_goes_on() {
    let db = TestDb::postgres().await;
    let mut cfg = config(&db);
    cfg.max_message_bytes = 4 * 1024;
    let server = TestServer::start_with(cfg).await;
    let mut permission = server.permission().await;
    let item = CheckAccessRequest {
        tenant_id: "t".into(),
        app_id: "a".repeat(100),
        ..Default::default()
    };
    let big = CheckAccessBatchRequest {
        items: vec![item; 60],
        consistency: None,
    };
    let err = permission
        .check_access_batch(boot(big, None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("too large"), "{err:?}");
    let small = CheckAccessBatchRequest {
        items: vec![],
        consistency: None,
    };
    assert!(
        permission
            .check_access_batch(boot(small, None))
            .await
            .is_ok()
    );
    server.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_timeout_is_deadline_exceeded_and_leaves_no_trace() {
    let db = TestDb::postgres().await;
    let mut cfg = config(&db);
    cfg.request_timeout_ms = 300;
    let server = TestServer::start_with(cfg).await;
    let mut admin = server.admin().await;
    let lock = block_writes(&db).await;
    let err = admin
        .put_tenant(boot(tenant("late"), None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    lock.close().await.unwrap();
    // The abandoned write rolled back: no tenant, no audit event; the next write is revision 1.
    let events = admin
        .list_audit_events(boot(ListAuditEventsRequest::default(), None))
        .await
        .unwrap()
        .into_inner();
    assert!(
        events.events.iter().all(|e| e.target != "tenant:late"),
        "{events:?}"
    );
    let written = admin
        .put_tenant(boot(tenant("late"), None))
        .await
        .unwrap()
        .into_inner();
    assert!(written.created);
    server.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_the_concurrency_limit_are_shed_with_resource_exhausted() {
    let db = TestDb::postgres().await;
    let mut cfg = config(&db);
    cfg.max_concurrent_requests = 1;
    let server = TestServer::start_with(cfg).await;
    let lock = block_writes(&db).await;
    // One write takes the only slot and waits on the lock.
    let mut admin = server.admin().await;
    let held = tokio::spawn(async move { admin.put_tenant(boot(tenant("held"), None)).await });
    let mut permission = server.permission().await;
    let check = CheckAccessRequest {
        tenant_id: "held".into(),
        app_id: "app".into(),
        ..Default::default()
    };
    eventually(Duration::from_secs(10), || {
        let mut permission = permission.clone();
        let check = check.clone();
        async move {
            matches!(permission.check_access(boot(check, None)).await, Err(s) if s.code() == Code::ResourceExhausted)
        }
    })
    .await;
    // Released, the held write completes and the server answers again.
    lock.close().await.unwrap();
    assert!(held.await.unwrap().unwrap().into_inner().created);
    let answer = permission
        .check_access(boot(check, None))
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.allowed);
    server.stop().await;
    db.cleanup().await;
}
