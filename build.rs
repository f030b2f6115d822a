//! Compiles `proto/consentry/v1/*.proto` with protox (no system `protoc`), generates the
//! tonic/prost code, and writes the file descriptor set that server reflection serves.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "consentry/v1/common.proto",
    "consentry/v1/permission_service.proto",
    "consentry/v1/admin_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("consentry_descriptor.bin"),
        fds.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // prost's codec, with undecodable requests INVALID_ARGUMENT (src/service/codec.rs).
        .codec_path("crate::service::codec::Codec")
        .compile_fds(fds)?;
    Ok(())
}
