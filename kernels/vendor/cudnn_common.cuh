// Shared pieces of the cuDNN vendor kernels: the status check, one handle per
// host thread bound to brisk's stream, the opt-in test, and call scratch.
#pragma once
#include <cudnn.h>

#include <memory>

#include "kernels/cuda/common.cuh"

namespace brisk::kern::cuda {

#define BRISK_CUDNN_CHECK(call)                                                                   \
  do {                                                                                            \
    cudnnStatus_t brisk_st_ = (call);                                                             \
    if (brisk_st_ != CUDNN_STATUS_SUCCESS)                                                        \
      BRISK_FAIL(__FILE__, ":", __LINE__, ": cuDNN call `", #call, "` failed: ",                  \
                 cudnnGetErrorString(brisk_st_));                                                 \
  } while (0)

inline cudnnHandle_t cudnn_handle() {
  thread_local cudnnHandle_t h = [] {
    cudnnHandle_t x;
    BRISK_CUDNN_CHECK(cudnnCreate(&x));
    return x;
  }();
  BRISK_CUDNN_CHECK(cudnnSetStream(h, stream()));
  return h;
}

// cuDNN kernels decline unless cuDNN was selected for the op (BRISK_CONV=cudnn
// or set_conv_backend("cudnn")), so by default the native kernels run.
inline bool cudnn_selected(const char* op) { return preferred_backend(op) == "cudnn"; }

// Scratch from brisk's stream-ordered allocator, returned when the call ends
// (safe: later work on this stream is ordered after the cuDNN call).
struct Workspace {
  void* p = nullptr;
  explicit Workspace(size_t n) {
    if (n) p = brisk::cuda::allocate(n, 0);
  }
  ~Workspace() { brisk::cuda::deallocate(p); }
};

}  // namespace brisk::kern::cuda
