#!/usr/bin/env python3
"""Report of a scaling sweep: a Markdown table, an SVG plot, and an analytic model of the step.

    python3 cluster/report.py cluster/results/sweep.csv [--node-images-per-sec R]

Writes, beside the CSV: report.md (measured points with efficiency against one rank, the
measured overlap and communication share, and the model's prediction beside each; the
fitted network and overlap parameters; projections to 16-256 nodes) and scaling.svg
(throughput and efficiency against ranks).

The model of one step on N ranks (ring all-reduce):
    comm(N) = 2(N-1)/N * bytes / bandwidth + 2(N-1) * latency
    t(N)    = compute + update + max(0, comm(N) - h * compute)
Bandwidth and latency are fitted (least squares) to the blocking all-reduce times measured
across the emulated hosts, per link rate. h, the share of forward+backward behind which the
bucketed all-reduce can run, is fitted per model to the measured waits (least squares over
every multi-rank point): the all-reduce hides completely while it is shorter than h·compute
and shows beyond that, so the overlap falls as links slow or nodes are added.
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
        r.setdefault("link", "-")
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


def exposed(comm, compute, h):
    """Seconds of an all-reduce of `comm` seconds left after hiding behind h·compute."""
    return max(0.0, comm - h * compute)


def fit_overlap(rows):
    """h in [0, 1] minimizing the squared error of the predicted waits, and the points used."""
    pts = [(r["blocking_allreduce_sec"], r["compute_sec"], r["comm_wait_sec"])
           for r in rows if r["ranks"] > 1 and r["blocking_allreduce_sec"] > 0]
    if not pts:
        return 0.0, 0
    grid = [i / 1000 for i in range(1001)]
    h = min(grid, key=lambda h: sum((wait - exposed(comm, compute, h)) ** 2 for comm, compute, wait in pts))
    return h, len(pts)


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
        key = (r["model"], r["placement"] + ("" if r["link"] == "-" else " " + r["link"]), r["scaling"])
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
    parser.add_argument("--node-images-per-sec", type=float, help="per-node speed for projections (default: measured on one rank)")
    args = parser.parse_args()
    rows = load(args.csv)
    folder = os.path.dirname(os.path.abspath(args.csv))
    links = sorted({r["link"] for r in rows if r["placement"] == "emulated"}, key=parse_rate)
    networks = {}
    for link in links:
        fitted = fit_network([r for r in rows if r["link"] == link])
        networks[link] = (fitted or (parse_rate(link), 50e-6), fitted is not None)
    models = sorted({r["model"] for r in rows})
    overlap = {m: fit_overlap([r for r in rows if r["model"] == m]) for m in models}
    base = {(r["model"], r["scaling"]): r for r in rows if r["ranks"] == 1 and r["placement"] == "local"}

    def communication(r):
        if r["placement"] != "emulated":
            return r["blocking_allreduce_sec"]
        (bandwidth, latency), _ = networks[r["link"]]
        return ring(r["ranks"], r["bytes_per_step"], bandwidth, latency)

    lines = ["# Scaling sweep", "",
             f"From `{os.path.basename(args.csv)}`. Efficiency = images/s ÷ (ranks × images/s of one rank). "
             "Overlap = the share of a blocking all-reduce's time hidden behind backward (measured); "
             "comm share = waiting for the all-reduce ÷ the step.",
             "Predicted = measured compute + update + max(0, all-reduce time of the fitted network − h × compute).", "",
             "| model | placement | link | scaling | ranks | hosts | global batch | images/s | s/step | compute s | comm wait s | "
             "blocking all-reduce s | overlap | comm share | MB/step | efficiency | predicted s/step |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["model"], r["placement"] != "local", parse_rate(r["link"]) if r["link"] != "-" else 0,
                                         r["scaling"], r["ranks"])):
        b = base.get((r["model"], r["scaling"]))
        eff = r["images_per_sec"] / (r["ranks"] * b["images_per_sec"]) if b else float("nan")
        predicted = r["compute_sec"] + r["update_sec"] + exposed(communication(r), r["compute_sec"], overlap[r["model"]][0])
        share = r["comm_wait_sec"] / r["seconds_per_step"] if r["seconds_per_step"] > 0 else 0.0
        lines.append(f"| {r['model']} | {r['placement']} | {r['link']} | {r['scaling']} | {r['ranks']} | {r['hosts']} | {r['global_batch']} | "
                     f"{r['images_per_sec']:.1f} | {r['seconds_per_step']:.3f} | {r['compute_sec']:.3f} | {r['comm_wait_sec']:.3f} | "
                     f"{r['blocking_allreduce_sec']:.3f} | {r['overlap'] * 100:.0f}% | {share * 100:.1f}% | "
                     f"{r['bytes_per_step'] / 1e6:.2f} | {eff:.2f} | {predicted:.3f} |")
    lines += ["", "## Network model", ""]
    for link in links:
        (bandwidth, latency), fitted = networks[link]
        lines.append(f"- {link} links: " + (f"fitted bandwidth {bandwidth * 8 / 1e9:.3f} Gbit/s, latency {latency * 1e6:.0f} µs per message"
                                             if fitted else "too few points to fit; nominal rate and 50 µs"))
    if not links:
        lines.append("No emulated points: the projection uses the nominal link rates and 50 µs.")
    lines += ["", "## Overlap model", "",
              "h = the share of forward+backward that the all-reduce can hide behind, fitted to the measured waits:", ""]
    for m in models:
        h, n = overlap[m]
        lines.append(f"- {m}: h = {h:.3f} ({n} multi-rank points)")
    lines += ["", "## Projection (weak scaling, one rank per node)", "",
              "Each node computes at the one-rank rate measured here (or `--node-images-per-sec`) on the per-rank batch of the sweep;",
              "each link carries the share of its rate that the emulated links of that rate achieved (all of it if none was measured).", "",
              "| model | link | nodes | step s | images/s | efficiency | overlap |", "|---|---|---:|---:|---:|---:|---:|"]
    for model in models:
        one = base.get((model, "weak"))
        if not one:
            continue
        per_rank = one["global_batch"]
        rate = args.node_images_per_sec or one["images_per_sec"]
        compute = per_rank / rate
        nbytes = max(r["bytes_per_step"] for r in rows if r["model"] == model) or 0
        for link in ("1gbit", "10gbit"):
            (bandwidth, latency), fitted = networks.get(link, ((parse_rate(link), 50e-6), False))
            achieved = min(bandwidth / parse_rate(link), 1.0)
            for nodes in (16, 32, 64, 128, 256):
                comm = ring(nodes, nbytes, parse_rate(link) * achieved, latency)
                step = compute + exposed(comm, compute, overlap[model][0])
                hidden = 1 - exposed(comm, compute, overlap[model][0]) / comm if comm > 0 else 1.0
                lines.append(f"| {model} | {link} | {nodes} | {step:.3f} | {nodes * per_rank / step:.0f} | {compute / step:.2f} | {hidden * 100:.0f}% |")
    with open(os.path.join(folder, "report.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    svg(rows, os.path.join(folder, "scaling.svg"))
    print(f"wrote {folder}/report.md and {folder}/scaling.svg")


if __name__ == "__main__":
    main()
