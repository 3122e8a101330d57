//! The snapshot file: a point-in-time checkpoint of every collection, in one framed file, so
//! that it can be sent in chunks and checked as a whole before anything opens it.
//!
//! Records (each `len | crc32 | payload` after the `FVSNAP` header, see `docs/file-formats.md`),
//! each payload starting with a tag byte:
//! - `M`: the manifest (postcard): the openraft snapshot meta and every collection's name,
//!   spec and digest sum.
//! - `S`: collection `c: u32`, shard `s: u32`: the shard records that follow are that shard's.
//! - `R`: one record of the current shard, as the engine's checkpoint writes it.
//! - `D`: collection `c: u32`, then `(id: u64, record hash: u64)` pairs of its digest.
//! - `E`: the number of records before it (`u64`). A file without it is partial.
//!
//! A file is used only if every record's checksum verifies, the `E` record is last and counts
//! correctly, and the manifest decodes: a partial or corrupt snapshot is never opened.

use crate::command::CollectionSpec;
use crate::state::{Digest, Replica};
use crate::{NodeId, TypeConfig};
use freshvec_core::storage::frame::{self, Reader};
use freshvec_core::{Collection, Index};
use openraft::{BasicNode, SnapshotMeta};
use serde::{Deserialize, Serialize};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    meta: SnapshotMeta<NodeId, BasicNode>,
    collections: Vec<(String, CollectionSpec, u64)>,
}

/// Writes a snapshot of `collections` (writes and maintenance held by the caller) to `path`
/// and fsyncs it; returns its size in bytes.
pub fn write(
    path: &Path,
    meta: &SnapshotMeta<NodeId, BasicNode>,
    collections: &[Arc<Replica>],
) -> io::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut w = Writer {
        out: io::BufWriter::with_capacity(8 << 20, file),
        count: 0,
        len: frame::HEADER_LEN as u64,
        buf: Vec::new(),
    };
    w.out.write_all(&frame::header(frame::SNAPSHOT))?;
    let manifest = Manifest {
        meta: meta.clone(),
        collections: collections
            .iter()
            .map(|r| (r.name.clone(), r.spec.clone(), r.digest.lock().sum))
            .collect(),
    };
    let mut rec = vec![b'M'];
    rec.extend(postcard::to_stdvec(&manifest).map_err(io::Error::other)?);
    w.put(&rec)?;
    for (c, replica) in collections.iter().enumerate() {
        for (s, shard) in replica.coll.shards().iter().enumerate() {
            let mut rec = vec![b'S'];
            rec.extend_from_slice(&(c as u32).to_le_bytes());
            rec.extend_from_slice(&(s as u32).to_le_bytes());
            w.put(&rec)?;
            let mut rec = Vec::new();
            shard.save(true, &mut |payload| {
                rec.clear();
                rec.push(b'R');
                rec.extend_from_slice(payload);
                w.put(&rec)
            })?;
        }
        let digest = replica.digest.lock();
        let pairs: Vec<(u64, u64)> = digest.records.iter().map(|(&k, &v)| (k, v)).collect();
        for chunk in pairs.chunks(1 << 16) {
            let mut rec = vec![b'D'];
            rec.extend_from_slice(&(c as u32).to_le_bytes());
            for (id, h) in chunk {
                rec.extend_from_slice(&id.to_le_bytes());
                rec.extend_from_slice(&h.to_le_bytes());
            }
            w.put(&rec)?;
        }
    }
    let mut rec = vec![b'E'];
    rec.extend_from_slice(&w.count.to_le_bytes());
    w.put(&rec)?;
    let len = w.len;
    let out = w.out;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(len)
}

struct Writer {
    out: io::BufWriter<std::fs::File>,
    count: u64,
    len: u64,
    buf: Vec<u8>,
}

impl Writer {
    fn put(&mut self, payload: &[u8]) -> io::Result<()> {
        self.buf.clear();
        frame::record(payload, &mut self.buf);
        self.out.write_all(&self.buf)?;
        self.count += 1;
        self.len += self.buf.len() as u64;
        Ok(())
    }
}

/// A verified snapshot, restored.
#[derive(Debug)]
pub struct Restored {
    pub meta: SnapshotMeta<NodeId, BasicNode>,
    pub collections: Vec<Arc<Replica>>,
}

/// Reads only the meta of a snapshot file, after verifying the whole file.
pub fn read_meta(path: &Path) -> Result<SnapshotMeta<NodeId, BasicNode>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let records = verify(path, &bytes)?;
    Ok(manifest(path, records[0])?.meta)
}

/// Checks every record and the end marker; returns the payloads without the end marker.
fn verify<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<&'a [u8]>, String> {
    let scan = frame::scan(frame::SNAPSHOT, path, bytes).map_err(|e| e.to_string())?;
    let bad = |what: &str| format!("{}: {what}", path.display());
    if scan.torn {
        return Err(bad(&format!("partial: valid records end at byte {}", scan.valid_len)));
    }
    let mut records: Vec<&[u8]> = scan.records.iter().map(|r| r.1).collect();
    let end = records.pop().ok_or_else(|| bad("empty"))?;
    let mut r = Reader::new(end);
    if r.u8() != Some(b'E') || r.u64() != Some(records.len() as u64) {
        return Err(bad("partial: no end record"));
    }
    if records.first().and_then(|m| m.first()) != Some(&b'M') {
        return Err(bad("no manifest"));
    }
    Ok(records)
}

fn manifest(path: &Path, rec: &[u8]) -> Result<Manifest, String> {
    postcard::from_bytes(&rec[1..]).map_err(|e| format!("{}: manifest: {e}", path.display()))
}

/// Verifies and restores the snapshot in `path`.
pub fn read(path: &Path) -> Result<Restored, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let records = verify(path, &bytes)?;
    let m = manifest(path, records[0])?;
    let bad = |what: String| format!("{}: {what}", path.display());
    let n = m.collections.len();
    // Per collection: per shard, its records; and the digest pairs.
    let mut shards: Vec<Vec<Vec<&[u8]>>> = vec![Vec::new(); n];
    let mut digests: Vec<Digest> = (0..n).map(|_| Digest::default()).collect();
    let mut current: Option<(usize, usize)> = None;
    for rec in &records[1..] {
        let mut r = Reader::new(rec);
        match r.u8() {
            Some(b'S') => {
                let c = r.u32().ok_or_else(|| bad("short shard record".into()))? as usize;
                let s = r.u32().ok_or_else(|| bad("short shard record".into()))? as usize;
                if c >= n || s != shards[c].len() {
                    return Err(bad(format!("shard {s} of collection {c} out of order")));
                }
                shards[c].push(Vec::new());
                current = Some((c, s));
            }
            Some(b'R') => {
                let (c, s) = current.ok_or_else(|| bad("shard data before a shard".into()))?;
                shards[c][s].push(&rec[1..]);
            }
            Some(b'D') => {
                let c = r.u32().ok_or_else(|| bad("short digest record".into()))? as usize;
                if c >= n || (rec.len() - 5) % 16 != 0 {
                    return Err(bad("bad digest record".into()));
                }
                for pair in rec[5..].chunks_exact(16) {
                    let id = u64::from_le_bytes(pair[..8].try_into().expect("8 bytes"));
                    let h = u64::from_le_bytes(pair[8..].try_into().expect("8 bytes"));
                    digests[c].records.insert(id, h);
                }
            }
            _ => return Err(bad("unknown record".into())),
        }
    }
    let mut collections = Vec::with_capacity(n);
    for (((name, spec, sum), shard_records), mut digest) in
        m.collections.into_iter().zip(shards).zip(digests)
    {
        let params = spec.params().map_err(|e| bad(format!("collection {name}: {e}")))?;
        if shard_records.len() != spec.shards as usize {
            return Err(bad(format!("collection {name}: shards missing")));
        }
        let mut restored = Vec::with_capacity(shard_records.len());
        for (i, recs) in shard_records.into_iter().enumerate() {
            let mut p = params.clone();
            p.seed = params.seed.wrapping_add(i as u64);
            restored.push(
                Index::restore(p, recs, None)
                    .map_err(|e| bad(format!("collection {name}: {e}")))?,
            );
        }
        digest.sum = digest.records.values().fold(0u64, |a, &h| a.wrapping_add(h));
        if digest.sum != sum {
            return Err(bad(format!("collection {name}: digest records do not add up")));
        }
        let coll = Collection::from_shards(params.metric, params.dim, restored);
        collections.push(Arc::new(Replica::new(name, spec, coll, digest)));
    }
    Ok(Restored { meta: m.meta, collections })
}

/// openraft's view of a snapshot file.
pub type Snapshot = openraft::Snapshot<TypeConfig>;
