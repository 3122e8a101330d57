#!/usr/bin/env python3
"""Prints a Markdown table of a peers.py JSON and freshvec bench JSONs (one per posting
encoding) from the same run, with each system's QPS at recall 0.95 interpolated from its sweep
(None if never reached), freshvec's bytes read per query there as a fraction of an exact scan's,
and the ratios the quantized-postings figures ask for."""
import json
import sys


def at_recall(sweep, target=0.95, field="search_qps"):
    pts = sorted((p["recall_at_k"], p[field]) for p in sweep or [] if field in p)
    for (r0, q0), (r1, q1) in zip(pts, pts[1:]):
        if r0 < target <= r1:
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    if pts and pts[0][0] >= target:
        return pts[0][1] if field != "search_qps" else max(q for r, q in pts)
    return None


def main():
    peers = json.load(open(sys.argv[1]))
    ours = [json.load(open(p)) for p in sys.argv[2:]]
    rows = [(r["peer"], r) for r in peers["results"]]
    rows += [(f"freshvec {o['params'].get('encoding', '')}".strip(), o) for o in ours]
    print("| system | build_s | update_qps | search_qps | recall@10 | p50_ms | p99_ms | peak_rss_mb | qps@0.95 | bytes/query@0.95 vs exact |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    q95s = {}
    for name, r in rows:
        q95 = at_recall(r.get("sweep"))
        if name == "flat":
            q95 = r["search_qps"]
        q95s[name] = q95
        frac = at_recall(r.get("sweep"), field="bytes_vs_exact_scan")
        print(f"| {name} | {r['build_s']:.3g} | {r['update_qps']:,.0f} | {r['search_qps']:,.0f} | "
              f"{r['recall_at_k']:.3f} | {r['p50_ms']:.3g} | {r['p99_ms']:.3g} | {r['peak_rss_mb']:,.0f} | "
              f"{'-' if q95 is None else f'{q95:,.0f}'} | {'-' if frac is None else f'{frac:.4f}'} |")
    for o in ours:
        print(f"- freshvec {o['params'].get('encoding')}: peak RSS {o['peak_rss_mb']:.0f} MiB = "
              f"{o['peak_rss_vs_raw']:.2f}x the raw vectors ({o['raw_vectors_mb']:.0f} MiB); index memory "
              f"{o['stats']['memory_mb']:.0f} MiB (vectors {o['stats'].get('vector_mb', 0):.0f}, codes "
              f"{o['stats'].get('code_mb', 0):.0f})")
    coded, flat32 = q95s.get("freshvec int8"), q95s.get("freshvec f32")
    peers95 = [q for n, q in q95s.items() if not n.startswith("freshvec") and n != "flat" and q]
    if coded and flat32:
        print(f"- qps@0.95 int8 / f32: {coded / flat32:.2f}x")
    if coded and peers95:
        print(f"- qps@0.95 int8 / fastest peer reaching 0.95: {coded / max(peers95):.2f}x")
    for name, r in rows:
        if r.get("sweep"):
            key = "nprobe" if "nprobe" in r["sweep"][0] else "ef"
            pts = "; ".join(f"{key}={p[key]}: {p['recall_at_k']:.3f} @ {p['search_qps']:,.0f}" for p in r["sweep"])
            print(f"- {name}: {pts}")


if __name__ == "__main__":
    main()
