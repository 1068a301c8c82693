#!/usr/bin/env bash
# The cnn training step under bf16 autocast against the f32 step on the real
# data: `brisk profile` of recipes/bf16_cnn.toml and recipes/baseline_cnn.toml
# (Fashion-MNIST, the recipes' batch and optimizer, STEPS steps after the
# profile's warm-up, from a fresh model each run), back to back in
# alternating order; prints each pair's ratio f32 / bf16 of the mean step,
# then the median and range over the pairs.
# bench/compare_bf16_step.sh times the same step on one random batch, where
# the pooled gradients are denser than in training (about 0.7 of the
# windows live after the ReLU, against about 0.5 here), which weighs the
# second layer's backward, where bf16 gains least, differently.
#   bench/compare_bf16_train.sh [build-dir] [rounds] [steps] [threads]   (defaults: build, 8, 150, 2)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
ROUNDS=${2:-8}
STEPS=${3:-150}
THREADS=${4:-2}
for v in "$ROUNDS" "$STEPS" "$THREADS"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "compare_bf16_train: rounds, steps and threads must be positive integers, got '$v'" >&2; exit 2; }
done
BIN="$BUILD/brisk"
[ -x "$BIN" ] || { echo "compare_bf16_train: $BIN not found (build first)" >&2; exit 2; }
step_ms() {  # recipe -> mean step in ms
  BRISK_NUM_THREADS=$THREADS "$BIN" profile --config "recipes/$1.toml" --steps "$STEPS" --json - 2>/dev/null |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["step_ms"])'
}
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); $(nproc) cores, $THREADS threads; $STEPS steps a run"
pairs=()
for ((r = 0; r < ROUNDS; r++)); do
  if ((r % 2 == 0)); then a=$(step_ms baseline_cnn); b=$(step_ms bf16_cnn); else b=$(step_ms bf16_cnn); a=$(step_ms baseline_cnn); fi
  [ -n "$a" ] && [ -n "$b" ] || { echo "compare_bf16_train: a run printed no time" >&2; exit 1; }
  echo "round $((r + 1)): f32 $a ms, bf16 $b ms, ratio $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')"
  pairs+=("$a $b")
done
printf '%s\n' "${pairs[@]}" | /usr/bin/python3 -c '
import sys, statistics as st
p = [tuple(map(float, l.split())) for l in sys.stdin if l.strip()]
a = [x for x, _ in p]; b = [y for _, y in p]; r = [x / y for x, y in p]
print(f"f32 step  median {st.median(a):.2f} ms [{min(a):.2f}, {max(a):.2f}]")
print(f"bf16 step median {st.median(b):.2f} ms [{min(b):.2f}, {max(b):.2f}]")
print(f"f32 / bf16 per pair: median {st.median(r):.3f}x [{min(r):.3f}, {max(r):.3f}] over {len(r)} pairs")
'
