#!/usr/bin/env bash
# cnn-train's training step against PyTorch's on the same cores, model by model, in one
# sitting (the machine is shared: compare the ratios, not numbers from different runs).
#
#   PYTHON=/path/to/venv/bin/python scripts/bench-vs-pytorch.sh [--threads T] [--batch B] [--engine E]
#       [--conv-algorithm direct|winograd] [--repeat R] MODEL...
#
# For each model, R rounds of `cnn-train bench` and scripts/bench_pytorch.py alternate, at
# the side cnn-train uses, each timing at least 3 steps and 1 s of them after half a second
# of warm-up; the table gives each side's median images/s and their ratio. OPENBLAS_CORETYPE
# and OPENBLAS_L2_SIZE are unset, as users run. PYTHON must have torch (never a project dependency).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=$(nproc) batch=64 engine=dnnl algorithm=direct repeat=3 models=()
while [ $# -gt 0 ]; do
    case "$1" in
        --threads) threads="$2"; shift 2 ;;
        --batch) batch="$2"; shift 2 ;;
        --engine) engine="$2"; shift 2 ;;
        --conv-algorithm) algorithm="$2"; shift 2 ;;
        --repeat) repeat="$2"; shift 2 ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) models+=("$1"); shift ;;
    esac
done
# Default: every network of `cnn-train models`.
[ ${#models[@]} -gt 0 ] || models=($("${CNN_TRAIN:-.build/release/cnn-train}" models | awk 'NR > 1 { print $1 }'))
python="${PYTHON:-python3}"
"$python" -c "import torch" 2>/dev/null || { echo "bench-vs-pytorch: $python has no torch (set PYTHON)" >&2; exit 2; }
binary="${CNN_TRAIN:-.build/release/cnn-train}"
[ -x "$binary" ] || { echo "bench-vs-pytorch: $binary is not built (swift build -c release)" >&2; exit 2; }
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE

results=$(mktemp)
for model in "${models[@]}"; do
    for _ in $(seq "$repeat"); do
        ours=$("$binary" bench "$model" --batch "$batch" --threads "$threads" --engine "$engine" --conv-algorithm "$algorithm" --steps 3 --json | tail -1)
        side=$(echo "$ours" | "$python" -c 'import json, sys; print(json.load(sys.stdin)["side"])')
        echo "ours $ours" >> "$results"
        echo "torch $("$python" scripts/bench_pytorch.py "$model" --side "$side" --batch "$batch" --threads "$threads" --steps 3)" >> "$results"
    done
done
"$python" - "$results" "$threads" "$batch" "$engine" "$algorithm" <<'PY'
import json, statistics, sys
path, threads, batch, engine, algorithm = sys.argv[1:]
rows = {}
for line in open(path):
    side, text = line.split(" ", 1)
    d = json.loads(text)
    rows.setdefault(d["model"], {}).setdefault(side, []).append(d)
print(f"batch {batch}, {threads} thread(s), cnn-train engine {engine} ({algorithm} convolutions); medians over the rounds")
print("| model | side | cnn-train images/s | PyTorch images/s | ratio | cnn-train GFLOP/s | PyTorch GFLOP/s | peak MB cnn-train | peak MB PyTorch |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for model, r in rows.items():
    ours, torch = statistics.median(d["images_per_sec"] for d in r["ours"]), statistics.median(d["images_per_sec"] for d in r["torch"])
    flops_per_image = r["ours"][0]["gflops"] / r["ours"][0]["images_per_sec"]  # the same network on both sides
    memory = [max(d["peak_rss_mb"] for d in r[s]) for s in ("ours", "torch")]
    print(f"| {model} | {r['ours'][0]['side']} | {ours:.1f} | {torch:.1f} | {ours / torch:.2f} | {ours * flops_per_image:.1f} "
          f"| {torch * flops_per_image:.1f} | {memory[0]:.0f} | {memory[1]:.0f} |")
PY
rm -f "$results"
