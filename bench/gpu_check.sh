#!/usr/bin/env bash
# The one script to run when a session is lent a GPU (issue "CUDA backend"):
# builds with CUDA (sm_90), runs the CUDA tests and whatever GPU benchmarks
# exist, checks PyTorch's CUDA for the side-by-side runs, and writes a short
# table to $OUT/gpu_check.md (the device tool brings $OUT back).
#   run(command="bash bench/gpu_check.sh", timeout_s=540)
# Each step has its own time limit so one slow step cannot eat the budget.
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
  /usr/local/cuda/bin/nvcc --version 2>&1 | tail -2
  echo '```'
} > "$R"

step "build (BRISK_CUDA=ON, sm_90)"
t0=$(date +%s)
timeout 300 cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DBRISK_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" > "$OUT/build.log" 2>&1 &&
  timeout 300 cmake --build build-gpu -j"$(nproc)" >> "$OUT/build.log" 2>&1
echo "exit $? in $(( $(date +%s) - t0 )) s (log: build.log)" | tee -a "$R"

step "CUDA tests"
( cd build-gpu && timeout 240 ctest -R "cuda" --output-on-failure > "$OUT/ctest_cuda.log" 2>&1; echo "exit $?" ) | tee -a "$R"
grep -E "tests passed|Skipped|Failed" "$OUT/ctest_cuda.log" | tee -a "$R"

step "GPU benchmarks"
found=0
for b in build-gpu/bench/brisk_bench_cuda*; do
  [ -x "$b" ] || continue
  found=1
  timeout 120 "$b" --benchmark_min_time=0.2 > "$OUT/$(basename "$b").txt" 2>&1
  grep -E "^BM_" "$OUT/$(basename "$b").txt" | tee -a "$R"
done
[ $found = 1 ] || echo "none built yet (no bench/cuda_*.cpp)" | tee -a "$R"

step "PyTorch on the card"
timeout 120 python3 - <<'PY' 2>&1 | tee -a "$R"
import time
try:
    import torch
except Exception as e:
    print("no torch:", e); raise SystemExit
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("device", torch.cuda.get_device_name(0))
    for dt in (torch.float16, torch.bfloat16):
        a = torch.randn(4096, 4096, device="cuda", dtype=dt); b = torch.randn(4096, 4096, device="cuda", dtype=dt)
        for _ in range(3): a @ b
        torch.cuda.synchronize(); t = time.perf_counter(); n = 20
        for _ in range(n): a @ b
        torch.cuda.synchronize(); s = (time.perf_counter() - t) / n
        print(f"cuBLAS via torch {dt}: 4096^3 in {s*1e3:.2f} ms = {2*4096**3/s/1e12:.1f} TFLOP/s")
PY
echo "table: $R"
