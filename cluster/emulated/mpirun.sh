#!/usr/bin/env bash
# mpirun across the emulated hosts: started in cnn-h0, reaching the others through
# netns-exec.sh, TCP over each host's shaped eth0. Arguments are mpirun's (e.g. -n 4 PROGRAM ...).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ -f "$here/hostfile" ] || { echo "cluster/emulated/mpirun.sh: no emulated cluster (run setup.sh first)" >&2; exit 2; }
root_flags=()
[ "$(id -u)" -eq 0 ] && root_flags=(--allow-run-as-root)
exec ip netns exec cnn-h0 mpirun "${root_flags[@]}" --oversubscribe --hostfile "$here/hostfile" \
    --mca plm_rsh_agent "$here/netns-exec.sh" --mca btl self,vader,tcp \
    --mca btl_tcp_if_include eth0 --mca oob_tcp_if_include eth0 "$@"
