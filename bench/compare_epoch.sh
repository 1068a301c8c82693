#!/usr/bin/env bash
# One training epoch of mlp and cnn on Fashion-MNIST (batch 128, SGD), brisk
# vs PyTorch (Debian python3-torch) on this machine, and their ratio.
#   bench/compare_epoch.sh [build-dir]      (default: build)
# PyTorch's best settings here: 1 thread for the mlp, 2 for the cnn.
# Needs Debian's python3-torch (apt-get install python3-torch).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
brisk_epoch() {  # model threads -> train seconds of one epoch
  "$BUILD/brisk" train --model "$1" --epochs 1 --threads "$2" --progress off --out "$OUT/$1_$2" |
    sed -n 's/.*train_seconds \([0-9.]*\).*/\1/p'
}
torch_epoch() {
  /usr/bin/python3 bench/torch_epoch.py --model "$1" --threads "$2" | sed -n 's/.*epoch_s \([0-9.]*\).*/\1/p'
}
printf "%-6s %-8s %12s %12s %8s\n" model threads brisk_s torch_s speedup
for spec in "mlp 1" "mlp 2" "cnn 2"; do
  set -- $spec
  b=$(brisk_epoch "$1" "$2")
  t=$(torch_epoch "$1" "$2")
  awk -v m="$1" -v th="$2" -v b="$b" -v t="$t" 'BEGIN { printf "%-6s %-8s %12.2f %12.2f %7.2fx\n", m, th, b, t, t / b }'
done
