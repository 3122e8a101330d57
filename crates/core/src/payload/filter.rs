//! The filter language, shaped like Qdrant's: `must`, `should`, `must_not` and `min_should`
//! over conditions on dotted key paths.

use super::value::{values_at, Payload, Value, MAX_KEY_BYTES};
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

fn invalid(reason: String) -> crate::Error {
    crate::Error::InvalidParameter { name: "filter", reason }
}

fn check_key(key: &str) -> crate::Result<()> {
    if key.is_empty() || key.split('.').any(|p| p.is_empty() || p.len() > MAX_KEY_BYTES) {
        return Err(invalid(format!(
            "key {key:?}: a dotted path of parts of 1..={MAX_KEY_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_range(key: &str, r: &Range) -> crate::Result<()> {
    let bounds = [r.gt, r.gte, r.lt, r.lte];
    if bounds.iter().all(Option::is_none) {
        return Err(invalid(format!("range on {key:?}: give at least one bound")));
    }
    if bounds.iter().flatten().any(|b| !b.is_finite()) {
        return Err(invalid(format!("range on {key:?}: bounds must be finite")));
    }
    Ok(())
}

fn check_values(key: &str, n: usize, what: &str) -> crate::Result<()> {
    if n == 0 || n > MAX_VALUES {
        return Err(invalid(format!("{what} on {key:?}: 1..={MAX_VALUES} values, got {n}")));
    }
    Ok(())
}

impl MatchValues {
    fn len(&self) -> usize {
        match self {
            MatchValues::Keywords(v) => v.len(),
            MatchValues::Integers(v) => v.len(),
        }
    }
}

impl Filter {
    /// Checks the filter against the limits: at most [`MAX_CONDITIONS`] conditions and
    /// [`MAX_FILTER_DEPTH`] levels, keys non-empty and at most `MAX_KEY_BYTES` per part,
    /// range bounds finite, at most [`MAX_VALUES`] values per list, `min_count` at most the
    /// number of its conditions.
    pub fn validate(&self) -> crate::Result<()> {
        let mut count = 0;
        self.check(1, &mut count)
    }

    fn check(&self, depth: usize, count: &mut usize) -> crate::Result<()> {
        if depth > MAX_FILTER_DEPTH {
            return Err(invalid(format!("filters nest deeper than {MAX_FILTER_DEPTH} levels")));
        }
        if let Some(m) = &self.min_should {
            if m.min_count == 0 || m.min_count > m.conditions.len() {
                return Err(invalid(format!(
                    "min_should: min_count must be 1..={} (its conditions), got {}",
                    m.conditions.len(),
                    m.min_count
                )));
            }
        }
        for c in self.conditions() {
            *count += 1;
            if *count > MAX_CONDITIONS {
                return Err(invalid(format!("more than {MAX_CONDITIONS} conditions")));
            }
            c.check(depth, count)?;
        }
        Ok(())
    }

    /// Every condition of this level.
    pub(crate) fn conditions(&self) -> impl Iterator<Item = &Condition> {
        let min = self.min_should.iter().flat_map(|m| &m.conditions);
        self.must.iter().chain(&self.should).chain(&self.must_not).chain(min)
    }

    /// Whether the point `id` with payload `p` matches.
    pub fn matches(&self, id: u64, p: &Payload) -> bool {
        self.must.iter().all(|c| c.holds(id, p))
            && (self.should.is_empty() || self.should.iter().any(|c| c.holds(id, p)))
            && !self.must_not.iter().any(|c| c.holds(id, p))
            && self.min_should.as_ref().is_none_or(|m| {
                m.conditions.iter().filter(|c| c.holds(id, p)).take(m.min_count).count()
                    >= m.min_count
            })
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
    fn check(&self, depth: usize, count: &mut usize) -> crate::Result<()> {
        match self {
            Condition::Match { key, .. }
            | Condition::IsEmpty { key }
            | Condition::IsNull { key } => check_key(key),
            Condition::MatchAny { key, values } => {
                check_key(key)?;
                check_values(key, values.len(), "match any")
            }
            Condition::MatchExcept { key, values } => {
                check_key(key)?;
                if values.len() > MAX_VALUES {
                    return check_values(key, values.len(), "match except");
                }
                Ok(())
            }
            Condition::Range { key, range } | Condition::DatetimeRange { key, range } => {
                check_key(key)?;
                check_range(key, range)
            }
            Condition::HasId(ids) => check_values("id", ids.len(), "has_id"),
            Condition::Filter(f) => f.check(depth + 1, count),
        }
    }

    /// Whether the condition holds for the point `id` with payload `p`.
    pub fn holds(&self, id: u64, p: &Payload) -> bool {
        match self {
            Condition::HasId(ids) => ids.contains(&id),
            Condition::Filter(f) => f.matches(id, p),
            Condition::IsEmpty { key } => {
                values_at(p, key).iter().all(|v| matches!(v, Value::Null))
            }
            Condition::IsNull { key } => values_at(p, key).iter().any(|v| matches!(v, Value::Null)),
            Condition::Match { key, value } => {
                values_at(p, key).into_iter().any(|v| value.equals(v))
            }
            Condition::MatchAny { key, values } => {
                values_at(p, key).into_iter().any(|v| values.contains(v))
            }
            Condition::MatchExcept { key, values } => {
                values_at(p, key).into_iter().any(|v| values.same_type(v) && !values.contains(v))
            }
            Condition::Range { key, range } => {
                values_at(p, key).into_iter().any(|v| number(v).is_some_and(|x| range.contains(x)))
            }
            Condition::DatetimeRange { key, range } => values_at(p, key)
                .into_iter()
                .any(|v| datetime(v).is_some_and(|t| range.contains(t as f64))),
        }
    }
}

/// A number a range compares: an `Int` (as `f64`) or a `Double`.
pub fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Int(i) => Some(*i as f64),
        Value::Double(d) => Some(*d),
        _ => None,
    }
}

/// The datetime a string value names, in microseconds since the epoch.
pub fn datetime(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => parse_datetime(s),
        _ => None,
    }
}

impl MatchValue {
    /// Whether a stored value equals this one (integers equal `Int` values only).
    pub fn equals(&self, v: &Value) -> bool {
        match (self, v) {
            (MatchValue::Keyword(a), Value::String(b)) => a == b,
            (MatchValue::Integer(a), Value::Int(b)) => a == b,
            (MatchValue::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl MatchValues {
    pub fn contains(&self, v: &Value) -> bool {
        match (self, v) {
            (MatchValues::Keywords(l), Value::String(s)) => l.iter().any(|x| x == s),
            (MatchValues::Integers(l), Value::Int(i)) => l.contains(i),
            _ => false,
        }
    }

    /// Whether a stored value has the type of the list's values.
    pub fn same_type(&self, v: &Value) -> bool {
        matches!(
            (self, v),
            (MatchValues::Keywords(_), Value::String(_))
                | (MatchValues::Integers(_), Value::Int(_))
        )
    }
}

/// Days from 1970-01-01 to the given civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses an RFC 3339 datetime (`2024-01-31T12:00:00Z`, `2024-01-31T12:00:00.5+02:00`, or a
/// bare date `2024-01-31` as midnight UTC) to microseconds since the Unix epoch.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let part = b.get(from..from + n)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0i64, |a, &d| a * 10 + i64::from(d - b'0')))
    };
    let (y, m, d) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let day = days_from_civil(y, m, d) * 86_400_000_000;
    if b.len() == 10 {
        return Some(day);
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (hh, mm, ss) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') || hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if b.get(at) == Some(&b'.') {
        let start = at + 1;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        let n = end - start;
        if n == 0 || n > 9 {
            return None;
        }
        let frac = digits(start, n.min(6))?;
        micros = frac * 10i64.pow(6 - n.min(6) as u32);
        at = end;
    }
    let offset = match b.get(at..) {
        Some([]) | Some([b'Z' | b'z']) => 0,
        Some([sign @ (b'+' | b'-'), ..]) if b.len() == at + 6 && b[at + 3] == b':' => {
            let (oh, om) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = (oh * 60 + om) * 60_000_000;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    Some(day + ((hh * 60 + mm) * 60 + ss) * 1_000_000 + micros - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_parse_to_microseconds_and_bad_ones_are_refused() {
        assert_eq!(parse_datetime("1970-01-01"), Some(0));
        assert_eq!(parse_datetime("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_datetime("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_datetime("1969-12-31T23:59:59.5z"), Some(-500_000));
        assert_eq!(parse_datetime("2000-03-01T00:00:00.123456789Z"), Some(951_868_800_123_456));
        assert_eq!(parse_datetime("2024-02-29"), Some(1_709_164_800_000_000));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00+0100",
            "2024-1-01",
            "2024-01-01T00:00",
            "2024-01-01T00:00:00.Z",
            "",
            "x",
            "2024-01-01T00:00:00Zjunk",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }

    #[test]
    fn conditions_follow_the_documented_semantics() {
        let p = Payload::from([
            ("tags".to_string(), Value::List(vec![Value::String("a".into()), Value::Int(3)])),
            ("n".to_string(), Value::Double(2.5)),
            ("z".to_string(), Value::Null),
            ("e".to_string(), Value::List(vec![])),
            ("when".to_string(), Value::String("2024-05-01T00:00:00Z".into())),
        ]);
        let key = |k: &str| k.to_string();
        let kw = |s: &str| MatchValue::Keyword(s.into());
        let holds = |c: Condition| c.holds(7, &p);
        assert!(holds(Condition::Match { key: key("tags"), value: kw("a") }));
        assert!(holds(Condition::Match { key: key("tags"), value: MatchValue::Integer(3) }));
        assert!(!holds(Condition::Match { key: key("n"), value: MatchValue::Integer(2) }));
        assert!(holds(Condition::MatchExcept {
            key: key("tags"),
            values: MatchValues::Keywords(vec!["b".into()])
        }));
        assert!(!holds(Condition::MatchExcept {
            key: key("tags"),
            values: MatchValues::Keywords(vec!["a".into()])
        }));
        assert!(!holds(Condition::MatchExcept {
            key: key("none"),
            values: MatchValues::Keywords(vec!["a".into()])
        }));
        assert!(holds(Condition::Range {
            key: key("n"),
            range: Range { gt: Some(2.0), lte: Some(2.5), ..Range::default() }
        }));
        assert!(
            holds(Condition::IsEmpty { key: key("z") })
                && holds(Condition::IsEmpty { key: key("e") })
        );
        assert!(
            holds(Condition::IsEmpty { key: key("none") })
                && !holds(Condition::IsEmpty { key: key("n") })
        );
        assert!(
            holds(Condition::IsNull { key: key("z") })
                && !holds(Condition::IsNull { key: key("none") })
        );
        let may = parse_datetime("2024-05-01").unwrap() as f64;
        assert!(holds(Condition::DatetimeRange {
            key: key("when"),
            range: Range { gte: Some(may), ..Range::default() }
        }));
        assert!(holds(Condition::HasId(vec![1, 7])));
        let f = Filter { must_not: vec![Condition::HasId(vec![7])], ..Filter::default() };
        assert!(!f.matches(7, &p) && f.matches(8, &p) && Filter::default().matches(1, &p));
        let ms = Filter {
            min_should: Some(MinShould {
                conditions: vec![
                    Condition::HasId(vec![7]),
                    Condition::IsNull { key: key("z") },
                    Condition::HasId(vec![9]),
                ],
                min_count: 2,
            }),
            ..Filter::default()
        };
        assert!(ms.matches(7, &p) && !ms.matches(9, &Payload::new()));
    }

    #[test]
    fn validation_bounds_size_depth_and_values() {
        let mut deep = Filter::default();
        for _ in 0..MAX_FILTER_DEPTH {
            deep = Filter { must: vec![Condition::Filter(deep)], ..Filter::default() };
        }
        assert!(deep.validate().is_err());
        let wide = Filter {
            must: vec![Condition::HasId(vec![1]); MAX_CONDITIONS + 1],
            ..Filter::default()
        };
        assert!(wide.validate().is_err());
        let open = Filter {
            must: vec![Condition::Range { key: "a".into(), range: Range::default() }],
            ..Filter::default()
        };
        assert!(open.validate().is_err());
        let nan = Range { lt: Some(f64::NAN), ..Range::default() };
        assert!(Filter {
            must: vec![Condition::Range { key: "a".into(), range: nan }],
            ..Filter::default()
        }
        .validate()
        .is_err());
        let bad_key =
            Filter { must: vec![Condition::IsNull { key: "a..b".into() }], ..Filter::default() };
        assert!(bad_key.validate().is_err());
        let ms = Filter {
            min_should: Some(MinShould { conditions: vec![], min_count: 1 }),
            ..Filter::default()
        };
        assert!(ms.validate().is_err());
        assert!(Filter { must: vec![Condition::HasId(vec![])], ..Filter::default() }
            .validate()
            .is_err());
    }
}
