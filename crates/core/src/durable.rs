//! The embedded durable collection: a [`Collection`] whose every acknowledged write is in a
//! journal, restartable from its newest valid checkpoint plus the journal after it.
//!
//! - `apply(op)`: validate (a bad batch changes nothing and is not logged), wait for admission
//!   (so a logged batch always applies), write it to the journal and apply it under one lock
//!   (so the collection applies batches in log order), then wait for the fsync that covers it
//!   and return the log index. The fsync runs while the batch is applied and is shared with
//!   concurrent writers (group commit). A write is acknowledged only once durable, but searches
//!   may see it while its fsync is still running; if that fsync fails the journal is poisoned
//!   and a reopen returns to the durable state.
//! - Every applied write is also appended, unsynced, to its shard's vector files
//!   ([`VectorStore`]): the vectors live there, and a checkpoint names a point in them instead
//!   of copying them.
//! - `checkpoint()`: with applies and background maintenance held, the vector files are
//!   fsynced and their marks (generation, length) taken; each shard's version map and postings
//!   are written to a temporary directory, every file checksummed in a manifest (with the
//!   marks) written last, then the directory is fsynced and renamed into place and its parent
//!   fsynced. The two newest checkpoints are kept, and the journal is purged up to the older
//!   one, so a damaged newest checkpoint still leaves a way back; vector file generations older
//!   than both are removed.
//! - `compact(factor)`: rewrites the vector files of shards whose files exceed `factor` times
//!   their live data into a new generation, beside the writes (see [`VectorStore::compact`]).
//! - `open(dir)`: stray temporary directories are removed; the newest checkpoint whose manifest
//!   and files verify is restored (never rebuilt): its vector files are opened at its marks
//!   (what followed is dropped), every vector record is checked, and each shard is restored
//!   with its vectors read in place from the mapping; the journal after its index is replayed.
//!
//! In **replicated** mode (`create_replicated`/`open_replicated`) the collection keeps no
//! journal of its own: the replication log is the write-ahead log, and `apply_at(index, op)`
//! applies a write at the index that log gave it. `open_replicated` restores the newest valid
//! checkpoint only; the log replays what follows.
//!
//! Layout: `DIR/collection` (what the collection is), `DIR/journal/` (embedded mode),
//! `DIR/vectors/shard-NNN/gen-GGGGGG.{vec,idx}` and
//! `DIR/checkpoints/ckpt-{index:020}/{manifest,shard-NNN}` (see `docs/file-formats.md`).

use crate::collection::{validate_key_path, Collection};
use crate::distance::Metric;
use crate::index::{Encoding, Index, IndexParams, ShardCut};
use crate::payload::{self, FieldKind, Filter, Payload};
use crate::storage::frame::{self, Reader};
use crate::storage::fs::{write_atomic, FileLock, Fs};
use crate::storage::journal::{Journal, JournalError, JournalOptions};
use crate::storage::vectors::{Compaction, Mark, OpenAt, StoreCut, VectorStore, VectorStoreError};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One logged write.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Points replace the ids' points: rows of `vectors`, and a payload per row (`payloads`
    /// empty: every payload is empty).
    Upsert {
        ids: Vec<u64>,
        vectors: Vec<f32>,
        payloads: Vec<Payload>,
    },
    Delete {
        ids: Vec<u64>,
    },
    /// Deletes the points matching the filter when the write applies.
    DeleteMatching {
        filter: Filter,
    },
    /// Merges `payload` into each target point's payload (its keys replace theirs), or
    /// replaces the payload whole when `overwrite`.
    SetPayload {
        target: Target,
        payload: Payload,
        overwrite: bool,
    },
    /// Removes keys (top-level or dotted paths) from each target point's payload.
    DeletePayloadKeys {
        target: Target,
        keys: Vec<String>,
    },
    CreateFieldIndex {
        key: String,
        kind: FieldKind,
    },
    DropFieldIndex {
        key: String,
    },
}

/// The points a payload write changes: ids (each must be live when it applies), or the
/// points matching a filter when it applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Target {
    Ids(Vec<u64>),
    Filter(Filter),
}

const UPSERT: u8 = 1;
const DELETE: u8 = 2;
/// Writes past the first two: the tag, then the op in postcard.
const PAYLOAD_OP: u8 = 3;

/// The ops past plain upserts and deletes, as the journal stores them.
#[derive(Serialize, Deserialize)]
enum Logged {
    Upsert { ids: Vec<u64>, vectors: Vec<f32>, payloads: Vec<Payload> },
    DeleteMatching { filter: Filter },
    SetPayload { target: Target, payload: Payload, overwrite: bool },
    DeletePayloadKeys { target: Target, keys: Vec<String> },
    CreateFieldIndex { key: String, kind: FieldKind },
    DropFieldIndex { key: String },
}

impl Op {
    /// An upsert without payloads.
    pub fn upsert(ids: Vec<u64>, vectors: Vec<f32>) -> Op {
        Op::Upsert { ids, vectors, payloads: Vec::new() }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        let logged = match self.clone() {
            Op::Upsert { ids, vectors, payloads } if !payloads.is_empty() => {
                Logged::Upsert { ids, vectors, payloads }
            }
            Op::Upsert { .. } | Op::Delete { .. } => return self.encode_plain(out),
            Op::DeleteMatching { filter } => Logged::DeleteMatching { filter },
            Op::SetPayload { target, payload, overwrite } => {
                Logged::SetPayload { target, payload, overwrite }
            }
            Op::DeletePayloadKeys { target, keys } => Logged::DeletePayloadKeys { target, keys },
            Op::CreateFieldIndex { key, kind } => Logged::CreateFieldIndex { key, kind },
            Op::DropFieldIndex { key } => Logged::DropFieldIndex { key },
        };
        out.push(PAYLOAD_OP);
        out.extend_from_slice(&postcard::to_stdvec(&logged).expect("ops serialize"));
    }

    /// Upserts without payloads and deletes, in their original form.
    fn encode_plain(&self, out: &mut Vec<u8>) {
        let (tag, ids) = match self {
            Op::Upsert { ids, .. } => (UPSERT, ids),
            Op::Delete { ids } => (DELETE, ids),
            _ => unreachable!("only plain ops"),
        };
        out.push(tag);
        out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for id in ids {
            out.extend_from_slice(&id.to_le_bytes());
        }
        if let Op::Upsert { vectors, .. } = self {
            for x in vectors {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }

    /// Decodes an op of vectors `dim` wide; `None` for anything malformed.
    pub fn decode(bytes: &[u8], dim: usize) -> Option<Op> {
        let mut r = Reader::new(bytes);
        let tag = r.u8()?;
        if tag == PAYLOAD_OP {
            let logged: Logged = postcard::from_bytes(&bytes[1..]).ok()?;
            return Some(match logged {
                Logged::Upsert { ids, vectors, payloads } => Op::Upsert { ids, vectors, payloads },
                Logged::DeleteMatching { filter } => Op::DeleteMatching { filter },
                Logged::SetPayload { target, payload, overwrite } => {
                    Op::SetPayload { target, payload, overwrite }
                }
                Logged::DeletePayloadKeys { target, keys } => {
                    Op::DeletePayloadKeys { target, keys }
                }
                Logged::CreateFieldIndex { key, kind } => Op::CreateFieldIndex { key, kind },
                Logged::DropFieldIndex { key } => Op::DropFieldIndex { key },
            });
        }
        let n = r.u32()? as usize;
        let ids = r.u64s(n)?;
        let op = match tag {
            UPSERT => Op::Upsert { ids, vectors: r.f32s(n.checked_mul(dim)?)?, payloads: vec![] },
            DELETE => Op::Delete { ids },
            _ => return None,
        };
        r.is_empty().then_some(op)
    }

    /// Checks what can be checked without the collection's state: payloads, filters, keys.
    pub fn check(&self) -> crate::Result<()> {
        let check_target = |t: &Target| match t {
            Target::Ids(ids) => check_ids(ids),
            Target::Filter(f) => f.validate(),
        };
        match self {
            Op::Upsert { ids, payloads, .. } => {
                if !payloads.is_empty() && payloads.len() != ids.len() {
                    return Err(crate::Error::LengthMismatch {
                        what: "payloads",
                        want: ids.len(),
                        got: payloads.len(),
                    });
                }
                payloads.iter().try_for_each(payload::value::validate)
            }
            Op::Delete { .. } => Ok(()),
            Op::DeleteMatching { filter } => filter.validate(),
            Op::SetPayload { target, payload, .. } => {
                check_target(target)?;
                payload::value::validate(payload)
            }
            Op::DeletePayloadKeys { target, keys } => {
                check_target(target)?;
                if keys.is_empty() {
                    return Err(crate::Error::InvalidParameter {
                        name: "keys",
                        reason: "name at least one key".into(),
                    });
                }
                keys.iter().try_for_each(|k| validate_key_path(k))
            }
            Op::CreateFieldIndex { key, .. } | Op::DropFieldIndex { key } => validate_key_path(key),
        }
    }
}

/// The most ids one payload write names.
pub const MAX_TARGET_IDS: usize = 100_000;

fn check_ids(ids: &[u64]) -> crate::Result<()> {
    if ids.is_empty() || ids.len() > MAX_TARGET_IDS {
        return Err(crate::Error::InvalidParameter {
            name: "ids",
            reason: format!("name 1..={MAX_TARGET_IDS} ids, got {}", ids.len()),
        });
    }
    Ok(())
}

/// A write prepared against the collection's state (under the apply lock): what it does to
/// which points, everything validated, so applying it cannot fail.
#[derive(Debug)]
enum Prepared {
    /// New points: rows as the metric prepared them, with their payloads.
    Upsert(Rows),
    Delete {
        ids: Vec<u64>,
    },
    /// Payload-only changes: each point's new payload beside its current vector (the record
    /// the vector files get).
    Payloads(Rows),
    CreateFieldIndex {
        key: String,
        kind: FieldKind,
    },
    DropFieldIndex {
        key: String,
    },
}

/// The points a write stores: ids, rows, payloads (none, or one per row), and each payload's
/// stored bytes, encoded once for the digest and the vector files.
#[derive(Debug)]
struct Rows {
    ids: Vec<u64>,
    rows: Vec<f32>,
    payloads: Vec<Payload>,
    encoded: Vec<Vec<u8>>,
}

impl Rows {
    fn new(ids: Vec<u64>, rows: Vec<f32>, payloads: Vec<Payload>) -> Rows {
        let encoded = payloads
            .iter()
            .map(|p| {
                let mut b = Vec::new();
                encode_payload(p, &mut b);
                b
            })
            .collect();
        Rows { ids, rows, payloads, encoded }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// The batch was refused before anything was logged or changed.
    #[error(transparent)]
    Invalid(#[from] crate::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Corrupt(String),
    #[error("storage i/o on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{0} already holds a collection")]
    Exists(String),
    #[error(transparent)]
    Vectors(#[from] VectorStoreError),
    #[error("{0} is already open (another instance holds its lock)")]
    Locked(String),
}

pub type Result<T> = std::result::Result<T, DurableError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DurableError + '_ {
    move |source| DurableError::Io { path: path.display().to_string(), source }
}

/// What a collection is, fixed at creation (`DIR/collection`).
#[derive(Clone, Debug, PartialEq)]
struct Meta {
    dim: usize,
    metric: Metric,
    encoding: Encoding,
    shards: usize,
}

fn metric_code(m: Metric) -> u8 {
    match m {
        Metric::L2 => 0,
        Metric::Dot => 1,
        Metric::Cosine => 2,
    }
}

impl Meta {
    fn encode(&self) -> Vec<u8> {
        let mut p = Vec::new();
        p.extend_from_slice(&(self.dim as u32).to_le_bytes());
        p.push(metric_code(self.metric));
        p.push(match self.encoding {
            Encoding::F32 => 0,
            Encoding::Int8 => 1,
        });
        p.extend_from_slice(&(self.shards as u32).to_le_bytes());
        let mut out = frame::header(frame::COLLECTION_META).to_vec();
        frame::record(&p, &mut out);
        out
    }

    fn decode(path: &Path, bytes: &[u8]) -> Result<Meta> {
        let scan = frame::scan(frame::COLLECTION_META, path, bytes)
            .map_err(|e| DurableError::Corrupt(e.to_string()))?;
        let bad = || DurableError::Corrupt(format!("{}: unreadable", path.display()));
        let (_, payload) = scan.records.first().filter(|_| !scan.torn).ok_or_else(bad)?;
        let mut r = Reader::new(payload);
        let dim = r.u32().ok_or_else(bad)? as usize;
        let metric = match r.u8() {
            Some(0) => Metric::L2,
            Some(1) => Metric::Dot,
            Some(2) => Metric::Cosine,
            _ => return Err(bad()),
        };
        let encoding = match r.u8() {
            Some(0) => Encoding::F32,
            Some(1) => Encoding::Int8,
            _ => return Err(bad()),
        };
        let shards = r.u32().ok_or_else(bad)? as usize;
        Ok(Meta { dim, metric, encoding, shards })
    }
}

/// Batches of at least this many rows apply while their fsync runs on a helper thread.
const OVERLAP_ROWS: usize = 64;

/// How many checkpoints are kept.
const KEEP_CHECKPOINTS: usize = 2;

/// A checkpoint cut ([`DurableCollection::cut`]), to be written beside writes.
#[derive(Debug)]
pub struct CheckpointCut {
    index: u64,
    stores: Vec<StoreCut>,
    shards: Vec<ShardCut>,
    /// The field indexes at the cut (rebuilt from the payloads on restore).
    fields: Vec<(String, FieldKind)>,
}

impl CheckpointCut {
    /// The log index the checkpoint carries.
    pub fn index(&self) -> u64 {
        self.index
    }
}

#[derive(Debug)]
pub struct DurableCollection {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    params: IndexParams,
    coll: Collection,
    /// The write-ahead log in embedded mode; `None` when the replication log is the log.
    journal: Option<Journal>,
    /// Each shard's vector files.
    vectors: Vec<VectorStore>,
    /// The directory's exclusive lock: one instance at a time truncates and maps its files.
    _lock: FileLock,
    /// Serialises log append + apply, and checkpoint cuts against both.
    apply: Mutex<()>,
    /// One embedded checkpoint at a time.
    checkpointing: Mutex<()>,
    digest: Mutex<Digest>,
    applied: AtomicU64,
    /// The log index of the checkpoint this collection was restored from (0: none).
    restored_from: u64,
}

fn ckpt_name(index: u64) -> String {
    format!("ckpt-{index:020}")
}

/// The collection's own journal in embedded mode; none when a replication log is the log.
fn open_journal(fs: &Arc<dyn Fs>, dir: &Path, embedded: bool) -> Result<Option<Journal>> {
    Ok(match embedded {
        true => Some(Journal::open(fs.clone(), &dir.join("journal"), JournalOptions::default())?),
        false => None,
    })
}

/// Takes the directory's exclusive lock (`DIR/lock`).
fn lock_dir(fs: &dyn Fs, dir: &Path) -> Result<FileLock> {
    let path = dir.join("lock");
    fs.lock(&path).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock => DurableError::Locked(dir.display().to_string()),
        _ => DurableError::Io { path: path.display().to_string(), source: e },
    })
}

fn vectors_dir(dir: &Path, shard: usize) -> PathBuf {
    dir.join("vectors").join(format!("shard-{shard:03}"))
}

/// Opens every shard's vector store at `at` (one mark per shard, or one mode for all).
fn open_vectors(
    fs: &Arc<dyn Fs>,
    dir: &Path,
    dim: usize,
    shards: usize,
    at: impl Fn(usize) -> OpenAt,
) -> std::result::Result<Vec<VectorStore>, VectorStoreError> {
    let vdir = dir.join("vectors");
    if !fs.exists(&vdir) {
        fs.create_dir_all(&vdir)
            .map_err(|e| VectorStoreError::Io { path: vdir.display().to_string(), source: e })?;
        fs.sync_dir(dir)
            .map_err(|e| VectorStoreError::Io { path: dir.display().to_string(), source: e })?;
    }
    (0..shards).map(|i| VectorStore::open(fs.clone(), &vectors_dir(dir, i), dim, at(i))).collect()
}

impl DurableCollection {
    /// Creates an empty collection in `dir` (which must not hold one).
    pub fn create(
        fs: Arc<dyn Fs>,
        dir: &Path,
        params: IndexParams,
        shards: usize,
    ) -> Result<DurableCollection> {
        Self::create_in(fs, dir, params, shards, true)
    }

    /// Creates an empty collection whose writes come with their index from a replication
    /// log ([`DurableCollection::apply_at`]); it keeps no journal.
    pub fn create_replicated(
        fs: Arc<dyn Fs>,
        dir: &Path,
        params: IndexParams,
        shards: usize,
    ) -> Result<DurableCollection> {
        Self::create_in(fs, dir, params, shards, false)
    }

    fn create_in(
        fs: Arc<dyn Fs>,
        dir: &Path,
        params: IndexParams,
        shards: usize,
        embedded: bool,
    ) -> Result<DurableCollection> {
        params.validate()?;
        let meta_path = dir.join("collection");
        if fs.exists(&meta_path) {
            return Err(DurableError::Exists(dir.display().to_string()));
        }
        let coll = Collection::new(params.clone(), shards)?;
        fs.create_dir_all(&dir.join("checkpoints")).map_err(io_err(dir))?;
        let parent = dir.parent().unwrap_or(Path::new(""));
        fs.sync_dir(parent).map_err(io_err(parent))?;
        fs.sync_dir(dir).map_err(io_err(dir))?;
        let lock = lock_dir(&*fs, dir)?;
        let meta =
            Meta { dim: params.dim, metric: params.metric, encoding: params.encoding, shards };
        write_atomic(&*fs, &meta_path, &meta.encode()).map_err(io_err(&meta_path))?;
        let journal = open_journal(&fs, dir, embedded)?;
        let vectors = open_vectors(&fs, dir, params.dim, shards, |_| OpenAt::Fresh)?;
        Ok(DurableCollection {
            fs,
            dir: dir.to_path_buf(),
            params,
            coll,
            journal,
            vectors,
            _lock: lock,
            apply: Mutex::new(()),
            checkpointing: Mutex::new(()),
            digest: Mutex::new(Digest::default()),
            applied: AtomicU64::new(0),
            restored_from: 0,
        })
    }

    /// Opens the collection in `dir`: newest valid checkpoint, then the journal after it.
    /// `params` supplies the tunables; dimension, metric, encoding and shards come from `dir`.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path, params: IndexParams) -> Result<DurableCollection> {
        Self::open_in(fs, dir, params, None)
    }

    /// Opens a replicated collection at its checkpoint `at` (the one its node's checkpoint
    /// names; newer ones are removed, older ones kept), whose index becomes the
    /// [`DurableCollection::applied_index`]; the replication log replays the rest. Fails when
    /// that checkpoint is missing or does not verify.
    pub fn open_replicated(
        fs: Arc<dyn Fs>,
        dir: &Path,
        params: IndexParams,
        at: u64,
    ) -> Result<DurableCollection> {
        Self::open_in(fs, dir, params, Some(at))
    }

    /// `at`: replicated mode at that checkpoint; `None`: embedded, the newest that verifies.
    fn open_in(
        fs: Arc<dyn Fs>,
        dir: &Path,
        params: IndexParams,
        at: Option<u64>,
    ) -> Result<DurableCollection> {
        let embedded = at.is_none();
        let meta_path = dir.join("collection");
        let bytes = fs.read(&meta_path).map_err(io_err(&meta_path))?;
        let meta = Meta::decode(&meta_path, &bytes)?;
        let lock = lock_dir(&*fs, dir)?;
        let params =
            IndexParams { dim: meta.dim, metric: meta.metric, encoding: meta.encoding, ..params };
        params.validate()?;
        let ckdir = dir.join("checkpoints");
        fs.create_dir_all(&ckdir).map_err(io_err(&ckdir))?;
        let mut names = fs.list(&ckdir).map_err(io_err(&ckdir))?;
        for stray in names.iter().filter(|n| n.starts_with(".tmp-")) {
            let p = ckdir.join(stray);
            fs.remove_dir_all(&p).map_err(io_err(&p))?;
        }
        names.retain(|n| n.starts_with("ckpt-"));
        names.sort();
        // The journal is opened first: a journal purged past every valid checkpoint is
        // refused before the vector files are started afresh.
        let journal = open_journal(&fs, dir, embedded)?;
        let mut restored = None;
        let mut refused = Vec::new();
        for name in names.iter().rev() {
            let Some(index) = name.strip_prefix("ckpt-").and_then(|i| i.parse::<u64>().ok()) else {
                continue;
            };
            match at {
                Some(at) if index > at => {
                    refused.push((name.clone(), format!("newer than the wanted {at}")));
                    continue;
                }
                Some(at) if index < at => continue,
                _ => {}
            }
            // A checkpoint that does not verify is skipped, never used.
            match load_checkpoint(&fs, dir, &ckdir.join(name), &params, &meta, index) {
                Ok(r) => {
                    restored = Some((index, r));
                    break;
                }
                Err(LoadError::Invalid(e)) => refused.push((name.clone(), e)),
                Err(LoadError::Io(e)) => {
                    return Err(DurableError::Corrupt(format!(
                        "{}: reading checkpoint {name} failed, so it cannot be skipped: {e}",
                        dir.display()
                    )))
                }
            }
        }
        if let (Some(at), None) = (at, &restored) {
            let why: Vec<String> = refused.iter().map(|(n, e)| format!("{n}: {e}")).collect();
            return Err(DurableError::Corrupt(format!(
                "{}: checkpoint {at} is missing or does not verify ({})",
                dir.display(),
                why.join("; ")
            )));
        }
        if restored.is_none() && !refused.is_empty() {
            // Checkpoints exist and none verifies: starting empty would lose what only they
            // hold, so the collection is refused.
            let why: Vec<String> = refused.iter().map(|(n, e)| format!("{n}: {e}")).collect();
            return Err(DurableError::Corrupt(format!(
                "{}: no checkpoint verifies ({})",
                dir.display(),
                why.join("; ")
            )));
        }
        // Newer checkpoints that did not verify go: they must never be chosen later, nor name
        // vector file generations that will be written afresh.
        for (name, _) in &refused {
            let p = ckdir.join(name);
            fs.remove_dir_all(&p).map_err(io_err(&p))?;
        }
        if !refused.is_empty() {
            fs.sync_dir(&ckdir).map_err(io_err(&ckdir))?;
        }
        let purged = journal.as_ref().map_or(0, Journal::purged);
        let from = restored.as_ref().map_or(0, |r| r.0);
        if purged > from {
            return Err(DurableError::Corrupt(format!(
                "{}: the journal is purged up to {purged} but the newest valid checkpoint is at {from}",
                dir.display(),
            )));
        }
        let (coll, vectors, fields) = match restored {
            Some((_, r)) => r,
            None => (
                Collection::new(params.clone(), meta.shards)?,
                open_vectors(&fs, dir, meta.dim, meta.shards, |_| OpenAt::Fresh)?,
                Vec::new(),
            ),
        };
        for (key, kind) in &fields {
            coll.create_field_index(key, *kind)?;
        }
        let digest = Digest::restore(&coll, &vectors)?;
        let dc = DurableCollection {
            fs,
            dir: dir.to_path_buf(),
            params,
            coll,
            journal,
            vectors,
            _lock: lock,
            apply: Mutex::new(()),
            checkpointing: Mutex::new(()),
            digest: Mutex::new(digest),
            applied: AtomicU64::new(from),
            restored_from: from,
        };
        let Some(journal) = &dc.journal else {
            return Ok(dc);
        };
        let mut failure = None;
        journal.read_from(from + 1, |index, data| {
            if failure.is_some() {
                return;
            }
            match Op::decode(data, meta.dim) {
                Some(op) => match dc.apply_logged(index, &op) {
                    Ok(()) => dc.applied.store(index, Ordering::Release),
                    Err(e) => failure = Some(format!("replaying entry {index}: {e}")),
                },
                None => failure = Some(format!("journal entry {index} does not decode")),
            }
        })?;
        if let Some(f) = failure {
            return Err(DurableError::Corrupt(f));
        }
        Ok(dc)
    }

    /// The directory the collection lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn collection(&self) -> &Collection {
        &self.coll
    }

    /// The log index of the last applied write.
    pub fn applied_index(&self) -> u64 {
        self.applied.load(Ordering::Acquire)
    }

    /// Latency of the journal's fsyncs (embedded mode).
    pub fn fsync_stats(&self) -> Option<&crate::storage::journal::FsyncStats> {
        self.journal.as_ref().map(Journal::fsync_stats)
    }

    /// The index of the checkpoint `open` restored (0 when it started empty).
    pub fn restored_from(&self) -> u64 {
        self.restored_from
    }

    /// Validates, logs durably and applies one write; returns its log index once durable.
    pub fn apply(&self, op: &Op) -> Result<u64> {
        let Some(journal) = &self.journal else {
            return Err(replicated_only("apply", "apply_at"));
        };
        let mut bytes = Vec::new();
        op.encode(&mut bytes);
        let serial = self.apply.lock();
        self.vectors.iter().try_for_each(VectorStore::check).map_err(self.vectors_err())?;
        let prepared = self.prepare(op)?;
        if matches!(prepared, Prepared::Upsert(_)) {
            self.coll.admit()?;
        }
        let index = journal.write(&[&bytes])?;
        let apply = || {
            // Validated and admitted above, so it applies; the log and the collection agree.
            self.apply_state(index, &prepared).expect("a validated, admitted batch applies");
            self.applied.store(index, Ordering::Release);
            // A failure here poisons the vector files: the write is in the journal, and a
            // reopen replays it into them.
            self.append_vectors(index, &prepared)
        };
        let rows = prepared.rows();
        if rows < OVERLAP_ROWS {
            let appended = apply();
            drop(serial);
            journal.sync_to(index)?;
            appended?;
        } else {
            // A large batch: the fsync runs on a helper thread while the batch is applied.
            let (synced, appended) = std::thread::scope(|s| {
                let synced = s.spawn(|| journal.sync_to(index));
                let appended = apply();
                drop(serial);
                (synced.join().expect("the fsync thread does not panic"), appended)
            });
            synced?;
            appended?;
        }
        Ok(index)
    }

    /// Replicated mode: applies a write the replication log made durable at `index`, which
    /// must be past the applied index. The caller validated it before logging; it is checked
    /// again here and refused whole if invalid.
    pub fn apply_at(&self, index: u64, op: &Op) -> Result<()> {
        let _serial = self.apply.lock();
        if self.journal.is_some() {
            return Err(replicated_only("apply_at", "apply"));
        }
        let applied = self.applied_index();
        if index <= applied {
            return Err(DurableError::Invalid(crate::Error::InvalidParameter {
                name: "index",
                reason: format!("{index} is not past the applied index {applied}"),
            }));
        }
        self.vectors.iter().try_for_each(VectorStore::check).map_err(self.vectors_err())?;
        self.apply_logged(index, op)?;
        self.applied.store(index, Ordering::Release);
        Ok(())
    }

    /// Applies a logged write (validating it again) and appends it to the vector files.
    fn apply_logged(&self, index: u64, op: &Op) -> Result<()> {
        let prepared = self.prepare(op)?;
        self.apply_state(index, &prepared)?;
        self.append_vectors(index, &prepared)
    }

    /// Validates a write and works out what it does against the current state (the apply
    /// lock held): a refusal changes nothing.
    fn prepare(&self, op: &Op) -> Result<Prepared> {
        op.check()?;
        let coll = &self.coll;
        Ok(match op {
            Op::Upsert { ids, vectors, payloads } => Prepared::Upsert(Rows::new(
                ids.clone(),
                coll.validate_upsert(ids, vectors)?,
                payloads.clone(),
            )),
            Op::Delete { ids } => Prepared::Delete { ids: ids.clone() },
            Op::DeleteMatching { filter } => Prepared::Delete { ids: coll.matching_ids(filter) },
            Op::SetPayload { target, payload, overwrite } => {
                let ids = self.resolve(target)?;
                let payloads = ids
                    .iter()
                    .map(|&id| match overwrite {
                        true => payload.clone(),
                        false => {
                            let mut p = coll.payload(id).unwrap_or_default();
                            payload::value::merge(&mut p, payload);
                            p
                        }
                    })
                    .collect();
                self.rewrite(ids, payloads)?
            }
            Op::DeletePayloadKeys { target, keys } => {
                let ids = self.resolve(target)?;
                let payloads = ids
                    .iter()
                    .map(|&id| {
                        let mut p = coll.payload(id).unwrap_or_default();
                        payload::value::delete_keys(&mut p, keys);
                        p
                    })
                    .collect();
                self.rewrite(ids, payloads)?
            }
            Op::CreateFieldIndex { key, kind } => {
                coll.check_field_index(key, *kind)?;
                Prepared::CreateFieldIndex { key: key.clone(), kind: *kind }
            }
            Op::DropFieldIndex { key } => Prepared::DropFieldIndex { key: key.clone() },
        })
    }

    /// The points a payload write changes, in id order: named ids must all be live.
    fn resolve(&self, target: &Target) -> Result<Vec<u64>> {
        match target {
            Target::Ids(ids) => {
                let mut ids = ids.clone();
                ids.sort_unstable();
                ids.dedup();
                if let Some(&id) = ids.iter().find(|&&id| !self.coll.contains(id)) {
                    return Err(DurableError::Invalid(crate::Error::PointNotFound { id }));
                }
                Ok(ids)
            }
            Target::Filter(f) => Ok(self.coll.matching_ids(f)),
        }
    }

    /// A payload-only change: each point's new payload (checked again, since a merge can
    /// grow it past the limit) beside its current vector.
    fn rewrite(&self, ids: Vec<u64>, payloads: Vec<Payload>) -> Result<Prepared> {
        let dim = self.params.dim;
        let mut rows = Vec::with_capacity(ids.len() * dim);
        for (&id, p) in ids.iter().zip(&payloads) {
            payload::value::validate(p)?;
            let v = self.coll.get(id).ok_or(crate::Error::PointNotFound { id })?;
            rows.extend_from_slice(&v);
        }
        Ok(Prepared::Payloads(Rows::new(ids, rows, payloads)))
    }

    /// Applies a prepared write to the collection and the digest (not the vector files).
    fn apply_state(&self, index: u64, p: &Prepared) -> Result<()> {
        let dim = self.params.dim;
        match p {
            Prepared::Upsert(r) | Prepared::Payloads(r) => {
                match p {
                    Prepared::Upsert(_) => self.coll.upsert_valid(&r.ids, &r.rows, &r.payloads)?,
                    _ => self.coll.set_payloads(&r.ids, &r.payloads),
                }
                let mut digest = self.digest.lock();
                for (i, (id, row)) in r.ids.iter().zip(r.rows.chunks_exact(dim)).enumerate() {
                    let bytes = r.encoded.get(i).map_or(&[][..], Vec::as_slice);
                    digest.set(*id, record_hash(*id, index, row, bytes));
                }
            }
            Prepared::Delete { ids } => {
                self.coll.delete(ids);
                let mut digest = self.digest.lock();
                ids.iter().for_each(|id| digest.remove(*id));
            }
            Prepared::CreateFieldIndex { key, kind } => {
                self.coll.create_field_index(key, *kind)?;
            }
            Prepared::DropFieldIndex { key } => {
                self.coll.drop_field_index(key);
            }
        }
        Ok(())
    }

    /// The content digest: (wrapping sum over live records of a hash of id, write index,
    /// stored vector and payload; live records). Equal on every replica at the same applied
    /// index.
    pub fn digest(&self) -> (u64, u64) {
        self.digest.lock().summary()
    }

    /// Appends an applied write to its shards' vector files: prepared rows with their
    /// payloads, or tombstones.
    fn append_vectors(&self, index: u64, p: &Prepared) -> Result<()> {
        let (ids, rows, encoded) = match p {
            Prepared::Upsert(r) | Prepared::Payloads(r) => {
                (&r.ids, Some(&r.rows[..]), &r.encoded[..])
            }
            Prepared::Delete { ids } => (ids, None, &[][..]),
            Prepared::CreateFieldIndex { .. } | Prepared::DropFieldIndex { .. } => return Ok(()),
        };
        let dim = self.params.dim;
        let err = self.vectors_err();
        if self.vectors.len() == 1 {
            let slices: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
            return self.vectors[0].append_with(index, ids, rows, &slices).map_err(err);
        }
        let mut parts: Vec<ShardRows> =
            (0..self.vectors.len()).map(|_| Default::default()).collect();
        for (i, &id) in ids.iter().enumerate() {
            let part = &mut parts[self.coll.shard_of(id)];
            part.0.push(id);
            if let Some(rows) = rows {
                part.1.extend_from_slice(&rows[i * dim..(i + 1) * dim]);
            }
            if let Some(b) = encoded.get(i) {
                part.2.push(b);
            }
        }
        for (store, (ids, part, payloads)) in self.vectors.iter().zip(&parts) {
            if !ids.is_empty() {
                store
                    .append_with(index, ids, rows.map(|_| &part[..]), payloads)
                    .map_err(self.vectors_err())?;
            }
        }
        Ok(())
    }

    fn vectors_err(&self) -> impl FnOnce(io::Error) -> DurableError {
        let path = self.dir.join("vectors").display().to_string();
        move |source| DurableError::Io { path, source }
    }

    /// Compacts the vector files of every shard whose files exceed `factor` times their live
    /// records and `min_bytes`, beside writes; returns what was compacted. Generations a kept
    /// checkpoint still names are removed by a later checkpoint.
    pub fn compact(&self, factor: f64, min_bytes: u64) -> Result<Vec<Compaction>> {
        let mut done = Vec::new();
        for store in &self.vectors {
            if store.needs_compaction(factor, min_bytes) {
                done.push(store.compact().map_err(self.vectors_err())?);
            }
        }
        Ok(done)
    }

    /// Loads the first data of an empty collection by the bulk build (clustering, not one
    /// upsert at a time) and makes it durable with a checkpoint before returning.
    pub fn import(&self, ids: Vec<u64>, vectors: Vec<f32>) -> Result<u64> {
        {
            let _serial = self.apply.lock();
            if self.applied_index() != 0 || !self.coll.is_empty() {
                return Err(DurableError::Invalid(crate::Error::InvalidParameter {
                    name: "import",
                    reason: "only into an empty collection".into(),
                }));
            }
            let mut seen = rustc_hash::FxHashSet::default();
            if let Some(id) = ids.iter().find(|&&id| !seen.insert(id)) {
                return Err(DurableError::Invalid(crate::Error::InvalidParameter {
                    name: "ids",
                    reason: format!("id {id} appears twice in the import"),
                }));
            }
            drop(seen);
            let mut appended = Ok(());
            self.coll.bulk_load_observed(ids, vectors, &mut |shard, ids, rows| {
                if appended.is_ok() {
                    appended = self.vectors[shard].append(0, ids, Some(rows));
                }
            })?;
            appended.map_err(self.vectors_err())?;
            // The bulk load gave every point its (empty) payload already.
            *self.digest.lock() = Digest::of(&self.vectors, |_, _| Ok(()))?;
        }
        self.checkpoint()
    }

    /// Writes a checkpoint at the applied index (see the module docs), keeps the two newest
    /// and purges the journal to the older; returns the index. Writes wait only for the cut.
    pub fn checkpoint(&self) -> Result<u64> {
        let _one = self.checkpointing.lock();
        let index = self.write_checkpoint(self.cut(None)?)?;
        let mut kept = self.checkpoints()?;
        kept.drain(..kept.len().saturating_sub(KEEP_CHECKPOINTS));
        self.retain(&kept)?;
        Ok(index)
    }

    /// Cuts a checkpoint with writes held for the cut only: the vector files' marks, and each
    /// shard's version map and posting lengths (background maintenance stays held until the
    /// cut is written or dropped). `label` is the log index the checkpoint will carry (at
    /// least the applied index; the applied index when `None`): a replicated collection is
    /// checkpointed at its node's applied index, past its own last write.
    pub fn cut(&self, label: Option<u64>) -> Result<CheckpointCut> {
        let _serial = self.apply.lock();
        let applied = self.applied_index();
        let index = label.unwrap_or(applied);
        if index < applied {
            return Err(DurableError::Invalid(crate::Error::InvalidParameter {
                name: "index",
                reason: format!("a checkpoint at {index} would be behind the applied {applied}"),
            }));
        }
        let stores: Vec<StoreCut> = self
            .vectors
            .iter()
            .map(VectorStore::cut)
            .collect::<io::Result<_>>()
            .map_err(self.vectors_err())?;
        let shards = self.coll.shards().iter().map(Index::cut).collect();
        let fields = self.coll.field_index_kinds();
        Ok(CheckpointCut { index, stores, shards, fields })
    }

    /// Writes a cut as the checkpoint `ckpt-{index}` beside writes: fsyncs the vector files
    /// up to the cut's marks, writes each shard's file and the manifest (last) into a
    /// temporary directory, fsyncs it and renames it into place. Returns the index; a
    /// checkpoint already at that index is left as it is.
    pub fn write_checkpoint(&self, cut: CheckpointCut) -> Result<u64> {
        let CheckpointCut { index, stores, shards, fields } = cut;
        let ckdir = self.dir.join("checkpoints");
        let done = ckdir.join(ckpt_name(index));
        if self.fs.exists(&done) {
            return Ok(index);
        }
        let marks: Vec<Mark> = stores
            .into_iter()
            .map(StoreCut::sync)
            .collect::<io::Result<_>>()
            .map_err(self.vectors_err())?;
        let tmp = ckdir.join(format!(".tmp-{}", ckpt_name(index)));
        if self.fs.exists(&tmp) {
            self.fs.remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        self.fs.create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let mut files = Vec::new();
        for (i, shard) in shards.iter().enumerate() {
            let name = format!("shard-{i:03}");
            let (len, crc) = write_shard(&*self.fs, &tmp.join(&name), shard)?;
            files.push((name, len, crc));
        }
        drop(shards);
        let mut p = Vec::new();
        p.extend_from_slice(&index.to_le_bytes());
        p.extend_from_slice(&(files.len() as u32).to_le_bytes());
        for ((name, len, crc), mark) in files.iter().zip(&marks) {
            p.extend_from_slice(&(name.len() as u32).to_le_bytes());
            p.extend_from_slice(name.as_bytes());
            p.extend_from_slice(&len.to_le_bytes());
            p.extend_from_slice(&crc.to_le_bytes());
            p.extend_from_slice(&mark.generation.to_le_bytes());
            p.extend_from_slice(&mark.len.to_le_bytes());
        }
        // Field indexes (absent from checkpoints written before payloads existed).
        p.extend_from_slice(&(fields.len() as u32).to_le_bytes());
        for (key, kind) in &fields {
            p.extend_from_slice(&(key.len() as u32).to_le_bytes());
            p.extend_from_slice(key.as_bytes());
            p.push(kind_code(*kind));
        }
        let mut manifest = frame::header(frame::CHECKPOINT_MANIFEST).to_vec();
        frame::record(&p, &mut manifest);
        let mpath = tmp.join("manifest");
        let mut f = self.fs.open_append(&mpath).map_err(io_err(&mpath))?;
        f.append(&manifest).and_then(|_| f.sync()).map_err(io_err(&mpath))?;
        drop(f);
        self.fs.sync_dir(&tmp).map_err(io_err(&tmp))?;
        self.fs.rename(&tmp, &done).map_err(io_err(&tmp))?;
        self.fs.sync_dir(&ckdir).map_err(io_err(&ckdir))?;
        Ok(index)
    }

    /// The indexes of the checkpoints on disk, oldest first.
    pub fn checkpoints(&self) -> Result<Vec<u64>> {
        let ckdir = self.dir.join("checkpoints");
        let mut out: Vec<u64> = self
            .fs
            .list(&ckdir)
            .map_err(io_err(&ckdir))?
            .iter()
            .filter_map(|n| n.strip_prefix("ckpt-")?.parse().ok())
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Removes every checkpoint not in `keep`, purges the journal (embedded mode) up to the
    /// oldest kept, and removes the vector file generations older than every kept one names.
    pub fn retain(&self, keep: &[u64]) -> Result<()> {
        let ckdir = self.dir.join("checkpoints");
        let mut removed = false;
        for index in self.checkpoints()? {
            if !keep.contains(&index) {
                let p = ckdir.join(ckpt_name(index));
                self.fs.remove_dir_all(&p).map_err(io_err(&p))?;
                removed = true;
            }
        }
        if removed {
            self.fs.sync_dir(&ckdir).map_err(io_err(&ckdir))?;
        }
        let Some(oldest) = self.checkpoints()?.first().copied() else { return Ok(()) };
        if let Some(journal) = &self.journal {
            journal.purge_upto(oldest)?;
        }
        let manifest = read_manifest(&*self.fs, &ckdir.join(ckpt_name(oldest)), self.vectors.len())
            .map_err(|e| DurableError::Corrupt(e.to_string()))?;
        for (store, entry) in self.vectors.iter().zip(&manifest.shards) {
            store.remove_below(entry.mark.generation).map_err(self.vectors_err())?;
        }
        Ok(())
    }

    /// The files of checkpoint `index` with the bytes of each that it needs, relative to the
    /// collection's directory: what a copy of the collection at that checkpoint must hold
    /// (the vector files up to their marks; sidecars as they are, since opening at a mark
    /// distrusts entries past it).
    pub fn checkpoint_files(&self, index: u64) -> Result<Vec<(PathBuf, u64)>> {
        let ck = PathBuf::from("checkpoints").join(ckpt_name(index));
        let manifest = read_manifest(&*self.fs, &self.dir.join(&ck), self.vectors.len())
            .map_err(|e| DurableError::Corrupt(e.to_string()))?;
        let size = |rel: &Path| -> Result<u64> {
            let p = self.dir.join(rel);
            Ok(self.fs.map(&p).map_err(io_err(&p))?.len() as u64)
        };
        let mut out = Vec::new();
        let meta = PathBuf::from("collection");
        out.push((meta.clone(), size(&meta)?));
        let m = ck.join("manifest");
        out.push((m.clone(), size(&m)?));
        for (i, e) in manifest.shards.iter().enumerate() {
            out.push((ck.join(&e.name), e.len));
            let v = PathBuf::from("vectors").join(format!("shard-{i:03}"));
            out.push((v.join(format!("gen-{:06}.vec", e.mark.generation)), e.mark.len));
            let idx = v.join(format!("gen-{:06}.idx", e.mark.generation));
            out.push((idx.clone(), size(&idx)?));
        }
        Ok(out)
    }

    /// Every live vector by id (with writes and maintenance held): for checks and digests.
    pub fn contents(&self) -> BTreeMap<u64, Vec<f32>> {
        let _serial = self.apply.lock();
        let mut out = BTreeMap::new();
        for shard in self.coll.shards() {
            let _hold = shard.hold_maintenance();
            shard.for_each_live_vector(|id, v| {
                out.insert(id, v.to_vec());
            });
        }
        out
    }

    /// Every live point by id with its payload (with writes and maintenance held).
    pub fn points(&self) -> BTreeMap<u64, (Vec<f32>, Payload)> {
        let mut out = BTreeMap::new();
        for (id, v) in self.contents() {
            let p = self.coll.payload(id).unwrap_or_default();
            out.insert(id, (v, p));
        }
        out
    }

    /// Checkpoints and closes.
    pub fn close(self) -> Result<()> {
        self.checkpoint()?;
        Ok(())
    }

    pub fn params(&self) -> &IndexParams {
        &self.params
    }
}

fn replicated_only(called: &str, instead: &str) -> DurableError {
    DurableError::Invalid(crate::Error::InvalidParameter {
        name: "mode",
        reason: format!("{called} does not apply to this collection's mode; use {instead}"),
    })
}

/// One shard's part of a write: ids, rows, payload bytes.
type ShardRows<'a> = (Vec<u64>, Vec<f32>, Vec<&'a [u8]>);

impl Prepared {
    /// Rows the write touches (for choosing whether its fsync overlaps its apply).
    fn rows(&self) -> usize {
        match self {
            Prepared::Upsert(r) | Prepared::Payloads(r) => r.ids.len(),
            Prepared::Delete { ids } => ids.len(),
            Prepared::CreateFieldIndex { .. } | Prepared::DropFieldIndex { .. } => 0,
        }
    }
}

/// The bytes a payload is stored as: nothing for an empty one, its encoding otherwise.
fn encode_payload(p: &Payload, out: &mut Vec<u8>) {
    if !p.is_empty() {
        payload::value::encode(p, out);
    }
}

/// Writes one shard file (framed records) and fsyncs it; returns its length and CRC32.
fn write_shard(fs: &dyn Fs, path: &Path, shard: &ShardCut) -> Result<(u64, u32)> {
    let mut f = fs.open_append(path).map_err(io_err(path))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut len = 0u64;
    let mut buf = frame::header(frame::CHECKPOINT_SHARD).to_vec();
    let mut flush = |buf: &mut Vec<u8>, f: &mut Box<dyn crate::storage::fs::AppendFile>| {
        hasher.update(buf);
        len += buf.len() as u64;
        let r = f.append(buf);
        buf.clear();
        r
    };
    shard
        .save(&mut |payload| {
            frame::record(payload, &mut buf);
            if buf.len() >= 8 << 20 {
                flush(&mut buf, &mut f)?;
            }
            Ok(())
        })
        .map_err(io_err(path))?;
    flush(&mut buf, &mut f).map_err(io_err(path))?;
    f.sync().map_err(io_err(path))?;
    Ok((len, hasher.finalize()))
}

/// One shard's entry in a checkpoint manifest.
struct ShardEntry {
    name: String,
    len: u64,
    crc: u32,
    mark: Mark,
}

struct Manifest {
    index: u64,
    shards: Vec<ShardEntry>,
    fields: Vec<(String, FieldKind)>,
}

const FIELD_KINDS: [FieldKind; 5] = [
    FieldKind::Keyword,
    FieldKind::Integer,
    FieldKind::Float,
    FieldKind::Bool,
    FieldKind::Datetime,
];

fn kind_code(kind: FieldKind) -> u8 {
    FIELD_KINDS.iter().position(|k| *k == kind).expect("every kind has a code") as u8
}

/// Why a checkpoint was not loaded.
#[derive(Debug)]
enum LoadError {
    /// It does not verify (or a file of it is missing): an older one is used instead.
    Invalid(String),
    /// Reading it failed: opening is refused, since skipping it could lose what it holds.
    Io(String),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Invalid(e) | LoadError::Io(e) => f.write_str(e),
        }
    }
}

fn read_failed(path: &Path, e: io::Error) -> LoadError {
    let what = format!("{}: {e}", path.display());
    match e.kind() {
        io::ErrorKind::NotFound => LoadError::Invalid(what),
        _ => LoadError::Io(what),
    }
}

impl From<VectorStoreError> for LoadError {
    fn from(e: VectorStoreError) -> LoadError {
        match &e {
            VectorStoreError::Io { source, .. } if source.kind() != io::ErrorKind::NotFound => {
                LoadError::Io(e.to_string())
            }
            _ => LoadError::Invalid(e.to_string()),
        }
    }
}

/// Reads and verifies the manifest of the checkpoint in `dir`, which must list `shards` shards.
fn read_manifest(
    fs: &dyn Fs,
    dir: &Path,
    shards: usize,
) -> std::result::Result<Manifest, LoadError> {
    let mpath = dir.join("manifest");
    let bytes = fs.read(&mpath).map_err(|e| read_failed(&mpath, e))?;
    let scan = frame::scan(frame::CHECKPOINT_MANIFEST, &mpath, &bytes)
        .map_err(|e| LoadError::Invalid(e.to_string()))?;
    let bad = || LoadError::Invalid(format!("{}: does not verify", mpath.display()));
    let (_, payload) = scan.records.first().filter(|_| !scan.torn).ok_or_else(bad)?;
    let mut r = Reader::new(payload);
    let index = r.u64().ok_or_else(bad)?;
    let n = r.u32().ok_or_else(bad)? as usize;
    if n != shards {
        return Err(bad());
    }
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let name_len = r.u32().ok_or_else(bad)? as usize;
        let name = r.take(name_len).ok_or_else(bad)?;
        let name = std::str::from_utf8(name).map_err(|_| bad())?.to_string();
        if name.contains('/') || name.starts_with('.') {
            return Err(bad());
        }
        let (len, crc) = (r.u64().ok_or_else(bad)?, r.u32().ok_or_else(bad)?);
        let mark = Mark { generation: r.u64().ok_or_else(bad)?, len: r.u64().ok_or_else(bad)? };
        entries.push(ShardEntry { name, len, crc, mark });
    }
    let mut fields = Vec::new();
    if !r.is_empty() {
        let n = r.u32().ok_or_else(bad)? as usize;
        for _ in 0..n {
            let len = r.u32().ok_or_else(bad)? as usize;
            let key = std::str::from_utf8(r.take(len).ok_or_else(bad)?).map_err(|_| bad())?;
            let kind = *FIELD_KINDS.get(r.u8().ok_or_else(bad)? as usize).ok_or_else(bad)?;
            fields.push((key.to_string(), kind));
        }
    }
    if !r.is_empty() {
        return Err(bad());
    }
    Ok(Manifest { index, shards: entries, fields })
}

/// Verifies a checkpoint's manifest, shard files and vector files up to its marks, then opens
/// the vector files at the marks (dropping what followed them) and restores its shards with
/// their vectors read in place. Nothing is changed on disk until all of it has verified.
fn load_checkpoint(
    fs: &Arc<dyn Fs>,
    coll_dir: &Path,
    dir: &Path,
    params: &IndexParams,
    meta: &Meta,
    index: u64,
) -> std::result::Result<Restored, LoadError> {
    let invalid = LoadError::Invalid;
    let manifest = read_manifest(&**fs, dir, meta.shards)?;
    if manifest.index != index {
        return Err(invalid(format!("{}: names index {}", dir.display(), manifest.index)));
    }
    let mut files = Vec::with_capacity(meta.shards);
    for e in &manifest.shards {
        let path = dir.join(&e.name);
        let data = fs.read(&path).map_err(|err| read_failed(&path, err))?;
        if data.len() as u64 != e.len || crc32fast::hash(&data) != e.crc {
            return Err(invalid(format!(
                "{}: length or checksum differs from the manifest",
                path.display()
            )));
        }
        files.push((path, data));
    }
    let marks: Vec<Mark> = manifest.shards.iter().map(|e| e.mark).collect();
    // Every vector file is checked up to its mark before any is cut back to it.
    for (i, mark) in marks.iter().enumerate() {
        VectorStore::check_mark(&**fs, &vectors_dir(coll_dir, i), meta.dim, *mark)?;
    }
    let stores = open_vectors(fs, coll_dir, meta.dim, meta.shards, |i| OpenAt::Mark(marks[i]))?;
    let mut shards = Vec::with_capacity(meta.shards);
    for (i, ((path, data), store)) in files.iter().zip(&stores).enumerate() {
        let scan =
            frame::scan(frame::CHECKPOINT_SHARD, path, data).map_err(|e| invalid(e.to_string()))?;
        if scan.torn {
            return Err(invalid(format!("{}: torn", path.display())));
        }
        let mut p = params.clone();
        p.seed = params.seed.wrapping_add(i as u64);
        let records = scan.records.iter().map(|r| r.1);
        let shard = store
            .with_vectors(|of| Index::restore(p, records, of))
            .map_err(|e| LoadError::Io(format!("{}: {e}", path.display())))?
            .map_err(|e| invalid(format!("{}: {e}", path.display())))?;
        store.release_memory();
        shards.push(shard);
    }
    let coll = Collection::from_shards(meta.metric, meta.dim, shards);
    Ok((coll, stores, manifest.fields))
}

/// A loaded checkpoint: the collection, its vector files and its field indexes.
type Restored = (Collection, Vec<VectorStore>, Vec<(String, FieldKind)>);

/// A collection's content digest: each live id's record hash and their wrapping sum.
#[derive(Debug, Default)]
struct Digest {
    records: rustc_hash::FxHashMap<u64, u64>,
    sum: u64,
}

impl Digest {
    /// The digest of every live record in `stores`, restoring each record's payload into
    /// `coll` on the way (a collection just restored from a checkpoint, or empty).
    fn restore(coll: &Collection, stores: &[VectorStore]) -> Result<Digest> {
        Digest::of(stores, |id, payload| coll.restore_payload(id, payload))
    }

    /// The digest of every live record in `stores`, showing each record's `(id, payload)` to
    /// `each` (whose first error refuses the records as corrupt).
    fn of(
        stores: &[VectorStore],
        mut each: impl FnMut(u64, &[u8]) -> std::result::Result<(), String>,
    ) -> Result<Digest> {
        let mut d = Digest::default();
        let mut bad = None;
        for (i, store) in stores.iter().enumerate() {
            store
                .for_each_live(|id, index, v, payload| {
                    d.set(id, record_hash(id, index, v, payload));
                    if let Err(e) = each(id, payload) {
                        bad.get_or_insert(format!("shard {i}: {e}"));
                    }
                })
                .map_err(|source| DurableError::Io {
                    path: format!("vectors of shard {i}"),
                    source,
                })?;
        }
        match bad {
            Some(e) => Err(DurableError::Corrupt(e)),
            None => Ok(d),
        }
    }

    fn set(&mut self, id: u64, h: u64) {
        let old = self.records.insert(id, h).unwrap_or(0);
        self.sum = self.sum.wrapping_sub(old).wrapping_add(h);
    }

    fn remove(&mut self, id: u64) {
        if let Some(old) = self.records.remove(&id) {
            self.sum = self.sum.wrapping_sub(old);
        }
    }

    fn summary(&self) -> (u64, u64) {
        (self.sum, self.records.len() as u64)
    }
}

/// The hash of one record: (id, write index, stored vector, stored payload bytes), as two
/// CRCs of its little-endian bytes.
fn record_hash(id: u64, index: u64, v: &[f32], payload: &[u8]) -> u64 {
    thread_local! {
        static BYTES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let mut a = crc32fast::Hasher::new_with_initial(0x9e37_79b9);
    let mut b = crc32fast::Hasher::new_with_initial(0x85eb_ca6b);
    BYTES.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&index.to_le_bytes());
        buf.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        buf.extend_from_slice(payload);
        a.update(&buf);
        b.update(&buf);
    });
    let x = ((a.finalize() as u64) << 32) | b.finalize() as u64;
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id.rotate_left(29)
}

#[cfg(test)]
#[path = "durable_tests.rs"]
mod tests;
