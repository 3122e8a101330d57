//! x86_64 kernels: AVX-512F, AVX2 with and without FMA, and SSE2.
//!
//! The `unsafe` here is of one kind: calling `#[target_feature]` functions and reading slices
//! through raw pointers within their bounds. The tables are only built by `super::table` after
//! it has checked that the CPU supports the level, which is what makes the calls sound.
#![allow(unsafe_code)]

use super::{check_dot4, cosine_from_parts, Kernels, Level};
use std::arch::x86_64::*;

/// Builds one table whose safe entry points call the `$m` module's `#[target_feature]` kernels.
macro_rules! table_fn {
    ($fn_name:ident, $m:ident, $level:expr) => {
        pub(super) fn $fn_name() -> Kernels {
            fn l2sq(a: &[f32], b: &[f32]) -> f32 {
                assert_eq!(a.len(), b.len());
                // SAFETY: this table is only handed out after the CPU check for its level.
                unsafe { $m::l2sq(a, b) }
            }
            fn neg_dot(a: &[f32], b: &[f32]) -> f32 {
                assert_eq!(a.len(), b.len());
                // SAFETY: as above.
                unsafe { -$m::dot(a, b) }
            }
            fn cosine(a: &[f32], b: &[f32]) -> f32 {
                assert_eq!(a.len(), b.len());
                // SAFETY: as above.
                unsafe { $m::cosine(a, b) }
            }
            fn l2sq_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
                check_batch(q, block, out);
                // SAFETY: as above; the block holds exactly out.len() rows of q.len().
                unsafe { $m::l2sq_batch(q, block, out) }
            }
            fn neg_dot_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
                check_batch(q, block, out);
                // SAFETY: as above.
                unsafe { $m::neg_dot_batch(q, block, out) }
            }
            fn cosine_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
                check_batch(q, block, out);
                // SAFETY: as above.
                unsafe { $m::cosine_batch(q, block, out) }
            }
            fn neg_dot4_batch(qs: [&[f32]; 4], block: &[f32], out: &mut [[f32; 4]]) {
                check_dot4(&qs, block, out);
                // SAFETY: as above; the block holds exactly out.len() rows of the queries'
                // length.
                unsafe { $m::neg_dot4_batch(qs, block, out) }
            }
            Kernels {
                level: $level,
                l2sq,
                neg_dot,
                cosine,
                l2sq_batch,
                neg_dot_batch,
                cosine_batch,
                neg_dot4_batch,
            }
        }
    };
}

fn check_batch(q: &[f32], block: &[f32], out: &[f32]) {
    assert_eq!(block.len(), q.len() * out.len(), "block must hold out.len() rows of q.len()");
}

table_fn!(table_avx512, avx512, Level::Avx512);
table_fn!(table_avx2fma, avx2fma, Level::Avx2Fma);
table_fn!(table_avx2, avx2, Level::Avx2);
table_fn!(table_sse2, sse2, Level::Sse2);

/// The batch forms, shared by every level: a loop over rows that calls the level's pair
/// kernel, compiled with the level's features so the pair kernel inlines into it.
macro_rules! batch_fns {
    ($feat:literal) => {
        #[target_feature(enable = $feat)]
        pub(super) unsafe fn l2sq_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
            let dim = q.len();
            for (i, o) in out.iter_mut().enumerate() {
                *o = l2sq(q, block.get_unchecked(i * dim..(i + 1) * dim));
            }
        }
        #[target_feature(enable = $feat)]
        pub(super) unsafe fn neg_dot_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
            let dim = q.len();
            for (i, o) in out.iter_mut().enumerate() {
                *o = -dot(q, block.get_unchecked(i * dim..(i + 1) * dim));
            }
        }
        #[target_feature(enable = $feat)]
        pub(super) unsafe fn cosine_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
            let dim = q.len();
            let qn = dot(q, q);
            for (i, o) in out.iter_mut().enumerate() {
                let row = block.get_unchecked(i * dim..(i + 1) * dim);
                *o = cosine_from_parts(dot(q, row), qn, dot(row, row));
            }
        }
        #[target_feature(enable = $feat)]
        pub(super) unsafe fn cosine(a: &[f32], b: &[f32]) -> f32 {
            cosine_from_parts(dot(a, b), dot(a, a), dot(b, b))
        }
    };
}

/// The tiled four-query kernel ([`super::Dot4Fn`]) of a level: two rows at a time against the
/// four queries, eight accumulators, so each loaded component of a row feeds four multiply-adds
/// and each loaded component of a query two. `$madd` names the level's multiply-add macro; an
/// odd last row goes through the level's `dot`.
macro_rules! dot4_fn {
    ($feat:literal, $w:literal, $zero:ident, $load:ident, $madd:ident, $hsum:ident) => {
        #[target_feature(enable = $feat)]
        pub(super) unsafe fn neg_dot4_batch(qs: [&[f32]; 4], block: &[f32], out: &mut [[f32; 4]]) {
            let dim = qs[0].len();
            let p = qs.map(|q| q.as_ptr());
            let rows = block.as_ptr();
            let n = out.len();
            let mut r = 0;
            while r + 2 <= n {
                let (x0, x1) = (rows.add(r * dim), rows.add((r + 1) * dim));
                let (mut a0, mut a1, mut a2, mut a3) = ($zero(), $zero(), $zero(), $zero());
                let (mut b0, mut b1, mut b2, mut b3) = ($zero(), $zero(), $zero(), $zero());
                let mut i = 0;
                while i + $w <= dim {
                    let (u, v) = ($load(x0.add(i)), $load(x1.add(i)));
                    let q = $load(p[0].add(i));
                    a0 = $madd!(q, u, a0);
                    b0 = $madd!(q, v, b0);
                    let q = $load(p[1].add(i));
                    a1 = $madd!(q, u, a1);
                    b1 = $madd!(q, v, b1);
                    let q = $load(p[2].add(i));
                    a2 = $madd!(q, u, a2);
                    b2 = $madd!(q, v, b2);
                    let q = $load(p[3].add(i));
                    a3 = $madd!(q, u, a3);
                    b3 = $madd!(q, v, b3);
                    i += $w;
                }
                let mut sa = [$hsum(a0), $hsum(a1), $hsum(a2), $hsum(a3)];
                let mut sb = [$hsum(b0), $hsum(b1), $hsum(b2), $hsum(b3)];
                while i < dim {
                    let (u, v) = (*x0.add(i), *x1.add(i));
                    for j in 0..4 {
                        let q = *p[j].add(i);
                        sa[j] += q * u;
                        sb[j] += q * v;
                    }
                    i += 1;
                }
                *out.get_unchecked_mut(r) = sa.map(|x| -x);
                *out.get_unchecked_mut(r + 1) = sb.map(|x| -x);
                r += 2;
            }
            if r < n {
                let row = block.get_unchecked(r * dim..(r + 1) * dim);
                *out.get_unchecked_mut(r) = qs.map(|q| -dot(q, row));
            }
        }
    };
}

mod avx512 {
    use super::*;

    batch_fns!("avx512f");

    macro_rules! fma512 {
        ($x:expr, $y:expr, $acc:expr) => {
            _mm512_fmadd_ps($x, $y, $acc)
        };
    }
    dot4_fn!("avx512f", 16, _mm512_setzero_ps, _mm512_loadu_ps, fma512, _mm512_reduce_add_ps);

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn tail_mask(rest: usize) -> __mmask16 {
        ((1u32 << rest) - 1) as __mmask16
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn l2sq(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            let d1 =
                _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)));
            acc0 = _mm512_fmadd_ps(d0, d0, acc0);
            acc1 = _mm512_fmadd_ps(d1, d1, acc1);
            i += 32;
        }
        if i + 16 <= n {
            let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
            acc0 = _mm512_fmadd_ps(d, d, acc0);
            i += 16;
        }
        if i < n {
            let m = tail_mask(n - i);
            let d = _mm512_sub_ps(
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
            );
            acc1 = _mm512_fmadd_ps(d, d, acc1);
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm512_fmadd_ps(
                _mm512_loadu_ps(pa.add(i + 16)),
                _mm512_loadu_ps(pb.add(i + 16)),
                acc1,
            );
            i += 32;
        }
        if i + 16 <= n {
            acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
            i += 16;
        }
        if i < n {
            let m = tail_mask(n - i);
            acc1 = _mm512_fmadd_ps(
                _mm512_maskz_loadu_ps(m, pa.add(i)),
                _mm512_maskz_loadu_ps(m, pb.add(i)),
                acc1,
            );
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }
}

#[inline]
#[target_feature(enable = "avx")]
fn hsum256(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    hsum128(s)
}

#[inline]
#[target_feature(enable = "sse2")]
fn hsum128(v: __m128) -> f32 {
    let hi = _mm_movehl_ps(v, v);
    let s = _mm_add_ps(v, hi);
    let s1 = _mm_shuffle_ps::<0b01>(s, s);
    _mm_cvtss_f32(_mm_add_ss(s, s1))
}

/// Pair kernels for the 256- and 128-bit families, which differ only in register width and
/// in whether a multiply-add is fused. Tails shorter than one register are done in scalar.
macro_rules! narrow_family {
    ($m:ident, $feat:literal, $w:literal, $zero:ident, $load:ident, $add:ident, $sub:ident,
     $mul:ident, $hsum:ident, fused = $fused:tt) => {
        mod $m {
            use super::*;

            batch_fns!($feat);

            macro_rules! madd {
                                        ($x:expr, $y:expr, $acc:expr) => {
                                            narrow_family!(@madd $fused, $add, $mul, $x, $y, $acc)
                                        };
                                    }
            dot4_fn!($feat, $w, $zero, $load, madd, $hsum);

            #[inline]
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn l2sq(a: &[f32], b: &[f32]) -> f32 {
                let n = a.len();
                let (pa, pb) = (a.as_ptr(), b.as_ptr());
                let (mut acc0, mut acc1) = ($zero(), $zero());
                let mut i = 0;
                while i + 2 * $w <= n {
                    let d0 = $sub($load(pa.add(i)), $load(pb.add(i)));
                    let d1 = $sub($load(pa.add(i + $w)), $load(pb.add(i + $w)));
                    acc0 = madd!(d0, d0, acc0);
                    acc1 = madd!(d1, d1, acc1);
                    i += 2 * $w;
                }
                if i + $w <= n {
                    let d = $sub($load(pa.add(i)), $load(pb.add(i)));
                    acc0 = madd!(d, d, acc0);
                    i += $w;
                }
                let mut s = $hsum($add(acc0, acc1));
                while i < n {
                    let d = *a.get_unchecked(i) - *b.get_unchecked(i);
                    s += d * d;
                    i += 1;
                }
                s
            }

            #[inline]
            #[target_feature(enable = $feat)]
            pub(super) unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
                let n = a.len();
                let (pa, pb) = (a.as_ptr(), b.as_ptr());
                let (mut acc0, mut acc1) = ($zero(), $zero());
                let mut i = 0;
                while i + 2 * $w <= n {
                    acc0 = madd!($load(pa.add(i)), $load(pb.add(i)), acc0);
                    acc1 = madd!($load(pa.add(i + $w)), $load(pb.add(i + $w)), acc1);
                    i += 2 * $w;
                }
                if i + $w <= n {
                    acc0 = madd!($load(pa.add(i)), $load(pb.add(i)), acc0);
                    i += $w;
                }
                let mut s = $hsum($add(acc0, acc1));
                while i < n {
                    s += *a.get_unchecked(i) * *b.get_unchecked(i);
                    i += 1;
                }
                s
            }
        }
    };
    (@madd true, $add:ident, $mul:ident, $x:expr, $y:expr, $acc:expr) => {
        _mm256_fmadd_ps($x, $y, $acc)
    };
    (@madd false, $add:ident, $mul:ident, $x:expr, $y:expr, $acc:expr) => {
        $add($mul($x, $y), $acc)
    };
}

narrow_family!(
    avx2fma,
    "avx2,fma",
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_add_ps,
    _mm256_sub_ps,
    _mm256_mul_ps,
    hsum256,
    fused = true
);
narrow_family!(
    avx2,
    "avx2",
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_add_ps,
    _mm256_sub_ps,
    _mm256_mul_ps,
    hsum256,
    fused = false
);
narrow_family!(
    sse2,
    "sse2",
    4,
    _mm_setzero_ps,
    _mm_loadu_ps,
    _mm_add_ps,
    _mm_sub_ps,
    _mm_mul_ps,
    hsum128,
    fused = false
);

/// Integer dot products of `i8` codes (components in `[-127, 127]`), the first step of the
/// quantized scan. Every level computes the exact `i32` sum, so each must equal the scalar
/// reference bit for bit. The `unsafe` and its justification are as above: callers reach these
/// only through [`super::codes::code_kernels`], which checks the CPU first.
pub(super) mod codes {
    use super::super::codes::{CodeKernels, CodeLevel, CODE_OFFSET};
    use super::super::signs::{checked_pairs, BLOCK};
    use std::arch::x86_64::*;

    macro_rules! code_table {
        ($fn_name:ident, $dot:path, $batch:path, $level:expr) => {
            pub(in super::super) fn $fn_name() -> CodeKernels {
                fn dot(q: &[i8], row: &[u8]) -> i32 {
                    assert_eq!(q.len(), row.len());
                    // SAFETY: this table is only handed out after the CPU check for its level.
                    unsafe { $dot(q, row) }
                }
                fn dot_batch(q: &[i8], block: &[u8], out: &mut [i32]) {
                    assert_eq!(block.len(), q.len() * out.len(), "block must hold out.len() rows");
                    // SAFETY: as above; the kernel reads only the rows of the block checked above.
                    unsafe { $batch(q, block, out) }
                }
                fn sign_sums(lut: &[u8], blocks: &[u8], out: &mut [u32]) {
                    let pairs = checked_pairs(lut, blocks, out);
                    // SAFETY: every level with a table here has AVX2 (the AVX-512 levels
                    // include it); the kernel reads only the blocks and tables checked above.
                    unsafe { sign_sums_avx2(lut, blocks, pairs, out) }
                }
                CodeKernels { level: $level, dot, dot_batch, sign_sums }
            }
        };
    }

    code_table!(table_vnni, dot_vnni, batch_vnni, CodeLevel::Avx512Vnni);
    code_table!(table_avx512bw, dot_avx512bw, batch_avx512bw, CodeLevel::Avx512Bw);
    code_table!(table_avx2, dot_avx2, batch_avx2, CodeLevel::Avx2);

    /// The row-at-a-time batch of the levels without a multi-row kernel.
    macro_rules! row_batch {
        ($name:ident, $dot:ident, $feat:literal) => {
            #[target_feature(enable = $feat)]
            unsafe fn $name(q: &[i8], block: &[u8], out: &mut [i32]) {
                let d = q.len();
                for (i, o) in out.iter_mut().enumerate() {
                    *o = $dot(q, block.get_unchecked(i * d..(i + 1) * d));
                }
            }
        };
    }

    row_batch!(batch_avx512bw, dot_avx512bw, "avx512bw");
    row_batch!(batch_avx2, dot_avx2, "avx2");

    #[inline]
    #[target_feature(enable = "avx512bw")]
    fn tail_mask(rest: usize) -> __mmask64 {
        if rest >= 64 {
            !0
        } else {
            (1u64 << rest) - 1
        }
    }

    /// `128 * sum(q)`: what the unsigned stored codes add to `sum(q * u)` over the signed ones.
    fn offset_correction(q: &[i8]) -> i32 {
        CODE_OFFSET * q.iter().map(|&x| x as i32).sum::<i32>()
    }

    /// VNNI multiplies unsigned by signed bytes, which is exactly (stored offset code, query
    /// code): one instruction per 64 codes, no sign handling, and the offset removed once per
    /// row from the query's sum.
    #[target_feature(enable = "avx512bw,avx512vnni")]
    unsafe fn dot_vnni(q: &[i8], row: &[u8]) -> i32 {
        let n = q.len();
        let mut acc = _mm512_setzero_si512();
        // The offset's share, `128 * sum(q)`, summed alongside rather than in a scalar pass.
        let mut offset = _mm512_setzero_si512();
        let offsets = _mm512_set1_epi8(i8::MIN);
        let mut i = 0;
        while i < n {
            let m = tail_mask(n - i);
            let vq = _mm512_maskz_loadu_epi8(m, q.as_ptr().add(i));
            let vr = _mm512_maskz_loadu_epi8(m, row.as_ptr().add(i) as *const i8);
            acc = _mm512_dpbusd_epi32(acc, vr, vq);
            offset = _mm512_dpbusd_epi32(offset, offsets, vq);
            i += 64;
        }
        _mm512_reduce_add_epi32(_mm512_sub_epi32(acc, offset))
    }

    /// Sums a 512-bit accumulator down to its four 128-bit lanes' sum.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fold_to_128(acc: __m512i) -> __m128i {
        let x = _mm256_add_epi32(_mm512_castsi512_si256(acc), _mm512_extracti64x4_epi64::<1>(acc));
        _mm_add_epi32(_mm256_castsi256_si128(x), _mm256_extracti128_si256::<1>(x))
    }

    /// Four rows at a time, so the four horizontal sums share their last steps.
    #[target_feature(enable = "avx512bw,avx512vnni")]
    unsafe fn batch_vnni(q: &[i8], block: &[u8], out: &mut [i32]) {
        let d = q.len();
        let rows = out.len();
        let correction = _mm_set1_epi32(offset_correction(q));
        let base = block.as_ptr() as *const i8;
        let mut r = 0;
        while r + 4 <= rows {
            let mut acc = [_mm512_setzero_si512(); 4];
            let mut i = 0;
            while i < d {
                let m = tail_mask(d - i);
                let vq = _mm512_maskz_loadu_epi8(m, q.as_ptr().add(i));
                for (j, a) in acc.iter_mut().enumerate() {
                    let vr = _mm512_maskz_loadu_epi8(m, base.add((r + j) * d + i));
                    *a = _mm512_dpbusd_epi32(*a, vr, vq);
                }
                i += 64;
            }
            let [a0, a1, a2, a3] = acc.map(|a| fold_to_128(a));
            let sums = _mm_hadd_epi32(_mm_hadd_epi32(a0, a1), _mm_hadd_epi32(a2, a3));
            _mm_storeu_si128(
                out.as_mut_ptr().add(r) as *mut __m128i,
                _mm_sub_epi32(sums, correction),
            );
            r += 4;
        }
        while r < rows {
            out[r] = dot_vnni(q, block.get_unchecked(r * d..(r + 1) * d));
            r += 1;
        }
    }

    /// `|a|` as unsigned bytes and `b` carrying the sign of `a`, so `|a| * (b sign(a)) = a * b`
    /// and the unsigned-by-signed multiply-add applies.
    #[inline]
    #[target_feature(enable = "avx512bw")]
    fn abs_and_signed(a: __m512i, b: __m512i) -> (__m512i, __m512i) {
        let negative = _mm512_movepi8_mask(a);
        (_mm512_abs_epi8(a), _mm512_mask_sub_epi8(b, negative, _mm512_setzero_si512(), b))
    }

    /// Without VNNI the pairwise multiply-add saturates at i16 for unsigned codes up to 255,
    /// so the stored codes go back to signed (flip the top bit) and the sign trick applies;
    /// pairs of products of at most 127 * 127 fit an i16.
    #[target_feature(enable = "avx512bw")]
    unsafe fn dot_avx512bw(q: &[i8], row: &[u8]) -> i32 {
        let n = q.len();
        let flip = _mm512_set1_epi8(i8::MIN);
        let mut acc = _mm512_setzero_si512();
        let mut i = 0;
        while i < n {
            let m = tail_mask(n - i);
            let vq = _mm512_maskz_loadu_epi8(m, q.as_ptr().add(i));
            let vr = _mm512_maskz_loadu_epi8(m, row.as_ptr().add(i) as *const i8);
            // Past the tail the query's zero codes cancel whatever the flip made of the row.
            let vr = _mm512_xor_si512(vr, flip);
            let (ua, sb) = abs_and_signed(vq, vr);
            let pairs = _mm512_maddubs_epi16(ua, sb);
            acc = _mm512_add_epi32(acc, _mm512_madd_epi16(pairs, _mm512_set1_epi16(1)));
            i += 64;
        }
        _mm512_reduce_add_epi32(acc)
    }

    #[target_feature(enable = "avx2")]
    unsafe fn dot_avx2(q: &[i8], row: &[u8]) -> i32 {
        let n = q.len();
        let ones = _mm256_set1_epi16(1);
        let flip = _mm256_set1_epi8(i8::MIN);
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        while i + 32 <= n {
            let va = _mm256_loadu_si256(q.as_ptr().add(i) as *const __m256i);
            let vb = _mm256_loadu_si256(row.as_ptr().add(i) as *const __m256i);
            let vb = _mm256_xor_si256(vb, flip);
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(va, va), _mm256_sign_epi8(vb, va));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
            i += 32;
        }
        let s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256::<1>(acc));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        let mut total = _mm_cvtsi128_si32(s);
        while i < n {
            total += *q.get_unchecked(i) as i32 * (*row.get_unchecked(i) as i32 - CODE_OFFSET);
            i += 1;
        }
        total
    }

    /// The sign scan (see `signs`): per pair of groups one 32-byte load (a byte per member),
    /// its two nibbles looked up in the pair's tables, the two entries (at most 127 each) added
    /// as bytes, then the even bytes (lanes 0..16) and the odd ones (lanes 16..32) added into
    /// 16-bit sums, flushed to 32-bit sums every 256 pairs so they cannot overflow.
    #[target_feature(enable = "avx2")]
    unsafe fn sign_sums_avx2(lut: &[u8], blocks: &[u8], pairs: usize, out: &mut [u32]) {
        let low = _mm256_set1_epi8(0x0F);
        let even = _mm256_set1_epi16(0x00FF);
        for (b, o) in out.chunks_exact_mut(BLOCK).enumerate() {
            let block = blocks.as_ptr().add(b * pairs * BLOCK);
            let mut wide = [_mm256_setzero_si256(); 4];
            let mut j = 0;
            while j < pairs {
                let end = (j + 256).min(pairs);
                let (mut lo_acc, mut hi_acc) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                while j < end {
                    let v = _mm256_loadu_si256(block.add(j * BLOCK) as *const __m256i);
                    let t0 = _mm256_loadu_si256(lut.as_ptr().add(j * 64) as *const __m256i);
                    let t1 = _mm256_loadu_si256(lut.as_ptr().add(j * 64 + 32) as *const __m256i);
                    let lo = _mm256_and_si256(v, low);
                    let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
                    let s =
                        _mm256_add_epi8(_mm256_shuffle_epi8(t0, lo), _mm256_shuffle_epi8(t1, hi));
                    lo_acc = _mm256_add_epi16(lo_acc, _mm256_and_si256(s, even));
                    hi_acc = _mm256_add_epi16(hi_acc, _mm256_srli_epi16::<8>(s));
                    j += 1;
                }
                for (w, acc) in wide.chunks_exact_mut(2).zip([lo_acc, hi_acc]) {
                    let a = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(acc));
                    let b = _mm256_cvtepu16_epi32(_mm256_extracti128_si256::<1>(acc));
                    w[0] = _mm256_add_epi32(w[0], a);
                    w[1] = _mm256_add_epi32(w[1], b);
                }
            }
            for (i, w) in wide.iter().enumerate() {
                _mm256_storeu_si256(o.as_mut_ptr().add(8 * i) as *mut __m256i, *w);
            }
        }
    }
}
