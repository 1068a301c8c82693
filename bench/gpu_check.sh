#!/usr/bin/env bash
# The one script to run on a machine with a GPU (docs/cuda.md).
# Prepare here first (no GPU needed): bash bench/gpu_bundle.sh, then
#   run(command="bash bench/gpu_check.sh", carry=[".gpu"], timeout_s=560)
# (the default BUDGET, 530 s, fits; a lease has 15 minutes of card time in all)
# It runs the carried sm_90 programs (or builds with CUDA there if none were
# carried), the CUDA test cases, the GPU benchmarks (native vs cuBLAS GEMM,
# the cnn step with native and cuDNN convolutions), PyTorch eager on the
# same card, the cnn trained 3 epochs on Fashion-MNIST with --device cuda
# (where the bundle carries the data), and compute-sanitizer memcheck, and
# writes a short table to $OUT/gpu_check.md (the device tool brings $OUT
# back). The whole script keeps inside BUDGET seconds (default 530); each
# step gets the smaller of its own limit and what is left.
#   bash bench/gpu_check.sh [STEP ...]   steps: tests bench torch pairs train memcheck
# (pairs: the cnn step, brisk and PyTorch in alternating rounds, bench/gpu_pairs.py;
#  profile, not run by default: brisk profile of the cnn step on cuda, native
#  and with cuBLAS GEMMs)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check}
mkdir -p "$OUT"
R="$OUT/gpu_check.md"
BUDGET=${BUDGET:-530}
if ! [[ $BUDGET =~ ^[0-9]+$ ]] || (( BUDGET < 10 || BUDGET > 3600 )); then
  echo "gpu_check.sh: BUDGET must be whole seconds in [10, 3600], got '$BUDGET'" >&2
  exit 2
fi
T0=$(date +%s)
STEPS=${*:-tests bench torch pairs train memcheck}
for s in $STEPS; do
  case $s in tests|bench|torch|pairs|train|profile|memcheck) ;;
    *) echo "gpu_check.sh: unknown step '$s' (tests bench torch pairs train profile memcheck)" >&2; exit 2 ;;
  esac
done
want() { [[ " $STEPS " == *" $1 "* ]]; }
step() { echo "## $1 (t=$(( $(date +%s) - T0 )) s)" | tee -a "$R"; }
# limit N: N seconds, or what is left of the budget if that is less.
limit() { local left=$(( BUDGET - ($(date +%s) - T0) )); (( left < $1 )) && echo $(( left > 1 ? left : 1 )) || echo "$1"; }
{
  echo "# GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  echo
  echo '```'
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 | head -5
  nvcc --version 2>&1 | tail -2 || /usr/local/cuda/bin/nvcc --version 2>&1 | tail -2
  grep -m1 "model name" /proc/cpuinfo
  echo '```'
} > "$R"

[ -f .gpu/programs.tar.gz ] && tar -C .gpu -xzf .gpu/programs.tar.gz
# cuBLAS, cuDNN and NCCL from PyTorch's nvidia-* wheels, the CUDA runtime from the toolkit.
libdirs=$(timeout 60 find /opt /usr -xdev \( -name 'libcublas.so.13*' -o -name 'libcudnn.so.9*' -o -name 'libnccl.so.2*' -o -name 'libcudart.so.13*' \) \
  -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
export LD_LIBRARY_PATH="$PWD/.gpu/lib:${libdirs}${LD_LIBRARY_PATH:-}"

if [ -x .gpu/bin/brisk_tests ] && .gpu/bin/brisk_tests --help > /dev/null 2>&1; then
  BIN=.gpu/bin
  step "programs: carried (built for sm_90 on the dev machine)"
else
  step "programs: building here (BRISK_CUDA=ON, sm_90)"
  [ -x .gpu/bin/brisk_tests ] && .gpu/bin/brisk_tests --list-tests 2>&1 | head -3 | tee -a "$R"
  timeout "$(limit 300)" cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DBRISK_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="90-real;90-virtual" > "$OUT/build.log" 2>&1 &&
    timeout "$(limit 300)" cmake --build build-gpu -j"$(nproc)" --target brisk_tests brisk_cli brisk_bench_cuda >> "$OUT/build.log" 2>&1
  echo "exit $?" | tee -a "$R"
  tail -5 "$OUT/build.log" | tee -a "$R"
  mkdir -p build-gpu/bin && cp build-gpu/tests/brisk_tests build-gpu/brisk build-gpu/bench/brisk_bench_cuda build-gpu/bin/ 2>/dev/null
  BIN=build-gpu/bin
fi

if want tests; then
  step "CUDA tests (brisk_tests \"[cuda]\")"
  # Synchronous launches: a faulting kernel is reported by the test that ran it.
  CUDA_LAUNCH_BLOCKING=1 timeout "$(limit 180)" "$BIN/brisk_tests" "[cuda]" -d yes > "$OUT/tests_cuda.log" 2>&1
  echo "exit $?" | tee -a "$R"
  grep -E "^(test cases|assertions)|FAILED|SKIPPED|^[0-9.]+ s: " "$OUT/tests_cuda.log" | head -40 | tee -a "$R"
fi

if want bench; then
  step "GPU benchmarks (brisk_bench_cuda)"
  timeout "$(limit 120)" "$BIN/brisk_bench_cuda" --benchmark_min_time=0.3 > "$OUT/bench_cuda.txt" 2>&1
  echo "exit $?" | tee -a "$R"
  grep -E "^BM_" "$OUT/bench_cuda.txt" | tee -a "$R"
fi

if want torch; then
  step "PyTorch eager on the card (bench/torch_cuda.py)"
  PY=bench/torch_cuda.py
  PYTHONUNBUFFERED=1 timeout "$(limit 90)" python3 "$PY" 2>&1 | tee -a "$R"
fi

if want pairs; then
  step "cnn step: brisk and PyTorch eager in alternating pairs (bench/gpu_pairs.py)"
  PY=bench/torch_cuda.py
  PYTHONUNBUFFERED=1 timeout "$(limit 120)" python3 bench/gpu_pairs.py "$BIN/brisk_bench_cuda" "${PAIRS:-5}" "$PY" 2>&1 | tee -a "$R"
fi

if want train; then
  step "brisk train --device cuda: the baseline cnn, 3 epochs, Fashion-MNIST"
  if [ -f .gpu/data/train-images-idx3-ubyte.gz ]; then
    rm -rf /tmp/run_cuda
    t=$(date +%s)
    timeout "$(limit 150)" "$BIN/brisk" train --config recipes/baseline_cnn.toml --epochs 3 \
      --device cuda --data-dir .gpu/data --progress off --out /tmp/run_cuda > "$OUT/train_cuda.log" 2>&1
    echo "exit $? in $(( $(date +%s) - t )) s" | tee -a "$R"
    tail -6 "$OUT/train_cuda.log" | tee -a "$R"
    cp /tmp/run_cuda/metrics.jsonl "$OUT/train_cuda_metrics.jsonl" 2>/dev/null
  else
    echo "no data carried (.gpu/data): skipped" | tee -a "$R"
  fi
fi

if want profile; then
  step "brisk profile --set device=cuda (the cnn step per kernel; native, then BRISK_GEMM=cublas)"
  if [ -f .gpu/data/train-images-idx3-ubyte.gz ]; then
    for g in native cublas; do
      BRISK_GEMM=$g timeout "$(limit 60)" "$BIN/brisk" profile --set device=cuda --set data-dir=.gpu/data --steps 100 \
        > "$OUT/profile_$g.txt" 2>&1
      echo "gemm $g: exit $?" | tee -a "$R"
      head -40 "$OUT/profile_$g.txt" | tee -a "$R"
    done
  else
    echo "no data carried (.gpu/data): skipped" | tee -a "$R"
  fi
fi

if want memcheck; then
  step "compute-sanitizer memcheck on the CUDA tests (where the runtime supports it)"
  if command -v compute-sanitizer > /dev/null; then
    BRISK_CUDA_CACHING_ALLOCATOR=0 timeout "$(limit 150)" compute-sanitizer --tool memcheck --print-limit 20 \
      "$BIN/brisk_tests" "[cuda]" "~cuda: brisk train --device cuda trains the mlp" > "$OUT/memcheck.log" 2>&1
    echo "exit $?" | tee -a "$R"
    grep -E "ERROR SUMMARY|Invalid|out of bounds|^test cases" "$OUT/memcheck.log" | head -10 | tee -a "$R"
  else
    echo "compute-sanitizer not found" | tee -a "$R"
  fi
fi
echo "total $(( $(date +%s) - T0 )) s; table: $R"
