//! Exact top-k selection and the k-way merge of sorted result lists. Pure functions and plain
//! data, so they are tested without an index.

use std::cmp::Ordering;

/// One scored candidate. Ordered by distance, then key, so every selection is deterministic.
/// A [`TopK`] stores a NaN distance as `+inf`, so NaN (whose sign `total_cmp` would otherwise
/// let it rank before every number) never ranks ahead of a real distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scored<K> {
    pub dist: f32,
    pub key: K,
}

impl<K: Ord> Scored<K> {
    #[inline]
    pub fn cmp_total(&self, other: &Self) -> Ordering {
        self.dist.total_cmp(&other.dist).then_with(|| self.key.cmp(&other.key))
    }
}

/// `d`, or `+inf` when `d` is NaN: how every ranking in the engine treats a distance that is not
/// a number (an overflowed or poisoned computation is as far as it gets, never nearest).
#[inline]
pub fn nan_as_infinite(d: f32) -> f32 {
    if d.is_nan() {
        f32::INFINITY
    } else {
        d
    }
}

/// A bounded max-heap keeping the `k` smallest candidates, ignoring repeated keys (a vector
/// may sit in several postings; every live copy has the same distance).
#[derive(Clone, Debug)]
pub struct TopK<K> {
    k: usize,
    heap: Vec<Scored<K>>,
}

impl<K: Ord + Copy> TopK<K> {
    pub fn new(k: usize) -> TopK<K> {
        // The heap grows as candidates arrive; only a small start is reserved, so a large `k`
        // costs memory only for the candidates a search actually finds.
        TopK { k, heap: Vec::with_capacity(k.saturating_add(1).min(1024)) }
    }

    /// Empties the heap and sets a new bound, keeping the allocation.
    pub fn reset(&mut self, k: usize) {
        self.k = k;
        self.heap.clear();
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The distance a candidate must beat (or tie) to enter: infinite until the heap is full.
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap[0].dist
        }
    }

    /// Offers a candidate; returns whether it was kept.
    #[inline]
    pub fn push(&mut self, dist: f32, key: K) -> bool {
        if self.k == 0 {
            return false;
        }
        let cand = Scored { dist: nan_as_infinite(dist), key };
        if self.heap.len() == self.k && cand.cmp_total(&self.heap[0]) != Ordering::Less {
            return false;
        }
        if self.heap.iter().any(|s| s.key == key) {
            return false;
        }
        if self.heap.len() == self.k {
            self.heap[0] = cand;
            self.sift_down(0);
        } else {
            self.heap.push(cand);
            self.sift_up(self.heap.len() - 1);
        }
        true
    }

    /// Offers a candidate whose key the caller knows is not in the heap yet.
    #[inline]
    pub fn push_distinct(&mut self, dist: f32, key: K) {
        if self.k == 0 {
            return;
        }
        let cand = Scored { dist: nan_as_infinite(dist), key };
        if self.heap.len() == self.k {
            if cand.cmp_total(&self.heap[0]) != Ordering::Less {
                return;
            }
            self.heap[0] = cand;
            self.sift_down(0);
        } else {
            self.heap.push(cand);
            self.sift_up(self.heap.len() - 1);
        }
    }

    /// The kept candidates, nearest first.
    pub fn into_sorted(mut self) -> Vec<Scored<K>> {
        self.heap.sort_by(|a, b| a.cmp_total(b));
        self.heap
    }

    /// Drains the kept candidates, nearest first, leaving the heap empty for reuse.
    pub fn drain_sorted(&mut self) -> std::vec::Drain<'_, Scored<K>> {
        self.heap.sort_by(|a, b| a.cmp_total(b));
        self.heap.drain(..)
    }

    fn sift_up(&mut self, mut i: usize) {
        while i > 0 {
            let parent = (i - 1) / 2;
            if self.heap[i].cmp_total(&self.heap[parent]) == Ordering::Greater {
                self.heap.swap(i, parent);
                i = parent;
            } else {
                break;
            }
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut big = i;
            if l < n && self.heap[l].cmp_total(&self.heap[big]) == Ordering::Greater {
                big = l;
            }
            if r < n && self.heap[r].cmp_total(&self.heap[big]) == Ordering::Greater {
                big = r;
            }
            if big == i {
                break;
            }
            self.heap.swap(i, big);
            i = big;
        }
    }
}

/// Merges lists that are each sorted nearest first into the `k` nearest overall. Keys are
/// assumed distinct across lists (shards own disjoint ids).
pub fn merge_sorted<K: Ord + Copy>(lists: &[Vec<Scored<K>>], k: usize) -> Vec<Scored<K>> {
    let mut cursors = vec![0usize; lists.len()];
    let mut out = Vec::with_capacity(k);
    while out.len() < k {
        let mut best: Option<usize> = None;
        for (li, list) in lists.iter().enumerate() {
            if let Some(c) = list.get(cursors[li]) {
                if best.is_none_or(|b| c.cmp_total(&lists[b][cursors[b]]) == Ordering::Less) {
                    best = Some(li);
                }
            }
        }
        let Some(b) = best else { break };
        out.push(lists[b][cursors[b]]);
        cursors[b] += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    #[test]
    fn topk_equals_sorting_and_ignores_repeats() {
        let seed = 7;
        println!("seed {seed}");
        let mut rng = Rng::new(seed);
        for _ in 0..200 {
            let n = rng.below(300);
            let k = rng.below(20);
            // As in the index, every copy of a key has the same distance.
            let dist_of = |key: u32| (key % 37) as f32 * 0.5;
            let keys: Vec<u32> = (0..n).map(|_| rng.below(100) as u32).collect();
            let mut top = TopK::new(k);
            for &key in &keys {
                top.push(dist_of(key), key);
            }
            let mut want: Vec<(f32, u32)> = keys.iter().map(|&key| (dist_of(key), key)).collect();
            want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            want.dedup();
            want.truncate(k);
            let got: Vec<(f32, u32)> = top.into_sorted().iter().map(|s| (s.dist, s.key)).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn merge_equals_sort_of_concatenation() {
        let mut rng = Rng::new(11);
        println!("seed 11");
        for _ in 0..100 {
            let lists: Vec<Vec<Scored<u64>>> = (0..rng.below(6))
                .map(|li| {
                    let mut l: Vec<Scored<u64>> = (0..rng.below(15))
                        .map(|j| Scored { dist: rng.below(30) as f32, key: (li * 100 + j) as u64 })
                        .collect();
                    l.sort_by(|a, b| a.cmp_total(b));
                    l
                })
                .collect();
            let k = rng.below(25);
            let mut all: Vec<Scored<u64>> = lists.iter().flatten().copied().collect();
            all.sort_by(|a, b| a.cmp_total(b));
            all.truncate(k);
            assert_eq!(merge_sorted(&lists, k), all);
        }
    }

    /// NaN distances (of either sign) never panic and rank as +inf: after every number, in key
    /// order among themselves, and reported as +inf.
    #[test]
    fn nan_distances_rank_last_as_infinite() {
        let seed = 13;
        println!("seed {seed}");
        let mut rng = Rng::new(seed);
        let nans = [f32::NAN, -f32::NAN, f32::from_bits(0xffc0_0000), f32::from_bits(0x7f80_0001)];
        for _ in 0..200 {
            let n = rng.below(60);
            let k = rng.below(12);
            let mut top = TopK::new(k);
            let mut want: Vec<(f32, u32)> = Vec::new();
            for key in 0..n as u32 {
                let d = match rng.below(4) {
                    0 => nans[rng.below(nans.len())],
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    _ => rng.normal(),
                };
                if rng.below(2) == 0 {
                    top.push(d, key);
                } else {
                    top.push_distinct(d, key);
                }
                want.push((if d.is_nan() { f32::INFINITY } else { d }, key));
            }
            want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            want.truncate(k);
            let got: Vec<(f32, u32)> = top.into_sorted().iter().map(|s| (s.dist, s.key)).collect();
            assert_eq!(got, want);
        }
    }
}
