#!/usr/bin/env python3
"""Report of a scaling sweep: a Markdown table, an SVG plot, and an analytic model of the step.

    python3 cluster/report.py cluster/results/sweep.csv [--rate 1gbit] [--node-images-per-sec R]

Writes, beside the CSV: report.md (measured points with efficiency against one rank and the
model's prediction beside each, the fitted network parameters, projections to 16-256 nodes)
and scaling.svg (throughput and efficiency against ranks).

The model of one step on N ranks (ring all-reduce):
    t(N) = compute(batch per rank) + update + (1 - overlap) * [2(N-1)/N * bytes / bandwidth + 2(N-1) * latency]
bandwidth and latency are fitted (least squares) to the blocking all-reduce times measured
across emulated hosts; compute per image and overlap are measured.
"""
import argparse
import csv
import math
import os
from collections import defaultdict


def load(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("ranks", "hosts", "side", "global_batch", "bytes_per_step"):
            r[k] = int(r[k])
        for k in ("images_per_sec", "seconds_per_step", "compute_sec", "comm_wait_sec", "update_sec",
                  "blocking_allreduce_sec", "overlap"):
            r[k] = float(r[k])
    return rows


def ring(n, nbytes, bandwidth, latency):
    """Seconds of a ring all-reduce of nbytes over n ranks."""
    if n <= 1:
        return 0.0
    return 2 * (n - 1) / n * nbytes / bandwidth + 2 * (n - 1) * latency


def fit_network(rows):
    """Least-squares bandwidth (bytes/s) and latency (s) from emulated blocking all-reduces."""
    pts = [(2 * (r["ranks"] - 1) / r["ranks"] * r["bytes_per_step"], 2 * (r["ranks"] - 1), r["blocking_allreduce_sec"])
           for r in rows if r["placement"] == "emulated" and r["ranks"] > 1 and r["blocking_allreduce_sec"] > 0]
    if len(pts) < 2:
        return None
    sxx = sum(x * x for x, _, _ in pts); sxy = sum(x * y for x, y, _ in pts); syy = sum(y * y for _, y, _ in pts)
    sxt = sum(x * t for x, _, t in pts); syt = sum(y * t for _, y, t in pts)
    det = sxx * syy - sxy * sxy
    if det == 0:
        return None
    a = (sxt * syy - syt * sxy) / det
    b = (syt * sxx - sxt * sxy) / det
    if a <= 0:
        return None
    return 1 / a, max(b, 0.0)


def parse_rate(text):
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
    for unit, scale in units.items():
        if text.lower().endswith(unit):
            return float(text[: -len(unit)]) * scale / 8
    return float(text) / 8


def svg(rows, path):
    series = defaultdict(list)
    base = {(r["model"], r["scaling"]): r["images_per_sec"] for r in rows if r["ranks"] == 1 and r["placement"] == "local"}
    for r in rows:
        key = (r["model"], r["placement"], r["scaling"])
        b = base.get((r["model"], r["scaling"]))
        series[key].append((r["ranks"], r["images_per_sec"], r["images_per_sec"] / (r["ranks"] * b) if b else float("nan")))
    ranks = sorted({r["ranks"] for r in rows})
    w, h, left, top, pw, ph = 900, 420, 60, 40, 340, 300
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
           '<rect width="100%" height="100%" fill="white"/>']

    def panel(x0, title, index, ymax, log):
        def px(n):
            return x0 + pw * (math.log2(n) / max(math.log2(max(ranks)), 1))
        def py(v):
            if log:
                lo, hi = math.log10(ymin), math.log10(ymax)
                return top + ph * (1 - (math.log10(max(v, ymin)) - lo) / max(hi - lo, 1e-9))
            return top + ph * (1 - v / ymax)
        out.append(f'<text x="{x0 + pw / 2}" y="24" text-anchor="middle" font-size="13">{title}</text>')
        out.append(f'<rect x="{x0}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>')
        for n in ranks:
            out.append(f'<text x="{px(n)}" y="{top + ph + 16}" text-anchor="middle">{n}</text>')
        out.append(f'<text x="{x0 + pw / 2}" y="{top + ph + 32}" text-anchor="middle">ranks</text>')
        ticks = [ymin * (ymax / ymin) ** (i / 4) for i in range(5)] if log else [ymax * i / 4 for i in range(5)]
        for v in ticks:
            out.append(f'<text x="{x0 - 4}" y="{py(v) + 4}" text-anchor="end">{v:.3g}</text>')
        for i, (key, pts) in enumerate(sorted(series.items())):
            pts = sorted(p for p in pts if not math.isnan(p[index]))
            dash = "" if key[2] == "strong" else ' stroke-dasharray="5,3"'
            line = " ".join(f"{px(n):.1f},{py(p[index]):.1f}" for n, *rest in pts for p in [(n, *rest)])
            out.append(f'<polyline fill="none" stroke="{colors[i % len(colors)]}" stroke-width="2"{dash} points="{line}"/>')
        return px, py

    ymin = min(r["images_per_sec"] for r in rows) * 0.8
    panel(left, "throughput (images/s, log scale)", 1, max(r["images_per_sec"] for r in rows) * 1.2, True)
    ymin = 0.01
    panel(left + pw + 120, "efficiency against one rank", 2, 1.2, False)
    for i, key in enumerate(sorted(series)):
        y = 60 + 14 * i
        dash = "" if key[2] == "strong" else ' stroke-dasharray="5,3"'
        out.append(f'<line x1="{w - 160}" y1="{y}" x2="{w - 135}" y2="{y}" stroke="{colors[i % len(colors)]}" stroke-width="2"{dash}/>')
        out.append(f'<text x="{w - 130}" y="{y + 4}" font-size="10">{key[0]} {key[1]} {key[2]}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("csv")
    parser.add_argument("--rate", default="1gbit", help="the emulated links' rate, for reference (default 1gbit)")
    parser.add_argument("--node-images-per-sec", type=float, help="per-node speed for projections (default: measured on one rank)")
    args = parser.parse_args()
    rows = load(args.csv)
    folder = os.path.dirname(os.path.abspath(args.csv))
    fitted = fit_network(rows)
    bandwidth, latency = fitted if fitted else (parse_rate(args.rate), 50e-6)
    base = {(r["model"], r["scaling"]): r for r in rows if r["ranks"] == 1 and r["placement"] == "local"}
    overlap = defaultdict(float)
    for r in rows:
        if r["placement"] == "emulated":
            overlap[r["model"]] = max(overlap[r["model"]], r["overlap"])

    lines = ["# Scaling sweep", "", f"From `{os.path.basename(args.csv)}`. Efficiency = images/s ÷ (ranks × images/s of one rank).",
             "Predicted = measured compute + update + (1 − overlap) × ring all-reduce time of the fitted network.", "",
             "| model | placement | scaling | ranks | hosts | global batch | images/s | s/step | compute s | comm wait s | MB/step | efficiency | predicted s/step |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["model"], r["placement"] != "local", r["scaling"], r["ranks"])):
        b = base.get((r["model"], r["scaling"]))
        eff = r["images_per_sec"] / (r["ranks"] * b["images_per_sec"]) if b else float("nan")
        comm = ring(r["ranks"], r["bytes_per_step"], bandwidth, latency) if r["placement"] == "emulated" else r["blocking_allreduce_sec"]
        predicted = r["compute_sec"] + r["update_sec"] + (1 - overlap[r["model"]]) * comm
        lines.append(f"| {r['model']} | {r['placement']} | {r['scaling']} | {r['ranks']} | {r['hosts']} | {r['global_batch']} | "
                     f"{r['images_per_sec']:.1f} | {r['seconds_per_step']:.3f} | {r['compute_sec']:.3f} | {r['comm_wait_sec']:.3f} | "
                     f"{r['bytes_per_step'] / 1e6:.2f} | {eff:.2f} | {predicted:.3f} |")
    lines += ["", "## Network model", ""]
    if fitted:
        lines.append(f"Fitted to the emulated all-reduces: bandwidth {bandwidth * 8 / 1e9:.3f} Gbit/s, latency {latency * 1e6:.0f} µs per message "
                     f"(links shaped to {args.rate}; this kernel has no netem, so no latency was added and the fitted one is the stack's own).")
    else:
        lines.append(f"Too few emulated points to fit; using {args.rate} and 50 µs.")
    lines += ["", "## Projection (weak scaling, one rank per node)", "",
              "Each node computes at the one-rank rate measured here (or `--node-images-per-sec`) on the per-rank batch of the sweep;",
              "each link carries the share of its rate that the emulated links achieved.", "",
              "| model | link | nodes | step s | images/s | efficiency |", "|---|---|---:|---:|---:|---:|"]
    for model in sorted({r["model"] for r in rows}):
        one = base.get((model, "weak"))
        if not one:
            continue
        per_rank = one["global_batch"]
        rate = args.node_images_per_sec or one["images_per_sec"]
        compute = per_rank / rate
        nbytes = max(r["bytes_per_step"] for r in rows if r["model"] == model) or 0
        # The fitted bandwidth over the links' nominal rate: what TCP and MPI achieve of a link.
        achieved = min(bandwidth / parse_rate(args.rate), 1.0)
        for link in (1e9 / 8, 10e9 / 8):
            for nodes in (16, 32, 64, 128, 256):
                step = compute + (1 - overlap[model]) * ring(nodes, nbytes, link * achieved, latency)
                lines.append(f"| {model} | {link * 8 / 1e9:.0f} Gbit/s | {nodes} | {step:.3f} | {nodes * per_rank / step:.0f} | {compute / step:.2f} |")
    with open(os.path.join(folder, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    svg(rows, os.path.join(folder, "scaling.svg"))
    print(f"wrote {folder}/report.md and {folder}/scaling.svg")


if __name__ == "__main__":
    main()
