#!/usr/bin/env bash
# Scaling sweep: cnn-train bench over 1, 2, 4, 8 ranks, strong scaling (fixed global batch)
# and weak scaling (fixed batch per rank), on this host and across emulated hosts.
usage() {
    cat <<'TEXT'
Usage: cluster/sweep.sh [--models "lenet-bn resnet18"] [--ranks "1 2 4 8"] [--steps N]
                        [--hosts K] [--rates "1gbit 10gbit"] [--no-emulated] [--out DIR]

Writes DIR/sweep.csv (default cluster/results), one row per point:
model,placement,link,scaling,ranks,hosts,side,global_batch,images_per_sec,seconds_per_step,
compute_sec,comm_wait_sec,update_sec,bytes_per_step,blocking_allreduce_sec,overlap,blas_core
then runs cluster/report.py on it. Batches: lenet-bn 256 global / 64 per rank at side 28;
resnet18 64 global / 16 per rank at side 96 (other models: their D2L side, 64 / 16).
The emulated placement builds K namespaced hosts (default 2) once per link rate (default
1gbit and 10gbit; `--rate R` for one), spreads the ranks over them, and always tears them
down. Needs root for the emulated part.
TEXT
}
set -euo pipefail
models="lenet-bn resnet18" ranks_list="1 2 4 8" steps=3 hosts=2 rates="1gbit 10gbit" emulated=1
here="$(cd "$(dirname "$0")" && pwd)"; repo="$(cd "$here/.." && pwd)"
out="$here/results"
while [ $# -gt 0 ]; do
    case "$1" in
        --models) models="$2"; shift 2 ;;
        --ranks) ranks_list="$2"; shift 2 ;;
        --steps) steps="$2"; shift 2 ;;
        --hosts) hosts="$2"; shift 2 ;;
        --rate|--rates) rates="$2"; shift 2 ;;
        --no-emulated) emulated=0; shift ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "sweep.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
binary="${CNN_TRAIN:-$repo/.build/release/cnn-train}"
[ -x "$binary" ] || { echo "sweep.sh: build first: swift build -c release" >&2; exit 2; }
mkdir -p "$out"
csv="$out/sweep.csv"
echo "model,placement,link,scaling,ranks,hosts,side,global_batch,images_per_sec,seconds_per_step,compute_sec,comm_wait_sec,update_sec,bytes_per_step,blocking_allreduce_sec,overlap,blas_core" > "$csv"

batches() {  # model -> "global per-rank side"
    case "$1" in
        lenet|lenet-bn) echo "256 64 28" ;;
        *) echo "64 16 $("$binary" models --describe "$1" | head -1 | sed -E 's/.* at 1×([0-9]+)×.*/\1/')" ;;
    esac
}

point() {  # placement link hosts model scaling ranks
    local placement=$1 link=$2 k=$3 model=$4 scaling=$5 n=$6 global per side batch json
    read -r global per side <<< "$(batches "$model")"
    batch=$([ "$scaling" = strong ] && echo "$global" || echo $((per * n)))
    local args=(bench "$model" --side "$side" --batch "$batch" --steps "$steps" --json)
    if [ "$placement" = local ]; then
        json=$("$repo/launch/local.sh" -n "$n" "${args[@]}" 2>/dev/null | grep '^{')
    else
        json=$(CNN_TRAIN="$binary" "$here/emulated/run.sh" -n "$n" "${args[@]}" 2>/dev/null | grep '^{')
    fi
    python3 - "$model" "$placement" "$link" "$scaling" "$n" "$k" "$json" >> "$csv" <<'PY'
import json, sys
model, placement, link, scaling, n, k, text = sys.argv[1:]
r = json.loads(text)
print(",".join(str(x) for x in [model, placement, link, scaling, n, k, r["side"], r["batch"], r["images_per_sec"], r["seconds_per_step"],
      r["compute_sec"], r["comm_wait_sec"], r["update_sec"], r["bytes_per_step"], r["blocking_allreduce_sec"], r["overlap"], r["blas_core"]]))
PY
    echo "  $model $placement $link $scaling ranks=$n batch=$batch: $(tail -1 "$csv" | cut -d, -f9) images/s, overlap $(tail -1 "$csv" | cut -d, -f16)"
}

for model in $models; do
    for scaling in strong weak; do
        for n in $ranks_list; do point local - 1 "$model" "$scaling" "$n"; done
    done
done
if [ "$emulated" = 1 ]; then
    trap '"$here/emulated/teardown.sh" >/dev/null' EXIT
    for rate in $rates; do
        for n in $ranks_list; do
            [ "$n" -ge "$hosts" ] || continue
            "$here/emulated/setup.sh" -k "$hosts" --slots $(( (n + hosts - 1) / hosts )) --rate "$rate" >/dev/null
            for model in $models; do
                for scaling in strong weak; do point emulated "$rate" "$hosts" "$model" "$scaling" "$n"; done
            done
        done
    done
    "$here/emulated/teardown.sh" >/dev/null
fi
python3 "$here/report.py" "$csv"
