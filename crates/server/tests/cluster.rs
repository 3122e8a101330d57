//! Replication with real processes: three (or more) `freshvec serve` nodes, each on its own
//! loopback address (127.0.0.11, .12, ...), killed, restarted and wiped by the tests.
//!
//! - Snapshot fallback: a follower behind a purged log installs a snapshot, its log restarts
//!   at the snapshot's index, and it converges (applied index, digest, exact results).
//! - Follower wipe: a follower whose data directory is deleted catches up with a snapshot.
//! - Leader failover: kill -9 the leader under a write load; no acknowledged write is lost.
//! - Membership: grow from one node to three under writes, then remove one.
//! - Bad input to the peer service is refused and harms nothing.

mod common;

use common::*;
use freshvec_replication::proto::peer_client::PeerClient;
use freshvec_replication::proto::Payload;
use freshvec_server::proto::cluster_client::ClusterClient;
use freshvec_server::proto::points_client::PointsClient;
use freshvec_server::proto::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follower_behind_a_purged_log_installs_a_snapshot_and_a_wiped_one_catches_up() {
    let _turn = SERIAL.lock().await;
    let seed = 0x5eed_0601;
    println!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut c = Cluster::new("snap", 3, &["--snapshot-entries", "100000", "--keep-entries", "5"]);
    for id in 1..=3 {
        c.start(id, &[1, 2, 3]);
    }
    let l = leader(&c, &[1, 2, 3], 30).await;
    let follower = if l == 3 { 2 } else { 3 };
    let other = 6 - l - follower;
    // Created and written through a follower: forwarded to the leader.
    create(&c.url(follower), "c").await;
    let mut next = 0;
    for _ in 0..10 {
        let b = batch(&mut rng, next, 100);
        next += 100;
        upsert(&c.url(other), "c", &b, 20).await.expect("write acknowledged");
    }
    converged(&c, &[1, 2, 3], 30).await;
    let before = status(&c.url(follower)).await.unwrap();

    // The follower stops; the others go on well past it, then snapshot and purge.
    c.node(follower).kill();
    for _ in 0..30 {
        let b = batch(&mut rng, next, 100);
        next += 100;
        upsert(&c.url(l), "c", &b, 20).await.expect("write acknowledged");
    }
    // Some of the same ids again: replaced vectors, and deletes.
    let again = batch(&mut rng, 50, 100);
    upsert(&c.url(l), "c", &again, 20).await.expect("write acknowledged");
    let mut pts = PointsClient::new(channel(&c.url(l)).await.unwrap());
    pts.delete(DeleteRequest {
        collection: "c".into(),
        ids: (200..260).collect(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut cl = ClusterClient::new(channel(&c.url(l)).await.unwrap());
    let snap = cl.trigger_snapshot(TriggerSnapshotRequest {}).await.unwrap().into_inner();
    let purged = cl.purge_log(PurgeLogRequest { upto: 0 }).await.unwrap().into_inner().purged_index;
    println!(
        "follower {follower} stopped at applied {}; leader {l} snapshot {} purged {purged}",
        before.applied_index, snap.snapshot_index
    );
    assert!(purged > before.last_log_index, "the leader's purge must pass the follower's log");

    c.start(follower, &[1, 2, 3]);
    let statuses = converged(&c, &[1, 2, 3], 60).await;
    let f = statuses.iter().find(|s| s.node_id == follower).unwrap();
    let lead = statuses.iter().find(|s| s.node_id == l).unwrap();
    println!(
        "follower {follower}: installed {} snapshot(s) in {} ms, snapshot {} purged {} applied {}",
        f.snapshots_installed,
        f.last_snapshot_install_ms,
        f.snapshot_index,
        f.purged_index,
        f.applied_index
    );
    assert!(f.snapshots_installed >= 1, "the follower installed a snapshot");
    assert!(f.snapshot_index >= purged, "snapshot at or past the leader's purge point");
    assert_eq!(f.purged_index, f.snapshot_index, "its log restarts after the snapshot");
    assert_eq!(f.applied_index, lead.applied_index);
    assert_eq!(f.collections, lead.collections);
    assert_eq!(f.collections[0].vectors, next - 60);
    same_answers(&c, &[1, 2, 3], "c", &mut rng, 0.9).await;

    // The leader, whose log was purged, restarts from its snapshot and purged log.
    c.node(l).kill();
    c.start(l, &[1, 2, 3]);
    converged(&c, &[1, 2, 3], 60).await;

    // A follower whose data directory is deleted rejoins and catches up with a snapshot.
    c.node(other).kill();
    let dir = c.node(other).dir.clone();
    std::fs::remove_dir_all(&dir).unwrap();
    let b = batch(&mut rng, next, 100);
    next += 100;
    upsert(&c.url(l), "c", &b, 20).await.expect("write acknowledged");
    c.start(other, &[1, 2, 3]);
    let statuses = converged(&c, &[1, 2, 3], 60).await;
    let w = statuses.iter().find(|s| s.node_id == other).unwrap();
    println!("wiped node {other}: installed {} snapshot(s)", w.snapshots_installed);
    assert!(w.snapshots_installed >= 1);
    assert_eq!(w.collections[0].vectors, next - 60);
}

/// A snapshot transfer or install cut short by kill -9 at each named point (on the follower
/// receiving it, on the leader sending it, and in the leader's own checkpoint) loses nothing
/// acknowledged: restarted without the failpoint, every node converges to the same digests
/// with every acknowledged write, and no staging directory survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_transfers_and_checkpoints_killed_at_each_point_lose_nothing() {
    let _turn = SERIAL.lock().await;
    let seed = 0x5eed_0fa1;
    println!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut c = Cluster::new("kill", 3, &["--snapshot-entries", "100000", "--keep-entries", "2"]);
    for id in 1..=3 {
        c.start(id, &[1, 2, 3]);
    }
    let l = leader(&c, &[1, 2, 3], 30).await;
    create(&c.url(l), "c").await;
    let mut next = 0u64;
    let snapshot_and_purge = |c: &Cluster, ids: Vec<u64>| {
        let urls: Vec<String> = ids.iter().map(|&i| c.url(i)).collect();
        async move {
            for url in urls {
                let mut cl = ClusterClient::new(channel(&url).await.unwrap());
                cl.trigger_snapshot(TriggerSnapshotRequest {}).await.unwrap();
                cl.purge_log(PurgeLogRequest { upto: 0 }).await.unwrap();
            }
        }
    };
    for _ in 0..10 {
        let l = leader(&c, &[1, 2, 3], 30).await;
        let b = batch(&mut Rng(next ^ seed), next, 200);
        next += 200;
        upsert(&c.url(l), "c", &b, 30).await.expect("write acknowledged");
    }
    let points = [
        ("follower", "snap_recv_chunk:2"),
        ("follower", "snap_recv_before_verify"),
        ("follower", "snap_install_before_rename"),
        ("follower", "snap_install_after_rename"),
        ("follower", "snap_install_after_swap"),
        ("leader", "snap_send_chunk:2"),
        ("checkpoint", "ckpt_before_manifest"),
        ("checkpoint", "ckpt_after_manifest"),
    ];
    for (side, point) in points {
        let l = leader(&c, &[1, 2, 3], 30).await;
        let f = if l == 3 { 2 } else { 3 };
        let o = 6 - l - f;
        let started = Instant::now();
        match side {
            "checkpoint" => {
                // The leader dies writing its own checkpoint; restarted, it opens the previous.
                c.node(l).kill();
                c.node(l).env = vec![("FRESHVEC_FAILPOINT".into(), point.into())];
                c.start(l, &[1, 2, 3]);
                leader(&c, &[1, 2, 3], 30).await;
                let b = batch(&mut Rng(next ^ seed), next, 200);
                next += 200;
                let lead = leader(&c, &[1, 2, 3], 30).await;
                upsert(&c.url(lead), "c", &b, 30).await.expect("write acknowledged");
                let mut cl = ClusterClient::new(channel(&c.url(l)).await.unwrap());
                let _ = cl.trigger_snapshot(TriggerSnapshotRequest {}).await;
                assert!(c.node(l).wait_exit(60), "{point}: node {l} did not stop there");
                c.node(l).env.clear();
                c.start(l, &[1, 2, 3]);
            }
            _ => {
                // The follower misses writes past every node's purge, so it needs a snapshot.
                c.node(f).kill();
                for _ in 0..3 {
                    let b = batch(&mut Rng(next ^ seed), next, 200);
                    next += 200;
                    upsert(&c.url(l), "c", &b, 30).await.expect("write acknowledged");
                }
                snapshot_and_purge(&c, vec![l, o]).await;
                let armed = if side == "follower" { vec![f] } else { vec![l, o] };
                for &id in &armed {
                    if id != f {
                        c.node(id).kill();
                    }
                    c.node(id).env = vec![("FRESHVEC_FAILPOINT".into(), point.into())];
                    c.start(id, &[1, 2, 3]);
                }
                if side == "leader" {
                    c.start(f, &[1, 2, 3]);
                }
                let stopped = {
                    let deadline = Instant::now() + Duration::from_secs(90);
                    loop {
                        let mut any = false;
                        for &id in &armed {
                            any |= c.node(id).wait_exit(0);
                        }
                        if any || Instant::now() >= deadline {
                            break any;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                };
                assert!(stopped, "{point}: no node stopped there");
                for &id in &armed {
                    c.node(id).kill();
                    c.node(id).env.clear();
                    c.start(id, &[1, 2, 3]);
                }
            }
        }
        let statuses = converged(&c, &[1, 2, 3], 90).await;
        for s in &statuses {
            assert_eq!(s.collections[0].vectors, next, "{point}: node {} lost writes", s.node_id);
            let state = c.nodes[s.node_id as usize - 1].dir.join("state");
            let strays: Vec<String> = std::fs::read_dir(&state)
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(".recv-"))
                .collect();
            assert!(strays.is_empty(), "{point}: node {} kept {strays:?}", s.node_id);
        }
        let f = statuses.iter().find(|s| s.node_id == f).unwrap();
        println!(
            "{point} ({side}): converged in {:.1} s; follower installed {} snapshot(s)",
            started.elapsed().as_secs_f64(),
            f.snapshots_installed
        );
    }
    same_answers(&c, &[1, 2, 3], "c", &mut rng, 0.9).await;

    // A follower installs a snapshot while four writers keep writing to the leader; it then
    // catches up from the log, and every acknowledged write is on every node.
    let l = leader(&c, &[1, 2, 3], 30).await;
    let f = if l == 3 { 2 } else { 3 };
    c.node(f).kill();
    let b = batch(&mut Rng(next ^ seed), next, 600);
    next += 600;
    upsert(&c.url(l), "c", &b, 30).await.expect("write acknowledged");
    snapshot_and_purge(&c, vec![l, 6 - l - f]).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4u64)
        .map(|w| {
            let (url, stop) = (c.url(l), stop.clone());
            let first = 1_000_000 * (w + 1);
            tokio::spawn(async move {
                let mut acked = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let b = batch(&mut Rng(first + acked), first + acked, 50);
                    upsert(&url, "c", &b, 30).await.expect("write acknowledged");
                    acked += 50;
                }
                acked
            })
        })
        .collect();
    c.start(f, &[1, 2, 3]);
    wait_until!(60, "the follower to install a snapshot under writes", {
        status(&c.url(f)).await.is_some_and(|s| s.snapshots_installed >= 1)
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut acked = 0;
    for w in writers {
        acked += w.await.unwrap();
    }
    let statuses = converged(&c, &[1, 2, 3], 90).await;
    for s in &statuses {
        assert_eq!(s.collections[0].vectors, next + acked, "node {} lost writes", s.node_id);
    }
    println!("install under 4 writers: {acked} points acknowledged meanwhile, all on every node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_killed_under_writes_loses_nothing_acknowledged() {
    let _turn = SERIAL.lock().await;
    let seed = 0x5eed_0602;
    println!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut c = Cluster::new("failover", 3, &[]);
    for id in 1..=3 {
        c.start(id, &[1, 2, 3]);
    }
    let old = leader(&c, &[1, 2, 3], 30).await;
    create(&c.url(old), "c").await;
    let mut acked: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
    let mut next = 0u64;
    let mut killed_at = None;
    let mut elected_after = None;
    let survivors: Vec<u64> = (1..=3).filter(|&i| i != old).collect();
    // Writes go round the nodes; the leader is killed after the 10th batch.
    for round in 0..40u64 {
        let target =
            if killed_at.is_some() { survivors[round as usize % 2] } else { 1 + round % 3 };
        let b = batch(&mut rng, next, 50);
        next += 50;
        if upsert(&c.url(target), "c", &b, 30).await.is_some() {
            acked.extend(b);
        }
        if round == 10 {
            c.node(old).kill();
            killed_at = Some(Instant::now());
        }
        if let (Some(t), None) = (killed_at, elected_after) {
            for &s in &survivors {
                if status(&c.url(s))
                    .await
                    .is_some_and(|st| st.role == Role::Leader as i32 && st.leader_id == s)
                {
                    elected_after = Some(t.elapsed());
                }
            }
        }
    }
    let new = leader(&c, &survivors, 30).await;
    assert_ne!(new, old);
    println!(
        "leader {old} killed; node {new} leads (seen elected after {:?}); {} points acknowledged",
        elected_after,
        acked.len()
    );
    c.start(old, &[1, 2, 3]);
    let statuses = converged(&c, &[1, 2, 3], 60).await;
    assert_eq!(statuses[0].collections[0].vectors, acked.len() as u64);
    // Every acknowledged point, with its vector, on every replica.
    let ids: Vec<u64> = acked.keys().copied().collect();
    for id in 1..=3 {
        let mut p = PointsClient::new(channel(&c.url(id)).await.unwrap());
        for chunk in ids.chunks(1000) {
            let got = p
                .get(GetRequest {
                    collection: "c".into(),
                    ids: chunk.to_vec(),
                    with_vectors: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .points;
            assert_eq!(got.len(), chunk.len(), "node {id} lost acknowledged points");
            for pt in got {
                assert_eq!(&pt.vector, &acked[&pt.id], "node {id}: point {} differs", pt.id);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grows_from_one_node_to_three_under_writes_then_shrinks() {
    let _turn = SERIAL.lock().await;
    let seed = 0x5eed_0603;
    println!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut c = Cluster::new("members", 3, &[]);
    c.start(1, &[1]);
    leader(&c, &[1], 30).await;
    create(&c.url(1), "c").await;
    let mut next = 0;
    for _ in 0..5 {
        let b = batch(&mut rng, next, 100);
        next += 100;
        upsert(&c.url(1), "c", &b, 20).await.expect("write acknowledged");
    }
    // New nodes list a lower-id member, so they never initialize a cluster of their own.
    c.start(2, &[1, 2]);
    c.start(3, &[1, 3]);
    let url1 = c.url(1);
    let writer = {
        let mut rng = Rng(seed ^ 1);
        tokio::spawn(async move {
            let mut next = 10_000;
            for _ in 0..20 {
                let b = batch(&mut rng, next, 50);
                next += 50;
                upsert(&url1, "c", &b, 20).await.expect("write acknowledged");
            }
            next - 10_000
        })
    };
    let mut cl = ClusterClient::new(channel(&c.url(1)).await.unwrap());
    for id in [2, 3] {
        let addr = c.nodes[id as usize - 1].peer_addr();
        let m = cl.add_node(AddNodeRequest { node_id: id, address: addr }).await.unwrap();
        println!("added node {id}: voters {:?}", m.into_inner().voters);
    }
    let written = writer.await.unwrap();
    let statuses = converged(&c, &[1, 2, 3], 60).await;
    assert_eq!(statuses[0].voters, vec![1, 2, 3]);
    assert_eq!(statuses[0].collections[0].vectors, next + written);
    same_answers(&c, &[1, 2, 3], "c", &mut rng, 0.9).await;

    let m = cl.remove_node(RemoveNodeRequest { node_id: 3 }).await.unwrap().into_inner();
    assert_eq!(m.voters, vec![1, 2]);
    c.node(3).kill();
    let b = batch(&mut rng, next, 100);
    upsert(&c.url(2), "c", &b, 20).await.expect("a two-node cluster still writes");
    let statuses = converged(&c, &[1, 2], 30).await;
    assert_eq!(statuses[0].collections[0].vectors, next + written + 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn peer_service_refuses_bad_input_and_unauthenticated_calls() {
    let _turn = SERIAL.lock().await;
    let mut c = Cluster::new("peer", 1, &["--cluster-secret", "s3cret"]);
    c.start(1, &[1]);
    leader(&c, &[1], 30).await;
    create(&c.url(1), "c").await;
    let mut rng = Rng(7);
    upsert(&c.url(1), "c", &batch(&mut rng, 0, 100), 20).await.unwrap();
    let before = status(&c.url(1)).await.unwrap();
    let peer = format!("http://{}", c.nodes[0].peer_addr());
    let mut p = PeerClient::new(channel(&peer).await.unwrap()).max_encoding_message_size(512 << 20);
    let with_secret = |data: Vec<u8>| {
        let mut r = tonic::Request::new(Payload { data });
        r.metadata_mut().insert("x-freshvec-cluster-secret", "s3cret".parse().unwrap());
        r
    };
    // Without the secret, or with a wrong one.
    let e = p.vote(tonic::Request::new(Payload { data: vec![] })).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let mut wrong = tonic::Request::new(Payload { data: vec![] });
    wrong.metadata_mut().insert("x-freshvec-cluster-secret", "s3creT".parse().unwrap());
    assert_eq!(p.append_entries(wrong).await.unwrap_err().code(), Code::Unauthenticated);
    // Payloads that do not decode.
    let stream = |parts: Vec<Vec<u8>>| {
        let parts: Vec<Payload> = parts.into_iter().map(|data| Payload { data }).collect();
        let mut r = tonic::Request::new(tokio_stream::iter(parts));
        r.metadata_mut().insert("x-freshvec-cluster-secret", "s3cret".parse().unwrap());
        r
    };
    for garbage in [vec![0xff; 64], vec![], vec![1, 2, 3]] {
        let e = p.install_snapshot(stream(vec![garbage.clone()])).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = p.append_entries(with_secret(garbage.clone())).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        let e = p.forward(with_secret(garbage)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
    }
    // Snapshot streams that break their grammar: a path out of the staging directory, more
    // bytes than announced, a wrong checksum, an end before every file, and files that are
    // whole but hold no checkpoint. Each is refused before openraft sees it.
    use freshvec_replication::network::SnapshotPart;
    let header = |files: Vec<(&str, u64)>| {
        let vote = openraft::Vote::new_committed(before.term, 1);
        let meta = openraft::SnapshotMeta::<u64, openraft::BasicNode> {
            last_log_id: Some(openraft::LogId::new(
                openraft::CommittedLeaderId::new(before.term, 1),
                before.applied_index + 1000,
            )),
            last_membership: Default::default(),
            snapshot_id: "no-such-snapshot".into(),
        };
        let files = files.into_iter().map(|(f, n)| (f.to_string(), n)).collect();
        SnapshotPart::Header { vote, meta, files }.encode()
    };
    let part = |p: SnapshotPart| p.encode();
    let crc = |d: &[u8]| crc32fast::hash(d);
    let name = format!("checkpoints/ckpt-{:020}", before.applied_index + 1001);
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("escaping path", vec![header(vec![("../../x", 1)])]),
        ("absolute path", vec![header(vec![("/tmp/x", 1)])]),
        ("too many bytes", vec![header(vec![("a", 2)]), part(SnapshotPart::Data(vec![1, 2, 3]))]),
        (
            "wrong checksum",
            vec![
                header(vec![("a", 2)]),
                part(SnapshotPart::Data(vec![1, 2])),
                part(SnapshotPart::FileEnd { crc: 7 }),
            ],
        ),
        ("end before its files", vec![header(vec![("a", 2)]), part(SnapshotPart::End)]),
        (
            "no checkpoint",
            vec![
                header(vec![(name.as_str(), 3)]),
                part(SnapshotPart::Data(vec![1, 2, 3])),
                part(SnapshotPart::FileEnd { crc: crc(&[1, 2, 3]) }),
                part(SnapshotPart::End),
            ],
        ),
        ("a huge part", vec![header(vec![("a", 1)]), vec![0; 48 << 20]]),
    ];
    for (what, parts) in cases {
        let e = p.install_snapshot(stream(parts)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
    }
    // The node is unharmed: same data, still the leader, still writing.
    let after = status(&c.url(1)).await.unwrap();
    assert_eq!(after.collections, before.collections);
    assert_eq!(after.snapshots_installed, 0);
    assert_eq!(after.role, Role::Leader as i32);
    upsert(&c.url(1), "c", &batch(&mut rng, 100, 10), 20).await.expect("still writes");
}

/// A follower that was down while the leader took large writes catches up from the log:
/// replication sends a bounded number of entry bytes per AppendEntries, so a run of writes
/// near the message limit never makes a message the follower refuses or one that cannot
/// arrive in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_catches_up_over_a_run_of_large_writes() {
    let _turn = SERIAL.lock().await;
    let seed = 0x1a26e;
    println!("seed {seed:#x}");
    let mut rng = Rng(seed);
    let mut c = Cluster::new("large", 3, &[]);
    for id in 1..=3 {
        c.start(id, &[1, 2, 3]);
    }
    let l = leader(&c, &[1, 2, 3], 30).await;
    let follower = if l == 3 { 2 } else { 3 };
    let dim = 1_000u32;
    const PER: u64 = 3_000;
    create_shaped(&c.url(l), "wide", dim, 1).await;
    converged(&c, &[1, 2, 3], 30).await;
    c.node(follower).kill();
    // Twelve writes of 12 MB each (the message limit is 16 MiB): 144 MB for the follower to
    // fetch from the log.
    let mut p =
        PointsClient::new(channel(&c.url(l)).await.unwrap()).max_encoding_message_size(usize::MAX);
    for b in 0..12u64 {
        let points = (b * PER..(b + 1) * PER)
            .map(|id| Point {
                id,
                vector: (0..dim).map(|_| rng.f32()).collect(),
                ..Default::default()
            })
            .collect();
        p.upsert(UpsertRequest { collection: "wide".into(), points, ..Default::default() })
            .await
            .unwrap();
    }
    c.start(follower, &[1, 2, 3]);
    let statuses = converged(&c, &[1, 2, 3], 120).await;
    let wide = statuses[0].collections.iter().find(|c| c.name == "wide").unwrap();
    println!("converged at {} with {} vectors", statuses[0].applied_index, wide.vectors);
    assert_eq!(wide.vectors, 12 * PER);
    let installs = statuses.iter().map(|s| s.snapshots_installed).sum::<u64>();
    assert_eq!(installs, 0, "the follower should catch up from the log, not a snapshot");
}
