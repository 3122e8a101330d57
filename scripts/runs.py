"""Reads the three kinds of benchmark JSON into one list of systems: a peers.py file
({"results": [{peer, sweep, ...}]}), a strong_peers.py file ({"results": {peer: {build_s,
sweep}}}) and a freshvec bench file ({"system": "freshvec", ...})."""
import json


def systems(paths):
    """[(name, record)] where record has at least "sweep" (list of {recall_at_k, search_qps})."""
    out = []
    for path in paths:
        d = json.load(open(path))
        if d.get("system") == "freshvec":
            out.append((f"freshvec {d['params'].get('encoding', '')}".strip(), d))
        elif isinstance(d.get("results"), list):
            out += [(r["peer"], r) for r in d["results"]]
        elif isinstance(d.get("results"), dict):
            out += [(f"{name} (strong)" if name == "hnswlib" else name, r)
                    for name, r in d["results"].items()]
        else:
            raise SystemExit(f"{path}: not a peers, strong peers or freshvec result")
    return out


def at_recall(sweep, target=0.95, field="search_qps"):
    """The field at recall `target`, interpolated on the sweep (None if never reached)."""
    pts = sorted((p["recall_at_k"], p[field]) for p in sweep or [] if field in p)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 < target <= r1:
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    if pts and pts[0][0] >= target:
        return pts[0][1] if field != "search_qps" else max(q for r, q in pts)
    return None
