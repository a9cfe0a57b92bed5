#!/usr/bin/env bash
# Installs what is missing, builds cnn-train (release) and trains LeNet on Fashion-MNIST
# with D2L's recipe on 2 MPI ranks, writing metrics, curves (SVG) and weights under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release
mkdir -p runs
launch/local.sh -n 2 lenet --metrics runs/lenet.jsonl --save runs/lenet.h5
.build/release/cnn-train eval --init-from runs/lenet.h5
echo "curves: runs/lenet.svg"
