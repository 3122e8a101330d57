//! The `freshvec` server: the gRPC API over durable collections, the benchmark harness and
//! the crash-test writer. `main.rs` is the command line over these.

pub mod admission;
pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod crash_writer;
pub mod json;
pub mod metrics;
pub mod rest;
pub mod serve;
pub mod vectors;

/// The generated public API (`proto/freshvec/v1/freshvec.proto`).
#[allow(clippy::all, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("freshvec.v1");
    include!(concat!(env!("OUT_DIR"), "/freshvec.v1.serde.rs"));

    /// The encoded file descriptors of the API, served by reflection.
    pub const DESCRIPTOR: &[u8] = tonic::include_file_descriptor_set!("freshvec_descriptor");
}
