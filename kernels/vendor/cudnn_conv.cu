// cuDNN as a vendor backend on CUDA (f32): the fused conv2d ops (forward with
// bias and ReLU, input gradient, weight and bias gradients) and training-mode
// batch norm. Opt-in: these kernels decline unless cuDNN was selected for the
// op (BRISK_CONV=cudnn or set_conv_backend("cudnn")), so by default the native
// im2col + GEMM path and the native batch-norm kernels run. Uses cuDNN's
// legacy (v7-style) API, still shipped in cuDNN 9.
#include <cudnn.h>

#include <memory>

#include "kernels/cuda/common.cuh"

namespace brisk::kern::cuda {
namespace {

#define BRISK_CUDNN_CHECK(call)                                                                   \
  do {                                                                                            \
    cudnnStatus_t brisk_st_ = (call);                                                             \
    if (brisk_st_ != CUDNN_STATUS_SUCCESS)                                                        \
      BRISK_FAIL(__FILE__, ":", __LINE__, ": cuDNN call `", #call, "` failed: ",                  \
                 cudnnGetErrorString(brisk_st_));                                                 \
  } while (0)

cudnnHandle_t handle() {
  thread_local cudnnHandle_t h = [] {
    cudnnHandle_t x;
    BRISK_CUDNN_CHECK(cudnnCreate(&x));
    return x;
  }();
  BRISK_CUDNN_CHECK(cudnnSetStream(h, stream()));
  return h;
}

bool selected(const char* op) { return preferred_backend(op) == "cudnn"; }

// RAII descriptors for one conv call.
struct ConvDescs {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  explicit ConvDescs(const Geom2d& g, int64_t O) {
    BRISK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&x));
    BRISK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&y));
    BRISK_CUDNN_CHECK(cudnnCreateTensorDescriptor(&bias));
    BRISK_CUDNN_CHECK(cudnnCreateFilterDescriptor(&w));
    BRISK_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&conv));
    BRISK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(g.N), int(g.C), int(g.H), int(g.W)));
    BRISK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, int(g.N), int(O), int(g.Ho), int(g.Wo)));
    BRISK_CUDNN_CHECK(cudnnSetTensor4dDescriptor(bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, int(O), 1, 1));
    BRISK_CUDNN_CHECK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, int(O), int(g.C), int(g.kh), int(g.kw)));
    BRISK_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(conv, int(g.ph), int(g.pw), int(g.sh), int(g.sw), int(g.dh),
                                                      int(g.dw), CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // Keep f32 exact (no TF32), so parity tests compare like with like.
    BRISK_CUDNN_CHECK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
  }
  ~ConvDescs() {
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(bias);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyConvolutionDescriptor(conv);
  }
  ConvDescs(const ConvDescs&) = delete;
  ConvDescs& operator=(const ConvDescs&) = delete;
};

// Scratch from brisk's stream-ordered allocator, returned when the call ends
// (safe: later work on this stream is ordered after the cuDNN call).
struct Workspace {
  void* p = nullptr;
  explicit Workspace(size_t n) {
    if (n) p = brisk::cuda::allocate(n, 0);
  }
  ~Workspace() { brisk::cuda::deallocate(p); }
};

const ConvParams& conv_params(const KernelArgs& a) { return *static_cast<const ConvParams*>(a.params); }

// in = {x, w, bias or undefined} -> y = (relu)(conv(x, w) + bias)
bool conv2d_fwd(const KernelArgs& a) {
  if (!selected("conv2d_fwd")) return false;
  const ConvParams& p = conv_params(a);
  const Tensor &x = a.in[0], &w = a.in[1];
  ConvDescs ds(p.g, w.size(0));
  cudnnHandle_t h = handle();
  cudnnConvolutionFwdAlgoPerf_t perf[4];
  int found = 0;
  BRISK_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, ds.x, ds.w, ds.conv, ds.y, 4, &found, perf));
  cudnnConvolutionFwdAlgo_t algo = found > 0 ? perf[0].algo : CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
  size_t ws = 0;
  BRISK_CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(h, ds.x, ds.w, ds.conv, ds.y, algo, &ws));
  Workspace wsp(ws);
  float one = 1, zero = 0;
  float* y = dptr<float>(a.out[0]);
  BRISK_CUDNN_CHECK(cudnnConvolutionForward(h, &one, ds.x, dptr<float>(x), ds.w, dptr<float>(w), ds.conv, algo, wsp.p,
                                            ws, &zero, ds.y, y));
  if (a.in.size() > 2 && a.in[2].defined())
    BRISK_CUDNN_CHECK(cudnnAddTensor(h, &one, ds.bias, dptr<float>(a.in[2]), &one, ds.y, y));
  if (p.relu) {
    cudnnActivationDescriptor_t act;
    BRISK_CUDNN_CHECK(cudnnCreateActivationDescriptor(&act));
    BRISK_CUDNN_CHECK(cudnnSetActivationDescriptor(act, CUDNN_ACTIVATION_RELU, CUDNN_NOT_PROPAGATE_NAN, 0.0));
    cudnnStatus_t s = cudnnActivationForward(h, act, &one, ds.y, y, &zero, ds.y, y);
    cudnnDestroyActivationDescriptor(act);
    BRISK_CUDNN_CHECK(s);
  }
  return true;
}

// in = {gy, w} -> gx
bool conv2d_bwd_input(const KernelArgs& a) {
  if (!selected("conv2d_bwd_input")) return false;
  const ConvParams& p = conv_params(a);
  const Tensor &gy = a.in[0], &w = a.in[1];
  ConvDescs ds(p.g, w.size(0));
  cudnnHandle_t h = handle();
  cudnnConvolutionBwdDataAlgoPerf_t perf[4];
  int found = 0;
  BRISK_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, ds.w, ds.y, ds.conv, ds.x, 4, &found, perf));
  cudnnConvolutionBwdDataAlgo_t algo = found > 0 ? perf[0].algo : CUDNN_CONVOLUTION_BWD_DATA_ALGO_1;
  size_t ws = 0;
  BRISK_CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, ds.w, ds.y, ds.conv, ds.x, algo, &ws));
  Workspace wsp(ws);
  float one = 1, zero = 0;
  BRISK_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, ds.w, dptr<float>(w), ds.y, dptr<float>(gy), ds.conv, algo,
                                                 wsp.p, ws, &zero, ds.x, dptr<float>(a.out[0])));
  return true;
}

// in = {gy, x} -> {gw [O, C*kh*kw], gb [O] or undefined}
bool conv2d_bwd_weight(const KernelArgs& a) {
  if (!selected("conv2d_bwd_weight")) return false;
  const ConvParams& p = conv_params(a);
  const Tensor &gy = a.in[0], &x = a.in[1];
  int64_t O = a.out[0].size(0);
  ConvDescs ds(p.g, O);
  cudnnHandle_t h = handle();
  cudnnConvolutionBwdFilterAlgoPerf_t perf[4];
  int found = 0;
  BRISK_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, ds.x, ds.y, ds.conv, ds.w, 4, &found, perf));
  cudnnConvolutionBwdFilterAlgo_t algo = found > 0 ? perf[0].algo : CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1;
  size_t ws = 0;
  BRISK_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(h, ds.x, ds.y, ds.conv, ds.w, algo, &ws));
  Workspace wsp(ws);
  float one = 1, zero = 0;
  BRISK_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, ds.x, dptr<float>(x), ds.y, dptr<float>(gy), ds.conv, algo,
                                                   wsp.p, ws, &zero, ds.w, dptr<float>(a.out[0])));
  if (a.out.size() > 1 && a.out[1].defined())
    BRISK_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &one, ds.y, dptr<float>(gy), &zero, ds.bias, dptr<float>(a.out[1])));
  return true;
}

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
  if (!selected("batch_norm_fwd")) return false;
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
      handle(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, ds.x, dptr<float>(x), ds.x, dptr<float>(a.out[0]), ds.c,
      dptr<float>(a.in[1]), dptr<float>(a.in[2]), 0.0, rm, rm + C, eps, dptr<float>(a.out[1]), dptr<float>(a.out[2])));
  return true;
}

// in = {gy, x, mean, invstd, w} -> {gx, gw, gb}. eps is not passed to the
// backward op; cuDNN uses the saved statistics, so any valid eps works.
bool batch_norm_bwd(const KernelArgs& a) {
  if (!selected("batch_norm_bwd")) return false;
  const Tensor& x = a.in[1];
  int64_t N = x.size(0), C = x.size(1), L = x.size(2);
  BnDescs ds(N, C, L);
  float one = 1, zero = 0;
  BRISK_CUDNN_CHECK(cudnnBatchNormalizationBackward(
      handle(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, ds.x, dptr<float>(x), ds.x, dptr<float>(a.in[0]),
      ds.x, dptr<float>(a.out[0]), ds.c, dptr<float>(a.in[4]), dptr<float>(a.out[1]), dptr<float>(a.out[2]),
      CUDNN_BN_MIN_EPSILON, dptr<float>(a.in[2]), dptr<float>(a.in[3])));
  return true;
}

}  // namespace

void register_cudnn() {
  constexpr int P = backend_priority::vendor;
  register_kernel("conv2d_fwd", DeviceType::cuda, DType::f32, "cudnn", P, &conv2d_fwd);
  register_kernel("conv2d_bwd_input", DeviceType::cuda, DType::f32, "cudnn", P, &conv2d_bwd_input);
  register_kernel("conv2d_bwd_weight", DeviceType::cuda, DType::f32, "cudnn", P, &conv2d_bwd_weight);
  register_kernel("batch_norm_fwd", DeviceType::cuda, DType::f32, "cudnn", P, &batch_norm_fwd);
  register_kernel("batch_norm_bwd", DeviceType::cuda, DType::f32, "cudnn", P, &batch_norm_bwd);
}

}  // namespace brisk::kern::cuda
