#!/usr/bin/env bash
# f32 GEMM throughput, brisk's native sgemm vs OpenBLAS (both in
# brisk_bench_gemm) vs a current PyTorch's torch.mm (MKL; bench/torch_venv.sh),
# on this machine at the given thread count. Each round runs the three, the
# order alternating between rounds; the table gives each one's median
# GFLOP/s over the rounds and the range, and native's ratio to the best peer.
#   bench/compare_gemm.sh [build-dir] [rounds] [threads] [set]   (defaults: build, 3, 2, square)
# set: square (n^3, n = 1024, 2048), or mlp (the mlp recipe's five large
# products at batch 128, transposed as its layers pass them: forward
# 128x512x784 and 128x256x512 with B = W^T, the second layer's input
# gradient 128x512x256, the weight gradients 512x784x128 and 256x512x128
# with A = dY^T).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
ROUNDS=${2:-3}
THREADS=${3:-2}
SET=${4:-square}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || { echo "compare_gemm: rounds must be a positive integer, got '$ROUNDS'" >&2; exit 2; }
[[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || { echo "compare_gemm: threads must be a positive integer, got '$THREADS'" >&2; exit 2; }
case "$SET" in
  square) PRODUCTS=(1024x1024x1024:nn 2048x2048x2048:nn) ;;
  mlp) PRODUCTS=(128x512x784:nt 128x256x512:nt 128x512x256:nn 512x784x128:tn 256x512x128:tn) ;;
  *) echo "compare_gemm: set must be square or mlp, got '$SET'" >&2; exit 2 ;;
esac
# Products are named MxNxK:ab, a and b n (as stored) or t (transposed), as
# torch_gemm.py's --shapes; brisk_bench_gemm names them M:../N:../K:../tA:../tB:..
bench_name() {
  local m n k ab=${1#*:}
  IFS=x read -r m n k <<<"${1%%:*}"
  echo "M:$m/N:$n/K:$k/tA:$([ "${ab:0:1}" = t ] && echo 1 || echo 0)/tB:$([ "${ab:1:1}" = t ] && echo 1 || echo 0)"
}
PATTERN="($(for p in "${PRODUCTS[@]}"; do bench_name "$p"; done | paste -sd'|'))/"
BENCH="$BUILD/bench/brisk_bench_gemm"
[ -x "$BENCH" ] || { echo "compare_gemm: $BENCH not found (configure with -DBRISK_BUILD_BENCH=ON and build)" >&2; exit 2; }
PY=$(bench/torch_venv.sh)
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
# Each side's figure per round is a median of 7: torch_gemm.py's 7 timings
# (each of one or more products, about 20 ms) after a warm-up product; here 7
# repetitions of at least 0.1 s each after 0.1 s of warm-up (a 2048^3
# product, or several smaller ones). Without it each library's first
# repetition ran cold (pool threads, packing buffers, the core's clock)
# and often came out 10-25% low on the 2-core VM, brisk's and OpenBLAS's
# alike. A product the host stalls then weighs on neither side's figure (a
# mean over one second of products, as before, let it weigh on brisk's
# only). Rows are keyed by product name.
lib_rows() {  # native|openblas -> "native MxNxK:ab rate" (or openblas) lines
  BRISK_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS "$BENCH" --benchmark_min_time=0.1 \
    --benchmark_min_warmup_time=0.1 --benchmark_repetitions=7 --benchmark_report_aggregates_only=true \
    --benchmark_filter="^BM_$1/$PATTERN" 2>/dev/null |
    sed -n 's|^BM_\([a-z]*\)/M:\([0-9]*\)/N:\([0-9]*\)/K:\([0-9]*\)/tA:\([01]\)/tB:\([01]\)/.*_median .*GFLOPs=\([0-9.]*\)G/s.*|\1 \2x\3x\4:\5\6 \7|p' |
    sed 's/:00 /:nn /; s/:01 /:nt /; s/:10 /:tn /; s/:11 /:tt /'
}
torch_rows() {
  "$PY" bench/torch_gemm.py --threads "$THREADS" --shapes "${PRODUCTS[@]}" |
    sed -n 's/.* shape \([0-9x:nt]*\) .*gflops \([0-9.]*\) .*/mkl \1 \2/p'
}
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; $THREADS threads;" \
     "torch $("$PY" -c 'import torch; print(torch.__version__)'); $ROUNDS rounds"
# Each library in a process of its own, their order rotated every round
# (native, OpenBLAS, MKL; then OpenBLAS, MKL, native; ...). Native and
# OpenBLAS used to share a process, OpenBLAS always second: whatever
# changes over a process's first seconds, or between one library's run and
# the next, fell on one side only.
RUNNERS=("lib_rows native" "lib_rows openblas" torch_rows)
for ((r = 0; r < ROUNDS; r++)); do
  for ((i = 0; i < 3; i++)); do ${RUNNERS[(r + i) % 3]} >> "$OUT"; done
done
/usr/bin/python3 - "$OUT" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print("| product MxNxK:ab | native GFLOP/s | OpenBLAS | MKL (torch.mm) | native / best peer |")
print("| --- | ---: | ---: | ---: | ---: |")
for n in dict.fromkeys(r[1] for r in rows):
    cell, med = [], {}
    for lib in ("native", "openblas", "mkl"):
        v = [float(r[2]) for r in rows if r[0] == lib and r[1] == n]
        med[lib] = st.median(v) if v else float("nan")
        cell.append(f"{med[lib]:.1f} [{min(v):.1f}, {max(v):.1f}]" if v else "n/a")
    print(f"| {n} | {' | '.join(cell)} | {med['native'] / max(med['openblas'], med['mkl']):.3f} |")
PY
