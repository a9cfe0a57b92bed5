#!/usr/bin/env bash
# OpenMPI's remote-shell agent for the emulated cluster (plm_rsh_agent): called as
# "netns-exec.sh [ssh options] HOST COMMAND...", it runs COMMAND inside namespace HOST.
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done
host="$1"; shift
exec ip netns exec "$host" unshare --uts /bin/sh -c "hostname $host && $*"
