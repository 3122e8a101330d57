//! The state machine: the collections of a node, as the Raft log builds them.
//!
//! - Commands apply in log order, each at its log index; the replicated version of a record is
//!   the index of the write that set it. Refusals (unknown collection, invalid rows) are
//!   deterministic and change nothing.
//! - Each collection keeps an order-independent content digest: the wrapping sum over its live
//!   records of a hash of (id, write index, stored vector). It is identical on every replica at
//!   the same applied index; LIRE's replica-local moves never enter it.
//! - The state is durable only through snapshots (`DIR/snapshots/snap-*.snap`, see
//!   [`crate::snapshot`]): on restart the newest one that verifies is restored, and openraft
//!   replays the log after it (the log is never purged past the newest snapshot).
//! - A snapshot is built under the apply lock (writes wait while it is written) with the
//!   engine's maintenance held; received snapshots are written to a temporary file, verified,
//!   renamed into place and only then swapped in.

use crate::command::{Applied, CollectionSpec, Command, Outcome, MAX_COLLECTIONS, MAX_NODE_SHARDS};
use crate::snapshot;
use crate::{storage_err, LogId, NodeId, StorageError, TypeConfig};
use freshvec_core::{Collection, Error as CoreError, Index};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::{
    BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, SnapshotMeta,
    StoredMembership,
};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

/// A collection's digest: each live id's record hash and their wrapping sum.
#[derive(Debug, Default)]
pub struct Digest {
    pub records: FxHashMap<u64, u64>,
    pub sum: u64,
}

impl Digest {
    fn set(&mut self, id: u64, h: u64) {
        let old = self.records.insert(id, h).unwrap_or(0);
        self.sum = self.sum.wrapping_sub(old).wrapping_add(h);
    }

    fn remove(&mut self, id: u64) {
        if let Some(old) = self.records.remove(&id) {
            self.sum = self.sum.wrapping_sub(old);
        }
    }
}

/// The hash of one record: (id, write index, stored vector).
fn record_hash(id: u64, index: u64, v: &[f32]) -> u64 {
    let mut a = crc32fast::Hasher::new_with_initial(0x9e37_79b9);
    let mut b = crc32fast::Hasher::new_with_initial(0x85eb_ca6b);
    for h in [&mut a, &mut b] {
        h.update(&id.to_le_bytes());
        h.update(&index.to_le_bytes());
        for x in v {
            h.update(&x.to_le_bytes());
        }
    }
    let x = ((a.finalize() as u64) << 32) | b.finalize() as u64;
    x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ id.rotate_left(29)
}

/// One collection of the state machine.
#[derive(Debug)]
pub struct Replica {
    pub name: String,
    pub spec: CollectionSpec,
    pub coll: Collection,
    pub digest: Mutex<Digest>,
}

impl Replica {
    pub fn new(name: String, spec: CollectionSpec, coll: Collection, digest: Digest) -> Replica {
        Replica { name, spec, coll, digest: Mutex::new(digest) }
    }

    /// (digest, live vectors).
    pub fn digest(&self) -> (u64, u64) {
        let d = self.digest.lock();
        (d.sum, d.records.len() as u64)
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
    /// How long the last install took, from its first chunk to the swap (ms).
    pub last_install_ms: u64,
    /// How long the last build took (ms), and its size in bytes.
    pub last_build_ms: u64,
    pub last_build_bytes: u64,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    /// Serialises applies, snapshot builds and installs.
    apply: Mutex<()>,
    collections: RwLock<BTreeMap<String, Arc<Replica>>>,
    applied: Mutex<AppliedState>,
    applied_index: AtomicU64,
    current: Mutex<Option<(SnapshotMeta<NodeId, BasicNode>, PathBuf)>>,
    /// Files being received, and when the first one started.
    receiving: Mutex<(Vec<PathBuf>, Option<Instant>)>,
    stats: Mutex<SnapshotStats>,
    seq: AtomicU64,
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

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// `snap-{applied index + 1:020}-{unique}.snap`: names sort by what they hold.
fn snap_name(last: Option<LogId>, unique: &str) -> String {
    format!("snap-{:020}-{unique}.snap", last.map_or(0, |l| l.index + 1))
}

impl StateMachine {
    /// Opens the state in `dir`: the newest snapshot that verifies (stray temporary files of
    /// an interrupted build or transfer are removed).
    pub fn open(dir: &Path) -> Result<StateMachine, StorageError> {
        let snaps = dir.join("snapshots");
        std::fs::create_dir_all(&snaps).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let mut names: Vec<String> = std::fs::read_dir(&snaps)
            .map_err(|e| sm_err(ErrorVerb::Read, e))?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        for stray in names.iter().filter(|n| n.starts_with(".tmp-") || n.starts_with(".recv-")) {
            std::fs::remove_file(snaps.join(stray)).map_err(|e| sm_err(ErrorVerb::Delete, e))?;
        }
        names.retain(|n| n.starts_with("snap-") && n.ends_with(".snap"));
        names.sort();
        let mut restored = None;
        for name in names.iter().rev() {
            let path = snaps.join(name);
            match snapshot::read(&path) {
                Ok(r) => {
                    restored = Some((r, path));
                    break;
                }
                // Never opened; left in place for inspection.
                Err(e) => tracing::warn!("skipping snapshot that does not verify: {e}"),
            }
        }
        let sm = StateMachine {
            shared: Arc::new(Shared {
                dir: dir.to_path_buf(),
                apply: Mutex::new(()),
                collections: RwLock::new(BTreeMap::new()),
                applied: Mutex::new(AppliedState::default()),
                applied_index: AtomicU64::new(0),
                current: Mutex::new(None),
                receiving: Mutex::new((Vec::new(), None)),
                stats: Mutex::new(SnapshotStats::default()),
                seq: AtomicU64::new(0),
            }),
        };
        if let Some((r, path)) = restored {
            sm.swap_in(r, path);
        }
        Ok(sm)
    }

    /// Replaces the whole state with a restored snapshot (the apply lock held or not needed).
    fn swap_in(&self, r: snapshot::Restored, path: PathBuf) {
        let s = &*self.shared;
        *s.collections.write() = r.collections.into_iter().map(|c| (c.name.clone(), c)).collect();
        let mut a = s.applied.lock();
        a.last = r.meta.last_log_id;
        a.membership = r.meta.last_membership.clone();
        s.applied_index.store(a.last.map_or(0, |l| l.index), Ordering::Release);
        let old = s.current.lock().replace((r.meta, path.clone()));
        if let Some((_, old)) = old.filter(|(_, p)| *p != path) {
            let _ = std::fs::remove_file(old);
        }
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
        self.shared.current.lock().as_ref().map(|(m, _)| m.clone())
    }

    pub fn snapshot_stats(&self) -> SnapshotStats {
        let mut s = *self.shared.stats.lock();
        s.receiving = self.shared.receiving.lock().0.len() as u64;
        s
    }

    fn unique(&self) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{nanos}-{}", self.shared.seq.fetch_add(1, Ordering::Relaxed))
    }

    fn apply_entries(&self, entries: Vec<Entry<TypeConfig>>) -> Vec<Applied> {
        let s = &*self.shared;
        let _serial = s.apply.lock();
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let index = e.log_id.index;
            let outcome = match e.payload {
                EntryPayload::Blank => Outcome::Done,
                EntryPayload::Normal(cmd) => self.apply_command(index, cmd),
                EntryPayload::Membership(m) => {
                    s.applied.lock().membership = StoredMembership::new(Some(e.log_id), m);
                    Outcome::Done
                }
            };
            s.applied.lock().last = Some(e.log_id);
            s.applied_index.store(index, Ordering::Release);
            out.push(Applied { index, outcome });
        }
        out
    }

    /// Whether the node has room for one more collection of `shards` shards: at most
    /// [`MAX_COLLECTIONS`] collections and [`MAX_NODE_SHARDS`] shards in all (each shard runs
    /// a background thread). Deterministic on every replica at the same applied index.
    pub fn room_for(&self, shards: u32) -> Result<(), String> {
        let colls = self.shared.collections.read();
        if colls.len() >= MAX_COLLECTIONS {
            return Err(format!("the node holds {MAX_COLLECTIONS} collections, the most it may"));
        }
        let held: usize = colls.values().map(|r| r.coll.shard_count()).sum();
        if held + shards as usize > MAX_NODE_SHARDS {
            return Err(format!(
                "shards: the node holds {held} shards; {shards} more would pass the limit of \
                 {MAX_NODE_SHARDS}"
            ));
        }
        Ok(())
    }

    fn apply_command(&self, index: u64, cmd: Command) -> Outcome {
        let s = &*self.shared;
        let missing = |name: &str| Outcome::NotFound(format!("collection {name:?} does not exist"));
        match cmd {
            Command::CreateCollection { name, spec } => {
                if s.collections.read().contains_key(&name) {
                    return Outcome::Exists(format!("collection {name:?} exists"));
                }
                if let Err(e) = self.room_for(spec.shards) {
                    return Outcome::Invalid(e);
                }
                let coll = match spec.params().and_then(|p| {
                    Collection::new(p, spec.shards as usize).map_err(|e| e.to_string())
                }) {
                    Ok(c) => c,
                    Err(e) => return Outcome::Invalid(e),
                };
                let replica = Replica::new(name.clone(), spec, coll, Digest::default());
                s.collections.write().insert(name, Arc::new(replica));
                Outcome::Done
            }
            Command::DropCollection { name } => match s.collections.write().remove(&name) {
                Some(_) => Outcome::Done,
                None => missing(&name),
            },
            Command::Upsert { collection, ids, vectors } => {
                let Some(r) = self.collection(&collection) else { return missing(&collection) };
                let rows = match r.coll.validate_upsert(&ids, &vectors) {
                    Ok(rows) => rows,
                    Err(e) => return Outcome::Invalid(e.to_string()),
                };
                // A committed entry cannot be refused for load: wait out the backpressure.
                loop {
                    match r.coll.upsert_valid(&ids, &rows) {
                        Err(CoreError::Overloaded { .. }) => r.coll.wait_idle(),
                        Err(e) => return Outcome::Invalid(e.to_string()),
                        Ok(()) => break,
                    }
                }
                let dim = r.coll.dim();
                let mut d = r.digest.lock();
                for (id, row) in ids.iter().zip(rows.chunks_exact(dim)) {
                    d.set(*id, record_hash(*id, index, row));
                }
                Outcome::Done
            }
            Command::Delete { collection, ids } => {
                let Some(r) = self.collection(&collection) else { return missing(&collection) };
                r.coll.delete(&ids);
                let mut d = r.digest.lock();
                for id in &ids {
                    d.remove(*id);
                }
                Outcome::Done
            }
        }
    }

    /// Writes a snapshot of the applied state; returns its meta and path.
    fn build(&self) -> Result<(SnapshotMeta<NodeId, BasicNode>, PathBuf), StorageError> {
        let s = &*self.shared;
        let started = Instant::now();
        let _serial = s.apply.lock();
        let (last, membership) = {
            let a = s.applied.lock();
            (a.last, a.membership.clone())
        };
        if let Some((meta, path)) = s.current.lock().as_ref() {
            if meta.last_log_id == last {
                return Ok((meta.clone(), path.clone()));
            }
        }
        let replicas = self.collections();
        let _holds: Vec<_> = replicas
            .iter()
            .flat_map(|r| r.coll.shards().iter().map(Index::hold_maintenance))
            .collect();
        let unique = self.unique();
        let meta = SnapshotMeta {
            last_log_id: last,
            last_membership: membership,
            snapshot_id: format!("{}-{unique}", last.map_or(0, |l| l.index)),
        };
        let dir = s.dir.join("snapshots");
        let name = snap_name(last, &unique);
        let tmp = dir.join(format!(".tmp-{name}"));
        let bytes =
            snapshot::write(&tmp, &meta, &replicas).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let path = dir.join(name);
        std::fs::rename(&tmp, &path).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        sync_dir(&dir).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let old = s.current.lock().replace((meta.clone(), path.clone()));
        if let Some((_, old)) = old {
            let _ = std::fs::remove_file(old);
        }
        let mut st = s.stats.lock();
        st.last_build_ms = started.elapsed().as_millis() as u64;
        st.last_build_bytes = bytes;
        Ok((meta, path))
    }

    /// Verifies a received snapshot file, moves it into place and swaps the state for it.
    fn install(
        &self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        file: PathBuf,
    ) -> Result<(), StorageError> {
        let s = &*self.shared;
        let refuse = |why: String| {
            let _ = std::fs::remove_file(&file);
            s.receiving.lock().0.retain(|p| *p != file);
            snap_err(ErrorVerb::Read, format!("received snapshot refused: {why}"))
        };
        let restored = snapshot::read(&file).map_err(&refuse)?;
        if restored.meta != *meta {
            return Err(refuse("its meta differs from the sender's".into()));
        }
        let dir = s.dir.join("snapshots");
        let path = dir.join(snap_name(meta.last_log_id, &self.unique()));
        std::fs::rename(&file, &path).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        sync_dir(&dir).map_err(|e| snap_err(ErrorVerb::Write, e))?;
        let _serial = s.apply.lock();
        self.swap_in(restored, path);
        // Installed: any other reception in progress is obsolete.
        let started = {
            let mut r = s.receiving.lock();
            for other in r.0.drain(..).filter(|p| *p != file) {
                let _ = std::fs::remove_file(other);
            }
            r.1.take()
        };
        let mut st = s.stats.lock();
        st.installed += 1;
        st.last_install_ms = started.map_or(0, |t| t.elapsed().as_millis() as u64);
        Ok(())
    }

    fn open_current(&self) -> Result<Option<snapshot::Snapshot>, StorageError> {
        let Some((meta, path)) = self.shared.current.lock().clone() else { return Ok(None) };
        let file = std::fs::File::open(&path).map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(Some(snapshot::Snapshot { meta, snapshot: Box::new(tokio::fs::File::from_std(file)) }))
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<snapshot::Snapshot, StorageError> {
        let sm = self.clone();
        let (meta, path) = tokio::task::spawn_blocking(move || sm.build())
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))??;
        let file = tokio::fs::File::open(&path).await.map_err(|e| snap_err(ErrorVerb::Read, e))?;
        Ok(snapshot::Snapshot { meta, snapshot: Box::new(file) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

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
            .map_err(|e| sm_err(ErrorVerb::Write, e))
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let path = self.shared.dir.join("snapshots").join(format!(".recv-{}", self.unique()));
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .await
            .map_err(|e| snap_err(ErrorVerb::Write, e))?;
        // A follower receives one snapshot at a time: one begun earlier was abandoned.
        let mut r = self.shared.receiving.lock();
        for old in r.0.drain(..) {
            let _ = std::fs::remove_file(old);
        }
        r.0.push(path);
        r.1 = Some(Instant::now());
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        use std::os::unix::fs::MetadataExt;
        let werr = |e: std::io::Error| snap_err(ErrorVerb::Write, e);
        let mut file = *snapshot;
        file.flush().await.map_err(werr)?;
        let ino = file.metadata().await.map_err(werr)?.ino();
        // The file openraft wrote the chunks into is one of ours; otherwise copy it first.
        let ours = self
            .shared
            .receiving
            .lock()
            .0
            .iter()
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.ino() == ino))
            .cloned();
        let path = match ours {
            Some(p) => p,
            None => {
                let p = self.shared.dir.join("snapshots").join(format!(".recv-{}", self.unique()));
                let mut out = tokio::fs::File::create(&p).await.map_err(werr)?;
                file.seek(std::io::SeekFrom::Start(0)).await.map_err(werr)?;
                tokio::io::copy(&mut file, &mut out).await.map_err(werr)?;
                out.flush().await.map_err(werr)?;
                self.shared.receiving.lock().0.push(p.clone());
                p
            }
        };
        file.sync_all().await.map_err(werr)?;
        drop(file);
        let sm = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            let synced = std::fs::File::open(&path).and_then(|f| f.sync_all());
            synced.map_err(|e| snap_err(ErrorVerb::Write, e))?;
            sm.install(&meta, path)
        })
        .await
        .map_err(|e| snap_err(ErrorVerb::Write, e))?
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<snapshot::Snapshot>, StorageError> {
        self.open_current()
    }
}
