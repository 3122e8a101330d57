//! The Raft log store, built on the core journal.
//!
//! - Entry `i` of the Raft log is journal entry `i + 1` (openraft numbers from 0, the journal
//!   from 1); each journal entry is one postcard-encoded openraft entry.
//! - `append` writes the entries at once and hands the fsync to a blocking thread; openraft's
//!   callback runs only after that fsync returned (concurrent appends share fsyncs through the
//!   journal's group commit). A failed fsync poisons the journal: the node stops writing.
//! - `purge` persists the purged entry's log id as the journal's purge tag, in the same atomic
//!   write as the purged index, and may go past the last entry held. It never goes past the
//!   state's newest durable checkpoint (the [`Floor`] bound by [`LogStore::bind_floor`]): a
//!   follower's purge for a received snapshot waits until the install is on disk.
//! - The vote is one framed record in `DIR/vote`, replaced atomically and fsynced before
//!   `save_vote` returns.
//! - Recent entries stay in memory (up to [`CACHE_BYTES`] of them) for replication; older ones
//!   are read back from the journal.

use crate::state::Floor;
use crate::{storage_err, LogId, NodeId, StorageError, TypeConfig};
use freshvec_core::storage::frame;
use freshvec_core::storage::fs::{write_atomic, Fs, RealFs};
use freshvec_core::storage::journal::{Journal, JournalOptions};
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, ErrorSubject, ErrorVerb, OptionalSend, RaftLogId, Vote};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::watch;

/// How many bytes of recent entries stay in memory.
pub const CACHE_BYTES: usize = 256 << 20;
/// The most entry bytes one AppendEntries carries (one entry larger than this goes alone).
pub const REPLICATION_BATCH_BYTES: usize = 4 << 20;

#[derive(Debug, Default)]
struct Cache {
    /// Recent entries by Raft index, with their encoded size.
    entries: BTreeMap<u64, (Entry<TypeConfig>, usize)>,
    bytes: usize,
    last: Option<LogId>,
    purged: Option<LogId>,
    vote: Option<Vote<NodeId>>,
}

#[derive(Debug)]
struct Inner {
    fs: Arc<dyn Fs>,
    journal: Journal,
    vote_path: PathBuf,
    cache: Mutex<Cache>,
    /// Bytes appended since this process started (for the snapshot-by-bytes policy).
    appended_bytes: AtomicU64,
    /// How far purges may go; unbound, they go where asked.
    floor: OnceLock<watch::Receiver<Floor>>,
}

/// The log store; clones share it (the log reader is a clone).
#[derive(Debug, Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

fn decode_entry(bytes: &[u8]) -> Result<Entry<TypeConfig>, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Read, e))
}

impl LogStore {
    /// Opens (or creates) the log in `dir`: the journal in `dir/log`, the vote in `dir/vote`.
    pub fn open(dir: &Path) -> Result<LogStore, StorageError> {
        Self::open_with(Arc::new(RealFs), dir)
    }

    /// [`LogStore::open`] over any file system (tests use the in-memory one).
    pub fn open_with(fs: Arc<dyn Fs>, dir: &Path) -> Result<LogStore, StorageError> {
        let read_err =
            |e: &dyn std::fmt::Display| storage_err(ErrorSubject::Logs, ErrorVerb::Read, e);
        let journal = Journal::open(fs.clone(), &dir.join("log"), JournalOptions::default())
            .map_err(|e| read_err(&e))?;
        let mut cache = Cache::default();
        let tag = journal.purged_tag();
        if !tag.is_empty() {
            let id: LogId = postcard::from_bytes(&tag).map_err(|e| read_err(&e))?;
            cache.purged = Some(id);
        }
        let mut failure = None;
        journal
            .read_from(journal.first_index(), |_, data| match decode_entry(data) {
                Ok(entry) if failure.is_none() => {
                    cache.last = Some(entry.log_id);
                    cache.bytes += data.len();
                    cache.entries.insert(entry.log_id.index, (entry, data.len()));
                    evict(&mut cache);
                }
                Ok(_) => {}
                Err(e) => failure = Some(e),
            })
            .map_err(|e| read_err(&e))?;
        if let Some(e) = failure {
            return Err(e);
        }
        if cache.last.is_none() {
            cache.last = cache.purged;
        }
        let vote_path = dir.join("vote");
        if fs.exists(&vote_path) {
            let bytes = fs.read(&vote_path).map_err(|e| read_err(&e))?;
            let scan =
                frame::scan(frame::RAFT_VOTE, &vote_path, &bytes).map_err(|e| read_err(&e))?;
            match scan.records.first() {
                Some((_, p)) if !scan.torn => {
                    cache.vote = Some(postcard::from_bytes(p).map_err(|e| read_err(&e))?)
                }
                _ => return Err(read_err(&format!("{}: unreadable", vote_path.display()))),
            }
        }
        let inner = Inner {
            fs,
            journal,
            vote_path,
            cache: Mutex::new(cache),
            appended_bytes: AtomicU64::new(0),
            floor: OnceLock::new(),
        };
        Ok(LogStore { inner: Arc::new(inner) })
    }

    /// Purges wait until `floor` covers what they drop (bind it before Raft starts).
    pub fn bind_floor(&self, floor: watch::Receiver<Floor>) {
        let _ = self.inner.floor.set(floor);
    }

    /// Waits until the state's newest durable checkpoint covers `index`.
    async fn await_floor(&self, index: u64) -> Result<(), String> {
        let Some(floor) = self.inner.floor.get() else { return Ok(()) };
        let mut floor = floor.clone();
        let waiting = Instant::now();
        let f = floor
            .wait_for(|f| f.failed.is_some() || f.index >= Some(index))
            .await
            .map_err(|_| "the state machine is gone".to_string())?
            .clone();
        if let Some(why) = f.failed {
            return Err(format!("no checkpoint will cover entry {index}: {why}"));
        }
        let waited = waiting.elapsed();
        if waited.as_millis() > 0 {
            tracing::info!(
                "purge to entry {index} waited {} ms for the snapshot install",
                waited.as_millis()
            );
        }
        Ok(())
    }

    /// Whether this store holds any Raft state: a vote, an entry or a purge.
    pub fn has_state(&self) -> bool {
        let c = self.inner.cache.lock();
        c.vote.is_some() || c.last.is_some()
    }

    /// The index of the last entry held (or purged), if any.
    pub fn last_index(&self) -> Option<u64> {
        self.inner.cache.lock().last.map(|l| l.index)
    }

    /// Bytes appended since the process started.
    pub fn appended_bytes(&self) -> u64 {
        self.inner.appended_bytes.load(Ordering::Relaxed)
    }

    /// The journal's fsync latencies.
    pub fn fsync_stats(&self) -> &freshvec_core::storage::journal::FsyncStats {
        self.inner.journal.fsync_stats()
    }

    /// Entries `[start, end)`, stopping (after the first) once they hold `budget` encoded
    /// bytes.
    fn entries(
        &self,
        start: u64,
        end: u64,
        budget: usize,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let c = self.inner.cache.lock();
        let floor = c.purged.map_or(0, |p| p.index + 1);
        let start = start.max(floor);
        if start >= end {
            return Ok(Vec::new());
        }
        let cached_from = c.entries.keys().next().copied().unwrap_or(u64::MAX);
        let mut out = Vec::new();
        let (bytes, full) = (std::cell::Cell::new(0usize), std::cell::Cell::new(false));
        let room = |size: usize, taken: usize| {
            full.set(full.get() || (taken > 0 && bytes.get() >= budget));
            bytes.set(bytes.get().saturating_add(size));
            !full.get()
        };
        let mut from = start;
        let c = if start < cached_from {
            drop(c);
            let mut failure = None;
            let to = end.min(cached_from);
            self.inner
                .journal
                .read_range(start + 1, to + 1, |_, data| {
                    if failure.is_none() && room(data.len(), out.len()) {
                        match decode_entry(data) {
                            Ok(e) => out.push(e),
                            Err(e) => failure = Some(e),
                        }
                    }
                })
                .map_err(|e| storage_err(ErrorSubject::Logs, ErrorVerb::Read, e))?;
            if let Some(e) = failure {
                return Err(e);
            }
            if full.get() {
                return Ok(out);
            }
            from = to;
            self.inner.cache.lock()
        } else {
            c
        };
        for (_, (e, size)) in c.entries.range(from..end) {
            if !room(*size, out.len()) {
                break;
            }
            out.push(e.clone());
        }
        Ok(out)
    }
}

/// Drops the oldest cached entries past the budget (the journal still holds them).
fn evict(c: &mut Cache) {
    while c.bytes > CACHE_BYTES && c.entries.len() > 1 {
        let (_, (_, size)) = c.entries.pop_first().expect("not empty");
        c.bytes -= size;
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        let (start, end) = bounds(&range);
        self.entries(start, end, usize::MAX)
    }

    /// Replication reads through here: at most [`REPLICATION_BATCH_BYTES`] of entries per
    /// AppendEntries (at least one entry), so a run of large writes never makes a message
    /// the follower refuses or one that cannot arrive within the RPC's timeout.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError> {
        self.entries(start, end, REPLICATION_BATCH_BYTES)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let c = self.inner.cache.lock();
        Ok(LogState { last_purged_log_id: c.purged, last_log_id: c.last.max(c.purged) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let err = |e: &dyn std::fmt::Display| storage_err(ErrorSubject::Vote, ErrorVerb::Write, e);
        let payload = postcard::to_stdvec(vote).map_err(|e| err(&e))?;
        let mut file = frame::header(frame::RAFT_VOTE).to_vec();
        frame::record(&payload, &mut file);
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            write_atomic(&*inner.fs, &inner.vote_path, &file).map_err(|e| err(&e))
        })
        .await
        .map_err(|e| err(&e))??;
        self.inner.cache.lock().vote = Some(*vote);
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.inner.cache.lock().vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let err = |e: &dyn std::fmt::Display| storage_err(ErrorSubject::Logs, ErrorVerb::Write, e);
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let Some(first) = entries.first() else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let encoded: Vec<Vec<u8>> = entries
            .iter()
            .map(postcard::to_stdvec)
            .collect::<Result<_, _>>()
            .map_err(|e| err(&e))?;
        let journal = &self.inner.journal;
        // Raft entry i is journal entry i + 1: the next journal entry is Raft entry `next`.
        let next = journal.last_index();
        let empty = journal.first_index() > next;
        if first.log_id.index > next && empty {
            // An empty log may start anywhere: restart the journal there, keeping the
            // purged log id as it is.
            let purged = self.inner.cache.lock().purged;
            let tag = match purged {
                Some(p) => postcard::to_stdvec(&p).map_err(|e| err(&e))?,
                None => Vec::new(),
            };
            journal.purge_tagged(first.log_id.index, &tag).map_err(|e| err(&e))?;
        } else if first.log_id.index < next {
            // Rewriting the tail: what was at those indexes goes first.
            journal.truncate_after(first.log_id.index).map_err(|e| err(&e))?;
            let mut c = self.inner.cache.lock();
            let dropped = c.entries.split_off(&first.log_id.index);
            c.bytes -= dropped.values().map(|(_, s)| s).sum::<usize>();
        } else if first.log_id.index != next {
            return Err(err(&format!(
                "append at Raft index {} but the next entry is {next}",
                first.log_id.index
            )));
        }
        let refs: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        let last = journal.write(&refs).map_err(|e| err(&e))?;
        let bytes: usize = encoded.iter().map(Vec::len).sum();
        self.inner.appended_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        {
            let mut c = self.inner.cache.lock();
            for (e, data) in entries.into_iter().zip(&encoded) {
                c.last = Some(e.log_id);
                c.bytes += data.len();
                c.entries.insert(e.log_id.index, (e, data.len()));
            }
            evict(&mut c);
        }
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let r = inner.journal.sync_to(last).map_err(std::io::Error::other);
            callback.log_io_completed(r);
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let err = |e: &dyn std::fmt::Display| {
            storage_err(ErrorSubject::Log(log_id), ErrorVerb::Delete, e)
        };
        // Entries from `log_id.index` on go: journal entries after `log_id.index`.
        self.inner.journal.truncate_after(log_id.index).map_err(|e| err(&e))?;
        let before = match log_id.index.checked_sub(1) {
            None => None,
            Some(prev) => {
                self.entries(prev, prev + 1, usize::MAX)?.first().map(|e| *e.get_log_id())
            }
        };
        let mut c = self.inner.cache.lock();
        let dropped = c.entries.split_off(&log_id.index);
        c.bytes -= dropped.values().map(|(_, s)| s).sum::<usize>();
        c.last = before.or(c.purged);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let err = |e: &dyn std::fmt::Display| {
            storage_err(ErrorSubject::Log(log_id), ErrorVerb::Delete, e)
        };
        self.await_floor(log_id.index).await.map_err(|e| err(&e))?;
        let tag = postcard::to_stdvec(&log_id).map_err(|e| err(&e))?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.journal.purge_tagged(log_id.index + 1, &tag))
            .await
            .map_err(|e| err(&e))?
            .map_err(|e| err(&e))?;
        let mut c = self.inner.cache.lock();
        let kept = c.entries.split_off(&(log_id.index + 1));
        let dropped = std::mem::replace(&mut c.entries, kept);
        c.bytes -= dropped.values().map(|(_, s)| s).sum::<usize>();
        c.purged = Some(log_id);
        if c.last < Some(log_id) {
            c.last = Some(log_id);
        }
        Ok(())
    }
}
