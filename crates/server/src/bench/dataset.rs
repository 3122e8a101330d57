//! Benchmark datasets: TEXMEX folders as written by the shared generator, or the same shapes
//! generated here (a seeded Gaussian mixture or uniform cube, with exact ground truth).

use anyhow::{bail, Context};
use freshvec_core::rng::Rng;
use freshvec_core::texmex::{read_fvecs, read_ivecs};
use freshvec_core::{distance, Metric};
use rayon::prelude::*;
use std::path::Path;

#[derive(Debug)]
pub struct Dataset {
    pub dim: usize,
    pub base: Vec<f32>,
    pub updates: Vec<f32>,
    pub update_ids: Vec<u64>,
    pub queries: Vec<f32>,
    /// Exact top-k ids per query over the final state, nearest first.
    pub groundtruth: Vec<Vec<u64>>,
}

impl Dataset {
    pub fn n_base(&self) -> usize {
        self.base.len() / self.dim
    }

    pub fn n_queries(&self) -> usize {
        self.queries.len() / self.dim
    }

    pub fn read(dir: &Path) -> anyhow::Result<Dataset> {
        let f = |name: &str| dir.join(name);
        let (dim, base) = read_fvecs(&f("base.fvecs")).context("base.fvecs")?;
        let (qd, queries) = read_fvecs(&f("queries.fvecs")).context("queries.fvecs")?;
        let (_, gt) = read_ivecs(&f("groundtruth.ivecs")).context("groundtruth.ivecs")?;
        let (updates, update_ids) = if f("updates.fvecs").exists() {
            let (ud, u) = read_fvecs(&f("updates.fvecs"))?;
            let (_, ids) = read_ivecs(&f("updates_ids.ivecs"))?;
            if ud != dim && !u.is_empty() {
                bail!("updates.fvecs has dimension {ud}, base has {dim}");
            }
            (u, ids.into_iter().map(|i| i as u64).collect())
        } else {
            (Vec::new(), Vec::new())
        };
        if qd != dim {
            bail!("queries.fvecs has dimension {qd}, base has {dim}");
        }
        let nq = queries.len() / dim;
        let k = gt.len() / nq.max(1);
        let groundtruth =
            gt.chunks(k.max(1)).map(|r| r.iter().map(|&i| i as u64).collect()).collect();
        Ok(Dataset { dim, base, updates, update_ids, queries, groundtruth })
    }

    /// Generates a dataset shaped like a shared preset (`seed` or `medium`).
    pub fn generate(preset: &str, clustered: bool, seed: u64) -> anyhow::Result<Dataset> {
        let (dim, n, nu, nq) = match preset {
            "seed" => (64, 10_000, 2_000, 200),
            "medium" => (128, 200_000, 20_000, 1_000),
            other => bail!("unknown preset {other:?} (seed or medium)"),
        };
        let mut rng = Rng::new(seed);
        let centers: Vec<f32> = (0..1000 * dim).map(|_| rng.normal()).collect();
        let weights: Vec<f32> = (0..1000).map(|_| rng.normal().exp()).collect();
        let total: f32 = weights.iter().sum();
        let cdf: Vec<f32> = weights
            .iter()
            .scan(0.0, |a, w| {
                *a += w / total;
                Some(*a)
            })
            .collect();
        let scales: Vec<f32> = (0..1000).map(|_| 0.5 + rng.unit()).collect();
        let draw = |rng: &mut Rng, count: usize| -> Vec<f32> {
            let mut out = Vec::with_capacity(count * dim);
            for _ in 0..count {
                if clustered {
                    let u = rng.unit();
                    let c = cdf.partition_point(|&x| x < u).min(999);
                    out.extend((0..dim).map(|j| centers[c * dim + j] + rng.normal() * scales[c]));
                } else {
                    out.extend((0..dim).map(|_| rng.unit()));
                }
            }
            out
        };
        let base = draw(&mut rng, n);
        let update_ids: Vec<u64> = rng.sample(n, nu).into_iter().map(|i| i as u64).collect();
        let updates = draw(&mut rng, nu);
        let queries = draw(&mut rng, nq);
        let fin = apply_updates(base.clone(), &update_ids, &updates, dim);
        let groundtruth = exact_topk(&fin, &queries, dim, 10);
        Ok(Dataset { dim, base, updates, update_ids, queries, groundtruth })
    }

    /// The base with every update applied.
    pub fn final_vectors(&self) -> Vec<f32> {
        apply_updates(self.base.clone(), &self.update_ids, &self.updates, self.dim)
    }
}

/// `base` with row `ids[j]` replaced by row `j` of `updates`.
fn apply_updates(mut base: Vec<f32>, ids: &[u64], updates: &[f32], dim: usize) -> Vec<f32> {
    for (j, id) in ids.iter().enumerate() {
        let id = *id as usize;
        base[id * dim..(id + 1) * dim].copy_from_slice(&updates[j * dim..(j + 1) * dim]);
    }
    base
}

/// Exact top-k ids by squared L2 (ties by smaller id).
pub fn exact_topk(data: &[f32], queries: &[f32], dim: usize, k: usize) -> Vec<Vec<u64>> {
    queries
        .par_chunks_exact(dim)
        .map(|q| {
            let mut d: Vec<(f32, u64)> = data
                .chunks_exact(dim)
                .enumerate()
                .map(|(i, v)| (distance::distance(Metric::L2, q, v), i as u64))
                .collect();
            let k = k.min(d.len());
            if k == 0 {
                return Vec::new();
            }
            d.select_nth_unstable_by(k - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            d.truncate(k);
            d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            d.into_iter().map(|x| x.1).collect()
        })
        .collect()
}
