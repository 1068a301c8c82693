// cuDNN as a vendor backend for training-mode batch norm on CUDA (f32),
// forward and backward. Opt-in (see cudnn_common.cuh).
#include "kernels/vendor/cudnn_common.cuh"

namespace brisk::kern::cuda {
namespace {

// Batch norm over x [N, C, L] as NCHW with H = L, W = 1 (spatial mode).
struct BnDescs {
  cudnnTensorDescriptor_t x = nullptr, c = nullptr;
  BnDescs(int64_t N, int64_t C, int64_t L) {
    BRISK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    BRISK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&c));
    BRISK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(N), int(C), int(L), 1));
    BRISK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(c, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, int(C), 1, 1));
  }
  ~BnDescs() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(c);
  }
};

// in = {x, w, b} -> {y, mean, invstd}. cuDNN's saved inverse variance is
// 1/sqrt(var + eps), the same quantity as ours. Running statistics are the op
// layer's job, so cuDNN gets factor 0 and scratch running buffers.
bool batch_norm_fwd(const KernelArgs& a) {
  if (!cudnn_selected("batch_norm_fwd")) return false;
  double eps = static_cast<const BatchNormParams*>(a.params)->eps;
  if (eps < CUDNN_BN_MIN_EPSILON) return false;
  const Tensor& x = a.in[0];
  int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  BnDescs ds(N, C, L);
  Workspace run(size_t(2 * C) * sizeof(float));
  BRISK_CUDA_CHECK(cudaMemsetAsync(run.p, 0, size_t(2 * C) * sizeof(float), stream()));
  float one = 1, zero = 0;
  float* rm = static_cast<float*>(run.p);
  BRISK_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(
      cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, ds.x, dptr<float>(x), ds.x, dptr<float>(a.out[0]), ds.c,
      dptr<float>(a.in[1]), dptr<float>(a.in[2]), 0.0, rm, rm + C, eps, dptr<float>(a.out[1]), dptr<float>(a.out[2])));
  return true;
}

// in = {gy, x, mean, invstd, w} -> {gx, gw, gb}. eps is not passed to the
// backward op; cuDNN uses the saved statistics, so any valid eps works.
bool batch_norm_bwd(const KernelArgs& a) {
  if (!cudnn_selected("batch_norm_bwd")) return false;
  const Tensor& x = a.in[1];
  int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  BnDescs ds(N, C, L);
  float one = 1, zero = 0;
  BRISK_CUDNN_CHECK(cudnnBatchNormalizationBackward(
      cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, ds.x, dptr<float>(x), ds.x, dptr<float>(a.in[0]),
      ds.x, dptr<float>(a.out[0]), ds.c, dptr<float>(a.in[4]), dptr<float>(a.out[1]), dptr<float>(a.out[2]),
      CUDNN_BN_MIN_EPSILON, dptr<float>(a.in[2]), dptr<float>(a.in[3])));
  return true;
}

}  // namespace

void register_cudnn_batch_norm() {
  constexpr int P = backend_priority::vendor;
  register_kernel("batch_norm_fwd", DeviceType::cuda, DType::f32, "cudnn", P, &batch_norm_fwd);
  register_kernel("batch_norm_bwd", DeviceType::cuda, DType::f32, "cudnn", P, &batch_norm_bwd);
}

}  // namespace brisk::kern::cuda
