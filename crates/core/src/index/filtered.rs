//! Filtered search over one shard: the nearest live vectors among a set of slots (the exact
//! matches of a payload filter), always `min(k, |F|)` of them when the set holds that many.
//!
//! The plan comes from the exact size of the set `F` and the shard's size:
//! - **exact**: when `|F| <= k`, or the exact distances to every member of `F` cost about as
//!   much as the widened probe below would, the vectors of `F` are scanned directly (recall
//!   1.0);
//! - **postings**: otherwise the posting scan is widened to `depth / sqrt(s)` postings, `s` the
//!   fraction of the shard that matches (the nearest `k` matches lie among about the `k / s`
//!   nearest points, which a deeper probe reaches), and members outside `F` never enter the
//!   short list, so every candidate re-ranked is a match;
//! - **fallback**: a posting scan that comes up with fewer than `min(k, |F|)` matches (matches
//!   far from the query, say) finishes with the exact scan of `F`.

use super::{Index, SearchParams};
use crate::topk::Scored;
use roaring::RoaringBitmap;

/// How a filtered search ran on one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilteredStrategy {
    /// Nothing matched.
    Empty,
    /// The vectors of the matching set, every distance exact.
    Exact,
    /// The widened posting scan.
    Postings,
    /// The posting scan came up short and the exact scan finished it.
    Fallback,
}

/// What a filtered search on one shard did and read.
#[derive(Clone, Copy, Debug)]
pub struct FilteredCost {
    pub strategy: FilteredStrategy,
    /// Postings probed, and members (or vectors) scanned.
    pub postings: u64,
    pub scanned: u64,
}

/// Bytes an exact distance reads over one coded member, relative to a code: an `f32` row
/// read at random costs about this many times a streamed code byte.
const RANDOM_READ_COST: u64 = 2;

impl Index {
    /// The `params.k` nearest live vectors among the slots of `allow` (the shard's live
    /// matches of a filter), nearest first, with how the search ran (see the module docs).
    pub fn search_allowed(
        &self,
        q: &[f32],
        params: &SearchParams,
        allow: &RoaringBitmap,
    ) -> (Vec<Scored<u64>>, FilteredCost) {
        let s = &*self.shared;
        let matched = allow.len();
        let k = params.k as u64;
        if matched == 0 {
            let cost = FilteredCost { strategy: FilteredStrategy::Empty, postings: 0, scanned: 0 };
            return (Vec::new(), cost);
        }
        let exact = || {
            let plan = s.exact_plan();
            let (hits, cost) = s.execute_allowed(&plan, q, params, Some(allow), true, None);
            let postings = plan.postings.len() as u64;
            (
                hits,
                FilteredCost { strategy: FilteredStrategy::Exact, postings, scanned: cost.scanned },
            )
        };
        let live = s.versions.live().max(1) as u64;
        let postings = s.heads.len().max(1);
        if params.exact || matched <= k || postings <= 1 {
            return exact();
        }
        let selectivity = (matched as f64 / live as f64).min(1.0);
        let base = s.depth(params).min(postings);
        let depth = ((base as f64 / selectivity.sqrt()).ceil() as usize).clamp(base, postings);
        // Estimated bytes of each plan: the widened scan reads codes of about `depth` average
        // postings; the exact one reads a whole row per match.
        let dim = s.params.dim as u64;
        let per_posting = live.div_ceil(postings as u64);
        let scan_bytes = depth as u64 * per_posting * (dim + s.member_overhead() as u64);
        let exact_bytes = matched * dim * 4 * RANDOM_READ_COST;
        if s.store.is_some() && exact_bytes <= scan_bytes {
            return exact();
        }
        let plan = s.plan(q, &params.with_nprobe(depth));
        let (hits, cost) = s.execute_allowed(&plan, q, params, Some(allow), true, None);
        let probed = plan.postings.len() as u64;
        if (hits.len() as u64) < k.min(matched) {
            let (hits, more) = exact();
            let cost = FilteredCost {
                strategy: FilteredStrategy::Fallback,
                postings: probed + more.postings,
                scanned: cost.scanned + more.scanned,
            };
            return (hits, cost);
        }
        let strategy = FilteredStrategy::Postings;
        (hits, FilteredCost { strategy, postings: probed, scanned: cost.scanned })
    }
}
