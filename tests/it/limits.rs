//! The server's request policy: oversized messages, the per-request timeout, and load shedding
//! beyond the concurrency limit. A request is held in flight deterministically by locking the
//! revision row (every write takes it first) from a connection of the test's own.

use std::time::Duration;

use consentry::proto::{CheckAccessBatchRequest, CheckAccessRequest, ListAuditEventsRequest};
use sqlx::{Connection, PgConnection};
use tonic::Code;

use crate::support::calls::boot;
use crate::support::db::TestDb;
use crate::support::fixtures::tenant_req;
use crate::support::server::{TestServer, config, eventually};

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
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("--max-message-bytes"), "{err:?}");
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
        .put_tenant(boot(tenant_req("late", "production", false), None))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    lock.close().await.unwrap();
    // The abandoned write rolled back: no tenant, no audit event.
    assert_no_trace(&mut admin, "tenant:late").await;
    let written = admin
        .put_tenant(boot(tenant_req("late", "production", false), None))
        .await
        .unwrap()
        .into_inner();
    assert!(written.created);
    server.stop().await;
    db.cleanup().await;
}

/// Asserts no audit event names `target`: a write to it left no trace.
async fn assert_no_trace(
    admin: &mut consentry::proto::admin_service_client::AdminServiceClient<
        tonic::transport::Channel,
    >,
    target: &str,
) {
    let events = admin
        .list_audit_events(boot(ListAuditEventsRequest::default(), None))
        .await
        .unwrap()
        .into_inner();
    assert!(
        events.events.iter().all(|e| e.target != target),
        "a write to {target} left a trace: {events:?}"
    );
}

/// A unary gRPC call over a bare HTTP/2 connection, with the headers given and no deadline of
/// the client's own (a tonic client would enforce `grpc-timeout` itself, and cancel): the
/// `grpc-status` the server answered with, and its `grpc-message`.
async fn raw_unary(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    message: impl prost::Message,
) -> (i32, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let mut request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let (response, mut send) = client
        .send_request(request.body(()).unwrap(), false)
        .unwrap();
    let body = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend(u32::try_from(body.len()).unwrap().to_be_bytes());
    frame.extend(body);
    send.send_data(bytes::Bytes::from(frame), true).unwrap();
    let (head, mut body) = response.await.unwrap().into_parts();
    let status = |headers: &http::HeaderMap| {
        let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
        let message = headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default();
        Some((code, message.to_owned()))
    };
    // A refusal is trailers-only: the status is in the headers.
    if let Some(answer) = status(&head.headers) {
        return answer;
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.unwrap().unwrap_or_default();
    status(&trailers).expect("the answer ends with a grpc-status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callers_deadline_shorter_than_the_servers_is_honoured_and_leaves_no_trace() {
    let db = TestDb::postgres().await;
    let server = TestServer::start(&db).await;
    let lock = block_writes(&db).await;
    let sent = std::time::Instant::now();
    let auth = format!("Bearer {}", crate::support::server::BOOTSTRAP_KEY);
    let (code, message) = raw_unary(
        server.addr,
        "/consentry.v1.AdminService/PutTenant",
        &[("authorization", &auth), ("grpc-timeout", "300m")],
        tenant_req("hasty", "production", false),
    )
    .await;
    let took = sent.elapsed();
    assert_eq!(Code::from_i32(code), Code::DeadlineExceeded, "{message}");
    assert!(message.contains("caller"), "{message}");
    // The server's own limit is 5 s; the caller's 300 ms deadline ended the call.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    lock.close().await.unwrap();
    assert_no_trace(&mut server.admin().await, "tenant:hasty").await;
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
    let held = tokio::spawn(async move {
        admin
            .put_tenant(boot(tenant_req("held", "production", false), None))
            .await
    });
    // Checks start once the write waits on the lock: one sent earlier could take the slot first
    // and have the write shed instead.
    let mut watcher = PgConnection::connect(&db.url).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )
    .fetch_one(&mut watcher)
    .await
    .unwrap()
        == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    watcher.close().await.unwrap();
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
