//! Compiles the public API (`proto/freshvec/v1`) with a pure-Rust protobuf compiler, so no
//! system `protoc` is needed, and generates the proto3 JSON mapping of its messages.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("freshvec/v1/freshvec.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = protox::compile([&file], [&root])?;
    // The descriptors themselves, for server reflection.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let encoded = prost::Message::encode_to_vec(&fds);
    std::fs::write(out.join("freshvec_descriptor.bin"), &encoded)?;
    // serde impls following the proto3 JSON mapping, for the JSON gateway (`rest.rs`).
    pbjson_build::Builder::new().register_descriptors(&encoded)?.build(&[".freshvec.v1"])?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(fds)?;
    Ok(())
}
