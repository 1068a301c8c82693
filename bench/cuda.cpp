// GPU benchmarks (docs/cuda.md), timed with CUDA events on the
// default stream. Skipped, with a message, without a device.
//   BM_cuda_gemm/<dtype>/<backend>/4096: C = A @ B, square, row-major;
//     the target is native f16/bf16 >= 70% of cuBLAS at 4096^3. Backend 2 is
//     native with the Hopper kernel off (BRISK_CUDA_WGMMA=0: the WMMA kernel).
//   BM_cuda_cnn_step/<gemm backend>/<conv backend>: one training step of the
//     Fashion-MNIST cnn at batch 128 (forward, cross-entropy, backward, SGD
//     with momentum), for the side-by-side with PyTorch eager
//     (bench/torch_cuda.py prints the same rows).
//   BM_cuda_cnn_step_bf16: the same step (native GEMM and conv) under bf16
//     autocast, --method precision:dtype=bf16's policy: the GEMMs on bf16
//     tensor cores (beside BM_cuda_cnn_step/0/0, its f32 counterpart).
//   BM_cuda_gpt_step: one training step of gpt-small (4 layers, 4 heads,
//     128 wide) at batch 32 x 128 tokens: forward, cross-entropy, backward,
//     AdamW (bench/torch_cuda.py's torch_gpt_step is the same step).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <optional>

#include "brisk.h"
#include "core/autocast.h"
#include "core/cuda.h"
#include "models/models.h"
#include "nn/functional.h"
#include "optim/optimizer.h"

using namespace brisk;
namespace F = brisk::nn::functional;

namespace {
const Device kCuda(DeviceType::cuda, 0);
const char* kDtypes[] = {"f32", "f16", "bf16"};
const DType kDtypeOf[] = {DType::f32, DType::f16, DType::bf16};
const char* kGemm[] = {"native", "cublas", "native"};
// Index 2: the native GEMM with the Hopper kernel switched off (gemm.cu's WMMA).
const char* kGemmLabel[] = {"native", "cublas", "native-wmma"};

void BM_cuda_gemm(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  DType t = kDtypeOf[state.range(0)];
  set_gemm_backend(kGemm[state.range(1)]);
  if (state.range(1) == 2) setenv("BRISK_CUDA_WGMMA", "0", 1);
  int64_t n = state.range(2);
  Tensor a = randn({n, n}).to(t).to(kCuda), b = randn({n, n}).to(t).to(kCuda);
  for (int i = 0; i < 2; ++i) matmul(a, b);  // warm-up (and cuBLAS heuristics)
  cuda::Event e0, e1;
  for (auto _ : state) {
    e0.record();
    Tensor c = matmul(a, b);
    e1.record();
    e1.synchronize();
    state.SetIterationTime(double(e0.elapsed_ms(e1)) / 1e3);
  }
  state.SetLabel(std::string(kDtypes[state.range(0)]) + " " + kGemmLabel[state.range(1)]);
  state.counters["TFLOP/s"] = benchmark::Counter(2.0 * double(n) * double(n) * double(n) * 1e-12,
                                                 benchmark::Counter::kIsIterationInvariantRate);
  set_gemm_backend("native");
  unsetenv("BRISK_CUDA_WGMMA");
}
BENCHMARK(BM_cuda_gemm)
    ->ArgsProduct({{0, 1, 2}, {0, 1, 2}, {4096}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Three warm-up steps, then each iteration's step timed with CUDA events.
template <class Step>
void time_steps(benchmark::State& state, const Step& step) {
  for (int i = 0; i < 3; ++i) step();
  cuda::synchronize();
  cuda::Event e0, e1;
  for (auto _ : state) {
    e0.record();
    step();
    e1.record();
    e1.synchronize();
    state.SetIterationTime(double(e0.elapsed_ms(e1)) / 1e3);
  }
}

void cnn_step(benchmark::State& state, bool bf16);
void BM_cuda_cnn_step(benchmark::State& state) { cnn_step(state, false); }
void BM_cuda_cnn_step_bf16(benchmark::State& state) { cnn_step(state, true); }

void cnn_step(benchmark::State& state, bool bf16) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  std::optional<AutocastGuard> ac;
  if (bf16) ac.emplace(AutocastPolicy{LowPrecision::bf16});
  set_gemm_backend(kGemm[state.range(0)]);
  const char* conv = state.range(1) ? "cudnn" : "native";
  try {
    set_conv_backend(conv);
  } catch (const Error& e) {
    return state.SkipWithError(e.what());
  }
  manual_seed(0);
  auto model = models::make_model("cnn");
  model->to(kCuda);
  optim::SGDOptions o;
  o.lr = 0.05;
  o.momentum = 0.9;
  optim::SGD opt(model->named_parameters(), o);
  Tensor x = randn({128, 1, 28, 28}).to(kCuda);
  Tensor y = randint(0, 10, {128}).to(kCuda);
  auto step = [&] {
    Tensor loss = F::cross_entropy(model->forward(x), y);
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  time_steps(state, step);
  state.SetLabel(std::string("gemm ") + kGemm[state.range(0)] + ", conv " + conv + (bf16 ? ", bf16 autocast" : ""));
  set_gemm_backend("native");
  set_conv_backend("native");
}
BENCHMARK(BM_cuda_cnn_step)->ArgsProduct({{0, 1}, {0, 1}})->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_cuda_cnn_step_bf16)->Args({0, 0})->UseManualTime()->Unit(benchmark::kMillisecond);

void BM_cuda_gpt_step(benchmark::State& state) {
  if (!cuda::available()) return state.SkipWithError("no CUDA device");
  manual_seed(0);
  auto model = models::make_model("gpt-small");
  model->to(kCuda);
  optim::AdamWOptions o;
  o.lr = 3e-3;
  o.weight_decay = 0.1;
  optim::AdamW opt(model->named_parameters(), o);
  Tensor idx = randint(0, 256, {32, 128}).to(kCuda);
  Tensor tgt = randint(0, 256, {32 * 128}).to(kCuda);
  auto step = [&] {
    Tensor loss = F::cross_entropy(model->forward(idx).reshape({32 * 128, 256}), tgt);
    opt.zero_grad();
    loss.backward();
    opt.step();
  };
  time_steps(state, step);
  state.SetLabel("gpt-small, batch 32 x 128");
}
BENCHMARK(BM_cuda_gpt_step)->UseManualTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
