//! A sharded collection: S independent SPFresh shards, ids routed by mask (S a power of two)
//! or modulo, searches fanned out in parallel and merged exactly. Each shard's payloads and
//! field indexes live beside its index (`payloads.rs`), keyed by the index's slots.

use crate::distance::{check_components, Metric, VectorFault, MAX_SQUARED_NORM};
use crate::error::{Error, Result};
use crate::index::{
    Calibration, Index, IndexParams, IndexStats, SearchParams, CALIBRATION_K, DEFAULT_TARGET_RECALL,
};
use crate::payload::{Payload, ShardPayloads};
use crate::topk::{merge_sorted, Scored};
use parking_lot::RwLock;
use rayon::prelude::*;
use std::sync::Arc;

mod payloads;
pub use payloads::{validate_key_path, FieldIndexInfo, SearchReport, Strategy};

#[derive(Debug)]
pub struct Collection {
    metric: Metric,
    dim: usize,
    shards: Vec<Index>,
    /// Each shard's payloads, by the shard's slots.
    payloads: Vec<RwLock<ShardPayloads>>,
}

/// A collection's recall calibration (see [`Collection::calibration`]).
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrationSummary {
    /// Shards calibrated, and sampled queries over all of them.
    pub shards: usize,
    pub queries: usize,
    /// The deepest any shard probes at the default target, and the estimated recall@10 there.
    pub default_nprobe: usize,
    pub default_recall: f32,
    /// `(nprobe, estimated recall@10)`, nprobe increasing.
    pub points: Vec<(usize, f32)>,
}

/// One search hit: the vector id and its distance under the collection's metric.
pub type Hit = Scored<u64>;

/// Most shards a collection may have.
pub const MAX_SHARDS: usize = 1024;

/// Sees one shard's prepared rows: `(shard, ids, rows)`.
pub type RowsObserver<'a> = dyn FnMut(usize, &[u64], &[f32]) + 'a;

/// The engine's check of one vector's components (see [`check_components`]).
fn check_vector(id: u64, v: &[f32]) -> Result<()> {
    check_components(v).map_err(|f| match f {
        VectorFault::NonFinite(_) => Error::NonFinite { id },
        VectorFault::TooLarge(norm2) => Error::TooLarge { id, norm2, max: MAX_SQUARED_NORM },
    })
}

impl Collection {
    /// A new, empty collection of `shards` shards with the given per-shard parameters.
    pub fn new(params: IndexParams, shards: usize) -> Result<Collection> {
        if shards == 0 || shards > MAX_SHARDS {
            return Err(Error::InvalidParameter {
                name: "shards",
                reason: format!("must be 1..={MAX_SHARDS}"),
            });
        }
        let shards = (0..shards)
            .map(|i| {
                let mut p = params.clone();
                p.seed = params.seed.wrapping_add(i as u64);
                Index::new(p)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Collection::from_shards(params.metric, params.dim, shards))
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn metric(&self) -> Metric {
        self.metric
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The shard that owns `id`.
    #[inline]
    pub fn shard_of(&self, id: u64) -> usize {
        let s = self.shards.len() as u64;
        (if s.is_power_of_two() { id & (s - 1) } else { id % s }) as usize
    }

    /// Number of live vectors.
    pub fn len(&self) -> usize {
        self.shards.iter().map(Index::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks every row and prepares it for the metric in place.
    fn prepare_rows(&self, ids: &[u64], vectors: &mut [f32]) -> Result<()> {
        if vectors.len() != ids.len() * self.dim {
            // Rows of one wrong width read as a dimension mismatch; anything else as a length one.
            if !ids.is_empty() && vectors.len().is_multiple_of(ids.len()) {
                return Err(Error::DimensionMismatch {
                    want: self.dim,
                    got: vectors.len() / ids.len(),
                });
            }
            return Err(Error::LengthMismatch {
                what: "vectors",
                want: ids.len() * self.dim,
                got: vectors.len(),
            });
        }
        for (id, v) in ids.iter().zip(vectors.chunks_exact_mut(self.dim)) {
            check_vector(*id, v)?;
            if !self.metric.prepare(v) {
                return Err(Error::ZeroVector { id: *id });
            }
        }
        Ok(())
    }

    /// Splits owned rows by shard, moving rows from the end so the input shrinks as the parts
    /// grow.
    fn route_owned(&self, ids: Vec<u64>, mut vectors: Vec<f32>) -> Vec<(Vec<u64>, Vec<f32>)> {
        let dim = self.dim;
        let s = self.shards.len();
        if s == 1 {
            return vec![(ids, vectors)];
        }
        let mut counts = vec![0usize; s];
        for id in &ids {
            counts[self.shard_of(*id)] += 1;
        }
        let mut parts: Vec<(Vec<u64>, Vec<f32>)> =
            counts.iter().map(|&c| (Vec::with_capacity(c), Vec::with_capacity(c * dim))).collect();
        let shrink_every = ((1 << 22) / dim.max(1)).max(1);
        for i in (0..ids.len()).rev() {
            let part = &mut parts[self.shard_of(ids[i])];
            part.0.push(ids[i]);
            part.1.extend_from_slice(&vectors[i * dim..(i + 1) * dim]);
            if i % shrink_every == 0 {
                vectors.truncate(i * dim);
                vectors.shrink_to_fit();
            }
        }
        parts
    }

    /// Builds every shard from owned rows (an empty collection), or upserts them otherwise.
    pub fn bulk_load(&self, ids: Vec<u64>, vectors: Vec<f32>) -> Result<()> {
        self.bulk_load_observed(ids, vectors, &mut |_, _, _| {})
    }

    /// [`Collection::bulk_load`], showing each shard's prepared rows to `observe(shard, ids,
    /// rows)` before the shard takes them (a durable collection writes them to its files).
    pub fn bulk_load_observed(
        &self,
        ids: Vec<u64>,
        mut vectors: Vec<f32>,
        observe: &mut RowsObserver<'_>,
    ) -> Result<()> {
        self.prepare_rows(&ids, &mut vectors)?;
        let parts = self.route_owned(ids, vectors);
        for (i, (shard, (ids, vectors))) in self.shards.iter().zip(parts).enumerate() {
            observe(i, &ids, &vectors);
            shard.bulk_load(&ids, vectors)?;
            self.store_payloads(i, &ids, |_| None);
        }
        Ok(())
    }

    /// Inserts or replaces vectors. Ids repeated within the batch: the last row wins.
    pub fn upsert(&self, ids: &[u64], vectors: &[f32]) -> Result<()> {
        let prepared = self.validate_upsert(ids, vectors)?;
        self.admit()?;
        self.upsert_valid(ids, &prepared, &[])
    }

    /// Checks a batch without changing anything; returns the rows prepared for the metric.
    pub fn validate_upsert(&self, ids: &[u64], vectors: &[f32]) -> Result<Vec<f32>> {
        let mut owned = vectors.to_vec();
        self.prepare_rows(ids, &mut owned)?;
        Ok(owned)
    }

    /// Waits for every shard's admission control (see [`Index::admit`]).
    pub fn admit(&self) -> Result<()> {
        self.shards.iter().try_for_each(Index::admit)
    }

    /// Applies a batch [`Collection::validate_upsert`] prepared, after [`Collection::admit`],
    /// with a payload per row (`payloads` empty: every point's payload becomes empty).
    pub fn upsert_valid(&self, ids: &[u64], owned: &[f32], payloads: &[Payload]) -> Result<()> {
        let mut seen = rustc_hash::FxHashSet::default();
        let keep: Vec<usize> = (0..ids.len()).rev().filter(|&i| seen.insert(ids[i])).collect();
        let dim = self.dim;
        if self.shards.len() == 1 && keep.len() == ids.len() {
            self.shards[0].upsert_admitted(ids, owned)?;
            self.store_payloads(0, ids, |row| payloads.get(row));
            return Ok(());
        }
        let mut parts: Vec<(Vec<u64>, Vec<f32>, Vec<usize>)> =
            vec![Default::default(); self.shards.len()];
        for &i in keep.iter().rev() {
            let part = &mut parts[self.shard_of(ids[i])];
            part.0.push(ids[i]);
            part.1.extend_from_slice(&owned[i * dim..(i + 1) * dim]);
            part.2.push(i);
        }
        for (s, (shard, (ids, vectors, rows))) in self.shards.iter().zip(&parts).enumerate() {
            if ids.is_empty() {
                continue;
            }
            shard.upsert_admitted(ids, vectors)?;
            self.store_payloads(s, ids, |i| payloads.get(rows[i]));
        }
        Ok(())
    }

    /// Gives points just written to shard `s` their payloads: `payload_of(i)` for `ids[i]`
    /// (`None`: empty).
    fn store_payloads<'p>(
        &self,
        s: usize,
        ids: &[u64],
        payload_of: impl Fn(usize) -> Option<&'p Payload>,
    ) {
        let empty = Payload::new();
        let mut store = self.payloads[s].write();
        for (i, &id) in ids.iter().enumerate() {
            if let Some(slot) = self.shards[s].slot_of(id) {
                store.set(slot, id, payload_of(i).unwrap_or(&empty));
            }
        }
    }

    /// The shards, for checkpoints.
    pub fn shards(&self) -> &[Index] {
        &self.shards
    }

    /// A collection over restored shards.
    pub fn from_shards(metric: Metric, dim: usize, shards: Vec<Index>) -> Collection {
        let payloads = shards.iter().map(|_| RwLock::new(ShardPayloads::new())).collect();
        Collection { metric, dim, shards, payloads }
    }

    /// The current vector of `id` (unit length under cosine), if it is live.
    pub fn get(&self, id: u64) -> Option<Vec<f32>> {
        self.shards[self.shard_of(id)].get(id)
    }

    /// Deletes ids (and their payloads); returns how many were live.
    pub fn delete(&self, ids: &[u64]) -> usize {
        ids.iter()
            .map(|&id| {
                let s = self.shard_of(id);
                let live = self.shards[s].delete(&[id]);
                if let Some(slot) = self.shards[s].slot_of(id) {
                    self.payloads[s].write().remove(slot);
                }
                live
            })
            .sum()
    }

    fn prepare_query(&self, q: &[f32], params: &SearchParams) -> Result<Vec<f32>> {
        params.validate()?;
        if q.len() != self.dim {
            return Err(Error::DimensionMismatch { want: self.dim, got: q.len() });
        }
        let mut q = q.to_vec();
        check_vector(u64::MAX, &q)?;
        if !self.metric.prepare(&mut q) {
            return Err(Error::ZeroVector { id: u64::MAX });
        }
        Ok(q)
    }

    fn report(&self, mut hits: Vec<Hit>) -> Vec<Hit> {
        for h in &mut hits {
            h.dist = self.metric.report(h.dist);
        }
        hits
    }

    /// The `k` nearest vectors across all shards, nearest first; shards are searched in
    /// parallel and merged exactly.
    pub fn search(&self, q: &[f32], params: &SearchParams) -> Result<Vec<Hit>> {
        let q = self.prepare_query(q, params)?;
        let hits = if self.shards.len() == 1 {
            self.shards[0].search(&q, params)
        } else {
            let lists: Vec<Vec<Hit>> =
                self.shards.par_iter().map(|s| s.search(&q, params)).collect();
            merge_sorted(&lists, params.k)
        };
        Ok(self.report(hits))
    }

    /// Like [`Collection::search`], but visits shards in order of their lower bound and skips
    /// a shard whose bound cannot beat the current k-th distance. Returns exactly what the full
    /// fan-out returns.
    pub fn search_pruned(&self, q: &[f32], params: &SearchParams) -> Result<(Vec<Hit>, usize)> {
        let q = self.prepare_query(q, params)?;
        let mut plans: Vec<(usize, f32, crate::index::Plan)> = self
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let plan = s.plan(&q, params);
                (i, s.lower_bound(&plan, &q), plan)
            })
            .collect();
        plans.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        let mut best: Vec<Hit> = Vec::new();
        let mut skipped = 0;
        for (i, lower_bound, plan) in &plans {
            if best.len() >= params.k && *lower_bound > best[params.k - 1].dist {
                skipped += 1;
                continue;
            }
            let hits = self.shards[*i].execute(plan, &q, params);
            best = merge_sorted(&[best, hits], params.k);
        }
        Ok((self.report(best), skipped))
    }

    /// Waits until every shard's background rebalancing has drained.
    pub fn wait_idle(&self) {
        self.shards.par_iter().for_each(Index::wait_idle);
    }

    /// Measures every shard's recall curve now (shards in parallel; see [`Index::calibrate`]).
    pub fn calibrate(&self) {
        self.shards.par_iter().for_each(Index::calibrate);
    }

    /// The collection's calibration: each shard's curve and its depth at the default target,
    /// combined weighted by the vectors each was measured on. `None` until a shard has one.
    pub fn calibration(&self) -> Option<CalibrationSummary> {
        let calibrated: Vec<(&Index, Arc<Calibration>)> =
            self.shards.iter().filter_map(|s| Some((s, s.calibration()?))).collect();
        let curves: Vec<&Calibration> = calibrated.iter().map(|(_, c)| &**c).collect();
        if curves.is_empty() {
            return None;
        }
        let weight: f64 = curves.iter().map(|c| c.vectors.max(1) as f64).sum();
        let mean = |f: &dyn Fn(&Calibration) -> f32| {
            (curves.iter().map(|c| f64::from(f(c)) * c.vectors.max(1) as f64).sum::<f64>() / weight)
                as f32
        };
        let mut depths: Vec<usize> =
            curves.iter().flat_map(|c| c.points.iter().map(|p| p.0)).collect();
        depths.sort_unstable();
        depths.dedup();
        let points = depths.iter().map(|&np| (np, mean(&|c| c.recall_at(np)))).collect();
        let target = DEFAULT_TARGET_RECALL;
        Some(CalibrationSummary {
            shards: curves.len(),
            queries: curves.iter().map(|c| c.queries).sum(),
            // What the shards probe now.
            default_nprobe: calibrated
                .iter()
                .map(|(s, _)| s.depth(&SearchParams::new(CALIBRATION_K)))
                .max()
                .unwrap_or(1),
            default_recall: mean(&|c| c.recall_at(c.nprobe_for(target))),
            points,
        })
    }

    /// The estimated recall@10 of a search with `params` (each shard's curve at the depth it
    /// would probe), if the collection is calibrated.
    pub fn estimated_recall(&self, params: &SearchParams) -> Option<f32> {
        let curves: Vec<_> =
            self.shards.iter().filter_map(|s| Some((s.calibration()?, s))).collect();
        if curves.is_empty() || params.exact {
            return params.exact.then_some(1.0);
        }
        let weight: f64 = curves.iter().map(|(c, _)| c.vectors.max(1) as f64).sum();
        let sum: f64 = curves
            .iter()
            .map(|(c, s)| f64::from(c.recall_at(s.depth(params))) * c.vectors.max(1) as f64)
            .sum();
        Some((sum / weight) as f32)
    }

    /// Statistics summed over shards.
    pub fn stats(&self) -> IndexStats {
        let mut total = IndexStats::default();
        for s in &self.shards {
            total.add(&s.stats());
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn clustered(rng: &mut Rng, n: usize, dim: usize, centers: usize) -> Vec<f32> {
        let c: Vec<f32> = (0..centers * dim).map(|_| rng.normal() * 4.0).collect();
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let k = rng.below(centers);
            out.extend((0..dim).map(|j| c[k * dim + j] + rng.normal()));
        }
        out
    }

    #[test]
    fn routing_uses_mask_for_powers_of_two_and_modulo_otherwise() {
        let p = IndexParams { background_threads: 0, ..IndexParams::new(4, Metric::L2) };
        let c4 = Collection::new(p.clone(), 4).unwrap();
        let c3 = Collection::new(p, 3).unwrap();
        for id in [0u64, 1, 5, 1023, u64::MAX] {
            assert_eq!(c4.shard_of(id), (id & 3) as usize);
            assert_eq!(c3.shard_of(id), (id % 3) as usize);
        }
    }

    #[test]
    fn pruned_search_returns_exactly_the_full_fan_out() {
        let seed = 21;
        println!("seed {seed}");
        let mut rng = Rng::new(seed);
        let (n, dim) = (6000, 16);
        for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
            let p = IndexParams { background_threads: 0, ..IndexParams::new(dim, metric) };
            let c = Collection::new(p, 4).unwrap();
            let data = clustered(&mut rng, n, dim, 40);
            // Ids clustered by shard so pruning has shards to skip.
            let ids: Vec<u64> = (0..n as u64).map(|i| (i * 4 / n as u64) + 4 * i).collect();
            c.bulk_load(ids, data).unwrap();
            let mut total_skipped = 0;
            for _ in 0..200 {
                let q: Vec<f32> = (0..dim).map(|_| rng.normal() * 4.0).collect();
                for nprobe in [1, 4, 16] {
                    let sp = SearchParams::new(10).with_nprobe(nprobe);
                    let full = c.search(&q, &sp).unwrap();
                    let (pruned, skipped) = c.search_pruned(&q, &sp).unwrap();
                    assert_eq!(full, pruned, "{metric} nprobe={nprobe}");
                    total_skipped += skipped;
                }
            }
            println!("{metric}: skipped {total_skipped} shard scans");
        }
    }

    #[test]
    fn bad_vectors_are_rejected_and_change_nothing() {
        let p = IndexParams { background_threads: 0, ..IndexParams::new(3, Metric::Cosine) };
        let c = Collection::new(p, 2).unwrap();
        c.upsert(&[1, 2], &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]).unwrap();
        assert!(matches!(c.upsert(&[3], &[f32::NAN, 0.0, 0.0]), Err(Error::NonFinite { id: 3 })));
        assert!(matches!(c.upsert(&[4], &[0.0; 3]), Err(Error::ZeroVector { id: 4 })));
        // Finite, but squares that overflow: refused, as queries are.
        assert!(matches!(c.upsert(&[6], &[3e38, 0.0, 0.0]), Err(Error::TooLarge { id: 6, .. })));
        assert!(matches!(c.upsert(&[6], &[6e11, 6e11, 6e11]), Err(Error::TooLarge { .. })));
        let q = [3e38f32, 1.0, 1.0];
        assert!(matches!(c.search(&q, &SearchParams::new(1)), Err(Error::TooLarge { .. })));
        let p = SearchParams::new(1).with_rerank(1_000_000_000);
        assert!(matches!(c.search(&[1.0; 3], &p), Err(Error::InvalidParameter { .. })));
        assert!(matches!(c.upsert(&[5], &[1.0; 4]), Err(Error::DimensionMismatch { .. })));
        assert_eq!(c.len(), 2);
        let hits = c.search(&[1.0, 0.1, 0.0], &SearchParams::new(5).with_nprobe(4)).unwrap();
        assert_eq!(hits.iter().map(|h| h.key).collect::<Vec<_>>(), vec![1, 2]);
        // Just under the bound is accepted (and normalised under cosine).
        c.upsert(&[6], &[5e11, 5e11, 5e11]).unwrap();
        assert_eq!(c.len(), 3);
    }
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod payload_tests;
