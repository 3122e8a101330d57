//! One shard's SPFresh index: postings around centroids, a head index over the centroids, a
//! version map, and the LIRE background jobs that keep postings balanced (see `lire.rs`).
//!
//! Vectors handed to the index are already prepared for the metric (unit length under cosine).
//! Structure (centroids, placement, splits) always uses squared L2; member scans use the metric.

mod head;
mod lire;
mod posting;
mod versions;

use crate::distance::{kernels, Metric};
use crate::error::{Error, Result};
use crate::kmeans;
use crate::rng::Rng;
use crate::topk::{Scored, TopK};
use head::HeadIndex;
use lire::Jobs;
use posting::{Members, Posting};
use rayon::prelude::*;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use versions::{Slot, VersionMap, VersionWord};

/// Relative bound on the rounding error of a scanned distance, as a fraction of
/// `|q|^2 + |x|^2`; f32 sums over thousands of components stay well inside it.
const ROUNDING: f32 = 1e-5;

/// The RNG rule over candidates sorted nearest first, `(squared L2 to v, head)`: the nearest
/// always; another only within the replica ratio of the nearest and only if no chosen head lies
/// closer to it (scaled by `rng_factor`) than `v` does, so replicas land on different sides of
/// `v`. Shared by placement and the bulk load.
fn choose_replicas<T>(
    p: &IndexParams,
    cands: impl Iterator<Item = (f32, T)>,
    head_distance: impl Fn(&T, &T) -> f32,
    out: &mut Vec<T>,
) {
    let mut first = f32::INFINITY;
    for (d, cand) in cands {
        if out.is_empty() {
            first = d;
        } else {
            if out.len() >= p.replicas || d > first * (1.0 + p.replica_ratio) {
                break;
            }
            if out.iter().any(|c| p.rng_factor * head_distance(c, &cand) < d) {
                continue;
            }
        }
        out.push(cand);
    }
}

/// The bulk load's first level of k-means aims straight for the final posting count (every
/// vector in its nearest centroid's posting, as an IVF would), up to this many centroids to
/// bound the cost; oversized clusters are then split further.
const FLAT_KMEANS_MAX: usize = 4096;

/// A posting this many times over the split limit holds writers back until it is split.
const HARD_LIMIT_FACTOR: usize = 4;

/// Build and maintenance parameters of one index.
#[derive(Clone, Debug)]
pub struct IndexParams {
    pub dim: usize,
    pub metric: Metric,
    /// Members per posting the bulk load aims for, at least; the index raises it to half the
    /// square root of its live vector count so the head index stays small as data grows.
    pub posting_size: usize,
    /// A posting holding more members than this is split (after garbage collection); raised
    /// with the posting size, to twice it.
    pub split_limit: usize,
    /// A posting with fewer live members than this is merged into its neighbours.
    pub merge_limit: usize,
    /// Most postings one vector is written to (boundary replicas, chosen by the RNG rule).
    pub replicas: usize,
    /// Nearest heads considered as replica targets.
    pub replica_candidates: usize,
    /// A replica's head may be at most `1 + replica_ratio` times as far (squared L2) as the
    /// nearest head.
    pub replica_ratio: f32,
    /// The RNG rule skips a replica head `h` when a chosen head `c` has
    /// `rng_factor * d(c, h) < d(v, h)`; 0 disables the rule, larger values are stricter.
    pub rng_factor: f32,
    /// Neighbouring postings examined for reassignment after a split.
    pub reassign_k: usize,
    /// Background LIRE threads; 0 runs jobs only when a caller drains them.
    pub background_threads: usize,
    /// Queued jobs beyond which writers wait, and then are refused.
    pub max_pending_jobs: usize,
    /// How long a writer waits for the job queue to fall below the limit.
    pub backpressure_timeout: Duration,
    pub seed: u64,
}

impl IndexParams {
    /// Defaults chosen by measurement on the clustered presets (see `BENCHMARKS.md`).
    pub fn new(dim: usize, metric: Metric) -> IndexParams {
        IndexParams {
            dim,
            metric,
            posting_size: 32,
            split_limit: 64,
            merge_limit: 8,
            replicas: 2,
            replica_candidates: 8,
            replica_ratio: 0.15,
            rng_factor: 1.0,
            reassign_k: 32,
            background_threads: 1,
            max_pending_jobs: 4096,
            backpressure_timeout: Duration::from_secs(5),
            seed: 0x5eed,
        }
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: &str| Err(Error::InvalidParameter { name, reason: reason.into() });
        if self.dim == 0 {
            return bad("dim", "must be at least 1");
        }
        if self.posting_size == 0 || self.split_limit < self.posting_size.max(2) {
            return bad("split_limit", "must be at least posting_size and 2");
        }
        if self.merge_limit * 2 > self.split_limit {
            return bad("merge_limit", "must be at most half of split_limit");
        }
        if self.replicas == 0 || self.replica_candidates < self.replicas {
            return bad("replicas", "must be at least 1 and at most replica_candidates");
        }
        Ok(())
    }
}

/// Parameters of one search.
#[derive(Clone, Copy, Debug)]
pub struct SearchParams {
    pub k: usize,
    pub nprobe: usize,
    /// Scan every posting instead of the `nprobe` nearest.
    pub exact: bool,
}

impl SearchParams {
    /// Postings probed per shard unless a search asks otherwise: the smallest value that
    /// reaches recall@10 >= 0.95, with a margin, on the clustered presets (see `BENCHMARKS.md`).
    pub const DEFAULT_NPROBE: usize = 96;

    pub fn new(k: usize) -> SearchParams {
        SearchParams { k, nprobe: Self::DEFAULT_NPROBE, exact: false }
    }
}

/// Counters and gauges of one index.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub vectors: u64,
    pub postings: u64,
    /// Posting members, live or stale, across all postings.
    pub members: u64,
    pub splits: u64,
    pub merges: u64,
    pub reassigned: u64,
    pub gc_runs: u64,
    /// Searches run, and posting members they scanned (live or stale).
    pub searches: u64,
    pub scanned: u64,
    pub pending_jobs: u64,
    pub memory_bytes: u64,
}

impl IndexStats {
    pub fn add(&mut self, o: &IndexStats) {
        self.vectors += o.vectors;
        self.postings += o.postings;
        self.members += o.members;
        self.splits += o.splits;
        self.merges += o.merges;
        self.reassigned += o.reassigned;
        self.gc_runs += o.gc_runs;
        self.searches += o.searches;
        self.scanned += o.scanned;
        self.pending_jobs += o.pending_jobs;
        self.memory_bytes += o.memory_bytes;
    }
}

#[derive(Debug, Default)]
struct Counters {
    splits: AtomicU64,
    merges: AtomicU64,
    reassigned: AtomicU64,
    gc_runs: AtomicU64,
    searches: AtomicU64,
    scanned: AtomicU64,
}

/// State shared by the index handle and its background threads.
#[derive(Debug)]
struct Shared {
    params: IndexParams,
    heads: HeadIndex,
    versions: VersionMap,
    jobs: Jobs,
    counters: Counters,
    /// Serialises merges, so two of them can never retire the last two postings.
    merging: parking_lot::Mutex<()>,
}

/// What one shard decided to scan for a query. [`Index::lower_bound`] bounds any distance a
/// plan can return; the collection's pruned search uses it to skip shards exactly.
#[derive(Debug)]
pub struct Plan {
    /// The postings to scan, with the squared L2 distance from the query to their centroids.
    postings: Vec<(f32, Arc<Posting>)>,
    exact: bool,
}

/// One shard's SPFresh index. Dropping it stops its background threads.
#[derive(Debug)]
pub struct Index {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

thread_local! {
    static SCAN: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static NEAR: RefCell<Vec<(f32, Arc<Posting>)>> = const { RefCell::new(Vec::new()) };
}

impl Index {
    pub fn new(params: IndexParams) -> Result<Index> {
        params.validate()?;
        let shared = Arc::new(Shared {
            heads: HeadIndex::new(params.dim),
            versions: VersionMap::default(),
            jobs: Jobs::default(),
            counters: Counters::default(),
            merging: parking_lot::Mutex::new(()),
            params,
        });
        let workers = (0..shared.params.background_threads)
            .map(|i| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("lire-{i}"))
                    .spawn(move || s.worker())
                    .expect("spawning a background thread")
            })
            .collect();
        Ok(Index { shared, workers })
    }

    pub fn params(&self) -> &IndexParams {
        &self.shared.params
    }

    /// Number of live vectors.
    pub fn len(&self) -> usize {
        self.shared.versions.live()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds the index from scratch over `vectors` (row-major, prepared), consuming them: rows
    /// are copied into postings from the end while the input shrinks, so peak memory stays near
    /// the larger of the two rather than their sum. An index that already holds data takes the
    /// rows as ordinary upserts instead.
    pub fn bulk_load(&self, ids: &[u64], vectors: Vec<f32>) -> Result<()> {
        self.shared.check_rows(ids, &vectors)?;
        if !self.shared.heads.is_empty() {
            return self.upsert(ids, &vectors);
        }
        self.shared.bulk_build(ids, vectors);
        // Leaves that Voronoi refinement pushed over the split limit are split now, so the
        // build ends balanced and its cost is counted as build time.
        self.shared.drain();
        Ok(())
    }

    /// Inserts or replaces vectors (row-major, prepared). Waits, then fails with
    /// [`Error::Overloaded`], while background rebalancing is too far behind.
    pub fn upsert(&self, ids: &[u64], vectors: &[f32]) -> Result<()> {
        let s = &*self.shared;
        s.check_rows(ids, vectors)?;
        s.jobs.admit(s.params.max_pending_jobs, s.params.backpressure_timeout)?;
        if s.heads.is_empty() {
            // The first vectors of an empty index become one posting around their mean.
            let dim = s.params.dim;
            let all: Vec<u32> = (0..ids.len() as u32).collect();
            s.heads.insert(kmeans::mean(vectors, dim, &all), Members::with_capacity(0, dim));
        }
        let dim = s.params.dim;
        let one = |(id, v): (&u64, &[f32])| {
            let (slot, word, old_home) = s.versions.begin_upsert(*id);
            s.note_stale(old_home);
            s.write_copies(slot, word, v, None);
        };
        if ids.len() >= 64 {
            ids.par_iter().zip(vectors.par_chunks_exact(dim)).with_min_len(16).for_each(one);
        } else {
            ids.iter().zip(vectors.chunks_exact(dim)).for_each(one);
        }
        Ok(())
    }

    /// Deletes ids; unknown ids are ignored. Returns how many were live.
    pub fn delete(&self, ids: &[u64]) -> usize {
        let s = &self.shared;
        ids.iter().filter_map(|id| s.versions.delete(*id)).map(|home| s.note_stale(home)).count()
    }

    /// Chooses the postings a query scans and bounds the distances they can return.
    pub fn plan(&self, q: &[f32], params: &SearchParams) -> Plan {
        self.shared.plan(q, params)
    }

    /// A lower bound on the scan distance of anything `plan` can return (triangle inequality
    /// with each posting's radius; Cauchy-Schwarz for dot).
    pub fn lower_bound(&self, plan: &Plan, q: &[f32]) -> f32 {
        self.shared.lower_bound(plan, q)
    }

    /// Scans a plan: the `k` nearest live vectors, nearest first, keyed by external id.
    pub fn execute(&self, plan: &Plan, q: &[f32], k: usize) -> Vec<Scored<u64>> {
        self.shared.execute(plan, q, k)
    }

    /// Plans and executes one search.
    pub fn search(&self, q: &[f32], params: &SearchParams) -> Vec<Scored<u64>> {
        let plan = self.plan(q, params);
        self.execute(&plan, q, params.k)
    }

    /// Blocks until no background job is queued or running, helping to run them.
    pub fn wait_idle(&self) {
        self.shared.drain();
    }

    pub fn stats(&self) -> IndexStats {
        self.shared.stats()
    }
}

impl Drop for Index {
    fn drop(&mut self) {
        self.shared.jobs.shutdown();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Shared {
    fn check_rows(&self, ids: &[u64], vectors: &[f32]) -> Result<()> {
        let dim = self.params.dim;
        if vectors.len() != ids.len() * dim {
            return Err(Error::LengthMismatch {
                what: "vectors",
                want: ids.len() * dim,
                got: vectors.len(),
            });
        }
        Ok(())
    }

    /// Members per posting aimed for with `live` vectors: the configured size or half the
    /// square root of `live`, whichever is larger. Smaller postings scan fewer vectors for the
    /// same recall; half the square root balances that against the exact head scan a search
    /// makes (measured on the medium preset: sqrt(n) needed 23k scanned members per query for
    /// recall 0.95, sqrt(n)/2 needs 11k; see `BENCHMARKS.md`).
    fn posting_target(p: &IndexParams, live: usize) -> usize {
        p.posting_size.max(live.isqrt() / 2)
    }

    /// Counts a stale copy against the posting that held a vector's replaced or deleted
    /// version, and queues that posting's garbage collection once a quarter of it is stale.
    fn note_stale(&self, home: u32) {
        if home == versions::NO_HOME {
            return;
        }
        if let Some(p) = self.heads.get(posting::PostingId(home)) {
            let stale = p.stale.fetch_add(1, Ordering::Relaxed) + 1;
            if stale >= 8 && stale * 4 > p.members.read().len() {
                self.jobs.enqueue(&p);
            }
        }
    }

    /// The current split threshold (see [`IndexParams::split_limit`]).
    fn split_limit(&self) -> usize {
        let p = &self.params;
        p.split_limit.max(2 * Self::posting_target(p, self.versions.live()))
    }

    /// Chooses up to `params.replicas` postings for `v` by the RNG rule among the nearest
    /// heads: the nearest always; another only if it is within the replica ratio and no chosen
    /// head lies closer to it than `v` does (so replicas go to different sides of `v`).
    fn place(&self, v: &[f32], exclude: &[Arc<Posting>], out: &mut Vec<Arc<Posting>>) {
        out.clear();
        let p = &self.params;
        NEAR.with(|near| {
            let near = &mut *near.borrow_mut();
            self.heads.nearest_approx(v, p.replica_candidates + exclude.len(), near);
            let live = near
                .iter()
                .filter(|(_, c)| !exclude.iter().any(|e| Arc::ptr_eq(e, c)))
                .map(|(d, c)| (*d, c.clone()));
            let between =
                |a: &Arc<Posting>, b: &Arc<Posting>| (kernels().l2sq)(&a.centroid, &b.centroid);
            choose_replicas(p, live, between, out);
        });
    }

    /// Writes the copies of one vector version to its chosen postings. A chosen posting that
    /// was retired meanwhile is excluded and the choice made again, until at least one copy is
    /// written: a write never ends without a home for the vector.
    fn write_copies(
        &self,
        slot: Slot,
        word: VersionWord,
        v: &[f32],
        exclude: Option<&Arc<Posting>>,
    ) {
        let l2 = kernels().l2sq;
        let mut targets = Vec::with_capacity(self.params.replicas);
        let mut written: Vec<Arc<Posting>> = Vec::with_capacity(self.params.replicas);
        let mut excluded: Vec<Arc<Posting>> = exclude.into_iter().cloned().collect();
        let limit = self.split_limit();
        loop {
            self.place(v, &excluded, &mut targets);
            if targets.is_empty() {
                // Every candidate was retired: the postings replacing them are being published.
                std::thread::yield_now();
                excluded.truncate(exclude.is_some() as usize);
                continue;
            }
            for t in &targets {
                if written.iter().any(|w| Arc::ptr_eq(w, t)) {
                    continue;
                }
                let len = {
                    let mut m = t.members.write();
                    if m.retired {
                        excluded.push(t.clone());
                        continue;
                    }
                    m.push(slot, word, v, l2(v, &t.centroid));
                    m.len()
                };
                if written.is_empty() {
                    self.versions.set_home(slot, word, t.id.0);
                }
                written.push(t.clone());
                if len > limit * HARD_LIMIT_FACTOR {
                    self.jobs.mark_overfull(t);
                } else if len > limit {
                    self.jobs.enqueue(t);
                }
            }
            if !written.is_empty() {
                return;
            }
        }
    }

    fn plan(&self, q: &[f32], params: &SearchParams) -> Plan {
        if params.exact {
            let postings = self.heads.all().into_iter().map(|p| (f32::NEG_INFINITY, p)).collect();
            return Plan { postings, exact: true };
        }
        let mut postings = Vec::with_capacity(params.nprobe.max(1));
        self.heads.nearest(q, params.nprobe.max(1), &mut postings);
        Plan { postings, exact: false }
    }

    fn lower_bound(&self, plan: &Plan, q: &[f32]) -> f32 {
        let metric = self.params.metric.scan_metric();
        if plan.exact {
            return f32::NEG_INFINITY;
        }
        let qnorm = if metric == Metric::Dot { (-(kernels().neg_dot)(q, q)).sqrt() } else { 0.0 };
        let mut lower_bound = f32::INFINITY;
        for (d, p) in &plan.postings {
            let radius = p.members.read().radius;
            let lb = match metric {
                // |q - x| >= |q - c| - |x - c|
                Metric::L2 => (d.sqrt() - radius).max(0.0).powi(2),
                // -q.x = -q.c - q.(x - c) >= -q.c - |q| |x - c|
                _ => (kernels().neg_dot)(q, &p.centroid) - qnorm * radius,
            };
            lower_bound = lower_bound.min(lb);
        }
        // Leave room for rounding in the kernels.
        lower_bound - (lower_bound.abs() * 1e-4 + 1e-6)
    }

    fn execute(&self, plan: &Plan, q: &[f32], k: usize) -> Vec<Scored<u64>> {
        let dim = self.params.dim;
        let metric = self.params.metric.scan_metric();
        let pair = kernels().pair(metric);
        // The scan computes q.x for a whole posting (L2 expands to |q|^2 + |x|^2 - 2 q.x with
        // stored norms: one multiply-add per component) and lowers each value by a bound on
        // its rounding error; survivors of that filter get their distance computed exactly.
        let neg_dot = kernels().neg_dot_batch;
        let qn = -(kernels().neg_dot)(q, q);
        let l2 = metric == Metric::L2;
        let mut top: TopK<Slot> = TopK::new(k);
        let mut maintain: Vec<&Arc<Posting>> = Vec::new();
        let mut scanned = 0usize;
        SCAN.with(|scratch| {
            let dists = &mut *scratch.borrow_mut();
            for (_, p) in &plan.postings {
                // Lock order: a posting's members, then the version view.
                let m = p.members.read();
                let view = self.versions.view();
                let n = m.len();
                scanned += n;
                dists.resize(n, 0.0);
                neg_dot(q, &m.vectors[..n * dim], &mut dists[..n]);
                for (d, norm) in dists[..n].iter_mut().zip(&m.norms) {
                    let expanded = if l2 { qn + norm + 2.0 * *d } else { *d };
                    *d = expanded - ROUNDING * (qn + norm);
                }
                // Most members lose against the k-th distance; a vectorised minimum per block of
                // 16 skips whole blocks, and only blocks with a contender are looked at closely.
                let mut found = 0usize;
                let mut stale = 0usize;
                for (b, block) in dists[..n].chunks(16).enumerate() {
                    let min = block.iter().fold(f32::INFINITY, |a, &d| a.min(d));
                    if min > top.threshold() {
                        continue;
                    }
                    for (j, &d) in block.iter().enumerate() {
                        if d > top.threshold() {
                            continue;
                        }
                        let i = b * 16 + j;
                        found += 1;
                        if view.is_live(m.slots[i], m.words[i]) {
                            top.push(pair(q, m.vector(i, dim)), m.slots[i]);
                        } else {
                            stale += 1;
                        }
                    }
                }
                let small = n < self.params.merge_limit && !m.retired;
                if small || (found >= 8 && stale * 2 > found) {
                    maintain.push(p);
                }
            }
        });
        for p in maintain {
            self.jobs.enqueue(p);
        }
        self.counters.searches.fetch_add(1, Ordering::Relaxed);
        self.counters.scanned.fetch_add(scanned as u64, Ordering::Relaxed);
        let view = self.versions.view();
        let mut out: Vec<Scored<u64>> = top
            .into_sorted()
            .into_iter()
            .map(|s| Scored { dist: s.dist, key: view.external(s.key) })
            .collect();
        out.sort_by(|a, b| a.cmp_total(b));
        out
    }

    fn bulk_build(&self, ids: &[u64], mut vectors: Vec<f32>) {
        let p = &self.params;
        let dim = p.dim;
        let n = ids.len();
        if n == 0 {
            return;
        }
        let mut rng = Rng::new(p.seed);
        let target = Self::posting_target(p, n);
        let first = n.div_ceil(target).clamp(2, FLAT_KMEANS_MAX);
        let (mut centroids, mut leaf) =
            kmeans::hierarchical(&vectors, dim, target, first, 16, &mut rng);
        let heads = centroids.len() / dim;
        let fan = p.replica_candidates.max(16);
        for _ in 0..2 {
            kmeans::refine(&vectors, dim, &mut centroids, &mut leaf, fan);
        }
        // Replica candidates of a vector: the heads nearest to its leaf's head.
        let neighbours = kmeans::neighbour_lists(&centroids, dim, p.replica_candidates);
        let targets: Vec<Vec<u32>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let v = &vectors[i * dim..(i + 1) * dim];
                let mut cands: Vec<(f32, u32)> = neighbours[leaf[i] as usize]
                    .iter()
                    .map(|&h| ((kernels().l2sq)(v, &centroids[h as usize * dim..][..dim]), h))
                    .collect();
                cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let mut chosen: Vec<u32> = Vec::with_capacity(p.replicas);
                let c = |h: &u32| &centroids[*h as usize * dim..][..dim];
                let between = |a: &u32, b: &u32| (kernels().l2sq)(c(a), c(b));
                choose_replicas(p, cands.into_iter(), between, &mut chosen);
                chosen
            })
            .collect();
        let mut sizes = vec![0usize; heads];
        for t in targets.iter().flatten() {
            sizes[*t as usize] += 1;
        }
        // A quarter of headroom per posting: updates append without reallocating at first, and
        // capacity never written is never resident.
        let mut members: Vec<Members> =
            sizes.iter().map(|&s| Members::with_capacity(s + s / 4, dim)).collect();
        let slots: Vec<(Slot, VersionWord)> =
            ids.iter().map(|id| self.versions.begin_upsert(*id)).map(|(s, w, _)| (s, w)).collect();
        // Copy rows from the end and give the input's memory back as we go.
        let l2 = kernels().l2sq;
        let shrink_every = (1 << 22) / dim.max(1);
        for i in (0..n).rev() {
            let v = &vectors[i * dim..(i + 1) * dim];
            for &t in &targets[i] {
                let c = &centroids[t as usize * dim..][..dim];
                members[t as usize].push(slots[i].0, slots[i].1, v, l2(v, c));
            }
            if i % shrink_every == 0 {
                vectors.truncate(i * dim);
                vectors.shrink_to_fit();
            }
        }
        drop(vectors);
        let limit = self.split_limit();
        let mut ids_of = vec![versions::NO_HOME; heads];
        for (h, m) in members.into_iter().enumerate() {
            if !m.is_empty() {
                let len = m.len();
                let posting = self.heads.insert(centroids[h * dim..(h + 1) * dim].to_vec(), m);
                ids_of[h] = posting.id.0;
                if len > limit {
                    self.jobs.enqueue(&posting);
                }
            }
        }
        for ((slot, word), t) in slots.iter().zip(&targets) {
            self.versions.set_home(*slot, *word, ids_of[t[0] as usize]);
        }
    }

    fn stats(&self) -> IndexStats {
        let postings = self.heads.all();
        let (mut members, mut bytes) = (0u64, self.heads.heap_bytes() as u64);
        for p in &postings {
            let m = p.members.read();
            members += m.len() as u64;
            bytes += m.heap_bytes() as u64 + (p.centroid.len() * 4) as u64;
        }
        bytes += self.versions.slots() as u64 * 12 + self.versions.slots() as u64 * 16;
        let c = &self.counters;
        IndexStats {
            vectors: self.versions.live() as u64,
            postings: postings.len() as u64,
            members,
            splits: c.splits.load(Ordering::Relaxed),
            merges: c.merges.load(Ordering::Relaxed),
            reassigned: c.reassigned.load(Ordering::Relaxed),
            gc_runs: c.gc_runs.load(Ordering::Relaxed),
            searches: c.searches.load(Ordering::Relaxed),
            scanned: c.scanned.load(Ordering::Relaxed),
            pending_jobs: self.jobs.pending() as u64,
            memory_bytes: bytes,
        }
    }
}

#[cfg(test)]
mod tests;
