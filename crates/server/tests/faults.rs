//! The fault suite: a three-node cluster of real processes on 127.0.0.11-13 under four
//! concurrent clients, with faults injected:
//!
//! - **kill cycles**: SIGKILL a node (the leader six times in ten), restart it, again;
//! - **partition and pause schedules**: iptables drops between the nodes' addresses (the
//!   leader cut off in the minority, or a follower cut off while the leader keeps a
//!   majority), and SIGSTOP/SIGCONT of the leader or a follower.
//!
//! Every operation's invocation and completion is recorded; each point id is a register
//! (upsert writes a unique value, delete writes "absent", a linearizable get reads) and the
//! history must be linearizable; local gets may be stale but must never return a value that
//! was not written. After each phase the replicas must converge to equal digests. Each
//! schedule must show it injected its faults (a leader change; both partition modes).
//!
//! Sizes: `FRESHVEC_FAULT_KILLS` (50), `FRESHVEC_FAULT_SCHEDULES` (5), `FRESHVEC_FAULT_SECONDS`
//! (60), `FRESHVEC_FAULT_SEED`. A failed run keeps its data directories and prints where.

mod common;
#[path = "common/history.rs"]
mod history;

use common::*;
use freshvec_server::proto::cluster_client::ClusterClient;
use freshvec_server::proto::collections_client::CollectionsClient;
use freshvec_server::proto::points_client::PointsClient;
use freshvec_server::proto::*;
use history::{Kind, Op, Verdict};
use parking_lot::Mutex;
use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const KEYS: u64 = 200;
const WRITERS: usize = 4;
const CHAIN: &str = "FRESHVEC_FAULTS";

/// A size or seed from the environment: decimal, or hexadecimal after `0x`.
fn knob(name: &str, default: u64) -> u64 {
    let Ok(v) = std::env::var(name) else { return default };
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("{name}={v:?} is not a number"))
}

/// iptables rules between the nodes' loopback addresses, in a chain of their own.
struct Firewall;

fn iptables(args: &[&str]) -> bool {
    Command::new("iptables").args(args).output().is_ok_and(|o| o.status.success())
}

impl Firewall {
    fn new() -> Firewall {
        iptables(&["-N", CHAIN]);
        assert!(
            iptables(&["-F", CHAIN]),
            "iptables is needed to cut the nodes apart (run as root with iptables installed)"
        );
        if !iptables(&["-C", "INPUT", "-j", CHAIN]) {
            assert!(iptables(&["-I", "INPUT", "-j", CHAIN]));
        }
        Firewall
    }

    /// Drops every packet between nodes of different groups.
    fn partition(&self, c: &Cluster, groups: &[Vec<u64>]) {
        self.heal();
        for (i, g) in groups.iter().enumerate() {
            for h in &groups[i + 1..] {
                for &a in g {
                    for &b in h {
                        let (a, b) = (&c.nodes[a as usize - 1].ip, &c.nodes[b as usize - 1].ip);
                        assert!(iptables(&["-A", CHAIN, "-s", a, "-d", b, "-j", "DROP"]));
                        assert!(iptables(&["-A", CHAIN, "-s", b, "-d", a, "-j", "DROP"]));
                    }
                }
            }
        }
    }

    fn heal(&self) {
        assert!(iptables(&["-F", CHAIN]));
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        iptables(&["-F", CHAIN]);
        iptables(&["-D", "INPUT", "-j", CHAIN]);
        iptables(&["-X", CHAIN]);
    }
}

fn signal(c: &Cluster, id: u64, sig: &str) {
    if let Some(child) = &c.nodes[id as usize - 1].child {
        let _ = Command::new("kill").args([sig, &child.id().to_string()]).status();
    }
}

/// What the clients recorded.
#[derive(Default)]
struct Record {
    ops: Vec<Op>,
    local_reads: Vec<(u64, Option<u32>)>,
    acked_writes: u64,
    unknown_writes: u64,
    refused_writes: u64,
}

/// Whether a failed write certainly changed nothing: it never reached a server, or a server
/// refused it before it was appended (no leader known, still loading, overloaded).
fn not_applied(s: &tonic::Status) -> bool {
    let m = s.message();
    match s.code() {
        tonic::Code::ResourceExhausted => true,
        tonic::Code::Unavailable => {
            m.contains("no leader is known")
                || m.contains("still loading")
                || m.contains("tcp connect error")
        }
        _ => false,
    }
}

struct Load {
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

fn lazy(url: String) -> PointsClient<Channel> {
    let ch = Channel::from_shared(url)
        .unwrap()
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    PointsClient::new(ch)
}

fn timed<T>(msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.set_timeout(Duration::from_secs(2));
    r
}

/// Starts the clients: each op on a random node.
fn start_load(c: &Cluster, seed: u64, epoch: Instant, values: Arc<AtomicU32>) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let record = Arc::new(Mutex::new(Record::default()));
    let urls: Vec<String> = (1..=3).map(|id| c.url(id)).collect();
    let tasks = (0..WRITERS)
        .map(|w| {
            let (stop, record, values) = (stop.clone(), record.clone(), values.clone());
            let mut clients: Vec<_> = urls.iter().cloned().map(lazy).collect();
            let mut rng = Rng(seed ^ ((w as u64 + 1) * 0x9e37));
            tokio::spawn(async move {
                let now = || epoch.elapsed().as_nanos() as u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = rng.next() % KEYS;
                    let p = &mut clients[(rng.next() % 3) as usize];
                    let roll = rng.next() % 100;
                    let invoke = now();
                    if roll < 55 {
                        let (kind, r) = if roll < 45 {
                            let v = values.fetch_add(1, Ordering::Relaxed);
                            let point = Point {
                                id: key,
                                vector: vec![v as f32, key as f32],
                                ..Default::default()
                            };
                            let req = UpsertRequest {
                                collection: "f".into(),
                                points: vec![point],
                                ..Default::default()
                            };
                            (Kind::Write(Some(v)), p.upsert(timed(req)).await.map(|_| ()))
                        } else {
                            let req = DeleteRequest {
                                collection: "f".into(),
                                ids: vec![key],
                                ..Default::default()
                            };
                            (Kind::Write(None), p.delete(timed(req)).await.map(|_| ()))
                        };
                        if let Err(s) = &r {
                            assert!(
                                !matches!(
                                    s.code(),
                                    tonic::Code::InvalidArgument | tonic::Code::NotFound
                                ),
                                "write refused: {s:?}"
                            );
                        }
                        let complete = r.is_ok().then(now);
                        {
                            let mut rec = record.lock();
                            match &r {
                                Ok(_) => rec.acked_writes += 1,
                                // Refused before anything was logged: not an operation.
                                Err(s) if not_applied(s) => rec.refused_writes += 1,
                                Err(_) => rec.unknown_writes += 1,
                            }
                            if r.as_ref().map_or_else(|s| !not_applied(s), |_| true) {
                                rec.ops.push(Op { key, kind, invoke, complete });
                            }
                        }
                        if r.is_err() {
                            // A client backs off after a failure.
                            tokio::time::sleep(Duration::from_millis(20 + rng.next() % 30)).await;
                        }
                    } else {
                        let linearizable = roll < 90;
                        let consistency = if linearizable {
                            Consistency::Linearizable
                        } else {
                            Consistency::Local
                        };
                        let req = GetRequest {
                            collection: "f".into(),
                            ids: vec![key],
                            with_vectors: true,
                            consistency: consistency as i32,
                            min_applied_index: 0,
                            ..Default::default()
                        };
                        let got = p.get(timed(req)).await;
                        if got.is_err() {
                            tokio::time::sleep(Duration::from_millis(20 + rng.next() % 30)).await;
                        }
                        if let Ok(r) = got {
                            let v = r.into_inner().points.first().map(|p| p.vector[0] as u32);
                            let mut rec = record.lock();
                            if linearizable {
                                let complete = Some(now());
                                rec.ops.push(Op { key, kind: Kind::Read(v), invoke, complete });
                            } else {
                                rec.local_reads.push((key, v));
                            }
                        }
                    }
                }
            })
        })
        .collect();
    Load { stop, record, tasks }
}

impl Load {
    async fn finish(self) -> Record {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("a client task panicked");
        }
        Arc::try_unwrap(self.record).ok().expect("tasks done").into_inner()
    }
}

/// The leader's id and term as any node sees it.
async fn observed_leader(c: &Cluster) -> Option<(u64, u64)> {
    for id in 1..=3 {
        if let Some(s) = status(&c.url(id)).await {
            if s.role == Role::Leader as i32 {
                return Some((s.node_id, s.term));
            }
        }
    }
    None
}

/// Heals everything, waits for the replicas to converge, reads every key linearizably and
/// checks the whole history. Returns (operations checked, acknowledged writes).
async fn quiesce_and_check(
    c: &Cluster,
    fw: &Firewall,
    epoch: Instant,
    history: &mut Record,
    load: Load,
) -> (usize, u64) {
    fw.heal();
    for id in 1..=3 {
        signal(c, id, "-CONT");
    }
    let rec = load.finish().await;
    history.ops.extend(rec.ops);
    history.local_reads.extend(rec.local_reads);
    history.acked_writes += rec.acked_writes;
    history.unknown_writes += rec.unknown_writes;
    history.refused_writes += rec.refused_writes;
    converged(c, &[1, 2, 3], 90).await;
    // The final value of every key, read linearizably.
    let l = leader(c, &[1, 2, 3], 60).await;
    let mut p = lazy(c.url(l));
    for key in 0..KEYS {
        let invoke = epoch.elapsed().as_nanos() as u64;
        let req = GetRequest {
            collection: "f".into(),
            ids: vec![key],
            with_vectors: true,
            consistency: Consistency::Linearizable as i32,
            min_applied_index: 0,
            ..Default::default()
        };
        let r = p.get(timed(req)).await.expect("a read after healing").into_inner();
        let v = r.points.first().map(|p| p.vector[0] as u32);
        let complete = Some(epoch.elapsed().as_nanos() as u64);
        history.ops.push(Op { key, kind: Kind::Read(v), invoke, complete });
    }
    let checked = history.ops.len();
    let verdict = tokio::task::block_in_place(|| history::check(&history.ops, 2_000_000));
    if let Verdict::Violation(key) | Verdict::Timeout(key) = verdict {
        let mut ops: Vec<&Op> = history.ops.iter().filter(|o| o.key == key).collect();
        ops.sort_by_key(|o| o.invoke);
        let path = c.root.join(format!("history-key-{key}.txt"));
        let text: String = ops.iter().map(|o| format!("{o:?}\n")).collect();
        let _ = std::fs::write(&path, text);
        println!("history of key {key} in {}", path.display());
    }
    assert_eq!(verdict, Verdict::Ok, "the history is not linearizable (or the check timed out)");
    let stale = history::check_local_reads(&history.ops, &history.local_reads);
    assert_eq!(stale, None, "a local read returned a value never written");
    (checked, history.acked_writes)
}

async fn start_cluster(name: &str) -> (Cluster, Firewall) {
    let fw = Firewall::new();
    let c = Cluster::new(name, 3, &["--election-timeout-ms", "500"]);
    (boot(c).await, fw)
}

/// Starts the three nodes of `c` and creates the collection "f".
async fn boot(mut c: Cluster) -> Cluster {
    for id in 1..=3 {
        c.start(id, &[1, 2, 3]);
    }
    let l = leader(&c, &[1, 2, 3], 30).await;
    let mut colls = CollectionsClient::new(channel(&c.url(l)).await.unwrap());
    let req = CreateCollectionRequest {
        name: "f".into(),
        dimension: 2,
        metric: Metric::L2 as i32,
        shards: 1,
        index: None,
    };
    colls.create(req).await.unwrap();
    converged(&c, &[1, 2, 3], 30).await;
    println!("cluster in {}", c.root.display());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_cycles_lose_nothing_and_stay_linearizable() {
    let _turn = SERIAL.lock().await;
    let seed = knob("FRESHVEC_FAULT_SEED", 0xfa17_0001);
    let kills = knob("FRESHVEC_FAULT_KILLS", 50);
    println!("seed {seed:#x}, {kills} kill cycles");
    let mut rng = Rng(seed);
    let (mut c, fw) = start_cluster("kills").await;
    let epoch = Instant::now();
    let values = Arc::new(AtomicU32::new(1));
    let load = start_load(&c, seed, epoch, values);
    let mut leaders = BTreeSet::new();
    let mut leader_kills = 0;
    for cycle in 0..kills {
        let current = observed_leader(&c).await;
        if let Some(l) = current {
            leaders.insert(l);
        }
        let target = match current {
            Some((l, _)) if rng.next() % 10 < 6 => {
                leader_kills += 1;
                l
            }
            _ => 1 + rng.next() % 3,
        };
        c.node(target).kill();
        // Down from a moment to several election timeouts (500-1,000 ms): sometimes the
        // others elect a new leader, sometimes the node is back first (a restarted leader
        // whose vote is committed resumes leading in its term).
        tokio::time::sleep(Duration::from_millis(100 + rng.next() % 2400)).await;
        if let Some(l) = observed_leader(&c).await {
            leaders.insert(l);
        }
        c.start(target, &[1, 2, 3]);
        wait_until!(60, format!("node {target} back after kill {cycle}"), {
            status(&c.url(target)).await.is_some()
        });
        tokio::time::sleep(Duration::from_millis(200 + rng.next() % 400)).await;
    }
    if let Some(l) = observed_leader(&c).await {
        leaders.insert(l);
    }
    let mut history = Record::default();
    let (checked, acked) = quiesce_and_check(&c, &fw, epoch, &mut history, load).await;
    println!(
        "{kills} kill cycles ({leader_kills} of the leader), {} leaders seen, {checked} operations \
         linearizable, {acked} acknowledged writes (0 lost), {} of unknown outcome, {} refused, \
         {} local reads valid",
        leaders.len(),
        history.unknown_writes,
        history.refused_writes,
        history.local_reads.len()
    );
    assert!(leaders.len() >= 2, "no leader change happened");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    LeaderMinority,
    LeaderMajority,
    PauseLeader,
    PauseFollower,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn partitions_and_pauses_stay_linearizable_and_converge() {
    let _turn = SERIAL.lock().await;
    let seed = knob("FRESHVEC_FAULT_SEED", 0xfa17_0002);
    let schedules = knob("FRESHVEC_FAULT_SCHEDULES", 5);
    let secs = knob("FRESHVEC_FAULT_SECONDS", 60);
    println!("seed {seed:#x}, {schedules} schedules of {secs} s");
    let mut rng = Rng(seed);
    let (c, fw) = start_cluster("partitions").await;
    let epoch = Instant::now();
    let values = Arc::new(AtomicU32::new(1));
    let mut history = Record::default();
    for schedule in 0..schedules {
        let load = start_load(&c, seed ^ ((schedule + 1) << 32), epoch, values.clone());
        let started = Instant::now();
        let mut injected = BTreeSet::new();
        let mut leaders = BTreeSet::new();
        let mut step = 0;
        while started.elapsed() < Duration::from_secs(secs) {
            let Some((l, term)) = observed_leader(&c).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            leaders.insert((l, term));
            let follower =
                [1, 2, 3].into_iter().filter(|&i| i != l).nth((rng.next() % 2) as usize).unwrap();
            let other = 6 - l - follower;
            let fault = match step {
                0 => Fault::LeaderMinority,
                1 => Fault::LeaderMajority,
                _ => match rng.next() % 4 {
                    0 => Fault::LeaderMinority,
                    1 => Fault::LeaderMajority,
                    2 => Fault::PauseLeader,
                    _ => Fault::PauseFollower,
                },
            };
            step += 1;
            injected.insert(fault);
            match fault {
                Fault::LeaderMinority => fw.partition(&c, &[vec![l], vec![follower, other]]),
                Fault::LeaderMajority => fw.partition(&c, &[vec![l, other], vec![follower]]),
                Fault::PauseLeader => signal(&c, l, "-STOP"),
                Fault::PauseFollower => signal(&c, follower, "-STOP"),
            }
            tokio::time::sleep(Duration::from_millis(1000 + rng.next() % 3000)).await;
            if let Some(seen) = observed_leader(&c).await {
                leaders.insert(seen);
            }
            fw.heal();
            for id in 1..=3 {
                signal(&c, id, "-CONT");
            }
            tokio::time::sleep(Duration::from_millis(500 + rng.next() % 1500)).await;
        }
        if let Some(seen) = observed_leader(&c).await {
            leaders.insert(seen);
        }
        let (checked, acked) = quiesce_and_check(&c, &fw, epoch, &mut history, load).await;
        println!(
            "schedule {schedule}: {step} faults {injected:?}, {} (leader, term) pairs, \
             {checked} operations linearizable so far, {acked} acknowledged writes (0 lost), \
             digests equal",
            leaders.len()
        );
        assert!(
            injected.contains(&Fault::LeaderMinority) && injected.contains(&Fault::LeaderMajority)
        );
        assert!(leaders.len() >= 2, "schedule {schedule}: no leader change happened");
    }
}

/// Three network namespaces, one per node, each plugged by a veth pair into a bridge in a
/// fourth (the switch); the host reaches the nodes through one more veth pair into the bridge.
/// [`Namespaces::unplug`] deletes a node's interface, as `docker network disconnect` does: its
/// sockets stay open, packets to its address go nowhere. [`Namespaces::plug`] gives it a new
/// interface (a new MAC) with the same address, as `docker network connect --ip` does.
struct Namespaces;

const NETNS_SWITCH: &str = "fvheal-sw";
const NETNS_HOST_LINK: &str = "fvheal-host";

fn ip(args: &[&str]) -> bool {
    let out = Command::new("ip").args(args).output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            println!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&o.stderr).trim());
            false
        }
        Err(e) => {
            println!("ip {}: {e}", args.join(" "));
            false
        }
    }
}

impl Namespaces {
    fn netns(id: u64) -> String {
        format!("fvheal-{id}")
    }

    fn address(id: u64) -> String {
        format!("10.213.0.{}", 10 + id)
    }

    fn new() -> Namespaces {
        Namespaces::remove();
        let sw = NETNS_SWITCH;
        let ok = ip(&["netns", "add", sw])
            && ip(&["-n", sw, "link", "add", "br0", "type", "bridge"])
            && ip(&["-n", sw, "link", "set", "br0", "up"])
            && ip(&[
                "link",
                "add",
                NETNS_HOST_LINK,
                "type",
                "veth",
                "peer",
                "name",
                "host",
                "netns",
                sw,
            ])
            && ip(&["addr", "add", "10.213.0.1/24", "dev", NETNS_HOST_LINK])
            && ip(&["link", "set", NETNS_HOST_LINK, "up"])
            && ip(&["-n", sw, "link", "set", "host", "master", "br0", "up"]);
        assert!(ok, "network namespaces are needed (run as root with iproute2 installed)");
        let all = Namespaces;
        for id in 1..=3 {
            let ns = Namespaces::netns(id);
            assert!(ip(&["netns", "add", &ns]) && ip(&["-n", &ns, "link", "set", "lo", "up"]));
            all.plug(id);
        }
        all
    }

    fn plug(&self, id: u64) {
        let (ns, sw, port) = (Namespaces::netns(id), NETNS_SWITCH, format!("n{id}"));
        let addr = format!("{}/24", Namespaces::address(id));
        let ok = ip(&[
            "-n", sw, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]) && ip(&["-n", sw, "link", "set", &port, "master", "br0", "up"])
            && ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])
            && ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        assert!(ok, "plugging node {id} in");
    }

    fn unplug(&self, id: u64) {
        assert!(ip(&["-n", &Namespaces::netns(id), "link", "del", "eth0"]), "unplugging {id}");
    }

    fn remove() {
        for id in 1..=3 {
            ip(&["netns", "del", &Namespaces::netns(id)]);
        }
        ip(&["netns", "del", NETNS_SWITCH]);
        ip(&["link", "del", NETNS_HOST_LINK]);
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        Namespaces::remove();
    }
}

/// How a follower is cut off and healed.
enum Cut<'a> {
    /// iptables DROP between its address and the others'.
    Firewall(&'a Firewall),
    /// Its interface removed, then a new one plugged in.
    Interface(&'a Namespaces),
}

impl Cut<'_> {
    fn cut(&self, c: &Cluster, follower: u64) {
        match self {
            Cut::Firewall(fw) => {
                let rest: Vec<u64> = (1..=3).filter(|&i| i != follower).collect();
                fw.partition(c, &[rest, vec![follower]]);
            }
            Cut::Interface(ns) => ns.unplug(follower),
        }
    }

    fn heal(&self, follower: u64) {
        match self {
            Cut::Firewall(fw) => fw.heal(),
            Cut::Interface(ns) => ns.plug(follower),
        }
    }
}

async fn cluster_client(c: &Cluster, id: u64) -> ClusterClient<Channel> {
    ClusterClient::new(channel(&c.url(id)).await.expect("node reachable"))
}

/// Rounds of: a follower cut off while the majority writes past a snapshot and a purge of its
/// logs, then healed; it must install a snapshot and converge within a bound. The purge runs on
/// both nodes of the majority, so whichever of them leads after the healed follower's higher
/// term forced an election has only a snapshot to offer.
async fn cut_past_a_purge_then_heal(c: &Cluster, how: &Cut<'_>, rng: &mut Rng, rounds: u64) {
    let hold = Duration::from_millis(knob("FRESHVEC_FAULT_CUT_MS", 3000));
    let mut next_id = 0;
    for round in 0..rounds {
        let l = leader(c, &[1, 2, 3], 30).await;
        let follower =
            [1, 2, 3].into_iter().filter(|&i| i != l).nth((rng.next() % 2) as usize).unwrap();
        let other = 6 - l - follower;
        let before = status(&c.url(follower)).await.expect("follower answers");
        how.cut(c, follower);
        let cut = Instant::now();
        // Writes the follower misses, each acknowledged by the majority.
        for _ in 0..20 {
            let points: Vec<(u64, Vec<f32>)> =
                (next_id..next_id + 50).map(|id| (id, vec![rng.f32(), rng.f32()])).collect();
            next_id += 50;
            upsert(&c.url(l), "f", &points, 20).await.expect("the majority acknowledges writes");
        }
        // The cut holds for a while (the follower stands for election meanwhile) and the
        // leader sees the follower behind.
        wait_until!(30 + hold.as_secs(), format!("the leader to see node {follower} behind"), {
            cut.elapsed() >= hold
                && status(&c.url(l))
                    .await
                    .is_some_and(|s| s.peers.iter().any(|p| p.node_id == follower && p.lag > 0))
        });
        let mut purged = 0;
        for id in [l, other] {
            let mut cl = cluster_client(c, id).await;
            cl.trigger_snapshot(TriggerSnapshotRequest {}).await.expect("snapshot");
            let p = cl.purge_log(PurgeLogRequest { upto: 0 }).await.expect("purge");
            purged = p.into_inner().purged_index.max(purged);
        }
        assert!(
            purged > before.last_log_index,
            "the purge ({purged}) must pass the follower's log ({})",
            before.last_log_index
        );
        how.heal(follower);
        let healed = Instant::now();
        println!(
            "round {round}: leader {l}, follower {follower} cut off for {} ms; purged to {purged}",
            cut.elapsed().as_millis()
        );
        wait_until!(15, format!("node {follower} to install a snapshot after healing"), {
            status(&c.url(follower))
                .await
                .is_some_and(|s| s.snapshots_installed > before.snapshots_installed)
        });
        let installed = healed.elapsed();
        let statuses = converged(c, &[1, 2, 3], 30).await;
        let f = statuses.iter().find(|s| s.node_id == follower).unwrap();
        println!(
            "round {round}: follower {follower} installed a snapshot {} ms after healing \
             (snapshot {}, log from {}), converged after {} ms: {} vectors, leader {}",
            installed.as_millis(),
            f.snapshot_index,
            f.first_log_index,
            healed.elapsed().as_millis(),
            f.collections[0].vectors,
            f.leader_id
        );
        assert!(f.snapshot_index >= purged, "the follower's snapshot covers the purge");
        assert_eq!(f.collections[0].vectors, next_id);
    }
}

/// A follower cut off past a snapshot and a purge, then healed, under iptables (packets
/// dropped: its connections go half-open) and under interface removal in a network namespace
/// (what `docker network disconnect` does); it must install the snapshot within a bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_cut_off_past_a_purge_installs_a_snapshot_when_healed() {
    let _turn = SERIAL.lock().await;
    let seed = knob("FRESHVEC_FAULT_SEED", 0xfa17_0003);
    let rounds = knob("FRESHVEC_FAULT_HEAL_ROUNDS", 2);
    println!("seed {seed:#x}, {rounds} rounds per way of cutting");
    let mut rng = Rng(seed);
    {
        let (c, fw) = start_cluster("heal-iptables").await;
        println!("cut by iptables");
        cut_past_a_purge_then_heal(&c, &Cut::Firewall(&fw), &mut rng, rounds).await;
    }
    let ns = Namespaces::new();
    let netns: Vec<String> = (1..=3).map(Namespaces::netns).collect();
    let ips: Vec<String> = (1..=3).map(Namespaces::address).collect();
    let c = Cluster::in_namespaces("heal-netns", &netns, &ips, &["--election-timeout-ms", "500"]);
    let c = boot(c).await;
    println!("cut by removing the interface");
    cut_past_a_purge_then_heal(&c, &Cut::Interface(&ns), &mut rng, rounds).await;
}
