// cuDNN as a vendor backend for the fused conv2d ops on CUDA (f32): forward
// with bias and ReLU, input gradient, weight and bias gradients. Opt-in (see
// cudnn_common.cuh). Uses cuDNN's legacy (v7-style) API, still in cuDNN 9.
#include "kernels/vendor/cudnn_common.cuh"

namespace brisk::kern::cuda {
namespace {

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

const ConvParams& conv_params(const KernelArgs& a) { return *static_cast<const ConvParams*>(a.params); }

// in = {x, w, bias or undefined} -> y = (relu)(conv(x, w) + bias)
bool conv2d_fwd(const KernelArgs& a) {
  if (!cudnn_selected("conv2d_fwd")) return false;
  const ConvParams& p = conv_params(a);
  if (p.bf16) return false;  // bf16 casts folded in: the CPU kernels' contract only
  const Tensor &x = a.in[0], &w = a.in[1];
  ConvDescs ds(p.g, w.size(0));
  cudnnHandle_t h = cudnn_handle();
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
  if (!cudnn_selected("conv2d_bwd_input")) return false;
  const ConvParams& p = conv_params(a);
  const Tensor &gy = a.in[0], &w = a.in[1];
  ConvDescs ds(p.g, w.size(0));
  cudnnHandle_t h = cudnn_handle();
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
  if (!cudnn_selected("conv2d_bwd_weight")) return false;
  const ConvParams& p = conv_params(a);
  const Tensor &gy = a.in[0], &x = a.in[1];
  int64_t O = a.out[0].size(0);
  ConvDescs ds(p.g, O);
  cudnnHandle_t h = cudnn_handle();
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

}  // namespace

void register_cudnn_conv2d() {
  constexpr int P = backend_priority::vendor;
  register_kernel("conv2d_fwd", DeviceType::cuda, DType::f32, "cudnn", P, &conv2d_fwd);
  register_kernel("conv2d_bwd_input", DeviceType::cuda, DType::f32, "cudnn", P, &conv2d_bwd_input);
  register_kernel("conv2d_bwd_weight", DeviceType::cuda, DType::f32, "cudnn", P, &conv2d_bwd_weight);
}

}  // namespace brisk::kern::cuda
