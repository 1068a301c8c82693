// Storage: refcounted device memory; CPU blocks come from the caching
// allocator (core/allocator.h), 64-byte aligned; CUDA blocks from the
// stream-ordered caching allocator in core/cuda.h.
#include "core/storage.h"


#include <atomic>
#include <cstdlib>

#include "core/allocator.h"
#include "core/cuda.h"
#include "core/error.h"

namespace brisk {

static std::atomic<size_t> g_live_count{0};
static std::atomic<size_t> g_live_bytes{0};

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device) {
  switch (device.type) {
    case DeviceType::cpu: {
      data_ = cpu_allocate(nbytes);  // core/allocator.h: cached, 64-byte aligned
      g_live_count++;
      g_live_bytes += nbytes;
      break;
    }
    case DeviceType::meta:
      break;  // shape only, no data
    case DeviceType::cuda:
      data_ = cuda::allocate(nbytes, device.index);  // core/cuda.h: cached, stream-ordered
      break;
  }
}

Storage::~Storage() {
  if (device_.type == DeviceType::cpu && data_) {
    cpu_deallocate(data_, nbytes_);
    g_live_count--;
    g_live_bytes -= nbytes_;
  } else if (device_.type == DeviceType::cuda && data_) {
    cuda::deallocate(data_);
  }
}

size_t Storage::live_count() { return g_live_count.load(); }
size_t Storage::live_bytes() { return g_live_bytes.load(); }

}  // namespace brisk
