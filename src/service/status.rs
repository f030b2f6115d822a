//! Errors to gRPC statuses, in exactly one place. Database details never reach a caller: they
//! are logged here and the caller sees a plain `UNAVAILABLE` or `INTERNAL`.

use tonic::Status;

use crate::cache::ReadError;
use crate::domain::{RuleError, ValidationError};
use crate::store::StoreError;

/// Input that does not validate.
pub fn invalid(e: ValidationError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// A rule that refuses the call.
pub fn rule(e: RuleError) -> Status {
    match e {
        RuleError::Denied(m) => Status::permission_denied(m),
        RuleError::FailedPrecondition(m) => Status::failed_precondition(m),
    }
}

/// A store failure.
pub fn store(e: StoreError) -> Status {
    match e {
        StoreError::Rule(r) => rule(r),
        StoreError::Invalid(v) => invalid(v),
        other => store_ref(&other),
    }
}

fn store_ref(e: &StoreError) -> Status {
    match e {
        StoreError::NotFound(m) => Status::not_found(m),
        StoreError::AlreadyExists(m) => Status::already_exists(m),
        StoreError::Aborted(m) => Status::aborted(m),
        StoreError::Rule(r) => rule(r.clone()),
        StoreError::Invalid(v) => invalid(v.clone()),
        StoreError::Shared(inner) => store_ref(inner),
        StoreError::Unavailable(source) => {
            tracing::error!(error = %source, "store unavailable");
            Status::unavailable("the store is unavailable; retry later")
        }
        StoreError::Corrupt(m) => {
            tracing::error!(error = %m, "stored data is not readable");
            Status::internal("stored data is not readable")
        }
    }
}

/// A read that cannot be answered: a token from the future is `FAILED_PRECONDITION`; a store
/// out of reach, a cache past its staleness bound, a server still starting and reads that never
/// settled are `UNAVAILABLE` (to be retried, never an answer).
pub fn read(e: ReadError) -> Status {
    match e {
        ReadError::Store(e) => store(e),
        ReadError::FromTheFuture { .. } => Status::failed_precondition(e.to_string()),
        ReadError::Starting
        | ReadError::Stale { .. }
        | ReadError::StoreDown
        | ReadError::Unsettled => Status::unavailable(e.to_string()),
    }
}

impl From<ReadError> for Status {
    fn from(e: ReadError) -> Self {
        read(e)
    }
}

impl From<StoreError> for Status {
    fn from(e: StoreError) -> Self {
        store(e)
    }
}

impl From<RuleError> for Status {
    fn from(e: RuleError) -> Self {
        rule(e)
    }
}

impl From<ValidationError> for Status {
    fn from(e: ValidationError) -> Self {
        invalid(e)
    }
}
