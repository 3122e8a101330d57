"""More queries for a generated TEXMEX folder: fresh draws from the same distribution as its
base, updates and queries, with their exact ground truth over the final state.

A shipped query set is one sample: its mean recall@10 differs from the distribution's by its own
sampling error (about 0.004 standard error at 1,000 queries and recall 0.95), and every run on
it repeats that offset. A larger second set tells a calibration's bias from the query set's
luck.

    python scripts/fresh_queries.py --from DATA/medium-clustered --out DATA/medium-fresh \
        --queries 4000

The preset, distribution and seed come from the folder's meta.json (as gen_dataset.py wrote
it); the generator is replayed to the end of its shipped queries and the new ones are drawn
after them, so they are distinct from the shipped set. The base and update files are linked,
not copied. Needs the shared bench folder (SHARED_BENCH, default ../shared/bench).
"""

import argparse
import importlib.util
import json
import os

import numpy as np


def generator():
    here = os.path.dirname(os.path.abspath(__file__))
    shared = os.environ.get("SHARED_BENCH", os.path.join(here, "..", "..", "shared", "bench"))
    spec = importlib.util.spec_from_file_location("gen_dataset", os.path.join(shared, "gen_dataset.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="src", required=True, help="a folder gen_dataset.py wrote")
    ap.add_argument("--out", required=True)
    ap.add_argument("--queries", type=int, default=4000)
    a = ap.parse_args()
    g = generator()
    with open(os.path.join(a.src, "meta.json")) as f:
        meta = json.load(f)
    rng = np.random.default_rng(meta["seed"])
    smp = g.Sampler(meta["dist"], meta["dim"], rng, meta.get("centers", 1000), meta.get("sigma", 1.0))
    # The generator's draws, in its order, up to the shipped queries.
    base = smp.draw(meta["base"])
    upd_ids = rng.choice(meta["base"], size=meta["updates"], replace=False).astype(np.int32)
    upd = smp.draw(meta["updates"])
    smp.draw(meta["queries"])
    fresh = smp.draw(a.queries)
    final = base.copy()
    final[upd_ids] = upd
    gt = g.exact_topk(final, fresh, meta["k"])
    os.makedirs(a.out, exist_ok=True)
    for name in ("base.fvecs", "updates.fvecs", "updates_ids.ivecs"):
        link = os.path.join(a.out, name)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(a.src, name)), link)
    g.write_vecs(os.path.join(a.out, "queries.fvecs"), fresh)
    g.write_vecs(os.path.join(a.out, "groundtruth.ivecs"), gt)
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(dict(meta, queries=a.queries, fresh_queries_after=meta["queries"]), f, indent=1)
    print(json.dumps(dict(meta, queries=a.queries)))


if __name__ == "__main__":
    main()
