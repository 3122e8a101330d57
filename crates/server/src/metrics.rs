//! Prometheus metrics: request counts by method and status code and latency histograms by
//! method (a tower layer around the gRPC services), per-collection gauges (vectors, postings,
//! background jobs, memory), Raft gauges (term, leader, log, applied, snapshot and purged
//! indexes, follower lag) and the Raft log's fsync latency, served as text at
//! `GET /metrics` on their own HTTP listener.

use crate::serve::Loaded;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Upper bounds (seconds) of the request latency buckets.
const BUCKETS: [f64; 12] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [u64; 12],
    count: u64,
    sum: f64,
}

/// Request metrics, by gRPC method.
#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<BTreeMap<(String, i32), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
}

impl Metrics {
    /// Counts one call of `method` (an RPC's name, whichever transport carried it).
    pub(crate) fn observe(&self, method: &str, code: i32, took: Duration) {
        *self.counts.lock().entry((method.to_string(), code)).or_default() += 1;
        let mut l = self.latency.lock();
        let h = l.entry(method.to_string()).or_default();
        let secs = took.as_secs_f64();
        for (b, le) in h.buckets.iter_mut().zip(BUCKETS) {
            if secs <= le {
                *b += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// The text exposition of every metric.
    pub fn render(&self, loaded: &Loaded) -> String {
        let mut out = String::new();
        out.push_str("# TYPE freshvec_requests_total counter\n");
        for ((method, code), n) in self.counts.lock().iter() {
            let _ =
                writeln!(out, "freshvec_requests_total{{method=\"{method}\",code=\"{code}\"}} {n}");
        }
        out.push_str("# TYPE freshvec_request_seconds histogram\n");
        for (method, h) in self.latency.lock().iter() {
            for (le, n) in BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "freshvec_request_seconds_bucket{{method=\"{method}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "freshvec_request_seconds_bucket{{method=\"{method}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "freshvec_request_seconds_sum{{method=\"{method}\"}} {}", h.sum);
            let _ =
                writeln!(out, "freshvec_request_seconds_count{{method=\"{method}\"}} {}", h.count);
        }
        let Some(node) = loaded.get() else { return out };
        let collections = node.state.collections();
        for (name, help) in [
            ("vectors", "live vectors"),
            ("postings", "postings"),
            ("pending_jobs", "background rebalancing jobs queued or running"),
            ("memory_bytes", "heap bytes of the index"),
        ] {
            let _ = writeln!(out, "# HELP freshvec_{name} {help}\n# TYPE freshvec_{name} gauge");
            for r in &collections {
                let st = r.coll().stats();
                let v = match name {
                    "vectors" => st.vectors,
                    "postings" => st.postings,
                    "pending_jobs" => st.pending_jobs,
                    _ => st.memory_bytes,
                };
                let _ = writeln!(out, "freshvec_{name}{{collection=\"{}\"}} {v}", r.name);
            }
        }
        let st = crate::serve::status_of(node);
        let cp = node.state.snapshot_stats();
        for (name, help, v) in [
            ("raft_term", "current Raft term", st.term),
            ("raft_is_leader", "1 on the leader", (st.node_id == st.leader_id) as u64),
            ("raft_last_log_index", "index of the last log entry", st.last_log_index),
            ("applied_index", "log index of the last applied entry", st.applied_index),
            ("raft_snapshot_index", "log index the snapshot covers", st.snapshot_index),
            ("raft_purged_index", "last purged log index", st.purged_index),
            ("snapshots_installed", "snapshots received and installed", st.snapshots_installed),
            (
                "checkpoint_cut_microseconds",
                "how long the last checkpoint held applies",
                cp.last_cut_us,
            ),
            (
                "checkpoint_build_milliseconds",
                "how long the last checkpoint took to write",
                cp.last_build_ms,
            ),
            (
                "checkpoint_bytes",
                "bytes the last checkpoint wrote (vector files are fsynced, not copied)",
                cp.last_build_bytes,
            ),
        ] {
            let _ = writeln!(out, "# HELP freshvec_{name} {help}\n# TYPE freshvec_{name} gauge");
            let _ = writeln!(out, "freshvec_{name} {v}");
        }
        // The family is declared even without followers (a single node, a follower), so that
        // its name is always on the page.
        out.push_str("# HELP freshvec_raft_follower_lag leader's last log index minus the follower's matched index\n# TYPE freshvec_raft_follower_lag gauge\n");
        for p in &st.peers {
            let _ = writeln!(out, "freshvec_raft_follower_lag{{node=\"{}\"}} {}", p.node_id, p.lag);
        }
        out.push_str("# TYPE freshvec_journal_fsync_seconds histogram\n");
        let f = node.log.fsync_stats();
        let buckets = freshvec_core::storage::journal::FSYNC_BUCKETS;
        for (le, b) in buckets.iter().zip(&f.buckets) {
            let n = b.load(Ordering::Relaxed);
            let _ = writeln!(out, "freshvec_journal_fsync_seconds_bucket{{le=\"{le}\"}} {n}");
        }
        let count = f.count.load(Ordering::Relaxed);
        let sum = f.nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "freshvec_journal_fsync_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "freshvec_journal_fsync_seconds_sum {sum}");
        let _ = writeln!(out, "freshvec_journal_fsync_seconds_count {count}");
        out
    }
}

/// The methods the node serves; any other path is counted as "other", so that requests
/// for made-up methods cannot grow the metrics without bound.
const METHODS: [&str; 17] = [
    "freshvec.v1.Collections/Create",
    "freshvec.v1.Collections/Drop",
    "freshvec.v1.Collections/List",
    "freshvec.v1.Collections/Describe",
    "freshvec.v1.Points/Upsert",
    "freshvec.v1.Points/Delete",
    "freshvec.v1.Points/Get",
    "freshvec.v1.Points/Search",
    "freshvec.v1.Points/SearchBatch",
    "freshvec.v1.Cluster/Status",
    "freshvec.v1.Cluster/TriggerSnapshot",
    "freshvec.v1.Cluster/AddNode",
    "freshvec.v1.Cluster/RemoveNode",
    "freshvec.v1.Cluster/PurgeLog",
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
];

/// The metrics label of a request path.
fn method_label(path: &str) -> &str {
    let m = path.trim_start_matches('/');
    METHODS.iter().find(|k| **k == m).copied().unwrap_or("other")
}

/// Records every gRPC call's method, status code and time to its response headers.
#[derive(Debug, Clone)]
pub struct MetricsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> MetricsService<S> {
        MetricsService { inner, metrics: self.0.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B, R> tower::Service<http::Request<B>> for MetricsService<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    R: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<S::Response, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = method_label(req.uri().path()).to_string();
        let start = Instant::now();
        let fut = self.inner.call(req);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let r = fut.await;
            // An error status before any response comes in the headers (trailers-only).
            let code = match &r {
                Ok(resp) => resp
                    .headers()
                    .get("grpc-status")
                    .and_then(|v| v.to_str().ok()?.parse().ok())
                    .unwrap_or(0),
                Err(_) => 2,
            };
            metrics.observe(&method, code, start.elapsed());
            r
        })
    }
}

/// Serves `GET /metrics` on `listener` until the process ends.
pub async fn serve_http(listener: tokio::net::TcpListener, metrics: Arc<Metrics>, loaded: Loaded) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            // Out of file descriptors, say: back off rather than spin on the error.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (metrics, loaded) = (metrics.clone(), loaded.clone());
        // A client that never finishes its request is dropped after a few seconds.
        tokio::spawn(tokio::time::timeout(Duration::from_secs(5), async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            while n < buf.len() {
                match sock.read(&mut buf[n..]).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let (status, body) = if buf[..n].starts_with(b"GET /metrics") {
                ("200 OK", metrics.render(&loaded))
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
            let _ = sock.shutdown().await;
        }));
    }
}
