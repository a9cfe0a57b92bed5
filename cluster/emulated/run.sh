#!/usr/bin/env bash
# Runs cnn-train across the emulated hosts: launch/hostfile.sh started inside cnn-h0, reaching
# the other hosts through netns-exec.sh, MPI over each host's shaped eth0.
#   cluster/emulated/run.sh [-n RANKS] CNN-TRAIN-ARGUMENTS...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
[ -f "$here/hostfile" ] || { echo "cluster/emulated/run.sh: no emulated cluster (run cluster/emulated/setup.sh first)" >&2; exit 2; }
# Ranks talk over TCP only: OpenMPI's shared-memory transport crashes inside these
# namespaces (measured: SIGSEGV in mca_btl_vader), and TCP is what the shaped links carry.
export OMPI_MCA_btl=self,tcp
CNN_TRAIN="${CNN_TRAIN:-$here/../../.build/release/cnn-train}" \
    exec ip netns exec cnn-h0 unshare --uts "$here/netns-hostname.sh" cnn-h0 "$here/../../launch/hostfile.sh" -f "$here/hostfile" --agent "$here/netns-exec.sh" --if eth0 "$@"
