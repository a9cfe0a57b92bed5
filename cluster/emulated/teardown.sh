#!/usr/bin/env bash
# Removes everything setup.sh made: the cnn-h* and cnn-switch namespaces (their veth links and
# bridge go with them), /etc/netns/cnn-h*, and the hostfile. Safe to run any number of times.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^cnn-(h[0-9]+|switch)$'); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns del "$ns"
done
rm -rf /etc/netns/cnn-h*
rm -f "$here/hostfile" "$here/shaping"
left=$(ip netns list 2>/dev/null | grep -cE '^cnn-(h[0-9]+|switch)( |$)')
[ "$left" -eq 0 ] || { echo "teardown.sh: $left namespace(s) left" >&2; exit 1; }
echo "emulated cluster: torn down"
