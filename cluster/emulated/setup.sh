#!/usr/bin/env bash
# Builds an emulated cluster on this machine: K hosts as network namespaces cnn-h0 … cnn-hK-1,
# each with one veth link (eth0, 10.77.0.(i+1)/24) to a bridge in namespace cnn-switch, every
# link shaped by tc netem (rate and delay). Undo with teardown.sh (also run on any failure here).
usage() {
    cat <<'TEXT'
Usage: cluster/emulated/setup.sh [-k HOSTS] [--slots S] [--rate RATE] [--delay DELAY]

  -k HOSTS       emulated hosts (default 2)
  --slots S      ranks each host takes before oversubscribing (default: cores / hosts, at least 1)
  --rate RATE    bandwidth of each host's link, as tc writes it (default 1gbit; e.g. 10gbit)
  --delay DELAY  one-way delay added on each host's link (default 50us)

Writes cluster/emulated/hostfile (one line per host, "cnn-hI slots=S") and /etc/netns/cnn-hI/hosts so every host resolves the others' names. Needs root.
TEXT
}
set -euo pipefail
hosts=2 rate=1gbit delay=50us slots=""
while [ $# -gt 0 ]; do
    case "$1" in
        -k) hosts="$2"; shift 2 ;;
        --slots) slots="$2"; shift 2 ;;
        --rate) rate="$2"; shift 2 ;;
        --delay) delay="$2"; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "setup.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
case "$hosts" in ''|*[!0-9]*) echo "setup.sh: HOSTS must be a number" >&2; exit 2 ;; esac
[ "$hosts" -ge 1 ] && [ "$hosts" -le 200 ] || { echo "setup.sh: HOSTS must be 1..200" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
trap 'echo "setup.sh: failed; tearing down" >&2; "$here/teardown.sh"' ERR

"$here/teardown.sh" >/dev/null 2>&1 || true
ip netns add cnn-switch
ip netns exec cnn-switch ip link add cnnbr0 type bridge
ip netns exec cnn-switch ip link set cnnbr0 up
shaping="netem rate $rate delay $delay"
[ -n "$slots" ] || slots=$(( $(nproc) / hosts ))
[ "$slots" -ge 1 ] || slots=1
: > "$here/hostfile"
hosts_lines="127.0.0.1 localhost"
for i in $(seq 0 $((hosts - 1))); do hosts_lines+=$'\n'"10.77.0.$((i + 1)) cnn-h$i"; done
for i in $(seq 0 $((hosts - 1))); do
    ns=cnn-h$i
    ip netns add "$ns"
    ip link add "cnnv$i" type veth peer name "cnnp$i"
    ip link set "cnnv$i" netns "$ns"
    ip link set "cnnp$i" netns cnn-switch
    ip netns exec "$ns" ip link set "cnnv$i" name eth0
    ip netns exec "$ns" ip addr add "10.77.0.$((i + 1))/24" dev eth0
    ip netns exec "$ns" ip link set eth0 up
    ip netns exec "$ns" ip link set lo up
    ip netns exec cnn-switch ip link set "cnnp$i" master cnnbr0
    ip netns exec cnn-switch ip link set "cnnp$i" up
    # netem gives rate and delay; kernels without it (as on these machines) get tbf: rate only.
    if ! ip netns exec "$ns" tc qdisc add dev eth0 root netem rate "$rate" delay "$delay" 2>/dev/null; then
        ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst 256kb latency 50ms
        shaping="tbf rate $rate (this kernel has no netem: no delay added)"
    fi
    mkdir -p "/etc/netns/$ns"
    printf '%s\n' "$hosts_lines" > "/etc/netns/$ns/hosts"
    echo "$ns slots=$slots" >> "$here/hostfile"
done
echo "$shaping" > "$here/shaping"
echo "emulated cluster: $hosts host(s), links shaped by $shaping; hostfile $here/hostfile"
