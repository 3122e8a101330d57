//! The head index: the centroids of all postings of a shard, one contiguous block scanned with
//! the batch kernel. Postings are added and removed as LIRE splits and merges them; a removed
//! posting's position is reused by the next one added.

use super::posting::{Members, Posting, PostingId};
use crate::distance::kernels;
use crate::topk::TopK;
use parking_lot::RwLock;
use std::cell::RefCell;
use std::sync::Arc;

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
}

thread_local! {
    /// Per-thread buffers for head searches: distances to every slot, and the nearest ones.
    static SCRATCH: RefCell<(Vec<f32>, TopK<u32>)> = RefCell::new((Vec::new(), TopK::new(0)));
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
    /// written into `out` (cleared first).
    pub fn nearest(&self, q: &[f32], n: usize, out: &mut Vec<(f32, Arc<Posting>)>) {
        out.clear();
        SCRATCH.with(|s| {
            let (dists, top) = &mut *s.borrow_mut();
            let heads = self.inner.read();
            dists.resize(heads.postings.len(), 0.0);
            (kernels().l2sq_batch)(q, &heads.centroids, dists);
            for &f in &heads.free {
                dists[f as usize] = f32::INFINITY;
            }
            top.reset(n);
            for (i, &d) in dists.iter().enumerate() {
                if d < top.threshold() {
                    top.push_distinct(d, i as u32);
                }
            }
            out.extend(top.drain_sorted().filter(|s| s.dist.is_finite()).map(|s| {
                (
                    s.dist,
                    heads.postings[s.key as usize].clone().expect("free slots are infinitely far"),
                )
            }));
        });
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
        let posting = Arc::new(Posting::new(PostingId(slot), centroid, members));
        heads.postings[s] = Some(posting.clone());
        heads.alive += 1;
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

    /// Bytes held by the centroid block.
    pub fn heap_bytes(&self) -> usize {
        let h = self.inner.read();
        h.centroids.capacity() * 4 + h.postings.capacity() * 8
    }
}
