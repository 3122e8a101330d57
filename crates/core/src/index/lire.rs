//! LIRE: the background protocol that keeps postings balanced without global rebuilds.
//!
//! One job kind, `maintain(posting)`, queued at most once per posting: garbage-collect stale
//! members; split the posting by balanced 2-means if it is still over the limit and reassign the
//! vectors the split may have displaced; merge it into its neighbours if it has become too small.
//! Readers never wait for a job: a split publishes the two new postings before it retires the old
//! one, and a retired posting keeps its members until the last reader lets go of it.

use super::posting::{CodeBounds, Members, Posting};
use super::versions::{Slot, VersionWord};
use super::Encoding;
use super::Shared;
use crate::distance::kernels;
use crate::error::{Error, Result};
use crate::kmeans;
use crate::rng::Rng;
use parking_lot::{Condvar, Mutex, MutexGuard};
use rustc_hash::FxHashSet;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Live members copied out of a posting: slots, words and vectors (row-major).
#[derive(Debug, Default)]
struct Rows {
    slots: Vec<Slot>,
    words: Vec<VersionWord>,
    vectors: Vec<f32>,
}

impl Rows {
    fn push(&mut self, slot: Slot, word: VersionWord, v: &[f32]) {
        self.slots.push(slot);
        self.words.push(word);
        self.vectors.extend_from_slice(v);
    }

    fn vector(&self, i: usize, dim: usize) -> &[f32] {
        &self.vectors[i * dim..(i + 1) * dim]
    }
}

/// The bounded queue of maintenance jobs.
#[derive(Debug, Default)]
pub(super) struct Jobs {
    state: Mutex<JobState>,
    /// Signalled when a job is queued or on shutdown.
    work: Condvar,
    /// Signalled when a job finishes.
    done: Condvar,
}

#[derive(Debug, Default)]
struct JobState {
    queue: VecDeque<Arc<Posting>>,
    running: usize,
    /// Holds on maintenance (a checkpoint reading the index): no job starts while any is held.
    held: usize,
    /// Postings over the hard size limit, waiting for their split.
    overfull: usize,
    shutdown: bool,
}

impl Jobs {
    pub(super) fn enqueue(&self, p: &Arc<Posting>) {
        if !p.try_mark_queued() {
            return;
        }
        self.state.lock().queue.push_back(p.clone());
        self.work.notify_one();
    }

    /// Records that `p` grew past the hard limit; writers are held back until it is split.
    pub(super) fn mark_overfull(&self, p: &Arc<Posting>) {
        if !p.overfull.swap(true, Ordering::AcqRel) {
            self.state.lock().overfull += 1;
        }
        self.enqueue(p);
    }

    fn clear_overfull(&self, p: &Arc<Posting>) {
        if p.overfull.swap(false, Ordering::AcqRel) {
            self.state.lock().overfull -= 1;
            self.done.notify_all();
        }
    }

    pub(super) fn pending(&self) -> usize {
        let s = self.state.lock();
        s.queue.len() + s.running
    }

    /// Admission control for writers: while the queue is at `limit` or a posting is over the
    /// hard size limit, the writer runs queued jobs through `run` (when `helps`) and waits
    /// only when none may start, up to `timeout`; then it refuses.
    pub(super) fn admit(
        &self,
        limit: usize,
        timeout: Duration,
        helps: bool,
        mut run: impl FnMut(Arc<Posting>),
    ) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let behind = |s: &JobState| s.queue.len() >= limit || s.overfull > 0;
        let mut s = self.state.lock();
        while behind(&s) {
            if Instant::now() >= deadline {
                return Err(Error::Overloaded { pending: s.queue.len() + s.running, limit });
            }
            let job = if helps && s.held == 0 { s.queue.pop_front() } else { None };
            match job {
                Some(p) => {
                    s.running += 1;
                    MutexGuard::unlocked(&mut s, || run(p));
                }
                None => {
                    self.done.wait_until(&mut s, deadline);
                }
            }
        }
        Ok(())
    }

    pub(super) fn is_shut_down(&self) -> bool {
        self.state.lock().shutdown
    }

    pub(super) fn shutdown(&self) {
        self.state.lock().shutdown = true;
        self.work.notify_all();
    }

    /// Takes the next job, blocking while the queue is empty unless `block` is false.
    fn take(&self, block: bool) -> Option<Arc<Posting>> {
        let mut s = self.state.lock();
        loop {
            if s.shutdown {
                return None;
            }
            if s.held == 0 {
                if let Some(p) = s.queue.pop_front() {
                    s.running += 1;
                    return Some(p);
                }
            }
            if !block {
                return None;
            }
            self.work.wait(&mut s);
        }
    }

    fn finish(&self) {
        self.state.lock().running -= 1;
        self.done.notify_all();
    }

    fn wait_quiet(&self) {
        let mut s = self.state.lock();
        while s.held == 0 && s.queue.is_empty() && s.running > 0 {
            self.done.wait(&mut s);
        }
    }

    /// Nothing queued or running, or maintenance is held (queued jobs wait for the release).
    fn is_quiet(&self) -> bool {
        let s = self.state.lock();
        s.held > 0 || (s.queue.is_empty() && s.running == 0)
    }

    /// Stops new jobs from starting and waits for running ones to finish.
    pub(super) fn hold(&self) {
        let mut s = self.state.lock();
        s.held += 1;
        while s.running > 0 {
            self.done.wait(&mut s);
        }
    }

    pub(super) fn release(&self) {
        self.state.lock().held -= 1;
        self.work.notify_all();
    }
}

impl Shared {
    pub(super) fn worker(&self) {
        let mut rng = Rng::new(self.params.seed ^ 0xb1a5);
        while let Some(p) = self.jobs.take(true) {
            self.run_job(&p, &mut rng);
        }
    }

    /// Admission control (see [`Jobs::admit`]). A writer held back runs queued jobs itself
    /// beside the background threads, so a burst of splits gets every core the writers would
    /// otherwise leave idle. An index without background threads only waits: its jobs run
    /// when its owner drains them.
    pub(super) fn admit(&self) -> Result<()> {
        let p = &self.params;
        let mut rng = None;
        let run = |job: Arc<Posting>| {
            self.run_job(&job, rng.get_or_insert_with(|| Rng::new(p.seed ^ 0x5e1f)));
        };
        self.jobs.admit(p.max_pending_jobs, p.backpressure_timeout, p.background_threads > 0, run)
    }

    /// Runs queued jobs on the calling thread until none is queued or running.
    pub(super) fn drain(&self) {
        let mut rng = Rng::new(self.params.seed ^ 0xd7a1);
        loop {
            if let Some(p) = self.jobs.take(false) {
                self.run_job(&p, &mut rng);
                continue;
            }
            self.jobs.wait_quiet();
            if self.jobs.is_quiet() {
                return;
            }
        }
    }

    /// Runs one job; the posting's queued flag is cleared only afterwards, so two jobs never
    /// work on the same posting at once.
    fn run_job(&self, p: &Arc<Posting>, rng: &mut Rng) {
        self.maintain(p, rng);
        p.clear_queued();
        self.jobs.clear_overfull(p);
        self.jobs.finish();
    }

    fn maintain(&self, p: &Arc<Posting>, rng: &mut Rng) {
        // Count the live members; only a split needs a copy of them (appends that land
        // meanwhile are picked up under the write lock).
        let limit = self.split_limit();
        let (seen, live, copy) = {
            let m = p.members.read();
            if m.retired {
                return;
            }
            let live = {
                let view = self.versions.view();
                (0..m.len()).filter(|&i| view.is_live(m.slots[i], m.words[i])).count()
            };
            let copy = (live > limit).then(|| {
                let mut copy = Rows::default();
                self.for_each_live(&m, 0..m.len(), |s, w, v| copy.push(s, w, v));
                copy
            });
            (m.len(), live, copy)
        };
        if let Some(copy) = copy {
            self.split(p, seen, copy, rng);
        } else if live < self.params.merge_limit && self.heads.len() > 1 {
            self.merge(p);
        } else {
            self.gc(p);
        }
    }

    /// Drops stale members in place.
    fn gc(&self, p: &Arc<Posting>) {
        let mut m = p.members.write();
        if m.retired {
            return;
        }
        let view = self.versions.view();
        p.stale.store(0, Ordering::Relaxed);
        m.retain(self.params.dim, &p.centroid, |s, w| view.is_live(s, w));
        self.counters.gc_runs.fetch_add(1, Ordering::Relaxed);
    }

    fn split(&self, p: &Arc<Posting>, seen: usize, live: Rows, rng: &mut Rng) {
        let dim = self.params.dim;
        let l2 = kernels().l2sq;
        let (c0, c1, side) = kmeans::two_means(&live.vectors, dim, rng);
        let encoding = self.params.encoding;
        let mut halves =
            [Members::with_capacity(encoding, 0, dim), Members::with_capacity(encoding, 0, dim)];
        for (i, &s) in side.iter().enumerate() {
            let c = if s { &c1 } else { &c0 };
            halves[s as usize].push(live.slots[i], live.words[i], live.vector(i, dim), c);
        }
        let [h0, h1] = halves;
        let p0 = self.heads.insert(c0, h0);
        let p1 = self.heads.insert(c1, h1);
        {
            // Members appended since the copy move to the nearer half; then no more appends.
            // Lock order: the old posting, then the version view, which is dropped before the
            // new postings are locked.
            let mut m = p.members.write();
            let mut tail = Rows::default();
            self.for_each_live(&m, seen..m.len(), |s, w, v| tail.push(s, w, v));
            for i in 0..tail.slots.len() {
                let v = tail.vector(i, dim);
                let t = if l2(v, &p0.centroid) <= l2(v, &p1.centroid) { &p0 } else { &p1 };
                t.members.write().push(tail.slots[i], tail.words[i], v, &t.centroid);
            }
            m.retired = true;
            // Leave the head index before writers can see the retirement, so none keeps
            // choosing this posting.
            self.heads.remove(p.id);
        }
        self.counters.splits.fetch_add(1, Ordering::Relaxed);
        for half in [&p0, &p1] {
            if half.members.read().len() > self.split_limit() {
                self.jobs.enqueue(half);
            }
        }
        self.reassign_after_split(&p.centroid, [&p0, &p1]);
    }

    /// Reassigns the vectors a split may have displaced, using SPFresh's two necessary
    /// conditions: a member of a new posting that is no nearer its new centroid than the old
    /// one, and a member of a nearby posting that is nearer a new centroid than the old one.
    /// Each candidate is placed again only if its nearest posting is not where it lives.
    fn reassign_after_split(&self, old: &[f32], new: [&Arc<Posting>; 2]) {
        let l2 = kernels().l2sq;
        let mut cands: Vec<(Slot, VersionWord, Vec<f32>, Arc<Posting>)> = Vec::new();
        let mut seen: FxHashSet<Slot> = FxHashSet::default();
        for p in new {
            let m = p.members.read();
            // Only members the codes cannot rule out are read: nearer the old centroid.
            let suspects = suspects(&m, &p.centroid, [old], |[(lo, _)], home| lo <= home);
            self.for_each_live(&m, suspects, |slot, word, v| {
                if l2(v, old) <= l2(v, &p.centroid) && seen.insert(slot) {
                    cands.push((slot, word, v.to_vec(), (*p).clone()));
                }
            });
        }
        let mut near = Vec::new();
        self.heads.nearest(old, self.params.reassign_k + 2, &mut near);
        for (_, b) in near.iter().filter(|(_, b)| !new.iter().any(|n| Arc::ptr_eq(n, b))) {
            let m = b.members.read();
            let to = [&*new[0].centroid, &*new[1].centroid, old];
            let suspects =
                suspects(&m, &b.centroid, to, |[(lo0, _), (lo1, _), (_, hi_old)], home| {
                    let to_new = lo0.min(lo1);
                    to_new <= hi_old && to_new <= home
                });
            self.for_each_live(&m, suspects, |slot, word, v| {
                // Necessary: nearer a new centroid than the old one. Sufficient to move: nearer
                // a new centroid than its own; a vector nearer some third posting was there
                // before this split and is not this split's to move.
                let to_new = l2(v, &new[0].centroid).min(l2(v, &new[1].centroid));
                if to_new <= l2(v, old) && to_new < l2(v, &b.centroid) && seen.insert(slot) {
                    cands.push((slot, word, v.to_vec(), b.clone()));
                }
            });
        }
        let mut best = Vec::new();
        for (slot, word, v, home) in cands {
            // Only a strictly nearer posting justifies a move; ties (identical centroids after
            // splitting identical vectors) stay put, and so does a vector whose distance to its
            // home is NaN (nothing is provably nearer).
            self.heads.nearest_approx(&v, 1, &mut best);
            let nearer = |(d, b): &(f32, Arc<Posting>)| {
                !Arc::ptr_eq(b, &home) && *d < l2(&v, &home.centroid)
            };
            if !best.first().is_some_and(nearer) {
                continue;
            }
            if let Some(next) = self.versions.bump_if(slot, word) {
                self.write_copies(slot, next, &v, None);
                self.counters.reassigned.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Retires a posting that has become too small and places its live members again.
    fn merge(&self, p: &Arc<Posting>) {
        let _serial = self.merging.lock();
        if self.heads.len() <= 1 {
            return;
        }
        let moved: Vec<(Slot, VersionWord, Vec<f32>)> = {
            let mut m = p.members.write();
            if m.retired {
                return;
            }
            m.retired = true;
            let mut moved = Vec::new();
            self.for_each_live(&m, 0..m.len(), |s, w, v| moved.push((s, w, v.to_vec())));
            moved
        };
        // New copies are written before the posting leaves the head index, so searches keep
        // finding every member throughout.
        for (slot, word, v) in &moved {
            if let Some(next) = self.versions.bump_if(*slot, *word) {
                self.write_copies(*slot, next, v, Some(p));
            }
        }
        self.heads.remove(p.id);
        self.counters.merges.fetch_add(1, Ordering::Relaxed);
        self.counters.reassigned.fetch_add(moved.len() as u64, Ordering::Relaxed);
    }
}

/// The indexes of the members of `m` (the posting around `home`) that `may` accepts by their
/// code bounds to the points `to` (see [`CodeBounds`]): `may(bounds, distance to home)` must
/// hold for every member the exact test that follows would accept. Every member under `F32`
/// (the vectors are at hand).
fn suspects<const N: usize>(
    m: &Members,
    home: &[f32],
    to: [&[f32]; N],
    may: impl Fn([(f32, f32); N], f32) -> bool,
) -> Vec<usize> {
    match m.encoding {
        Encoding::F32 => (0..m.len()).collect(),
        Encoding::Int8 => {
            let mut bounds = CodeBounds::new(home, to);
            (0..m.len())
                .filter(|&i| {
                    let (b, home) = bounds.of(m, i);
                    may(b, home)
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::posting::PostingId;

    fn queue(jobs: &Jobs, n: u32) {
        for i in 0..n {
            let p = Posting::new(
                PostingId(i),
                vec![0.0; 4],
                Members::with_capacity(Encoding::F32, 0, 4),
            );
            jobs.enqueue(&Arc::new(p));
        }
    }

    /// A writer held back by a full queue runs jobs itself until the queue is below its
    /// limit, then is admitted: no background thread is needed to let it in.
    #[test]
    fn a_writer_held_back_runs_queued_jobs_until_admitted() {
        let jobs = Jobs::default();
        queue(&jobs, 10);
        let mut ran = 0;
        let run = |p: Arc<Posting>| {
            p.clear_queued();
            jobs.finish();
            ran += 1;
        };
        jobs.admit(4, Duration::from_secs(60), true, run).unwrap();
        assert_eq!(ran, 7, "admitted as soon as the queue fell below 4, not before");
        assert_eq!(jobs.pending(), 3);
    }

    /// A writer that finds no job it may start (maintenance held by a checkpoint) waits for
    /// its timeout and is refused; the queue is left as it was.
    #[test]
    fn a_writer_that_cannot_help_is_refused_at_its_timeout() {
        let jobs = Jobs::default();
        queue(&jobs, 5);
        jobs.hold();
        let refused = jobs.admit(4, Duration::from_millis(20), true, |_| panic!("held"));
        assert!(matches!(refused, Err(Error::Overloaded { pending: 5, limit: 4 })), "{refused:?}");
        jobs.release();
        assert_eq!(jobs.pending(), 5);
    }
}
