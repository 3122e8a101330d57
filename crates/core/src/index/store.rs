//! The vector store of a shard whose postings hold codes: the current `f32` vector of every slot,
//! kept once, read by re-ranking, by LIRE and by exact search.
//!
//! Rows live in fixed-size chunks that are never moved. A row is overwritten in place by the
//! next upsert of its id, so every read goes through [`VersionView::read_stable`], which accepts
//! a copy only if the slot's version word did not change while it was taken; components are
//! atomics so a torn read is detected rather than undefined. Upserts of one id are serialised by
//! a striped lock taken around `begin_upsert`, the row write and `finish_write`.

use super::versions::{Slot, VersionView, VersionWord};
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::sync::atomic::{AtomicU32, Ordering};

const CHUNK_BITS: u32 = 12;
const CHUNK_ROWS: usize = 1 << CHUNK_BITS;
const STRIPES: usize = 256;

type Chunk = Box<[AtomicU32]>;

#[derive(Debug)]
pub struct VectorStore {
    dim: usize,
    chunks: RwLock<Vec<Chunk>>,
    stripes: Box<[Mutex<()>]>,
}

/// A read view of the store for the length of one operation.
pub struct StoreView<'a> {
    dim: usize,
    chunks: RwLockReadGuard<'a, Vec<Chunk>>,
}

impl VectorStore {
    pub fn new(dim: usize) -> VectorStore {
        VectorStore {
            dim,
            chunks: RwLock::new(Vec::new()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The lock that serialises upserts of `id`.
    pub fn lock_id(&self, id: u64) -> MutexGuard<'_, ()> {
        let h = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56;
        self.stripes[h as usize % STRIPES].lock()
    }

    pub fn view(&self) -> StoreView<'_> {
        StoreView { dim: self.dim, chunks: self.chunks.read() }
    }

    /// Overwrites the row of `slot`; the caller holds the id's lock and the slot's writing bit.
    pub fn write(&self, slot: Slot, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        let chunk = slot.0 as usize >> CHUNK_BITS;
        if chunk >= self.chunks.read().len() {
            let mut chunks = self.chunks.write();
            while chunks.len() <= chunk {
                chunks.push((0..CHUNK_ROWS * self.dim).map(|_| AtomicU32::new(0)).collect());
            }
        }
        let view = self.view();
        for (a, x) in view.row(slot).iter().zip(v) {
            a.store(x.to_bits(), Ordering::Relaxed);
        }
    }

    /// Heap bytes held, for the memory statistics.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.read().len() * CHUNK_ROWS * self.dim * 4
    }
}

impl StoreView<'_> {
    #[inline]
    fn row(&self, slot: Slot) -> &[AtomicU32] {
        let s = slot.0 as usize;
        let chunk = &self.chunks[s >> CHUNK_BITS];
        &chunk[(s & (CHUNK_ROWS - 1)) * self.dim..][..self.dim]
    }

    /// Loads one word of every cache line of `slot`'s row, so that a loop touching many rows
    /// first has their cache misses overlap, instead of queueing behind one another in the
    /// copy loop that follows.
    #[inline]
    pub fn touch(&self, slot: Slot) -> u32 {
        if slot.0 as usize >> CHUNK_BITS >= self.chunks.len() {
            return 0;
        }
        self.row(slot).iter().step_by(16).fold(0, |a, x| a ^ x.load(Ordering::Relaxed))
    }

    /// Copies the current vector of `slot` into `out` and returns its version word, or `None`
    /// when the slot is deleted or being rewritten.
    #[inline]
    pub fn read(&self, versions: &VersionView, slot: Slot, out: &mut [f32]) -> Option<VersionWord> {
        if slot.0 as usize >> CHUNK_BITS >= self.chunks.len() {
            return None;
        }
        let row = self.row(slot);
        versions.read_stable(slot, || {
            for (o, a) in out.iter_mut().zip(row) {
                *o = f32::from_bits(a.load(Ordering::Relaxed));
            }
        })
    }
}
