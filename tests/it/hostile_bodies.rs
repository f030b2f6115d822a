//! Request bodies a gRPC library would never send, written frame by frame over a bare HTTP/2
//! connection to a real server: a message that does not decode (random bytes, a string field
//! that is not UTF-8) is `INVALID_ARGUMENT`, a body that breaks the gRPC framing (a truncated
//! message or header, an unknown compression flag) is `INVALID_ARGUMENT`, and a message over
//! `--max-message-bytes` is `RESOURCE_EXHAUSTED`, for a PermissionService and an AdminService
//! RPC; health refuses broken framing and oversized messages alike (its codec is
//! tonic-health's, so a message that does not decode stays `INTERNAL` there).

use std::net::SocketAddr;

use prost::Message;
use tonic::{Code, Status};

use consentry::proto::CheckAccessRequest;

use crate::support::calls::Cases;
use crate::support::db::{TestDb, backend_tests};
use crate::support::fixtures::tenant_req;
use crate::support::server::{BOOTSTRAP_KEY, TestServer, config};

backend_tests!(
    undecodable_and_misframed_requests_are_the_callers_fault,
    health_refuses_misframed_and_oversized_requests,
);

/// `--max-message-bytes` of the servers here.
const LIMIT: usize = 4096;

/// One gRPC message: the 5-byte header (`flag`, then the length `len`) and `payload`.
fn frame(flag: u8, len: usize, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![flag];
    bytes.extend(u32::try_from(len).unwrap().to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A whole message holding `payload`.
fn message(payload: &[u8]) -> Vec<u8> {
    frame(0, payload.len(), payload)
}

/// A unary call to `path` with the bootstrap key, whose request body is `chunks` sent as they
/// are (one HTTP/2 DATA frame each, the last ending the stream): the status the server answered
/// with, as a `Result` for [`Cases`].
async fn raw_call(addr: SocketAddr, path: &str, chunks: &[&[u8]]) -> Result<(), Status> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut client = client.ready().await.unwrap();
    let request = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {BOOTSTRAP_KEY}"))
        .body(())
        .unwrap();
    let (response, mut send) = client.send_request(request, chunks.is_empty()).unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        send.reserve_capacity(chunk.len());
        send.send_data(bytes::Bytes::copy_from_slice(chunk), i + 1 == chunks.len())
            .unwrap();
    }
    let (head, mut body) = response.await.unwrap().into_parts();
    // A refusal is trailers-only: the status is in the headers.
    let status = match Status::from_header_map(&head.headers) {
        Some(status) => status,
        None => {
            while let Some(chunk) = body.data().await {
                let chunk = chunk.unwrap();
                let _ = body.flow_control().release_capacity(chunk.len());
            }
            let trailers = body.trailers().await.unwrap().unwrap_or_default();
            Status::from_header_map(&trailers).expect("the answer ends with a grpc-status")
        }
    };
    match status.code() {
        Code::Ok => Ok(()),
        _ => Err(status),
    }
}

/// A refusal case: its name, the body's chunks, the code and what the message must mention.
type Refusal<'a> = (&'a str, Vec<Vec<u8>>, Code, &'a [&'a str]);

/// Bytes that are no protobuf message: a varint longer than ten bytes.
const RANDOM: [u8; 24] = [0xff; 24];
/// Field 1 (`tenant_id` in both requests below), a string of two bytes that are not UTF-8.
const NOT_UTF8: [u8; 4] = [0x0a, 0x02, 0xc3, 0x28];

async fn undecodable_and_misframed_requests_are_the_callers_fault(db: &TestDb) {
    let mut cfg = config(db);
    cfg.max_message_bytes = LIMIT;
    let server = TestServer::start_with(cfg).await;
    let valid = CheckAccessRequest {
        tenant_id: "acme".into(),
        app_id: "crm".into(),
        permission: "READ".into(),
        resource: "/".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let tenant = tenant_req("hostile", "production", false).encode_to_vec();
    let mut cases = Cases::new("hostile request bodies");
    for (rpc, path, good) in [
        (
            "CheckAccess",
            "/consentry.v1.PermissionService/CheckAccess",
            &valid,
        ),
        ("PutTenant", "/consentry.v1.AdminService/PutTenant", &tenant),
    ] {
        let call = |chunks: Vec<Vec<u8>>| async move {
            let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            raw_call(server.addr, path, &chunks).await
        };
        // The well-formed request, in one piece and cut inside its header: answered.
        let whole = message(good);
        cases.expect(
            format!("{rpc}: a valid request"),
            call(vec![whole.clone()]).await.is_ok(),
            "refused",
        );
        cases.expect(
            format!("{rpc}: a valid request in two pieces"),
            call(vec![whole[..3].to_vec(), whole[3..].to_vec()])
                .await
                .is_ok(),
            "refused",
        );
        let refusals: [Refusal; 7] = [
            (
                "random bytes",
                vec![message(&RANDOM)],
                Code::InvalidArgument,
                &["not a valid message"],
            ),
            (
                "invalid UTF-8 in tenant_id",
                vec![message(&NOT_UTF8)],
                Code::InvalidArgument,
                &["UTF-8", "tenant_id"],
            ),
            (
                "a message cut short",
                vec![frame(0, good.len() + 10, good)],
                Code::InvalidArgument,
                &["framed", "ends 10 bytes before"],
            ),
            (
                "a header cut short",
                vec![whole[..3].to_vec()],
                Code::InvalidArgument,
                &["framed", "inside a message header"],
            ),
            (
                "an unknown compression flag",
                vec![frame(7, good.len(), good)],
                Code::InvalidArgument,
                &["compression flag is 7"],
            ),
            (
                "a message over the limit",
                vec![message(&vec![0u8; LIMIT + 1])],
                Code::ResourceExhausted,
                &["4097 bytes", "--max-message-bytes"],
            ),
            (
                "a header announcing more than the limit",
                vec![frame(0, u32::MAX as usize, b"")],
                Code::ResourceExhausted,
                &["--max-message-bytes"],
            ),
        ];
        for (name, chunks, code, needles) in refusals {
            cases.check_all(format!("{rpc}: {name}"), call(chunks).await, code, needles);
        }
    }
    cases.finish();
    server.stop().await;
}

async fn health_refuses_misframed_and_oversized_requests(db: &TestDb) {
    let mut cfg = config(db);
    cfg.max_message_bytes = LIMIT;
    let server = TestServer::start_with(cfg).await;
    let mut cases = Cases::new("hostile bodies to health");
    // Reflection is a bidirectional stream whose service ends the call with OK, answering
    // nothing, when its request stream fails: the refusal is not its caller's to see.
    for path in ["/grpc.health.v1.Health/Check"] {
        let call = |chunks: Vec<Vec<u8>>| async move {
            let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            raw_call(server.addr, path, &chunks).await
        };
        let refusals: [(&str, Vec<Vec<u8>>, Code, &str); 3] = [
            (
                "a message cut short",
                vec![frame(0, 20, b"abc")],
                Code::InvalidArgument,
                "ends 17 bytes before",
            ),
            (
                "an unknown compression flag",
                vec![frame(9, 0, b"")],
                Code::InvalidArgument,
                "compression flag is 9",
            ),
            (
                "a message over the limit",
                vec![message(&vec![0u8; LIMIT + 1])],
                Code::ResourceExhausted,
                "--max-message-bytes",
            ),
        ];
        for (name, chunks, code, needle) in refusals {
            cases.check(format!("{path}: {name}"), call(chunks).await, code, needle);
        }
    }
    cases.finish();
    server.stop().await;
}
