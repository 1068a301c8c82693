// Memory-bound elementwise ops over 16M elements, f32 vs bf16 vs f16 storage
// (16-bit values are computed in f32 and stored in 16 bits): bytes moved per
// second, counting each input read and the output written once.
//   ./build/bench/brisk_bench_memory --benchmark_min_time=0.5
// Arg: 0 f32, 1 bf16, 2 f16. Also the fused bias + GELU kernels at a
// transformer MLP's shape (gpt-small: [B T = 4096, 4 C = 512], f32), whose
// erf and exp make them compute-heavy for an elementwise op.
#include <benchmark/benchmark.h>

#include "brisk.h"
#include "core/dispatch.h"
#include "core/op_keys.h"

using namespace brisk;

static DType dt_of(int64_t i) { return i == 0 ? DType::f32 : i == 1 ? DType::bf16 : DType::f16; }
constexpr int64_t kN = int64_t(1) << 24;

static void BM_relu(benchmark::State& st) {
  DType dt = dt_of(st.range(0));
  Tensor x = randn({kN}).to(dt);
  for (auto _ : st) benchmark::DoNotOptimize(relu(x).raw_data());
  st.counters["GB/s"] = benchmark::Counter(2.0 * double(kN * int64_t(dtype_size(dt))),
                                           benchmark::Counter::kIsIterationInvariantRate);
}
static void BM_add(benchmark::State& st) {
  DType dt = dt_of(st.range(0));
  Tensor x = randn({kN}).to(dt), y = randn({kN}).to(dt);
  for (auto _ : st) benchmark::DoNotOptimize((x + y).raw_data());
  st.counters["GB/s"] = benchmark::Counter(3.0 * double(kN * int64_t(dtype_size(dt))),
                                           benchmark::Counter::kIsIterationInvariantRate);
}
// Arg: 0 forward (reads y, writes out), 1 backward (reads g and y, writes gy).
static void BM_bias_gelu(benchmark::State& st) {
  bool bwd = st.range(0) == 1;
  Tensor g = randn({4096, 512}), y = randn({4096, 512}), b = randn({512}), out = empty({4096, 512});
  Tensor fwd_in[2] = {y, b}, bwd_in[3] = {g, y, b}, outs[1] = {out};
  KernelArgs args = bwd ? KernelArgs{bwd_in, outs, nullptr} : KernelArgs{fwd_in, outs, nullptr};
  for (auto _ : st) dispatch(bwd ? opkey::bias_gelu_bwd : opkey::bias_gelu_fwd, y.device(), DType::f32, args);
  st.counters["GB/s"] = benchmark::Counter((bwd ? 3.0 : 2.0) * double(y.numel() * 4),
                                           benchmark::Counter::kIsIterationInvariantRate);
}
// One SGD step (momentum 0.9, weight decay) over the mlp's parameters
// (784-512-256-10: 535k floats in 6 tensors), the optimizer phase of its
// training step: reads grad, param and momentum, writes param and momentum.
static void BM_sgd_mlp(benchmark::State& st) {
  optim::NamedParams ps;
  const Shape shapes[6] = {{512, 784}, {512}, {256, 512}, {256}, {10, 256}, {10}};
  int64_t elems = 0;
  for (int i = 0; i < 6; ++i) {
    Tensor p = randn(shapes[i]);
    p.requires_grad_();
    p.set_grad(randn(shapes[i]));
    ps.emplace_back(std::string("p").append(std::to_string(i)), p);  // (not "p" + ...: a GCC 12 false warning)
    elems += p.numel();
  }
  optim::SGD opt(ps, {.lr = 1e-3, .momentum = 0.9, .weight_decay = 5e-4});
  opt.step();  // allocates the momentum buffers
  for (auto _ : st) opt.step();
  st.counters["GB/s"] = benchmark::Counter(5.0 * double(elems * 4), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_sgd_mlp)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_bias_gelu)->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_relu)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_add)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
