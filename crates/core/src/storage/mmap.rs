//! Read-only views of files: a memory mapping (memmap2) on the real file system, a 4-byte
//! aligned heap copy on the in-memory one. Every `unsafe` of the storage layer is in this
//! module; the rest of it reads bytes and `f32` rows through the safe methods below.
//!
//! Files are little-endian; so are the hosts this crate builds for (a big-endian target fails
//! to compile rather than misread every vector).

#![allow(unsafe_code)]

#[cfg(target_endian = "big")]
compile_error!("the storage formats are little-endian and read in place");

use std::fs::File;
use std::io;
use std::path::Path;

/// The bytes of a file as they were when it was mapped (a file that grows later is mapped
/// again to see the new bytes).
#[derive(Debug)]
pub struct Mapped {
    inner: Inner,
    len: usize,
}

#[derive(Debug)]
enum Inner {
    Empty,
    Map(memmap2::Mmap),
    /// Words, so the start is 4-byte aligned like a page.
    Heap(Vec<u32>),
}

impl Mapped {
    /// Maps `path` read-only.
    pub fn map_file(path: &Path) -> io::Result<Mapped> {
        let file = File::open(path)?;
        let len = file.metadata()?.len() as usize;
        if len == 0 {
            // A zero-length mapping is refused by the OS; nothing is there to read anyway.
            return Ok(Mapped { inner: Inner::Empty, len: 0 });
        }
        // SAFETY: the mapping is read-only (a shared mapping of a file opened read-only).
        // Mapped files are only ever appended to while mapped: this crate truncates a vector
        // file only when opening it, before it is mapped, and compaction writes new files
        // rather than rewriting old ones; a durable collection holds an exclusive lock on its
        // directory (`Fs::lock`), so a second instance, in this process or another, cannot
        // open and truncate the files under a live mapping. Bytes below the length mapped here
        // therefore never change or disappear while the map lives (unlinking a mapped file
        // keeps its pages). A process ignoring the lock and modifying the files behind our
        // back is outside the model, as for every database file.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Mapped { len: map.len(), inner: Inner::Map(map) })
    }

    /// An aligned copy of `bytes` (the in-memory file system's "mapping").
    pub fn from_bytes(bytes: &[u8]) -> Mapped {
        let mut words = vec![0u32; bytes.len().div_ceil(4)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(4)) {
            let mut b = [0u8; 4];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u32::from_le_bytes(b);
        }
        Mapped { inner: Inner::Heap(words), len: bytes.len() }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.inner {
            Inner::Empty => &[],
            Inner::Map(m) => m,
            Inner::Heap(words) => {
                // SAFETY: `words` owns `words.len() * 4 >= self.len` initialised bytes, a u8
                // has no alignment requirement and no invalid values, and the returned slice
                // borrows `self`, so the vector outlives it and is not mutated meanwhile.
                unsafe { std::slice::from_raw_parts(words.as_ptr().cast::<u8>(), self.len) }
            }
        }
    }

    /// Lets the operating system drop this process's pages of `at..at + len` (they stay in the
    /// page cache; a later read faults them back in), so a pass over a large file does not
    /// leave it counted as this process's resident memory. A no-op for heap copies.
    pub fn release(&self, at: usize, len: usize) {
        if let Inner::Map(m) = &self.inner {
            let at = at.min(self.len);
            let len = len.min(self.len - at);
            // SAFETY: the mapping is read-only and backed by a file that is never modified
            // below the mapped length (see `map_file`), so after MADV_DONTNEED every later
            // access reads back exactly the same bytes from the file: no reference into the
            // mapping can observe a change. The range is clamped to the mapping above.
            let r =
                unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, at, len) };
            // Only advice: if the kernel refuses it the pages simply stay resident.
            drop(r);
        }
    }

    /// The `n` little-endian `f32`s at byte offset `at`, read in place; `None` when they run
    /// past the end or `at` is not 4-byte aligned (every vector in a vector file is).
    pub fn f32s(&self, at: usize, n: usize) -> Option<&[f32]> {
        let bytes = self.bytes().get(at..at.checked_add(n.checked_mul(4)?)?)?;
        if !(bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<f32>()) {
            return None;
        }
        // SAFETY: `bytes` is `4 * n` initialised bytes borrowed from `self` (checked by `get`
        // above), its start is aligned for f32 (checked just above), every bit pattern is a
        // valid f32, and the result borrows `self` like `bytes` did, so the memory stays
        // mapped and unmodified for its lifetime. Host and file are both little-endian.
        Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<f32>(), n) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_and_file_mappings_read_the_same_rows() {
        let values: Vec<f32> = (0..37).map(|i| i as f32 * 0.5 - 3.0).collect();
        let mut bytes = vec![7u8; 12];
        for v in &values {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.push(1);
        let dir = std::env::temp_dir().join(format!("freshvec-mmap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("rows");
        std::fs::write(&path, &bytes).unwrap();
        for m in [Mapped::map_file(&path).unwrap(), Mapped::from_bytes(&bytes)] {
            assert_eq!(m.bytes(), &bytes[..]);
            assert_eq!(m.f32s(12, 37).unwrap(), &values[..]);
            assert_eq!(m.f32s(12 + 4 * 36, 1).unwrap(), &values[36..]);
            assert!(m.f32s(13, 1).is_none(), "misaligned");
            assert!(m.f32s(12, 38).is_none(), "past the end");
            assert!(m.f32s(usize::MAX - 2, 2).is_none(), "overflow");
            m.release(0, usize::MAX);
            assert_eq!(m.f32s(12, 37).unwrap(), &values[..], "released pages read back");
        }
        std::fs::write(&path, b"").unwrap();
        assert!(Mapped::map_file(&path).unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
