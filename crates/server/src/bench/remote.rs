//! `freshvec bench --server ADDR`: the load generator. Loads a dataset through the public
//! API (base and updates as upsert batches), then measures searches from `--concurrency`
//! concurrent clients, each one request at a time, and writes the embedded bench's JSON fields.

use super::dataset::Dataset;
use super::{percentile, BenchArgs};
use crate::proto::collections_client::CollectionsClient;
use crate::proto::points_client::PointsClient;
use crate::proto::*;
use crate::serve::{encoding_to, metric_to};
use anyhow::Context;
use serde_json::json;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const COLLECTION: &str = "bench";
/// Points per upsert request while loading.
const LOAD_BATCH: usize = 1000;

fn points(ids: &[u64], vectors: &[f32], dim: usize) -> Vec<Point> {
    ids.iter()
        .zip(vectors.chunks_exact(dim))
        .map(|(id, v)| Point { id: *id, vector: v.to_vec(), ..Default::default() })
        .collect()
}

pub fn run(args: &BenchArgs, ds: &Dataset, server: &str) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run_async(args, ds, server))
}

async fn run_async(args: &BenchArgs, ds: &Dataset, server: &str) -> anyhow::Result<()> {
    let url = if server.contains("://") { server.to_string() } else { format!("http://{server}") };
    let channel = Channel::from_shared(url.clone())?
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let mut colls = CollectionsClient::new(channel.clone());
    let mut pts = PointsClient::new(channel.clone())
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let dim = ds.dim;
    let n = ds.n_base();
    let _ = colls.drop(DropCollectionRequest { name: COLLECTION.into() }).await;
    let engine = super::params_from(args, dim)?;
    let (metric, encoding) = (metric_to(engine.metric), encoding_to(engine.encoding));
    colls
        .create(CreateCollectionRequest {
            name: COLLECTION.into(),
            dimension: dim as u32,
            metric: metric as i32,
            shards: args.shards as u32,
            index: Some(IndexParameters { encoding: encoding as i32, ..Default::default() }),
        })
        .await?;
    let base_ids: Vec<u64> = (0..n as u64).collect();
    let t = Instant::now();
    for (ids, vs) in base_ids.chunks(LOAD_BATCH).zip(ds.base.chunks(LOAD_BATCH * dim)) {
        let req = UpsertRequest {
            collection: COLLECTION.into(),
            points: points(ids, vs, dim),
            ..Default::default()
        };
        pts.upsert(req).await?;
    }
    let build_s = t.elapsed().as_secs_f64();
    let nu = ds.update_ids.len();
    let t = Instant::now();
    let batch = args.update_batch.max(1);
    for (ids, vs) in ds.update_ids.chunks(batch).zip(ds.updates.chunks(batch * dim)) {
        let req = UpsertRequest {
            collection: COLLECTION.into(),
            points: points(ids, vs, dim),
            ..Default::default()
        };
        pts.upsert(req).await?;
    }
    let update_s = t.elapsed().as_secs_f64();
    eprintln!(
        "loaded {n} through the API in {build_s:.2}s; {nu} updates at {:.0}/s",
        nu as f64 / update_s.max(1e-9)
    );
    let params = |exact: bool| SearchParameters {
        k: args.k as u32,
        nprobe: args.nprobe.unwrap_or(0) as u32,
        rerank: args.rerank.unwrap_or(0) as u32,
        exact,
        ..Default::default()
    };
    // Recall, one query at a time.
    let nq = ds.n_queries();
    let mut hit = 0usize;
    let mut total = 0usize;
    for (q, gt) in ds.queries.chunks_exact(dim).zip(&ds.groundtruth) {
        let req = SearchRequest {
            collection: COLLECTION.into(),
            vector: q.to_vec(),
            params: Some(params(false)),
            ..Default::default()
        };
        let got = pts.search(req).await?.into_inner().hits;
        let gt = &gt[..args.k.min(gt.len())];
        hit += got.iter().filter(|h| gt.contains(&h.id)).count();
        total += gt.len();
    }
    let recall = hit as f64 / total.max(1) as f64;
    // Throughput: `concurrency` clients, one request at a time each, for min_seconds.
    let clients = args.concurrency.max(1);
    let min = Duration::from_secs_f64(args.min_seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut p = PointsClient::new(channel.clone());
        let queries = ds.queries.clone();
        let sp = params(false);
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = c * nq / clients;
            while start.elapsed() < min || lat.len() < nq / clients {
                let q = queries[(i % nq) * dim..][..dim].to_vec();
                let req = SearchRequest {
                    collection: COLLECTION.into(),
                    vector: q,
                    params: Some(sp),
                    ..Default::default()
                };
                let t = Instant::now();
                p.search(req).await?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
                i += 1;
            }
            Ok::<_, tonic::Status>(lat)
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let qps = all.len() as f64 / elapsed;
    let (p50, p99) = (percentile(&all, 0.5), percentile(&all, 0.99));
    eprintln!(
        "search over gRPC, {clients} clients: {qps:.0} qps, recall@{} {recall:.4}, p50 {p50:.3} ms, p99 {p99:.3} ms",
        args.k
    );
    let out = json!({
        "system": "freshvec", "mode": "grpc", "server": url,
        "dataset": {"n_base": n, "dim": dim, "n_updates": nu, "n_queries": nq},
        "params": {"concurrency": clients, "k": args.k, "nprobe": args.nprobe, "rerank": args.rerank,
                   "update_batch": batch, "shards": args.shards, "encoding": encoding.as_str_name()},
        "k": args.k, "n_base": n, "n_updates": nu,
        "build_s": build_s, "update_s": update_s,
        "update_qps": if update_s > 0.0 { nu as f64 / update_s } else { 0.0 },
        "search_qps": qps, "recall_at_k": recall, "p50_ms": p50, "p99_ms": p99,
        "timed_queries": all.len(),
    });
    let text = serde_json::to_string_pretty(&out)?;
    match &args.json {
        Some(p) => std::fs::write(p, text + "\n")?,
        None => println!("{text}"),
    }
    Ok(())
}
