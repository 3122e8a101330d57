"""The synchronous client."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

import grpc
import numpy as np

from . import _convert as cv
from . import types as t
from .errors import FreshvecError, from_rpc
from .v1 import freshvec_pb2 as pb
from .v1 import freshvec_pb2_grpc as rpc

DEFAULT_URL = "localhost:7867"
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


class Client:
    """A freshvec server (any node of a cluster) over gRPC.

    `url` is "host:port" (or "http://host:port"; "https://..." for TLS with the system's
    roots); `tls_ca` a CA certificate (path or PEM bytes) turns TLS on; `api_key` is sent as
    `authorization: Bearer KEY`; `timeout` (seconds) bounds every call. With
    `read_your_writes=True` every read carries the index of this client's last write, so any
    node answers only once it applied it. Failed calls raise FreshvecError subclasses."""

    def __init__(self, url: str = DEFAULT_URL, *, api_key: Optional[str] = None,
                 tls_ca: Any = None, timeout: Optional[float] = 10.0,
                 read_your_writes: bool = False,
                 grpc_options: Optional[Sequence[tuple[str, Any]]] = None) -> None:
        target, tls = cv.channel_target(url)
        creds = cv.credentials(tls, tls_ca)
        opts = cv.channel_options(grpc_options)
        self._channel = (grpc.secure_channel(target, creds, options=opts) if creds
                         else grpc.insecure_channel(target, options=opts))
        self._collections = rpc.CollectionsStub(self._channel)
        self._points = rpc.PointsStub(self._channel)
        self._cluster = rpc.ClusterStub(self._channel)
        self._health = self._channel.unary_unary(
            cv.HEALTH_CHECK, request_serializer=cv.health_request,
            response_deserializer=cv.health_response)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None
        self.timeout = timeout
        self._session = cv.Session(read_your_writes)

    # --- plumbing -----------------------------------------------------------------------

    def _call(self, method, request, timeout: Optional[float] = None):
        try:
            return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc(e) from None

    def _write(self, method, request) -> int:
        index = self._call(method, request).index
        self._session.wrote(index)
        return index

    @property
    def last_write_index(self) -> int:
        """The highest log index a write through this client returned."""
        return self._session.last_write

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- collections --------------------------------------------------------------------

    def create_collection(self, name: str, dimension: int, *, metric: str = "cosine",
                          shards: int = 1, encoding: Optional[str] = None, posting_size: int = 0,
                          split_limit: int = 0, merge_limit: int = 0, replicas: int = 0) -> int:
        """Creates an empty collection ("l2", "dot" or "cosine"); returns the log index."""
        req = cv.create_request(name, dimension, metric, shards, encoding, posting_size,
                                split_limit, merge_limit, replicas)
        return self._write(self._collections.Create, req)

    def drop_collection(self, name: str) -> int:
        return self._write(self._collections.Drop, pb.DropCollectionRequest(name=name))

    def list_collections(self) -> list[str]:
        return list(self._call(self._collections.List, pb.ListCollectionsRequest()).names)

    def describe_collection(self, name: str) -> t.CollectionInfo:
        r = self._call(self._collections.Describe, pb.DescribeCollectionRequest(name=name))
        return cv.collection_info(r)

    def collection_exists(self, name: str) -> bool:
        return name in self.list_collections()

    # --- points -------------------------------------------------------------------------

    def upsert(self, collection: str, ids: Any, vectors: Any) -> t.WriteResult:
        """Inserts or replaces up to 10,000 points in one request: `ids` (uint64, distinct) and
        `vectors` ((n, dimension) array or nested lists)."""
        req, n = cv.upsert_request(collection, ids, vectors)
        return t.WriteResult(self._write(self._points.Upsert, req), n)

    def upload(self, collection: str, vectors: Any, ids: Any = None, *,
               batch_size: Optional[int] = None, parallel: int = 2, progress: Any = False,
               max_retries: int = 3) -> t.WriteResult:
        """Upserts any number of vectors in batches, `parallel` requests in flight (threads
        over one channel). `ids` default to 0..n-1. A batch refused with UNAVAILABLE or
        RESOURCE_EXHAUSTED is retried with backoff (writes are idempotent). `progress`: True
        (tqdm if installed), a callable(done, total), or a tqdm-like object. Returns the
        highest log index and the count."""
        m = cv.matrix(vectors)
        n = m.shape[0]
        idarr = np.arange(n, dtype=np.uint64) if ids is None else np.asarray(ids, dtype=np.uint64)
        if len(idarr) != n:
            raise ValueError(f"{len(idarr)} ids for {n} vectors")
        size = cv.batch_size_for(m.shape[1], batch_size)
        bar = cv.Progress(progress, n)

        def one(start: int) -> int:
            req, k = cv.upsert_request(collection, idarr[start:start + size], m[start:start + size])
            delay = 0.05
            for attempt in range(max_retries + 1):
                try:
                    index = self._write(self._points.Upsert, req)
                    bar.add(k)
                    return index
                except FreshvecError as e:
                    if e.code not in RETRYABLE or attempt == max_retries:
                        raise
                    time.sleep(delay)
                    delay = min(delay * 2, 2.0)
            raise AssertionError("unreachable")

        try:
            starts = range(0, n, size)
            if parallel <= 1:
                indexes = [one(s) for s in starts]
            else:
                with ThreadPoolExecutor(max_workers=parallel) as pool:
                    indexes = list(pool.map(one, starts))
        finally:
            bar.close()
        return t.WriteResult(max(indexes, default=0), n)

    def delete(self, collection: str, ids: Any) -> t.WriteResult:
        """Deletes up to 10,000 ids (unknown ids are ignored)."""
        idl = cv.id_list(ids)
        req = pb.DeleteRequest(collection=collection, ids=idl)
        return t.WriteResult(self._write(self._points.Delete, req), len(idl))

    def get(self, collection: str, ids: Any, *, with_vectors: bool = False,
            consistency: t.Consistency = None) -> t.Points:
        req = self._session.get_request(collection, ids, with_vectors, consistency)
        return cv.points(self._call(self._points.Get, req))

    def search(self, collection: str, vector: Any, k: int = 10, *, nprobe: int = 0,
               rerank: int = 0, exact: bool = False, target_recall: float = 0.0,
               consistency: t.Consistency = None) -> t.SearchResult:
        """The k nearest points to `vector`, nearest first."""
        req = pb.SearchRequest(collection=collection, vector_f32=cv.vector_bytes(vector), packed_hits=True,
                               params=self._session.search_params(k, nprobe, rerank, exact, target_recall,
                                                                  consistency))
        return cv.search_result(self._call(self._points.Search, req))

    def search_batch(self, collection: str, vectors: Any, k: int = 10, *, nprobe: int = 0,
                     rerank: int = 0, exact: bool = False, target_recall: float = 0.0,
                     consistency: t.Consistency = None) -> list[t.SearchResult]:
        """Up to 1,024 queries (an (n, dimension) array) in one request; results in order."""
        m = cv.matrix(vectors)
        req = pb.SearchBatchRequest(
            collection=collection, queries=[pb.Query(vector_f32=row.tobytes()) for row in m], packed_hits=True,
            params=self._session.search_params(k, nprobe, rerank, exact, target_recall, consistency))
        return [cv.search_result(r) for r in self._call(self._points.SearchBatch, req).results]

    # Payloads, filters, scroll and count need server support that does not exist yet.

    def scroll(self, collection: str, *args: Any, **kwargs: Any) -> Any:
        cv.not_supported("scroll")

    def count(self, collection: str, *args: Any, **kwargs: Any) -> Any:
        cv.not_supported("count")

    def set_payload(self, collection: str, *args: Any, **kwargs: Any) -> Any:
        cv.not_supported("set_payload")

    # --- cluster ------------------------------------------------------------------------

    def status(self) -> t.ClusterStatus:
        return cv.cluster_status(self._call(self._cluster.Status, pb.StatusRequest()))

    def health(self, service: str = "") -> str:
        """The gRPC health status: "SERVING" once the node caught up (service "" or
        "readiness"), "NOT_SERVING" before; "liveness" is SERVING while the process answers."""
        try:
            return self._health(service, timeout=self.timeout)
        except grpc.RpcError as e:
            raise from_rpc(e) from None

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Waits until health() is SERVING; raises FreshvecError(DEADLINE_EXCEEDED) after
        `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.health() == "SERVING":
                    return
            except FreshvecError as e:
                if e.code != grpc.StatusCode.UNAVAILABLE:
                    raise
            if time.monotonic() > deadline:
                raise FreshvecError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                    f"the node was not ready within {timeout} s")
            time.sleep(0.05)

    def snapshot(self) -> int:
        """Writes a snapshot of every collection now; returns its log index."""
        r = self._call(self._cluster.TriggerSnapshot, pb.TriggerSnapshotRequest())
        return r.snapshot_index
