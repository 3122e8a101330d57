//! Arbitrary bytes through every record decoder: the framing scan, the journal op decoder and
//! the checkpoint shard restore. Each returns an error on bad input, never panics.
#![no_main]

use freshvec_core::durable::Op;
use freshvec_core::storage::frame;
use freshvec_core::{Index, IndexParams, Metric};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = frame::scan(frame::JOURNAL, Path::new("f"), data);
    let mut framed = frame::header(frame::CHECKPOINT_SHARD).to_vec();
    framed.extend_from_slice(data);
    let _ = frame::scan(frame::CHECKPOINT_SHARD, Path::new("f"), &framed);
    let _ = Op::decode(data, 3);
    // Records for a shard restore: split the input at zero bytes.
    let records: Vec<&[u8]> = data.split(|&b| b == 0xff).collect();
    let params = IndexParams::new(3, Metric::L2);
    let of = |id: u64| (id % 2 == 0).then_some(&[1.0f32, 2.0, 3.0][..]);
    let _ = Index::restore(params, records.iter().copied(), &of);
});
