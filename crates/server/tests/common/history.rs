//! Operation histories and the linearizability check for the fault suite.
//!
//! Each point id is a register: an upsert writes a value (unique per write), a delete writes
//! "absent", a linearizable get reads. A history is linearizable when, per id, some order of
//! its operations that respects real time (an operation that completed before another was
//! invoked comes first) explains every read. Writes whose outcome is unknown (the call failed
//! or timed out) may take effect at any point after their invocation, or never.
//!
//! The search is Wing and Gong's, with memoisation of (operations linearized, register
//! value); it gives up after a budget of states, which the suite counts as a failure.

use std::collections::{BTreeMap, HashMap, HashSet};

/// What an operation did to or saw in its register. `None` is "absent".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    Write(Option<u32>),
    Read(Option<u32>),
}

#[derive(Clone, Debug)]
pub struct Op {
    pub key: u64,
    pub kind: Kind,
    /// Nanoseconds since the run started.
    pub invoke: u64,
    /// `None`: the outcome is unknown (a write that may or may not have happened).
    pub complete: Option<u64>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// The key whose history no order explains.
    Violation(u64),
    /// The search ran out of budget on this key.
    Timeout(u64),
}

/// Checks every key's history; stops at the first key that fails.
pub fn check(ops: &[Op], budget_per_key: usize) -> Verdict {
    // A write of unknown outcome may also never have happened; one whose value no read
    // returned changes no read's explanation when left out, so it is left out.
    let read: HashSet<(u64, u32)> = ops
        .iter()
        .filter_map(|o| match o.kind {
            Kind::Read(Some(v)) => Some((o.key, v)),
            _ => None,
        })
        .collect();
    let mut by_key: BTreeMap<u64, Vec<Op>> = BTreeMap::new();
    for op in ops {
        let needed = match op.kind {
            // A read without a result tells nothing.
            Kind::Read(_) => op.complete.is_some(),
            Kind::Write(Some(v)) => op.complete.is_some() || read.contains(&(op.key, v)),
            Kind::Write(None) => true,
        };
        if needed {
            by_key.entry(op.key).or_default().push(op.clone());
        }
    }
    for (key, ops) in by_key {
        match check_key(&ops, budget_per_key) {
            Some(true) => {}
            Some(false) => return Verdict::Violation(key),
            None => return Verdict::Timeout(key),
        }
    }
    Verdict::Ok
}

/// `Some(linearizable)`, or `None` when the budget ran out.
fn check_key(ops: &[Op], budget: usize) -> Option<bool> {
    let n = ops.len();
    let words = n.div_ceil(64);
    let required: Vec<bool> = ops.iter().map(|o| o.complete.is_some()).collect();
    let remaining_required = required.iter().filter(|r| **r).count();
    let mut seen: HashSet<(Vec<u64>, Option<u32>)> = HashSet::new();
    // Depth-first: (done set, register value, required ops left).
    let mut stack: Vec<(Vec<u64>, Option<u32>, usize)> =
        vec![(vec![0; words], None, remaining_required)];
    while let Some((done, value, left)) = stack.pop() {
        if left == 0 {
            return Some(true);
        }
        if !seen.insert((done.clone(), value)) {
            continue;
        }
        if seen.len() > budget {
            return None;
        }
        let is_done = |i: usize| done[i / 64] >> (i % 64) & 1 == 1;
        // The earliest completion among the pending ops bounds what may go next.
        let horizon = (0..n)
            .filter(|&i| !is_done(i))
            .filter_map(|i| ops[i].complete)
            .min()
            .unwrap_or(u64::MAX);
        for i in (0..n).filter(|&i| !is_done(i) && ops[i].invoke < horizon) {
            let next_value = match ops[i].kind {
                Kind::Write(v) => v,
                Kind::Read(v) if v == value => value,
                Kind::Read(_) => continue,
            };
            let mut d = done.clone();
            d[i / 64] |= 1 << (i % 64);
            stack.push((d, next_value, left - required[i] as usize));
        }
    }
    Some(false)
}

/// Local (possibly stale) reads may only return a value some write of that key wrote, or
/// "absent". Returns the first offending (key, value).
pub fn check_local_reads(ops: &[Op], local_reads: &[(u64, Option<u32>)]) -> Option<(u64, u32)> {
    let mut written: HashMap<u64, HashSet<u32>> = HashMap::new();
    for op in ops {
        if let Kind::Write(Some(v)) = op.kind {
            written.entry(op.key).or_default().insert(v);
        }
    }
    local_reads.iter().find_map(|&(key, v)| {
        let v = v?;
        (!written.get(&key).is_some_and(|w| w.contains(&v))).then_some((key, v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: Kind, invoke: u64, complete: Option<u64>) -> Op {
        Op { key: 1, kind, invoke, complete }
    }

    #[test]
    fn accepts_and_refuses_what_it_should() {
        use Kind::*;
        // Sequential write then read of it.
        let ok = [op(Write(Some(1)), 0, Some(1)), op(Read(Some(1)), 2, Some(3))];
        assert_eq!(check(&ok, 1000), Verdict::Ok);
        // A read of a value overwritten before the read began: stale, not linearizable.
        let stale = [
            op(Write(Some(1)), 0, Some(1)),
            op(Write(Some(2)), 2, Some(3)),
            op(Read(Some(1)), 4, Some(5)),
        ];
        assert_eq!(check(&stale, 1000), Verdict::Violation(1));
        // Concurrent write and read: either order is fine.
        let overlap = [op(Write(Some(2)), 0, Some(10)), op(Read(None), 1, Some(2))];
        assert_eq!(check(&overlap, 1000), Verdict::Ok);
        // An unknown write may take effect late ...
        let late = [
            op(Write(Some(3)), 0, None),
            op(Read(None), 1, Some(2)),
            op(Read(Some(3)), 5, Some(6)),
        ];
        assert_eq!(check(&late, 1000), Verdict::Ok);
        // ... but not before it was invoked.
        let early = [op(Read(Some(3)), 0, Some(1)), op(Write(Some(3)), 2, None)];
        assert_eq!(check(&early, 1000), Verdict::Violation(1));
        // A lost acknowledged write: read "absent" after it completed.
        let lost = [op(Write(Some(4)), 0, Some(1)), op(Read(None), 2, Some(3))];
        assert_eq!(check(&lost, 1000), Verdict::Violation(1));
        // A value that was never written, even locally.
        assert_eq!(check_local_reads(&ok, &[(1, Some(9))]), Some((1, 9)));
        assert_eq!(check_local_reads(&ok, &[(1, Some(1)), (1, None)]), None);
    }
}
