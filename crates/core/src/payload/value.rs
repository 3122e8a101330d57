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

/// Checks a payload against the limits: every key (at any depth) non-empty, at most
/// [`MAX_KEY_BYTES`] and without `.`; every double finite; nesting at most [`MAX_DEPTH`];
/// encoded size at most [`MAX_PAYLOAD_BYTES`].
pub fn validate(p: &Payload) -> crate::Result<()> {
    let _ = p;
    todo!()
}

/// Appends the encoding of `p` (see `docs/file-formats.md`).
pub fn encode(p: &Payload, out: &mut Vec<u8>) {
    let _ = (p, out);
    todo!()
}

/// The length of `p`'s encoding.
pub fn encoded_len(p: &Payload) -> usize {
    let _ = p;
    todo!()
}

/// Decodes an encoded payload; `None` for anything malformed (unordered or repeated keys,
/// nesting past [`MAX_DEPTH`], trailing bytes, bad UTF-8, unknown tags).
pub fn decode(bytes: &[u8]) -> Option<Payload> {
    let _ = bytes;
    todo!()
}

/// The values at a dotted path (`a.b.c`). A list met on the way is looked through: the path
/// continues into each of its elements, and a list at the end yields its elements (not the
/// list itself), so `tags` of `{"tags": ["a", "b"]}` yields `"a"` and `"b"`. Empty when the
/// path is absent.
pub fn values_at<'a>(p: &'a Payload, path: &str) -> Vec<&'a Value> {
    let _ = (p, path);
    todo!()
}

/// Merges `update` into `base`: each top-level key of `update` replaces that key of `base`.
pub fn merge(base: &mut Payload, update: &Payload) {
    let _ = (base, update);
    todo!()
}

/// Removes keys: each a top-level key or a dotted path into nested objects. Absent keys are
/// ignored.
pub fn delete_keys(p: &mut Payload, keys: &[String]) {
    let _ = (p, keys);
    todo!()
}
