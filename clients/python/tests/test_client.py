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
    # Ids past 2^63 in a plain list stay exact.
    big = [2**64 - 1, 2**63 + 1, 5_000]
    c.upsert("py_points", big, vecs[:3])
    assert c.get("py_points", big).ids.tolist() == big
    c.delete("py_points", big[:2])
    d = c.delete("py_points", [42, 1000])
    assert d.index > w.index
    assert c.get("py_points", [42, 1000]).ids.tolist() == []
    assert 42 not in c.search("py_points", vecs[42], k=5, exact=True).ids
    # Reads at a given index: the node has applied the delete.
    assert c.search("py_points", vecs[1], k=1, consistency=AtLeast(d.index)).applied_index >= d.index
    assert c.search("py_points", vecs[1], k=1, consistency="linearizable").ids[0] == 1
    assert c.describe_collection("py_points").vectors == 500


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
    # Payload and filter errors: the server's (nothing is written), or the client's own
    # before anything is sent (a value that is no payload value, an ill-formed filter).
    c.upsert("py_errs", [1], [[1, 0, 0, 0]], payloads=[{"a": 1}])
    server_side = [
        (lambda: c.upsert("py_errs", [2], [[1, 0, 0, 0]], payloads=[{"a.b": 1}]), "a.b"),
        (lambda: c.upsert("py_errs", [2], [[1, 0, 0, 0]], payloads=[{"x": float("nan")}]), "finite"),
        (lambda: c.upsert("py_errs", [2], [[1, 0, 0, 0]], payloads=[{"s": "x" * 70_000}]), "65536"),
        (lambda: c.set_payload("py_errs", {"b": 2}, ids=[1, 77]), "77"),
        (lambda: c.search("py_errs", [1, 0, 0, 0], filter={"must": [{"key": "a", "range": {}}]}), "range"),
        (lambda: c.create_field_index("py_errs", "", "keyword"), "key"),
    ]
    for call, text in server_side:
        try:
            call()
            raise AssertionError(f"accepted: expected InvalidArgument or NotFound ({text})")
        except (freshvec.InvalidArgument, freshvec.NotFound) as e:
            assert text in e.message, (e, text)
    assert c.count("py_errs") == 1 and c.get("py_errs", [1], with_payload=True).payloads == [{"a": 1}]
    client_side = [
        (lambda: c.upsert("py_errs", [2], [[1, 0, 0, 0]], payloads=[{"x": object()}]), TypeError),
        (lambda: c.upsert("py_errs", [2], [[1, 0, 0, 0]], payloads=[{}, {}]), ValueError),
        (lambda: c.search("py_errs", [1, 0, 0, 0], filter={"mustt": []}), ValueError),
        (lambda: c.search("py_errs", [1, 0, 0, 0], filter={"must": [{"key": "a", "match": 1.5}]}), TypeError),
        (lambda: c.delete("py_errs"), ValueError),
        (lambda: c.delete("py_errs", [1], filter={}), ValueError),
        (lambda: c.create_field_index("py_errs", "a", "text"), ValueError),
    ]
    for call, kind in client_side:
        try:
            call()
            raise AssertionError(f"accepted: expected {kind.__name__}")
        except kind:
            pass
    assert c.count("py_errs") == 1


def test_payloads_filters_scroll_and_count():
    rng = np.random.default_rng(SEED + 3)
    c = client()
    c.create_collection("py_pay", dimension=16, metric="l2", shards=2)
    n = 3_000
    vecs = rng.standard_normal((n, 16)).astype(np.float32)
    tags = rng.integers(0, 10, n)
    years = rng.integers(2000, 2025, n)
    payloads = [{"tag": f"t{tags[i]}", "year": int(years[i]), "score": float(i) / 7,
                 "meta": {"lang": ["en", "de"][i % 2], "flags": [i % 3 == 0, None]}}
                for i in range(n)]
    payloads[5] = None  # an empty payload
    w = c.upload("py_pay", vecs, payloads=payloads, batch_size=700)
    assert w.count == n
    c.create_field_index("py_pay", "tag", "keyword")
    c.create_field_index("py_pay", "year", "integer")
    info = c.describe_collection("py_pay")
    assert [(f.key, f.type) for f in info.field_indexes] == [("tag", "keyword"), ("year", "integer")]
    assert info.field_indexes[0].points == n - 1 and info.payload_memory_bytes > 0, info

    # Payloads come back as written, ints as int and floats as float.
    got = c.get("py_pay", [3, 5, 10], with_payload=True, with_vectors=True)
    assert got.payloads == [payloads[3], {}, payloads[10]], got.payloads
    assert isinstance(got.payloads[0]["year"], int) and isinstance(got.payloads[0]["score"], float)
    assert np.array_equal(got.vectors[2], vecs[10])
    assert c.get("py_pay", [3], with_payload=["tag"]).payloads == [{"tag": payloads[3]["tag"]}]
    assert c.get("py_pay", [3], with_payload={"exclude": ["meta", "score"]}).payloads == \
        [{"tag": payloads[3]["tag"], "year": payloads[3]["year"]}]
    assert c.get("py_pay", [3]).payloads is None

    def matches(i, f):
        return payloads[i] is not None and f(payloads[i])

    cases = [
        ({"must": [{"key": "tag", "match": {"value": "t3"}}]}, lambda p: p["tag"] == "t3"),
        ({"must": [{"key": "tag", "match": "t3"}, {"key": "year", "range": {"gte": 2010, "lt": 2012}}]},
         lambda p: p["tag"] == "t3" and 2010 <= p["year"] < 2012),
        ({"must": [{"key": "meta.lang", "match": {"any": ["de"]}}],
          "must_not": [{"key": "year", "match": {"any": [2001, 2002, 2003]}}]},
         lambda p: p["meta"]["lang"] == "de" and p["year"] not in (2001, 2002, 2003)),
        ({"should": [{"key": "score", "range": {"lt": 10}}, {"has_id": [2_999]}]},
         lambda p: p["score"] < 10 or p is payloads[2_999]),
        ({"must": [{"key": "meta.flags", "match": True}]}, lambda p: p["meta"]["flags"][0]),
        ({"must": [{"is_empty": {"key": "tag"}}]}, lambda p: False),
    ]
    for f, pred in cases:
        want = {i for i in range(n) if matches(i, pred)}
        if f == cases[5][0]:
            want = {5}
        assert c.count("py_pay", filter=f) == len(want), f
        q = vecs[int(rng.integers(n))]
        r = c.search("py_pay", q, k=10, filter=f, with_payload=True)
        assert len(r) == min(10, len(want)), (f, len(r), len(want))
        assert set(r.ids.tolist()) <= want, f
        assert r.plan is not None and r.plan.matched == len(want), (f, r.plan)
        assert all(r.payloads[j] == (payloads[i] or {}) for j, i in enumerate(r.ids.tolist()))
        exact = c.search("py_pay", q, k=10, filter=f, exact=True)
        brute = sorted(want, key=lambda i: float(((vecs[i] - q) ** 2).sum()))[:10]
        assert exact.ids.tolist() == brute, (f, exact.ids, brute)
        # Scroll pages through exactly the matches, in id order.
        seen, offset = [], None
        while True:
            page = c.scroll("py_pay", filter=f, offset=offset, limit=97, with_payload=False)
            seen += page.points.ids.tolist()
            if page.next_page_offset is None:
                break
            offset = page.next_page_offset
        assert seen == sorted(want), f
    batch = c.search_batch("py_pay", vecs[:4], k=3, filter=cases[0][0], with_vectors=True)
    assert all(len(b) == 3 and b.vectors.shape == (3, 16) for b in batch)

    # Payload writes, by ids and by filter.
    c.set_payload("py_pay", {"tag": "new", "extra": [1, 2.5, "x"]}, ids=[0, 1])
    assert c.get("py_pay", [0], with_payload=True).payloads[0]["extra"] == [1, 2.5, "x"]
    assert c.count("py_pay", filter={"must": [{"key": "tag", "match": "new"}]}) == 2
    c.overwrite_payload("py_pay", {"only": True}, ids=[1])
    assert c.get("py_pay", [1], with_payload=True).payloads == [{"only": True}]
    c.delete_payload_keys("py_pay", ["meta.lang", "score"], filter={"must": [{"key": "tag", "match": "t4"}]})
    t4 = c.scroll("py_pay", filter={"must": [{"key": "tag", "match": "t4"}]}, limit=10_000).points
    assert len(t4) and all("score" not in p and "lang" not in p["meta"] for p in t4.payloads)
    c.clear_payload("py_pay", ids=[2])
    assert c.get("py_pay", [2], with_payload=True).payloads == [{}]
    before = c.count("py_pay")
    in_2020 = c.count("py_pay", filter={"must": [{"key": "year", "match": 2020}]})
    d = c.delete("py_pay", filter={"must": [{"key": "year", "match": 2020}]})
    assert d.index > 0 and c.count("py_pay") == before - in_2020 and in_2020 > 0
    c.drop_field_index("py_pay", "year")
    assert [f.key for f in c.describe_collection("py_pay").field_indexes] == ["tag"]
    # Filters work without an index too (evaluated from the payloads; ids 1 and 2 lost theirs).
    assert c.count("py_pay", filter={"must": [{"key": "year", "match": 2021}]}) == \
        sum(1 for i in range(n) if i not in (1, 2) and payloads[i] and payloads[i]["year"] == 2021)
    c.delete("py_pay", filter={})
    assert c.count("py_pay") == 0


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


def test_the_timeout_bounds_every_call():
    rng = np.random.default_rng(SEED + 3)
    c = client()
    c.create_collection("py_deadline", dimension=64, metric="l2")
    c.upload("py_deadline", rng.standard_normal((2_000, 64)).astype(np.float32))
    queries = rng.standard_normal((1_024, 64)).astype(np.float32)
    assert len(c.search_batch("py_deadline", queries, k=64, exact=True)) == 1_024
    # The deadline is the channel's (in whole milliseconds, so 0.2 ms becomes 1 ms): an
    # exact search of 1,024 queries returning 65,536 hits (the most one
    # request may ask for) cannot finish within it.
    for timeout in (0.001, 0.0002):
        hurried = Client(URL, api_key=API_KEY, timeout=timeout)
        assert hurried.timeout == timeout
        try:
            hurried.search_batch("py_deadline", queries, k=64, exact=True)
            raise AssertionError(f"a {timeout} s timeout did not bound the call")
        except freshvec.DeadlineExceeded as e:
            assert e.code == grpc.StatusCode.DEADLINE_EXCEEDED
        hurried.close()
    try:
        c.timeout = 5
        raise AssertionError("the timeout was changed after the channel was made")
    except AttributeError:
        pass
    try:
        Client(URL, timeout=0)
        raise AssertionError("a zero timeout was accepted")
    except ValueError:
        pass
    c.drop_collection("py_deadline")


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
            await c.set_payload("py_async", {"k": "v"}, ids=[1, 2])
            await c.create_field_index("py_async", "k", "keyword")
            f = {"must": [{"key": "k", "match": "v"}]}
            assert await c.count("py_async", filter=f) == 2
            r = await c.search("py_async", vecs[0], k=5, filter=f, with_payload=True)
            assert sorted(r.ids.tolist()) == [1, 2] and r.payloads == [{"k": "v"}] * 2
            page = await c.scroll("py_async", filter=f)
            assert page.points.ids.tolist() == [1, 2] and page.next_page_offset is None
            await c.delete_payload_keys("py_async", "k", ids=[1])
            await c.overwrite_payload("py_async", {"k": "v", "z": 1}, ids=[3])
            await c.clear_payload("py_async", ids=[2])
            assert (await c.get("py_async", [1, 2, 3], with_payload=True)).payloads == \
                [{}, {}, {"k": "v", "z": 1}]
            await c.delete("py_async", filter=f)
            assert await c.count("py_async") == 2_999
            await c.drop_field_index("py_async", "k")
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
