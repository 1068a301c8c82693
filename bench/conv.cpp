// conv2d forward and backward at the cnn's shapes (batch 128): the fused
// native kernels vs the composite (whole-batch im2col + GEMM) on native and on
// OpenBLAS GEMM. GFLOPs counts 2*N*O*C*kh*kw*Ho*Wo per pass.
// BM_conv_kernel times each of the three native kernels alone at the cnn's
// layers, next to the FMA peak (BM_fma_peak) measured in the same run.
//   ./build/bench/brisk_bench_conv --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include "bench/fma_peak.h"
#include "brisk.h"
#include "core/dispatch.h"
#include "core/op_keys.h"
#include "core/autocast.h"
#include "kernels/cpu/conv2d_pool_sparse_grad.h"
#include "kernels/cpu/gemm/sgemm.h"

namespace F = brisk::nn::functional;
using namespace brisk;

// Args: N, C, H, O, pass (0 forward, 1 forward+backward), path (0 fused, 1 composite native, 2 composite openblas)
static void BM_conv(benchmark::State& st) {
  int64_t N = st.range(0), C = st.range(1), H = st.range(2), O = st.range(3);
  bool bwd = st.range(4), composite = st.range(5) > 0;
  std::string prev = gemm_backend();
  if (st.range(5) == 2) {
    try {
      set_gemm_backend("openblas");
    } catch (const Error& e) {
      st.SkipWithError(e.what());
      return;
    }
  }
  manual_seed(0);
  Tensor x = randn({N, C, H, H}).requires_grad_(C > 1), w = (randn({O, C, 3, 3}) * 0.1).requires_grad_(),
         b = zeros({O}).requires_grad_();
  for (auto _ : st) {
    Tensor y = composite ? F::conv2d_composite(x, w, b, 1, 1, 1, 1, true) : F::conv2d_relu(x, w, b, 1, 1, 1, 1, true);
    if (bwd) {
      y.backward(ones_like(y));
      w.set_grad(Tensor());
      b.set_grad(Tensor());
      x.set_grad(Tensor());
    }
    benchmark::DoNotOptimize(y.raw_data());
  }
  set_gemm_backend(prev);
  // forward 1x, backward: weight grad 1x + input grad 1x (when the input needs it)
  double passes = bwd ? (C > 1 ? 3.0 : 2.0) : 1.0;
  st.counters["GFLOPs"] = benchmark::Counter(passes * 2.0 * double(N * O * C * 9 * H * H),
                                             benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_conv)
    ->ArgNames({"N", "C", "H", "O", "bwd", "path"})
    ->ArgsProduct({{128}, {1}, {28}, {32}, {0, 1}, {0, 1, 2}})
    ->ArgsProduct({{128}, {32}, {14}, {64}, {0, 1}, {0, 1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
// One native kernel at a cnn layer (batch 128, 3x3, pad 1, + bias):
// Args: layer (1: 1->32 at 28x28, 2: 32->64 at 14x14), kernel (0 fwd, 1 bwd_input, 2 bwd_weight),
// bf16 (1: as under bf16 autocast with its casts folded in: the bf16 GEMM, AMX
// tiles where the machine has them; skipped without a bf16 GEMM), pool (1: the
// form the cnn runs, conv + ReLU + 2x2 max pool fused: conv2d_pool_fwd, and
// backward kernels that expand the pooled gradient through the window codes).
static void BM_conv_kernel(benchmark::State& st) {
  bool bf16 = st.range(2);
  GemmBf16Scope scope(bf16);
  if (bf16 && !kern::cpu::gemm_bf16_active()) {
    st.SkipWithError("SKIPPED: no bf16 GEMM on this CPU");
    return;
  }
  bool l2 = st.range(0) == 2;
  int64_t N = 128, C = l2 ? 32 : 1, H = l2 ? 14 : 28, O = l2 ? 64 : 32;
  manual_seed(0);
  Tensor x = randn({N, C, H, H}), w = randn({O, C, 3, 3}) * 0.1, b = zeros({O}), gy = randn({N, O, H, H});
  Tensor y = empty({N, O, H, H}), gx = empty({N, C, H, H}), gw = empty({O, C * 9}), gb = empty({O});
  bool pool = st.range(3);
  ConvParams p{Geom2d{N, C, H, H, 3, 3, 1, 1, 1, 1, 1, 1, H, H}, pool, bf16};
  Tensor yp = empty({N, O, H / 2, H / 2}), code = empty(yp.shape(), TensorOptions(DType::u8));
  if (pool) {  // the window codes of this x (the backward kernels' third input), and a pooled gradient
    Tensor ins[3] = {x, w, b}, outs[2] = {yp, code};
    dispatch(opkey::conv2d_pool_fwd, DeviceType::cpu, DType::f32, KernelArgs{ins, outs, &p});
    gy = randn(yp.shape());
  }
  for (auto _ : st) {
    if (st.range(1) == 0) {
      Tensor ins[3] = {x, w, b}, outs[2] = {pool ? yp : y, code};
      dispatch(pool ? opkey::conv2d_pool_fwd : opkey::conv2d_fwd, DeviceType::cpu, DType::f32,
               KernelArgs{ins, std::span<Tensor>(outs, pool ? 2 : 1), &p});
    } else if (st.range(1) == 1) {
      Tensor ins[3] = {gy, w, pool ? code : Tensor()}, outs[1] = {gx};
      dispatch(opkey::conv2d_bwd_input, DeviceType::cpu, DType::f32, KernelArgs{ins, outs, &p});
    } else {
      Tensor ins[3] = {gy, x, pool ? code : Tensor()}, outs[2] = {gw, gb};
      dispatch(opkey::conv2d_bwd_weight, DeviceType::cpu, DType::f32, KernelArgs{ins, outs, &p});
    }
  }
  st.counters["GFLOPs"] = benchmark::Counter(2.0 * double(N * O * C * 9 * H * H),
                                             benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_conv_kernel)
    ->ArgNames({"layer", "kernel", "bf16", "pool"})
    ->ArgsProduct({{1, 2}, {0, 1, 2}, {0, 1}, {0, 1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
// The second layer's pooled backward kernels where about half the pooled
// windows are ReLU'd (a bias 1.7 below zero; the cnn's own training keeps
// about half of them, where BM_conv_kernel's zero bias keeps 94%): the
// sparse scatter of the live values against the dense kernels.
// Args: kernel (1 bwd_input, 2 bwd_weight), bf16, sparse (0:
// set_conv_pool_sparse(false), the dense kernel), relu (1: that bias; 0: a
// zero bias, 94% of the windows live, where the scatter's share test picks).
static void BM_pool_grad(benchmark::State& st) {
  bool bf16 = st.range(1), sparse = st.range(2), input = st.range(0) == 1, relu = st.range(3);
  GemmBf16Scope scope(bf16);
  if (bf16 && !kern::cpu::gemm_bf16_active()) {
    st.SkipWithError("SKIPPED: no bf16 GEMM on this CPU");
    return;
  }
  const int64_t N = 128, C = 32, H = 14, O = 64;
  manual_seed(0);
  Tensor x = randn({N, C, H, H}), w = randn({O, C, 3, 3}) * 0.1, b = full({O}, relu ? -1.7f : 0.f);
  Tensor yp = empty({N, O, H / 2, H / 2}), code = empty(yp.shape(), TensorOptions(DType::u8)), gx = empty({N, C, H, H});
  Tensor gw = empty({O, C * 9}), gb = empty({O});
  ConvParams p{Geom2d{N, C, H, H, 3, 3, 1, 1, 1, 1, 1, 1, H, H}, true, bf16};
  {
    Tensor ins[3] = {x, w, b}, outs[2] = {yp, code};
    dispatch(opkey::conv2d_pool_fwd, DeviceType::cpu, DType::f32, KernelArgs{ins, outs, &p});
  }
  Tensor gy = randn(yp.shape());
  int64_t live = 0;
  for (int64_t i = 0; i < code.numel(); ++i) live += code.data_ptr<uint8_t>()[i] < 4;
  kern::cpu::set_conv_pool_sparse(sparse);
  for (auto _ : st) {
    if (input) {
      Tensor ins[3] = {gy, w, code}, outs[1] = {gx};
      dispatch(opkey::conv2d_bwd_input, DeviceType::cpu, DType::f32, KernelArgs{ins, outs, &p});
    } else {
      Tensor ins[3] = {gy, x, code}, outs[2] = {gw, gb};
      dispatch(opkey::conv2d_bwd_weight, DeviceType::cpu, DType::f32, KernelArgs{ins, outs, &p});
    }
  }
  kern::cpu::set_conv_pool_sparse(true);
  st.counters["live"] = double(live) / double(code.numel());
  st.counters["GFLOPs"] = benchmark::Counter(2.0 * double(N * O * C * 9 * H * H),
                                             benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}
BENCHMARK(BM_pool_grad)
    ->ArgNames({"kernel", "bf16", "sparse", "relu"})
    ->ArgsProduct({{1, 2}, {0, 1}, {0, 1}, {1, 0}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(brisk::bench::BM_fma_peak)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
