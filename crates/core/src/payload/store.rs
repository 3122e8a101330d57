//! One shard's payloads, by slot, with field indexes.

use super::filter::Filter;
use super::value::Payload;
use roaring::RoaringBitmap;
use serde::{Deserialize, Serialize};

/// The type a field index is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FieldKind {
    Keyword,
    Integer,
    Float,
    Bool,
    Datetime,
}

/// What one field index holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldStats {
    /// Points with at least one value the index holds.
    pub points: u64,
    /// Distinct values.
    pub values: u64,
    pub memory_bytes: u64,
}

/// One shard's payloads by slot (the index's dense slot of each live point), the ids of the
/// slots, and its field indexes. Every live point has a payload (maybe empty).
#[derive(Debug, Default)]
pub struct ShardPayloads {}

impl ShardPayloads {
    pub fn new() -> ShardPayloads {
        todo!()
    }

    /// Sets the payload of the live point `id` at `slot` (replacing any), maintaining every
    /// field index.
    pub fn set(&mut self, slot: u32, id: u64, payload: &Payload) {
        let _ = (slot, id, payload);
        todo!()
    }

    /// Removes a deleted point's payload.
    pub fn remove(&mut self, slot: u32) {
        let _ = slot;
        todo!()
    }

    /// The payload of the live point at `slot`.
    pub fn get(&self, slot: u32) -> Option<Payload> {
        let _ = slot;
        todo!()
    }

    /// The slot of a live id.
    pub fn slot_of(&self, id: u64) -> Option<u32> {
        let _ = id;
        todo!()
    }

    /// Slots of every live point.
    pub fn live(&self) -> &RoaringBitmap {
        todo!()
    }

    pub fn len(&self) -> usize {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds an index of `key` for values of `kind` over the current payloads. `false` when
    /// the key already has an index (of any kind; it is kept as it is).
    pub fn create_index(&mut self, key: &str, kind: FieldKind) -> bool {
        let _ = (key, kind);
        todo!()
    }

    /// `false` when the key has no index.
    pub fn drop_index(&mut self, key: &str) -> bool {
        let _ = key;
        todo!()
    }

    /// The indexed keys and their kinds, in key order.
    pub fn indexes(&self) -> Vec<(String, FieldKind)> {
        todo!()
    }

    pub fn index_stats(&self, key: &str) -> Option<FieldStats> {
        let _ = key;
        todo!()
    }

    /// Whether evaluating `filter` reads payloads (a condition no index answers).
    pub fn uses_unindexed(&self, filter: &Filter) -> bool {
        let _ = filter;
        todo!()
    }

    /// The exact set of live slots whose point matches `filter`.
    pub fn matching(&self, filter: &Filter) -> RoaringBitmap {
        let _ = filter;
        todo!()
    }

    /// Live points in id order from `from` (inclusive) that `filter` matches: up to `limit`
    /// `(id, slot)` pairs.
    pub fn scroll(
        &self,
        filter: Option<&RoaringBitmap>,
        from: u64,
        limit: usize,
    ) -> Vec<(u64, u32)> {
        let _ = (filter, from, limit);
        todo!()
    }

    /// Heap bytes of the payloads and the indexes.
    pub fn memory_bytes(&self) -> usize {
        todo!()
    }
}
