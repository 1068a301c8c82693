// Heap allocations in a steady-state training step of the cnn (batch 128):
// tensor buffers requested from the caching allocator, how many of those
// reached the system, and every C++ heap allocation (operator new, counted by
// replacing it in this program: graph nodes, shape vectors, closures).
//   ./build/bench/brisk_alloc_count [steps]
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "brisk.h"
#include "models/models.h"
#include "optim/optimizer.h"

static std::atomic<long long> g_news{0};
void* operator new(size_t n) {
  g_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

using namespace brisk;

int main(int argc, char** argv) {
  int steps = argc > 1 ? std::atoi(argv[1]) : 20;
  manual_seed(0);
  auto model = models::make_model("cnn");
  optim::SGD opt(model->named_parameters(), {0.05, 0.9});
  Tensor x = randn({128, 1, 28, 28});
  Tensor y = randint(0, 10, {128}, DType::i64);
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    opt.step();
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up
  reset_cpu_allocator_counters();
  long long news0 = g_news.load();
  for (int i = 0; i < steps; ++i) step();
  AllocatorStats st = cpu_allocator_stats();
  double n = steps;
  std::printf("cnn training step, batch 128, %d steady-state steps (after 3 warm-up steps):\n", steps);
  std::printf("  tensor buffers requested per step:        %8.1f\n", double(st.requests) / n);
  std::printf("  of those, fresh system allocations:       %8.1f  (cache hits %.1f)\n", double(st.system_allocs) / n,
              double(st.cache_hits) / n);
  std::printf("  C++ heap allocations (operator new)/step: %8.1f  (graph nodes, shapes, closures)\n",
              double(g_news.load() - news0) / n);
  std::printf("  peak tensor bytes in use: %.1f MiB, cached: %.1f MiB\n", double(st.peak_bytes_in_use) / 1048576.0,
              double(st.bytes_cached) / 1048576.0);
  return st.system_allocs == 0 ? 0 : 1;
}
