//! The public gRPC API over one node: the services (one module each: `collections`,
//! `points`, `cluster`), the conversions and checks of payloads and filters (`payload`), and
//! what they share here: deadlines, the replica a request names, writes through the log,
//! read consistency, and the request bounds. Every check of a request happens before anything
//! is logged, so a refused request changes nothing.

mod cluster;
mod collections;
pub mod payload;
mod points;

pub use cluster::status_of;

use crate::proto::*;
use crate::serve::Loaded;
use freshvec_core::{Encoding as CoreEncoding, IndexParams};
use freshvec_core::{Metric as CoreMetric, SearchParams};
use freshvec_replication::node::{Node, NodeError};
use freshvec_replication::state::Replica;
use freshvec_replication::{Applied, Command, Outcome};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Request, Status};

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

pub(crate) fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

pub(crate) fn node_status(e: NodeError) -> Status {
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

pub(crate) fn check_name(field: &str, name: &str) -> Result<(), Status> {
    let ok = (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!("{field}: must match [A-Za-z0-9_-]{{1,64}}")))
    }
}

/// Runs blocking engine work until `deadline`; past it the caller gets DEADLINE_EXCEEDED.
pub(crate) async fn blocking<T: Send + 'static>(
    deadline: Instant,
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    within(deadline, async { tokio::task::spawn_blocking(f).await.map_err(internal)? }).await
}

/// Runs `f` until `deadline`; past it the caller gets DEADLINE_EXCEEDED (a write already
/// under way may still be applied, as with any deadline).
pub(crate) async fn within<T>(
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
