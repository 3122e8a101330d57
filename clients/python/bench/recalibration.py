"""The server's recall calibration after in-place updates: one TEXMEX base uploaded into a
fresh collection, its updates upserted at their ids in batches of 1,000, then the default depth,
its estimated recall and the curve's deepest point printed whenever they change, for a while.
A curve measured while the updates arrived must still reach about 1.0 at its deepest point.

    python clients/python/bench/recalibration.py --data DIR [--server localhost:7867]
        [--seconds 45]"""
import argparse
import time

import numpy as np

import freshvec


def vecs(path, dtype):
    raw = np.fromfile(path, dtype="<i4")
    d = raw[0]
    return raw.reshape(-1, d + 1)[:, 1:].copy().view(dtype)


def show(t, info):
    deepest = info.calibration[-1] if info.calibration else None
    print(f"{t:6.2f} s: default nprobe {info.default_nprobe} of {info.postings}, estimated recall "
          f"{info.estimated_recall:.4f}, deepest {deepest}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--server", default="localhost:7867")
    ap.add_argument("--seconds", type=float, default=45)
    a = ap.parse_args()
    base = vecs(f"{a.data}/base.fvecs", "<f4")
    updates = vecs(f"{a.data}/updates.fvecs", "<f4")
    ids = vecs(f"{a.data}/updates_ids.ivecs", "<i4")[:, 0].astype(np.uint64)
    c = freshvec.Client(a.server, timeout=120)
    c.wait_ready()
    name = f"recalibration_{time.time_ns()}"
    c.create_collection(name, base.shape[1], metric="l2")
    c.upload(name, base)
    while c.describe_collection(name).pending_jobs:
        time.sleep(0.05)
    show(0.0, c.describe_collection(name))
    t0 = time.perf_counter()
    for i in range(0, len(ids), 1000):
        c.upsert(name, ids[i:i + 1000], updates[i:i + 1000])
    print(f"{len(ids)} updates upserted in {time.perf_counter() - t0:.2f} s")
    last = None
    while time.perf_counter() - t0 < a.seconds:
        info = c.describe_collection(name)
        now = (info.default_nprobe, info.estimated_recall, tuple(info.calibration[-1:]))
        if now != last:
            show(time.perf_counter() - t0, info)
            last = now
        time.sleep(0.25)
    c.drop_collection(name)


if __name__ == "__main__":
    main()
