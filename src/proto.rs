//! The generated protobuf and gRPC code of `proto/consentry/v1/`, and the descriptor set that
//! server reflection serves. Only `convert` and the service layer use these types.

#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
mod generated {
    tonic::include_proto!("consentry.v1");
}

pub use generated::*;

/// The encoded `FileDescriptorSet` of every consentry proto file and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("consentry_descriptor");
