use super::*;
use crate::rng::Rng;

const LENGTHS: &[usize] =
    &[0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 1000];
const SEED: u64 = 0x00d1_57a1;

fn reference(metric: Metric, a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    match metric {
        Metric::L2 => a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum(),
        Metric::Dot => -dot,
        Metric::Cosine => {
            let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum();
            let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum();
            if na * nb > 0.0 {
                1.0 - dot / (na * nb).sqrt()
            } else {
                1.0
            }
        }
    }
}

fn close(got: f32, want: f64, scale: f64) -> bool {
    (got as f64 - want).abs() <= 1e-4 * scale.max(1.0)
}

#[test]
fn every_level_matches_the_reference_on_awkward_lengths() {
    println!("seed {SEED:#x}");
    let mut rng = Rng::new(SEED);
    let levels = available_levels();
    assert_eq!(*levels.last().unwrap(), Level::Scalar);
    for level in levels {
        let k = table(level).expect("available level has a table");
        for &n in LENGTHS {
            for _ in 0..8 {
                let a: Vec<f32> = (0..n).map(|_| rng.normal() * 3.0).collect();
                let b: Vec<f32> = (0..n).map(|_| rng.normal() * 3.0).collect();
                let scale: f64 = a.iter().chain(&b).map(|x| (*x as f64).powi(2)).sum();
                for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
                    let want = reference(metric, &a, &b);
                    let got = (k.pair(metric))(&a, &b);
                    let tol = if metric == Metric::Cosine { 1.0 } else { scale };
                    assert!(close(got, want, tol), "{level:?} {metric} n={n}: {got} vs {want}");
                }
            }
        }
    }
}

#[test]
fn batch_forms_match_pair_forms() {
    println!("seed {SEED:#x}");
    let mut rng = Rng::new(SEED ^ 1);
    for level in available_levels() {
        let k = table(level).unwrap();
        for &dim in LENGTHS {
            for rows in [0usize, 1, 5, 33] {
                let q: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
                let block: Vec<f32> = (0..dim * rows).map(|_| rng.normal()).collect();
                for metric in [Metric::L2, Metric::Dot, Metric::Cosine] {
                    let mut out = vec![f32::NAN; rows];
                    (k.batch(metric))(&q, &block, &mut out);
                    for r in 0..rows {
                        let row = &block[r * dim..(r + 1) * dim];
                        let want = reference(metric, &q, row);
                        let scale: f64 = q.iter().chain(row).map(|x| (*x as f64).powi(2)).sum();
                        let tol = if metric == Metric::Cosine { 1.0 } else { scale };
                        assert!(close(out[r], want, tol), "{level:?} {metric} dim={dim} row={r}");
                    }
                }
            }
        }
    }
}

#[test]
fn four_query_forms_match_the_reference() {
    println!("seed {SEED:#x}");
    let mut rng = Rng::new(SEED ^ 2);
    for level in available_levels() {
        let k = table(level).unwrap();
        for &dim in LENGTHS {
            for rows in [0usize, 1, 2, 3, 6, 33] {
                let qs: Vec<Vec<f32>> =
                    (0..4).map(|_| (0..dim).map(|_| rng.normal() * 2.0).collect()).collect();
                let block: Vec<f32> = (0..dim * rows).map(|_| rng.normal() + 1.0).collect();
                let mut out = vec![[f32::NAN; 4]; rows];
                (k.neg_dot4_batch)([&qs[0], &qs[1], &qs[2], &qs[3]], &block, &mut out);
                for (r, got) in out.iter().enumerate() {
                    let row = &block[r * dim..(r + 1) * dim];
                    for (j, q) in qs.iter().enumerate() {
                        let want = reference(Metric::Dot, q, row);
                        let scale: f64 = q.iter().chain(row).map(|x| (*x as f64).powi(2)).sum();
                        assert!(
                            close(got[j], want, scale),
                            "{level:?} dim={dim} row={r} query={j}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
#[should_panic(expected = "one length")]
fn four_query_forms_reject_queries_of_different_lengths() {
    let mut out = [[0.0; 4]; 1];
    (kernels().neg_dot4_batch)(
        [&[1.0, 2.0], &[1.0, 2.0], &[1.0], &[1.0, 2.0]],
        &[1.0, 2.0],
        &mut out,
    );
}

#[test]
fn cosine_prepare_normalises_and_rejects_zero() {
    let mut v = vec![3.0, 4.0];
    assert!(Metric::Cosine.prepare(&mut v));
    assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
    let mut z = vec![0.0; 5];
    assert!(!Metric::Cosine.prepare(&mut z));
    let mut u = vec![3.0, 4.0];
    assert!(Metric::L2.prepare(&mut u));
    assert_eq!(u, vec![3.0, 4.0]);
    // Reported cosine distance of prepared vectors equals the raw cosine distance.
    let (mut a, mut b) = (vec![1.0, 2.0, 3.0], vec![-1.0, 0.5, 2.0]);
    let raw = distance(Metric::Cosine, &a, &b);
    Metric::Cosine.prepare(&mut a);
    Metric::Cosine.prepare(&mut b);
    let scanned = Metric::Cosine.report(distance(Metric::Cosine.scan_metric(), &a, &b));
    assert!((raw - scanned).abs() < 1e-5);
}

#[test]
#[should_panic(expected = "block must hold")]
fn batch_rejects_a_ragged_block() {
    let mut out = [0.0; 2];
    (kernels().l2sq_batch)(&[1.0, 2.0], &[1.0, 2.0, 3.0], &mut out);
}
