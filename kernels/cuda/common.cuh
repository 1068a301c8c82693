// Shared pieces of the hand-written CUDA kernels: device element types for
// brisk's dtypes, f32/f64 compute types, strided offset calculation, launch
// sizing and registration under backend "cuda".
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <array>
#include <cstdint>
#include <type_traits>

#include "core/cuda.h"
#include "core/dispatch.h"
#include "core/kernel_params.h"
#include "core/tensor.h"
#include "kernels/cuda/check.cuh"

namespace brisk::kern::cuda {

// brisk's host element type -> the type kernels see.
template <class T> struct Dev { using type = T; };
template <> struct Dev<Half> { using type = __half; };
template <> struct Dev<BFloat16> { using type = __nv_bfloat16; };
template <class T> using dev_t = typename Dev<T>::type;

// The type arithmetic runs in: f32 for 16-bit floats, the type itself otherwise.
template <class T> struct Acc { using type = T; };
template <> struct Acc<__half> { using type = float; };
template <> struct Acc<__nv_bfloat16> { using type = float; };
template <class T> using acc_t = typename Acc<T>::type;

template <class T>
__device__ __forceinline__ acc_t<T> ld(const T* p) {
  if constexpr (std::is_same_v<T, __half>) return __half2float(*p);
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return __bfloat162float(*p);
  else return *p;
}
// Rounds to nearest even into 16-bit types.
template <class T, class A>
__device__ __forceinline__ void st(T* p, A v) {
  if constexpr (std::is_same_v<T, __half>) *p = __float2half_rn(float(v));
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) *p = __float2bfloat16_rn(float(v));
  else *p = T(v);
}
// f rounded to the bf16 grid (nearest even; NaN kept a quiet NaN with its
// sign), as bits: core/dtype.h's float_to_bf16_bits, so that cuda rounds
// autocast's operands to the cpu's bits (cuda_bf16.h's conversion returns a
// canonical NaN instead).
__device__ __forceinline__ unsigned short bf16_round_bits(float f) {
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return (unsigned short)(u >> 16);
}
__device__ __forceinline__ float bf16_rounded(float f) { return __uint_as_float(unsigned(bf16_round_bits(f)) << 16); }
__device__ __forceinline__ __nv_bfloat16 to_bf16_rounded(float f) {
  __nv_bfloat16_raw r;
  r.x = bf16_round_bits(f);
  return __nv_bfloat16(r);
}
// Any element -> double and back, for the casting copy.
template <class T>
__device__ __forceinline__ double to_f64(T v) {
  if constexpr (std::is_same_v<T, __half>) return double(__half2float(v));
  else if constexpr (std::is_same_v<T, __nv_bfloat16>) return double(__bfloat162float(v));
  else return double(v);
}

template <class T>
inline T* dptr(const Tensor& t) {
  return reinterpret_cast<T*>(static_cast<char*>(t.storage()->data()) + t.offset() * int64_t(t.element_size()));
}

inline cudaStream_t stream() { return static_cast<cudaStream_t>(brisk::cuda::current_stream()); }

// for (int64_t i = first index of this thread; i < n; i += all threads): a
// grid-stride loop, so any grid size covers any n.
#define BRISK_GRID_LOOP(i, n) \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// 16-byte alignment, for the vector load/store paths.
inline bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Grid for a grid-stride loop over n items.
inline unsigned grid_for(int64_t n, int threads) {
  int64_t b = (n + threads - 1) / threads;
  if (b > 65535LL * 32) b = 65535LL * 32;
  return unsigned(b < 1 ? 1 : b);
}

// Element offsets of N operands for a linear index over `shape` (row-major).
// Dims of size 1 are dropped and adjacent dims that are contiguous for every
// operand are merged on the host, so most calls index with one or two dims.
constexpr int kMaxDims = 8;
template <int N>
struct OffsetCalc {
  int nd = 0;
  int64_t size[kMaxDims];
  int64_t stride[N][kMaxDims];
  __device__ __forceinline__ void get(int64_t i, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    for (int d = nd - 1; d >= 0; --d) {
      int64_t q = i / size[d], r = i - q * size[d];
      i = q;
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += r * stride[k][d];
    }
  }
};

// Throws brisk::Error for more than kMaxDims non-mergeable dims.
template <int N>
OffsetCalc<N> make_offset_calc(const Shape& shape, const std::array<const Shape*, N>& strides) {
  OffsetCalc<N> c;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 1) continue;
    bool merge = c.nd > 0;
    for (int k = 0; k < N && merge; ++k) merge = c.stride[k][c.nd - 1] == (*strides[k])[d] * shape[d];
    if (merge) {
      c.size[c.nd - 1] *= shape[d];
      for (int k = 0; k < N; ++k) c.stride[k][c.nd - 1] = (*strides[k])[d];
      continue;
    }
    BRISK_CHECK(c.nd < kMaxDims, "cuda kernels: tensors with more than ", kMaxDims,
                " non-contiguous dims are not supported (shape ", shape_str(shape), ")");
    c.size[c.nd] = shape[d];
    for (int k = 0; k < N; ++k) c.stride[k][c.nd] = (*strides[k])[d];
    c.nd++;
  }
  return c;
}

// Sum/max/... across a warp with shuffles (every lane gets the result).
template <class A, class Op>
__device__ __forceinline__ A warp_reduce(A v, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Across the block (blockDim.x a multiple of 32, at most 1024): warp shuffles,
// then one value per warp through shared memory. Every thread gets the result.
// Safe to call several times in a row (it syncs before reusing its buffer).
template <class A, class Op>
__device__ __forceinline__ A block_reduce(A v, Op op, A identity) {
  __shared__ alignas(16) unsigned char raw[32 * sizeof(double)];
  A* sh = reinterpret_cast<A*>(raw);
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = (blockDim.x + 31) >> 5;
  v = warp_reduce(v, op);
  __syncthreads();  // a previous call may still be reading sh
  if (lane == 0) sh[warp] = v;
  __syncthreads();
  v = lane < nwarps ? sh[lane] : identity;
  return warp_reduce(v, op);
}

// Threads for one block per row of length K: a multiple of 32, at most 256.
inline int row_threads(int64_t K) {
  int64_t t = (K + 31) / 32 * 32;
  return int(t < 32 ? 32 : t > 256 ? 256 : t);
}

struct SumOp {
  template <class A> __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};
// NaN test that is false for integer types (which have no isnan overload).
template <class A>
__device__ __forceinline__ bool is_nan(A a) {
  if constexpr (std::is_floating_point_v<A>) return isnan(a);
  else return false;
}
// Max/min that propagate NaN, like the ref kernels.
struct MaxOp {
  template <class A> __device__ __forceinline__ A operator()(A a, A b) const {
    return is_nan(a) ? a : is_nan(b) ? b : a > b ? a : b;
  }
};
struct MinOp {
  template <class A> __device__ __forceinline__ A operator()(A a, A b) const {
    return is_nan(a) ? a : is_nan(b) ? b : a < b ? a : b;
  }
};

// register_cuda<float, __half>("op", [](auto tag) -> KernelFn {...}): one entry
// per brisk dtype; the tag carries brisk's host type (Half, BFloat16, ...).
template <class... Ts, class Make>
void register_cuda(const char* op, Make make, const char* backend = "cuda",
                   int priority = backend_priority::native,
                   const char* where = __builtin_FILE()) {
  (register_kernel(op, DeviceType::cuda, DTypeOf<Ts>::value, backend, priority, make(TypeTag<Ts>{}), where), ...);
}

}  // namespace brisk::kern::cuda
