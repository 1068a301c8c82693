// The CUDA runtime as the rest of brisk sees it: device memory (a caching,
// stream-ordered allocator with statistics), streams, events and copies.
// This header has no CUDA types in it, so every translation unit can include
// it; kernels/cuda/runtime.cu implements it, and kernels/cuda/none.cpp when
// brisk is built without CUDA (every call then throws a brisk::Error that says
// so, except the queries: available() is false, device_count() is 0).
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/allocator.h"

namespace brisk::cuda {

bool compiled();       // brisk was built with the CUDA backend
int device_count();    // 0 without a driver or a device
bool available();      // compiled() && device_count() > 0
// Throws brisk::Error naming `what` when no device is usable (or index is out of range).
void require_device(int index, const char* what);

// Opaque stream handle (a cudaStream_t); nullptr is the legacy default stream.
using StreamHandle = void*;

// A stream owned by the caller; destroyed with the object.
class Stream {
 public:
  explicit Stream(int device = 0);
  ~Stream();
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  StreamHandle handle() const { return h_; }
  void synchronize() const;
  bool query() const;  // true when all work queued so far is done

 private:
  StreamHandle h_ = nullptr;
  int device_ = 0;
};

// A timing event (cudaEvent_t).
class Event {
 public:
  Event();
  ~Event();
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  void record(StreamHandle s = nullptr);  // nullptr: the current stream
  void synchronize() const;
  bool query() const;
  void wait(StreamHandle s) const;  // make stream s wait for this event
  float elapsed_ms(const Event& later) const;

 private:
  void* e_ = nullptr;
};

// The stream kernels and copies on this thread are queued on (default: the
// legacy default stream). StreamGuard sets it for a scope.
StreamHandle current_stream();
void set_current_stream(StreamHandle s);
class StreamGuard {
 public:
  explicit StreamGuard(const Stream& s) : prev_(current_stream()) { set_current_stream(s.handle()); }
  ~StreamGuard() { set_current_stream(prev_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  StreamHandle prev_;
};

void synchronize();  // the whole device

// Caching allocator. A block is cached per (device, stream that freed it,
// rounded size): the same stream can take it back at once, since its queued
// work is ordered after whatever used the block; another stream would need an
// event, so it never takes a block cached for a different stream. Sizes round
// up to 512 bytes (small) or 2 MiB (large). BRISK_CUDA_CACHING_ALLOCATOR=0
// makes every allocation a cudaMalloc (for compute-sanitizer runs).
void* allocate(size_t nbytes, int device);  // never null: throws brisk::Error naming the size
void deallocate(void* p);
AllocatorStats allocator_stats(int device = 0);
void reset_allocator_counters(int device = 0);
void empty_cache();  // synchronizes, then returns every cached block to the driver
bool caching_allocator();  // false under BRISK_CUDA_CACHING_ALLOCATOR=0 (and without CUDA)

// Copies on the current stream. to_host waits for the copy to finish.
void copy_to_device(void* dst, const void* src, size_t nbytes, int device);
void copy_to_host(void* dst, const void* src, size_t nbytes, int device);
void copy_device_to_device(void* dst, const void* src, size_t nbytes, int device);

}  // namespace brisk::cuda
