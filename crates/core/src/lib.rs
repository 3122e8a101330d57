//! freshvec's engine: distance kernels, the SPFresh index and sharded collections.
//!
//! This crate knows nothing of async runtimes, RPC or consensus; the server and replication
//! crates drive it. See `ARCHITECTURE.md` at the repository root for the map.

pub mod distance;
pub mod rng;
