// The f32 forward of a 3x3 "same" convolution (stride 1, padding 1, dilation
// 1: the cnn's second layer, and the input gradient of such a layer, which
// conv2d.cpp computes as a forward convolution) by Winograd's minimal
// filtering, F(2x2, 3x3) (Lavin & Gray, "Fast Algorithms for Convolutional
// Neural Networks", 2016): each 2x2 block of outputs comes from a 4x4 input
// tile in 16 products instead of 36, so the GEMM work falls 2.25x, at the
// cost of two linear transforms (adds only) around 16 independent GEMMs of
// [O, C] @ [C, tiles]. Taken by conv2d.cpp's forward for f32 on the avx2 and
// avx512 sgemm builds; set_conv_winograd(false) (or BRISK_CONV_WINOGRAD=0 at
// start) runs the direct unfold-and-GEMM path instead.
//
// bf16 (autocast's folded casts, ConvParams::bf16, or gemm_operands_bf16()):
// x (or the source, or the pooled gradient) and w are rounded to bf16 (nearest
// even) as they are read, and with the bf16 flag the output is rounded too,
// after the bias and before the ReLU and the pool (which commute with it).
// The transforms and the GEMMs stay f32, so on a CPU without bf16 dot
// products this computes what the unfold path's f32 GEMM of rounded copies
// does, to f32 rounding before the output's own. (A bf16 Winograd on bf16
// hardware would round the transformed tiles too: not done; such CPUs run
// conv2d's bf16 kernels instead.)
//
// Numerics: the same sums in another order through exact transforms (the
// weight transform's halves are exact in binary), so results differ from the
// direct path by rounding only, a few f32 ulps of the sum's magnitude. A NaN
// input reaches exactly the outputs whose 3x3 window holds it, as in the
// direct path; an infinite input may give NaN where the direct sum gives an
// infinity (the transforms subtract it from itself).
#pragma once
#include <cstdint>
#include <memory>

#include "core/kernel_params.h"
#include "kernels/cpu/conv2d_sample.h"

namespace brisk::kern::cpu {

bool conv_winograd_enabled();
void set_conv_winograd(bool on);

// Whether conv2d_forward_winograd runs for geometry g with O output channels
// now: the switch above; f32 operands, or bf16 ones (gemm_operands_bf16())
// where the CPU has no bf16 dot products (sgemm_bf16_supported() off: the
// kernels below then round the operands themselves, see "bf16" below);
// sgemm on avx2 or avx512, 3x3, stride 1,
// dilation 1, padding 1, output the input's size, at least 8 input and
// output channels (a thin first layer has its own kernel), and planes up to
// 128 x 128 (the per-thread buffers stay a few MB).
bool conv2d_winograd_applies(const Geom2d& g, int64_t O);

// y [N, O, H, W] = (relu)(conv(x, w) + bias), w [O, C, 3, 3], bias [O] or
// null. With a sink, y is not written: each y_n [O, H*W] goes to the sink
// from a per-thread buffer with kPoolSlack floats of room after it. With a
// source, x is not read: x_n [C, H, W] comes from it; with pooled, x_n is
// that pooled gradient expanded by its codes (conv2d_sample.h), formed in
// the kernel's zero-bordered planes directly. Samples run in blocks on the
// thread pool; each output's bits depend only on its own tile, so not on
// the thread count.
void conv2d_forward_winograd(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                             bool relu, bool bf16, float* y, const ConvSampleSink* sink = nullptr,
                             const ConvSampleSource* source = nullptr, const PooledInput* pooled = nullptr);

// The forward with its 2x2 max pool (conv2d_pool_fwd): y [N, O, H/2, W/2]
// and window codes [N, O, H/2, W/2] as conv2d_pool_fwd's (kernel_params.h),
// with relu as there. Each tile's 2x2 outputs are one pool window, so they
// are pooled in registers: the full-size output is never written.
void conv2d_pool_forward_winograd(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                                  bool relu, bool bf16, float* y, uint8_t* code);

// The weight gradient of such a convolution in the same transformed terms:
// with V = B^T d B the input tiles and dM = A gY A^T the output gradient's
// 2x2 blocks (zero past the edges), dU_xi [O, C] = sum over tiles of
// dM_xi [O, t] V_xi [C, t], and gw = G^T dU G: 2.25x fewer multiplies than
// gy_n @ unfold(x_n)^T. One object per block of samples, on one thread:
// add() each sample in turn (gy_n is copied, so it may come from a buffer
// the next sample reuses), then finish() adds the block's sum to gw
// [O, C, 3, 3]. The order of the sums depends only on the samples added.
// For geometries conv2d_winograd_applies(g, O) accepts. bf16 (or
// gemm_operands_bf16() at construction): x_n and the gradient are summed as
// their bf16 roundings; the sums themselves are not rounded (the caller
// rounds gw, the cast weight's gradient).
class WinogradWeightGrad {
 public:
  WinogradWeightGrad(const Geom2d& g, int64_t O, bool bf16 = false);
  ~WinogradWeightGrad();
  void add(const float* gy_n, const float* x_n);  // gy_n [O, H, W], x_n [C, H, W]
  // The same sample given by the gradient of a 2x2 max pool over gy_n
  // (conv2d_pool_fwd's backward): gp_n [O, H/2, W/2] and its window codes,
  // not expanded. Each pool window is one tile's 2x2 outputs, so a tile's
  // dM = A gY A^T is gp or -gp or 0 per entry by the code alone, and the
  // expanded gradient is never formed. gp_n and code_n must stay valid
  // until finish(). Where pooled_applies(g): even H and W, on AVX-512 builds.
  static bool pooled_applies(const Geom2d& g);
  void add_pooled(const float* gp_n, const uint8_t* code_n, const float* x_n);
  void finish(float* gw);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace brisk::kern::cpu
