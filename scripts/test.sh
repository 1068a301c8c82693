#!/usr/bin/env bash
# README command 2: install dependencies, build, and run the whole test suite:
#   1. the Release build's CTest suite (unit tests, command-line and
#      reliability tests);
#   2. scripts/check_install.sh: cmake --install, then examples/train_mlp
#      built against the installed package (find_package(brisk)) and run;
#   3. scripts/sanitize.sh: the unit tests under ASan+UBSan, the threaded code
#      under TSan;
#   4. scripts/fuzz.sh: each libFuzzer harness for BRISK_FUZZ_SECONDS (30);
#   5. scripts/check_portable.sh: the portable build (BRISK_NATIVE=OFF)
#      compiled and its unit tests run.
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
echo "== the portable build"
scripts/check_portable.sh
echo "stages (ctest suite, install + example, sanitizers, fuzzers, portable build) all passed"
echo "test.sh: 5 passed, 0 failed"
