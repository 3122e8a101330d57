//! A posting: a centroid and the contiguous block of its members (slot, version word, vector),
//! scanned with one batch kernel call.

use super::versions::{Slot, VersionWord};
use crate::distance::kernels;
use parking_lot::RwLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Position of a posting in the head index; reused after a posting is retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PostingId(pub u32);

#[derive(Debug)]
pub struct Posting {
    pub id: PostingId,
    pub centroid: Box<[f32]>,
    pub members: RwLock<Members>,
    /// Set while a split/merge job for this posting is queued, so it is queued once.
    pub queued: AtomicBool,
    /// Set while the posting holds more members than the hard limit; writers wait meanwhile.
    pub overfull: AtomicBool,
    /// Copies made stale since the last garbage collection, as far as writers could tell.
    pub stale: AtomicUsize,
}

/// The members of a posting, struct-of-arrays so the vectors are one contiguous block.
#[derive(Debug, Default)]
pub struct Members {
    /// A retired posting was split or merged away; its members live elsewhere now and writers
    /// must choose again.
    pub retired: bool,
    pub slots: Vec<Slot>,
    pub words: Vec<VersionWord>,
    pub vectors: Vec<f32>,
    /// Squared L2 norm of each vector, so an L2 scan needs one multiply-add per component.
    pub norms: Vec<f32>,
    /// Upper bound on the L2 distance (not squared) from the centroid to any member, for exact
    /// shard pruning.
    pub radius: f32,
}

impl Members {
    pub fn with_capacity(n: usize, dim: usize) -> Members {
        Members {
            retired: false,
            slots: Vec::with_capacity(n),
            words: Vec::with_capacity(n),
            vectors: Vec::with_capacity(n * dim),
            norms: Vec::with_capacity(n),
            radius: 0.0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn vector(&self, i: usize, dim: usize) -> &[f32] {
        &self.vectors[i * dim..(i + 1) * dim]
    }

    /// Appends one member. Grows by a quarter rather than doubling: posting memory is most of
    /// the index's memory and appends are spread over many postings.
    pub fn push(&mut self, slot: Slot, word: VersionWord, v: &[f32], dist_to_centroid: f32) {
        if self.slots.len() == self.slots.capacity() {
            let extra = (self.slots.len() / 4).max(8);
            self.slots.reserve_exact(extra);
            self.words.reserve_exact(extra);
            self.vectors.reserve_exact(extra * v.len());
            self.norms.reserve_exact(extra);
        }
        self.slots.push(slot);
        self.words.push(word);
        self.vectors.extend_from_slice(v);
        self.norms.push(-(kernels().neg_dot)(v, v));
        self.radius = self.radius.max(dist_to_centroid.sqrt() * (1.0 + 1e-5));
    }

    /// Keeps only the members `keep` accepts, compacting in place, and recomputes the radius.
    pub fn retain(
        &mut self,
        dim: usize,
        centroid: &[f32],
        mut keep: impl FnMut(Slot, VersionWord) -> bool,
    ) {
        let l2 = kernels().l2sq;
        let mut w = 0;
        let mut radius = 0f32;
        for r in 0..self.slots.len() {
            if !keep(self.slots[r], self.words[r]) {
                continue;
            }
            if w != r {
                self.slots[w] = self.slots[r];
                self.words[w] = self.words[r];
                self.norms[w] = self.norms[r];
                self.vectors.copy_within(r * dim..(r + 1) * dim, w * dim);
            }
            radius = radius.max(l2(&self.vectors[w * dim..(w + 1) * dim], centroid));
            w += 1;
        }
        self.slots.truncate(w);
        self.words.truncate(w);
        self.vectors.truncate(w * dim);
        self.norms.truncate(w);
        self.norms.shrink_to_fit();
        self.slots.shrink_to_fit();
        self.words.shrink_to_fit();
        self.vectors.shrink_to_fit();
        self.radius = radius.sqrt() * (1.0 + 1e-5);
    }

    /// Heap bytes held, for the memory statistics.
    pub fn heap_bytes(&self) -> usize {
        (self.slots.capacity()
            + self.words.capacity()
            + self.vectors.capacity()
            + self.norms.capacity())
            * 4
    }
}

impl Posting {
    pub fn new(id: PostingId, centroid: Vec<f32>, members: Members) -> Posting {
        Posting {
            id,
            centroid: centroid.into_boxed_slice(),
            members: RwLock::new(members),
            queued: AtomicBool::new(false),
            overfull: AtomicBool::new(false),
            stale: AtomicUsize::new(0),
        }
    }

    /// Claims the right to queue a job for this posting; false when one is already queued.
    pub fn try_mark_queued(&self) -> bool {
        !self.queued.swap(true, Ordering::AcqRel)
    }

    pub fn clear_queued(&self) {
        self.queued.store(false, Ordering::Release);
    }
}
