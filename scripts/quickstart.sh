#!/usr/bin/env bash
# Installs what is missing, builds cnn-train in release mode, lists the models and times
# one ResNet-18 training step. (Training runs arrive with the trainer; see README.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
swift build -c release
.build/release/cnn-train version
.build/release/cnn-train models
.build/release/cnn-train bench resnet18 --batch 64 --steps 3
