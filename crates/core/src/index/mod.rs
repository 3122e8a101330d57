//! One shard's SPFresh index: postings around centroids, a head index over the centroids, a
//! version map, and the LIRE background jobs that keep postings balanced (see `lire.rs`).
//!
//! Vectors handed to the index are already prepared for the metric (unit length under cosine).
//! Structure (centroids, placement, splits) always uses squared L2; member scans use the metric.

mod calibrate;
mod filtered;
mod head;
mod lire;
mod persist;
mod posting;
mod store;
mod versions;

use crate::distance::codes::{code_kernels, quantize};
use crate::distance::signs::{self, SignQuery};
use crate::distance::{kernels, Metric};
use crate::error::{Error, Result};
use crate::kmeans;
use crate::rng::Rng;
use crate::topk::{Scored, TopK};
pub use calibrate::{Calibration, CALIBRATION_K, DEFAULT_TARGET_RECALL};
pub use filtered::{FilteredCost, FilteredStrategy};
use head::HeadIndex;
use lire::Jobs;
pub use persist::{MaintenanceHold, ShardCut};
use posting::{Members, Posting};
use rayon::prelude::*;
use roaring::RoaringBitmap;
use std::cell::RefCell;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use store::VectorStore;
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

/// How postings hold their members' vectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Encoding {
    /// The `f32` vectors themselves, scanned exactly.
    F32,
    /// Each member's residual to its posting's centroid as `i8` codes with one scale per member;
    /// the `f32` vectors live once, in the shard's vector store, and re-rank the candidates the
    /// codes nominate. A quarter of the bytes per scanned member.
    #[default]
    Int8,
}

impl Encoding {
    pub fn parse(s: &str) -> Option<Encoding> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Some(Encoding::F32),
            "int8" | "i8" => Some(Encoding::Int8),
            _ => None,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::F32 => "f32",
            Encoding::Int8 => "int8",
        })
    }
}

/// Build and maintenance parameters of one index.
#[derive(Clone, Debug)]
pub struct IndexParams {
    pub dim: usize,
    pub metric: Metric,
    pub encoding: Encoding,
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
            encoding: Encoding::default(),
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

    /// The largest vector dimension.
    pub const MAX_DIM: usize = 65_536;
    /// The largest `posting_size`.
    pub const MAX_POSTING_SIZE: usize = 50_000;
    /// The largest `split_limit`: a split clusters at most this many members (times the
    /// hard-limit factor while writers wait).
    pub const MAX_SPLIT_LIMIT: usize = 100_000;
    /// The most postings one vector is written to (SPANN's own bound).
    pub const MAX_REPLICAS: usize = 8;

    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: &str| Err(Error::InvalidParameter { name, reason: reason.into() });
        if self.dim == 0 || self.dim > Self::MAX_DIM {
            return bad("dim", &format!("must be 1..={}", Self::MAX_DIM));
        }
        if self.posting_size == 0 || self.posting_size > Self::MAX_POSTING_SIZE {
            return bad("posting_size", &format!("must be 1..={}", Self::MAX_POSTING_SIZE));
        }
        if self.split_limit < self.posting_size.max(2) || self.split_limit > Self::MAX_SPLIT_LIMIT {
            return bad(
                "split_limit",
                &format!("must be at least posting_size and 2, at most {}", Self::MAX_SPLIT_LIMIT),
            );
        }
        if self.merge_limit * 2 > self.split_limit {
            return bad("merge_limit", "must be at most half of split_limit");
        }
        if self.replicas == 0 || self.replicas > Self::MAX_REPLICAS {
            return bad("replicas", &format!("must be 1..={}", Self::MAX_REPLICAS));
        }
        if self.replica_candidates < self.replicas || self.replica_candidates > 64 {
            return bad("replica_candidates", "must be at least replicas, at most 64");
        }
        if self.reassign_k > 1024 || self.background_threads > 64 {
            return bad("reassign_k", "reassign_k at most 1024, background_threads at most 64");
        }
        Ok(())
    }
}

/// Parameters of one search.
#[derive(Clone, Copy, Debug)]
pub struct SearchParams {
    pub k: usize,
    /// Postings probed per shard; 0 lets the shard choose from its calibration (see
    /// `target_recall`).
    pub nprobe: usize,
    /// With `nprobe` 0: the recall@10 the shard's calibration should reach; `None` means
    /// [`DEFAULT_TARGET_RECALL`].
    pub target_recall: Option<f32>,
    /// With codes: candidates re-ranked with exact distances, as a multiple of `k` (at least
    /// [`SearchParams::MIN_RERANKED`] in all).
    pub rerank: usize,
    /// Compute every distance exactly over every vector (bypassing `nprobe` and the codes).
    pub exact: bool,
}

impl SearchParams {
    /// Re-ranked candidates per result with codes: residual `int8` estimates rank so well that
    /// twice `k` loses next to no recall on the presets, and every extra candidate costs a
    /// random read of its vector (see `BENCHMARKS.md`).
    pub const DEFAULT_RERANK: usize = 2;
    /// The fewest candidates re-ranked, so a small `k` still gets a margin.
    pub const MIN_RERANKED: usize = 16;

    /// The largest `k`.
    pub const MAX_K: usize = 1_000;
    /// The largest `nprobe`.
    pub const MAX_NPROBE: usize = 8_192;
    /// The largest `rerank`: at most `MAX_K * MAX_RERANK` candidates per shard.
    pub const MAX_RERANK: usize = 64;

    pub fn new(k: usize) -> SearchParams {
        SearchParams {
            k,
            nprobe: 0,
            target_recall: None,
            rerank: Self::DEFAULT_RERANK,
            exact: false,
        }
    }

    /// Checks every field against its bound, so the memory one search takes is bounded:
    /// `k` in `1..=MAX_K`, `nprobe` in `0..=MAX_NPROBE`, `rerank` in `1..=MAX_RERANK`, and a
    /// `target_recall` in `(0, 1]` only where `nprobe` is 0.
    pub fn validate(&self) -> Result<()> {
        let check = |name, v: usize, min: usize, max: usize| {
            if v < min || v > max {
                return Err(Error::InvalidParameter {
                    name,
                    reason: format!("must be {min}..={max}, got {v}"),
                });
            }
            Ok(())
        };
        check("k", self.k, 1, Self::MAX_K)?;
        check("nprobe", self.nprobe, 0, Self::MAX_NPROBE)?;
        check("rerank", self.rerank, 1, Self::MAX_RERANK)?;
        if let Some(t) = self.target_recall {
            let bad =
                |reason: String| Err(Error::InvalidParameter { name: "target_recall", reason });
            if !(t > 0.0 && t <= 1.0) {
                return bad(format!("must be in (0, 1], got {t}"));
            }
            if self.nprobe != 0 {
                return bad("cannot be combined with nprobe: give one or the other".into());
            }
        }
        Ok(())
    }

    /// Exact search: every vector, every distance computed exactly.
    pub fn exact(k: usize) -> SearchParams {
        SearchParams { exact: true, ..SearchParams::new(k) }
    }

    pub fn with_nprobe(self, nprobe: usize) -> SearchParams {
        SearchParams { nprobe, ..self }
    }

    pub fn with_rerank(self, rerank: usize) -> SearchParams {
        SearchParams { rerank, ..self }
    }

    pub fn with_target_recall(self, target: f32) -> SearchParams {
        SearchParams { target_recall: Some(target), nprobe: 0, ..self }
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
    /// Bytes searches read: centroids, posting members (vectors or codes with their norms and
    /// scales), and the vectors they re-ranked.
    pub scanned_bytes: u64,
    /// Candidates re-ranked with exact distances (with codes).
    pub reranked: u64,
    pub pending_jobs: u64,
    /// Heap bytes of the index in all, of which `f32` vectors (in postings or the vector
    /// store) and codes.
    pub memory_bytes: u64,
    pub vector_bytes: u64,
    pub code_bytes: u64,
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
        self.scanned_bytes += o.scanned_bytes;
        self.reranked += o.reranked;
        self.pending_jobs += o.pending_jobs;
        self.memory_bytes += o.memory_bytes;
        self.vector_bytes += o.vector_bytes;
        self.code_bytes += o.code_bytes;
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
    scanned_bytes: AtomicU64,
    reranked: AtomicU64,
}

/// State shared by the index handle and its background threads.
#[derive(Debug)]
struct Shared {
    params: IndexParams,
    heads: HeadIndex,
    versions: VersionMap,
    /// The vectors, once, when postings hold codes.
    store: Option<VectorStore>,
    jobs: Jobs,
    counters: Counters,
    /// Serialises merges, so two of them can never retire the last two postings.
    merging: parking_lot::Mutex<()>,
    /// The measured recall against depth (see `calibrate.rs`), once the shard has one.
    calibration: parking_lot::RwLock<Option<Arc<Calibration>>>,
    calibration_queued: std::sync::atomic::AtomicBool,
    /// Held while a calibration runs, so two never run at once on one shard.
    calibrating: parking_lot::Mutex<()>,
    /// Vectors written or deleted since the index was made, to tell when to calibrate again.
    mutations: AtomicU64,
    /// When the last write applied, in nanoseconds since `born`: a calibration waits for a
    /// stream of writes to pause (see `calibrate.rs`).
    last_write: AtomicU64,
    born: Instant,
}

/// What one shard decided to scan for a query. [`Index::lower_bound`] bounds any distance a
/// plan can return; the collection's pruned search uses it to skip shards exactly.
#[derive(Debug)]
pub struct Plan {
    /// The postings to scan, with the squared L2 distance from the query to their centroids.
    postings: Vec<(f32, Arc<Posting>)>,
    exact: bool,
    /// Bytes the head lookup read to choose the postings.
    head_bytes: u64,
}

/// Depths at which a scan also reports what its plan cut to that depth returns: the first
/// postings of a plan are the plan of a shallower search, so one deep scan measures a whole
/// grid of depths (the calibration's). `report(i, hits)` is called once the scan has read the
/// first `depths[i]` postings (depths ascending; those past the plan's length are reported
/// at its end), with the hits by slot, nearest first.
pub(super) struct Prefixes<'a> {
    depths: &'a [usize],
    report: &'a mut dyn FnMut(usize, Vec<Scored<Slot>>),
    /// Depths reported so far.
    done: usize,
}

impl<'a> Prefixes<'a> {
    pub(super) fn new(
        depths: &'a [usize],
        report: &'a mut dyn FnMut(usize, Vec<Scored<Slot>>),
    ) -> Self {
        Prefixes { depths, report, done: 0 }
    }

    /// Called before the scan reads posting `read` (and with `usize::MAX` at its end):
    /// reports every depth the scan has reached.
    fn reach(&mut self, read: usize, hits: impl Fn() -> TopK<Slot>) {
        while self.done < self.depths.len() && self.depths[self.done] <= read {
            (self.report)(self.done, hits().into_sorted());
            self.done += 1;
        }
    }
}

/// One shard's SPFresh index. Dropping it stops its background threads.
#[derive(Debug)]
pub struct Index {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

thread_local! {
    static SCAN: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static CODE_SCAN: RefCell<CodeScratch> = RefCell::new(CodeScratch::default());
    static NEAR: RefCell<Vec<(f32, Arc<Posting>)>> = const { RefCell::new(Vec::new()) };
}

/// What one scan read: members, bytes, and candidates re-ranked.
struct ScanCost {
    scanned: u64,
    bytes: u64,
    reranked: u64,
}

/// Per-thread buffers of the code scan.
#[derive(Default)]
struct CodeScratch {
    query_codes: Vec<i8>,
    signs: SignQuery,
    sums: Vec<u32>,
    lower: Vec<f32>,
    cands: Vec<u32>,
    dots: Vec<i32>,
}

impl Index {
    pub fn new(params: IndexParams) -> Result<Index> {
        params.validate()?;
        let shared = Arc::new(Shared {
            heads: HeadIndex::new(params.dim),
            versions: VersionMap::default(),
            store: (params.encoding == Encoding::Int8).then(|| VectorStore::new(params.dim)),
            jobs: Jobs::default(),
            counters: Counters::default(),
            merging: parking_lot::Mutex::new(()),
            calibration: parking_lot::RwLock::new(None),
            calibration_queued: std::sync::atomic::AtomicBool::new(false),
            calibrating: parking_lot::Mutex::new(()),
            mutations: AtomicU64::new(0),
            last_write: AtomicU64::new(0),
            born: Instant::now(),
            params,
        });
        let mut index = Index { shared, workers: Vec::new() };
        for i in 0..index.shared.params.background_threads {
            let s = index.shared.clone();
            // A refused thread (the process is at its limit) is an error, not a panic; the
            // workers already started stop when `index` drops.
            let worker = std::thread::Builder::new()
                .name(format!("lire-{i}"))
                .spawn(move || s.worker())
                .map_err(|e| Error::Resource(format!("starting a background thread: {e}")))?;
            index.workers.push(worker);
        }
        Ok(index)
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
        self.shared.note_writes(ids.len());
        calibrate::request(&self.shared);
        Ok(())
    }

    /// Inserts or replaces vectors (row-major, prepared). Helps, waits, then fails with
    /// [`Error::Overloaded`], while background rebalancing is too far behind (see
    /// [`Index::admit`]).
    pub fn upsert(&self, ids: &[u64], vectors: &[f32]) -> Result<()> {
        self.shared.check_rows(ids, vectors)?;
        self.admit()?;
        self.upsert_admitted(ids, vectors)
    }

    /// Admission control alone: while background rebalancing is too far behind, runs its
    /// queued jobs on the calling thread (or waits when none can start), then fails with
    /// [`Error::Overloaded`]. A durable writer calls it before logging a batch, so
    /// that a logged batch always applies.
    pub fn admit(&self) -> Result<()> {
        self.shared.admit()
    }

    /// [`Index::upsert`] without admission control (after [`Index::admit`]).
    pub fn upsert_admitted(&self, ids: &[u64], vectors: &[f32]) -> Result<()> {
        let s = &*self.shared;
        s.check_rows(ids, vectors)?;
        if s.heads.is_empty() {
            // The first vectors of an empty index become one posting around their mean.
            let dim = s.params.dim;
            let all: Vec<u32> = (0..ids.len() as u32).collect();
            let members = Members::with_capacity(s.params.encoding, 0, dim);
            s.heads.insert(kmeans::mean(vectors, dim, &all), members);
        }
        let dim = s.params.dim;
        let one = |(id, v): (&u64, &[f32])| {
            let serial = s.store.as_ref().map(|st| st.lock_id(*id));
            let (slot, word, old_home) = s.versions.begin_upsert(*id);
            if let Some(st) = &s.store {
                st.write(slot, v);
            }
            s.versions.finish_write(slot, word);
            drop(serial);
            s.note_stale(old_home);
            s.write_copies(slot, word, v, None);
        };
        if ids.len() >= 64 {
            ids.par_iter().zip(vectors.par_chunks_exact(dim)).with_min_len(16).for_each(one);
        } else {
            ids.iter().zip(vectors.chunks_exact(dim)).for_each(one);
        }
        s.note_writes(ids.len());
        calibrate::request(&self.shared);
        Ok(())
    }

    /// The current vector of `id` (as stored: prepared for the metric), if it is live.
    pub fn get(&self, id: u64) -> Option<Vec<f32>> {
        let s = &*self.shared;
        let slot = s.versions.lookup(id)?;
        let mut out = vec![0f32; s.params.dim];
        if let Some(store) = &s.store {
            let view = s.versions.view();
            return store.view().read(&view, slot, &mut out).map(|_| out);
        }
        // f32 postings: the home posting holds a copy, unless a split moved it; then any.
        let word = s.versions.view().current(slot);
        let home = s.versions.home(slot).and_then(|h| s.heads.get(posting::PostingId(h)));
        let find = |p: &Arc<Posting>| {
            let m = p.members.read();
            (0..m.len())
                .find(|&i| m.slots[i] == slot && m.words[i] == word)
                .map(|i| m.vector(i, s.params.dim).to_vec())
        };
        home.as_ref()
            .and_then(find)
            .or_else(|| s.heads.all().iter().find_map(find))
            .filter(|_| word & (versions::TOMBSTONE | versions::WRITING) == 0)
    }

    /// The slot of `id`, if it ever had one (slots are never reused by another id).
    pub fn slot_of(&self, id: u64) -> Option<u32> {
        self.shared.versions.lookup(id).map(|s| s.0)
    }

    /// Deletes ids; unknown ids are ignored. Returns how many were live.
    pub fn delete(&self, ids: &[u64]) -> usize {
        let s = &self.shared;
        let live = ids
            .iter()
            .filter_map(|id| s.versions.delete(*id))
            .map(|home| s.note_stale(home))
            .count();
        s.note_writes(live);
        calibrate::request(s);
        live
    }

    /// Chooses the postings a query scans and bounds the distances they can return.
    pub fn plan(&self, q: &[f32], params: &SearchParams) -> Plan {
        // A shard whose shape has moved since its last measurement (splits after the last
        // write, say) asks for a new one; searches go on meanwhile.
        calibrate::request(&self.shared);
        self.shared.plan(q, params)
    }

    /// A lower bound on the scan distance of anything `plan` can return (triangle inequality
    /// with each posting's radius; Cauchy-Schwarz for dot).
    pub fn lower_bound(&self, plan: &Plan, q: &[f32]) -> f32 {
        self.shared.lower_bound(plan, q)
    }

    /// Scans a plan: the `k` nearest live vectors, nearest first, keyed by external id.
    pub fn execute(&self, plan: &Plan, q: &[f32], params: &SearchParams) -> Vec<Scored<u64>> {
        self.shared.execute(plan, q, params)
    }

    /// Plans and executes one search.
    pub fn search(&self, q: &[f32], params: &SearchParams) -> Vec<Scored<u64>> {
        let plan = self.plan(q, params);
        self.execute(&plan, q, params)
    }

    /// Blocks until no background job is queued or running, helping to run them.
    pub fn wait_idle(&self) {
        self.shared.drain();
    }

    /// Measures the recall curve now, on the calling thread, and publishes it (see
    /// `calibrate.rs`); a shard too small to calibrate keeps none.
    pub fn calibrate(&self) {
        self.shared.recalibrate();
    }

    /// The current recall curve, if the shard has been calibrated.
    pub fn calibration(&self) -> Option<Arc<Calibration>> {
        self.shared.calibration.read().clone()
    }

    /// The postings a search with `params` probes (its `nprobe`, or the calibrated depth for
    /// its target recall).
    pub fn depth(&self, params: &SearchParams) -> usize {
        self.shared.depth(params)
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
    /// Counts `n` vectors written or deleted, now.
    fn note_writes(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.mutations.fetch_add(n as u64, Ordering::Relaxed);
        let now = self.born.elapsed().as_nanos().min(u64::MAX as u128) as u64;
        self.last_write.store(now, Ordering::Relaxed);
    }

    /// Whether a write applied within the last `d`.
    fn written_within(&self, d: Duration) -> bool {
        let last = Duration::from_nanos(self.last_write.load(Ordering::Relaxed));
        self.mutations.load(Ordering::Relaxed) > 0 && self.born.elapsed() < last + d
    }

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
    /// head lies closer to it than `v` does (so replicas go to different sides of `v`). Empty
    /// only when every live posting is in `exclude`.
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
        if out.is_empty() {
            // No candidate at a finite distance (the vector's or the centroids' components
            // overflow the squared distance, or are NaN): a vector must still get a home, or
            // its writer would search for one forever.
            let excluded = |c: &Arc<Posting>| exclude.iter().any(|e| Arc::ptr_eq(e, c));
            out.extend(self.heads.nearest_wide(v, excluded));
        }
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
        let mut targets = Vec::with_capacity(self.params.replicas);
        let mut written: Vec<Arc<Posting>> = Vec::with_capacity(self.params.replicas);
        let mut excluded: Vec<Arc<Posting>> = exclude.into_iter().cloned().collect();
        let limit = self.split_limit();
        loop {
            self.place(v, &excluded, &mut targets);
            if targets.is_empty() {
                // Every candidate was retired: the postings replacing them are being published.
                // A background job gives up once the index is shutting down (nothing will read
                // it again), so dropping the index never waits on this loop.
                if self.jobs.is_shut_down() {
                    return;
                }
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
                    m.push(slot, word, v, &t.centroid);
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
            return self.exact_plan();
        }
        let nprobe = self.depth(params);
        let mut postings = Vec::with_capacity(nprobe);
        let head_bytes = self.heads.nearest(q, nprobe, &mut postings) as u64;
        Plan { postings, exact: false, head_bytes }
    }

    /// The exact plan: with codes, the store's rows (no posting is scanned); with `f32`
    /// postings, every posting.
    fn exact_plan(&self) -> Plan {
        let postings = match self.store {
            Some(_) => Vec::new(),
            None => self.heads.all().into_iter().map(|p| (f32::NEG_INFINITY, p)).collect(),
        };
        Plan { postings, exact: true, head_bytes: 0 }
    }

    /// See [`Index::depth`].
    fn depth(&self, params: &SearchParams) -> usize {
        if params.nprobe > 0 {
            return params.nprobe;
        }
        let target = params.target_recall.unwrap_or(DEFAULT_TARGET_RECALL);
        let postings = self.heads.len();
        match &*self.calibration.read() {
            // The same share of the postings as when measured, should splits or merges have
            // changed their number since (a new measurement is on its way then). When a shard
            // grows, the number of postings a target needs stays about the same (medium needed
            // 54, 57 and 52 for 0.95 at 20k, 100k and 200k points), so this probes deeper than
            // needed until the next curve; probing the same number instead fell short on a
            // curve measured on a tiny shard (recall 0.80 on a node that had just caught up).
            Some(c) => (c.nprobe_for(target) * postings).div_ceil(c.postings.max(1)),
            None => calibrate::fallback_nprobe(self.versions.live(), postings),
        }
        .max(1)
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

    fn execute(&self, plan: &Plan, q: &[f32], params: &SearchParams) -> Vec<Scored<u64>> {
        self.execute_counted(plan, q, params, true)
    }

    /// Executes a plan, adding its cost to the search counters only when `count` (a
    /// calibration's searches are not the users').
    fn execute_counted(
        &self,
        plan: &Plan,
        q: &[f32],
        params: &SearchParams,
        count: bool,
    ) -> Vec<Scored<u64>> {
        self.execute_allowed(plan, q, params, None, count, None).0
    }

    /// Executes a plan over the slots `allow` holds (every slot when `None`); returns the hits
    /// and what the scan read. With `prefixes`, the scan also reports the hits of the plan cut
    /// to each of its depths.
    fn execute_allowed(
        &self,
        plan: &Plan,
        q: &[f32],
        params: &SearchParams,
        allow: Option<&RoaringBitmap>,
        count: bool,
        prefixes: Option<&mut Prefixes>,
    ) -> (Vec<Scored<u64>>, ScanCost) {
        let (top, cost) = self.execute_slots(plan, q, params, allow, count, prefixes);
        (self.hits(top), cost)
    }

    /// [`Shared::execute_allowed`], with the hits by slot.
    fn execute_slots(
        &self,
        plan: &Plan,
        q: &[f32],
        params: &SearchParams,
        allow: Option<&RoaringBitmap>,
        count: bool,
        prefixes: Option<&mut Prefixes>,
    ) -> (TopK<Slot>, ScanCost) {
        let k = params.k;
        let (top, cost) = match &self.store {
            None => self.scan_f32(plan, q, k, allow, prefixes),
            Some(store) if plan.exact => match allow {
                None => self.scan_store(store, q, k, 0..self.versions.slots() as u32),
                Some(allow) => self.scan_store(store, q, k, allow.iter()),
            },
            Some(store) => self.scan_codes(store, plan, q, params, allow, prefixes),
        };
        if count {
            let c = &self.counters;
            c.searches.fetch_add(1, Ordering::Relaxed);
            c.scanned.fetch_add(cost.scanned, Ordering::Relaxed);
            c.scanned_bytes.fetch_add(cost.bytes, Ordering::Relaxed);
            c.reranked.fetch_add(cost.reranked, Ordering::Relaxed);
        }
        (top, cost)
    }

    /// A scan's result keyed by external id, nearest first.
    fn hits(&self, top: TopK<Slot>) -> Vec<Scored<u64>> {
        let view = self.versions.view();
        let mut out: Vec<Scored<u64>> = top
            .into_sorted()
            .into_iter()
            .map(|s| Scored { dist: s.dist, key: view.external(s.key) })
            .collect();
        out.sort_by(|a, b| a.cmp_total(b));
        out
    }

    /// Bytes a search reads per posting member besides its vector or codes: the norm, and
    /// with codes the scale.
    fn member_overhead(&self) -> usize {
        match self.params.encoding {
            Encoding::F32 => 4,
            Encoding::Int8 => 8,
        }
    }

    /// The exact scan of `f32` postings: every scanned distance is exact up to rounding.
    fn scan_f32(
        &self,
        plan: &Plan,
        q: &[f32],
        k: usize,
        allow: Option<&RoaringBitmap>,
        mut prefixes: Option<&mut Prefixes>,
    ) -> (TopK<Slot>, ScanCost) {
        let allowed = |slot: Slot| allow.is_none_or(|a| a.contains(slot.0));
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
            for (i, (_, p)) in plan.postings.iter().enumerate() {
                if let Some(pre) = prefixes.as_deref_mut() {
                    pre.reach(i, || top.clone());
                }
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
                        if !view.is_live(m.slots[i], m.words[i]) {
                            stale += 1;
                        } else if allowed(m.slots[i]) {
                            top.push(pair(q, m.vector(i, dim)), m.slots[i]);
                        }
                    }
                }
                let small = n < self.params.merge_limit && !m.retired;
                if small || (found >= 8 && stale * 2 > found) {
                    maintain.push(p);
                }
            }
        });
        if let Some(pre) = prefixes {
            pre.reach(usize::MAX, || top.clone());
        }
        for p in maintain {
            self.jobs.enqueue(p);
        }
        let bytes = plan.head_bytes + (scanned * (dim * 4 + self.member_overhead())) as u64;
        (top, ScanCost { scanned: scanned as u64, bytes, reranked: 0 })
    }

    /// The two-phase scan of coded postings. Codes estimate every member's distance: with the
    /// member's residual `r ~ s x` to centroid `c` and the query `q ~ t y`, encoded once for
    /// all postings, `|q - v|^2 = |q - c|^2 - 2 (q - c).r + |r|^2 ~ |q - c|^2 + b - 2 s t (x.y)`
    /// with the stored `b = |r|^2 + 2 c.(s x)`, and `-q.v = -q.c - q.r ~ -q.c - s t (x.y)`. The best `k * rerank` slots by
    /// estimate are re-ranked with exact distances to their current vectors in the store, so
    /// every distance returned is exact, whatever copy (even a stale one) nominated the slot.
    fn scan_codes(
        &self,
        store: &VectorStore,
        plan: &Plan,
        q: &[f32],
        params: &SearchParams,
        allow: Option<&RoaringBitmap>,
        mut prefixes: Option<&mut Prefixes>,
    ) -> (TopK<Slot>, ScanCost) {
        let allowed = |slot: Slot| allow.is_none_or(|a| a.contains(slot.0));
        let dim = self.params.dim;
        let metric = self.params.metric.scan_metric();
        let l2 = metric == Metric::L2;
        let ck = code_kernels();
        let (dot, dot_batch, sign_sums) = (ck.dot, ck.dot_batch, ck.sign_sums);
        let sign_bytes = signs::block_bytes(dim);
        let k = params.k;
        let shortlist = k.saturating_mul(params.rerank.max(1)).max(SearchParams::MIN_RERANKED);
        let mut short: TopK<Slot> = TopK::new(shortlist);
        let mut maintain: Vec<&Arc<Posting>> = Vec::new();
        let (mut scanned, mut signed, mut coded) = (0usize, 0usize, 0usize);
        let use_signs = signs::used(dim);
        CODE_SCAN.with(|scratch| {
            let sc = &mut *scratch.borrow_mut();
            sc.query_codes.resize(dim, 0);
            if use_signs {
                sc.signs.prepare(q);
            }
            // The query's codes are the same for every posting: under L2 each member's
            // query-independent term (`Members::bias`) carries the centroid's part.
            let t = quantize(q, &mut sc.query_codes);
            for (i, (dc, p)) in plan.postings.iter().enumerate() {
                if let Some(pre) = prefixes.as_deref_mut() {
                    pre.reach(i, || self.rerank(store, short.clone(), q, k).0);
                }
                let m = p.members.read();
                let n = m.len();
                scanned += n;
                let base = if l2 { 0.0 } else { (kernels().neg_dot)(q, &p.centroid) };
                let estimate = |x: i32, i: usize| {
                    let x = x as f32;
                    if l2 {
                        dc + m.bias[i] - 2.0 * t * m.scales[i] * x
                    } else {
                        base - t * m.scales[i] * x
                    }
                };
                // Until the short list is full every member reads its codes whatever its bound,
                // so the first postings skip the signs.
                if !use_signs || !short.threshold().is_finite() {
                    // Every member's codes, one batch kernel call for the posting.
                    sc.dots.resize(n, 0);
                    dot_batch(&sc.query_codes, &m.codes[..n * dim], &mut sc.dots[..n]);
                    sc.lower.resize(n, 0.0);
                    let est = &mut sc.lower[..n];
                    if l2 {
                        let t2 = 2.0 * t;
                        let iter = est.iter_mut().zip(&sc.dots).zip(m.scales.iter().zip(&m.bias));
                        for ((e, &x), (&s, &b)) in iter {
                            *e = dc + b - t2 * s * x as f32;
                        }
                    } else {
                        for ((e, &x), &s) in est.iter_mut().zip(&sc.dots).zip(&m.scales) {
                            *e = base - t * s * x as f32;
                        }
                    }
                    for (b, block) in est.chunks(16).enumerate() {
                        let min = block.iter().fold(f32::INFINITY, |a, &d| a.min(d));
                        if min > short.threshold() {
                            continue;
                        }
                        for (j, &e) in block.iter().enumerate() {
                            let slot = m.slots[b * 16 + j];
                            if e <= short.threshold() && allowed(slot) {
                                short.push_distinct(e, slot);
                            }
                        }
                    }
                    coded += n;
                } else {
                    signed += n;
                    let blocks = n.div_ceil(signs::BLOCK);
                    sc.sums.resize(blocks * signs::BLOCK, 0);
                    let sums = &mut sc.sums[..blocks * signs::BLOCK];
                    sign_sums(&sc.signs.lut, &m.signs[..blocks * sign_bytes], sums);
                    // The signs' estimate of `q.r` gives each member a lower bound on its code
                    // estimate; only members whose bound can enter the short list read their codes.
                    let lower = &mut sc.lower;
                    sc.signs.highest_dots(&sums[..n], &m.sign_factors, *dc, lower);
                    if l2 {
                        for (l, &bias) in lower.iter_mut().zip(&m.bias[..n]) {
                            *l = dc + bias - 2.0 * *l;
                        }
                    } else {
                        for l in lower.iter_mut() {
                            *l = base - *l;
                        }
                    }
                    let cands = &mut sc.cands;
                    cands.clear();
                    let threshold = short.threshold();
                    cands.extend((0..n as u32).filter(|&j| lower[j as usize] <= threshold));
                    coded += cands.len();
                    // One load per cache line of every candidate's codes first, so their misses
                    // overlap instead of queueing behind one another in the dot products.
                    let touched = cands.iter().fold(0u8, |a, &j| {
                        let row = &m.codes[j as usize * dim..(j as usize + 1) * dim];
                        row.iter().step_by(64).fold(a, |a, &x| a ^ x)
                    });
                    std::hint::black_box(touched);
                    for &j in cands.iter() {
                        let i = j as usize;
                        if lower[i] > short.threshold() {
                            continue;
                        }
                        let e = estimate(dot(&sc.query_codes, &m.codes[i * dim..(i + 1) * dim]), i);
                        // A slot twice in the short list (replicas) is rare and costs one more
                        // re-rank; checking for it on every push would cost more.
                        let slot = m.slots[i];
                        if e <= short.threshold() && allowed(slot) {
                            short.push_distinct(e, slot);
                        }
                    }
                }
                if n < self.params.merge_limit && !m.retired {
                    maintain.push(p);
                }
            }
        });
        // Re-rank after the scan: the version view is taken after the postings' locks.
        let (top, reranked) = self.rerank(store, short, q, k);
        if let Some(pre) = prefixes {
            pre.reach(usize::MAX, || top.clone());
        }
        for p in maintain {
            self.jobs.enqueue(p);
        }
        // Per member signed its signs and three factors; per member coded its codes, scale, bias.
        let per_signed = sign_bytes / signs::BLOCK + 12;
        let bytes =
            plan.head_bytes + (signed * per_signed + coded * (dim + 8) + reranked * dim * 4) as u64;
        (top, ScanCost { scanned: scanned as u64, bytes, reranked: reranked as u64 })
    }

    /// The `k` nearest of a short list by exact distances to the slots' current vectors in the
    /// store (deleted slots drop out), and how many were read. Takes the version view: call it
    /// holding no posting's lock.
    fn rerank(
        &self,
        store: &VectorStore,
        short: TopK<Slot>,
        q: &[f32],
        k: usize,
    ) -> (TopK<Slot>, usize) {
        let pair = kernels().pair(self.params.metric.scan_metric());
        let view = self.versions.view();
        let rows = store.view();
        let mut row = vec![0f32; self.params.dim];
        let cands = short.into_sorted();
        let touched = cands.iter().fold(0, |a, c| a ^ view.current(c.key) ^ rows.touch(c.key));
        std::hint::black_box(touched);
        let (mut top, mut reranked) = (TopK::new(k), 0);
        for c in cands {
            if rows.read(&view, c.key, &mut row).is_some() {
                top.push(pair(q, &row), c.key);
                reranked += 1;
            }
        }
        (top, reranked)
    }

    /// Exact search with codes: the current vector in the store of every slot of `slots`.
    fn scan_store(
        &self,
        store: &VectorStore,
        q: &[f32],
        k: usize,
        slots: impl Iterator<Item = u32>,
    ) -> (TopK<Slot>, ScanCost) {
        let dim = self.params.dim;
        let pair = kernels().pair(self.params.metric.scan_metric());
        let mut top = TopK::new(k);
        let mut row = vec![0f32; dim];
        let view = self.versions.view();
        let rows = store.view();
        let end = self.versions.slots() as u32;
        let mut scanned = 0u64;
        // In blocks: one load per cache line of every row first, so the misses of a block
        // overlap instead of queueing behind one another in the copies (a set of matches is
        // scattered over the store).
        let mut block = [Slot(0); 32];
        let mut slots = slots.take_while(|&s| s < end).map(Slot).peekable();
        while slots.peek().is_some() {
            let mut n = 0;
            for s in slots.by_ref().take(block.len()) {
                block[n] = s;
                n += 1;
            }
            let touched = block[..n].iter().fold(0, |a, &s| a ^ rows.touch(s));
            std::hint::black_box(touched);
            for &slot in &block[..n] {
                if rows.read(&view, slot, &mut row).is_some() {
                    top.push(pair(q, &row), slot);
                }
            }
            scanned += n as u64;
        }
        let bytes = scanned * (dim * 4) as u64;
        (top, ScanCost { scanned, bytes, reranked: 0 })
    }

    /// Calls `f(slot, word, vector)` for the members of `m` at the indexes `members` that are
    /// live: under `F32` with the vector in place, with codes with the current vector from the
    /// store (read consistently, so a member is live iff the store's word is its own).
    fn for_each_live(
        &self,
        m: &Members,
        members: impl IntoIterator<Item = usize>,
        mut f: impl FnMut(Slot, VersionWord, &[f32]),
    ) {
        let dim = self.params.dim;
        let view = self.versions.view();
        let mut members = members.into_iter();
        match &self.store {
            None => {
                for i in members {
                    if view.is_live(m.slots[i], m.words[i]) {
                        f(m.slots[i], m.words[i], m.vector(i, dim));
                    }
                }
            }
            Some(store) => {
                let rows = store.view();
                let mut row = vec![0f32; dim];
                // In blocks, each row touched first so that the block's cache misses overlap
                // (a posting's members are scattered over the store; rebalancing reads whole
                // postings this way).
                let mut block = [0usize; 32];
                loop {
                    let n = block.iter_mut().zip(&mut members).map(|(b, i)| *b = i).count();
                    if n == 0 {
                        break;
                    }
                    let touched = block[..n].iter().fold(0, |a, &i| a ^ rows.touch(m.slots[i]));
                    std::hint::black_box(touched);
                    for &i in &block[..n] {
                        if view.is_live(m.slots[i], m.words[i])
                            && rows.read(&view, m.slots[i], &mut row) == Some(m.words[i])
                        {
                            f(m.slots[i], m.words[i], &row);
                        }
                    }
                }
            }
        }
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
        // Each row's postings, `replicas` to a row (unused places hold `NO_TARGET`): one flat
        // allocation rather than a vector per row.
        const NO_TARGET: u32 = u32::MAX;
        let r = p.replicas;
        let mut targets = vec![NO_TARGET; n * r];
        targets.par_chunks_mut(r).enumerate().for_each(|(i, out)| {
            let v = &vectors[i * dim..(i + 1) * dim];
            let mut cands: Vec<(f32, u32)> = neighbours[leaf[i] as usize]
                .iter()
                .map(|&h| {
                    let d = (kernels().l2sq)(v, &centroids[h as usize * dim..][..dim]);
                    (crate::topk::nan_as_infinite(d), h)
                })
                .collect();
            cands.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let mut chosen: Vec<u32> = Vec::with_capacity(r);
            let c = |h: &u32| &centroids[*h as usize * dim..][..dim];
            let between = |a: &u32, b: &u32| (kernels().l2sq)(c(a), c(b));
            choose_replicas(p, cands.into_iter(), between, &mut chosen);
            out[..chosen.len()].copy_from_slice(&chosen);
        });
        drop(leaf);
        let targets_of = |i: usize| targets[i * r..(i + 1) * r].iter().filter(|&&t| t != NO_TARGET);
        let mut sizes = vec![0usize; heads];
        for &t in targets.iter().filter(|&&t| t != NO_TARGET) {
            sizes[t as usize] += 1;
        }
        // A little headroom per posting, so the first updates append without reallocating.
        let mut members: Vec<Members> =
            sizes.iter().map(|&s| Members::with_capacity(p.encoding, s + s / 16, dim)).collect();
        let slots: Vec<(Slot, VersionWord)> =
            ids.iter().map(|id| self.versions.begin_upsert(*id)).map(|(s, w, _)| (s, w)).collect();
        // A row whose id appears again later was superseded by that row and is skipped.
        let latest: Vec<bool> = {
            let view = self.versions.view();
            slots.iter().map(|&(slot, word)| view.is_latest(slot, word)).collect()
        };
        let mut copy_row = |i: usize, v: &[f32]| {
            for &t in targets_of(i) {
                let c = &centroids[t as usize * dim..][..dim];
                members[t as usize].push(slots[i].0, slots[i].1, v, c);
            }
        };
        match &self.store {
            // Codes go to the postings; the vectors themselves become the store, in place when
            // the rows are slots 0..n in order (a fresh index and distinct ids).
            Some(store) => {
                for i in (0..n).filter(|&i| latest[i]) {
                    copy_row(i, &vectors[i * dim..(i + 1) * dim]);
                }
                if slots.iter().enumerate().all(|(i, (slot, _))| slot.0 as usize == i) {
                    store.adopt(vectors);
                } else {
                    for i in (0..n).filter(|&i| latest[i]) {
                        store.write(slots[i].0, &vectors[i * dim..(i + 1) * dim]);
                    }
                }
            }
            // Vectors go to the postings: copy rows from the end and give the input's memory
            // back as we go, so the two are never held in full at once.
            None => {
                let shrink_every = (1 << 22) / dim.max(1);
                for i in (0..n).rev() {
                    if latest[i] {
                        copy_row(i, &vectors[i * dim..(i + 1) * dim]);
                    }
                    if i % shrink_every == 0 {
                        vectors.truncate(i * dim);
                        vectors.shrink_to_fit();
                    }
                }
            }
        }
        for &(slot, word) in &slots {
            self.versions.finish_write(slot, word);
        }
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
        for (i, &(slot, word)) in slots.iter().enumerate() {
            if let Some(&first) = targets_of(i).next() {
                self.versions.set_home(slot, word, ids_of[first as usize]);
            }
        }
    }

    fn stats(&self) -> IndexStats {
        let postings = self.heads.all();
        let (mut members, mut bytes) = (0u64, self.heads.heap_bytes() as u64);
        let mut vector_bytes = self.store.as_ref().map_or(0, |s| s.heap_bytes()) as u64;
        let mut code_bytes = 0u64;
        for p in &postings {
            let m = p.members.read();
            members += m.len() as u64;
            let (vectors, other) = m.heap_bytes();
            vector_bytes += vectors as u64;
            code_bytes += m.codes.capacity() as u64;
            bytes += other as u64 + (p.centroid.len() * 4) as u64;
        }
        // A version cell (16 bytes) and an id map entry (12) per slot.
        bytes += vector_bytes + self.versions.slots() as u64 * 28;
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
            scanned_bytes: c.scanned_bytes.load(Ordering::Relaxed),
            reranked: c.reranked.load(Ordering::Relaxed),
            pending_jobs: self.jobs.pending() as u64,
            memory_bytes: bytes,
            vector_bytes,
            code_bytes,
        }
    }
}

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;
