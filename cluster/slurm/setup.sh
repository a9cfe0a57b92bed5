#!/usr/bin/env bash
# Brings up a one-node Slurm on this machine: munged, slurmctld and slurmd, each with its
# state, logs and sockets in DIR, on ports of its own, so that nothing in /etc is touched and
# an installed Slurm is left alone. Undo with teardown.sh DIR.
usage() {
    cat <<'TEXT'
Usage: cluster/slurm/setup.sh [DIR]

Starts munged, slurmctld and slurmd configured in DIR (default /tmp/cnn-train-slurm): this
host as one node with its real CPUs, partition "debug", MpiDefault=pmix,
ProctrackType=proctrack/linuxproc, TaskPlugin=task/affinity (task/none where the plugin
is missing). Waits until the node is idle, then prints the line to use it:

  export SLURM_CONF=DIR/slurm.conf

Environment: SLURM_PORT (slurmctld's port, default 16817; slurmd takes the next one).
Exit status 77 when Slurm cannot start here, with the reason on stderr (tests then skip);
2 for bad usage. Needs root (slurmd runs jobs as their users). Packages: slurmctld slurmd
slurm-client munge (scripts/install-deps.sh installs them).
TEXT
}
set -euo pipefail
case "${1:-}" in -h|--help) usage; exit 0 ;; esac
[ $# -le 1 ] || { usage >&2; exit 2; }
dir="${1:-/tmp/cnn-train-slurm}"
here="$(cd "$(dirname "$0")" && pwd)"
port="${SLURM_PORT:-16817}"

# Exit 77 with the reason: Slurm cannot run here, which is not a failure of the project.
cannot() {
    echo "cluster/slurm/setup.sh: cannot start Slurm: $*" >&2
    "$here/teardown.sh" "$dir" >/dev/null 2>&1 || true
    exit 77
}

[ "$(id -u)" -eq 0 ] || cannot "slurmd needs root (run as root or with sudo)"
for program in munged slurmctld slurmd sbatch sinfo scontrol; do
    command -v "$program" >/dev/null || cannot "$program is not installed (bash scripts/install-deps.sh)"
done
[ -f "$dir/slurmctld.pid" ] && cannot "$dir already holds a running Slurm (cluster/slurm/teardown.sh $dir first)"
plugins=$(dirname "$(find /usr/lib -name auth_munge.so -path '*slurm*' 2>/dev/null | head -1)")
[ -f "$plugins/mpi_pmix.so" ] || cannot "Slurm's PMIx plugin (mpi_pmix.so) is missing"

# Starts a daemon that keeps none of this script's files open: no standard streams (it logs to
# DIR) and no other inherited descriptor, so that whoever waits for this script's output or
# its end (a pipe, a test's process monitor) is not kept waiting by the daemons it leaves.
detached() {
    (
        for fd in /proc/$BASHPID/fd/*; do
            n="${fd##*/}"
            [ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-"
        done
        exec "$@" </dev/null >/dev/null 2>&1
    )
}

mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir" "$dir/munge"
dir="$(cd "$dir" && pwd)"

# munge: a fresh key and a socket in DIR, so that only this Slurm's daemons and clients use it.
mungekey --create --keyfile "$dir/munge/munge.key" --force >/dev/null 2>&1 \
    || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 600 "$dir/munge/munge.key"
detached munged --force --socket "$dir/munge/socket" --key-file "$dir/munge/munge.key" \
    --pid-file "$dir/munge/munged.pid" --log-file "$dir/munge/munged.log" --seed-file "$dir/munge/seed" \
    || cannot "munged did not start: $(tail -1 "$dir/munge/munged.log" 2>/dev/null)"

node="$(hostname -s)"
# slurmd -C prints this host's line as slurm.conf wants it (CPUs, sockets, cores, threads, memory).
hardware="$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]* //' -e 's/RealMemory=[0-9]*//')"
task=task/affinity
[ -f "$plugins/task_affinity.so" ] || task=task/none
cat > "$dir/slurm.conf" <<CONF
# Written by cluster/slurm/setup.sh: one node, this host.
ClusterName=cnntrain
SlurmctldHost=$node
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=$task
MpiDefault=pmix
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
ReturnToService=2
JobRequeue=1
# Quick turnarounds for tests: a requeued job may start again at once.
MinJobAge=300
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
NodeName=$node $hardware State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
CONF

export SLURM_CONF="$dir/slurm.conf"
detached slurmctld -f "$SLURM_CONF" || cannot "slurmctld did not start: $(tail -3 "$dir/slurmctld.log" 2>/dev/null)"
detached slurmd -f "$SLURM_CONF" || cannot "slurmd did not start: $(tail -3 "$dir/slurmd.log" 2>/dev/null)"
for _ in $(seq 1 60); do
    state="$(sinfo -h -n "$node" -o %T 2>/dev/null || true)"
    [ "$state" = idle ] && { echo "export SLURM_CONF=$SLURM_CONF"; exit 0; }
    sleep 0.5
done
cannot "node $node did not become idle within 30 s (state '${state:-none}'; see $dir/slurmctld.log and $dir/slurmd.log)"
