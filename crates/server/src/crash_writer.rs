//! `freshvec crash-writer`: a deterministic durable writer for crash tests. It opens (or
//! creates) a durable collection, then applies numbered upsert batches one after another,
//! printing `ack BATCH INDEX` once each is acknowledged (durable and applied), checkpoints
//! every `checkpoint_every` batches, and every `compact_every` batches has a second thread
//! compact the vector files while the writes go on. A test kills it at random moments and
//! checks that every acknowledged batch survived. Batch `b` is a pure function of `b`
//! ([`batch`]).

use clap::Args;
use freshvec_core::durable::{DurableCollection, Op};
use freshvec_core::rng::Rng;
use freshvec_core::storage::fs::RealFs;
use freshvec_core::{IndexParams, Metric, SearchParams};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const DIM: usize = 8;
const IDS: u64 = 400;

#[derive(Args, Debug)]
pub struct CrashWriterArgs {
    #[arg(long)]
    dir: PathBuf,
    /// Stop after this many batches in all (the test normally kills it first).
    #[arg(long, default_value_t = 1_000_000)]
    batches: u64,
    #[arg(long, default_value_t = 25)]
    checkpoint_every: u64,
    #[arg(long, default_value_t = 10)]
    compact_every: u64,
    /// Instead of writing: reopen and check that batches 1..=N (N the last acknowledged
    /// batch) are all there, at most the one in flight after them, and nothing else.
    #[arg(long)]
    verify: Option<u64>,
}

/// The parameters both the writer and its checker open the collection with.
pub fn params() -> IndexParams {
    IndexParams {
        posting_size: 16,
        split_limit: 32,
        merge_limit: 4,
        ..IndexParams::new(DIM, Metric::L2)
    }
}

/// Batch `b` (numbered from 1, equal to its log index): a few ids and their vectors.
pub fn batch(b: u64) -> Op {
    let mut rng = Rng::new(b.wrapping_mul(0x9e37_79b9));
    // Every fifth batch is large enough to apply while its fsync runs.
    let n = if b.is_multiple_of(5) { 80 } else { 1 + rng.below(16) };
    let ids: Vec<u64> = (0..n).map(|_| rng.below(IDS as usize) as u64).collect();
    let vectors = (0..n * DIM).map(|_| rng.normal()).collect();
    Op::upsert(ids, vectors)
}

pub fn open(dir: &Path) -> anyhow::Result<DurableCollection> {
    let fs = Arc::new(RealFs);
    Ok(if dir.join("collection").exists() {
        DurableCollection::open(fs, dir, params())?
    } else {
        DurableCollection::create(fs, dir, params(), 2)?
    })
}

pub fn run(args: CrashWriterArgs) -> anyhow::Result<()> {
    if let Some(acked) = args.verify {
        return verify(&args.dir, acked);
    }
    let dc = open(&args.dir)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "open {}", dc.applied_index())?;
    out.flush()?;
    let (nudge, nudged) = std::sync::mpsc::channel::<()>();
    let dc = &dc;
    std::thread::scope(|s| {
        // Compacts whenever nudged, beside the writes; ends when the writer hangs up.
        let compactor = s.spawn(move || -> anyhow::Result<()> {
            while nudged.recv().is_ok() {
                dc.compact(1.0, 0)?;
            }
            Ok(())
        });
        for b in dc.applied_index() + 1..=args.batches {
            let index = dc.apply(&batch(b))?;
            anyhow::ensure!(index == b, "batch {b} got log index {index}");
            writeln!(out, "ack {b} {index}")?;
            out.flush()?;
            if b % args.checkpoint_every == 0 {
                dc.checkpoint()?;
            }
            if b % args.compact_every == 0 {
                nudge.send(())?;
            }
        }
        drop(nudge);
        compactor.join().expect("the compactor does not panic")
    })
}

/// Reopens `dir` and checks it holds exactly batches `1..=applied` with
/// `acked <= applied <= acked + 1`, and that exact search finds what it holds.
fn verify(dir: &Path, acked: u64) -> anyhow::Result<()> {
    let dc = open(dir)?;
    let applied = dc.applied_index();
    anyhow::ensure!(applied >= acked, "acknowledged batch lost: applied {applied} < acked {acked}");
    anyhow::ensure!(
        applied <= acked + 1,
        "applied {applied} is past the batch in flight ({acked} acked)"
    );
    let mut model = BTreeMap::new();
    for b in 1..=applied {
        if let Op::Upsert { ids, vectors, .. } = batch(b) {
            for (id, v) in ids.iter().zip(vectors.chunks_exact(DIM)) {
                model.insert(*id, v.to_vec());
            }
        }
    }
    let got = dc.contents();
    anyhow::ensure!(got == model, "contents differ from batches 1..={applied}");
    for (id, v) in model.iter().take(25) {
        let hits = dc.collection().search(v, &SearchParams::exact(1))?;
        anyhow::ensure!(
            hits.first().map(|h| (h.key, h.dist)) == Some((*id, 0.0)),
            "search lost {id}"
        );
    }
    println!("ok applied {applied} acked {acked} ids {}", model.len());
    Ok(())
}
