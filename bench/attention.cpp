// Fused causal attention, forward and backward, on gpt-small's heads (batch
// 32, 4 heads, context 128, head width 32): the f32 kernels, and under bf16
// autocast the tiled kernels on the AVX512-BF16 GEMM and the AMX-tile kernels
// (kernels/cpu/attention_amx.cpp), side by side in one run. Kernels the
// machine lacks say SKIPPED.
//   ./build/bench/brisk_bench_attention --benchmark_min_time=0.3
// Arg: 0 f32, 1 bf16 on AVX512-BF16, 2 bf16 on AMX tiles. Phase: 0 forward, 1 backward.
#include <benchmark/benchmark.h>

#include "brisk.h"
#include "core/autocast.h"
#include "kernels/cpu/gemm/sgemm.h"

using namespace brisk;
namespace F = brisk::nn::functional;

static void BM_attention(benchmark::State& st) {
  const char* kernel = st.range(0) == 1 ? "avx512bf16" : st.range(0) == 2 ? "amx" : "";
  if (*kernel && !kern::cpu::bf16_gemm_kernel_supported(kernel)) {
    st.SkipWithError((std::string("SKIPPED: this machine lacks the bf16 kernel ") + kernel).c_str());
    return;
  }
  std::string prev = kern::cpu::bf16_gemm_kernel();
  if (*kernel) kern::cpu::set_bf16_gemm_kernel(kernel);
  Tensor q = randn({32, 4, 128, 32}).requires_grad_(), k = randn({32, 4, 128, 32}).requires_grad_(),
         v = randn({32, 4, 128, 32}).requires_grad_(), g = randn({32, 4, 128, 32});
  bool backward = st.range(1) == 1;
  AutocastGuard ac({*kernel ? LowPrecision::bf16 : LowPrecision::none});
  for (auto _ : st) {
    if (backward) st.PauseTiming();
    Tensor o = F::scaled_dot_product_attention(q, k, v, true);
    Tensor l = sum(o * g);
    if (backward) {
      st.ResumeTiming();
      l.backward();
    }
    benchmark::DoNotOptimize(o.raw_data());
  }
  kern::cpu::set_bf16_gemm_kernel(prev);
}
BENCHMARK(BM_attention)->ArgNames({"kernel", "bwd"})->ArgsProduct({{0, 1, 2}, {0, 1}})->UseRealTime()->Unit(benchmark::kMicrosecond);
BENCHMARK_MAIN();
