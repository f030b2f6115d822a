//! A plain HTTP client for the AuthZEN listener: HTTP/1.1, or HTTP/2 with prior knowledge (h2c),
//! one connection per request, over hyper's own client.

use std::net::SocketAddr;

use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// An answer: status, headers, and the body as JSON (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, parsed.
    pub json: serde_json::Value,
    /// The body as sent.
    pub text: String,
}

impl Answer {
    /// The header `name`, as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Which HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.1.
    H1,
    /// HTTP/2 over cleartext, with prior knowledge.
    H2c,
}

/// Sends `request` to `addr` and reads the whole answer.
pub async fn send(addr: SocketAddr, version: Version, request: Request<Full<Bytes>>) -> Answer {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io = TokioIo::new(stream);
    let response = match version {
        Version::H1 => {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await.unwrap()
        }
        Version::H2c => {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            sender.send_request(request).await.unwrap()
        }
    };
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        json,
        text,
    }
}

/// `POST path` with a JSON `body`, the bearer `key` if any, and `headers`.
pub async fn post(
    addr: SocketAddr,
    path: &str,
    key: Option<&str>,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> Answer {
    post_raw(
        addr,
        Version::H1,
        path,
        key,
        body.to_string().into_bytes(),
        headers,
    )
    .await
}

/// `POST path` with raw `body` bytes, over `version` (`application/json` unless `headers` name
/// another content type).
pub async fn post_raw(
    addr: SocketAddr,
    version: Version,
    path: &str,
    key: Option<&str>,
    body: Vec<u8>,
    headers: &[(&str, &str)],
) -> Answer {
    let uri = match version {
        Version::H1 => path.to_owned(),
        Version::H2c => format!("http://{addr}{path}"),
    };
    let mut request = Request::post(uri);
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        request = request.header("content-type", "application/json");
    }
    if version == Version::H1 {
        request = request.header("host", addr.to_string());
    }
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    send(
        addr,
        version,
        request.body(Full::new(Bytes::from(body))).unwrap(),
    )
    .await
}

/// `GET path` with the `Host` header `host`.
pub async fn get(addr: SocketAddr, path: &str, host: &str) -> Answer {
    let request = Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(addr, Version::H1, request).await
}
