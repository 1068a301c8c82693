// CPU allocator: 64-byte aligned (one cache line, one AVX-512 register).
#include "core/storage.h"

#include <malloc.h>

#include <atomic>
#include <cstdlib>

#include "core/error.h"

namespace brisk {

// Training allocates and frees the same large activation buffers every step.
// glibc would serve each with a fresh mmap (and page faults on first touch);
// keeping them in the heap instead makes steady-state steps reuse warm pages.
// (A real caching allocator is the CPU-speed issue's.)
static const bool g_malloc_tuned = [] {
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}();

static std::atomic<size_t> g_live_count{0};
static std::atomic<size_t> g_live_bytes{0};

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  switch (device.type) {
    case DeviceType::cpu: {
      size_t rounded = (nbytes + 63) / 64 * 64;
      if (rounded == 0) rounded = 64;
      data_ = std::aligned_alloc(64, rounded);
      BRISK_CHECK(data_ != nullptr, "Storage: out of memory allocating ", nbytes, " bytes on cpu");
      g_live_count++;
      g_live_bytes += nbytes;
      break;
    }
    case DeviceType::meta:
      break;  // shape only, no data
    case DeviceType::cuda:
      BRISK_FAIL("Storage: cannot allocate on ", device.str(),
                 cuda_compiled() ? ": the CUDA allocator is not implemented yet"
                                 : ": brisk was built without CUDA (BRISK_CUDA=OFF or no nvcc)");
  }
}

Storage::~Storage() {
  if (device_.type == DeviceType::cpu && data_) {
    std::free(data_);
    g_live_count--;
    g_live_bytes -= nbytes_;
  }
}

size_t Storage::live_count() { return g_live_count.load(); }
size_t Storage::live_bytes() { return g_live_bytes.load(); }

}  // namespace brisk
