//! The client subcommands of the `freshvec` binary: they talk to a running server over the
//! public API. Exit codes a shell can rely on: 0 success, 1 the server refused or failed the
//! request (the gRPC code and message are printed), 2 bad usage, 3 no server reachable.

use crate::proto::cluster_client::ClusterClient;
use crate::proto::collections_client::CollectionsClient;
use crate::proto::points_client::PointsClient;
use crate::proto::*;
use crate::serve::{encoding_to, metric_to};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use tonic::transport::Channel;

/// `println!` for the client commands, for output read by another program: see [`emit`].
macro_rules! out {
    ($($arg:tt)*) => {
        emit(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to standard output; when the reader is gone (`| head`, `| grep -q`), the command
/// ends quietly with exit 0, as Unix filters do, instead of panicking on the broken pipe.
fn emit(text: std::fmt::Arguments) {
    use std::io::Write as _;
    match std::io::stdout().lock().write_fmt(text) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: writing to standard output: {e}");
            std::process::exit(1)
        }
    }
}

/// Where the server is and how to call it.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The server's public API, HOST:PORT.
    #[arg(long, env = "FRESHVEC_SERVER", default_value = "127.0.0.1:7867", global = true)]
    pub server: String,
    /// Bearer token, if the server requires one.
    #[arg(long, env = "FRESHVEC_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,
    /// Connect over TLS, trusting this CA certificate (PEM); the server's name is the host
    /// part of --server.
    #[arg(long, env = "FRESHVEC_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum CollectionsCmd {
    /// Create a collection.
    Create {
        name: String,
        #[arg(long)]
        dimension: u32,
        /// l2, dot or cosine.
        #[arg(long, default_value = "l2")]
        metric: String,
        #[arg(long, default_value_t = 1)]
        shards: u32,
        /// int8 or f32.
        #[arg(long, default_value = "int8")]
        encoding: String,
    },
    /// List collection names.
    List,
    /// Show a collection's shape and statistics.
    Describe { name: String },
    /// Drop a collection and its data.
    Drop { name: String },
}

#[derive(Args, Debug)]
pub struct UpsertArgs {
    #[arg(long)]
    pub collection: String,
    /// TEXMEX .fvecs file; row i gets id `first_id + i`.
    #[arg(long)]
    pub fvecs: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub first_id: u64,
    /// Points per request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Upsert only the first this many rows of the file.
    #[arg(long)]
    pub limit: Option<usize>,
    /// A JSON-lines file of payloads, line i (a JSON object) for row i of the fvecs.
    #[arg(long)]
    pub payloads: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    #[arg(long)]
    pub collection: String,
    /// The query, comma-separated.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub vector: Vec<f32>,
    #[arg(long, default_value_t = 10)]
    pub k: u32,
    /// Postings probed per shard (0: the depth the shard's calibration gives for the target).
    #[arg(long, default_value_t = 0)]
    pub nprobe: u32,
    /// The recall@10 to aim for, in (0, 1] (0: the server's default, 0.95).
    #[arg(long, default_value_t = 0.0, conflicts_with = "nprobe")]
    pub target_recall: f32,
    #[arg(long)]
    pub exact: bool,
    /// Only points matching this filter (JSON in Qdrant's shape; see `freshvec_server::json`),
    /// e.g. '{"must": [{"key": "tag", "match": {"value": "a"}}]}'.
    #[arg(long)]
    pub filter: Option<String>,
    /// Print each hit's payload.
    #[arg(long)]
    pub with_payload: bool,
}

#[derive(Args, Debug)]
pub struct ScrollArgs {
    #[arg(long)]
    pub collection: String,
    /// Only points matching this filter (as for search).
    #[arg(long)]
    pub filter: Option<String>,
    /// The id to start at.
    #[arg(long)]
    pub offset: Option<u64>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Print each point's payload.
    #[arg(long)]
    pub with_payload: bool,
}

#[derive(Args, Debug)]
pub struct CountArgs {
    #[arg(long)]
    pub collection: String,
    /// Only points matching this filter (as for search).
    #[arg(long)]
    pub filter: Option<String>,
}

/// The `--filter` of a command, parsed.
fn parse_filter(f: &Option<String>) -> Result<Option<Filter>, Failure> {
    let Some(text) = f else { return Ok(None) };
    let bad = |e: String| Failure { code: 2, message: format!("--filter: {e}") };
    let j: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    crate::json::filter(&j).map(Some).map_err(bad)
}

/// Reads a JSON-lines payload file: one object per line.
fn read_payloads(path: &std::path::Path) -> Result<Vec<Struct>, Failure> {
    let bad =
        |e: String| Failure { code: 2, message: format!("--payloads {}: {e}", path.display()) };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let j: serde_json::Value =
                serde_json::from_str(line).map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
            let fields =
                crate::json::payload(&j).map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
            Ok(Struct { fields })
        })
        .collect()
}

/// A failure with the exit code it maps to.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl From<tonic::Status> for Failure {
    fn from(s: tonic::Status) -> Failure {
        Failure { code: 1, message: format!("{:?}: {}", s.code(), s.message()) }
    }
}

async fn channel(conn: &Conn) -> Result<Channel, Failure> {
    let scheme = if conn.tls_ca.is_some() { "https" } else { "http" };
    let url = if conn.server.contains("://") {
        conn.server.clone()
    } else {
        format!("{scheme}://{}", conn.server)
    };
    let usage = |m: String| Failure { code: 2, message: m };
    let mut endpoint =
        Channel::from_shared(url.clone()).map_err(|e| usage(format!("--server {url}: {e}")))?;
    if let Some(ca) = &conn.tls_ca {
        let pem =
            std::fs::read(ca).map_err(|e| usage(format!("--tls-ca {}: {e}", ca.display())))?;
        let host = endpoint.uri().host().unwrap_or("localhost").to_string();
        let tls = tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(pem))
            .domain_name(host);
        endpoint = endpoint.tls_config(tls).map_err(|e| usage(format!("--tls-ca: {e}")))?;
    }
    endpoint
        .connect()
        .await
        .map_err(|e| Failure { code: 3, message: format!("cannot reach {url}: {e}") })
}

fn request<T>(conn: &Conn, msg: T) -> Result<tonic::Request<T>, Failure> {
    let mut req = tonic::Request::new(msg);
    if let Some(key) = &conn.api_key {
        let value = format!("Bearer {key}")
            .parse()
            .map_err(|_| Failure { code: 2, message: "--api-key: not a valid header".into() })?;
        req.metadata_mut().insert("authorization", value);
    }
    Ok(req)
}

fn metric(s: &str) -> Result<Metric, Failure> {
    freshvec_core::Metric::parse(s)
        .map(metric_to)
        .ok_or_else(|| Failure { code: 2, message: format!("--metric {s}: use l2, dot or cosine") })
}

/// Runs a client command on its own runtime; returns the process exit code.
pub fn run(cmd: impl std::future::Future<Output = Result<(), Failure>>) -> i32 {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    match rt.block_on(cmd) {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("error: {}", f.message);
            f.code
        }
    }
}

pub async fn collections(conn: Conn, cmd: CollectionsCmd) -> Result<(), Failure> {
    let mut c = CollectionsClient::new(channel(&conn).await?);
    match cmd {
        CollectionsCmd::Create { name, dimension, metric: m, shards, encoding } => {
            let encoding =
                freshvec_core::Encoding::parse(&encoding).map(encoding_to).ok_or_else(|| {
                    Failure { code: 2, message: format!("--encoding {encoding}: use int8 or f32") }
                })?;
            let msg = CreateCollectionRequest {
                name: name.clone(),
                dimension,
                metric: metric(&m)? as i32,
                shards,
                index: Some(IndexParameters { encoding: encoding as i32, ..Default::default() }),
            };
            c.create(request(&conn, msg)?).await?;
            out!("created {name}");
        }
        CollectionsCmd::List => {
            for name in c.list(request(&conn, ListCollectionsRequest {})?).await?.into_inner().names
            {
                out!("{name}");
            }
        }
        CollectionsCmd::Describe { name } => {
            let d = c.describe(request(&conn, DescribeCollectionRequest { name })?).await?;
            let d = d.into_inner();
            let metric = Metric::try_from(d.metric).map_or("?", |m| m.as_str_name());
            let encoding = Encoding::try_from(d.encoding).map_or("?", |e| e.as_str_name());
            out!("name           {}", d.name);
            out!("dimension      {}", d.dimension);
            out!("metric         {metric}");
            out!("encoding       {encoding}");
            out!("shards         {}", d.shards);
            out!("vectors        {}", d.vectors);
            out!("postings       {}", d.postings);
            out!("splits         {}", d.splits);
            out!("merges         {}", d.merges);
            out!("reassigned     {}", d.reassigned);
            out!("pending jobs   {}", d.pending_jobs);
            out!("memory         {:.1} MiB", d.memory_bytes as f64 / 1048576.0);
            out!("applied index  {}", d.applied_index);
            if d.calibrated_shards == 0 {
                out!("calibration    not yet measured");
            } else {
                out!(
                    "calibration    {} shards, {} sampled queries: default nprobe {}, estimated recall@10 {:.3}",
                    d.calibrated_shards, d.calibration_queries, d.default_nprobe, d.estimated_recall
                );
                let curve: Vec<String> =
                    d.calibration.iter().map(|p| format!("{}:{:.3}", p.nprobe, p.recall)).collect();
                out!("recall curve   {}", curve.join(" "));
            }
        }
        CollectionsCmd::Drop { name } => {
            c.drop(request(&conn, DropCollectionRequest { name: name.clone() })?).await?;
            out!("dropped {name}");
        }
    }
    Ok(())
}

pub async fn upsert(conn: Conn, a: UpsertArgs) -> Result<(), Failure> {
    let (dim, mut data) = freshvec_core::texmex::read_fvecs(&a.fvecs)
        .map_err(|e| Failure { code: 2, message: format!("--fvecs {}: {e}", a.fvecs.display()) })?;
    if let Some(limit) = a.limit {
        data.truncate(limit * dim);
    }
    let payloads = match &a.payloads {
        Some(path) => {
            let p = read_payloads(path)?;
            if p.len() < data.len() / dim.max(1) {
                return Err(Failure {
                    code: 2,
                    message: format!(
                        "--payloads: {} lines for {} rows",
                        p.len(),
                        data.len() / dim.max(1)
                    ),
                });
            }
            Some(std::sync::Arc::new(p))
        }
        None => None,
    };
    let client = PointsClient::new(channel(&conn).await?)
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let rows = data.len() / dim.max(1);
    let bar = ProgressBar::new(rows as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar.set_message("upsert");
    let batch = a.batch.clamp(1, crate::serve::MAX_BATCH);
    let batches = rows.div_ceil(batch);
    let data = std::sync::Arc::new(data);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = std::time::Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..a.concurrency.max(1) {
        let (mut p, data, next, bar, conn) =
            (client.clone(), data.clone(), next.clone(), bar.clone(), conn.clone());
        let payloads = payloads.clone();
        let (collection, first_id) = (a.collection.clone(), a.first_id);
        workers.spawn(async move {
            let mut last = 0;
            loop {
                let b = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if b >= batches {
                    return Ok::<u64, Failure>(last);
                }
                let rows = &data[b * batch * dim..((b + 1) * batch * dim).min(data.len())];
                let points = rows
                    .chunks_exact(dim)
                    .enumerate()
                    .map(|(i, v)| Point {
                        id: first_id + (b * batch + i) as u64,
                        vector: v.to_vec(),
                        payload: payloads
                            .as_ref()
                            .map(|p| p[b * batch + i].fields.clone())
                            .unwrap_or_default(),
                        ..Default::default()
                    })
                    .collect::<Vec<_>>();
                let n = points.len();
                let msg =
                    UpsertRequest { collection: collection.clone(), points, ..Default::default() };
                last = last.max(p.upsert(request(&conn, msg)?).await?.into_inner().index);
                bar.inc(n as u64);
            }
        });
    }
    let mut last = 0;
    while let Some(r) = workers.join_next().await {
        last = last.max(r.map_err(|e| Failure { code: 1, message: e.to_string() })??);
    }
    let secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    out!(
        "upserted {rows} points into {} in {secs:.2} s ({:.0} vectors/s; last log index {last})",
        a.collection,
        rows as f64 / secs
    );
    Ok(())
}

pub async fn search(conn: Conn, a: SearchArgs) -> Result<(), Failure> {
    let mut p = PointsClient::new(channel(&conn).await?);
    let params = SearchParameters {
        k: a.k,
        nprobe: a.nprobe,
        target_recall: a.target_recall,
        exact: a.exact,
        ..Default::default()
    };
    let msg = SearchRequest {
        collection: a.collection,
        vector: a.vector,
        params: Some(params),
        filter: parse_filter(&a.filter)?,
        with_payload: a.with_payload.then(|| WithPayload { enable: true, ..Default::default() }),
        ..Default::default()
    };
    let r = p.search(request(&conn, msg)?).await?.into_inner();
    out!("{:>6}  {:>20}  {:>14}", "rank", "id", "distance");
    for (i, h) in r.hits.iter().enumerate() {
        let payload = match a.with_payload {
            true => format!("  {}", crate::json::payload_json(&h.payload)),
            false => String::new(),
        };
        out!("{:>6}  {:>20}  {:>14.6}{payload}", i + 1, h.id, h.distance);
    }
    if let Some(plan) = r.plan {
        let strategy = FilterStrategy::try_from(plan.strategy).map_or("?", |s| s.as_str_name());
        out!(
            "filter: {} matched, {strategy}, {} postings and {} members scanned",
            plan.matched,
            plan.postings,
            plan.scanned
        );
    }
    Ok(())
}

/// Prints one page of points in id order, and where the next starts.
pub async fn scroll(conn: Conn, a: ScrollArgs) -> Result<(), Failure> {
    let mut p = PointsClient::new(channel(&conn).await?);
    let msg = ScrollRequest {
        collection: a.collection,
        filter: parse_filter(&a.filter)?,
        offset: a.offset,
        limit: a.limit,
        with_payload: a.with_payload.then(|| WithPayload { enable: true, ..Default::default() }),
        ..Default::default()
    };
    let r = p.scroll(request(&conn, msg)?).await?.into_inner();
    for pt in &r.points {
        match a.with_payload {
            true => out!("{}  {}", pt.id, crate::json::payload_json(&pt.payload)),
            false => out!("{}", pt.id),
        }
    }
    if let Some(next) = r.next_page_offset {
        out!("next page: --offset {next}");
    }
    Ok(())
}

/// Prints the exact number of points (matching the filter).
pub async fn count(conn: Conn, a: CountArgs) -> Result<(), Failure> {
    let mut p = PointsClient::new(channel(&conn).await?);
    let msg = CountRequest {
        collection: a.collection,
        filter: parse_filter(&a.filter)?,
        ..Default::default()
    };
    out!("{}", p.count(request(&conn, msg)?).await?.into_inner().count);
    Ok(())
}

/// Exits 0 when the node's health service reports SERVING, 1 otherwise (for container health
/// checks: an image without a shell runs this).
pub async fn health(conn: Conn, service: String) -> Result<(), Failure> {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    let mut h = HealthClient::new(channel(&conn).await?);
    let mut req = tonic::Request::new(HealthCheckRequest { service });
    req.set_timeout(std::time::Duration::from_secs(3));
    let status = h.check(req).await?.into_inner().status;
    if status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
        out!("SERVING");
        Ok(())
    } else {
        Err(Failure { code: 1, message: "NOT_SERVING".into() })
    }
}

/// Prints the node's replication status; with `watch`, again every that many seconds.
pub async fn status(conn: Conn, watch: Option<f64>) -> Result<(), Failure> {
    let mut c = ClusterClient::new(channel(&conn).await?);
    loop {
        let s = c.status(request(&conn, StatusRequest {})?).await?.into_inner();
        if watch.is_some() {
            emit(format_args!("\x1b[2J\x1b[H"));
        }
        print_status(&s);
        match watch {
            None => return Ok(()),
            Some(secs) => {
                tokio::time::sleep(std::time::Duration::from_secs_f64(secs.max(0.1))).await
            }
        }
    }
}

fn print_status(s: &StatusResponse) {
    let role = Role::try_from(s.role).map_or("?", |r| r.as_str_name());
    out!(
        "node {} ({})  role {role}  leader {}  term {}  voters {:?}",
        s.node_id,
        s.address,
        s.leader_id,
        s.term,
        s.voters
    );
    out!(
        "log: last {}  committed {}  applied {}  purged {}  snapshot {}  first held {}",
        s.last_log_index,
        s.committed_index,
        s.applied_index,
        s.purged_index,
        s.snapshot_index,
        s.first_log_index
    );
    out!(
        "snapshots: installed {}  receiving now {}  last install {} ms",
        s.snapshots_installed,
        s.snapshot_transfers_in_progress,
        s.last_snapshot_install_ms
    );
    if !s.peers.is_empty() {
        out!("{:<6} {:<24} {:>6} {:>12} {:>10}", "peer", "address", "voter", "matched", "lag");
        for p in &s.peers {
            out!(
                "{:<6} {:<24} {:>6} {:>12} {:>10}",
                p.node_id,
                p.address,
                p.voter,
                p.matched_index,
                p.lag
            );
        }
    }
    out!("{:<24} {:>12} {:>18}", "collection", "vectors", "digest");
    for c in &s.collections {
        out!("{:<24} {:>12} {:>18x}", c.name, c.vectors, c.digest);
    }
}

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Write a snapshot now (on the node asked).
    Snapshot,
    /// Purge the node's log up to an index (default: its snapshot's index).
    Purge {
        #[arg(long, default_value_t = 0)]
        upto: u64,
    },
    /// Add a node (send to the leader): learner first, then voter once caught up.
    AddNode {
        #[arg(long)]
        id: u64,
        /// The new node's peer-service address, HOST:PORT.
        #[arg(long)]
        address: String,
    },
    /// Remove a voter (send to the leader).
    RemoveNode {
        #[arg(long)]
        id: u64,
    },
}

/// Runs a cluster operation.
pub async fn cluster(conn: Conn, cmd: ClusterCmd) -> Result<(), Failure> {
    let mut c = ClusterClient::new(channel(&conn).await?);
    match cmd {
        ClusterCmd::Snapshot => {
            let r = c.trigger_snapshot(request(&conn, TriggerSnapshotRequest {})?).await?;
            out!("snapshot at index {}", r.into_inner().snapshot_index);
        }
        ClusterCmd::Purge { upto } => {
            let r = c.purge_log(request(&conn, PurgeLogRequest { upto })?).await?;
            out!("log purged up to index {}", r.into_inner().purged_index);
        }
        ClusterCmd::AddNode { id, address } => {
            let r = c.add_node(request(&conn, AddNodeRequest { node_id: id, address })?).await?;
            let m = r.into_inner();
            out!("voters {:?}  learners {:?}", m.voters, m.learners);
        }
        ClusterCmd::RemoveNode { id } => {
            let r = c.remove_node(request(&conn, RemoveNodeRequest { node_id: id })?).await?;
            let m = r.into_inner();
            out!("voters {:?}  learners {:?}", m.voters, m.learners);
        }
    }
    Ok(())
}
