"""The asyncio client (grpc.aio): the methods of Client, as coroutines."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Optional, Sequence

import grpc
import grpc.aio

from . import _convert as cv
from . import types as t
from ._client import DEFAULT_URL, RETRYABLE
from .errors import FreshvecError, from_rpc
from .v1 import freshvec_pb2 as pb
from .v1 import freshvec_pb2_grpc as rpc


class AsyncClient:
    """Client's twin for asyncio: the same constructor and methods, each a coroutine. Create
    it inside a running event loop; `await client.close()` (or `async with`) when done."""

    def __init__(self, url: str = DEFAULT_URL, *, api_key: Optional[str] = None,
                 tls_ca: Any = None, timeout: Optional[float] = 10.0,
                 read_your_writes: bool = False,
                 grpc_options: Optional[Sequence[tuple[str, Any]]] = None) -> None:
        target, tls = cv.channel_target(url)
        creds = cv.credentials(tls, tls_ca)
        opts = cv.channel_options(grpc_options, timeout)
        self._channel = (grpc.aio.secure_channel(target, creds, options=opts) if creds
                         else grpc.aio.insecure_channel(target, options=opts))
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

    async def _call(self, method, request):
        try:
            return await method(request, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc(e) from None

    async def _write(self, method, request) -> int:
        index = (await self._call(method, request)).index
        self._session.wrote(index)
        return index

    @property
    def last_write_index(self) -> int:
        return self._session.last_write

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def create_collection(self, name: str, dimension: int, *, metric: str = "cosine",
                                shards: int = 1, encoding: Optional[str] = None,
                                posting_size: int = 0, split_limit: int = 0, merge_limit: int = 0,
                                replicas: int = 0) -> int:
        req = cv.create_request(name, dimension, metric, shards, encoding, posting_size,
                                split_limit, merge_limit, replicas)
        return await self._write(self._collections.Create, req)

    async def drop_collection(self, name: str) -> int:
        return await self._write(self._collections.Drop, pb.DropCollectionRequest(name=name))

    async def list_collections(self) -> list[str]:
        return list((await self._call(self._collections.List, pb.ListCollectionsRequest())).names)

    async def describe_collection(self, name: str) -> t.CollectionInfo:
        r = await self._call(self._collections.Describe, pb.DescribeCollectionRequest(name=name))
        return cv.collection_info(r)

    async def collection_exists(self, name: str) -> bool:
        return name in await self.list_collections()

    async def upsert(self, collection: str, ids: Any, vectors: Any,
                     payloads: Optional[Sequence[Optional[dict]]] = None) -> t.WriteResult:
        req, n = cv.upsert_request(collection, ids, vectors, payloads)
        return t.WriteResult(await self._write(self._points.Upsert, req), n)

    async def upload(self, collection: str, vectors: Any, ids: Any = None,
                     payloads: Optional[Sequence[Optional[dict]]] = None, *,
                     batch_size: Optional[int] = None, parallel: int = 2, progress: Any = False,
                     max_retries: int = 3) -> t.WriteResult:
        m, idarr, pls, size = cv.upload_plan(vectors, ids, payloads, batch_size)
        bar = cv.Progress(progress, m.shape[0])
        gate = asyncio.Semaphore(max(1, parallel))

        async def send(req, k: int) -> int:
            delay = 0.05
            for attempt in range(max_retries + 1):
                try:
                    index = await self._write(self._points.Upsert, req)
                    bar.add(k)
                    return index
                except FreshvecError as e:
                    if e.code not in RETRYABLE or attempt == max_retries:
                        raise
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 2.0)
            raise AssertionError("unreachable")

        async def one(start: int) -> int:
            async with gate:
                return max([await send(req, k) for req, k in
                            cv.upload_batch(collection, m, idarr, pls, start, size)])

        try:
            indexes = await asyncio.gather(*(one(s) for s in range(0, m.shape[0], size)))
        finally:
            bar.close()
        return t.WriteResult(max(indexes, default=0), m.shape[0])

    async def delete(self, collection: str, ids: Any = None, *, filter: t.FilterLike = None
                     ) -> t.WriteResult:
        req = cv.delete_request(collection, ids, filter)
        return t.WriteResult(await self._write(self._points.Delete, req), len(req.ids))

    async def get(self, collection: str, ids: Any, *, with_vectors: bool = False,
                  with_payload: t.WithPayload = False, consistency: t.Consistency = None
                  ) -> t.Points:
        req, wp = self._session.get_request(collection, ids, with_vectors, with_payload,
                                            consistency)
        return cv.points((await self._call(self._points.Get, req)).points, wp)

    async def search(self, collection: str, vector: Any, k: int = 10, *,
                     filter: t.FilterLike = None, with_payload: t.WithPayload = False,
                     with_vectors: bool = False, nprobe: int = 0, rerank: int = 0,
                     exact: bool = False, target_recall: float = 0.0,
                     consistency: t.Consistency = None) -> t.SearchResult:
        req = self._session.search_request(collection, vector, k, filter, with_payload,
                                           with_vectors, nprobe, rerank, exact, target_recall,
                                           consistency)
        return cv.search_result(await self._call(self._points.Search, req), bool(with_payload),
                                with_vectors)

    async def search_batch(self, collection: str, vectors: Any, k: int = 10, *,
                           filter: t.FilterLike = None, with_payload: t.WithPayload = False,
                           with_vectors: bool = False, nprobe: int = 0, rerank: int = 0,
                           exact: bool = False, target_recall: float = 0.0,
                           consistency: t.Consistency = None) -> list[t.SearchResult]:
        req = self._session.search_batch_request(collection, vectors, k, filter, with_payload,
                                                 with_vectors, nprobe, rerank, exact,
                                                 target_recall, consistency)
        r = await self._call(self._points.SearchBatch, req)
        return [cv.search_result(x, bool(with_payload), with_vectors) for x in r.results]

    async def scroll(self, collection: str, *, filter: t.FilterLike = None,
                     offset: Optional[int] = None, limit: int = 100,
                     with_payload: t.WithPayload = True, with_vectors: bool = False,
                     consistency: t.Consistency = None) -> t.Page:
        req, wp = self._session.scroll_request(collection, filter, offset, limit, with_payload,
                                               with_vectors, consistency)
        return cv.page(await self._call(self._points.Scroll, req), wp)

    async def count(self, collection: str, *, filter: t.FilterLike = None,
                    consistency: t.Consistency = None) -> int:
        req = self._session.count_request(collection, filter, consistency)
        return (await self._call(self._points.Count, req)).count

    async def set_payload(self, collection: str, payload: dict, *, ids: Any = None,
                          filter: t.FilterLike = None) -> t.WriteResult:
        req = cv.set_payload_request(collection, payload, ids, filter)
        return t.WriteResult(await self._write(self._points.SetPayload, req), len(req.ids))

    async def overwrite_payload(self, collection: str, payload: dict, *, ids: Any = None,
                                filter: t.FilterLike = None) -> t.WriteResult:
        req = cv.set_payload_request(collection, payload, ids, filter)
        return t.WriteResult(await self._write(self._points.OverwritePayload, req), len(req.ids))

    async def delete_payload_keys(self, collection: str, keys: Any, *, ids: Any = None,
                                  filter: t.FilterLike = None) -> t.WriteResult:
        req = cv.delete_payload_keys_request(collection, keys, ids, filter)
        return t.WriteResult(await self._write(self._points.DeletePayloadKeys, req),
                             len(req.ids))

    async def clear_payload(self, collection: str, *, ids: Any = None,
                            filter: t.FilterLike = None) -> t.WriteResult:
        req = cv.clear_payload_request(collection, ids, filter)
        return t.WriteResult(await self._write(self._points.ClearPayload, req), len(req.ids))

    async def create_field_index(self, collection: str, key: str, type: str) -> int:
        return await self._write(self._collections.CreateFieldIndex,
                                 cv.field_index_request(collection, key, type))

    async def drop_field_index(self, collection: str, key: str) -> int:
        req = pb.DropFieldIndexRequest(collection=collection, key=key)
        return await self._write(self._collections.DropFieldIndex, req)

    async def status(self) -> t.ClusterStatus:
        return cv.cluster_status(await self._call(self._cluster.Status, pb.StatusRequest()))

    async def health(self, service: str = "") -> str:
        try:
            return await self._health(service)
        except grpc.RpcError as e:
            raise from_rpc(e) from None

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if await self.health() == "SERVING":
                    return
            except FreshvecError as e:
                if e.code != grpc.StatusCode.UNAVAILABLE:
                    raise
            if time.monotonic() > deadline:
                raise FreshvecError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                    f"the node was not ready within {timeout} s")
            await asyncio.sleep(0.05)

    async def snapshot(self) -> int:
        r = await self._call(self._cluster.TriggerSnapshot, pb.TriggerSnapshotRequest())
        return r.snapshot_index
