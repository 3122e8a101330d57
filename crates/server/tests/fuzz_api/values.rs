//! Payloads, filters and payload selectors for the fuzzer: mostly valid (a few keys the
//! fuzzer reuses, so filters match and field indexes see values), else at or past every
//! documented limit (64 KiB per payload, keys 1..=256 bytes without '.', 16 levels, finite
//! doubles; filters of 1,024 conditions, 16 levels, lists of 10,000; ranges with a bound).

use super::{chance, pick, u64_field, Rng, IDS};
use freshvec_server::proto::*;
use std::collections::HashMap;

/// Keys the valid payloads and filters share.
const KEYS: [&str; 6] = ["tag", "n", "x", "when", "meta", "flag"];

fn key(rng: &mut Rng) -> String {
    match rng.next() % 14 {
        0 => String::new(),
        1 => "a.b".into(),
        2 => "k".repeat(257),
        3 => "k".repeat(256),
        4 => "vé\u{0}".into(),
        5 => "meta.lang".into(),
        _ => pick(rng, &KEYS).to_string(),
    }
}

/// A dotted path for filters, indexes and key deletions: mostly a known key.
fn path(rng: &mut Rng) -> String {
    match rng.next() % 12 {
        0 => String::new(),
        1 => "a..b".into(),
        2 => ".".into(),
        3 => "meta.lang".into(),
        4 => "p.".repeat(40),
        5 => "k".repeat(300),
        _ => pick(rng, &KEYS).to_string(),
    }
}

fn kind(k: value::Kind) -> Value {
    Value { kind: Some(k) }
}

fn value(rng: &mut Rng, depth: usize) -> Value {
    use value::Kind;
    match rng.next() % 16 {
        0 => kind(Kind::NullValue(0)),
        1 => kind(Kind::BoolValue(chance(rng, 50))),
        2 | 3 => kind(Kind::IntegerValue(match rng.next() % 4 {
            0 => i64::MIN,
            1 => i64::MAX,
            _ => (rng.next() % 100) as i64,
        })),
        4 => kind(Kind::DoubleValue(match rng.next() % 6 {
            0 => f64::NAN,
            1 => f64::INFINITY,
            2 => -0.0,
            _ => rng.f32() as f64 * 100.0,
        })),
        5 | 6 => kind(Kind::StringValue(format!("t{}", rng.next() % 4))),
        7 => kind(Kind::StringValue(
            pick(rng, &["2024-01-31T12:00:00Z", "2024-02-30", "not a date", ""]).into(),
        )),
        8 if chance(rng, 5) => kind(Kind::StringValue("s".repeat(70_000))),
        // Wide only at the top (a wide list of wide lists would be exponential), deep
        // through narrow ones.
        9 if depth == 1 && chance(rng, 3) => kind(Kind::ListValue(ListValue {
            values: (0..20_000).map(|i| kind(Kind::IntegerValue(i))).collect(),
        })),
        9 if depth < 20 => kind(Kind::ListValue(ListValue {
            values: (0..rng.next() % 3).map(|_| value(rng, depth + 1)).collect(),
        })),
        10 | 11 if depth < 20 => {
            kind(Kind::StructValue(Struct { fields: payload_at(rng, depth + 1) }))
        }
        12 => Value { kind: None },
        _ => kind(Kind::StringValue(format!("t{}", rng.next() % 4))),
    }
}

fn payload_at(rng: &mut Rng, depth: usize) -> HashMap<String, Value> {
    let n = if depth == 1 && chance(rng, 2) {
        3_000
    } else {
        rng.next() % if depth == 1 { 5 } else { 3 }
    };
    (0..n).map(|_| (key(rng), value(rng, depth))).collect()
}

/// A payload: mostly a few known keys with small values.
pub fn payload(rng: &mut Rng) -> HashMap<String, Value> {
    payload_at(rng, 1)
}

fn bound(rng: &mut Rng) -> Option<f64> {
    match rng.next() % 8 {
        0 => Some(f64::NAN),
        1 => Some(f64::NEG_INFINITY),
        2..=4 => Some((rng.next() % 100) as f64),
        _ => None,
    }
}

fn instant(rng: &mut Rng) -> String {
    pick(
        rng,
        &["", "", "2024-01-01T00:00:00Z", "2024-01-01", "9999-99-99", "2024-01-01T00:00:00+25:00"],
    )
    .into()
}

fn condition(rng: &mut Rng, depth: usize) -> Condition {
    use condition::Condition as C;
    use r#match::MatchValue as M;
    let c = match rng.next() % 12 {
        0 => C::IsEmpty(IsEmptyCondition { key: path(rng) }),
        1 => C::IsNull(IsNullCondition { key: path(rng) }),
        2 => C::HasId(HasIdCondition {
            ids: (0..if chance(rng, 3) { 10_001 } else { rng.next() % 20 })
                .map(|_| if chance(rng, 90) { rng.next() % IDS } else { u64_field(rng) })
                .collect(),
        }),
        3 if depth < 20 => C::Filter(filter_at(rng, depth + 1)),
        4 => C::Field(FieldCondition {
            key: path(rng),
            range: Some(Range { lt: bound(rng), gt: bound(rng), gte: bound(rng), lte: bound(rng) }),
            ..Default::default()
        }),
        5 => C::Field(FieldCondition {
            key: path(rng),
            datetime_range: Some(DatetimeRange {
                lt: instant(rng),
                gt: instant(rng),
                gte: instant(rng),
                lte: instant(rng),
            }),
            ..Default::default()
        }),
        6 => C::Field(FieldCondition {
            // No condition at all, or more than one.
            key: path(rng),
            r#match: chance(rng, 50).then(|| Match { match_value: Some(M::Keyword("t1".into())) }),
            range: chance(rng, 50).then(|| Range { gte: Some(1.0), ..Default::default() }),
            ..Default::default()
        }),
        _ => {
            let m = match rng.next() % 7 {
                0 => M::Integer((rng.next() % 100) as i64),
                1 => M::Boolean(chance(rng, 50)),
                2 => M::Keywords(RepeatedStrings {
                    strings: (0..if chance(rng, 3) { 10_001 } else { rng.next() % 4 })
                        .map(|i| format!("t{i}"))
                        .collect(),
                }),
                3 => M::Integers(RepeatedIntegers {
                    integers: (0..rng.next() % 4).map(|i| i as i64).collect(),
                }),
                4 => M::ExceptKeywords(RepeatedStrings { strings: vec!["t0".into()] }),
                5 => M::ExceptIntegers(RepeatedIntegers { integers: vec![] }),
                _ => M::Keyword(format!("t{}", rng.next() % 4)),
            };
            C::Field(FieldCondition {
                key: path(rng),
                r#match: Some(Match { match_value: chance(rng, 97).then_some(m) }),
                ..Default::default()
            })
        }
    };
    Condition { condition: chance(rng, 98).then_some(c) }
}

fn conditions(rng: &mut Rng, depth: usize) -> Vec<Condition> {
    // Past the limit only at the top; below it at most one condition a list, so that a
    // filter stays small however deep it nests.
    let n = match rng.next() % 40 {
        0 if depth == 1 => 1_025,
        0..=12 => 0,
        _ if depth > 1 => 1,
        _ => 1 + rng.next() % 3,
    };
    (0..n).map(|_| condition(rng, depth)).collect()
}

fn filter_at(rng: &mut Rng, depth: usize) -> Filter {
    Filter {
        must: conditions(rng, depth),
        should: conditions(rng, depth),
        must_not: if chance(rng, 70) { Vec::new() } else { conditions(rng, depth) },
        min_should: chance(rng, 10).then(|| {
            let conditions = conditions(rng, depth);
            let min_count = match rng.next() % 4 {
                0 => 0,
                1 => conditions.len() as u32 + 1,
                _ => 1,
            };
            MinShould { conditions, min_count }
        }),
    }
}

/// A filter: mostly a condition or two on known keys, else nested, huge or ill-formed.
pub fn filter(rng: &mut Rng) -> Filter {
    filter_at(rng, 1)
}

/// Which payload keys to return.
pub fn with_payload(rng: &mut Rng) -> Option<WithPayload> {
    chance(rng, 50).then(|| WithPayload {
        enable: chance(rng, 80),
        include: (0..rng.next() % 3).map(|_| key(rng)).collect(),
        exclude: (0..rng.next() % 2).map(|_| key(rng)).collect(),
    })
}

/// Keys to delete: a few paths, none, or past the limit of 1,024.
pub fn keys(rng: &mut Rng) -> Vec<String> {
    let n = match rng.next() % 20 {
        0 => 0,
        1 => 1_025,
        _ => 1 + rng.next() % 3,
    };
    (0..n).map(|_| path(rng)).collect()
}

/// A field index key and type.
pub fn field_index(rng: &mut Rng) -> (String, i32) {
    (path(rng), super::enum_field(rng, 5))
}
