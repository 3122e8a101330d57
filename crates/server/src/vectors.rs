//! Vectors as requests carry them, decoded and checked in one place for gRPC and the JSON
//! gateway alike: `repeated float` or packed little-endian f32 bytes (`vector_f32`, and the
//! columnar `UpsertRequest.ids` + `vectors_f32`). Either form passes the same checks: the
//! collection's dimension, finite components, the engine's norm bound; a message that sets
//! both forms is refused.

use crate::proto::{Hit, Point, SearchResponse, UpsertRequest};
use freshvec_core::distance::{check_components, VectorFault};
use std::collections::HashSet;
use tonic::Status;

/// Most points (or ids) in one write, and ids in one Get.
pub const MAX_BATCH: usize = 10_000;

/// Checks one vector: its width and its components (finite, squared norm within the
/// engine's bound, so no sum the index forms can overflow).
pub fn check_vector(field: &str, v: &[f32], dim: usize) -> Result<(), Status> {
    if v.len() != dim {
        return Err(Status::invalid_argument(format!(
            "{field}: has {} components, the collection has dimension {dim}",
            v.len()
        )));
    }
    check_components(v).map_err(|f| match f {
        VectorFault::NonFinite(i) => Status::invalid_argument(format!("{field}[{i}]: {f}")),
        VectorFault::TooLarge(_) => Status::invalid_argument(format!("{field}: {f}")),
    })
}

pub fn check_batch(field: &str, n: usize) -> Result<(), Status> {
    if n == 0 {
        return Err(Status::invalid_argument(format!("{field}: empty batch")));
    }
    if n > MAX_BATCH {
        return Err(Status::invalid_argument(format!(
            "{field}: {n} entries, at most {MAX_BATCH} per request"
        )));
    }
    Ok(())
}

pub fn check_distinct<'a>(field: &str, ids: impl Iterator<Item = &'a u64>) -> Result<(), Status> {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(*id) {
            return Err(Status::invalid_argument(format!("{field}[{i}]: duplicate id {id}")));
        }
    }
    Ok(())
}

/// Appends the components of packed little-endian f32 `bytes` to `out`; `bytes` must hold
/// exactly `dim` of them.
fn decode_into(field: &str, bytes: &[u8], dim: usize, out: &mut Vec<f32>) -> Result<(), Status> {
    if !bytes.len().is_multiple_of(4) || bytes.len() / 4 != dim {
        return Err(Status::invalid_argument(format!(
            "{field}: has {} bytes, the collection has dimension {dim} ({} bytes of f32)",
            bytes.len(),
            dim * 4
        )));
    }
    out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
    Ok(())
}

/// One vector from its two forms (`field` names the float form), checked against `dim`.
pub fn vector(field: &str, floats: Vec<f32>, bytes: &[u8], dim: usize) -> Result<Vec<f32>, Status> {
    match (floats.is_empty(), bytes.is_empty()) {
        (false, false) => Err(Status::invalid_argument(format!(
            "{field} and {field}_f32: both set; send the vector in one form"
        ))),
        (_, true) => {
            check_vector(field, &floats, dim)?;
            Ok(floats)
        }
        (true, false) => {
            let bfield = format!("{field}_f32");
            let mut v = Vec::with_capacity(dim);
            decode_into(&bfield, bytes, dim, &mut v)?;
            check_vector(&bfield, &v, dim)?;
            Ok(v)
        }
    }
}

/// The ids and row-major vectors of an upsert, in either of its forms (points, or the
/// columnar ids + vectors_f32), every vector checked against `dim`.
pub fn upsert_rows(r: &UpsertRequest, dim: usize) -> Result<(Vec<u64>, Vec<f32>), Status> {
    let columnar = !r.ids.is_empty() || !r.vectors_f32.is_empty();
    if columnar && !r.points.is_empty() {
        return Err(Status::invalid_argument(
            "points and ids/vectors_f32: both set; send the batch in one form",
        ));
    }
    if columnar {
        check_batch("ids", r.ids.len())?;
        check_distinct("ids", r.ids.iter())?;
        let n = r.ids.len();
        let row = dim * 4;
        if r.vectors_f32.len() != n * row {
            return Err(Status::invalid_argument(format!(
                "vectors_f32: has {} bytes, {n} ids of dimension {dim} need {}",
                r.vectors_f32.len(),
                n * row
            )));
        }
        let mut vectors = Vec::with_capacity(n * dim);
        for (i, chunk) in r.vectors_f32.chunks_exact(row).enumerate() {
            let field = format!("vectors_f32[row {i}]");
            let start = vectors.len();
            decode_into(&field, chunk, dim, &mut vectors)?;
            check_vector(&field, &vectors[start..], dim)?;
        }
        return Ok((r.ids.clone(), vectors));
    }
    check_batch("points", r.points.len())?;
    check_distinct("points.id", r.points.iter().map(|p| &p.id))?;
    let mut ids = Vec::with_capacity(r.points.len());
    let mut vectors = Vec::with_capacity(r.points.len() * dim);
    for (i, p) in r.points.iter().enumerate() {
        point_into(i, p, dim, &mut vectors)?;
        ids.push(p.id);
    }
    Ok((ids, vectors))
}

/// Appends point `i`'s vector, in whichever form it came, to `out`.
fn point_into(i: usize, p: &Point, dim: usize, out: &mut Vec<f32>) -> Result<(), Status> {
    match (p.vector.is_empty(), p.vector_f32.is_empty()) {
        (false, false) => Err(Status::invalid_argument(format!(
            "points[{i}]: vector and vector_f32 both set; send the vector in one form"
        ))),
        (_, true) => {
            check_vector(&format!("points[{i}].vector"), &p.vector, dim)?;
            out.extend_from_slice(&p.vector);
            Ok(())
        }
        (true, false) => {
            let field = format!("points[{i}].vector_f32");
            let start = out.len();
            decode_into(&field, &p.vector_f32, dim, out)?;
            check_vector(&field, &out[start..], dim)
        }
    }
}

/// A stored vector in the form a Get asked for.
pub fn point(id: u64, v: Vec<f32>, as_bytes: bool) -> Point {
    if as_bytes {
        let mut b = Vec::with_capacity(v.len() * 4);
        for x in &v {
            b.extend_from_slice(&x.to_le_bytes());
        }
        Point { id, vector: Vec::new(), vector_f32: b, ..Default::default() }
    } else {
        Point { id, vector: v, vector_f32: Vec::new(), ..Default::default() }
    }
}

/// A search's answer, as `hits` or (packed) as ids_u64 + distances_f32.
pub fn hits(h: Vec<freshvec_core::Hit>, applied: u64, packed: bool) -> SearchResponse {
    if packed {
        let mut ids = Vec::with_capacity(h.len() * 8);
        let mut distances = Vec::with_capacity(h.len() * 4);
        for x in &h {
            ids.extend_from_slice(&x.key.to_le_bytes());
            distances.extend_from_slice(&x.dist.to_le_bytes());
        }
        return SearchResponse {
            hits: Vec::new(),
            applied_index: applied,
            ids_u64: ids,
            distances_f32: distances,
            plan: None,
        };
    }
    SearchResponse {
        hits: h
            .into_iter()
            .map(|h| Hit { id: h.key, distance: h.dist, ..Default::default() })
            .collect(),
        applied_index: applied,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn le(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn both_forms_decode_to_the_same_vector() {
        let v = vec![1.5, -2.0, 0.25];
        assert_eq!(vector("vector", v.clone(), &[], 3).unwrap(), v);
        assert_eq!(vector("vector", Vec::new(), &le(&v), 3).unwrap(), v);
    }

    #[test]
    fn the_byte_form_is_checked_as_the_float_form() {
        let code = |r: Result<Vec<f32>, Status>| r.unwrap_err().code();
        // Not a whole number of f32s, a dimension mismatch, a NaN, both forms, none.
        assert_eq!(code(vector("vector", Vec::new(), &[0; 11], 3)), Code::InvalidArgument);
        assert_eq!(code(vector("vector", Vec::new(), &le(&[1.0; 4]), 3)), Code::InvalidArgument);
        let e = vector("vector", Vec::new(), &le(&[1.0, f32::NAN, 0.0]), 3).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
        assert!(e.message().starts_with("vector_f32[1]"), "{}", e.message());
        let huge = vector("vector", Vec::new(), &le(&[1e13, 0.0, 0.0]), 3);
        assert_eq!(code(huge), Code::InvalidArgument);
        assert_eq!(code(vector("vector", vec![1.0; 3], &le(&[1.0; 3]), 3)), Code::InvalidArgument);
        assert_eq!(code(vector("vector", Vec::new(), &[], 3)), Code::InvalidArgument);
    }

    #[test]
    fn packed_hits_hold_what_hits_hold() {
        let h = vec![
            freshvec_core::Hit { key: 9, dist: 0.5 },
            freshvec_core::Hit { key: u64::MAX, dist: 2.25 },
        ];
        let plain = hits(h.clone(), 7, false);
        let packed = hits(h, 7, true);
        assert!(packed.hits.is_empty() && plain.ids_u64.is_empty());
        let ids: Vec<u64> = packed
            .ids_u64
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let dists: Vec<f32> = packed
            .distances_f32
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(ids, plain.hits.iter().map(|h| h.id).collect::<Vec<_>>());
        assert_eq!(dists, plain.hits.iter().map(|h| h.distance).collect::<Vec<_>>());
        assert_eq!((packed.applied_index, plain.applied_index), (7, 7));
    }

    #[test]
    fn upserts_take_points_in_either_form_or_columns() {
        let mk = |points, ids: Vec<u64>, bytes: Vec<u8>| UpsertRequest {
            collection: "c".into(),
            points,
            ids,
            vectors_f32: bytes,
            ..Default::default()
        };
        let p = |id, v: &[f32], b: bool| point(id, v.to_vec(), b);
        let rows = (vec![1, 2], vec![1.0, 2.0, 3.0, 4.0]);
        let mixed = mk(vec![p(1, &[1.0, 2.0], false), p(2, &[3.0, 4.0], true)], vec![], vec![]);
        assert_eq!(upsert_rows(&mixed, 2).unwrap(), rows);
        let cols = mk(vec![], vec![1, 2], le(&[1.0, 2.0, 3.0, 4.0]));
        assert_eq!(upsert_rows(&cols, 2).unwrap(), rows);
        let refused = [
            mk(vec![p(1, &[1.0, 2.0], false)], vec![2], le(&[3.0, 4.0])),
            mk(vec![], vec![1, 2], le(&[1.0, 2.0, 3.0])),
            mk(vec![], vec![1, 1], le(&[1.0, 2.0, 3.0, 4.0])),
            mk(vec![], vec![], le(&[1.0, 2.0])),
            mk(vec![], vec![1, 2], le(&[1.0, 2.0, f32::INFINITY, 4.0])),
        ];
        for r in refused {
            assert_eq!(upsert_rows(&r, 2).unwrap_err().code(), Code::InvalidArgument, "{r:?}");
        }
    }
}
