// Fused bias + ReLU on CUDA over rows of y [M, N]; one thread per element.
#include "kernels/cuda/common.cuh"

namespace brisk::kern::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void bias_relu_k(const T* __restrict__ y, const T* __restrict__ b, T* __restrict__ o, int64_t M, int64_t N) {
  BRISK_GRID_LOOP(idx, M * N) {
    T v = y[idx] + b[idx % N];
    o[idx] = v > T(0) ? v : T(0);
  }
}
template <class T>
bool bias_relu(const KernelArgs& a) {
  int64_t M = a.in[0].size(0), N = a.in[0].size(1);
  if (M * N == 0) return true;
  bias_relu_k<T><<<grid_for(M * N, kThreads), kThreads, 0, stream()>>>(dptr<T>(a.in[0]), dptr<T>(a.in[1]),
                                                                         dptr<T>(a.out[0]), M, N);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}
}  // namespace

void register_bias_relu() {
  #define BRISK_CUDA_REG(op, ...) register_cuda<float, double>(op, [](auto t) -> KernelFn { return &__VA_ARGS__; })
  BRISK_CUDA_REG("bias_relu", bias_relu<typename decltype(t)::type>);
#undef BRISK_CUDA_REG
}

}  // namespace brisk::kern::cuda
