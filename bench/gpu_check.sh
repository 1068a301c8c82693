#!/usr/bin/env bash
# The one script to run on a machine with a GPU (docs/cuda.md).
# Prepare here first (no GPU needed): bash bench/gpu_bundle.sh, then
#   run(command="bash bench/gpu_check.sh", carry=[".gpu"], timeout_s=540)
# It runs the carried sm_90 programs (or builds with CUDA there if none were
# carried), the CUDA test cases, the GPU benchmarks (native vs cuBLAS GEMM,
# the cnn step with native and cuDNN convolutions) and PyTorch eager on the
# same card, and writes a short table to $OUT/gpu_check.md (the device tool
# brings $OUT back). Each step has its own time limit.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
R="$OUT/gpu_check.md"
step() { echo "## $1" | tee -a "$R"; }
{
  echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -5
  nvcc --version 2>&1 | tail -2 || /usr/local/cuda/bin/nvcc --version 2>&1 | tail -2
  echo '```'
} > "$R"

# cuBLAS/cuDNN from PyTorch's nvidia-* wheels, the CUDA runtime from the toolkit.
libdirs=$(timeout 60 find /opt /usr -xdev \( -name 'libcublas.so.13*' -o -name 'libcudnn.so.9*' -o -name 'libcudart.so.13*' \) \
  -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="$PWD/.gpu/lib:${libdirs}${LD_LIBRARY_PATH:-}"

if [ -x .gpu/bin/brisk_tests ] && .gpu/bin/brisk_tests --list-tests > /dev/null 2>&1; then
  BIN=.gpu/bin
  step "programs: carried (built for sm_90 on the dev machine)"
else
  step "programs: building here (BRISK_CUDA=ON, sm_90)"
  t0=$(date +%s)
  [ -x .gpu/bin/brisk_tests ] && .gpu/bin/brisk_tests --list-tests 2>&1 | head -3 | tee -a "$R"
  timeout 300 cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DBRISK_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" > "$OUT/build.log" 2>&1 &&
    timeout 300 cmake --build build-gpu -j"$(nproc)" --target brisk_tests brisk_cli brisk_bench_cuda >> "$OUT/build.log" 2>&1
  echo "exit $? in $(( $(date +%s) - t0 )) s (log: build.log)" | tee -a "$R"
  tail -5 "$OUT/build.log" | tee -a "$R"
  mkdir -p build-gpu/bin && cp build-gpu/tests/brisk_tests build-gpu/brisk build-gpu/bench/brisk_bench_cuda build-gpu/bin/ 2>/dev/null
  BIN=build-gpu/bin
fi

step "CUDA tests (brisk_tests \"[cuda]\")"
# Synchronous launches: a faulting kernel is reported by the test that ran it.
CUDA_LAUNCH_BLOCKING=1 timeout 240 "$BIN/brisk_tests" "[cuda]" > "$OUT/tests_cuda.log" 2>&1
echo "exit $?" | tee -a "$R"
grep -E "^(test cases|assertions)|FAILED|SKIPPED" "$OUT/tests_cuda.log" | head -20 | tee -a "$R"

step "GPU benchmarks (brisk_bench_cuda)"
timeout 150 "$BIN/brisk_bench_cuda" --benchmark_min_time=0.3 > "$OUT/bench_cuda.txt" 2>&1
echo "exit $?" | tee -a "$R"
grep -E "^BM_" "$OUT/bench_cuda.txt" | tee -a "$R"

step "PyTorch eager on the card (bench/torch_cuda.py)"
PY=$([ -f .gpu/bin/torch_cuda.py ] && echo .gpu/bin/torch_cuda.py || echo bench/torch_cuda.py)
PYTHONUNBUFFERED=1 timeout 120 python3 "$PY" 2>&1 | tee -a "$R"

step "Trainer on cuda (the mlp test case, timed)"
timeout 60 "$BIN/brisk_tests" "cuda: brisk train --device cuda trains the mlp" -d yes 2>&1 | grep -E "seconds|passed|FAILED" | tail -3 | tee -a "$R"
step "compute-sanitizer memcheck on the CUDA tests (where the runtime supports it)"
if command -v compute-sanitizer > /dev/null; then
  BRISK_CUDA_CACHING_ALLOCATOR=0 timeout 150 compute-sanitizer --tool memcheck --print-limit 20 \
    "$BIN/brisk_tests" "[cuda]" > "$OUT/memcheck.log" 2>&1
  echo "exit $?" | tee -a "$R"
  grep -E "ERROR SUMMARY|Invalid|out of bounds|^test cases" "$OUT/memcheck.log" | head -10 | tee -a "$R"
else
  echo "compute-sanitizer not found" | tee -a "$R"
fi
echo "table: $R"
