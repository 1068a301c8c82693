// The f32 FMA peak of this machine, measured: 12 independent FMA chains on
// each of the pool's threads (enough to cover latency x ports), on zmm with
// AVX-512, else on ymm with AVX2 + FMA. Benchmarks
// that report "% of peak" register it next to their kernels, so the peak and
// the kernels come from one run.
#pragma once
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <thread>
#include <vector>

#include "core/thread_pool.h"

namespace brisk::bench {

// The lanes of 12 accumulators summed (through memory: GCC 12's
// _mm512_reduce_add_ps warns under a target attribute), so no chain is dead code.
__attribute__((target("avx512f"))) inline float sum_lanes(const __m512 (&acc)[12]) {
  alignas(64) float lanes[16];
  float s = 0;
  for (const __m512& a : acc) {
    _mm512_store_ps(lanes, a);
    for (float v : lanes) s += v;
  }
  return s;
}

__attribute__((target("avx512f"))) inline double fma_chain(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(float(i));
  __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, c);
  return sum_lanes(acc);
}

__attribute__((target("avx2,fma"))) inline double fma_chain_avx2(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(float(i));
  __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, c);
  alignas(32) float lanes[8];
  float s = 0;
  for (int i = 0; i < 12; ++i) {
    _mm256_store_ps(lanes, acc[i]);
    for (float v : lanes) s += v;
  }
  return s;
}

// The same with AVX512-BF16 dot products (vdpbf16ps: 16 lanes x 2 bf16
// products, 64 FLOP each): the ceiling of the AVX512-BF16 GEMM kernel. It is
// not the FMA peak doubled everywhere: on the Xeon with AMX this project
// measured, vdpbf16ps issues at half the rate of vfmadd231ps, so its FLOP
// peak equals the f32 one (and a bf16 path without AMX cannot beat f32 there).
__attribute__((target("avx512f,avx512bf16"))) inline double bf16dp_chain(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(float(i));
  __m512bh a = (__m512bh)_mm512_set1_epi32(0x3f803f80), b = (__m512bh)_mm512_set1_epi32(0x3a803a80);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], a, b);
  return sum_lanes(acc);
}

// Runs `chain` (12 chains x `iters` instructions) on every thread of the
// pool at once; each instruction does `flop` FLOP.
inline void run_chains(benchmark::State& st, double (*chain)(int64_t), double flop) {
  int threads = get_num_threads();
  const int64_t iters = 1 << 20;
  for (auto _ : st) {
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) ts.emplace_back([&] { benchmark::DoNotOptimize(chain(iters)); });
    for (auto& t : ts) t.join();
  }
  st.counters["GFLOPs"] = benchmark::Counter(double(threads) * double(iters) * 12 * flop,
                                             benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

inline void BM_fma_peak(benchmark::State& st) {
  if (__builtin_cpu_supports("avx512f")) {
    st.SetLabel("zmm");
    run_chains(st, fma_chain, 16 * 2);
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    st.SetLabel("ymm (no AVX-512)");
    run_chains(st, fma_chain_avx2, 8 * 2);
  } else {
    st.SkipWithError("SKIPPED: no AVX2 + FMA");
  }
}

inline void BM_bf16dp_peak(benchmark::State& st) {
  if (!__builtin_cpu_supports("avx512bf16")) {
    st.SkipWithError("SKIPPED: no AVX512-BF16");
    return;
  }
  run_chains(st, bf16dp_chain, 16 * 4);
}

}  // namespace brisk::bench
