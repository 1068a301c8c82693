#!/usr/bin/env bash
# Configures (Release, Ninja) and builds brisk into ./build. Extra arguments go
# to CMake, e.g. scripts/build.sh -DBRISK_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build --parallel "$(nproc)"
