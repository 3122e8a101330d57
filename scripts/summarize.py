#!/usr/bin/env python3
"""Prints a Markdown table of benchmark JSONs from one script run (peers.py, strong_peers.py
and freshvec bench files, in any order): each system's QPS at recall 0.95 interpolated on its
sweep (None if never reached) and its ratio to freshvec, then freshvec's defaults, target
recalls and memory."""
import sys

from runs import at_recall, systems


def fmt(x, spec=",.0f"):
    return "-" if x is None else format(x, spec)


def main():
    rows = systems(sys.argv[1:])
    ours = [(n, r) for n, r in rows if n.startswith("freshvec")]
    print("| system | build_s | qps@0.95 | recall at its default | qps at its default | p99_ms at default |")
    print("|---|---|---|---|---|---|")
    q95s = {}
    for name, r in rows:
        q95 = r["search_qps"] if name == "flat" else at_recall(r.get("sweep"))
        q95s[name] = q95
        print(f"| {name} | {fmt(r.get('build_s'), '.3g')} | {fmt(q95)} | {fmt(r.get('recall_at_k'), '.3f')} | "
              f"{fmt(r.get('search_qps'))} | {fmt(r.get('p99_ms'), '.3g')} |")
    peers = {n: q for n, q in q95s.items() if not n.startswith("freshvec") and n != "flat" and q}
    for name, o in ours:
        q = q95s.get(name)
        if peers and q:
            best = max(peers, key=peers.get)
            print(f"- {name} qps@0.95 / best peer ({best}, {peers[best]:,.0f}): {q / peers[best]:.2f}x")
        if q and q95s.get("flat"):
            print(f"- {name} qps@0.95 / exact scan: {q / q95s['flat']:.2f}x")
        p = o["params"]
        print(f"- {name} default: nprobe {p.get('nprobe')} (calibrated: {p.get('nprobe_calibrated')}), recall "
              f"{o['recall_at_k']:.4f}, {o['search_qps']:,.0f} qps, p99 {o['p99_ms']:.3f} ms; simd {p.get('simd')}")
        c = o.get("calibration")
        if c:
            print(f"- {name} calibration: {c['queries']} queries in {c['seconds']:.1f} s, default nprobe "
                  f"{c['default_nprobe']}, estimated recall {c['default_recall_estimate']:.4f}")
        for t in o.get("targets", []):
            print(f"- {name} target {t['target_recall']:.2f}: recall {t['recall_at_k']:.4f} (estimated "
                  f"{t['estimated_recall']:.4f}, error {t['error']:+.4f}), nprobe {t['nprobe']}, "
                  f"{t['search_qps']:,.0f} qps")
        print(f"- {name}: update_qps {o['update_qps']:,.0f}; peak RSS {o['peak_rss_mb']:.0f} MiB = "
              f"{o['peak_rss_vs_raw']:.2f}x the raw vectors ({o['raw_vectors_mb']:.0f} MiB)")
        for u in o.get("concurrency", []):
            print(f"- {name} under updates at {u['fraction_of_max_update_rate']:.0%}: p99 {u['p99_ms']:.3f} ms "
                  f"= {u['p99_vs_idle']:.2f}x idle")
        if o.get("fresh"):
            f = o["fresh"]
            print(f"- {name} churn: recall {f['recall_after_updates']:.4f} after updates, {f['recall_at_k']:.4f} "
                  f"fresh build ({100 * f['delta']:+.2f} points)")
    for name, r in rows:
        if r.get("sweep"):
            key = next((k for k in ("nprobe", "ef", "leaves", "k_factor") if k in r["sweep"][0]), None)
            pts = "; ".join(f"{key}={p.get(key)}: {p['recall_at_k']:.3f} @ {p['search_qps']:,.0f}" for p in r["sweep"])
            print(f"- {name}: {pts}")


if __name__ == "__main__":
    main()
