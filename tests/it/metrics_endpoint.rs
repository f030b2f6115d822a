//! The `/metrics` endpoint as an HTTP server: `GET /metrics` answers the Prometheus text with its
//! content type on a connection kept alive, other paths are 404 and other methods 405, a head
//! larger than the limit is refused, and a client that never finishes its headers is dropped
//! within the header timeout, with no answer.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use consentry::metrics::{HEADER_READ_TIMEOUT, MAX_REQUEST_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::db::TestDb;
use crate::support::server::{TestServer, config};

/// A server on SQLite serving metrics, and where.
async fn server(db: &TestDb) -> (TestServer, SocketAddr) {
    let mut cfg = config(db);
    cfg.metrics_listen = Some(([127, 0, 0, 1], 0).into());
    let server = TestServer::start_with(cfg).await;
    let metrics = server.metrics_addr.expect("metrics are served");
    (server, metrics)
}

/// One HTTP/1.1 response read from `socket`: status, headers (lower-case names) and body. The
/// body is read by its content-length (none after a HEAD), so the connection stays usable.
async fn response(socket: &mut TcpStream, head_only: bool) -> (u16, Vec<(String, String)>, String) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = socket.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "the connection closed mid-response: {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length" && !head_only)
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0u8; length];
    socket.read_exact(&mut body).await.unwrap();
    (status, headers, String::from_utf8(body).unwrap())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Sends `request` on `socket` and reads its response.
async fn ask(socket: &mut TcpStream, request: &str) -> (u16, Vec<(String, String)>, String) {
    socket.write_all(request.as_bytes()).await.unwrap();
    response(socket, request.starts_with("HEAD ")).await
}

/// Whether the server closes `socket` within `within`, and with what it sent before.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut sent = Vec::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut buf = [0u8; 1024];
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0) | Err(_)) => return Some(sent),
            Ok(Ok(n)) => sent.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn get_metrics_is_answered_on_a_kept_alive_connection_and_nothing_else_is() {
    let db = TestDb::sqlite().await;
    let (server, metrics) = server(&db).await;
    let mut socket = TcpStream::connect(metrics).await.unwrap();
    // Two scrapes on one connection: it is kept alive between them.
    for _ in 0..2 {
        let (status, headers, body) =
            ask(&mut socket, "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert_eq!(status, 200);
        assert_eq!(
            header(&headers, "content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        assert!(body.contains("# HELP consentry_"), "{body}");
    }
    // A query string is no other path.
    let (status, _, body) = ask(&mut socket, "GET /metrics?x=1 HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(status, 200);
    assert!(body.contains("# TYPE"), "{body}");
    // HEAD: the head of the answer, no body.
    let (status, headers, _) = ask(&mut socket, "HEAD /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(status, 200);
    assert!(header(&headers, "content-type").is_some_and(|t| t.starts_with("text/plain")));
    for path in [
        "/",
        "/metric",
        "/metrics/",
        "/health",
        "/metrics/../metrics",
    ] {
        let (status, _, body) = ask(
            &mut socket,
            &format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n"),
        )
        .await;
        assert_eq!((status, body.as_str()), (404, ""), "GET {path}");
    }
    for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let (status, headers, body) = ask(
            &mut socket,
            &format!("{method} /metrics HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"),
        )
        .await;
        assert_eq!((status, body.as_str()), (405, ""), "{method}");
        assert_eq!(header(&headers, "allow"), Some("GET, HEAD"), "{method}");
    }
    // The connection still works after all of that.
    let (status, _, _) = ask(&mut socket, "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert_eq!(status, 200);

    // A head larger than the limit is refused and the connection closed.
    let mut socket = TcpStream::connect(metrics).await.unwrap();
    let big = format!(
        "GET /metrics HTTP/1.1\r\nhost: x\r\nx-padding: {}\r\n\r\n",
        "a".repeat(2 * MAX_REQUEST_BYTES)
    );
    let _ = socket.write_all(big.as_bytes()).await;
    let sent = closed_within(&mut socket, Duration::from_secs(5))
        .await
        .expect("an oversized head closes the connection");
    let sent = String::from_utf8_lossy(&sent);
    assert!(sent.starts_with("HTTP/1.1 431"), "{sent}");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_dropped_within_the_timeout() {
    let db = TestDb::sqlite().await;
    let (server, metrics) = server(&db).await;
    let started = Instant::now();
    // A slow loris: a request line and a header, and never the blank line that ends the head.
    let mut slow = TcpStream::connect(metrics).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // And a connection that says nothing at all.
    let mut silent = TcpStream::connect(metrics).await.unwrap();
    let within = HEADER_READ_TIMEOUT + Duration::from_secs(3);
    for (name, socket) in [("slow", &mut slow), ("silent", &mut silent)] {
        let sent = closed_within(socket, within)
            .await
            .unwrap_or_else(|| panic!("the {name} connection is still open after {within:?}"));
        assert!(
            sent.is_empty(),
            "the {name} client got an answer to a request it never finished: {:?}",
            String::from_utf8_lossy(&sent).lines().next()
        );
    }
    assert!(
        started.elapsed() >= HEADER_READ_TIMEOUT - Duration::from_millis(500),
        "dropped before the timeout: {:?}",
        started.elapsed()
    );
    // Meanwhile others are served.
    let body = crate::support::server::scrape(metrics).await;
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    server.stop().await;
}
