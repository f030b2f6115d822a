//! The service layer's errors ([`ServiceError`]) and their gRPC statuses, in exactly one place.
//! Database details never reach a caller: they are logged here and the caller sees a plain
//! `UNAVAILABLE` or `INTERNAL`.

use std::time::Duration;

use tonic::{Code, Status};

use crate::cache::ReadError;
use crate::domain::{NotFound, RuleError, ValidationError};
use crate::store::StoreError;

/// Everything a call can fail with, typed until it leaves the server.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No key, a malformed `authorization` header, or a key no active client holds
    /// (`UNAUTHENTICATED`).
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// Input that does not validate (`INVALID_ARGUMENT`, naming the field).
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// A rule refuses the call (`PERMISSION_DENIED` or `FAILED_PRECONDITION`).
    #[error(transparent)]
    Rule(#[from] RuleError),
    /// The store failed or refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A read that cannot be answered now.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Something the request names does not exist (`NOT_FOUND`).
    #[error(transparent)]
    NotFound(#[from] NotFound),
    /// One item of a batch failed; its field or message is prefixed with `items[index]`.
    #[error("items[{index}]: {source}")]
    Item {
        /// The item's position in the request.
        index: usize,
        /// Why it failed.
        source: Box<ServiceError>,
    },
    /// More calls in flight than the server takes (`RESOURCE_EXHAUSTED`).
    #[error("more than {limit} calls in flight; retry with backoff")]
    Overloaded {
        /// `--max-concurrent-requests`.
        limit: usize,
    },
    /// The call's deadline passed (`DEADLINE_EXCEEDED`), the caller's or the server's own.
    #[error("{} of {} ms passed before the answer", if *.by_caller { "the caller's deadline (grpc-timeout)" } else { "the server's request timeout" }, .limit.as_millis())]
    Deadline {
        /// Whether the caller's `grpc-timeout` set it.
        by_caller: bool,
        /// The deadline.
        limit: Duration,
    },
    /// The server failed at something that is no fault of the caller's (`INTERNAL`): the caller
    /// is told what failed, and the cause is logged, never answered.
    #[error("{what} failed on the server")]
    Internal {
        /// What failed, in the caller's terms (e.g. "making a key").
        what: &'static str,
        /// Why, for the log.
        #[source]
        cause: anyhow::Error,
    },
    /// A request message that does not decode as the RPC's request (`INVALID_ARGUMENT`).
    #[error("the request is not a valid message of this RPC: {0}")]
    Undecodable(String),
    /// A request body that is not a sequence of whole gRPC messages (`INVALID_ARGUMENT`).
    #[error("the request body is not framed as gRPC: {0}")]
    BadFraming(String),
    /// A request message longer than the server takes (`RESOURCE_EXHAUSTED`).
    #[error(
        "the request message is {found} bytes, more than the {limit} bytes this server takes (--max-message-bytes)"
    )]
    TooLarge {
        /// The length its header declares.
        found: usize,
        /// `--max-message-bytes`.
        limit: usize,
    },
}

impl From<ServiceError> for Status {
    fn from(e: ServiceError) -> Self {
        let (code, message) = answer(e);
        Status::new(code, message)
    }
}

/// The code and message of an error, as the HTTP listener answers them.
pub fn code_and_message(e: ServiceError) -> (Code, String) {
    answer(e)
}

/// The HTTP status of each gRPC code, for the HTTP listener (AuthZEN): what the caller can do
/// about it, in HTTP's words. An overload is 429, a store past its bound 503, a deadline 504.
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::AlreadyExists | Code::Aborted => 409,
        Code::ResourceExhausted => 429,
        Code::Unavailable => 503,
        Code::DeadlineExceeded => 504,
        Code::Cancelled => 499,
        Code::Unimplemented => 501,
        Code::Internal | Code::Unknown | Code::DataLoss => 500,
    }
}

/// A failure below the services (a layer or the transport) as the status it answers with.
pub fn transport(e: Box<dyn std::error::Error + Send + Sync>) -> Status {
    Status::from_error(e)
}

/// The code and message of every error a service answers with.
fn answer(e: ServiceError) -> (Code, String) {
    match e {
        ServiceError::Invalid(v) => invalid(&v),
        ServiceError::Rule(r) => rule(&r),
        ServiceError::Store(s) => store(&s),
        ServiceError::Read(r) => read(&r),
        ServiceError::NotFound(m) => (Code::NotFound, m.to_string()),
        ServiceError::Unauthenticated(m) => (Code::Unauthenticated, m.to_owned()),
        ServiceError::Item { index, source } => match *source {
            ServiceError::Invalid(v) => invalid(&v.within(format_args!("items[{index}]"))),
            other => {
                let (code, message) = answer(other);
                (code, format!("items[{index}]: {message}"))
            }
        },
        e @ (ServiceError::Overloaded { .. } | ServiceError::TooLarge { .. }) => {
            (Code::ResourceExhausted, e.to_string())
        }
        e @ (ServiceError::Undecodable(_) | ServiceError::BadFraming(_)) => {
            (Code::InvalidArgument, e.to_string())
        }
        e @ ServiceError::Deadline { .. } => (Code::DeadlineExceeded, e.to_string()),
        e @ ServiceError::Internal { .. } => {
            if let ServiceError::Internal { what, cause } = &e {
                tracing::error!(error = format!("{cause:#}"), what, "internal error");
            }
            (Code::Internal, e.to_string())
        }
    }
}

/// Input that does not validate.
fn invalid(e: &ValidationError) -> (Code, String) {
    (Code::InvalidArgument, e.to_string())
}

/// A rule that refuses the call.
fn rule(e: &RuleError) -> (Code, String) {
    match e {
        RuleError::Denied(m) => (Code::PermissionDenied, m.clone()),
        RuleError::FailedPrecondition(m) => (Code::FailedPrecondition, m.clone()),
    }
}

/// A store failure. Database details are logged here and never answered.
fn store(e: &StoreError) -> (Code, String) {
    match e {
        StoreError::NotFound(_) => (Code::NotFound, e.to_string()),
        StoreError::AlreadyExists(_) => (Code::AlreadyExists, e.to_string()),
        StoreError::Aborted(m) => (Code::Aborted, m.clone()),
        StoreError::Rule(r) => rule(r),
        StoreError::Invalid(v) => invalid(v),
        StoreError::Unavailable(source) => {
            tracing::error!(error = %source, "store unavailable");
            (
                Code::Unavailable,
                "the store is unavailable; retry later".to_owned(),
            )
        }
        StoreError::Corrupt(m) => {
            tracing::error!(error = %m, "stored data is not readable");
            (Code::Internal, "stored data is not readable".to_owned())
        }
    }
}

/// A read that cannot be answered: a token from the future is `FAILED_PRECONDITION`; a store
/// out of reach, a cache past its staleness bound, a server still starting and reads that never
/// settled are `UNAVAILABLE` (to be retried, never an answer).
fn read(e: &ReadError) -> (Code, String) {
    match e {
        ReadError::Store(e) => store(e),
        ReadError::FromTheFuture { .. } | ReadError::OtherHistory { .. } => {
            (Code::FailedPrecondition, e.to_string())
        }
        ReadError::Starting
        | ReadError::HistoryChanged
        | ReadError::Stale { .. }
        | ReadError::StoreDown
        | ReadError::Unsettled => (Code::Unavailable, e.to_string()),
    }
}

impl From<ReadError> for Status {
    fn from(e: ReadError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<RuleError> for Status {
    fn from(e: RuleError) -> Self {
        ServiceError::from(e).into()
    }
}

impl From<ValidationError> for Status {
    fn from(e: ValidationError) -> Self {
        ServiceError::from(e).into()
    }
}
