// Direct bf16 convolutions on AMX tiles (kernels/cpu/conv2d_amx_direct.cpp)
// for stride-1, dilation-1 "same" geometries with enough input channels to
// fill a tile's 32-deep reduction (the cnn's second 3x3 layer, forward and
// both gradients): no unfold.
//
// A sample is held as a bf16 copy with a zero border, rows Wq = W + kw - 1
// wide. Output position q = r * Wq + c (c < Wq; the kw - 1 columns past W
// are computed and dropped) reads tap (i, j) of the kernel at padded
// position q + i * Wq + j, so the tile operand of each tap is a plain
// strided load at an offset of the same copy: the 9x larger unfold the
// packed path builds per sample, which took a third to a half of its time,
// is gone. Values: those of the f32 convolution of bf16-rounded operands,
// summed in f32 (the order of the sums differs from the packed path's).
#pragma once
#include <cstdint>
#include <memory>

#include "core/kernel_params.h"
#include "kernels/cpu/conv2d_sample.h"

namespace brisk::kern::cpu {

// Whether the direct kernels handle g (stride 1, dilation 1, output size =
// input size, at least 3/4 of each 32-channel block of the input used) and
// are switched on. set_conv_amx_direct(false) (or BRISK_CONV_AMX_DIRECT=0 at
// start) runs such layers on the packed AMX path (conv2d_amx.h) instead:
// the tests compare the two, the benchmarks time them.
bool conv2d_amx_direct_applies(const Geom2d& g);
bool conv_amx_direct_enabled();
void set_conv_amx_direct(bool on);

// conv2d_forward_amx's contract (conv2d_amx.h), by the direct method; with
// a pooled input (conv2d_sample.h), x_n is the expansion of the pooled
// gradient, written into the sample's bf16 copy without being formed.
void conv2d_forward_amx_direct(const float* x, const float* w, const float* bias, const Geom2d& g, int64_t O,
                               bool relu, bool bf16, float* y, const ConvSampleSink* sink,
                               const ConvSampleSource* source, const PooledInput* pooled = nullptr);

// The weight gradient, transposed: gw^T [C*kh*kw, O] += sum_n unfold(x_n) @
// gy_n^T, by the direct method. Samples are gathered (add) and multiplied
// a block at a time (finish, or when max_samples are held), so each
// accumulator tile is loaded and stored once per block. One object per thread.
class AmxDirectWeightGrad {
 public:
  AmxDirectWeightGrad(const Geom2d& g, int64_t O, int64_t max_samples, float* gwt);  // gwt [CKK, O]
  ~AmxDirectWeightGrad();
  void add(const float* gy_n, const float* x_n);  // gy_n [O, H*W], x_n [C, H, W]
  void finish();                                  // adds the held samples' products into gwt

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace brisk::kern::cpu
