//! The transport layer: tonic services, the layer around every call, authentication, paging and
//! status mapping.
//!
//! Architecture invariant: handlers are thin. They authenticate, parse the request into its
//! command (`convert::Parse`, the one validation of each request type), ask the cache's reader
//! or the store, and convert back. Only this layer and `convert` see prost types; errors become
//! `tonic::Status` only in [`status`].

pub mod admin;
pub mod auth;
pub mod authzen;
pub mod codec;
pub mod ext_authz;
pub mod framing;
pub mod observe;
pub mod paging;
pub mod permission;
pub mod status;

use std::sync::Arc;

pub use framing::FramingLayer;
pub use observe::{ObserveLayer, REQUEST_ID_HEADER};

use crate::cache::Caches;
use crate::domain::Revision;

/// A revision this instance's own write committed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written(pub Revision);

/// Brings this instance's view of the store up to its own writes before it replies, so that its
/// next read sees them without a token.
#[derive(Clone)]
pub struct Applied(pub Arc<Caches>);

impl Applied {
    /// Waits until `written` is applied here.
    pub async fn wait_for(&self, written: Written) {
        self.0.applied_through(written.0).await;
    }
}
