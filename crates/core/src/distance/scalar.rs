//! Portable kernels: the reference every SIMD level is tested against, and the fallback on
//! CPUs without one. Four independent accumulators let the compiler vectorise and pipeline.

use super::cosine_from_parts;

#[inline]
pub(super) fn dot_raw(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 4];
    let (ca, ra) = a.split_at(a.len() & !3);
    let (cb, rb) = b.split_at(ca.len());
    for (x, y) in ca.chunks_exact(4).zip(cb.chunks_exact(4)) {
        for l in 0..4 {
            acc[l] += x[l] * y[l];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

pub(super) fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; 4];
    let (ca, ra) = a.split_at(a.len() & !3);
    let (cb, rb) = b.split_at(ca.len());
    for (x, y) in ca.chunks_exact(4).zip(cb.chunks_exact(4)) {
        for l in 0..4 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        let d = x - y;
        s += d * d;
    }
    s
}

pub(super) fn neg_dot(a: &[f32], b: &[f32]) -> f32 {
    -dot_raw(a, b)
}

pub(super) fn cosine(a: &[f32], b: &[f32]) -> f32 {
    cosine_from_parts(dot_raw(a, b), dot_raw(a, a), dot_raw(b, b))
}

pub(super) fn l2sq_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
    batch(q, block, out, l2sq);
}

pub(super) fn neg_dot_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
    batch(q, block, out, neg_dot);
}

pub(super) fn cosine_batch(q: &[f32], block: &[f32], out: &mut [f32]) {
    let qn = dot_raw(q, q);
    batch(q, block, out, |a, b| cosine_from_parts(dot_raw(a, b), qn, dot_raw(b, b)));
}

pub(super) fn neg_dot4_batch(qs: [&[f32]; 4], block: &[f32], out: &mut [[f32; 4]]) {
    dot4_by_pairs(qs, block, out, neg_dot);
}

/// A [`super::Dot4Fn`] from a level's pair kernel, for levels without a tiled one.
#[inline(always)]
pub(super) fn dot4_by_pairs(
    qs: [&[f32]; 4],
    block: &[f32],
    out: &mut [[f32; 4]],
    neg_dot: impl Fn(&[f32], &[f32]) -> f32,
) {
    super::check_dot4(&qs, block, out);
    let dim = qs[0].len();
    if dim == 0 {
        out.fill([0.0; 4]);
        return;
    }
    for (row, o) in block.chunks_exact(dim).zip(out.iter_mut()) {
        *o = qs.map(|q| neg_dot(q, row));
    }
}

/// Applies a pair kernel row by row; shared by every level's batch form.
#[inline(always)]
pub(super) fn batch(q: &[f32], block: &[f32], out: &mut [f32], f: impl Fn(&[f32], &[f32]) -> f32) {
    let dim = q.len();
    assert_eq!(block.len(), dim * out.len(), "block must hold out.len() rows of q.len()");
    if dim == 0 {
        out.fill(f(q, q));
        return;
    }
    for (row, o) in block.chunks_exact(dim).zip(out.iter_mut()) {
        *o = f(q, row);
    }
}
