// Fused SGD update on CUDA: kernels/fused_math.h arithmetic (the CPU kernels'
// code), one element per thread.
#include "kernels/cuda/common.cuh"
#include "kernels/fused_math.h"

namespace brisk::kern::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void sgd_k(SgdStepParams q, const T* __restrict__ g, T* __restrict__ p, T* __restrict__ buf, int64_t n) {
  BRISK_GRID_LOOP(i, n)
    fused::sgd_range(q, g, p, buf, i, i + 1);
}

template <class T>
bool sgd_step(const KernelArgs& a) {
  int64_t n = a.out[0].numel();
  if (n == 0) return true;
  T* buf = a.out[1].defined() ? dptr<T>(a.out[1]) : nullptr;
  sgd_k<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(*static_cast<const SgdStepParams*>(a.params),
                                                              dptr<T>(a.in[0]), dptr<T>(a.out[0]), buf, n);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

}  // namespace

void register_sgd_step() {
  register_cuda<float, double>("sgd_step", [](auto t) -> KernelFn { return &sgd_step<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda
