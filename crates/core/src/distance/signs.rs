//! Sign codes: one bit per component of a member's coded residual, packed so that a lookup-table
//! kernel estimates the query's inner product with 32 members at once, from an eighth of the
//! bytes of the `int8` codes.
//!
//! A member's residual `r ~ s x` ([`super::codes`]) has signs `b = sign(x)`; for a query `q`,
//! `q.r ~ f (q.b)` with `f = |r|^2 / sum |r_i|` (the projection of `r` onto its sign vector,
//! scaled back), off by about `|q| e` with `e = |r| sqrt((1 - a^2) / (a^2 (d - 1)))` and
//! `a = sum |r_i| / (|r| sqrt d)` the cosine between `r` and its signs. `q.b` comes from the
//! lookup tables: the components are taken four at a time (a group), each group's four signs
//! are a nibble, and a table per group holds the sum of its positive components for each of
//! the 16 nibbles, quantized to bytes; a member's sum is one table lookup per group.
//!
//! Layout: members in blocks of [`BLOCK`]; a block stores, for each pair of groups, 32 bytes,
//! one per member, the pair's first group in the low nibble and the second in the high. Member
//! lanes `0..16` sit at the even bytes and `16..32` at the odd ones, so a kernel that widens
//! the even and the odd bytes separately gets lanes `0..16` and `16..32` in order.

use super::codes::CODE_OFFSET;
use super::kernels;
use std::cell::RefCell;

thread_local! {
    /// A member's codes and their signs as f32, for [`Factors::push`].
    static SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Members per block of sign codes.
pub const BLOCK: usize = 32;
/// Components per group (one nibble).
const GROUP: usize = 4;
/// The largest table entry, so the two nibbles of a byte sum to at most 254.
const ENTRY_MAX: f32 = 127.0;

/// How many of its error bars the sign estimate of a member's `q.r` is widened by before it
/// rules the member out.
const BOUND: f32 = 3.0;

/// Below this dimension a member's codes are a cache line or two, the sign pass cannot pay for
/// itself, and postings keep no signs.
const MIN_DIM: usize = 96;

/// Whether postings of `dim`-component members keep and scan signs.
pub fn used(dim: usize) -> bool {
    dim >= MIN_DIM
}

/// Pairs of groups a `dim`-component member spans.
pub fn pairs(dim: usize) -> usize {
    dim.div_ceil(2 * GROUP)
}

/// Bytes of one block of `dim`-component members.
pub fn block_bytes(dim: usize) -> usize {
    pairs(dim) * BLOCK
}

fn lane_byte(lane: usize) -> usize {
    if lane < 16 {
        2 * lane
    } else {
        2 * (lane - 16) + 1
    }
}

/// Writes the signs of member `i` (stored codes `codes`, offset by [`CODE_OFFSET`]) into
/// `blocks`, which must already hold its block.
pub fn set_member(blocks: &mut [u8], i: usize, codes: &[u8]) {
    let p = pairs(codes.len());
    let base = (i / BLOCK) * p * BLOCK + lane_byte(i % BLOCK);
    for (g, group) in codes.chunks(GROUP).enumerate() {
        let nibble = group
            .iter()
            .enumerate()
            .fold(0u8, |n, (j, &c)| n | (((c as i32 > CODE_OFFSET) as u8) << j));
        let byte = &mut blocks[base + (g / 2) * BLOCK];
        *byte = if g % 2 == 0 { (*byte & 0xF0) | nibble } else { (*byte & 0x0F) | (nibble << 4) };
    }
}

/// What a member's signs need besides themselves (see the module's doc), one array per factor
/// so the scan's bounds vectorise: `q.r ~ f (q.b) - corr`, off by about `|q - c| e`.
#[derive(Debug, Default)]
pub struct Factors {
    pub f: Vec<f32>,
    pub e: Vec<f32>,
    /// The estimate's error at the posting's centroid `c`, `f (c.b) - c.r`, known exactly: the
    /// error of `f (q.b)` is linear in `q` and orthogonal to `r`, so subtracting it leaves an
    /// error that scales with `|q - c|` rather than `|q|`.
    pub corr: Vec<f32>,
}

impl Factors {
    pub fn with_capacity(n: usize) -> Factors {
        let v = || Vec::with_capacity(n);
        Factors { f: v(), e: v(), corr: v() }
    }

    pub fn len(&self) -> usize {
        self.f.len()
    }

    pub fn is_empty(&self) -> bool {
        self.f.is_empty()
    }

    pub fn reserve_exact(&mut self, extra: usize) {
        self.f.reserve_exact(extra);
        self.e.reserve_exact(extra);
        self.corr.reserve_exact(extra);
    }

    /// Appends the factors of a member with stored codes `codes` and scale `scale` around
    /// `centroid`. A zero or non-finite residual gets zeros: its estimate is `0`, with no spread.
    pub fn push(&mut self, codes: &[u8], scale: f32, centroid: &[f32]) {
        // |x| and x^2 summed exactly in integers; the centroid sums by the dot kernel over
        // the codes and their signs as f32.
        let (mut l1, mut l2) = (0u32, 0u32);
        for &code in codes {
            let x = code as i32 - CODE_OFFSET;
            l1 += x.unsigned_abs();
            l2 += (x * x) as u32;
        }
        let (cb, cx) = SCRATCH.with(|scratch| {
            let (xs, signs) = &mut *scratch.borrow_mut();
            xs.clear();
            xs.extend(codes.iter().map(|&k| (k as i32 - CODE_OFFSET) as f32));
            signs.clear();
            signs.extend(xs.iter().map(|&x| if x > 0.0 { 1f32 } else { -1.0 }));
            let neg_dot = kernels().neg_dot;
            (-neg_dot(signs, centroid) as f64, -neg_dot(xs, centroid) as f64)
        });
        let (l1, l2) = (l1 as f64, l2 as f64);
        let d = codes.len() as f64;
        let (f, e, corr) = if l1 == 0.0 || scale == 0.0 || !scale.is_finite() {
            (0.0, 0.0, 0.0)
        } else {
            let s = scale as f64;
            let a = (l1 / (l2.sqrt() * d.sqrt())).min(1.0);
            let spread = ((1.0 - a * a) / (a * a * (d - 1.0).max(1.0))).sqrt();
            let f = s * l2 / l1;
            (f, s * l2.sqrt() * spread, f * cb - s * cx)
        };
        self.f.push(f as f32);
        self.e.push(e as f32);
        self.corr.push(corr as f32);
    }

    pub fn move_member(&mut self, from: usize, to: usize) {
        self.f[to] = self.f[from];
        self.e[to] = self.e[from];
        self.corr[to] = self.corr[from];
    }

    pub fn truncate(&mut self, n: usize) {
        for v in [&mut self.f, &mut self.e, &mut self.corr] {
            v.truncate(n);
            v.shrink_to_fit();
        }
    }

    pub fn heap_bytes(&self) -> usize {
        (self.f.capacity() + self.e.capacity() + self.corr.capacity()) * 4
    }
}

/// A query prepared for the sign scan: one table per group and how to read a sum back.
#[derive(Debug, Default)]
pub struct SignQuery {
    /// For pair `j`: the first group's 16 entries twice, then the second group's twice (a
    /// 256-bit shuffle looks up within each 128-bit lane).
    pub lut: Vec<u8>,
    /// `q.b ~ scale * sum + base`.
    scale: f32,
    base: f32,
    /// About one standard deviation of the tables' rounding in `q.b`.
    pub rounding: f32,
}

impl SignQuery {
    pub fn prepare(&mut self, q: &[f32]) {
        let groups = q.len().div_ceil(GROUP);
        let group = |g: usize| &q[g * GROUP..((g + 1) * GROUP).min(q.len())];
        let widest =
            (0..groups).map(|g| group(g).iter().map(|x| x.abs()).sum::<f32>()).fold(0f32, f32::max);
        let step = if widest > 0.0 && widest.is_finite() { widest / ENTRY_MAX } else { 1.0 };
        let inv = 1.0 / step;
        self.lut.clear();
        self.lut.resize(pairs(q.len()) * 4 * 16, 0);
        let mut lowest = 0f32;
        for g in 0..groups {
            let c = group(g);
            let low: f32 = c.iter().map(|x| x.min(0.0)).sum();
            lowest += low;
            let at = (g / 2) * 64 + (g % 2) * 32;
            for nibble in 0..16 {
                let sum: f32 = c
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| nibble >> j & 1 == 1)
                    .map(|(_, x)| x)
                    .sum();
                // Entries in [0, 127]: the sum less the group's lowest, in steps.
                let e = ((sum - low) * inv + 0.5).clamp(0.0, ENTRY_MAX) as u8;
                self.lut[at + nibble] = e;
                self.lut[at + 16 + nibble] = e;
            }
        }
        // q.b = 2 (sum of the components with a positive sign) - sum(q).
        let total: f32 = q.iter().sum();
        self.scale = 2.0 * step;
        self.base = 2.0 * lowest - total;
        self.rounding = 2.0 * step * (groups as f32 / 12.0).sqrt();
    }

    /// Into `out` (cleared first), for each member of a posting whose centroid is at squared
    /// distance `near` from the query: the largest `q.r` its signs allow, `f (q.b) - corr`
    /// widened by [`BOUND`] error bars (the signs' `|q - c| e` and the tables' rounding).
    /// `sums` are the members' kernel sums.
    pub fn highest_dots(&self, sums: &[u32], fs: &Factors, near: f32, out: &mut Vec<f32>) {
        let n = sums.len();
        let spread = BOUND * near.max(0.0).sqrt();
        let lift = BOUND * self.rounding;
        let (f, e, corr) = (&fs.f[..n], &fs.e[..n], &fs.corr[..n]);
        out.clear();
        out.extend((0..n).map(|j| f[j] * (self.dot(sums[j]) + lift) - corr[j] + spread * e[j]));
    }

    /// `q.b` from a kernel's sum.
    #[inline]
    pub fn dot(&self, sum: u32) -> f32 {
        // Through i32 (sums stay far below 2^31), which converts to f32 in one vector step.
        self.scale * sum as i32 as f32 + self.base
    }
}

/// The pairs of groups a kernel call covers, after checking that the tables (64 bytes a
/// pair), the blocks and `out` (whole blocks) agree: what every level's kernel relies on.
pub(super) fn checked_pairs(lut: &[u8], blocks: &[u8], out: &[u32]) -> usize {
    let p = lut.len() / 64;
    assert_eq!(lut.len(), p * 64, "a table is 64 bytes per pair of groups");
    assert_eq!(out.len() % BLOCK, 0, "out holds whole blocks");
    assert_eq!(blocks.len(), out.len() * p, "blocks must match out");
    p
}

/// The reference kernel: `out[32 b + lane]` is the table sum of member `lane` of block `b`.
pub(super) fn scalar_sign_sums(lut: &[u8], blocks: &[u8], out: &mut [u32]) {
    let p = checked_pairs(lut, blocks, out);
    for (b, o) in out.chunks_mut(BLOCK).enumerate() {
        for (lane, o) in o.iter_mut().enumerate() {
            *o = (0..p)
                .map(|j| {
                    let byte = blocks[(b * p + j) * BLOCK + lane_byte(lane)];
                    lut[j * 64 + (byte & 15) as usize] as u32
                        + lut[j * 64 + 32 + (byte >> 4) as usize] as u32
                })
                .sum();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distance::codes::{available_code_levels, code_table, encode};
    use crate::rng::Rng;

    /// Every level's kernel equals the reference, and the reference's sums read back the
    /// table's estimate of `q.b` within its rounding, over dimensions that do and do not fill a
    /// group, a pair and the kernels' flush of their 16-bit sums.
    #[test]
    fn sign_sums_estimate_the_signed_sum_on_every_level() {
        let seed = 0x5167_5c0d;
        println!("seed {seed:#x}");
        let mut rng = Rng::new(seed);
        let reference = code_table(crate::distance::codes::CodeLevel::Scalar).unwrap();
        for &dim in &[1usize, 3, 4, 7, 8, 9, 64, 100, 384, 2200, 4200] {
            for &n in &[1usize, 31, 32, 33, 70] {
                let rows: Vec<Vec<f32>> =
                    (0..n).map(|_| (0..dim).map(|_| rng.normal()).collect()).collect();
                let mut blocks = vec![0u8; n.div_ceil(BLOCK) * block_bytes(dim)];
                let mut codes = vec![0u8; dim];
                let mut signs = Vec::new();
                for (i, r) in rows.iter().enumerate() {
                    encode(r, &mut codes);
                    set_member(&mut blocks, i, &codes);
                    signs.push(
                        codes
                            .iter()
                            .map(|&c| if c as i32 > CODE_OFFSET { 1.0 } else { -1.0 })
                            .collect::<Vec<f32>>(),
                    );
                }
                let q: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
                let mut sq = SignQuery::default();
                sq.prepare(&q);
                let mut want = vec![0u32; n.div_ceil(BLOCK) * BLOCK];
                (reference.sign_sums)(&sq.lut, &blocks, &mut want);
                for level in available_code_levels() {
                    let mut got = vec![0u32; want.len()];
                    (code_table(level).unwrap().sign_sums)(&sq.lut, &blocks, &mut got);
                    assert_eq!(got, want, "{level:?} dim {dim} n {n}");
                }
                for (i, b) in signs.iter().enumerate() {
                    let exact: f32 = q.iter().zip(b).map(|(x, y)| x * y).sum();
                    let est = sq.dot(want[i]);
                    assert!(
                        (est - exact).abs() <= 6.0 * sq.rounding + 1e-3,
                        "dim {dim} member {i}: {est} {exact} rounding {}",
                        sq.rounding
                    );
                }
            }
        }
    }

    /// The factors estimate `q.r` from the signs within a few of their own error bars, scaled
    /// by `|q - c|`, on residuals around a centroid far from the origin and queries near it;
    /// a zero residual has none.
    #[test]
    fn factors_estimate_the_inner_product_within_their_error() {
        let seed = 0xfac7;
        println!("seed {seed:#x}");
        let mut rng = Rng::new(seed);
        let dim = 384;
        let mut codes = vec![0u8; dim];
        let mut misses = 0;
        let trials = 2000;
        let centroid: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
        for _ in 0..trials {
            let r: Vec<f32> = (0..dim).map(|_| rng.normal() * 0.05).collect();
            let q: Vec<f32> = centroid.iter().map(|c| c + rng.normal() * 0.05).collect();
            let s = encode(&r, &mut codes);
            let mut fs = Factors::default();
            fs.push(&codes, s, &centroid);
            let (f, e, corr) = (fs.f[0], fs.e[0], fs.corr[0]);
            let x = |c: u8| (c as i32 - CODE_OFFSET) as f32;
            let rq: f32 = codes.iter().zip(&q).map(|(&c, q)| s * x(c) * q).sum();
            let qb: f32 =
                codes.iter().zip(&q).map(|(&c, q)| if x(c) > 0.0 { *q } else { -q }).sum();
            let near: f32 = q.iter().zip(&centroid).map(|(a, b)| (a - b) * (a - b)).sum();
            let err = f * qb - corr - rq;
            if err.abs() > 3.0 * near.sqrt() * e + 1e-3 * rq.abs().max(1.0) {
                misses += 1;
            }
        }
        // Three error bars hold all but a fraction of a percent of Gaussian errors.
        assert!(misses * 100 < trials, "{misses} of {trials} outside three error bars");
        let mut fs = Factors::default();
        fs.push(&vec![CODE_OFFSET as u8; dim], 0.0, &centroid);
        assert_eq!((fs.f[0], fs.e[0], fs.corr[0]), (0.0, 0.0, 0.0));
    }
}
