//! The payload side of a collection: each shard's [`ShardPayloads`] beside its index, reads
//! by id and by filter, field indexes, and the filtered search.

use super::{Collection, Hit};
use crate::error::{Error, Result};
use crate::index::{FilteredStrategy, SearchParams};
use crate::payload::value::{self, MAX_KEY_BYTES};
use crate::payload::{FieldKind, Filter, Payload};
use crate::topk::merge_sorted;
use rayon::prelude::*;

/// How a filtered search ran, over all shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strategy {
    /// Nothing matched.
    #[default]
    Empty,
    /// Every shard with matches scanned them exactly.
    Exact,
    /// Every shard with matches ran the widened posting scan.
    Postings,
    /// Some shard's posting scan came up short and finished with an exact scan.
    Fallback,
    /// Shards chose differently (exact on some, postings on others).
    Mixed,
}

/// What a filtered search did, for the response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchReport {
    pub strategy: Strategy,
    /// Live points matching the filter (exact).
    pub matched: u64,
    /// Shards that scanned their matches exactly, and shards whose scan fell back to that.
    pub exact_shards: u32,
    pub fallback_shards: u32,
    /// Postings probed and members (or vectors) scanned, over all shards.
    pub postings: u64,
    pub scanned: u64,
    /// Whether some condition had no field index and was evaluated from payloads.
    pub unindexed: bool,
}

/// One field index of a collection, summed over shards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldIndexInfo {
    pub key: String,
    pub kind: FieldKind,
    /// Points with a value the index holds, distinct values (summed over shards, so a value
    /// on several shards counts once per shard), and heap bytes.
    pub points: u64,
    pub values: u64,
    pub memory_bytes: u64,
}

/// Checks a dotted key path: non-empty parts of at most [`MAX_KEY_BYTES`] bytes.
pub fn validate_key_path(key: &str) -> Result<()> {
    let bad = |reason: String| Err(Error::InvalidParameter { name: "key", reason });
    if key.is_empty() {
        return bad("must not be empty".into());
    }
    if key.len() > 16 * (MAX_KEY_BYTES + 1) {
        return bad(format!("{} bytes is longer than any path may be", key.len()));
    }
    for part in key.split('.') {
        if part.is_empty() || part.len() > MAX_KEY_BYTES {
            return bad(format!(
                "{key:?}: every part of a dotted path must be 1..={MAX_KEY_BYTES} bytes"
            ));
        }
    }
    Ok(())
}

impl Collection {
    /// The payload of a live point.
    pub fn payload(&self, id: u64) -> Option<Payload> {
        let s = self.shard_of(id);
        let slot = self.shards[s].slot_of(id)?;
        self.payloads[s].read().get(slot)
    }

    /// Replaces the payloads of live points (ids that are not live are skipped).
    pub fn set_payloads(&self, ids: &[u64], payloads: &[Payload]) {
        for (&id, p) in ids.iter().zip(payloads) {
            let s = self.shard_of(id);
            if let Some(slot) = self.shards[s].slot_of(id) {
                let mut store = self.payloads[s].write();
                if store.slot_of(id).is_some() {
                    store.set(slot, id, p);
                }
            }
        }
    }

    /// Restores a live point's payload from its stored encoding (empty bytes: an empty
    /// payload); fails on bytes that do not decode.
    pub fn restore_payload(&self, id: u64, bytes: &[u8]) -> std::result::Result<(), String> {
        let payload = match bytes.is_empty() {
            true => Payload::new(),
            false => value::decode(bytes).ok_or_else(|| format!("point {id}: bad payload"))?,
        };
        let s = self.shard_of(id);
        let slot = self.shards[s].slot_of(id).ok_or_else(|| format!("point {id}: no slot"))?;
        self.payloads[s].write().set(slot, id, &payload);
        Ok(())
    }

    /// The ids of the live points matching `filter`, in id order.
    pub fn matching_ids(&self, filter: &Filter) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .payloads
            .iter()
            .flat_map(|p| {
                let p = p.read();
                let m = p.matching(filter);
                p.scroll(Some(&m), 0, usize::MAX).into_iter().map(|(id, _)| id).collect::<Vec<_>>()
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    /// The exact number of live points matching `filter` (all of them when `None`).
    pub fn count(&self, filter: Option<&Filter>) -> u64 {
        self.payloads
            .par_iter()
            .map(|p| {
                let p = p.read();
                match filter {
                    Some(f) => p.matching(f).len(),
                    None => p.live().len(),
                }
            })
            .sum()
    }

    /// Up to `limit` live ids from `from` on, in id order, that match `filter`; and the id
    /// the next page starts at, if any.
    pub fn scroll(
        &self,
        filter: Option<&Filter>,
        from: u64,
        limit: usize,
    ) -> (Vec<u64>, Option<u64>) {
        let want = limit.saturating_add(1);
        let mut ids: Vec<u64> = self
            .payloads
            .par_iter()
            .flat_map_iter(|p| {
                let p = p.read();
                let m = filter.map(|f| p.matching(f));
                p.scroll(m.as_ref(), from, want).into_iter().map(|(id, _)| id)
            })
            .collect();
        ids.sort_unstable();
        let next = ids.get(limit).copied();
        ids.truncate(limit);
        (ids, next)
    }

    /// Whether the live point `id` exists.
    pub fn contains(&self, id: u64) -> bool {
        self.payloads[self.shard_of(id)].read().slot_of(id).is_some()
    }

    /// Checks that an index of `key` for `kind` may be created: a valid key path, not indexed
    /// as another kind. Returns whether the key is already indexed as `kind`.
    pub fn check_field_index(&self, key: &str, kind: FieldKind) -> Result<bool> {
        validate_key_path(key)?;
        match self.payloads[0].read().indexes().into_iter().find(|(k, _)| k == key) {
            None => Ok(false),
            Some((_, have)) if have == kind => Ok(true),
            Some((_, have)) => Err(Error::InvalidParameter {
                name: "key",
                reason: format!("{key:?} is indexed as {have:?}; drop that index first"),
            }),
        }
    }

    /// Builds an index of `key` for values of `kind` on every shard; `false` when the key
    /// already had one of that kind. A key indexed as another kind is refused.
    pub fn create_field_index(&self, key: &str, kind: FieldKind) -> Result<bool> {
        if self.check_field_index(key, kind)? {
            return Ok(false);
        }
        self.payloads.par_iter().for_each(|p| {
            p.write().create_index(key, kind);
        });
        Ok(true)
    }

    /// Drops the index of `key`; `false` when there was none.
    pub fn drop_field_index(&self, key: &str) -> bool {
        self.payloads.iter().fold(false, |any, p| p.write().drop_index(key) | any)
    }

    /// The indexed keys and their kinds, in key order (what a checkpoint records; no
    /// statistics are computed).
    pub fn field_index_kinds(&self) -> Vec<(String, FieldKind)> {
        self.payloads[0].read().indexes()
    }

    /// The field indexes, in key order, with their statistics.
    pub fn field_indexes(&self) -> Vec<FieldIndexInfo> {
        let keys = self.field_index_kinds();
        keys.into_iter()
            .map(|(key, kind)| {
                let mut info = FieldIndexInfo { key, kind, points: 0, values: 0, memory_bytes: 0 };
                for p in &self.payloads {
                    if let Some(st) = p.read().index_stats(&info.key) {
                        info.points += st.points;
                        info.values += st.values;
                        info.memory_bytes += st.memory_bytes;
                    }
                }
                info
            })
            .collect()
    }

    /// Heap bytes of every shard's payloads and field indexes.
    pub fn payload_memory_bytes(&self) -> u64 {
        self.payloads.iter().map(|p| p.read().memory_bytes() as u64).sum()
    }

    /// The `k` nearest live points that match `filter`, nearest first: always
    /// `min(k, matches)` of them, every one a match (see `index/filtered.rs` for the plan each
    /// shard makes). Each shard's payloads are read-locked for the length of its search, so
    /// a shard's matches and hits come from one state of its payloads.
    pub fn search_filtered(
        &self,
        q: &[f32],
        params: &SearchParams,
        filter: &Filter,
    ) -> Result<(Vec<Hit>, SearchReport)> {
        filter.validate()?;
        let q = self.prepare_query(q, params)?;
        let run = |i: usize| {
            let store = self.payloads[i].read();
            let allow = store.matching(filter);
            let unindexed = store.uses_unindexed(filter);
            let (hits, cost) = self.shards[i].search_allowed(&q, params, &allow);
            (hits, cost, allow.len(), unindexed)
        };
        let results: Vec<_> = match self.shards.len() {
            1 => vec![run(0)],
            n => (0..n).into_par_iter().map(run).collect(),
        };
        let mut report = SearchReport::default();
        let mut lists = Vec::with_capacity(results.len());
        let mut strategies = Vec::new();
        for (hits, cost, matched, unindexed) in results {
            report.matched += matched;
            report.postings += cost.postings;
            report.scanned += cost.scanned;
            report.unindexed |= unindexed;
            let s = match cost.strategy {
                FilteredStrategy::Empty => None,
                FilteredStrategy::Exact => Some(Strategy::Exact),
                FilteredStrategy::Postings => Some(Strategy::Postings),
                FilteredStrategy::Fallback => Some(Strategy::Fallback),
            };
            report.exact_shards += u32::from(s == Some(Strategy::Exact));
            report.fallback_shards += u32::from(s == Some(Strategy::Fallback));
            strategies.extend(s);
            lists.push(hits);
        }
        strategies.sort_by_key(|s| *s as u8);
        strategies.dedup();
        report.strategy = match strategies[..] {
            [] => Strategy::Empty,
            [one] => one,
            _ if strategies.contains(&Strategy::Fallback) => Strategy::Fallback,
            _ => Strategy::Mixed,
        };
        let hits = match lists.len() {
            1 => lists.pop().unwrap_or_default(),
            _ => merge_sorted(&lists, params.k),
        };
        Ok((self.report(hits), report))
    }
}
