//! The vector block store: one shard's vectors in an append-only file read through a memory
//! mapping, with a sidecar offset index so that opening it does not read every vector.
//!
//! A store is a directory of *generations*. Generation `g` is two files:
//! - `gen-{g:06}.vec`: framed records `id: u64 | index: u64 | flags: u32 | dim x f32 |
//!   payload` (vector and payload absent from a tombstone). The low byte of `flags` is the
//!   kind (live, tombstone), the bits above it the payload's length in bytes (at most
//!   [`MAX_RECORD_PAYLOAD`]); the payload is zero-padded to a multiple of 4. Records are
//!   multiples of 4 bytes after a 16-byte header, so every vector starts 4-byte aligned and is
//!   read in place from the mapping.
//! - `gen-{g:06}.idx`: one framed record per vector record, `id | flags | offset | crc`,
//!   where `crc` is the vector record's own checksum.
//!
//! Appends go to both files and are not fsynced: the write-ahead log (the journal, or the Raft
//! log) is what makes a write durable. A checkpoint takes a [`StoreCut`] (the current
//! [`Mark`], generation and length, and handles to fsync up to it later without holding
//! appends) and records the mark; opening at a mark truncates whatever followed it, since the
//! log replays it. On a real file system, every 4 MiB appended are fsynced ahead on a
//! background thread, so a checkpoint's own fsync has little left to write and takes little
//! disk time from the log's fsyncs; a failed background fsync poisons the store.
//!
//! Opening replays the sidecar, checking each entry against the header of the record it names
//! without reading the vector; the first entry that fails its checksum or names the wrong
//! record stops trust there, and the vector file is scanned (every checksum) from the last
//! trusted offset. Damage in that scan followed by a valid record is corruption, reported
//! with the file and byte offset.
//!
//! Under churn a file fills with superseded versions and tombstones. [`VectorStore::compact`]
//! copies the live records, as they are in the mapping, into the next generation while writes
//! go on, then, holding writes for a moment, copies the records appended meanwhile, fsyncs the
//! new files and switches to them. The old generation stays until no checkpoint names it
//! ([`VectorStore::remove_below`]).

use super::frame::{self, Reader, HEADER_LEN, RECORD_HEADER_LEN};
use super::fs::{AppendFile, Fs};
use super::mmap::Mapped;
use crate::distance::{kernels, Metric};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const LIVE: u32 = 0;
const TOMBSTONE: u32 = 1;
/// The most payload bytes one record carries.
pub const MAX_RECORD_PAYLOAD: usize = 64 << 10;
/// A live map value: the record's offset in the low 48 bits, its padded payload length in
/// 4-byte words above.
const OFFSET_BITS: u32 = 48;
/// id, index, flags.
const FIXED: usize = 20;
/// Bytes of one sidecar entry's payload: id, flags, offset, crc.
const ENTRY: usize = 24;
/// Copy buffers are written out past this size.
const FLUSH: usize = 8 << 20;
/// Past this many unsynced bytes, the files are fsynced on the background flusher, so the
/// fsync a checkpoint waits for (and the disk time it takes from the log's fsyncs) stays
/// small.
const SYNC_AHEAD: u64 = 4 << 20;

/// A position in a store that a checkpoint can name: everything before it is durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub generation: u64,
    pub len: u64,
}

/// How to open a store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenAt {
    /// A new, empty generation; every older file is removed (no checkpoint names any).
    Fresh,
    /// The generation and length a checkpoint recorded: later generations and later bytes are
    /// removed (the log replays them); damage before the mark is corruption.
    Mark(Mark),
    /// The newest generation with every valid record; a torn tail is truncated.
    Newest,
}

#[derive(Debug, thiserror::Error)]
pub enum VectorStoreError {
    #[error("vector store i/o on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    #[error("{0}")]
    Corrupt(String),
}

type Result<T> = std::result::Result<T, VectorStoreError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> VectorStoreError + '_ {
    move |source| VectorStoreError::Io { path: path.display().to_string(), source }
}

/// What one compaction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compaction {
    pub from: Mark,
    pub to: Mark,
    /// Records copied while writes went on, and then while they were held.
    pub copied: u64,
    pub caught_up: u64,
}

#[derive(Debug)]
struct State {
    generation: u64,
    vec: Box<dyn AppendFile>,
    idx: Box<dyn AppendFile>,
    len: u64,
    /// The sidecar's length.
    idx_len: u64,
    /// Live ids and the location of their newest record (see [`loc`]).
    live: FxHashMap<u64, u64>,
    /// Padded payload bytes of the live records.
    live_payload: u64,
    /// A view of the current vector file; mapped again when a read reaches past it.
    map: Arc<Mapped>,
    /// Set by a failed append: the files no longer follow the log, so they refuse appends and
    /// checkpoints until reopened (which truncates to the last mark and replays).
    poisoned: Option<String>,
    /// What the background flusher made durable of the current generation, and whether it is
    /// at it now; a failed background fsync poisons the store like a failed append.
    synced: Arc<Synced>,
}

#[derive(Debug, Default)]
struct Synced {
    len: std::sync::atomic::AtomicU64,
    busy: std::sync::atomic::AtomicBool,
    failed: Mutex<Option<String>>,
}

/// A point in a store's files, taken by [`VectorStore::cut`].
#[derive(Debug)]
pub struct StoreCut {
    pub mark: Mark,
    vec: Box<dyn AppendFile>,
    idx: Box<dyn AppendFile>,
    synced: Arc<Synced>,
}

impl StoreCut {
    /// Fsyncs the files of the cut's generation, so everything before its mark is durable
    /// (and fails if a background fsync of them failed: its error is reported once).
    pub fn sync(mut self) -> io::Result<Mark> {
        self.synced.check()?;
        self.vec.sync()?;
        self.idx.sync()?;
        self.synced.len.fetch_max(self.mark.len, std::sync::atomic::Ordering::Relaxed);
        Ok(self.mark)
    }
}

impl Synced {
    fn check(&self) -> io::Result<()> {
        match &*self.failed.lock() {
            Some(why) => Err(io::Error::other(why.clone())),
            None => Ok(()),
        }
    }
}

/// The process-wide thread that fsyncs vector files ahead of checkpoints.
fn flusher() -> &'static std::sync::mpsc::Sender<StoreCut> {
    static FLUSHER: std::sync::OnceLock<std::sync::mpsc::Sender<StoreCut>> =
        std::sync::OnceLock::new();
    FLUSHER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<StoreCut>();
        std::thread::Builder::new()
            .name("vector-flush".into())
            .spawn(move || {
                for cut in rx {
                    let synced = cut.synced.clone();
                    if let Err(e) = cut.sync() {
                        *synced.failed.lock() =
                            Some(format!("a background fsync of the vector files failed: {e}"));
                    }
                    synced.busy.store(false, std::sync::atomic::Ordering::Release);
                }
            })
            .expect("spawning the vector file flusher");
        tx
    })
}

/// One shard's vector files (see the module docs).
#[derive(Debug)]
pub struct VectorStore {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    dim: usize,
    state: Mutex<State>,
    /// One compaction at a time.
    compacting: Mutex<()>,
}

fn vec_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("gen-{generation:06}.vec"))
}

fn idx_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("gen-{generation:06}.idx"))
}

/// The generations that have files in `dir`.
fn generations(fs: &dyn Fs, dir: &Path) -> Result<Vec<u64>> {
    let mut gens: Vec<u64> = fs
        .list(dir)
        .map_err(io_err(dir))?
        .iter()
        .filter_map(|n| n.strip_prefix("gen-")?.split('.').next()?.parse().ok())
        .collect();
    gens.sort_unstable();
    gens.dedup();
    Ok(gens)
}

fn kind(flags: u32) -> u32 {
    flags & 0xff
}

fn payload_len(flags: u32) -> usize {
    (flags >> 8) as usize
}

/// A record's payload length, padded to a multiple of 4.
fn padded(len: usize) -> usize {
    len.next_multiple_of(4)
}

fn record_len(dim: usize, flags: u32) -> usize {
    let body = if kind(flags) == LIVE { 4 * dim + padded(payload_len(flags)) } else { 0 };
    RECORD_HEADER_LEN + FIXED + body
}

/// Whether `flags` are a known kind with a payload only where one may be.
fn valid_flags(flags: u32) -> bool {
    match kind(flags) {
        LIVE => payload_len(flags) <= MAX_RECORD_PAYLOAD,
        TOMBSTONE => payload_len(flags) == 0,
        _ => false,
    }
}

/// The live map value of a record at `offset` with `flags`.
fn loc(offset: u64, flags: u32) -> u64 {
    offset | ((padded(payload_len(flags)) as u64 / 4) << OFFSET_BITS)
}

fn loc_offset(loc: u64) -> u64 {
    loc & ((1 << OFFSET_BITS) - 1)
}

fn loc_payload_bytes(loc: u64) -> u64 {
    (loc >> OFFSET_BITS) * 4
}

/// The CRC in the header of the record at `at`, which [`frame::record_at`] has verified.
fn header_crc(bytes: &[u8], at: usize) -> u32 {
    let h = &bytes[at + 4..at + RECORD_HEADER_LEN];
    u32::from_le_bytes([h[0], h[1], h[2], h[3]])
}

/// One decoded vector record: its id and flags.
struct Record {
    id: u64,
    flags: u32,
}

fn decode_record(payload: &[u8], dim: usize) -> Option<Record> {
    let mut r = Reader::new(payload);
    let (id, _index, flags) = (r.u64()?, r.u64()?, r.u32()?);
    if !valid_flags(flags) {
        return None;
    }
    let want = record_len(dim, flags) - RECORD_HEADER_LEN - FIXED;
    (r.remaining() == want).then_some(Record { id, flags })
}

fn entry(id: u64, flags: u32, offset: u64, crc: u32, out: &mut Vec<u8>) {
    let mut p = [0u8; ENTRY];
    p[..8].copy_from_slice(&id.to_le_bytes());
    p[8..12].copy_from_slice(&flags.to_le_bytes());
    p[12..20].copy_from_slice(&offset.to_le_bytes());
    p[20..].copy_from_slice(&crc.to_le_bytes());
    frame::record(&p, out);
}

/// Applies a record to a live map; returns the change in live payload bytes.
fn apply(live: &mut FxHashMap<u64, u64>, id: u64, flags: u32, offset: u64) -> i64 {
    let old = match kind(flags) {
        LIVE => {
            let new = loc(offset, flags);
            let old = live.insert(id, new);
            return loc_payload_bytes(new) as i64 - old.map_or(0, |o| loc_payload_bytes(o) as i64);
        }
        _ => live.remove(&id),
    };
    -old.map_or(0, |o| loc_payload_bytes(o) as i64)
}

/// The padded payload bytes of a live map.
fn payload_bytes(live: &FxHashMap<u64, u64>) -> u64 {
    live.values().map(|&l| loc_payload_bytes(l)).sum()
}

/// Creates empty files for `generation` (headers only), fsynced.
fn create_generation(fs: &dyn Fs, dir: &Path, generation: u64) -> Result<()> {
    for (path, kind) in [
        (vec_path(dir, generation), frame::VECTORS),
        (idx_path(dir, generation), frame::VECTOR_INDEX),
    ] {
        if fs.exists(&path) {
            fs.remove_file(&path).map_err(io_err(&path))?;
        }
        let mut f = fs.open_append(&path).map_err(io_err(&path))?;
        f.append(&frame::header(kind)).and_then(|_| f.sync()).map_err(io_err(&path))?;
    }
    Ok(())
}

impl VectorStore {
    /// Opens (creating `dir` if needed) the store of `dim`-wide vectors in `dir`.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path, dim: usize, at: OpenAt) -> Result<VectorStore> {
        if !fs.exists(dir) {
            fs.create_dir_all(dir).map_err(io_err(dir))?;
            let parent = dir.parent().unwrap_or(Path::new(""));
            fs.sync_dir(parent).map_err(io_err(parent))?;
        }
        let gens = generations(&*fs, dir)?;
        let newest = gens.last().copied();
        let generation = match at {
            OpenAt::Fresh => newest.map_or(0, |g| g + 1),
            OpenAt::Mark(m) => m.generation,
            OpenAt::Newest => newest.unwrap_or(0),
        };
        let stale = |g: u64| match at {
            OpenAt::Fresh => true,
            _ => g > generation,
        };
        for g in gens.iter().copied().filter(|&g| stale(g)) {
            for p in [vec_path(dir, g), idx_path(dir, g)] {
                if fs.exists(&p) {
                    fs.remove_file(&p).map_err(io_err(&p))?;
                }
            }
        }
        let vpath = vec_path(dir, generation);
        if at == OpenAt::Fresh || (at == OpenAt::Newest && newest.is_none()) {
            create_generation(&*fs, dir, generation)?;
        } else if !fs.exists(&vpath) {
            let why = match at {
                OpenAt::Mark(_) => "a checkpoint names it",
                _ => "its sidecar is there",
            };
            return Err(VectorStoreError::Corrupt(format!(
                "{}: missing, but {why}",
                vpath.display()
            )));
        }
        fs.sync_dir(dir).map_err(io_err(dir))?;
        if let OpenAt::Mark(m) = at {
            let len = fs.map(&vpath).map_err(io_err(&vpath))?.len() as u64;
            if len < m.len {
                return Err(VectorStoreError::Corrupt(format!(
                    "{}: {len} bytes, shorter than the {} a checkpoint recorded",
                    vpath.display(),
                    m.len
                )));
            }
            if len > m.len {
                fs.truncate(&vpath, m.len).map_err(io_err(&vpath))?;
            }
        }
        let (live, len, idx_len) = recover(&*fs, dir, generation, dim, at)?;
        let live_payload = payload_bytes(&live);
        let map = Arc::new(fs.map(&vpath).map_err(io_err(&vpath))?);
        let vec = fs.open_append(&vpath).map_err(io_err(&vpath))?;
        let ipath = idx_path(dir, generation);
        let idx = fs.open_append(&ipath).map_err(io_err(&ipath))?;
        Ok(VectorStore {
            fs,
            dir: dir.to_path_buf(),
            dim,
            state: Mutex::new(State {
                generation,
                vec,
                idx,
                len,
                idx_len,
                live,
                live_payload,
                map,
                poisoned: None,
                synced: Arc::new(Synced {
                    len: std::sync::atomic::AtomicU64::new(len),
                    ..Default::default()
                }),
            }),
            compacting: Mutex::new(()),
        })
    }

    /// Appends one record per id at log index `index`: the rows of `vectors` (row-major,
    /// `dim` wide; a repeated id's last row wins), or tombstones when `vectors` is `None`.
    pub fn append(&self, index: u64, ids: &[u64], vectors: Option<&[f32]>) -> io::Result<()> {
        self.append_with(index, ids, vectors, &[])
    }

    /// [`VectorStore::append`] with a payload per row (`payloads` empty, or one per id, each
    /// at most [`MAX_RECORD_PAYLOAD`] bytes; only with `vectors`).
    pub fn append_with(
        &self,
        index: u64,
        ids: &[u64],
        vectors: Option<&[f32]>,
        payloads: &[&[u8]],
    ) -> io::Result<()> {
        let dim = self.dim;
        if let Some(v) = vectors {
            assert_eq!(v.len(), ids.len() * dim, "one row per id");
        }
        assert!(payloads.is_empty() || (payloads.len() == ids.len() && vectors.is_some()));
        if let Some(p) = payloads.iter().find(|p| p.len() > MAX_RECORD_PAYLOAD) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a payload of {} bytes exceeds {MAX_RECORD_PAYLOAD}", p.len()),
            ));
        }
        let mut s = self.state.lock();
        let s = &mut *s;
        if let Some(why) = &s.poisoned {
            return Err(io::Error::other(why.clone()));
        }
        let kind = if vectors.is_some() { LIVE } else { TOMBSTONE };
        let flags_of = |row: usize| kind | payloads.get(row).map_or(0, |p| (p.len() as u32) << 8);
        // Written a few MiB at a time, so a bulk import does not buffer a second copy.
        let rows = (FLUSH / record_len(dim, kind)).max(1);
        let mut vbuf = Vec::with_capacity(rows.min(ids.len()) * record_len(dim, kind));
        let mut ibuf = Vec::with_capacity(rows.min(ids.len()) * (RECORD_HEADER_LEN + ENTRY));
        for (c, chunk) in ids.chunks(rows).enumerate() {
            vbuf.clear();
            ibuf.clear();
            let mut at = s.len;
            for (i, &id) in chunk.iter().enumerate() {
                let row = c * rows + i;
                let flags = flags_of(row);
                let rec = record_len(dim, flags);
                // The frame is written in place: header, payload, then the payload's CRC
                // into the header (computed once, for the record and its sidecar entry).
                let start = vbuf.len();
                vbuf.extend_from_slice(&((rec - RECORD_HEADER_LEN) as u32).to_le_bytes());
                vbuf.extend_from_slice(&[0; 4]);
                vbuf.extend_from_slice(&id.to_le_bytes());
                vbuf.extend_from_slice(&index.to_le_bytes());
                vbuf.extend_from_slice(&flags.to_le_bytes());
                if let Some(v) = vectors {
                    for x in &v[row * dim..(row + 1) * dim] {
                        vbuf.extend_from_slice(&x.to_le_bytes());
                    }
                }
                if let Some(p) = payloads.get(row) {
                    vbuf.extend_from_slice(p);
                    vbuf.resize(start + rec, 0);
                }
                let crc = crc32fast::hash(&vbuf[start + RECORD_HEADER_LEN..]);
                vbuf[start + 4..start + RECORD_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
                entry(id, flags, at, crc, &mut ibuf);
                let delta = apply(&mut s.live, id, flags, at);
                s.live_payload = s.live_payload.wrapping_add_signed(delta);
                at += rec as u64;
            }
            if let Err(e) = s.vec.append(&vbuf).and_then(|_| s.idx.append(&ibuf)) {
                s.poisoned = Some(format!("a vector file append failed earlier: {e}"));
                return Err(e);
            }
            s.len = at;
            s.idx_len += ibuf.len() as u64;
        }
        self.sync_ahead(s)
    }

    /// Hands the files to the background flusher once enough is unsynced (one fsync in
    /// flight per store).
    fn sync_ahead(&self, s: &mut State) -> io::Result<()> {
        use std::sync::atomic::Ordering;
        let synced = &s.synced;
        if !self.fs.syncs_in_background()
            || s.len.saturating_sub(synced.len.load(Ordering::Relaxed)) < SYNC_AHEAD
            || synced.busy.swap(true, Ordering::AcqRel)
        {
            return Ok(());
        }
        let cut = StoreCut {
            mark: Mark { generation: s.generation, len: s.len },
            vec: s.vec.syncer()?,
            idx: s.idx.syncer()?,
            synced: s.synced.clone(),
        };
        flusher().send(cut).map_err(|_| io::Error::other("the vector file flusher stopped"))
    }

    /// Fails when an append failed since the store was opened (it no longer follows the log).
    pub fn check(&self) -> io::Result<()> {
        let s = self.state.lock();
        match &s.poisoned {
            Some(why) => Err(io::Error::other(why.clone())),
            None => s.synced.check(),
        }
    }

    /// Fsyncs both files of the current generation; returns the mark a checkpoint records.
    pub fn sync(&self) -> io::Result<Mark> {
        let mut s = self.state.lock();
        if let Some(why) = &s.poisoned {
            return Err(io::Error::other(why.clone()));
        }
        s.vec.sync()?;
        s.idx.sync()?;
        Ok(Mark { generation: s.generation, len: s.len })
    }

    /// The mark of the current end (not yet durable) and handles that make it durable
    /// later, without holding appends: a checkpoint takes this while writes are held and
    /// fsyncs beside them ([`StoreCut::sync`]), even if a compaction switched generations
    /// meanwhile.
    pub fn cut(&self) -> io::Result<StoreCut> {
        let s = self.state.lock();
        if let Some(why) = &s.poisoned {
            return Err(io::Error::other(why.clone()));
        }
        s.synced.check()?;
        Ok(StoreCut {
            mark: Mark { generation: s.generation, len: s.len },
            vec: s.vec.syncer()?,
            idx: s.idx.syncer()?,
            synced: s.synced.clone(),
        })
    }

    /// The current generation and length (not necessarily durable).
    pub fn mark(&self) -> Mark {
        let s = self.state.lock();
        Mark { generation: s.generation, len: s.len }
    }

    /// Live ids.
    pub fn len(&self) -> usize {
        self.state.lock().live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes the live records take (what a compaction would leave, headers included).
    pub fn live_bytes(&self) -> u64 {
        let s = self.state.lock();
        self.live_bytes_of(s.live.len(), s.live_payload)
    }

    fn live_bytes_of(&self, n: usize, payload: u64) -> u64 {
        let per = record_len(self.dim, LIVE) + RECORD_HEADER_LEN + ENTRY;
        2 * HEADER_LEN as u64 + n as u64 * per as u64 + payload
    }

    /// The mapping, mapped again if it does not reach `len`.
    fn mapping(&self, s: &mut State) -> io::Result<Arc<Mapped>> {
        if (s.map.len() as u64) < s.len {
            s.map = Arc::new(self.fs.map(&vec_path(&self.dir, s.generation))?);
        }
        Ok(s.map.clone())
    }

    /// Calls `f` with a lookup of each live id's vector, read in place from the mapping.
    /// Appends wait until `f` returns.
    pub fn with_vectors<R>(
        &self,
        f: impl for<'a> FnOnce(&'a dyn Fn(u64) -> Option<&'a [f32]>) -> R,
    ) -> io::Result<R> {
        let mut s = self.state.lock();
        let map = self.mapping(&mut s)?;
        let dim = self.dim;
        let at = RECORD_HEADER_LEN + FIXED;
        let lookup = |id: u64| map.f32s(loc_offset(*s.live.get(&id)?) as usize + at, dim);
        Ok(f(&lookup))
    }

    /// Calls `f(id, write index, vector, payload)` for every live id, read in place from the
    /// mapping (in no particular order). Appends wait until it returns.
    pub fn for_each_live(&self, mut f: impl FnMut(u64, u64, &[f32], &[u8])) -> io::Result<()> {
        let mut s = self.state.lock();
        let map = self.mapping(&mut s)?;
        let at = RECORD_HEADER_LEN + FIXED;
        let bytes = map.bytes();
        let u64_at =
            |o: usize| bytes.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8")));
        let u32_at =
            |o: usize| bytes.get(o..o + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4")));
        for (&id, &l) in &s.live {
            let o = loc_offset(l) as usize;
            let index = u64_at(o + RECORD_HEADER_LEN + 8).unwrap_or(0);
            let flags = u32_at(o + RECORD_HEADER_LEN + 16).unwrap_or(0);
            let p = o + at + 4 * self.dim;
            if let (Some(v), Some(payload)) =
                (map.f32s(o + at, self.dim), bytes.get(p..p + payload_len(flags)))
            {
                f(id, index, v, payload);
            }
        }
        Ok(())
    }

    /// Checks the checksum of every record up to the current length (reads the whole file):
    /// the sidecar lets [`VectorStore::open`] skip this, so a caller about to read every
    /// vector anyway (a restore) verifies them first.
    pub fn verify(&self) -> Result<()> {
        let mut s = self.state.lock();
        let path = vec_path(&self.dir, s.generation);
        let map = self.mapping(&mut s).map_err(io_err(&path))?;
        check_records(&map, s.len, self.dim, &path)
    }

    /// Checks, changing nothing, that `dir` holds the generation `mark` names, at least
    /// `mark.len` bytes long, with every record before the mark whole: what opening at the
    /// mark will rely on. A checkpoint is loaded only once all its shards pass this.
    pub fn check_mark(fs: &dyn Fs, dir: &Path, dim: usize, mark: Mark) -> Result<()> {
        let path = vec_path(dir, mark.generation);
        let map = fs.map(&path).map_err(io_err(&path))?;
        let r = check_records(&map, mark.len, dim, &path);
        map.release(0, map.len());
        r
    }

    /// Drops this process's resident pages of the mapping (after a pass over every vector,
    /// such as a restore); the bytes stay in the page cache and are read back on demand.
    pub fn release_memory(&self) {
        let s = self.state.lock();
        s.map.release(0, s.map.len());
    }

    /// The current vector of `id`, if live.
    pub fn get(&self, id: u64) -> io::Result<Option<Vec<f32>>> {
        self.with_vectors(|v| v(id).map(<[f32]>::to_vec))
    }

    /// Distances under `metric` from `query` to the current vector of each id (`None` for an id
    /// that is not live), computed on the rows in place in the mapping: no row is copied.
    pub fn distances(
        &self,
        metric: Metric,
        query: &[f32],
        ids: &[u64],
    ) -> io::Result<Vec<Option<f32>>> {
        let kernel = kernels().pair(metric);
        self.with_vectors(|v| ids.iter().map(|&id| v(id).map(|row| kernel(query, row))).collect())
    }

    /// Whether the current generation's files are more than `factor` times what its live
    /// records need, and at least `min_bytes`, so that [`VectorStore::compact`] would pay.
    pub fn needs_compaction(&self, factor: f64, min_bytes: u64) -> bool {
        let s = self.state.lock();
        let files = s.len + s.idx_len;
        files >= min_bytes
            && files as f64 > factor * self.live_bytes_of(s.live.len(), s.live_payload) as f64
    }

    /// Rewrites the live records into the next generation and switches to it (see the module
    /// docs); appends go on meanwhile except for the final catch-up.
    pub fn compact(&self) -> io::Result<Compaction> {
        let _one = self.compacting.lock();
        let dim = self.dim;
        let (from, map, mut offsets) = {
            let mut s = self.state.lock();
            if let Some(why) = &s.poisoned {
                return Err(io::Error::other(why.clone()));
            }
            let map = self.mapping(&mut s)?;
            let offsets: Vec<u64> = s.live.values().map(|&l| loc_offset(l)).collect();
            (Mark { generation: s.generation, len: s.len }, map, offsets)
        };
        offsets.sort_unstable();
        let to_gen = from.generation + 1;
        let (vpath, ipath) = (vec_path(&self.dir, to_gen), idx_path(&self.dir, to_gen));
        let corrupt = |what: String| io::Error::new(io::ErrorKind::InvalidData, what);
        create_generation(&*self.fs, &self.dir, to_gen).map_err(|e| corrupt(e.to_string()))?;
        let mut vec = self.fs.open_append(&vpath)?;
        let mut idx = self.fs.open_append(&ipath)?;
        let mut live = FxHashMap::with_capacity_and_hasher(offsets.len(), Default::default());
        let mut copier = Copier {
            dim,
            at: HEADER_LEN as u64,
            idx_at: HEADER_LEN as u64,
            vbuf: Vec::new(),
            ibuf: Vec::new(),
        };
        let bytes = map.bytes();
        let mut released = 0;
        for &o in &offsets {
            if o as usize >= released + FLUSH {
                map.release(released, o as usize - released);
                released = o as usize;
            }
            let (id, flags) = copier.copy(bytes, o as usize).ok_or_else(|| {
                corrupt(format!(
                    "{}: no valid record at byte {o}",
                    vec_path(&self.dir, from.generation).display()
                ))
            })?;
            apply(&mut live, id, flags, copier.at - record_len(dim, flags) as u64);
            copier.flush(&mut *vec, &mut *idx, false)?;
        }
        let copied = offsets.len() as u64;
        drop(offsets);
        map.release(0, map.len());
        // The bulk is made durable before appends are held, so they wait only for the tail.
        copier.flush(&mut *vec, &mut *idx, true)?;
        vec.sync()?;
        idx.sync()?;
        // Catch up with what was appended since, holding appends.
        let mut s = self.state.lock();
        let map = self.mapping(&mut s)?;
        let bytes = map.bytes();
        let (mut o, mut caught_up) = (from.len as usize, 0u64);
        while o < s.len as usize {
            let (id, flags) = copier.copy(bytes, o).ok_or_else(|| {
                corrupt(format!(
                    "{}: no valid record at byte {o}",
                    vec_path(&self.dir, from.generation).display()
                ))
            })?;
            apply(&mut live, id, flags, copier.at - record_len(dim, flags) as u64);
            o += record_len(dim, flags);
            caught_up += 1;
            copier.flush(&mut *vec, &mut *idx, false)?;
        }
        copier.flush(&mut *vec, &mut *idx, true)?;
        map.release(0, map.len());
        vec.sync()?;
        idx.sync()?;
        self.fs.sync_dir(&self.dir)?;
        // Everything that can fail is done before the switch, so a failure leaves the store
        // whole on its old generation.
        let new_map = Arc::new(self.fs.map(&vpath)?);
        let to = Mark { generation: to_gen, len: copier.at };
        s.generation = to_gen;
        s.vec = vec;
        s.idx = idx;
        s.len = copier.at;
        s.idx_len = copier.idx_at;
        s.live_payload = payload_bytes(&live);
        s.live = live;
        s.map = new_map;
        s.synced = Arc::new(Synced {
            len: std::sync::atomic::AtomicU64::new(copier.at),
            ..Default::default()
        });
        Ok(Compaction { from, to, copied, caught_up })
    }

    /// Removes the files of generations older than `generation` (none of which a checkpoint
    /// still names).
    pub fn remove_below(&self, generation: u64) -> io::Result<()> {
        let current = self.state.lock().generation;
        let mut removed = false;
        for g in generations(&*self.fs, &self.dir).map_err(|e| io::Error::other(e.to_string()))? {
            if g < generation.min(current) {
                for p in [vec_path(&self.dir, g), idx_path(&self.dir, g)] {
                    if self.fs.exists(&p) {
                        self.fs.remove_file(&p)?;
                        removed = true;
                    }
                }
            }
        }
        if removed {
            self.fs.sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Checks the header and every record of the first `len` bytes of a mapped vector file.
fn check_records(map: &Mapped, len: u64, dim: usize, path: &Path) -> Result<()> {
    let bytes = map.bytes().get(..len as usize).ok_or_else(|| {
        VectorStoreError::Corrupt(format!(
            "{}: {} bytes, shorter than the {len} expected",
            path.display(),
            map.len()
        ))
    })?;
    if !frame::check_header(frame::VECTORS, path, bytes)? {
        return Err(VectorStoreError::Corrupt(format!("{}: torn header", path.display())));
    }
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        match frame::record_at(bytes, at).filter(|(p, _)| decode_record(p, dim).is_some()) {
            Some((_, next)) => at = next,
            None => {
                let file = path.display().to_string();
                return Err(frame::FrameError::Corrupt { file, offset: at as u64 }.into());
            }
        }
    }
    Ok(())
}

/// Copies whole vector records into a new generation's buffers, with their sidecar entries.
struct Copier {
    dim: usize,
    /// The offset in the new file of the next record, and the new sidecar's length.
    at: u64,
    idx_at: u64,
    vbuf: Vec<u8>,
    ibuf: Vec<u8>,
}

impl Copier {
    /// Copies the record at `o` of `bytes` verbatim (its checksum is verified on the way);
    /// returns its id and flags.
    fn copy(&mut self, bytes: &[u8], o: usize) -> Option<(u64, u32)> {
        let (payload, next) = frame::record_at(bytes, o)?;
        let rec = decode_record(payload, self.dim)?;
        self.vbuf.extend_from_slice(&bytes[o..next]);
        let before = self.ibuf.len();
        entry(rec.id, rec.flags, self.at, header_crc(bytes, o), &mut self.ibuf);
        self.idx_at += (self.ibuf.len() - before) as u64;
        self.at += (next - o) as u64;
        Some((rec.id, rec.flags))
    }

    fn flush(
        &mut self,
        vec: &mut dyn AppendFile,
        idx: &mut dyn AppendFile,
        all: bool,
    ) -> io::Result<()> {
        if all || self.vbuf.len() >= FLUSH {
            vec.append(&self.vbuf)?;
            idx.append(&self.ibuf)?;
            self.vbuf.clear();
            self.ibuf.clear();
        }
        Ok(())
    }
}

/// Rebuilds the live map of `generation`: trusted sidecar entries first, then a checked scan of
/// the vector file from where they stop; brings the sidecar up to date. Returns the live map
/// and the lengths of the vector file and the sidecar.
fn recover(
    fs: &dyn Fs,
    dir: &Path,
    generation: u64,
    dim: usize,
    open: OpenAt,
) -> Result<(FxHashMap<u64, u64>, u64, u64)> {
    let (vpath, ipath) = (vec_path(dir, generation), idx_path(dir, generation));
    let map = fs.map(&vpath).map_err(io_err(&vpath))?;
    let bytes = map.bytes();
    if !frame::check_header(frame::VECTORS, &vpath, bytes)? {
        return Err(VectorStoreError::Corrupt(format!("{}: torn header", vpath.display())));
    }
    let mut live = FxHashMap::default();
    // The sidecar: trusted up to its first bad entry.
    let side =
        if fs.exists(&ipath) { fs.read(&ipath).map_err(io_err(&ipath))? } else { Vec::new() };
    let side_ok = matches!(frame::check_header(frame::VECTOR_INDEX, &ipath, &side), Ok(true));
    let (mut at, mut side_at) = (HEADER_LEN, HEADER_LEN);
    while let Some((p, next)) = frame::record_at(&side, side_at).filter(|_| side_ok) {
        let mut r = Reader::new(p);
        let (Some(id), Some(flags), Some(offset), Some(crc)) = (r.u64(), r.u32(), r.u64(), r.u32())
        else {
            break;
        };
        if !valid_flags(flags) {
            break;
        }
        let len = record_len(dim, flags);
        // The entry must name the next record, whose header must agree with it.
        let head = bytes.get(at..at + RECORD_HEADER_LEN);
        let fits = at + len <= bytes.len();
        let agrees = head.is_some_and(|h| {
            h[..4] == ((len - RECORD_HEADER_LEN) as u32).to_le_bytes()
                && h[4..8] == crc.to_le_bytes()
        });
        if offset != at as u64 || !fits || !agrees || !r.is_empty() {
            break;
        }
        apply(&mut live, id, flags, offset);
        at += len;
        side_at = next;
    }
    // The vector file after the trusted entries: every record checked.
    let mut tail = Vec::new();
    let mut cut = None;
    while at < bytes.len() {
        match frame::record_at(bytes, at) {
            Some((payload, next)) => {
                let rec = decode_record(payload, dim).ok_or_else(|| {
                    VectorStoreError::Corrupt(format!(
                        "{}: the record at byte {at} is not a vector record",
                        vpath.display()
                    ))
                })?;
                entry(rec.id, rec.flags, at as u64, header_crc(bytes, at), &mut tail);
                apply(&mut live, rec.id, rec.flags, at as u64);
                at = next;
            }
            // Only an unsynced tail may be torn; below a checkpoint's mark every byte was
            // fsynced, so damage there is corruption too.
            None if open == OpenAt::Newest && frame::damage_runs_to_end(bytes, at) => {
                cut = Some(at);
                break;
            }
            None => {
                let file = vpath.display().to_string();
                return Err(frame::FrameError::Corrupt { file, offset: at as u64 }.into());
            }
        }
    }
    drop(map);
    if let Some(len) = cut {
        fs.truncate(&vpath, len as u64).map_err(io_err(&vpath))?;
    }
    // Bring the sidecar up to date: keep its trusted prefix, add the scanned records.
    if !side_ok {
        if fs.exists(&ipath) {
            fs.remove_file(&ipath).map_err(io_err(&ipath))?;
        }
        let mut f = fs.open_append(&ipath).map_err(io_err(&ipath))?;
        f.append(&frame::header(frame::VECTOR_INDEX)).map_err(io_err(&ipath))?;
    } else if side_at < side.len() {
        fs.truncate(&ipath, side_at as u64).map_err(io_err(&ipath))?;
    }
    if !tail.is_empty() || !side_ok {
        let mut f = fs.open_append(&ipath).map_err(io_err(&ipath))?;
        f.append(&tail).and_then(|_| f.sync()).map_err(io_err(&ipath))?;
        fs.sync_dir(dir).map_err(io_err(dir))?;
    }
    Ok((live, at as u64, (side_at + tail.len()) as u64))
}

#[cfg(test)]
#[path = "vectors_tests.rs"]
mod tests;
