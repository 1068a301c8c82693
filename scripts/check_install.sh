#!/usr/bin/env bash
# Installs the build in BUILD (default: build) into a temporary prefix, then
# configures, builds and runs examples/train_mlp against it with
# find_package(brisk): what another CMake project does to use the library.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
[ -f "$BUILD/CMakeCache.txt" ] || { echo "check_install.sh: $BUILD is not a configured build folder" >&2; exit 2; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cmake --install "$BUILD" --prefix "$TMP/prefix" > "$TMP/install.log"
test -f "$TMP/prefix/lib/cmake/brisk/briskConfig.cmake" || { echo "check_install.sh: no package config installed" >&2; exit 1; }
test -f "$TMP/prefix/include/brisk/brisk.h" || { echo "check_install.sh: brisk.h not installed" >&2; exit 1; }
cmake -S examples/train_mlp -B "$TMP/example" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$TMP/prefix" > "$TMP/configure.log" || { cat "$TMP/configure.log"; exit 1; }
cmake --build "$TMP/example" > "$TMP/build.log" || { cat "$TMP/build.log"; exit 1; }
"$TMP/example/train_mlp"
echo "check_install.sh: examples/train_mlp built against the installed package and ran"
