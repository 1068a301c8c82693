// Row reductions (sum, max, min, argmax) on CUDA: one block per row of [M, K]
// (row- or column-contiguous: element (m, k) at m sm + k sk); warp-shuffle
// reductions (common.cuh). f32 accumulates in
// f32, f64 in f64 (the ref sums in f64: tests allow for it); i32 and i64 (the
// sum of a bool mask, e.g. cross-entropy's count of kept targets) in their own
// type, wrapping on overflow; u8 in i32.
#include <cfloat>
#include <type_traits>

#include "kernels/cuda/row_lse.cuh"

namespace brisk::kern::cuda {

namespace {

// A: the type rows are reduced in (u8 widens to i32: the warp shuffles have
// no 8-bit form; a u8 sum wraps when stored, as the ref's does).
template <class T>
using red_t = std::conditional_t<std::is_same_v<T, uint8_t>, int32_t, T>;

template <class T>
__global__ void reduce_rows(const T* __restrict__ x, T* __restrict__ y, int64_t K, int64_t sm, int64_t sk,
                            ReduceOp op) {
  using A = red_t<T>;
  const T* row = x + int64_t(blockIdx.x) * sm;
  A v;
  if (op == ReduceOp::sum) {
    v = 0;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) v += A(row[k * sk]);
    v = block_reduce(v, SumOp{}, A(0));
  } else if (op == ReduceOp::max) {
    v = lowest<A>();
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) v = MaxOp{}(v, A(row[k * sk]));
    v = block_reduce(v, MaxOp{}, lowest<A>());
  } else {
    v = highest<A>();
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) v = MinOp{}(v, A(row[k * sk]));
    v = block_reduce(v, MinOp{}, highest<A>());
  }
  if (threadIdx.x == 0) y[blockIdx.x] = T(v);
}

// (value, index) pairs: the larger value wins, the first NaN wins over
// everything, ties go to the smaller index (the ref's "first max").
template <class T>
__device__ __forceinline__ void argmax_combine(T& v, int64_t& i, T v2, int64_t i2) {
  bool n1 = is_nan(v), n2 = is_nan(v2);
  bool take = n1 && n2 ? i2 < i : n1 ? false : n2 ? true : v2 > v || (v2 == v && i2 < i);
  if (take) {
    v = v2;
    i = i2;
  }
}

template <class T>
__global__ void argmax_rows(const T* __restrict__ x, int64_t* __restrict__ y, int64_t K, int64_t sm, int64_t sk) {
  using A = red_t<T>;
  const T* row = x + int64_t(blockIdx.x) * sm;
  A v = lowest<A>();
  int64_t idx = K;  // "none yet": loses every tie
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) argmax_combine(v, idx, A(row[k * sk]), k);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    A v2 = __shfl_xor_sync(0xffffffffu, v, o);
    int64_t i2 = __shfl_xor_sync(0xffffffffu, idx, o);
    argmax_combine(v, idx, v2, i2);
  }
  __shared__ A sv[32];
  __shared__ int64_t si[32];
  int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  if (lane == 0) {
    sv[warp] = v;
    si[warp] = idx;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < nwarps; ++w) argmax_combine(v, idx, sv[w], si[w]);
    y[blockIdx.x] = idx;
  }
}

template <class T>
bool reduce(const KernelArgs& a) {
  ReduceOp op = static_cast<const ReduceParams*>(a.params)->op;
  if (static_cast<const ReduceParams*>(a.params)->round_bf16) return false;  // the op layer rounds first
  const Tensor& x = a.in[0];
  int64_t M = x.size(0), K = x.size(1);
  if (M == 0) return true;
  if (K == 0) {  // only sum reaches here (the op layer rejects the others): all zeros
    BRISK_CUDA_CHECK(cudaMemsetAsync(dptr<T>(a.out[0]), 0, size_t(M) * sizeof(T), stream()));
    return true;
  }
  BRISK_CHECK(M <= INT32_MAX, "cuda reduce: ", M, " rows exceed the grid");
  int th = row_threads(K);
  if (op == ReduceOp::argmax)
    argmax_rows<T><<<unsigned(M), th, 0, stream()>>>(dptr<T>(x), dptr<int64_t>(a.out[0]), K, x.stride(0),
                                                      x.stride(1));
  else
    reduce_rows<T><<<unsigned(M), th, 0, stream()>>>(dptr<T>(x), dptr<T>(a.out[0]), K, x.stride(0), x.stride(1),
                                                      op);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}
}  // namespace

void register_reduce() {
  register_cuda<float, double, int32_t, int64_t, uint8_t>("reduce",
                                                          [](auto t) -> KernelFn { return &reduce<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda
