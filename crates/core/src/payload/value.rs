//! Payload values, their limits, validation and binary encoding.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The largest encoded payload of one point.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 10;
/// The deepest nesting of lists and objects (the payload's own map is depth 1).
pub const MAX_DEPTH: usize = 16;
/// The longest key, in bytes (keys are non-empty and hold no `.`, which separates path parts).
pub const MAX_KEY_BYTES: usize = 256;

/// One payload value: JSON with a distinct 64-bit integer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
    List(Vec<Value>),
    Object(BTreeMap<String, Value>),
}

/// A point's payload: keys to values, in key order.
pub type Payload = BTreeMap<String, Value>;

fn invalid(reason: String) -> crate::Error {
    crate::Error::InvalidParameter { name: "payload", reason }
}

/// Checks a payload against the limits: every key (at any depth) non-empty, at most
/// [`MAX_KEY_BYTES`] and without `.`; every double finite; nesting at most [`MAX_DEPTH`];
/// encoded size at most [`MAX_PAYLOAD_BYTES`].
pub fn validate(p: &Payload) -> crate::Result<()> {
    check_object(p, 1, "")?;
    let len = encoded_len(p);
    if len > MAX_PAYLOAD_BYTES {
        return Err(invalid(format!("encodes to {len} bytes, more than {MAX_PAYLOAD_BYTES}")));
    }
    Ok(())
}

fn check_object(o: &BTreeMap<String, Value>, depth: usize, path: &str) -> crate::Result<()> {
    if depth > MAX_DEPTH {
        return Err(invalid(format!("{path:?} nests deeper than {MAX_DEPTH} levels")));
    }
    for (k, v) in o {
        let at = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
        if k.is_empty() || k.len() > MAX_KEY_BYTES || k.contains('.') {
            return Err(invalid(format!(
                "key {at:?}: keys are 1..={MAX_KEY_BYTES} bytes and hold no '.'"
            )));
        }
        check_value(v, depth, &at)?;
    }
    Ok(())
}

fn check_value(v: &Value, depth: usize, path: &str) -> crate::Result<()> {
    match v {
        Value::Double(d) if !d.is_finite() => {
            Err(invalid(format!("{path:?}: doubles must be finite, got {d}")))
        }
        Value::List(l) => {
            if depth + 1 > MAX_DEPTH {
                return Err(invalid(format!("{path:?} nests deeper than {MAX_DEPTH} levels")));
            }
            l.iter().try_for_each(|x| check_value(x, depth + 1, path))
        }
        Value::Object(o) => check_object(o, depth + 1, path),
        _ => Ok(()),
    }
}

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const INT: u8 = 3;
const DOUBLE: u8 = 4;
const STRING: u8 = 5;
const LIST: u8 = 6;
const OBJECT: u8 = 7;

/// Appends the encoding of `p` (see `docs/file-formats.md`).
pub fn encode(p: &Payload, out: &mut Vec<u8>) {
    out.reserve(encoded_len(p));
    encode_object(p, out);
}

fn encode_object(o: &BTreeMap<String, Value>, out: &mut Vec<u8>) {
    out.extend_from_slice(&(o.len() as u32).to_le_bytes());
    for (k, v) in o {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(k.as_bytes());
        encode_value(v, out);
    }
}

fn encode_value(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Int(i) => {
            out.push(INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Value::Double(d) => {
            out.push(DOUBLE);
            out.extend_from_slice(&d.to_bits().to_le_bytes());
        }
        Value::String(s) => {
            out.push(STRING);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::List(l) => {
            out.push(LIST);
            out.extend_from_slice(&(l.len() as u32).to_le_bytes());
            l.iter().for_each(|x| encode_value(x, out));
        }
        Value::Object(o) => {
            out.push(OBJECT);
            encode_object(o, out);
        }
    }
}

/// The length of `p`'s encoding.
pub fn encoded_len(p: &Payload) -> usize {
    object_len(p)
}

fn object_len(o: &BTreeMap<String, Value>) -> usize {
    4 + o.iter().map(|(k, v)| 4 + k.len() + value_len(v)).sum::<usize>()
}

fn value_len(v: &Value) -> usize {
    1 + match v {
        Value::Null | Value::Bool(_) => 0,
        Value::Int(_) | Value::Double(_) => 8,
        Value::String(s) => 4 + s.len(),
        Value::List(l) => 4 + l.iter().map(value_len).sum::<usize>(),
        Value::Object(o) => object_len(o),
    }
}

/// A reader over untrusted bytes.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?) as usize)
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn str(&mut self) -> Option<String> {
        let n = self.u32()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// Decodes an encoded payload; `None` for anything malformed (unordered or repeated keys,
/// nesting past [`MAX_DEPTH`], trailing bytes, bad UTF-8, unknown tags).
pub fn decode(bytes: &[u8]) -> Option<Payload> {
    let mut r = Bytes(bytes);
    let p = decode_object(&mut r, 1)?;
    r.0.is_empty().then_some(p)
}

fn decode_object(r: &mut Bytes, depth: usize) -> Option<BTreeMap<String, Value>> {
    if depth > MAX_DEPTH {
        return None;
    }
    let n = r.u32()?;
    // Every entry takes at least 5 bytes: a count past that is a lie, refused before looping.
    if n > r.0.len() / 5 {
        return None;
    }
    let mut out = BTreeMap::new();
    let mut last: Option<String> = None;
    for _ in 0..n {
        let k = r.str()?;
        if last.as_ref().is_some_and(|l| *l >= k) {
            return None;
        }
        let v = decode_value(r, depth)?;
        last = Some(k.clone());
        out.insert(k, v);
    }
    Some(out)
}

fn decode_value(r: &mut Bytes, depth: usize) -> Option<Value> {
    Some(match r.u8()? {
        NULL => Value::Null,
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        INT => Value::Int(r.u64()? as i64),
        DOUBLE => Value::Double(f64::from_bits(r.u64()?)),
        STRING => Value::String(r.str()?),
        LIST => {
            if depth + 1 > MAX_DEPTH {
                return None;
            }
            let n = r.u32()?;
            if n > r.0.len() {
                return None;
            }
            let mut l = Vec::with_capacity(n);
            for _ in 0..n {
                l.push(decode_value(r, depth + 1)?);
            }
            Value::List(l)
        }
        OBJECT => Value::Object(decode_object(r, depth + 1)?),
        _ => return None,
    })
}

/// The values at a dotted path (`a.b.c`). A list met on the way is looked through: the path
/// continues into each of its elements, and a list at the end yields its elements (not the
/// list itself), so `tags` of `{"tags": ["a", "b"]}` yields `"a"` and `"b"`. Empty when the
/// path is absent.
pub fn values_at<'a>(p: &'a Payload, path: &str) -> Vec<&'a Value> {
    let mut out = Vec::new();
    let mut parts = path.split('.');
    let Some(first) = parts.next() else { return out };
    let rest: Vec<&str> = parts.collect();
    if let Some(v) = p.get(first) {
        walk(v, &rest, &mut out);
    }
    out
}

fn walk<'a>(v: &'a Value, rest: &[&str], out: &mut Vec<&'a Value>) {
    match (v, rest.split_first()) {
        (Value::List(l), _) => l.iter().for_each(|x| walk(x, rest, out)),
        (_, None) => out.push(v),
        (Value::Object(o), Some((k, more))) => {
            if let Some(x) = o.get(*k) {
                walk(x, more, out);
            }
        }
        _ => {}
    }
}

/// Merges `update` into `base`: each top-level key of `update` replaces that key of `base`.
pub fn merge(base: &mut Payload, update: &Payload) {
    for (k, v) in update {
        base.insert(k.clone(), v.clone());
    }
}

/// Removes keys: each a top-level key or a dotted path into nested objects. Absent keys are
/// ignored.
pub fn delete_keys(p: &mut Payload, keys: &[String]) {
    for key in keys {
        let parts: Vec<&str> = key.split('.').collect();
        let mut at = &mut *p;
        for (i, part) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                at.remove(*part);
                break;
            }
            match at.get_mut(*part) {
                Some(Value::Object(o)) => at = o,
                _ => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn random_value(rng: &mut Rng, depth: usize) -> Value {
        match rng.below(if depth >= 4 { 5 } else { 7 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 0),
            2 => Value::Int(rng.next_u64() as i64),
            3 => Value::Double(rng.normal() as f64 * 1e6),
            4 => Value::String("é".repeat(rng.below(4)) + &rng.below(100).to_string()),
            5 => Value::List((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
            _ => Value::Object(random_payload(rng, depth + 1)),
        }
    }

    fn random_payload(rng: &mut Rng, depth: usize) -> Payload {
        (0..rng.below(5))
            .map(|i| (format!("k{i}{}", rng.below(3)), random_value(rng, depth)))
            .collect()
    }

    #[test]
    fn encoding_round_trips_and_every_damage_is_refused_or_decodes_to_something_valid() {
        let seed = 0x9a1;
        println!("seed {seed:#x}");
        let mut rng = Rng::new(seed);
        for _ in 0..500 {
            let p = random_payload(&mut rng, 1);
            let mut b = Vec::new();
            encode(&p, &mut b);
            assert_eq!(b.len(), encoded_len(&p));
            assert_eq!(decode(&b), Some(p.clone()));
            for cut in 0..b.len() {
                assert_eq!(decode(&b[..cut]), None, "a truncation at {cut} decoded");
            }
            let mut longer = b.clone();
            longer.push(0);
            assert_eq!(decode(&longer), None, "trailing bytes");
            let mut bad = b.clone();
            let i = rng.below(bad.len());
            bad[i] ^= 1 << rng.below(8);
            if let Some(q) = decode(&bad) {
                let mut again = Vec::new();
                encode(&q, &mut again);
                assert_eq!(again, bad, "what decodes encodes back to the same bytes");
            }
        }
    }

    #[test]
    fn decoding_refuses_unordered_keys_deep_nesting_and_lying_counts() {
        let two = |a: &str, b: &str| {
            let mut out = 2u32.to_le_bytes().to_vec();
            for k in [a, b] {
                out.extend_from_slice(&(k.len() as u32).to_le_bytes());
                out.extend_from_slice(k.as_bytes());
                out.push(NULL);
            }
            out
        };
        assert!(decode(&two("a", "b")).is_some());
        assert_eq!(decode(&two("b", "a")), None);
        assert_eq!(decode(&two("a", "a")), None);
        assert_eq!(decode(&u32::MAX.to_le_bytes()), None);
        let mut deep = Value::Null;
        for _ in 0..MAX_DEPTH {
            deep = Value::List(vec![deep]);
        }
        let p = Payload::from([("k".to_string(), deep)]);
        let mut b = Vec::new();
        encode(&p, &mut b);
        assert_eq!(decode(&b), None);
        assert!(validate(&p).is_err());
    }

    #[test]
    fn validation_names_the_limit_passed() {
        let ok = Payload::from([(
            "a".to_string(),
            Value::Object(Payload::from([("b".into(), Value::Int(1))])),
        )]);
        assert!(validate(&ok).is_ok());
        for bad in [
            Payload::from([("".to_string(), Value::Null)]),
            Payload::from([("a.b".to_string(), Value::Null)]),
            Payload::from([("k".repeat(MAX_KEY_BYTES + 1), Value::Null)]),
            Payload::from([("d".to_string(), Value::Double(f64::NAN))]),
            Payload::from([("s".to_string(), Value::String("x".repeat(MAX_PAYLOAD_BYTES)))]),
        ] {
            assert!(validate(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn paths_look_through_lists_and_keys_merge_and_delete() {
        let inner = |v: i64| Value::Object(Payload::from([("n".to_string(), Value::Int(v))]));
        let mut p = Payload::from([
            (
                "tags".to_string(),
                Value::List(vec![Value::String("a".into()), Value::String("b".into())]),
            ),
            ("items".to_string(), Value::List(vec![inner(1), inner(2)])),
            (
                "meta".to_string(),
                Value::Object(Payload::from([("lang".to_string(), Value::String("en".into()))])),
            ),
        ]);
        assert_eq!(values_at(&p, "tags").len(), 2);
        assert_eq!(values_at(&p, "items.n"), vec![&Value::Int(1), &Value::Int(2)]);
        assert_eq!(values_at(&p, "meta.lang"), vec![&Value::String("en".into())]);
        assert!(values_at(&p, "meta.none").is_empty() && values_at(&p, "").is_empty());
        merge(&mut p, &Payload::from([("tags".to_string(), Value::Null)]));
        assert_eq!(p["tags"], Value::Null);
        delete_keys(&mut p, &["meta.lang".to_string(), "items".to_string(), "nope.x".to_string()]);
        assert_eq!(p["meta"], Value::Object(Payload::new()));
        assert!(!p.contains_key("items"));
    }
}
