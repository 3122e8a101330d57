//! Recall calibration: each shard measures its own recall@10 against probe depth, on a sample
//! of its own vectors with exact ground truth, and searches that name no `nprobe` take their
//! depth from it (for [`SearchParams::target_recall`], or [`DEFAULT_TARGET_RECALL`]).
//!
//! A sampled vector is a query whose own entry is left out of both the exact and the searched
//! results, so it stands for a query drawn from the data's distribution that is not itself in
//! the shard. Each grid depth is measured with the real search (head lookup, code scan,
//! re-rank), so the curve includes what the codes lose, not only what the partition loses: one
//! deep scan per query reports the hits of every shallower depth on its way (the first
//! postings of a deep plan are a shallow search's plan; its head lookup re-ranks more
//! candidate centroids, so a shallow depth's postings can be a little better chosen than the
//! search's own). A data point still makes an easier query than a fresh one from the same
//! distribution (the partition was fitted to it): on the shipped datasets the curve is 0.00-0.015
//! high. Writes go on
//! meanwhile: the measurement sees only the vectors that existed when it began (the slots
//! handed out by then), so points written while it runs are neither truth nor hits, and a
//! query's measurement leaves out every slot whose version word moved since the measurement
//! began (a rewrite in place, a delete, a reassign): its exact neighbours were computed from the
//! rows as they were, its search sees them as they are. The curve is
//! measured again once enough of the shard has changed (see [`Shared::calibration_due`]), on one
//! process-wide background thread, and the previous curve serves until the new one is ready.

use super::versions::VersionWord;
use super::{Prefixes, SearchParams, Shared, Slot, ROUNDING};
use crate::background;
use crate::distance::kernels;
use crate::distance::Metric;
use crate::rng::Rng;
use crate::topk::{Scored, TopK};
use roaring::RoaringBitmap;
use rustc_hash::FxHashSet;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

/// The recall a search aims for when it names neither `nprobe` nor `target_recall`.
pub const DEFAULT_TARGET_RECALL: f32 = 0.95;
/// Sampled queries per calibration. A query's recall@10 spreads widely (standard deviation
/// 0.1-0.2 at mean recalls of 0.9-0.95 on the shipped datasets), so 512 queries left the
/// curve's mean 0.01-0.02 off in either direction from one sample to the next; 2,048 keep it
/// within about 0.008 (95% interval).
pub const SAMPLE_QUERIES: usize = 2048;
/// Sampled queries of a first curve, and of one measured because the shard doubled: a
/// quarter of the cost, so a loading shard gets a usable curve soon; a full one follows
/// (see [`Shared::calibration_due`]).
pub const QUICK_QUERIES: usize = 512;
/// A shard is not measured again until its writes have paused this long ...
const WRITES_PAUSE: Duration = Duration::from_millis(250);
/// ... or its curve is this old.
const MAX_DEFERRAL: Duration = Duration::from_secs(10);
/// The `k` the curve is measured at.
pub const CALIBRATION_K: usize = 10;
/// Exact neighbours kept per sampled query beyond its own entry and [`CALIBRATION_K`], so its
/// truth is still its nearest `CALIBRATION_K` when some of them changed during the measurement.
const TRUTH_SPARE: usize = CALIBRATION_K;
/// Below this many live vectors a shard is not calibrated; searches probe every posting.
pub const MIN_CALIBRATION_VECTORS: usize = 64;
/// The depths measured, up to the first that probes every posting or reaches this recall.
const GRID: [usize; 28] = [
    1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
    3072, 4096, 6144, 8192, 12288, 16384,
];
const SATURATED: f32 = 0.999;
/// The deepest depth of each measuring pass but the last (see [`Shared::calibrate`]): most
/// curves saturate within the first.
const PASS_DEPTHS: [usize; 2] = [256, 4096];
/// Standard errors of the sampled mean a chosen depth keeps below its measured recall.
pub const MARGIN_ERRORS: f32 = 2.0;

/// One shard's measured recall@[`CALIBRATION_K`] against `nprobe`.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibration {
    /// `(nprobe, mean recall)`, nprobe increasing; the last point probes every posting or
    /// reached a recall of 0.999.
    pub points: Vec<(usize, f32)>,
    /// The standard error of each point's mean (per-query spread over the square root of the
    /// queries).
    pub errors: Vec<f32>,
    pub queries: usize,
    /// Measured with [`SAMPLE_QUERIES`] asked for (not a quick curve).
    pub full: bool,
    /// Live vectors and postings when measured.
    pub vectors: usize,
    pub postings: usize,
    /// The shard's write count when the sample was drawn.
    mutations: u64,
    /// When the measurement ended, and the CPU time it took (its wall time where the system
    /// does not tell a thread's CPU time).
    finished: Instant,
    took: Duration,
}

impl Calibration {
    /// The smallest depth whose measured recall, less [`MARGIN_ERRORS`] standard errors,
    /// reaches `target`, interpolated in `log(nprobe)` between the grid points around it; the
    /// deepest measured when none does. The margin keeps the sample's own noise from choosing
    /// a depth that falls short of the target.
    pub fn nprobe_for(&self, target: f32) -> usize {
        let mut prev: Option<(usize, f32)> = None;
        let lower =
            self.points.iter().zip(&self.errors).map(|(&(np, r), &e)| (np, r - MARGIN_ERRORS * e));
        for (np, r) in lower {
            if r >= target {
                return match prev {
                    Some((p0, r0)) if r > r0 => {
                        let f = f64::from((target - r0) / (r - r0));
                        let (l0, l1) = ((p0 as f64).ln(), (np as f64).ln());
                        ((l0 + f * (l1 - l0)).exp().ceil() as usize).clamp(p0 + 1, np)
                    }
                    _ => np,
                };
            }
            // A deeper point below a shallower one (noise) never lowers the curve.
            if prev.is_none_or(|(_, r0)| r > r0) {
                prev = Some((np, r));
            }
        }
        self.points.last().map_or(1, |p| p.0)
    }

    /// The estimated recall at `nprobe`, interpolated as [`Calibration::nprobe_for`] chooses.
    pub fn recall_at(&self, nprobe: usize) -> f32 {
        let mut prev: Option<(usize, f32)> = None;
        for &(np, r) in &self.points {
            let r = prev.map_or(r, |(_, r0)| r.max(r0));
            if nprobe <= np {
                return match prev {
                    Some((p0, r0)) if nprobe > p0 => {
                        let (l0, l1) = ((p0 as f64).ln(), (np as f64).ln());
                        let f = (((nprobe as f64).ln() - l0) / (l1 - l0)) as f32;
                        r0 + f * (r - r0)
                    }
                    _ => r,
                };
            }
            prev = Some((np, r));
        }
        prev.map_or(0.0, |p| p.1)
    }
}

/// The depth a search without a calibration probes: every posting of a small shard, otherwise
/// an eighth of them and at least [`FALLBACK_MIN_NPROBE`] (on the shipped datasets 0.95 needs
/// 2-60%; calibration replaces this within seconds of the first writes or of a restore).
pub fn fallback_nprobe(live: usize, postings: usize) -> usize {
    if live < MIN_CALIBRATION_VECTORS {
        return postings.max(1);
    }
    postings.div_ceil(8).max(FALLBACK_MIN_NPROBE)
}

/// The fewest postings an uncalibrated search probes: the fixed default depth of earlier
/// versions, which reaches 0.95 on the clustered presets.
pub const FALLBACK_MIN_NPROBE: usize = 96;

impl Shared {
    /// Measures the curve now (on the calling thread). `None` when the shard is too small to
    /// calibrate or it shut down meanwhile.
    pub(super) fn calibrate(&self, queries: usize) -> Option<Calibration> {
        let (started, cpu) = (Instant::now(), background::this_thread_cpu());
        let mutations = self.mutations.load(Ordering::Relaxed);
        let live = self.versions.live();
        if live < MIN_CALIBRATION_VECTORS {
            return None;
        }
        // The vectors this measurement sees: those whose slots exist now. (A point written
        // later would be a hit no truth holds, and a shard loading fast would measure its own
        // growth instead of its recall.)
        let frozen = self.versions.slots() as u32;
        let mut present = RoaringBitmap::new();
        present.insert_range(0..frozen);
        // Every slot's word now: a slot whose word moves later is left out of each query's
        // truth and hits as the query is scored (its row may not be the one the exact pass
        // read). Taken before any row is read: a slot that has the same word later held the
        // same row throughout.
        let words: Vec<VersionWord> = {
            let view = self.versions.view();
            (0..frozen).map(|s| view.current(Slot(s))).collect()
        };
        let mut rng = Rng::new(self.params.seed ^ 0xca11_b4a7 ^ mutations);
        let sample = self.sample_live(queries, &mut rng, frozen);
        let postings = self.heads.len();
        let k = CALIBRATION_K + 1;
        // Exact neighbours of each sampled vector, itself left out, with spares.
        let truths: Vec<Vec<Slot>> = self
            .exact_neighbours(&sample, k + TRUTH_SPARE, &present)?
            .into_iter()
            .zip(&sample)
            .map(|(hits, (own, _))| hits.into_iter().filter(|h| h != own).collect())
            .collect();
        // The grid's depths, none past every posting, measured in passes: a pass scans once
        // per query to its deepest depth and reports the shallower ones on the way (the first
        // postings of a plan are the plan of a shallower search), and the next pass runs only
        // while the curve has not saturated.
        let mut depths: Vec<usize> = Vec::new();
        for &np in &GRID {
            depths.push(np.min(postings.max(1)));
            if np >= postings {
                break;
            }
        }
        let (mut points, mut errors) = (Vec::new(), Vec::new());
        let n = sample.len() as f64;
        let mut rest = &depths[..];
        while !rest.is_empty() {
            let end = PASS_DEPTHS.iter().find_map(|&d| rest.iter().rposition(|&np| np <= d));
            let (pass, next) = rest.split_at(end.map_or(rest.len(), |e| e + 1));
            rest = next;
            let sp = SearchParams::new(k).with_nprobe(*pass.last().expect("a pass has a depth"));
            let mut sums = vec![(0f64, 0f64); pass.len()];
            for ((own, q), truth) in sample.iter().zip(&truths) {
                if self.jobs.is_shut_down() {
                    return None;
                }
                let mut report = |i: usize, hits: Vec<Scored<Slot>>| {
                    let r = self.measured_recall(*own, &hits, truth, &words);
                    sums[i].0 += r;
                    sums[i].1 += r * r;
                };
                let mut prefixes = Prefixes::new(pass, &mut report);
                let plan = self.plan(q, &sp);
                self.execute_slots(&plan, q, &sp, Some(&present), false, Some(&mut prefixes));
            }
            for (&np, (sum, squares)) in pass.iter().zip(sums) {
                let mean = sum / n;
                let variance = (squares / n - mean * mean).max(0.0);
                points.push((np, mean as f32));
                errors.push((variance / n).sqrt() as f32);
                if np >= postings || mean as f32 >= SATURATED {
                    rest = &[];
                    break;
                }
            }
        }
        Some(Calibration {
            points,
            errors,
            queries: sample.len(),
            full: queries >= SAMPLE_QUERIES,
            vectors: live,
            postings,
            mutations,
            finished: Instant::now(),
            took: match (cpu, background::this_thread_cpu()) {
                (Some(a), Some(b)) => b.saturating_sub(a),
                _ => started.elapsed(),
            },
        })
    }

    /// Whether the shard should be measured (again):
    /// - never measured, once it holds enough vectors;
    /// - not while writes stream in (one applied within [`WRITES_PAUSE`]), unless the curve is
    ///   older than [`MAX_DEFERRAL`]: a measurement during a load slows the load (its reads
    ///   hold postings and rows that writers wait for, and it shares the cores and caches) and
    ///   is stale when it ends; meanwhile `depth` probes the curve's share of the postings,
    ///   which is deeper than needed for a grown shard;
    /// - grown to twice the vectors or postings it was measured at (at once: a curve of half
    ///   the shard misleads, and measuring at each doubling costs at most twice the last
    ///   measurement in all);
    /// - otherwise a twentieth of it written since, or its posting count moved by a tenth, or
    ///   the curve is a quick one ([`QUICK_QUERIES`]) to be measured in full, but never sooner
    ///   than nine times the last measurement's CPU time after it ended, so steady churn spends
    ///   at most a tenth of one core on it (CPU time, not wall time: the measuring thread runs
    ///   at a low priority, and time spent waiting for a core is not work).
    pub(super) fn calibration_due(&self) -> bool {
        let live = self.versions.live();
        match &*self.calibration.read() {
            None => live >= MIN_CALIBRATION_VECTORS,
            // The pause is checked last: searches and writes ask on every call, and most find
            // nothing due.
            Some(c) => self.curve_stale(c, live) && !self.writes_streaming(c),
        }
    }

    /// Whether a shard at `live` vectors has outgrown, outlived or out-written its curve `c`
    /// (the rules of [`Shared::calibration_due`] after the first curve, but for the pause).
    fn curve_stale(&self, c: &Calibration, live: usize) -> bool {
        let postings = self.heads.len();
        if live >= 2 * c.vectors.max(MIN_CALIBRATION_VECTORS) || postings >= 2 * c.postings {
            return true;
        }
        if c.finished.elapsed() < c.took * 9 {
            return false;
        }
        if !c.full {
            return true;
        }
        let written = self.mutations.load(Ordering::Relaxed).saturating_sub(c.mutations);
        written as usize > (c.vectors / 20).max(256)
            || postings * 10 > c.postings * 11
            || postings * 11 < c.postings * 10
    }

    /// Whether writes are streaming in (one applied within [`WRITES_PAUSE`]) and the curve
    /// `c` is young enough ([`MAX_DEFERRAL`]) to wait for their pause.
    fn writes_streaming(&self, c: &Calibration) -> bool {
        self.written_within(WRITES_PAUSE) && c.finished.elapsed() < MAX_DEFERRAL
    }

    /// One query's recall at one depth: its search's `hits` (nearest first, `k + 1` of them)
    /// against its exact neighbours `truth` (nearest first, its own slot left out), both
    /// without `own` and without every slot whose word moved from `words` (the measurement's
    /// start) by now. When `d` of the first [`CALIBRATION_K`] other hits moved, this is the
    /// recall at `CALIBRATION_K - d`: the hits left are the search's nearest of the slots that
    /// did not move, and so are the first of the truth left.
    fn measured_recall(
        &self,
        own: Slot,
        hits: &[Scored<Slot>],
        truth: &[Slot],
        words: &[VersionWord],
    ) -> f64 {
        let view = self.versions.view();
        let kept = |s: Slot| words.get(s.0 as usize).is_some_and(|&w| view.current(s) == w);
        let others = hits.iter().filter(|h| h.key != own).take(CALIBRATION_K);
        let (mut found, mut moved) = (Vec::with_capacity(CALIBRATION_K), 0);
        for h in others {
            if kept(h.key) {
                found.push(h.key);
            } else {
                moved += 1;
            }
        }
        let truth = truth.iter().copied().filter(|&s| kept(s)).take(CALIBRATION_K - moved);
        let truth: Vec<Slot> = truth.collect();
        if truth.is_empty() {
            return 1.0;
        }
        let hit = found.iter().take(truth.len()).filter(|s| truth.contains(s)).count();
        hit as f64 / truth.len() as f64
    }

    /// The `k` nearest live vectors among the slots `present` holds (`0..n`; nearest first) of
    /// every query, exactly: one pass over the vector store for all of them, or an exact
    /// search each without one.
    fn exact_neighbours(
        &self,
        queries: &[(Slot, Vec<f32>)],
        k: usize,
        present: &RoaringBitmap,
    ) -> Option<Vec<Vec<Slot>>> {
        let Some(store) = &self.store else {
            let exact = SearchParams::exact(k);
            let mut out = Vec::with_capacity(queries.len());
            for (_, q) in queries {
                if self.jobs.is_shut_down() {
                    return None;
                }
                let plan = self.plan(q, &exact);
                let (top, _) = self.execute_slots(&plan, q, &exact, Some(present), false, None);
                out.push(top.into_sorted().into_iter().map(|h| h.key).collect());
            }
            return Some(out);
        };
        // A block of rows at a time against every query, four queries to a kernel call: the
        // block stays in cache while the queries stream past it, and each row loaded serves
        // four queries. The products give each distance up to rounding (under L2 as
        // `|q|^2 + |x|^2 - 2 q.x`), lowered by a bound on that rounding; only a row that may
        // still enter a query's top gets its exact distance, so the truth is what the pair
        // kernel ranks.
        const BLOCK: u32 = 256;
        let dim = self.params.dim;
        let metric = self.params.metric.scan_metric();
        let (pair, neg_dot, dot4) =
            (kernels().pair(metric), kernels().neg_dot, kernels().neg_dot4_batch);
        let l2 = metric == Metric::L2;
        let query_norms: Vec<f32> = queries.iter().map(|(_, q)| -neg_dot(q, q)).collect();
        let slots = present.max().map_or(0, |m| m + 1);
        let mut tops: Vec<TopK<Slot>> = queries.iter().map(|_| TopK::new(k)).collect();
        let mut block = vec![0f32; BLOCK as usize * dim];
        let mut held: Vec<Slot> = Vec::with_capacity(BLOCK as usize);
        let mut norms = vec![0f32; BLOCK as usize];
        let mut dots = vec![[0f32; 4]; BLOCK as usize];
        for start in (0..slots).step_by(BLOCK as usize) {
            if self.jobs.is_shut_down() {
                return None;
            }
            held.clear();
            {
                // The version view and the store are read-locked for one block only: this
                // thread runs at a low priority, and a writer growing either (and every
                // reader queued behind that writer) must not wait for the whole pass.
                let view = self.versions.view();
                let rows = store.view();
                for slot in (start..slots.min(start + BLOCK)).map(Slot) {
                    let at = held.len() * dim;
                    if rows.read(&view, slot, &mut block[at..at + dim]).is_some() {
                        held.push(slot);
                    }
                }
            }
            let n = held.len();
            let block = &block[..n * dim];
            for (norm, row) in norms.iter_mut().zip(block.chunks_exact(dim)) {
                *norm = -neg_dot(row, row);
            }
            for (g, group) in queries.chunks(4).enumerate() {
                let q = |j: usize| group[j.min(group.len() - 1)].1.as_slice();
                dot4([q(0), q(1), q(2), q(3)], block, &mut dots[..n]);
                for j in 0..group.len() {
                    let (top, qn) = (&mut tops[g * 4 + j], query_norms[g * 4 + j]);
                    for (r, (d, &xn)) in dots[..n].iter().zip(&norms).enumerate() {
                        let near = if l2 { qn + xn + 2.0 * d[j] } else { d[j] };
                        if near - ROUNDING * (qn + xn) <= top.threshold() {
                            let exact = pair(q(j), &block[r * dim..(r + 1) * dim]);
                            if exact <= top.threshold() {
                                top.push(exact, held[r]);
                            }
                        }
                    }
                }
            }
        }
        Some(
            tops.into_iter()
                .map(|t| t.into_sorted().into_iter().map(|s| s.key).collect())
                .collect(),
        )
    }

    /// Up to `n` distinct live vectors of the slots below `frozen`, with their slots, drawn at
    /// random.
    fn sample_live(&self, n: usize, rng: &mut Rng, frozen: u32) -> Vec<(Slot, Vec<f32>)> {
        let dim = self.params.dim;
        let mut out: Vec<(Slot, Vec<f32>)> = Vec::with_capacity(n);
        let mut seen = FxHashSet::default();
        match &self.store {
            Some(store) => {
                let slots = frozen as usize;
                let view = self.versions.view();
                let rows = store.view();
                let mut row = vec![0f32; dim];
                // Rejection sampling over slots: the live fraction is at least a quarter after
                // garbage collection, so this ends well within the bound.
                for _ in 0..n * 16 {
                    if out.len() == n || slots == 0 {
                        break;
                    }
                    let slot = Slot(rng.below(slots) as u32);
                    if seen.insert(slot.0) && rows.read(&view, slot, &mut row).is_some() {
                        out.push((slot, row.clone()));
                    }
                }
            }
            None => {
                // Reservoir sampling over the live members of every posting (replicas once).
                let mut count = 0usize;
                for p in self.heads.all() {
                    let m = p.members.read();
                    self.for_each_live(&m, 0..m.len(), |slot, _, v| {
                        if slot.0 >= frozen || !seen.insert(slot.0) {
                            return;
                        }
                        count += 1;
                        if out.len() < n {
                            out.push((slot, v.to_vec()));
                        } else {
                            let j = rng.below(count);
                            if j < n {
                                out[j] = (slot, v.to_vec());
                            }
                        }
                    });
                }
            }
        }
        out
    }
}

/// The calibration thread's nice value: it yields to writes, rebalancing and searches.
const CALIBRATION_NICE: i32 = 10;

/// Queues a shard for calibration on the process-wide calibration thread (started on first
/// use), unless it is queued already or not due.
pub(super) fn request(shared: &Arc<Shared>) {
    // Cheapest first: every search and write comes through here.
    if shared.params.background_threads == 0
        || shared.calibration_queued.load(Ordering::Acquire)
        || !shared.calibration_due()
    {
        return;
    }
    if shared.calibration_queued.swap(true, Ordering::AcqRel) {
        return;
    }
    if let Some(tx) = calibrator() {
        if tx.send(Arc::downgrade(shared)).is_ok() {
            return;
        }
    }
    shared.calibration_queued.store(false, Ordering::Release);
}

/// How often the calibration thread looks again at the shards it has measured: a curve that
/// fell due while no search or write arrived (the throttle of [`Shared::calibration_due`] held
/// it back when the last write came) is measured without waiting for the next request.
const RECHECK: Duration = Duration::from_secs(1);

fn calibrator() -> Option<&'static mpsc::Sender<Weak<Shared>>> {
    static TX: OnceLock<Option<mpsc::Sender<Weak<Shared>>>> = OnceLock::new();
    TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Weak<Shared>>();
        let worker = move || {
            background::lower_this_thread(CALIBRATION_NICE);
            // Every shard ever requested that is still alive.
            let mut watched: Vec<Weak<Shared>> = Vec::new();
            loop {
                let mut queued = Vec::new();
                match rx.recv_timeout(RECHECK) {
                    Ok(weak) => queued.push(weak),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
                queued.extend(rx.try_iter());
                watched.retain(|w| w.strong_count() > 0);
                for weak in queued {
                    // A shard dropped meanwhile is skipped; one that shut down stops early.
                    if let Some(shared) = weak.upgrade() {
                        shared.recalibrate_if_due();
                    }
                    if !watched.iter().any(|w| w.ptr_eq(&weak)) {
                        watched.push(weak);
                    }
                }
                for weak in &watched {
                    if let Some(shared) = weak.upgrade() {
                        if !shared.jobs.is_shut_down() && shared.calibration_due() {
                            shared.recalibrate_if_due();
                        }
                    }
                }
            }
        };
        std::thread::Builder::new().name("calibrate".into()).spawn(worker).ok().map(|_| tx)
    })
    .as_ref()
}

impl Shared {
    /// Measures the curve and publishes it (the previous one serves meanwhile), unless a curve
    /// measured on a later state was published first.
    pub(super) fn recalibrate(&self) {
        let _one = self.calibrating.lock();
        self.publish_calibration(SAMPLE_QUERIES);
    }

    /// The background thread's calibration: skipped when another (a caller's) published a
    /// current curve while this request waited.
    fn recalibrate_if_due(&self) {
        let _one = self.calibrating.lock();
        if self.calibration_due() {
            // A first curve, or one for a shard that doubled, is a quick one.
            let quick = match &*self.calibration.read() {
                None => true,
                Some(c) => {
                    self.versions.live() >= 2 * c.vectors || self.heads.len() >= 2 * c.postings
                }
            };
            self.publish_calibration(if quick { QUICK_QUERIES } else { SAMPLE_QUERIES });
        } else {
            self.calibration_queued.store(false, Ordering::Release);
        }
    }

    fn publish_calibration(&self, queries: usize) {
        if let Some(c) = self.calibrate(queries) {
            let mut slot = self.calibration.write();
            if slot.as_ref().is_none_or(|old| old.mutations <= c.mutations) {
                *slot = Some(Arc::new(c));
            }
        }
        self.calibration_queued.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curve(points: &[(usize, f32)]) -> Calibration {
        let errors = vec![0.0; points.len()];
        Calibration {
            points: points.to_vec(),
            errors,
            queries: 1,
            full: true,
            vectors: 1,
            postings: 1,
            mutations: 0,
            finished: Instant::now(),
            took: Duration::ZERO,
        }
    }

    #[test]
    fn depth_is_interpolated_between_the_points_around_the_target() {
        let c = curve(&[(8, 0.5), (16, 0.8), (32, 0.9), (64, 0.96), (128, 0.99)]);
        assert_eq!(c.nprobe_for(0.4), 8);
        assert_eq!(c.nprobe_for(0.9), 32);
        let np = c.nprobe_for(0.95);
        assert!(np > 32 && np < 64, "{np}");
        assert!((c.recall_at(np) - 0.95).abs() < 0.01, "{}", c.recall_at(np));
        // Unreachable: the deepest measured.
        assert_eq!(c.nprobe_for(0.999), 128);
        assert_eq!(c.recall_at(128), 0.99);
        assert_eq!(c.recall_at(4096), 0.99);
        // A dip (noise) is not a crossing.
        let d = curve(&[(8, 0.9), (16, 0.85), (32, 0.97)]);
        let np = d.nprobe_for(0.95);
        assert!(np > 16 && np <= 32, "{np}");
    }
}
