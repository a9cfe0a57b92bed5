#!/usr/bin/env bash
# Starts cnn-train on this host with N ranks through OpenMPI's mpirun.
usage() {
    cat <<'TEXT'
Usage: launch/local.sh [-n RANKS] [--dry-run] [--] CNN-TRAIN-ARGUMENTS...

Runs `mpirun -n RANKS cnn-train CNN-TRAIN-ARGUMENTS...` on this host, adding what the host
needs: --allow-run-as-root only when run as root, --oversubscribe only when RANKS exceeds the
cores, and binding: each rank to its share of the cores (cores / RANKS of them) when they
suffice, none when oversubscribed. Each rank gives OpenBLAS the host's cores divided by the
ranks on it, unless --threads is among the arguments.

  -n RANKS     ranks to start (default 2)
  --dry-run    print the mpirun command instead of running it
  -h, --help   this text

Environment: CNN_TRAIN (the binary; default .build/release/cnn-train beside this script's
project), MPIRUN (default mpirun).

Example: launch/local.sh -n 4 resnet18 --epochs 1 --sync-bn
TEXT
}

set -euo pipefail
ranks=2
dry=0
while [ $# -gt 0 ]; do
    case "$1" in
        -n) [ $# -ge 2 ] || { echo "launch/local.sh: -n needs a number" >&2; exit 2; }; ranks="$2"; shift 2 ;;
        --dry-run) dry=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
case "$ranks" in ''|*[!0-9]*|0) echo "launch/local.sh: RANKS must be a positive integer, got '$ranks'" >&2; exit 2 ;; esac

here="$(cd "$(dirname "$0")/.." && pwd)"
binary="${CNN_TRAIN:-$here/.build/release/cnn-train}"
[ -x "$binary" ] || [ "$dry" = 1 ] || { echo "launch/local.sh: $binary is not built (swift build -c release)" >&2; exit 2; }

cores=$(nproc)
flags=(-n "$ranks")
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
if [ "$ranks" -gt "$cores" ]; then
    flags+=(--oversubscribe --bind-to none)
else
    # Each rank bound to its share of the cores (its BLAS threads run there).
    flags+=(--map-by "slot:PE=$((cores / ranks))" --bind-to core)
fi

command=("${MPIRUN:-mpirun}" "${flags[@]}" "$binary" "$@")
if [ "$dry" = 1 ]; then
    printf '%q ' "${command[@]}"
    echo
else
    exec "${command[@]}"
fi
