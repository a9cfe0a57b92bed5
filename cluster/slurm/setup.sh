#!/usr/bin/env bash
# Brings up a Slurm on this machine: munged, slurmctld and slurmd, each with its state, logs
# and sockets in DIR, on ports of its own, so that nothing in /etc is touched and an installed
# Slurm is left alone. One node (this host), or one node per host of the emulated cluster
# (cluster/emulated/), so that a multi-node job crosses its shaped links. Undo with teardown.sh DIR.
usage() {
    cat <<'TEXT'
Usage: cluster/slurm/setup.sh [--emulated] [DIR]

Starts munged, slurmctld and slurmd configured in DIR (default /tmp/cnn-train-slurm):
partition "debug", MpiDefault=pmix, ProctrackType=proctrack/linuxproc,
TaskPlugin=task/affinity (task/none where the plugin is missing). Waits until every node
is idle, then prints the line to use it:

  export SLURM_CONF=DIR/slurm.conf

  (no option)  this host as one node with its real CPUs
  --emulated   one node per host of the emulated cluster (cluster/emulated/setup.sh first):
               slurmd -N cnn-hI in namespace cnn-hI, NodeAddr its eth0 address, the
               controller in cnn-h0. Clients reach it from inside: ip netns exec cnn-h0 sbatch …
               Every node claims this machine's CPUs, as the emulated hosts share them.

Environment: SLURM_PORT (slurmctld's port, default 16817; slurmd takes the next one),
TASK_PLUGIN (default task/affinity; task/none for a cluster that cannot bind CPUs).
Exit status 77 when Slurm cannot start here, with the reason on stderr (tests then skip);
2 for bad usage. Needs root (slurmd runs jobs as their users). Packages: slurmctld slurmd
slurm-client munge (scripts/install-deps.sh installs them).
TEXT
}
set -euo pipefail
emulated=0
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    --emulated) emulated=1; shift ;;
esac
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

# The nodes: name, address, and the network namespace their slurmd runs in ("" for this one).
names=() addresses=() namespaces=()
if [ "$emulated" = 1 ]; then
    hostfile="$here/../emulated/hostfile"
    [ -f "$hostfile" ] || cannot "no emulated cluster (cluster/emulated/setup.sh first)"
    command -v nsenter >/dev/null || cannot "nsenter (util-linux) is not installed"
    while read -r host _; do
        case "$host" in ''|'#'*) continue ;; esac
        [ -e "/run/netns/$host" ] || cannot "namespace $host of $hostfile does not exist"
        address="$(ip netns exec "$host" ip -4 -o addr show dev eth0 | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -1)"
        [ -n "$address" ] || cannot "$host has no IPv4 address on eth0"
        names+=("$host") addresses+=("$address") namespaces+=("$host")
    done < "$hostfile"
else
    names+=("$(hostname -s)") addresses+=("") namespaces+=("")
fi

# Starts a daemon that keeps none of this script's files open: no standard streams (it logs to
# DIR) and no other inherited descriptor, so that whoever waits for this script's output or
# its end (a pipe, a test's process monitor) is not kept waiting by the daemons it leaves.
# With a namespace first, it runs in that network namespace only (nsenter keeps /sys, where
# slurmd finds the cgroup file system; ip netns exec would remount it).
detached() {
    local namespace="$1"; shift
    (
        for fd in /proc/$BASHPID/fd/*; do
            n="${fd##*/}"
            [ "$n" -gt 2 ] 2>/dev/null && eval "exec $n>&-"
        done
        if [ -n "$namespace" ]; then
            exec nsenter --net="/run/netns/$namespace" "$@" </dev/null >/dev/null 2>&1
        fi
        exec "$@" </dev/null >/dev/null 2>&1
    )
}

mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
chmod 700 "$dir" "$dir/munge"
dir="$(cd "$dir" && pwd)"

# munge: a fresh key and a socket in DIR, so that only this Slurm's daemons and clients use
# it (a socket file is reachable from every network namespace).
mungekey --create --keyfile "$dir/munge/munge.key" --force >/dev/null 2>&1 \
    || dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
chmod 600 "$dir/munge/munge.key"
detached "" munged --force --socket "$dir/munge/socket" --key-file "$dir/munge/munge.key" \
    --pid-file "$dir/munge/munged.pid" --log-file "$dir/munge/munged.log" --seed-file "$dir/munge/seed" \
    || cannot "munged did not start: $(tail -1 "$dir/munge/munged.log" 2>/dev/null)"

# slurmd -C prints this host's line as slurm.conf wants it (CPUs, sockets, cores, threads).
hardware="$(slurmd -C | head -1 | sed -e 's/^NodeName=[^ ]* //' -e 's/RealMemory=[0-9]*//')"
task="${TASK_PLUGIN:-task/affinity}"
[ -f "$plugins/${task//\//_}.so" ] || task=task/none
# slurmctld knows itself by this machine's name; clients and nodes reach it at its address.
controller="$(hostname -s)"
[ -z "${addresses[0]}" ] || controller+="(${addresses[0]})"
{
    cat <<CONF
# Written by cluster/slurm/setup.sh: ${#names[@]} node(s).
ClusterName=cnntrain
SlurmctldHost=$controller
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: how long a requeued job waits before it may start again (default 120 s) while
# its first run is stopped; 10 s suffices on one machine.
AuthInfo=socket=$dir/munge/socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
# Each node's own temporary directory: Slurm's PMIx plugin makes one per job step there, which
# nodes sharing this machine's /tmp would collide on.
TmpFS=$dir/tmp/%n
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
MinJobAge=300
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
CONF
    for i in "${!names[@]}"; do
        echo "NodeName=${names[$i]}${addresses[$i]:+ NodeAddr=${addresses[$i]}} $hardware State=UNKNOWN"
        mkdir -p "$dir/tmp/${names[$i]}"
    done
    echo "PartitionName=debug Nodes=$(IFS=,; echo "${names[*]}") Default=YES MaxTime=INFINITE State=UP"
} > "$dir/slurm.conf"

export SLURM_CONF="$dir/slurm.conf"
detached "${namespaces[0]}" slurmctld -f "$SLURM_CONF" || cannot "slurmctld did not start: $(tail -3 "$dir/slurmctld.log" 2>/dev/null)"
for i in "${!names[@]}"; do
    node=(slurmd -f "$SLURM_CONF")
    [ "$emulated" = 0 ] || node+=(-N "${names[$i]}")
    detached "${namespaces[$i]}" "${node[@]}" || cannot "slurmd of ${names[$i]} did not start: $(tail -3 "$dir/slurmd-${names[$i]}.log" 2>/dev/null)"
done
client=()
[ -z "${namespaces[0]}" ] || client=(ip netns exec "${namespaces[0]}")
echo "${namespaces[0]}" > "$dir/client-namespace"
for _ in $(seq 1 60); do
    states="$("${client[@]}" sinfo -h -N -o %T 2>/dev/null | sort -u | tr '\n' ' ' || true)"
    if [ "$states" = "idle " ] && [ "$("${client[@]}" sinfo -h -N -o %N 2>/dev/null | wc -l)" -eq "${#names[@]}" ]; then
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    sleep 0.5
done
cannot "the nodes did not become idle within 30 s (states: ${states:-none}; see $dir/slurmctld.log and $dir/slurmd-*.log)"
