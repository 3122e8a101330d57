//! The Cluster service: replication status, snapshots, membership, log purges.

use super::*;
use crate::proto::cluster_server::Cluster;
use openraft::ServerState;
use std::collections::BTreeMap;
use tonic::Response;

fn role_of(s: ServerState) -> Role {
    match s {
        ServerState::Leader => Role::Leader,
        ServerState::Follower => Role::Follower,
        ServerState::Candidate => Role::Candidate,
        ServerState::Learner => Role::Learner,
        ServerState::Shutdown => Role::Unspecified,
    }
}

/// This node's view of replication (see `StatusResponse` in the proto).
pub fn status_of(node: &Node) -> StatusResponse {
    let m = node.raft.metrics().borrow().clone();
    let last_log = m.last_log_index.unwrap_or(0);
    let applied = m.last_applied.map_or(0, |l| l.index);
    let membership = m.membership_config.membership();
    let voters: Vec<u64> = membership.voter_ids().collect();
    let matched: BTreeMap<u64, u64> = m
        .replication
        .as_ref()
        .map(|r| r.iter().map(|(id, l)| (*id, l.map_or(0, |l| l.index))).collect())
        .unwrap_or_default();
    // On the leader, the index a quorum of voters holds; elsewhere, what was applied (a
    // lower bound).
    let committed = if m.state == ServerState::Leader {
        let mut held: Vec<u64> = voters
            .iter()
            .map(|v| if *v == m.id { last_log } else { matched.get(v).copied().unwrap_or(0) })
            .collect();
        held.sort_unstable_by(|a, b| b.cmp(a));
        held.get(voters.len() / 2).copied().unwrap_or(applied).max(applied)
    } else {
        applied
    };
    let peers = membership
        .nodes()
        .filter(|(id, _)| **id != m.id)
        .map(|(id, n)| {
            let matched_index = matched.get(id).copied().unwrap_or(0);
            PeerStatus {
                node_id: *id,
                address: n.addr.clone(),
                matched_index,
                lag: if m.replication.is_some() {
                    last_log.saturating_sub(matched_index)
                } else {
                    0
                },
                snapshots_installed: 0,
                voter: voters.contains(id),
            }
        })
        .collect();
    let collections = node
        .state
        .collections()
        .iter()
        .map(|r| {
            let (digest, vectors) = r.digest();
            CollectionDigest { name: r.name.clone(), digest, vectors }
        })
        .collect();
    let snap = node.state.snapshot_stats();
    let purged = m.purged.map_or(0, |p| p.index);
    StatusResponse {
        node_id: m.id,
        role: role_of(m.state) as i32,
        leader_id: m.current_leader.unwrap_or(0),
        term: m.current_term,
        last_log_index: last_log,
        committed_index: committed,
        applied_index: applied,
        purged_index: purged,
        snapshot_index: m.snapshot.map_or(0, |s| s.index),
        collections,
        peers,
        snapshots_installed: snap.installed,
        snapshot_transfers_in_progress: snap.receiving,
        last_snapshot_install_ms: snap.last_install_ms,
        address: membership.get_node(&m.id).map(|n| n.addr.clone()).unwrap_or_default(),
        voters,
        first_log_index: m.purged.map_or(0, |p| p.index + 1),
    }
}

fn membership_of(node: &Node) -> MembershipResponse {
    let m = node.raft.metrics().borrow().clone();
    let membership = m.membership_config.membership();
    MembershipResponse {
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
    }
}

#[tonic::async_trait]
impl Cluster for Api {
    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(status_of(self.node()?)))
    }

    async fn trigger_snapshot(
        &self,
        req: Request<TriggerSnapshotRequest>,
    ) -> Result<Response<TriggerSnapshotResponse>, Status> {
        let deadline = self.deadline(&req);
        let snapshot_index = self.node()?.snapshot_now(deadline).await.map_err(node_status)?;
        Ok(Response::new(TriggerSnapshotResponse { snapshot_index }))
    }

    async fn add_node(
        &self,
        req: Request<AddNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let deadline = self.deadline(&req);
        let r = req.into_inner();
        if r.node_id == 0 || r.address.is_empty() {
            return Err(Status::invalid_argument("node_id and address are required"));
        }
        let node = self.node()?.clone();
        within(deadline, async { node.add_node(r.node_id, r.address).await.map_err(node_status) })
            .await?;
        Ok(Response::new(membership_of(&node)))
    }

    async fn remove_node(
        &self,
        req: Request<RemoveNodeRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        let deadline = self.deadline(&req);
        let id = req.into_inner().node_id;
        let node = self.node()?.clone();
        within(deadline, async { node.remove_node(id).await.map_err(node_status) }).await?;
        Ok(Response::new(membership_of(&node)))
    }

    async fn purge_log(
        &self,
        req: Request<PurgeLogRequest>,
    ) -> Result<Response<PurgeLogResponse>, Status> {
        let deadline = self.deadline(&req);
        let upto = match req.get_ref().upto {
            0 => u64::MAX,
            n => n,
        };
        let purged_index = self.node()?.purge_now(upto, deadline).await.map_err(node_status)?;
        Ok(Response::new(PurgeLogResponse { purged_index }))
    }
}
