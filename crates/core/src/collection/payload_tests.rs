//! Filtered search against brute force over the matching set, its promise of `min(k, |F|)`
//! matches on every plan, and no false positive under a randomized stream of writes.

use super::*;
use crate::distance::kernels;
use crate::payload::{Condition, FieldKind, Filter, MatchValue, Payload, Range, Value};
use crate::rng::Rng;
use crate::Encoding;

const DIM: usize = 16;

/// `n` points around 40 centres; point `i` carries `{"sel": i % 1000, "c": its centre}`.
fn collection(rng: &mut Rng, n: usize, encoding: Encoding) -> (Collection, Vec<f32>, Vec<Payload>) {
    let p = IndexParams { background_threads: 1, encoding, ..IndexParams::new(DIM, Metric::L2) };
    let c = Collection::new(p, 2).unwrap();
    let centres: Vec<f32> = (0..40 * DIM).map(|_| rng.normal() * 4.0).collect();
    let mut data = Vec::with_capacity(n * DIM);
    let mut payloads = Vec::with_capacity(n);
    for i in 0..n {
        let k = rng.below(40);
        data.extend((0..DIM).map(|j| centres[k * DIM + j] + rng.normal()));
        payloads.push(Payload::from([
            ("sel".to_string(), Value::Int((i % 1000) as i64)),
            ("c".to_string(), Value::String(format!("c{k}"))),
        ]));
    }
    c.bulk_load((0..n as u64).collect(), data.clone()).unwrap();
    c.set_payloads(&(0..n as u64).collect::<Vec<_>>(), &payloads);
    (c, data, payloads)
}

fn below(t: f64) -> Filter {
    let range = Range { lt: Some(t), ..Range::default() };
    Filter { must: vec![Condition::Range { key: "sel".into(), range }], ..Filter::default() }
}

/// The exact top `k` of the matching points, nearest first (ties by id).
fn brute(data: &[f32], payloads: &[Payload], q: &[f32], f: &Filter, k: usize) -> Vec<(u64, f32)> {
    let mut all: Vec<(u64, f32)> = (0..payloads.len())
        .filter(|&i| f.matches(i as u64, &payloads[i]))
        .map(|i| (i as u64, (kernels().l2sq)(q, &data[i * DIM..(i + 1) * DIM])))
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

#[test]
fn exact_filtered_search_equals_brute_force_over_the_matches_at_every_selectivity() {
    let seed = 0xf11;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    for encoding in [Encoding::Int8, Encoding::F32] {
        let (c, data, payloads) = collection(&mut rng, 6000, encoding);
        c.create_field_index("sel", FieldKind::Integer).unwrap();
        let none = Filter {
            must: vec![Condition::Match {
                key: "c".into(),
                value: MatchValue::Keyword("no".into()),
            }],
            ..Filter::default()
        };
        let single = Filter { must: vec![Condition::HasId(vec![4242])], ..Filter::default() };
        let cases =
            [below(1000.0), below(500.0), below(100.0), below(10.0), below(1.0), single, none];
        for (ci, f) in cases.iter().enumerate() {
            for _ in 0..20 {
                let q: Vec<f32> = (0..DIM).map(|_| rng.normal() * 4.0).collect();
                let want = brute(&data, &payloads, &q, f, 10);
                for sp in [SearchParams::exact(10), SearchParams::new(10)] {
                    let (got, report) = c.search_filtered(&q, &sp, f).unwrap();
                    assert_eq!(got.len(), want.len(), "{encoding} case {ci}: {report:?}");
                    if sp.exact || report.strategy == Strategy::Exact {
                        let ids: Vec<u64> = got.iter().map(|h| h.key).collect();
                        let want_ids: Vec<u64> = want.iter().map(|w| w.0).collect();
                        assert_eq!(ids, want_ids, "{encoding} case {ci} exact: {report:?}");
                    }
                    for h in &got {
                        assert!(
                            f.matches(h.key, &payloads[h.key as usize]),
                            "false positive {}",
                            h.key
                        );
                    }
                }
            }
        }
        assert_eq!(c.count(Some(&below(100.0))), 600);
        assert_eq!(c.count(None), 6000);
    }
}

/// Matches far from every query (the farthest centre's points) still come back, `k` of them.
#[test]
fn the_approximate_plan_returns_min_k_matches_even_when_they_lie_far_away() {
    let seed = 0xa11;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let (c, data, payloads) = collection(&mut rng, 20_000, Encoding::Int8);
    c.create_field_index("c", FieldKind::Keyword).unwrap();
    c.calibrate();
    let mut recall = (0usize, 0usize);
    for _ in 0..50 {
        let near = rng.below(20_000);
        let q: Vec<f32> = data[near * DIM..(near + 1) * DIM].to_vec();
        // The centre whose first point lies farthest from the query.
        let far = (0..40)
            .filter_map(|k| {
                let i = payloads.iter().position(|p| p["c"] == Value::String(format!("c{k}")))?;
                Some(((kernels().l2sq)(&q, &data[i * DIM..(i + 1) * DIM]), k))
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .unwrap()
            .1;
        let f = Filter {
            must: vec![Condition::Match {
                key: "c".into(),
                value: MatchValue::Keyword(format!("c{far}")),
            }],
            ..Filter::default()
        };
        let mut mixed = below(300.0);
        mixed.must.extend(f.must.clone());
        for f in [f, mixed, below(50.0), below(1000.0)] {
            let want = brute(&data, &payloads, &q, &f, 10);
            let (got, report) = c.search_filtered(&q, &SearchParams::new(10), &f).unwrap();
            assert_eq!(got.len(), want.len(), "{report:?}");
            assert!(got.iter().all(|h| f.matches(h.key, &payloads[h.key as usize])));
            recall.0 += got.iter().filter(|h| want.iter().any(|w| w.0 == h.key)).count();
            recall.1 += want.len();
        }
    }
    let r = recall.0 as f64 / recall.1 as f64;
    println!("recall@10 over the filters {r:.3}");
    assert!(r >= 0.9, "recall {r}");
}

/// Upserts with payloads, payload rewrites and deletes, with splits and merges going on in
/// the background: every filtered hit matches the model's payload, and counts are exact.
#[test]
fn no_false_positive_across_a_randomized_stream_of_payload_writes() {
    let seed = 0x5eed;
    println!("seed {seed:#x}");
    let mut rng = Rng::new(seed);
    let p = IndexParams {
        posting_size: 16,
        split_limit: 48,
        merge_limit: 6,
        background_threads: 1,
        ..IndexParams::new(DIM, Metric::L2)
    };
    let c = Collection::new(p, 2).unwrap();
    c.create_field_index("t", FieldKind::Keyword).unwrap();
    let mut model: std::collections::BTreeMap<u64, Payload> = Default::default();
    let tag = |rng: &mut Rng| Value::String(format!("t{}", rng.below(5)));
    for round in 0..60 {
        let ids: Vec<u64> = (0..50).map(|_| rng.below(1500) as u64).collect();
        match round % 3 {
            0 | 1 => {
                let rows: Vec<f32> = (0..ids.len() * DIM).map(|_| rng.normal()).collect();
                let payloads: Vec<Payload> = ids
                    .iter()
                    .map(|_| {
                        Payload::from([
                            ("t".to_string(), tag(&mut rng)),
                            ("n".into(), Value::Int(rng.below(9) as i64)),
                        ])
                    })
                    .collect();
                let rows = c.validate_upsert(&ids, &rows).unwrap();
                c.upsert_valid(&ids, &rows, &payloads).unwrap();
                for (id, p) in ids.iter().zip(&payloads) {
                    model.insert(*id, p.clone());
                }
            }
            _ => {
                let (gone, kept) = ids.split_at(25);
                c.delete(gone);
                gone.iter().for_each(|id| drop(model.remove(id)));
                let live: Vec<u64> =
                    kept.iter().copied().filter(|id| model.contains_key(id)).collect();
                let new: Vec<Payload> = live
                    .iter()
                    .map(|_| Payload::from([("t".to_string(), tag(&mut rng))]))
                    .collect();
                c.set_payloads(&live, &new);
                for (id, p) in live.iter().zip(new) {
                    model.insert(*id, p);
                }
            }
        }
        for t in 0..5 {
            let f = Filter {
                must: vec![Condition::Match {
                    key: "t".into(),
                    value: MatchValue::Keyword(format!("t{t}")),
                }],
                must_not: vec![Condition::Range {
                    key: "n".into(),
                    range: Range { gte: Some(7.0), ..Range::default() },
                }],
                ..Filter::default()
            };
            let want = model.iter().filter(|(id, p)| f.matches(**id, p)).count();
            assert_eq!(c.count(Some(&f)) as usize, want, "round {round}");
            let q: Vec<f32> = (0..DIM).map(|_| rng.normal()).collect();
            let (hits, _) = c.search_filtered(&q, &SearchParams::new(10), &f).unwrap();
            assert_eq!(hits.len(), want.min(10), "round {round}");
            for h in &hits {
                assert!(
                    f.matches(h.key, &model[&h.key]),
                    "round {round}: {} does not match",
                    h.key
                );
            }
            let (page, _) = c.scroll(Some(&f), 0, usize::MAX);
            let want_ids: Vec<u64> =
                model.iter().filter(|(id, p)| f.matches(**id, p)).map(|(id, _)| *id).collect();
            assert_eq!(page, want_ids);
        }
    }
    let stats = c.stats();
    println!("{} splits, {} merges", stats.splits, stats.merges);
}
