//! Validation errors: what was wrong with an input, and which field it was in.

use std::fmt;

/// Input that does not satisfy the limits of the domain; reported as `INVALID_ARGUMENT`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ValidationError {
    /// The request field at fault, such as `resource` or `items[3].app_id`.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ValidationError {
    /// A validation error for `field`.
    pub fn new(field: impl Into<String>, problem: impl fmt::Display) -> Self {
        Self {
            field: field.into(),
            problem: problem.to_string(),
        }
    }

    /// The same error, with its field nested under `prefix` (`items[3]` + `app_id`).
    pub fn within(mut self, prefix: impl fmt::Display) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

/// Something a request names that does not exist: one wording, wherever it is found missing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Missing {
    /// No such tenant.
    #[error("tenant {0} does not exist")]
    Tenant(String),
    /// No such app (in the registry).
    #[error("app {0} is not registered")]
    App(String),
}

/// The result of parsing or validating an input.
pub type Valid<T> = Result<T, ValidationError>;
