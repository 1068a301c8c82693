// Wall-clock of a training step (forward, backward, SGD) and of inference at
// batch 128, for a dense model and the same model with a fraction of every
// channel group physically removed (nn::remove_group_units: what
// `--method prune:structure=channel` does mid-run), and for the cnn with the
// precision autocast on (bf16, f32 for reference).
//   ./build/bench/brisk_bench_pruned --benchmark_min_time=1
// Args: model (0 cnn, 1 resnet), percent of units removed.
#include <benchmark/benchmark.h>

#include "core/autocast.h"
#include "brisk.h"
#include "models/models.h"
#include "nn/channel_groups.h"
#include "surgery/surgery.h"
#include "optim/optimizer.h"

using namespace brisk;
namespace F = brisk::nn::functional;

static std::shared_ptr<nn::Sequential> make(int64_t model, int64_t pct) {
  manual_seed(0);
  auto m = model == 0 ? models::cnn() : models::resnet();
  size_t G = nn::channel_groups(*m).size();
  for (size_t i = 0; i < G && pct > 0; ++i) {
    nn::ChannelGroup g = nn::channel_groups(*m)[i];
    int64_t keep = std::max<int64_t>(1, g.width() - g.width() * pct / 100);
    std::vector<int64_t> k(static_cast<size_t>(keep));
    for (int64_t u = 0; u < keep; ++u) k[size_t(u)] = u;
    nn::remove_group_units(g, k, nullptr);
  }
  return m;
}

static void BM_train_step(benchmark::State& st) {
  auto m = make(st.range(0), st.range(1));
  optim::SGD opt(m->named_parameters(), {0.01, 0.9, 0.0, 5e-4, false});
  Tensor x = randn({128, 1, 28, 28}), y = randint(0, 10, {128});
  for (auto _ : st) {
    opt.zero_grad();
    F::cross_entropy(m->forward(x), y).backward();
    opt.step();
  }
  st.counters["params"] = double(m->num_parameters());
}

static void BM_inference(benchmark::State& st) {
  auto m = make(st.range(0), st.range(1));
  m->eval();
  Tensor x = randn({128, 1, 28, 28});
  NoGradGuard ng;
  for (auto _ : st) benchmark::DoNotOptimize(m->forward(x).raw_data());
}

// cnn train step under autocast: 0 = off (f32), 1 = bf16, 2 = fp8, 3 = int8,
// 4 = bf16 with every cast a separate rounding pass (set_autocast_fold_casts(false)).
static void BM_autocast_step(benchmark::State& st) {
  auto m = make(0, 0);
  optim::SGD opt(m->named_parameters(), {0.01, 0.9, 0.0, 5e-4, false});
  Tensor x = randn({128, 1, 28, 28}), y = randint(0, 10, {128});
  const LowPrecision kinds[] = {LowPrecision::none, LowPrecision::bf16, LowPrecision::fp8, LowPrecision::int8,
                                LowPrecision::bf16};
  bool fold = autocast_fold_casts();
  set_autocast_fold_casts(st.range(0) != 4);
  AutocastGuard ac({kinds[st.range(0)]});
  for (auto _ : st) {
    opt.zero_grad();
    F::cross_entropy(m->forward(x), y).backward();
    opt.step();
  }
  set_autocast_fold_casts(fold);
}

BENCHMARK(BM_train_step)->Args({0, 0})->Args({0, 50})->Args({1, 0})->Args({1, 50})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_inference)->Args({0, 0})->Args({0, 50})->Args({1, 0})->Args({1, 50})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_autocast_step)->Arg(0)->Arg(1)->Arg(2)->Arg(3)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_MAIN();
