//! The version map of one shard: external ids to dense internal slots, and per slot the
//! current version word that decides which posting copies are live.
//!
//! A version word holds a 30-bit counter, a writing bit and a tombstone bit. Every posting member
//! records the word it was written with; a member is live exactly when its word equals the slot's
//! current word, so an upsert (counter + 1) or a delete (tombstone) makes every older copy stale
//! at once, without touching the postings. Readers never lock: slots live in fixed-size chunks
//! that are never moved, and a reader holds the chunk table's read guard for the length of one
//! search.
//!
//! The word doubles as the sequence word of the slot's row in the vector store: an upsert sets
//! the writing bit while it overwrites the row and clears it afterwards, and a reader accepts a
//! row only if the word was the same, without the writing bit, before and after it read the row
//! (see [`VersionView::read_stable`]).

use parking_lot::{Mutex, RwLock, RwLockReadGuard};
use rustc_hash::FxHashMap;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// Dense per-shard slot of a vector id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(pub u32);

/// The version word recorded with a posting member.
pub type VersionWord = u32;

pub const TOMBSTONE: u32 = 1 << 31;
/// Set while an upsert overwrites the slot's row in the vector store.
pub const WRITING: u32 = 1 << 30;
const COUNTER: u32 = WRITING - 1;
const CHUNK_BITS: u32 = 14;
const CHUNK: usize = 1 << CHUNK_BITS;

#[derive(Debug)]
struct Cell {
    version: AtomicU32,
    external: AtomicU64,
    /// The posting that received the current version's first copy (`NO_HOME` if none yet),
    /// so replacing or deleting the vector can tell that posting it now holds a stale copy.
    home: AtomicU32,
}

pub const NO_HOME: u32 = u32::MAX;

type Chunk = Box<[Cell]>;

#[derive(Debug, Default)]
pub struct VersionMap {
    ids: Mutex<FxHashMap<u64, Slot>>,
    chunks: RwLock<Vec<Chunk>>,
    slots: AtomicUsize,
    live: AtomicUsize,
}

/// A read view for the length of one search: version checks and id lookups without locking.
pub struct VersionView<'a> {
    chunks: RwLockReadGuard<'a, Vec<Chunk>>,
}

impl std::fmt::Debug for VersionView<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionView").field("chunks", &self.chunks.len()).finish()
    }
}

impl VersionView<'_> {
    #[inline]
    fn cell(&self, slot: Slot) -> &Cell {
        let s = slot.0 as usize;
        &self.chunks[s >> CHUNK_BITS][s & (CHUNK - 1)]
    }

    #[inline]
    pub fn current(&self, slot: Slot) -> VersionWord {
        self.cell(slot).version.load(Ordering::Acquire)
    }

    #[inline]
    pub fn is_live(&self, slot: Slot, word: VersionWord) -> bool {
        self.current(slot) == word
    }

    /// Whether `word` is the slot's newest version, published or still being written.
    #[inline]
    pub fn is_latest(&self, slot: Slot, word: VersionWord) -> bool {
        self.current(slot) & !WRITING == word
    }

    /// Runs `read` (a copy of the slot's row in the vector store) until it ran while the slot
    /// held one finished, live version throughout; returns that version, or `None` (without a
    /// usable read) when the slot is deleted or its next version is being written.
    #[inline]
    pub fn read_stable(&self, slot: Slot, mut read: impl FnMut()) -> Option<VersionWord> {
        let version = &self.cell(slot).version;
        loop {
            let before = version.load(Ordering::Acquire);
            if before & (TOMBSTONE | WRITING) != 0 {
                return None;
            }
            read();
            // Pairs with the writer's release fence: a read that saw any store of a later
            // write also sees that write's word below.
            fence(Ordering::Acquire);
            if version.load(Ordering::Relaxed) == before {
                return Some(before);
            }
        }
    }

    #[inline]
    pub fn external(&self, slot: Slot) -> u64 {
        self.cell(slot).external.load(Ordering::Relaxed)
    }
}

impl VersionMap {
    pub fn view(&self) -> VersionView<'_> {
        VersionView { chunks: self.chunks.read() }
    }

    /// Number of ids whose current word is not a tombstone.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Number of slots ever handed out.
    pub fn slots(&self) -> usize {
        self.slots.load(Ordering::Relaxed)
    }

    pub fn lookup(&self, id: u64) -> Option<Slot> {
        self.ids.lock().get(&id).copied()
    }

    /// Bumps the id's counter (creating its slot on first sight), clears any tombstone and sets
    /// the writing bit; returns the slot, the new word that the caller's copies must carry, and
    /// the home posting of the version this one replaces (`NO_HOME` if it was not live). The
    /// caller then writes the slot's row, if any, and calls [`VersionMap::finish_write`];
    /// upserts of one id must not overlap.
    pub fn begin_upsert(&self, id: u64) -> (Slot, VersionWord, u32) {
        let slot = self.slot_for(id);
        let view = self.view();
        let cell = view.cell(slot);
        let prev = cell
            .version
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| Some(next_counter(w) | WRITING))
            .expect("closure always returns Some");
        // Orders the row's stores after the word's writing bit (see `read_stable`).
        fence(Ordering::Release);
        let home = cell.home.swap(NO_HOME, Ordering::AcqRel);
        let next = next_counter(prev);
        if prev & TOMBSTONE != 0 {
            self.live.fetch_add(1, Ordering::Relaxed);
            return (slot, next, NO_HOME);
        }
        (slot, next, home)
    }

    /// Publishes the version `begin_upsert` started, unless a delete took over meanwhile.
    pub fn finish_write(&self, slot: Slot, word: VersionWord) {
        let view = self.view();
        let _ = view.cell(slot).version.compare_exchange(
            word | WRITING,
            word,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }

    /// Tombstones the id. Returns the home posting of the deleted version (`NO_HOME` if
    /// unknown), or `None` when the id was unknown or already deleted.
    pub fn delete(&self, id: u64) -> Option<u32> {
        let slot = self.lookup(id)?;
        let view = self.view();
        let cell = view.cell(slot);
        cell.version
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w & TOMBSTONE == 0).then_some(next_counter(w) | TOMBSTONE)
            })
            .ok()?;
        self.live.fetch_sub(1, Ordering::Relaxed);
        Some(cell.home.swap(NO_HOME, Ordering::AcqRel))
    }

    /// Records where the first copy of `word` went, unless the slot moved on meanwhile.
    pub fn set_home(&self, slot: Slot, word: VersionWord, home: u32) {
        let view = self.view();
        let cell = view.cell(slot);
        cell.home.store(home, Ordering::Release);
        if cell.version.load(Ordering::Acquire) != word {
            // A newer version took over; its writer owns the home field.
            let _ = cell.home.compare_exchange(home, NO_HOME, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    /// Moves a slot from `word` to the next counter value, for a background reassign that
    /// rewrites the vector's copies. Fails when anything changed the slot since `word` was read.
    pub fn bump_if(&self, slot: Slot, word: VersionWord) -> Option<VersionWord> {
        let next = next_counter(word);
        let view = self.view();
        view.cell(slot)
            .version
            .compare_exchange(word, next, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| next)
    }

    /// Every slot in order: `(external id, current word, home)`.
    pub fn cells(&self) -> Vec<(u64, VersionWord, u32)> {
        let view = self.view();
        (0..self.slots() as u32)
            .map(|s| {
                let c = view.cell(Slot(s));
                let word = c.version.load(Ordering::Acquire);
                (c.external.load(Ordering::Relaxed), word, c.home.load(Ordering::Relaxed))
            })
            .collect()
    }

    /// The posting holding the first copy of the slot's current version, if known.
    pub fn home(&self, slot: Slot) -> Option<u32> {
        let h = self.view().cell(slot).home.load(Ordering::Acquire);
        (h != NO_HOME).then_some(h)
    }

    /// Appends a slot as a checkpoint recorded it (slots are restored in order). Returns
    /// `false` when the id already has a slot.
    pub fn restore(&self, id: u64, word: VersionWord, home: u32) -> bool {
        if self.lookup(id).is_some() {
            return false;
        }
        let word = word & !WRITING;
        let slot = self.slot_for(id);
        let view = self.view();
        let cell = view.cell(slot);
        cell.version.store(word, Ordering::Release);
        cell.home.store(home, Ordering::Release);
        if word & TOMBSTONE == 0 {
            self.live.fetch_add(1, Ordering::Relaxed);
        }
        true
    }

    /// Re-points a slot's home (after restored postings got new ids).
    pub fn remap_home(&self, slot: Slot, map: impl Fn(u32) -> u32) {
        let view = self.view();
        let home = &view.cell(slot).home;
        let h = home.load(Ordering::Relaxed);
        if h != NO_HOME {
            home.store(map(h), Ordering::Relaxed);
        }
    }

    fn slot_for(&self, id: u64) -> Slot {
        let mut ids = self.ids.lock();
        if let Some(s) = ids.get(&id) {
            return *s;
        }
        let s = self.slots.load(Ordering::Relaxed);
        let slot = Slot(u32::try_from(s).expect("more than 2^32 ids in one shard"));
        if s >> CHUNK_BITS >= self.chunks.read().len() {
            let chunk: Chunk = (0..CHUNK)
                .map(|_| Cell {
                    version: AtomicU32::new(TOMBSTONE),
                    external: AtomicU64::new(0),
                    home: AtomicU32::new(NO_HOME),
                })
                .collect();
            self.chunks.write().push(chunk);
        }
        self.view().cell(slot).external.store(id, Ordering::Relaxed);
        self.slots.store(s + 1, Ordering::Release);
        ids.insert(id, slot);
        slot
    }
}

/// The counter after `w`'s, with neither flag set.
fn next_counter(w: VersionWord) -> VersionWord {
    ((w & COUNTER) + 1) & COUNTER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_make_old_copies_stale() {
        let m = VersionMap::default();
        let (s, w1, _) = m.begin_upsert(42);
        assert!(!m.view().is_live(s, w1), "not live while its row is written");
        assert_eq!(m.view().read_stable(s, || ()), None);
        m.finish_write(s, w1);
        assert!(m.view().is_live(s, w1));
        assert_eq!(m.view().read_stable(s, || ()), Some(w1));
        assert_eq!(m.live(), 1);
        let (s2, w2, _) = m.begin_upsert(42);
        m.finish_write(s2, w2);
        assert_eq!(s, s2);
        assert!(!m.view().is_live(s, w1) && m.view().is_live(s, w2));
        assert!(m.delete(42).is_some());
        assert!(m.delete(42).is_none());
        assert!(!m.view().is_live(s, w2));
        assert_eq!(m.live(), 0);
        let (_, w3, _) = m.begin_upsert(42);
        m.finish_write(s, w3);
        assert!(m.view().is_live(s, w3) && w3 != w2 && w3 != w1);
        // A delete while a row is written wins; finishing the write does not revive the id.
        let (_, w5, _) = m.begin_upsert(7);
        assert!(m.delete(7).is_some());
        m.finish_write(m.lookup(7).unwrap(), w5);
        assert_eq!(m.view().read_stable(m.lookup(7).unwrap(), || ()), None);
        assert_eq!(m.live(), 1);
        assert_eq!(m.bump_if(s, w1), None);
        let w4 = m.bump_if(s, w3).unwrap();
        assert!(m.view().is_live(s, w4));
        for i in 0..(CHUNK as u64 + 5) {
            m.begin_upsert(1000 + i);
        }
        assert_eq!(m.view().external(m.lookup(1000 + CHUNK as u64).unwrap()), 1000 + CHUNK as u64);
    }
}
