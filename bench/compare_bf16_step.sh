#!/usr/bin/env bash
# The cnn training step (batch 128, SGD) under bf16 autocast against the f32
# step, on this machine, each round one short run of each, back to back in
# alternating order, so that every pair sees the same machine state. Prints
# each ratio f32 / bf16 per pair, then the median and range of the pairs,
# and each kind's median step. Data:
#   random  (default) brisk_bench_pruned's BM_autocast_step/1 (bf16) and /0
#           (f32): one random batch again and again, framework-free;
#   fashion `brisk profile` of recipes/bf16_cnn.toml and baseline_cnn.toml:
#           Fashion-MNIST through the trainer, 150 steps after the profile's
#           warm-up, a fresh model each run. Its pooled gradients are
#           sparser (about 0.5 of the windows live after the ReLU, 0.7 on
#           the random batch), which weighs the second layer's backward,
#           where bf16 gains least, differently.
# (google-benchmark's own --benchmark_enable_random_interleaving runs the
# repetitions interleaved but prints them grouped by benchmark, so its
# output cannot be paired run by run; this script pairs by construction.)
#   bench/compare_bf16_step.sh [build-dir] [rounds] [threads] [random|fashion]   (defaults: build, 15, 2, random)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
ROUNDS=${2:-15}
THREADS=${3:-2}
DATA=${4:-random}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "compare_bf16_step: rounds must be a positive integer, got '$ROUNDS'" >&2; exit 2; }
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || { echo "compare_bf16_step: threads must be a positive integer, got '$THREADS'" >&2; exit 2; }
case "$DATA" in
  random) BIN="$BUILD/bench/brisk_bench_pruned"; HINT="configure with -DBRISK_BUILD_BENCH=ON and build" ;;
  fashion) BIN="$BUILD/brisk"; HINT="build first" ;;
  *) echo "compare_bf16_step: data must be random or fashion, got '$DATA'" >&2; exit 2 ;;
esac
[ -x "$BIN" ] || { echo "compare_bf16_step: $BIN not found ($HINT)" >&2; exit 2; }
step_ms() {  # arg (0: f32, 1: bf16) -> mean step in ms of one short run
  if [ "$DATA" = random ]; then  # csv real_time, unit ms
    BRISK_NUM_THREADS=$THREADS "$BIN" --benchmark_filter="autocast_step/$1/" --benchmark_min_time=1 \
      --benchmark_format=csv 2>/dev/null | awk -F, '/autocast_step/ { print $3 }'
  else
    local recipe=baseline_cnn
    [ "$1" = 1 ] && recipe=bf16_cnn
    BRISK_NUM_THREADS=$THREADS "$BIN" profile --config "recipes/$recipe.toml" --steps 150 --json - 2>/dev/null |
      /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["step_ms"])'
  fi
}
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'); $(nproc) cores, $THREADS threads; bf16 GEMM: $("$BUILD/brisk" info 2>/dev/null | sed -n 's/.*bf16 gemm \([a-z0-9]*\).*/\1/p'); data: $DATA"
pairs=()
for ((r = 0; r < ROUNDS; r++)); do
  if ((r % 2 == 0)); then a=$(step_ms 0); b=$(step_ms 1); else b=$(step_ms 1); a=$(step_ms 0); fi
  [ -n "$a" ] && [ -n "$b" ] || { echo "compare_bf16_step: a run printed no time" >&2; exit 1; }
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
