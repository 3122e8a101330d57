//! Quantized vectors: symmetric codes in `[-127, 127]` with one scale per vector, and integer
//! dot-product kernels over them with the same runtime dispatch as the `f32` kernels.
//!
//! This is the arithmetic of the quantized posting scan: a member stores its residual to the
//! posting centroid as codes `x` with scale `s` (residual ~ `s * x`); the query's residual to the
//! same centroid is quantized once per posting to codes `y` with scale `t`, and
//! `|q - v|^2 ~ |q - c|^2 - 2 s t (x . y) + |r|^2`. Candidates found that way are re-ranked
//! with exact `f32` distances.
//!
//! Stored codes are kept as unsigned bytes `x + 128` ([`encode`]) and query codes as signed
//! bytes ([`quantize`]): the unsigned-by-signed multiply-add instructions then take a stored row
//! as it is, and the offset is removed once per row from the query's code sum.

use std::sync::OnceLock;

/// The largest code magnitude; the kernels rely on `|code| <= 127`.
pub const CODE_MAX: i8 = 127;
/// Added to a stored code to make it an unsigned byte in `[1, 255]`.
pub const CODE_OFFSET: i32 = 128;

/// The instruction-set level of a code kernel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeLevel {
    Scalar,
    Avx2,
    Avx512Bw,
    Avx512Vnni,
}

/// Integer dot products of query codes (`i8`) with stored codes (`u8`, offset by 128), both in
/// `[-127, 127]` before the offset: exact `i32` sums of `q[i] * (row[i] - 128)`.
#[derive(Clone, Copy, Debug)]
pub struct CodeKernels {
    pub level: CodeLevel,
    pub dot: fn(&[i8], &[u8]) -> i32,
    /// One query row against a contiguous block of stored rows: `out[i] = q . block[i]`.
    pub dot_batch: fn(&[i8], &[u8], &mut [i32]),
    /// The sign scan ([`super::signs`]): `out[32 b + lane]` is the table sum of member `lane`
    /// of block `b` of `blocks`, with the tables `lut` of a [`super::signs::SignQuery`].
    pub sign_sums: fn(&[u8], &[u8], &mut [u32]),
}

/// Every code level this CPU can run, best first; the last is always [`CodeLevel::Scalar`].
pub fn available_code_levels() -> Vec<CodeLevel> {
    let mut out = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512bw") {
            if std::arch::is_x86_feature_detected!("avx512vnni") {
                out.push(CodeLevel::Avx512Vnni);
            }
            out.push(CodeLevel::Avx512Bw);
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            out.push(CodeLevel::Avx2);
        }
    }
    out.push(CodeLevel::Scalar);
    out
}

/// The code kernel table for `level`, or `None` when this CPU cannot run it.
pub fn code_table(level: CodeLevel) -> Option<CodeKernels> {
    if !available_code_levels().contains(&level) {
        return None;
    }
    Some(match level {
        CodeLevel::Scalar => CodeKernels {
            level,
            dot: scalar_dot,
            dot_batch: scalar_dot_batch,
            sign_sums: super::signs::scalar_sign_sums,
        },
        #[cfg(target_arch = "x86_64")]
        CodeLevel::Avx2 => super::x86::codes::table_avx2(),
        #[cfg(target_arch = "x86_64")]
        CodeLevel::Avx512Bw => super::x86::codes::table_avx512bw(),
        #[cfg(target_arch = "x86_64")]
        CodeLevel::Avx512Vnni => super::x86::codes::table_vnni(),
        #[allow(unreachable_patterns)]
        _ => return None,
    })
}

/// The best code kernel table for this CPU, detected once and cached.
pub fn code_kernels() -> &'static CodeKernels {
    static BEST: OnceLock<CodeKernels> = OnceLock::new();
    BEST.get_or_init(|| {
        code_table(available_code_levels()[0]).expect("the best available level has a table")
    })
}

fn scalar_dot(q: &[i8], row: &[u8]) -> i32 {
    assert_eq!(q.len(), row.len());
    q.iter().zip(row).map(|(x, y)| *x as i32 * (*y as i32 - CODE_OFFSET)).sum()
}

fn scalar_dot_batch(q: &[i8], block: &[u8], out: &mut [i32]) {
    assert_eq!(block.len(), q.len() * out.len(), "block must hold out.len() rows");
    let d = q.len();
    for (i, o) in out.iter_mut().enumerate() {
        *o = scalar_dot(q, &block[i * d..(i + 1) * d]);
    }
}

/// Quantizes `v` into `out` with one symmetric scale (largest magnitude maps to 127) and
/// returns the scale; `v ~ scale * out`, each component off by at most `scale / 2`. A zero (or
/// non-finite) vector gets scale 0 and zero codes.
pub fn quantize(v: &[f32], out: &mut [i8]) -> f32 {
    assert_eq!(v.len(), out.len());
    quantize_with(v, out, |c| c as i8)
}

/// [`quantize`] for storage: the codes offset by 128 into unsigned bytes.
pub fn encode(v: &[f32], out: &mut [u8]) -> f32 {
    assert_eq!(v.len(), out.len());
    quantize_with(v, out, |c| (c + CODE_OFFSET) as u8)
}

#[inline]
fn quantize_with<T: Copy>(v: &[f32], out: &mut [T], code: impl Fn(i32) -> T) -> f32 {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        out.fill(code(0));
        return 0.0;
    }
    let scale = max / CODE_MAX as f32;
    let inv = 1.0 / scale;
    let limit = CODE_MAX as f32;
    for (o, x) in out.iter_mut().zip(v) {
        // Round half away from zero by truncation, which compiles to one conversion where
        // `f32::round` would be a library call.
        let y = (x * inv).clamp(-limit, limit);
        *o = code((y + 0.5f32.copysign(y)) as i32);
    }
    scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    const LENGTHS: &[usize] = &[0, 1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000];

    fn codes(rng: &mut Rng, n: usize) -> Vec<i8> {
        (0..n).map(|_| (rng.below(255) as i32 - 127) as i8).collect()
    }

    fn stored(codes: &[i8]) -> Vec<u8> {
        codes.iter().map(|&c| (c as i32 + CODE_OFFSET) as u8).collect()
    }

    #[test]
    fn every_code_level_equals_the_scalar_sum_exactly() {
        let seed = 0xc0de;
        println!("seed {seed:#x}");
        let mut rng = Rng::new(seed);
        let reference = code_table(CodeLevel::Scalar).unwrap();
        for level in available_code_levels() {
            let k = code_table(level).unwrap();
            for &n in LENGTHS {
                for rows in [0usize, 1, 3, 4, 9] {
                    let q = codes(&mut rng, n);
                    let block = stored(&codes(&mut rng, n * rows));
                    let (mut got, mut want) = (vec![0; rows], vec![0; rows]);
                    (k.dot_batch)(&q, &block, &mut got);
                    (reference.dot_batch)(&q, &block, &mut want);
                    assert_eq!(got, want, "{level:?} n={n}");
                }
                // The extremes: every product at +-127 * 127.
                let (a, b) = (vec![127i8; n], vec![-127i8; n]);
                assert_eq!((k.dot)(&a, &stored(&b)), -(127 * 127) * n as i32, "{level:?} n={n}");
                assert_eq!((k.dot)(&b, &stored(&b)), 127 * 127 * n as i32, "{level:?} n={n}");
            }
        }
    }

    #[test]
    fn quantization_error_is_at_most_half_a_step() {
        let mut rng = Rng::new(9);
        println!("seed 9");
        for &n in LENGTHS {
            let v: Vec<f32> = (0..n).map(|_| rng.normal() * 4.0).collect();
            let mut c = vec![0i8; n];
            let s = quantize(&v, &mut c);
            for (x, q) in v.iter().zip(&c) {
                assert!((x - s * *q as f32).abs() <= s * 0.5 + 1e-6, "n={n}");
                assert!(q.unsigned_abs() <= 127);
            }
            let mut u = vec![0u8; n];
            assert_eq!(encode(&v, &mut u), s);
            assert_eq!(u, stored(&c), "n={n}");
        }
        let mut z = vec![5i8; 4];
        assert_eq!(quantize(&[0.0; 4], &mut z), 0.0);
        assert_eq!(z, vec![0; 4]);
    }
}
