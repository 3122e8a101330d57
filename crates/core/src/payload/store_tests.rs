//! The store against brute force: after every batch of random writes, `matching` equals
//! evaluating the filter on every live payload, for random filters over indexed and
//! unindexed keys of mixed types.

use super::*;
use crate::payload::filter::{MinShould, MAX_VALUES};
use crate::rng::Rng;

fn value(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => Value::Null,
        1 => Value::Bool(rng.below(2) == 0),
        2 | 3 => Value::Int(rng.below(12) as i64 - 2),
        4 => Value::Double(rng.below(24) as f64 / 2.0 - 2.0),
        5 | 6 => Value::String(format!("s{}", rng.below(6))),
        7 => Value::String(format!("2024-0{}-01T00:00:00Z", 1 + rng.below(9))),
        _ => Value::List((0..rng.below(3)).map(|_| value(rng)).collect()),
    }
}

fn payload(rng: &mut Rng) -> Payload {
    let mut p = Payload::new();
    for key in ["a", "b", "c", "d"] {
        if rng.below(4) != 0 {
            p.insert(key.to_string(), value(rng));
        }
    }
    if rng.below(3) == 0 {
        p.insert("o".to_string(), Value::Object(Payload::from([("x".to_string(), value(rng))])));
    }
    p
}

fn key(rng: &mut Rng) -> String {
    ["a", "b", "c", "d", "o.x", "none"][rng.below(6)].to_string()
}

fn condition(rng: &mut Rng, depth: usize) -> Condition {
    let k = key(rng);
    let bound = |rng: &mut Rng| Some(rng.below(24) as f64 / 2.0 - 3.0);
    match rng.below(if depth > 2 { 10 } else { 11 }) {
        0 => Condition::Match { key: k, value: MatchValue::Keyword(format!("s{}", rng.below(6))) },
        1 => Condition::Match { key: k, value: MatchValue::Integer(rng.below(12) as i64 - 2) },
        2 => Condition::Match { key: k, value: MatchValue::Bool(rng.below(2) == 0) },
        3 => Condition::MatchAny {
            key: k,
            values: match rng.below(2) {
                0 => {
                    MatchValues::Keywords((0..1 + rng.below(3)).map(|i| format!("s{i}")).collect())
                }
                _ => MatchValues::Integers((0..1 + rng.below(3)).map(|i| i as i64).collect()),
            },
        },
        4 => Condition::MatchExcept {
            key: k,
            values: match rng.below(2) {
                0 => MatchValues::Keywords(vec!["s1".into(), "s2".into()]),
                _ => MatchValues::Integers(vec![0, 1, 2]),
            },
        },
        5 | 6 => {
            let mut r = Range::default();
            match rng.below(4) {
                0 => r.gt = bound(rng),
                1 => r.gte = bound(rng),
                2 => r.lt = bound(rng),
                _ => (r.gte, r.lt) = (bound(rng), bound(rng)),
            }
            if rng.below(3) == 0 {
                r.lte = bound(rng);
            }
            Condition::Range { key: k, range: r }
        }
        7 => {
            let t = parse_datetime(&format!("2024-0{}-01", 1 + rng.below(9))).unwrap() as f64;
            Condition::DatetimeRange { key: k, range: Range { gte: Some(t), ..Range::default() } }
        }
        8 => match rng.below(2) {
            0 => Condition::IsEmpty { key: k },
            _ => Condition::IsNull { key: k },
        },
        9 => Condition::HasId((0..1 + rng.below(20)).map(|_| rng.below(400) as u64).collect()),
        _ => Condition::Filter(filter(rng, depth + 1)),
    }
}

use crate::payload::filter::parse_datetime;

fn filter(rng: &mut Rng, depth: usize) -> Filter {
    let list = |rng: &mut Rng, n: usize| {
        (0..rng.below(n)).map(|_| condition(rng, depth)).collect::<Vec<_>>()
    };
    let mut f = Filter {
        must: list(rng, 3),
        should: list(rng, 3),
        must_not: list(rng, 2),
        min_should: None,
    };
    if rng.below(4) == 0 {
        let conditions: Vec<Condition> =
            (0..1 + rng.below(3)).map(|_| condition(rng, depth)).collect();
        let min_count = 1 + rng.below(conditions.len());
        f.min_should = Some(MinShould { conditions, min_count });
    }
    f
}

#[test]
fn matching_equals_brute_force_over_random_writes_filters_and_indexes() {
    let seed = 0x51_0e;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let mut store = ShardPayloads::new();
    // The model: slot -> (id, payload); slot i holds id 1000 + i.
    let mut model: BTreeMap<u32, (u64, Payload)> = BTreeMap::new();
    store.create_index("a", FieldKind::Keyword);
    store.create_index("b", FieldKind::Integer);
    let mut checked = 0;
    for round in 0..40 {
        for _ in 0..60 {
            let slot = rng.below(400) as u32;
            if rng.below(5) == 0 {
                store.remove(slot);
                model.remove(&slot);
            } else {
                let p = payload(&mut rng);
                store.set(slot, 1000 + slot as u64, &p);
                model.insert(slot, (1000 + slot as u64, p));
            }
        }
        match round {
            10 => assert!(store.create_index("c", FieldKind::Float)),
            15 => assert!(store.create_index("d", FieldKind::Bool)),
            20 => assert!(store.create_index("o.x", FieldKind::Datetime)),
            25 => assert!(store.drop_index("a")),
            30 => assert!(store.create_index("a", FieldKind::Integer)),
            _ => {}
        }
        assert!(!store.create_index("b", FieldKind::Keyword), "a second index on a key");
        for _ in 0..60 {
            let f = filter(&mut rng, 1);
            f.validate().unwrap_or_else(|e| {
                // Generated filters are within the limits unless a list came out empty.
                assert!(e.to_string().contains("filter"), "{e}");
            });
            let got = store.matching(&f);
            let want: RoaringBitmap =
                model.iter().filter(|(_, (id, p))| f.matches(*id, p)).map(|(s, _)| *s).collect();
            assert_eq!(got, want, "round {round}: {f:?}");
            let ids: Vec<u64> = store.scroll(Some(&got), 1100, 30).iter().map(|x| x.0).collect();
            let want_ids: Vec<u64> =
                want.iter().map(|s| 1000 + s as u64).filter(|&id| id >= 1100).take(30).collect();
            assert_eq!(ids, want_ids);
            checked += 1;
        }
        assert_eq!(store.len(), model.len());
        for (slot, (_, p)) in &model {
            assert_eq!(store.get(*slot).as_ref(), Some(p));
        }
    }
    println!("{checked} filters checked; {} bytes", store.memory_bytes());
    let _ = MAX_VALUES;
}

#[test]
fn integer_bounds_round_inward() {
    let r = |gt, gte, lt, lte| Range { gt, gte, lt, lte };
    assert_eq!(int_bounds(&r(Some(2.5), None, None, None)).unwrap().0, 3);
    assert_eq!(int_bounds(&r(Some(2.0), None, None, None)).unwrap().0, 3);
    assert_eq!(int_bounds(&r(None, Some(2.5), None, None)).unwrap().0, 3);
    assert_eq!(int_bounds(&r(None, None, Some(2.5), None)).unwrap().1, 2);
    assert_eq!(int_bounds(&r(None, None, Some(2.0), None)).unwrap().1, 1);
    assert_eq!(int_bounds(&r(None, None, None, Some(2.5))).unwrap().1, 2);
    assert_eq!(int_bounds(&r(Some(2.0), None, Some(3.0), None)), None);
    assert_eq!(int_bounds(&r(None, Some(1e300), None, None)), None);
    assert_eq!(int_bounds(&r(None, None, Some(-1e300), None)), None);
}
