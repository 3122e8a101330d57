//! A node's checkpoints: one manifest per checkpoint naming every collection's own checkpoint
//! at the same index, and the files a copy of the node's state at that checkpoint must hold.
//! The openraft snapshot *is* the newest checkpoint: sending it streams those files, and
//! receiving one stages them in a directory that becomes the node's state root.
//!
//! Layout of `DATA/state`:
//! - `CURRENT`: the name of the state root in use (replaced atomically; the commit point of a
//!   snapshot install).
//! - `root-{unique}/collections/c-{create index:020}/`: one replicated durable collection per
//!   directory (vector files, collection checkpoints; see `freshvec_core::durable`), named by
//!   the log index that created it, so a collection dropped and created again never shares a
//!   directory with its predecessor.
//! - `root-{unique}/checkpoints/ckpt-{applied index + 1:020}`: node manifests, one framed
//!   record (postcard): the snapshot meta (applied log id, membership) and each collection's
//!   name, spec and directory. Written to a temporary name, fsynced, renamed: a manifest names
//!   only collection checkpoints that were already durable.
//! - `.recv-{unique}/`: a snapshot being received (same layout as a root); removed at open.

use crate::command::CollectionSpec;
use crate::NodeId;
use freshvec_core::storage::frame;
use freshvec_core::storage::fs::{AppendFile, Fs};
use openraft::{BasicNode, SnapshotMeta};
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The file naming the state root in use.
pub const CURRENT: &str = "CURRENT";
/// The most files one snapshot may hold (five per shard, two per collection, one manifest).
pub const MAX_FILES: usize = 64 << 10;

/// One collection as a node manifest names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestCollection {
    pub name: String,
    pub spec: CollectionSpec,
    /// Its directory under `collections/`.
    pub dir: String,
}

/// What one node checkpoint holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeManifest {
    pub meta: SnapshotMeta<NodeId, BasicNode>,
    pub collections: Vec<ManifestCollection>,
}

/// The name of the node manifest of a checkpoint at `meta`: sorts by what it holds (`0` when
/// nothing was applied).
pub fn manifest_name(meta: &SnapshotMeta<NodeId, BasicNode>) -> String {
    format!("ckpt-{:020}", meta.last_log_id.map_or(0, |l| l.index + 1))
}

/// The log index each collection's checkpoint carries in a node checkpoint at `meta`.
pub fn collection_index(meta: &SnapshotMeta<NodeId, BasicNode>) -> u64 {
    meta.last_log_id.map_or(0, |l| l.index)
}

/// The directory of the collection created at log index `index`.
pub fn collection_dir(index: u64) -> String {
    format!("c-{index:020}")
}

impl NodeManifest {
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let payload = postcard::to_stdvec(self).map_err(io::Error::other)?;
        let mut out = frame::header(frame::NODE_CHECKPOINT).to_vec();
        frame::record(&payload, &mut out);
        Ok(out)
    }

    /// Decodes a manifest file; `Err` names what is wrong (a torn or foreign file).
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<NodeManifest, String> {
        let scan = frame::scan(frame::NODE_CHECKPOINT, path, bytes).map_err(|e| e.to_string())?;
        let bad = |what: &str| format!("{}: {what}", path.display());
        let (_, payload) =
            scan.records.first().filter(|_| !scan.torn).ok_or_else(|| bad("torn or empty"))?;
        if scan.records.len() != 1 {
            return Err(bad("more than one record"));
        }
        let m: NodeManifest =
            postcard::from_bytes(payload).map_err(|e| bad(&format!("does not decode: {e}")))?;
        for c in &m.collections {
            if !valid_name(&c.dir) || !c.dir.starts_with("c-") {
                return Err(bad(&format!("collection directory {:?} is not one of ours", c.dir)));
            }
        }
        Ok(m)
    }
}

/// Whether `name` is a plain file or directory name we write (no separators, no dot first).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Whether `path` is a relative path of plain names (how snapshot files are named), at most
/// eight deep.
pub fn valid_path(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    parts.len() <= 8 && path.len() <= 512 && parts.iter().all(|p| valid_name(p))
}

/// A snapshot's files: those of a checkpoint in a state root (to send, or to copy), or a
/// received copy staged in a directory of its own (to install).
#[derive(Debug, Clone)]
pub struct SnapshotFiles {
    /// The directory the paths are relative to.
    pub base: PathBuf,
    /// Each file (a `/`-separated relative path) and the bytes of it the snapshot holds.
    pub files: Vec<(String, u64)>,
    /// `base` is a staged reception, to be renamed into place by the install.
    pub staged: bool,
}

impl SnapshotFiles {
    /// Bytes in all.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.1).sum()
    }
}

/// Writes the files of a snapshot into a staging directory, one after another, each checked
/// against its announced length and checksum and fsynced; nothing in it is trusted before
/// the install opens (and so verifies) every checkpoint it names.
#[derive(Debug)]
pub struct Staging {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    files: Vec<(String, u64)>,
    /// The file being written: its position in `files`, handle, bytes so far and checksum.
    open: Option<(usize, Box<dyn AppendFile>, u64, crc32fast::Hasher)>,
    next: usize,
    dirs: Vec<PathBuf>,
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Staging {
    /// Starts a staging directory `dir` (which must not exist) for `files`.
    pub fn create(fs: Arc<dyn Fs>, dir: PathBuf, files: Vec<(String, u64)>) -> io::Result<Staging> {
        if files.len() > MAX_FILES {
            return Err(invalid(format!("{} files, at most {MAX_FILES}", files.len())));
        }
        let mut seen = std::collections::HashSet::new();
        for (f, _) in &files {
            if !valid_path(f) || !seen.insert(f.as_str()) {
                return Err(invalid(format!("snapshot file name {f:?} refused")));
            }
        }
        if fs.exists(&dir) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, dir.display().to_string()));
        }
        fs.create_dir_all(&dir)?;
        Ok(Staging { fs, dirs: vec![dir.clone()], dir, files, open: None, next: 0 })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The next bytes of the current file (the next file's, when the last one ended).
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() || self.open.is_none() {
            if self.open.is_none() {
                let Some((name, _)) = self.files.get(self.next) else {
                    return Err(invalid("data past the last file".into()));
                };
                let path = self.dir.join(name);
                if let Some(parent) = path.parent() {
                    if !self.fs.exists(parent) {
                        self.fs.create_dir_all(parent)?;
                        let mut p = parent.to_path_buf();
                        while p != self.dir && !self.dirs.contains(&p) {
                            self.dirs.push(p.clone());
                            if !p.pop() {
                                break;
                            }
                        }
                    }
                }
                if self.fs.exists(&path) {
                    return Err(invalid(format!("{name}: sent twice")));
                }
                let f = self.fs.open_append(&path)?;
                self.open = Some((self.next, f, 0, crc32fast::Hasher::new()));
                self.next += 1;
            }
            if data.is_empty() {
                return Ok(());
            }
            let (i, f, written, crc) = self.open.as_mut().expect("opened above");
            let want = self.files[*i].1;
            let take = data.len().min((want - *written) as usize);
            if take == 0 {
                return Err(invalid(format!("{}: more than its {want} bytes", self.files[*i].0)));
            }
            f.append(&data[..take])?;
            crc.update(&data[..take]);
            *written += take as u64;
            data = &data[take..];
        }
        Ok(())
    }

    /// Ends the current file: its length and checksum must match; it is fsynced.
    pub fn end_file(&mut self, crc: u32) -> io::Result<()> {
        if self.open.is_none() {
            // An empty file gets no data: open it now.
            self.write(&[])?;
        }
        let (i, mut f, written, hasher) = self.open.take().expect("opened above");
        let (name, want) = &self.files[i];
        if written != *want || hasher.finalize() != crc {
            return Err(invalid(format!("{name}: length or checksum differs from the sender's")));
        }
        f.sync()
    }

    /// Ends the transfer: every file arrived whole; directories are fsynced.
    pub fn finish(self) -> io::Result<SnapshotFiles> {
        if self.open.is_some() || self.next != self.files.len() {
            return Err(invalid(format!(
                "ended after {} of {} files",
                self.next.min(self.files.len()),
                self.files.len()
            )));
        }
        for d in self.dirs.iter().rev() {
            self.fs.sync_dir(d)?;
        }
        Ok(SnapshotFiles { base: self.dir, files: self.files, staged: true })
    }

    /// Copies a snapshot's files from where they are into this staging directory.
    pub fn copy_from(mut self, from: &SnapshotFiles) -> io::Result<SnapshotFiles> {
        for (name, len) in &from.files {
            let map = self.fs.map(&from.base.join(name))?;
            let bytes = map.bytes().get(..*len as usize).ok_or_else(|| {
                invalid(format!("{name}: shorter than the {len} bytes the snapshot names"))
            })?;
            for chunk in bytes.chunks(1 << 20) {
                self.write(chunk)?;
            }
            self.end_file(crc32fast::hash(bytes))?;
        }
        self.finish()
    }
}

/// Checks a staged reception before openraft is asked to install it (an install that fails
/// is fatal to the node): it holds the node manifest of `meta`, that manifest carries `meta`,
/// and every collection checkpoint it names is among the files.
pub fn check_staged(
    fs: &dyn Fs,
    files: &SnapshotFiles,
    meta: &SnapshotMeta<NodeId, BasicNode>,
) -> Result<(), String> {
    let name = format!("checkpoints/{}", manifest_name(meta));
    let m = read_manifest(fs, &files.base.join(&name))?;
    if m.meta != *meta {
        return Err("its manifest carries another meta than its header".into());
    }
    let at = collection_index(meta);
    for c in &m.collections {
        let want = format!("collections/{}/checkpoints/ckpt-{at:020}/manifest", c.dir);
        if !files.files.iter().any(|(f, _)| *f == want) {
            return Err(format!("collection {}: its checkpoint is not among the files", c.name));
        }
    }
    Ok(())
}

/// Reads a manifest's bytes and decodes it.
pub fn read_manifest(fs: &dyn Fs, path: &Path) -> Result<NodeManifest, String> {
    let bytes = fs.read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    NodeManifest::decode(path, &bytes)
}

/// The index part of a manifest name (`ckpt-N`).
pub fn manifest_key(name: &str) -> Option<u64> {
    name.strip_prefix("ckpt-")?.parse().ok()
}
