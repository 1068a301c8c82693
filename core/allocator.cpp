// Size-class free lists under one mutex (allocations come mostly from the
// thread that runs the graph; the lock is uncontended).
#include "core/allocator.h"

#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sys/mman.h>
#include <unordered_map>
#include <vector>

#include "core/env_switch.h"
#include "core/error.h"

namespace brisk {

namespace {

// Rounded block size: 64-byte multiples up to 4 KiB, then 8 steps per power
// of two (at most 12.5% slack), so shapes that differ slightly share blocks.
size_t size_class(size_t n) {
  BRISK_CHECK(n <= (size_t(1) << 60), "cpu allocator: request of ", n, " bytes is beyond any machine's memory");
  if (n <= 4096) return n == 0 ? 64 : (n + 63) / 64 * 64;
  int lg = 63 - __builtin_clzll(n - 1);  // 2^lg < n <= 2^(lg+1)
  size_t step = size_t(1) << (lg - 3);   // 8 classes between 2^lg and 2^(lg+1)
  return (n + step - 1) / step * step;
}

struct Cache {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free;
  AllocatorStats st;
  size_t limit = size_t(4) << 30;
  bool enabled = env_switch("BRISK_CACHING_ALLOCATOR", true);
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: storages may die during static teardown
  return *c;
}

// Blocks of 4 MiB and more (datasets, big activations) sit on 2 MiB pages
// where the kernel offers transparent huge pages on request (the usual
// 'madvise' setting): a shuffled batch reads 128 images scattered over a
// 47 MB dataset, and with 4 KiB pages each one costs a page walk (two-level
// under a hypervisor): in a training run, 80 us per batch on 4 KiB pages,
// 66 on 2 MiB.
// Rounding up to whole 2 MiB pages wastes under a third of the block.
constexpr size_t kHuge = size_t(2) << 20;

void* system_alloc(size_t bytes) {
  bool huge = bytes >= 2 * kHuge;
  size_t whole = huge ? (bytes + kHuge - 1) / kHuge * kHuge : bytes;
  void* p = std::aligned_alloc(huge ? kHuge : 64, whole);
  BRISK_CHECK(p != nullptr, "cpu allocator: out of memory allocating ", bytes, " bytes");
#ifdef MADV_HUGEPAGE
  if (huge) madvise(p, whole, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
  return p;
}

}  // namespace

void* cpu_allocate(size_t nbytes) {
  Cache& c = cache();
  size_t bytes = size_class(nbytes);
  {
    std::lock_guard<std::mutex> lk(c.mu);
    c.st.requests++;
    c.st.bytes_in_use += int64_t(bytes);
    c.st.peak_bytes_in_use = std::max(c.st.peak_bytes_in_use, c.st.bytes_in_use);
    if (c.enabled) {
      auto it = c.free.find(bytes);
      if (it != c.free.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        c.st.cache_hits++;
        c.st.bytes_cached -= int64_t(bytes);
        return p;
      }
    }
    c.st.system_allocs++;
  }
  try {
    return system_alloc(bytes);
  } catch (...) {  // keep the statistics true when the system says no
    std::lock_guard<std::mutex> lk(c.mu);
    c.st.bytes_in_use -= int64_t(bytes);
    c.st.system_allocs--;
    throw;
  }
}

void cpu_deallocate(void* p, size_t nbytes) {
  if (!p) return;
  Cache& c = cache();
  size_t bytes = size_class(nbytes);
  {
    std::lock_guard<std::mutex> lk(c.mu);
    c.st.bytes_in_use -= int64_t(bytes);
    if (c.enabled && size_t(c.st.bytes_cached) + bytes <= c.limit) {
      c.free[bytes].push_back(p);
      c.st.bytes_cached += int64_t(bytes);
      return;
    }
  }
  std::free(p);
}

AllocatorStats cpu_allocator_stats() {
  std::lock_guard<std::mutex> lk(cache().mu);
  return cache().st;
}

void reset_cpu_allocator_counters() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  c.st.requests = c.st.system_allocs = c.st.cache_hits = 0;
  c.st.peak_bytes_in_use = c.st.bytes_in_use;
}

void empty_cpu_cache() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lk(c.mu);
  for (auto& [sz, v] : c.free)
    for (void* p : v) std::free(p);
  c.free.clear();
  c.st.bytes_cached = 0;
}

void set_cpu_cache_limit(size_t bytes) {
  std::lock_guard<std::mutex> lk(cache().mu);
  cache().limit = bytes;
}

bool cpu_caching_enabled() { return cache().enabled; }

}  // namespace brisk
