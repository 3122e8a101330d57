"""Ingest through the package into a running server: one TEXMEX base uploaded with
`Client.upload`, the acknowledged rate, and how long until rebalancing drained (the index
settled). A fresh collection each run.

    python clients/python/bench/ingest.py --data DIR [--server localhost:7867]
        [--parallel 2] [--batch N]"""
import argparse
import time

import numpy as np

import freshvec


def fvecs(path):
    raw = np.fromfile(path, dtype="<i4")
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy().view("<f4")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--server", default="localhost:7867")
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None)
    a = ap.parse_args()
    base = fvecs(f"{a.data}/base.fvecs")
    c = freshvec.Client(a.server, timeout=120)
    c.wait_ready()
    name = f"ingest_{time.time_ns()}"
    c.create_collection(name, base.shape[1], metric="l2")
    t = time.perf_counter()
    c.upload(name, base, parallel=a.parallel, batch_size=a.batch)
    acked = time.perf_counter() - t
    while c.describe_collection(name).pending_jobs:
        time.sleep(0.05)
    settled = time.perf_counter() - t
    info = c.describe_collection(name)
    print(f"{len(base)} vectors: {len(base) / acked:,.0f} vectors/s acknowledged ({acked:.2f} s), "
          f"settled after {settled:.2f} s; {info.postings} postings, {info.splits} splits, "
          f"{info.reassigned} reassigned")
    c.drop_collection(name)


if __name__ == "__main__":
    main()
