//! `freshvec serve`: one node of a cluster (a single node is a one-member cluster), serving
//! the public gRPC API (`proto/freshvec/v1`) on `--listen` and the Raft peer service
//! (`proto/freshvec/peer/v1`) on `--peer-listen`.
//!
//! Every write is validated completely before anything is logged (a refused request changes
//! nothing), then appended to the Raft log through the leader (a follower forwards it) and
//! applied; it returns the log index it was applied at. Reads are served by the node asked,
//! at the consistency the request names. Health (`grpc.health.v1`) reports NOT_SERVING until
//! the node has loaded its data and applied the leader's read index (caught up with the
//! cluster). SIGINT or SIGTERM stops accepting requests, lets in-flight ones finish, snapshots
//! and exits 0.

use crate::proto::cluster_server::{Cluster, ClusterServer};
use crate::proto::collections_server::{Collections, CollectionsServer};
use crate::proto::points_server::{Points, PointsServer};
use crate::proto::*;
use crate::vectors::{check_batch, check_distinct};
use clap::Args;
use freshvec_core::{Encoding as CoreEncoding, IndexParams};
use freshvec_core::{Metric as CoreMetric, SearchParams};
use freshvec_replication::network::secret_matches;
use freshvec_replication::node::{Node, NodeConfig, NodeError};
use freshvec_replication::state::Replica;
use freshvec_replication::{Applied, CollectionSpec, Command, Outcome};
use openraft::ServerState;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address of the public gRPC API (bound to loopback unless configured).
    #[arg(long, env = "FRESHVEC_LISTEN", default_value = "127.0.0.1:7867")]
    pub listen: SocketAddr,
    /// Directory holding the node's Raft log (`raft/`) and state (`state/`).
    #[arg(long, env = "FRESHVEC_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Require `authorization: Bearer KEY` on every call but health checks (off by default).
    #[arg(long, env = "FRESHVEC_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests served at once; more are refused at once with RESOURCE_EXHAUSTED.
    #[arg(long, env = "FRESHVEC_MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: usize,
    /// Request bytes all calls in flight may hold at once (MiB); a call whose body would pass
    /// it is refused with RESOURCE_EXHAUSTED. Bounds the memory requests take.
    #[arg(long, env = "FRESHVEC_MAX_REQUEST_MIB", default_value_t = 512)]
    pub max_request_mib: u64,
    /// Longest a request may run; a client's shorter deadline applies as given.
    #[arg(long, env = "FRESHVEC_MAX_REQUEST_SECONDS", default_value_t = 30.0)]
    pub max_request_seconds: f64,
    /// Address of the Prometheus `GET /metrics` endpoint (plain HTTP); "off" disables it.
    #[arg(long, env = "FRESHVEC_METRICS_LISTEN", default_value = "127.0.0.1:9867")]
    pub metrics_listen: String,
    /// Address of the JSON gateway (the public API as JSON over HTTP/1.1, under `/v1/`; over
    /// TLS with --tls-cert, behind --api-key like gRPC), e.g. 127.0.0.1:7869; "off" (the
    /// default) serves none.
    #[arg(long, env = "FRESHVEC_HTTP_LISTEN", default_value = "off")]
    pub http_listen: String,
    /// This node's id in the cluster.
    #[arg(long, env = "FRESHVEC_NODE_ID", default_value_t = 1)]
    pub node_id: u64,
    /// Address of the Raft peer service. Never expose it publicly. Port 0 picks a free port
    /// (only for a single node started without --peers).
    #[arg(long, env = "FRESHVEC_PEER_LISTEN", default_value = "127.0.0.1:7868")]
    pub peer_listen: SocketAddr,
    /// The initial members' peer addresses, `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT` (this node
    /// included). Without it the node is a cluster of one at its peer address.
    #[arg(long, env = "FRESHVEC_PEERS")]
    pub peers: Option<String>,
    /// A secret every peer-service call must carry (off by default).
    #[arg(long, env = "FRESHVEC_CLUSTER_SECRET", hide_env_values = true)]
    pub cluster_secret: Option<String>,
    /// Snapshot after this many log entries since the last snapshot.
    #[arg(long, env = "FRESHVEC_SNAPSHOT_ENTRIES", default_value_t = 5_000)]
    pub snapshot_entries: u64,
    /// Snapshot after this many MiB appended to the log since the last snapshot.
    #[arg(long, env = "FRESHVEC_SNAPSHOT_MIB", default_value_t = 256)]
    pub snapshot_mib: u64,
    /// Snapshot this many seconds after the last snapshot, if anything was applied since.
    #[arg(long, env = "FRESHVEC_SNAPSHOT_SECS", default_value_t = 60)]
    pub snapshot_secs: u64,
    /// Log entries kept before a snapshot's index when the log is purged, so that briefly
    /// absent followers catch up from the log rather than with a snapshot.
    #[arg(long, env = "FRESHVEC_KEEP_ENTRIES", default_value_t = 1_000)]
    pub keep_entries: u64,
    /// A follower that hears no leader for this long (randomised up to twice it) starts an
    /// election; heartbeats go out at a quarter of it. A quarter of it is also how long one
    /// AppendEntries may take (openraft times replication out at the heartbeat interval), so
    /// it bounds the largest write a follower can receive in time: keep it at least a few
    /// hundred milliseconds.
    #[arg(long, env = "FRESHVEC_ELECTION_TIMEOUT_MS", default_value_t = 800)]
    pub election_timeout_ms: u64,
    /// Serve the public API over TLS with this certificate chain (PEM); needs --tls-key.
    /// Off by default. The peer service and metrics stay plain.
    #[arg(long, env = "FRESHVEC_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "FRESHVEC_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// A file of `key = value` lines naming these flags (under the flags and the
    /// environment; see `freshvec_server::config`).
    #[arg(long, env = "FRESHVEC_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Parses `--peers`: `ID=HOST:PORT` pairs separated by commas.
pub fn parse_peers(s: &str) -> Result<BTreeMap<u64, String>, String> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) =
            part.split_once('=').ok_or_else(|| format!("--peers: {part:?} is not ID=HOST:PORT"))?;
        let id: u64 = id.trim().parse().map_err(|_| format!("--peers: bad node id in {part:?}"))?;
        if id == 0 {
            return Err("--peers: node ids start at 1".into());
        }
        if out.insert(id, addr.trim().to_string()).is_some() {
            return Err(format!("--peers: node {id} listed twice"));
        }
    }
    Ok(out)
}

// The bounds of every request-sized resource (the README's limits list and the proto
// comments name them; ARCHITECTURE.md gives the memory of the worst valid request).

/// Most points (or ids) in one write, and ids in one Get.
pub use crate::vectors::MAX_BATCH;
// k, nprobe and rerank: `SearchParams::MAX_K`, `MAX_NPROBE`, `MAX_RERANK` (the engine's).
/// Most queries in one SearchBatch.
pub const MAX_QUERIES: usize = 1_024;
/// Most hits one SearchBatch may ask for (queries times k).
pub const MAX_BATCH_HITS: usize = 65_536;
/// Most vector components one Get may return (ids times dimension, with vectors).
pub const MAX_GET_COMPONENTS: usize = 1 << 20;
/// Largest vector dimension.
pub const MAX_DIMENSION: u32 = IndexParams::MAX_DIM as u32;
/// How much earlier than a client's deadline the server gives up on a request, at least (a
/// quarter of the client's timeout when that is more).
const DEADLINE_MARGIN: Duration = Duration::from_millis(5);
/// Largest request or response message. One write is one log entry, and openraft gives an
/// AppendEntries one heartbeat interval (200 ms by default) to reach a follower and be made
/// durable there: an entry much larger than this would time out on every attempt, and the
/// follower would never catch up (measured here: 24 MiB entries never replicated under
/// load, 16 MiB ones did).
pub const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// The node, once it has loaded.
pub type Loaded = Arc<OnceLock<Node>>;

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn node_status(e: NodeError) -> Status {
    match e {
        NodeError::Timeout { .. } => Status::deadline_exceeded(e.to_string()),
        NodeError::Refused(_) => Status::failed_precondition(e.to_string()),
        NodeError::NotFound(_) => Status::not_found(e.to_string()),
        NodeError::Invalid(_) => Status::invalid_argument(e.to_string()),
        _ => Status::unavailable(e.to_string()),
    }
}

/// Maps what applying a write did to the response (its index) or a status.
fn outcome(a: Applied) -> Result<u64, Status> {
    match a.outcome {
        Outcome::Done => Ok(a.index),
        Outcome::NotFound(m) => Err(Status::not_found(m)),
        Outcome::Exists(m) => Err(Status::already_exists(m)),
        Outcome::Invalid(m) => Err(Status::invalid_argument(m)),
    }
}

fn check_name(field: &str, name: &str) -> Result<(), Status> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!("{field}: must match [A-Za-z0-9_-]{{1,64}}")))
    }
}

/// Runs blocking engine work until `deadline`; past it the caller gets DEADLINE_EXCEEDED.
async fn blocking<T: Send + 'static>(
    deadline: Instant,
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    within(deadline, async { tokio::task::spawn_blocking(f).await.map_err(internal)? }).await
}

/// Runs `f` until `deadline`; past it the caller gets DEADLINE_EXCEEDED (a write already
/// under way may still be applied, as with any deadline).
async fn within<T>(
    deadline: Instant,
    f: impl std::future::Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(Status::deadline_exceeded("the request's deadline passed"));
    }
    match tokio::time::timeout(remaining, f).await {
        Err(_) => Err(Status::deadline_exceeded("the request's deadline passed")),
        Ok(r) => r,
    }
}

/// A `grpc-timeout` header value: digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The gRPC services over one node. Calls in flight and their bytes are bounded before
/// they reach it (`crate::admission`).
#[derive(Debug, Clone)]
pub struct Api {
    node: Loaded,
    /// The longest any request may run.
    max_request: Duration,
}

impl Api {
    pub fn new(node: Loaded, max_request: Duration) -> Api {
        Api { node, max_request }
    }

    /// When a request must be answered: its client's deadline, bounded by the server's. A
    /// client's deadline is brought forward by a small margin, so that DEADLINE_EXCEEDED is
    /// answered before the transport's own timer cuts the call off (which it reports as
    /// CANCELLED).
    fn deadline<T>(&self, req: &Request<T>) -> Instant {
        let client = req
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let client = client.map(|c| c.saturating_sub(DEADLINE_MARGIN.max(c / 4)));
        Instant::now() + client.map_or(self.max_request, |c| c.min(self.max_request))
    }

    fn node(&self) -> Result<&Node, Status> {
        self.node.get().ok_or_else(|| Status::unavailable("the node is still loading its data"))
    }

    /// The collection `name` as this replica has it.
    fn replica(&self, name: &str) -> Result<Arc<Replica>, Status> {
        let node = self.node()?;
        check_name("collection", name)?;
        node.state
            .collection(name)
            .ok_or_else(|| Status::not_found(format!("collection {name:?} does not exist")))
    }

    /// The collection a read names, after the wait its consistency asks for (so a replica
    /// catching up finds a collection created meanwhile); also returns the applied index the
    /// read answers at.
    async fn read_replica(
        &self,
        name: &str,
        consistency: i32,
        min_applied_index: u64,
        deadline: Instant,
    ) -> Result<(Arc<Replica>, u64), Status> {
        check_name("collection", name)?;
        let applied = self.read_point(consistency, min_applied_index, deadline).await?;
        Ok((self.replica(name)?, applied))
    }

    /// The collection a write names. A node that does not know it yet (a follower behind, or
    /// a new leader still applying) first catches up with the leader's read index, so a write
    /// right after a create is not refused because this replica lags.
    async fn write_replica(&self, name: &str, deadline: Instant) -> Result<Arc<Replica>, Status> {
        match self.replica(name) {
            Err(s) if s.code() == tonic::Code::NotFound => {
                self.node()?.linearizable(deadline).await.map_err(node_status)?;
                self.replica(name)
            }
            r => r,
        }
    }

    /// Appends a validated command through the leader; returns its log index.
    async fn write(&self, cmd: Command, deadline: Instant) -> Result<u64, Status> {
        let node = self.node()?.clone();
        let applied =
            within(deadline, async { node.write(cmd).await.map_err(node_status) }).await?;
        outcome(applied)
    }

    /// Waits until this replica may answer a read at the requested consistency; returns the
    /// applied index it answers at.
    async fn read_point(
        &self,
        consistency: i32,
        min_applied_index: u64,
        deadline: Instant,
    ) -> Result<u64, Status> {
        let node = self.node()?;
        match Consistency::try_from(consistency) {
            Ok(Consistency::MinAppliedIndex) => {
                node.wait_applied(min_applied_index, deadline).await.map_err(node_status)?
            }
            Ok(Consistency::Linearizable) => {
                node.linearizable(deadline).await.map_err(node_status)?;
            }
            Ok(_) => {}
            Err(_) => return Err(Status::invalid_argument("consistency: unknown value")),
        }
        Ok(node.state.applied_index())
    }
}

/// Checks the bearer token in constant time (no early exit on the first differing byte).
fn authorized(expected: &[u8], header: Option<&[u8]>) -> bool {
    secret_matches(expected, header.and_then(|h| h.strip_prefix(b"Bearer ")))
}

/// The `--api-key` every call but health checks must carry (`authorization: Bearer KEY`),
/// checked alike for gRPC (an interceptor) and the JSON gateway.
#[derive(Clone)]
pub struct ApiKey(Option<Arc<[u8]>>);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "ApiKey(set)" } else { "ApiKey(none)" })
    }
}

impl ApiKey {
    pub fn new(key: Option<&str>) -> ApiKey {
        ApiKey(key.map(|k| Arc::from(k.as_bytes())))
    }

    pub fn check(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        match &self.0 {
            Some(k) => {
                let header = metadata.get("authorization").map(|v| v.as_bytes());
                if authorized(k, header) {
                    Ok(())
                } else {
                    Err(Status::unauthenticated("missing or wrong bearer token"))
                }
            }
            None => Ok(()),
        }
    }
}

fn metric_from(m: i32) -> Result<CoreMetric, Status> {
    match Metric::try_from(m) {
        Ok(Metric::L2) => Ok(CoreMetric::L2),
        Ok(Metric::Dot) => Ok(CoreMetric::Dot),
        Ok(Metric::Cosine) => Ok(CoreMetric::Cosine),
        _ => {
            Err(Status::invalid_argument("metric: must be METRIC_L2, METRIC_DOT or METRIC_COSINE"))
        }
    }
}

/// The API's name for an engine metric.
pub fn metric_to(m: CoreMetric) -> Metric {
    match m {
        CoreMetric::L2 => Metric::L2,
        CoreMetric::Dot => Metric::Dot,
        CoreMetric::Cosine => Metric::Cosine,
    }
}

/// The API's name for an engine posting encoding.
pub fn encoding_to(e: CoreEncoding) -> Encoding {
    match e {
        CoreEncoding::F32 => Encoding::F32,
        CoreEncoding::Int8 => Encoding::Int8,
    }
}

#[tonic::async_trait]
impl Collections for Api {
    async fn create(
        &self,
        req: Request<CreateCollectionRequest>,
    ) -> Result<Response<CreateCollectionResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        check_name("name", &r.name)?;
        if r.dimension == 0 || r.dimension > MAX_DIMENSION {
            return Err(Status::invalid_argument(format!(
                "dimension: must be 1..={MAX_DIMENSION}, got {}",
                r.dimension
            )));
        }
        let metric = metric_from(r.metric)?;
        let shards = if r.shards == 0 { 1 } else { r.shards as usize };
        let ix = r.index.unwrap_or_default();
        let mut params = IndexParams::new(r.dimension as usize, metric);
        params.encoding = match Encoding::try_from(ix.encoding) {
            Ok(Encoding::F32) => CoreEncoding::F32,
            Ok(Encoding::Int8) | Ok(Encoding::Unspecified) => CoreEncoding::Int8,
            Err(_) => return Err(Status::invalid_argument("index.encoding: unknown value")),
        };
        // Tunables as asked (0 keeps the default); the spec checks them as every replica will.
        let spec = CollectionSpec {
            posting_size: ix.posting_size,
            split_limit: ix.split_limit,
            merge_limit: ix.merge_limit,
            replicas: ix.replicas,
            ..CollectionSpec::new(&params, shards)
        };
        spec.params().map_err(Status::invalid_argument)?;
        let state = &self.node()?.state;
        if state.collection(&r.name).is_some() {
            return Err(Status::already_exists(format!("collection {:?} exists", r.name)));
        }
        state.room_for(spec.shards).map_err(Status::resource_exhausted)?;
        let index = self.write(Command::CreateCollection { name: r.name, spec }, deadline).await?;
        Ok(Response::new(CreateCollectionResponse { index }))
    }

    async fn drop(
        &self,
        req: Request<DropCollectionRequest>,
    ) -> Result<Response<DropCollectionResponse>, Status> {
        let deadline = self.deadline(&req);
        let name = req.into_inner().name;
        self.write_replica(&name, deadline).await?;
        let index = self.write(Command::DropCollection { name }, deadline).await?;
        Ok(Response::new(DropCollectionResponse { index }))
    }

    async fn list(
        &self,
        _req: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        let names = self.node()?.state.collections().iter().map(|r| r.name.clone()).collect();
        Ok(Response::new(ListCollectionsResponse { names }))
    }

    async fn describe(
        &self,
        req: Request<DescribeCollectionRequest>,
    ) -> Result<Response<DescribeCollectionResponse>, Status> {
        let name = req.into_inner().name;
        let r = self.replica(&name)?;
        let coll = r.coll();
        let st = coll.stats();
        let encoding = if r.spec.encoding == 0 { CoreEncoding::F32 } else { CoreEncoding::Int8 };
        let cal = coll.calibration();
        Ok(Response::new(DescribeCollectionResponse {
            name,
            dimension: coll.dim() as u32,
            metric: metric_to(coll.metric()) as i32,
            shards: coll.shard_count() as u32,
            encoding: encoding_to(encoding) as i32,
            vectors: st.vectors,
            postings: st.postings,
            splits: st.splits,
            merges: st.merges,
            reassigned: st.reassigned,
            pending_jobs: st.pending_jobs,
            memory_bytes: st.memory_bytes,
            applied_index: self.node()?.state.applied_index(),
            calibrated_shards: cal.as_ref().map_or(0, |c| c.shards as u32),
            calibration_queries: cal.as_ref().map_or(0, |c| c.queries as u32),
            default_nprobe: cal.as_ref().map_or(0, |c| c.default_nprobe as u32),
            estimated_recall: cal.as_ref().map_or(0.0, |c| c.default_recall),
            calibration: cal.map_or_else(Vec::new, |c| {
                c.points
                    .iter()
                    .map(|&(np, recall)| CalibrationPoint { nprobe: np as u32, recall })
                    .collect()
            }),
        }))
    }
}

/// The engine's search parameters for a request (0 keeps a default), checked against the
/// engine's bounds (`SearchParams::validate`).
fn search_params(p: &SearchParameters) -> Result<SearchParams, Status> {
    let mut sp = SearchParams::new(p.k as usize);
    if p.nprobe > 0 {
        sp.nprobe = p.nprobe as usize;
    }
    if p.rerank > 0 {
        sp.rerank = p.rerank as usize;
    }
    if p.target_recall != 0.0 {
        sp.target_recall = Some(p.target_recall);
    }
    sp.exact = p.exact;
    sp.validate().map_err(|e| Status::invalid_argument(format!("params: {e}")))?;
    Ok(sp)
}

#[tonic::async_trait]
impl Points for Api {
    async fn upsert(&self, req: Request<UpsertRequest>) -> Result<Response<WriteResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        let replica = self.write_replica(&r.collection, deadline).await?;
        let (ids, vectors) = crate::vectors::upsert_rows(&r, replica.coll().dim())?;
        // The engine's own checks (a zero vector under cosine), then its admission control:
        // a backed-up index refuses the write before it is logged.
        let (ids, vectors) = blocking(deadline, move || {
            let coll = replica.coll();
            coll.validate_upsert(&ids, &vectors)
                .map_err(|e| Status::invalid_argument(format!("points: {e}")))?;
            coll.admit().map_err(|e| Status::resource_exhausted(e.to_string()))?;
            Ok((ids, vectors))
        })
        .await?;
        let index = self
            .write(Command::Upsert { collection: r.collection, ids, vectors }, deadline)
            .await?;
        Ok(Response::new(WriteResponse { index }))
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<WriteResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        self.write_replica(&r.collection, deadline).await?;
        check_batch("ids", r.ids.len())?;
        check_distinct("ids", r.ids.iter())?;
        let index =
            self.write(Command::Delete { collection: r.collection, ids: r.ids }, deadline).await?;
        Ok(Response::new(WriteResponse { index }))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        check_batch("ids", r.ids.len())?;
        let (replica, _) =
            self.read_replica(&r.collection, r.consistency, r.min_applied_index, deadline).await?;
        let components = r.ids.len() * replica.coll().dim();
        if r.with_vectors && components > MAX_GET_COMPONENTS {
            return Err(Status::invalid_argument(format!(
                "ids: {} ids of dimension {} with vectors is {components} components, at most \
                 {MAX_GET_COMPONENTS} per request",
                r.ids.len(),
                replica.coll().dim()
            )));
        }
        let points = blocking(deadline, move || {
            Ok(r.ids
                .iter()
                .filter_map(|&id| {
                    let v = replica.coll().get(id)?;
                    let v = if r.with_vectors { v } else { Vec::new() };
                    Some(crate::vectors::point(id, v, r.vectors_f32))
                })
                .collect())
        })
        .await?;
        Ok(Response::new(GetResponse { points }))
    }

    async fn search(
        &self,
        req: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        let p = r.params.unwrap_or_default();
        let sp = search_params(&p)?;
        let (replica, applied) =
            self.read_replica(&r.collection, p.consistency, p.min_applied_index, deadline).await?;
        let vector =
            crate::vectors::vector("vector", r.vector, &r.vector_f32, replica.coll().dim())?;
        // On the blocking pool: with many clients a search running on an async worker holds
        // up the connections it serves (measured on medium with 16 clients: 2,376 qps on the
        // worker, 4,307 on the pool).
        blocking(deadline, move || {
            let h = replica
                .coll()
                .search(&vector, &sp)
                .map_err(|e| Status::invalid_argument(format!("vector: {e}")))?;
            Ok(Response::new(crate::vectors::hits(h, applied, r.packed_hits)))
        })
        .await
    }

    async fn search_batch(
        &self,
        req: Request<SearchBatchRequest>,
    ) -> Result<Response<SearchBatchResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        if r.queries.is_empty() || r.queries.len() > MAX_QUERIES {
            return Err(Status::invalid_argument(format!(
                "queries: must be 1..={MAX_QUERIES}, got {}",
                r.queries.len()
            )));
        }
        let p = r.params.unwrap_or_default();
        let sp = search_params(&p)?;
        if r.queries.len() * sp.k > MAX_BATCH_HITS {
            return Err(Status::invalid_argument(format!(
                "queries: {} queries of k {} ask for {} hits, at most {MAX_BATCH_HITS}",
                r.queries.len(),
                sp.k,
                r.queries.len() * sp.k
            )));
        }
        let (replica, applied) =
            self.read_replica(&r.collection, p.consistency, p.min_applied_index, deadline).await?;
        let dim = replica.coll().dim();
        let packed = r.packed_hits;
        let queries = r
            .queries
            .into_iter()
            .enumerate()
            .map(|(i, q)| {
                crate::vectors::vector(
                    &format!("queries[{i}].vector"),
                    q.vector,
                    &q.vector_f32,
                    dim,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        blocking(deadline, move || {
            let mut results = Vec::with_capacity(queries.len());
            for (i, q) in queries.iter().enumerate() {
                // The answer is not wanted past the deadline: stop spending on it.
                if Instant::now() >= deadline {
                    return Err(Status::deadline_exceeded("the request's deadline passed"));
                }
                let h = replica
                    .coll()
                    .search(q, &sp)
                    .map_err(|e| Status::invalid_argument(format!("queries[{i}].vector: {e}")))?;
                results.push(crate::vectors::hits(h, applied, packed));
            }
            Ok(Response::new(SearchBatchResponse { results }))
        })
        .await
    }
}

fn role_of(s: ServerState) -> Role {
    match s {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Unspecified,
    }
}

/// This node's view of replication (see `StatusResponse` in the proto).
pub fn status_of(node: &Node) -> StatusResponse {
    let m = node.raft.metrics().borrow().clone();
    let last_log = m.last_log_index.unwrap_or(0);
    let applied = m.last_applied.map_or(0, |l| l.index);
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let matched: BTreeMap<u64, u64> = m
        .replication
        .as_ref()
        .map(|r| r.iter().map(|(id, l)| (*id, l.map_or(0, |l| l.index))).collect())
        .unwrap_or_default();
    // On the leader, the index a quorum of voters holds; elsewhere, what was applied (a
    // lower bound).
    let committed = if m.state == ServerState::Leader {
        let mut held: Vec<u64> = voters
            .iter()
            .map(|v| if *v == m.id { last_log } else { matched.get(v).copied().unwrap_or(0) })
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        held.get(voters.len() / 2).copied().unwrap_or(applied).max(applied)
    } else {
        applied
    };
    let peers = membership
        .nodes()
        .filter(|(id, _)| **id != m.id)
        .map(|(id, n)| {
            let matched_index = matched.get(id).copied().unwrap_or(0);
            PeerStatus {
                node_id: *id,
                address: n.addr.clone(),
                matched_index,
                lag: if m.replication.is_some() {
                    last_log.saturating_sub(matched_index)
                } else {
                    0
                },
                snapshots_installed: 0,
                voter: voters.contains(id),
            }
        })
        .collect();
    let collections = node
        .state
        .collections()
        .iter()
        .map(|r| {
            let (digest, vectors) = r.digest();
            CollectionDigest { name: r.name.clone(), digest, vectors }
        })
        .collect();
    let snap = node.state.snapshot_stats();
    let purged = m.purged.map_or(0, |p| p.index);
    StatusResponse {
        node_id: m.id,
        role: role_of(m.state) as i32,
        leader_id: m.current_leader.unwrap_or(0),
        term: m.current_term,
        last_log_index: last_log,
        committed_index: committed,
        applied_index: applied,
        purged_index: purged,
        snapshot_index: m.snapshot.map_or(0, |s| s.index),
        collections,
        peers,
        snapshots_installed: snap.installed,
        snapshot_transfers_in_progress: snap.receiving,
        last_snapshot_install_ms: snap.last_install_ms,
        address: membership.get_node(&m.id).map(|n| n.addr.clone()).unwrap_or_default(),
        voters,
        first_log_index: m.purged.map_or(0, |p| p.index + 1),
    }
}

fn membership_of(node: &Node) -> MembershipResponse {
    let m = node.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    MembershipResponse {
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
    }
}

#[tonic::async_trait]
impl Cluster for Api {
    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(status_of(self.node()?)))
    }

    async fn trigger_snapshot(
        &self,
        req: Request<TriggerSnapshotRequest>,
    ) -> Result<Response<TriggerSnapshotResponse>, Status> {
        let deadline = self.deadline(&req);
        let snapshot_index = self.node()?.snapshot_now(deadline).await.map_err(node_status)?;
        Ok(Response::new(TriggerSnapshotResponse { snapshot_index }))
    }

    async fn add_node(
        &self,
        req: Request<AddNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        if r.node_id == 0 || r.address.is_empty() {
            return Err(Status::invalid_argument("node_id and address are required"));
        }
        let node = self.node()?.clone();
        within(deadline, async { node.add_node(r.node_id, r.address).await.map_err(node_status) })
            .await?;
        Ok(Response::new(membership_of(&node)))
    }

    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let deadline = self.deadline(&req);
        let id = req.into_inner().node_id;
        let node = self.node()?.clone();
        within(deadline, async { node.remove_node(id).await.map_err(node_status) }).await?;
        Ok(Response::new(membership_of(&node)))
    }

    async fn purge_log(
        &self,
        req: Request<PurgeLogRequest>,
    ) -> Result<Response<PurgeLogResponse>, Status> {
        let deadline = self.deadline(&req);
        let upto = match req.get_ref().upto {
            0 => u64::MAX,
            n => n,
        };
        let purged_index = self.node()?.purge_now(upto, deadline).await.map_err(node_status)?;
        Ok(Response::new(PurgeLogResponse { purged_index }))
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Runs the node until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let peer_listener = tokio::net::TcpListener::bind(args.peer_listen).await?;
    let peer_addr = peer_listener.local_addr()?;
    let peers = match &args.peers {
        Some(p) => parse_peers(p).map_err(anyhow::Error::msg)?,
        None => BTreeMap::from([(args.node_id, peer_addr.to_string())]),
    };
    if !peers.contains_key(&args.node_id) {
        anyhow::bail!("--peers does not list this node ({})", args.node_id);
    }
    let mut config = NodeConfig::single(args.data_dir.clone(), peer_addr.to_string());
    config.id = args.node_id;
    config.peers = peers;
    config.secret = args.cluster_secret.clone();
    config.local_ip = Some(peer_addr.ip()).filter(|ip| !ip.is_unspecified());
    config.snapshot_entries = args.snapshot_entries.max(1);
    config.snapshot_bytes = args.snapshot_mib.max(1) << 20;
    config.snapshot_secs = args.snapshot_secs.max(1);
    config.keep_entries = args.keep_entries;
    let election = args.election_timeout_ms.max(80);
    config.election_ms = (election, 2 * election);
    config.heartbeat_ms = election / 4;

    let loaded: Loaded = Arc::new(OnceLock::new());
    let limit = Duration::from_secs_f64(args.max_request_seconds.max(0.001));
    let api = Api::new(loaded.clone(), limit);
    let limits = crate::admission::Limits::new(
        args.max_concurrent_requests,
        (args.max_request_mib.max(1) as usize) << 20,
    );
    let key = ApiKey::new(args.api_key.as_deref());
    let check = {
        let key = key.clone();
        move |req: Request<()>| -> Result<Request<()>, Status> {
            key.check(req.metadata())?;
            Ok(req)
        }
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::DESCRIPTOR)
        .build_v1()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_not_serving::<CollectionsServer<Api>>().await;
    reporter.set_not_serving::<PointsServer<Api>>().await;
    // Liveness: the process answers. Readiness ("" and "readiness"): caught up and serving.
    reporter.set_service_status("liveness", tonic_health::ServingStatus::Serving).await;
    reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    reporter.set_service_status("readiness", tonic_health::ServingStatus::NotServing).await;

    // Loading runs beside the public server; a failure (a damaged data directory) stops it.
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    {
        let (loaded, reporter) = (loaded.clone(), reporter.clone());
        let secret = args.cluster_secret.clone();
        tokio::spawn(async move {
            let node = match Node::start(config).await {
                Ok(n) => n,
                Err(e) => return drop(failed_tx.send(format!("{e:#}"))),
            };
            let peer_service = node.peer_service().into_server(secret);
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(peer_listener);
            tokio::spawn(async move {
                // Windows of a few MiB, so a snapshot stream is not paced by window updates.
                let served = tonic::transport::Server::builder()
                    .initial_stream_window_size(Some(8 << 20))
                    .initial_connection_window_size(Some(16 << 20))
                    .add_service(peer_service)
                    .serve_with_incoming(incoming)
                    .await;
                if let Err(e) = served {
                    tracing::error!("peer service stopped: {e}");
                }
            });
            tokio::spawn(node.clone().snapshot_policy_loop());
            if let Err(e) = node.bootstrap().await {
                return drop(failed_tx.send(format!("{e:#}")));
            }
            // Answering from here on (status works while the node catches up); SERVING once
            // it applied the leader's read index: caught up with the cluster.
            let _ = loaded.set(node.clone());
            loop {
                let deadline = Instant::now() + Duration::from_secs(5);
                match node.linearizable(deadline).await {
                    Ok(index) => {
                        tracing::info!(index, "caught up with the cluster; serving");
                        break;
                    }
                    Err(e) => {
                        tracing::debug!("not caught up yet: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
            eprintln!("freshvec: node ready; serving");
            reporter.set_serving::<CollectionsServer<Api>>().await;
            reporter.set_serving::<PointsServer<Api>>().await;
            reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
            reporter.set_service_status("readiness", tonic_health::ServingStatus::Serving).await;
        });
    }
    let failure = Arc::new(parking_lot::Mutex::new(None::<String>));
    // One stop for both listeners (gRPC and the JSON gateway).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    {
        let failure = failure.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown_signal() => {},
                Ok(e) = failed_rx => *failure.lock() = Some(e),
            }
            let _ = stop_tx.send(true);
        });
    }
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let metrics = Arc::new(crate::metrics::Metrics::default());
    if args.metrics_listen != "off" {
        let listener = tokio::net::TcpListener::bind(&args.metrics_listen).await?;
        eprintln!("freshvec: metrics on http://{}/metrics", listener.local_addr()?);
        tokio::spawn(crate::metrics::serve_http(listener, metrics.clone(), loaded.clone()));
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let read = |p: &PathBuf| {
                std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))
            };
            let identity = tonic::transport::Identity::from_pem(read(cert)?, read(key)?);
            Some(tonic::transport::ServerTlsConfig::new().identity(identity))
        }
        _ => None,
    };
    let gateway = if args.http_listen != "off" {
        let listener = tokio::net::TcpListener::bind(&args.http_listen).await?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!("freshvec: JSON gateway on {scheme}://{}/v1/", listener.local_addr()?);
        let g = Arc::new(crate::rest::Gateway {
            api: api.clone(),
            health: tonic_health::server::HealthService::from_health_reporter(reporter.clone()),
            limits: limits.clone(),
            key: key.clone(),
            metrics: metrics.clone(),
            max_request: limit,
        });
        // tonic's server (HTTP/1.1 accepted) serves the routes: the same TLS and
        // connection handling as the gRPC listener.
        let mut b = tonic::transport::Server::builder().accept_http1(true);
        if let Some(tls) = tls.clone() {
            b = b.tls_config(tls)?;
        }
        let routes = tonic::service::Routes::from(crate::rest::router(g));
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let stop = stopped(stop_rx.clone());
        Some(tokio::spawn(async move {
            let served = b.add_routes(routes).serve_with_incoming_shutdown(incoming, stop).await;
            if let Err(e) = served {
                tracing::error!("JSON gateway stopped: {e}");
            }
        }))
    } else {
        None
    };
    eprintln!(
        "freshvec: node {} listening on {} (peers on {peer_addr}, data in {})",
        args.node_id,
        args.listen,
        args.data_dir.display()
    );
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
        eprintln!("freshvec: the public API is served over TLS");
    }
    builder
        .layer(crate::metrics::MetricsLayer(metrics))
        .layer(crate::admission::AdmissionLayer(limits))
        .add_service(health)
        .add_service(reflection)
        .add_service(tonic::service::interceptor::InterceptedService::new(
            CollectionsServer::new(api.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            check.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            PointsServer::new(api.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            check.clone(),
        ))
        .add_service(tonic::service::interceptor::InterceptedService::new(
            ClusterServer::new(api)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            check,
        ))
        .serve_with_shutdown(args.listen, stopped(stop_rx))
        .await?;
    if let Some(g) = gateway {
        let _ = g.await;
    }
    if let Some(e) = failure.lock().take() {
        anyhow::bail!("loading the data directory failed: {e}");
    }
    if let Some(node) = loaded.get() {
        eprintln!("freshvec: shutting down; snapshotting");
        let deadline = Instant::now() + Duration::from_secs(120);
        if let Err(e) = node.snapshot_now(deadline).await {
            eprintln!("freshvec: snapshot at shutdown failed ({e}); the log replays at restart");
        }
        let _ = node.raft.shutdown().await;
    }
    eprintln!("freshvec: stopped");
    Ok(())
}
