//! A running member of a cluster.
//!
//! - **Startup**: the log store (`DIR/raft`) and the state machine (`DIR/state`) are opened,
//!   then openraft starts over them.
//! - **Bootstrap**: a brand-new cluster (no member holds any Raft state) is initialized once,
//!   by its lowest id, with every listed peer as a voter; it asks each peer first and waits
//!   until all answered. A node restarted with its data, or started empty after a wipe, never
//!   initializes: the leader catches it up (from the log, or with a snapshot).
//! - **A restarted leader does not resume its term.** openraft lets a node whose persisted
//!   vote is its own committed one lead again in that term without an election; its state
//!   machine, restored from the last snapshot, has then not re-applied everything committed,
//!   and a linearizable read would see stale data (the fault suite found this). At startup
//!   such a vote is saved back as a plain vote for itself in the same term, which keeps Raft's
//!   promise (no other vote in that term) and makes the node stand for election in a new one.
//! - **Writes** go to the leader: a follower forwards them over the peer service.
//! - **Reads**: `min_applied_index` waits until this replica applied that index;
//!   `linearizable` takes the leader's read index (asking the leader from a follower) and
//!   waits until this replica applied it.

use crate::command::{Applied, Command};
use crate::log_store::LogStore;
use crate::network::{ForwardReply, Link, PeerService, Peers, ReadIndexReply, Rpc};
use crate::state::StateMachine;
use crate::{NodeId, Raft};
use openraft::error::{ClientWriteError, RaftError};
use openraft::storage::RaftLogStorage;
use openraft::{BasicNode, ChangeMembers, Config, SnapshotPolicy};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: NodeId,
    /// Peer-service addresses of the initial members, this node's included.
    pub peers: BTreeMap<NodeId, String>,
    /// Where the log and the state live.
    pub dir: PathBuf,
    /// Shared cluster secret for the peer service (none: open).
    pub secret: Option<String>,
    /// The address outgoing peer connections come from (none: the system's choice).
    pub local_ip: Option<std::net::IpAddr>,
    /// Snapshot after this many log entries since the last one.
    pub snapshot_entries: u64,
    /// Snapshot after this many bytes appended since the last one.
    pub snapshot_bytes: u64,
    /// Snapshot after this many seconds since the last one, if anything was applied.
    pub snapshot_secs: u64,
    /// Entries kept before a snapshot's index when the log is purged.
    pub keep_entries: u64,
    pub heartbeat_ms: u64,
    pub election_ms: (u64, u64),
}

impl NodeConfig {
    /// A single-node cluster in `dir`, peer service at `addr`.
    pub fn single(dir: PathBuf, addr: String) -> NodeConfig {
        NodeConfig {
            id: 1,
            peers: BTreeMap::from([(1, addr)]),
            dir,
            secret: None,
            local_ip: None,
            snapshot_entries: 5_000,
            snapshot_bytes: 256 << 20,
            snapshot_secs: 60,
            keep_entries: 1_000,
            heartbeat_ms: 100,
            election_ms: (800, 1600),
        }
    }
}

/// Why a write or read did not happen.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// No leader is known right now (an election is under way); retry.
    #[error("no leader is known yet; retry")]
    NoLeader,
    #[error("the leader could not be reached: {0}")]
    Unreachable(String),
    #[error("timed out waiting for index {want} to be applied here (applied: {applied})")]
    Timeout { want: u64, applied: u64 },
    #[error("{0}")]
    Refused(String),
    /// The request names something that does not exist (a node that is not a member).
    #[error("{0}")]
    NotFound(String),
    /// The request is invalid (a peer address that does not parse).
    #[error("{0}")]
    Invalid(String),
    #[error("raft: {0}")]
    Raft(String),
}

/// How long a node being added has to answer its first probe.
const PROBE_WINDOW: Duration = Duration::from_secs(5);

/// The refusal of a membership change sent to a node that is not the leader.
fn not_leader(leader: Option<NodeId>) -> NodeError {
    NodeError::Refused(format!(
        "not the leader; send membership changes to the leader (node {})",
        leader.map_or("unknown".to_string(), |l| l.to_string())
    ))
}

/// A running node.
#[derive(Clone)]
pub struct Node {
    pub id: NodeId,
    pub raft: Raft,
    pub log: LogStore,
    pub state: StateMachine,
    peers: Peers,
    config: Arc<NodeConfig>,
}

impl Node {
    /// Opens the node's storage and starts Raft; call [`Node::bootstrap`] once the peer
    /// service is listening.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Node> {
        let mut log = LogStore::open(&config.dir.join("raft"))?;
        if let Some(v) = log.read_vote().await? {
            if v.is_committed() && v.leader_id().voted_for() == Some(config.id) {
                log.save_vote(&openraft::Vote::new(v.leader_id().get_term(), config.id)).await?;
            }
        }
        let state = StateMachine::open(&config.dir.join("state"))?;
        log.bind_floor(state.floor());
        // The log is purged only up to a durable checkpoint: a state behind the purged log
        // lost one, and starting would skip the entries in between.
        let purged = log.get_log_state().await?.last_purged_log_id;
        if purged.map(|l| l.index)
            > state.current_snapshot().and_then(|m| m.last_log_id).map(|l| l.index)
        {
            anyhow::bail!(
                "{}: the state's checkpoint is older than the purged log ({purged:?}); the node \
                 needs a snapshot from its peers: start it with an empty data directory",
                config.dir.display()
            );
        }
        let raft_config = Config {
            cluster_name: "freshvec".into(),
            heartbeat_interval: config.heartbeat_ms,
            election_timeout_min: config.election_ms.0,
            election_timeout_max: config.election_ms.1,
            install_snapshot_timeout: 30_000,
            max_payload_entries: 64,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_entries),
            max_in_snapshot_log_to_keep: config.keep_entries,
            ..Default::default()
        }
        .validate()?;
        let peers = Peers::new(config.secret.clone(), config.local_ip);
        let raft =
            Raft::new(config.id, Arc::new(raft_config), peers.clone(), log.clone(), state.clone())
                .await?;
        Ok(Node { id: config.id, raft, log, state, peers, config: Arc::new(config) })
    }

    /// The peer service to serve on the peer address.
    pub fn peer_service(&self) -> PeerService {
        PeerService::new(self.raft.clone(), self.log.clone(), self.state.clone())
    }

    fn link(&self, addr: &str) -> Result<Link, NodeError> {
        self.peers.client(addr).map_err(|s| NodeError::Unreachable(s.to_string()))
    }

    /// Initializes a brand-new cluster when this node has the lowest id and no member holds
    /// any state; otherwise returns at once. Waits for every peer to answer.
    pub async fn bootstrap(&self) -> anyhow::Result<()> {
        let lowest = self.config.peers.keys().next().copied();
        if lowest != Some(self.id)
            || self.log.has_state()
            || self.state.current_snapshot().is_some()
        {
            return Ok(());
        }
        for (&id, addr) in self.config.peers.iter().filter(|(&id, _)| id != self.id) {
            loop {
                let probe = async {
                    let mut link = self.link(addr).map_err(|e| anyhow::anyhow!("{e}"))?;
                    let has: bool = link.call(Rpc::Probe, &(), Duration::from_secs(2)).await?;
                    anyhow::Ok(has)
                };
                match probe.await {
                    Ok(true) => {
                        tracing::info!(
                            "peer {id} holds Raft state: the cluster exists; not initializing"
                        );
                        return Ok(());
                    }
                    Ok(false) => break,
                    Err(e) => {
                        tracing::info!("waiting for peer {id} at {addr} before initializing: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        }
        let members: BTreeMap<NodeId, BasicNode> =
            self.config.peers.iter().map(|(&id, a)| (id, BasicNode::new(a))).collect();
        match self.raft.initialize(members).await {
            Ok(()) => tracing::info!("initialized a new cluster of {:?}", self.config.peers.keys()),
            Err(e) => tracing::info!("not initializing: {e}"),
        }
        Ok(())
    }

    /// The current leader's id and peer address, if known.
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let m = self.raft.metrics().borrow().clone();
        let id = m.current_leader?;
        let addr = m.membership_config.membership().get_node(&id).map(|n| n.addr.clone())?;
        Some((id, addr))
    }

    /// Appends `cmd` through the leader and returns what applying it did.
    pub async fn write(&self, cmd: Command) -> Result<Applied, NodeError> {
        match self.raft.client_write(cmd.clone()).await {
            Ok(r) => Ok(r.data),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                let addr = f.leader_node.map(|n| n.addr).ok_or(NodeError::NoLeader)?;
                let mut link = self.link(&addr)?;
                let reply: ForwardReply = link
                    .call(Rpc::Forward, &cmd, Duration::from_secs(60))
                    .await
                    .map_err(|s| NodeError::Unreachable(s.message().to_string()))?;
                match reply {
                    Ok(a) => Ok(a),
                    Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                        Err(NodeError::NoLeader)
                    }
                    Err(e) => Err(NodeError::Raft(e.to_string())),
                }
            }
            Err(e) => Err(NodeError::Raft(e.to_string())),
        }
    }

    /// Waits until this replica applied `index`, or `deadline`.
    pub async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), NodeError> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        match self.raft.wait(Some(timeout)).applied_index_at_least(Some(index), "read").await {
            Ok(_) => Ok(()),
            Err(_) => Err(NodeError::Timeout { want: index, applied: self.state.applied_index() }),
        }
    }

    /// A linearizable read point: the leader's read index, applied here before returning it.
    pub async fn linearizable(&self, deadline: Instant) -> Result<u64, NodeError> {
        let read = match self.raft.ensure_linearizable().await {
            Ok(id) => id.map_or(0, |l| l.index),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                let addr = f.leader_node.map(|n| n.addr).ok_or(NodeError::NoLeader)?;
                let timeout = deadline.saturating_duration_since(Instant::now());
                let reply: ReadIndexReply = self
                    .link(&addr)?
                    .call(Rpc::ReadIndex, &(), timeout)
                    .await
                    .map_err(|s| NodeError::Unreachable(s.message().to_string()))?;
                reply.map_err(|e| NodeError::Raft(e.to_string()))?.map_or(0, |l| l.index)
            }
            Err(e) => return Err(NodeError::Raft(e.to_string())),
        };
        self.wait_applied(read, deadline).await?;
        Ok(read)
    }

    /// Adds `id` (peer service at `addr`) as a learner, waits until it caught up, then makes
    /// it a voter. Must run on the leader.
    pub async fn add_node(&self, id: NodeId, addr: String) -> Result<(), NodeError> {
        self.leader_only()?;
        let membership = self.raft.metrics().borrow().membership_config.membership().clone();
        if let Some(n) = membership.get_node(&id) {
            if n.addr != addr {
                return Err(NodeError::Refused(format!(
                    "node {id} is a member at {}; remove it before adding it at {addr}",
                    n.addr
                )));
            }
        } else {
            // A learner that never answers would stay in the membership, and the leader
            // would keep trying to reach it: refuse an address that does not answer now.
            let valid = addr.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !valid || addr.len() > 255 {
                return Err(NodeError::Invalid(format!("address {addr:?}: must be HOST:PORT")));
            }
            // A node just started may not listen yet: it gets a few seconds to answer.
            let mut link =
                self.peers.probe_client(&addr).map_err(|e| NodeError::Invalid(e.to_string()))?;
            let until = Instant::now() + PROBE_WINDOW;
            loop {
                match link.call::<_, bool>(Rpc::Probe, &(), Duration::from_secs(2)).await {
                    Ok(_) => break,
                    Err(e) if Instant::now() >= until => {
                        return Err(NodeError::Unreachable(format!(
                            "node {id} at {addr} does not answer: {e}"
                        )));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        }
        let raft_err = |e: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(f.leader_id),
            e => NodeError::Raft(e.to_string()),
        };
        self.raft.add_learner(id, BasicNode::new(addr), true).await.map_err(raft_err)?;
        self.raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), false)
            .await
            .map_err(raft_err)?;
        Ok(())
    }

    /// Refuses a membership change on a node that is not the leader, naming the leader.
    fn leader_only(&self) -> Result<(), NodeError> {
        let m = self.raft.metrics().borrow().clone();
        if m.current_leader == Some(self.id) {
            Ok(())
        } else {
            Err(not_leader(m.current_leader))
        }
    }

    /// Removes `id` from the cluster (a voter or a learner). Must run on the leader. A node
    /// that is not a member is NOT_FOUND; the last voter cannot be removed.
    pub async fn remove_node(&self, id: NodeId) -> Result<(), NodeError> {
        self.leader_only()?;
        let membership = self.raft.metrics().borrow().membership_config.membership().clone();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let change = if voters.contains(&id) {
            if voters.len() == 1 {
                return Err(NodeError::Refused(format!(
                    "node {id} is the only voter; a cluster cannot remove its last voter"
                )));
            }
            ChangeMembers::RemoveVoters(BTreeSet::from([id]))
        } else if membership.get_node(&id).is_some() {
            ChangeMembers::RemoveNodes(BTreeSet::from([id]))
        } else {
            return Err(NodeError::NotFound(format!("node {id} is not a member of the cluster")));
        };
        self.raft.change_membership(change, false).await.map_err(|e| match e {
            RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => not_leader(f.leader_id),
            e => NodeError::Raft(e.to_string()),
        })?;
        Ok(())
    }

    /// Forces a snapshot and waits (until `deadline`) until it covers what was applied when
    /// asked; returns its index.
    pub async fn snapshot_now(&self, deadline: Instant) -> Result<u64, NodeError> {
        let want = self.state.applied_index();
        self.raft.trigger().snapshot().await.map_err(|e| NodeError::Raft(e.to_string()))?;
        let timeout = deadline.saturating_duration_since(Instant::now());
        let m = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.snapshot.is_some_and(|s| s.index >= want), "snapshot")
            .await
            .map_err(|_| NodeError::Timeout { want, applied: self.state.applied_index() })?;
        Ok(m.snapshot.map_or(0, |s| s.index))
    }

    /// Purges the log up to `upto` (at most the snapshot's index); returns the purged index.
    pub async fn purge_now(&self, upto: u64, deadline: Instant) -> Result<u64, NodeError> {
        let snap = self.raft.metrics().borrow().snapshot.map_or(0, |s| s.index);
        let upto = upto.min(snap);
        self.raft.trigger().purge_log(upto).await.map_err(|e| NodeError::Raft(e.to_string()))?;
        let timeout = deadline.saturating_duration_since(Instant::now());
        let m = self
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.purged.is_some_and(|p| p.index >= upto), "purge")
            .await
            .map_err(|_| NodeError::Timeout { want: upto, applied: self.state.applied_index() })?;
        Ok(m.purged.map_or(0, |p| p.index))
    }

    /// Runs the snapshot-by-bytes and by-time policies until the node shuts down: a snapshot
    /// whenever this many bytes were appended, or this many seconds passed with anything
    /// applied, since the last one (openraft runs the by-entries policy itself).
    pub async fn snapshot_policy_loop(self) {
        let snapshot_index = || self.state.current_snapshot().and_then(|m| m.last_log_id);
        let mut at = self.log.appended_bytes();
        let (mut since, mut seen) = (Instant::now(), snapshot_index());
        let every = Duration::from_secs(self.config.snapshot_secs.max(1));
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let now = self.log.appended_bytes();
            let snap = snapshot_index();
            if snap != seen {
                (since, seen) = (Instant::now(), snap);
            }
            let behind = Some(self.state.applied_index()) > snap.map(|l| l.index);
            if now - at >= self.config.snapshot_bytes || (since.elapsed() >= every && behind) {
                at = now;
                since = Instant::now();
                if self.raft.trigger().snapshot().await.is_err() {
                    return;
                }
            }
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node").finish_non_exhaustive()
    }
}
