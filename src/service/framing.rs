//! The gRPC framing of request bodies, checked as they arrive, before tonic reads them: every
//! message is a 5-byte header (a compression flag, then the length) and that many bytes. A
//! header declaring more than `--max-message-bytes` is `RESOURCE_EXHAUSTED` (tonic answers
//! `OUT_OF_RANGE`), before the message is read; an unknown compression flag and a body that
//! ends inside a header or a message are `INVALID_ARGUMENT` (tonic answers `INTERNAL`). The
//! error is handed to tonic as the body's error, which tonic answers with as it is. A flag of 1
//! is left to tonic (gRPC requires `INTERNAL` for it without `grpc-encoding`).

use std::pin::Pin;
use std::task::{Context, Poll};

use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Bytes;
use tower::{Layer, Service};

use super::status::{ServiceError, transport};

/// The bytes of a gRPC message header.
const HEADER: usize = 5;

/// Checks the framing of every request body (see the module's documentation).
#[derive(Debug, Clone, Copy)]
pub struct FramingLayer {
    limit: usize,
}

impl FramingLayer {
    /// Requests whose messages may be at most `limit` bytes (`--max-message-bytes`).
    pub fn new(limit: usize) -> Self {
        Self { limit }
    }
}

impl<S> Layer<S> for FramingLayer {
    type Service = Framing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Framing {
            inner,
            limit: self.limit,
        }
    }
}

/// The service [`FramingLayer`] makes.
#[derive(Debug, Clone)]
pub struct Framing<S> {
    inner: S,
    limit: usize,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> Service<http::Request<B>> for Framing<S>
where
    S: Service<http::Request<Body>>,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let checked = Checked {
            inner: body,
            reader: Reader::new(self.limit),
            failed: false,
        };
        self.inner
            .call(http::Request::from_parts(parts, Body::new(checked)))
    }
}

/// Where the reader is in the stream of messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Inside a header, `got` of its bytes read.
    Header { got: usize },
    /// Inside a message, `left` bytes still to come.
    Message { left: usize },
}

/// Follows the framing of a stream of messages, chunk by chunk.
#[derive(Debug)]
struct Reader {
    limit: usize,
    header: [u8; HEADER],
    position: Position,
}

impl Reader {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            header: [0; HEADER],
            position: Position::Header { got: 0 },
        }
    }

    /// Reads one chunk of the body.
    fn read(&mut self, mut chunk: &[u8]) -> Result<(), ServiceError> {
        while !chunk.is_empty() {
            match self.position {
                Position::Header { got } => {
                    let take = (HEADER - got).min(chunk.len());
                    self.header[got..got + take].copy_from_slice(&chunk[..take]);
                    chunk = &chunk[take..];
                    if got + take < HEADER {
                        self.position = Position::Header { got: got + take };
                        continue;
                    }
                    let flag = self.header[0];
                    if flag > 1 {
                        return Err(ServiceError::BadFraming(format!(
                            "a message's compression flag is {flag} (only 0 and 1 are defined)"
                        )));
                    }
                    let len = u32::from_be_bytes([
                        self.header[1],
                        self.header[2],
                        self.header[3],
                        self.header[4],
                    ]) as usize;
                    if len > self.limit {
                        return Err(ServiceError::TooLarge {
                            found: len,
                            limit: self.limit,
                        });
                    }
                    self.position = match len {
                        0 => Position::Header { got: 0 },
                        left => Position::Message { left },
                    };
                }
                Position::Message { left } => {
                    let take = left.min(chunk.len());
                    chunk = &chunk[take..];
                    self.position = match left - take {
                        0 => Position::Header { got: 0 },
                        left => Position::Message { left },
                    };
                }
            }
        }
        Ok(())
    }

    /// The body ended: it must end between two messages.
    fn end(&self) -> Result<(), ServiceError> {
        match self.position {
            Position::Header { got: 0 } => Ok(()),
            Position::Header { got } => Err(ServiceError::BadFraming(format!(
                "the body ends inside a message header ({got} of {HEADER} bytes)"
            ))),
            Position::Message { left } => Err(ServiceError::BadFraming(format!(
                "the body ends {left} bytes before the end of the message its header announced"
            ))),
        }
    }
}

/// A request body whose framing is checked as it is read.
struct Checked<B> {
    inner: B,
    reader: Reader,
    failed: bool,
}

impl<B> HttpBody for Checked<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.failed {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let checked = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                Some(data) => this.reader.read(data).map(|()| frame),
                None => Ok(frame),
            },
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(transport(e.into())))),
            Poll::Ready(None) => match this.reader.end() {
                Ok(()) => return Poll::Ready(None),
                Err(e) => Err(e),
            },
        };
        Poll::Ready(Some(checked.map_err(|e| {
            this.failed = true;
            Status::from(e)
        })))
    }

    fn is_end_stream(&self) -> bool {
        // A body that ends inside a message is not at its end until `poll_frame` said so.
        self.failed || (self.inner.is_end_stream() && self.reader.end().is_ok())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frame(flag: u8, len: u32, body: &[u8]) -> Vec<u8> {
        let mut v = vec![flag];
        v.extend_from_slice(&len.to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn read_all(limit: usize, chunks: &[&[u8]]) -> Result<(), ServiceError> {
        let mut r = Reader::new(limit);
        for c in chunks {
            r.read(c)?;
        }
        r.end()
    }

    #[test]
    fn whole_messages_pass_in_any_chunking() {
        let mut bytes = frame(0, 3, b"abc");
        bytes.extend(frame(0, 0, b""));
        bytes.extend(frame(1, 2, b"xy"));
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            read_all(16, &[a, b]).unwrap();
        }
        read_all(16, &[]).unwrap();
    }

    #[test]
    fn truncated_oversized_and_unknown_flags_are_refused() {
        let bytes = frame(0, 10, b"abc");
        assert!(matches!(
            read_all(16, &[&bytes]),
            Err(ServiceError::BadFraming(_))
        ));
        assert!(matches!(
            read_all(16, &[&bytes[..3]]),
            Err(ServiceError::BadFraming(_))
        ));
        assert!(matches!(
            read_all(4, &[&frame(0, 5, b"abcde")]),
            Err(ServiceError::TooLarge { found: 5, limit: 4 })
        ));
        assert!(matches!(
            read_all(16, &[&frame(2, 1, b"a")]),
            Err(ServiceError::BadFraming(_))
        ));
        read_all(4, &[&frame(0, 4, b"abcd")]).unwrap();
    }
}
