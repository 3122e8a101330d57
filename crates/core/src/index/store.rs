//! The vector store of a shard whose postings hold codes: the current `f32` vector of every slot,
//! kept once, read by re-ranking, by LIRE and by exact search.
//!
//! Rows live in a base segment (the rows of a bulk load, adopted without a copy) and after it in
//! fixed-size chunks allocated as they are first written; neither ever moves. A row is overwritten in place by the
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

#[derive(Debug, Default)]
struct Segments {
    /// Rows `0..base_rows`.
    base: Vec<AtomicU32>,
    base_rows: usize,
    /// Rows from `base_rows` on, `CHUNK_ROWS` a chunk; empty until first written.
    chunks: Vec<Box<[AtomicU32]>>,
}

#[derive(Debug)]
pub struct VectorStore {
    dim: usize,
    segments: RwLock<Segments>,
    stripes: Box<[Mutex<()>]>,
}

/// A read view of the store for the length of one operation.
pub struct StoreView<'a> {
    dim: usize,
    segments: RwLockReadGuard<'a, Segments>,
}

impl VectorStore {
    pub fn new(dim: usize) -> VectorStore {
        VectorStore {
            dim,
            segments: RwLock::new(Segments::default()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The lock that serialises upserts of `id`.
    pub fn lock_id(&self, id: u64) -> MutexGuard<'_, ()> {
        let h = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56;
        self.stripes[h as usize % STRIPES].lock()
    }

    pub fn view(&self) -> StoreView<'_> {
        StoreView { dim: self.dim, segments: self.segments.read() }
    }

    /// Takes `rows` (row-major) as the rows of slots `0..n` of an empty store, reusing their
    /// allocation: `f32` and `AtomicU32` share size and alignment, so the conversion collects
    /// in place and a bulk load never holds its vectors twice.
    pub fn adopt(&self, rows: Vec<f32>) {
        let mut seg = self.segments.write();
        assert!(seg.base_rows == 0 && seg.chunks.is_empty(), "adopt needs an empty store");
        seg.base_rows = rows.len() / self.dim;
        seg.base = rows.into_iter().map(|x| AtomicU32::new(x.to_bits())).collect();
    }

    /// Overwrites the row of `slot`; the caller holds the id's lock and the slot's writing bit.
    pub fn write(&self, slot: Slot, v: &[f32]) {
        debug_assert_eq!(v.len(), self.dim);
        if self.view().locate(slot).is_none() {
            let mut seg = self.segments.write();
            let chunk = (slot.0 as usize - seg.base_rows) >> CHUNK_BITS;
            if seg.chunks.len() <= chunk {
                seg.chunks.resize_with(chunk + 1, Default::default);
            }
            if seg.chunks[chunk].is_empty() {
                seg.chunks[chunk] = (0..CHUNK_ROWS * self.dim).map(|_| AtomicU32::new(0)).collect();
            }
        }
        let view = self.view();
        let row = view.row(slot).expect("allocated above");
        for (a, x) in row.iter().zip(v) {
            a.store(x.to_bits(), Ordering::Relaxed);
        }
    }

    /// Heap bytes held, for the memory statistics.
    pub fn heap_bytes(&self) -> usize {
        let seg = self.segments.read();
        (seg.base.capacity() + seg.chunks.iter().map(|c| c.len()).sum::<usize>()) * 4
    }
}

impl StoreView<'_> {
    /// The segment and the offset of `slot`'s row in it, if its memory exists.
    #[inline]
    fn locate(&self, slot: Slot) -> Option<(&[AtomicU32], usize)> {
        let s = slot.0 as usize;
        let seg = &*self.segments;
        if s < seg.base_rows {
            return Some((&seg.base, s * self.dim));
        }
        let chunk = seg.chunks.get((s - seg.base_rows) >> CHUNK_BITS)?;
        (!chunk.is_empty())
            .then(|| (&chunk[..], ((s - seg.base_rows) & (CHUNK_ROWS - 1)) * self.dim))
    }

    #[inline]
    fn row(&self, slot: Slot) -> Option<&[AtomicU32]> {
        self.locate(slot).map(|(seg, at)| &seg[at..at + self.dim])
    }

    /// Loads one word of every cache line of `slot`'s row, so that a loop touching many rows
    /// first has their cache misses overlap, instead of queueing behind one another in the
    /// copy loop that follows.
    #[inline]
    pub fn touch(&self, slot: Slot) -> u32 {
        self.row(slot)
            .map_or(0, |r| r.iter().step_by(16).fold(0, |a, x| a ^ x.load(Ordering::Relaxed)))
    }

    /// Copies the current vector of `slot` into `out` and returns its version word, or `None`
    /// when the slot is deleted or being rewritten.
    #[inline]
    pub fn read(&self, versions: &VersionView, slot: Slot, out: &mut [f32]) -> Option<VersionWord> {
        let row = self.row(slot)?;
        versions.read_stable(slot, || {
            for (o, a) in out.iter_mut().zip(row) {
                *o = f32::from_bits(a.load(Ordering::Relaxed));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::versions::VersionMap;

    #[test]
    fn adopted_rows_keep_their_allocation_and_later_rows_get_chunks() {
        let dim = 3;
        let versions = VersionMap::default();
        let store = VectorStore::new(dim);
        let rows: Vec<f32> = (0..30).map(|x| x as f32).collect();
        let at = rows.as_ptr() as usize;
        for id in 0..10 {
            let (slot, word, _) = versions.begin_upsert(id);
            versions.finish_write(slot, word);
        }
        store.adopt(rows);
        assert_eq!(store.segments.read().base.as_ptr() as usize, at, "adopting copied the rows");
        let (slot, word, _) = versions.begin_upsert(99);
        store.write(slot, &[7.0, 8.0, 9.0]);
        versions.finish_write(slot, word);
        let mut out = [0f32; 3];
        let (view, rows) = (versions.view(), store.view());
        assert_eq!(rows.read(&view, Slot(4), &mut out), view.read_stable(Slot(4), || ()));
        assert_eq!(out, [12.0, 13.0, 14.0]);
        assert_eq!(rows.read(&view, slot, &mut out), Some(word));
        assert_eq!(out, [7.0, 8.0, 9.0]);
        assert_eq!(rows.read(&view, Slot(5000), &mut out), None);
    }
}
