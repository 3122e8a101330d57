//! Errors of the engine's operations.

use thiserror::Error;

#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    #[error("vector has dimension {got}, the collection has {want}")]
    DimensionMismatch { want: usize, got: usize },
    #[error("vector for id {id} has a NaN or infinite component")]
    NonFinite { id: u64 },
    #[error("vector for id {id} is too large: its squared norm {norm2:e} exceeds {max:e}")]
    TooLarge { id: u64, norm2: f64, max: f64 },
    #[error("vector for id {id} is zero, which has no direction under cosine")]
    ZeroVector { id: u64 },
    #[error("{what} has {got} entries but {want} were expected")]
    LengthMismatch { what: &'static str, want: usize, got: usize },
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    #[error(
        "background rebalancing is behind ({pending} jobs pending, limit {limit}); retry later"
    )]
    Overloaded { pending: usize, limit: usize },
    #[error("point {id} does not exist")]
    PointNotFound { id: u64 },
    #[error("the system refused a resource: {0}")]
    Resource(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
