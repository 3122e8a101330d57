//! The head index: the centroids of all postings of a shard, one contiguous block scanned with
//! the batch kernel. Postings are added and removed as LIRE splits and merges them; a removed
//! posting's position is reused by the next one added.

use super::posting::{Members, Posting, PostingId};
use crate::distance::kernels;
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

/// Per-thread buffers for head searches: distances to every slot, and the live candidates.
type Scratch = (Vec<f32>, Vec<(f32, u32)>);

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new((Vec::new(), Vec::new())) };
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
            let (dists, cand) = &mut *s.borrow_mut();
            let heads = self.inner.read();
            let slots = heads.postings.len();
            dists.resize(slots, 0.0);
            (kernels().l2sq_batch)(q, &heads.centroids, dists);
            cand.clear();
            cand.extend(
                dists
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| heads.postings[*i].is_some())
                    .map(|(i, d)| (*d, i as u32)),
            );
            let n = n.min(cand.len());
            if n == 0 {
                return;
            }
            if n < cand.len() {
                cand.select_nth_unstable_by(n - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                cand.truncate(n);
            }
            cand.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            out.extend(cand.iter().map(|&(d, i)| {
                (d, heads.postings[i as usize].clone().expect("filtered to live slots"))
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
