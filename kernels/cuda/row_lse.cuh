// Row helpers shared by the CUDA reduce, softmax and cross-entropy kernels:
// the identities of max and min, and a row's max and log-sum-exp computed by
// one block.
#pragma once
#include <cfloat>
#include <cstdint>
#include <type_traits>

#include "kernels/cuda/common.cuh"

namespace brisk::kern::cuda {

// The identity of max (lowest) and of min (highest), for the floating types
// and the integer ones the reduce kernel takes.
template <class T>
__device__ __forceinline__ T lowest() {
  if constexpr (std::is_same_v<T, int32_t>) return INT32_MIN;
  else if constexpr (std::is_same_v<T, int64_t>) return INT64_MIN;
  else return -INFINITY;
}
template <class T>
__device__ __forceinline__ T highest() {
  if constexpr (std::is_same_v<T, int32_t>) return INT32_MAX;
  else if constexpr (std::is_same_v<T, int64_t>) return INT64_MAX;
  else return INFINITY;
}

// max and log-sum-exp of one row, in every thread of the block.
template <class T>
__device__ __forceinline__ void row_lse(const T* row, int64_t K, T& mx, T& lse) {
  mx = lowest<T>();
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) mx = MaxOp{}(mx, row[k]);
  mx = block_reduce(mx, MaxOp{}, lowest<T>());
  T s = 0;
  T shift = isinf(mx) ? T(0) : mx;  // an all -inf row gives lse = -inf, not NaN
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) s += exp(row[k] - shift);
  s = block_reduce(s, SumOp{}, T(0));
  lse = shift + log(s);
}

}  // namespace brisk::kern::cuda
