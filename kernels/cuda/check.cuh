// BRISK_CUDA_CHECK(call): runs a CUDA runtime call and, on failure, throws
// brisk::Error naming the file, line, the call as written and CUDA's message.
// BRISK_CUDA_CHECK_LAUNCH() checks the last kernel launch the same way.
#pragma once
#include <cuda_runtime.h>

#include "core/error.h"

#define BRISK_CUDA_CHECK(call)                                                                  \
  do {                                                                                          \
    cudaError_t brisk_err_ = (call);                                                            \
    if (brisk_err_ != cudaSuccess) {                                                            \
      cudaGetLastError(); /* clear a non-sticky error so later calls can run */                 \
      BRISK_FAIL(__FILE__, ":", __LINE__, ": CUDA call `", #call, "` failed: ",                 \
                 cudaGetErrorName(brisk_err_), " (", cudaGetErrorString(brisk_err_), ")");      \
    }                                                                                           \
  } while (0)

#define BRISK_CUDA_CHECK_LAUNCH() BRISK_CUDA_CHECK(cudaGetLastError())
