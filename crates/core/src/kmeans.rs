//! Clustering for the index: hierarchical balanced k-means for bulk loads and a balanced
//! 2-means for splitting one posting. Pure functions over row-major `f32` blocks; the structure
//! of the index always uses squared L2 (cosine vectors are unit length, so it agrees there).

use crate::distance::kernels;
use crate::rng::Rng;
use crate::topk::nan_as_infinite;
use rayon::prelude::*;

/// Index and squared L2 distance of the nearest of `centroids` (row-major, `dim` wide).
pub fn nearest(centroids: &[f32], dim: usize, v: &[f32]) -> (usize, f32) {
    thread_local! {
        static DISTS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    DISTS.with(|d| {
        let d = &mut *d.borrow_mut();
        d.resize(centroids.len() / dim.max(1), 0.0);
        (kernels().l2sq_batch)(v, centroids, d);
        let mut best = (0, f32::INFINITY);
        for (i, &x) in d.iter().enumerate() {
            if x < best.1 {
                best = (i, x);
            }
        }
        best
    })
}

fn row(data: &[f32], dim: usize, i: usize) -> &[f32] {
    &data[i * dim..(i + 1) * dim]
}

/// Lloyd's k-means on the rows `idxs` of `data`, trained on at most `max_train` of them.
/// Returns `k` centroids (fewer when there are fewer rows). Empty clusters are reseeded from
/// the largest one, so no centroid is left unused.
pub fn kmeans(
    data: &[f32],
    dim: usize,
    idxs: &[u32],
    k: usize,
    iters: usize,
    max_train: usize,
    rng: &mut Rng,
) -> Vec<f32> {
    let k = k.min(idxs.len()).max(1);
    let train: Vec<u32> = if idxs.len() > max_train {
        rng.sample(idxs.len(), max_train).into_iter().map(|i| idxs[i]).collect()
    } else {
        idxs.to_vec()
    };
    let mut cent: Vec<f32> = Vec::with_capacity(k * dim);
    for i in rng.sample(train.len(), k) {
        cent.extend_from_slice(row(data, dim, train[i] as usize));
    }
    let mut assign = vec![0u32; train.len()];
    for _ in 0..iters {
        assign.par_iter_mut().zip(train.par_iter()).for_each(|(a, &t)| {
            *a = nearest(&cent, dim, row(data, dim, t as usize)).0 as u32;
        });
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (&a, &t) in assign.iter().zip(&train) {
            let a = a as usize;
            counts[a] += 1;
            for (s, x) in sums[a * dim..(a + 1) * dim].iter_mut().zip(row(data, dim, t as usize)) {
                *s += *x as f64;
            }
        }
        for c in 0..k {
            if counts[c] == 0 {
                // Reseed an empty cluster next to the biggest one, nudged so they separate.
                let big = (0..k).max_by_key(|&j| counts[j]).unwrap_or(0);
                let src: Vec<f32> = cent[big * dim..(big + 1) * dim].to_vec();
                for (j, x) in cent[c * dim..(c + 1) * dim].iter_mut().enumerate() {
                    *x = src[j] * (1.0 + 1e-3 * (rng.unit() - 0.5));
                }
                continue;
            }
            for j in 0..dim {
                cent[c * dim + j] = (sums[c * dim + j] / counts[c] as f64) as f32;
            }
        }
    }
    cent
}

/// Mean of the rows `idxs` of `data`.
pub fn mean(data: &[f32], dim: usize, idxs: &[u32]) -> Vec<f32> {
    let mut sums = vec![0f64; dim];
    for &i in idxs {
        for (s, x) in sums.iter_mut().zip(row(data, dim, i as usize)) {
            *s += *x as f64;
        }
    }
    let n = idxs.len().max(1) as f64;
    sums.into_iter().map(|s| (s / n) as f32).collect()
}

/// Hierarchical k-means: splits the rows into leaves of at most `leaf_size` by k-means with
/// `first` centroids, then recursively with branching `branch` inside oversized clusters. Returns the leaves' centroids (row-major) and, per row,
/// its leaf. Rows that k-means cannot separate (identical vectors) are cut into equal chunks,
/// so every leaf respects the size limit.
pub fn hierarchical(
    data: &[f32],
    dim: usize,
    leaf_size: usize,
    first: usize,
    branch: usize,
    rng: &mut Rng,
) -> (Vec<f32>, Vec<u32>) {
    let n = data.len().checked_div(dim).unwrap_or(0);
    let mut leaves: Vec<Vec<u32>> = Vec::new();
    let mut stack: Vec<Vec<u32>> = vec![(0..n as u32).collect()];
    let mut top = true;
    while let Some(idxs) = stack.pop() {
        if idxs.len() <= leaf_size.max(1) {
            if !idxs.is_empty() {
                leaves.push(idxs);
            }
            continue;
        }
        let fanout = if std::mem::take(&mut top) { first } else { branch };
        let k = fanout.min(idxs.len().div_ceil(leaf_size)).max(2);
        let cent = kmeans(data, dim, &idxs, k, 8, (256 * k).min(64 * k + 16_384), rng);
        let kk = cent.len() / dim.max(1);
        let labels: Vec<u32> = idxs
            .par_iter()
            .map(|&i| nearest(&cent, dim, row(data, dim, i as usize)).0 as u32)
            .collect();
        let mut parts: Vec<Vec<u32>> = vec![Vec::new(); kk];
        for (&i, &l) in idxs.iter().zip(&labels) {
            parts[l as usize].push(i);
        }
        if parts.iter().any(|p| p.len() * 20 > idxs.len() * 19) {
            // Next to no progress: the rows are (nearly) identical. Cut them into equal chunks.
            let chunk = idxs.len().div_ceil(k);
            stack.extend(idxs.chunks(chunk).map(|c| c.to_vec()));
            continue;
        }
        stack.extend(parts.into_iter().filter(|p| !p.is_empty()));
    }
    let mut centroids = Vec::with_capacity(leaves.len() * dim);
    let mut assign = vec![0u32; n];
    for (li, leaf) in leaves.iter().enumerate() {
        centroids.extend(mean(data, dim, leaf));
        for &i in leaf {
            assign[i as usize] = li as u32;
        }
    }
    (centroids, assign)
}

/// For each centroid, the `fan` nearest centroids (itself first), by squared L2.
pub fn neighbour_lists(centroids: &[f32], dim: usize, fan: usize) -> Vec<Vec<u32>> {
    let heads = centroids.len() / dim.max(1);
    let fan = fan.min(heads).max(1);
    (0..heads)
        .into_par_iter()
        .map(|h| {
            let c = row(centroids, dim, h);
            let mut d: Vec<(f32, u32)> = centroids
                .chunks_exact(dim)
                .enumerate()
                .map(|(j, o)| (nan_as_infinite((kernels().l2sq)(c, o)), j as u32))
                .collect();
            d.select_nth_unstable_by(fan - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            d.truncate(fan);
            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            d.into_iter().map(|x| x.1).collect()
        })
        .collect()
}

/// Lloyd refinement of hierarchical leaves: each row moves to the nearest centroid among its
/// leaf's `fan` neighbours, then centroids become the means of their rows. Hierarchical cuts
/// leave rows nearer a sibling's centroid than their own; a search probing the nearest
/// centroids would miss them, so this restores (local) Voronoi consistency cheaply.
pub fn refine(data: &[f32], dim: usize, centroids: &mut [f32], assign: &mut [u32], fan: usize) {
    let near = neighbour_lists(centroids, dim, fan);
    let cent: &[f32] = centroids;
    assign.par_iter_mut().enumerate().for_each(|(i, a)| {
        let v = row(data, dim, i);
        let l2 = kernels().l2sq;
        // A NaN distance to its own centroid must not keep a row from a real one.
        let mut best = (nan_as_infinite(l2(v, row(cent, dim, *a as usize))), *a);
        for &h in &near[*a as usize] {
            let d = l2(v, row(cent, dim, h as usize));
            if d < best.0 {
                best = (d, h);
            }
        }
        *a = best.1;
    });
    let heads = centroids.len() / dim.max(1);
    let mut sums = vec![0f64; heads * dim];
    let mut counts = vec![0usize; heads];
    for (i, &a) in assign.iter().enumerate() {
        counts[a as usize] += 1;
        for (s, x) in sums[a as usize * dim..][..dim].iter_mut().zip(row(data, dim, i)) {
            *s += *x as f64;
        }
    }
    for h in 0..heads {
        if counts[h] > 0 {
            for j in 0..dim {
                centroids[h * dim + j] = (sums[h * dim + j] / counts[h] as f64) as f32;
            }
        }
    }
}

/// Balanced 2-means over `n` rows: two centroids and, per row, whether it goes to the second.
/// Each side gets at least a quarter of the rows (and one row, from two rows up), so a split
/// always makes progress, even on identical vectors (then the halves share a centroid and
/// nothing is lost) or on rows whose distances overflow or are NaN.
pub fn two_means(data: &[f32], dim: usize, rng: &mut Rng) -> (Vec<f32>, Vec<f32>, Vec<bool>) {
    let n = data.len() / dim.max(1);
    let all: Vec<u32> = (0..n as u32).collect();
    let cent = kmeans(data, dim, &all, 2, 6, n, rng);
    let l2 = kernels().l2sq;
    let (c0, c1) = if cent.len() >= 2 * dim {
        (cent[..dim].to_vec(), cent[dim..2 * dim].to_vec())
    } else {
        (cent[..dim].to_vec(), cent[..dim].to_vec())
    };
    // Order rows by how much closer they are to c0 than to c1, then cut inside the balance band.
    let mut margin: Vec<(f32, u32)> = (0..n)
        .map(|i| {
            let v = row(data, dim, i);
            // Two overflowing distances (or a NaN component) give NaN: ranked last.
            (nan_as_infinite(l2(v, &c0) - l2(v, &c1)), i as u32)
        })
        .collect();
    margin.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let natural = margin.iter().filter(|m| m.0 <= 0.0).count();
    // Both sides get at least a quarter of the rows, and at least one row each when there are
    // two or more: a split that left a side empty would repeat forever.
    let (lo, hi) = if n >= 2 { ((n / 4).max(1), (n - n / 4).min(n - 1)) } else { (n, n) };
    let cut = natural.clamp(lo, hi);
    let mut side = vec![false; n];
    for &(_, i) in &margin[cut..] {
        side[i as usize] = true;
    }
    let first: Vec<u32> = margin[..cut].iter().map(|m| m.1).collect();
    let second: Vec<u32> = margin[cut..].iter().map(|m| m.1).collect();
    (mean(data, dim, &first), mean(data, dim, &second), side)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hierarchical_respects_leaf_size_and_covers_every_row() {
        let seed = 3;
        println!("seed {seed}");
        let mut rng = Rng::new(seed);
        let dim = 8;
        let data: Vec<f32> = (0..5000 * dim).map(|_| rng.normal()).collect();
        let (cent, assign) = hierarchical(&data, dim, 64, 40, 16, &mut rng);
        let leaves = cent.len() / dim;
        let mut sizes = vec![0usize; leaves];
        for &a in &assign {
            sizes[a as usize] += 1;
        }
        assert!(sizes.iter().all(|&s| (1..=64).contains(&s)), "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), 5000);
    }

    #[test]
    fn identical_rows_still_split_into_bounded_leaves() {
        let mut rng = Rng::new(5);
        let data = vec![1.5f32; 1000 * 4];
        let (_, assign) = hierarchical(&data, 4, 100, 8, 8, &mut rng);
        let mut sizes = std::collections::HashMap::new();
        for a in assign {
            *sizes.entry(a).or_insert(0) += 1;
        }
        assert!(sizes.values().all(|&s| s <= 100));
        assert_eq!(sizes.values().sum::<usize>(), 1000);
        let (c0, c1, side) = two_means(&data[..40 * 4], 4, &mut rng);
        assert_eq!(c0, c1);
        let ones = side.iter().filter(|s| **s).count();
        assert!((10..=30).contains(&ones), "{ones}");
    }

    /// Hostile rows (overflowing, NaN, infinite) mixed with normal ones, and rows that are all
    /// hostile: every clustering function finishes, and its partitions stay complete and bounded.
    #[test]
    fn clustering_finishes_on_hostile_rows() {
        use crate::testing::{hostile_row, mixed_rows, within, HOSTILE};
        let seed = 0x4a11;
        println!("seed {seed}");
        within(60, "clustering", move || {
            let mut rng = Rng::new(seed);
            let dim = 8;
            let mut sets: Vec<Vec<f32>> = vec![
                mixed_rows(&mut rng, 3000, dim, 0.1),
                mixed_rows(&mut rng, 2000, dim, 0.5),
                mixed_rows(&mut rng, 500, dim, 1.0),
            ];
            for kind in HOSTILE {
                // Every row of one kind, and the identical row repeated.
                let row = hostile_row(&mut rng, kind, dim);
                sets.push((0..400).flat_map(|_| hostile_row(&mut rng, kind, dim)).collect());
                sets.push(row.repeat(300));
            }
            for (si, data) in sets.iter().enumerate() {
                let n = data.len() / dim;
                let (mut cent, mut assign) = hierarchical(data, dim, 32, 20, 16, &mut rng);
                let leaves = cent.len() / dim;
                let mut sizes = vec![0usize; leaves];
                for &a in &assign {
                    sizes[a as usize] += 1;
                }
                assert!(sizes.iter().all(|&s| (1..=32).contains(&s)), "set {si}: {sizes:?}");
                assert_eq!(sizes.iter().sum::<usize>(), n, "set {si}");
                for _ in 0..2 {
                    refine(data, dim, &mut cent, &mut assign, 16);
                }
                assert!(assign.iter().all(|&a| (a as usize) < leaves), "set {si}");
                let lists = neighbour_lists(&cent, dim, 8);
                assert_eq!(lists.len(), leaves);
                assert!(lists.iter().all(|l| !l.is_empty() && l.len() <= 8));
                for _ in 0..20 {
                    let (c, _) = nearest(&cent, dim, &data[rng.below(n) * dim..][..dim]);
                    assert!(c < leaves);
                }
                for m in [2, 3, 4, 5, 9, 64, 200] {
                    let m = m.min(n);
                    let start = rng.below(n - m + 1);
                    let part = &data[start * dim..(start + m) * dim];
                    let (c0, c1, side) = two_means(part, dim, &mut rng);
                    assert_eq!((c0.len(), c1.len(), side.len()), (dim, dim, m));
                    let ones = side.iter().filter(|s| **s).count();
                    let lo = (m / 4).max(1);
                    assert!(ones >= lo && m - ones >= lo, "set {si}, {m} rows: {ones} on one side");
                }
            }
        });
    }

    /// A split of a few rows always leaves rows on both sides, so it always makes progress.
    #[test]
    fn two_means_of_three_identical_rows_puts_rows_on_both_sides() {
        let mut rng = Rng::new(9);
        println!("seed 9");
        for n in 2..8 {
            let (_, _, side) = two_means(&vec![0.5f32; n * 3], 3, &mut rng);
            let ones = side.iter().filter(|s| **s).count();
            assert!(ones >= 1 && ones < n, "{n} rows: {ones} on the second side");
        }
    }
}
