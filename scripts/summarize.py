#!/usr/bin/env python3
"""Prints a Markdown table of a peers.py JSON and a freshvec bench JSON from the same run,
plus each system's QPS at recall 0.95 interpolated from its sweep (None if never reached)."""
import json
import sys


def at_recall(sweep, target=0.95):
    pts = sorted((p["recall_at_k"], p["search_qps"]) for p in sweep or [])
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 < target <= r1:
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    if pts and pts[0][0] >= target:
        return max(q for r, q in pts)
    return None


def main():
    peers = json.load(open(sys.argv[1]))
    ours = json.load(open(sys.argv[2]))
    rows = [(r["peer"], r) for r in peers["results"]] + [("freshvec", ours)]
    print("| system | build_s | update_qps | search_qps | recall@10 | p50_ms | p99_ms | peak_rss_mb | qps@0.95 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in rows:
        q95 = at_recall(r.get("sweep"))
        if name == "flat":
            q95 = r["search_qps"]
        print(f"| {name} | {r['build_s']:.3g} | {r['update_qps']:,.0f} | {r['search_qps']:,.0f} | "
              f"{r['recall_at_k']:.3f} | {r['p50_ms']:.3g} | {r['p99_ms']:.3g} | {r['peak_rss_mb']:,.0f} | "
              f"{'-' if q95 is None else f'{q95:,.0f}'} |")
    for name, r in rows:
        if r.get("sweep"):
            key = "nprobe" if "nprobe" in r["sweep"][0] else "ef"
            pts = "; ".join(f"{key}={p[key]}: {p['recall_at_k']:.3f} @ {p['search_qps']:,.0f}" for p in r["sweep"])
            print(f"- {name}: {pts}")


if __name__ == "__main__":
    main()
