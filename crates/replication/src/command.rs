//! What the Raft log carries: commands, and what applying one produced.

use freshvec_core::durable::{Op, Target};
use freshvec_core::payload::{FieldKind, Filter, Payload};
use freshvec_core::{Encoding, IndexParams, Metric};
use serde::{Deserialize, Serialize};

/// The most collections one node holds.
pub const MAX_COLLECTIONS: usize = 1_000;
/// The most shards one node holds across its collections (each runs a background thread).
pub const MAX_NODE_SHARDS: usize = 4_096;

/// What a collection is, fixed at creation; every replica builds it from this alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSpec {
    pub dim: u32,
    /// 0 L2, 1 dot, 2 cosine.
    pub metric: u8,
    /// 0 f32, 1 int8.
    pub encoding: u8,
    pub shards: u32,
    /// Index tunables; 0 keeps the engine's default.
    pub posting_size: u32,
    pub split_limit: u32,
    pub merge_limit: u32,
    pub replicas: u32,
}

impl CollectionSpec {
    /// A spec for `params` with `shards` shards.
    pub fn new(params: &IndexParams, shards: usize) -> CollectionSpec {
        CollectionSpec {
            dim: params.dim as u32,
            metric: match params.metric {
                Metric::L2 => 0,
                Metric::Dot => 1,
                Metric::Cosine => 2,
            },
            encoding: match params.encoding {
                Encoding::F32 => 0,
                Encoding::Int8 => 1,
            },
            shards: shards as u32,
            posting_size: params.posting_size as u32,
            split_limit: params.split_limit as u32,
            merge_limit: params.merge_limit as u32,
            replicas: params.replicas as u32,
        }
    }

    /// The engine parameters this spec stands for, checked.
    pub fn params(&self) -> Result<IndexParams, String> {
        let metric = match self.metric {
            0 => Metric::L2,
            1 => Metric::Dot,
            2 => Metric::Cosine,
            m => return Err(format!("metric: unknown code {m}")),
        };
        let mut p = IndexParams::new(self.dim as usize, metric);
        p.encoding = match self.encoding {
            0 => Encoding::F32,
            1 => Encoding::Int8,
            e => return Err(format!("encoding: unknown code {e}")),
        };
        let set = |v: u32, p: &mut usize| {
            if v > 0 {
                *p = v as usize;
            }
        };
        set(self.posting_size, &mut p.posting_size);
        set(self.split_limit, &mut p.split_limit);
        set(self.merge_limit, &mut p.merge_limit);
        set(self.replicas, &mut p.replicas);
        p.replica_candidates = p.replica_candidates.max(p.replicas);
        p.validate().map_err(|e| e.to_string())?;
        let max = freshvec_core::collection::MAX_SHARDS;
        if self.shards == 0 || self.shards as usize > max {
            return Err(format!("shards: must be 1..={max}, got {}", self.shards));
        }
        Ok(p)
    }
}

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Command {
    CreateCollection {
        name: String,
        spec: CollectionSpec,
    },
    DropCollection {
        name: String,
    },
    /// Rows of `vectors` (row-major, `ids.len()` rows) replace the ids' vectors.
    Upsert {
        collection: String,
        ids: Vec<u64>,
        vectors: Vec<f32>,
    },
    Delete {
        collection: String,
        ids: Vec<u64>,
    },
    // Variants from here on came with payloads; the ones above keep their encoding, so a
    // log written before them still decodes.
    /// An upsert with a payload per row.
    UpsertPayloads {
        collection: String,
        ids: Vec<u64>,
        vectors: Vec<f32>,
        payloads: Vec<Payload>,
    },
    /// Deletes the points matching the filter when the entry applies.
    DeleteMatching {
        collection: String,
        filter: Filter,
    },
    /// Merges `payload` into the target points' payloads, or replaces them when `overwrite`.
    SetPayload {
        collection: String,
        target: Target,
        payload: Payload,
        overwrite: bool,
    },
    DeletePayloadKeys {
        collection: String,
        target: Target,
        keys: Vec<String>,
    },
    CreateFieldIndex {
        collection: String,
        key: String,
        kind: FieldKind,
    },
    DropFieldIndex {
        collection: String,
        key: String,
    },
}

impl Command {
    /// The collection a write to points names, and the engine op it applies as; `None` for
    /// collection commands.
    pub fn op(self) -> Option<(String, Op)> {
        Some(match self {
            Command::CreateCollection { .. } | Command::DropCollection { .. } => return None,
            Command::Upsert { collection, ids, vectors } => (collection, Op::upsert(ids, vectors)),
            Command::Delete { collection, ids } => (collection, Op::Delete { ids }),
            Command::UpsertPayloads { collection, ids, vectors, payloads } => {
                (collection, Op::Upsert { ids, vectors, payloads })
            }
            Command::DeleteMatching { collection, filter } => {
                (collection, Op::DeleteMatching { filter })
            }
            Command::SetPayload { collection, target, payload, overwrite } => {
                (collection, Op::SetPayload { target, payload, overwrite })
            }
            Command::DeletePayloadKeys { collection, target, keys } => {
                (collection, Op::DeletePayloadKeys { target, keys })
            }
            Command::CreateFieldIndex { collection, key, kind } => {
                (collection, Op::CreateFieldIndex { key, kind })
            }
            Command::DropFieldIndex { collection, key } => (collection, Op::DropFieldIndex { key }),
        })
    }
}

/// What applying a command did. A refusal is deterministic (every replica refuses the same
/// entry the same way) and changes nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    #[default]
    Done,
    NotFound(String),
    Exists(String),
    Invalid(String),
}

/// The response to a log entry: its index and outcome.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    pub index: u64,
    pub outcome: Outcome,
}
