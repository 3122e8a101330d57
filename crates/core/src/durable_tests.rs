use super::*;
use crate::index::SearchParams;
use crate::payload::{Condition, MatchValue, Range, Value};
use crate::rng::Rng;
use crate::storage::fs::MemFs;

const DIM: usize = 4;

fn params(encoding: Encoding) -> IndexParams {
    IndexParams {
        posting_size: 8,
        split_limit: 16,
        merge_limit: 2,
        background_threads: 1,
        encoding,
        ..IndexParams::new(DIM, Metric::L2)
    }
}

/// A step of a test workload: a write, a checkpoint, or a compaction of the vector files.
#[derive(Clone, Debug)]
enum Step {
    Write(Op),
    Checkpoint,
    Compact,
}

fn workload(seed: u64, n: usize, id_space: u64) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            if i % 60 == 59 {
                return Step::Checkpoint;
            }
            if i % 50 == 25 {
                return Step::Compact;
            }
            // Now and then a batch large enough to apply while its fsync runs.
            if i == 3 {
                return Step::Write(Op::CreateFieldIndex {
                    key: "tag".into(),
                    kind: FieldKind::Keyword,
                });
            }
            let k = if i % 37 == 36 { 70 } else { 1 + rng.below(4) };
            let ids: Vec<u64> = (0..k).map(|_| rng.below(id_space as usize) as u64).collect();
            let filter = |rng: &mut Rng| {
                let tag = MatchValue::Keyword(format!("t{}", rng.below(4)));
                let range = Range { lt: Some(rng.below(10) as f64), ..Range::default() };
                let c = match rng.below(2) {
                    0 => Condition::Match { key: "tag".into(), value: tag },
                    _ => Condition::Range { key: "n".into(), range },
                };
                Filter { must: vec![c], ..Filter::default() }
            };
            match rng.below(12) {
                0 | 1 => Step::Write(Op::Delete { ids }),
                2 => Step::Write(Op::DeleteMatching { filter: filter(&mut rng) }),
                3 => Step::Write(Op::SetPayload {
                    target: Target::Filter(filter(&mut rng)),
                    payload: test_payload(&mut rng),
                    overwrite: rng.below(2) == 0,
                }),
                4 => Step::Write(Op::DeletePayloadKeys {
                    target: Target::Filter(filter(&mut rng)),
                    keys: vec!["n".into()],
                }),
                r => {
                    let vectors = (0..k * DIM).map(|_| rng.normal()).collect();
                    let payloads = match r % 2 {
                        0 => (0..k).map(|_| test_payload(&mut rng)).collect(),
                        _ => Vec::new(),
                    };
                    Step::Write(Op::Upsert { ids, vectors, payloads })
                }
            }
        })
        .collect()
}

fn test_payload(rng: &mut Rng) -> Payload {
    let mut p = Payload::new();
    p.insert("tag".into(), Value::String(format!("t{}", rng.below(4))));
    p.insert("n".into(), Value::Int(rng.below(10) as i64));
    if rng.below(3) == 0 {
        p.insert("text".into(), Value::String("x".repeat(rng.below(40))));
    }
    p
}

type Model = BTreeMap<u64, (Vec<f32>, Payload)>;

fn apply_model(model: &mut Model, op: &Op) {
    let matching = |model: &Model, f: &Filter| -> Vec<u64> {
        model.iter().filter(|(id, (_, p))| f.matches(**id, p)).map(|(id, _)| *id).collect()
    };
    match op {
        Op::Upsert { ids, vectors, payloads } => {
            for (i, (id, v)) in ids.iter().zip(vectors.chunks_exact(DIM)).enumerate() {
                model.insert(*id, (v.to_vec(), payloads.get(i).cloned().unwrap_or_default()));
            }
        }
        Op::Delete { ids } => {
            for id in ids {
                model.remove(id);
            }
        }
        Op::DeleteMatching { filter } => {
            for id in matching(model, filter) {
                model.remove(&id);
            }
        }
        Op::SetPayload { target: Target::Filter(f), payload, overwrite } => {
            for id in matching(model, f) {
                let p = &mut model.get_mut(&id).unwrap().1;
                match overwrite {
                    true => *p = payload.clone(),
                    false => payload::value::merge(p, payload),
                }
            }
        }
        Op::DeletePayloadKeys { target: Target::Filter(f), keys } => {
            for id in matching(model, f) {
                payload::value::delete_keys(&mut model.get_mut(&id).unwrap().1, keys);
            }
        }
        Op::CreateFieldIndex { .. } | Op::DropFieldIndex { .. } => {}
        _ => unreachable!("the workload names no ids in payload writes"),
    }
}

fn dir() -> &'static Path {
    Path::new("data/coll")
}

#[test]
fn reopening_restores_the_checkpoint_and_replays_the_journal() {
    for encoding in [Encoding::Int8, Encoding::F32] {
        println!("encoding {encoding}, seed 5");
        let fs = MemFs::new();
        let dc =
            DurableCollection::create(Arc::new(fs.clone()), dir(), params(encoding), 2).unwrap();
        let mut model = BTreeMap::new();
        let mut at_checkpoint = 0;
        for step in workload(5, 400, 300) {
            match step {
                Step::Write(op) => {
                    dc.apply(&op).unwrap();
                    apply_model(&mut model, &op);
                }
                Step::Checkpoint => at_checkpoint = dc.checkpoint().unwrap(),
                Step::Compact => assert!(!dc.compact(1.0, 0).unwrap().is_empty()),
            }
        }
        assert_eq!(dc.points(), model);
        // A refused batch changes nothing and is not logged.
        let bad = Op::upsert(vec![1], vec![f32::NAN; DIM]);
        assert!(matches!(dc.apply(&bad), Err(DurableError::Invalid(_))));
        let huge = Op::upsert(vec![1], vec![3e38; DIM]);
        let refused = dc.apply(&huge);
        assert!(matches!(refused, Err(DurableError::Invalid(crate::Error::TooLarge { .. }))));
        let applied = dc.applied_index();
        drop(dc);
        let fs = fs.reboot(None);
        let dc = DurableCollection::open(Arc::new(fs.clone()), dir(), params(encoding)).unwrap();
        assert_eq!(dc.restored_from(), at_checkpoint);
        assert_eq!(dc.applied_index(), applied);
        assert_eq!(dc.points(), model);
        for (id, (v, _)) in model.iter().take(20) {
            let hits = dc.collection().search(v, &SearchParams::exact(1)).unwrap();
            assert_eq!((hits[0].key, hits[0].dist), (*id, 0.0));
        }
        // A damaged newest checkpoint is skipped for the older one plus the journal.
        dc.close().unwrap();
        let fs = fs.reboot(None);
        let ckdir = dir().join("checkpoints");
        let newest = fs.list(&ckdir).unwrap().into_iter().filter(|n| n.starts_with("ckpt-")).max();
        let manifest = ckdir.join(newest.unwrap()).join("manifest");
        let mut bytes = fs.read(&manifest).unwrap();
        let n = bytes.len();
        bytes[n - 3] ^= 0x40;
        write_atomic(&fs, &manifest, &bytes).unwrap();
        let dc = DurableCollection::open(Arc::new(fs), dir(), params(encoding)).unwrap();
        assert!(dc.restored_from() < applied);
        assert_eq!(dc.points(), model);
    }
}

/// Crashes a seeded workload at every file-operation boundary (cleanly, with torn unsynced
/// bytes, and with a torn dying write) and checks every recovery: each acknowledged write is
/// there, and the write in flight is there entirely or not at all.
#[test]
fn every_crash_point_recovers_every_acknowledged_write() {
    let seed = 0xc4a5;
    println!("seed {seed:#x}");
    let steps = workload(seed, 320, 64);
    let dry = MemFs::new();
    let dc =
        DurableCollection::create(Arc::new(dry.clone()), dir(), params(Encoding::Int8), 2).unwrap();
    let base = dry.ops();
    for step in &steps {
        match step {
            Step::Write(op) => drop(dc.apply(op).unwrap()),
            Step::Checkpoint => drop(dc.checkpoint().unwrap()),
            Step::Compact => drop(dc.compact(1.0, 0).unwrap()),
        }
    }
    let total = dry.ops() - base;
    let mut checked = 0u64;
    for k in 0..total {
        for variant in 0..3u64 {
            let fs = MemFs::new();
            let dc =
                DurableCollection::create(Arc::new(fs.clone()), dir(), params(Encoding::Int8), 2)
                    .unwrap();
            let tear = (variant == 2).then_some(5 + (k as usize * 7) % 40);
            fs.crash_at(fs.ops() + k, tear);
            let mut model = BTreeMap::new();
            let mut in_flight = None;
            for step in &steps {
                let ok = match step {
                    Step::Write(op) => match dc.apply(op) {
                        Ok(_) => {
                            apply_model(&mut model, op);
                            true
                        }
                        Err(_) => {
                            in_flight = Some(op.clone());
                            false
                        }
                    },
                    Step::Checkpoint => dc.checkpoint().is_ok(),
                    Step::Compact => dc.compact(1.0, 0).is_ok(),
                };
                if !ok {
                    break;
                }
            }
            assert!(fs.is_crashed(), "crash point {k} was never reached");
            drop(dc);
            let torn = (variant == 1).then_some(seed ^ k);
            let after = fs.reboot(torn);
            let dc = DurableCollection::open(Arc::new(after), dir(), params(Encoding::Int8))
                .unwrap_or_else(|e| panic!("crash point {k} variant {variant}: {e}"));
            let got = dc.points();
            let mut with = model.clone();
            if let Some(op) = &in_flight {
                apply_model(&mut with, op);
            }
            assert!(
                got == model || got == with,
                "crash point {k} variant {variant}: recovered state is neither the acknowledged \
                 writes nor those plus the write in flight"
            );
            checked += 1;
        }
    }
    println!("{checked} crash points checked ({total} operation boundaries x 3)");
    assert!(checked >= 2000, "only {checked} crash points");
}

#[test]
fn ops_round_trip_and_decoding_arbitrary_bytes_never_panics() {
    let seed = 0x0b5;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    for step in workload(seed, 200, 1000) {
        if let Step::Write(op) = step {
            let mut bytes = Vec::new();
            op.encode(&mut bytes);
            assert_eq!(Op::decode(&bytes, DIM), Some(op));
            for _ in 0..20 {
                let mut bad = bytes.clone();
                let i = rng.below(bad.len());
                bad[i] = rng.below(256) as u8;
                bad.truncate(rng.below(bad.len() + 1));
                let _ = Op::decode(&bad, DIM);
            }
        }
    }
    for _ in 0..5000 {
        let bytes: Vec<u8> = (0..rng.below(64)).map(|_| rng.below(256) as u8).collect();
        let _ = Op::decode(&bytes, DIM);
    }
}

#[test]
fn replicated_mode_applies_at_given_indexes_and_restores_its_checkpoint() {
    let fs = MemFs::new();
    let p = params(Encoding::Int8);
    let dc =
        DurableCollection::create_replicated(Arc::new(fs.clone()), dir(), p.clone(), 2).unwrap();
    let mut model = BTreeMap::new();
    let mut index = 0;
    for (k, step) in workload(9, 120, 80).into_iter().enumerate() {
        if let Step::Write(op) = step {
            index += 1 + (k as u64 % 3);
            dc.apply_at(index, &op).unwrap();
            apply_model(&mut model, &op);
        }
    }
    assert!(dc.apply(&Op::Delete { ids: vec![1] }).is_err(), "no journal of its own");
    assert!(dc.apply_at(index, &Op::Delete { ids: vec![1] }).is_err(), "index not increasing");
    assert_eq!(dc.checkpoint().unwrap(), index);
    assert!(!fs.exists(&dir().join("journal")));
    let fs = fs.reboot(None);
    let dc = DurableCollection::open_replicated(Arc::new(fs), dir(), p, index).unwrap();
    assert_eq!((dc.applied_index(), dc.restored_from()), (index, index));
    assert_eq!(dc.points(), model);
}

/// Damage that every checkpoint shares (here: imported vectors, which only checkpoints hold)
/// refuses the open, naming the file; it never starts the collection empty.
#[test]
fn damage_no_checkpoint_survives_refuses_the_open() {
    let fs = MemFs::new();
    let dc =
        DurableCollection::create(Arc::new(fs.clone()), dir(), params(Encoding::F32), 1).unwrap();
    let ids: Vec<u64> = (0..200).collect();
    let vectors: Vec<f32> = (0..200 * DIM).map(|i| (i % 17) as f32).collect();
    dc.import(ids, vectors).unwrap();
    for i in 0..5u64 {
        dc.apply(&Op::upsert(vec![1000 + i], vec![1.0; DIM])).unwrap();
    }
    dc.checkpoint().unwrap();
    drop(dc);
    let fs = fs.reboot(None);
    let vpath = dir().join("vectors/shard-000/gen-000000.vec");
    let mut bytes = fs.read(&vpath).unwrap();
    bytes[16 + 8 + 20 + 4] ^= 0x01;
    write_atomic(&fs, &vpath, &bytes).unwrap();
    let err = DurableCollection::open(Arc::new(fs.clone()), dir(), params(Encoding::F32))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no checkpoint verifies") && err.contains("gen-000000.vec"), "{err}");
    assert_eq!(fs.read(&vpath).unwrap(), bytes, "a refused open changed the vector file");
}

/// A newest checkpoint that does not verify is removed when an older one is restored, so it
/// can never be chosen later, after its vector file generation has been written afresh.
#[test]
fn a_refused_checkpoint_is_removed_and_its_generation_never_confused() {
    let seed = 7;
    println!("seed {seed}");
    let p = || params(Encoding::F32);
    let fs = MemFs::new();
    let dc = DurableCollection::create(Arc::new(fs.clone()), dir(), p(), 1).unwrap();
    let mut model = BTreeMap::new();
    let mut rng = Rng::new(seed);
    let mut writes = |dc: &DurableCollection, model: &mut Model| {
        for _ in 0..40 {
            let id = rng.below(50) as u64;
            let op = match rng.below(6) {
                0 => Op::Delete { ids: vec![id] },
                _ => Op::upsert(vec![id], (0..DIM).map(|_| rng.normal()).collect()),
            };
            dc.apply(&op).unwrap();
            apply_model(model, &op);
        }
    };
    let ckdir = dir().join("checkpoints");
    writes(&dc, &mut model);
    let c1 = dc.checkpoint().unwrap();
    writes(&dc, &mut model);
    dc.compact(1.0, 0).unwrap();
    writes(&dc, &mut model);
    let c2 = dc.checkpoint().unwrap();
    drop(dc);
    // Damage generation 1 below C2's mark: C2 is refused, C1 plus the journal restores.
    let fs = fs.reboot(None);
    let g1 = dir().join("vectors/shard-000/gen-000001.vec");
    let mut b = fs.read(&g1).unwrap();
    b[16 + 8 + 20 + 4] ^= 1;
    write_atomic(&fs, &g1, &b).unwrap();
    let dc = DurableCollection::open(Arc::new(fs.clone()), dir(), p()).unwrap();
    assert_eq!((dc.restored_from(), dc.points()), (c1, model.clone()));
    assert!(!fs.exists(&ckdir.join(ckpt_name(c2))), "the refused checkpoint is still there");
    // Generation 1 is written afresh by the next compaction and named by C3.
    writes(&dc, &mut model);
    dc.compact(1.0, 0).unwrap();
    writes(&dc, &mut model);
    let c3 = dc.checkpoint().unwrap();
    drop(dc);
    // With C3 damaged, C1 (still kept, its generation still there) restores everything.
    let fs = fs.reboot(None);
    let m = ckdir.join(ckpt_name(c3)).join("manifest");
    let mut b = fs.read(&m).unwrap();
    let n = b.len();
    b[n - 3] ^= 0x40;
    write_atomic(&fs, &m, &b).unwrap();
    let dc = DurableCollection::open(Arc::new(fs), dir(), p()).unwrap();
    assert_eq!((dc.restored_from(), dc.points()), (c1, model));
}

/// One instance at a time: a second open of a directory in use is refused, and succeeds once
/// the first is closed.
#[test]
fn a_second_open_of_a_directory_in_use_is_refused() {
    use crate::storage::fs::RealFs;
    let root = std::env::temp_dir().join(format!("freshvec-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let d = root.join("coll");
    let first = DurableCollection::create(Arc::new(RealFs), &d, params(Encoding::Int8), 1).unwrap();
    first.apply(&Op::upsert(vec![1], vec![0.5; DIM])).unwrap();
    let err = DurableCollection::open(Arc::new(RealFs), &d, params(Encoding::Int8)).unwrap_err();
    assert!(matches!(err, DurableError::Locked(_)), "{err}");
    first.close().unwrap();
    let again = DurableCollection::open(Arc::new(RealFs), &d, params(Encoding::Int8)).unwrap();
    assert_eq!(again.points().len(), 1);
    drop(again);
    std::fs::remove_dir_all(&root).unwrap();
}
