#!/usr/bin/env python3
"""Draws recall/QPS curves from benchmark JSONs of one script run (peers.py, strong_peers.py
and freshvec bench files) as an SVG (no dependencies):
plot_sweep.py OUT.svg TITLE RESULT.json [RESULT.json...]"""
import math
import sys

from runs import systems

W, H, M = 760, 480, 60
COLORS = {"freshvec int8": "#d62728", "freshvec f32": "#ff9896", "freshvec": "#d62728", "faiss": "#1f77b4",
          "hnswlib": "#2ca02c", "lancedb": "#9467bd", "flat": "#7f7f7f", "qdrant": "#17becf",
          "qdrant_sq": "#0b5d66", "scann": "#ff7f0e", "usearch": "#bcbd22", "rabitq": "#8c564b",
          "rabitqfs": "#c49c94", "pqfs": "#e377c2", "hnswlib (strong)": "#98df8a"}


def main():
    out_path, title = sys.argv[1], sys.argv[2]
    series = [(n, r["sweep"]) for n, r in systems(sys.argv[3:]) if r.get("sweep")]
    pts = [(p["recall_at_k"], p["search_qps"]) for _, s in series for p in s]
    rmin = min(0.5, min(r for r, _ in pts))
    qmin, qmax = min(q for _, q in pts), max(q for _, q in pts)
    lq0, lq1 = math.log10(qmin) - 0.05, math.log10(qmax) + 0.05
    x = lambda r: M + (r - rmin) / (1.0 - rmin) * (W - 2 * M)
    y = lambda q: H - M - (math.log10(q) - lq0) / (lq1 - lq0) * (H - 2 * M)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<line x1="{M}" y1="{H-M}" x2="{W-M}" y2="{H-M}" stroke="black"/>',
           f'<line x1="{M}" y1="{M}" x2="{M}" y2="{H-M}" stroke="black"/>',
           f'<text x="{W/2}" y="{H-20}" text-anchor="middle">recall@10</text>',
           f'<text x="{W/2}" y="20" text-anchor="middle" font-weight="bold">{title}</text>',
           f'<text x="15" y="{H/2}" transform="rotate(-90 15 {H/2})" text-anchor="middle">queries/s (log)</text>',
           f'<line x1="{x(0.95)}" y1="{M}" x2="{x(0.95)}" y2="{H-M}" stroke="#bbb" stroke-dasharray="4"/>']
    for i in range(6):
        r = rmin + i * (1.0 - rmin) / 5
        out.append(f'<text x="{x(r)}" y="{H-M+16}" text-anchor="middle">{r:.2f}</text>')
    for e in range(int(math.floor(lq0)), int(math.ceil(lq1)) + 1):
        if lq0 <= e <= lq1:
            out.append(f'<text x="{M-6}" y="{y(10**e)+4}" text-anchor="end">{10**e:,}</text>')
    for k, (name, s) in enumerate(series):
        c = COLORS.get(name, "black")
        p = sorted((pt["recall_at_k"], pt["search_qps"]) for pt in s)
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (c, " ".join(f"{x(r):.1f},{y(q):.1f}" for r, q in p)))
        out += [f'<circle cx="{x(r):.1f}" cy="{y(q):.1f}" r="3" fill="{c}"/>' for r, q in p]
        out.append(f'<text x="{W-M-110}" y="{M+16*k}" fill="{c}">{name}</text>')
    out.append("</svg>")
    open(out_path, "w").write("\n".join(out))


if __name__ == "__main__":
    main()
