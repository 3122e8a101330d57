//! The one framing of every file the engine writes (byte tables in `docs/file-formats.md`).
//!
//! A file starts with a 16-byte header: 8 bytes of magic naming the file kind, the format
//! version (`u32`), and the CRC32 of those 12 bytes. Records follow, each
//! `length: u32 | crc32(payload): u32 | payload`, little-endian always. Readers check the header
//! and every checksum before they decode anything, and never panic on arbitrary bytes.
//!
//! [`scan`] classifies damage the way recovery needs it: damage after which no valid record
//! starts anywhere (an incomplete last record, a last record whose checksum fails, a zero-filled
//! tail) is a *torn tail*, which a writer that crashed mid-append leaves behind; damage followed
//! by a valid record is *corruption*, reported with the byte offset of the first bad record.

use std::path::Path;

pub const HEADER_LEN: usize = 16;
pub const RECORD_HEADER_LEN: usize = 8;
/// The largest payload a record may carry.
pub const MAX_RECORD: usize = 1 << 30;

/// A file kind: its magic and the format version this code writes and reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kind {
    pub magic: [u8; 8],
    pub version: u32,
}

pub const JOURNAL: Kind = Kind { magic: *b"FVJRNL\0\0", version: 1 };
pub const JOURNAL_META: Kind = Kind { magic: *b"FVJMETA\0", version: 1 };
pub const CHECKPOINT_MANIFEST: Kind = Kind { magic: *b"FVCKMAN\0", version: 2 };
pub const CHECKPOINT_SHARD: Kind = Kind { magic: *b"FVCKSHD\0", version: 2 };
pub const VECTORS: Kind = Kind { magic: *b"FVVECS\0\0", version: 1 };
pub const VECTOR_INDEX: Kind = Kind { magic: *b"FVVIDX\0\0", version: 1 };
pub const COLLECTION_META: Kind = Kind { magic: *b"FVCOLL\0\0", version: 1 };
pub const RAFT_VOTE: Kind = Kind { magic: *b"FVVOTE\0\0", version: 1 };
pub const NODE_CHECKPOINT: Kind = Kind { magic: *b"FVNODCK\0", version: 1 };

pub fn header(kind: Kind) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(&kind.magic);
    h[8..12].copy_from_slice(&kind.version.to_le_bytes());
    let crc = crc32fast::hash(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Appends one framed record to `out`.
pub fn record(payload: &[u8], out: &mut Vec<u8>) {
    assert!(payload.len() <= MAX_RECORD, "record of {} bytes", payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// What is wrong with a file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("{file}: not a {kind} file (bad header)")]
    BadHeader { file: String, kind: String },
    #[error("{file}: format version {found}, this build reads {want}")]
    Version { file: String, found: u32, want: u32 },
    #[error("{file}: corrupt record at byte {offset} followed by more data")]
    Corrupt { file: String, offset: u64 },
}

/// The records of a file and how it ends.
#[derive(Debug)]
pub struct Scan<'a> {
    /// Each valid record's byte offset and payload, in order.
    pub records: Vec<(u64, &'a [u8])>,
    /// Byte length of the valid prefix (header and every valid record).
    pub valid_len: u64,
    /// Whether damaged bytes follow the valid prefix (a torn tail to truncate).
    pub torn: bool,
}

fn kind_name(kind: Kind) -> String {
    String::from_utf8_lossy(&kind.magic).trim_end_matches('\0').to_string()
}

/// Checks the header of a file of `kind`: `Ok(true)` when it is whole and valid, `Ok(false)`
/// when it is torn (shorter than a header and a prefix of one, or all zeros), an error naming
/// the file otherwise.
pub fn check_header(kind: Kind, file: &Path, bytes: &[u8]) -> Result<bool, FrameError> {
    let name = || file.display().to_string();
    if bytes.len() < HEADER_LEN {
        // A header is written in one append before anything else; a short one is torn.
        if header(kind).starts_with(bytes) || bytes.iter().all(|&b| b == 0) {
            return Ok(false);
        }
        return Err(FrameError::BadHeader { file: name(), kind: kind_name(kind) });
    }
    let h = &bytes[..HEADER_LEN];
    let crc_ok = crc32fast::hash(&h[..12]).to_le_bytes() == h[12..16];
    if h[..8] != kind.magic || !crc_ok {
        if bytes.iter().all(|&b| b == 0) {
            return Ok(false);
        }
        return Err(FrameError::BadHeader { file: name(), kind: kind_name(kind) });
    }
    let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
    if version != kind.version {
        return Err(FrameError::Version { file: name(), found: version, want: kind.version });
    }
    Ok(true)
}

/// Checks the header and splits `bytes` into records; see the module docs for how damage is
/// classified. An empty file is a torn header (nothing was ever acknowledged in it).
pub fn scan<'a>(kind: Kind, file: &Path, bytes: &'a [u8]) -> Result<Scan<'a>, FrameError> {
    if !check_header(kind, file, bytes)? {
        return Ok(Scan { records: Vec::new(), valid_len: 0, torn: !bytes.is_empty() });
    }
    let mut records = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        match record_at(bytes, at) {
            Some((payload, next)) => {
                records.push((at as u64, payload));
                at = next;
            }
            None => {
                if damage_runs_to_end(bytes, at) {
                    return Ok(Scan { records, valid_len: at as u64, torn: true });
                }
                let file = file.display().to_string();
                return Err(FrameError::Corrupt { file, offset: at as u64 });
            }
        }
    }
    Ok(Scan { records, valid_len: at as u64, torn: false })
}

/// The valid record at `at`, if one is there, and the offset after it.
pub(crate) fn record_at(bytes: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let head = bytes.get(at..at + RECORD_HEADER_LEN)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len == 0 || len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, at + RECORD_HEADER_LEN + len))
}

/// Whether the invalid record at `at` is the file's last thing: no valid record starts
/// anywhere after it (so a zero-filled tail, a cut record and a record with a bad checksum at
/// the end are torn, while a damaged length in the middle cannot hide the records behind it).
pub(crate) fn damage_runs_to_end(bytes: &[u8], at: usize) -> bool {
    (at + 1..bytes.len()).all(|o| record_at(bytes, o).is_none())
}

/// A little-endian reader over a record's payload that fails instead of panicking.
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Option<u64> {
        self.take(8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    pub fn f32(&mut self) -> Option<f32> {
        self.u32().map(f32::from_bits)
    }

    /// `n` little-endian `f32`s.
    pub fn f32s(&mut self, n: usize) -> Option<Vec<f32>> {
        let b = self.take(n.checked_mul(4)?)?;
        Some(b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// `n` little-endian `u64`s.
    pub fn u64s(&mut self, n: usize) -> Option<Vec<u64>> {
        let b = self.take(n.checked_mul(8)?)?;
        Some(b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8"))).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn file_of(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = header(JOURNAL).to_vec();
        for p in payloads {
            record(p, &mut out);
        }
        out
    }

    #[test]
    fn every_truncation_of_the_last_record_is_a_torn_tail() {
        let full = file_of(&[b"first record", b"second", b"the last one"]);
        let last_start = full.len() - (RECORD_HEADER_LEN + 12);
        for cut in last_start..full.len() {
            let s = scan(JOURNAL, Path::new("f"), &full[..cut]).unwrap();
            assert_eq!(s.records.len(), 2, "cut at {cut}");
            assert_eq!(s.valid_len as usize, last_start);
            assert_eq!(s.torn, cut > last_start);
        }
        let s = scan(JOURNAL, Path::new("f"), &full).unwrap();
        assert_eq!(s.records.len(), 3);
        assert!(!s.torn);
    }

    #[test]
    fn damage_before_valid_records_is_corruption_with_its_offset() {
        let full = file_of(&[b"first record", b"second", b"third"]);
        let second = HEADER_LEN + RECORD_HEADER_LEN + 12;
        let mut bad = full.clone();
        bad[second + RECORD_HEADER_LEN + 2] ^= 0x10;
        let e = scan(JOURNAL, Path::new("seg"), &bad).unwrap_err();
        assert_eq!(e, FrameError::Corrupt { file: "seg".into(), offset: second as u64 });
        assert!(e.to_string().contains("seg") && e.to_string().contains(&second.to_string()));
        // The same flip in the last record is a torn tail.
        let mut tail = full.clone();
        let n = tail.len();
        tail[n - 1] ^= 1;
        let s = scan(JOURNAL, Path::new("seg"), &tail).unwrap();
        assert_eq!((s.records.len(), s.torn), (2, true));
        // A zero-filled tail after valid records is torn too.
        let mut zeros = full.clone();
        zeros.extend_from_slice(&[0; 100]);
        let s = scan(JOURNAL, Path::new("seg"), &zeros).unwrap();
        assert_eq!((s.records.len(), s.torn), (3, true));
        // A wrong magic or version is refused.
        assert!(matches!(
            scan(JOURNAL_META, Path::new("x"), &full),
            Err(FrameError::BadHeader { .. })
        ));
    }

    #[test]
    fn scanning_arbitrary_bytes_never_panics() {
        let seed = 0xf4a3;
        println!("seed {seed:#x}");
        let mut rng = Rng::new(seed);
        let good = file_of(&[b"alpha", b"beta", b"gamma", &[7u8; 300]]);
        for round in 0..20_000 {
            let mut bytes = if round % 2 == 0 {
                let mut b = good.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(b.len());
                    b[i] = rng.below(256) as u8;
                }
                b.truncate(rng.below(b.len() + 1));
                b
            } else {
                (0..rng.below(200)).map(|_| rng.below(256) as u8).collect()
            };
            if round % 3 == 0 && bytes.len() >= HEADER_LEN {
                bytes[..HEADER_LEN].copy_from_slice(&header(JOURNAL));
            }
            if let Ok(s) = scan(JOURNAL, Path::new("r"), &bytes) {
                assert!(s.valid_len as usize <= bytes.len());
                let mut r = Reader::new(s.records.first().map_or(&[][..], |x| x.1));
                let _ = (r.u64(), r.f32s(3), r.u32(), r.u64s(usize::MAX / 4));
            }
        }
    }
}
