//! The journal: a segmented, append-only log of framed records, each carrying its log index.
//! It is the embedded write-ahead log and, later, the Raft log store.
//!
//! - **Group commit**: appenders write their records, then wait until an fsync covers them;
//!   one of the waiters runs the fsync for everyone written so far. Nothing is acknowledged
//!   before its fsync returned.
//! - **Poisoning**: after a failed fsync the journal refuses every write until it is reopened,
//!   and never retries the fsync (the kernel may have dropped the dirty pages).
//! - **Recovery**: a torn tail of the last segment is truncated; any other damage refuses to
//!   open, naming the file and byte offset.
//! - `truncate_after(i)` drops entries after `i`; `purge_upto(i)` drops whole segments up to
//!   `i` (also beyond the last entry, restarting the log after `i`) and persists `i` first.
//!
//! Layout: `DIR/{first index:020}.log` segments (each a framed file of records
//! `index: u64 | data`) and `DIR/meta` (one record: the last purged index, then an optional
//! tag the owner stores with it, such as the Raft log id of the purged entry).

use super::frame::{self, FrameError, Reader};
use super::fs::{write_atomic, AppendFile, Fs};
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal i/o on {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("{file}: entry at byte {offset} has index {found}, expected {want}")]
    Gap { file: String, offset: u64, found: u64, want: u64 },
    #[error("journal refuses writes after a failed fsync ({0}); reopen it")]
    Poisoned(String),
}

pub type Result<T> = std::result::Result<T, JournalError>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> JournalError + '_ {
    move |source| JournalError::Io { path: path.display().to_string(), source }
}

#[derive(Clone, Debug)]
pub struct JournalOptions {
    /// A segment past this size is closed and the next append starts a new one.
    pub segment_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions { segment_bytes: 64 << 20 }
    }
}

#[derive(Debug, Clone)]
struct Segment {
    first: u64,
    /// Index of its last entry (`first - 1` when empty).
    last: u64,
    path: PathBuf,
    len: u64,
}

#[derive(Debug)]
struct Inner {
    segments: Vec<Segment>,
    file: Option<Box<dyn AppendFile>>,
    /// A second handle on the current segment for the fsync, taken out while one runs.
    syncer: Option<Box<dyn AppendFile>>,
    syncing: bool,
    /// The last index written (durable or not), and the last one an fsync covered.
    written: u64,
    durable: u64,
    purged: u64,
    /// The tag persisted with `purged` (see [`Journal::purge_tagged`]).
    purged_tag: Vec<u8>,
    poisoned: Option<String>,
}

#[derive(Debug)]
pub struct Journal {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    opts: JournalOptions,
    inner: Mutex<Inner>,
    synced: Condvar,
    fsyncs: FsyncStats,
}

/// Upper bounds (seconds) of the fsync latency histogram buckets.
pub const FSYNC_BUCKETS: [f64; 10] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

/// Latency of the journal's fsyncs: a cumulative histogram, count and sum.
#[derive(Debug, Default)]
pub struct FsyncStats {
    pub buckets: [std::sync::atomic::AtomicU64; 10],
    pub count: std::sync::atomic::AtomicU64,
    pub nanos: std::sync::atomic::AtomicU64,
}

impl FsyncStats {
    fn record(&self, d: std::time::Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let secs = d.as_secs_f64();
        for (b, le) in self.buckets.iter().zip(FSYNC_BUCKETS) {
            if secs <= le {
                b.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        self.nanos.fetch_add(d.as_nanos() as u64, Relaxed);
    }
}

fn segment_name(first: u64) -> String {
    format!("{first:020}.log")
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, recovering as the module docs say.
    pub fn open(fs: Arc<dyn Fs>, dir: &Path, opts: JournalOptions) -> Result<Journal> {
        fs.create_dir_all(dir).map_err(io_err(dir))?;
        let parent = dir.parent().unwrap_or(Path::new(""));
        fs.sync_dir(parent).map_err(io_err(parent))?;
        let meta = dir.join("meta");
        let (purged, purged_tag) =
            if fs.exists(&meta) { read_meta(&*fs, &meta)? } else { (0, Vec::new()) };
        let mut names: Vec<(u64, String)> = fs
            .list(dir)
            .map_err(io_err(dir))?
            .into_iter()
            .filter_map(|n| Some((n.strip_suffix(".log")?.parse::<u64>().ok()?, n)))
            .collect();
        names.sort();
        let mut segments = Vec::new();
        for (k, (first, name)) in names.iter().enumerate() {
            let path = dir.join(name);
            let bytes = fs.read(&path).map_err(io_err(&path))?;
            let scan = frame::scan(frame::JOURNAL, &path, &bytes)?;
            let is_last = k + 1 == names.len();
            if scan.torn && !is_last {
                return Err(FrameError::Corrupt {
                    file: path.display().to_string(),
                    offset: scan.valid_len,
                }
                .into());
            }
            let mut want = *first;
            for (offset, payload) in &scan.records {
                let found = Reader::new(payload).u64().unwrap_or(u64::MAX);
                if found != want {
                    let file = path.display().to_string();
                    return Err(JournalError::Gap { file, offset: *offset, found, want });
                }
                want += 1;
            }
            if scan.valid_len < frame::HEADER_LEN as u64 {
                // A segment whose header never made it: nothing in it was acknowledged.
                fs.remove_file(&path).map_err(io_err(&path))?;
                fs.sync_dir(dir).map_err(io_err(dir))?;
                continue;
            }
            if scan.torn {
                fs.truncate(&path, scan.valid_len).map_err(io_err(&path))?;
            }
            segments.push(Segment { first: *first, last: want - 1, path, len: scan.valid_len });
        }
        if let Some(w) = segments.windows(2).find(|w| w[0].last + 1 != w[1].first) {
            return Err(JournalError::Gap {
                file: w[1].path.display().to_string(),
                offset: frame::HEADER_LEN as u64,
                found: w[1].first,
                want: w[0].last + 1,
            });
        }
        let written = segments.last().map_or(purged, |s| s.last);
        let file = match segments.last() {
            Some(s) => Some(fs.open_append(&s.path).map_err(io_err(&s.path))?),
            None => None,
        };
        let syncer = match &file {
            Some(f) => Some(f.syncer().map_err(io_err(dir))?),
            None => None,
        };
        Ok(Journal {
            fs,
            dir: dir.to_path_buf(),
            opts,
            inner: Mutex::new(Inner {
                segments,
                file,
                syncer,
                syncing: false,
                written,
                durable: written,
                purged,
                purged_tag,
                poisoned: None,
            }),
            synced: Condvar::new(),
            fsyncs: FsyncStats::default(),
        })
    }

    /// Latency of the fsyncs this journal ran.
    pub fn fsync_stats(&self) -> &FsyncStats {
        &self.fsyncs
    }

    /// The index of the last entry (or of the last purged one when none is held).
    pub fn last_index(&self) -> u64 {
        self.inner.lock().written
    }

    /// The index of the first entry held (`last_index() + 1` when none is).
    pub fn first_index(&self) -> u64 {
        let g = self.inner.lock();
        g.segments.first().map_or(g.written + 1, |s| s.first)
    }

    /// The last purged index, persisted.
    pub fn purged(&self) -> u64 {
        self.inner.lock().purged
    }

    /// The tag persisted with the last purged index (empty when none was given).
    pub fn purged_tag(&self) -> Vec<u8> {
        self.inner.lock().purged_tag.clone()
    }

    /// Appends entries at the next indexes and returns the last index once every entry is
    /// durable (group commit: concurrent appenders share fsyncs).
    pub fn append(&self, entries: &[&[u8]]) -> Result<u64> {
        let last = self.write(entries)?;
        self.sync_to(last)?;
        Ok(last)
    }

    /// Writes entries at the next indexes without waiting for durability; returns the last
    /// index. Nothing may be acknowledged before [`Journal::sync_to`] it returned.
    pub fn write(&self, entries: &[&[u8]]) -> Result<u64> {
        let mut g = self.inner.lock();
        if let Some(p) = &g.poisoned {
            return Err(JournalError::Poisoned(p.clone()));
        }
        if g.file.is_none() || g.segments.last().is_some_and(|s| s.len >= self.opts.segment_bytes) {
            self.quiesce(&mut g);
            self.roll(&mut g)?;
        }
        let mut buf = Vec::new();
        let mut index = g.written;
        let mut payload = Vec::new();
        for e in entries {
            index += 1;
            payload.clear();
            payload.extend_from_slice(&index.to_le_bytes());
            payload.extend_from_slice(e);
            frame::record(&payload, &mut buf);
        }
        let seg = g.segments.last().expect("rolled above").path.clone();
        if let Err(e) = g.file.as_mut().expect("rolled above").append(&buf) {
            // Some of the bytes may have landed: the file no longer ends where we think, so
            // nothing more may be appended to it until reopening cleans the tail up.
            g.poisoned = Some(format!("append to {}: {e}", seg.display()));
            return Err(io_err(&seg)(e));
        }
        let s = g.segments.last_mut().expect("rolled above");
        s.len += buf.len() as u64;
        s.last = index;
        g.written = index;
        Ok(index)
    }

    /// Waits until no fsync is running, so the current segment's handles may be replaced.
    fn quiesce(&self, g: &mut MutexGuard<'_, Inner>) {
        while g.syncing {
            self.synced.wait(g);
        }
    }

    /// Starts a new segment after syncing the current one.
    fn roll(&self, g: &mut Inner) -> Result<()> {
        if let Some(f) = g.file.as_mut() {
            let path = &g.segments.last().expect("a file has a segment").path;
            if let Err(e) = f.sync() {
                g.poisoned = Some(format!("fsync of {}: {e}", path.display()));
                return Err(io_err(path)(e));
            }
            g.durable = g.written;
        }
        let first = g.written + 1;
        let path = self.dir.join(segment_name(first));
        let mut f = self.fs.open_append(&path).map_err(io_err(&path))?;
        let made = f
            .append(&frame::header(frame::JOURNAL))
            .and_then(|_| f.sync())
            .and_then(|_| self.fs.sync_dir(&self.dir));
        if let Err(e) = made {
            g.poisoned = Some(format!("creating {}: {e}", path.display()));
            return Err(io_err(&path)(e));
        }
        g.syncer = Some(f.syncer().map_err(io_err(&path))?);
        g.segments.push(Segment { first, last: first - 1, path, len: frame::HEADER_LEN as u64 });
        g.file = Some(f);
        Ok(())
    }

    /// Waits until `index` is durable, running the fsync if nobody else is.
    pub fn sync_to(&self, index: u64) -> Result<()> {
        let mut g = self.inner.lock();
        loop {
            if let Some(p) = &g.poisoned {
                return Err(JournalError::Poisoned(p.clone()));
            }
            if g.durable >= index {
                return Ok(());
            }
            if g.syncing {
                self.synced.wait(&mut g);
                continue;
            }
            // Become the syncer for everything written so far; appenders keep writing
            // meanwhile and the next fsync covers them.
            let target = g.written;
            let path = g.segments.last().map(|s| s.path.clone()).unwrap_or_default();
            let mut syncer = g.syncer.take();
            g.syncing = true;
            let res = MutexGuard::unlocked(&mut g, || {
                let t = std::time::Instant::now();
                let r = syncer.as_mut().map_or(Ok(()), |f| f.sync());
                self.fsyncs.record(t.elapsed());
                r
            });
            g.syncing = false;
            g.syncer = syncer;
            self.synced.notify_all();
            match res {
                Ok(()) => g.durable = g.durable.max(target),
                Err(e) => {
                    g.poisoned = Some(format!("fsync of {}: {e}", path.display()));
                    return Err(io_err(&path)(e));
                }
            }
        }
    }

    /// Calls `f(index, data)` for every entry from `from` on, in order.
    pub fn read_from(&self, from: u64, f: impl FnMut(u64, &[u8])) -> Result<()> {
        self.read_range(from, u64::MAX, f)
    }

    /// Calls `f(index, data)` for every entry in `from..to`, in order; segments outside the
    /// range are not read.
    pub fn read_range(&self, from: u64, to: u64, mut f: impl FnMut(u64, &[u8])) -> Result<()> {
        let segments: Vec<Segment> = self.inner.lock().segments.clone();
        for s in segments.iter().filter(|s| s.last >= from && s.first < to) {
            let bytes = self.fs.read(&s.path).map_err(io_err(&s.path))?;
            let bytes = &bytes[..(s.len as usize).min(bytes.len())];
            let scan = frame::scan(frame::JOURNAL, &s.path, bytes)?;
            for (_, payload) in scan.records {
                let (head, data) = payload.split_at(8.min(payload.len()));
                let index = Reader::new(head).u64().unwrap_or(0);
                if (from..to).contains(&index) {
                    f(index, data);
                }
            }
        }
        Ok(())
    }

    /// Drops every entry after `index`.
    pub fn truncate_after(&self, index: u64) -> Result<()> {
        let mut g = self.inner.lock();
        if let Some(p) = &g.poisoned {
            return Err(JournalError::Poisoned(p.clone()));
        }
        if index >= g.written {
            return Ok(());
        }
        self.quiesce(&mut g);
        g.file = None;
        g.syncer = None;
        while g.segments.last().is_some_and(|s| s.first > index) {
            let s = g.segments.pop().expect("checked");
            self.fs.remove_file(&s.path).map_err(io_err(&s.path))?;
        }
        self.fs.sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        if let Some(s) = g.segments.last_mut() {
            let bytes = self.fs.read(&s.path).map_err(io_err(&s.path))?;
            let scan = frame::scan(frame::JOURNAL, &s.path, &bytes)?;
            let keep = (index + 1 - s.first) as usize;
            let cut = scan.records.get(keep).map_or(scan.valid_len, |r| r.0);
            self.fs.truncate(&s.path, cut).map_err(io_err(&s.path))?;
            s.len = cut;
            s.last = index;
            let f = self.fs.open_append(&s.path).map_err(io_err(&s.path))?;
            g.syncer = Some(f.syncer().map_err(io_err(&self.dir))?);
            g.file = Some(f);
        }
        g.written = index.max(g.purged);
        g.durable = g.durable.min(g.written);
        Ok(())
    }

    /// Drops every segment whose entries are all at or below `index`, after persisting
    /// `index` as the last purged one. Purging at or past the last entry empties the journal,
    /// and the next append gets `index + 1`.
    pub fn purge_upto(&self, index: u64) -> Result<()> {
        self.purge_tagged(index, &[])
    }

    /// [`Journal::purge_upto`], persisting `tag` in the same write as the purged index (a
    /// Raft log store keeps the purged entry's log id there).
    pub fn purge_tagged(&self, index: u64, tag: &[u8]) -> Result<()> {
        let mut g = self.inner.lock();
        if let Some(p) = &g.poisoned {
            return Err(JournalError::Poisoned(p.clone()));
        }
        if index <= g.purged {
            return Ok(());
        }
        self.quiesce(&mut g);
        let meta = self.dir.join("meta");
        let mut rec = frame::header(frame::JOURNAL_META).to_vec();
        let mut payload = index.to_le_bytes().to_vec();
        payload.extend_from_slice(tag);
        frame::record(&payload, &mut rec);
        write_atomic(&*self.fs, &meta, &rec).map_err(io_err(&meta))?;
        g.purged = index;
        g.purged_tag = tag.to_vec();
        let everything = index >= g.written;
        let mut removed = false;
        while g.segments.first().is_some_and(|s| s.last <= index) {
            let s = g.segments.remove(0);
            if g.segments.is_empty() {
                g.file = None;
                g.syncer = None;
            }
            self.fs.remove_file(&s.path).map_err(io_err(&s.path))?;
            removed = true;
        }
        if removed {
            self.fs.sync_dir(&self.dir).map_err(io_err(&self.dir))?;
        }
        if everything {
            g.written = index;
            g.durable = index;
        }
        Ok(())
    }
}

fn read_meta(fs: &dyn Fs, path: &Path) -> Result<(u64, Vec<u8>)> {
    let bytes = fs.read(path).map_err(io_err(path))?;
    let scan = frame::scan(frame::JOURNAL_META, path, &bytes)?;
    // Written atomically: a damaged one is corruption, not a torn tail.
    match scan.records.first() {
        Some((_, p)) if !scan.torn && p.len() >= 8 => {
            Ok((Reader::new(p).u64().unwrap_or(0), p[8..].to_vec()))
        }
        _ => {
            Err(FrameError::Corrupt { file: path.display().to_string(), offset: scan.valid_len }
                .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::MemFs;

    fn open(fs: &MemFs, seg: u64) -> Result<Journal> {
        Journal::open(Arc::new(fs.clone()), Path::new("j"), JournalOptions { segment_bytes: seg })
    }

    fn entries(j: &Journal, from: u64) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        j.read_from(from, |i, d| out.push((i, d.to_vec()))).unwrap();
        out
    }

    #[test]
    fn appends_survive_reopen_across_segments_truncate_and_purge() {
        let fs = MemFs::new();
        let j = open(&fs, 200).unwrap();
        for i in 1..=50u64 {
            assert_eq!(j.append(&[format!("entry {i}").as_bytes()]).unwrap(), i);
        }
        let fs = fs.reboot(None);
        let j = open(&fs, 200).unwrap();
        let all = entries(&j, 1);
        assert_eq!(all.len(), 50);
        assert_eq!(all[41], (42, b"entry 42".to_vec()));
        j.truncate_after(40).unwrap();
        assert_eq!(j.last_index(), 40);
        assert_eq!(j.append(&[b"again"]).unwrap(), 41);
        j.purge_upto(30).unwrap();
        assert!(j.first_index() <= 31 && j.first_index() > 1);
        assert_eq!(entries(&j, 31).len(), 11);
        // Purging past the last entry restarts the log after it.
        j.purge_tagged(100, b"term 7").unwrap();
        assert_eq!(j.last_index(), 100);
        assert_eq!(j.append(&[b"after"]).unwrap(), 101);
        assert_eq!(j.append(&[b"and more"]).unwrap(), 102);
        let j = open(&fs.reboot(None), 200).unwrap();
        assert_eq!((j.purged(), j.first_index(), j.last_index()), (100, 101, 102));
        assert_eq!(j.purged_tag(), b"term 7");
        assert_eq!(entries(&j, 0)[0], (101, b"after".to_vec()));
        let mut ranged = Vec::new();
        j.read_range(102, 103, |i, _| ranged.push(i)).unwrap();
        assert_eq!(ranged, vec![102]);
    }

    #[test]
    fn a_failed_fsync_poisons_until_reopen() {
        let fs = MemFs::new();
        let j = open(&fs, 1 << 20).unwrap();
        j.append(&[b"one"]).unwrap();
        fs.fail_sync_at(fs.ops() + 1);
        assert!(j.append(&[b"two"]).is_err());
        assert!(matches!(j.append(&[b"three"]), Err(JournalError::Poisoned(_))));
        let j = open(&fs, 1 << 20).unwrap();
        assert_eq!(j.append(&[b"four"]).unwrap(), j.last_index());
    }

    #[test]
    fn concurrent_appenders_share_fsyncs() {
        let fs = MemFs::new();
        let j = open(&fs, 1 << 20).unwrap();
        j.append(&[b"first"]).unwrap();
        fs.set_sync_delay(std::time::Duration::from_millis(1));
        let before = fs.syncs();
        std::thread::scope(|s| {
            for t in 0..4 {
                let j = &j;
                s.spawn(move || {
                    for i in 0..100 {
                        j.append(&[format!("{t}-{i}").as_bytes()]).unwrap();
                    }
                });
            }
        });
        assert_eq!(j.last_index(), 401);
        // Appends arriving during a (slow) fsync are covered by the next one.
        let syncs = fs.syncs() - before;
        println!("{syncs} fsyncs for 400 appends from 4 threads");
        assert!(syncs < 300, "{syncs} fsyncs: group commit is not sharing them");
        assert_eq!(entries(&open(&fs.reboot(None), 1 << 20).unwrap(), 1).len(), 401);
    }

    /// The corruption table for the journal: every cut of the last record recovers the
    /// records before it; damage before valid records refuses to open, naming file and offset;
    /// a zero-filled tail recovers.
    #[test]
    fn damage_is_forgiven_only_at_the_tail() {
        let seed = 0x5eed;
        println!("seed {seed:#x}");
        let fs = MemFs::new();
        let j = open(&fs, 1 << 20).unwrap();
        for i in 1..=20u64 {
            j.append(&[format!("payload number {i}").as_bytes()]).unwrap();
        }
        drop(j);
        let seg = Path::new("j").join(segment_name(1));
        let full = fs.read(&seg).unwrap();
        let last_len = frame::RECORD_HEADER_LEN + 8 + "payload number 20".len();
        let with = |bytes: &[u8]| {
            let fs = fs.reboot(None);
            write_atomic(&fs, &seg, bytes).unwrap();
            fs
        };
        for cut in full.len() - last_len..full.len() {
            let j = open(&with(&full[..cut]), 1 << 20).unwrap();
            assert_eq!(j.last_index(), 19, "cut at {cut}");
            assert_eq!(j.append(&[b"next"]).unwrap(), 20);
        }
        let mut zeros = full.clone();
        zeros.extend_from_slice(&[0u8; 64]);
        assert_eq!(open(&with(&zeros), 1 << 20).unwrap().last_index(), 20);
        let mut rng = crate::rng::Rng::new(seed);
        let mut refused = 0;
        for _ in 0..300 {
            let mut bad = full.clone();
            let at = frame::HEADER_LEN + rng.below(full.len() - last_len - frame::HEADER_LEN);
            bad[at] ^= 1 << rng.below(8);
            match open(&with(&bad), 1 << 20) {
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains("00000000000000000001.log"), "{msg}");
                    assert!(msg.contains("byte"), "{msg}");
                    refused += 1;
                }
                Ok(j) => panic!("damage at byte {at} was accepted ({} entries)", j.last_index()),
            }
        }
        assert_eq!(refused, 300);
    }

    #[test]
    fn a_full_disk_fails_writes_loses_nothing_and_recovers_after_space_is_freed() {
        let fs = MemFs::new();
        let j = open(&fs, 1 << 20).unwrap();
        for i in 0..10 {
            j.append(&[format!("entry {i}").as_bytes()]).unwrap();
        }
        fs.set_capacity(fs.read(&Path::new("j").join(segment_name(1))).unwrap().len() + 30);
        let err = j.append(&[&[7u8; 100]]).unwrap_err();
        assert!(err.to_string().contains("no space left"), "{err}");
        assert!(j.append(&[b"small"]).is_err(), "writes after a failed append must be refused");
        fs.set_capacity(usize::MAX);
        let j = open(&fs, 1 << 20).unwrap();
        assert_eq!(j.last_index(), 10);
        assert_eq!(j.append(&[b"works again"]).unwrap(), 11);
        assert_eq!(entries(&j, 1).len(), 11);
    }
}
