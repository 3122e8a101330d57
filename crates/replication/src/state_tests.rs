//! Crash-point enumeration of the state machine on the in-memory file system: applies,
//! checkpoint cuts and writes (with retention), compactions and a snapshot install (staging,
//! copy, rename, open, `CURRENT`), with a crash at every file operation (cleanly, with torn
//! unsynced bytes, and with a torn dying write); each reopened state must equal the model of the log prefix
//! up to the applied index it reports, and never fall behind a published checkpoint (which
//! the log may already be purged up to).

use super::*;
use crate::command::CollectionSpec;
use freshvec_core::durable::Target;
use freshvec_core::payload::{self, Condition, FieldKind, Filter, MatchValue, Payload, Value};
use freshvec_core::rng::Rng;
use freshvec_core::storage::fs::MemFs;
use freshvec_core::{IndexParams, Metric};
use openraft::{CommittedLeaderId, LogId as RaftLogId};

type Model = BTreeMap<String, BTreeMap<u64, (Vec<f32>, Payload)>>;

const DIM: usize = 4;

#[derive(Clone, Debug)]
enum Step {
    Apply(Command),
    Checkpoint,
    /// Install the checkpoint of another node's state at (our applied index + 3).
    Install,
    /// Compact every collection's vector files into a new generation.
    Compact,
}

fn spec() -> CollectionSpec {
    CollectionSpec::new(&IndexParams::new(DIM, Metric::L2), 2)
}

fn entry(index: u64, cmd: Command) -> Entry<TypeConfig> {
    Entry {
        log_id: RaftLogId::new(CommittedLeaderId::new(1, 1), index),
        payload: EntryPayload::Normal(cmd),
    }
}

fn apply_model(model: &mut Model, cmd: &Command) {
    match cmd {
        Command::CreateCollection { name, .. } => {
            model.entry(name.clone()).or_default();
        }
        Command::DropCollection { name } => {
            model.remove(name);
        }
        Command::Upsert { collection, ids, vectors } => {
            if let Some(c) = model.get_mut(collection) {
                for (id, v) in ids.iter().zip(vectors.chunks_exact(DIM)) {
                    c.insert(*id, (v.to_vec(), Payload::new()));
                }
            }
        }
        Command::UpsertPayloads { collection, ids, vectors, payloads } => {
            if let Some(c) = model.get_mut(collection) {
                for ((id, v), p) in ids.iter().zip(vectors.chunks_exact(DIM)).zip(payloads) {
                    c.insert(*id, (v.to_vec(), p.clone()));
                }
            }
        }
        Command::Delete { collection, ids } => {
            if let Some(c) = model.get_mut(collection) {
                for id in ids {
                    c.remove(id);
                }
            }
        }
        Command::DeleteMatching { collection, filter } => {
            if let Some(c) = model.get_mut(collection) {
                c.retain(|id, (_, p)| !filter.matches(*id, p));
            }
        }
        Command::SetPayload { collection, target: Target::Filter(f), payload, overwrite } => {
            if let Some(c) = model.get_mut(collection) {
                for (id, (_, p)) in c.iter_mut() {
                    if f.matches(*id, p) {
                        match overwrite {
                            true => *p = payload.clone(),
                            false => payload::value::merge(p, payload),
                        }
                    }
                }
            }
        }
        Command::CreateFieldIndex { .. } | Command::DropFieldIndex { .. } => {}
        other => unreachable!("the script does not write {other:?}"),
    }
}

fn writes(rng: &mut Rng, collection: &str, n: usize) -> Vec<Command> {
    (0..n)
        .map(|_| {
            let ids: Vec<u64> = (0..1 + rng.below(6)).map(|_| rng.below(40) as u64).collect();
            let collection = collection.to_string();
            let tag = |rng: &mut Rng| format!("t{}", rng.below(3));
            match rng.below(8) {
                0 | 1 => Command::Delete { collection, ids },
                2 => {
                    let value = MatchValue::Keyword(tag(rng));
                    let c = Condition::Match { key: "tag".into(), value };
                    Command::DeleteMatching {
                        collection,
                        filter: Filter { must: vec![c], ..Filter::default() },
                    }
                }
                3 => {
                    let value = MatchValue::Keyword(tag(rng));
                    let c = Condition::Match { key: "tag".into(), value };
                    let mut payload = Payload::new();
                    payload.insert("seen".into(), Value::Int(rng.below(100) as i64));
                    Command::SetPayload {
                        collection,
                        target: Target::Filter(Filter { must: vec![c], ..Filter::default() }),
                        payload,
                        overwrite: false,
                    }
                }
                4 => Command::CreateFieldIndex {
                    collection,
                    key: "tag".into(),
                    kind: FieldKind::Keyword,
                },
                5 => {
                    let vectors = (0..ids.len() * DIM).map(|_| rng.normal()).collect();
                    let payloads = ids
                        .iter()
                        .map(|_| Payload::from([("tag".to_string(), Value::String(tag(rng)))]))
                        .collect();
                    Command::UpsertPayloads { collection, ids, vectors, payloads }
                }
                _ => {
                    let vectors = (0..ids.len() * DIM).map(|_| rng.normal()).collect();
                    Command::Upsert { collection, ids, vectors }
                }
            }
        })
        .collect()
}

fn script(seed: u64) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut steps = vec![Step::Apply(Command::CreateCollection { name: "a".into(), spec: spec() })];
    steps.extend(writes(&mut rng, "a", 12).into_iter().map(Step::Apply));
    steps.push(Step::Checkpoint);
    steps.push(Step::Apply(Command::CreateCollection { name: "b".into(), spec: spec() }));
    steps.extend(writes(&mut rng, "b", 5).into_iter().map(Step::Apply));
    steps.extend(writes(&mut rng, "a", 5).into_iter().map(Step::Apply));
    steps.push(Step::Checkpoint);
    steps.push(Step::Compact);
    steps.extend(writes(&mut rng, "a", 3).into_iter().map(Step::Apply));
    steps.push(Step::Checkpoint);
    steps.push(Step::Apply(Command::DropCollection { name: "a".into() }));
    steps.extend(writes(&mut rng, "b", 4).into_iter().map(Step::Apply));
    steps.push(Step::Checkpoint);
    steps.push(Step::Install);
    steps.extend(writes(&mut rng, "z", 5).into_iter().map(Step::Apply));
    steps.push(Step::Checkpoint);
    steps.push(Step::Compact);
    steps.extend(writes(&mut rng, "z", 3).into_iter().map(Step::Apply));
    steps.push(Step::Checkpoint);
    steps.extend(writes(&mut rng, "z", 8).into_iter().map(Step::Apply));
    steps.push(Step::Checkpoint);
    steps.extend(writes(&mut rng, "z", 4).into_iter().map(Step::Apply));
    steps
}

/// The other node's state for an install at `index`: collection `z` written at 1..=index.
fn source(fs: &MemFs, index: u64, seed: u64) -> Option<(StateMachine, Model)> {
    let sm = StateMachine::open_with(Arc::new(fs.clone()), Path::new("/other")).ok()?;
    let mut rng = Rng::new(seed ^ 0x50);
    let mut model = Model::new();
    let mut cmds = vec![Command::CreateCollection { name: "z".into(), spec: spec() }];
    cmds.extend(writes(&mut rng, "z", index as usize - 1));
    let entries: Vec<_> = cmds
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            apply_model(&mut model, &c);
            entry(i as u64 + 1, c)
        })
        .collect();
    sm.apply_entries(entries).ok()?;
    let cut = sm.cut().ok()??;
    sm.write(cut).ok()?;
    Some((sm, model))
}

/// What a run reached before it stopped (at the crash, or at the end).
#[derive(Default)]
struct Run {
    /// The model after each applied index.
    models: BTreeMap<u64, Model>,
    /// The newest checkpoint published (a write or an install that returned).
    published: u64,
}

fn run(fs: &MemFs, steps: &[Step], seed: u64) -> Run {
    let mut out = Run::default();
    out.models.insert(0, Model::new());
    let Ok(sm) = StateMachine::open_with(Arc::new(fs.clone()), Path::new("/state")) else {
        return out;
    };
    let mut model = Model::new();
    let mut index = 0u64;
    for step in steps {
        let ok = match step {
            Step::Apply(cmd) => {
                index += 1;
                apply_model(&mut model, cmd);
                let ok = sm.apply_entries(vec![entry(index, cmd.clone())]).is_ok();
                if ok {
                    out.models.insert(index, model.clone());
                }
                ok
            }
            Step::Checkpoint => match sm.cut() {
                Ok(Some(cut)) => match sm.write(cut) {
                    Ok(c) => {
                        out.published = collection_index(&c.manifest.meta);
                        true
                    }
                    Err(_) => false,
                },
                Ok(None) => true,
                Err(_) => false,
            },
            Step::Compact => sm.collections().iter().all(|r| r.durable.compact(1.0, 0).is_ok()),
            Step::Install => {
                let at = index + 3;
                let Some((src, m)) = source(fs, at, seed) else { return out };
                let c = src.shared.current.lock().clone().unwrap();
                match sm.install(&c.manifest.meta, c.files.clone()) {
                    Ok(()) => {
                        index = at;
                        model = m;
                        out.models.insert(index, model.clone());
                        out.published = at;
                        true
                    }
                    Err(_) => false,
                }
            }
        };
        if !ok || fs.is_crashed() {
            break;
        }
    }
    out
}

fn contents(sm: &StateMachine) -> Model {
    sm.collections().iter().map(|r| (r.name.clone(), r.durable.points())).collect()
}

#[test]
fn every_crash_point_reopens_at_a_prefix_of_the_log_never_behind_a_checkpoint() {
    let seed = 0x5eed_c4a5;
    println!("seed {seed:#x}");
    let steps = script(seed);
    let dry = MemFs::new();
    let base = dry.ops();
    let full = run(&dry, &steps, seed);
    let total = dry.ops() - base;
    // The whole script ran: the final state is the model's.
    let sm = StateMachine::open_with(Arc::new(dry.reboot(None)), Path::new("/state")).unwrap();
    assert_eq!(Some(&contents(&sm)), full.models.get(&sm.applied_index()));
    assert!(sm.applied_index() >= full.published);
    drop(sm);
    let mut checked = 0u64;
    for k in 0..total {
        for variant in 0..3u64 {
            let fs = MemFs::new();
            let tear = (variant == 2).then_some(5 + (k as usize * 7) % 40);
            fs.crash_at(fs.ops() + k, tear);
            let reached = run(&fs, &steps, seed);
            assert!(fs.is_crashed(), "crash point {k} was never reached");
            let torn = (variant == 1).then_some(seed ^ k);
            let after = fs.reboot(torn);
            let sm = StateMachine::open_with(Arc::new(after.clone()), Path::new("/state"))
                .unwrap_or_else(|e| panic!("crash point {k} variant {variant}: {e}"));
            let applied = sm.applied_index();
            assert!(
                applied >= reached.published,
                "crash point {k} variant {variant}: reopened at {applied}, behind the published \
                 checkpoint {}",
                reached.published
            );
            let want = reached.models.get(&applied).unwrap_or_else(|| {
                panic!("crash point {k} variant {variant}: applied {applied} was never reached")
            });
            assert_eq!(&contents(&sm), want, "crash point {k} variant {variant}");
            let strays: Vec<String> = after
                .list(Path::new("/state"))
                .unwrap()
                .into_iter()
                .filter(|n| n.starts_with(".recv-") || n.starts_with("root-"))
                .collect();
            assert!(strays.len() == 1 && strays[0].starts_with("root-"), "{k}: {strays:?}");
            checked += 1;
        }
    }
    println!("{checked} crash points checked ({total} operation boundaries x 3)");
    assert!(checked >= 2000, "only {checked} crash points");
}
