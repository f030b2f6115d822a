//! Compiles the protos with protox (no system `protoc`), generates the tonic/prost code, and
//! writes the file descriptor sets that server reflection serves: consentry's own API
//! (`proto/consentry/v1/`) and the subset of Envoy's external authorization protocol that
//! consentry serves (`proto-envoy/`).

use std::path::{Path, PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "consentry/v1/common.proto",
    "consentry/v1/permission_service.proto",
    "consentry/v1/admin_service.proto",
];

const ENVOY_PROTOS: &[&str] = &["envoy/service/auth/v3/external_auth.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=proto-envoy");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    compile(&out_dir, PROTOS, "proto", "consentry_descriptor.bin")?;
    compile(
        &out_dir,
        ENVOY_PROTOS,
        "proto-envoy",
        "envoy_descriptor.bin",
    )?;
    Ok(())
}

/// Compiles `protos` under `root` into server and client code, and writes their descriptor set
/// (imports included) as `descriptor` in `out_dir`.
fn compile(
    out_dir: &Path,
    protos: &[&str],
    root: &str,
    descriptor: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let fds = protox::compile(protos, [root])?;
    std::fs::write(out_dir.join(descriptor), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost's codec, with undecodable requests INVALID_ARGUMENT (src/service/codec.rs).
        .codec_path("crate::service::codec::Codec")
        .compile_fds(fds)?;
    Ok(())
}
