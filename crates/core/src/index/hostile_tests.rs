//! The index handed hostile rows directly (the collection's validation bypassed): components
//! so large that squared distances overflow `f32`, NaN, and infinities, mixed with normal
//! rows. Every operation must finish, and dropping the index must not wait forever.

use super::*;
use crate::testing::{hostile_row, mixed_rows, within, Hostile, HOSTILE};
use std::collections::BTreeMap;

const DEADLINE_SECS: u64 = 20;

fn tiny_params(dim: usize, metric: Metric, encoding: Encoding, threads: usize) -> IndexParams {
    IndexParams {
        posting_size: 4,
        split_limit: 8,
        merge_limit: 3,
        encoding,
        background_threads: threads,
        max_pending_jobs: 1 << 20,
        backpressure_timeout: Duration::from_millis(200),
        ..IndexParams::new(dim, metric)
    }
}

/// Upserts, helping to run maintenance whenever admission control holds the writer back.
fn upsert(index: &Index, ids: &[u64], rows: &[f32]) {
    loop {
        match index.upsert(ids, rows) {
            Err(Error::Overloaded { .. }) => index.wait_idle(),
            other => return other.unwrap(),
        }
    }
}

/// A search's hits: at most `k`, distinct, nearest first, no NaN distance.
fn check_hits(hits: &[Scored<u64>], k: usize) {
    assert!(hits.len() <= k, "{} hits for k = {k}", hits.len());
    assert!(hits.iter().all(|h| !h.dist.is_nan()), "a NaN distance was returned: {hits:?}");
    assert!(hits.windows(2).all(|w| w[0].cmp_total(&w[1]).is_lt()), "unsorted: {hits:?}");
}

fn search_all_ways(index: &Index, q: &[f32]) {
    for sp in [
        SearchParams::new(10).with_nprobe(4),
        SearchParams::new(3).with_nprobe(64),
        SearchParams::exact(10),
    ] {
        let plan = index.plan(q, &sp);
        let _ = index.lower_bound(&plan, q);
        check_hits(&index.execute(&plan, q, &sp), sp.k);
    }
}

/// Bulk load, upserts (new ids and replacements), deletes and searches, with a fraction of
/// hostile rows; background threads or none; then the index is dropped.
fn churn(seed: u64, dim: usize, metric: Metric, encoding: Encoding, threads: usize, hostile: f32) {
    println!("seed {seed} dim {dim} {metric} {encoding} threads {threads} hostile {hostile}");
    let mut rng = Rng::new(seed);
    let index = Index::new(tiny_params(dim, metric, encoding, threads)).unwrap();
    let n = 600;
    let data = mixed_rows(&mut rng, n, dim, hostile);
    let mut live: BTreeMap<u64, ()> = (0..n as u64).map(|i| (i, ())).collect();
    index.bulk_load(&(0..n as u64).collect::<Vec<_>>(), data).unwrap();
    assert_eq!(index.len(), n);
    let mut next = n as u64;
    for round in 0..12 {
        let ids: Vec<u64> = (0..120)
            .map(|_| {
                if rng.below(3) == 0 {
                    next += 1;
                    next
                } else {
                    rng.below(next as usize) as u64
                }
            })
            .collect();
        let rows = mixed_rows(&mut rng, ids.len(), dim, hostile);
        // Batches of one id each, so no id repeats within a batch.
        for (id, row) in ids.iter().zip(rows.chunks_exact(dim)) {
            upsert(&index, &[*id], row);
            live.insert(*id, ());
        }
        let gone: Vec<u64> = (0..40).map(|_| rng.below(next as usize) as u64).collect();
        index.delete(&gone);
        for id in &gone {
            live.remove(id);
        }
        for _ in 0..4 {
            search_all_ways(&index, &mixed_rows(&mut rng, 1, dim, 0.0));
            let kind = HOSTILE[rng.below(HOSTILE.len())];
            search_all_ways(&index, &hostile_row(&mut rng, kind, dim));
        }
        if round % 4 == 3 {
            index.wait_idle();
        }
    }
    index.wait_idle();
    assert_eq!(index.len(), live.len());
    let stats = index.stats();
    println!("{stats:?}");
    // Every live vector is still held somewhere: an exact search of size `len` finds them all.
    let all = index.search(&mixed_rows(&mut rng, 1, dim, 0.0), &SearchParams::exact(live.len()));
    check_hits(&all, live.len());
    assert_eq!(all.len(), live.len());
    drop(index);
}

#[test]
fn hostile_rows_mixed_with_normal_ones_through_every_operation() {
    let mut seed = 0x6e61_6e00;
    for metric in [Metric::L2, Metric::Dot] {
        for encoding in [Encoding::F32, Encoding::Int8] {
            for threads in [0, 1] {
                seed += 1;
                within(DEADLINE_SECS, "churn", move || {
                    churn(seed, 8, metric, encoding, threads, 0.15)
                });
            }
        }
    }
}

/// The same at a dimension where coded postings are scanned by their signs first.
#[test]
fn hostile_rows_through_the_sign_scan() {
    let mut seed = 0x6e61_6e20;
    for metric in [Metric::L2, Metric::Dot] {
        for hostile in [0.15, 1.0] {
            seed += 1;
            within(DEADLINE_SECS, "churn", move || {
                churn(seed, 128, metric, Encoding::Int8, 1, hostile)
            });
        }
    }
}

#[test]
fn an_index_of_only_hostile_rows_still_works() {
    let mut seed = 0x6e61_6e40;
    for encoding in [Encoding::F32, Encoding::Int8] {
        for threads in [0, 1] {
            seed += 1;
            within(DEADLINE_SECS, "all hostile", move || {
                churn(seed, 8, Metric::L2, encoding, threads, 1.0)
            });
        }
    }
}

/// The reported case: a normal index, then upserts whose every component is 3e38 (finite,
/// but every squared distance to a normal centroid overflows to +inf). Enough of them to make
/// their posting split, and deletes to make postings merge; then the index is dropped while
/// its background thread may still be busy.
#[test]
fn overflowing_upserts_into_a_normal_index_are_placed_and_found() {
    let seed = 0x6e61_6e80;
    println!("seed {seed}");
    for encoding in [Encoding::F32, Encoding::Int8] {
        within(DEADLINE_SECS, "overflowing upserts", move || {
            let mut rng = Rng::new(seed);
            let dim = 8;
            let index = Index::new(tiny_params(dim, Metric::L2, encoding, 1)).unwrap();
            let n = 400;
            index
                .bulk_load(&(0..n).collect::<Vec<_>>(), mixed_rows(&mut rng, n as usize, dim, 0.0))
                .unwrap();
            let huge = hostile_row(&mut rng, Hostile::Huge, dim);
            for id in n..n + 40 {
                upsert(&index, &[id], &huge);
            }
            let mixed = hostile_row(&mut rng, Hostile::HugeMixed, dim);
            upsert(&index, &[n + 40], &mixed);
            index.delete(&(0..n).step_by(2).collect::<Vec<_>>());
            index.wait_idle();
            assert_eq!(index.len(), n as usize / 2 + 41);
            assert_eq!(index.get(n + 7), Some(huge.clone()));
            let hits = index.search(&huge, &SearchParams::exact(50));
            check_hits(&hits, 50);
            assert_eq!(hits[0].dist, 0.0);
            assert!(hits.iter().take(40).all(|h| (n..n + 40).contains(&h.key)), "{hits:?}");
            check_hits(&index.search(&huge, &SearchParams::new(10)), 10);
            // More of them while the background thread runs, then drop at once.
            for id in n + 41..n + 200 {
                upsert(&index, &[id], &huge);
            }
            drop(index);
        });
    }
}

/// A collection's shards take hostile rows through the path after validation, and dropping
/// the collection stops every shard's background threads.
#[test]
fn a_collection_with_hostile_rows_searches_and_drops() {
    let seed = 0x6e61_6ec0;
    println!("seed {seed}");
    within(DEADLINE_SECS, "collection", move || {
        let mut rng = Rng::new(seed);
        let dim = 8;
        let c = crate::Collection::new(tiny_params(dim, Metric::L2, Encoding::Int8, 1), 2).unwrap();
        c.bulk_load((0..300).collect(), mixed_rows(&mut rng, 300, dim, 0.0)).unwrap();
        for round in 0..6u64 {
            let ids: Vec<u64> = (0..60).map(|i| 300 + round * 60 + i).collect();
            let rows = mixed_rows(&mut rng, ids.len(), dim, 0.5);
            c.upsert_valid(&ids, &rows, &[]).unwrap();
            let q = mixed_rows(&mut rng, 1, dim, 0.0);
            let sp = SearchParams::new(10).with_nprobe(8);
            check_hits(&c.search(&q, &sp).unwrap(), 10);
            check_hits(&c.search_pruned(&q, &sp).unwrap().0, 10);
        }
        drop(c);
    });
}
