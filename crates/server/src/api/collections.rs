//! The Collections service: create, drop, list, describe, field indexes.

use super::payload::{field_kind_from, field_type_to};
use super::*;
use crate::proto::collections_server::Collections;
use freshvec_replication::CollectionSpec;
use tonic::Response;

#[tonic::async_trait]
impl Collections for Api {
    async fn create(
        &self,
        req: Request<CreateCollectionRequest>,
    ) -> Result<Response<CreateCollectionResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        check_name("name", &r.name)?;
        if r.dimension == 0 || r.dimension > MAX_DIMENSION {
            return Err(Status::invalid_argument(format!(
                "dimension: must be 1..={MAX_DIMENSION}, got {}",
                r.dimension
            )));
        }
        let metric = metric_from(r.metric)?;
        let shards = if r.shards == 0 { 1 } else { r.shards as usize };
        let ix = r.index.unwrap_or_default();
        let mut params = IndexParams::new(r.dimension as usize, metric);
        params.encoding = match Encoding::try_from(ix.encoding) {
            Ok(Encoding::F32) => CoreEncoding::F32,
            Ok(Encoding::Int8) | Ok(Encoding::Unspecified) => CoreEncoding::Int8,
            Err(_) => return Err(Status::invalid_argument("index.encoding: unknown value")),
        };
        // Tunables as asked (0 keeps the default); the spec checks them as every replica will.
        let spec = CollectionSpec {
            posting_size: ix.posting_size,
            split_limit: ix.split_limit,
            merge_limit: ix.merge_limit,
            replicas: ix.replicas,
            ..CollectionSpec::new(&params, shards)
        };
        spec.params().map_err(Status::invalid_argument)?;
        let state = &self.node()?.state;
        if state.collection(&r.name).is_some() {
            return Err(Status::already_exists(format!("collection {:?} exists", r.name)));
        }
        state.room_for(spec.shards).map_err(Status::resource_exhausted)?;
        let index = self.write(Command::CreateCollection { name: r.name, spec }, deadline).await?;
        Ok(Response::new(CreateCollectionResponse { index }))
    }

    async fn drop(
        &self,
        req: Request<DropCollectionRequest>,
    ) -> Result<Response<DropCollectionResponse>, Status> {
        let deadline = self.deadline(&req);
        let name = req.into_inner().name;
        self.write_replica(&name, deadline).await?;
        let index = self.write(Command::DropCollection { name }, deadline).await?;
        Ok(Response::new(DropCollectionResponse { index }))
    }

    async fn list(
        &self,
        _req: Request<ListCollectionsRequest>,
    ) -> Result<Response<ListCollectionsResponse>, Status> {
        let names = self.node()?.state.collections().iter().map(|r| r.name.clone()).collect();
        Ok(Response::new(ListCollectionsResponse { names }))
    }

    async fn describe(
        &self,
        req: Request<DescribeCollectionRequest>,
    ) -> Result<Response<DescribeCollectionResponse>, Status> {
        let name = req.into_inner().name;
        let r = self.replica(&name)?;
        let coll = r.coll();
        let st = coll.stats();
        let encoding = if r.spec.encoding == 0 { CoreEncoding::F32 } else { CoreEncoding::Int8 };
        let cal = coll.calibration();
        Ok(Response::new(DescribeCollectionResponse {
            name,
            dimension: coll.dim() as u32,
            metric: metric_to(coll.metric()) as i32,
            shards: coll.shard_count() as u32,
            encoding: encoding_to(encoding) as i32,
            vectors: st.vectors,
            postings: st.postings,
            splits: st.splits,
            merges: st.merges,
            reassigned: st.reassigned,
            pending_jobs: st.pending_jobs,
            memory_bytes: st.memory_bytes,
            applied_index: self.node()?.state.applied_index(),
            calibrated_shards: cal.as_ref().map_or(0, |c| c.shards as u32),
            calibration_queries: cal.as_ref().map_or(0, |c| c.queries as u32),
            default_nprobe: cal.as_ref().map_or(0, |c| c.default_nprobe as u32),
            estimated_recall: cal.as_ref().map_or(0.0, |c| c.default_recall),
            calibration: cal.map_or_else(Vec::new, |c| {
                c.points
                    .iter()
                    .map(|&(np, recall)| CalibrationPoint { nprobe: np as u32, recall })
                    .collect()
            }),
            field_indexes: coll
                .field_indexes()
                .into_iter()
                .map(|f| FieldIndex {
                    key: f.key,
                    r#type: field_type_to(f.kind) as i32,
                    points: f.points,
                    values: f.values,
                    memory_bytes: f.memory_bytes,
                })
                .collect(),
            payload_memory_bytes: coll.payload_memory_bytes(),
        }))
    }

    async fn create_field_index(
        &self,
        req: Request<CreateFieldIndexRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        let kind = field_kind_from(r.r#type)?;
        let replica = self.write_replica(&r.collection, deadline).await?;
        replica
            .coll()
            .check_field_index(&r.key, kind)
            .map_err(|e| Status::invalid_argument(format!("key: {e}")))?;
        let cmd = Command::CreateFieldIndex { collection: r.collection, key: r.key, kind };
        let index = self.write(cmd, deadline).await?;
        Ok(Response::new(WriteResponse { index }))
    }

    async fn drop_field_index(
        &self,
        req: Request<DropFieldIndexRequest>,
    ) -> Result<Response<WriteResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        freshvec_core::collection::validate_key_path(&r.key)
            .map_err(|e| Status::invalid_argument(format!("key: {e}")))?;
        self.write_replica(&r.collection, deadline).await?;
        let index = self
            .write(Command::DropFieldIndex { collection: r.collection, key: r.key }, deadline)
            .await?;
        Ok(Response::new(WriteResponse { index }))
    }
}
