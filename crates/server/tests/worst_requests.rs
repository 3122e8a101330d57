//! A measurement, not a test of timing: the peak resident memory of a node while 64 copies
//! of each worst valid request run at once (a 16 MiB upsert, a Get of 2^20 components, a
//! SearchBatch of 65,536 hits, a Search at k 1,000 x rerank 64 x nprobe 8,192), against the
//! bound ARCHITECTURE.md derives. Ignored in the suite (it moves gigabytes); run it with
//! `cargo test --release --test worst_requests -- --ignored --nocapture`.

mod common;

use common::*;
use freshvec_server::proto::points_client::PointsClient;
use freshvec_server::proto::*;
use std::time::{Duration, Instant};

const DIM: usize = 400;

/// VmHWM and VmRSS of a process, in MiB.
fn memory(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .unwrap_or(0)
            / 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn peak_memory_of_64_worst_requests_of_each_kind() {
    let _turn = SERIAL.lock().await;
    let seed = 0x3e3;
    println!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut c = Cluster::new("worst", 1, &[]);
    c.start(1, &[1]);
    leader(&c, &[1], 30).await;
    let url = c.url(1);
    let pid = c.node(1).child.as_ref().unwrap().id();
    let ch = channel(&url).await.unwrap();
    create_shaped(&url, "w", DIM as u32, 1).await;
    let mut p = PointsClient::new(ch.clone())
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let row = |rng: &mut Rng| (0..DIM).map(|_| rng.f32()).collect::<Vec<f32>>();
    for b in 0..4u64 {
        let points = (b * 2_500..(b + 1) * 2_500).map(|id| Point {
            id,
            vector: row(&mut rng),
            ..Default::default()
        });
        p.upsert(UpsertRequest {
            collection: "w".into(),
            points: points.collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let (hwm0, rss0) = memory(pid);
    println!("after loading 10,000 x {DIM}: peak {hwm0} MiB, resident {rss0} MiB");

    let upsert = UpsertRequest {
        collection: "w".into(),
        points: (0..10_000)
            .map(|id| Point { id, vector: row(&mut rng), ..Default::default() })
            .collect(),
        ..Default::default()
    };
    let get = GetRequest {
        collection: "w".into(),
        ids: (0..(1u64 << 20) / DIM as u64).collect(),
        with_vectors: true,
        ..Default::default()
    };
    let batch = SearchBatchRequest {
        collection: "w".into(),
        queries: (0..1_024)
            .map(|_| Query { vector: row(&mut rng), ..Default::default() })
            .collect(),
        params: Some(SearchParameters { k: 64, nprobe: 8_192, rerank: 64, ..Default::default() }),
        ..Default::default()
    };
    let search = SearchRequest {
        collection: "w".into(),
        vector: row(&mut rng),
        params: Some(SearchParameters {
            k: 1_000,
            nprobe: 8_192,
            rerank: 64,
            ..Default::default()
        }),
        ..Default::default()
    };
    println!(
        "request bytes: upsert {} MiB, get {} KiB, batch {} MiB, search {} KiB",
        prost::Message::encoded_len(&upsert) >> 20,
        prost::Message::encoded_len(&get) >> 10,
        prost::Message::encoded_len(&batch) >> 20,
        prost::Message::encoded_len(&search) >> 10
    );
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..256 {
        let mut p = p.clone();
        let (u, g, b, s) = (upsert.clone(), get.clone(), batch.clone(), search.clone());
        tasks.push(tokio::spawn(async move {
            let timeout = Duration::from_secs(120);
            let mut codes = Vec::new();
            macro_rules! go {
                ($m:ident, $r:expr) => {{
                    let mut r = tonic::Request::new($r);
                    r.set_timeout(timeout);
                    codes.push(
                        p.$m(r).await.map(|_| ()).map_or_else(|s| s.code(), |_| tonic::Code::Ok),
                    );
                }};
            }
            match i % 4 {
                0 => go!(upsert, u),
                1 => go!(get, g),
                2 => go!(search_batch, b),
                _ => go!(search, s),
            }
            codes
        }));
    }
    let mut peak = 0;
    let mut codes = std::collections::BTreeMap::new();
    while tasks.iter().any(|t| !t.is_finished()) {
        peak = peak.max(memory(pid).0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for t in tasks {
        for code in t.await.unwrap() {
            *codes.entry(format!("{code:?}")).or_insert(0) += 1;
        }
    }
    let (hwm, rss) = memory(pid);
    println!(
        "256 calls (64 of each kind) in {:?}: codes {codes:?}; peak {} MiB ({} MiB over the \
         loaded baseline), resident after {rss} MiB",
        started.elapsed(),
        hwm.max(peak),
        hwm.max(peak).saturating_sub(rss0)
    );
    // The bound: 4 x 512 MiB of request bytes + 256 x 8 MiB of responses + the 256 MiB
    // log cache + search scratch.
    assert!(hwm.saturating_sub(rss0) < 4_400, "peak {hwm} MiB over a {rss0} MiB baseline");
}
