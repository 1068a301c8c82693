// Fused bias + GELU (exact erf form) and its backward on CUDA, over rows of
// y [M, N]; one thread per element (contract in core/kernel_params.h).
#include "kernels/cuda/common.cuh"

namespace brisk::kern::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__device__ __forceinline__ T gelu_d(T x) {
  return T(0.5) * x * (T(1) + erf(x * T(0.70710678118654752)));
}
template <class T>
__device__ __forceinline__ T gelu_deriv_d(T x) {
  return T(0.5) * (T(1) + erf(x * T(0.70710678118654752))) + x * exp(T(-0.5) * x * x) * T(0.39894228040143268);
}

template <class T>
__global__ void bias_gelu_fwd_k(const T* __restrict__ y, const T* __restrict__ b, T* __restrict__ o, int64_t n,
                                int64_t N) {
  BRISK_GRID_LOOP(idx, n) { o[idx] = gelu_d(y[idx] + b[idx % N]); }
}
template <class T>
__global__ void bias_gelu_bwd_k(const T* __restrict__ g, const T* __restrict__ y, const T* __restrict__ b,
                                T* __restrict__ gy, int64_t n, int64_t N) {
  BRISK_GRID_LOOP(idx, n) { gy[idx] = g[idx] * gelu_deriv_d(y[idx] + b[idx % N]); }
}

template <class T>
bool bias_gelu_fwd(const KernelArgs& a) {
  int64_t n = a.in[0].numel(), N = a.in[1].numel();
  if (n == 0) return true;
  bias_gelu_fwd_k<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(dptr<T>(a.in[0]), dptr<T>(a.in[1]),
                                                                         dptr<T>(a.out[0]), n, N);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}
template <class T>
bool bias_gelu_bwd(const KernelArgs& a) {
  int64_t n = a.in[1].numel(), N = a.in[2].numel();
  if (n == 0) return true;
  bias_gelu_bwd_k<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(dptr<T>(a.in[0]), dptr<T>(a.in[1]),
                                                                         dptr<T>(a.in[2]), dptr<T>(a.out[0]), n, N);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}
}  // namespace

void register_bias_gelu() {
  register_cuda<float, double>("bias_gelu_fwd", [](auto t) -> KernelFn { return &bias_gelu_fwd<typename decltype(t)::type>; });
  register_cuda<float, double>("bias_gelu_bwd", [](auto t) -> KernelFn { return &bias_gelu_bwd<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda
