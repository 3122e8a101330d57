"""A client that is not Rust: generates Python stubs from proto/ at test time and drives a
running freshvec server (address in FRESHVEC_SERVER) through create, upsert, search and status.
Exits non-zero, with the reason, on any mismatch. Run by crates/server/tests/python_client.rs."""
import os
import sys
import tempfile
import time

from grpc_tools import protoc
import grpc


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "proto")
    out = tempfile.mkdtemp(prefix="freshvec-stubs-")
    rc = protoc.main(["protoc", f"-I{root}", f"--python_out={out}", f"--grpc_python_out={out}",
                      os.path.join(root, "freshvec", "v1", "freshvec.proto")])
    if rc != 0:
        sys.exit(f"stub generation failed: {rc}")
    sys.path.insert(0, out)
    from freshvec.v1 import freshvec_pb2 as pb, freshvec_pb2_grpc as rpc

    channel = grpc.insecure_channel(os.environ["FRESHVEC_SERVER"])
    colls, points, cluster = rpc.CollectionsStub(channel), rpc.PointsStub(channel), rpc.ClusterStub(channel)
    # The server answers UNAVAILABLE until its data is loaded; wait for that, with a deadline.
    deadline = time.monotonic() + 30
    while True:
        try:
            colls.Create(pb.CreateCollectionRequest(name="py", dimension=3, metric=pb.METRIC_L2))
            break
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    batch = [pb.Point(id=i, vector=[float(i), 1.0, -float(i)]) for i in range(20)]
    w = points.Upsert(pb.UpsertRequest(collection="py", points=batch))
    # The log index of the write: after the cluster's first entries and the create.
    assert w.index > 0, w
    r = points.Search(pb.SearchRequest(collection="py", vector=[7.0, 1.0, -7.0],
                                       params=pb.SearchParameters(k=3, exact=True)))
    assert [h.id for h in r.hits][0] == 7 and r.hits[0].distance == 0.0, r
    try:
        points.Search(pb.SearchRequest(collection="py", vector=[1.0], params=pb.SearchParameters(k=3)))
        sys.exit("a short query was accepted")
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
    s = cluster.Status(pb.StatusRequest())
    assert [(c.name, c.vectors) for c in s.collections] == [("py", 20)], s
    print("python client ok")


if __name__ == "__main__":
    main()
