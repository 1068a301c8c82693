#!/usr/bin/env bash
# The portable build (-DBRISK_NATIVE=OFF: no -march=native, the ISA-specific
# kernels only in their own files, chosen by CPUID at run time) configured in
# BUILD (default: build-portable), its unit tests built and run in one
# process. The native build (scripts/build.sh) is what the other stages test;
# this one catches a kernel file that relies on -march=native for
# instructions its own flags do not enable.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-portable}
mkdir -p "$BUILD"
LOG="$BUILD/check_portable"
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBRISK_NATIVE=OFF -DBRISK_CUDA=OFF \
      -DBRISK_BUILD_BENCH=OFF > "$LOG.configure.log" 2>&1 || { cat "$LOG.configure.log"; exit 1; }
cmake --build "$BUILD" --parallel "$(nproc)" --target brisk_tests > "$LOG.build.log" 2>&1 ||
  { tail -50 "$LOG.build.log"; echo "check_portable.sh: the portable build failed" >&2; exit 1; }
"$BUILD/tests/brisk_tests" --order decl > "$LOG.tests.log" 2>&1 ||
  { tail -80 "$LOG.tests.log"; echo "check_portable.sh: the portable build's unit tests failed" >&2; exit 1; }
tail -2 "$LOG.tests.log"
echo "check_portable.sh: the portable build (BRISK_NATIVE=OFF) compiled and its unit tests passed"
