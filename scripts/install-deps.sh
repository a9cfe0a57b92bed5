#!/usr/bin/env bash
# Installs the Debian packages cnn-train builds and runs with, skipping those present.
# Runs `apt-get update` once, and only when something is missing.
set -euo pipefail

# slurmctld, slurmd, slurm-client and munge: the real Slurm that the launch tests bring up
# (cluster/slurm/setup.sh); nothing else needs them. Under Docker's policy-rc.d their
# services are installed but not started. python3-numpy and python3-h5py:
# scripts/convert_checkpoint.py (pretrained weights), which the tests run.
packages=(pkg-config libopenblas-dev libopenmpi-dev openmpi-bin libhdf5-dev zlib1g-dev libdnnl-dev dataset-fashion-mnist
          slurmctld slurmd slurm-client munge python3-numpy python3-h5py)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all present (${packages[*]})"
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
