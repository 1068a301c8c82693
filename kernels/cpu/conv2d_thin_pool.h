// The cnn's first layer with its 2x2 max pool, fused both ways: f32, one
// input channel, 3x3, stride 1, padding 1, dilation 1 (a "same" plane), the
// pool over the output's 2x2 windows. The generic thin forward (conv2d.cpp)
// writes each sample's full-size output and pools it in a second pass, and
// the weight gradient expands the pooled gradient to full size and takes
// dot products with the unfold, where 3 of every 4 values are zeros.
//
// Here each sample's windows are taken flat, row after row (in bands of
// rows that keep their taps in L1), and each window's 16 taps, the 4 x 4
// input patch under it, are laid out tap by tap (WindowTaps): a vector of 8
// consecutive windows, rows crossed freely, reads its taps as 16 plain
// loads, and its 8 pooled values, codes and gradients are 8 consecutive
// values of the pooled plane (the cnn's 14 x 14 pooled plane is 25 vectors,
// where 14 rows of 8 + 6 took 28).
//  - forward: each pool window's 2x2 outputs are one tile of Winograd's
//    F(2x2, 3x3) (winograd_f23.h): the window's 16 taps are transformed
//    once per sample (V = B^T d B, shared by every output channel), and
//    each channel's 4 outputs are A^T (U . V) A + b, 16 products where the
//    direct sums take 36 multiply-adds, pooled and ReLU'd in registers
//    (pool_window4), so the full-size output is never formed. The values
//    differ from the direct sums (the unfused path) by rounding, a few
//    ulps of the window's magnitude, so a near-tie in a window may pick
//    another position; on small integers both are exact and agree. A NaN
//    input reaches exactly the outputs whose 3x3 window holds it; an
//    infinite one may give NaN where the direct sum gives an infinity.
//  - weight gradient: Winograd's backwards, as the layer kernels' (conv2d_
//    winograd.h): dU = sum over windows of V . Z, Z = A dY A^T the window's
//    transformed output gradient, and gw = G^T dU G once per block of
//    samples. dY is straight from the pooled gradient and the codes (one
//    nonzero of 4: the code's position), so Z takes 8 adds and a vector of
//    8 windows 16 multiply-adds per channel, where the direct sums over
//    the taps took 36 (and the unfused path 36 on a 4x larger, mostly zero
//    gradient). The gradient differs from the unfused path's by rounding.
//    The transforms mix each tap into several sums: a NaN or infinite input
//    may make NaN weight-gradient entries the direct sums leave finite.
//  - input gradient: the forward's adjoint, each window's patch B (U . Z)
//    B^T, summed over channels before B . B^T (16 multiply-adds per
//    channel and window, where the direct sums scatter 36), the
//    overlapping patches added into a zero-bordered plane per sample
//    (conv2d_thin_pool_input_grad.cpp: 16 lanes on AVX-512, 8 on AVX2). The cnn's recipes never need it
//    (their images take no gradient); a model with a layer before this one
//    does.
// Taken by conv2d.cpp for f32 on the avx2 and avx512 sgemm builds, and for
// bf16 autocast's folded casts (bf16 below) where no AMX tiles run: with K
// = 9 the bf16 dot products have almost nothing to pair up, while the f32
// products of bf16 values are exact, so these kernels on the rounded
// operands are the bf16 convolution, only faster.
// set_conv_thin_pool(false) (or BRISK_CONV_THIN_POOL=0 at start) runs the
// generic path instead.
#pragma once
#include <cstdint>
#include <vector>

#include "core/kernel_params.h"

namespace brisk::kern::cpu {

bool conv_thin_pool_enabled();
void set_conv_thin_pool(bool on);

// Whether the kernels below run for geometry g now: the switch above,
// sgemm on avx2 or avx512, C = 1, 3x3,
// stride 1, dilation 1, padding 1, output the input's size, planes from
// 2 x 2 up to 1024 x 1024.
bool conv2d_thin_pool_applies(const Geom2d& g);

// y [N, O, H/2, W/2] and window codes [N, O, H/2, W/2] of conv2d_pool_fwd
// (kernel_params.h) for x [N, 1, H, W], w [O, 1, 3, 3], bias [O] or null,
// with relu as there. Samples run on the thread pool; each value depends
// only on its own window, so not on the thread count. bf16 (autocast's
// folded casts, ConvParams::bf16): x and w are read as their bf16 roundings
// and each output is rounded to bf16 before the pool, so values and codes
// are those of the pool of the cast output (the first maximum of the
// rounded window).
void conv2d_thin_pool_forward(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                              bool relu, float* y, uint8_t* code, bool bf16 = false);

// Whether conv2d_thin_pool_input_grad runs for g now: as conv2d_thin_pool_
// applies (16 lanes on the avx512 sgemm build, 8 on avx2).
bool conv2d_thin_pool_input_grad_applies(const Geom2d& g);

// The input gradient gx [N, 1, H, W] of conv2d_pool_fwd from the pooled
// gradient gyp and the window codes [N, O, H/2, W/2] (code 4: none, the
// ReLU's backward) and w [O, 1, 3, 3]: Winograd's F(2x2, 3x3) backwards
// (conv2d_thin_pool_input_grad.cpp), 16 multiply-adds per channel and
// window where the direct sums take 36. The values differ from the direct
// sums by rounding, a few ulps of the sum of the terms' magnitudes; a NaN
// or infinite gradient may reach the window's whole 4 x 4 input patch
// (the transform mixes its entries) where the direct sums reach 3 x 3 of
// it. Samples run on the thread pool, each on its own, so the bits do not
// depend on the thread count. bf16 (folded casts): w and the gradient are
// read as their bf16 roundings and gx is rounded to bf16.
void conv2d_thin_pool_input_grad(const float* gyp, const uint8_t* code, const float* w, const Geom2d& g, int64_t O,
                                 float* gx, bool bf16 = false);

// The weight (and bias) gradient from the pooled gradient and the codes,
// one object per block of samples on one thread: add() each sample, then
// finish() adds the block's sums to gw [O, 9] and gb [O] (gb may be null).
// The order of the sums depends only on the samples added. bf16 (folded
// casts): x_n and the pooled gradient are read as their bf16 roundings.
class ThinPoolWeightGrad {
 public:
  ThinPoolWeightGrad(const Geom2d& g, int64_t O, bool bf16 = false);
  // gyp_n, code_n [samples, O, H/2, W/2] (pooled), x_n [samples, 1, H, W]:
  // consecutive samples; room: elements of gyp_n and code_n readable past
  // the last sample's planes (the next samples')
  void add(const float* gyp_n, const uint8_t* code_n, const float* x_n, int64_t room = 0, int64_t samples = 1);
  void finish(float* gw, float* gb);

 private:
  Geom2d g_;
  int64_t O_;
  bool bf16_;
  std::vector<float> xr_;   // bf16: x_n rounded, two samples' worth
  std::vector<float> gr_;   // bf16, 8-lane kernel: gyp_n rounded [O, H/2, W/2], then 8 zeros
  std::vector<float> acc_;  // [O][17][kLanes]: per channel dU's 16 values' and the bias's lanes of partial sums
};

}  // namespace brisk::kern::cpu
