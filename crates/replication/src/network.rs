//! The peer transport: openraft's RPCs (and our forwarding RPCs) over gRPC, each payload
//! postcard-encoded (`proto/freshvec/peer/v1/peer.proto`).
//!
//! - [`Peers`] is openraft's network factory; it keeps one channel per peer address, shared
//!   by every client of that peer.
//! - [`PeerService`] serves a node's end. A payload that does not decode, a snapshot part
//!   larger than [`MAX_SNAPSHOT_PART`], a snapshot stream out of order or a call without the
//!   cluster secret (when one is set) is refused before it reaches openraft, and changes
//!   nothing.
//! - A snapshot goes as one client stream of [`SnapshotPart`]s: the header, every file of the
//!   checkpoint in chunks (each file ended by its CRC-32), the end. The sender opens every file
//!   first (so a checkpoint removed meanwhile stays readable) and reads them on a blocking
//!   thread; the receiver writes them into a staging directory and hands it to openraft, which
//!   installs it (see `StateMachine::install`).

use crate::command::{Applied, Command};
use crate::log_store::LogStore;
use crate::proto::peer_client::PeerClient;
use crate::proto::peer_server::{Peer, PeerServer};
use crate::proto::Payload;
use crate::state::StateMachine;
use crate::{LogId, NodeId, Raft, Snapshot, TypeConfig};
use openraft::error::{
    CheckIsLeaderError, ClientWriteError, Fatal, NetworkError, RPCError, RaftError, RemoteError,
    ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, SnapshotMeta, Vote};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

/// Metadata header carrying the cluster secret.
pub const SECRET_HEADER: &str = "x-freshvec-cluster-secret";
/// The snapshot chunk size the leader sends.
pub const CHUNK: usize = 1 << 20;
/// The largest snapshot part a node accepts (a chunk and its framing; the header lists
/// every file, at most [`crate::checkpoint::MAX_FILES`] paths of at most 512 bytes).
pub const MAX_SNAPSHOT_PART: usize = 40 << 20;
/// The largest peer message (a batch of log entries).
pub const MAX_PEER_MESSAGE: usize = 256 << 20;

/// Compares a secret in constant time (no early exit on the first differing byte).
pub fn secret_matches(expected: &[u8], got: Option<&[u8]>) -> bool {
    let Some(got) = got else { return false };
    let mut diff = (got.len() != expected.len()) as u8;
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ got.get(i).copied().unwrap_or(!e);
    }
    diff == 0
}

fn encode<T: Serialize>(v: &T) -> Result<Payload, Status> {
    let data = postcard::to_stdvec(v).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Payload { data })
}

fn decode<T: DeserializeOwned>(p: &Payload) -> Result<T, Status> {
    postcard::from_bytes(&p.data)
        .map_err(|e| Status::invalid_argument(format!("payload does not decode: {e}")))
}

/// How often an HTTP/2 PING goes to a peer, busy or idle.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// How long a PING may go unanswered before the connection is declared dead and closed.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(2);
/// A call that got no answer for this long evicts its channel (see [`Peers`]).
pub const EVICT_AFTER: Duration = Duration::from_secs(1);
/// The longest any peer call may run, whatever its caller asked.
pub const MAX_CALL: Duration = Duration::from_secs(60);

/// openraft's network factory: one cached channel per peer address.
///
/// **Dead connections.** A peer cut off without a reset (`docker network disconnect`, a
/// dropped route, a firewall that drops) leaves the TCP connection half-open: nothing tells
/// this side, the kernel retransmits with a backoff that reaches tens of seconds, and the
/// channel still counts as connected. Every call sent on it (a snapshot chunk may wait its
/// whole 30 s) then times out, even after the network is back. So the channel (1) pings the
/// peer every [`KEEPALIVE_INTERVAL`], idle or not, and closes the connection when a ping goes
/// unanswered for [`KEEPALIVE_TIMEOUT`]; tonic then reconnects on the next call; (2) is
/// evicted from the cache when a call fails in the transport (unavailable) or gets no answer
/// for [`EVICT_AFTER`] or more, so the next call builds a fresh channel and connection rather
/// than waiting on one the keepalive has not yet given up on. A short call that timed out
/// (a heartbeat) evicts nothing: a busy peer answers late on a healthy connection.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    secret: Option<Arc<str>>,
    /// The address outgoing connections come from (this node's peer address, when it is
    /// not the unspecified one).
    local: Option<std::net::IpAddr>,
    channels: Arc<Mutex<HashMap<String, Cached>>>,
}

#[derive(Debug)]
struct Cached {
    channel: Channel,
    /// Tells a channel from the one that replaced it, so a late failure on an evicted
    /// channel does not evict its successor.
    generation: u64,
}

impl Peers {
    pub fn new(secret: Option<String>, local: Option<std::net::IpAddr>) -> Peers {
        Peers { secret: secret.map(Arc::from), local, channels: Default::default() }
    }

    /// A client of `addr` on a channel of its own, not cached: for an address that is not a
    /// member yet (a node about to be added), so that addresses tried and refused do not
    /// accumulate channels.
    pub fn probe_client(&self, addr: &str) -> Result<Link, Status> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::invalid_argument(format!("peer address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .local_address(self.local)
            .connect_lazy();
        Ok(Link { client: PeerClient::new(channel), secret: self.secret.clone(), evict: None })
    }

    /// A client of `addr` on a channel of its own, kept alive by pings but without the call
    /// timeout: for a snapshot stream, which takes as long as its bytes take.
    fn stream_client(&self, addr: &str) -> Result<Link, Status> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| Status::invalid_argument(format!("peer address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .local_address(self.local)
            .tcp_nodelay(true)
            .initial_stream_window_size(Some(8 << 20))
            .initial_connection_window_size(Some(16 << 20))
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect_lazy();
        let client = PeerClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE);
        Ok(Link { client, secret: self.secret.clone(), evict: None })
    }

    /// A client of the peer at `addr` (host:port), on the cached channel.
    pub fn client(&self, addr: &str) -> Result<Link, Status> {
        let (channel, generation) = {
            let mut map = self.channels.lock();
            match map.get(addr) {
                Some(c) => (c.channel.clone(), c.generation),
                None => {
                    static GENERATION: AtomicU64 = AtomicU64::new(0);
                    let generation = GENERATION.fetch_add(1, Ordering::Relaxed);
                    let channel = Endpoint::from_shared(format!("http://{addr}"))
                        .map_err(|e| Status::invalid_argument(format!("peer address {addr}: {e}")))?
                        .connect_timeout(Duration::from_secs(2))
                        .timeout(MAX_CALL)
                        .local_address(self.local)
                        .tcp_nodelay(true)
                        .tcp_keepalive(Some(Duration::from_secs(5)))
                        .tcp_keepalive_interval(Some(Duration::from_secs(1)))
                        .tcp_keepalive_retries(Some(3))
                        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                        .keep_alive_while_idle(true)
                        .connect_lazy();
                    map.insert(addr.to_string(), Cached { channel: channel.clone(), generation });
                    (channel, generation)
                }
            }
        };
        let client = PeerClient::new(channel)
            .max_decoding_message_size(MAX_PEER_MESSAGE)
            .max_encoding_message_size(MAX_PEER_MESSAGE);
        let evict = Some((self.clone(), addr.to_string(), generation));
        Ok(Link { client, secret: self.secret.clone(), evict })
    }

    /// Drops the cached channel of `addr` if it is still the given generation.
    fn evict(&self, addr: &str, generation: u64) {
        let mut map = self.channels.lock();
        if map.get(addr).is_some_and(|c| c.generation == generation) {
            map.remove(addr);
            tracing::debug!(
                "peer {addr}: call failed in the transport; reconnecting on a new channel"
            );
        }
    }
}

/// Whether a failed call says its connection is likely dead: the transport failed, or no
/// answer came for [`EVICT_AFTER`] or more.
fn evicts(s: &Status, timeout: Duration) -> bool {
    match s.code() {
        tonic::Code::Unavailable => true,
        tonic::Code::Cancelled | tonic::Code::DeadlineExceeded => timeout >= EVICT_AFTER,
        _ => false,
    }
}

/// A client of one peer.
#[derive(Debug, Clone)]
pub struct Link {
    client: PeerClient<Channel>,
    secret: Option<Arc<str>>,
    /// The cache the channel came from, its address and generation.
    evict: Option<(Peers, String, u64)>,
}

/// Which RPC a [`Link::call`] makes.
#[derive(Debug, Clone, Copy)]
pub enum Rpc {
    AppendEntries,
    Vote,
    Forward,
    ReadIndex,
    Probe,
}

impl Link {
    /// Sends `req` and decodes the reply; transport failures are `Err(Status)`.
    pub async fn call<Q: Serialize, A: DeserializeOwned>(
        &mut self,
        rpc: Rpc,
        req: &Q,
        timeout: Duration,
    ) -> Result<A, Status> {
        let mut r = Request::new(encode(req)?);
        r.set_timeout(timeout);
        if let Some(s) = &self.secret {
            let v = s.parse().map_err(|_| Status::invalid_argument("cluster secret: not ASCII"))?;
            r.metadata_mut().insert(SECRET_HEADER, v);
        }
        let reply = match rpc {
            Rpc::AppendEntries => self.client.append_entries(r).await,
            Rpc::Vote => self.client.vote(r).await,
            Rpc::Forward => self.client.forward(r).await,
            Rpc::ReadIndex => self.client.read_index(r).await,
            Rpc::Probe => self.client.probe(r).await,
        };
        let reply = match reply {
            Ok(r) => r,
            Err(s) => {
                if let Some((peers, addr, generation)) = &self.evict {
                    if evicts(&s, timeout) {
                        peers.evict(addr, *generation);
                    }
                }
                return Err(s);
            }
        };
        postcard::from_bytes(&reply.into_inner().data)
            .map_err(|e| Status::internal(format!("reply does not decode: {e}")))
    }
}

impl RaftNetworkFactory<TypeConfig> for Peers {
    type Network = Network;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Network {
        Network { target, peers: self.clone(), addr: node.addr.clone() }
    }
}

/// openraft's client of one peer. It takes the cached channel for every call, so a channel
/// evicted after a failure is replaced at the next call (a replication stream lives as long
/// as the leader's term).
#[derive(Debug)]
pub struct Network {
    target: NodeId,
    peers: Peers,
    addr: String,
}

fn rpc_error<E: std::error::Error>(s: Status) -> RPCError<NodeId, BasicNode, E> {
    match s.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
            RPCError::Unreachable(Unreachable::new(&s))
        }
        _ => RPCError::Network(NetworkError::new(&s)),
    }
}

impl Network {
    async fn send<Q: Serialize, A: DeserializeOwned, E>(
        &mut self,
        rpc: Rpc,
        req: &Q,
        option: &RPCOption,
    ) -> Result<A, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        E: std::error::Error + DeserializeOwned,
    {
        let mut link = self.peers.client(&self.addr).map_err(rpc_error)?;
        let reply: Result<A, RaftError<NodeId, E>> =
            link.call(rpc, req, option.hard_ttl()).await.map_err(rpc_error)?;
        reply.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Network {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.send(Rpc::AppendEntries, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.send(Rpc::Vote, &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        // Whatever stops a send (the receiver went away, a file of a checkpoint that was
        // replaced meanwhile) is retried with the then current snapshot: a storage error
        // would stop this node.
        let failed = |e: String| {
            StreamingError::Network(NetworkError::new(&std::io::Error::other(format!(
                "sending a snapshot: {e}"
            ))))
        };
        let files = *snapshot.snapshot;
        let names: Vec<(String, u64)> = files.files.clone();
        // Every file is opened before anything is sent: one removed later stays readable.
        let opened = tokio::task::spawn_blocking(move || {
            files
                .files
                .iter()
                .map(|(name, len)| {
                    let f = std::fs::File::open(files.base.join(name))
                        .map_err(|e| format!("{name}: {e}"))?;
                    Ok((f, *len))
                })
                .collect::<Result<Vec<_>, String>>()
        })
        .await
        .map_err(|e| failed(e.to_string()))?
        .map_err(failed)?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Payload>(4);
        let header = Payload {
            data: SnapshotPart::Header { vote, meta: snapshot.meta, files: names }.encode(),
        };
        let reader = tokio::task::spawn_blocking(move || -> Result<(), String> {
            let send = |part: SnapshotPart| {
                // The receiver went away: the call below reports why.
                tx.blocking_send(Payload { data: part.encode() })
                    .map_err(|_| "stream closed".to_string())
            };
            tx.blocking_send(header).map_err(|_| "stream closed".to_string())?;
            let mut buf = vec![0u8; CHUNK];
            for (f, len) in opened {
                let mut f = f.take(len);
                let mut crc = crc32fast::Hasher::new();
                let mut sent = 0u64;
                loop {
                    let n = f.read(&mut buf).map_err(|e| e.to_string())?;
                    if n == 0 {
                        break;
                    }
                    crc.update(&buf[..n]);
                    sent += n as u64;
                    crate::failpoint::hit("snap_send_chunk");
                    tx.blocking_send(Payload { data: SnapshotPart::encode_data(&buf[..n]) })
                        .map_err(|_| "stream closed".to_string())?;
                }
                if sent != len {
                    return Err(format!("a snapshot file ended at {sent} of its {len} bytes"));
                }
                send(SnapshotPart::FileEnd { crc: crc.finalize() })?;
            }
            send(SnapshotPart::End)
        });
        let mut link = self
            .peers
            .stream_client(&self.addr)
            .map_err(|s| StreamingError::Network(NetworkError::new(&s)))?;
        let mut req = Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        if let Some(s) = &link.secret {
            let v = s.parse().map_err(|_| failed("cluster secret: not ASCII".into()))?;
            req.metadata_mut().insert(SECRET_HEADER, v);
        }
        let call = link.client.install_snapshot(req);
        let reply = tokio::select! {
            r = call => r,
            closed = cancel => {
                reader.abort();
                return Err(StreamingError::Closed(closed));
            }
        };
        let read = reader.await.map_err(|e| failed(e.to_string()))?;
        let reply = match reply {
            Ok(r) => r.into_inner(),
            Err(s) => {
                if let Err(e) = &read {
                    tracing::debug!("snapshot send stopped: {e}");
                }
                return Err(match s.code() {
                    tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Cancelled => StreamingError::Unreachable(Unreachable::new(&s)),
                    _ => StreamingError::Network(NetworkError::new(&s)),
                });
            }
        };
        let reply: Result<SnapshotResponse<NodeId>, Fatal<NodeId>> =
            postcard::from_bytes(&reply.data).map_err(|e| {
                StreamingError::Network(NetworkError::new(&std::io::Error::other(format!(
                    "reply does not decode: {e}"
                ))))
            })?;
        reply.map_err(|f| StreamingError::RemoteError(RemoteError::new(self.target, f)))
    }
}

/// One message of a snapshot stream. On the wire (a payload's bytes): `1` and the raw bytes
/// of a `Data` part, or `0` and the postcard encoding of any other part (so file bytes are
/// neither encoded nor decoded one by one).
#[derive(Debug)]
pub enum SnapshotPart {
    /// First: the leader's vote, the snapshot's meta and its files (path, length) in the
    /// order they follow.
    Header { vote: Vote<NodeId>, meta: SnapshotMeta<NodeId, BasicNode>, files: Vec<(String, u64)> },
    /// The next bytes of the current file.
    Data(Vec<u8>),
    /// The current file is whole: its CRC-32.
    FileEnd { crc: u32 },
    /// Every file was sent.
    End,
}

#[derive(serde::Serialize, serde::Deserialize)]
enum Control {
    Header { vote: Vote<NodeId>, meta: SnapshotMeta<NodeId, BasicNode>, files: Vec<(String, u64)> },
    FileEnd { crc: u32 },
    End,
}

const CONTROL: u8 = 0;
const DATA: u8 = 1;

impl SnapshotPart {
    pub fn encode(self) -> Vec<u8> {
        let control = match self {
            SnapshotPart::Data(bytes) => return SnapshotPart::encode_data(&bytes),
            SnapshotPart::Header { vote, meta, files } => Control::Header { vote, meta, files },
            SnapshotPart::FileEnd { crc } => Control::FileEnd { crc },
            SnapshotPart::End => Control::End,
        };
        let mut out = vec![CONTROL];
        out.extend(postcard::to_stdvec(&control).expect("a control part encodes"));
        out
    }

    /// The wire form of `Data(bytes)`, without building the part first.
    pub fn encode_data(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + 1);
        out.push(DATA);
        out.extend_from_slice(bytes);
        out
    }

    pub fn decode(mut bytes: Vec<u8>) -> Result<SnapshotPart, String> {
        match bytes.first() {
            Some(&DATA) => {
                bytes.remove(0);
                Ok(SnapshotPart::Data(bytes))
            }
            Some(&CONTROL) => {
                Ok(match postcard::from_bytes(&bytes[1..]).map_err(|e| e.to_string())? {
                    Control::Header { vote, meta, files } => {
                        SnapshotPart::Header { vote, meta, files }
                    }
                    Control::FileEnd { crc } => SnapshotPart::FileEnd { crc },
                    Control::End => SnapshotPart::End,
                })
            }
            _ => Err("an empty part, or one of no known kind".into()),
        }
    }
}

/// The peer service of one node.
#[derive(Clone)]
pub struct PeerService {
    raft: Raft,
    log: LogStore,
    state: StateMachine,
}

/// What a forwarded write returns.
pub type ForwardReply = Result<Applied, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>;
/// What a read-index request returns.
pub type ReadIndexReply =
    Result<Option<LogId>, RaftError<NodeId, CheckIsLeaderError<NodeId, BasicNode>>>;

impl PeerService {
    pub fn new(raft: Raft, log: LogStore, state: StateMachine) -> PeerService {
        PeerService { raft, log, state }
    }

    /// The tonic service, with message limits and the secret check (when `secret` is set).
    pub fn into_server(
        self,
        secret: Option<String>,
    ) -> tonic::service::interceptor::InterceptedService<
        PeerServer<PeerService>,
        impl tonic::service::Interceptor + Clone,
    > {
        let secret: Option<Arc<[u8]>> = secret.map(|s| Arc::from(s.as_bytes()));
        let check = move |req: Request<()>| -> Result<Request<()>, Status> {
            match &secret {
                Some(s) => {
                    let got = req.metadata().get(SECRET_HEADER).map(|v| v.as_bytes());
                    if secret_matches(s, got) {
                        Ok(req)
                    } else {
                        Err(Status::unauthenticated("missing or wrong cluster secret"))
                    }
                }
                None => Ok(req),
            }
        };
        tonic::service::interceptor::InterceptedService::new(
            PeerServer::new(self)
                .max_decoding_message_size(MAX_PEER_MESSAGE)
                .max_encoding_message_size(MAX_PEER_MESSAGE),
            check,
        )
    }
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn append_entries(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> = decode(req.get_ref())?;
        let reply = self.raft.append_entries(rpc).await;
        Ok(Response::new(encode(&reply)?))
    }

    async fn vote(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let rpc: VoteRequest<NodeId> = decode(req.get_ref())?;
        let reply = self.raft.vote(rpc).await;
        Ok(Response::new(encode(&reply)?))
    }

    async fn install_snapshot(
        &self,
        req: Request<tonic::Streaming<Payload>>,
    ) -> Result<Response<Payload>, Status> {
        let invalid = |what: &str| Status::invalid_argument(format!("snapshot stream: {what}"));
        let started = std::time::Instant::now();
        let mut stream = req.into_inner();
        let first = stream.message().await?.ok_or_else(|| invalid("empty"))?;
        let part = |p: Payload| {
            SnapshotPart::decode(p.data)
                .map_err(|e| Status::invalid_argument(format!("payload does not decode: {e}")))
        };
        let SnapshotPart::Header { vote, meta, files } = part(first)? else {
            return Err(invalid("does not start with its header"));
        };
        let sm = self.state.clone();
        let staging = tokio::task::spawn_blocking(move || sm.begin_reception(files))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| invalid(&e.to_string()))?;
        let dir = staging.dir().to_path_buf();
        let received = async {
            let mut staging = staging;
            loop {
                let Some(p) = stream.message().await? else {
                    return Err(invalid("ended before its end marker"));
                };
                if p.data.len() > MAX_SNAPSHOT_PART {
                    return Err(invalid(&format!("a part of {} bytes", p.data.len())));
                }
                let part = part(p)?;
                if matches!(part, SnapshotPart::End) {
                    break;
                }
                staging = tokio::task::spawn_blocking(move || {
                    match part {
                        SnapshotPart::Data(bytes) => {
                            crate::failpoint::hit("snap_recv_chunk");
                            staging.write(&bytes)?
                        }
                        SnapshotPart::FileEnd { crc } => staging.end_file(crc)?,
                        _ => {
                            return Err(std::io::Error::new(
                                std::io::ErrorKind::InvalidData,
                                "a second header",
                            ))
                        }
                    }
                    Ok(staging)
                })
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| invalid(&e.to_string()))?;
            }
            let files = tokio::task::spawn_blocking(move || staging.finish())
                .await
                .map_err(|e| Status::internal(e.to_string()))?
                .map_err(|e| invalid(&e.to_string()))?;
            crate::failpoint::hit("snap_recv_before_verify");
            crate::checkpoint::check_staged(&freshvec_core::storage::fs::RealFs, &files, &meta)
                .map_err(|e| invalid(&e))?;
            Ok(files)
        }
        .await;
        let files = match received {
            Ok(f) => {
                tracing::info!(
                    "snapshot received: {} files, {} bytes in {} ms",
                    f.files.len(),
                    f.bytes(),
                    started.elapsed().as_millis()
                );
                f
            }
            Err(s) => {
                self.state.abandon_reception(&dir);
                return Err(s);
            }
        };
        let reply = self
            .raft
            .install_full_snapshot(vote, Snapshot { meta, snapshot: Box::new(files) })
            .await;
        // Not installed (refused, or older than what this node holds): the files go.
        if dir.exists() {
            self.state.abandon_reception(&dir);
        }
        Ok(Response::new(encode(&reply)?))
    }

    async fn forward(&self, req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let cmd: Command = decode(req.get_ref())?;
        let reply: ForwardReply = self.raft.client_write(cmd).await.map(|r| r.data);
        Ok(Response::new(encode(&reply)?))
    }

    async fn read_index(&self, _req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let reply: ReadIndexReply = self.raft.ensure_linearizable().await;
        Ok(Response::new(encode(&reply)?))
    }

    async fn probe(&self, _req: Request<Payload>) -> Result<Response<Payload>, Status> {
        let has = self.log.has_state() || self.state.current_snapshot().is_some();
        Ok(Response::new(encode(&has)?))
    }
}

impl std::fmt::Debug for PeerService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerService").finish_non_exhaustive()
    }
}
