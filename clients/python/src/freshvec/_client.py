"""The synchronous client."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence

import grpc
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
        opts = cv.channel_options(grpc_options, timeout)
        self._channel = (grpc.secure_channel(target, creds, options=opts) if creds
                         else grpc.insecure_channel(target, options=opts))
        self._collections = rpc.CollectionsStub(self._channel)
        self._points = rpc.PointsStub(self._channel)
        self._cluster = rpc.ClusterStub(self._channel)
        self._health = self._channel.unary_unary(
            cv.HEALTH_CHECK, request_serializer=cv.health_request,
            response_deserializer=cv.health_response)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None
        self._timeout = timeout
        self._session = cv.Session(read_your_writes)

    @property
    def timeout(self) -> Optional[float]:
        """The deadline of every call, in seconds (None: none), fixed when the client is made."""
        return self._timeout

    # --- plumbing -----------------------------------------------------------------------

    def _call(self, method, request):
        try:
            return method(request, metadata=self._metadata)
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

    def upsert(self, collection: str, ids: Any, vectors: Any,
               payloads: Optional[Sequence[Optional[dict]]] = None) -> t.WriteResult:
        """Inserts or replaces up to 10,000 points in one request: `ids` (uint64, distinct),
        `vectors` ((n, dimension) array or nested lists) and optionally one payload (a dict,
        or None for empty) per point. An upsert replaces a point's payload whole."""
        req, n = cv.upsert_request(collection, ids, vectors, payloads)
        return t.WriteResult(self._write(self._points.Upsert, req), n)

    def upload(self, collection: str, vectors: Any, ids: Any = None,
               payloads: Optional[Sequence[Optional[dict]]] = None, *,
               batch_size: Optional[int] = None, parallel: int = 2, progress: Any = False,
               max_retries: int = 3) -> t.WriteResult:
        """Upserts any number of vectors (and payloads) in batches, `parallel` requests in
        flight (threads over one channel). `ids` default to 0..n-1. A batch refused with
        UNAVAILABLE or RESOURCE_EXHAUSTED is retried with backoff (writes are idempotent).
        `progress`: True (tqdm if installed), a callable(done, total), or a tqdm-like object.
        Returns the highest log index and the count."""
        m, idarr, pls, size = cv.upload_plan(vectors, ids, payloads, batch_size)
        bar = cv.Progress(progress, m.shape[0])

        def send(req, k: int) -> int:
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

        def one(start: int) -> int:
            return max(send(req, k) for req, k in
                       cv.upload_batch(collection, m, idarr, pls, start, size))

        try:
            starts = range(0, m.shape[0], size)
            if parallel <= 1:
                indexes = [one(s) for s in starts]
            else:
                with ThreadPoolExecutor(max_workers=parallel) as pool:
                    indexes = list(pool.map(one, starts))
        finally:
            bar.close()
        return t.WriteResult(max(indexes, default=0), m.shape[0])

    def delete(self, collection: str, ids: Any = None, *, filter: t.FilterLike = None
               ) -> t.WriteResult:
        """Deletes up to 10,000 ids (unknown ids are ignored), or the points matching
        `filter` when the write applies (exactly one of the two). `count` is the ids given
        (0 with a filter)."""
        req = cv.delete_request(collection, ids, filter)
        return t.WriteResult(self._write(self._points.Delete, req), len(req.ids))

    def get(self, collection: str, ids: Any, *, with_vectors: bool = False,
            with_payload: t.WithPayload = False, consistency: t.Consistency = None) -> t.Points:
        """The points with these ids (up to 10,000), in request order; ids not found are
        absent."""
        req, wp = self._session.get_request(collection, ids, with_vectors, with_payload,
                                            consistency)
        return cv.points(self._call(self._points.Get, req).points, wp)

    def search(self, collection: str, vector: Any, k: int = 10, *,
               filter: t.FilterLike = None, with_payload: t.WithPayload = False,
               with_vectors: bool = False, nprobe: int = 0, rerank: int = 0,
               exact: bool = False, target_recall: float = 0.0,
               consistency: t.Consistency = None) -> t.SearchResult:
        """The k nearest points to `vector`, nearest first; with `filter`, only matching
        points, min(k, matches) of them (`plan` says how the search ran)."""
        req = self._session.search_request(collection, vector, k, filter, with_payload,
                                           with_vectors, nprobe, rerank, exact, target_recall,
                                           consistency)
        return cv.search_result(self._call(self._points.Search, req), bool(with_payload),
                                with_vectors)

    def search_batch(self, collection: str, vectors: Any, k: int = 10, *,
                     filter: t.FilterLike = None, with_payload: t.WithPayload = False,
                     with_vectors: bool = False, nprobe: int = 0, rerank: int = 0,
                     exact: bool = False, target_recall: float = 0.0,
                     consistency: t.Consistency = None) -> list[t.SearchResult]:
        """Up to 1,024 queries (an (n, dimension) array) in one request, with one filter and
        the same parameters; results in query order."""
        req = self._session.search_batch_request(collection, vectors, k, filter, with_payload,
                                                 with_vectors, nprobe, rerank, exact,
                                                 target_recall, consistency)
        return [cv.search_result(r, bool(with_payload), with_vectors)
                for r in self._call(self._points.SearchBatch, req).results]

    def scroll(self, collection: str, *, filter: t.FilterLike = None,
               offset: Optional[int] = None, limit: int = 100,
               with_payload: t.WithPayload = True, with_vectors: bool = False,
               consistency: t.Consistency = None) -> t.Page:
        """One page of points in id order from `offset` (inclusive; None starts at the
        smallest id), at most `limit` (1..=10,000), only those matching `filter` when given.
        Pass the page's `next_page_offset` as `offset` for the next; None means the last."""
        req, wp = self._session.scroll_request(collection, filter, offset, limit, with_payload,
                                               with_vectors, consistency)
        return cv.page(self._call(self._points.Scroll, req), wp)

    def count(self, collection: str, *, filter: t.FilterLike = None,
              consistency: t.Consistency = None) -> int:
        """The exact number of points (matching `filter` when given)."""
        req = self._session.count_request(collection, filter, consistency)
        return self._call(self._points.Count, req).count

    def set_payload(self, collection: str, payload: dict, *, ids: Any = None,
                    filter: t.FilterLike = None) -> t.WriteResult:
        """Merges `payload`'s keys into the payloads of the points given by `ids` (each must
        exist, else NotFound and nothing changes) or by `filter` (those matching when the
        write applies)."""
        req = cv.set_payload_request(collection, payload, ids, filter)
        return t.WriteResult(self._write(self._points.SetPayload, req), len(req.ids))

    def overwrite_payload(self, collection: str, payload: dict, *, ids: Any = None,
                          filter: t.FilterLike = None) -> t.WriteResult:
        """Replaces the payloads of the points given (as set_payload) with `payload`, whole."""
        req = cv.set_payload_request(collection, payload, ids, filter)
        return t.WriteResult(self._write(self._points.OverwritePayload, req), len(req.ids))

    def delete_payload_keys(self, collection: str, keys: Any, *, ids: Any = None,
                            filter: t.FilterLike = None) -> t.WriteResult:
        """Removes keys (top-level, or dotted paths into nested objects) from the points
        given."""
        req = cv.delete_payload_keys_request(collection, keys, ids, filter)
        return t.WriteResult(self._write(self._points.DeletePayloadKeys, req), len(req.ids))

    def clear_payload(self, collection: str, *, ids: Any = None, filter: t.FilterLike = None
                      ) -> t.WriteResult:
        """Empties the payloads of the points given."""
        req = cv.clear_payload_request(collection, ids, filter)
        return t.WriteResult(self._write(self._points.ClearPayload, req), len(req.ids))

    def create_field_index(self, collection: str, key: str, type: str) -> int:
        """Indexes a payload key path for filters: "keyword", "integer", "float", "bool" or
        "datetime" (see the proto's FieldType); returns the log index."""
        return self._write(self._collections.CreateFieldIndex,
                           cv.field_index_request(collection, key, type))

    def drop_field_index(self, collection: str, key: str) -> int:
        req = pb.DropFieldIndexRequest(collection=collection, key=key)
        return self._write(self._collections.DropFieldIndex, req)

    # --- cluster ------------------------------------------------------------------------

    def status(self) -> t.ClusterStatus:
        return cv.cluster_status(self._call(self._cluster.Status, pb.StatusRequest()))

    def health(self, service: str = "") -> str:
        """The gRPC health status: "SERVING" once the node caught up (service "" or
        "readiness"), "NOT_SERVING" before; "liveness" is SERVING while the process answers."""
        try:
            return self._health(service)
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
