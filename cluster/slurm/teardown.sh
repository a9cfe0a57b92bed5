#!/usr/bin/env bash
# Stops the Slurm that setup.sh started in DIR (slurmd, slurmctld, munged, by their pid
# files, waiting for each to end) and removes DIR. Safe to run twice.
set -uo pipefail
case "${1:-}" in -h|--help) echo "Usage: cluster/slurm/teardown.sh [DIR]   (default /tmp/cnn-train-slurm)"; exit 0 ;; esac
dir="${1:-/tmp/cnn-train-slurm}"
[ -d "$dir" ] || exit 0
stop() {
    local pidfile="$1" pid
    [ -f "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    if [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; then
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}
# Jobs still running end with their slurmd's step daemons; cancel them first so none is
# orphaned. An emulated cluster's controller is reached from inside its first host.
if [ -f "$dir/slurm.conf" ] && [ -f "$dir/slurmctld.pid" ]; then
    client=()
    namespace="$(cat "$dir/client-namespace" 2>/dev/null || true)"
    [ -z "$namespace" ] || [ ! -e "/run/netns/$namespace" ] || client=(ip netns exec "$namespace")
    SLURM_CONF="$dir/slurm.conf" timeout 10 "${client[@]}" scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    sleep 1
fi
for pidfile in "$dir"/slurmd-*.pid; do stop "$pidfile"; done
stop "$dir/slurmctld.pid"
stop "$dir/munge/munged.pid"
rm -rf "$dir"
