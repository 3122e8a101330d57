//! Replication: every freshvec node runs openraft, and a single node is a one-member cluster,
//! so there is one write path: validate, append to the Raft log, apply.
//!
//! - [`log_store`]: the Raft log on the core journal (group-committed fsyncs, truncate, purge
//!   with the purged log id persisted in the same write) and the vote.
//! - [`state`]: the state machine over durable collections: applies commands at their log
//!   index, cuts checkpoints in order with applies and writes them beside, installs snapshots.
//! - [`checkpoint`]: node checkpoints (the manifest naming every collection's checkpoint) and
//!   the files a snapshot is: listed to send, staged and checked on receipt.
//! - [`network`]: the peer transport (gRPC, `proto/freshvec/peer/v1`), client and service.
//! - [`node`]: a running member: startup, bootstrap of a brand-new cluster, writes forwarded
//!   to the leader, linearizable reads, membership changes and status.

// openraft's StorageError, which its storage traits require, is over 200 bytes.
#![allow(clippy::result_large_err)]

pub mod checkpoint;
pub mod command;
pub mod failpoint;
pub mod log_store;
pub mod network;
pub mod node;
pub mod state;

/// The peer service's generated code.
#[allow(missing_debug_implementations, clippy::all)]
pub mod proto {
    tonic::include_proto!("freshvec.peer.v1");
}

pub use command::{Applied, CollectionSpec, Command, Outcome, MAX_COLLECTIONS, MAX_NODE_SHARDS};

openraft::declare_raft_types!(
    /// The Raft types of a freshvec cluster: commands in, outcomes out, snapshots as the
    /// files of a checkpoint.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = checkpoint::SnapshotFiles,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;

/// A storage failure as openraft wants it; storage errors are fatal to the node.
pub(crate) fn storage_err(
    subject: openraft::ErrorSubject<NodeId>,
    verb: openraft::ErrorVerb,
    e: impl std::fmt::Display,
) -> StorageError {
    let io = std::io::Error::other(e.to_string());
    openraft::StorageIOError::new(subject, verb, openraft::AnyError::new(&io)).into()
}
