//! The generated protobuf and gRPC code of `proto/consentry/v1/` and of the subset of Envoy's
//! external authorization protocol in `proto-envoy/`, and the descriptor sets that server
//! reflection serves. Only `convert` and the service layer use these types.

#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
mod generated {
    tonic::include_proto!("consentry.v1");
}

pub use generated::*;

/// The encoded `FileDescriptorSet` of every consentry proto file and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("consentry_descriptor");

/// Envoy's external authorization protocol (`envoy.service.auth.v3`), as much of it as consentry
/// reads and writes; the modules follow the protobuf packages, as the generated code refers to
/// its imports by their package paths.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod envoy {
    /// `envoy.service.*`.
    pub mod service {
        /// `envoy.service.auth.*`.
        pub mod auth {
            /// `envoy.service.auth.v3`: the Authorization service.
            pub mod v3 {
                tonic::include_proto!("envoy.service.auth.v3");
            }
        }
    }
    /// `envoy.config.*`.
    pub mod config {
        /// `envoy.config.core.*`.
        pub mod core {
            /// `envoy.config.core.v3`: headers and metadata.
            pub mod v3 {
                tonic::include_proto!("envoy.config.core.v3");
            }
        }
    }
    /// `envoy.type.*`.
    pub mod r#type {
        /// `envoy.type.v3`: the HTTP status.
        pub mod v3 {
            tonic::include_proto!("envoy.r#type.v3");
        }
    }
}

/// `google.rpc`: the status of the external authorization protocol's answers.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used)]
pub mod google {
    /// `google.rpc`.
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

/// The encoded `FileDescriptorSet` of the Envoy subset and its imports.
pub const ENVOY_FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("envoy_descriptor");
