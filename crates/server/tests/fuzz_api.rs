//! The API fuzzer: generated requests for every RPC of the public API against live nodes (one,
//! then three), valid and invalid, random and at the extremes of every field, sequential and
//! concurrent, plus raw bytes on the wire. Checked throughout and at the end:
//!
//! - the processes never exit, and every call answers within its deadline plus a margin;
//! - every answer is OK or a precise code (never UNKNOWN, never INTERNAL);
//! - in the sequential phases, a refused write changes nothing (applied index, digests and
//!   counts as before it);
//! - afterwards health is SERVING, the replicas' digests are equal, every point holds a value
//!   the accepted writes allow, exact search equals a brute-force scan of those points, and
//!   SIGTERM exits 0 within 10 s.
//!
//! A failure prints the seed and the shortest sequence found: the failing request alone when
//! it fails the same way on a fresh node, else the requests before it.
//!
//! `FRESHVEC_FUZZ_SECONDS` (default 30 per cluster size) sets the length, `FRESHVEC_FUZZ_SEED`
//! the seed: `FRESHVEC_FUZZ_SECONDS=1800 cargo test --release --test fuzz_api -- --nocapture`.

mod common;
#[path = "fuzz_api/values.rs"]
mod values;

use bytes::{Buf, BufMut, Bytes};
use common::*;
use freshvec_server::proto::cluster_client::ClusterClient;
use freshvec_server::proto::collections_client::CollectionsClient;
use freshvec_server::proto::points_client::PointsClient;
use freshvec_server::proto::*;
use prost::Message;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// How long past its own deadline a call may take to answer.
const MARGIN: Duration = Duration::from_secs(3);
/// Ids the valid writes draw from (so writes overlap and deletes hit).
const IDS: u64 = 3_000;
/// Every RPC the fuzzer sends, for the coverage report.
const RPCS: [&str; 22] = [
    "Create",
    "Drop",
    "List",
    "Describe",
    "Upsert",
    "Delete",
    "Get",
    "Search",
    "SearchBatch",
    "Status",
    "TriggerSnapshot",
    "AddNode",
    "RemoveNode",
    "PurgeLog",
    "SetPayload",
    "OverwritePayload",
    "DeletePayloadKeys",
    "ClearPayload",
    "Scroll",
    "Count",
    "CreateFieldIndex",
    "DropFieldIndex",
];

use std::time::Duration;

fn seconds() -> u64 {
    std::env::var("FRESHVEC_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30)
}

fn seed(default: u64) -> u64 {
    std::env::var("FRESHVEC_FUZZ_SEED")
        .ok()
        .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// Values at the extremes of every field

fn pick<T: Copy>(rng: &mut Rng, xs: &[T]) -> T {
    xs[(rng.next() % xs.len() as u64) as usize]
}

fn chance(rng: &mut Rng, percent: u64) -> bool {
    rng.next() % 100 < percent
}

/// A u32 field with documented maximum `max`: 0, 1, max, max + 1, u32::MAX or in range.
fn u32_field(rng: &mut Rng, max: u32) -> u32 {
    match rng.next() % 8 {
        0 => 0,
        1 => 1,
        2 => max,
        3 => max.saturating_add(1),
        4 => u32::MAX,
        5 => max.saturating_sub(1),
        _ => 1 + (rng.next() % max.max(1) as u64) as u32,
    }
}

fn u64_field(rng: &mut Rng) -> u64 {
    match rng.next() % 6 {
        0 => 0,
        1 => u64::MAX,
        2 => u64::MAX - 1,
        3 => rng.next(),
        _ => rng.next() % IDS,
    }
}

fn enum_field(rng: &mut Rng, valid: i32) -> i32 {
    match rng.next() % 6 {
        0 => valid + 1,
        1 => -1,
        2 => i32::MAX,
        3 => 0,
        _ => 1 + (rng.next() % valid as u64) as i32,
    }
}

/// A float from the hostile palette or an ordinary one.
fn float(rng: &mut Rng) -> f32 {
    const HOSTILE: [f32; 11] = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        1e-45,
        f32::MIN_POSITIVE,
        3.4e38,
        -3.4e38,
        -0.0,
        0.0,
        1e12,
        -1e19,
    ];
    if chance(rng, 15) {
        pick(rng, &HOSTILE)
    } else {
        rng.f32() * 10.0
    }
}

/// A vector for a collection of dimension `dim`: mostly valid, else of another length or with
/// hostile components.
fn vector(rng: &mut Rng, dim: usize) -> Vec<f32> {
    match rng.next() % 20 {
        0 => Vec::new(),
        1 => vec![0.5; dim + 1],
        2 => vec![0.5; dim.saturating_sub(1)],
        3 => vec![0.0; dim],
        4 => vec![3e38; dim],
        5 | 6 => (0..dim).map(|_| float(rng)).collect(),
        7 if chance(rng, 10) => vec![0.25; 200_000],
        _ => (0..dim).map(|_| rng.f32()).collect(),
    }
}

fn name(rng: &mut Rng, known: &[String]) -> String {
    if !known.is_empty() && chance(rng, 75) {
        return known[(rng.next() % known.len() as u64) as usize].clone();
    }
    match rng.next() % 12 {
        0 => String::new(),
        1 => "a".repeat(65),
        2 => "x".repeat(10_000),
        3 => "vé".into(),
        4 => "a/b".into(),
        5 => "nope".into(),
        6 => String::from_utf8_lossy(&(0..8).map(|_| rng.next() as u8).collect::<Vec<_>>())
            .into_owned(),
        _ if !known.is_empty() => known[(rng.next() % known.len() as u64) as usize].clone(),
        _ => "c0".into(),
    }
}

/// A repeated field's length: empty, 1, duplicated, the limit, past it, or small.
fn count(rng: &mut Rng, limit: usize) -> usize {
    match rng.next() % 10 {
        0 => 0,
        1 => 1,
        2 => limit,
        3 => limit + 1,
        _ => 1 + (rng.next() % 64) as usize,
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

#[derive(Debug, Clone)]
enum Req {
    Create(CreateCollectionRequest),
    Drop(DropCollectionRequest),
    List,
    Describe(DescribeCollectionRequest),
    Upsert(UpsertRequest),
    Delete(DeleteRequest),
    Get(GetRequest),
    Search(SearchRequest),
    SearchBatch(SearchBatchRequest),
    Status,
    TriggerSnapshot,
    AddNode(AddNodeRequest),
    RemoveNode(RemoveNodeRequest),
    PurgeLog(PurgeLogRequest),
    /// SetPayload, or (true) OverwritePayload.
    SetPayload(SetPayloadRequest, bool),
    DeletePayloadKeys(DeletePayloadKeysRequest),
    ClearPayload(ClearPayloadRequest),
    Scroll(ScrollRequest),
    Count(CountRequest),
    CreateFieldIndex(CreateFieldIndexRequest),
    DropFieldIndex(DropFieldIndexRequest),
    /// Bytes sent as the body of a method: random, a truncated valid message, a bad frame.
    Raw {
        path: &'static str,
        body: Vec<u8>,
        framed: bool,
    },
}

impl Req {
    fn rpc(&self) -> &'static str {
        match self {
            Req::Create(_) => "Create",
            Req::Drop(_) => "Drop",
            Req::List => "List",
            Req::Describe(_) => "Describe",
            Req::Upsert(_) => "Upsert",
            Req::Delete(_) => "Delete",
            Req::Get(_) => "Get",
            Req::Search(_) => "Search",
            Req::SearchBatch(_) => "SearchBatch",
            Req::Status => "Status",
            Req::TriggerSnapshot => "TriggerSnapshot",
            Req::AddNode(_) => "AddNode",
            Req::RemoveNode(_) => "RemoveNode",
            Req::PurgeLog(_) => "PurgeLog",
            Req::SetPayload(_, false) => "SetPayload",
            Req::SetPayload(_, true) => "OverwritePayload",
            Req::DeletePayloadKeys(_) => "DeletePayloadKeys",
            Req::ClearPayload(_) => "ClearPayload",
            Req::Scroll(_) => "Scroll",
            Req::Count(_) => "Count",
            Req::CreateFieldIndex(_) => "CreateFieldIndex",
            Req::DropFieldIndex(_) => "DropFieldIndex",
            Req::Raw { .. } => "Raw",
        }
    }

    fn is_write(&self) -> bool {
        match self {
            Req::Create(_)
            | Req::Drop(_)
            | Req::Upsert(_)
            | Req::Delete(_)
            | Req::SetPayload(..)
            | Req::DeletePayloadKeys(_)
            | Req::ClearPayload(_)
            | Req::CreateFieldIndex(_)
            | Req::DropFieldIndex(_) => true,
            Req::Raw { path, .. } => is_write_path(path),
            _ => false,
        }
    }

    /// A short description (vectors summarised), for failure reports.
    fn brief(&self) -> String {
        /// Keeps the first 600 bytes and stops the formatting there (a request may hold
        /// millions of components).
        struct Bounded(String);
        impl std::fmt::Write for Bounded {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                for ch in s.chars() {
                    if self.0.len() >= 600 {
                        self.0.push_str("...");
                        return Err(std::fmt::Error);
                    }
                    self.0.push(ch);
                }
                Ok(())
            }
        }
        let mut out = Bounded(String::new());
        let _ = std::fmt::write(&mut out, format_args!("{self:?}"));
        out.0
    }
}

const PATHS: [&str; 19] = [
    "/freshvec.v1.Collections/Create",
    "/freshvec.v1.Collections/Drop",
    "/freshvec.v1.Collections/List",
    "/freshvec.v1.Collections/Describe",
    "/freshvec.v1.Points/Upsert",
    "/freshvec.v1.Points/Delete",
    "/freshvec.v1.Points/Get",
    "/freshvec.v1.Points/Search",
    "/freshvec.v1.Points/SearchBatch",
    "/freshvec.v1.Cluster/Status",
    "/freshvec.v1.Cluster/TriggerSnapshot",
    "/freshvec.v1.Cluster/AddNode",
    "/freshvec.v1.Cluster/RemoveNode",
    "/freshvec.v1.Cluster/PurgeLog",
    "/freshvec.v1.Points/NoSuchMethod",
    "/freshvec.v1.Points/SetPayload",
    "/freshvec.v1.Points/Scroll",
    "/freshvec.v1.Points/Count",
    "/freshvec.v1.Collections/CreateFieldIndex",
];

/// What the fuzzer knows of the collections (their shapes; the points live in `Model`).
#[derive(Debug, Clone)]
struct Shape {
    dim: usize,
    metric: i32,
}

fn params(rng: &mut Rng) -> Option<SearchParameters> {
    if chance(rng, 3) {
        return None;
    }
    let valid = chance(rng, 60);
    Some(SearchParameters {
        k: if valid { 1 + (rng.next() % 20) as u32 } else { u32_field(rng, 1000) },
        nprobe: if valid { (rng.next() % 128) as u32 } else { u32_field(rng, 8192) },
        rerank: if valid { (rng.next() % 8) as u32 } else { u32_field(rng, 64) },
        exact: chance(rng, 20),
        consistency: if valid { 1 + (rng.next() % 3) as i32 } else { enum_field(rng, 3) },
        min_applied_index: if chance(rng, 80) { 0 } else { u64_field(rng) },
        target_recall: match rng.next() % 8 {
            0 => 0.5 + (rng.next() % 50) as f32 / 100.0,
            1 => [f32::NAN, -1.0, 0.0, 1.5, f32::INFINITY, 1e-30][(rng.next() % 6) as usize],
            _ => 0.0,
        },
    })
}

/// One generated request; `shapes` are the collections believed to exist.
fn generate(rng: &mut Rng, shapes: &BTreeMap<String, Shape>, nodes: u64) -> Req {
    let roll = rng.next() % 120;
    generate_kind(rng, roll, shapes, nodes)
}

/// The first roll of each kind of request, so that a run of any length covers every RPC.
const EVERY_KIND: [u64; 23] = [
    0, 11, 41, 51, 59, 79, 5, 6, 8, 85, 87, 88, 89, 90, 91, 100, 104, 106, 108, 110, 113, 116, 118,
];

fn generate_kind(rng: &mut Rng, roll: u64, shapes: &BTreeMap<String, Shape>, nodes: u64) -> Req {
    let names: Vec<String> = shapes.keys().cloned().collect();
    let target = |rng: &mut Rng| -> (String, usize) {
        let n = name(rng, &names);
        let dim = shapes.get(&n).map_or(8, |s| s.dim);
        (n, dim)
    };
    match roll {
        0..=4 => {
            let valid = chance(rng, 50);
            let n = if valid { format!("c{}", rng.next() % 6) } else { name(rng, &names) };
            Req::Create(CreateCollectionRequest {
                name: n,
                dimension: if valid {
                    pick(rng, &[1, 2, 8, 16, 33])
                } else {
                    u32_field(rng, 65_536)
                },
                metric: if valid { 1 + (rng.next() % 3) as i32 } else { enum_field(rng, 3) },
                shards: if valid { (rng.next() % 4) as u32 } else { u32_field(rng, 1024) },
                index: if valid && chance(rng, 70) {
                    None
                } else {
                    Some(IndexParameters {
                        posting_size: u32_field(rng, 50_000),
                        split_limit: u32_field(rng, 100_000),
                        merge_limit: u32_field(rng, 50_000),
                        replicas: u32_field(rng, 8),
                        encoding: enum_field(rng, 2),
                    })
                },
            })
        }
        5 => Req::Drop(DropCollectionRequest { name: name(rng, &names) }),
        6..=7 => Req::List,
        8..=10 => Req::Describe(DescribeCollectionRequest { name: name(rng, &names) }),
        11..=40 => {
            let (collection, dim) = target(rng);
            let n =
                if chance(rng, 80) { 1 + (rng.next() % 50) as usize } else { count(rng, 10_000) };
            let mut points: Vec<Point> = (0..n)
                .map(|_| Point {
                    id: if chance(rng, 97) { rng.next() % IDS } else { u64_field(rng) },
                    vector: if chance(rng, 90) {
                        (0..dim).map(|_| rng.f32()).collect()
                    } else {
                        vector(rng, dim)
                    },
                    payload: if chance(rng, 30) { values::payload(rng) } else { HashMap::new() },
                    ..Default::default()
                })
                .collect();
            if chance(rng, 5) && !points.is_empty() {
                let dup = points[0].clone();
                points.push(dup);
            }
            Req::Upsert(UpsertRequest { collection, points, ..Default::default() })
        }
        41..=50 => {
            let (collection, _) = target(rng);
            let n =
                if chance(rng, 80) { 1 + (rng.next() % 30) as usize } else { count(rng, 10_000) };
            let mut ids: Vec<u64> = (0..n).map(|_| rng.next() % IDS).collect();
            if chance(rng, 5) {
                ids.push(u64::MAX);
            }
            if chance(rng, 3) {
                // By filter (ids too, now and then: refused).
                let ids = if chance(rng, 20) { ids } else { Vec::new() };
                return Req::Delete(DeleteRequest {
                    collection,
                    ids,
                    filter: Some(values::filter(rng)),
                });
            }
            Req::Delete(DeleteRequest { collection, ids, ..Default::default() })
        }
        51..=58 => {
            let (collection, _) = target(rng);
            let n =
                if chance(rng, 80) { 1 + (rng.next() % 30) as usize } else { count(rng, 10_000) };
            Req::Get(GetRequest {
                collection,
                ids: (0..n).map(|_| u64_field(rng)).collect(),
                with_vectors: chance(rng, 50),
                consistency: enum_field(rng, 3),
                min_applied_index: if chance(rng, 80) { 0 } else { u64_field(rng) },
                with_payload: values::with_payload(rng),
                ..Default::default()
            })
        }
        59..=78 => {
            let (collection, dim) = target(rng);
            let vector = if chance(rng, 80) {
                (0..dim).map(|_| rng.f32()).collect()
            } else {
                self::vector(rng, dim)
            };
            Req::Search(SearchRequest {
                collection,
                vector,
                params: params(rng),
                filter: chance(rng, 30).then(|| values::filter(rng)),
                with_payload: values::with_payload(rng),
                with_vectors: chance(rng, 10),
                packed_hits: chance(rng, 20),
                ..Default::default()
            })
        }
        79..=84 => {
            let (collection, dim) = target(rng);
            let n = if chance(rng, 80) { 1 + (rng.next() % 8) as usize } else { count(rng, 1024) };
            Req::SearchBatch(SearchBatchRequest {
                collection,
                queries: (0..n)
                    .map(|_| Query {
                        vector: if chance(rng, 90) {
                            (0..dim).map(|_| rng.f32()).collect()
                        } else {
                            vector(rng, dim)
                        },
                        ..Default::default()
                    })
                    .collect(),
                params: params(rng),
                filter: chance(rng, 20).then(|| values::filter(rng)),
                with_payload: values::with_payload(rng),
                with_vectors: chance(rng, 10),
                packed_hits: chance(rng, 20),
            })
        }
        85..=86 => Req::Status,
        87 => Req::TriggerSnapshot,
        88 => Req::PurgeLog(PurgeLogRequest { upto: u64_field(rng) }),
        89 => Req::AddNode(AddNodeRequest {
            // Never a new member that answers: the fuzzer must not change the membership.
            node_id: pick(rng, &[0, 1, nodes + 1, 77, u64::MAX]),
            address: pick(
                rng,
                &["", "127.0.0.1", "127.0.0.1:1", "no such host:7868", ":7868", "[::1]:99999"],
            )
            .to_string(),
        }),
        90 => Req::RemoveNode(RemoveNodeRequest {
            // Never a member (nodes 1..=nodes) of a cluster of several.
            node_id: if nodes == 1 {
                pick(rng, &[0, 1, 2, u64::MAX])
            } else {
                pick(rng, &[0, nodes + 1, u64::MAX])
            },
        }),
        99 => {
            // A message past the 16 MiB limit (RESOURCE_EXHAUSTED, the body never decoded).
            let (collection, _) = target(rng);
            Req::Upsert(UpsertRequest {
                collection,
                points: vec![Point { id: 1, vector: vec![0.25; 4_500_000], ..Default::default() }],
                ..Default::default()
            })
        }
        100..=117 => {
            let collection = target(rng).0;
            payload_request(rng, roll, collection)
        }
        118..=119 => {
            let (key, r#type) = values::field_index(rng);
            let collection = target(rng).0;
            if chance(rng, 60) {
                Req::CreateFieldIndex(CreateFieldIndexRequest { collection, key, r#type })
            } else {
                Req::DropFieldIndex(DropFieldIndexRequest { collection, key })
            }
        }
        _ => raw(rng, shapes),
    }
}

/// The points a payload write names: ids (1..=10,000 documented), a filter, both or neither.
fn payload_target(rng: &mut Rng) -> (Vec<u64>, Option<Filter>) {
    match rng.next() % 20 {
        0 => (Vec::new(), None),
        1 => {
            ((0..count(rng, 10_000)).map(|_| rng.next() % IDS).collect(), Some(values::filter(rng)))
        }
        2..=7 => (Vec::new(), Some(values::filter(rng))),
        _ => ((0..1 + rng.next() % 20).map(|_| rng.next() % IDS).collect(), None),
    }
}

fn payload_request(rng: &mut Rng, roll: u64, collection: String) -> Req {
    match roll {
        100..=105 => {
            let (ids, filter) = payload_target(rng);
            let payload = values::payload(rng);
            Req::SetPayload(SetPayloadRequest { collection, payload, ids, filter }, roll >= 104)
        }
        106..=107 => {
            let (ids, filter) = payload_target(rng);
            Req::DeletePayloadKeys(DeletePayloadKeysRequest {
                collection,
                keys: values::keys(rng),
                ids,
                filter,
            })
        }
        108..=109 => {
            let (ids, filter) = payload_target(rng);
            Req::ClearPayload(ClearPayloadRequest { collection, ids, filter })
        }
        110..=112 => Req::Scroll(ScrollRequest {
            collection,
            filter: chance(rng, 50).then(|| values::filter(rng)),
            offset: chance(rng, 50).then(|| u64_field(rng)),
            limit: u32_field(rng, 10_000),
            with_payload: values::with_payload(rng),
            with_vectors: chance(rng, 30),
            consistency: enum_field(rng, 3),
            min_applied_index: if chance(rng, 80) { 0 } else { u64_field(rng) },
        }),
        _ => Req::Count(CountRequest {
            collection,
            filter: chance(rng, 70).then(|| values::filter(rng)),
            consistency: enum_field(rng, 3),
            min_applied_index: if chance(rng, 80) { 0 } else { u64_field(rng) },
        }),
    }
}

/// Raw bytes for some method: random, a valid message cut short, valid bytes with a wrong
/// frame (compressed flag, a length past the end), or a valid message for another method.
fn raw(rng: &mut Rng, shapes: &BTreeMap<String, Shape>) -> Req {
    let path = pick(rng, &PATHS);
    let valid = {
        let dim = shapes.values().next().map_or(8, |s| s.dim);
        SearchRequest {
            collection: shapes.keys().next().cloned().unwrap_or_default(),
            vector: (0..dim).map(|_| rng.f32()).collect(),
            params: Some(SearchParameters { k: 5, ..Default::default() }),
            ..Default::default()
        }
        .encode_to_vec()
    };
    // Bytes made from a valid message (cut short or whole) decode on a write path as a real
    // write (a Drop of the collection it names, say): those go to read paths only.
    let read_path = pick(rng, &[PATHS[2], PATHS[3], PATHS[6], PATHS[7], PATHS[8], PATHS[9]]);
    match rng.next() % 5 {
        0 => {
            let n = (rng.next() % 300) as usize;
            Req::Raw { path, body: (0..n).map(|_| rng.next() as u8).collect(), framed: true }
        }
        1 => {
            let cut = (rng.next() % valid.len().max(1) as u64) as usize;
            Req::Raw { path: read_path, body: valid[..cut].to_vec(), framed: true }
        }
        2 => {
            // A frame header claiming more bytes than follow.
            let mut body = vec![0u8];
            body.extend_from_slice(&(valid.len() as u32 + 100).to_be_bytes());
            body.extend_from_slice(&valid);
            Req::Raw { path, body, framed: false }
        }
        3 => {
            // The compressed flag with no grpc-encoding.
            let mut body = vec![1u8];
            body.extend_from_slice(&(valid.len() as u32).to_be_bytes());
            body.extend_from_slice(&valid);
            Req::Raw { path, body, framed: false }
        }
        _ => Req::Raw { path: read_path, body: valid, framed: true },
    }
}

// ---------------------------------------------------------------------------------------------
// Sending

/// A codec that sends and receives bytes as they are.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }
    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let v = buf.chunk().to_vec();
        buf.advance(v.len());
        Ok(Some(v))
    }
}

/// Sends `body` as the whole HTTP/2 body of a gRPC call (its own framing, right or wrong);
/// returns the status the server answered.
async fn send_unframed(ch: Channel, path: &'static str, body: Vec<u8>) -> Result<(), Status> {
    use tower::ServiceExt;
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://fuzz{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(http_body_util::Full::new(Bytes::from(body))))
        .unwrap();
    let resp = ch.oneshot(req).await.map_err(|e| Status::unavailable(e.to_string()))?;
    let from_headers = |h: &http::HeaderMap| Status::from_header_map(h);
    if let Some(s) = from_headers(resp.headers()) {
        return if s.code() == Code::Ok { Ok(()) } else { Err(s) };
    }
    let collected = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    match collected.trailers().and_then(from_headers) {
        Some(s) if s.code() == Code::Ok => Ok(()),
        Some(s) => Err(s),
        None => Err(Status::unknown("no grpc-status in the response")),
    }
}

async fn send(ch: &Channel, req: &Req, timeout: Duration) -> Result<(), Status> {
    macro_rules! call {
        ($client:ident, $method:ident, $msg:expr) => {{
            let mut r = tonic::Request::new($msg);
            r.set_timeout(timeout);
            $client::new(ch.clone())
                .max_decoding_message_size(usize::MAX)
                .$method(r)
                .await
                .map(|_| ())
        }};
    }
    match req.clone() {
        Req::Create(m) => call!(CollectionsClient, create, m),
        Req::Drop(m) => call!(CollectionsClient, drop, m),
        Req::List => call!(CollectionsClient, list, ListCollectionsRequest {}),
        Req::Describe(m) => call!(CollectionsClient, describe, m),
        Req::Upsert(m) => call!(PointsClient, upsert, m),
        Req::Delete(m) => call!(PointsClient, delete, m),
        Req::Get(m) => call!(PointsClient, get, m),
        Req::Search(m) => call!(PointsClient, search, m),
        Req::SearchBatch(m) => call!(PointsClient, search_batch, m),
        Req::Status => call!(ClusterClient, status, StatusRequest {}),
        Req::TriggerSnapshot => call!(ClusterClient, trigger_snapshot, TriggerSnapshotRequest {}),
        Req::AddNode(m) => call!(ClusterClient, add_node, m),
        Req::RemoveNode(m) => call!(ClusterClient, remove_node, m),
        Req::PurgeLog(m) => call!(ClusterClient, purge_log, m),
        Req::SetPayload(m, false) => call!(PointsClient, set_payload, m),
        Req::SetPayload(m, true) => call!(PointsClient, overwrite_payload, m),
        Req::DeletePayloadKeys(m) => call!(PointsClient, delete_payload_keys, m),
        Req::ClearPayload(m) => call!(PointsClient, clear_payload, m),
        Req::Scroll(m) => call!(PointsClient, scroll, m),
        Req::Count(m) => call!(PointsClient, count, m),
        Req::CreateFieldIndex(m) => call!(CollectionsClient, create_field_index, m),
        Req::DropFieldIndex(m) => call!(CollectionsClient, drop_field_index, m),
        Req::Raw { path, body, framed: true } => {
            let mut grpc = tonic::client::Grpc::new(ch.clone());
            grpc.ready().await.map_err(|e| Status::unavailable(e.to_string()))?;
            let mut r = tonic::Request::new(body);
            r.set_timeout(timeout);
            grpc.unary(r, http::uri::PathAndQuery::from_static(path), RawCodec).await.map(|_| ())
        }
        Req::Raw { path, body, framed: false } => {
            tokio::time::timeout(timeout, send_unframed(ch.clone(), path, body))
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded("client deadline")))
        }
    }
}

/// The codes a node may answer with; anything else is a failure.
fn precise(req: &Req, code: Code) -> bool {
    match code {
        Code::Unknown | Code::Internal | Code::DataLoss => false,
        Code::Unimplemented => {
            matches!(req, Req::Raw { path, .. } if path.ends_with("NoSuchMethod"))
        }
        _ => true,
    }
}

// ---------------------------------------------------------------------------------------------
// The model of the accepted writes

/// For each id, every value it may hold (None: absent).
type Points = BTreeMap<u64, Vec<Option<Vec<f32>>>>;

/// Per collection: for each id, every value it may hold (None: absent). A write whose answer
/// was lost (a deadline) adds its values as possible without removing the old ones.
#[derive(Debug, Default)]
struct Model {
    colls: BTreeMap<String, (Shape, Points)>,
    /// Collections whose existence is uncertain (a create or drop whose answer was lost).
    uncertain: BTreeSet<String>,
}

impl Model {
    fn shapes(&self) -> BTreeMap<String, Shape> {
        self.colls.iter().map(|(k, (s, _))| (k.clone(), s.clone())).collect()
    }

    /// Takes in a write's outcome: `Some(true)` acknowledged, `Some(false)` refused, `None`
    /// unknown.
    fn record(&mut self, req: &Req, outcome: Option<bool>) {
        if outcome == Some(false) {
            return;
        }
        let certain = outcome == Some(true);
        match req {
            Req::Create(m) => {
                if certain {
                    let shape = Shape { dim: m.dimension as usize, metric: m.metric };
                    self.colls.insert(m.name.clone(), (shape, BTreeMap::new()));
                    self.uncertain.remove(&m.name);
                } else {
                    self.uncertain.insert(m.name.clone());
                }
            }
            Req::Drop(m) => {
                if certain {
                    self.colls.remove(&m.name);
                    self.uncertain.remove(&m.name);
                } else {
                    self.uncertain.insert(m.name.clone());
                }
            }
            Req::Upsert(m) => {
                let Some((_, pts)) = self.colls.get_mut(&m.collection) else { return };
                for p in &m.points {
                    let e = pts.entry(p.id).or_insert_with(|| vec![None]);
                    if certain {
                        e.clear();
                    }
                    e.push(Some(p.vector.clone()));
                }
            }
            Req::Delete(m) => {
                let Some((_, pts)) = self.colls.get_mut(&m.collection) else { return };
                if m.filter.is_some() {
                    // The model keeps no payloads: any point may have matched.
                    for e in pts.values_mut() {
                        e.push(None);
                    }
                }
                for id in &m.ids {
                    let e = pts.entry(*id).or_insert_with(|| vec![None]);
                    if certain {
                        e.clear();
                    }
                    e.push(None);
                }
            }
            // Random bytes that happened to decode as a write: nothing is certain any more.
            Req::Raw { path, .. } if is_write_path(path) => {
                self.uncertain.extend(self.colls.keys().cloned());
            }
            _ => {}
        }
    }
}

fn is_write_path(path: &str) -> bool {
    ["/Create", "/Drop", "/Upsert", "/Delete", "/AddNode", "/RemoveNode"]
        .iter()
        .any(|m| path.ends_with(m))
}

// ---------------------------------------------------------------------------------------------
// The run

#[derive(Debug, Default)]
struct Tally {
    sent: u64,
    by_rpc: BTreeMap<&'static str, u64>,
    codes: BTreeMap<String, u64>,
    refused_writes_checked: u64,
    /// What failed, with the request that failed when one did.
    failures: Vec<(String, Option<Req>)>,
}

/// The state a refused write must not change: applied index and each collection's digest and
/// count, as the node answering sees them.
/// An election in between appends the new leader's blank entry: the applied index counts
/// only within one term.
#[derive(Debug)]
struct Fingerprint {
    term: u64,
    applied: u64,
    collections: Vec<(String, u64, u64)>,
}

impl PartialEq for Fingerprint {
    fn eq(&self, o: &Fingerprint) -> bool {
        self.collections == o.collections && (self.term != o.term || self.applied == o.applied)
    }
}

async fn fingerprint(url: &str) -> Option<Fingerprint> {
    // A write whose answer was lost may still be applied: wait until nothing is in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    let s = loop {
        let s = status(url).await?;
        if s.applied_index == s.last_log_index || Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    Some(Fingerprint {
        term: s.term,
        applied: s.applied_index,
        collections: s.collections.iter().map(|c| (c.name.clone(), c.digest, c.vectors)).collect(),
    })
}

/// Sends one request and checks its answer; returns the outcome for the model.
async fn one(
    ch: &Channel,
    req: &Req,
    rng: &mut Rng,
    tally: &mut Tally,
) -> Result<Option<bool>, String> {
    let timeout = match rng.next() % 10 {
        0 => Duration::from_millis(1 + rng.next() % 50),
        1 => Duration::from_secs(1),
        _ => Duration::from_secs(3),
    };
    let started = Instant::now();
    let r = tokio::time::timeout(timeout + MARGIN, send(ch, req, timeout)).await;
    tally.sent += 1;
    *tally.by_rpc.entry(req.rpc()).or_default() += 1;
    let r = match r {
        Err(_) => {
            return Err(format!("no answer within {:?} (deadline {timeout:?})", timeout + MARGIN))
        }
        Ok(r) => r,
    };
    let code = r.as_ref().map_or_else(|s| s.code(), |_| Code::Ok);
    *tally.codes.entry(format!("{code:?}")).or_default() += 1;
    if !precise(req, code) {
        let msg = r.err().map(|s| s.message().to_string()).unwrap_or_default();
        return Err(format!("answered {code:?} ({msg}) after {:?}", started.elapsed()));
    }
    Ok(match code {
        Code::Ok => Some(true),
        // The write may have been applied before the answer was lost.
        Code::DeadlineExceeded | Code::Cancelled | Code::Unavailable => None,
        _ => Some(false),
    })
}

/// The cases reported against an earlier version, sent to every node: each must answer its
/// precise code at once and leave the node healthy (the fuzzer then runs on the same nodes).
async fn reported_cases(c: &Cluster, ids: &[u64]) {
    let dim = 8;
    create_shaped(&c.url(ids[0]), "reported", dim, 1).await;
    let ch = channel(&c.url(ids[0])).await.unwrap();
    let pts = (0..100).map(|id| Point {
        id,
        vector: vec![id as f32 / 100.0; dim as usize],
        ..Default::default()
    });
    let up = UpsertRequest {
        collection: "reported".into(),
        points: pts.collect(),
        ..Default::default()
    };
    PointsClient::new(ch).upsert(up).await.unwrap();
    for &id in ids {
        let ch = channel(&c.url(id)).await.unwrap();
        let mut p = PointsClient::new(ch.clone());
        let mut cl = ClusterClient::new(ch.clone());
        let mut colls = CollectionsClient::new(ch);
        let search = SearchRequest {
            collection: "reported".into(),
            vector: vec![0.5; dim as usize],
            params: Some(SearchParameters { k: 10, rerank: 1_000_000_000, ..Default::default() }),
            ..Default::default()
        };
        let huge = UpsertRequest {
            collection: "reported".into(),
            points: vec![Point { id: 7, vector: vec![3e38; dim as usize], ..Default::default() }],
            ..Default::default()
        };
        let replicas = CreateCollectionRequest {
            name: "replicas".into(),
            dimension: 4,
            metric: Metric::L2 as i32,
            shards: 1,
            index: Some(IndexParameters { replicas: 1000, ..Default::default() }),
        };
        let oversize = UpsertRequest {
            collection: "reported".into(),
            points: (0..5_000)
                .map(|id| Point { id, vector: vec![0.5; 2_000], ..Default::default() })
                .collect(),
            ..Default::default()
        };
        let got = [
            ("Search with rerank 10^9", code(p.search(search).await)),
            ("Upsert of 3e38 components", code(p.upsert(huge).await)),
            ("Create with replicas 1000", code(colls.create(replicas).await)),
            (
                "RemoveNode of a non-member",
                code(cl.remove_node(RemoveNodeRequest { node_id: 99 }).await),
            ),
            ("a message over the size limit", code(p.upsert(oversize).await)),
        ];
        let leader = status(&c.url(id)).await.map(|s| s.leader_id == id).unwrap_or(false);
        let want = [
            Code::InvalidArgument,
            Code::InvalidArgument,
            Code::InvalidArgument,
            // A follower names the leader for membership changes.
            if leader { Code::NotFound } else { Code::FailedPrecondition },
            Code::ResourceExhausted,
        ];
        for ((what, got), want) in got.iter().zip(want) {
            println!("node {id}: {what}: {got:?}");
            assert_eq!(*got, want, "node {id}: {what}");
        }
    }
    for &id in ids {
        assert!(status(&c.url(id)).await.is_some(), "node {id} stopped answering");
    }
}

fn code<T>(r: Result<T, Status>) -> Code {
    r.map_or_else(|s| s.code(), |_| Code::Ok)
}

/// Runs the fuzzer against `nodes` live nodes for `secs` seconds.
async fn fuzz(nodes: u64, seed: u64, secs: u64) {
    println!("seed {seed:#x}, {nodes} node(s), {secs} s");
    let mut rng = Rng(seed);
    let mut c = Cluster::new(&format!("fuzz{nodes}"), nodes, &["--keep-entries", "50"]);
    let ids: Vec<u64> = (1..=nodes).collect();
    for &id in &ids {
        c.start(id, &ids);
    }
    let l = leader(&c, &ids, 60).await;
    let mut order = ids.clone();
    order.sort_by_key(|&id| id != l);
    reported_cases(&c, &order).await;
    let mut model = Model::default();
    let mut tally = Tally::default();
    let mut history: Vec<String> = Vec::new();
    let until = Instant::now() + Duration::from_secs(secs);
    let mut round = 0u64;
    // One channel per node, kept for the run (a dead node shows as a failed call and an exit).
    let mut channels = Vec::new();
    for &id in &ids {
        channels.push(channel(&c.url(id)).await.expect("node reachable"));
    }
    while Instant::now() < until && tally.failures.is_empty() {
        round += 1;
        // Alternate: a sequential phase (each refused write checked to change nothing), then
        // a concurrent mix.
        if round % 2 == 1 {
            for _ in 0..40 {
                let node = 1 + rng.next() % nodes;
                let url = c.url(node);
                let ch = channels[node as usize - 1].clone();
                let req = match EVERY_KIND.get(tally.sent as usize) {
                    Some(&roll) => generate_kind(&mut rng, roll, &model.shapes(), nodes),
                    None => generate(&mut rng, &model.shapes(), nodes),
                };
                // What a refused write must leave as it was, on the leader (which applied
                // every acknowledged write).
                let leader_url = match status(&url).await {
                    Some(s) if s.leader_id != 0 => c.url(s.leader_id),
                    _ => url.clone(),
                };
                let before = if req.is_write() { fingerprint(&leader_url).await } else { None };
                history.push(format!("node {node}: {}", req.brief()));
                match one(&ch, &req, &mut rng, &mut tally).await {
                    Err(e) => {
                        tally.failures.push((format!("{}: {e}", req.brief()), Some(req)));
                        break;
                    }
                    Ok(outcome) => {
                        if req.is_write() && outcome == Some(false) {
                            let after = fingerprint(&leader_url).await;
                            tally.refused_writes_checked += 1;
                            // A payload write naming a missing id is refused when it applies
                            // (NOT_FOUND, as a no-op entry): its log index is used, nothing else.
                            let changed = match &req {
                                Req::SetPayload(..)
                                | Req::DeletePayloadKeys(_)
                                | Req::ClearPayload(_) => {
                                    after.as_ref().map(|f| &f.collections)
                                        != before.as_ref().map(|f| &f.collections)
                                }
                                _ => after != before,
                            };
                            if before.is_some() && changed {
                                let what = format!(
                                    "{}: refused, yet the state changed: {before:?} -> {after:?}",
                                    req.brief()
                                );
                                tally.failures.push((what, Some(req)));
                                break;
                            }
                        }
                        model.record(&req, outcome);
                    }
                }
            }
        } else {
            let shapes = model.shapes();
            // No creates or drops here: whether a collection exists stays certain.
            let mut batch: Vec<(u64, Req, u64)> = Vec::new();
            while batch.len() < 16 {
                let req = generate(&mut rng, &shapes, nodes);
                if !matches!(req, Req::Create(_) | Req::Drop(_)) {
                    batch.push((1 + rng.next() % nodes, req, rng.next()));
                }
            }
            let mut tasks = Vec::new();
            for (node, req, s) in batch {
                history.push(format!("node {node} (concurrent): {}", req.brief()));
                let ch = channels[node as usize - 1].clone();
                tasks.push(tokio::spawn(async move {
                    let mut rng = Rng(s);
                    let mut tally = Tally::default();
                    let r = one(&ch, &req, &mut rng, &mut tally).await;
                    (req, r, tally)
                }));
            }
            for t in tasks {
                let (req, r, t) = t.await.unwrap();
                tally.sent += t.sent;
                for (k, v) in t.by_rpc {
                    *tally.by_rpc.entry(k).or_default() += v;
                }
                for (k, v) in t.codes {
                    *tally.codes.entry(k).or_default() += v;
                }
                match r {
                    Err(e) => tally.failures.push((format!("{}: {e}", req.brief()), Some(req))),
                    // Concurrent writes to one id land in an order we do not know: each
                    // acknowledged value is possible, none certain.
                    Ok(Some(false)) => {}
                    Ok(_) => model.record(&req, None),
                }
            }
        }
        for n in &mut c.nodes {
            if let Some(Ok(Some(st))) = n.child.as_mut().map(|ch| ch.try_wait()) {
                tally.failures.push((format!("node {} exited: {st}", n.id), None));
            }
        }
        if history.len() > 400 {
            history.drain(..200);
        }
    }
    println!(
        "{} requests in {round} rounds; by RPC {:?}; codes {:?}; {} refused writes checked",
        tally.sent, tally.by_rpc, tally.codes, tally.refused_writes_checked
    );
    if let Some((f, req)) = tally.failures.first() {
        report(nodes, seed, f, req.as_ref(), &model.shapes(), &history).await;
    }
    for rpc in RPCS {
        assert!(tally.by_rpc.contains_key(rpc), "{rpc} was never sent");
    }
    check_end_state(&mut c, &ids, &model, &mut rng).await;
    for n in &mut c.nodes {
        let child = n.child.as_mut().unwrap();
        let pid = child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "node {} did not exit within 10 s of SIGTERM", n.id);
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(status.success(), "node {} exited with {status} after SIGTERM", n.id);
        n.child = None;
    }
}

/// Prints the seed and the shortest failing sequence found, then fails the test: the
/// failing request alone, when it fails again on a fresh node holding the same (empty)
/// collections, else the requests before it.
async fn report(
    nodes: u64,
    seed: u64,
    failure: &str,
    req: Option<&Req>,
    shapes: &BTreeMap<String, Shape>,
    history: &[String],
) {
    eprintln!("FAILURE with seed {seed:#x} on {nodes} node(s): {failure}");
    if let Some(req) = req {
        let mut c = Cluster::new("fuzz-replay", 1, &[]);
        c.start(1, &[1]);
        leader(&c, &[1], 30).await;
        let ch = channel(&c.url(1)).await.unwrap();
        for (name, shape) in shapes {
            let create = CreateCollectionRequest {
                name: name.clone(),
                dimension: shape.dim as u32,
                metric: shape.metric,
                shards: 1,
                index: None,
            };
            let _ = CollectionsClient::new(ch.clone()).create(create).await;
        }
        let mut tally = Tally::default();
        let again = one(&ch, req, &mut Rng(seed), &mut tally).await;
        let exited = c.node(1).child.as_mut().unwrap().try_wait().ok().flatten();
        if again.is_err() || exited.is_some() {
            eprintln!("the shortest sequence: this request alone fails on a fresh node");
            eprintln!("  {}: {again:?} (exit: {exited:?})", req.brief());
            panic!("fuzzer failure (seed {seed:#x}): {failure}");
        }
    }
    eprintln!(
        "it does not fail alone; the {} requests before it, oldest first:",
        history.len().min(50)
    );
    for h in history.iter().rev().take(50).rev() {
        eprintln!("  {h}");
    }
    panic!("fuzzer failure (seed {seed:#x}): {failure}");
}

/// After the run: healthy, converged, every point holds a value the writes allow, exact
/// search equals brute force.
async fn check_end_state(c: &mut Cluster, ids: &[u64], model: &Model, rng: &mut Rng) {
    let l = leader(c, ids, 60).await;
    for &id in ids {
        let url = c.url(id);
        wait_until!(60, format!("node {id} SERVING"), {
            let Some(ch) = channel(&url).await else { continue };
            let mut h = tonic_health::pb::health_client::HealthClient::new(ch);
            let req = tonic_health::pb::HealthCheckRequest { service: String::new() };
            h.check(req).await.is_ok_and(|r| r.into_inner().status == 1)
        });
    }
    let statuses = converged(c, ids, 60).await;
    println!(
        "converged at applied index {} with digests {:?}",
        statuses[0].applied_index,
        statuses[0].collections.iter().map(|c| (&c.name, c.digest, c.vectors)).collect::<Vec<_>>()
    );
    let url = c.url(l);
    let ch = channel(&url).await.unwrap();
    let mut points = PointsClient::new(ch.clone()).max_decoding_message_size(usize::MAX);
    let listed = CollectionsClient::new(ch).list(ListCollectionsRequest {}).await.unwrap();
    let listed: BTreeSet<String> = listed.into_inner().names.into_iter().collect();
    for (name, (shape, pts)) in &model.colls {
        if model.uncertain.contains(name) {
            continue;
        }
        assert!(listed.contains(name), "collection {name} was acknowledged but is gone");
        // Every id the writes touched holds a value they allow.
        let mut actual: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
        let touched: Vec<u64> = pts.keys().copied().collect();
        for chunk in touched.chunks(1000) {
            let r = points
                .get(GetRequest {
                    collection: name.clone(),
                    ids: chunk.to_vec(),
                    with_vectors: true,
                    consistency: Consistency::Linearizable as i32,
                    min_applied_index: 0,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            for p in r.points {
                actual.insert(p.id, p.vector);
            }
        }
        for (id, allowed) in pts {
            let got = actual.get(id);
            let ok = allowed.iter().any(|a| match (a, got) {
                (None, None) => true,
                (Some(want), Some(got)) => same_vector(shape.metric, want, got),
                _ => false,
            });
            assert!(ok, "{name}[{id}] holds {got:?}, which no accepted write allows");
        }
        if actual.is_empty() {
            continue;
        }
        // Exact search equals a brute-force scan of what the points hold.
        for _ in 0..5 {
            let q: Vec<f32> = (0..shape.dim).map(|_| rng.f32()).collect();
            let k = 10;
            let r = points
                .search(SearchRequest {
                    collection: name.clone(),
                    vector: q.clone(),
                    params: Some(SearchParameters {
                        k,
                        exact: true,
                        consistency: Consistency::Linearizable as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut want: Vec<f32> =
                actual.values().map(|v| distance(shape.metric, &q, v)).collect();
            want.sort_by(f32::total_cmp);
            want.truncate(k as usize);
            let got: Vec<f32> = r.hits.iter().map(|h| h.distance).collect();
            assert_eq!(got.len(), want.len(), "{name}: exact search returned {got:?}");
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-3 * (1.0 + w.abs()),
                    "{name}: exact {got:?} vs brute force {want:?}"
                );
            }
            for h in &r.hits {
                let d = distance(shape.metric, &q, &actual[&h.id]);
                assert!(
                    (d - h.distance).abs() <= 1e-3 * (1.0 + d.abs()),
                    "{name}[{}]: {d} vs {}",
                    h.id,
                    h.distance
                );
            }
        }
    }
}

/// Whether a stored vector is the one written (normalised under cosine).
fn same_vector(metric: i32, written: &[f32], stored: &[f32]) -> bool {
    if written.len() != stored.len() {
        return false;
    }
    let norm = if metric == Metric::Cosine as i32 {
        written.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt() as f32
    } else {
        1.0
    };
    written.iter().zip(stored).all(|(w, s)| (w / norm - s).abs() <= 1e-5)
}

fn distance(metric: i32, q: &[f32], v: &[f32]) -> f32 {
    let dot: f32 = q.iter().zip(v).map(|(a, b)| a * b).sum();
    if metric == Metric::L2 as i32 {
        q.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum()
    } else if metric == Metric::Dot as i32 {
        -dot
    } else {
        let qn = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        1.0 - dot / qn
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_fuzz_single_node() {
    let _turn = SERIAL.lock().await;
    fuzz(1, seed(0xf022_0001), seconds()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_fuzz_three_nodes() {
    let _turn = SERIAL.lock().await;
    fuzz(3, seed(0xf022_0003), seconds()).await;
}
