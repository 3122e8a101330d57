//! Payloads: the data a point carries beside its vector, the filter language over it, and the
//! per-shard store with its field indexes.
//!
//! - [`value`]: [`Value`] and [`Payload`] (a map of keys to values, JSON with a distinct
//!   int64), their limits, validation, binary encoding (the bytes stored in the vector files'
//!   records, see `docs/file-formats.md`), dotted key paths and merges.
//! - [`filter`]: [`Filter`] (`must`, `should`, `must_not`, `min_should`) over [`Condition`]s,
//!   validated and evaluated against one payload.
//! - [`store`]: [`ShardPayloads`], one shard's payloads by slot, field indexes as bitmaps over
//!   slots and sorted columns, and the exact set of slots a filter matches.

pub mod filter;
pub mod store;
pub mod value;

pub use filter::{Condition, Filter, MatchValue, MatchValues, MinShould, Range};
pub use store::{FieldKind, FieldStats, ShardPayloads};
pub use value::{Payload, Value};
