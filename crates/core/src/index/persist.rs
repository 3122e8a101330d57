//! Saving one shard for a checkpoint and restoring it without rebuilding: the version map, the
//! current vector of every slot (unless the caller keeps the vectors elsewhere, as a
//! checkpoint does in its vector files), and every posting's centroid and live members. Codes
//! are not saved: restoring encodes each member against its centroid again, which is
//! deterministic and far cheaper than clustering. Byte layout in `docs/file-formats.md`
//! (checkpoint shard file, snapshot file).

use super::posting::{Members, Posting};
use super::versions::{Slot, VersionWord, NO_HOME, TOMBSTONE, WRITING};
use super::{Index, IndexParams, Shared};
use crate::storage::frame::Reader;
use rustc_hash::FxHashMap;
use std::io;
use std::sync::Arc;

const SUMMARY: u8 = 1;
const VERSIONS: u8 = 2;
const POSTING: u8 = 4;
/// Slots per versions record.
const CHUNK: usize = 16_384;

/// While alive, no maintenance job starts on the index and none is running.
#[derive(Debug)]
pub struct MaintenanceHold<'a>(&'a Index);

impl Drop for MaintenanceHold<'_> {
    fn drop(&mut self) {
        self.0.shared.jobs.release();
    }
}

/// A shard as it was at one instant, taken by [`Index::cut`] and written by
/// [`ShardCut::save`] while writes go on. Background maintenance is held while it lives.
#[derive(Debug)]
pub struct ShardCut {
    shared: Arc<Shared>,
    /// (id, version word, home) of every slot at the cut.
    cells: Vec<(u64, VersionWord, u32)>,
    /// Every posting and its member count at the cut.
    postings: Vec<(Arc<Posting>, usize)>,
}

impl Drop for ShardCut {
    fn drop(&mut self) {
        self.shared.jobs.release();
    }
}

impl ShardCut {
    /// Writes the cut as record payloads through `put`: the version map, then every posting's
    /// centroid and the members live at the cut (vectors are not written: a restore reads
    /// them from the vector files at the checkpoint's marks).
    pub fn save(&self, put: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let dim = self.shared.params.dim;
        let cells = &self.cells;
        let mut rec = vec![SUMMARY];
        rec.extend_from_slice(&(dim as u32).to_le_bytes());
        rec.extend_from_slice(&(cells.len() as u64).to_le_bytes());
        rec.extend_from_slice(&(self.postings.len() as u64).to_le_bytes());
        put(&rec)?;
        for chunk in cells.chunks(CHUNK) {
            rec.clear();
            rec.push(VERSIONS);
            rec.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
            for &(id, word, home) in chunk {
                rec.extend_from_slice(&id.to_le_bytes());
                rec.extend_from_slice(&word.to_le_bytes());
                rec.extend_from_slice(&home.to_le_bytes());
            }
            put(&rec)?;
        }
        let live_at_cut =
            |slot: Slot, word: VersionWord| cells.get(slot.0 as usize).is_some_and(|c| c.1 == word);
        let mut live = Vec::new();
        for (p, n) in &self.postings {
            rec.clear();
            rec.push(POSTING);
            rec.extend_from_slice(&p.id.0.to_le_bytes());
            for x in p.centroid.iter() {
                rec.extend_from_slice(&x.to_le_bytes());
            }
            {
                let m = p.members.read();
                live.clear();
                let n = (*n).min(m.len());
                live.extend(
                    (0..n)
                        .filter(|&i| live_at_cut(m.slots[i], m.words[i]))
                        .map(|i| (m.slots[i], m.words[i])),
                );
            }
            rec.extend_from_slice(&(live.len() as u32).to_le_bytes());
            for (slot, word) in &live {
                rec.extend_from_slice(&slot.0.to_le_bytes());
                rec.extend_from_slice(&word.to_le_bytes());
            }
            put(&rec)?;
        }
        Ok(())
    }
}

impl Index {
    /// Stops background maintenance until the hold is dropped (waiting for a running job).
    pub fn hold_maintenance(&self) -> MaintenanceHold<'_> {
        self.shared.jobs.hold();
        MaintenanceHold(self)
    }

    /// The current vector of every slot in `range` (zeros for deleted ones), row-major.
    /// With `f32` postings the whole range's vectors are gathered from every posting.
    fn slot_vectors(&self, range: std::ops::Range<usize>) -> Vec<f32> {
        let s = &*self.shared;
        let dim = s.params.dim;
        let mut out = vec![0f32; range.len() * dim];
        match &s.store {
            Some(store) => {
                let (view, rows) = (s.versions.view(), store.view());
                for (i, row) in out.chunks_exact_mut(dim).enumerate() {
                    if rows.read(&view, Slot((range.start + i) as u32), row).is_none() {
                        row.fill(0.0);
                    }
                }
            }
            None => {
                for p in s.heads.all() {
                    let m = p.members.read();
                    s.for_each_live(&m, 0..m.len(), |slot, _, v| {
                        if range.contains(&(slot.0 as usize)) {
                            let at = (slot.0 as usize - range.start) * dim;
                            out[at..at + dim].copy_from_slice(v);
                        }
                    });
                }
            }
        }
        out
    }

    /// Calls `f(id, vector)` for every live vector. Hold writes and maintenance for a
    /// consistent view.
    pub fn for_each_live_vector(&self, mut f: impl FnMut(u64, &[f32])) {
        let s = &*self.shared;
        let dim = s.params.dim;
        let vectors = self.slot_vectors(0..s.versions.slots());
        for (slot, (id, word, _)) in s.versions.cells().into_iter().enumerate() {
            if word & (super::versions::TOMBSTONE | super::versions::WRITING) == 0 {
                f(id, &vectors[slot * dim..][..dim]);
            }
        }
    }

    /// Cuts the shard for a checkpoint: waits for a running maintenance job and holds new
    /// ones until the cut drops, then copies the version map (24 bytes a slot) and the member
    /// count of every posting. Writes must be held while it runs, and may go on as soon as it
    /// returns: with maintenance held, postings only grow at their ends, so the members below
    /// each count, judged against the copied words, are the shard as it was at the cut.
    pub fn cut(&self) -> ShardCut {
        let s = &*self.shared;
        s.jobs.hold();
        let cells = s.versions.cells();
        let postings = s
            .heads
            .all()
            .into_iter()
            .map(|p| {
                let n = p.members.read().len();
                (p, n)
            })
            .collect();
        ShardCut { shared: self.shared.clone(), cells, postings }
    }

    /// Rebuilds a shard from the payloads [`ShardCut::save`] wrote, taking each live id's
    /// vector from `vectors_of`; any inconsistency is an error naming what is wrong, never a
    /// panic.
    pub fn restore<'r, 'v>(
        params: IndexParams,
        records: impl IntoIterator<Item = &'r [u8]>,
        vectors_of: &dyn Fn(u64) -> Option<&'v [f32]>,
    ) -> Result<Index, String> {
        let index = Index::new(params).map_err(|e| e.to_string())?;
        let s = &*index.shared;
        let dim = s.params.dim;
        let mut records = records.into_iter();
        let bad = |what: &str| format!("checkpoint shard: {what}");
        let mut r = Reader::new(records.next().ok_or_else(|| bad("no summary"))?);
        if r.u8() != Some(SUMMARY) || r.u32() != Some(dim as u32) {
            return Err(bad("summary missing or of another dimension"));
        }
        let slots = r.u64().ok_or_else(|| bad("summary"))? as usize;
        let n_postings = r.u64().ok_or_else(|| bad("summary"))? as usize;
        let mut vectors: Option<Vec<f32>> = None;
        // Each slot's id, if live.
        let mut slot_ids: Vec<Option<u64>> = Vec::new();
        let mut old_to_new: FxHashMap<u32, u32> = FxHashMap::default();
        for payload in records {
            let mut r = Reader::new(payload);
            match r.u8() {
                Some(VERSIONS) if vectors.is_none() => {
                    let n = r.u32().ok_or_else(|| bad("versions"))? as usize;
                    for _ in 0..n {
                        let (id, word, home) = (r.u64(), r.u32(), r.u32());
                        let (Some(id), Some(word), Some(home)) = (id, word, home) else {
                            return Err(bad("versions record cut short"));
                        };
                        if slot_ids.len() == slots || !s.versions.restore(id, word, home) {
                            return Err(bad(&format!("id {id} appears twice, or too many slots")));
                        }
                        slot_ids.push((word & (TOMBSTONE | WRITING) == 0).then_some(id));
                    }
                }
                Some(POSTING) => {
                    if vectors.is_none() {
                        if slot_ids.len() != slots {
                            return Err(bad("posting before every slot"));
                        }
                        vectors = Some(gather(&slot_ids, dim, vectors_of).map_err(|e| bad(&e))?);
                    }
                    let vectors = vectors.as_deref().unwrap_or_default();
                    let old = r.u32().ok_or_else(|| bad("posting"))?;
                    let centroid = r.f32s(dim).ok_or_else(|| bad("posting centroid"))?;
                    let n = r.u32().ok_or_else(|| bad("posting"))? as usize;
                    // Eight bytes a member must follow, so a damaged count cannot allocate.
                    if n.saturating_mul(8) > r.remaining() {
                        return Err(bad("posting member count exceeds the record"));
                    }
                    let mut members = Members::with_capacity(s.params.encoding, n, dim);
                    for _ in 0..n {
                        let (Some(slot), Some(word)) = (r.u32(), r.u32()) else {
                            return Err(bad("posting members cut short"));
                        };
                        let v = vectors
                            .get(slot as usize * dim..(slot as usize + 1) * dim)
                            .ok_or_else(|| bad("member slot out of range"))?;
                        members.push(Slot(slot), word, v, &centroid);
                    }
                    let p = s.heads.insert(centroid, members);
                    old_to_new.insert(old, p.id.0);
                }
                _ => return Err(bad("unknown or misplaced record")),
            }
        }
        if slot_ids.len() != slots {
            return Err(bad("slots missing"));
        }
        let vectors = match vectors {
            Some(v) => v,
            None => gather(&slot_ids, dim, vectors_of).map_err(|e| bad(&e))?,
        };
        if old_to_new.len() != n_postings {
            return Err(bad("postings missing"));
        }
        for slot in 0..slots as u32 {
            s.versions.remap_home(Slot(slot), |h| *old_to_new.get(&h).unwrap_or(&NO_HOME));
        }
        if let Some(store) = &s.store {
            store.adopt(vectors);
        }
        // A restored shard measures its recall again (curves are not saved).
        super::calibrate::request(&index.shared);
        Ok(index)
    }
}

/// The vector of every slot from `of` (zeros for a deleted slot); an error if a live id has
/// none.
fn gather<'a>(
    slot_ids: &[Option<u64>],
    dim: usize,
    of: &dyn Fn(u64) -> Option<&'a [f32]>,
) -> Result<Vec<f32>, String> {
    let mut out = Vec::with_capacity(slot_ids.len() * dim);
    for id in slot_ids {
        match id {
            Some(id) => {
                let v = of(*id).ok_or_else(|| format!("no vector for live id {id}"))?;
                out.extend_from_slice(v);
            }
            None => out.resize(out.len() + dim, 0.0),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::Metric;
    use crate::index::Encoding;
    use crate::rng::Rng;

    /// A cut shard restores to its contents at the cut (writes after it excluded), and no
    /// mutation or cut of its records makes restoring panic.
    #[test]
    fn restore_round_trips_and_never_panics_on_damaged_records() {
        let seed = 0x5a7e;
        println!("seed {seed:#x}");
        let mut rng = Rng::new(seed);
        for encoding in [Encoding::Int8, Encoding::F32] {
            let params = IndexParams { encoding, ..IndexParams::new(6, Metric::L2) };
            let index = Index::new(params.clone()).unwrap();
            let data: Vec<f32> = (0..600 * 6).map(|_| rng.normal()).collect();
            index.bulk_load(&(0..600).collect::<Vec<u64>>(), data.clone()).unwrap();
            index.delete(&[3, 5, 7]);
            index.upsert(&[1000], &[1.0; 6]).unwrap();
            index.wait_idle();
            let index_vector_before_delete = data[6..12].to_vec();
            let contents = |i: &Index| {
                let mut all = Vec::new();
                i.for_each_live_vector(|id, v| all.push((id, v.to_vec())));
                all
            };
            let cut = index.cut();
            // Writes after the cut are not in what it saves.
            index.upsert(&[1001], &[2.0; 6]).unwrap();
            index.delete(&[1]);
            let mut records: Vec<Vec<u8>> = Vec::new();
            cut.save(&mut |p| {
                records.push(p.to_vec());
                Ok(())
            })
            .unwrap();
            drop(cut);
            let mut at_cut: FxHashMap<u64, Vec<f32>> = contents(&index).into_iter().collect();
            at_cut.remove(&1001);
            at_cut.insert(1, index_vector_before_delete.clone());
            let of = |id: u64| at_cut.get(&id).map(Vec::as_slice);
            let back = Index::restore(params.clone(), records.iter().map(|r| &r[..]), &of).unwrap();
            let mut want: Vec<(u64, Vec<f32>)> = at_cut.clone().into_iter().collect();
            want.sort_by_key(|e| e.0);
            let mut got = contents(&back);
            got.sort_by_key(|e| e.0);
            assert_eq!(got, want);
            let missing = |id: u64| at_cut.get(&id).filter(|_| id != 1000).map(Vec::as_slice);
            let err = Index::restore(params.clone(), records.iter().map(|r| &r[..]), &missing);
            assert!(err.unwrap_err().contains("no vector for live id 1000"));
            for _ in 0..300 {
                let mut damaged = records.clone();
                let r = rng.below(damaged.len());
                let rec = &mut damaged[r];
                match rng.below(3) {
                    0 if !rec.is_empty() => {
                        let i = rng.below(rec.len());
                        rec[i] = rng.below(256) as u8;
                    }
                    1 => rec.truncate(rng.below(rec.len() + 1)),
                    _ => {
                        damaged.remove(r);
                    }
                }
                let _ = Index::restore(params.clone(), damaged.iter().map(|r| &r[..]), &of);
            }
        }
    }
}
