// core/cuda.h when brisk is built without CUDA (BRISK_CUDA=OFF or no nvcc):
// queries say "nothing here", everything else throws a brisk::Error saying why.
#include "core/cuda.h"
#include "core/error.h"

namespace brisk {
int cuda_device_count() { return 0; }
bool cuda_compiled() { return false; }
void register_cuda_kernels() {}

namespace cuda {
namespace {
[[noreturn]] void unavailable(const char* what) {
  BRISK_FAIL(what, ": brisk was built without CUDA (BRISK_CUDA=OFF or no nvcc); use --device cpu");
}
}  // namespace
bool compiled() { return false; }
int device_count() { return 0; }
bool available() { return false; }
void require_device(int index, const char* what) {
  BRISK_FAIL(what, ": cuda:", index, " is not available: brisk was built without CUDA (BRISK_CUDA=OFF or no "
             "nvcc); use --device cpu");
}
Stream::Stream(int) { unavailable("cuda::Stream"); }
Stream::~Stream() = default;
void Stream::synchronize() const {}
bool Stream::query() const { return true; }
Event::Event() { unavailable("cuda::Event"); }
Event::~Event() = default;
void Event::record(StreamHandle) {}
void Event::synchronize() const {}
bool Event::query() const { return true; }
void Event::wait(StreamHandle) const {}
float Event::elapsed_ms(const Event&) const { return 0; }
StreamHandle current_stream() { return nullptr; }
void set_current_stream(StreamHandle) {}
void synchronize() {}
void* allocate(size_t, int device) {
  require_device(device, "cuda allocate");  // throws, naming cuda:<device>
  return nullptr;
}
void deallocate(void*) {}
AllocatorStats allocator_stats(int) { return {}; }
void reset_allocator_counters(int) {}
void empty_cache() {}
bool caching_allocator() { return false; }
void copy_to_device(void*, const void*, size_t, int) { unavailable("copy to cuda"); }
void copy_to_host(void*, const void*, size_t, int) { unavailable("copy from cuda"); }
void copy_device_to_device(void*, const void*, size_t, int) { unavailable("cuda copy"); }
}  // namespace cuda
}  // namespace brisk
