//! The Points service: writes of points and payloads, reads by id, search, scroll, count.

use super::payload::{filter_from, payload_from, selector_from, target_from, Selector};
use super::*;
use crate::proto::points_server::Points;
use crate::vectors::{check_batch, check_distinct};
use freshvec_core::collection::{SearchReport, Strategy};
use freshvec_core::durable::Target;
use freshvec_core::payload::{Filter, Payload};
use freshvec_core::Collection;
use tonic::Response;

/// Most keys one DeletePayloadKeys names.
pub const MAX_DELETE_KEYS: usize = 1_024;
/// Points per Scroll page by default, and at most.
const DEFAULT_SCROLL_LIMIT: u32 = 100;

/// What a read returns of each point besides its id: payload keys and the vector.
#[derive(Clone, Debug)]
struct Fill {
    payload: Option<Selector>,
    vectors: bool,
}

impl Fill {
    fn any(&self) -> bool {
        self.payload.is_some() || self.vectors
    }
}

/// Counts the bytes a response's payloads and vectors take, so no response grows past the
/// largest message (it is refused instead of built).
struct Budget(usize);

impl Budget {
    fn new() -> Budget {
        Budget(MAX_MESSAGE_BYTES - (64 << 10))
    }

    fn take(&mut self, bytes: usize) -> Result<(), Status> {
        self.0 = self.0.checked_sub(bytes).ok_or_else(|| {
            Status::resource_exhausted(format!(
                "the response would pass {MAX_MESSAGE_BYTES} bytes: ask for fewer points, or \
                 fewer payload keys or no vectors"
            ))
        })?;
        Ok(())
    }
}

/// The payload (selected keys) and vector of a live point for a response, charged to
/// `budget`; `None` when the point is gone.
#[allow(clippy::type_complexity)]
fn fill_of(
    coll: &Collection,
    id: u64,
    fill: &Fill,
    budget: &mut Budget,
) -> Result<Option<(std::collections::HashMap<String, Value>, Vec<f32>)>, Status> {
    let payload = match &fill.payload {
        Some(sel) => match coll.payload(id) {
            Some(p) => {
                let s = Struct { fields: sel.select(p) };
                budget.take(prost::Message::encoded_len(&s))?;
                s.fields
            }
            None => return Ok(None),
        },
        None => Default::default(),
    };
    let vector = match fill.vectors {
        true => match coll.get(id) {
            Some(v) => {
                budget.take(v.len() * 4 + 8)?;
                v
            }
            None => return Ok(None),
        },
        false => Vec::new(),
    };
    Ok(Some((payload, vector)))
}

fn plan_of(r: &SearchReport) -> SearchPlan {
    SearchPlan {
        strategy: match r.strategy {
            Strategy::Empty => FilterStrategy::Empty,
            Strategy::Exact => FilterStrategy::Exact,
            Strategy::Postings => FilterStrategy::Postings,
            Strategy::Fallback => FilterStrategy::Fallback,
            Strategy::Mixed => FilterStrategy::Mixed,
        } as i32,
        matched: r.matched,
        exact_shards: r.exact_shards,
        fallback_shards: r.fallback_shards,
        postings: r.postings,
        scanned: r.scanned,
        unindexed: r.unindexed,
    }
}

/// What a search request asks of its results besides the hits: a filter, payloads and
/// vectors, or packed hits.
#[derive(Clone, Debug)]
struct Shape {
    filter: Option<Filter>,
    fill: Fill,
    packed: bool,
}

/// One search (filtered or not), with what its hits are to carry.
fn search_one(
    coll: &Collection,
    q: &[f32],
    sp: &SearchParams,
    shape: &Shape,
    applied: u64,
    budget: &mut Budget,
) -> Result<SearchResponse, freshvec_core::Error> {
    let (filter, fill, packed) = (shape.filter.as_ref(), &shape.fill, shape.packed);
    let (hits, plan) = match filter {
        Some(f) => {
            let (h, report) = coll.search_filtered(q, sp, f)?;
            (h, Some(plan_of(&report)))
        }
        None => (coll.search(q, sp)?, None),
    };
    let mut resp = crate::vectors::hits(hits, applied, packed);
    resp.plan = plan.or(filter.map(|_| SearchPlan::default()));
    if fill.any() {
        for h in &mut resp.hits {
            // A point deleted since the search matched keeps its hit, without the extras.
            match fill_of(coll, h.id, fill, budget) {
                Ok(Some((payload, vector))) => {
                    h.payload = payload;
                    h.vector = vector;
                }
                Ok(None) => {}
                Err(s) => return Err(freshvec_core::Error::Resource(s.message().to_string())),
            }
        }
    }
    Ok(resp)
}

/// The filter, payload and vector options of a search request, checked.
fn search_options(
    filter: Option<crate::proto::Filter>,
    with_payload: Option<WithPayload>,
    with_vectors: bool,
    packed: bool,
) -> Result<Shape, Status> {
    let fill = Fill { payload: selector_from(with_payload)?, vectors: with_vectors };
    if packed && fill.any() {
        return Err(Status::invalid_argument(
            "packed_hits: carries ids and distances only; not with with_payload or with_vectors",
        ));
    }
    let filter = filter.map(|f| filter_from("filter", f)).transpose()?;
    Ok(Shape { filter, fill, packed })
}

fn search_error(field: &str, e: freshvec_core::Error) -> Status {
    match e {
        freshvec_core::Error::Resource(m) => Status::resource_exhausted(m),
        e => Status::invalid_argument(format!("{field}: {e}")),
    }
}

impl Api {
    /// A payload write through the log, to the points `target` names.
    async fn payload_write(
        &self,
        collection: String,
        deadline: Instant,
        make: impl FnOnce(String) -> Command,
    ) -> Result<Response<WriteResponse>, Status> {
        self.write_replica(&collection, deadline).await?;
        let index = self.write(make(collection), deadline).await?;
        Ok(Response::new(WriteResponse { index }))
    }

    async fn set_or_overwrite(
        &self,
        req: Request<SetPayloadRequest>,
        overwrite: bool,
    ) -> Result<Response<WriteResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        check_name("collection", &r.collection)?;
        let payload = payload_from("payload", r.payload)?;
        let target = target_from(r.ids, r.filter)?;
        self.payload_write(r.collection, deadline, |collection| Command::SetPayload {
            collection,
            target,
            payload,
            overwrite,
        })
        .await
    }
}

#[tonic::async_trait]
impl Points for Api {
    async fn upsert(&self, req: Request<UpsertRequest>) -> Result<Response<WriteResponse>, Status> {
        let deadline = self.deadline(&req);
        let mut r = req.into_inner();
        let replica = self.write_replica(&r.collection, deadline).await?;
        let (ids, vectors) = crate::vectors::upsert_rows(&r, replica.coll().dim())?;
        let payloads = upsert_payloads(&mut r, ids.len())?;
        // The engine's own checks (a zero vector under cosine), then its admission control:
        // a backed-up index refuses the write before it is logged.
        let (ids, vectors) = blocking(deadline, move || {
            let coll = replica.coll();
            coll.validate_upsert(&ids, &vectors)
                .map_err(|e| Status::invalid_argument(format!("points: {e}")))?;
            coll.admit().map_err(|e| Status::resource_exhausted(e.to_string()))?;
            Ok((ids, vectors))
        })
        .await?;
        let collection = r.collection;
        let cmd = match payloads.is_empty() {
            true => Command::Upsert { collection, ids, vectors },
            false => Command::UpsertPayloads { collection, ids, vectors, payloads },
        };
        let index = self.write(cmd, deadline).await?;
        Ok(Response::new(WriteResponse { index }))
    }

    async fn delete(&self, req: Request<DeleteRequest>) -> Result<Response<WriteResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        self.write_replica(&r.collection, deadline).await?;
        let cmd = match r.filter {
            Some(f) if r.ids.is_empty() => Command::DeleteMatching {
                collection: r.collection,
                filter: filter_from("filter", f)?,
            },
            Some(_) => return Err(Status::invalid_argument("ids: give ids or a filter, not both")),
            None => {
                check_batch("ids", r.ids.len())?;
                check_distinct("ids", r.ids.iter())?;
                Command::Delete { collection: r.collection, ids: r.ids }
            }
        };
        let index = self.write(cmd, deadline).await?;
        Ok(Response::new(WriteResponse { index }))
    }

    async fn get(&self, req: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        check_batch("ids", r.ids.len())?;
        let fill = Fill { payload: selector_from(r.with_payload)?, vectors: false };
        let (replica, _) =
            self.read_replica(&r.collection, r.consistency, r.min_applied_index, deadline).await?;
        let components = r.ids.len() * replica.coll().dim();
        if r.with_vectors && components > MAX_GET_COMPONENTS {
            return Err(Status::invalid_argument(format!(
                "ids: {} ids of dimension {} with vectors is {components} components, at most \
                 {MAX_GET_COMPONENTS} per request",
                r.ids.len(),
                replica.coll().dim()
            )));
        }
        let points = blocking(deadline, move || {
            let coll = replica.coll();
            let mut budget = Budget::new();
            let mut points = Vec::with_capacity(r.ids.len());
            for &id in &r.ids {
                let Some(v) = coll.get(id) else { continue };
                let v = if r.with_vectors { v } else { Vec::new() };
                let mut point = crate::vectors::point(id, v, r.vectors_f32);
                if fill.any() {
                    match fill_of(coll, id, &fill, &mut budget)? {
                        Some((payload, _)) => point.payload = payload,
                        None => continue,
                    }
                }
                points.push(point);
            }
            Ok(points)
        })
        .await?;
        Ok(Response::new(GetResponse { points }))
    }

    async fn search(
        &self,
        req: Request<SearchRequest>,
    ) -> Result<Response<SearchResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        let p = r.params.unwrap_or_default();
        let sp = search_params(&p)?;
        let shape = search_options(r.filter, r.with_payload, r.with_vectors, r.packed_hits)?;
        let (replica, applied) =
            self.read_replica(&r.collection, p.consistency, p.min_applied_index, deadline).await?;
        let vector =
            crate::vectors::vector("vector", r.vector, &r.vector_f32, replica.coll().dim())?;
        // On the blocking pool: with many clients a search running on an async worker holds
        // up the connections it serves (measured on medium with 16 clients: 2,376 qps on the
        // worker, 4,307 on the pool).
        blocking(deadline, move || {
            let mut budget = Budget::new();
            let coll = replica.coll();
            let resp = search_one(coll, &vector, &sp, &shape, applied, &mut budget)
                .map_err(|e| search_error("vector", e))?;
            Ok(Response::new(resp))
        })
        .await
    }

    async fn search_batch(
        &self,
        req: Request<SearchBatchRequest>,
    ) -> Result<Response<SearchBatchResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        if r.queries.is_empty() || r.queries.len() > MAX_QUERIES {
            return Err(Status::invalid_argument(format!(
                "queries: must be 1..={MAX_QUERIES}, got {}",
                r.queries.len()
            )));
        }
        let p = r.params.unwrap_or_default();
        let sp = search_params(&p)?;
        if r.queries.len() * sp.k > MAX_BATCH_HITS {
            return Err(Status::invalid_argument(format!(
                "queries: {} queries of k {} ask for {} hits, at most {MAX_BATCH_HITS}",
                r.queries.len(),
                sp.k,
                r.queries.len() * sp.k
            )));
        }
        let shape = search_options(r.filter, r.with_payload, r.with_vectors, r.packed_hits)?;
        let (replica, applied) =
            self.read_replica(&r.collection, p.consistency, p.min_applied_index, deadline).await?;
        let dim = replica.coll().dim();
        let queries = r
            .queries
            .into_iter()
            .enumerate()
            .map(|(i, q)| {
                crate::vectors::vector(
                    &format!("queries[{i}].vector"),
                    q.vector,
                    &q.vector_f32,
                    dim,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        blocking(deadline, move || {
            let mut results = Vec::with_capacity(queries.len());
            let mut budget = Budget::new();
            let coll = replica.coll();
            for (i, q) in queries.iter().enumerate() {
                // The answer is not wanted past the deadline: stop spending on it.
                if Instant::now() >= deadline {
                    return Err(Status::deadline_exceeded("the request's deadline passed"));
                }
                let resp = search_one(coll, q, &sp, &shape, applied, &mut budget)
                    .map_err(|e| search_error(&format!("queries[{i}].vector"), e))?;
                results.push(resp);
            }
            Ok(Response::new(SearchBatchResponse { results }))
        })
        .await
    }

    async fn set_payload(
        &self,
        req: Request<SetPayloadRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        self.set_or_overwrite(req, false).await
    }

    async fn overwrite_payload(
        &self,
        req: Request<SetPayloadRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        self.set_or_overwrite(req, true).await
    }

    async fn delete_payload_keys(
        &self,
        req: Request<DeletePayloadKeysRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        check_name("collection", &r.collection)?;
        if r.keys.is_empty() || r.keys.len() > MAX_DELETE_KEYS {
            return Err(Status::invalid_argument(format!(
                "keys: must name 1..={MAX_DELETE_KEYS} keys, got {}",
                r.keys.len()
            )));
        }
        for k in &r.keys {
            freshvec_core::collection::validate_key_path(k)
                .map_err(|e| Status::invalid_argument(format!("keys: {e}")))?;
        }
        let target = target_from(r.ids, r.filter)?;
        let keys = r.keys;
        self.payload_write(r.collection, deadline, |collection| Command::DeletePayloadKeys {
            collection,
            target,
            keys,
        })
        .await
    }

    async fn clear_payload(
        &self,
        req: Request<ClearPayloadRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        check_name("collection", &r.collection)?;
        let target: Target = target_from(r.ids, r.filter)?;
        self.payload_write(r.collection, deadline, |collection| Command::SetPayload {
            collection,
            target,
            payload: Payload::new(),
            overwrite: true,
        })
        .await
    }

    async fn scroll(
        &self,
        req: Request<ScrollRequest>,
    ) -> Result<Response<ScrollResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        let limit = match r.limit {
            0 => DEFAULT_SCROLL_LIMIT,
            n => n,
        } as usize;
        check_batch("limit", limit)?;
        let filter = r.filter.map(|f| filter_from("filter", f)).transpose()?;
        let fill = Fill { payload: selector_from(r.with_payload)?, vectors: r.with_vectors };
        let (replica, applied) =
            self.read_replica(&r.collection, r.consistency, r.min_applied_index, deadline).await?;
        let dim = replica.coll().dim();
        if r.with_vectors && limit * dim > MAX_GET_COMPONENTS {
            return Err(Status::invalid_argument(format!(
                "limit: {limit} points of dimension {dim} with vectors is more than \
                 {MAX_GET_COMPONENTS} components"
            )));
        }
        let from = r.offset.unwrap_or(0);
        blocking(deadline, move || {
            let coll = replica.coll();
            let (ids, next) = coll.scroll(filter.as_ref(), from, limit);
            let mut budget = Budget::new();
            let mut points = Vec::with_capacity(ids.len());
            for id in ids {
                let mut point = Point { id, ..Default::default() };
                if fill.any() {
                    match fill_of(coll, id, &fill, &mut budget)? {
                        Some((payload, vector)) => {
                            point.payload = payload;
                            point.vector = vector;
                        }
                        None => continue,
                    }
                }
                points.push(point);
            }
            Ok(Response::new(ScrollResponse {
                points,
                next_page_offset: next,
                applied_index: applied,
            }))
        })
        .await
    }

    async fn count(&self, req: Request<CountRequest>) -> Result<Response<CountResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        let filter = r.filter.map(|f| filter_from("filter", f)).transpose()?;
        let (replica, applied) =
            self.read_replica(&r.collection, r.consistency, r.min_applied_index, deadline).await?;
        blocking(deadline, move || {
            let count = replica.coll().count(filter.as_ref());
            Ok(Response::new(CountResponse { count, applied_index: applied }))
        })
        .await
    }
}

/// The payloads of an upsert, one per row or none (all empty), checked.
fn upsert_payloads(r: &mut UpsertRequest, rows: usize) -> Result<Vec<Payload>, Status> {
    if !r.points.is_empty() {
        if !r.payloads.is_empty() {
            return Err(Status::invalid_argument(
                "payloads: goes with the columnar form; give each point its own payload",
            ));
        }
        if r.points.iter().all(|p| p.payload.is_empty()) {
            return Ok(Vec::new());
        }
        return r
            .points
            .iter_mut()
            .enumerate()
            .map(|(i, p)| {
                payload_from(&format!("points[{i}].payload"), std::mem::take(&mut p.payload))
            })
            .collect();
    }
    if r.payloads.is_empty() {
        return Ok(Vec::new());
    }
    if r.payloads.len() != rows {
        return Err(Status::invalid_argument(format!(
            "payloads: {} for {rows} ids; give one per id or none",
            r.payloads.len()
        )));
    }
    std::mem::take(&mut r.payloads)
        .into_iter()
        .enumerate()
        .map(|(i, s)| payload_from(&format!("payloads[{i}]"), s.fields))
        .collect()
}
