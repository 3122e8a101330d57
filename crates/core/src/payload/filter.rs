//! The filter language, shaped like Qdrant's: `must`, `should`, `must_not` and `min_should`
//! over conditions on dotted key paths.

use super::value::{Payload, Value};
use serde::{Deserialize, Serialize};

/// The most conditions one filter holds, counted over every nesting level.
pub const MAX_CONDITIONS: usize = 1024;
/// The deepest nesting of filters.
pub const MAX_FILTER_DEPTH: usize = 16;
/// The most values of one `match any`/`match except`, and ids of one `has_id`.
pub const MAX_VALUES: usize = 10_000;

/// A point matches when every `must` condition, at least one `should` condition (if any
/// are given), no `must_not` condition and at least `min_should.min_count` of
/// `min_should.conditions` hold. The empty filter matches every point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub must: Vec<Condition>,
    pub should: Vec<Condition>,
    pub must_not: Vec<Condition>,
    pub min_should: Option<MinShould>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MinShould {
    pub conditions: Vec<Condition>,
    pub min_count: usize,
}

/// One condition. On a path holding several values (a list, or lists met on the way), a
/// value condition holds when any value satisfies it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Condition {
    /// A value at `key` equals `value` (a string, an integer or a bool; integers match
    /// `Int` values only).
    Match {
        key: String,
        value: MatchValue,
    },
    /// A value at `key` equals one of `values`.
    MatchAny {
        key: String,
        values: MatchValues,
    },
    /// `key` has a value of the list's type and one that is in none of `values`.
    MatchExcept {
        key: String,
        values: MatchValues,
    },
    /// A number (`Int` or `Double`) at `key` lies in the range.
    Range {
        key: String,
        range: Range,
    },
    /// A datetime at `key` (an RFC 3339 string) lies in the range, bounds in microseconds
    /// since the Unix epoch.
    DatetimeRange {
        key: String,
        range: Range,
    },
    /// `key` is absent, null, or an empty list.
    IsEmpty {
        key: String,
    },
    /// `key` is present and null.
    IsNull {
        key: String,
    },
    /// The point's id is one of these.
    HasId(Vec<u64>),
    Filter(Filter),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchValue {
    Keyword(String),
    Integer(i64),
    Bool(bool),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MatchValues {
    Keywords(Vec<String>),
    Integers(Vec<i64>),
}

/// Bounds of a range; absent bounds are open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub gt: Option<f64>,
    pub gte: Option<f64>,
    pub lt: Option<f64>,
    pub lte: Option<f64>,
}

impl Range {
    /// Whether `x` lies within every bound.
    pub fn contains(&self, x: f64) -> bool {
        self.gt.is_none_or(|b| x > b)
            && self.gte.is_none_or(|b| x >= b)
            && self.lt.is_none_or(|b| x < b)
            && self.lte.is_none_or(|b| x <= b)
    }
}

impl Filter {
    /// Checks the filter against the limits: at most [`MAX_CONDITIONS`] conditions and
    /// [`MAX_FILTER_DEPTH`] levels, keys non-empty and at most `MAX_KEY_BYTES` per part,
    /// range bounds finite, at most [`MAX_VALUES`] values per list, `min_count` at most the
    /// number of its conditions.
    pub fn validate(&self) -> crate::Result<()> {
        todo!()
    }

    /// Whether the point `id` with payload `p` matches.
    pub fn matches(&self, id: u64, p: &Payload) -> bool {
        let _ = (id, p);
        todo!()
    }

    /// Whether the filter has no condition (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.must.is_empty()
            && self.should.is_empty()
            && self.must_not.is_empty()
            && self.min_should.is_none()
    }
}

impl Condition {
    /// Whether the condition holds for the point `id` with payload `p`.
    pub fn holds(&self, id: u64, p: &Payload) -> bool {
        let _ = (id, p, None::<&Value>);
        todo!()
    }
}

/// Parses an RFC 3339 datetime (`2024-01-31T12:00:00Z`, `2024-01-31T12:00:00.5+02:00`, or a
/// bare date `2024-01-31` as midnight UTC) to microseconds since the Unix epoch.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let _ = s;
    todo!()
}
