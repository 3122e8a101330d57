"""The freshvec package against a real server (address in FRESHVEC_SERVER, started by
crates/server/tests/python_client.rs; runnable with pytest or as a script). Seed printed."""
import asyncio
import inspect
import os
import sys

import grpc
import numpy as np

import freshvec
from freshvec import AsyncClient, AtLeast, Client

SEED = int(os.environ.get("FRESHVEC_TEST_SEED", "20240611"))
URL = os.environ.get("FRESHVEC_SERVER", "localhost:7867")
API_KEY = os.environ.get("FRESHVEC_API_KEY")


def client(**kw) -> Client:
    c = Client(URL, api_key=API_KEY, timeout=20, **kw)
    c.wait_ready(60)
    return c


def test_collections_round_trip():
    c = client()
    c.create_collection("py_colls", dimension=8, metric="dot", shards=2, encoding="f32")
    assert "py_colls" in c.list_collections()
    info = c.describe_collection("py_colls")
    assert (info.name, info.dimension, info.metric, info.shards, info.encoding) == \
        ("py_colls", 8, "dot", 2, "f32"), info
    try:
        c.create_collection("py_colls", dimension=8)
        raise AssertionError("a duplicate name was accepted")
    except freshvec.AlreadyExists as e:
        assert e.code == grpc.StatusCode.ALREADY_EXISTS and e.code_name == "ALREADY_EXISTS"
    c.drop_collection("py_colls")
    assert "py_colls" not in c.list_collections()
    try:
        c.describe_collection("py_colls")
        raise AssertionError("a dropped collection was described")
    except freshvec.NotFound as e:
        assert "py_colls" in e.message


def test_points_numpy_in_and_out():
    rng = np.random.default_rng(SEED)
    c = client()
    c.create_collection("py_points", dimension=16, metric="l2")
    vecs = rng.standard_normal((500, 16)).astype(np.float32)
    w = c.upsert("py_points", ids=np.arange(500), vectors=vecs)
    assert w.index > 0 and w.count == 500
    # Lists work too, and float64 is cast.
    c.upsert("py_points", ids=[1000], vectors=[vecs[3].astype(np.float64).tolist()])
    got = c.get("py_points", [3, 1000, 999_999], with_vectors=True)
    assert got.ids.tolist() == [3, 1000], got
    assert got.vectors.dtype == np.float32 and got.vectors.shape == (2, 16)
    assert np.array_equal(got.vectors[0], vecs[3]) and np.array_equal(got.vectors[1], vecs[3])
    r = c.search("py_points", vecs[42], k=5, exact=True)
    assert len(r) == 5 and r.ids[0] == 42 and r.distances[0] == 0.0, r
    assert r.ids.dtype == np.uint64 and r.distances.dtype == np.float32
    assert c.search("py_points", vecs[42], k=5, target_recall=0.99).ids[0] == 42
    hits = list(r)
    assert hits[0].id == 42 and isinstance(hits[0].distance, float)
    # The package's packed answer is the raw stubs' repeated one.
    from freshvec.v1 import freshvec_pb2 as pb, freshvec_pb2_grpc as rpc
    md = (("authorization", f"Bearer {API_KEY}"),) if API_KEY else None
    raw = rpc.PointsStub(c._channel).Search(pb.SearchRequest(
        collection="py_points", vector=vecs[9].tolist(), params=pb.SearchParameters(k=8)), metadata=md)
    mine = c.search("py_points", vecs[9], k=8)
    assert mine.ids.tolist() == [h.id for h in raw.hits], (mine, raw)
    assert mine.distances.tolist() == [h.distance for h in raw.hits], (mine, raw)
    batch = c.search_batch("py_points", vecs[:10], k=3, exact=True)
    assert [int(b.ids[0]) for b in batch] == list(range(10))
    # Exact distances match numpy's.
    want = np.sort(((vecs - vecs[7]) ** 2).sum(axis=1))[:3]
    got_d = c.search("py_points", vecs[7], k=3, exact=True).distances
    assert np.allclose(got_d, want, rtol=1e-4, atol=1e-4), (got_d, want)
    d = c.delete("py_points", [42, 1000])
    assert d.index > w.index
    assert c.get("py_points", [42, 1000]).ids.tolist() == []
    assert 42 not in c.search("py_points", vecs[42], k=5, exact=True).ids
    # Reads at a given index: the node has applied the delete.
    assert c.search("py_points", vecs[1], k=1, consistency=AtLeast(d.index)).applied_index >= d.index
    assert c.search("py_points", vecs[1], k=1, consistency="linearizable").ids[0] == 1
    assert c.describe_collection("py_points").vectors == 499


def test_errors_carry_code_and_message():
    c = client()
    c.create_collection("py_errs", dimension=4, metric="cosine")
    cases = [
        (lambda: c.search("py_errs", [1.0, 2.0], k=3), freshvec.InvalidArgument, "dimension 4"),
        (lambda: c.upsert("py_errs", [1], [[np.nan, 0, 0, 1]]), freshvec.InvalidArgument, "finite"),
        (lambda: c.upsert("py_errs", [1], [[0, 0, 0, 0]]), freshvec.InvalidArgument, ""),
        (lambda: c.upsert("py_errs", [1, 1], np.ones((2, 4))), freshvec.InvalidArgument, "duplicate"),
        (lambda: c.search("py_errs", [1, 0, 0, 0], k=0), freshvec.InvalidArgument, "k"),
        (lambda: c.search("py_errs", [1, 0, 0, 0], target_recall=2.0), freshvec.InvalidArgument, ""),
        (lambda: c.search("nope", [1, 0, 0, 0]), freshvec.NotFound, "nope"),
        (lambda: c.create_collection("bad name!", 4), freshvec.InvalidArgument, "name"),
    ]
    for call, kind, text in cases:
        try:
            call()
            raise AssertionError(f"accepted: expected {kind.__name__}")
        except kind as e:
            assert isinstance(e, freshvec.FreshvecError) and text in e.message, (e, text)
    try:
        c.scroll("py_errs")
        raise AssertionError("scroll did not refuse")
    except NotImplementedError as e:
        assert "payload" in str(e)


def test_upload_batches_in_parallel_with_progress():
    rng = np.random.default_rng(SEED + 1)
    c = client()
    c.create_collection("py_upload", dimension=32, metric="l2", shards=2)
    vecs = rng.standard_normal((25_000, 32)).astype(np.float32)
    seen = []
    w = c.upload("py_upload", vecs, batch_size=4_000, parallel=3,
                 progress=lambda done, total: seen.append((done, total)))
    assert w.count == 25_000 and seen[-1] == (25_000, 25_000) and len(seen) == 7, seen
    assert c.describe_collection("py_upload").vectors == 25_000
    r = c.search("py_upload", vecs[24_999], k=1, exact=True)
    assert r.ids[0] == 24_999


def test_read_your_writes_carries_the_last_index():
    c = client(read_your_writes=True)
    c.create_collection("py_ryw", dimension=4, metric="l2")
    w = c.upsert("py_ryw", [5], [[1, 2, 3, 4]])
    assert c.last_write_index == w.index
    r = c.search("py_ryw", [1, 2, 3, 4], k=1)
    assert r.applied_index >= w.index and r.ids[0] == 5


def test_status_and_health():
    c = client()
    s = c.status()
    assert s.role == "leader" and s.node_id == s.leader_id == 1, s
    assert s.applied_index >= 1 and s.voters == [1]
    assert c.health() == "SERVING" and c.health("liveness") == "SERVING"
    assert c.snapshot() >= 1


def test_async_client_matches_and_works():
    sync_api = {n for n, v in inspect.getmembers(Client) if not n.startswith("_") and callable(v)}
    async_api = {n for n, v in inspect.getmembers(AsyncClient) if not n.startswith("_") and callable(v)}
    assert sync_api == async_api, sync_api ^ async_api
    for name in sync_api:
        s, a = inspect.signature(getattr(Client, name)), inspect.signature(getattr(AsyncClient, name))
        assert list(s.parameters) == list(a.parameters), name
        assert inspect.iscoroutinefunction(getattr(AsyncClient, name)), name

    async def run():
        rng = np.random.default_rng(SEED + 2)
        async with AsyncClient(URL, api_key=API_KEY, timeout=20, read_your_writes=True) as c:
            await c.wait_ready(60)
            await c.create_collection("py_async", dimension=8, metric="l2")
            vecs = rng.standard_normal((3_000, 8)).astype(np.float32)
            w = await c.upload("py_async", vecs, batch_size=1_000, parallel=3)
            assert w.count == 3_000
            results = await asyncio.gather(*(c.search("py_async", vecs[i], k=1, exact=True)
                                             for i in range(20)))
            assert [int(r.ids[0]) for r in results] == list(range(20))
            got = await c.get("py_async", [7], with_vectors=True)
            assert np.array_equal(got.vectors[0], vecs[7])
            assert (await c.describe_collection("py_async")).vectors == 3_000
            try:
                await c.search("py_async", [1.0], k=1)
                raise AssertionError("a short query was accepted")
            except freshvec.InvalidArgument:
                pass
            assert (await c.status()).applied_index >= w.index
            await c.drop_collection("py_async")

    asyncio.run(run())


def run(namespace):
    print(f"seed {SEED}, server {URL}")
    for name, fn in sorted(namespace.items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print(f"ok {name}")


if __name__ == "__main__":
    run(dict(globals()))
    sys.exit(0)
