#!/usr/bin/env bash
# One training epoch of mlp and cnn on Fashion-MNIST (batch 128, SGD momentum
# 0.9), brisk vs PyTorch (Debian python3-torch) on this machine. Each framework
# runs at 1 and 2 threads and keeps its best; the table prints both epochs,
# the time per step (468 steps), test accuracy after the epoch, and the ratio.
#   bench/compare_epoch.sh [build-dir] [models]   (defaults: build, "mlp cnn")
# brisk's GEMM backend follows BRISK_GEMM (native by default).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
MODELS=${2:-mlp cnn}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
STEPS=468
brisk_epoch() {  # model threads -> "seconds acc"
  "$BUILD/brisk" train --model "$1" --epochs 1 --threads "$2" --progress off --out "$OUT/$1_$2" |
    sed -n 's/^final: test_acc \([0-9.]*\).*train_seconds \([0-9.]*\).*/\2 \1/p'
}
torch_epoch() {
  /usr/bin/python3 bench/torch_epoch.py --model "$1" --threads "$2" |
    sed -n 's/.*epoch_s \([0-9.]*\) test_acc \([0-9.]*\).*/\1 \2/p'
}
best() {  # fn model -> "seconds acc threads" (fastest of 1 and 2 threads)
  local fn=$1 m=$2 out=""
  for t in 1 2; do
    read -r s a <<<"$($fn "$m" "$t")"
    out+="$s $a $t"$'\n'
  done
  printf "%s" "$out" | sort -n | head -1
}
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; brisk GEMM: ${BRISK_GEMM:-native}"
printf "%-5s | %-7s %8s %8s %7s | %-7s %8s %8s %7s | %8s\n" model brisk_t epoch_s step_ms acc torch_t epoch_s step_ms acc speedup
for m in $MODELS; do
  read -r bs ba bt <<<"$(best brisk_epoch "$m")"
  read -r ts ta tt <<<"$(best torch_epoch "$m")"
  awk -v m="$m" -v bs="$bs" -v ba="$ba" -v bt="$bt" -v ts="$ts" -v ta="$ta" -v tt="$tt" -v n="$STEPS" 'BEGIN {
    printf "%-5s | %-7s %8.2f %8.2f %7.4f | %-7s %8.2f %8.2f %7.4f | %7.2fx\n",
           m, bt, bs, 1000 * bs / n, ba, tt, ts, 1000 * ts / n, ta, ts / bs }'
done
