//! `freshvec serve`: one node serving the public gRPC API (`proto/freshvec/v1`) over durable
//! collections kept in its data directory (`DIR/collections/NAME/`, each an embedded durable
//! collection: journal + checkpoints).
//!
//! Every write is validated completely before anything is logged (a refused request changes
//! nothing), then logged durably and applied; it returns the log index it was applied at.
//! Health (`grpc.health.v1`) reports NOT_SERVING until every collection has been loaded.
//! SIGINT or SIGTERM stops accepting requests, lets in-flight ones finish, checkpoints every
//! collection and exits 0.

use crate::proto::cluster_server::{Cluster, ClusterServer};
use crate::proto::collections_server::{Collections, CollectionsServer};
use crate::proto::points_server::{Points, PointsServer};
use crate::proto::*;
use clap::Args;
use freshvec_core::durable::{DurableCollection, DurableError, Op};
use freshvec_core::storage::fs::RealFs;
use freshvec_core::{Encoding as CoreEncoding, Error as CoreError, IndexParams};
use freshvec_core::{Metric as CoreMetric, SearchParams};
use parking_lot::RwLock;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address of the public gRPC API (bound to loopback unless configured).
    #[arg(long, env = "FRESHVEC_LISTEN", default_value = "127.0.0.1:7867")]
    pub listen: SocketAddr,
    /// Directory holding the collections.
    #[arg(long, env = "FRESHVEC_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Require `authorization: Bearer KEY` on every call but health checks (off by default).
    #[arg(long, env = "FRESHVEC_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Requests served at once; more are refused at once with RESOURCE_EXHAUSTED.
    #[arg(long, env = "FRESHVEC_MAX_CONCURRENT_REQUESTS", default_value_t = 256)]
    pub max_concurrent_requests: usize,
    /// Longest a request may run; a client's shorter deadline applies as given.
    #[arg(long, env = "FRESHVEC_MAX_REQUEST_SECONDS", default_value_t = 30.0)]
    pub max_request_seconds: f64,
    /// Address of the Prometheus `GET /metrics` endpoint (plain HTTP); "off" disables it.
    #[arg(long, env = "FRESHVEC_METRICS_LISTEN", default_value = "127.0.0.1:9867")]
    pub metrics_listen: String,
}

/// Most points (or ids) in one write.
pub const MAX_BATCH: usize = 10_000;
/// Largest k of a search.
pub const MAX_K: u32 = 1_000;
/// Largest nprobe of a search.
pub const MAX_NPROBE: u32 = 8_192;
/// Largest vector dimension.
pub const MAX_DIMENSION: u32 = 65_536;
/// How much earlier than a client's deadline the server gives up on a request, at least (a
/// quarter of the client's timeout when that is more).
const DEADLINE_MARGIN: Duration = Duration::from_millis(5);
/// Largest request or response message.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The collections of this node.
#[derive(Debug)]
pub struct Catalog {
    dir: PathBuf,
    collections: RwLock<BTreeMap<String, Arc<DurableCollection>>>,
    loaded: AtomicBool,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

/// Maps engine errors to gRPC statuses.
fn status_of(e: DurableError) -> Status {
    match e {
        DurableError::Invalid(CoreError::Overloaded { .. }) => {
            Status::resource_exhausted(e.to_string())
        }
        DurableError::Invalid(e) => Status::invalid_argument(e.to_string()),
        DurableError::Exists(_) => Status::already_exists(e.to_string()),
        DurableError::Journal(_) => Status::unavailable(e.to_string()),
        other => internal(other),
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

impl Catalog {
    /// An empty catalog over `dir`; [`Catalog::load`] opens what is there.
    pub fn new(dir: &Path) -> Catalog {
        Catalog {
            dir: dir.to_path_buf(),
            collections: RwLock::new(BTreeMap::new()),
            loaded: AtomicBool::new(false),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.join("collections")
    }

    /// Opens every collection of the data directory.
    pub fn load(&self) -> Result<usize, DurableError> {
        let root = self.root();
        std::fs::create_dir_all(&root)
            .map_err(|source| DurableError::Io { path: root.display().to_string(), source })?;
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .map_err(|source| DurableError::Io { path: root.display().to_string(), source })?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| check_name("", n).is_ok())
            .collect();
        names.sort();
        let mut map = self.collections.write();
        for name in names {
            let dc = DurableCollection::open(Arc::new(RealFs), &root.join(&name), defaults())?;
            map.insert(name, Arc::new(dc));
        }
        self.loaded.store(true, Ordering::Release);
        Ok(map.len())
    }

    /// Every collection, by name.
    pub fn snapshot(&self) -> Vec<(String, Arc<DurableCollection>)> {
        self.collections.read().iter().map(|(n, c)| (n.clone(), c.clone())).collect()
    }

    fn get(&self, name: &str) -> Result<Arc<DurableCollection>, Status> {
        if !self.loaded.load(Ordering::Acquire) {
            return Err(Status::unavailable("the node is still loading its data"));
        }
        check_name("collection", name)?;
        self.collections
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| Status::not_found(format!("collection {name:?} does not exist")))
    }

    /// Checkpoints every collection (shutdown, TriggerSnapshot).
    pub fn checkpoint_all(&self) -> Result<u64, DurableError> {
        let all: Vec<_> = self.collections.read().values().cloned().collect();
        let mut last = 0;
        for c in all {
            last = last.max(c.checkpoint()?);
        }
        Ok(last)
    }
}

/// Index tunables the server starts every collection with (dimension, metric and encoding
/// come from the request or the collection's directory).
fn defaults() -> IndexParams {
    IndexParams::new(1, CoreMetric::L2)
}

/// Runs blocking engine work until `deadline`; past it the caller gets DEADLINE_EXCEEDED (a
/// write already under way may still be applied, as with any deadline).
async fn blocking<T: Send + 'static>(
    deadline: Instant,
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining.is_zero() {
        return Err(Status::deadline_exceeded("the request's deadline passed"));
    }
    match tokio::time::timeout(remaining, tokio::task::spawn_blocking(f)).await {
        Err(_) => Err(Status::deadline_exceeded("the request's deadline passed")),
        Ok(joined) => joined.map_err(internal)?,
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

/// The gRPC services over one catalog.
#[derive(Debug, Clone)]
pub struct Api {
    catalog: Arc<Catalog>,
    /// Permits for requests in flight.
    limit: Arc<tokio::sync::Semaphore>,
    /// The longest any request may run.
    max_request: Duration,
}

impl Api {
    pub fn new(catalog: Arc<Catalog>, max_concurrent: usize, max_request: Duration) -> Api {
        let limit = Arc::new(tokio::sync::Semaphore::new(max_concurrent.max(1)));
        Api { catalog, limit, max_request }
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

    /// A permit for one request, or RESOURCE_EXHAUSTED at once when all are taken.
    fn admit(&self) -> Result<tokio::sync::OwnedSemaphorePermit, Status> {
        self.limit.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("too many concurrent requests; retry with backoff")
        })
    }
}

/// Checks the bearer token in constant time (no early exit on the first differing byte).
fn authorized(expected: &[u8], header: Option<&[u8]>) -> bool {
    let Some(got) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
        return false;
    };
    let mut diff = (got.len() != expected.len()) as u8;
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ got.get(i).copied().unwrap_or(!e);
    }
    diff == 0
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
        let _permit = self.admit()?;
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
        let mut params = IndexParams::new(r.dimension as usize, metric);
        if let Some(ix) = r.index {
            let set = |v: u32, p: &mut usize| {
                if v > 0 {
                    *p = v as usize;
                }
            };
            set(ix.posting_size, &mut params.posting_size);
            set(ix.split_limit, &mut params.split_limit);
            set(ix.merge_limit, &mut params.merge_limit);
            set(ix.replicas, &mut params.replicas);
            params.replica_candidates = params.replica_candidates.max(params.replicas);
            params.encoding = match Encoding::try_from(ix.encoding) {
                Ok(Encoding::F32) => CoreEncoding::F32,
                Ok(Encoding::Int8) | Ok(Encoding::Unspecified) => CoreEncoding::Int8,
                Err(_) => return Err(Status::invalid_argument("index.encoding: unknown value")),
            };
        }
        let catalog = self.catalog.clone();
        blocking(deadline, move || {
            if !catalog.loaded.load(Ordering::Acquire) {
                return Err(Status::unavailable("the node is still loading its data"));
            }
            let mut map = catalog.collections.write();
            if map.contains_key(&r.name) {
                return Err(Status::already_exists(format!("collection {:?} exists", r.name)));
            }
            let dir = catalog.root().join(&r.name);
            let dc = DurableCollection::create(Arc::new(RealFs), &dir, params, shards)
                .map_err(status_of)?;
            map.insert(r.name, Arc::new(dc));
            Ok(Response::new(CreateCollectionResponse { index: 0 }))
        })
        .await
    }

    async fn drop(
        &self,
        req: Request<DropCollectionRequest>,
    ) -> Result<Response<DropCollectionResponse>, Status> {
        let _permit = self.admit()?;
        let deadline = self.deadline(&req);
        let name = req.into_inner().name;
        self.catalog.get(&name)?;
        let catalog = self.catalog.clone();
        blocking(deadline, move || {
            let removed = catalog.collections.write().remove(&name);
            if removed.is_none() {
                return Err(Status::not_found(format!("collection {name:?} does not exist")));
            }
            let dir = catalog.root().join(&name);
            std::fs::remove_dir_all(&dir).map_err(internal)?;
            std::fs::File::open(catalog.root()).and_then(|d| d.sync_all()).map_err(internal)?;
            Ok(Response::new(DropCollectionResponse { index: 0 }))
        })
        .await
    }

    async fn list(
        &self,
        _req: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        let _permit = self.admit()?;
        let names = self.catalog.collections.read().keys().cloned().collect();
        Ok(Response::new(ListCollectionsResponse { names }))
    }

    async fn describe(
        &self,
        req: Request<DescribeCollectionRequest>,
    ) -> Result<Response<DescribeCollectionResponse>, Status> {
        let _permit = self.admit()?;
        let name = req.into_inner().name;
        let dc = self.catalog.get(&name)?;
        let coll = dc.collection();
        let st = coll.stats();
        Ok(Response::new(DescribeCollectionResponse {
            name,
            dimension: coll.dim() as u32,
            metric: metric_to(coll.metric()) as i32,
            shards: coll.shard_count() as u32,
            encoding: encoding_to(dc.params().encoding) as i32,
            vectors: st.vectors,
            postings: st.postings,
            splits: st.splits,
            merges: st.merges,
            reassigned: st.reassigned,
            pending_jobs: st.pending_jobs,
            memory_bytes: st.memory_bytes,
            applied_index: dc.applied_index(),
        }))
    }
}

/// Checks one vector: its width and its components.
fn check_vector(field: &str, v: &[f32], dim: usize) -> Result<(), Status> {
    if v.len() != dim {
        return Err(Status::invalid_argument(format!(
            "{field}: has {} components, the collection has dimension {dim}",
            v.len()
        )));
    }
    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
        return Err(Status::invalid_argument(format!("{field}[{i}]: NaN or infinite")));
    }
    Ok(())
}

fn check_batch(field: &str, n: usize) -> Result<(), Status> {
    if n == 0 {
        return Err(Status::invalid_argument(format!("{field}: empty batch")));
    }
    if n > MAX_BATCH {
        return Err(Status::invalid_argument(format!(
            "{field}: {n} entries, at most {MAX_BATCH} per request"
        )));
    }
    Ok(())
}

fn check_distinct<'a>(field: &str, ids: impl Iterator<Item = &'a u64>) -> Result<(), Status> {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(*id) {
            return Err(Status::invalid_argument(format!("{field}[{i}]: duplicate id {id}")));
        }
    }
    Ok(())
}

fn search_params(p: Option<SearchParameters>, applied: u64) -> Result<SearchParams, Status> {
    let p = p.unwrap_or_default();
    if p.k == 0 || p.k > MAX_K {
        return Err(Status::invalid_argument(format!(
            "params.k: must be 1..={MAX_K}, got {}",
            p.k
        )));
    }
    if p.nprobe > MAX_NPROBE {
        return Err(Status::invalid_argument(format!(
            "params.nprobe: at most {MAX_NPROBE}, got {}",
            p.nprobe
        )));
    }
    if Consistency::try_from(p.consistency) == Ok(Consistency::MinAppliedIndex)
        && p.min_applied_index > applied
    {
        return Err(Status::failed_precondition(format!(
            "params.min_applied_index: {} is past this node's applied index {applied}",
            p.min_applied_index
        )));
    }
    let mut sp = SearchParams::new(p.k as usize);
    if p.nprobe > 0 {
        sp.nprobe = p.nprobe as usize;
    }
    if p.rerank > 0 {
        sp.rerank = p.rerank as usize;
    }
    sp.exact = p.exact;
    Ok(sp)
}

fn hits(h: Vec<freshvec_core::Hit>, applied: u64) -> SearchResponse {
    SearchResponse {
        hits: h.into_iter().map(|h| Hit { id: h.key, distance: h.dist }).collect(),
        applied_index: applied,
    }
}

#[tonic::async_trait]
impl Points for Api {
    async fn upsert(&self, req: Request<UpsertRequest>) -> Result<Response<WriteResponse>, Status> {
        let _permit = self.admit()?;
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        let dc = self.catalog.get(&r.collection)?;
        check_batch("points", r.points.len())?;
        check_distinct("points.id", r.points.iter().map(|p| &p.id))?;
        let dim = dc.collection().dim();
        let mut ids = Vec::with_capacity(r.points.len());
        let mut vectors = Vec::with_capacity(r.points.len() * dim);
        for (i, p) in r.points.iter().enumerate() {
            check_vector(&format!("points[{i}].vector"), &p.vector, dim)?;
            ids.push(p.id);
            vectors.extend_from_slice(&p.vector);
        }
        let index =
            blocking(deadline, move || dc.apply(&Op::Upsert { ids, vectors }).map_err(status_of))
                .await?;
        Ok(Response::new(WriteResponse { index }))
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<WriteResponse>, Status> {
        let _permit = self.admit()?;
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        let dc = self.catalog.get(&r.collection)?;
        check_batch("ids", r.ids.len())?;
        check_distinct("ids", r.ids.iter())?;
        let ids = r.ids;
        let index =
            blocking(deadline, move || dc.apply(&Op::Delete { ids }).map_err(status_of)).await?;
        Ok(Response::new(WriteResponse { index }))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let _permit = self.admit()?;
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        let dc = self.catalog.get(&r.collection)?;
        check_batch("ids", r.ids.len())?;
        let points = blocking(deadline, move || {
            Ok(r.ids
                .iter()
                .filter_map(|&id| {
                    let v = dc.collection().get(id)?;
                    Some(Point { id, vector: if r.with_vectors { v } else { Vec::new() } })
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
        let _permit = self.admit()?;
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        let dc = self.catalog.get(&r.collection)?;
        check_vector("vector", &r.vector, dc.collection().dim())?;
        let applied = dc.applied_index();
        let sp = search_params(r.params, applied)?;
        // On the blocking pool: with many clients a search running on an async worker holds
        // up the connections it serves (measured on medium with 16 clients: 2,376 qps on the
        // worker, 4,307 on the pool).
        blocking(deadline, move || {
            let h = dc
                .collection()
                .search(&r.vector, &sp)
                .map_err(|e| Status::invalid_argument(format!("vector: {e}")))?;
            Ok(Response::new(hits(h, applied)))
        })
        .await
    }

    async fn search_batch(
        &self,
        req: Request<SearchBatchRequest>,
    ) -> Result<Response<SearchBatchResponse>, Status> {
        let _permit = self.admit()?;
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        let dc = self.catalog.get(&r.collection)?;
        check_batch("queries", r.queries.len())?;
        let dim = dc.collection().dim();
        for (i, q) in r.queries.iter().enumerate() {
            check_vector(&format!("queries[{i}].vector"), &q.vector, dim)?;
        }
        let applied = dc.applied_index();
        let sp = search_params(r.params, applied)?;
        blocking(deadline, move || {
            let mut results = Vec::with_capacity(r.queries.len());
            for (i, q) in r.queries.iter().enumerate() {
                let h = dc
                    .collection()
                    .search(&q.vector, &sp)
                    .map_err(|e| Status::invalid_argument(format!("queries[{i}].vector: {e}")))?;
                results.push(hits(h, applied));
            }
            Ok(Response::new(SearchBatchResponse { results }))
        })
        .await
    }
}

/// An order-independent digest of a collection's live (id, vector) records.
fn digest(dc: &DurableCollection) -> (u64, u64) {
    let mut sum = 0u64;
    let contents = dc.contents();
    for (id, v) in &contents {
        let mut h = crc32fast::Hasher::new();
        h.update(&id.to_le_bytes());
        for x in v {
            h.update(&x.to_le_bytes());
        }
        let x = (h.finalize() as u64) ^ id.rotate_left(32);
        sum = sum.wrapping_add(x.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    }
    (sum, contents.len() as u64)
}

#[tonic::async_trait]
impl Cluster for Api {
    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let _permit = self.admit()?;
        let deadline = self.deadline(&req);
        let catalog = self.catalog.clone();
        blocking(deadline, move || {
            let all: Vec<_> =
                catalog.collections.read().iter().map(|(n, c)| (n.clone(), c.clone())).collect();
            let applied = all.iter().map(|(_, c)| c.applied_index()).max().unwrap_or(0);
            let collections = all
                .iter()
                .map(|(name, c)| {
                    let (digest, vectors) = digest(c);
                    CollectionDigest { name: name.clone(), digest, vectors }
                })
                .collect();
            Ok(Response::new(StatusResponse {
                node_id: 1,
                role: Role::Leader as i32,
                leader_id: 1,
                term: 1,
                last_log_index: applied,
                committed_index: applied,
                applied_index: applied,
                purged_index: 0,
                snapshot_index: 0,
                collections,
                peers: Vec::new(),
            }))
        })
        .await
    }

    async fn trigger_snapshot(
        &self,
        req: Request<TriggerSnapshotRequest>,
    ) -> Result<Response<TriggerSnapshotResponse>, Status> {
        let _permit = self.admit()?;
        let deadline = self.deadline(&req);
        let catalog = self.catalog.clone();
        let snapshot_index =
            blocking(deadline, move || catalog.checkpoint_all().map_err(status_of)).await?;
        Ok(Response::new(TriggerSnapshotResponse { snapshot_index }))
    }

    async fn add_node(
        &self,
        _req: Request<AddNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Err(Status::unimplemented("membership changes need replication, not built yet"))
    }

    async fn remove_node(
        &self,
        _req: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        Err(Status::unimplemented("membership changes need replication, not built yet"))
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
    let catalog = Arc::new(Catalog::new(&args.data_dir));
    let limit = Duration::from_secs_f64(args.max_request_seconds.max(0.001));
    let api = Api::new(catalog.clone(), args.max_concurrent_requests, limit);
    let key: Option<Arc<[u8]>> = args.api_key.as_ref().map(|k| Arc::from(k.as_bytes()));
    let check = move |req: Request<()>| -> Result<Request<()>, Status> {
        match &key {
            Some(k) => {
                let header = req.metadata().get("authorization").map(|v| v.as_bytes());
                if authorized(k, header) {
                    Ok(req)
                } else {
                    Err(Status::unauthenticated("missing or wrong bearer token"))
                }
            }
            None => Ok(req),
        }
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::DESCRIPTOR)
        .build_v1()?;
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter.set_not_serving::<CollectionsServer<Api>>().await;
    reporter.set_not_serving::<PointsServer<Api>>().await;
    reporter.set_service_status("", tonic_health::ServingStatus::NotServing).await;
    // Loading runs beside the server; a failure (a damaged data directory) stops it.
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<String>();
    {
        let catalog = catalog.clone();
        let reporter = reporter.clone();
        tokio::spawn(async move {
            match tokio::task::spawn_blocking(move || catalog.load()).await {
                Ok(Ok(n)) => {
                    eprintln!("freshvec: loaded {n} collections; serving");
                    reporter.set_serving::<CollectionsServer<Api>>().await;
                    reporter.set_serving::<PointsServer<Api>>().await;
                    reporter.set_service_status("", tonic_health::ServingStatus::Serving).await;
                }
                Ok(Err(e)) => drop(failed_tx.send(e.to_string())),
                Err(e) => drop(failed_tx.send(e.to_string())),
            }
        });
    }
    let failure = Arc::new(parking_lot::Mutex::new(None::<String>));
    let stop = {
        let failure = failure.clone();
        async move {
            tokio::select! {
                _ = shutdown_signal() => {},
                Ok(e) = failed_rx => *failure.lock() = Some(e),
            }
        }
    };
    let metrics = Arc::new(crate::metrics::Metrics::default());
    if args.metrics_listen != "off" {
        let listener = tokio::net::TcpListener::bind(&args.metrics_listen).await?;
        eprintln!("freshvec: metrics on http://{}/metrics", listener.local_addr()?);
        tokio::spawn(crate::metrics::serve_http(listener, metrics.clone(), catalog.clone()));
    }
    eprintln!("freshvec: listening on {} (data in {})", args.listen, args.data_dir.display());
    tonic::transport::Server::builder()
        .layer(crate::metrics::MetricsLayer(metrics))
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
            ClusterServer::new(api),
            check,
        ))
        .serve_with_shutdown(args.listen, stop)
        .await?;
    if let Some(e) = failure.lock().take() {
        anyhow::bail!("loading the data directory failed: {e}");
    }
    eprintln!("freshvec: shutting down; checkpointing");
    tokio::task::spawn_blocking(move || catalog.checkpoint_all()).await??;
    eprintln!("freshvec: stopped");
    Ok(())
}
