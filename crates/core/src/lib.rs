//! freshvec's engine: distance kernels, the SPFresh index and sharded collections.
//!
//! This crate knows nothing of async runtimes, RPC or consensus; the server and replication
//! crates drive it. See `ARCHITECTURE.md` at the repository root for the map.

pub mod background;
pub mod collection;
pub mod distance;
pub mod durable;
pub mod error;
pub mod index;
pub mod kmeans;
pub mod payload;
pub mod rng;
pub mod storage;
#[cfg(test)]
pub(crate) mod testing;
pub mod texmex;
pub mod topk;

pub use collection::{CalibrationSummary, Collection, Hit};
pub use distance::Metric;
pub use error::{Error, Result};
pub use index::{
    Calibration, Encoding, Index, IndexParams, IndexStats, SearchParams, DEFAULT_TARGET_RECALL,
};
