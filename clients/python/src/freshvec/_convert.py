"""Request builders and response parsers shared by Client and AsyncClient: numpy in, packed
little-endian f32 bytes on the wire (`vector_f32`, `vectors_f32`), numpy out."""
from __future__ import annotations

import json
import math
import threading
from typing import Any, Optional, Sequence

import numpy as np

from . import _payload as pl
from . import types as t
from .v1 import freshvec_pb2 as pb

MAX_BATCH = 10_000
"""Points per upsert, ids per get or delete (the server's limit)."""
MAX_MESSAGE = 16 << 20
"""The server's message limit; upload batches stay well under it."""

METRICS = {"l2": pb.METRIC_L2, "dot": pb.METRIC_DOT, "cosine": pb.METRIC_COSINE}
METRIC_NAMES = {v: k for k, v in METRICS.items()}
ENCODINGS = {"int8": pb.ENCODING_INT8, "f32": pb.ENCODING_F32}
ENCODING_NAMES = {v: k for k, v in ENCODINGS.items()}
ROLES = {pb.ROLE_LEADER: "leader", pb.ROLE_FOLLOWER: "follower", pb.ROLE_CANDIDATE: "candidate",
         pb.ROLE_LEARNER: "learner"}


_F32 = np.dtype("<f4")
_U64 = np.dtype("<u8")


def vector_bytes(v: Any) -> bytes:
    """One vector as packed little-endian f32."""
    if type(v) is np.ndarray and v.dtype == _F32 and v.ndim == 1:
        return v.tobytes()  # the common case, without the checks below
    a = np.asarray(v, dtype="<f4")
    if a.ndim != 1:
        raise ValueError(f"a vector must be one-dimensional, got shape {a.shape}")
    return a.tobytes()


def matrix(vectors: Any) -> np.ndarray:
    """Vectors as a C-contiguous (n, d) little-endian f32 array."""
    a = np.ascontiguousarray(vectors, dtype="<f4")
    if a.ndim == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise ValueError(f"vectors must be an (n, dimension) array, got shape {a.shape}")
    return a


def id_array(ids: Any) -> np.ndarray:
    """Ids (an int, a sequence of ints, or an integer array) as a uint64 array, exactly:
    Python ints past 2^63 stay exact (numpy alone would make a mixed list float64)."""
    if isinstance(ids, np.ndarray):
        a = ids.reshape(1) if ids.ndim == 0 else ids
        if a.ndim != 1:
            raise ValueError(f"ids must be one-dimensional, got shape {a.shape}")
        if a.size and a.dtype.kind not in "iu":
            raise TypeError(f"ids must be integers, got an array of {a.dtype}")
        if a.size and a.dtype.kind == "i" and int(a.min()) < 0:
            raise ValueError("ids must be non-negative (u64)")
        return a.astype(np.uint64, copy=False)
    if isinstance(ids, (int, np.integer)):
        ids = [ids]
    ids = list(ids)
    for i in ids:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"ids must be integers, got {i!r}")
        if not 0 <= int(i) < (1 << 64):
            raise ValueError(f"ids must be u64, got {int(i)}")
    return np.array([int(i) for i in ids], dtype=np.uint64)


def id_list(ids: Any) -> list[int]:
    return id_array(ids).tolist()


def create_request(name: str, dimension: int, metric: str, shards: int, encoding: Optional[str],
                   posting_size: int, split_limit: int, merge_limit: int, replicas: int):
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    if encoding is not None and encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {sorted(ENCODINGS)}, got {encoding!r}")
    index = pb.IndexParameters(posting_size=posting_size, split_limit=split_limit,
                               merge_limit=merge_limit, replicas=replicas,
                               encoding=ENCODINGS[encoding] if encoding else 0)
    return pb.CreateCollectionRequest(name=name, dimension=dimension, metric=METRICS[metric],
                                      shards=shards, index=index)


def upsert_request(collection: str, ids: Any, vectors: Any, payloads: Any = None):
    """The columnar form: ids, one packed f32 block, and (when given) one payload per id."""
    m = matrix(vectors)
    idl = id_list(ids)
    if len(idl) != m.shape[0]:
        raise ValueError(f"{len(idl)} ids for {m.shape[0]} vectors")
    req = pb.UpsertRequest(collection=collection, ids=idl, vectors_f32=m.tobytes())
    if payloads is not None:
        payloads = list(payloads)
        if len(payloads) != len(idl):
            raise ValueError(f"{len(payloads)} payloads for {len(idl)} points")
        for i, p in enumerate(payloads):
            pl.fill_payload(req.payloads.add().fields, p if p is not None else {},
                            f"payloads[{i}]")
    return req, len(idl)


def set_filter(req, filter: Any) -> None:
    """Sets a request's `filter` field (left unset for None)."""
    f = pl.filter_message(filter)
    if f is not None:
        req.filter.CopyFrom(f)


def set_with_payload(req, with_payload: Any) -> bool:
    """Sets a request's `with_payload` field; whether payloads were asked for."""
    sel = pl.with_payload(with_payload)
    if sel is not None:
        req.with_payload.CopyFrom(sel)
    return sel is not None


def target(req, ids: Any, filter: Any) -> None:
    """Sets a write's points: ids or a filter, exactly one."""
    if (ids is None) == (filter is None):
        raise ValueError("give the points as ids or as a filter (exactly one)")
    if ids is not None:
        req.ids.extend(id_list(ids))
    else:
        set_filter(req, filter)


def delete_request(collection: str, ids: Any, filter: Any):
    req = pb.DeleteRequest(collection=collection)
    target(req, ids, filter)
    return req


def set_payload_request(collection: str, payload: Any, ids: Any, filter: Any):
    req = pb.SetPayloadRequest(collection=collection)
    pl.fill_payload(req.payload, payload)
    target(req, ids, filter)
    return req


def delete_payload_keys_request(collection: str, keys: Any, ids: Any, filter: Any):
    keys = [keys] if isinstance(keys, str) else list(keys)
    req = pb.DeletePayloadKeysRequest(collection=collection, keys=keys)
    target(req, ids, filter)
    return req


def clear_payload_request(collection: str, ids: Any, filter: Any):
    req = pb.ClearPayloadRequest(collection=collection)
    target(req, ids, filter)
    return req


def field_index_request(collection: str, key: str, type: str):
    if type not in pl.FIELD_TYPES:
        raise ValueError(f"a field index type is one of {sorted(pl.FIELD_TYPES)}, got {type!r}")
    return pb.CreateFieldIndexRequest(collection=collection, key=key, type=pl.FIELD_TYPES[type])


def search_options(req, filter: Any, with_payload: Any, with_vectors: bool) -> None:
    """A search's filter and what its hits carry; packed hits when they carry nothing else."""
    if filter is None and not with_payload and not with_vectors:
        req.packed_hits = True
        return
    set_filter(req, filter)
    wants_payload = set_with_payload(req, with_payload)
    req.with_vectors = bool(with_vectors)
    req.packed_hits = not wants_payload and not with_vectors


def upload_batch(collection: str, m: np.ndarray, ids: np.ndarray, payloads: Optional[list],
                 start: int, size: int) -> list:
    """The upsert requests for rows start..start+size: one, or (when payloads make it larger
    than half the message limit) that range split in halves until each fits."""
    end = min(start + size, m.shape[0])
    req, n = upsert_request(collection, ids[start:end], m[start:end],
                            None if payloads is None else payloads[start:end])
    if payloads is None or n == 1 or req.ByteSize() <= MAX_MESSAGE // 2:
        return [(req, n)]
    half = (n + 1) // 2
    return (upload_batch(collection, m, ids, payloads, start, half)
            + upload_batch(collection, m, ids, payloads, start + half, end - start - half))


def upload_plan(vectors: Any, ids: Any, payloads: Any, batch_size: Optional[int]):
    """(matrix, ids, payloads, batch size) for an upload, checked against each other."""
    m = matrix(vectors)
    n = m.shape[0]
    idarr = np.arange(n, dtype=np.uint64) if ids is None else id_array(ids)
    if len(idarr) != n:
        raise ValueError(f"{len(idarr)} ids for {n} vectors")
    if payloads is not None:
        payloads = list(payloads)
        if len(payloads) != n:
            raise ValueError(f"{len(payloads)} payloads for {n} vectors")
    return m, idarr, payloads, batch_size_for(m.shape[1], batch_size)


def collection_info(r) -> t.CollectionInfo:
    return t.CollectionInfo(
        name=r.name, dimension=r.dimension, metric=METRIC_NAMES.get(r.metric, str(r.metric)),
        shards=r.shards, encoding=ENCODING_NAMES.get(r.encoding, str(r.encoding)),
        vectors=r.vectors, postings=r.postings, splits=r.splits, merges=r.merges,
        reassigned=r.reassigned, pending_jobs=r.pending_jobs, memory_bytes=r.memory_bytes,
        applied_index=r.applied_index, calibrated_shards=r.calibrated_shards,
        default_nprobe=r.default_nprobe, estimated_recall=r.estimated_recall,
        calibration=[(p.nprobe, p.recall) for p in r.calibration],
        field_indexes=[t.FieldIndexInfo(f.key, pl.FIELD_TYPE_NAMES.get(f.type, str(f.type)),
                                        f.points, f.values, f.memory_bytes)
                       for f in r.field_indexes],
        payload_memory_bytes=r.payload_memory_bytes, raw=r)


def cluster_status(r) -> t.ClusterStatus:
    return t.ClusterStatus(
        node_id=r.node_id, role=ROLES.get(r.role, "unknown"), leader_id=r.leader_id, term=r.term,
        last_log_index=r.last_log_index, committed_index=r.committed_index,
        applied_index=r.applied_index, purged_index=r.purged_index,
        snapshot_index=r.snapshot_index, first_log_index=r.first_log_index,
        snapshots_installed=r.snapshots_installed,
        snapshot_transfers_in_progress=r.snapshot_transfers_in_progress, address=r.address,
        voters=list(r.voters),
        peers=[t.PeerStatus(p.node_id, p.address, p.matched_index, p.lag, p.voter) for p in r.peers],
        collections=[t.CollectionDigest(c.name, c.digest, c.vectors) for c in r.collections],
        raw=r)


def search_result(r, with_payload: bool = False, with_vectors: bool = False) -> t.SearchResult:
    plan = None
    if r.HasField("plan"):
        p = r.plan
        plan = t.SearchPlan(pl.STRATEGY_NAMES.get(p.strategy, str(p.strategy)), p.matched,
                            p.exact_shards, p.fallback_shards, p.postings, p.scanned, p.unindexed)
    if r.hits or not (r.ids_u64 or r.distances_f32):  # hits as messages (or none at all)
        hits = r.hits
        payloads = [pl.to_python(h.payload) for h in hits] if with_payload else None
        vectors = None
        if with_vectors:
            vectors = np.array([list(h.vector) for h in hits], dtype=np.float32)
            vectors = vectors.reshape(len(hits), -1)
        return t.SearchResult(np.array([h.id for h in hits], dtype=np.uint64),
                              np.array([h.distance for h in hits], dtype=np.float32),
                              r.applied_index, payloads, vectors, plan)
    return t.SearchResult(np.frombuffer(r.ids_u64, dtype=_U64),
                          np.frombuffer(r.distances_f32, dtype=_F32), r.applied_index, plan=plan)


def points(ps, with_payload: bool = False) -> t.Points:
    """Points from a repeated Point field (vectors in vector_f32 or vector)."""
    ids = np.array([p.id for p in ps], dtype=np.uint64)
    payloads = [pl.to_python(p.payload) for p in ps] if with_payload else None
    if not ps or not (ps[0].vector_f32 or ps[0].vector):
        return t.Points(ids=ids, vectors=None, payloads=payloads)
    if ps[0].vector_f32:
        blob = b"".join(p.vector_f32 for p in ps)
        vectors = np.frombuffer(blob, dtype="<f4").reshape(len(ps), -1)
    else:
        vectors = np.array([list(p.vector) for p in ps], dtype=np.float32).reshape(len(ps), -1)
    return t.Points(ids=ids, vectors=vectors, payloads=payloads)


def page(r, with_payload: bool) -> t.Page:
    nxt = r.next_page_offset if r.HasField("next_page_offset") else None
    return t.Page(points(r.points, with_payload), nxt, r.applied_index)


class Session:
    """The consistency reads ask for: the default, or (read_your_writes) the highest write index
    this client has seen, so any replica answers only once it applied that write."""

    def __init__(self, read_your_writes: bool) -> None:
        self.read_your_writes = read_your_writes
        self.last_write = 0
        self._lock = threading.Lock()
        self._params: dict = {}

    def wrote(self, index: int) -> None:
        with self._lock:
            if index > self.last_write:
                self.last_write = index

    def consistency(self, c: t.Consistency) -> tuple[int, int]:
        """(Consistency enum, min_applied_index) for a read."""
        if c is None:
            if self.read_your_writes and self.last_write:
                return pb.CONSISTENCY_MIN_APPLIED_INDEX, self.last_write
            return pb.CONSISTENCY_LOCAL, 0
        if isinstance(c, t.AtLeast):
            return pb.CONSISTENCY_MIN_APPLIED_INDEX, c.index
        if isinstance(c, bool):
            raise ValueError("consistency: a bool is not a consistency")
        if isinstance(c, int):
            return pb.CONSISTENCY_MIN_APPLIED_INDEX, c
        if c == "local":
            return pb.CONSISTENCY_LOCAL, 0
        if c == "linearizable":
            return pb.CONSISTENCY_LINEARIZABLE, 0
        raise ValueError(f"consistency must be None, 'local', 'linearizable' or an index, got {c!r}")

    def search_params(self, k: int, nprobe: int, rerank: int, exact: bool, target_recall: float,
                      c: t.Consistency):
        consistency, min_index = self.consistency(c)
        key = (k, nprobe, rerank, exact, target_recall, consistency, min_index)
        # Messages are copied into the request that holds them, so one per shape serves every
        # search of that shape (a per-call message costs more than the vector's bytes).
        p = self._params.get(key)
        if p is None:
            p = pb.SearchParameters(k=k, nprobe=nprobe, rerank=rerank, exact=exact,
                                    target_recall=target_recall, consistency=consistency,
                                    min_applied_index=min_index)
            if len(self._params) > 64:
                self._params.clear()
            self._params[key] = p
        return p

    def get_request(self, collection: str, ids: Any, with_vectors: bool, with_payload: Any,
                    c: t.Consistency):
        consistency, min_index = self.consistency(c)
        req = pb.GetRequest(collection=collection, ids=id_list(ids), with_vectors=with_vectors,
                            vectors_f32=with_vectors, consistency=consistency,
                            min_applied_index=min_index)
        return req, set_with_payload(req, with_payload)

    def search_request(self, collection: str, vector: Any, k: int, filter: Any,
                       with_payload: Any, with_vectors: bool, nprobe: int, rerank: int,
                       exact: bool, target_recall: float, c: t.Consistency):
        req = pb.SearchRequest(collection=collection, vector_f32=vector_bytes(vector),
                               params=self.search_params(k, nprobe, rerank, exact, target_recall,
                                                         c))
        search_options(req, filter, with_payload, with_vectors)
        return req

    def search_batch_request(self, collection: str, vectors: Any, k: int, filter: Any,
                             with_payload: Any, with_vectors: bool, nprobe: int, rerank: int,
                             exact: bool, target_recall: float, c: t.Consistency):
        m = matrix(vectors)
        req = pb.SearchBatchRequest(
            collection=collection, queries=[pb.Query(vector_f32=row.tobytes()) for row in m],
            params=self.search_params(k, nprobe, rerank, exact, target_recall, c))
        search_options(req, filter, with_payload, with_vectors)
        return req

    def scroll_request(self, collection: str, filter: Any, offset: Optional[int], limit: int,
                       with_payload: Any, with_vectors: bool, c: t.Consistency):
        consistency, min_index = self.consistency(c)
        req = pb.ScrollRequest(collection=collection, limit=limit, with_vectors=with_vectors,
                               consistency=consistency, min_applied_index=min_index)
        if offset is not None:
            req.offset = offset
        set_filter(req, filter)
        return req, set_with_payload(req, with_payload)

    def count_request(self, collection: str, filter: Any, c: t.Consistency):
        consistency, min_index = self.consistency(c)
        req = pb.CountRequest(collection=collection, consistency=consistency,
                              min_applied_index=min_index)
        set_filter(req, filter)
        return req


def batch_size_for(dim: int, batch_size: Optional[int]) -> int:
    if batch_size is not None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size must be 1..={MAX_BATCH}")
        return batch_size
    # The largest batch within both limits, with room for ids and framing.
    return max(1, min(MAX_BATCH, (MAX_MESSAGE // 2) // (dim * 4 + 16)))


class Progress:
    """Upload progress: False (none), True (tqdm when installed, else a line on stderr), a
    callable taking (done, total), or a tqdm-like object (its update(n) is called)."""

    def __init__(self, progress: Any, total: int) -> None:
        self.total, self.done = total, 0
        self._call = None
        self._bar = None
        self._owned = False
        self._lock = threading.Lock()
        if progress is True:
            try:
                from tqdm import tqdm  # type: ignore[import-not-found]

                self._bar, self._owned = tqdm(total=total, unit="vec"), True
            except ImportError:
                self._call = self._line
        elif callable(progress) and not hasattr(progress, "update"):
            self._call = progress
        elif progress:
            self._bar = progress

    def _line(self, done: int, total: int) -> None:
        import sys

        end = "\n" if done >= total else ""
        sys.stderr.write(f"\rfreshvec upload: {done}/{total} vectors{end}")

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)
            if self._call is not None:
                self._call(self.done, self.total)

    def close(self) -> None:
        if self._owned and self._bar is not None:
            self._bar.close()


def channel_target(url: str) -> tuple[str, bool]:
    """(host:port, tls) from "host:port", "http://host:port" or "https://host:port"."""
    tls = False
    if url.startswith("https://"):
        url, tls = url[len("https://"):], True
    elif url.startswith("http://"):
        url = url[len("http://"):]
    return url.rstrip("/"), tls


SERVICES = ("freshvec.v1.Collections", "freshvec.v1.Points", "freshvec.v1.Cluster",
            "grpc.health.v1.Health")


def channel_options(extra: Optional[Sequence[tuple[str, Any]]],
                    timeout: Optional[float]) -> list[tuple[str, Any]]:
    """The channel's options. The deadline of every call is the channel's service config
    (`timeout`), not a per-call argument, and retries are off (the client configures no retry
    policy, so gRPC would never retry; its retry layer only costs time): each costs a call
    about 5-15 us of client CPU otherwise. The timeout is rounded up to whole milliseconds.
    `extra` comes last, so it can override these."""
    opts: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", MAX_MESSAGE + (1 << 20)),
        ("grpc.max_receive_message_length", MAX_MESSAGE + (1 << 20)),
        ("grpc.enable_retries", 0)]
    if timeout is not None:
        if not timeout > 0:
            raise ValueError(f"timeout must be positive seconds or None, not {timeout!r}")
        # gRPC reads the config's timeout in whole milliseconds (a shorter one would mean none).
        ms = max(1, math.ceil(timeout * 1000))
        config = {"methodConfig": [{"name": [{"service": s} for s in SERVICES],
                                    "timeout": f"{ms // 1000}.{ms % 1000:03d}s"}]}
        opts.append(("grpc.service_config", json.dumps(config)))
    return opts + list(extra or [])


def credentials(tls: bool, tls_ca: Any):
    import grpc

    if tls_ca is None and not tls:
        return None
    root = None
    if tls_ca is not None:
        if isinstance(tls_ca, (bytes, bytearray)):
            root = bytes(tls_ca)
        else:
            with open(tls_ca, "rb") as f:
                root = f.read()
    return grpc.ssl_channel_credentials(root_certificates=root)


# grpc.health.v1.Health/Check, encoded by hand (one string field in, one enum field out), so
# the package needs no second set of stubs.
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SERVING_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def health_request(service: str) -> bytes:
    s = service.encode()
    return b"\x0a" + _varint(len(s)) + s if s else b""


def health_response(data: bytes) -> str:
    i, status = 0, 0
    while i < len(data):
        tag = data[i]
        i += 1
        value, shift = 0, 0
        while True:
            b = data[i]
            i += 1
            value |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        if tag == 0x08:
            status = value
    return SERVING_NAMES.get(status, "UNKNOWN")

