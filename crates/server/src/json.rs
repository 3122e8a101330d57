//! Plain JSON for the command line and the benchmark: payloads as JSON objects (integers
//! stay int64, other numbers are doubles) and filters in Qdrant's JSON shape, converted to the
//! API's messages. (The JSON gateway speaks the proto3 JSON mapping of the messages instead.)
//!
//! A filter: `{"must": [C...], "should": [C...], "must_not": [C...], "min_should":
//! {"conditions": [C...], "min_count": N}}`, each condition one of
//! `{"key": K, "match": {"value": V} | {"any": [V...]} | {"except": [V...]}}`,
//! `{"key": K, "range": {"gt"|"gte"|"lt"|"lte": X}}`,
//! `{"key": K, "datetime_range": {"gte": "2024-01-01T00:00:00Z", ...}}`,
//! `{"is_empty": {"key": K}}`, `{"is_null": {"key": K}}`, `{"has_id": [ID...]}`, or a nested
//! filter (an object with `must`, `should`, `must_not` or `min_should`).

use crate::proto::{self, condition, r#match::MatchValue, value::Kind};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;

type Result<T> = std::result::Result<T, String>;

/// The deepest JSON this converts (the server refuses deeper payloads and filters anyway).
const MAX_JSON_DEPTH: usize = 64;

/// A payload from a JSON object.
pub fn payload(j: &Json) -> Result<HashMap<String, proto::Value>> {
    match j {
        Json::Object(m) => object(m, 0),
        _ => Err(format!("a payload is a JSON object, got {j}")),
    }
}

fn object(m: &Map<String, Json>, depth: usize) -> Result<HashMap<String, proto::Value>> {
    m.iter().map(|(k, v)| Ok((k.clone(), value(v, depth + 1)?))).collect()
}

fn value(j: &Json, depth: usize) -> Result<proto::Value> {
    if depth > MAX_JSON_DEPTH {
        return Err(format!("JSON nested deeper than {MAX_JSON_DEPTH}"));
    }
    let kind = match j {
        Json::Null => Kind::NullValue(proto::NullValue::NullValue as i32),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Kind::IntegerValue(i),
            None => Kind::DoubleValue(n.as_f64().ok_or_else(|| format!("number {n}"))?),
        },
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(a) => Kind::ListValue(proto::ListValue {
            values: a.iter().map(|v| value(v, depth + 1)).collect::<Result<_>>()?,
        }),
        Json::Object(m) => Kind::StructValue(proto::Struct { fields: object(m, depth)? }),
    };
    Ok(proto::Value { kind: Some(kind) })
}

/// A payload message as a JSON object (for printing).
pub fn payload_json(p: &HashMap<String, proto::Value>) -> Json {
    let mut keys: Vec<&String> = p.keys().collect();
    keys.sort();
    Json::Object(keys.into_iter().map(|k| (k.clone(), value_json(&p[k]))).collect())
}

fn value_json(v: &proto::Value) -> Json {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(*b),
        Some(Kind::IntegerValue(i)) => Json::from(*i),
        Some(Kind::DoubleValue(d)) => {
            serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number)
        }
        Some(Kind::StringValue(s)) => Json::String(s.clone()),
        Some(Kind::ListValue(l)) => Json::Array(l.values.iter().map(value_json).collect()),
        Some(Kind::StructValue(s)) => payload_json(&s.fields),
    }
}

/// A filter from its Qdrant-shaped JSON (see the module docs).
pub fn filter(j: &Json) -> Result<proto::Filter> {
    filter_at(j, 0)
}

fn filter_at(j: &Json, depth: usize) -> Result<proto::Filter> {
    if depth > MAX_JSON_DEPTH {
        return Err(format!("filters nested deeper than {MAX_JSON_DEPTH}"));
    }
    let m = j.as_object().ok_or_else(|| format!("a filter is a JSON object, got {j}"))?;
    let list = |name: &str| -> Result<Vec<proto::Condition>> {
        match m.get(name) {
            None => Ok(Vec::new()),
            Some(Json::Array(a)) => a.iter().map(|c| condition_at(c, depth)).collect(),
            Some(other) => Err(format!("{name}: a list of conditions, got {other}")),
        }
    };
    for k in m.keys() {
        if !["must", "should", "must_not", "min_should"].contains(&k.as_str()) {
            return Err(format!("unknown filter field {k:?}"));
        }
    }
    let min_should = match m.get("min_should") {
        None => None,
        Some(ms) => {
            let conditions = match ms.get("conditions") {
                Some(Json::Array(a)) => {
                    a.iter().map(|c| condition_at(c, depth)).collect::<Result<_>>()?
                }
                _ => return Err("min_should: needs a list of conditions".into()),
            };
            let min_count =
                ms.get("min_count").and_then(Json::as_u64).ok_or("min_should: needs min_count")?;
            Some(proto::MinShould { conditions, min_count: min_count.min(u32::MAX as u64) as u32 })
        }
    };
    Ok(proto::Filter {
        must: list("must")?,
        should: list("should")?,
        must_not: list("must_not")?,
        min_should,
    })
}

fn condition_at(j: &Json, depth: usize) -> Result<proto::Condition> {
    let m = j.as_object().ok_or_else(|| format!("a condition is a JSON object, got {j}"))?;
    let key_of = |o: &Json| -> Result<String> {
        o.get("key")
            .and_then(Json::as_str)
            .map(str::to_string)
            .ok_or_else(|| format!("{j}: needs a key"))
    };
    let c = if let Some(o) = m.get("is_empty") {
        condition::Condition::IsEmpty(proto::IsEmptyCondition { key: key_of(o)? })
    } else if let Some(o) = m.get("is_null") {
        condition::Condition::IsNull(proto::IsNullCondition { key: key_of(o)? })
    } else if let Some(ids) = m.get("has_id") {
        let ids = ids.as_array().ok_or("has_id: a list of ids")?;
        let ids = ids.iter().map(|i| i.as_u64().ok_or_else(|| format!("has_id: {i} is not an id")));
        condition::Condition::HasId(proto::HasIdCondition { ids: ids.collect::<Result<_>>()? })
    } else if m.contains_key("key") {
        condition::Condition::Field(field(m, key_of(j)?)?)
    } else {
        condition::Condition::Filter(filter_at(j, depth + 1)?)
    };
    Ok(proto::Condition { condition: Some(c) })
}

fn field(m: &Map<String, Json>, key: String) -> Result<proto::FieldCondition> {
    let mut fc = proto::FieldCondition { key: key.clone(), ..Default::default() };
    if let Some(mt) = m.get("match") {
        fc.r#match = Some(proto::Match { match_value: Some(match_value(&key, mt)?) });
    }
    if let Some(r) = m.get("range") {
        let b = |n: &str| {
            r.get(n).map(|v| v.as_f64().ok_or_else(|| format!("{key}: range {n} is not a number")))
        };
        fc.range = Some(proto::Range {
            gt: b("gt").transpose()?,
            gte: b("gte").transpose()?,
            lt: b("lt").transpose()?,
            lte: b("lte").transpose()?,
        });
    }
    if let Some(r) = m.get("datetime_range") {
        let b = |n: &str| r.get(n).and_then(Json::as_str).unwrap_or_default().to_string();
        fc.datetime_range =
            Some(proto::DatetimeRange { gt: b("gt"), gte: b("gte"), lt: b("lt"), lte: b("lte") });
    }
    Ok(fc)
}

/// A JSON list read as all strings, or all integers (whichever it is).
type Either = (Option<Vec<String>>, Option<Vec<i64>>);

fn match_value(key: &str, mt: &Json) -> Result<MatchValue> {
    let strings =
        |a: &[Json]| a.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>();
    let ints = |a: &[Json]| a.iter().map(Json::as_i64).collect::<Option<Vec<_>>>();
    let list = |name: &str| -> Result<Option<Either>> {
        match mt.get(name) {
            None => Ok(None),
            Some(Json::Array(a)) => Ok(Some((strings(a), ints(a)))),
            Some(other) => Err(format!("{key}: match {name} needs a list, got {other}")),
        }
    };
    // A bare value is shorthand for {"value": V}.
    if !mt.is_object() {
        return match_value(key, &serde_json::json!({ "value": mt }));
    }
    if let Some(v) = mt.get("value") {
        return match v {
            Json::String(s) => Ok(MatchValue::Keyword(s.clone())),
            Json::Bool(b) => Ok(MatchValue::Boolean(*b)),
            Json::Number(n) if n.is_i64() => {
                Ok(MatchValue::Integer(n.as_i64().unwrap_or_default()))
            }
            other => Err(format!(
                "{key}: match value must be a string, an integer or a bool, got {other}"
            )),
        };
    }
    let bad = || format!("{key}: a list of all strings or all integers");
    if let Some((s, i)) = list("any")? {
        return match (s, i) {
            (Some(s), _) => Ok(MatchValue::Keywords(proto::RepeatedStrings { strings: s })),
            (_, Some(i)) => Ok(MatchValue::Integers(proto::RepeatedIntegers { integers: i })),
            _ => Err(bad()),
        };
    }
    if let Some((s, i)) = list("except")? {
        return match (s, i) {
            (Some(s), _) => Ok(MatchValue::ExceptKeywords(proto::RepeatedStrings { strings: s })),
            (_, Some(i)) => Ok(MatchValue::ExceptIntegers(proto::RepeatedIntegers { integers: i })),
            _ => Err(bad()),
        };
    }
    Err(format!("{key}: match needs value, any or except"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qdrant_shaped_filters_convert() {
        let j: Json = serde_json::json!({
            "must": [
                {"key": "tag", "match": {"value": "a"}},
                {"key": "year", "range": {"gte": 2000, "lt": 2010.5}},
                {"should": [{"key": "n", "match": {"any": [1, 2]}}, {"is_null": {"key": "x"}}]}
            ],
            "must_not": [{"has_id": [3, 4]}]
        });
        let f = filter(&j).unwrap();
        assert_eq!(f.must.len(), 3);
        let Some(condition::Condition::Field(fc)) = &f.must[1].condition else { panic!() };
        assert_eq!(fc.range.unwrap().lt, Some(2010.5));
        let Some(condition::Condition::Filter(inner)) = &f.must[2].condition else { panic!() };
        assert_eq!(inner.should.len(), 2);
        assert!(filter(&serde_json::json!({"mustt": []})).is_err());
        assert!(
            filter(&serde_json::json!({"must": [{"key": "a", "match": {"value": 1.5}}]})).is_err()
        );
    }

    #[test]
    fn payload_numbers_keep_their_kind() {
        let p =
            payload(&serde_json::json!({"i": 3, "d": 3.5, "l": [1, "a", null], "o": {"x": true}}))
                .unwrap();
        assert!(matches!(p["i"].kind, Some(Kind::IntegerValue(3))));
        assert!(matches!(p["d"].kind, Some(Kind::DoubleValue(_))));
        assert_eq!(payload_json(&p)["o"]["x"], Json::Bool(true));
    }
}
