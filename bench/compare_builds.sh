#!/usr/bin/env bash
# Epoch time of two brisk binaries side by side, interleaved (A B A B ...), to
# check that a change does not slow training: one epoch of each model on
# Fashion-MNIST (batch 128, SGD momentum 0.9), ROUNDS times each, at THREADS
# threads. Prints medians, ranges and the ratio B/A per model, with the CPU.
#   bench/compare_builds.sh BRISK_A BRISK_B [ROUNDS=3] [THREADS=2] [MODELS="mlp cnn"]
set -euo pipefail
A=${1:?usage: compare_builds.sh BRISK_A BRISK_B [ROUNDS] [THREADS] [MODELS]}
B=${2:?usage: compare_builds.sh BRISK_A BRISK_B [ROUNDS] [THREADS] [MODELS]}
ROUNDS=${3:-3}
THREADS=${4:-2}
MODELS=${5:-mlp cnn}
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "compare_builds.sh: $bin is not an executable" >&2; exit 2; }; done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "compare_builds.sh: ROUNDS must be a positive integer, got '$ROUNDS'" >&2; exit 2; }
[[ "$THREADS" =~ ^[0-9]+$ ]] || { echo "compare_builds.sh: THREADS must be a non-negative integer, got '$THREADS'" >&2; exit 2; }
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
epoch() {  # binary model tag -> seconds
  "$1" train --model "$2" --epochs 1 --threads "$THREADS" --seed 0 --progress off --out "$OUT/$3" |
    sed -n 's/^final: .*train_seconds \([0-9.]*\).*/\1/p'
}
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; threads $THREADS; $ROUNDS interleaved rounds"
printf "%-5s | %-26s | %-26s | %s\n" model "A: median [min, max] s" "B: median [min, max] s" "B/A"
for m in $MODELS; do
  : > "$OUT/a.txt"; : > "$OUT/b.txt"
  for r in $(seq "$ROUNDS"); do
    epoch "$A" "$m" "a_${m}_$r" >> "$OUT/a.txt"
    epoch "$B" "$m" "b_${m}_$r" >> "$OUT/b.txt"
  done
  python3 - "$m" "$OUT/a.txt" "$OUT/b.txt" <<'PY'
import statistics, sys
m, fa, fb = sys.argv[1:]
a = [float(x) for x in open(fa)]; b = [float(x) for x in open(fb)]
ma, mb = statistics.median(a), statistics.median(b)
print("%-5s | %8.2f [%6.2f, %6.2f]     | %8.2f [%6.2f, %6.2f]     | %.3f" % (m, ma, min(a), max(a), mb, min(b), max(b), mb / ma))
PY
done
