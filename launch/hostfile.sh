#!/usr/bin/env bash
# Starts cnn-train across the machines of an OpenMPI hostfile, reached by ssh.
usage() {
    cat <<'TEXT'
Usage: launch/hostfile.sh -f HOSTFILE [-n RANKS] [--agent PROGRAM] [--if IFACE] [--dry-run] [--] CNN-TRAIN-ARGUMENTS...

Runs mpirun over the hosts in HOSTFILE (lines "host slots=N"), every rank running the same
cnn-train binary path, which must exist on every host (a shared file system or the same
install), as must the data and --checkpoint-dir.

  -f HOSTFILE     OpenMPI hostfile (required)
  -n RANKS        ranks in all (default: the sum of the slots)
  --agent PROG    how to reach a host (default ssh; the emulated cluster uses netns-exec.sh)
  --if IFACE      network interface for MPI traffic (TCP), e.g. eth0
  --dry-run       print the mpirun command instead of running it
  -h, --help      this text

Hosts need passwordless ssh to each other and OpenMPI 4 installed. Each rank gives OpenBLAS
its host's cores divided by the ranks on that host. Environment: CNN_TRAIN (the binary),
MPIRUN (default mpirun).

Example: launch/hostfile.sh -f hosts.txt --if eth0 resnet18 --sync-bn --checkpoint-dir /shared/r18 --resume auto
TEXT
}
set -euo pipefail
hostfile="" ranks="" agent="" iface="" dry=0
while [ $# -gt 0 ]; do
    case "$1" in
        -f) [ $# -ge 2 ] || { echo "launch/hostfile.sh: -f needs a file" >&2; exit 2; }; hostfile="$2"; shift 2 ;;
        -n) [ $# -ge 2 ] || { echo "launch/hostfile.sh: -n needs a number" >&2; exit 2; }; ranks="$2"; shift 2 ;;
        --agent) agent="$2"; shift 2 ;;
        --if) iface="$2"; shift 2 ;;
        --dry-run) dry=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[ -n "$hostfile" ] || { echo "launch/hostfile.sh: -f HOSTFILE is required (see --help)" >&2; exit 2; }
[ -f "$hostfile" ] || { echo "launch/hostfile.sh: $hostfile: no such file" >&2; exit 2; }
slots=$(awk '/^[[:space:]]*[^#[:space:]]/ { n = 1; for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { split($i, a, "="); n = a[2] } total += n } END { print total + 0 }' "$hostfile")
[ "$slots" -ge 1 ] || { echo "launch/hostfile.sh: $hostfile lists no host" >&2; exit 2; }
ranks="${ranks:-$slots}"
case "$ranks" in ''|*[!0-9]*|0) echo "launch/hostfile.sh: RANKS must be a positive integer, got '$ranks'" >&2; exit 2 ;; esac

here="$(cd "$(dirname "$0")/.." && pwd)"
binary="${CNN_TRAIN:-$here/.build/release/cnn-train}"
flags=(-n "$ranks" --hostfile "$hostfile")
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
[ "$ranks" -gt "$slots" ] && flags+=(--oversubscribe)
[ -n "$agent" ] && flags+=(--mca plm_rsh_agent "$agent")
[ -n "$iface" ] && flags+=(--mca btl_tcp_if_include "$iface" --mca oob_tcp_if_include "$iface")

command=("${MPIRUN:-mpirun}" "${flags[@]}" "$binary" "$@")
if [ "$dry" = 1 ]; then
    printf '%q ' "${command[@]}"
    echo
else
    exec "${command[@]}"
fi
