// Layer norm and batch norm, forward + backward, per backend: the reference
// kernel (serial, in double) against the optimized CPU kernel, side by side
// in one run. Shapes: layer norm over [4096, 768] rows (a transformer's
// activations); batch norm over the cnn's first conv output [128, 32, 28, 28].
//   ./build/bench/brisk_bench_norm --benchmark_min_time=0.3
// Arg: 0 ref, 1 cpu.
#include <benchmark/benchmark.h>

#include "brisk.h"

using namespace brisk;
namespace F = brisk::nn::functional;

static const char* backend_of(int64_t i) { return i == 0 ? "ref" : "cpu"; }

static void BM_layer_norm(benchmark::State& st) {
  ForceBackend force(backend_of(st.range(0)));
  Tensor x = randn({4096, 768}).requires_grad_(true);
  Tensor w = ones({768}).requires_grad_(true), b = zeros({768}).requires_grad_(true);
  Tensor g = randn({4096, 768});
  for (auto _ : st) {
    Tensor y = F::layer_norm(x, {768}, w, b);
    sum(y * g).backward();
    benchmark::DoNotOptimize(x.grad().raw_data());
  }
  if (last_backend("layer_norm_fwd") != backend_of(st.range(0))) st.SkipWithError("the kernel declined");
}
static void BM_batch_norm(benchmark::State& st) {
  ForceBackend force(backend_of(st.range(0)));
  Tensor x = randn({128, 32, 28, 28}).requires_grad_(true);
  Tensor w = ones({32}).requires_grad_(true), b = zeros({32}).requires_grad_(true);
  Tensor rm = zeros({32}), rv = ones({32});
  Tensor g = randn({128, 32, 28, 28});
  for (auto _ : st) {
    Tensor y = F::batch_norm(x, rm, rv, w, b, true);
    sum(y * g).backward();
    benchmark::DoNotOptimize(x.grad().raw_data());
  }
}
BENCHMARK(BM_layer_norm)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_batch_norm)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
