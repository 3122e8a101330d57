//! The harness the multi-process cluster tests share: nodes as real `freshvec serve`
//! processes, each on its own loopback address (127.0.0.11, .12, ...), and small gRPC helpers.
#![allow(dead_code)]

pub mod python;

use freshvec_server::proto::cluster_client::ClusterClient;
use freshvec_server::proto::collections_client::CollectionsClient;
use freshvec_server::proto::points_client::PointsClient;
use freshvec_server::proto::*;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::Code;

/// Tests take turns: each starts several servers on free ports.
pub static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub const DIM: usize = 16;

/// splitmix64: a seeded generator for vectors and choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    pub fn vector(&mut self) -> Vec<f32> {
        (0..DIM).map(|_| self.f32()).collect()
    }
}

pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0)).unwrap().local_addr().unwrap().port()
}

/// One node: its addresses, data directory and process.
pub struct NodeProc {
    pub id: u64,
    pub ip: String,
    pub api: u16,
    pub peer: u16,
    pub dir: PathBuf,
    pub child: Option<Child>,
    /// The network namespace the node runs in (none: the host's).
    pub netns: Option<String>,
    /// Extra environment for the next start (a failpoint, say).
    pub env: Vec<(String, String)>,
}

impl NodeProc {
    pub fn url(&self) -> String {
        format!("http://{}:{}", self.ip, self.api)
    }

    pub fn peer_addr(&self) -> String {
        format!("{}:{}", self.ip, self.peer)
    }

    pub fn start(&mut self, peers: &str, extra: &[&str]) {
        assert!(self.child.is_none(), "node {} already running", self.id);
        // Each run appends, so a run that stopped keeps its reason beside the next one's.
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .unwrap();
        std::io::Write::write_all(&mut log, b"--- start ---\n").unwrap();
        let bin = env!("CARGO_BIN_EXE_freshvec");
        let mut cmd = match &self.netns {
            // `ip netns exec` execs the binary: the child's pid is the server's.
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let child = cmd
            .args(["serve", "--node-id", &self.id.to_string()])
            .args(["--listen", &format!("{}:{}", self.ip, self.api)])
            .args(["--peer-listen", &self.peer_addr()])
            .args(["--peers", peers, "--metrics-listen", "off"])
            .arg("--data-dir")
            .arg(&self.dir)
            .args(extra)
            .env("FRESHVEC_LOG", "info,openraft=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stderr(log)
            .spawn()
            .expect("starting a node");
        self.child = Some(child);
    }

    /// Waits until the process exits on its own (a failpoint aborted it), at most `secs`;
    /// whether it did.
    pub fn wait_exit(&mut self, secs: u64) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(c) = self.child.as_mut() {
                if c.try_wait().ok().flatten().is_some() {
                    self.child = None;
                    return true;
                }
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

pub struct Cluster {
    pub nodes: Vec<NodeProc>,
    pub root: PathBuf,
    pub extra: Vec<String>,
}

impl Cluster {
    /// `n` nodes prepared (not started) under a fresh directory.
    pub fn new(name: &str, n: u64, extra: &[&str]) -> Cluster {
        let root =
            std::env::temp_dir().join(format!("freshvec-cluster-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let nodes = (1..=n)
            .map(|id| {
                let ip = format!("127.0.0.{}", 10 + id);
                NodeProc {
                    id,
                    api: free_port(&ip),
                    peer: free_port(&ip),
                    ip,
                    dir: root.join(format!("node{id}")),
                    child: None,
                    netns: None,
                    env: Vec::new(),
                }
            })
            .collect();
        Cluster { nodes, root, extra: extra.iter().map(|s| s.to_string()).collect() }
    }

    /// Like [`Cluster::new`], but node `id` runs in the network namespace `netns[id - 1]` at
    /// the address `ips[id - 1]` (fixed ports: each namespace has its own).
    pub fn in_namespaces(name: &str, netns: &[String], ips: &[String], extra: &[&str]) -> Cluster {
        let mut c = Cluster::new(name, 0, extra);
        c.nodes = (1..=netns.len() as u64)
            .map(|id| NodeProc {
                id,
                ip: ips[id as usize - 1].clone(),
                api: 7867,
                peer: 7868,
                dir: c.root.join(format!("node{id}")),
                child: None,
                netns: Some(netns[id as usize - 1].clone()),
                env: Vec::new(),
            })
            .collect();
        c
    }

    pub fn node(&mut self, id: u64) -> &mut NodeProc {
        &mut self.nodes[id as usize - 1]
    }

    /// `--peers` for the given members.
    pub fn peers(&self, ids: &[u64]) -> String {
        ids.iter()
            .map(|&id| format!("{id}={}", self.nodes[id as usize - 1].peer_addr()))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn start(&mut self, id: u64, members: &[u64]) {
        let peers = self.peers(members);
        let extra: Vec<String> = self.extra.clone();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        self.node(id).start(&peers, &extra);
    }

    pub fn url(&self, id: u64) -> String {
        self.nodes[id as usize - 1].url()
    }

    /// Prints each node's log (on failure, for diagnosis): why any run of it stopped, then
    /// its last lines.
    pub fn dump_logs(&self) {
        for n in &self.nodes {
            if let Ok(s) = std::fs::read_to_string(n.dir.with_extension("log")) {
                let stops = ["ERROR", "panicked", "failpoint", "Error:"];
                let why: Vec<&str> =
                    s.lines().filter(|l| stops.iter().any(|m| l.contains(m))).take(20).collect();
                eprintln!("--- node {} log: errors and stops (first 20) ---", n.id);
                for l in why {
                    eprintln!("{l}");
                }
                let tail: Vec<&str> = s.lines().rev().take(30).collect();
                eprintln!("--- node {} log (last lines, newest first) ---", n.id);
                for l in tail {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        } else {
            self.dump_logs();
        }
    }
}

pub async fn channel(url: &str) -> Option<Channel> {
    let ep =
        Channel::from_shared(url.to_string()).ok()?.connect_timeout(Duration::from_millis(500));
    tokio::time::timeout(Duration::from_secs(2), ep.connect()).await.ok()?.ok()
}

pub async fn status(url: &str) -> Option<StatusResponse> {
    let mut c = ClusterClient::new(channel(url).await?);
    let mut req = tonic::Request::new(StatusRequest {});
    req.set_timeout(Duration::from_secs(2));
    Some(c.status(req).await.ok()?.into_inner())
}

/// Polls `check` until it holds, failing after `secs` seconds.
#[macro_export]
macro_rules! wait_until {
    ($secs:expr, $what:expr, $check:expr) => {{
        let deadline = Instant::now() + Duration::from_secs($secs);
        loop {
            if $check {
                break;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {}", $what);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

/// The leader as `ids` see it, once they all agree and it answers as leader.
pub async fn leader(c: &Cluster, ids: &[u64], secs: u64) -> u64 {
    let mut found = 0;
    wait_until!(secs, "a leader all nodes agree on", {
        let mut leaders = Vec::new();
        for &id in ids {
            leaders.push(status(&c.url(id)).await.map(|s| s.leader_id));
        }
        let first = leaders[0];
        match first {
            Some(l) if l != 0 && leaders.iter().all(|x| *x == first) && ids.contains(&l) => {
                let s = status(&c.url(l)).await;
                found = l;
                s.is_some_and(|s| s.role == Role::Leader as i32)
            }
            _ => false,
        }
    });
    found
}

pub async fn create(url: &str, name: &str) {
    create_shaped(url, name, DIM as u32, 2).await;
}

/// Creates an L2 collection of the given dimension and shards through `url`.
pub async fn create_shaped(url: &str, name: &str, dimension: u32, shards: u32) {
    let mut c = CollectionsClient::new(channel(url).await.expect("node reachable"));
    let req = CreateCollectionRequest {
        name: name.into(),
        dimension,
        metric: Metric::L2 as i32,
        shards,
        index: None,
    };
    c.create(req).await.expect("create");
}

/// Upserts through `url`, retrying what may be transient (no leader yet, a node down) until
/// `secs` pass; returns the write's index once acknowledged.
pub async fn upsert(url: &str, coll: &str, points: &[(u64, Vec<f32>)], secs: u64) -> Option<u64> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let Some(ch) = channel(url).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let mut p = PointsClient::new(ch);
        let mut req = tonic::Request::new(UpsertRequest {
            collection: coll.into(),
            points: points
                .iter()
                .map(|(id, v)| Point { id: *id, vector: v.clone(), ..Default::default() })
                .collect(),
            ..Default::default()
        });
        req.set_timeout(Duration::from_secs(5));
        match p.upsert(req).await {
            Ok(r) => return Some(r.into_inner().index),
            Err(s) if matches!(s.code(), Code::InvalidArgument | Code::NotFound) => {
                panic!("write refused: {s:?}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    None
}

pub fn batch(rng: &mut Rng, first: u64, n: u64) -> Vec<(u64, Vec<f32>)> {
    (first..first + n).map(|id| (id, rng.vector())).collect()
}

pub async fn search(url: &str, coll: &str, q: &[f32], exact: bool) -> Vec<(u64, f32)> {
    let mut p = PointsClient::new(channel(url).await.expect("node reachable"));
    let req = SearchRequest {
        collection: coll.into(),
        vector: q.to_vec(),
        params: Some(SearchParameters { k: 10, exact, ..Default::default() }),
        ..Default::default()
    };
    let hits = p.search(req).await.expect("search").into_inner().hits;
    hits.into_iter().map(|h| (h.id, h.distance)).collect()
}

/// Waits until every node in `ids` applied the same index and holds the same digests; returns
/// the statuses.
pub async fn converged(c: &Cluster, ids: &[u64], secs: u64) -> Vec<StatusResponse> {
    let mut out = Vec::new();
    wait_until!(secs, "replicas to converge", {
        out.clear();
        for &id in ids {
            if let Some(s) = status(&c.url(id)).await {
                out.push(s);
            }
        }
        out.len() == ids.len()
            && out.iter().all(|s| {
                s.applied_index == out[0].applied_index && s.collections == out[0].collections
            })
    });
    out
}

/// Exact search returns identical results on every replica, and ANN recall@10 against it is
/// at least `floor` on each.
pub async fn same_answers(c: &Cluster, ids: &[u64], coll: &str, rng: &mut Rng, floor: f64) {
    let queries: Vec<Vec<f32>> = (0..20).map(|_| rng.vector()).collect();
    let mut exact_first = Vec::new();
    for (i, &id) in ids.iter().enumerate() {
        let mut found = 0;
        for (qi, q) in queries.iter().enumerate() {
            let exact = search(&c.url(id), coll, q, true).await;
            if i == 0 {
                exact_first.push(exact.clone());
            } else {
                assert_eq!(exact, exact_first[qi], "node {id}: exact results differ");
            }
            let ann = search(&c.url(id), coll, q, false).await;
            found += ann.iter().filter(|h| exact.iter().any(|e| e.0 == h.0)).count();
        }
        let recall = found as f64 / (queries.len() * 10) as f64;
        println!("node {id}: recall@10 {recall:.3}");
        assert!(recall >= floor, "node {id}: recall {recall} under {floor}");
    }
}
