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

use crate::api::{Api, MAX_MESSAGE_BYTES};
use crate::proto::cluster_server::ClusterServer;
use crate::proto::collections_server::CollectionsServer;
use crate::proto::points_server::PointsServer;
use clap::Args;
use freshvec_replication::network::secret_matches;
use freshvec_replication::node::{Node, NodeConfig};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tonic::{Request, Status};

pub use crate::api::{encoding_to, metric_to, status_of, MAX_BATCH};

/// The node, once it has loaded.
pub type Loaded = Arc<OnceLock<Node>>;

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
