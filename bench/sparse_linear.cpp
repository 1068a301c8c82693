// Sparse (CSR) vs dense masked linear, forward + backward, at the cnn's linear
// shapes (batch 128: 3136 -> 128 and 128 -> 10), across sparsities.
//   ./build/bench/brisk_bench_sparse --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include "brisk.h"
#include "efficiency/pruning/magnitude.h"
#include "core/mask.h"

namespace F = brisk::nn::functional;
using namespace brisk;

static void run(benchmark::State& st, bool sparse) {
  int64_t in = st.range(0), out = st.range(1);
  double sparsity = double(st.range(2)) / 100.0;
  manual_seed(0);
  Tensor w = (randn({out, in}) * 0.05).detach().requires_grad_();
  brisk::set_mask(w, pruning::magnitude_mask(w, pruning::prune_count(sparsity, w.numel())));
  Tensor x = randn({128, in}).requires_grad_();
  F::set_sparse_linear_threshold(sparse ? 0.0 : 2.0);
  for (auto _ : st) {
    Tensor y = F::linear(x, w);
    sum(y).backward();
    w.set_grad(Tensor());
    x.set_grad(Tensor());
  }
  F::set_sparse_linear_threshold(0.9);
  st.counters["sparsity"] = sparsity;
}

static void BM_dense(benchmark::State& st) { run(st, false); }
static void BM_sparse(benchmark::State& st) { run(st, true); }

#define SHAPES                                                                                          \
  ->Args({3136, 128, 50})->Args({3136, 128, 80})->Args({3136, 128, 90})->Args({3136, 128, 95})            \
  ->Args({3136, 128, 99})->Args({128, 10, 90})->Unit(benchmark::kMillisecond)
BENCHMARK(BM_dense) SHAPES;
BENCHMARK(BM_sparse) SHAPES;
BENCHMARK_MAIN();
