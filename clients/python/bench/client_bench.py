"""Python client throughput against a running server, in one run: upload (vectors/s through
`Client.upload`), then single-thread search QPS through the package (vectors as f32 bytes,
numpy results) against the raw generated stubs with `repeated float` (the query as a list,
hits as tuples), in alternating rounds on the same collection and queries.

    python clients/python/bench/client_bench.py --data DIR [--server localhost:7867]
        [--seconds 3] [--rounds 3] [--parallel 2] [--json OUT]

DIR is a TEXMEX folder (base.fvecs, queries.fvecs, groundtruth.ivecs) as written by the
shared dataset generator."""
import argparse
import json
import os
import statistics
import time

import grpc
import numpy as np

import freshvec
from freshvec.v1 import freshvec_pb2 as pb
from freshvec.v1 import freshvec_pb2_grpc as rpc


def fvecs(path):
    raw = np.fromfile(path, dtype="<i4")
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy().view("<f4")


def ivecs(path):
    raw = np.fromfile(path, dtype="<i4")
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--server", default="localhost:7867")
    ap.add_argument("--collection", default="pybench")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--json")
    a = ap.parse_args()
    base = fvecs(os.path.join(a.data, "base.fvecs"))
    queries = fvecs(os.path.join(a.data, "queries.fvecs"))
    gt = ivecs(os.path.join(a.data, "groundtruth.ivecs"))[:, : a.k]
    n, d = base.shape
    c = freshvec.Client(a.server, timeout=60)
    c.wait_ready()
    if c.collection_exists(a.collection):
        c.drop_collection(a.collection)
    shards = a.shards
    c.create_collection(a.collection, dimension=d, metric="l2", shards=shards)
    t, c0 = time.perf_counter(), time.process_time()
    w = c.upload(a.collection, base, batch_size=a.batch, parallel=a.parallel)
    upload_s = time.perf_counter() - t
    upload_cpu = time.process_time() - c0
    upload_vps = n / upload_s
    print(f"upload: {n} vectors of dimension {d} in {upload_s:.2f} s = {upload_vps:,.0f} vectors/s "
          f"(parallel {a.parallel}, last index {w.index}); the client's own CPU {upload_cpu:.2f} s, "
          f"i.e. it could feed {n / upload_cpu:,.0f} vectors/s")
    # The updates too, so that the ground truth (over the final vectors) applies.
    upd = fvecs(os.path.join(a.data, "updates.fvecs"))
    upd_ids = ivecs(os.path.join(a.data, "updates_ids.ivecs")).reshape(-1).astype(np.uint64)
    t = time.perf_counter()
    c.upload(a.collection, upd, ids=upd_ids, batch_size=a.batch, parallel=a.parallel)
    print(f"updates: {len(upd)} upserts in {time.perf_counter() - t:.2f} s")
    # Searches start once background rebalancing drained and every shard calibrated (or 60 s).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = c.describe_collection(a.collection)
        if info.pending_jobs == 0 and info.calibrated_shards == shards:
            break
        time.sleep(0.2)
    print(f"index: {info.vectors} vectors, {info.postings} postings, calibrated shards "
          f"{info.calibrated_shards}/{shards}, default nprobe {info.default_nprobe}")

    # Both paths on one channel each, same queries, alternating rounds.
    stub = rpc.PointsStub(grpc.insecure_channel(a.server))
    params = pb.SearchParameters(k=a.k)

    def package_round():
        done, hits = 0, []
        end = time.perf_counter() + a.seconds
        while time.perf_counter() < end:
            q = queries[done % len(queries)]
            r = c.search(a.collection, q, k=a.k)
            if done < len(queries):
                hits.append(r.ids)
            done += 1
        return done, hits

    def raw_round():
        done, hits = 0, []
        end = time.perf_counter() + a.seconds
        while time.perf_counter() < end:
            q = queries[done % len(queries)]
            r = stub.Search(pb.SearchRequest(collection=a.collection, vector=q.tolist(), params=params))
            res = [(h.id, h.distance) for h in r.hits]
            if done < len(queries):
                hits.append([i for i, _ in res])
            done += 1
        return done, hits

    def recall(hits):
        # Against the dataset's ground truth (computed over the final vectors: base plus
        # updates, of which only the base is loaded here, so this is below the index's own).
        m = min(len(hits), len(gt))
        found = sum(len(set(map(int, hits[i])) & set(gt[i].tolist())) for i in range(m))
        return found / (m * a.k)

    def interleaved(seconds):
        """Call by call, package then raw stubs, so both see the same machine: the QPS of
        each is its calls over the time its own calls took; also each one's median latency."""
        names = ["package (f32 bytes)", "raw stubs (repeated float)"]
        lat = {n: [] for n in names}
        end = time.perf_counter() + seconds
        i = 0
        while time.perf_counter() < end:
            q = queries[i % len(queries)]
            # Which goes first alternates, so neither always follows the other.
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):
                t0 = time.perf_counter()
                if which == 0:
                    c.search(a.collection, q, k=a.k)
                else:
                    r = stub.Search(pb.SearchRequest(collection=a.collection, vector=q.tolist(),
                                                     params=params))
                    [(h.id, h.distance) for h in r.hits]
                lat[names[which]].append(time.perf_counter() - t0)
            i += 1
        return {k: (len(v) / sum(v), statistics.median(v) * 1e6) for k, v in lat.items()}

    package_round()  # warm-up (connections, caches)
    rows = {"package (f32 bytes)": [], "raw stubs (repeated float)": []}
    cpu = {name: [] for name in rows}
    recalls = {}
    for _ in range(a.rounds):
        for name, fn in [("package (f32 bytes)", package_round), ("raw stubs (repeated float)", raw_round)]:
            c0 = time.process_time()
            done, hits = fn()
            # The client process's CPU per query (all its threads, gRPC's included): what the
            # client costs, apart from the server and the machine's other load.
            cpu[name].append((time.process_time() - c0) / done * 1e6)
            rows[name].append(done / a.seconds)
            recalls[name] = recall(hits)
    print(f"\nsingle-thread search, k={a.k}, {a.rounds} rounds of {a.seconds:.0f} s each, alternating")
    print(f"| path | QPS (median) | rounds | client CPU us/query (median) | recall@{a.k} |")
    print("|---|---|---|---|---|")
    for name, qps in rows.items():
        print(f"| {name} | {statistics.median(qps):,.0f} | {', '.join(f'{x:,.0f}' for x in qps)} | "
              f"{statistics.median(cpu[name]):.0f} | {recalls[name]:.4f} |")
    # The part of a query each path controls, without the RPC: building and encoding the
    # request, decoding the answer into its result (timed in-process, many repetitions).
    from freshvec import _convert as cv
    q = queries[0]
    packed_resp = stub.Search(pb.SearchRequest(collection=a.collection, vector_f32=q.tobytes(),
                                               params=params, packed_hits=True)).SerializeToString()
    plain_resp = stub.Search(pb.SearchRequest(collection=a.collection, vector=q.tolist(),
                                              params=params)).SerializeToString()
    session = cv.Session(False)

    def package_codec():
        pb.SearchRequest(collection=a.collection, vector_f32=cv.vector_bytes(q), packed_hits=True,
                         params=session.search_params(a.k, 0, 0, False, 0.0, None)).SerializeToString()
        cv.search_result(pb.SearchResponse.FromString(packed_resp))

    def raw_codec():
        pb.SearchRequest(collection=a.collection, vector=q.tolist(), params=params).SerializeToString()
        [(h.id, h.distance) for h in pb.SearchResponse.FromString(plain_resp).hits]

    codec = {}
    for name, fn in [("package (f32 bytes)", package_codec), ("raw stubs (repeated float)", raw_codec)]:
        reps = 20_000
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        codec[name] = (time.perf_counter() - t0) / reps * 1e6
    print(f"\nper query without the RPC (encode request + decode answer), dimension {d}:")
    for name, us in codec.items():
        print(f"| {name} | {us:.1f} us |")
    inter = interleaved(a.seconds * a.rounds)
    print(f"\ninterleaved call by call for {a.seconds * a.rounds:.0f} s (the fairer comparison on a "
          "shared machine):")
    print("| path | QPS | p50 latency us |\n|---|---|---|")
    for name, (qps, p50) in inter.items():
        print(f"| {name} | {qps:,.0f} | {p50:.0f} |")
    ipk, iraw = (x[0] for x in inter.values())
    print(f"interleaved package / raw stubs: {ipk / iraw:.2f}x")
    pk, raw = (statistics.median(v) for v in rows.values())
    print("both paths return the same hits" if recalls["package (f32 bytes)"] == recalls["raw stubs (repeated float)"]
          else "the two paths' hits differ")
    print(f"\npackage / raw stubs: {pk / raw:.2f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"upload_vectors_per_s": upload_vps, "upload_client_cpu_s": upload_cpu,
                       "n": n, "dim": d,
                       "search_qps_package": pk, "search_qps_raw_stubs": raw,
                       "rounds": rows, "client_cpu_us": cpu, "codec_us": codec,
                       "interleaved": inter,
                       "recall": recalls}, f, indent=2)
    c.drop_collection(a.collection)


if __name__ == "__main__":
    main()
