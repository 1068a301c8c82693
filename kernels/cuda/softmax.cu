// Softmax (and log-softmax) on CUDA: one block per row of a contiguous [M, K];
// warp-shuffle reductions (common.cuh, row_lse.cuh).
#include <cfloat>

#include "kernels/cuda/row_lse.cuh"

namespace brisk::kern::cuda {

namespace {

template <class T>
__global__ void softmax_rows(const T* __restrict__ x, T* __restrict__ y, int64_t K, bool log_form) {
  const T* row = x + int64_t(blockIdx.x) * K;
  T* out = y + int64_t(blockIdx.x) * K;
  T mx, lse;
  row_lse(row, K, mx, lse);
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) out[k] = log_form ? row[k] - lse : exp(row[k] - lse);
}

template <class T>
bool softmax(const KernelArgs& a) {
  const Tensor& x = a.in[0];
  int64_t M = x.size(0), K = x.size(1);
  if (M == 0 || K == 0) return true;
  softmax_rows<T><<<unsigned(M), row_threads(K), 0, stream()>>>(dptr<T>(x), dptr<T>(a.out[0]), K,
                                                                 static_cast<const SoftmaxParams*>(a.params)->log);
  BRISK_CUDA_CHECK_LAUNCH();
  return true;
}
}  // namespace

void register_softmax() {
  auto fp = [](const char* op, auto make) { register_cuda<float, double>(op, make); };
  fp("softmax", [](auto t) -> KernelFn { return &softmax<typename decltype(t)::type>; });
}

}  // namespace brisk::kern::cuda
