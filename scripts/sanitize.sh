#!/usr/bin/env bash
# Sanitizer runs (part of scripts/test.sh, so CI runs them):
#   1. build-fuzz: clang with ASan+UBSan and libFuzzer coverage (the fuzz
#      harnesses are built here too); runs the unit tests listed below.
#   2. build-tsan: g++ with TSan; runs the thread-pool, loader and
#      determinism tests (the code that shares memory across threads).
# The ASan subset is every unit test except [speedup] (end-to-end timing
# harness runs, slow under ASan) and [cuda] (no device in CI).
#   scripts/sanitize.sh             build both and run them
#   scripts/sanitize.sh build-only  build the ASan/fuzz tree only (scripts/fuzz.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
common=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g"
        -DBRISK_CUDA=OFF -DBRISK_BUILD_BENCH=OFF)
cmake -S . -B build-fuzz "${common[@]}" -DCMAKE_CXX_COMPILER=clang++ -DBRISK_SANITIZE=address,undefined \
      -DBRISK_FUZZ=ON >/dev/null
cmake --build build-fuzz --parallel "$(nproc)"
[ "${1:-}" = build-only ] && exit 0

# The caching allocator hides use-after-free from ASan: off here.
export BRISK_CACHING_ALLOCATOR=0
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== ASan+UBSan: unit tests"
build-fuzz/tests/brisk_tests '~[cuda]' '~[speedup]' --order decl

cmake -S . -B build-tsan "${common[@]}" -DBRISK_SANITIZE=thread >/dev/null
cmake --build build-tsan --parallel "$(nproc)" --target brisk_tests
echo "== TSan: thread pool, loader, determinism"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  build-tsan/tests/brisk_tests '[threads],[loader],[rng]' --order decl
echo "sanitize: ASan+UBSan and TSan runs clean"
