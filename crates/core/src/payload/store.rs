//! One shard's payloads, by slot, with field indexes.

use super::filter::{datetime, number, Condition, Filter, MatchValue, MatchValues, Range};
use super::value::{decode, encode, values_at, Payload, Value};
use roaring::RoaringBitmap;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The type a field index is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum FieldKind {
    Keyword,
    Integer,
    Float,
    Bool,
    Datetime,
}

/// What one field index holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldStats {
    /// Points with at least one value the index holds.
    pub points: u64,
    /// Distinct values.
    pub values: u64,
    pub memory_bytes: u64,
}

/// A totally ordered `f64` (payload doubles are finite; `-0.0` is stored as `0.0`).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ordered(f64);

impl Eq for Ordered {}

impl PartialOrd for Ordered {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ordered {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

fn ordered(x: f64) -> Ordered {
    Ordered(if x == 0.0 { 0.0 } else { x })
}

/// The values one index holds, with the slots holding each.
#[derive(Debug)]
enum Values {
    Keyword(FxHashMap<String, RoaringBitmap>),
    Integer(BTreeMap<i64, RoaringBitmap>),
    Float(BTreeMap<Ordered, RoaringBitmap>),
    Bool([RoaringBitmap; 2]),
    Datetime(BTreeMap<i64, RoaringBitmap>),
}

/// One field index: its values' bitmaps, and which slots have non-null values, nulls, and
/// (integer indexes) doubles at the key, so every answer stays exact.
#[derive(Debug)]
struct FieldIndex {
    kind: FieldKind,
    values: Values,
    nonnull: RoaringBitmap,
    null: RoaringBitmap,
    /// Integer indexes: slots with a `Double` at the key (a range must also look at those).
    doubles: RoaringBitmap,
}

/// Adds `slot` to the bitmap of `key` in an ordered or hashed map (`add`), or removes it and
/// drops the bitmap once empty.
fn touch<K: Ord>(m: &mut BTreeMap<K, RoaringBitmap>, key: K, slot: u32, add: bool) {
    if add {
        m.entry(key).or_default().insert(slot);
    } else if let Some(b) = m.get_mut(&key) {
        b.remove(slot);
        if b.is_empty() {
            m.remove(&key);
        }
    }
}

impl FieldIndex {
    fn new(kind: FieldKind) -> FieldIndex {
        let values = match kind {
            FieldKind::Keyword => Values::Keyword(FxHashMap::default()),
            FieldKind::Integer => Values::Integer(BTreeMap::new()),
            FieldKind::Float => Values::Float(BTreeMap::new()),
            FieldKind::Bool => Values::Bool(Default::default()),
            FieldKind::Datetime => Values::Datetime(BTreeMap::new()),
        };
        FieldIndex {
            kind,
            values,
            nonnull: RoaringBitmap::new(),
            null: RoaringBitmap::new(),
            doubles: RoaringBitmap::new(),
        }
    }

    /// Adds (or removes) the values of `key` in payload `p` at `slot`.
    fn update(&mut self, key: &str, p: &Payload, slot: u32, add: bool) {
        let vals = values_at(p, key);
        let mark = |b: &mut RoaringBitmap| {
            if add {
                b.insert(slot);
            } else {
                b.remove(slot);
            }
        };
        if vals.iter().any(|v| !matches!(v, Value::Null)) {
            mark(&mut self.nonnull);
        }
        if vals.iter().any(|v| matches!(v, Value::Null)) {
            mark(&mut self.null);
        }
        for v in vals {
            match (&mut self.values, v) {
                (Values::Keyword(m), Value::String(s)) => {
                    if add {
                        m.entry(s.clone()).or_default().insert(slot);
                    } else if let Some(b) = m.get_mut(s.as_str()) {
                        b.remove(slot);
                        if b.is_empty() {
                            m.remove(s.as_str());
                        }
                    }
                }
                (Values::Integer(m), Value::Int(i)) => touch(m, *i, slot, add),
                (Values::Integer(_), Value::Double(_)) => mark(&mut self.doubles),
                (Values::Float(m), v) => {
                    if let Some(x) = number(v) {
                        touch(m, ordered(x), slot, add);
                    }
                }
                (Values::Bool(b), Value::Bool(x)) => mark(&mut b[usize::from(*x)]),
                (Values::Datetime(m), v) => {
                    if let Some(t) = datetime(v) {
                        touch(m, t, slot, add);
                    }
                }
                _ => {}
            }
        }
    }

    /// The slots holding any value of `values` (strings or integers, as the index holds).
    fn any_of(&self, values: &MatchValues) -> Option<RoaringBitmap> {
        match (&self.values, values) {
            (Values::Keyword(m), MatchValues::Keywords(l)) => Some(
                l.iter().filter_map(|k| m.get(k.as_str())).fold(RoaringBitmap::new(), |a, b| a | b),
            ),
            (Values::Integer(m), MatchValues::Integers(l)) => {
                Some(l.iter().filter_map(|k| m.get(k)).fold(RoaringBitmap::new(), |a, b| a | b))
            }
            _ => None,
        }
    }

    /// The slots holding a value of the list's type that is none of `values`.
    fn except(&self, values: &MatchValues) -> Option<RoaringBitmap> {
        match (&self.values, values) {
            (Values::Keyword(m), MatchValues::Keywords(l)) => Some(
                m.iter()
                    .filter(|(k, _)| !l.contains(k))
                    .fold(RoaringBitmap::new(), |a, (_, b)| a | b),
            ),
            (Values::Integer(m), MatchValues::Integers(l)) => Some(
                m.iter()
                    .filter(|(k, _)| !l.contains(k))
                    .fold(RoaringBitmap::new(), |a, (_, b)| a | b),
            ),
            _ => None,
        }
    }

    /// The exact answer of a value condition on this index's key, if the index can give it.
    fn answer(&self, c: &Condition) -> Option<RoaringBitmap> {
        let union = |bs: &mut dyn Iterator<Item = &RoaringBitmap>| {
            bs.fold(RoaringBitmap::new(), |a, b| a | b)
        };
        match (c, &self.values) {
            (Condition::Match { value: MatchValue::Keyword(k), .. }, Values::Keyword(m)) => {
                Some(m.get(k.as_str()).cloned().unwrap_or_default())
            }
            (Condition::Match { value: MatchValue::Integer(i), .. }, Values::Integer(m)) => {
                Some(m.get(i).cloned().unwrap_or_default())
            }
            (Condition::Match { value: MatchValue::Bool(x), .. }, Values::Bool(b)) => {
                Some(b[usize::from(*x)].clone())
            }
            (Condition::MatchAny { values, .. }, _) => self.any_of(values),
            (Condition::MatchExcept { values, .. }, _) => self.except(values),
            (Condition::Range { range, .. }, Values::Integer(m)) => {
                // Integers in range: the bounds rounded inward; doubles are checked per slot.
                let (lo, hi) = int_bounds(range)?;
                Some(union(&mut m.range(lo..=hi).map(|(_, b)| b)))
            }
            (Condition::Range { range, .. }, Values::Float(m)) => {
                Some(union(&mut float_range(m, range)))
            }
            (Condition::DatetimeRange { range, .. }, Values::Datetime(m)) => {
                let (lo, hi) = int_bounds(range)?;
                Some(union(&mut m.range(lo..=hi).map(|(_, b)| b)))
            }
            (Condition::IsEmpty { .. }, _) | (Condition::IsNull { .. }, _) => None,
            _ => None,
        }
    }

    /// Slots the index answer may miss for `c` and that must be checked per slot.
    fn unanswered(&self, c: &Condition) -> Option<&RoaringBitmap> {
        matches!((c, &self.values), (Condition::Range { .. }, Values::Integer(_)))
            .then_some(&self.doubles)
    }

    fn bitmaps(&self) -> Vec<&RoaringBitmap> {
        match &self.values {
            Values::Keyword(m) => m.values().collect(),
            Values::Integer(m) | Values::Datetime(m) => m.values().collect(),
            Values::Float(m) => m.values().collect(),
            Values::Bool(b) => b.iter().collect(),
        }
    }

    fn stats(&self) -> FieldStats {
        let bitmaps = self.bitmaps();
        let points = bitmaps.iter().fold(RoaringBitmap::new(), |a, b| a | *b).len();
        let keys: usize = match &self.values {
            Values::Keyword(m) => m.keys().map(|k| k.len() + 24).sum(),
            _ => bitmaps.len() * 8,
        };
        let memory = bitmaps.iter().map(|b| b.serialized_size() + 48).sum::<usize>()
            + keys
            + [&self.nonnull, &self.null, &self.doubles]
                .iter()
                .map(|b| b.serialized_size())
                .sum::<usize>();
        FieldStats {
            points,
            values: bitmaps.iter().filter(|b| !b.is_empty()).count() as u64,
            memory_bytes: memory as u64,
        }
    }
}

/// A range's bounds on integers, inclusive and rounded inward; `None` when empty.
fn int_bounds(r: &Range) -> Option<(i64, i64)> {
    let clamp = |x: f64| x.clamp(i64::MIN as f64, i64::MAX as f64);
    let mut lo = i64::MIN;
    let mut hi = i64::MAX;
    if let Some(g) = r.gt {
        let f = g.floor();
        lo = lo.max(if f >= i64::MAX as f64 { return None } else { clamp(f) as i64 + 1 });
    }
    if let Some(g) = r.gte {
        lo = lo.max(clamp(g.ceil()) as i64);
        if g.ceil() > i64::MAX as f64 {
            return None;
        }
    }
    if let Some(l) = r.lt {
        let c = l.ceil();
        hi = hi.min(if c <= i64::MIN as f64 { return None } else { clamp(c) as i64 - 1 });
    }
    if let Some(l) = r.lte {
        hi = hi.min(clamp(l.floor()) as i64);
        if l.floor() < i64::MIN as f64 {
            return None;
        }
    }
    (lo <= hi).then_some((lo, hi))
}

/// The bitmaps of the values of a float index within a range.
fn float_range<'a>(
    m: &'a BTreeMap<Ordered, RoaringBitmap>,
    r: &'a Range,
) -> impl Iterator<Item = &'a RoaringBitmap> + 'a {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    let lo = match (r.gt, r.gte) {
        (Some(a), Some(b)) if a >= b => Excluded(ordered(a)),
        (_, Some(b)) => Included(ordered(b)),
        (Some(a), None) => Excluded(ordered(a)),
        (None, None) => Unbounded,
    };
    let hi = match (r.lt, r.lte) {
        (Some(a), Some(b)) if a <= b => Excluded(ordered(a)),
        (_, Some(b)) => Included(ordered(b)),
        (Some(a), None) => Excluded(ordered(a)),
        (None, None) => Unbounded,
    };
    let empty = match (lo, hi) {
        (Included(a) | Excluded(a), Included(b) | Excluded(b)) => {
            a > b || (a == b && !(matches!(lo, Included(_)) && matches!(hi, Included(_))))
        }
        _ => false,
    };
    let range = if empty { None } else { Some(m.range((lo, hi))) };
    range.into_iter().flatten().map(|(_, b)| b)
}

/// One shard's payloads by slot (the index's dense slot of each live point), the ids of the
/// slots, and its field indexes. Every live point has a payload (maybe empty).
#[derive(Debug, Default)]
pub struct ShardPayloads {
    /// Encoded payloads by slot; `None` where the slot holds no live point.
    payloads: Vec<Option<Box<[u8]>>>,
    /// The id of each slot.
    ids: Vec<u64>,
    /// Live ids to their slots, in id order.
    slots: BTreeMap<u64, u32>,
    live: RoaringBitmap,
    indexes: BTreeMap<String, FieldIndex>,
}

fn decode_stored(b: &[u8]) -> Payload {
    if b.is_empty() {
        return Payload::new();
    }
    decode(b).expect("stored payloads were encoded here")
}

impl ShardPayloads {
    pub fn new() -> ShardPayloads {
        ShardPayloads::default()
    }

    /// Sets the payload of the live point `id` at `slot` (replacing any), maintaining every
    /// field index.
    pub fn set(&mut self, slot: u32, id: u64, payload: &Payload) {
        if let Some(&other) = self.slots.get(&id) {
            if other != slot {
                self.remove(other);
            }
        }
        let s = slot as usize;
        if s >= self.payloads.len() {
            self.payloads.resize(s + 1, None);
            self.ids.resize(s + 1, 0);
        }
        if self.payloads[s].is_some() {
            if self.ids[s] != id {
                self.remove(slot);
            } else if !self.indexes.is_empty() {
                let old = decode_stored(self.payloads[s].as_deref().unwrap_or_default());
                self.index(slot, &old, false);
            }
        }
        let mut bytes = Vec::new();
        if !payload.is_empty() {
            encode(payload, &mut bytes);
        }
        self.payloads[s] = Some(bytes.into_boxed_slice());
        self.ids[s] = id;
        self.slots.insert(id, slot);
        self.live.insert(slot);
        self.index(slot, payload, true);
    }

    fn index(&mut self, slot: u32, p: &Payload, add: bool) {
        for (key, ix) in &mut self.indexes {
            ix.update(key, p, slot, add);
        }
    }

    /// Removes a deleted point's payload.
    pub fn remove(&mut self, slot: u32) {
        let s = slot as usize;
        let Some(old) = self.payloads.get_mut(s).and_then(Option::take) else { return };
        if !self.indexes.is_empty() {
            self.index(slot, &decode_stored(&old), false);
        }
        self.slots.remove(&self.ids[s]);
        self.live.remove(slot);
    }

    /// The payload of the live point at `slot`.
    pub fn get(&self, slot: u32) -> Option<Payload> {
        self.payloads.get(slot as usize)?.as_deref().map(decode_stored)
    }

    /// The slot of a live id.
    pub fn slot_of(&self, id: u64) -> Option<u32> {
        self.slots.get(&id).copied()
    }

    /// Slots of every live point.
    pub fn live(&self) -> &RoaringBitmap {
        &self.live
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds an index of `key` for values of `kind` over the current payloads. `false` when
    /// the key already has an index (of any kind; it is kept as it is).
    pub fn create_index(&mut self, key: &str, kind: FieldKind) -> bool {
        if self.indexes.contains_key(key) {
            return false;
        }
        let mut ix = FieldIndex::new(kind);
        for slot in &self.live {
            if let Some(b) = self.payloads[slot as usize].as_deref() {
                if !b.is_empty() {
                    ix.update(key, &decode_stored(b), slot, true);
                }
            }
        }
        self.indexes.insert(key.to_string(), ix);
        true
    }

    /// `false` when the key has no index.
    pub fn drop_index(&mut self, key: &str) -> bool {
        self.indexes.remove(key).is_some()
    }

    /// The indexed keys and their kinds, in key order.
    pub fn indexes(&self) -> Vec<(String, FieldKind)> {
        self.indexes.iter().map(|(k, ix)| (k.clone(), ix.kind)).collect()
    }

    pub fn index_stats(&self, key: &str) -> Option<FieldStats> {
        self.indexes.get(key).map(FieldIndex::stats)
    }

    /// Whether evaluating `filter` reads payloads (a condition no index answers).
    pub fn uses_unindexed(&self, filter: &Filter) -> bool {
        filter.conditions().any(|c| self.unindexed(c))
    }

    /// Whether evaluating `c` reads payloads.
    fn unindexed(&self, c: &Condition) -> bool {
        match c {
            Condition::HasId(_) => false,
            Condition::Filter(f) => self.uses_unindexed(f),
            Condition::IsEmpty { key } | Condition::IsNull { key } => {
                !self.indexes.contains_key(key)
            }
            c => !self.fits(c),
        }
    }

    /// Whether an index answers the value condition `c`.
    fn fits(&self, c: &Condition) -> bool {
        use FieldKind as K;
        let (key, kinds): (&String, &[K]) = match c {
            Condition::Match { key, value: MatchValue::Keyword(_) } => (key, &[K::Keyword]),
            Condition::Match { key, value: MatchValue::Integer(_) } => (key, &[K::Integer]),
            Condition::Match { key, value: MatchValue::Bool(_) } => (key, &[K::Bool]),
            Condition::MatchAny { key, values: MatchValues::Keywords(_) }
            | Condition::MatchExcept { key, values: MatchValues::Keywords(_) } => {
                (key, &[K::Keyword])
            }
            Condition::MatchAny { key, values: MatchValues::Integers(_) }
            | Condition::MatchExcept { key, values: MatchValues::Integers(_) } => {
                (key, &[K::Integer])
            }
            Condition::Range { key, .. } => (key, &[K::Integer, K::Float]),
            Condition::DatetimeRange { key, .. } => (key, &[K::Datetime]),
            _ => return false,
        };
        self.indexes.get(key).is_some_and(|ix| kinds.contains(&ix.kind))
    }

    /// The index of a value condition's key and its answer, when the index fits.
    fn indexed_answer(&self, c: &Condition) -> Option<(&FieldIndex, RoaringBitmap)> {
        let key = match c {
            Condition::Match { key, .. }
            | Condition::MatchAny { key, .. }
            | Condition::MatchExcept { key, .. }
            | Condition::Range { key, .. }
            | Condition::DatetimeRange { key, .. } => key,
            _ => return None,
        };
        let ix = self.indexes.get(key)?;
        Some((ix, ix.answer(c)?))
    }

    /// The exact set of live slots whose point matches `filter`.
    pub fn matching(&self, filter: &Filter) -> RoaringBitmap {
        self.eval(filter, &self.live)
    }

    /// The slots of `within` whose point matches `f`.
    fn eval(&self, f: &Filter, within: &RoaringBitmap) -> RoaringBitmap {
        // Conditions an index answers first: they shrink the set the others read payloads of.
        let mut must: Vec<&Condition> = f.must.iter().collect();
        must.sort_by_key(|c| self.unindexed(c));
        let mut cur = within.clone();
        for c in must {
            if cur.is_empty() {
                return cur;
            }
            cur = self.cond(c, &cur);
        }
        if !f.should.is_empty() {
            let mut any = RoaringBitmap::new();
            for c in &f.should {
                let rest = &cur - &any;
                if rest.is_empty() {
                    break;
                }
                any |= self.cond(c, &rest);
            }
            cur &= any;
        }
        for c in &f.must_not {
            if cur.is_empty() {
                return cur;
            }
            cur -= self.cond(c, &cur);
        }
        if let Some(m) = &f.min_should {
            // at_least[j]: the slots that met at least j of the conditions so far.
            let mut at_least = vec![cur.clone()];
            at_least.resize(m.min_count + 1, RoaringBitmap::new());
            for c in &m.conditions {
                let held = self.cond(c, &cur);
                for j in (1..=m.min_count).rev() {
                    let more = &at_least[j - 1] & &held;
                    at_least[j] |= more;
                }
            }
            cur = at_least.pop().unwrap_or_default();
        }
        cur
    }

    /// The slots of `within` for which `c` holds.
    fn cond(&self, c: &Condition, within: &RoaringBitmap) -> RoaringBitmap {
        match c {
            Condition::HasId(ids) => {
                let mut b: RoaringBitmap = ids.iter().filter_map(|id| self.slot_of(*id)).collect();
                b &= within;
                b
            }
            Condition::Filter(f) => self.eval(f, within),
            Condition::IsEmpty { key } => match self.indexes.get(key) {
                Some(ix) => within - &ix.nonnull,
                None => self.per_slot(c, within),
            },
            Condition::IsNull { key } => match self.indexes.get(key) {
                Some(ix) => within & &ix.null,
                None => self.per_slot(c, within),
            },
            c => match self.indexed_answer(c) {
                Some((ix, mut b)) => {
                    b &= within;
                    if let Some(more) = ix.unanswered(c) {
                        b |= self.per_slot(c, &(within & more));
                    }
                    b
                }
                None => self.per_slot(c, within),
            },
        }
    }

    /// The slots of `within` for which `c` holds, read from their payloads.
    fn per_slot(&self, c: &Condition, within: &RoaringBitmap) -> RoaringBitmap {
        let empty = Payload::new();
        within
            .iter()
            .filter(|&slot| {
                let s = slot as usize;
                let Some(b) = self.payloads.get(s).and_then(|p| p.as_deref()) else { return false };
                match b.is_empty() {
                    true => c.holds(self.ids[s], &empty),
                    false => c.holds(self.ids[s], &decode_stored(b)),
                }
            })
            .collect()
    }

    /// Live points in id order from `from` (inclusive) that `filter` matches: up to `limit`
    /// `(id, slot)` pairs.
    pub fn scroll(
        &self,
        filter: Option<&RoaringBitmap>,
        from: u64,
        limit: usize,
    ) -> Vec<(u64, u32)> {
        self.slots
            .range(from..)
            .filter(|(_, slot)| filter.is_none_or(|f| f.contains(**slot)))
            .take(limit)
            .map(|(id, slot)| (*id, *slot))
            .collect()
    }

    /// Heap bytes of the payloads and the indexes.
    pub fn memory_bytes(&self) -> usize {
        let payloads: usize = self.payloads.iter().flatten().map(|b| b.len()).sum();
        payloads
            + self.payloads.capacity() * std::mem::size_of::<Option<Box<[u8]>>>()
            + self.ids.capacity() * 8
            // A B-tree entry: key, value and about a third of a node's overhead.
            + self.slots.len() * 24
            + self.live.serialized_size()
            + self.indexes.values().map(|ix| ix.stats().memory_bytes as usize).sum::<usize>()
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
