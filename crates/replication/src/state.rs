//! The state machine: the collections of a node, as the Raft log builds them, each one a
//! replicated durable collection (`freshvec_core::durable`) whose write-ahead log is the Raft
//! log.
//!
//! - Commands apply in log order, each at its log index; the replicated version of a record is
//!   the index of the write that set it. Refusals (unknown collection, invalid rows) are
//!   deterministic and change nothing. An apply appends to the vector files unsynced.
//! - Each collection keeps an order-independent content digest (see
//!   `DurableCollection::digest`), identical on every replica at the same applied index.
//! - **Checkpoint = snapshot** (layout in [`crate::checkpoint`]). openraft asks for the
//!   snapshot builder in order with applies: that call *cuts* every collection (vector file
//!   marks, version maps, posting lengths; no I/O), so writes wait only for the cut. The
//!   build then runs beside applies: each collection's checkpoint is written and fsynced,
//!   then the node manifest naming them all with the applied log id and membership (taken at
//!   the cut) is renamed into place, and only then is the snapshot published (never replacing
//!   a newer one). Two node checkpoints are kept; collection checkpoints, vector file
//!   generations and dropped collections' directories that neither names are removed, and
//!   vector files past twice their live bytes are compacted beside writes.
//! - **Restart** opens the newest node checkpoint whose every collection verifies (an older
//!   one otherwise); openraft replays the log after it, which is never purged past it.
//! - **Transfer**: the snapshot is the checkpoint's files (vector files up to their marks);
//!   a received one is staged in `.recv-*`, renamed to a new state root, opened (which
//!   verifies every file), and committed by replacing `CURRENT`; the old root is then removed.

use crate::checkpoint::{
    self, collection_dir, collection_index, manifest_key, manifest_name, ManifestCollection,
    NodeManifest, SnapshotFiles, Staging, CURRENT,
};
use crate::command::{Applied, CollectionSpec, Command, Outcome, MAX_COLLECTIONS, MAX_NODE_SHARDS};
use crate::failpoint;
use crate::{storage_err, LogId, NodeId, StorageError, TypeConfig};
use freshvec_core::durable::{CheckpointCut, DurableCollection, DurableError};
use freshvec_core::storage::fs::{write_atomic, Fs, RealFs};
use freshvec_core::Collection;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, SnapshotMeta,
    StoredMembership,
};
use parking_lot::{Mutex, RwLock};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// Node checkpoints kept.
const KEEP_CHECKPOINTS: usize = 2;
/// Vector files are compacted past this many times their live bytes...
const COMPACT_FACTOR: f64 = 2.0;
/// ...and this size.
const COMPACT_MIN_BYTES: u64 = 64 << 20;

/// One collection of the state machine.
#[derive(Debug)]
pub struct Replica {
    pub name: String,
    pub spec: CollectionSpec,
    /// Its directory under the state root's `collections/`.
    pub dir: String,
    pub durable: DurableCollection,
}

impl Replica {
    pub fn coll(&self) -> &Collection {
        self.durable.collection()
    }

    /// (digest, live vectors).
    pub fn digest(&self) -> (u64, u64) {
        self.durable.digest()
    }
}

#[derive(Debug, Default)]
/// The last applied log id and the membership it brought.
struct AppliedState {
    last: Option<LogId>,
    membership: StoredMembership<NodeId, BasicNode>,
}

/// Snapshot figures for operators.
#[derive(Debug, Default, Clone, Copy)]
pub struct SnapshotStats {
    /// Snapshots received and installed since the process started.
    pub installed: u64,
    /// Snapshot transfers being received now.
    pub receiving: u64,
    /// How long the last install took, from its first byte to the swap (ms).
    pub last_install_ms: u64,
    /// How long the last build took (ms), and the bytes it wrote (vector files are fsynced,
    /// not copied).
    pub last_build_ms: u64,
    pub last_build_bytes: u64,
    /// How long the last cut held applies (µs).
    pub last_cut_us: u64,
}

/// The newest published checkpoint.
#[derive(Debug, Clone)]
struct Current {
    manifest: NodeManifest,
    files: SnapshotFiles,
}

#[derive(Debug)]
struct Shared {
    fs: Arc<dyn Fs>,
    /// `DATA/state`.
    dir: PathBuf,
    /// The state root in use.
    root: RwLock<PathBuf>,
    collections: RwLock<BTreeMap<String, Arc<Replica>>>,
    applied: Mutex<AppliedState>,
    applied_index: AtomicU64,
    current: Mutex<Option<Current>>,
    /// Serialises checkpoint writes and installs (never held by applies).
    persist: Mutex<()>,
    /// The reception in progress, and when it started.
    receiving: Mutex<Option<(PathBuf, Instant)>>,
    stats: Mutex<SnapshotStats>,
    seq: AtomicU64,
    /// The newest durable checkpoint's index, for the log's purges (see [`Floor`]).
    floor: watch::Sender<Floor>,
}

/// How far the log may be purged: up to the newest durable checkpoint. openraft purges a
/// follower's log as soon as it queues the install of a received snapshot, before the install
/// ran, and a kill in between would leave a state older than its log; the log store waits on
/// this to purge only what a checkpoint on disk covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Floor {
    /// The index of the newest durable checkpoint's last entry, if any.
    pub index: Option<u64>,
    /// Why no newer checkpoint will come (an install failed; Raft stops on it).
    pub failed: Option<String>,
}

/// The state machine; clones share it (the server reads collections through one).
#[derive(Debug, Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

fn sm_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    storage_err(ErrorSubject::StateMachine, verb, e)
}

fn snap_err(verb: ErrorVerb, e: impl std::fmt::Display) -> StorageError {
    storage_err(ErrorSubject::Snapshot(None), verb, e)
}

fn unique(seq: &AtomicU64) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{nanos}-{}", seq.fetch_add(1, Ordering::Relaxed))
}

/// A state root as opened: its collections and the checkpoint they were restored from.
struct Opened {
    collections: BTreeMap<String, Arc<Replica>>,
    current: Option<Current>,
}

/// Opens the collections the manifest names, each at its checkpoint.
fn open_manifest(fs: &Arc<dyn Fs>, root: &Path, m: &NodeManifest) -> Result<Opened, String> {
    let at = collection_index(&m.meta);
    let mut collections = BTreeMap::new();
    for c in &m.collections {
        let params = c.spec.params().map_err(|e| format!("collection {}: {e}", c.name))?;
        let dir = root.join("collections").join(&c.dir);
        let durable = DurableCollection::open_replicated(fs.clone(), &dir, params, at)
            .map_err(|e| format!("collection {}: {e}", c.name))?;
        let replica =
            Replica { name: c.name.clone(), spec: c.spec.clone(), dir: c.dir.clone(), durable };
        collections.insert(c.name.clone(), Arc::new(replica));
    }
    let files = files_of(&**fs, root, m, &collections).map_err(|e| e.to_string())?;
    Ok(Opened { collections, current: Some(Current { manifest: m.clone(), files }) })
}

/// The files of the checkpoint `m` in `root`, for a transfer.
fn files_of(
    fs: &dyn Fs,
    root: &Path,
    m: &NodeManifest,
    collections: &BTreeMap<String, Arc<Replica>>,
) -> Result<SnapshotFiles, DurableError> {
    let name = manifest_name(&m.meta);
    let mpath = root.join("checkpoints").join(&name);
    let len = fs
        .map(&mpath)
        .map_err(|e| DurableError::Io { path: mpath.display().to_string(), source: e })?
        .len() as u64;
    let mut files = vec![(format!("checkpoints/{name}"), len)];
    let at = collection_index(&m.meta);
    for c in &m.collections {
        let Some(r) = collections.get(&c.name) else {
            return Err(DurableError::Corrupt(format!("collection {} is not open", c.name)));
        };
        for (rel, len) in r.durable.checkpoint_files(at)? {
            let rel: Vec<String> =
                rel.components().map(|p| p.as_os_str().to_string_lossy().into_owned()).collect();
            files.push((format!("collections/{}/{}", c.dir, rel.join("/")), len));
        }
    }
    Ok(SnapshotFiles { base: root.to_path_buf(), files, staged: false })
}

/// Opens a state root: the newest node checkpoint whose every collection verifies; directories
/// of collections it does not name are removed.
fn open_root(fs: &Arc<dyn Fs>, root: &Path) -> Result<Opened, String> {
    let ckdir = root.join("checkpoints");
    let cdir = root.join("collections");
    for d in [&ckdir, &cdir] {
        fs.create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let list = |d: &Path| fs.list(d).map_err(|e| format!("{}: {e}", d.display()));
    let mut names = list(&ckdir)?;
    for stray in names.iter().filter(|n| n.starts_with(".tmp-")) {
        let p = ckdir.join(stray);
        fs.remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    names.retain(|n| manifest_key(n).is_some());
    let mut opened = None;
    let mut refused = Vec::new();
    for name in names.iter().rev() {
        let path = ckdir.join(name);
        match checkpoint::read_manifest(&**fs, &path).and_then(|m| open_manifest(fs, root, &m)) {
            Ok(o) => {
                opened = Some(o);
                break;
            }
            Err(e) => {
                tracing::warn!("skipping node checkpoint that does not verify: {e}");
                refused.push(e);
            }
        }
    }
    let opened = match opened {
        Some(o) => o,
        None if refused.is_empty() => Opened { collections: BTreeMap::new(), current: None },
        // Checkpoints exist and none verifies: starting empty would lose what they hold.
        None => {
            return Err(format!(
                "{}: no node checkpoint verifies ({})",
                root.display(),
                refused.join("; ")
            ))
        }
    };
    // Checkpoints newer than the one opened did not verify: they must never be chosen later.
    let opened_key = opened.current.as_ref().map(|c| manifest_name(&c.manifest.meta));
    for name in names.iter().filter(|n| Some(*n) > opened_key.as_ref()) {
        let p = ckdir.join(name);
        fs.remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let named: Vec<&str> = opened.collections.values().map(|r| r.dir.as_str()).collect();
    for stray in list(&cdir)?.iter().filter(|d| !named.contains(&d.as_str())) {
        let p = cdir.join(stray);
        fs.remove_dir_all(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    fs.sync_dir(&ckdir).and_then(|_| fs.sync_dir(&cdir)).map_err(|e| e.to_string())?;
    Ok(opened)
}

/// A cut of every collection, taken while no apply runs.
#[derive(Debug)]
struct NodeCut {
    meta: SnapshotMeta<NodeId, BasicNode>,
    collections: Vec<(Arc<Replica>, CheckpointCut)>,
}

/// openraft's snapshot builder: the cut taken when it was asked for, written on build.
#[derive(Debug)]
pub struct Builder {
    sm: StateMachine,
    /// Behind a lock only so that the builder is `Sync` (the file handles in it are not).
    cut: Mutex<Result<Option<NodeCut>, String>>,
}

impl StateMachine {
    /// Opens the state in `dir` (see the module docs).
    pub fn open(dir: &Path) -> Result<StateMachine, StorageError> {
        Self::open_with(Arc::new(RealFs), dir)
    }

    /// [`StateMachine::open`] on the given file system (the crash tests use the in-memory
    /// one). Snapshots are sent from real files only.
    pub fn open_with(fs: Arc<dyn Fs>, dir: &Path) -> Result<StateMachine, StorageError> {
        let err = |e: String| sm_err(ErrorVerb::Read, e);
        fs.create_dir_all(dir).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        if fs.exists(&dir.join("snapshots")) {
            return Err(err(format!(
                "{}: holds snapshot files of an earlier format, which this version does not \
                 read; restore the node from its peers (start it with an empty data directory)",
                dir.join("snapshots").display()
            )));
        }
        let seq = AtomicU64::new(0);
        let current_root = match fs.read(&dir.join(CURRENT)) {
            Ok(name) => {
                let name = String::from_utf8_lossy(&name).trim().to_string();
                if !checkpoint::valid_name(&name) || !fs.exists(&dir.join(&name)) {
                    return Err(err(format!(
                        "{}: names no state root",
                        dir.join(CURRENT).display()
                    )));
                }
                name
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let name = format!("root-{}", unique(&seq));
                fs.create_dir_all(&dir.join(&name)).map_err(|e| sm_err(ErrorVerb::Write, e))?;
                write_atomic(&*fs, &dir.join(CURRENT), name.as_bytes())
                    .map_err(|e| sm_err(ErrorVerb::Write, e))?;
                name
            }
            Err(e) => return Err(err(e.to_string())),
        };
        for name in fs.list(dir).map_err(|e| err(e.to_string()))? {
            if (name.starts_with("root-") && name != current_root) || name.starts_with(".recv-") {
                fs.remove_dir_all(&dir.join(&name)).map_err(|e| err(e.to_string()))?;
            }
        }
        let root = dir.join(&current_root);
        let opened = open_root(&fs, &root).map_err(err)?;
        let sm = StateMachine {
            shared: Arc::new(Shared {
                fs,
                dir: dir.to_path_buf(),
                root: RwLock::new(root),
                collections: RwLock::new(BTreeMap::new()),
                applied: Mutex::new(AppliedState::default()),
                applied_index: AtomicU64::new(0),
                current: Mutex::new(None),
                persist: Mutex::new(()),
                receiving: Mutex::new(None),
                stats: Mutex::new(SnapshotStats::default()),
                seq,
                floor: watch::Sender::new(Floor::default()),
            }),
        };
        sm.swap_in(opened);
        Ok(sm)
    }

    /// Replaces the whole state with an opened root (applies are not running).
    fn swap_in(&self, o: Opened) {
        let s = &*self.shared;
        *s.collections.write() = o.collections;
        let mut a = s.applied.lock();
        match &o.current {
            Some(c) => {
                a.last = c.manifest.meta.last_log_id;
                a.membership = c.manifest.meta.last_membership.clone();
            }
            None => *a = AppliedState::default(),
        }
        s.applied_index.store(a.last.map_or(0, |l| l.index), Ordering::Release);
        self.publish(o.current);
    }

    /// Makes a durable checkpoint the current one and raises the log's purge floor to it.
    fn publish(&self, current: Option<Current>) {
        let index = current.as_ref().and_then(|c| c.manifest.meta.last_log_id).map(|l| l.index);
        *self.shared.current.lock() = current;
        self.shared.floor.send_modify(|f| f.index = index);
    }

    /// The purge floor, for [`crate::LogStore::bind_floor`].
    pub fn floor(&self) -> watch::Receiver<Floor> {
        self.shared.floor.subscribe()
    }

    /// The collection `name`, if it exists here.
    pub fn collection(&self, name: &str) -> Option<Arc<Replica>> {
        self.shared.collections.read().get(name).cloned()
    }

    /// Every collection, by name.
    pub fn collections(&self) -> Vec<Arc<Replica>> {
        self.shared.collections.read().values().cloned().collect()
    }

    /// The index of the last applied entry (0 before any).
    pub fn applied_index(&self) -> u64 {
        self.shared.applied_index.load(Ordering::Acquire)
    }

    /// The meta of the current snapshot.
    pub fn current_snapshot(&self) -> Option<SnapshotMeta<NodeId, BasicNode>> {
        self.shared.current.lock().as_ref().map(|c| c.manifest.meta.clone())
    }

    pub fn snapshot_stats(&self) -> SnapshotStats {
        let mut s = *self.shared.stats.lock();
        s.receiving = self.shared.receiving.lock().is_some() as u64;
        s
    }

    fn apply_entries(&self, entries: Vec<Entry<TypeConfig>>) -> Result<Vec<Applied>, StorageError> {
        let s = &*self.shared;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let index = e.log_id.index;
            let outcome = match e.payload {
                EntryPayload::Blank => Outcome::Done,
                EntryPayload::Normal(cmd) => self.apply_command(index, cmd)?,
                EntryPayload::Membership(m) => {
                    s.applied.lock().membership = StoredMembership::new(Some(e.log_id), m);
                    Outcome::Done
                }
            };
            s.applied.lock().last = Some(e.log_id);
            s.applied_index.store(index, Ordering::Release);
            out.push(Applied { index, outcome });
        }
        Ok(out)
    }

    /// Whether the node has room for one more collection of `shards` shards: at most
    /// [`MAX_COLLECTIONS`] collections and [`MAX_NODE_SHARDS`] shards in all (each shard runs
    /// a background thread). Deterministic on every replica at the same applied index.
    pub fn room_for(&self, shards: u32) -> Result<(), String> {
        let colls = self.shared.collections.read();
        if colls.len() >= MAX_COLLECTIONS {
            return Err(format!("the node holds {MAX_COLLECTIONS} collections, the most it may"));
        }
        let held: usize = colls.values().map(|r| r.coll().shard_count()).sum();
        if held + shards as usize > MAX_NODE_SHARDS {
            return Err(format!(
                "shards: the node holds {held} shards; {shards} more would pass the limit of \
                 {MAX_NODE_SHARDS}"
            ));
        }
        Ok(())
    }

    /// Applies one command; a refusal is an outcome, a storage failure is fatal to the node.
    fn apply_command(&self, index: u64, cmd: Command) -> Result<Outcome, StorageError> {
        let s = &*self.shared;
        let missing = |name: &str| Outcome::NotFound(format!("collection {name:?} does not exist"));
        let applied = |r: Result<(), DurableError>| match r {
            Ok(()) => Ok(Outcome::Done),
            Err(DurableError::Invalid(e @ freshvec_core::Error::PointNotFound { .. })) => {
                Ok(Outcome::NotFound(e.to_string()))
            }
            Err(DurableError::Invalid(e)) => Ok(Outcome::Invalid(e.to_string())),
            Err(e) => Err(sm_err(ErrorVerb::Write, e)),
        };
        Ok(match cmd {
            Command::CreateCollection { name, spec } => {
                if s.collections.read().contains_key(&name) {
                    return Ok(Outcome::Exists(format!("collection {name:?} exists")));
                }
                if let Err(e) = self.room_for(spec.shards) {
                    return Ok(Outcome::Invalid(e));
                }
                let params = match spec.params() {
                    Ok(p) => p,
                    Err(e) => return Ok(Outcome::Invalid(e)),
                };
                let dir = collection_dir(index);
                let path = s.root.read().join("collections").join(&dir);
                if s.fs.exists(&path) {
                    // Left by a crash before any checkpoint named it.
                    s.fs.remove_dir_all(&path).map_err(|e| sm_err(ErrorVerb::Write, e))?;
                }
                let durable = match DurableCollection::create_replicated(
                    s.fs.clone(),
                    &path,
                    params,
                    spec.shards as usize,
                ) {
                    Ok(d) => d,
                    Err(DurableError::Invalid(e)) => {
                        let _ = s.fs.remove_dir_all(&path);
                        return Ok(Outcome::Invalid(e.to_string()));
                    }
                    Err(e) => return Err(sm_err(ErrorVerb::Write, e)),
                };
                let replica = Replica { name: name.clone(), spec, dir, durable };
                s.collections.write().insert(name, Arc::new(replica));
                Outcome::Done
            }
            // The directory stays until no kept checkpoint names the collection.
            Command::DropCollection { name } => match s.collections.write().remove(&name) {
                Some(_) => Outcome::Done,
                None => missing(&name),
            },
            cmd => {
                let (collection, op) = cmd.op().expect("collection commands are matched above");
                let Some(r) = self.collection(&collection) else {
                    return Ok(missing(&collection));
                };
                applied(r.durable.apply_at(index, &op))?
            }
        })
    }

    /// The cut of a checkpoint at the applied state (see the module docs); `None` when the
    /// current checkpoint already holds it.
    fn cut(&self) -> Result<Option<NodeCut>, String> {
        let s = &*self.shared;
        let started = Instant::now();
        let (last, membership) = {
            let a = s.applied.lock();
            (a.last, a.membership.clone())
        };
        if s.current.lock().as_ref().is_some_and(|c| c.manifest.meta.last_log_id >= last) {
            return Ok(None);
        }
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: membership,
            snapshot_id: format!("{}-{}", last.map_or(0, |l| l.index), unique(&s.seq)),
        };
        let at = collection_index(&meta);
        let mut collections = Vec::new();
        for r in self.collections() {
            let cut = r.durable.cut(Some(at)).map_err(|e| format!("collection {}: {e}", r.name))?;
            collections.push((r, cut));
        }
        s.stats.lock().last_cut_us = started.elapsed().as_micros() as u64;
        Ok(Some(NodeCut { meta, collections }))
    }

    /// Writes a cut as the newest checkpoint and publishes it (unless a newer one was
    /// published meanwhile); returns what is current afterwards.
    fn write(&self, cut: NodeCut) -> Result<Current, String> {
        let s = &*self.shared;
        let _one = s.persist.lock();
        let started = Instant::now();
        if let Some(c) = s.current.lock().as_ref() {
            if c.manifest.meta.last_log_id >= cut.meta.last_log_id {
                return Ok(c.clone());
            }
        }
        let root = s.root.read().clone();
        let ckdir = root.join("checkpoints");
        let mut collections = Vec::new();
        let mut open = BTreeMap::new();
        for (r, c) in cut.collections {
            r.durable.write_checkpoint(c).map_err(|e| format!("collection {}: {e}", r.name))?;
            collections.push(ManifestCollection {
                name: r.name.clone(),
                spec: r.spec.clone(),
                dir: r.dir.clone(),
            });
            open.insert(r.name.clone(), r);
        }
        let manifest = NodeManifest { meta: cut.meta, collections };
        let name = manifest_name(&manifest.meta);
        let bytes = manifest.encode().map_err(|e| e.to_string())?;
        failpoint::hit("ckpt_before_manifest");
        write_atomic(&*s.fs, &ckdir.join(&name), &bytes).map_err(|e| e.to_string())?;
        failpoint::hit("ckpt_after_manifest");
        let files = files_of(&*s.fs, &root, &manifest, &open).map_err(|e| e.to_string())?;
        // What this checkpoint wrote: the manifests and posting images (vector files are
        // named up to their marks, not written).
        let written: u64 = files
            .files
            .iter()
            .filter(|(p, _)| p.starts_with("checkpoints/") || p.contains("/checkpoints/"))
            .map(|f| f.1)
            .sum();
        let current = Current { manifest, files };
        self.publish(Some(current.clone()));
        self.retain(&root).map_err(|e| format!("retention: {e}"))?;
        for r in open.values() {
            if let Err(e) = r.durable.compact(COMPACT_FACTOR, COMPACT_MIN_BYTES) {
                tracing::warn!("compacting collection {}: {e}", r.name);
            }
        }
        let mut st = s.stats.lock();
        st.last_build_ms = started.elapsed().as_millis() as u64;
        st.last_build_bytes = written;
        Ok(current)
    }

    /// Keeps the newest node checkpoints; removes every collection checkpoint, vector file
    /// generation and dropped collection's directory that none of them names.
    fn retain(&self, root: &Path) -> Result<(), String> {
        let fs = &*self.shared.fs;
        let ckdir = root.join("checkpoints");
        let mut names = fs.list(&ckdir).map_err(|e| e.to_string())?;
        names.retain(|n| manifest_key(n).is_some());
        let drop_n = names.len().saturating_sub(KEEP_CHECKPOINTS);
        for old in names.drain(..drop_n) {
            fs.remove_file(&ckdir.join(old)).map_err(|e| e.to_string())?;
        }
        fs.sync_dir(&ckdir).map_err(|e| e.to_string())?;
        let kept: Vec<NodeManifest> = names
            .iter()
            .map(|n| checkpoint::read_manifest(fs, &ckdir.join(n)))
            .collect::<Result<_, _>>()?;
        let live = self.collections();
        for r in &live {
            let keep: Vec<u64> = kept
                .iter()
                .filter(|m| m.collections.iter().any(|c| c.dir == r.dir))
                .map(|m| collection_index(&m.meta))
                .collect();
            r.durable.retain(&keep).map_err(|e| format!("collection {}: {e}", r.name))?;
        }
        // A directory goes when no kept checkpoint names it and its collection is gone. One
        // created after the newest kept checkpoint is never taken: its collection may be
        // being created right now, beside this, and not yet be among the live ones.
        let newest = kept.iter().map(|m| collection_index(&m.meta)).max().unwrap_or(0);
        let cdir = root.join("collections");
        for d in fs.list(&cdir).map_err(|e| e.to_string())? {
            let named = kept.iter().any(|m| m.collections.iter().any(|c| c.dir == d));
            let created = d.strip_prefix("c-").and_then(|i| i.parse::<u64>().ok());
            let before = created.is_some_and(|i| i <= newest);
            if !named && before && !live.iter().any(|r| r.dir == d) {
                fs.remove_dir_all(&cdir.join(&d)).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    fn snapshot_of(c: &Current) -> crate::Snapshot {
        crate::Snapshot { meta: c.manifest.meta.clone(), snapshot: Box::new(c.files.clone()) }
    }

    /// A staging directory for a snapshot about to be received; one begun earlier is
    /// abandoned (a follower receives one snapshot at a time).
    pub fn begin_reception(&self, files: Vec<(String, u64)>) -> std::io::Result<Staging> {
        let s = &*self.shared;
        let dir = s.dir.join(format!(".recv-{}", unique(&s.seq)));
        let staging = Staging::create(s.fs.clone(), dir.clone(), files)?;
        if let Some((old, _)) = s.receiving.lock().replace((dir, Instant::now())) {
            let _ = s.fs.remove_dir_all(&old);
        }
        Ok(staging)
    }

    /// Ends a reception that failed: its directory goes.
    pub fn abandon_reception(&self, dir: &Path) {
        let mut r = self.shared.receiving.lock();
        if r.as_ref().is_some_and(|(d, _)| d == dir) {
            *r = None;
        }
        let _ = self.shared.fs.remove_dir_all(dir);
    }

    /// Installs a snapshot: a staged reception (or a copy of another node's checkpoint made
    /// here) becomes a new state root, is opened (every file verified), and replaces the
    /// state when `CURRENT` names it.
    fn install(
        &self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        files: SnapshotFiles,
    ) -> Result<(), String> {
        let s = &*self.shared;
        let staged = match files.staged {
            true => files,
            false => {
                let staging =
                    self.begin_reception(files.files.clone()).map_err(|e| e.to_string())?;
                let dir = staging.dir().to_path_buf();
                staging.copy_from(&files).map_err(|e| {
                    self.abandon_reception(&dir);
                    e.to_string()
                })?
            }
        };
        let _one = s.persist.lock();
        let started = s.receiving.lock().take_if(|(d, _)| *d == staged.base).map(|(_, t)| t);
        let name = format!("root-{}", unique(&s.seq));
        let root = s.dir.join(&name);
        let refuse = |root: &Path, why: String| {
            let _ = s.fs.remove_dir_all(root);
            format!("received snapshot refused: {why}")
        };
        failpoint::hit("snap_install_before_rename");
        s.fs.rename(&staged.base, &root).map_err(|e| refuse(&staged.base, e.to_string()))?;
        failpoint::hit("snap_install_after_rename");
        let manifest_path = root.join("checkpoints").join(manifest_name(meta));
        let m = checkpoint::read_manifest(&*s.fs, &manifest_path).map_err(|e| refuse(&root, e))?;
        if m.meta != *meta {
            return Err(refuse(&root, "its manifest differs from the sender's meta".into()));
        }
        let opening = Instant::now();
        let opened = open_manifest(&s.fs, &root, &m).map_err(|e| refuse(&root, e))?;
        tracing::info!(
            "snapshot opened (every file verified) in {} ms",
            opening.elapsed().as_millis()
        );
        s.fs.sync_dir(&s.dir).map_err(|e| refuse(&root, e.to_string()))?;
        write_atomic(&*s.fs, &s.dir.join(CURRENT), name.as_bytes())
            .map_err(|e| refuse(&root, e.to_string()))?;
        failpoint::hit("snap_install_after_swap");
        let old = std::mem::replace(&mut *s.root.write(), root);
        self.swap_in(opened);
        // Readers holding the old collections keep their mappings; the files go now.
        if let Err(e) = s.fs.remove_dir_all(&old) {
            tracing::warn!("removing the replaced state root {}: {e}", old.display());
        }
        let mut st = s.stats.lock();
        st.installed += 1;
        st.last_install_ms = started.map_or(0, |t| t.elapsed().as_millis() as u64);
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for Builder {
    async fn build_snapshot(&mut self) -> Result<crate::Snapshot, StorageError> {
        let cut = std::mem::replace(&mut *self.cut.lock(), Ok(None))
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let sm = self.sm.clone();
        let current = tokio::task::spawn_blocking(move || match cut {
            Some(cut) => sm.write(cut).map(Some),
            None => Ok(sm.shared.current.lock().clone()),
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?
        .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        // A cut is skipped only when a checkpoint already holds the applied state.
        let c = current.ok_or_else(|| snap_err(ErrorVerb::Read, "no checkpoint to send"))?;
        Ok(StateMachine::snapshot_of(&c))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, BasicNode>), StorageError> {
        let a = self.shared.applied.lock();
        Ok((a.last, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Applied>, StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let sm = self.clone();
        tokio::task::spawn_blocking(move || sm.apply_entries(entries))
            .await
            .map_err(|e| sm_err(ErrorVerb::Write, e))?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        let sm = self.clone();
        let cut = tokio::task::spawn_blocking(move || sm.cut())
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        Builder { sm: self.clone(), cut: Mutex::new(cut) }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFiles>, StorageError> {
        // Snapshots arrive through the peer service's file stream, never through here.
        Ok(Box::new(SnapshotFiles { base: PathBuf::new(), files: Vec::new(), staged: false }))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<SnapshotFiles>,
    ) -> Result<(), StorageError> {
        let meta = meta.clone();
        let installing = self.clone();
        let r = tokio::task::spawn_blocking(move || installing.install(&meta, *snapshot))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        if let Err(why) = &r {
            // Raft stops on this error; a purge waiting for the install must not wait on.
            self.shared.floor.send_modify(|f| f.failed = Some(why.clone()));
        }
        r.map_err(|e| snap_err(ErrorVerb::Write, e))
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<crate::Snapshot>, StorageError> {
        Ok(self.shared.current.lock().as_ref().map(StateMachine::snapshot_of))
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
