//! Payloads, filters and payload selectors between the API's messages and the engine's
//! types, checked in one place: a request that converts is within every documented limit.
//! The limits themselves are the engine's (`Value` and `Filter` validation); the messages'
//! nesting is already bounded by the protobuf decoder's recursion limit.

use crate::proto;
use freshvec_core::durable::{Target, MAX_TARGET_IDS};
use freshvec_core::payload::filter::parse_datetime;
use freshvec_core::payload::{
    Condition, FieldKind, Filter, MatchValue, MatchValues, MinShould, Payload, Range, Value,
};
use std::collections::{BTreeMap, HashMap};
use tonic::Status;

fn invalid(field: &str, reason: impl std::fmt::Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

/// A payload from its message, validated (limits in the proto's payload section).
pub fn payload_from(field: &str, map: HashMap<String, proto::Value>) -> Result<Payload, Status> {
    let p = object_from(field, map)?;
    freshvec_core::payload::value::validate(&p).map_err(|e| invalid(field, e))?;
    Ok(p)
}

fn object_from(
    field: &str,
    map: HashMap<String, proto::Value>,
) -> Result<BTreeMap<String, Value>, Status> {
    map.into_iter()
        .map(|(k, v)| {
            let v = value_from(field, &k, v)?;
            Ok((k, v))
        })
        .collect()
}

fn value_from(field: &str, key: &str, v: proto::Value) -> Result<Value, Status> {
    use proto::value::Kind;
    Ok(match v.kind {
        None => return Err(invalid(field, format!("{key:?}: a value without a kind"))),
        Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(b),
        Some(Kind::IntegerValue(i)) => Value::Int(i),
        Some(Kind::DoubleValue(d)) => Value::Double(d),
        Some(Kind::StringValue(s)) => Value::String(s),
        Some(Kind::ListValue(l)) => {
            let items = l.values.into_iter().map(|v| value_from(field, key, v));
            Value::List(items.collect::<Result<_, _>>()?)
        }
        Some(Kind::StructValue(s)) => Value::Object(object_from(field, s.fields)?),
    })
}

/// A payload as its message.
pub fn payload_to(p: &Payload) -> HashMap<String, proto::Value> {
    p.iter().map(|(k, v)| (k.clone(), value_to(v))).collect()
}

fn value_to(v: &Value) -> proto::Value {
    use proto::value::Kind;
    let kind = match v {
        Value::Null => Kind::NullValue(proto::NullValue::NullValue as i32),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Int(i) => Kind::IntegerValue(*i),
        Value::Double(d) => Kind::DoubleValue(*d),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::List(l) => {
            Kind::ListValue(proto::ListValue { values: l.iter().map(value_to).collect() })
        }
        Value::Object(o) => Kind::StructValue(proto::Struct { fields: payload_to(o) }),
    };
    proto::Value { kind: Some(kind) }
}

/// A filter from its message, validated (limits in the proto's `Filter`).
pub fn filter_from(field: &str, f: proto::Filter) -> Result<Filter, Status> {
    let f = filter_at(field, f)?;
    f.validate().map_err(|e| invalid(field, e))?;
    Ok(f)
}

fn filter_at(field: &str, f: proto::Filter) -> Result<Filter, Status> {
    let list = |cs: Vec<proto::Condition>| -> Result<Vec<Condition>, Status> {
        cs.into_iter().map(|c| condition_from(field, c)).collect()
    };
    let must = list(f.must)?;
    let should = list(f.should)?;
    let must_not = list(f.must_not)?;
    let min_should = match f.min_should {
        None => None,
        Some(m) => {
            Some(MinShould { conditions: list(m.conditions)?, min_count: m.min_count as usize })
        }
    };
    Ok(Filter { must, should, must_not, min_should })
}

fn condition_from(field: &str, c: proto::Condition) -> Result<Condition, Status> {
    use proto::condition::Condition as C;
    Ok(match c.condition {
        None => return Err(invalid(field, "a condition without a kind")),
        Some(C::IsEmpty(c)) => Condition::IsEmpty { key: c.key },
        Some(C::IsNull(c)) => Condition::IsNull { key: c.key },
        Some(C::HasId(c)) => Condition::HasId(c.ids),
        Some(C::Filter(f)) => Condition::Filter(filter_at(field, f)?),
        Some(C::Field(fc)) => field_condition(field, fc)?,
    })
}

fn field_condition(field: &str, fc: proto::FieldCondition) -> Result<Condition, Status> {
    use proto::r#match::MatchValue as M;
    let key = fc.key;
    let given =
        fc.r#match.is_some() as u8 + fc.range.is_some() as u8 + fc.datetime_range.is_some() as u8;
    if given != 1 {
        return Err(invalid(
            field,
            format!("condition on {key:?}: give exactly one of match, range and datetime_range"),
        ));
    }
    if let Some(r) = fc.range {
        let range = Range { gt: r.gt, gte: r.gte, lt: r.lt, lte: r.lte };
        return Ok(Condition::Range { key, range });
    }
    if let Some(r) = fc.datetime_range {
        let bound = |s: &str| -> Result<Option<f64>, Status> {
            if s.is_empty() {
                return Ok(None);
            }
            parse_datetime(s).map(|t| Some(t as f64)).ok_or_else(|| {
                invalid(field, format!("condition on {key:?}: {s:?} is not an RFC 3339 datetime"))
            })
        };
        let range = Range {
            gt: bound(&r.gt)?,
            gte: bound(&r.gte)?,
            lt: bound(&r.lt)?,
            lte: bound(&r.lte)?,
        };
        return Ok(Condition::DatetimeRange { key, range });
    }
    let m = fc
        .r#match
        .and_then(|m| m.match_value)
        .ok_or_else(|| invalid(field, format!("condition on {key:?}: a match without a value")))?;
    Ok(match m {
        M::Keyword(s) => Condition::Match { key, value: MatchValue::Keyword(s) },
        M::Integer(i) => Condition::Match { key, value: MatchValue::Integer(i) },
        M::Boolean(b) => Condition::Match { key, value: MatchValue::Bool(b) },
        M::Keywords(l) => Condition::MatchAny { key, values: MatchValues::Keywords(l.strings) },
        M::Integers(l) => Condition::MatchAny { key, values: MatchValues::Integers(l.integers) },
        M::ExceptKeywords(l) => {
            Condition::MatchExcept { key, values: MatchValues::Keywords(l.strings) }
        }
        M::ExceptIntegers(l) => {
            Condition::MatchExcept { key, values: MatchValues::Integers(l.integers) }
        }
    })
}

/// The points a payload write or a delete names: ids or a filter, exactly one.
pub fn target_from(ids: Vec<u64>, filter: Option<proto::Filter>) -> Result<Target, Status> {
    match (ids.is_empty(), filter) {
        (false, None) => {
            if ids.len() > MAX_TARGET_IDS.min(crate::vectors::MAX_BATCH) {
                return Err(invalid(
                    "ids",
                    format!(
                        "at most {} per request",
                        MAX_TARGET_IDS.min(crate::vectors::MAX_BATCH)
                    ),
                ));
            }
            Ok(Target::Ids(ids))
        }
        (true, Some(f)) => Ok(Target::Filter(filter_from("filter", f)?)),
        (true, None) => Err(invalid("ids", "give the points: ids or a filter")),
        (false, Some(_)) => Err(invalid("ids", "give ids or a filter, not both")),
    }
}

pub fn field_kind_from(t: i32) -> Result<FieldKind, Status> {
    match proto::FieldType::try_from(t) {
        Ok(proto::FieldType::Keyword) => Ok(FieldKind::Keyword),
        Ok(proto::FieldType::Integer) => Ok(FieldKind::Integer),
        Ok(proto::FieldType::Float) => Ok(FieldKind::Float),
        Ok(proto::FieldType::Bool) => Ok(FieldKind::Bool),
        Ok(proto::FieldType::Datetime) => Ok(FieldKind::Datetime),
        _ => Err(invalid("type", "must be one of the FIELD_TYPE_* values")),
    }
}

pub fn field_type_to(k: FieldKind) -> proto::FieldType {
    match k {
        FieldKind::Keyword => proto::FieldType::Keyword,
        FieldKind::Integer => proto::FieldType::Integer,
        FieldKind::Float => proto::FieldType::Float,
        FieldKind::Bool => proto::FieldType::Bool,
        FieldKind::Datetime => proto::FieldType::Datetime,
    }
}

/// Which keys of a payload a read returns (`None`: no payload).
#[derive(Clone, Debug)]
pub struct Selector {
    include: Vec<String>,
    exclude: Vec<String>,
}

/// The most keys a selector names.
const MAX_SELECTOR_KEYS: usize = 1_024;

pub fn selector_from(w: Option<proto::WithPayload>) -> Result<Option<Selector>, Status> {
    let Some(w) = w else { return Ok(None) };
    if w.include.len() + w.exclude.len() > MAX_SELECTOR_KEYS {
        return Err(invalid("with_payload", format!("at most {MAX_SELECTOR_KEYS} keys")));
    }
    if !w.enable && w.include.is_empty() {
        return Ok(None);
    }
    Ok(Some(Selector { include: w.include, exclude: w.exclude }))
}

impl Selector {
    /// The selected keys of a payload, as its message.
    pub fn select(&self, mut p: Payload) -> HashMap<String, proto::Value> {
        if !self.include.is_empty() {
            p.retain(|k, _| self.include.contains(k));
        }
        for k in &self.exclude {
            p.remove(k);
        }
        payload_to(&p)
    }
}
