// The caching allocator: blocks are reused, alignment holds, the cache limit
// and empty_cpu_cache work, and a steady-state training step allocates no
// fresh tensor memory.
#include "data/dataset.h"
#include "models/models.h"
#include "nn/functional.h"
#include "optim/optimizer.h"
#include "tests/helpers.h"

using namespace bt;

TEST_CASE("allocator: freed blocks are reused and stay 64-byte aligned", "[allocator]") {
  if (!cpu_caching_enabled()) {
    WARN("BRISK_CACHING_ALLOCATOR=0: caching is off, skipping");
    return;
  }
  void* p = cpu_allocate(100000);
  CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
  cpu_deallocate(p, 100000);
  reset_cpu_allocator_counters();
  void* q = cpu_allocate(99000);  // same size class
  CHECK(q == p);
  auto st = cpu_allocator_stats();
  CHECK(st.cache_hits == 1);
  CHECK(st.system_allocs == 0);
  cpu_deallocate(q, 99000);
  empty_cpu_cache();
  CHECK(cpu_allocator_stats().bytes_cached == 0);
  set_cpu_cache_limit(0);  // nothing may be cached now
  void* r = cpu_allocate(5000);
  cpu_deallocate(r, 5000);
  CHECK(cpu_allocator_stats().bytes_cached == 0);
  set_cpu_cache_limit(size_t(4) << 30);
}

TEST_CASE("allocator: a steady-state cnn training step makes no system allocations", "[allocator]") {
  if (!cpu_caching_enabled()) {
    WARN("BRISK_CACHING_ALLOCATOR=0: caching is off, skipping");
    return;
  }
  manual_seed(0);
  auto model = brisk::models::make_model("cnn");
  brisk::optim::SGD opt(model->named_parameters(), {0.05, 0.9});
  Tensor x = randn({32, 1, 28, 28});
  Tensor y = randint(0, 10, {32}, DType::i64);
  auto step = [&] {
    opt.zero_grad();
    Tensor loss = brisk::nn::functional::cross_entropy(model->forward(x), y);
    loss.backward();
    opt.step();
  };
  for (int i = 0; i < 3; ++i) step();  // warm-up: buffers and optimizer state appear
  reset_cpu_allocator_counters();
  for (int i = 0; i < 5; ++i) step();
  auto st = cpu_allocator_stats();
  INFO("requests " << st.requests << " system allocations " << st.system_allocs);
  CHECK(st.requests > 100);  // the steps did allocate tensors...
  CHECK(st.system_allocs == 0);  // ...all from the cache
}
