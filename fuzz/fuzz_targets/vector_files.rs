//! Arbitrary bytes as one generation's vector file and sidecar: opening, verifying and reading
//! them must return an error or a consistent store, never panic.
#![no_main]

use freshvec_core::distance::Metric;
use freshvec_core::storage::frame;
use freshvec_core::storage::fs::{Fs, MemFs};
use freshvec_core::storage::vectors::{OpenAt, VectorStore};
use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::Arc;

const DIM: usize = 4;

fn put(fs: &MemFs, path: &Path, bytes: &[u8]) {
    let mut f = fs.open_append(path).expect("in-memory file");
    f.append(bytes).expect("in-memory append");
}

fuzz_target!(|data: &[u8]| {
    // First byte: where the sidecar starts; then whether to prefix valid headers, so the
    // fuzzer reaches the record parsers instead of stopping at the header check.
    let Some((&split, rest)) = data.split_first() else { return };
    let at = (split as usize * rest.len()) / 256;
    let (vec, idx) = rest.split_at(at);
    let fs = MemFs::new();
    let dir = Path::new("v");
    fs.create_dir_all(dir).expect("in-memory dir");
    let mut v = Vec::new();
    let mut i = Vec::new();
    if split & 1 == 0 {
        v.extend_from_slice(&frame::header(frame::VECTORS));
        i.extend_from_slice(&frame::header(frame::VECTOR_INDEX));
    }
    v.extend_from_slice(vec);
    i.extend_from_slice(idx);
    put(&fs, &dir.join("gen-000000.vec"), &v);
    put(&fs, &dir.join("gen-000000.idx"), &i);
    if let Ok(store) = VectorStore::open(Arc::new(fs), dir, DIM, OpenAt::Newest) {
        let _ = store.verify();
        let ids: Vec<u64> = (0..64).collect();
        let _ = store.distances(Metric::L2, &[0.5; DIM], &ids);
        let _ = store.compact();
        let _ = store.append(1, &[7], Some(&[1.0; DIM]));
    }
});
