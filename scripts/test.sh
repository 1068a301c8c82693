#!/usr/bin/env bash
# README command 2: install dependencies, build, and run the whole test suite:
#   1. the Release build's CTest suite (unit tests, command-line and
#      reliability tests);
#   2. scripts/check_install.sh: cmake --install, then examples/train_mlp
#      built against the installed package (find_package(brisk)) and run;
#   3. scripts/sanitize.sh: the unit tests under ASan+UBSan, the threaded code
#      under TSan, both on portable builds (BRISK_NATIVE=OFF: the kernels
#      chosen by CPUID at run time, as a binary built for other CPUs runs);
#   4. scripts/fuzz.sh: each libFuzzer harness for BRISK_FUZZ_SECONDS (30).
# Any failure stops the run with a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
(cd build && ctest --output-on-failure --parallel "$(nproc)" --timeout 900)
echo "== install, and an out-of-tree example against it"
scripts/check_install.sh build
echo "== sanitizers"
scripts/sanitize.sh
echo "== fuzzing"
scripts/fuzz.sh "${BRISK_FUZZ_SECONDS:-30}"
echo "stages (ctest suite, install + example, sanitizers on the portable build, fuzzers) all passed"
echo "test.sh: 4 passed, 0 failed"
