//! `freshvec bench`: the embedded benchmark. Bulk-loads a base, applies updates as upserts,
//! waits for background rebalancing to drain, then measures one-at-a-time searches. Its JSON
//! uses the field names of the shared peers benchmark so both can be compared in one table.

mod dataset;
mod filtered;
mod remote;

use anyhow::Context;
use clap::Args;
use dataset::Dataset;
use freshvec_core::durable::{DurableCollection, Op};
use freshvec_core::storage::fs::RealFs;
use freshvec_core::{
    distance, Collection, Encoding, IndexParams, IndexStats, Metric, SearchParams,
};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// TEXMEX folder (base.fvecs, updates.fvecs, updates_ids.ivecs, queries.fvecs,
    /// groundtruth.ivecs).
    #[arg(long, conflicts_with = "generate")]
    data: Option<PathBuf>,
    /// Generate a dataset shaped like a shared preset instead (seed or medium).
    #[arg(long)]
    generate: Option<String>,
    /// With --generate: uniform vectors instead of a Gaussian mixture.
    #[arg(long)]
    uniform: bool,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Postings probed per shard (default: the depth each shard's recall calibration chooses
    /// for the target recall).
    #[arg(long)]
    nprobe: Option<usize>,
    /// The recall@10 the default search aims for (default: the engine's, 0.95).
    #[arg(long, conflicts_with = "nprobe")]
    target_recall: Option<f32>,
    /// After the run, measure searches at these target recalls (e.g. 0.9,0.95,0.99): the
    /// recall reached, the calibration's estimate, and QPS.
    #[arg(long, value_delimiter = ',')]
    targets: Vec<f32>,
    /// With codes: candidates re-ranked exactly, as a multiple of k (default: the engine's).
    #[arg(long)]
    rerank: Option<usize>,
    /// How postings hold vectors: int8 (residual codes, vectors re-rank from the store) or
    /// f32 (default: the engine's).
    #[arg(long)]
    encoding: Option<String>,
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Concurrent search clients.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long, default_value_t = 1024)]
    update_batch: usize,
    /// Also measure a recall/QPS curve over nprobe.
    #[arg(long)]
    sweep: bool,
    /// The nprobe values of the sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,6,8,12,16,24,32,48,64,96")]
    sweep_nprobe: Vec<usize>,
    /// Search with exact shard pruning instead of full fan-out.
    #[arg(long)]
    pruned: bool,
    /// Minimum seconds per search measurement.
    #[arg(long, default_value_t = 1.0)]
    min_seconds: f64,
    /// Measure search latency while updates stream at these fractions of the measured
    /// maximum update rate (e.g. 0.1,0.5).
    #[arg(long, value_delimiter = ',')]
    update_load: Vec<f64>,
    /// After the run, bulk-build a fresh index on the final vectors and compare recall.
    #[arg(long)]
    fresh_compare: bool,
    #[arg(long, default_value = "l2")]
    metric: String,
    #[arg(long)]
    posting_size: Option<usize>,
    #[arg(long)]
    split_limit: Option<usize>,
    #[arg(long)]
    replicas: Option<usize>,
    #[arg(long)]
    replica_ratio: Option<f32>,
    #[arg(long)]
    rng_factor: Option<f32>,
    #[arg(long)]
    replica_candidates: Option<usize>,
    #[arg(long)]
    background_threads: Option<usize>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Keep the collection durable in this directory (emptied first): the base is imported
    /// and checkpointed, every update batch is journaled with an fsync before it is applied.
    #[arg(long)]
    durable: Option<PathBuf>,
    /// With --durable: checkpoint after every this many update batches (0: only the import's).
    #[arg(long, default_value_t = 0, requires = "durable")]
    checkpoint_every: usize,
    /// With --durable: a second thread compacts the vector files of a shard once they exceed
    /// this many times its live records (checked every 16 batches; 0: never).
    #[arg(long, default_value_t = 2.0, requires = "durable")]
    compact_factor: f64,
    /// With --durable: only reopen the collection already in the directory (checkpoint plus
    /// journal replay) and measure the restart, its memory and its searches.
    #[arg(long, requires = "durable")]
    reopen: bool,
    /// Load generator: run the benchmark through the gRPC API of the server at ADDR
    /// (HOST:PORT) instead of the embedded engine.
    #[arg(long, conflicts_with_all = ["durable", "reopen"])]
    server: Option<String>,
    /// With --server: concurrent search clients, one request at a time each.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Filtered search instead (see `bench/filtered.rs`): --data must also hold the
    /// `attrs.jsonl` and `filters.json` of the shared `filtered.py make`.
    #[arg(long, requires = "data", conflicts_with_all = ["server", "durable"])]
    filtered: bool,
}

struct SearchRun {
    qps: f64,
    recall: f64,
    p50_ms: f64,
    p99_ms: f64,
    queries: usize,
}

/// The search parameters the flags ask for (engine defaults where unset).
fn search_params(args: &BenchArgs) -> SearchParams {
    SearchParams {
        k: args.k,
        nprobe: args.nprobe.unwrap_or(0),
        target_recall: args.target_recall,
        rerank: args.rerank.unwrap_or(SearchParams::DEFAULT_RERANK),
        exact: false,
    }
}

fn params_from(args: &BenchArgs, dim: usize) -> anyhow::Result<IndexParams> {
    let metric = Metric::parse(&args.metric).context("--metric must be l2, dot or cosine")?;
    let mut p = IndexParams::new(dim, metric);
    if let Some(e) = &args.encoding {
        p.encoding = Encoding::parse(e).context("--encoding must be f32 or int8")?;
    }
    if let Some(v) = args.posting_size {
        p.posting_size = v;
    }
    if let Some(v) = args.split_limit {
        p.split_limit = v;
    }
    if let Some(v) = args.replicas {
        p.replicas = v;
        p.replica_candidates = p.replica_candidates.max(v);
    }
    if let Some(v) = args.replica_ratio {
        p.replica_ratio = v;
    }
    if let Some(v) = args.rng_factor {
        p.rng_factor = v;
    }
    if let Some(v) = args.replica_candidates {
        p.replica_candidates = v;
    }
    if let Some(v) = args.background_threads {
        p.background_threads = v;
    }
    p.seed = args.seed;
    Ok(p)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// A `/proc/self/status` memory field (`VmHWM` peak, `VmRSS` current) in MiB.
/// Bytes under `dir` by top-level part (vectors, checkpoints, journal, ...) and in all.
fn disk_usage(dir: &std::path::Path) -> Value {
    fn walk(p: &std::path::Path) -> u64 {
        match std::fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    let mut parts = serde_json::Map::new();
    let mut total = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let bytes = walk(&e.path());
        total += bytes;
        parts.insert(format!("{}_bytes", e.file_name().to_string_lossy()), json!(bytes));
    }
    parts.insert("total_bytes".into(), json!(total));
    Value::Object(parts)
}

fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn recall(coll: &Collection, ds: &Dataset, sp: &SearchParams, pruned: bool) -> f64 {
    let mut hit = 0usize;
    let mut total = 0usize;
    for (q, gt) in ds.queries.chunks_exact(ds.dim).zip(&ds.groundtruth) {
        let hits = search(coll, q, sp, pruned);
        let gt = &gt[..sp.k.min(gt.len())];
        hit += hits.iter().filter(|h| gt.contains(&h.key)).count();
        total += gt.len();
    }
    hit as f64 / total.max(1) as f64
}

fn search(
    coll: &Collection,
    q: &[f32],
    sp: &SearchParams,
    pruned: bool,
) -> Vec<freshvec_core::Hit> {
    let r = if pruned { coll.search_pruned(q, sp).map(|x| x.0) } else { coll.search(q, sp) };
    r.expect("benchmark queries are valid")
}

/// One-at-a-time queries from `threads` clients, repeating the query set until `min_seconds`
/// have passed.
fn measure(coll: &Collection, ds: &Dataset, sp: &SearchParams, args: &BenchArgs) -> SearchRun {
    let rec = recall(coll, ds, sp, args.pruned);
    let nq = ds.n_queries();
    let min = Duration::from_secs_f64(args.min_seconds);
    let start = Instant::now();
    let lat: Vec<Vec<f64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..args.threads.max(1))
            .map(|t| {
                s.spawn(move || {
                    let mut lat = Vec::new();
                    let mut i = t * nq / args.threads.max(1);
                    while start.elapsed() < min || lat.len() < nq / args.threads.max(1) {
                        let q = &ds.queries[(i % nq) * ds.dim..][..ds.dim];
                        let t0 = Instant::now();
                        std::hint::black_box(search(coll, q, sp, args.pruned));
                        lat.push(t0.elapsed().as_secs_f64() * 1e3);
                        i += 1;
                    }
                    lat
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("search client")).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut all: Vec<f64> = lat.into_iter().flatten().collect();
    all.sort_by(f64::total_cmp);
    SearchRun {
        qps: all.len() as f64 / elapsed,
        recall: rec,
        p50_ms: percentile(&all, 0.5),
        p99_ms: percentile(&all, 0.99),
        queries: all.len(),
    }
}

fn stats_json(s: &IndexStats) -> Value {
    json!({
        "vectors": s.vectors, "postings": s.postings, "members": s.members,
        "splits": s.splits, "merges": s.merges, "reassigned": s.reassigned,
        "gc_runs": s.gc_runs, "searches": s.searches, "scanned": s.scanned,
        "scanned_bytes": s.scanned_bytes, "reranked": s.reranked, "pending_jobs": s.pending_jobs,
        "memory_mb": s.memory_bytes as f64 / 1048576.0,
        "vector_mb": s.vector_bytes as f64 / 1048576.0, "code_mb": s.code_bytes as f64 / 1048576.0,
    })
}

/// Upserts `count` update rows (cycling) at `rate` vectors/s until `stop`, returning how many
/// were written.
fn paced_updates(
    coll: &Collection,
    ds: &Dataset,
    rate: f64,
    stop: &AtomicBool,
    written: &AtomicU64,
) {
    let dim = ds.dim;
    let nu = ds.update_ids.len();
    if nu == 0 || rate <= 0.0 {
        return;
    }
    let batch = ((rate / 200.0).ceil() as usize).clamp(1, 1024).min(nu);
    let start = Instant::now();
    let mut done = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let due = start + Duration::from_secs_f64(done as f64 / rate);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
            continue;
        }
        let at = done % nu;
        let n = batch.min(nu - at);
        coll.upsert(&ds.update_ids[at..at + n], &ds.updates[at * dim..(at + n) * dim])
            .expect("paced upsert");
        done += n;
        written.store(done as u64, Ordering::Relaxed);
    }
}

fn load(args: &BenchArgs) -> anyhow::Result<Dataset> {
    match (&args.data, &args.generate) {
        (Some(dir), _) => Dataset::read(dir).with_context(|| format!("reading {}", dir.display())),
        (None, Some(preset)) => Dataset::generate(preset, !args.uniform, args.seed),
        (None, None) => anyhow::bail!("give --data DIR or --generate seed|medium"),
    }
}

/// `--durable DIR --reopen`: restart from the directory and measure it.
fn reopen(args: &BenchArgs, ds: &Dataset, params: IndexParams) -> anyhow::Result<()> {
    let dir = args.durable.as_ref().expect("--reopen requires --durable");
    let rss_before = status_mb("VmRSS:");
    let t = Instant::now();
    let dc = DurableCollection::open(Arc::new(RealFs), dir, params)?;
    let restart_s = t.elapsed().as_secs_f64();
    let rss = status_mb("VmRSS:");
    let sp = search_params(args);
    let r = measure(dc.collection(), ds, &sp, args);
    eprintln!(
        "reopened {} in {restart_s:.2}s (checkpoint at {}, applied {}); rss {rss:.0} MiB \
         ({rss_before:.0} before); search {:.0} qps, recall@{} {:.4}",
        dir.display(),
        dc.restored_from(),
        dc.applied_index(),
        r.qps,
        args.k,
        r.recall
    );
    let out = json!({
        "system": "freshvec", "mode": "reopen", "durable": dir.display().to_string(),
        "restart_s": restart_s, "restored_from": dc.restored_from(),
        "applied_index": dc.applied_index(), "replayed": dc.applied_index() - dc.restored_from(),
        "rss_before_open_mb": rss_before, "rss_after_open_mb": rss,
        "raw_vectors_mb": (dc.collection().len() * ds.dim * 4) as f64 / 1048576.0,
        "search_qps": r.qps, "recall_at_k": r.recall, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms,
        "stats": stats_json(&dc.collection().stats()),
    });
    let text = serde_json::to_string_pretty(&out)?;
    match &args.json {
        Some(p) => std::fs::write(p, text + "\n")?,
        None => println!("{text}"),
    }
    Ok(())
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let mut ds = load(&args)?;
    let dim = ds.dim;
    let n = ds.n_base();
    eprintln!(
        "dataset: n={n} d={dim} updates={} queries={} (loaded in {:.1}s, rss {:.0} MiB, peak {:.0}); kernels: {}",
        ds.update_ids.len(),
        ds.n_queries(),
        t0.elapsed().as_secs_f64(),
        status_mb("VmRSS:"),
        peak_rss_mb(),
        distance::level_name(distance::kernels().level)
    );
    if let Some(server) = &args.server {
        return remote::run(&args, &ds, server);
    }
    let params = params_from(&args, dim)?;
    if let (true, Some(dir)) = (args.filtered, &args.data) {
        let out = filtered::run(&args, &ds, dir, params)?;
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&out)?)?;
        }
        return Ok(());
    }
    if args.reopen {
        ds.base = Vec::new();
        return reopen(&args, &ds, params);
    }
    anyhow::ensure!(
        args.durable.is_none() || args.update_load.is_empty(),
        "--update-load writes outside the journal; it cannot be combined with --durable"
    );
    let durable = match &args.durable {
        Some(dir) => {
            if dir.exists() {
                std::fs::remove_dir_all(dir)
                    .with_context(|| format!("emptying {}", dir.display()))?;
            }
            Some(DurableCollection::create(Arc::new(RealFs), dir, params.clone(), args.shards)?)
        }
        None => None,
    };
    let owned = match durable {
        Some(_) => None,
        None => Some(Collection::new(params.clone(), args.shards)?),
    };
    let coll: &Collection = match (&durable, &owned) {
        (Some(d), _) => d.collection(),
        (None, Some(c)) => c,
        (None, None) => unreachable!("one of the two is built above"),
    };
    let sp = search_params(&args);

    // Build: the collection takes the base by value (no copy).
    let base = std::mem::take(&mut ds.base);
    let t = Instant::now();
    match &durable {
        Some(d) => drop(d.import((0..n as u64).collect(), base)?),
        None => coll.bulk_load((0..n as u64).collect(), base)?,
    }
    let build_s = t.elapsed().as_secs_f64();
    eprintln!(
        "build: {build_s:.2}s, rss {:.0} MiB (peak {:.0}), {:?}",
        status_mb("VmRSS:"),
        peak_rss_mb(),
        coll.stats()
    );
    let after_build = coll.stats();

    // Updates in batches; acknowledged = upsert returned. A durable run checkpoints as asked
    // and compacts its vector files on a second thread beside the writes.
    let nu = ds.update_ids.len();
    let pb = bar(nu as u64, "updates");
    let t = Instant::now();
    let (nudge, nudged) = std::sync::mpsc::channel::<()>();
    let compactions = AtomicU64::new(0);
    let (durable_ref, compactions_ref) = (&durable, &compactions);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let compactor = s.spawn(move || -> anyhow::Result<()> {
            while nudged.recv().is_ok() {
                if let (Some(d), true) = (durable_ref, args.compact_factor > 0.0) {
                    let done = d.compact(args.compact_factor, 1 << 20)?.len() as u64;
                    compactions_ref.fetch_add(done, Ordering::Relaxed);
                }
            }
            Ok(())
        });
        for (b, at) in (0..nu).step_by(args.update_batch.max(1)).enumerate() {
            let m = args.update_batch.min(nu - at);
            let (ids, vectors) =
                (&ds.update_ids[at..at + m], &ds.updates[at * dim..(at + m) * dim]);
            match &durable {
                Some(d) => {
                    d.apply(&Op::upsert(ids.to_vec(), vectors.to_vec()))?;
                    if args.checkpoint_every > 0 && (b + 1) % args.checkpoint_every == 0 {
                        d.checkpoint()?;
                    }
                    if (b + 1) % 16 == 0 {
                        nudge.send(())?;
                    }
                }
                None => coll.upsert(ids, vectors)?,
            }
            pb.inc(m as u64);
        }
        drop(nudge);
        compactor.join().expect("the compactor does not panic")
    })?;
    let update_s = t.elapsed().as_secs_f64();
    coll.wait_idle();
    let update_all_s = t.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let stats = coll.stats();
    let disk = match &durable {
        Some(d) => {
            let usage = disk_usage(d.dir());
            let live = (coll.len() * dim * 4) as f64;
            eprintln!(
                "disk after updates: {usage} bytes by part, {:.2}x the live vectors ({} compactions)",
                usage["total_bytes"].as_f64().unwrap_or(0.0) / live,
                compactions.load(Ordering::Relaxed)
            );
            json!({"usage": usage, "live_vector_bytes": live,
                   "total_vs_live_vectors": usage["total_bytes"].as_f64().unwrap_or(0.0) / live,
                   "compactions": compactions.load(Ordering::Relaxed),
                   "checkpoint_every": args.checkpoint_every, "compact_factor": args.compact_factor})
        }
        None => Value::Null,
    };
    let per_k = |x: u64, y: u64| if nu == 0 { 0.0 } else { (x - y) as f64 * 1000.0 / nu as f64 };
    eprintln!(
        "updates: {:.0}/s acked, {:.0}/s incl. rebalance; rss {:.0} MiB (peak {:.0}); {stats:?}",
        nu as f64 / update_s,
        nu as f64 / update_all_s,
        status_mb("VmRSS:"),
        peak_rss_mb()
    );

    // The recall curve the default depth comes from, measured now rather than left to the
    // background thread, so the searches below all see it.
    let t = Instant::now();
    coll.calibrate();
    let calibration_s = t.elapsed().as_secs_f64();
    let calibration = coll.calibration();
    let depth = coll.shards().iter().map(|s| s.depth(&sp)).max().unwrap_or(0);
    if let Some(c) = &calibration {
        eprintln!(
            "calibration: {:.2}s, {} queries; default nprobe {} (estimated recall {:.4}); curve {:?}",
            calibration_s, c.queries, c.default_nprobe, c.default_recall, c.points
        );
    }
    let main = measure(coll, &ds, &sp, &args);
    eprintln!(
        "search nprobe={}{}: {:.0} qps, recall@{} {:.4}, p50 {:.3} ms, p99 {:.3} ms",
        depth,
        if sp.nprobe == 0 { " (calibrated)" } else { "" },
        main.qps,
        args.k,
        main.recall,
        main.p50_ms,
        main.p99_ms
    );
    let mut targets = Vec::new();
    for &t in &args.targets {
        let s = sp.with_target_recall(t);
        let estimate = coll.estimated_recall(&s).unwrap_or(f32::NAN);
        let depth = coll.shards().iter().map(|sh| sh.depth(&s)).max().unwrap_or(0);
        let r = measure(coll, &ds, &s, &args);
        eprintln!(
            "  target {t:.3}: recall {:.4} (estimated {estimate:.4}, error {:+.4}), nprobe {depth}, {:.0} qps, p99 {:.3} ms",
            r.recall,
            r.recall - f64::from(estimate),
            r.qps,
            r.p99_ms
        );
        targets.push(json!({"target_recall": t, "recall_at_k": r.recall, "estimated_recall": estimate,
                            "error": r.recall - f64::from(estimate), "vs_target": r.recall - f64::from(t),
                            "nprobe": depth, "search_qps": r.qps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}));
    }

    // An exact scan reads every current vector once.
    let exact_bytes = (n * dim * 4) as f64;
    let mut sweep = Vec::new();
    if args.sweep {
        for &np in &args.sweep_nprobe {
            let s = SearchParams { nprobe: np, ..sp };
            let before = coll.stats();
            let r = measure(coll, &ds, &s, &args);
            let after = coll.stats();
            let searches = (after.searches - before.searches).max(1) as f64;
            let per_query = (after.scanned - before.scanned) as f64 / searches;
            let bytes = (after.scanned_bytes - before.scanned_bytes) as f64 / searches;
            let reranked = (after.reranked - before.reranked) as f64 / searches;
            eprintln!(
                "  nprobe={np:>4}: {:>9.0} qps  recall {:.4}  p99 {:.3} ms  scanned/query {per_query:.0}  \
                 {:.3} of the exact scan's bytes  reranked/query {reranked:.0}",
                r.qps, r.recall, r.p99_ms, bytes / exact_bytes
            );
            sweep.push(json!({"nprobe": np, "rerank": sp.rerank, "search_qps": r.qps, "recall_at_k": r.recall,
                              "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "scanned_per_query": per_query,
                              "bytes_per_query": bytes, "bytes_vs_exact_scan": bytes / exact_bytes,
                              "reranked_per_query": reranked}));
        }
    }

    // The peak of the standard run (build, updates, searches), before any extra update load.
    let peak = peak_rss_mb();
    let max_rate = if update_s > 0.0 { nu as f64 / update_s } else { 0.0 };
    let mut concurrency = Vec::new();
    for &frac in &args.update_load {
        let stop = AtomicBool::new(false);
        let written = AtomicU64::new(0);
        let t = Instant::now();
        let r = std::thread::scope(|s| {
            s.spawn(|| paced_updates(coll, &ds, frac * max_rate, &stop, &written));
            let r = measure(coll, &ds, &sp, &args);
            stop.store(true, Ordering::Relaxed);
            r
        });
        let rate = written.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64();
        coll.wait_idle();
        eprintln!(
            "under updates at {:.0}% ({rate:.0}/s): {:.0} qps, p50 {:.3} ms, p99 {:.3} ms ({:.2}x idle p99)",
            frac * 100.0, r.qps, r.p50_ms, r.p99_ms, r.p99_ms / main.p99_ms
        );
        concurrency.push(json!({
            "fraction_of_max_update_rate": frac, "update_rate": rate, "search_qps": r.qps,
            "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "p99_vs_idle": r.p99_ms / main.p99_ms,
        }));
    }
    let peak_after_load = peak_rss_mb();
    let raw_mb = (n * dim * 4) as f64 / 1048576.0;

    let fresh = if args.fresh_compare {
        let final_stats = coll.stats();
        drop(owned);
        drop(durable);
        let fresh = Collection::new(params.clone(), args.shards)?;
        let again = load(&args)?;
        fresh.bulk_load((0..n as u64).collect(), again.final_vectors())?;
        let r = recall(&fresh, &ds, &sp, args.pruned);
        eprintln!(
            "fresh bulk build on the final vectors: recall {r:.4} (after updates: {:.4})",
            main.recall
        );
        Some(
            json!({"recall_at_k": r, "recall_after_updates": main.recall, "delta": main.recall - r,
                    "stats_after_updates": stats_json(&final_stats), "stats_fresh": stats_json(&fresh.stats())}),
        )
    } else {
        None
    };

    let out = json!({
        "system": "freshvec",
        "dataset": {"n_base": n, "dim": dim, "n_updates": nu, "n_queries": ds.n_queries(),
                    "source": args.data.as_ref().map(|p| p.display().to_string()).or(args.generate.clone())},
        "params": {"shards": args.shards, "nprobe": depth, "nprobe_calibrated": sp.nprobe == 0, "k": args.k, "threads": args.threads,
                   "update_batch": args.update_batch, "metric": params.metric.to_string(),
                   "encoding": params.encoding.to_string(), "rerank": sp.rerank,
                   "posting_size": params.posting_size, "split_limit": params.split_limit,
                   "merge_limit": params.merge_limit, "replicas": params.replicas,
                   "replica_ratio": params.replica_ratio, "rng_factor": params.rng_factor, "replica_candidates": params.replica_candidates, "background_threads": params.background_threads,
                   "pruned": args.pruned, "simd": distance::level_name(distance::kernels().level),
                   "durable": args.durable.as_ref().map(|d| d.display().to_string())},
        "k": args.k, "n_base": n, "n_updates": nu,
        "build_s": build_s,
        "update_s": update_s,
        "update_qps": if update_s > 0.0 { nu as f64 / update_s } else { 0.0 },
        "update_qps_incl_rebalance": if update_all_s > 0.0 { nu as f64 / update_all_s } else { 0.0 },
        "search_qps": main.qps, "recall_at_k": main.recall, "p50_ms": main.p50_ms, "p99_ms": main.p99_ms,
        "timed_queries": main.queries,
        "disk": disk,
        "peak_rss_mb": peak, "raw_vectors_mb": raw_mb, "peak_rss_vs_raw": peak / raw_mb,
        "peak_rss_mb_incl_update_load": peak_after_load,
        "stats_after_build": stats_json(&after_build),
        "stats": stats_json(&stats),
        "per_1000_updates": {"splits": per_k(stats.splits, after_build.splits),
                             "merges": per_k(stats.merges, after_build.merges),
                             "reassigned": per_k(stats.reassigned, after_build.reassigned)},
        "sweep": sweep,
        "targets": targets,
        "calibration": calibration.as_ref().map(|c| json!({"seconds": calibration_s, "queries": c.queries,
            "default_nprobe": c.default_nprobe, "default_recall_estimate": c.default_recall,
            "points": c.points.iter().map(|p| json!({"nprobe": p.0, "recall": p.1})).collect::<Vec<_>>()})),
        "concurrency": concurrency,
        "fresh": fresh,
    });
    let text = serde_json::to_string_pretty(&out)?;
    match &args.json {
        Some(p) => {
            std::fs::write(p, text + "\n").with_context(|| format!("writing {}", p.display()))?
        }
        None => println!("{text}"),
    }
    Ok(())
}
