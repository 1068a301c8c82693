// core/cuda.h on the CUDA runtime: device queries, streams, events, copies and
// the caching, stream-ordered device allocator.
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/cuda.h"
#include "kernels/cuda/check.cuh"

namespace brisk {

// core/device.h's hooks.
int cuda_device_count() { return cuda::device_count(); }
bool cuda_compiled() { return true; }

namespace cuda {

bool compiled() { return true; }

int device_count() {
  static const int n = [] {
    int c = 0;
    if (cudaGetDeviceCount(&c) != cudaSuccess) {
      cudaGetLastError();  // clear the "no driver / no device" error
      return 0;
    }
    return c;
  }();
  return n;
}

bool available() { return device_count() > 0; }

void require_device(int index, const char* what) {
  int n = device_count();
  BRISK_CHECK(n > 0, what, ": cuda:", index, " is not available: no CUDA device found (brisk was built "
              "with CUDA, but the driver reports no device); use --device cpu");
  BRISK_CHECK(index >= 0 && index < n, what, ": cuda:", index, " does not exist (", n,
              " device(s) found)");
}

namespace {
// Makes `device` current for a scope and restores the previous one.
struct DeviceGuard {
  int prev = 0;
  explicit DeviceGuard(int device) {
    BRISK_CUDA_CHECK(cudaGetDevice(&prev));
    if (prev != device) BRISK_CUDA_CHECK(cudaSetDevice(device));
  }
  ~DeviceGuard() { cudaSetDevice(prev); }
};
thread_local StreamHandle t_stream = nullptr;
}  // namespace

StreamHandle current_stream() { return t_stream; }
void set_current_stream(StreamHandle s) { t_stream = s; }
static cudaStream_t cur() { return static_cast<cudaStream_t>(t_stream); }

void synchronize() { BRISK_CUDA_CHECK(cudaDeviceSynchronize()); }

// ---------------------------------------------------------------- streams, events

Stream::Stream(int device) : device_(device) {
  require_device(device, "cuda::Stream");
  DeviceGuard g(device);
  cudaStream_t s;
  BRISK_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  h_ = s;
}
Stream::~Stream() {
  if (h_) cudaStreamDestroy(static_cast<cudaStream_t>(h_));
}
void Stream::synchronize() const { BRISK_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(h_))); }
bool Stream::query() const {
  cudaError_t e = cudaStreamQuery(static_cast<cudaStream_t>(h_));
  if (e == cudaErrorNotReady) return false;
  BRISK_CUDA_CHECK(e);
  return true;
}

Event::Event() {
  require_device(0, "cuda::Event");
  cudaEvent_t e;
  BRISK_CUDA_CHECK(cudaEventCreate(&e));
  e_ = e;
}
Event::~Event() {
  if (e_) cudaEventDestroy(static_cast<cudaEvent_t>(e_));
}
void Event::record(StreamHandle s) {
  BRISK_CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(e_), static_cast<cudaStream_t>(s ? s : t_stream)));
}
void Event::synchronize() const { BRISK_CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(e_))); }
bool Event::query() const {
  cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(e_));
  if (e == cudaErrorNotReady) return false;
  BRISK_CUDA_CHECK(e);
  return true;
}
void Event::wait(StreamHandle s) const {
  BRISK_CUDA_CHECK(cudaStreamWaitEvent(static_cast<cudaStream_t>(s), static_cast<cudaEvent_t>(e_), 0));
}
float Event::elapsed_ms(const Event& later) const {
  float ms = 0;
  BRISK_CUDA_CHECK(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(e_), static_cast<cudaEvent_t>(later.e_)));
  return ms;
}

// ---------------------------------------------------------------- allocator

namespace {

constexpr size_t kSmall = 1 << 20;        // requests up to 1 MiB round to 512 B
constexpr size_t kLargeRound = 2 << 20;   // larger ones to 2 MiB

size_t round_size(size_t n) {
  if (n == 0) n = 1;
  if (n <= kSmall) return (n + 511) & ~size_t(511);
  return (n + kLargeRound - 1) / kLargeRound * kLargeRound;
}

struct Block {
  size_t size;
  int device;
  StreamHandle stream;  // the stream it was allocated on: the only one that may reuse it
};

struct Pool {
  std::mutex mu;
  // (device, stream, rounded size) -> cached blocks
  std::map<std::tuple<int, StreamHandle, size_t>, std::vector<void*>> free;
  std::unordered_map<void*, Block> live;
  std::map<int, AllocatorStats> stats;
};
Pool& pool() {
  static auto* p = new Pool();  // never destroyed: storages may be freed during exit
  return *p;
}
bool caching() {
  static const bool on = [] {
    const char* e = std::getenv("BRISK_CUDA_CACHING_ALLOCATOR");
    return !(e && std::string(e) == "0");
  }();
  return on;
}

// Returns every cached block to the driver. Caller holds the lock.
void release_cached_locked(Pool& p) {
  for (auto& [key, blocks] : p.free) {
    DeviceGuard g(std::get<0>(key));
    for (void* b : blocks) {
      cudaFree(b);
      p.stats[std::get<0>(key)].bytes_cached -= int64_t(std::get<2>(key));
    }
  }
  p.free.clear();
}

}  // namespace

void* allocate(size_t nbytes, int device) {
  require_device(device, "cuda allocate");
  size_t size = round_size(nbytes);
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  AllocatorStats& st = p.stats[device];
  st.requests++;
  void* ptr = nullptr;
  auto key = std::make_tuple(device, t_stream, size);
  auto it = p.free.find(key);
  if (caching() && it != p.free.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
    st.cache_hits++;
    st.bytes_cached -= int64_t(size);
  } else {
    DeviceGuard g(device);
    cudaError_t e = cudaMalloc(&ptr, size);
    if (e == cudaErrorMemoryAllocation) {
      // Out of memory: give the cache back (after the device is idle) and retry once.
      cudaGetLastError();
      cudaDeviceSynchronize();
      release_cached_locked(p);
      e = cudaMalloc(&ptr, size);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      BRISK_FAIL("cuda allocate: cannot allocate ", nbytes, " bytes on cuda:", device, " (",
                 cudaGetErrorString(e), "); in use by brisk: ", st.bytes_in_use, " bytes");
    }
    st.system_allocs++;
  }
  st.bytes_in_use += int64_t(size);
  if (st.bytes_in_use > st.peak_bytes_in_use) st.peak_bytes_in_use = st.bytes_in_use;
  p.live[ptr] = Block{size, device, t_stream};
  return ptr;
}

void deallocate(void* ptr) {
  if (!ptr) return;
  Pool& p = pool();
  std::lock_guard<std::mutex> lk(p.mu);
  auto it = p.live.find(ptr);
  if (it == p.live.end()) return;  // not ours: never free what we did not allocate
  Block b = it->second;
  p.live.erase(it);
  AllocatorStats& st = p.stats[b.device];
  st.bytes_in_use -= int64_t(b.size);
  if (caching()) {
    p.free[std::make_tuple(b.device, b.stream, b.size)].push_back(ptr);
    st.bytes_cached += int64_t(b.size);
  } else {
    DeviceGuard g(b.device);
    cudaFree(ptr);  // synchronizes, so no queued kernel still reads the block
  }
}

AllocatorStats allocator_stats(int device) {
  std::lock_guard<std::mutex> lk(pool().mu);
  return pool().stats[device];
}

void reset_allocator_counters(int device) {
  std::lock_guard<std::mutex> lk(pool().mu);
  AllocatorStats& st = pool().stats[device];
  st.requests = st.system_allocs = st.cache_hits = 0;
  st.peak_bytes_in_use = st.bytes_in_use;
}

bool caching_allocator() { return caching(); }

void empty_cache() {
  if (!available()) return;
  BRISK_CUDA_CHECK(cudaDeviceSynchronize());
  std::lock_guard<std::mutex> lk(pool().mu);
  release_cached_locked(pool());
}

// ---------------------------------------------------------------- copies

void copy_to_device(void* dst, const void* src, size_t n, int device) {
  DeviceGuard g(device);
  BRISK_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, cur()));
  // The host buffer may be freed or reused as soon as we return (pageable
  // memory is staged, but make the guarantee explicit).
  BRISK_CUDA_CHECK(cudaStreamSynchronize(cur()));
}

void copy_to_host(void* dst, const void* src, size_t n, int device) {
  DeviceGuard g(device);
  BRISK_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, cur()));
  BRISK_CUDA_CHECK(cudaStreamSynchronize(cur()));
}

void copy_device_to_device(void* dst, const void* src, size_t n, int device) {
  DeviceGuard g(device);
  BRISK_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, cur()));
}

}  // namespace cuda
}  // namespace brisk
