// Fused AdamW update on CUDA: kernels/fused_math.h arithmetic (the CPU kernels'
// code), one element per thread.
#include "kernels/cuda/common.cuh"
#include "kernels/fused_math.h"

namespace brisk::kern::cuda {

namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void adamw_k(AdamWStepParams q, const T* __restrict__ g, T* __restrict__ p, T* __restrict__ m,
                        T* __restrict__ v, int64_t n) {
  BRISK_GRID_LOOP(i, n)
    fused::adamw_range(q, g, p, m, v, i, i + 1);
}

template <class T>
bool adamw_step(const KernelArgs& a) {
  int64_t n = a.out[0].numel();
  if (n == 0) return true;
  adamw_k<T><<<grid_for(n, kThreads), kThreads, 0, stream()>>>(*static_cast<const AdamWStepParams*>(a.params),
                                                                dptr<T>(a.in[0]), dptr<T>(a.out[0]), dptr<T>(a.out[1]),
                                                                dptr<T>(a.out[2]), n);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}

}  // namespace

void register_adamw_step() {
  register_cuda<float, double>("adamw_step", [](auto t) -> KernelFn { return &adamw_step<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda
