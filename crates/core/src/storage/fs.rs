//! The fault seam: every file operation of the engine goes through [`Fs`], so tests can run the
//! same code on [`MemFs`], an in-memory file system that knows what is durable and can crash.
//!
//! `MemFs` keeps, per file, the bytes a reader sees and the bytes an fsync made durable, and per
//! directory the names a directory fsync made durable. [`MemFs::crash`] stops the "process" at
//! an operation boundary; [`MemFs::reboot`] returns what a machine would find after power loss:
//! durable names and durable bytes, plus (optionally) a torn prefix of bytes written but not yet
//! synced.

use super::mmap::Mapped;
use crate::rng::Rng;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file opened for appending.
pub trait AppendFile: Send + Debug {
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (fsync).
    fn sync(&mut self) -> io::Result<()>;
    /// A second handle on the same file, so one thread can fsync while another appends.
    fn syncer(&self) -> io::Result<Box<dyn AppendFile>>;
}

/// The file operations the engine uses. Paths are absolute or relative to the process.
pub trait Fs: Send + Sync + Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Names of the entries of `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn exists(&self, path: &Path) -> bool;
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens `path` for appending, creating it empty if missing.
    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>>;
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the entries of `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// A read-only view of `path` as it is now (a copy, unless the backend can map files).
    fn map(&self, path: &Path) -> io::Result<Mapped> {
        Ok(Mapped::from_bytes(&self.read(path)?))
    }
    /// An exclusive lock on `path` (created if missing), held while the guard lives; fails
    /// with `WouldBlock` while another holder, in this process or another, has it. The
    /// in-memory file system runs one process at a time and locks nothing.
    fn lock(&self, _path: &Path) -> io::Result<FileLock> {
        Ok(FileLock(None))
    }
    /// Whether files may be fsynced by a background thread ahead of a checkpoint (the real
    /// file system); the in-memory one runs its operations in the order a test drives them.
    fn syncs_in_background(&self) -> bool {
        false
    }
}

/// Holds a [`Fs::lock`] until dropped.
#[derive(Debug)]
pub struct FileLock(#[allow(dead_code)] Option<std::fs::File>);

/// Writes `data` as the whole new content of `path`, durably: a temporary file, fsync, rename,
/// directory fsync. A reader sees the old content or the new, never a mix.
pub fn write_atomic(fs: &dyn Fs, path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".tmp-{name}"));
    if fs.exists(&tmp) {
        fs.remove_file(&tmp)?;
    }
    let mut f = fs.open_append(&tmp)?;
    f.append(data)?;
    f.sync()?;
    drop(f);
    fs.rename(&tmp, path)?;
    fs.sync_dir(dir)
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

#[derive(Debug)]
struct RealFile(std::fs::File);

impl AppendFile for RealFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        io::Write::write_all(&mut self.0, data)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn syncer(&self) -> io::Result<Box<dyn AppendFile>> {
        Ok(Box::new(RealFile(self.0.try_clone()?)))
    }
}

impl Fs for RealFs {
    fn syncs_in_background(&self) -> bool {
        true
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out: Vec<String> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        out.sort();
        Ok(out)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn map(&self, path: &Path) -> io::Result<Mapped> {
        Mapped::map_file(path)
    }

    fn lock(&self, path: &Path) -> io::Result<FileLock> {
        let f = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(FileLock(Some(f))),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is held by another open instance", path.display()),
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Box::new(RealFile(f)))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::File::open(dir)?.sync_all()
    }
}

/// One file of [`MemFs`]: what readers see, and what survives a crash.
#[derive(Debug, Default, Clone)]
struct MemFile {
    data: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct MemState {
    /// Live names (files and directories; a directory maps to `None`).
    names: BTreeMap<PathBuf, Option<Arc<Mutex<MemFile>>>>,
    /// Names as of the last fsync of their directory.
    durable_names: BTreeMap<PathBuf, Option<Arc<Mutex<MemFile>>>>,
    /// Operations that changed something or synced, so far, and file fsyncs among them.
    ops: u64,
    syncs: u64,
    /// The operation number at which the process dies (`u64::MAX`: never).
    crash_at: u64,
    /// A crashing append first lands this many of its bytes (a torn write).
    tear: Option<usize>,
    crashed: bool,
    /// An fsync failing at this operation number (`u64::MAX`: never), without a crash.
    fail_sync_at: u64,
    /// Bytes of file data allowed in all (disk full beyond).
    capacity: usize,
    /// How long each fsync takes.
    sync_delay: std::time::Duration,
}

/// The in-memory file system with crash simulation (see the module docs).
#[derive(Debug, Clone)]
pub struct MemFs {
    state: Arc<Mutex<MemState>>,
}

impl Default for MemFs {
    fn default() -> Self {
        MemFs::new()
    }
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the process is gone")
}

impl MemFs {
    pub fn new() -> MemFs {
        let mut s = MemState {
            crash_at: u64::MAX,
            fail_sync_at: u64::MAX,
            capacity: usize::MAX,
            ..MemState::default()
        };
        s.names.insert(PathBuf::new(), None);
        s.durable_names.insert(PathBuf::new(), None);
        MemFs { state: Arc::new(Mutex::new(s)) }
    }

    /// Operations (appends, syncs, truncations, renames, removals) performed so far.
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// File fsyncs performed so far.
    pub fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Dies at operation number `at` (counting from 0); a dying append first lands `tear`
    /// bytes of its data, if given.
    pub fn crash_at(&self, at: u64, tear: Option<usize>) {
        let mut s = self.state.lock();
        s.crash_at = at;
        s.tear = tear;
    }

    pub fn is_crashed(&self) -> bool {
        self.state.lock().crashed
    }

    /// Fails the fsync at operation number `at` (the process lives on).
    pub fn fail_sync_at(&self, at: u64) {
        self.state.lock().fail_sync_at = at;
    }

    /// Makes every fsync take `d`, like a slow disk.
    pub fn set_sync_delay(&self, d: std::time::Duration) {
        self.state.lock().sync_delay = d;
    }

    /// Limits the total bytes of file data; appends past it fail with `StorageFull`.
    pub fn set_capacity(&self, bytes: usize) {
        self.state.lock().capacity = bytes;
    }

    /// What a machine finds after power loss: durable names with durable bytes, each followed
    /// by a random prefix of its unsynced appended bytes when `torn_seed` is given.
    pub fn reboot(&self, torn_seed: Option<u64>) -> MemFs {
        let s = self.state.lock();
        let mut rng = torn_seed.map(Rng::new);
        let fresh = MemFs::new();
        {
            let mut t = fresh.state.lock();
            for (path, node) in &s.durable_names {
                let node = node.as_ref().map(|f| {
                    let f = f.lock();
                    let mut data = f.durable.clone();
                    if let Some(rng) = rng.as_mut() {
                        if f.data.len() > data.len() && f.data.starts_with(&data) {
                            let extra = rng.below(f.data.len() - data.len() + 1);
                            data.extend_from_slice(&f.data[f.durable.len()..][..extra]);
                        }
                    }
                    Arc::new(Mutex::new(MemFile { durable: data.clone(), data }))
                });
                t.names.insert(path.clone(), node.clone());
                t.durable_names.insert(path.clone(), node);
            }
        }
        fresh
    }

    /// Counts one operation; fails when the process is dead or dies now.
    fn step(s: &mut MemState) -> io::Result<()> {
        if s.crashed {
            return Err(crashed());
        }
        let n = s.ops;
        s.ops += 1;
        if n >= s.crash_at {
            s.crashed = true;
            return Err(crashed());
        }
        Ok(())
    }

    fn file(s: &MemState, path: &Path) -> io::Result<Arc<Mutex<MemFile>>> {
        match s.names.get(path) {
            Some(Some(f)) => Ok(f.clone()),
            Some(None) => Err(io::Error::other(format!("{} is a directory", path.display()))),
            None => Err(io::Error::new(io::ErrorKind::NotFound, path.display().to_string())),
        }
    }

    fn used(s: &MemState) -> usize {
        s.names.values().flatten().map(|f| f.lock().data.len()).sum()
    }
}

#[derive(Debug)]
struct MemAppend {
    fs: MemFs,
    path: PathBuf,
}

impl AppendFile for MemAppend {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = self.fs.state.lock();
        let dying = !s.crashed && s.ops >= s.crash_at;
        let tear = s.tear;
        let f = MemFs::file(&s, &self.path)?;
        if let Err(e) = MemFs::step(&mut s) {
            if dying {
                if let Some(t) = tear {
                    f.lock().data.extend_from_slice(&data[..t.min(data.len())]);
                }
            }
            return Err(e);
        }
        if MemFs::used(&s) + data.len() > s.capacity {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "no space left on device"));
        }
        f.lock().data.extend_from_slice(data);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut s = self.fs.state.lock();
        let f = MemFs::file(&s, &self.path)?;
        let n = s.ops;
        MemFs::step(&mut s)?;
        s.syncs += 1;
        if n == s.fail_sync_at {
            return Err(io::Error::other("simulated fsync failure"));
        }
        let delay = s.sync_delay;
        drop(s);
        if !delay.is_zero() {
            // A slow disk: the fsync takes this long (not a synchronisation device).
            std::thread::sleep(delay);
        }
        let mut f = f.lock();
        f.durable = f.data.clone();
        Ok(())
    }

    fn syncer(&self) -> io::Result<Box<dyn AppendFile>> {
        Ok(Box::new(MemAppend { fs: self.fs.clone(), path: self.path.clone() }))
    }
}

impl Fs for MemFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        MemFs::step(&mut s)?;
        let mut p = PathBuf::new();
        for c in dir.components() {
            p.push(c);
            match s.names.get(&p) {
                Some(Some(_)) => return Err(io::Error::other("a file is in the way")),
                Some(None) => {}
                None => {
                    s.names.insert(p.clone(), None);
                }
            }
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let s = self.state.lock();
        if !matches!(s.names.get(dir), Some(None)) {
            return Err(io::Error::new(io::ErrorKind::NotFound, dir.display().to_string()));
        }
        Ok(s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(String::from))
            .collect())
    }

    fn exists(&self, path: &Path) -> bool {
        self.state.lock().names.contains_key(path)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let s = self.state.lock();
        if s.crashed {
            return Err(crashed());
        }
        let f = MemFs::file(&s, path)?;
        let data = f.lock().data.clone();
        Ok(data)
    }

    fn open_append(&self, path: &Path) -> io::Result<Box<dyn AppendFile>> {
        let mut s = self.state.lock();
        if s.crashed {
            return Err(crashed());
        }
        if !s.names.contains_key(path) {
            let parent = path.parent().unwrap_or(Path::new(""));
            if !matches!(s.names.get(parent), Some(None)) {
                return Err(io::Error::new(io::ErrorKind::NotFound, parent.display().to_string()));
            }
            MemFs::step(&mut s)?;
            s.names.insert(path.to_path_buf(), Some(Arc::default()));
        }
        MemFs::file(&s, path)?;
        Ok(Box::new(MemAppend { fs: self.clone(), path: path.to_path_buf() }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut s = self.state.lock();
        let f = MemFs::file(&s, path)?;
        MemFs::step(&mut s)?;
        let mut f = f.lock();
        f.data.truncate(len as usize);
        // Like the real one, truncation is synced before it returns.
        f.durable = f.data.clone();
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        MemFs::step(&mut s)?;
        let moved: Vec<(PathBuf, Option<Arc<Mutex<MemFile>>>)> = s
            .names
            .range(from.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(from))
            .map(|(p, n)| (p.clone(), n.clone()))
            .collect();
        if moved.is_empty() {
            return Err(io::Error::new(io::ErrorKind::NotFound, from.display().to_string()));
        }
        let stale: Vec<PathBuf> = s
            .names
            .range(to.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(to))
            .map(|(p, _)| p.clone())
            .collect();
        for p in stale {
            s.names.remove(&p);
        }
        for (p, node) in moved {
            s.names.remove(&p);
            let rest = p.strip_prefix(from).expect("under from");
            s.names.insert(to.join(rest), node);
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        MemFs::file(&s, path)?;
        MemFs::step(&mut s)?;
        s.names.remove(path);
        Ok(())
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        MemFs::step(&mut s)?;
        let gone: Vec<PathBuf> = s
            .names
            .range(dir.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(dir))
            .map(|(p, _)| p.clone())
            .collect();
        for p in gone {
            s.names.remove(&p);
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut s = self.state.lock();
        MemFs::step(&mut s)?;
        // The directory's own entries become durable: added, renamed in, removed. Entries
        // under a subdirectory travel with it (its contents were synced separately).
        let under = |p: &Path| p.starts_with(dir) && p != dir;
        let keep: Vec<PathBuf> = s.durable_names.keys().filter(|p| !under(p)).cloned().collect();
        let mut next: BTreeMap<PathBuf, Option<Arc<Mutex<MemFile>>>> =
            keep.into_iter().map(|p| (p.clone(), s.durable_names[&p].clone())).collect();
        for (p, n) in s.names.iter().filter(|(p, _)| under(p)) {
            next.insert(p.clone(), n.clone());
        }
        s.durable_names = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_synced_bytes_and_names_survive_a_crash() {
        let fs = MemFs::new();
        let dir = Path::new("d");
        fs.create_dir_all(dir).unwrap();
        fs.sync_dir(Path::new("")).unwrap();
        let mut f = fs.open_append(&dir.join("a")).unwrap();
        f.append(b"hello").unwrap();
        f.sync().unwrap();
        f.append(b" world").unwrap();
        // The name is not durable until the directory is synced.
        assert!(!fs.reboot(None).exists(&dir.join("a")));
        fs.sync_dir(dir).unwrap();
        let after = fs.reboot(None);
        assert_eq!(after.read(&dir.join("a")).unwrap(), b"hello");
        // A torn reboot keeps a prefix of the unsynced bytes.
        for seed in 0..20 {
            let got = fs.reboot(Some(seed)).read(&dir.join("a")).unwrap();
            assert!(b"hello world".starts_with(&got) && got.len() >= 5);
        }
        write_atomic(&fs, &dir.join("b"), b"new").unwrap();
        assert_eq!(fs.reboot(None).read(&dir.join("b")).unwrap(), b"new");
    }

    #[test]
    fn a_crash_stops_every_later_operation() {
        let fs = MemFs::new();
        fs.create_dir_all(Path::new("d")).unwrap();
        let mut f = fs.open_append(Path::new("d/a")).unwrap();
        fs.crash_at(fs.ops() + 1, Some(2));
        f.append(b"ab").unwrap();
        assert!(f.append(b"cdef").is_err());
        assert!(fs.is_crashed());
        assert!(f.sync().is_err());
        assert!(fs.read(Path::new("d/a")).is_err());
    }
}
