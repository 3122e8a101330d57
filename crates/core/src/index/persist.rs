//! Saving one shard for a checkpoint and restoring it without rebuilding: the version map, the
//! current vector of every slot (unless the caller keeps the vectors elsewhere, as a
//! checkpoint does in its vector files), and every posting's centroid and live members. Codes
//! are not saved: restoring encodes each member against its centroid again, which is
//! deterministic and far cheaper than clustering. Byte layout in `docs/file-formats.md`
//! (checkpoint shard file, snapshot file).

use super::posting::Members;
use super::versions::{Slot, NO_HOME, TOMBSTONE, WRITING};
use super::{Index, IndexParams};
use crate::storage::frame::Reader;
use rustc_hash::FxHashMap;
use std::io;

const SUMMARY: u8 = 1;
const VERSIONS: u8 = 2;
const VECTORS: u8 = 3;
const POSTING: u8 = 4;
/// Slots per versions or vectors record.
const CHUNK: usize = 16_384;

/// While alive, no maintenance job starts on the index and none is running.
#[derive(Debug)]
pub struct MaintenanceHold<'a>(&'a Index);

impl Drop for MaintenanceHold<'_> {
    fn drop(&mut self) {
        self.0.shared.jobs.release();
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

    /// Writes the shard as record payloads through `put`, with the vectors or without them (a
    /// restore then takes them from elsewhere). Writes and maintenance must be held for the
    /// duration.
    pub fn save(
        &self,
        with_vectors: bool,
        put: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let s = &*self.shared;
        let dim = s.params.dim;
        let cells = s.versions.cells();
        let postings = s.heads.all();
        let mut rec = vec![SUMMARY];
        rec.extend_from_slice(&(dim as u32).to_le_bytes());
        rec.extend_from_slice(&(cells.len() as u64).to_le_bytes());
        rec.extend_from_slice(&(postings.len() as u64).to_le_bytes());
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
        // With a store, one chunk of vectors at a time; f32 postings are gathered once.
        let slots = if with_vectors { cells.len() } else { 0 };
        let gathered = s.store.is_none().then(|| self.slot_vectors(0..slots));
        for first in (0..slots).step_by(CHUNK) {
            let range = first..(first + CHUNK).min(slots);
            let chunk = match &gathered {
                Some(all) => all[range.start * dim..range.end * dim].to_vec(),
                None => self.slot_vectors(range.clone()),
            };
            rec.clear();
            rec.push(VECTORS);
            rec.extend_from_slice(&(first as u64).to_le_bytes());
            rec.extend_from_slice(&(range.len() as u32).to_le_bytes());
            for x in &chunk {
                rec.extend_from_slice(&x.to_le_bytes());
            }
            put(&rec)?;
        }
        drop(gathered);
        let view = s.versions.view();
        for p in &postings {
            let m = p.members.read();
            rec.clear();
            rec.push(POSTING);
            rec.extend_from_slice(&p.id.0.to_le_bytes());
            for x in p.centroid.iter() {
                rec.extend_from_slice(&x.to_le_bytes());
            }
            let live: Vec<usize> =
                (0..m.len()).filter(|&i| view.is_live(m.slots[i], m.words[i])).collect();
            rec.extend_from_slice(&(live.len() as u32).to_le_bytes());
            for i in live {
                rec.extend_from_slice(&m.slots[i].0.to_le_bytes());
                rec.extend_from_slice(&m.words[i].to_le_bytes());
            }
            put(&rec)?;
        }
        Ok(())
    }

    /// Rebuilds a shard from the payloads [`Index::save`] wrote; any inconsistency is an
    /// error naming what is wrong, never a panic. Records saved without vectors take each live
    /// id's vector from `vectors`.
    pub fn restore<'r, 'v>(
        params: IndexParams,
        records: impl IntoIterator<Item = &'r [u8]>,
        vectors_of: Option<&dyn Fn(u64) -> Option<&'v [f32]>>,
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
        // Vectors are reserved as their records arrive: a damaged slot count cannot allocate.
        let mut vectors: Vec<f32> = Vec::new();
        let mut restored_slots = 0usize;
        // With vectors kept elsewhere: each slot's id, if live.
        let mut slot_ids: Vec<Option<u64>> = Vec::new();
        let mut old_to_new: FxHashMap<u32, u32> = FxHashMap::default();
        for payload in records {
            let mut r = Reader::new(payload);
            match r.u8() {
                Some(VERSIONS) => {
                    let n = r.u32().ok_or_else(|| bad("versions"))? as usize;
                    for _ in 0..n {
                        let (id, word, home) = (r.u64(), r.u32(), r.u32());
                        let (Some(id), Some(word), Some(home)) = (id, word, home) else {
                            return Err(bad("versions record cut short"));
                        };
                        if !s.versions.restore(id, word, home) {
                            return Err(bad(&format!("id {id} appears twice")));
                        }
                        if vectors_of.is_some() {
                            slot_ids.push((word & (TOMBSTONE | WRITING) == 0).then_some(id));
                        }
                        restored_slots += 1;
                    }
                }
                Some(VECTORS) if vectors_of.is_none() => {
                    let first = r.u64().ok_or_else(|| bad("vectors"))? as usize;
                    let n = r.u32().ok_or_else(|| bad("vectors"))? as usize;
                    if first * dim != vectors.len() || first + n > slots {
                        return Err(bad("vectors out of order"));
                    }
                    vectors.extend(r.f32s(n * dim).ok_or_else(|| bad("vectors cut short"))?);
                }
                Some(POSTING) => {
                    if let Some(of) = vectors_of.filter(|_| vectors.is_empty() && slots > 0) {
                        vectors = gather(&slot_ids, dim, of).map_err(|e| bad(&e))?;
                    }
                    if vectors.len() != slots * dim || restored_slots != slots {
                        return Err(bad("posting before every slot and vector"));
                    }
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
                _ => return Err(bad("unknown record")),
            }
        }
        if let Some(of) = vectors_of.filter(|_| vectors.is_empty() && slots > 0) {
            vectors = gather(&slot_ids, dim, of).map_err(|e| bad(&e))?;
        }
        if restored_slots != slots || vectors.len() != slots * dim {
            return Err(bad("slots or vectors missing"));
        }
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

    /// A saved shard restores to the same contents, and no mutation or cut of its records
    /// makes restoring panic.
    #[test]
    fn restore_round_trips_and_never_panics_on_damaged_records() {
        let seed = 0x5a7e;
        println!("seed {seed:#x}");
        let mut rng = Rng::new(seed);
        for encoding in [Encoding::Int8, Encoding::F32] {
            let params = IndexParams { encoding, ..IndexParams::new(6, Metric::L2) };
            let index = Index::new(params.clone()).unwrap();
            let data: Vec<f32> = (0..600 * 6).map(|_| rng.normal()).collect();
            index.bulk_load(&(0..600).collect::<Vec<u64>>(), data).unwrap();
            index.delete(&[3, 5, 7]);
            index.upsert(&[1000], &[1.0; 6]).unwrap();
            index.wait_idle();
            let mut records: Vec<Vec<u8>> = Vec::new();
            index
                .save(true, &mut |p| {
                    records.push(p.to_vec());
                    Ok(())
                })
                .unwrap();
            let contents = |i: &Index| {
                let mut all = Vec::new();
                i.for_each_live_vector(|id, v| all.push((id, v.to_vec())));
                all
            };
            let back =
                Index::restore(params.clone(), records.iter().map(|r| &r[..]), None).unwrap();
            assert_eq!(contents(&back), contents(&index));
            assert_eq!(back.len(), index.len());
            // Saved without vectors, restored with them from elsewhere.
            let mut bare: Vec<Vec<u8>> = Vec::new();
            index
                .save(false, &mut |p| {
                    bare.push(p.to_vec());
                    Ok(())
                })
                .unwrap();
            let kept: FxHashMap<u64, Vec<f32>> = contents(&index).into_iter().collect();
            let of = |id: u64| kept.get(&id).map(Vec::as_slice);
            let back = Index::restore(params.clone(), bare.iter().map(|r| &r[..]), Some(&of));
            assert_eq!(contents(&back.unwrap()), contents(&index));
            let missing = |id: u64| kept.get(&id).filter(|_| id != 1000).map(Vec::as_slice);
            let err = Index::restore(params.clone(), bare.iter().map(|r| &r[..]), Some(&missing));
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
                let _ = Index::restore(params.clone(), damaged.iter().map(|r| &r[..]), None);
            }
        }
    }
}
