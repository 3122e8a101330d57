"""The JSON gateway against gRPC, on one server (FRESHVEC_SERVER: gRPC, FRESHVEC_HTTP: the
gateway, FRESHVEC_METRICS: /metrics, FRESHVEC_API_KEY; started by crates/server/tests/rest.rs
with --max-concurrent-requests 4). Every RPC is called over both; each REST answer must be
valid proto3 JSON (parsed by protobuf's own json_format) equal to the gRPC answer, and every
bad-input sample must get the same code over both, with the HTTP status mapped from it."""
import base64
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
from google.protobuf import json_format

from freshvec.v1 import freshvec_pb2 as pb
from freshvec.v1 import freshvec_pb2_grpc as rpc

SEED = 20240613
KEY = os.environ["FRESHVEC_API_KEY"]
HTTP = os.environ["FRESHVEC_HTTP"]
MD = (("authorization", f"Bearer {KEY}"),)
HTTP_OF = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "UNAUTHENTICATED": 401,
           "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429,
           "DEADLINE_EXCEEDED": 504, "UNAVAILABLE": 503, "UNIMPLEMENTED": 501}


def rest(method, path, body=None, key=KEY, headers=None, raw=None):
    """(HTTP status, decoded JSON) of one call."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(f"http://{HTTP}{path}", data=data, method=method)
    req.add_header("content-type", "application/json")
    if key:
        req.add_header("authorization", f"Bearer {key}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def grpc_code(fn, *args, **kw):
    try:
        fn(*args, metadata=MD, **kw)
        return "OK"
    except grpc.RpcError as e:
        return e.code().name


def same(rest_answer, message_type, grpc_answer, what):
    status, body = rest_answer
    assert status == 200, (what, status, body)
    parsed = json_format.ParseDict(body, message_type())
    assert parsed == grpc_answer, (what, parsed, grpc_answer)


def main():
    ch = grpc.insecure_channel(os.environ["FRESHVEC_SERVER"])
    colls, points, cluster = rpc.CollectionsStub(ch), rpc.PointsStub(ch), rpc.ClusterStub(ch)
    deadline = time.monotonic() + 60
    while rest("GET", "/v1/health", key=None)[0] != 200:
        assert time.monotonic() < deadline, "never ready"
        time.sleep(0.05)
    assert rest("GET", "/v1/health/liveness", key=None) == (200, {"status": "SERVING"})
    rng = np.random.default_rng(SEED)
    print(f"seed {SEED}")

    # Create over REST, then the same shape over gRPC; both described alike.
    st, body = rest("POST", "/v1/collections",
                    {"name": "r", "dimension": 4, "metric": "METRIC_L2", "shards": 2})
    assert st == 200 and int(body["index"]) > 0, body
    colls.Create(pb.CreateCollectionRequest(name="g", dimension=4, metric=pb.METRIC_L2, shards=2),
                 metadata=MD)
    assert rest("GET", "/v1/collections")[1] == {"names": ["g", "r"]}
    vecs = rng.standard_normal((50, 4)).astype(np.float32)
    # Upsert: points with float vectors over REST, columnar bytes over REST; the same over gRPC.
    pts = [{"id": str(i), "vector": vecs[i].tolist()} for i in range(25)]
    assert rest("POST", "/v1/collections/r/points", {"points": pts})[0] == 200
    cols = {"ids": list(range(25, 50)), "vectorsF32": base64.b64encode(vecs[25:].tobytes()).decode()}
    st, w = rest("PUT", "/v1/collections/r/points", cols)
    assert st == 200, w
    points.Upsert(pb.UpsertRequest(collection="g", ids=range(50), vectors_f32=vecs.tobytes()),
                  metadata=MD)
    for name in ["r", "g"]:
        assert colls.Describe(pb.DescribeCollectionRequest(name=name), metadata=MD).vectors == 50
    # Reads: the REST answer equals gRPC's for the same request, on the same data.
    q = vecs[7].tolist()
    req = pb.SearchRequest(collection="r", vector=q, params=pb.SearchParameters(k=5, exact=True))
    same(rest("POST", "/v1/collections/r/search", {"vector": q, "params": {"k": 5, "exact": True}}),
         pb.SearchResponse, points.Search(req, metadata=MD), "Search")
    qb = base64.b64encode(vecs[7].tobytes()).decode()
    same(rest("POST", "/v1/collections/r/search", {"vectorF32": qb, "params": {"k": 5, "exact": True}}),
         pb.SearchResponse, points.Search(req, metadata=MD), "Search (bytes)")
    breq = pb.SearchBatchRequest(collection="r", queries=[pb.Query(vector=v.tolist()) for v in vecs[:3]],
                                 params=pb.SearchParameters(k=2, exact=True))
    same(rest("POST", "/v1/collections/r/search/batch", json_format.MessageToDict(breq)),
         pb.SearchBatchResponse, points.SearchBatch(breq, metadata=MD), "SearchBatch")
    greq = pb.GetRequest(collection="r", ids=[3, 4, 99], with_vectors=True)
    same(rest("POST", "/v1/collections/r/points/get", {"ids": [3, 4, 99], "withVectors": True}),
         pb.GetResponse, points.Get(greq, metadata=MD), "Get")
    same(rest("POST", "/v1/collections/r/points/get", {"ids": ["3"], "withVectors": True, "vectorsF32": True}),
         pb.GetResponse, points.Get(pb.GetRequest(collection="r", ids=[3], with_vectors=True,
                                                  vectors_f32=True), metadata=MD), "Get (bytes)")
    same(rest("GET", "/v1/collections/r"), pb.DescribeCollectionResponse,
         colls.Describe(pb.DescribeCollectionRequest(name="r"), metadata=MD), "Describe")
    same(rest("GET", "/v1/cluster/status"), pb.StatusResponse,
         cluster.Status(pb.StatusRequest(), metadata=MD), "Status")
    st, snap = rest("POST", "/v1/cluster/snapshot")
    assert st == 200 and int(snap["snapshotIndex"]) > 0, snap
    st, purged = rest("POST", "/v1/cluster/purge", {"upto": "1"})
    assert st == 200, purged
    st, d = rest("POST", "/v1/collections/r/points/delete", {"ids": [7]})
    assert st == 200 and int(d["index"]) > int(w["index"]), d
    assert rest("POST", "/v1/collections/r/points/get", {"ids": [7]})[1] == {}

    # Payloads, field indexes, filters, scroll and count: each write over REST on "r" and as
    # gRPC on "g", the reads compared REST against gRPC, and r's payloads against g's.
    tag = lambda i: {"tag": {"stringValue": f"t{i % 3}"}, "n": {"integerValue": str(i)}}
    for i in range(0, 50, 5):
        assert rest("POST", "/v1/collections/r/points/payload", {"ids": [i], "payload": tag(i)})[0] == 200
        points.SetPayload(json_format.ParseDict({"collection": "g", "ids": [i], "payload": tag(i)},
                                                pb.SetPayloadRequest()), metadata=MD)
    writes = [
        ("/v1/collections/r/index", "CreateFieldIndex", pb.CreateFieldIndexRequest,
         {"key": "tag", "type": "FIELD_TYPE_KEYWORD"}, colls.CreateFieldIndex),
        ("/v1/collections/r/points/payload", "OverwritePayload", pb.SetPayloadRequest,
         {"ids": [10], "payload": {"only": {"boolValue": True}}}, None),
        ("/v1/collections/r/points/payload/delete", "DeletePayloadKeys", pb.DeletePayloadKeysRequest,
         {"keys": ["n"], "filter": {"must": [{"field": {"key": "tag", "match": {"keyword": "t1"}}}]}},
         points.DeletePayloadKeys),
        ("/v1/collections/r/points/payload/clear", "ClearPayload", pb.ClearPayloadRequest,
         {"ids": [15]}, points.ClearPayload),
    ]
    for path, what, msg, body, grpc_call in writes:
        method = "PUT" if what == "OverwritePayload" else "POST"
        st, out = rest(method, path, body)
        assert st == 200 and int(out["index"]) > 0, (what, st, out)
        g = json_format.ParseDict({"collection": "g", **body}, msg())
        (grpc_call or points.OverwritePayload)(g, metadata=MD)
    filt = {"must": [{"field": {"key": "tag", "match": {"keywords": {"strings": ["t0", "t1"]}}}}]}
    scroll = {"filter": filt, "limit": 4, "withPayload": {"enable": True}}
    for name in ["r", "g"]:
        req = json_format.ParseDict({"collection": name, **scroll}, pb.ScrollRequest())
        same(rest("POST", f"/v1/collections/{name}/points/scroll", scroll), pb.ScrollResponse,
             points.Scroll(req, metadata=MD), f"Scroll {name}")
        creq = json_format.ParseDict({"collection": name, "filter": filt}, pb.CountRequest())
        same(rest("POST", f"/v1/collections/{name}/points/count", {"filter": filt}),
             pb.CountResponse, points.Count(creq, metadata=MD), f"Count {name}")
    every = lambda name: points.Scroll(pb.ScrollRequest(collection=name, limit=100,
                                                        with_payload=pb.WithPayload(enable=True)),
                                       metadata=MD).points
    # (id 7 was deleted from r alone)
    assert list(every("r")) == [p for p in every("g") if p.id != 7] and len(every("r")) == 49
    assert points.Count(pb.CountRequest(collection="r", filter=json_format.ParseDict(filt, pb.Filter())),
                        metadata=MD).count == 5
    fs = {"vector": q, "params": {"k": 3}, "filter": filt, "withPayload": {"enable": True}}
    freq = json_format.ParseDict({"collection": "r", **fs}, pb.SearchRequest())
    same(rest("POST", "/v1/collections/r/search", fs), pb.SearchResponse,
         points.Search(freq, metadata=MD), "Search (filtered)")
    st, out = rest("POST", "/v1/collections/r/index/delete", {"key": "tag"})
    assert st == 200, out
    colls.DropFieldIndex(pb.DropFieldIndexRequest(collection="g", key="tag"), metadata=MD)
    assert not colls.Describe(pb.DescribeCollectionRequest(name="r"), metadata=MD).field_indexes
    st, out = rest("POST", "/v1/collections/r/points/delete", {"filter": filt})
    assert st == 200, out
    assert points.Count(pb.CountRequest(collection="r"), metadata=MD).count == 44

    # Bad input: the same code over both protocols, the HTTP status mapped from it.
    short = {"vector": [1.0], "params": {"k": 3}}
    both = {"vector": [1, 2, 3, 4], "vectorF32": qb, "params": {"k": 3}}
    samples = [
        ("short query vector", lambda: rest("POST", "/v1/collections/r/search", short),
         lambda: grpc_code(points.Search, pb.SearchRequest(collection="r", vector=[1.0],
                                                           params=pb.SearchParameters(k=3)))),
        ("both vector forms", lambda: rest("POST", "/v1/collections/r/search", both),
         lambda: grpc_code(points.Search, pb.SearchRequest(collection="r", vector=[1, 2, 3, 4],
                                                           vector_f32=vecs[0].tobytes(),
                                                           params=pb.SearchParameters(k=3)))),
        ("k = 0", lambda: rest("POST", "/v1/collections/r/search", {"vector": q}),
         lambda: grpc_code(points.Search, pb.SearchRequest(collection="r", vector=q))),
        ("NaN component", lambda: rest("POST", "/v1/collections/r/points",
                                       {"points": [{"id": 1, "vector": [1, "NaN", 0, 0]}]}),
         lambda: grpc_code(points.Upsert, pb.UpsertRequest(
             collection="r", points=[pb.Point(id=1, vector=[1, float("nan"), 0, 0])]))),
        ("vectors_f32 of 10 bytes", lambda: rest("POST", "/v1/collections/r/points",
                                                 {"ids": [1], "vectorsF32": base64.b64encode(b"x" * 10).decode()}),
         lambda: grpc_code(points.Upsert, pb.UpsertRequest(collection="r", ids=[1], vectors_f32=b"x" * 10))),
        ("payload key with a dot", lambda: rest("POST", "/v1/collections/r/points/payload",
                                                {"ids": [1], "payload": {"a.b": {"integerValue": "1"}}}),
         lambda: grpc_code(points.SetPayload, pb.SetPayloadRequest(
             collection="r", ids=[1], payload={"a.b": pb.Value(integer_value=1)}))),
        ("set payload on a missing id", lambda: rest("POST", "/v1/collections/r/points/payload",
                                                     {"ids": [12345], "payload": {"a": {"boolValue": True}}}),
         lambda: grpc_code(points.SetPayload, pb.SetPayloadRequest(
             collection="r", ids=[12345], payload={"a": pb.Value(bool_value=True)}))),
        ("range without bounds", lambda: rest("POST", "/v1/collections/r/points/count",
                                              {"filter": {"must": [{"field": {"key": "n", "range": {}}}]}}),
         lambda: grpc_code(points.Count, pb.CountRequest(collection="r", filter=pb.Filter(
             must=[pb.Condition(field=pb.FieldCondition(key="n", range=pb.Range()))])))),
        ("unknown collection", lambda: rest("GET", "/v1/collections/nope"),
         lambda: grpc_code(colls.Describe, pb.DescribeCollectionRequest(name="nope"))),
        ("duplicate name", lambda: rest("POST", "/v1/collections", {"name": "r", "dimension": 4, "metric": 1}),
         lambda: grpc_code(colls.Create, pb.CreateCollectionRequest(name="r", dimension=4, metric=1))),
        ("remove a non-member", lambda: rest("DELETE", "/v1/cluster/nodes/9"),
         lambda: grpc_code(cluster.RemoveNode, pb.RemoveNodeRequest(node_id=9))),
        ("add node without address", lambda: rest("POST", "/v1/cluster/nodes", {"nodeId": 4}),
         lambda: grpc_code(cluster.AddNode, pb.AddNodeRequest(node_id=4))),
        ("deadline while waiting for index 10^12",
         lambda: rest("POST", "/v1/collections/r/search",
                      {"vector": q, "params": {"k": 1, "consistency": "CONSISTENCY_MIN_APPLIED_INDEX",
                                               "minAppliedIndex": "1000000000000"}},
                      headers={"grpc-timeout": "300m"}),
         lambda: grpc_code(points.Search, pb.SearchRequest(
             collection="r", vector=q, params=pb.SearchParameters(
                 k=1, consistency=pb.CONSISTENCY_MIN_APPLIED_INDEX, min_applied_index=10**12)),
             timeout=0.3)),
        ("no API key", lambda: rest("GET", "/v1/collections", key=None),
         lambda: (lambda: colls.List(pb.ListCollectionsRequest()))),
    ]
    print(f"{'bad input':<40} {'gRPC':<20} {'REST':<24}")
    for what, over_rest, over_grpc in samples:
        st, body = over_rest()
        g = over_grpc()
        if callable(g):  # the no-key sample calls without metadata
            try:
                g()
                g = "OK"
            except grpc.RpcError as e:
                g = e.code().name
        print(f"{what:<40} {g:<20} {st} {body.get('code')}")
        assert body.get("code") == g and st == HTTP_OF[g], (what, g, st, body)
        assert body.get("message"), (what, body)
    # What only JSON can get wrong: not JSON, unknown fields, a body naming another collection.
    for what, args in [("not JSON", dict(raw=b"{nope")),
                       ("unknown field", dict(body={"vectr": [1, 2, 3, 4]})),
                       ("collection differs from the path", dict(body={"collection": "g", "vector": q,
                                                                       "params": {"k": 1}}))]:
        st, body = rest("POST", "/v1/collections/r/search", **args)
        print(f"{what:<40} {'-':<20} {st} {body.get('code')}")
        assert st == 400 and body["code"] == "INVALID_ARGUMENT", (what, st, body)
    assert rest("GET", "/v1/nothing-here")[0] == 404

    # The message limit (16 MiB) holds for the decoded request: RESOURCE_EXHAUSTED over both.
    big = np.ones((4_200, 1_000), dtype=np.float32).tobytes()  # 16.8 MB
    g = grpc_code(points.Upsert, pb.UpsertRequest(collection="r", ids=range(4_200), vectors_f32=big))
    st, body = rest("POST", "/v1/collections/r/points",
                    {"ids": list(range(4_200)), "vectorsF32": base64.b64encode(big).decode()})
    print(f"{'a 16.8 MB upsert':<40} {g:<20} {st} {body.get('code')}")
    assert g == body["code"] == "RESOURCE_EXHAUSTED" and st == 429, (g, st, body)

    # One admission pool: four gRPC calls waiting hold every permit; a REST call is refused
    # at once, health still answers, and once they finish REST is served again.
    waiting = pb.SearchRequest(collection="r", vector=q, params=pb.SearchParameters(
        k=1, consistency=pb.CONSISTENCY_MIN_APPLIED_INDEX, min_applied_index=10**12))
    futures = [points.Search.future(waiting, metadata=MD, timeout=3) for _ in range(4)]
    time.sleep(0.5)
    st, body = rest("GET", "/v1/collections")
    assert st == 429 and body["code"] == "RESOURCE_EXHAUSTED", (st, body)
    assert rest("GET", "/v1/health", key=None)[0] == 200
    for f in futures:
        assert f.exception().code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert rest("GET", "/v1/collections")[0] == 200
    print("admission: REST refused with 429 while gRPC calls held every permit")

    # REST calls are counted under their RPC's name.
    text = urllib.request.urlopen(f"http://{os.environ['FRESHVEC_METRICS']}/metrics").read().decode()
    line = 'freshvec_requests_total{method="freshvec.v1.Cluster/TriggerSnapshot",code="0"} 1'
    assert line in text, text[:2000]

    st, body = rest("DELETE", "/v1/collections/r")
    assert st == 200 and "r" not in rest("GET", "/v1/collections")[1].get("names", []), body
    print("rest gateway ok")


if __name__ == "__main__":
    main()
    sys.exit(0)
