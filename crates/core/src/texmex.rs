//! Reading TEXMEX `.fvecs` / `.ivecs` files: each row is a little-endian `i32` dimension
//! followed by that many `f32` (or `i32`) values.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

/// Reads every row of an `.fvecs` file into one row-major block; returns `(dim, data)`.
pub fn read_fvecs(path: &Path) -> io::Result<(usize, Vec<f32>)> {
    read_rows(path, f32::from_le_bytes)
}

/// Reads every row of an `.ivecs` file; returns `(dim, data)`.
pub fn read_ivecs(path: &Path) -> io::Result<(usize, Vec<i32>)> {
    read_rows(path, i32::from_le_bytes)
}

fn read_rows<T>(path: &Path, decode: fn([u8; 4]) -> T) -> io::Result<(usize, Vec<T>)> {
    let bad = |msg: String| {
        io::Error::new(io::ErrorKind::InvalidData, format!("{}: {msg}", path.display()))
    };
    let file = File::open(path)?;
    let size = file.metadata()?.len() as usize;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut head = [0u8; 4];
    let mut dim = None;
    let mut row = Vec::new();
    let mut out = Vec::new();
    let mut offset = 0usize;
    loop {
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let d = i32::from_le_bytes(head);
        if d <= 0 || d > 1 << 20 {
            return Err(bad(format!("row at byte {offset} has dimension {d}")));
        }
        let d = d as usize;
        match dim {
            None => {
                dim = Some(d);
                out.reserve_exact(size / (4 + 4 * d) * d);
                row.resize(4 * d, 0);
            }
            Some(x) if x != d => {
                return Err(bad(format!("row at byte {offset} has dimension {d}, expected {x}")))
            }
            _ => {}
        }
        r.read_exact(&mut row).map_err(|_| bad(format!("row at byte {offset} is truncated")))?;
        out.extend(row.chunks_exact(4).map(|b| decode([b[0], b[1], b[2], b[3]])));
        offset += 4 + 4 * d;
    }
    Ok((dim.unwrap_or(0), out))
}
