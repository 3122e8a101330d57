//! `bench --filtered`: filtered search on a TEXMEX folder that the shared `filtered.py make`
//! gave `attrs.jsonl` (one JSON object of attributes per id of the final vectors) and
//! `filters.json` (cases: a filter per query and the exact filtered top-10).
//!
//! The collection is built on the final vectors with each id's attributes as its payload and
//! a field index per attribute (keyword for strings, integer for integers, bool for bools);
//! then every case is searched one query at a time from one thread at the default depth and
//! at each `--targets` recall, with `k = min(10, |matching|)` as the shared script does: recall
//! against the case's ground truth, the fraction of queries that got fewer than `k`, QPS and
//! how the plans ran. Also measured: the field indexes' memory, and the write throughput of
//! a durable collection with a 200-byte payload per point against none.

use super::dataset::Dataset;
use super::{peak_rss_mb, percentile, status_mb, BenchArgs};
use crate::api::payload::{filter_from, payload_from};
use anyhow::Context;
use freshvec_core::collection::Strategy;
use freshvec_core::durable::{DurableCollection, Op};
use freshvec_core::payload::{FieldKind, Filter, Payload, Value as PValue};
use freshvec_core::storage::fs::RealFs;
use freshvec_core::{Collection, IndexParams, SearchParams};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Case {
    name: String,
    selectivity: f64,
    filters: Vec<Filter>,
    groundtruth: Vec<Vec<u64>>,
}

fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", e.message())
}

fn read_payloads(path: &Path, n: usize) -> anyhow::Result<Vec<Payload>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    let mut out = vec![Payload::new(); n];
    for (i, line) in text.lines().enumerate() {
        let mut j: Value = serde_json::from_str(line).with_context(|| format!("line {}", i + 1))?;
        let id = j.get("id").and_then(Value::as_u64).context("every line needs an id")? as usize;
        j.as_object_mut().expect("an object").remove("id");
        anyhow::ensure!(id < n, "line {}: id {id} is past the {n} vectors", i + 1);
        let fields = crate::json::payload(&j).map_err(anyhow::Error::msg)?;
        out[id] = payload_from("attrs", fields).map_err(status)?;
    }
    Ok(out)
}

fn read_cases(path: &Path, nq: usize) -> anyhow::Result<Vec<Case>> {
    let j: Value = serde_json::from_reader(std::fs::File::open(path)?)?;
    let cases = j.as_array().context("filters.json holds a list of cases")?;
    cases
        .iter()
        .map(|c| {
            let filters = c["queries"]
                .as_array()
                .context("queries")?
                .iter()
                .take(nq)
                .map(|f| {
                    let f = crate::json::filter(f).map_err(anyhow::Error::msg)?;
                    filter_from("filter", f).map_err(status)
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let groundtruth = c["groundtruth"]
                .as_array()
                .context("groundtruth")?
                .iter()
                .take(nq)
                .map(|g| {
                    g.as_array()
                        .map_or(Vec::new(), |g| g.iter().filter_map(Value::as_u64).collect())
                })
                .collect();
            Ok(Case {
                name: c["name"].as_str().unwrap_or("?").to_string(),
                selectivity: c["selectivity"].as_f64().unwrap_or(0.0),
                filters,
                groundtruth,
            })
        })
        .collect()
}

/// The index kind for an attribute's values: keyword, integer or bool.
fn kind_of(v: &PValue) -> Option<FieldKind> {
    match v {
        PValue::String(_) => Some(FieldKind::Keyword),
        PValue::Int(_) => Some(FieldKind::Integer),
        PValue::Double(_) => Some(FieldKind::Float),
        PValue::Bool(_) => Some(FieldKind::Bool),
        _ => None,
    }
}

/// One case at one depth: recall, short queries, QPS and the plans, single-threaded.
fn measure(coll: &Collection, ds: &Dataset, case: &Case, sp: &SearchParams, min_s: f64) -> Value {
    let dim = ds.dim;
    let queries: Vec<&[f32]> = ds.queries.chunks_exact(dim).take(case.filters.len()).collect();
    let run = |i: usize| {
        let k = case.groundtruth[i].len().max(1);
        let p = SearchParams { k, ..*sp };
        coll.search_filtered(queries[i], &p, &case.filters[i]).expect("benchmark queries are valid")
    };
    let (mut hits, mut total, mut short) = (0usize, 0usize, 0usize);
    let mut strategies = std::collections::BTreeMap::<String, usize>::new();
    let (mut scanned, mut postings) = (0u64, 0u64);
    for i in 0..queries.len() {
        let (h, report) = run(i);
        let gt = &case.groundtruth[i];
        hits += h.iter().filter(|x| gt.contains(&x.key)).count();
        total += gt.len();
        short += usize::from(h.len() < gt.len());
        let s = match report.strategy {
            Strategy::Empty => "empty",
            Strategy::Exact => "exact",
            Strategy::Postings => "postings",
            Strategy::Fallback => "fallback",
            Strategy::Mixed => "mixed",
        };
        *strategies.entry(s.to_string()).or_default() += 1;
        scanned += report.scanned;
        postings += report.postings;
    }
    let mut lat = Vec::new();
    let started = Instant::now();
    while lat.is_empty() || started.elapsed() < Duration::from_secs_f64(min_s) {
        for i in 0..queries.len() {
            let t = Instant::now();
            std::hint::black_box(run(i));
            lat.push(t.elapsed().as_secs_f64());
        }
    }
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    lat.sort_by(f64::total_cmp);
    let nq = queries.len().max(1) as f64;
    json!({
        "recall_at_k": hits as f64 / total.max(1) as f64,
        "short_frac": short as f64 / nq,
        "search_qps": 1.0 / mean,
        "p50_ms": 1e3 * percentile(&lat, 0.5),
        "p99_ms": 1e3 * percentile(&lat, 0.99),
        "strategies": strategies,
        "scanned_per_query": scanned as f64 / nq,
        "postings_per_query": postings as f64 / nq,
    })
}

/// Upserts of the base in batches of 1,000 into a durable collection under `dir`, with a
/// payload of about `payload_bytes` per point (0: none); returns points per second.
fn write_rate(
    ds: &Dataset,
    params: &IndexParams,
    dir: &Path,
    payload_bytes: usize,
) -> anyhow::Result<f64> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let dc = DurableCollection::create(Arc::new(RealFs), dir, params.clone(), 1)?;
    let n = ds.n_base().min(50_000);
    let dim = ds.dim;
    // The first batch builds the index; the timed writes are upserts into it.
    dc.import((0..1000).collect(), ds.base[..1000 * dim].to_vec())?;
    let text = "x".repeat(payload_bytes.saturating_sub(40));
    let started = Instant::now();
    for at in (1000..n).step_by(1000) {
        let m = 1000.min(n - at);
        let ids: Vec<u64> = (at as u64..(at + m) as u64).collect();
        let vectors = ds.base[at * dim..(at + m) * dim].to_vec();
        let payloads = match payload_bytes {
            0 => Vec::new(),
            _ => ids
                .iter()
                .map(|&id| {
                    Payload::from([
                        ("tag".to_string(), PValue::String(format!("t{}", id % 10))),
                        ("year".to_string(), PValue::Int(1990 + (id % 40) as i64)),
                        ("text".to_string(), PValue::String(text.clone())),
                    ])
                })
                .collect(),
        };
        dc.apply(&Op::Upsert { ids, vectors, payloads })?;
    }
    let rate = (n - 1000) as f64 / started.elapsed().as_secs_f64();
    drop(dc);
    std::fs::remove_dir_all(dir)?;
    Ok(rate)
}

pub fn run(
    args: &BenchArgs,
    ds: &Dataset,
    dir: &Path,
    params: IndexParams,
) -> anyhow::Result<Value> {
    let n = ds.n_base();
    let payloads = read_payloads(&dir.join("attrs.jsonl"), n)?;
    let cases = read_cases(&dir.join("filters.json"), ds.n_queries())?;
    let coll = Collection::new(params.clone(), args.shards)?;
    let t = Instant::now();
    coll.bulk_load((0..n as u64).collect(), ds.final_vectors())?;
    let ids: Vec<u64> = (0..n as u64).collect();
    let before = coll.payload_memory_bytes();
    coll.set_payloads(&ids, &payloads);
    let mut kinds: Vec<(String, FieldKind)> = payloads
        .first()
        .map(|p| p.iter().filter_map(|(k, v)| Some((k.clone(), kind_of(v)?))).collect())
        .unwrap_or_default();
    kinds.sort();
    let with_payloads = coll.payload_memory_bytes();
    for (key, kind) in &kinds {
        coll.create_field_index(key, *kind)?;
    }
    coll.wait_idle();
    coll.calibrate();
    let build_s = t.elapsed().as_secs_f64();
    let indexes: Vec<Value> = coll
        .field_indexes()
        .into_iter()
        .map(|f| {
            json!({"key": f.key, "kind": format!("{:?}", f.kind), "points": f.points,
                   "values": f.values, "memory_bytes": f.memory_bytes,
                   "bytes_per_point": f.memory_bytes as f64 / n.max(1) as f64})
        })
        .collect();
    let index_bytes: u64 = coll.field_indexes().iter().map(|f| f.memory_bytes).sum();
    eprintln!(
        "filtered: built {n} points with payloads and {} field indexes in {build_s:.1}s; \
         payload store {:.1} B/point (empty payloads {:.1}), field indexes {:.1} B/point; rss {:.0} MiB (peak {:.0})",
        kinds.len(),
        with_payloads as f64 / n as f64,
        before as f64 / n as f64,
        index_bytes as f64 / n as f64,
        status_mb("VmRSS:"),
        peak_rss_mb()
    );
    for i in &indexes {
        eprintln!("  index {i}");
    }
    let mut knobs: Vec<(String, SearchParams)> = vec![("default".into(), SearchParams::new(10))];
    for &t in &args.targets {
        knobs.push((format!("target {t}"), SearchParams::new(10).with_target_recall(t)));
    }
    let mut results = Vec::new();
    for case in &cases {
        let mut sweep = Vec::new();
        for (name, sp) in &knobs {
            let mut m = measure(&coll, ds, case, sp, args.min_seconds);
            eprintln!(
                "[freshvec] {:<18} {name:<12} recall {:.3} short {:.1}% qps {:>8.0} {}",
                case.name,
                m["recall_at_k"].as_f64().unwrap_or(0.0),
                100.0 * m["short_frac"].as_f64().unwrap_or(0.0),
                m["search_qps"].as_f64().unwrap_or(0.0),
                m["strategies"]
            );
            m["knob"] = json!(name);
            sweep.push(m);
        }
        results.push(json!({"name": case.name, "selectivity": case.selectivity, "sweep": sweep}));
    }
    let tmp = std::env::temp_dir().join(format!("freshvec-bench-writes-{}", std::process::id()));
    let plain = write_rate(ds, &params, &tmp, 0)?;
    let with = write_rate(ds, &params, &tmp, 200)?;
    eprintln!(
        "writes (durable, batches of 1000): {plain:.0} points/s without payloads, {with:.0}/s with \
         200-byte payloads ({:.2}x)",
        with / plain
    );
    Ok(json!({
        "build_s": build_s,
        "payload_store_bytes_per_point": with_payloads as f64 / n as f64,
        "field_indexes": indexes,
        "field_index_bytes_per_point": index_bytes as f64 / n as f64,
        "cases": results,
        "writes_per_s": {"no_payload": plain, "payload_200b": with},
        "peak_rss_mb": peak_rss_mb(),
    }))
}
