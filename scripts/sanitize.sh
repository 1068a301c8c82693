#!/usr/bin/env bash
# Sanitizer runs (part of scripts/test.sh, so CI runs them):
#   1. build-fuzz: clang with ASan+UBSan and libFuzzer coverage (the fuzz
#      harnesses are built here too); runs the unit tests listed below.
#   2. build-tsan: g++ with TSan; builds and runs brisk_thread_tests, the
#      thread-pool, loader and RNG tests (the code that shares memory across
#      threads).
# The ASan subset is every unit test except [speedup] (end-to-end timing
# harness runs, slow under ASan), [long-train] (the two longest training runs,
# the composition matrix and the resnet's growth: 2-4 minutes each under ASan
# for code the other training tests already cover there; the Release suite
# runs them) and [cuda] (no device in CI), run as two shards in parallel.
#   scripts/sanitize.sh             build both and run them
#   scripts/sanitize.sh build-only  build the ASan/fuzz tree only (scripts/fuzz.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
# -g1 (line tables): reports keep file:line, the trees build and link faster.
# Both trees are portable builds (-DBRISK_NATIVE=OFF: no -march=native; the
# ISA-specific kernels get only their own files' flags and are chosen by CPUID
# at run time), so the sanitizer runs also check the build that ships to CPUs
# other than the build machine's: clang compiles every library and test source
# that way, g++ every library source, and the ASan shards run the unit tests
# on it. A kernel file that uses instructions its own flags do not enable
# fails to compile here.
common=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1"
        -DBRISK_CUDA=OFF -DBRISK_BUILD_BENCH=OFF -DBRISK_NATIVE=OFF)
cmake -S . -B build-fuzz "${common[@]}" -DCMAKE_CXX_COMPILER=clang++ -DBRISK_SANITIZE=address,undefined \
      -DBRISK_FUZZ=ON >/dev/null
# Only what the runs below and scripts/fuzz.sh use (not the command-line tool).
cmake --build build-fuzz --parallel "$(nproc)" --target brisk_tests fuzz_idx fuzz_safetensors fuzz_checkpoint \
      fuzz_config fuzz_method_spec
[ "${1:-}" = build-only ] && exit 0

# The caching allocator hides use-after-free from ASan: off here.
export BRISK_CACHING_ALLOCATOR=0
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Two shards in parallel (one brisk thread each, so the pair fills the two
# cores of a CI runner instead of one process leaving a core idle): the
# heaviest test files, and everything else. -# tags each test with its file.
echo "== ASan+UBSan: unit tests (2 shards in parallel)"
skip='~[cuda]~[speedup]~[long-train]'
# Balanced by test file on measured runs (2 cores, one thread per shard):
# the resnet training tests, the GPT, the kernel tests and the op table here,
# the composition matrix and the rest in the other shard.
heavy=('#test_surgery' '#test_resize' '#test_stochastic_depth' '#test_gpt' '#test_kernels' '#test_swa'
       '#test_layerwise' '#test_profile' '#test_op_table')
shard_a="" shard_b="$skip"
for f in "${heavy[@]}"; do
  shard_a+="${shard_a:+,}[$f]$skip"
  shard_b+="~[$f]"
done
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
BRISK_NUM_THREADS=1 build-fuzz/tests/brisk_tests -# "$shard_a" --order decl -d yes >"$logs/a" 2>&1 & pid_a=$!
BRISK_NUM_THREADS=1 build-fuzz/tests/brisk_tests -# "$shard_b" --order decl -d yes >"$logs/b" 2>&1 & pid_b=$!
status=0
for s in a b; do
  pid=pid_$s
  if wait "${!pid}"; then
    echo "shard $s: $(tail -n 2 "$logs/$s" | tr -s '\n' ' ')"
    echo "  slowest: $(grep -E '^[0-9.]+ s: ' "$logs/$s" | sort -rn | head -n 3 | cut -c1-70 | paste -sd '|')"
  else
    echo "shard $s FAILED:"
    cat "$logs/$s"
    status=1
  fi
done
[ "$status" -eq 0 ] || exit 1

cmake -S . -B build-tsan "${common[@]}" -DBRISK_SANITIZE=thread >/dev/null
cmake --build build-tsan --parallel "$(nproc)" --target brisk_thread_tests
echo "== TSan: thread pool, loader, determinism"
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
  build-tsan/tests/brisk_thread_tests '[threads],[loader],[rng]' --order decl --warn NoTests
echo "sanitize: ASan+UBSan and TSan runs clean"
