"""Payloads, filters and payload selectors between plain Python and the API's messages.

A payload is a dict of str keys to JSON-like values: None, bool, int (int64), float, str,
lists (or tuples) and dicts of them; numpy scalars count as their Python kind, and a
`datetime.datetime` or `datetime.date` is sent as its RFC 3339 string (a naive datetime as
UTC). Ints stay int64 and floats stay doubles, both ways. The server enforces the limits
(64 KiB encoded per point, keys 1..=256 bytes without '.', 16 levels, finite doubles).

A filter is a `freshvec.v1.freshvec_pb2.Filter` or a dict in Qdrant's JSON shape:
`{"must": [C...], "should": [C...], "must_not": [C...], "min_should": {"conditions": [C...],
"min_count": N}}`, each condition one of
`{"key": K, "match": {"value": V} | {"any": [V...]} | {"except": [V...]}}` (or a bare
`"match": V`), `{"key": K, "range": {"gt" | "gte" | "lt" | "lte": X}}`,
`{"key": K, "datetime_range": {"gte": "2024-01-01T00:00:00Z", ...}}` (strings or datetimes),
`{"is_empty": {"key": K}}`, `{"is_null": {"key": K}}`, `{"has_id": [ID...]}`, or a nested
filter."""
from __future__ import annotations

import datetime as _dt
from typing import Any, Mapping, Optional

import numpy as np

from .v1 import freshvec_pb2 as pb

FIELD_TYPES = {"keyword": pb.FIELD_TYPE_KEYWORD, "integer": pb.FIELD_TYPE_INTEGER,
               "float": pb.FIELD_TYPE_FLOAT, "bool": pb.FIELD_TYPE_BOOL,
               "datetime": pb.FIELD_TYPE_DATETIME}
FIELD_TYPE_NAMES = {v: k for k, v in FIELD_TYPES.items()}
STRATEGY_NAMES = {pb.FILTER_STRATEGY_NONE: "none", pb.FILTER_STRATEGY_EMPTY: "empty",
                  pb.FILTER_STRATEGY_EXACT: "exact", pb.FILTER_STRATEGY_POSTINGS: "postings",
                  pb.FILTER_STRATEGY_FALLBACK: "fallback", pb.FILTER_STRATEGY_MIXED: "mixed"}

_FILTER_FIELDS = ("must", "should", "must_not", "min_should")
_RANGE_BOUNDS = ("gt", "gte", "lt", "lte")
# Deeper than the server accepts (16 levels), shallow enough to stay clear of Python's stack.
_MAX_DEPTH = 64


# --- payloads -----------------------------------------------------------------------------

def fill_payload(target, payload: Optional[Mapping[str, Any]], where: str = "payload") -> None:
    """Writes `payload` into a message's `map<string, Value>` field (`target`)."""
    if payload is None:
        return
    if not isinstance(payload, Mapping):
        raise TypeError(f"{where}: a payload is a dict, got {type(payload).__name__}")
    for k, v in payload.items():
        if not isinstance(k, str):
            raise TypeError(f"{where}: keys are strings, got {k!r}")
        _set_value(target[k], v, f"{where}.{k}", 1)


def struct(payload: Optional[Mapping[str, Any]], where: str = "payload") -> "pb.Struct":
    s = pb.Struct()
    fill_payload(s.fields, payload, where)
    return s


def _set_value(msg, v: Any, where: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {_MAX_DEPTH}")
    if v is None:
        msg.null_value = pb.NULL_VALUE
    elif isinstance(v, (bool, np.bool_)):
        msg.bool_value = bool(v)
    elif isinstance(v, (int, np.integer)):
        i = int(v)
        if not -(1 << 63) <= i < (1 << 63):
            raise ValueError(f"{where}: {i} does not fit an int64")
        msg.integer_value = i
    elif isinstance(v, (float, np.floating)):
        msg.double_value = float(v)
    elif isinstance(v, str):
        msg.string_value = v
    elif isinstance(v, (_dt.datetime, _dt.date)):
        msg.string_value = rfc3339(v)
    elif isinstance(v, Mapping):
        msg.struct_value.SetInParent()
        fields = msg.struct_value.fields
        for k, x in v.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys are strings, got {k!r}")
            _set_value(fields[k], x, f"{where}.{k}", depth + 1)
    elif isinstance(v, (list, tuple, np.ndarray)):
        msg.list_value.SetInParent()
        values = msg.list_value.values
        for i, x in enumerate(v):
            _set_value(values.add(), x, f"{where}[{i}]", depth + 1)
    else:
        raise TypeError(f"{where}: {type(v).__name__} is not a payload value "
                        "(None, bool, int, float, str, list, dict, datetime)")


def rfc3339(v: Any) -> str:
    """A datetime (naive means UTC) or date as RFC 3339; a string as it is."""
    if isinstance(v, str):
        return v
    if isinstance(v, _dt.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=_dt.timezone.utc)
        return v.isoformat()
    if isinstance(v, _dt.date):
        return v.isoformat()
    raise TypeError(f"a datetime bound is a string, datetime or date, got {type(v).__name__}")


def to_python(fields) -> dict[str, Any]:
    """A `map<string, Value>` as a dict (ints as int, doubles as float)."""
    return {k: _value(v) for k, v in fields.items()}


def _value(v) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "integer_value":
        return v.integer_value
    if kind == "string_value":
        return v.string_value
    if kind == "double_value":
        return v.double_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return to_python(v.struct_value.fields)
    if kind == "list_value":
        return [_value(x) for x in v.list_value.values]
    return None


# --- payload selectors ---------------------------------------------------------------------

def with_payload(sel: Any) -> Optional["pb.WithPayload"]:
    """False/None (no payloads), True (all keys), a list of keys to include, or a dict
    `{"include": [...]}` / `{"exclude": [...]}`."""
    if sel is None or sel is False:
        return None
    if sel is True:
        return pb.WithPayload(enable=True)
    if isinstance(sel, pb.WithPayload):
        return sel
    if isinstance(sel, str):
        return pb.WithPayload(enable=True, include=[sel])
    if isinstance(sel, Mapping):
        unknown = set(sel) - {"include", "exclude"}
        if unknown:
            raise ValueError(f"with_payload: unknown fields {sorted(unknown)}")
        return pb.WithPayload(enable=True, include=list(sel.get("include") or []),
                              exclude=list(sel.get("exclude") or []))
    if isinstance(sel, (list, tuple)):
        return pb.WithPayload(enable=True, include=list(sel))
    raise TypeError("with_payload: a bool, a list of keys, or {'include'|'exclude': [...]}")


# --- filters -------------------------------------------------------------------------------

def filter_message(f: Any) -> Optional["pb.Filter"]:
    """A filter (see the module docs) as its message; None stays None."""
    if f is None:
        return None
    if isinstance(f, pb.Filter):
        return f
    return _filter(f, 0)


def _filter(f: Any, depth: int) -> "pb.Filter":
    if depth > _MAX_DEPTH:
        raise ValueError(f"filters nested deeper than {_MAX_DEPTH}")
    if not isinstance(f, Mapping):
        raise TypeError(f"a filter is a dict, got {type(f).__name__}")
    unknown = [k for k in f if k not in _FILTER_FIELDS]
    if unknown:
        raise ValueError(f"unknown filter field {unknown[0]!r} (one of {', '.join(_FILTER_FIELDS)})")
    out = pb.Filter()
    for name in ("must", "should", "must_not"):
        if name in f:
            out_list = getattr(out, name)
            for c in _conditions(f[name], name):
                out_list.append(_condition(c, depth))
    ms = f.get("min_should")
    if ms is not None:
        if not isinstance(ms, Mapping) or "conditions" not in ms or "min_count" not in ms:
            raise ValueError("min_should: {'conditions': [...], 'min_count': N}")
        out.min_should.SetInParent()
        for c in _conditions(ms["conditions"], "min_should.conditions"):
            out.min_should.conditions.append(_condition(c, depth))
        out.min_should.min_count = int(ms["min_count"])
    return out


def _conditions(cs: Any, name: str) -> list:
    if isinstance(cs, Mapping):
        return [cs]  # one condition instead of a list of one
    if not isinstance(cs, (list, tuple)):
        raise TypeError(f"{name}: a list of conditions, got {type(cs).__name__}")
    return list(cs)


def _key(c: Mapping, what: str) -> str:
    o = c[what] if what else c
    key = o.get("key") if isinstance(o, Mapping) else None
    if not isinstance(key, str):
        raise ValueError(f"{what or 'a field condition'}: needs a string 'key', got {c!r}")
    return key


def _condition(c: Any, depth: int) -> "pb.Condition":
    if isinstance(c, pb.Condition):
        return c
    if isinstance(c, pb.Filter):
        return pb.Condition(filter=c)
    if not isinstance(c, Mapping):
        raise TypeError(f"a condition is a dict, got {type(c).__name__}")
    if "is_empty" in c:
        return pb.Condition(is_empty=pb.IsEmptyCondition(key=_key(c, "is_empty")))
    if "is_null" in c:
        return pb.Condition(is_null=pb.IsNullCondition(key=_key(c, "is_null")))
    if "has_id" in c:
        ids = c["has_id"]
        if not isinstance(ids, (list, tuple, np.ndarray)):
            raise TypeError("has_id: a list of ids")
        return pb.Condition(has_id=pb.HasIdCondition(ids=[_u64(i) for i in ids]))
    if "key" in c:
        return pb.Condition(field=_field(c))
    return pb.Condition(filter=_filter(c, depth + 1))


def _u64(i: Any) -> int:
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"has_id: {i!r} is not an id")
    i = int(i)
    if not 0 <= i < (1 << 64):
        raise ValueError(f"has_id: {i} is not a u64")
    return i


def _field(c: Mapping) -> "pb.FieldCondition":
    key = _key(c, "")
    fc = pb.FieldCondition(key=key)
    unknown = set(c) - {"key", "match", "range", "datetime_range"}
    if unknown:
        raise ValueError(f"{key}: unknown condition fields {sorted(unknown)}")
    if "match" in c:
        _match(fc.match, key, c["match"])
    for what, convert in (("range", _number), ("datetime_range", rfc3339)):
        if what in c:
            _range(getattr(fc, what), key, c[what], what, convert)
    return fc


def _number(x: Any) -> float:
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, float, np.number)):
        raise TypeError(f"{x!r} is not a number")
    return float(x)


def _range(msg, key: str, r: Any, what: str, convert) -> None:
    """Fills a Range or DatetimeRange message from a dict of bounds, each through `convert`."""
    if not isinstance(r, Mapping):
        raise TypeError(f"{key}: {what} is a dict of bounds")
    unknown = set(r) - set(_RANGE_BOUNDS)
    if unknown:
        raise ValueError(f"{key}: unknown {what} bounds {sorted(unknown)} (gt, gte, lt, lte)")
    msg.SetInParent()
    for b in _RANGE_BOUNDS:
        if r.get(b) is not None:
            try:
                setattr(msg, b, convert(r[b]))
            except TypeError as e:
                raise TypeError(f"{key}: {what} {b}: {e}") from None


def _match(m, key: str, spec: Any) -> None:
    if not isinstance(spec, Mapping):
        spec = {"value": spec}  # a bare value
    if "value" in spec:
        v = spec["value"]
        if isinstance(v, (bool, np.bool_)):
            m.boolean = bool(v)
        elif isinstance(v, (int, np.integer)):
            m.integer = int(v)
        elif isinstance(v, str):
            m.keyword = v
        else:
            raise TypeError(f"{key}: match value must be a string, an integer or a bool, got {v!r}")
        return
    for name, strings, ints in (("any", "keywords", "integers"),
                                ("except", "except_keywords", "except_integers")):
        if name in spec:
            vals = spec[name]
            if not isinstance(vals, (list, tuple, np.ndarray)):
                raise TypeError(f"{key}: match {name} needs a list")
            vals = list(vals)
            if all(isinstance(v, str) for v in vals):
                getattr(m, strings).SetInParent()
                getattr(m, strings).strings.extend(vals)
            elif all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                     for v in vals):
                getattr(m, ints).SetInParent()
                getattr(m, ints).integers.extend(int(v) for v in vals)
            else:
                raise TypeError(f"{key}: match {name}: a list of all strings or all integers")
            return
    raise ValueError(f"{key}: match needs value, any or except")
