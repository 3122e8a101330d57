//! A posting: a centroid and the contiguous block of its members (slot, version word, and the
//! vector or its residual codes), scanned with one batch kernel call.

use super::versions::{Slot, VersionWord};
use super::Encoding;
use crate::distance::codes::{encode, CODE_OFFSET};
use crate::distance::kernels;
use crate::distance::signs;
use parking_lot::RwLock;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

thread_local! {
    static RESIDUAL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Position of a posting in the head index; reused after a posting is retired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PostingId(pub u32);

#[derive(Debug)]
pub struct Posting {
    pub id: PostingId,
    pub centroid: Box<[f32]>,
    pub members: RwLock<Members>,
    /// Set while a split/merge job for this posting is queued, so it is queued once.
    pub queued: AtomicBool,
    /// Set while the posting holds more members than the hard limit; writers wait meanwhile.
    pub overfull: AtomicBool,
    /// Copies made stale since the last garbage collection, as far as writers could tell.
    pub stale: AtomicUsize,
}

/// The members of a posting, struct-of-arrays so the vectors (or codes) are one contiguous block.
#[derive(Debug)]
pub struct Members {
    pub encoding: Encoding,
    /// A retired posting was split or merged away; its members live elsewhere now and writers
    /// must choose again.
    pub retired: bool,
    pub slots: Vec<Slot>,
    pub words: Vec<VersionWord>,
    /// `F32`: the vectors, row-major. Empty under `Int8`.
    pub vectors: Vec<f32>,
    /// `F32`: squared L2 norm of each vector, so an L2 scan needs one multiply-add per
    /// component. `Int8`: squared L2 norm of each residual (vector minus centroid).
    pub norms: Vec<f32>,
    /// `Int8`: each residual encoded (see [`encode`]), row-major: residual ~ `scale * codes`.
    pub codes: Vec<u8>,
    /// `Int8`: the scale of each member's codes.
    pub scales: Vec<f32>,
    /// `Int8`: `|r|^2 + 2 c.(s x)` per member, with `r` the residual and `s x` its codes: the
    /// query-independent part of `|q - c - r|^2 ~ |q - c|^2 + |r|^2 + 2 c.(s x) - 2 q.(s x)`,
    /// so a scan encodes the query once for every posting (see `Index::scan_codes`).
    pub bias: Vec<f32>,
    /// `Int8`: the signs of the codes in blocks of [`signs::BLOCK`] members (see
    /// [`signs`]), a first estimate that spares most members' codes from being read.
    pub signs: Vec<u8>,
    /// `Int8`: what each member's signs need besides themselves.
    pub sign_factors: signs::Factors,
    /// Upper bound on the L2 distance (not squared) from the centroid to any member, for exact
    /// shard pruning.
    pub radius: f32,
}

impl Members {
    pub fn with_capacity(encoding: Encoding, n: usize, dim: usize) -> Members {
        let coded = encoding == Encoding::Int8;
        let signed = coded && signs::used(dim);
        Members {
            encoding,
            retired: false,
            slots: Vec::with_capacity(n),
            words: Vec::with_capacity(n),
            vectors: Vec::with_capacity(if coded { 0 } else { n * dim }),
            norms: Vec::with_capacity(n),
            codes: Vec::with_capacity(if coded { n * dim } else { 0 }),
            scales: Vec::with_capacity(if coded { n } else { 0 }),
            bias: Vec::with_capacity(if coded { n } else { 0 }),
            signs: Vec::with_capacity(if signed {
                n.div_ceil(signs::BLOCK) * signs::block_bytes(dim)
            } else {
                0
            }),
            sign_factors: signs::Factors::with_capacity(if signed { n } else { 0 }),
            radius: 0.0,
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn vector(&self, i: usize, dim: usize) -> &[f32] {
        &self.vectors[i * dim..(i + 1) * dim]
    }

    /// Appends one member of the posting around `centroid`. Grows by a quarter rather than
    /// doubling: posting memory is most of the index's memory and appends are spread over many
    /// postings.
    pub fn push(&mut self, slot: Slot, word: VersionWord, v: &[f32], centroid: &[f32]) {
        let dim = v.len();
        if self.slots.len() == self.slots.capacity() {
            let extra = (self.slots.len() / 4).max(8);
            self.slots.reserve_exact(extra);
            self.words.reserve_exact(extra);
            self.norms.reserve_exact(extra);
            match self.encoding {
                Encoding::F32 => self.vectors.reserve_exact(extra * dim),
                Encoding::Int8 => {
                    self.codes.reserve_exact(extra * dim);
                    self.scales.reserve_exact(extra);
                    self.bias.reserve_exact(extra);
                    if signs::used(dim) {
                        self.sign_factors.reserve_exact(extra);
                        let blocks = (self.slots.len() + extra).div_ceil(signs::BLOCK);
                        let bytes = blocks * signs::block_bytes(dim);
                        self.signs.reserve_exact(bytes.saturating_sub(self.signs.len()));
                    }
                }
            }
        }
        let dist = (kernels().l2sq)(v, centroid);
        self.slots.push(slot);
        self.words.push(word);
        match self.encoding {
            Encoding::F32 => {
                self.vectors.extend_from_slice(v);
                self.norms.push(-(kernels().neg_dot)(v, v));
            }
            Encoding::Int8 => RESIDUAL.with(|r| {
                let r = &mut *r.borrow_mut();
                r.clear();
                r.extend(v.iter().zip(centroid).map(|(x, c)| x - c));
                let at = self.codes.len();
                self.codes.resize(at + dim, 0);
                let scale = encode(r, &mut self.codes[at..]);
                let codes = &self.codes[at..];
                let cx: f32 = centroid
                    .iter()
                    .zip(codes)
                    .map(|(c, &x)| c * (x as i32 - CODE_OFFSET) as f32)
                    .sum();
                self.scales.push(scale);
                self.bias.push(dist + 2.0 * scale * cx);
                self.norms.push(dist);
                self.push_signs(dim, centroid);
            }),
        }
        self.radius = self.radius.max(dist.sqrt() * (1.0 + 1e-5));
    }

    /// The sign codes and factors of the last member pushed, from its codes.
    fn push_signs(&mut self, dim: usize, centroid: &[f32]) {
        if !signs::used(dim) {
            return;
        }
        let i = self.sign_factors.len();
        if i.is_multiple_of(signs::BLOCK) {
            self.signs.resize(self.signs.len() + signs::block_bytes(dim), 0);
        }
        let codes = &self.codes[i * dim..(i + 1) * dim];
        signs::set_member(&mut self.signs, i, codes);
        self.sign_factors.push(codes, self.scales[i], centroid);
    }

    /// Keeps only the members `keep` accepts, compacting in place, and recomputes the radius.
    pub fn retain(
        &mut self,
        dim: usize,
        centroid: &[f32],
        mut keep: impl FnMut(Slot, VersionWord) -> bool,
    ) {
        let l2 = kernels().l2sq;
        let mut w = 0;
        let mut radius = 0f32;
        for r in 0..self.slots.len() {
            if !keep(self.slots[r], self.words[r]) {
                continue;
            }
            if w != r {
                self.slots[w] = self.slots[r];
                self.words[w] = self.words[r];
                self.norms[w] = self.norms[r];
                match self.encoding {
                    Encoding::F32 => self.vectors.copy_within(r * dim..(r + 1) * dim, w * dim),
                    Encoding::Int8 => {
                        self.codes.copy_within(r * dim..(r + 1) * dim, w * dim);
                        self.scales[w] = self.scales[r];
                        self.bias[w] = self.bias[r];
                        if signs::used(dim) {
                            self.sign_factors.move_member(r, w);
                        }
                    }
                }
            }
            radius = radius.max(match self.encoding {
                Encoding::F32 => l2(&self.vectors[w * dim..(w + 1) * dim], centroid),
                Encoding::Int8 => self.norms[w],
            });
            w += 1;
        }
        self.slots.truncate(w);
        self.words.truncate(w);
        self.norms.truncate(w);
        self.slots.shrink_to_fit();
        self.words.shrink_to_fit();
        self.norms.shrink_to_fit();
        match self.encoding {
            Encoding::F32 => {
                self.vectors.truncate(w * dim);
                self.vectors.shrink_to_fit();
            }
            Encoding::Int8 => {
                self.codes.truncate(w * dim);
                self.scales.truncate(w);
                self.bias.truncate(w);
                self.codes.shrink_to_fit();
                self.scales.shrink_to_fit();
                self.bias.shrink_to_fit();
                // The sign blocks are rebuilt from the kept codes (a member's lane moved).
                if signs::used(dim) {
                    self.signs.clear();
                    self.signs.resize(w.div_ceil(signs::BLOCK) * signs::block_bytes(dim), 0);
                    self.signs.shrink_to_fit();
                    self.sign_factors.truncate(w);
                    for i in 0..w {
                        signs::set_member(&mut self.signs, i, &self.codes[i * dim..(i + 1) * dim]);
                    }
                }
            }
        }
        self.radius = radius.sqrt() * (1.0 + 1e-5);
    }

    /// Heap bytes held, for the memory statistics: `(f32 vectors, everything else)`.
    pub fn heap_bytes(&self) -> (usize, usize) {
        let other = (self.slots.capacity()
            + self.words.capacity()
            + self.norms.capacity()
            + self.scales.capacity()
            + self.bias.capacity())
            * 4
            + self.sign_factors.heap_bytes()
            + self.codes.capacity()
            + self.signs.capacity();
        (self.vectors.capacity() * 4, other)
    }
}

/// Bounds on the squared L2 distances from an `Int8` posting's members to a few points, from
/// the codes alone (no vector is read). A member is `v = home + r` with `r ~ s x` (`x` its
/// codes less the offset) and `|r - s x| <= s sqrt(d) / 2`, each component rounding to the
/// nearest step; so `|v - c|^2 = |g|^2 + |r|^2 + 2 g.r`, with `g = home - c` and `|r|^2` kept
/// exactly (`norms`), is within `|g| s sqrt(d)` of `|g|^2 + |r|^2 + 2 s g.x`. The bounds are
/// widened a little more for rounding in f32.
#[derive(Debug)]
pub struct CodeBounds<const N: usize> {
    /// `home - c` for each point `c`, and their squared and plain lengths.
    g: [Vec<f32>; N],
    g2: [f32; N],
    g1: [f32; N],
    /// The error term's factor (`sqrt(d)`, widened for the dot product's rounding) and the
    /// share of a distance's scale allowed for the rest of the rounding.
    err: f32,
    slack: f32,
    /// One member's codes as floats.
    x: Vec<f32>,
}

impl<const N: usize> CodeBounds<N> {
    pub fn new(home: &[f32], to: [&[f32]; N]) -> CodeBounds<N> {
        let g: [Vec<f32>; N] = to.map(|c| home.iter().zip(c).map(|(h, c)| h - c).collect());
        let g2: [f32; N] = std::array::from_fn(|t| g[t].iter().map(|x| x * x).sum());
        let (d, eps) = (home.len() as f32, f32::EPSILON);
        // The dot product's rounding is at most d eps 127 |g| sqrt(d) of `2 s g.x`'s scale
        // (terms at most |g_j| 127, summed in any order); doubled for margin.
        let err = d.sqrt() * (1.0 + 2.0 * d * eps * 127.0);
        let slack = (8.0 * d * eps).max(1e-3);
        let x = vec![0f32; home.len()];
        CodeBounds { g1: g2.map(f32::sqrt), g, g2, err, slack, x }
    }

    /// `(low, high)` for member `i` of `m` (an `Int8` posting around `home`) to each point,
    /// and the member's exact squared distance to `home`. A bound that is not finite is
    /// `(-inf, inf)`: nothing is ruled out.
    pub fn of(&mut self, m: &Members, i: usize) -> ([(f32, f32); N], f32) {
        let dim = self.x.len();
        let codes = &m.codes[i * dim..(i + 1) * dim];
        for (x, &c) in self.x.iter_mut().zip(codes) {
            *x = (c as i32 - CODE_OFFSET) as f32;
        }
        let neg_dot = kernels().neg_dot;
        let dots: [f32; N] = std::array::from_fn(|t| -neg_dot(&self.g[t], &self.x));
        let (n, s) = (m.norms[i], m.scales[i]);
        let bounds = std::array::from_fn(|t| {
            let est = self.g2[t] + n + 2.0 * s * dots[t];
            let err = self.g1[t] * s * self.err
                + self.slack * (self.g1[t] + n.sqrt()).powi(2)
                + f32::MIN_POSITIVE;
            let (lo, hi) = (est - err, est + err);
            match lo.is_finite() && hi.is_finite() {
                true => (lo, hi),
                false => (f32::NEG_INFINITY, f32::INFINITY),
            }
        });
        (bounds, n)
    }
}

impl Posting {
    pub fn new(id: PostingId, centroid: Vec<f32>, members: Members) -> Posting {
        Posting {
            id,
            centroid: centroid.into_boxed_slice(),
            members: RwLock::new(members),
            queued: AtomicBool::new(false),
            overfull: AtomicBool::new(false),
            stale: AtomicUsize::new(0),
        }
    }

    /// Claims the right to queue a job for this posting; false when one is already queued.
    pub fn try_mark_queued(&self) -> bool {
        !self.queued.swap(true, Ordering::AcqRel)
    }

    pub fn clear_queued(&self) {
        self.queued.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// The code bounds hold the exact squared distance of every member to every point, over
    /// dimensions that do and do not fill the kernels' lanes and data far from the origin.
    #[test]
    fn code_bounds_hold_the_exact_distances() {
        let seed = 0xC0DE_B0B5;
        println!("seed {seed:#x}");
        let mut rng = Rng::new(seed);
        let l2 = kernels().l2sq;
        for &(dim, offset, spread) in
            &[(1, 0.0, 1.0), (3, 0.0, 1.0), (17, 100.0, 0.01), (128, 0.0, 1.0), (384, -5.0, 0.2)]
        {
            // Every seventh component ten times wider: residuals uneven across components.
            let point = |rng: &mut Rng, s: f32| -> Vec<f32> {
                (0..dim)
                    .map(|j| {
                        let wide = if j % 7 == 3 { 10.0 } else { 1.0 };
                        offset + wide * s * (rng.unit() * 2.0 - 1.0)
                    })
                    .collect()
            };
            let home = point(&mut rng, spread);
            let mut m = Members::with_capacity(Encoding::Int8, 0, dim);
            let vectors: Vec<Vec<f32>> = (0..200).map(|_| point(&mut rng, spread)).collect();
            for (i, v) in vectors.iter().enumerate() {
                m.push(Slot(i as u32), 0, v, &home);
            }
            let to: Vec<Vec<f32>> = (0..3).map(|_| point(&mut rng, spread)).collect();
            let mut bounds = CodeBounds::new(&home, [&to[0], &to[1], &to[2], &home]);
            for (i, v) in vectors.iter().enumerate() {
                let (b, n) = bounds.of(&m, i);
                assert_eq!(n, l2(v, &home));
                for (t, c) in to.iter().chain([&home]).enumerate() {
                    let exact = l2(v, c);
                    let (lo, hi) = b[t];
                    assert!(
                        lo <= exact && exact <= hi,
                        "d {dim} member {i} point {t}: {lo} {exact} {hi}"
                    );
                }
            }
        }
    }
}
