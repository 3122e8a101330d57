//! Distance kernels over `f32` with runtime SIMD dispatch.
//!
//! Every kernel exists at several instruction-set levels; [`kernels`] picks the best level the
//! CPU supports once, caches it, and hands out a table of plain function pointers. Smaller is
//! always closer: L2 is the squared Euclidean distance, dot is the negated inner product and
//! cosine is `1 - cos(a, b)`.
//!
//! All `unsafe` of this module lives in the per-architecture files (`x86.rs`, `neon.rs`).

use std::fmt;
use std::sync::OnceLock;

pub mod codes;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
pub mod signs;
#[cfg(target_arch = "x86_64")]
mod x86;

/// The similarity a collection is searched by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    /// Squared Euclidean distance.
    L2,
    /// Negated inner product (larger inner products rank first).
    Dot,
    /// `1 - cosine similarity`. Vectors are normalised on insert, so the index scans them with
    /// the dot kernel; [`Metric::Cosine`] only changes how a raw pair is compared.
    Cosine,
}

impl Metric {
    /// Parses the names the CLI and the API use (`l2`, `dot`, `cosine`).
    pub fn parse(name: &str) -> Option<Metric> {
        match name.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Some(Metric::L2),
            "dot" | "ip" => Some(Metric::Dot),
            "cosine" | "cos" => Some(Metric::Cosine),
            _ => None,
        }
    }

    /// The metric whose kernel the index scans with once vectors are prepared by
    /// [`Metric::prepare`]: cosine becomes dot over unit vectors.
    pub fn scan_metric(self) -> Metric {
        match self {
            Metric::Cosine => Metric::Dot,
            m => m,
        }
    }

    /// Brings a vector into the form the index stores: unit length under cosine, untouched
    /// otherwise. Returns false for a zero vector under cosine (it has no direction). The norm
    /// is taken in `f64`, so a tiny vector (whose `f32` squared norm would underflow) still
    /// normalises to unit length.
    pub fn prepare(self, v: &mut [f32]) -> bool {
        if self != Metric::Cosine {
            return true;
        }
        let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            return false;
        }
        let inv = 1.0 / norm;
        v.iter_mut().for_each(|x| *x = (*x as f64 * inv) as f32);
        true
    }

    /// Converts a scan distance (computed by [`Metric::scan_metric`] on prepared vectors)
    /// into the distance reported to users.
    pub fn report(self, scan_distance: f32) -> f32 {
        match self {
            Metric::Cosine => 1.0 + scan_distance,
            _ => scan_distance,
        }
    }
}

/// The largest squared norm a stored or query vector may have. Every sum the index forms stays
/// finite in `f32` with a wide margin under it: `|a - b|^2 <= 4e24` for any two accepted
/// vectors (and any centroid, a mean of them), `|a.b| <= 1e24`, and a billion such terms add
/// up to at most `4e33`, far below `f32::MAX` (about `3.4e38`).
pub const MAX_SQUARED_NORM: f64 = 1e24;

/// Why a vector's components cannot be accepted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum VectorFault {
    /// The component at this position is NaN or infinite.
    NonFinite(usize),
    /// The squared norm (computed in `f64`) exceeds [`MAX_SQUARED_NORM`].
    TooLarge(f64),
}

impl fmt::Display for VectorFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VectorFault::NonFinite(i) => write!(f, "component {i} is NaN or infinite"),
            VectorFault::TooLarge(n) => {
                write!(f, "squared norm {n:e} exceeds the limit {MAX_SQUARED_NORM:e}")
            }
        }
    }
}

/// Checks that every component is finite and the squared norm is at most
/// [`MAX_SQUARED_NORM`]: the one check every vector entering the engine or a search passes.
pub fn check_components(v: &[f32]) -> Result<(), VectorFault> {
    let mut norm2 = 0f64;
    for (i, &x) in v.iter().enumerate() {
        if !x.is_finite() {
            return Err(VectorFault::NonFinite(i));
        }
        norm2 += x as f64 * x as f64;
    }
    if norm2 > MAX_SQUARED_NORM {
        return Err(VectorFault::TooLarge(norm2));
    }
    Ok(())
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::L2 => "l2",
            Metric::Dot => "dot",
            Metric::Cosine => "cosine",
        })
    }
}

/// The instruction-set level a kernel table was built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Scalar,
    Sse2,
    Avx2,
    Avx2Fma,
    Avx512,
    Neon,
}

/// One pair of vectors of equal length.
pub type PairFn = fn(&[f32], &[f32]) -> f32;
/// One query against a contiguous row-major block: `out[i] = d(query, block[i*dim..])`.
pub type BatchFn = fn(&[f32], &[f32], &mut [f32]);
/// Four queries of one length against a contiguous row-major block:
/// `out[i][j] = -queries[j] . block[i*dim..]`. Each row is loaded once for all four, so it does
/// about half the loads per product of four [`BatchFn`] calls (for many queries against one
/// block, as the calibration's exact pass makes). Sums in another order than the pair
/// kernels: equal to `neg_dot` up to rounding.
pub type Dot4Fn = fn([&[f32]; 4], &[f32], &mut [[f32; 4]]);

/// A table of kernels for one [`Level`], each in distance form (smaller is closer).
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    pub level: Level,
    pub l2sq: PairFn,
    pub neg_dot: PairFn,
    pub cosine: PairFn,
    pub l2sq_batch: BatchFn,
    pub neg_dot_batch: BatchFn,
    pub cosine_batch: BatchFn,
    pub neg_dot4_batch: Dot4Fn,
}

impl Kernels {
    /// The pair kernel for `metric`.
    #[inline]
    pub fn pair(&self, metric: Metric) -> PairFn {
        match metric {
            Metric::L2 => self.l2sq,
            Metric::Dot => self.neg_dot,
            Metric::Cosine => self.cosine,
        }
    }

    /// The batch kernel for `metric`.
    #[inline]
    pub fn batch(&self, metric: Metric) -> BatchFn {
        match metric {
            Metric::L2 => self.l2sq_batch,
            Metric::Dot => self.neg_dot_batch,
            Metric::Cosine => self.cosine_batch,
        }
    }
}

/// The best kernel table for this CPU, detected on first use and cached for the process.
pub fn kernels() -> &'static Kernels {
    static BEST: OnceLock<Kernels> = OnceLock::new();
    BEST.get_or_init(|| {
        let forced = std::env::var("FRESHVEC_SIMD").ok();
        let levels = available_levels();
        let chosen = forced
            .as_deref()
            .and_then(|name| levels.iter().copied().find(|l| level_name(*l) == name))
            .unwrap_or(levels[0]);
        table(chosen).expect("a level from available_levels has a table")
    })
}

/// Every level this CPU can run, best first; the last is always [`Level::Scalar`].
pub fn available_levels() -> Vec<Level> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            out.push(Level::Avx512);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            out.push(Level::Avx2Fma);
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            out.push(Level::Avx2);
        }
        if std::arch::is_x86_feature_detected!("sse2") {
            out.push(Level::Sse2);
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            out.push(Level::Neon);
        }
    }
    out.push(Level::Scalar);
    out
}

/// The lowercase name of a level, as accepted by the `FRESHVEC_SIMD` override.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::Scalar => "scalar",
        Level::Sse2 => "sse2",
        Level::Avx2 => "avx2",
        Level::Avx2Fma => "avx2fma",
        Level::Avx512 => "avx512",
        Level::Neon => "neon",
    }
}

/// The kernel table for `level`, or `None` when this CPU cannot run it.
pub fn table(level: Level) -> Option<Kernels> {
    if !available_levels().contains(&level) {
        return None;
    }
    Some(match level {
        Level::Scalar => Kernels {
            level,
            l2sq: scalar::l2sq,
            neg_dot: scalar::neg_dot,
            cosine: scalar::cosine,
            l2sq_batch: scalar::l2sq_batch,
            neg_dot_batch: scalar::neg_dot_batch,
            cosine_batch: scalar::cosine_batch,
            neg_dot4_batch: scalar::neg_dot4_batch,
        },
        #[cfg(target_arch = "x86_64")]
        Level::Sse2 => x86::table_sse2(),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => x86::table_avx2(),
        #[cfg(target_arch = "x86_64")]
        Level::Avx2Fma => x86::table_avx2fma(),
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => x86::table_avx512(),
        #[cfg(target_arch = "aarch64")]
        Level::Neon => neon::table(),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// The checks every [`Dot4Fn`] makes before it reads: four queries of one length, and a block
/// of `out.len()` rows of it.
pub(crate) fn check_dot4(qs: &[&[f32]; 4], block: &[f32], out: &[[f32; 4]]) {
    let dim = qs[0].len();
    assert!(qs.iter().all(|q| q.len() == dim), "the four queries must have one length");
    assert_eq!(
        block.len(),
        dim * out.len(),
        "block must hold out.len() rows of the queries' length"
    );
}

/// Distance between two raw vectors under `metric` with the cached kernels.
#[inline]
pub fn distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    (kernels().pair(metric))(a, b)
}

/// Cosine distance from a dot product and the two squared norms; a zero vector is at
/// distance 1 from everything (it has no direction).
#[inline]
pub(crate) fn cosine_from_parts(dot: f32, na: f32, nb: f32) -> f32 {
    let denom = (na * nb).sqrt();
    if denom > 0.0 {
        1.0 - dot / denom
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests;
