//! aarch64 NEON kernels. The `unsafe` is calling NEON intrinsics and reading slices through
//! raw pointers within their bounds; `super::table` only builds this table after detecting NEON.
#![allow(unsafe_code)]

use super::{cosine_from_parts, scalar, Kernels, Level};
use std::arch::aarch64::*;

#[target_feature(enable = "neon")]
unsafe fn l2sq_imp(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    let mut i = 0;
    while i + 8 <= n {
        let d0 = vsubq_f32(vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
        let d1 = vsubq_f32(vld1q_f32(pa.add(i + 4)), vld1q_f32(pb.add(i + 4)));
        acc0 = vfmaq_f32(acc0, d0, d0);
        acc1 = vfmaq_f32(acc1, d1, d1);
        i += 8;
    }
    let mut s = vaddvq_f32(vaddq_f32(acc0, acc1));
    while i < n {
        let d = *a.get_unchecked(i) - *b.get_unchecked(i);
        s += d * d;
        i += 1;
    }
    s
}

#[target_feature(enable = "neon")]
unsafe fn dot_imp(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len();
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut acc0, mut acc1) = (vdupq_n_f32(0.0), vdupq_n_f32(0.0));
    let mut i = 0;
    while i + 8 <= n {
        acc0 = vfmaq_f32(acc0, vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)));
        acc1 = vfmaq_f32(acc1, vld1q_f32(pa.add(i + 4)), vld1q_f32(pb.add(i + 4)));
        i += 8;
    }
    let mut s = vaddvq_f32(vaddq_f32(acc0, acc1));
    while i < n {
        s += *a.get_unchecked(i) * *b.get_unchecked(i);
        i += 1;
    }
    s
}

fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    // SAFETY: NEON was detected before this table was built; reads stay within the slices.
    unsafe { l2sq_imp(a, b) }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    // SAFETY: as above.
    unsafe { dot_imp(a, b) }
}

fn neg_dot(a: &[f32], b: &[f32]) -> f32 {
    -dot(a, b)
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    cosine_from_parts(dot(a, b), dot(a, a), dot(b, b))
}

fn l2sq_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
    scalar::batch(q, block, out, l2sq);
}

fn neg_dot_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
    scalar::batch(q, block, out, neg_dot);
}

fn cosine_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
    let qn = dot(q, q);
    scalar::batch(q, block, out, |a, b| cosine_from_parts(dot(a, b), qn, dot(b, b)));
}

fn neg_dot4_batch(qs: [&[f32]; 4], block: &[f32], out: &mut [[f32; 4]]) {
    scalar::dot4_by_pairs(qs, block, out, neg_dot);
}

pub(super) fn table() -> Kernels {
    Kernels {
        level: Level::Neon,
        l2sq,
        neg_dot,
        cosine,
        l2sq_batch,
        neg_dot_batch,
        cosine_batch,
        neg_dot4_batch,
    }
}
