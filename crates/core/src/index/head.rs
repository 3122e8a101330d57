//! The head index: the centroids of all postings of a shard. Postings are added and removed as
//! LIRE splits and merges them; a removed posting's position is reused by the next one added.
//!
//! Searches scan every centroid (one contiguous block, one batch kernel call); past
//! [`FLAT_HEADS`] centroids they scan the centroids' `int8` codes instead (a quarter of the
//! bytes: at a million vectors the centroids would otherwise be read more than the postings) and
//! compute exact distances for the best few times the heads asked for. For placing
//! vectors, past [`CODED_HEADS`] centroids the codes serve the same way (a placement of a
//! loading shard no longer scans every centroid in full), and past [`FLAT_HEADS`] a coarse
//! layer groups them, about `sqrt(heads)` to a
//! group and none more than twice that; a placement scans the group centres, then the
//! centroids of the nearest groups only (each group's centroids are copied contiguously). The layer is
//! rebuilt (k-means over the centroids) whenever the head count has doubled or halved since the
//! last build, so its cost stays amortised; between builds new centroids join their nearest
//! group.

use super::posting::{Members, Posting, PostingId};
use crate::distance::codes::{code_kernels, encode, quantize};
use crate::distance::kernels;
use crate::kmeans;
use crate::rng::Rng;
use crate::topk::TopK;
use parking_lot::RwLock;
use std::cell::RefCell;
use std::sync::Arc;

/// Up to this many centroids a search scans them all.
pub const FLAT_HEADS: usize = 512;
/// Past this many centroids they also have `int8` codes: placements below [`FLAT_HEADS`] (where
/// there is no coarse layer) estimate from them and compute exact distances for the best few.
const CODED_HEADS: usize = 128;
/// A placement scans at least this many groups, and enough to hold three times the heads
/// asked for.
const MIN_GROUPS: usize = 6;
const NO_GROUP: u32 = u32::MAX;

#[derive(Debug)]
pub struct HeadIndex {
    dim: usize,
    inner: RwLock<Heads>,
}

#[derive(Debug, Default)]
struct Heads {
    centroids: Vec<f32>,
    postings: Vec<Option<Arc<Posting>>>,
    free: Vec<u32>,
    alive: usize,
    groups: Groups,
    codes: HeadCodes,
}

/// The centroids as codes relative to `origin` (the mean live centroid when the coarse layer
/// was built), with one scale and the squared norm of the offset each; empty (no origin) while
/// the heads are few enough to scan as they are.
#[derive(Debug, Default)]
struct HeadCodes {
    origin: Vec<f32>,
    codes: Vec<u8>,
    scales: Vec<f32>,
    norms: Vec<f32>,
}

impl HeadCodes {
    fn encode(&mut self, slot: usize, centroid: &[f32]) {
        let dim = centroid.len();
        if self.scales.len() <= slot {
            self.codes.resize((slot + 1) * dim, 0);
            self.scales.resize(slot + 1, 0.0);
            self.norms.resize(slot + 1, 0.0);
        }
        let offset: Vec<f32> = centroid.iter().zip(&self.origin).map(|(c, o)| c - o).collect();
        self.scales[slot] = encode(&offset, &mut self.codes[slot * dim..(slot + 1) * dim]);
        self.norms[slot] = -(kernels().neg_dot)(&offset, &offset);
    }
}

/// Exact distances are computed for this many times the heads asked for (plus a few), chosen
/// by their estimates from the codes.
const HEAD_RERANK: usize = 1;

/// The coarse layer: group centres, and per group its slots and a contiguous copy of their
/// centroids (so a group is scanned with one batch kernel call).
#[derive(Debug, Default)]
struct Groups {
    centres: Vec<f32>,
    slots: Vec<Vec<u32>>,
    blocks: Vec<Vec<f32>>,
    group_of: Vec<u32>,
    /// Live heads when the layer was last built; 0 when there is no layer.
    built_at: usize,
}

thread_local! {
    /// Per-thread buffers for head searches: distances, and the nearest heads and groups.
    static SCRATCH: RefCell<(Vec<f32>, TopK<u32>, TopK<u32>)> =
        RefCell::new((Vec::new(), TopK::new(0), TopK::new(0)));
    /// Head candidates chosen by their estimates.
    static CANDIDATES: RefCell<Vec<(f32, u32)>> = const { RefCell::new(Vec::new()) };
    /// The query's offset from the origin, its codes, and the code dot products.
    static CODE_SCRATCH: RefCell<(Vec<f32>, Vec<i8>, Vec<i32>)> =
        const { RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

impl Heads {
    fn centroid(&self, slot: u32, dim: usize) -> &[f32] {
        &self.centroids[slot as usize * dim..][..dim]
    }

    fn needs_rebuild(&self) -> bool {
        let built = self.groups.built_at;
        if self.codes.origin.is_empty() && self.alive > CODED_HEADS {
            true
        } else if built == 0 {
            self.alive > FLAT_HEADS
        } else {
            self.alive > 2 * built || self.alive * 2 < built
        }
    }

    /// Rebuilds the coarse layer from the live centroids (or drops it when they are few).
    fn rebuild(&mut self, dim: usize) {
        let live: Vec<u32> = (0..self.postings.len() as u32)
            .filter(|&s| self.postings[s as usize].is_some())
            .collect();
        let mut g = Groups { group_of: vec![NO_GROUP; self.postings.len()], ..Groups::default() };
        if live.len() > FLAT_HEADS {
            // Centroids crowd where the data is dense, so plain k-means leaves some groups many
            // times the average; those are clustered again, so every group stays small.
            let avg = live.len().isqrt();
            let mut rng = Rng::new(live.len() as u64);
            let mut pending = vec![live.clone()];
            let (mut centres, mut members) = (Vec::new(), Vec::new());
            while let Some(set) = pending.pop() {
                let k = set.len().div_ceil(avg);
                if k <= 1 || set.len() <= 2 * avg {
                    centres.extend(kmeans::mean(&self.centroids, dim, &set));
                    members.push(set);
                    continue;
                }
                let c = kmeans::kmeans(&self.centroids, dim, &set, k, 6, set.len(), &mut rng);
                let mut parts = vec![Vec::new(); c.len() / dim];
                for &s in &set {
                    parts[kmeans::nearest(&c, dim, self.centroid(s, dim)).0].push(s);
                }
                if parts.iter().any(|p| p.len() == set.len()) {
                    // Identical centroids: cut the set into chunks instead.
                    for chunk in set.chunks(avg) {
                        centres.extend(kmeans::mean(&self.centroids, dim, chunk));
                        members.push(chunk.to_vec());
                    }
                    continue;
                }
                pending.extend(parts.into_iter().filter(|p| !p.is_empty()));
            }
            g.blocks = vec![Vec::new(); members.len()];
            for (c, set) in members.iter().enumerate() {
                for &s in set {
                    g.blocks[c].extend_from_slice(self.centroid(s, dim));
                    g.group_of[s as usize] = c as u32;
                }
            }
            g.centres = centres;
            g.slots = members;
            g.built_at = live.len();
        }
        self.groups = g;
        self.codes = HeadCodes::default();
        if live.len() > CODED_HEADS {
            // The origin is the mean of the centroids whose squared norm is finite: one centroid
            // of overflowing (or NaN) components would otherwise make every estimate infinite
            // (or NaN), and approximate searches would find nothing at all.
            let sane: Vec<u32> = live
                .iter()
                .copied()
                .filter(|&s| {
                    let c = self.centroid(s, dim);
                    (kernels().neg_dot)(c, c).is_finite()
                })
                .collect();
            self.codes.origin = if sane.is_empty() {
                vec![0.0; dim]
            } else {
                kmeans::mean(&self.centroids, dim, &sane)
            };
            for &s in &live {
                let centroid = &self.centroids[s as usize * dim..][..dim];
                self.codes.encode(s as usize, centroid);
            }
        }
    }

    /// Estimated squared L2 from `q` to every head slot by the codes (infinite for free slots):
    /// `|q - c|^2 = |q - o|^2 - 2 (q - o).(c - o) + |c - o|^2` with `c - o ~ s x`, `q - o ~ t y`.
    fn estimate(&self, q: &[f32], dim: usize, out: &mut Vec<f32>) {
        let hc = &self.codes;
        let slots = self.postings.len();
        CODE_SCRATCH.with(|scratch| {
            let (offset, qcodes, dots) = &mut *scratch.borrow_mut();
            offset.clear();
            offset.extend(q.iter().zip(&hc.origin).map(|(a, o)| a - o));
            qcodes.resize(dim, 0);
            let t = quantize(offset, qcodes);
            let qn = -(kernels().neg_dot)(offset, offset);
            dots.resize(slots, 0);
            (code_kernels().dot_batch)(qcodes, &hc.codes[..slots * dim], dots);
            out.clear();
            let parts = dots.iter().zip(hc.scales.iter().zip(&hc.norms));
            out.extend(parts.map(|(&x, (&s, &n))| qn + n - 2.0 * t * s * x as f32));
        });
        for &f in &self.free {
            out[f as usize] = f32::INFINITY;
        }
    }

    fn join_group(&mut self, slot: u32, dim: usize) {
        if self.groups.built_at == 0 {
            return;
        }
        let (c, _) = kmeans::nearest(&self.groups.centres, dim, self.centroid(slot, dim));
        self.groups.slots[c].push(slot);
        let centroid = &self.centroids[slot as usize * dim..][..dim];
        self.groups.blocks[c].extend_from_slice(centroid);
        let s = slot as usize;
        if self.groups.group_of.len() <= s {
            self.groups.group_of.resize(s + 1, NO_GROUP);
        }
        self.groups.group_of[s] = c as u32;
    }

    fn leave_group(&mut self, slot: u32, dim: usize) {
        let Some(&c) = self.groups.group_of.get(slot as usize) else { return };
        if c == NO_GROUP {
            return;
        }
        let (members, block) =
            (&mut self.groups.slots[c as usize], &mut self.groups.blocks[c as usize]);
        if let Some(i) = members.iter().position(|&s| s == slot) {
            let last = members.len() - 1;
            members.swap_remove(i);
            block.copy_within(last * dim..(last + 1) * dim, i * dim);
            block.truncate(last * dim);
        }
        self.groups.group_of[slot as usize] = NO_GROUP;
    }
}

impl HeadIndex {
    pub fn new(dim: usize) -> HeadIndex {
        HeadIndex { dim, inner: RwLock::new(Heads::default()) }
    }

    pub fn len(&self) -> usize {
        self.inner.read().alive
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `n` nearest live postings to `q` by squared L2 to their centroids, nearest first,
    /// written into `out` (cleared first): an exact scan of every centroid, for searches.
    /// Returns the bytes the lookup read (centroids or their codes).
    pub fn nearest(&self, q: &[f32], n: usize, out: &mut Vec<(f32, Arc<Posting>)>) -> usize {
        self.lookup(q, n, false, out)
    }

    /// Like [`HeadIndex::nearest`], but past [`FLAT_HEADS`] heads only the centroids of the
    /// nearest groups are scanned: for placing vectors, where a near-nearest posting will do.
    pub fn nearest_approx(&self, q: &[f32], n: usize, out: &mut Vec<(f32, Arc<Posting>)>) {
        self.lookup(q, n, true, out);
    }

    fn lookup(
        &self,
        q: &[f32],
        n: usize,
        approx: bool,
        out: &mut Vec<(f32, Arc<Posting>)>,
    ) -> usize {
        out.clear();
        let dim = self.dim;
        SCRATCH.with(|s| {
            let (dists, top, near_groups) = &mut *s.borrow_mut();
            let heads = self.inner.read();
            top.reset(n);
            // Searches read the codes past FLAT_HEADS; placements while there is no coarse
            // layer.
            let coded = !heads.codes.origin.is_empty()
                && match approx {
                    false => heads.alive > FLAT_HEADS,
                    true => heads.groups.built_at == 0,
                };
            let read = if coded {
                heads.estimate(q, self.dim, dists);
                // The best estimates (selected in linear time: a heap of this size would cost
                // more than the scan), then exact distances among them.
                let m = (HEAD_RERANK * n + 8).min(dists.len());
                let read = dists.len() * (dim + 8) + m * dim * 4;
                CANDIDATES.with(|c| {
                    let cands = &mut *c.borrow_mut();
                    cands.clear();
                    cands.extend(dists.iter().enumerate().map(|(i, &d)| (d, i as u32)));
                    if m < cands.len() {
                        cands.select_nth_unstable_by(m, |a, b| a.0.total_cmp(&b.0));
                        cands.truncate(m);
                    }
                    for &(d, slot) in cands.iter() {
                        if d.is_finite() {
                            let exact = (kernels().l2sq)(q, heads.centroid(slot, self.dim));
                            top.push_distinct(exact, slot);
                        }
                    }
                });
                read
            } else if !approx || heads.groups.built_at == 0 {
                dists.resize(heads.postings.len(), 0.0);
                (kernels().l2sq_batch)(q, &heads.centroids, dists);
                for &f in &heads.free {
                    dists[f as usize] = f32::INFINITY;
                }
                for (i, &d) in dists.iter().enumerate() {
                    if d < top.threshold() {
                        top.push_distinct(d, i as u32);
                    }
                }
                heads.centroids.len() * 4
            } else {
                let g = &heads.groups;
                dists.resize(g.slots.len(), 0.0);
                (kernels().l2sq_batch)(q, &g.centres, dists);
                let per_group = heads.alive.div_ceil(g.slots.len().max(1)).max(1);
                near_groups.reset(MIN_GROUPS.max(3 * n.div_ceil(per_group)));
                for (i, &d) in dists.iter().enumerate() {
                    if d < near_groups.threshold() {
                        near_groups.push_distinct(d, i as u32);
                    }
                }
                let mut read = g.centres.len() * 4;
                for group in near_groups.drain_sorted() {
                    let (slots, block) =
                        (&g.slots[group.key as usize], &g.blocks[group.key as usize]);
                    dists.resize(slots.len(), 0.0);
                    (kernels().l2sq_batch)(q, block, dists);
                    read += block.len() * 4;
                    for (&slot, &d) in slots.iter().zip(dists.iter()) {
                        if d < top.threshold() {
                            top.push_distinct(d, slot);
                        }
                    }
                }
                read
            };
            out.extend(top.drain_sorted().filter(|s| s.dist.is_finite()).map(|s| {
                let posting = heads.postings[s.key as usize].clone();
                (s.dist, posting.expect("only live slots are scored"))
            }));
            read
        })
    }

    /// The live posting nearest `q` among those `skip` does not exclude, by squared L2 summed in
    /// `f64` (NaN ranks last, ties go to the lower slot): for placing a vector the `f32` lookups
    /// could not rank, because its distances overflow or are NaN. Finite components never
    /// overflow here, so even such a vector goes to its nearest posting. Scans every head; only
    /// called when the ordinary lookup found no finite candidate.
    pub fn nearest_wide(
        &self,
        q: &[f32],
        skip: impl Fn(&Arc<Posting>) -> bool,
    ) -> Option<Arc<Posting>> {
        let heads = self.inner.read();
        let mut best: Option<(f64, &Arc<Posting>)> = None;
        for (slot, p) in heads.postings.iter().enumerate() {
            let Some(p) = p.as_ref().filter(|p| !skip(p)) else { continue };
            let c = heads.centroid(slot as u32, self.dim);
            let d: f64 = q.iter().zip(c).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum();
            let d = if d.is_nan() { f64::INFINITY } else { d };
            if best.is_none_or(|(b, _)| d < b) {
                best = Some((d, p));
            }
        }
        best.map(|(_, p)| p.clone())
    }

    /// Adds a posting with `centroid` and `members`, returning it.
    pub fn insert(&self, centroid: Vec<f32>, members: Members) -> Arc<Posting> {
        debug_assert_eq!(centroid.len(), self.dim);
        let mut heads = self.inner.write();
        let slot = match heads.free.pop() {
            Some(s) => s,
            None => {
                heads.postings.push(None);
                heads.centroids.extend(std::iter::repeat_n(0.0, self.dim));
                (heads.postings.len() - 1) as u32
            }
        };
        let s = slot as usize;
        heads.centroids[s * self.dim..(s + 1) * self.dim].copy_from_slice(&centroid);
        if !heads.codes.origin.is_empty() {
            heads.codes.encode(s, &centroid);
        }
        let posting = Arc::new(Posting::new(PostingId(slot), centroid, members));
        heads.postings[s] = Some(posting.clone());
        heads.alive += 1;
        if heads.needs_rebuild() {
            heads.rebuild(self.dim);
        } else {
            heads.join_group(slot, self.dim);
        }
        posting
    }

    /// Removes a posting; readers that already hold it keep a consistent view of it.
    pub fn remove(&self, id: PostingId) {
        let mut heads = self.inner.write();
        let s = id.0 as usize;
        if heads.postings.get(s).is_some_and(|p| p.is_some()) {
            heads.postings[s] = None;
            heads.free.push(id.0);
            heads.alive -= 1;
            heads.leave_group(id.0, self.dim);
            if heads.needs_rebuild() {
                heads.rebuild(self.dim);
            }
        }
    }

    /// The live posting at `id`, if any.
    pub fn get(&self, id: PostingId) -> Option<Arc<Posting>> {
        self.inner.read().postings.get(id.0 as usize).cloned().flatten()
    }

    /// Every live posting.
    pub fn all(&self) -> Vec<Arc<Posting>> {
        self.inner.read().postings.iter().flatten().cloned().collect()
    }

    /// Bytes held by the centroid block and the coarse layer.
    pub fn heap_bytes(&self) -> usize {
        let h = self.inner.read();
        let g = &h.groups;
        h.centroids.capacity() * 4
            + h.postings.capacity() * 8
            + g.centres.capacity() * 4
            + g.group_of.capacity() * 4
            + g.slots.iter().map(|s| s.capacity() * 4).sum::<usize>()
            + h.codes.codes.capacity()
            + (h.codes.scales.capacity() + h.codes.norms.capacity()) * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `count` cluster centres of `dim` components, spread 1.5 around `offset`.
    fn clustered_centres(rng: &mut Rng, count: usize, dim: usize, offset: f32) -> Vec<Vec<f32>> {
        (0..count).map(|_| (0..dim).map(|_| rng.normal() * 1.5 + offset).collect()).collect()
    }

    /// Inserts `n` heads, each at a random centre plus unit noise (posting centroids are
    /// clustered like the data they summarise); returns their centroids by slot.
    fn insert_around(
        heads: &HeadIndex,
        rng: &mut Rng,
        centres: &[Vec<f32>],
        n: usize,
    ) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| {
                let m = &centres[rng.below(centres.len())];
                let c: Vec<f32> = m.iter().map(|x| x + rng.normal()).collect();
                heads.insert(c.clone(), Members::with_capacity(crate::index::Encoding::F32, 0, 0));
                c
            })
            .collect()
    }

    /// Between [`CODED_HEADS`] and [`FLAT_HEADS`] a placement estimates from the codes and
    /// ranks the best few exactly: it finds the nearest head a full scan finds.
    #[test]
    fn coded_placement_finds_the_nearest_head() {
        let seed = 78;
        println!("seed {seed}");
        let mut rng = Rng::new(seed);
        let dim = 48;
        let heads = HeadIndex::new(dim);
        let centres = clustered_centres(&mut rng, 20, dim, 3.0);
        let all = insert_around(&heads, &mut rng, &centres, 400);
        {
            let h = heads.inner.read();
            assert!(!h.codes.origin.is_empty() && h.groups.built_at == 0, "codes, no groups");
        }
        let (mut out, mut exact) = (Vec::new(), Vec::new());
        let mut same = 0;
        for _ in 0..300 {
            let m = &centres[rng.below(20)];
            let q: Vec<f32> = m.iter().map(|x| x + rng.normal()).collect();
            heads.nearest_approx(&q, 8, &mut out);
            heads.nearest(&q, 8, &mut exact);
            assert_eq!(out.len(), 8);
            // Both rank by exact distances, so the first is the same head up to ties.
            same += (out[0].0 == exact[0].0) as usize;
        }
        assert!(same >= 297, "the coded placement missed the nearest head {} of 300", 300 - same);
        heads.nearest_approx(&all[7], 1, &mut out);
        assert_eq!(out[0].1.id.0, 7, "a head's own centroid is its nearest");
    }

    #[test]
    fn grouped_lookup_finds_nearly_what_a_full_scan_finds() {
        let seed = 77;
        println!("seed {seed}");
        let mut rng = Rng::new(seed);
        let dim = 16;
        let heads = HeadIndex::new(dim);
        let centres = clustered_centres(&mut rng, 60, dim, 0.0);
        let all = insert_around(&heads, &mut rng, &centres, 3000);
        // Remove a third so groups have holes and the layer is rebuilt at least once more.
        for id in (0..3000).step_by(3) {
            heads.remove(PostingId(id));
        }
        assert_eq!(heads.len(), 2000);
        let mut out = Vec::new();
        let (mut found, mut wanted) = (0, 0);
        for _ in 0..200 {
            let m = &centres[rng.below(60)];
            let q: Vec<f32> = m.iter().map(|x| x + rng.normal()).collect();
            let mut exact: Vec<(f32, u32)> = (0..3000u32)
                .filter(|i| i % 3 != 0)
                .map(|i| ((kernels().l2sq)(&q, &all[i as usize]), i))
                .collect();
            exact.sort_by(|a, b| a.0.total_cmp(&b.0));
            heads.nearest_approx(&q, 10, &mut out);
            assert_eq!(out.len(), 10);
            assert!(out.iter().all(|(_, p)| p.id.0 % 3 != 0), "a removed head was returned");
            found += exact[..10].iter().filter(|e| out.iter().any(|(_, p)| p.id.0 == e.1)).count();
            wanted += 10;
        }
        let recall = found as f64 / wanted as f64;
        println!("head recall@10 = {recall:.3}");
        // A placement only needs a near-nearest posting; searches scan every centroid.
        assert!(recall >= 0.8, "coarse layer recall {recall}");
        heads.nearest(&all[1], 1, &mut out);
        assert_eq!(out[0].1.id.0, 1, "the exact lookup finds a head's own centroid");
    }

    /// Centroids of overflowing, NaN and infinite components among many normal ones (past the
    /// flat limit, so lookups use codes and groups): every lookup finishes, normal queries still
    /// find normal heads, and a placement lookup for a hostile vector still finds a home.
    #[test]
    fn hostile_centroids_do_not_blind_the_lookups() {
        use crate::testing::{hostile_row, within, HOSTILE};
        let seed = 78;
        println!("seed {seed}");
        within(20, "head lookups", move || {
            let mut rng = Rng::new(seed);
            let dim = 8;
            let heads = HeadIndex::new(dim);
            let mut all = Vec::new();
            for i in 0..1200 {
                let c: Vec<f32> = if i % 100 == 7 {
                    hostile_row(&mut rng, HOSTILE[(i / 100) % HOSTILE.len()], dim)
                } else {
                    (0..dim).map(|_| rng.normal() * 3.0).collect()
                };
                all.push(c.clone());
                heads.insert(c, Members::with_capacity(crate::index::Encoding::F32, 0, 0));
            }
            let mut out = Vec::new();
            for i in (0..1200).filter(|i| i % 100 != 7).step_by(37) {
                heads.nearest(&all[i], 5, &mut out);
                assert_eq!(out.len(), 5, "head {i}");
                assert_eq!(out[0].1.id.0 as usize, i, "a head's own centroid is its nearest");
                heads.nearest_approx(&all[i], 5, &mut out);
                assert!(!out.is_empty(), "head {i}");
            }
            for kind in HOSTILE {
                let q = hostile_row(&mut rng, kind, dim);
                heads.nearest(&q, 5, &mut out);
                assert!(out.iter().all(|(d, _)| d.is_finite()));
                heads.nearest_approx(&q, 5, &mut out);
                assert!(heads.nearest_wide(&q, |_| false).is_some(), "{kind:?}");
            }
            for id in (0..1200).step_by(2) {
                heads.remove(PostingId(id));
            }
            assert_eq!(heads.len(), 600);
        });
    }
}
